//! `hubpulse ingest`: append log files to the lake, exactly once.
//!
//! This thread reads and frames records and cuts them into pieces; worker threads parse the
//! pieces into Arrow batches per `dt` partition (see [`piece`]); this thread merges them in
//! stream order and hands them to a writer thread, which encodes them into Parquet parts (zstd
//! is the expensive part). Pieces in flight and the channel to the writer are bounded, so
//! memory is: a slow writer slows the reader.
//!
//! # Guarantees
//! * Idempotent: a file's progress is keyed by its content fingerprint; ingesting it again
//!   resumes at the end of its last commit, so only records appended since are added.
//! * Crash-safe: progress advances only with a commit that lists the parts holding the records
//!   up to that offset (see `lake::manifest`). A crash replays from the last commit.
//! * Few parts: a commit covers every file read since the last one (see [`commits`]), so a
//!   directory of small logs lands as one part per table and day; each file is still parsed
//!   from a fresh state, as if ingested alone.
//! * Nothing is dropped: every byte up to the commit offset belongs to exactly one row.
//!   A partial last line (no newline yet) is left for the next ingest.

mod commits;
mod piece;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::error::ArrowError;
use chrono::NaiveDate;

use crate::lake::batch::SourceInfo;
use crate::lake::manifest::Names;
use crate::lake::manifest::{LakeError, Manifest, PartEntry, io_err};
use crate::lake::writer::{PartSet, WriterConfig};
use crate::parse::catalogue::Catalogue;
use crate::parse::reader::{AtEof, ReaderConfig, RecordReader};
use crate::parse::time::{Zone, utc_date};
use crate::parse::{Enrichment, StreamState};
use commits::{Commits, Reading};
use piece::Piece;

#[derive(Clone)]
pub struct IngestOptions {
    pub lake: crate::lake::LakeLocation,
    pub zone: Zone,
    pub hub: String,
    pub catalogue: Arc<Catalogue>,
    pub reader: ReaderConfig,
    pub writer: WriterConfig,
    /// Rows per Arrow batch handed to the writer thread.
    pub batch_rows: usize,
    /// Bytes of messages at which a batch is cut before `batch_rows` (huge records).
    pub batch_bytes: usize,
    /// Threads parsing pieces of a file (see `ingest::piece`); 0 parses them on the reading
    /// thread.
    pub workers: usize,
    /// Records a piece aims at (it is cut before the next record with a full hub stamp).
    pub piece_records: usize,
    /// Bytes at which a piece is cut whatever comes next.
    pub piece_bytes: usize,
    /// Commit (and make durable) at least every this many input bytes.
    pub commit_bytes: u64,
    pub progress: bool,
}

impl IngestOptions {
    /// The options `hubpulse ingest` uses, parsing on the reading thread, with no progress bar.
    pub fn new(
        lake: &crate::lake::LakeLocation,
        zone: Zone,
        hub: &str,
        catalogue: Arc<Catalogue>,
        reader: ReaderConfig,
    ) -> Self {
        IngestOptions {
            lake: lake.clone(),
            zone,
            hub: hub.to_string(),
            catalogue,
            reader,
            writer: WriterConfig::default(),
            batch_rows: 32 * 1024,
            batch_bytes: crate::lake::batch::BATCH_BYTES,
            workers: 0,
            piece_records: 16 * 1024,
            piece_bytes: 8 << 20,
            commit_bytes: 256 << 20,
            progress: false,
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct IngestSummary {
    pub files: u64,
    pub records: u64,
    pub unparsed: u64,
    pub bytes: u64,
    pub parts: u64,
    pub seconds: f64,
    /// What each input added (for the CLI's warning on a file that is all unparsed).
    pub by_file: Vec<FileCounts>,
}

/// One input's records and unparsed records added by this run.
#[derive(Debug, Clone, PartialEq)]
pub struct FileCounts {
    pub path: PathBuf,
    pub records: u64,
    pub unparsed: u64,
}

impl std::fmt::Display for IngestSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "files={} records={} unparsed={} bytes={} parts={} seconds={:.3}",
            self.files, self.records, self.unparsed, self.bytes, self.parts, self.seconds
        )
    }
}

