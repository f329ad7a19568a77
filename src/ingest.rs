//! `hubpulse ingest`: append log files to the lake, exactly once.
//!
//! Two threads: this one reads, parses and builds Arrow batches per `dt` partition; a writer
//! thread encodes them into Parquet parts (zstd is the expensive part). A bounded channel
//! between them keeps memory bounded: a slow writer slows the reader.
//!
//! # Guarantees
//! * Idempotent: a file's progress is keyed by its content fingerprint; ingesting it again
//!   resumes at the end of its last commit, so only records appended since are added.
//! * Crash-safe: progress advances only with a commit that lists the parts holding the records
//!   up to that offset (see `lake::manifest`). A crash replays from the last commit.
//! * Nothing is dropped: every byte up to the commit offset belongs to exactly one row.
//!   A partial last line (no newline yet) is left for the next ingest.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use arrow::array::RecordBatch;
use chrono::NaiveDate;

use crate::lake::batch::{EventsBuilder, SourceInfo};
use crate::lake::manifest::Names;
use crate::lake::manifest::{Commit, LakeError, Manifest, PartEntry, SourceProgress, io_err};
use crate::lake::writer::{PartSet, WriterConfig};
use crate::parse::catalogue::Catalogue;
use crate::parse::reader::{AtEof, ReaderConfig, RecordReader};
use crate::parse::time::{Zone, utc_date};
use crate::parse::{KIND_UNPARSED, Parser};