enum ToWriter {
    Begin(u64),
    Batch(String, crate::lake::batch::Rows),
    Finish(SyncSender<Result<Vec<PartEntry>, LakeError>>),
}

fn writer_thread(root: PathBuf, names: Names, cfg: WriterConfig, rx: Receiver<ToWriter>) {
    let mut set: Option<PartSet> = None;
    let mut failed: Option<LakeError> = None;
    for msg in rx {
        match msg {
            ToWriter::Begin(seq) => {
                set = Some(PartSet::new(root.clone(), names.clone(), seq, &cfg))
            }
            ToWriter::Batch(dt, b) => {
                if failed.is_some() {
                    continue;
                }
                // A batch outside a commit would be lost: fail the commit instead.
                let r = set
                    .as_mut()
                    .map_or(Err(LakeError::WriterGone), |s| s.write_rows(&dt, b));
                if let Err(e) = r {
                    failed = Some(e);
                }
            }
            ToWriter::Finish(reply) => {
                let r = match (failed.take(), set.take()) {
                    (Some(e), _) => Err(e),
                    (None, Some(s)) => s.finish(),
                    (None, None) => Ok(Vec::new()),
                };
                let _ = reply.send(r);
            }
        }
    }
}

/// The `dt` partition of a UTC day number.
fn day_name(day: i64) -> String {
    utc_date(day * 86_400_000_000)
        .format("%Y-%m-%d")
        .to_string()
}

/// The UTC date `path` was last modified: the date given to time-only lines (CHP 3.x/4.x) seen
/// before any dated record, by `ingest` and `parse` alike.
pub fn mtime_date(path: &Path) -> Option<NaiveDate> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(chrono::DateTime::<chrono::Utc>::from(t).date_naive())
}

/// Ingest `files` into the lake at `opts.lake`.
///
/// # Errors
/// A missing or unreadable file, an unwritable lake, or a lake locked by another writer.
/// What was read before the error is committed (see `ingest::commits`).
pub fn ingest(opts: &IngestOptions, files: &[PathBuf]) -> Result<IngestSummary, LakeError> {
    for f in files {
        File::open(f).map_err(io_err(f))?;
    }
    let started = Instant::now();
    let mut manifest = Manifest::open(&opts.lake, &opts.hub)?;
    let (tx, rx) = sync_channel::<ToWriter>(2);
    let (root, names, wcfg) = (manifest.root().to_path_buf(), manifest.names(), opts.writer);
    let handle = std::thread::spawn(move || writer_thread(root, names, wcfg, rx));
    let _ = tx.send(ToWriter::Begin(manifest.next_seq()));
    let mut commits = Commits::new(opts, &mut manifest, &tx);
    let mut by_file = Vec::with_capacity(files.len());
    let mut result = files
        .iter()
        .try_for_each(|f| ingest_file(&mut commits, f).map(|c| by_file.push(c)));
    // One commit for the files read since the last one; after an error, for what was read
    // before it (as far as the last piece merged of the file that failed).
    if commits.can_commit() {
        let r = commits.commit(None, false);
        result = result.and(r);
    }
    let mut summary = std::mem::take(&mut commits.out);
    drop(tx);
    let _ = handle.join();
    result?;
    summary.files = by_file.len() as u64;
    summary.by_file = by_file;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Merges parsed pieces in stream order (see [`piece`]).
struct Merge<'a> {
    ctx: &'a piece::Ctx,
    /// The state the pieces merged so far leave.
    state: StreamState,
    enrichment: Enrichment,
    /// Builders kept between the pieces parsed here.
    spare: Vec<crate::lake::batch::EventsBuilder>,
    /// Pieces done or queued, by sequence number, until their turn.
    ready: BTreeMap<u64, (Piece, Option<Result<piece::Parsed, ArrowError>>)>,
    next: u64,
    /// Stream offset just past the last piece merged.
    end: u64,
}

impl Merge<'_> {
    /// Merge every piece whose turn has come.
    fn drain(
        &mut self,
        commits: &mut Commits<'_>,
        reading: &mut Reading<'_>,
    ) -> Result<(), LakeError> {
        while let Some((piece, parsed)) = self.ready.remove(&self.next) {
            self.next += 1;
            let parsed = match parsed {
                Some(Ok(p)) if !p.needed_state && !self.state.order.misses_late(&p.state.order) => {
                    p
                }
                // Parse again with the state the pieces before left (also when a record may
                // be late against the order before it: it could not be flagged without it).
                None | Some(Ok(_)) => {
                    piece::parse(&piece, self.ctx, Some(self.state.clone()), &mut self.spare)?
                }
                Some(Err(e)) => return Err(e.into()),
            };
            self.state = self.state.then(&parsed.state);
            let (records, unparsed) = (parsed.records, parsed.unparsed);
            // Counted with the rows they are, once those are with the writer.
            for (day, batch) in parsed.enrich(&mut self.enrichment)? {
                let _ = commits.tx.send(ToWriter::Batch(day_name(day), batch));
            }
            commits.records += records;
            commits.unparsed += unparsed;
            reading.records += records;
            reading.unparsed += unparsed;
            self.end = piece.end;
            reading.hash_to(piece.end)?;
            if commits.due(reading, piece.end) {
                commits.commit(Some((reading, piece.end)), true)?;
            }
        }
        Ok(())
    }
}

/// A parsing thread: parses the pieces it is handed until the queue closes.
fn worker(
    jobs: &Mutex<mpsc::Receiver<(Piece, Option<StreamState>)>>,
    done: &mpsc::Sender<(Piece, Result<piece::Parsed, ArrowError>)>,
    ctx: &piece::Ctx,
) {
    let mut spare = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((mut piece, start)) = job else { return };
        let known = start.is_some();
        // A panic must not leave the merge waiting for this piece forever.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            piece::parse(&piece, ctx, start, &mut spare)
        }))
        .unwrap_or_else(|_| Err(ArrowError::ComputeError("the parser panicked".into())));
        if known && parsed.is_ok() {
            // Parsed with the state before it: never parsed again, its bytes can go now. A
            // piece parsed without it keeps them until its turn: the merge may parse it again
            // (a record needed the state, or may be late against the order before it).
            piece.release();
        }
        if done.send((piece, parsed)).is_err() {
            return;
        }
    }
}

/// Read `path` from where the lake has it (see [`Commits::identify`]) to its last complete
/// line; its progress waits for the next commit. What it added, on success.
fn ingest_file(commits: &mut Commits<'_>, path: &Path) -> Result<FileCounts, LakeError> {
    let opts = commits.opts;
    let (fp, head_len, resume) = commits.identify(path)?;
    let mut file = File::open(path).map_err(io_err(path))?;
    let size = file.metadata().map_err(io_err(path))?.len();
    let mut reading = Reading::new(path, fp, head_len, resume);
    if resume >= size {
        return Ok(reading.counts());
    }
    file.seek(SeekFrom::Start(resume)).map_err(io_err(path))?;
    let ctx = piece_ctx(opts, path, reading.fp());
    let bar = progress_bar(opts.progress, size - resume, path);
    // Each file is parsed from a fresh state, as if it were ingested alone.
    let mut merge = Merge {
        ctx: &ctx,
        state: StreamState::default(),
        enrichment: Enrichment::default(),
        spare: Vec::new(),
        ready: BTreeMap::new(),
        next: 0,
        end: resume,
    };
    let run = read_file(commits, &mut reading, &mut merge, file, &bar);
    // Whatever happened, the rows merged so far are with the writer: their progress goes
    // with them into the next commit (or, when it cannot be taken, nothing more commits).
    let read = commits.file_read(&mut reading, merge.end);
    run.and(read)?;
    bar.finish_and_clear();
    Ok(reading.counts())
}