#[derive(Clone)]
pub struct IngestOptions {
    pub lake: PathBuf,
    pub zone: Zone,
    pub hub: String,
    pub catalogue: Arc<Catalogue>,
    pub reader: ReaderConfig,
    pub writer: WriterConfig,
    /// Rows per Arrow batch handed to the writer thread.
    pub batch_rows: usize,
    /// Bytes of messages at which a batch is cut before `batch_rows` (huge records).
    pub batch_bytes: usize,
    /// Commit (and make durable) at least every this many input bytes.
    pub commit_bytes: u64,
    pub progress: bool,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct IngestSummary {
    pub files: u64,
    pub records: u64,
    pub unparsed: u64,
    pub bytes: u64,
    pub parts: u64,
    pub seconds: f64,
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
    Batch(String, RecordBatch),
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
                    .map_or(Err(LakeError::WriterGone), |s| s.write(&dt, &b));
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

/// Hashes a file's bytes `[0, to)` incrementally, for the manifest's prefix guard.
struct PrefixHasher {
    file: File,
    state: xxhash_rust::xxh3::Xxh3,
    pos: u64,
}

impl PrefixHasher {
    fn new(path: &Path) -> std::io::Result<Self> {
        Ok(PrefixHasher {
            file: File::open(path)?,
            state: xxhash_rust::xxh3::Xxh3::new(),
            pos: 0,
        })
    }

    fn advance(&mut self, to: u64) -> std::io::Result<String> {
        let mut buf = vec![0u8; 1 << 20];
        self.file.seek(SeekFrom::Start(self.pos))?;
        while self.pos < to {
            let want = ((to - self.pos) as usize).min(buf.len());
            let n = self.file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            self.state.update(&buf[..n]);
            self.pos += n as u64;
        }
        Ok(format!("{:016x}", self.state.digest()))
    }
}

/// The `dt` partition of a UTC day number.
fn day_name(day: i64) -> String {
    utc_date(day * 86_400_000_000)
        .format("%Y-%m-%d")
        .to_string()
}

fn mtime_date(path: &Path) -> Option<NaiveDate> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(chrono::DateTime::<chrono::Utc>::from(t).date_naive())
}

/// Ingest `files` into the lake at `opts.lake`.
///
/// # Errors
/// A missing or unreadable file, an unwritable lake, or a lake locked by another writer.
pub fn ingest(opts: &IngestOptions, files: &[PathBuf]) -> Result<IngestSummary, LakeError> {
    for f in files {
        File::open(f).map_err(io_err(f))?;
    }
    let started = Instant::now();
    let mut manifest = Manifest::open(&opts.lake, &opts.hub)?;
    let (tx, rx) = sync_channel::<ToWriter>(2);
    let (root, names, wcfg) = (manifest.root().to_path_buf(), manifest.names(), opts.writer);
    let handle = std::thread::spawn(move || writer_thread(root, names, wcfg, rx));
    let mut summary = IngestSummary::default();
    let mut result = Ok(());
    for f in files {
        match ingest_file(opts, &mut manifest, &tx, f) {
            Ok(s) => {
                summary.files += 1;
                summary.records += s.records;
                summary.unparsed += s.unparsed;
                summary.bytes += s.bytes;
                summary.parts += s.parts;
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let _ = handle.join();
    result?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

struct FileRun<'a> {
    opts: &'a IngestOptions,
    tx: &'a SyncSender<ToWriter>,
    /// One builder per UTC day number, in order of first appearance (a handful at most: a
    /// linear scan from the newest beats hashing the day on every row).
    builders: Vec<(i64, EventsBuilder)>,
    default_ts: i64,
    src: Arc<SourceInfo>,
}

impl FileRun<'_> {
    fn send_full(&mut self, day: i64) {
        if let Some((_, b)) = self.builders.iter_mut().rev().find(|(d, _)| *d == day)
            && b.full(self.opts.batch_rows, self.opts.batch_bytes)
            && let Ok(batch) = b.finish()
        {
            let _ = self.tx.send(ToWriter::Batch(day_name(day), batch));
        }
    }

    fn builder(&mut self, day: i64) -> &mut EventsBuilder {
        let i = match self.builders.iter().rposition(|(d, _)| *d == day) {
            Some(i) => i,
            None => {
                let b = EventsBuilder::new(self.src.clone());
                self.builders.push((day, b));
                self.builders.len() - 1
            }
        };
        &mut self.builders[i].1
    }

    fn flush(&mut self) -> Result<Vec<PartEntry>, LakeError> {
        for (day, b) in &mut self.builders {
            if !b.is_empty() {
                let batch = b.finish()?;
                let _ = self.tx.send(ToWriter::Batch(day_name(*day), batch));
            }
        }
        // Past days' builders would keep their buffers until the file ends: start afresh.
        self.builders.clear();
        let (rtx, rrx) = sync_channel(1);
        let _ = self.tx.send(ToWriter::Finish(rtx));
        // A writer that died must fail the commit: committing progress without its parts would
        // skip those records forever.
        rrx.recv().unwrap_or_else(|_| Err(LakeError::WriterGone))
    }
}

fn ingest_file(
    opts: &IngestOptions,
    manifest: &mut Manifest,
    tx: &SyncSender<ToWriter>,
    path: &Path,
) -> Result<IngestSummary, LakeError> {
    let (fp, head_len, resume) = manifest.identify(path)?;
    let mut file = File::open(path).map_err(io_err(path))?;
    let size = file.metadata().map_err(io_err(path))?.len();
    let mut out = IngestSummary::default();
    if resume >= size {
        return Ok(out);
    }
    file.seek(SeekFrom::Start(resume)).map_err(io_err(path))?;
    let default_date = mtime_date(path);
    let mut parser = Parser::new(opts.catalogue.clone(), opts.zone.clone(), default_date);
    let default_ts = default_date.map_or(0, |d| {
        crate::parse::time::days_since_epoch(d) * 86_400_000_000
    });
    let src = Arc::new(SourceInfo {
        hub: opts.hub.clone(),
        file: path.display().to_string(),
        fp: fp.clone(),
    });
    let mut run = FileRun {
        opts,
        tx,
        builders: Vec::new(),
        default_ts,
        src,
    };
    let mut reader = RecordReader::new(file, resume, opts.reader);
    let mut hasher = PrefixHasher::new(path).map_err(io_err(path))?;
    let bar = progress_bar(opts.progress, size - resume, path);
    let mut from = resume;
    let _ = tx.send(ToWriter::Begin(manifest.next_seq()));
    let (mut records, mut unparsed) = (0u64, 0u64);
    loop {
        let more = reader
            .next_chunk(AtEof::HoldPartialLine, &mut |raw| {
                let day = parser.parse(&raw, |rec| {
                    let ts = rec.ts.or(rec.ts_hint).unwrap_or(run.default_ts);
                    let day = ts.div_euclid(86_400_000_000);
                    run.builder(day).append(rec);
                    unparsed += (rec.kind == KIND_UNPARSED) as u64;
                    day
                });
                records += 1;
                run.send_full(day);
            })
            .map_err(io_err(path))?;
        bar.set_position(reader.committed() - resume);
        let to = reader.committed();
        if (!more && to > from) || to - from >= opts.commit_bytes {
            let parts = run.flush()?;
            let prefix_hash = hasher.advance(to).map_err(io_err(path))?;
            let progress = SourceProgress {
                fp: fp.clone(),
                head_len,
                path: path.display().to_string(),
                from,
                to,
                prefix_hash,
            };
            out.parts += parts.len() as u64;
            let seq = manifest.next_seq();
            let commit = Commit {
                version: 1,
                seq,
                created: chrono::Utc::now().to_rfc3339(),
                table: crate::lake::schema::EVENTS.into(),
                source: Some(progress),
                sources: Vec::new(),
                streams: Vec::new(),
                replaces: Vec::new(),
                parts,
                records,
                unparsed,
            };
            manifest.commit(&commit)?;
            out.records += records;
            out.unparsed += unparsed;
            out.bytes += to - from;
            (records, unparsed, from) = (0, 0, to);
            if more {
                let _ = tx.send(ToWriter::Begin(manifest.next_seq()));
            }
        }
        if !more {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(out)
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