/// Read, parse and merge `file` (open at `merge.end`) to its last complete line, handing the
/// rows to the writer.
fn read_file(
    commits: &mut Commits<'_>,
    reading: &mut Reading<'_>,
    merge: &mut Merge<'_>,
    file: File,
    bar: &indicatif::ProgressBar,
) -> Result<(), LakeError> {
    let (opts, resume, ctx) = (commits.opts, merge.end, merge.ctx);
    let workers = opts.workers;
    type Job = (Piece, Option<StreamState>);
    type Done = (Piece, Result<piece::Parsed, ArrowError>);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let job_rx = Mutex::new(job_rx);
    let path = reading.path;
    std::thread::scope(|s| -> Result<(), LakeError> {
        for _ in 0..workers {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            s.spawn(move || worker(job_rx, &done_tx, ctx));
        }
        drop(done_tx);
        let mut splitter = piece::Splitter::new(opts.piece_records, opts.piece_bytes);
        let mut reader = RecordReader::new(file, resume, opts.reader);
        // Pieces handed out and not merged yet: bounded, so memory is.
        let mut in_flight = 0usize;
        let max_in_flight = workers + 1;
        let mut pieces = Vec::new();
        let run = (|| -> Result<(), LakeError> {
            loop {
                let more = reader
                    .next_chunk(AtEof::HoldPartialLine, &mut |raw| {
                        pieces.extend(splitter.push(&raw));
                    })
                    .map_err(io_err(path))?;
                if !more {
                    pieces.push(splitter.finish());
                }
                for piece in pieces.drain(..).filter(|p| !p.is_empty()) {
                    in_flight += 1;
                    // The state before the first piece is known: a fresh parser's.
                    let start = (piece.seq == 0).then(StreamState::default);
                    if workers > 0 && (piece.anchored || start.is_some()) {
                        let _ = job_tx.send((piece, start));
                    } else {
                        // Parsed here, in turn, from the state the pieces before left.
                        merge.ready.insert(piece.seq, (piece, None));
                    }
                }
                loop {
                    let block = in_flight >= max_in_flight || (!more && in_flight > 0);
                    if block && !merge.ready.contains_key(&merge.next) {
                        let (p, r) = done_rx.recv().map_err(|_| LakeError::ParserGone)?;
                        merge.ready.insert(p.seq, (p, Some(r)));
                    }
                    while let Ok((p, r)) = done_rx.try_recv() {
                        merge.ready.insert(p.seq, (p, Some(r)));
                    }
                    let before = merge.next;
                    merge.drain(commits, reading)?;
                    in_flight -= (merge.next - before) as usize;
                    bar.set_position(merge.end - resume);
                    if !block {
                        break;
                    }
                }
                if !more {
                    return Ok(());
                }
            }
        })();
        // Workers stop when the job queue closes, whatever happened here.
        drop(job_tx);
        run
    })
}

/// What the parsing threads need to know of the file: its source columns, and the date (its
/// mtime's) for time-only stamps before any dated record.
fn piece_ctx(opts: &IngestOptions, path: &Path, fp: &str) -> piece::Ctx {
    let default_date = mtime_date(path);
    piece::Ctx {
        catalogue: opts.catalogue.clone(),
        zone: opts.zone.clone(),
        default_date,
        default_ts: default_date.map_or(0, |d| {
            crate::parse::time::days_since_epoch(d) * 86_400_000_000
        }),
        src: Arc::new(SourceInfo {
            hub: opts.hub.clone(),
            file: path.display().to_string(),
            fp: fp.to_string(),
        }),
        batch_rows: opts.batch_rows,
        batch_bytes: opts.batch_bytes,
    }
}

fn progress_bar(enabled: bool, len: u64, path: &Path) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !enabled || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar.set_message(path.display().to_string());
    bar
}
