//! Lines → records → Arrow → lake commits, with the checkpoint rule.
//!
//! One thread. Per source it keeps the bytes of complete lines not yet emitted as records: a
//! record is emitted once the next record has begun (so continuation lines — tracebacks, header
//! dumps — are never cut off), or once the source has been quiet for `record_hold` (default
//! 50 ms: the latency floor for the last record of a burst).
//!
//! # Guarantees
//! * A source's checkpoint (identity, offset or stream position) is written only inside the lake
//!   commit that holds every record before it; a crash replays from the last commit, and the
//!   replay re-creates exactly the rows that were not committed: nothing lost, nothing twice.
//! * Records of one source are appended in source order.
//! * Memory is bounded: the input channel is bounded (sources block when it is full), rows are
//!   streamed into staging Parquet as batches fill, and a commit happens every `flush_bytes`.
//! * Freshness: a commit happens at least every `flush_interval` while rows are buffered.
//! * A lake write that fails for lack of space (`ENOSPC`, `EDQUOT`) is retried with capped
//!   exponential backoff, writing the same batches under the same commit number, while
//!   `/healthz` is 503 ([`stall`]); so the batches of the commit in progress stay in memory
//!   until it is durable (about `flush_bytes` of Arrow data). Any other write error is fatal.

mod stall;

use std::collections::{BTreeMap, HashMap, VecDeque};

use arrow::record_batch::RecordBatch;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::Xxh3;

use crate::agent::kube::StreamPos;
use crate::agent::metrics::Metrics;
use crate::agent::source::{SourceId, SourceKind, SourceMsg};
use crate::lake::batch::{BATCH_BYTES, EventsBuilder, SourceInfo};
use crate::lake::compact::{Compactor, Job};
use crate::lake::manifest::{Commit, LakeError, Manifest, SourceProgress, StreamProgress};
use crate::lake::writer::{PartSet, WriterConfig};
use crate::parse::catalogue::Catalogue;
use crate::parse::prefix::starts_record;
use crate::parse::reader::{AtEof, ReaderConfig, RecordReader};
use crate::parse::time::{Zone, utc_date};
use crate::parse::{KIND_UNPARSED, Parser};
use crate::record::Record;

const TICK: Duration = Duration::from_millis(10);

/// Something in the process that wants every record as it is parsed (Datadog metrics, the
/// idle culler). Called on the pipeline thread: keep it cheap, never block.
pub trait Observer: Send {
    fn on_record(&mut self, rec: &Record<'_>, src: &SourceInfo, read_at: Instant);
    /// Called about every 10 ms, and once more at shutdown.
    fn on_tick(&mut self, _now: Instant) {}
    /// Called once when the pipeline stops, after the last `on_tick` (final flush).
    fn on_shutdown(&mut self) {}
}

#[derive(Clone)]
pub struct PipelineConfig {
    pub hub: String,
    pub zone: Zone,
    pub catalogue: Arc<Catalogue>,
    pub reader: ReaderConfig,
    pub writer: WriterConfig,
    pub flush_interval: Duration,
    pub flush_bytes: u64,
    pub record_hold: Duration,
    /// Rows per Arrow batch streamed into the open Parquet parts.
    pub batch_rows: usize,
    /// Merge a partition's small parts once it has this many (0: never).
    pub compact_min_files: usize,
    /// `[lake.retention]`, applied at start and then hourly.
    pub retention: crate::lake::retention::Retention,
}

/// How often retention runs in the agent.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

struct Src {
    kind: SourceKind,
    info: Arc<SourceInfo>,
    parser: Parser,
    /// Complete lines not yet emitted as records, starting at `pending_start`.
    pending: Vec<u8>,
    pending_start: u64,
    last_data: Instant,
    read_at: Instant,
    /// xxh3 over the source's bytes `[0, emitted)` (files only).
    prefix: Option<Box<Xxh3>>,
    emitted: u64,
    committed: u64,
    /// Streams: (absolute end offset of a line, position after it), for lines not yet emitted.
    stamps: VecDeque<(u64, StreamPos)>,
    emitted_pos: Option<StreamPos>,
    ended: bool,
}

impl Src {
    fn label(&self) -> String {
        match &self.kind {
            SourceKind::File { path, .. } => path.display().to_string(),
            SourceKind::Stdin => "-".into(),
            SourceKind::Stream { key } => key.clone(),
        }
    }
}

/// Where the last record that can be emitted now ends: the start of the last complete line
/// that begins a record (everything before it is complete records).
fn record_cut(p: &[u8]) -> usize {
    let mut search_end = if p.last() == Some(&b'\n') {
        p.len() - 1
    } else {
        p.len()
    };
    loop {
        let start = memchr::memrchr(b'\n', &p[..search_end]).map_or(0, |i| i + 1);
        if start == 0 {
            return 0;
        }
        if starts_record(&p[start..]) {
            return start;
        }
        search_end = start - 1;
    }
}

pub struct Pipeline {
    cfg: PipelineConfig,
    manifest: Manifest,
    metrics: Arc<Metrics>,
    observers: Vec<Box<dyn Observer>>,
    sources: HashMap<SourceId, Src>,
    /// One builder per (UTC day, source): `hub`, `source_file`, `source_fp` are per source.
    builders: BTreeMap<(i64, SourceId), EventsBuilder>,
    parts: Option<PartSet>,
    buffered_bytes: u64,
    buffered_records: u64,
    buffered_unparsed: u64,
    oldest_buffered: Option<Instant>,
    kinds: BTreeMap<&'static str, u64>,
    last_publish: Instant,
    compactor: Option<Compactor>,
    last_retention: Option<Instant>,
    /// Every batch written into `parts` since the last commit (partition, batch), in order:
    /// what a retry after a lack of space writes again.
    retained: Vec<(String, RecordBatch)>,
    /// The staging parts of the commit in progress were thrown away after a failed write:
    /// `retained` must be written again before anything else.
    replay: bool,
}

/// What to merge next, if anything: first the commit-sized parts of a partition, then (once
/// there are enough of them) its merged parts: a two-tier scheme, so a busy day is not
/// rewritten whole every few minutes.
pub fn compaction_job(live: &BTreeMap<String, Vec<String>>, min_files: usize) -> Option<Job> {
    if min_files < 2 {
        return None;
    }
    for (key, parts) in live {
        let (merged, small): (Vec<&String>, Vec<&String>) =
            parts.iter().partition(|p| p.contains("/part-compact-"));
        for tier in [small, merged] {
            if tier.len() >= min_files {
                return Some(Job {
                    table: crate::lake::manifest::key_table(key).to_string(),
                    dt: crate::lake::manifest::key_dt(key).to_string(),
                    parts: tier.into_iter().cloned().collect(),
                });
            }
        }
    }
    None
}

fn day_name(day: i64) -> String {
    utc_date(day * 86_400_000_000)
        .format("%Y-%m-%d")
        .to_string()
}

impl Pipeline {
    pub fn new(
        cfg: PipelineConfig,
        manifest: Manifest,
        metrics: Arc<Metrics>,
        observers: Vec<Box<dyn Observer>>,
    ) -> Pipeline {
        Pipeline {
            cfg,
            manifest,
            metrics,
            observers,
            sources: HashMap::new(),
            builders: BTreeMap::new(),
            parts: None,
            buffered_bytes: 0,
            buffered_records: 0,
            buffered_unparsed: 0,
            oldest_buffered: None,
            kinds: BTreeMap::new(),
            last_publish: Instant::now(),
            compactor: None,
            last_retention: None,
            retained: Vec::new(),
            replay: false,
        }
    }

    /// Run until `shutdown` is set (then drain what is queued, flush, commit) or every sender
    /// is gone and every source has ended.
    pub fn run(mut self, rx: Receiver<SourceMsg>, shutdown: &AtomicBool) -> Result<(), LakeError> {
        // On an object store a merged part cannot replace its inputs atomically for readers
        // that list files (there is no rename), so parts there are never compacted.
        if self.cfg.compact_min_files >= 2 && !self.manifest.is_remote() {
            self.compactor = Some(Compactor::start(
                self.manifest.root().to_path_buf(),
                self.manifest.names(),
                self.cfg.writer,
            ));
        }
        let r = self.run_loop(rx, shutdown);
        if let Some(c) = self.compactor.take() {
            c.stop();
        }
        r
    }

    fn run_loop(
        &mut self,
        rx: Receiver<SourceMsg>,
        shutdown: &AtomicBool,
    ) -> Result<(), LakeError> {
        loop {
            match rx.recv_timeout(TICK) {
                Ok(msg) => self.handle(msg)?,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.finish_all();
                    break;
                }
            }
            if shutdown.load(Ordering::Relaxed) {
                // Stop reading: take what is already queued, then flush and commit.
                while let Ok(msg) = rx.try_recv() {
                    self.handle(msg)?;
                }
                break;
            }
            self.tick(Instant::now(), shutdown)?;
        }
        self.close_unreplayable();
        self.flush(shutdown)?;
        for o in &mut self.observers {
            o.on_tick(Instant::now());
            o.on_shutdown();
        }
        self.publish();
        Ok(())
    }

    fn handle(&mut self, msg: SourceMsg) -> Result<(), LakeError> {
        match msg {
            SourceMsg::Attach {
                id,
                kind,
                start,
                prefix,
            } => {
                let (file, fp) = match &kind {
                    SourceKind::File { identity, path, .. } => {
                        (path.display().to_string(), identity.clone())
                    }
                    SourceKind::Stdin => ("-".into(), "stdin".into()),
                    SourceKind::Stream { key } => (key.clone(), key.clone()),
                };
                let now = Instant::now();
                let src = Src {
                    kind,
                    info: Arc::new(SourceInfo {
                        hub: self.cfg.hub.clone(),
                        file,
                        fp,
                    }),
                    parser: Parser::new(
                        self.cfg.catalogue.clone(),
                        self.cfg.zone.clone(),
                        Some(chrono::Utc::now().date_naive()),
                    ),
                    pending: Vec::new(),
                    pending_start: start,
                    last_data: now,
                    read_at: now,
                    prefix,
                    emitted: start,
                    committed: start,
                    stamps: VecDeque::new(),
                    emitted_pos: None,
                    ended: false,
                };
                self.sources.insert(id, src);
            }
            SourceMsg::Lines {
                id,
                start,
                bytes,
                stamps,
                read_at,
            } => {
                let Some(src) = self.sources.get_mut(&id) else {
                    return Ok(());
                };
                let expected = src.pending_start + src.pending.len() as u64;
                if start != expected {
                    // A source broke its contract; never silently mis-tile the stream.
                    tracing::error!(source = %src.label(), start, expected, "non-contiguous delivery; discarding held bytes");
                    self.metrics.error("non_contiguous");
                    src.pending.clear();
                    src.stamps.clear();
                    src.pending_start = start;
                    src.emitted = src.emitted.max(start);
                }
                for (end, pos) in stamps {
                    src.stamps.push_back((start + end as u64, pos));
                }
                src.pending.extend_from_slice(&bytes);
                src.last_data = Instant::now();
                src.read_at = read_at;
                let cut = if src.pending.len() > self.cfg.reader.max_record_bytes {
                    src.pending.len()
                } else {
                    record_cut(&src.pending)
                };
                if cut > 0 {
                    self.emit(id, cut)?;
                }
            }
            SourceMsg::Moved { id, path, file_id } => {
                if let Some(src) = self.sources.get_mut(&id)
                    && let SourceKind::File {
                        path: p,
                        file_id: f,
                        ..
                    } = &mut src.kind
                {
                    *p = path;
                    *f = file_id;
                }
            }
            SourceMsg::End { id } => {
                if let Some(src) = self.sources.get_mut(&id) {
                    src.ended = true;
                    let n = src.pending.len();
                    if n > 0 {
                        self.emit(id, n)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Emit the first `upto` pending bytes of a source as records.
    fn emit(&mut self, id: SourceId, upto: usize) -> Result<(), LakeError> {
        let Some(src) = self.sources.get_mut(&id) else {
            return Ok(());
        };
        let (builders, observers, kinds) =
            (&mut self.builders, &mut self.observers, &mut self.kinds);
        let (mut records, mut unparsed) = (0u64, 0u64);
        let mut newest = None;
        let mut full_days: Vec<i64> = Vec::new();
        let (lines0, trunc0) = (src.parser.stats.lines, src.parser.stats.truncated);
        {
            let Src {
                pending,
                pending_start,
                parser,
                info,
                read_at,
                ..
            } = src;
            let bytes = &pending[..upto];
            let mut reader = RecordReader::new(bytes, *pending_start, self.cfg.reader);
            let default_ts = chrono::Utc::now().timestamp_micros();
            let batch_rows = self.cfg.batch_rows;
            let read_at = *read_at;
            reader
                .run(AtEof::Finish, |raw| {
                    parser.parse(&raw, |rec| {
                        let ts = rec.ts.or(rec.ts_hint).unwrap_or(default_ts);
                        let day = ts.div_euclid(86_400_000_000);
                        let b = builders
                            .entry((day, id))
                            .or_insert_with(|| EventsBuilder::new(info.clone()));
                        b.append(rec);
                        if b.full(batch_rows, BATCH_BYTES) {
                            full_days.push(day);
                        }
                        *kinds.entry(rec.kind).or_default() += 1;
                        unparsed += (rec.kind == KIND_UNPARSED) as u64;
                        if let Some(t) = rec.ts {
                            newest = Some(newest.map_or(t, |n: i64| n.max(t)));
                        }
                        for o in observers.iter_mut() {
                            o.on_record(rec, info, read_at);
                        }
                    });
                    records += 1;
                })
                .map_err(|e| LakeError::Io {
                    path: PathBuf::from(&info.file),
                    source: e,
                })?;
        }
        if let Some(p) = &mut src.prefix {
            p.update(&src.pending[..upto]);
        }
        src.pending_start += upto as u64;
        src.emitted = src.pending_start;
        while let Some(&(end, pos)) = src.stamps.front() {
            if end > src.emitted {
                break;
            }
            src.emitted_pos = Some(pos);
            src.stamps.pop_front();
        }
        src.pending.drain(..upto);
        let stats = &src.parser.stats;
        self.metrics
            .lines
            .fetch_add(stats.lines - lines0, Ordering::Relaxed);
        self.metrics
            .truncated
            .fetch_add(stats.truncated - trunc0, Ordering::Relaxed);
        if let Some(t) = newest
            && let Ok(mut m) = self.metrics.newest.lock()
        {
            let e = m.entry(src.label()).or_insert(t);
            *e = (*e).max(t);
        }
        self.metrics.records.fetch_add(records, Ordering::Relaxed);
        self.metrics.unparsed.fetch_add(unparsed, Ordering::Relaxed);
        self.buffered_bytes += upto as u64;
        self.buffered_records += records;
        self.buffered_unparsed += unparsed;
        self.oldest_buffered.get_or_insert_with(Instant::now);
        for day in full_days {
            self.spill_or_defer((day, id))?;
        }
        Ok(())
    }

    /// Stream a full builder into the open Parquet parts (staging; not visible until commit).
    fn spill(&mut self, key: (i64, SourceId)) -> Result<(), LakeError> {
        let day = key.0;
        let Some(b) = self.builders.get_mut(&key) else {
            return Ok(());
        };
        if b.is_empty() {
            return Ok(());
        }
        let batch = b.finish()?;
        let dt = day_name(day);
        self.retained.push((dt.clone(), batch.clone()));
        if self.replay {
            // Written with the rest of `retained` at the next attempt.
            return Ok(());
        }
        let seq = self.manifest.next_seq();
        let parts = self.parts.get_or_insert_with(|| {
            PartSet::new(
                self.manifest.root().to_path_buf(),
                self.manifest.names(),
                seq,
                &self.cfg.writer,
            )
        });
        parts.write(&dt, &batch)
    }

    fn tick(&mut self, now: Instant, shutdown: &AtomicBool) -> Result<(), LakeError> {
        let hold = self.cfg.record_hold;
        let quiet: Vec<SourceId> = self
            .sources
            .iter()
            .filter(|(_, s)| !s.pending.is_empty() && now.duration_since(s.last_data) >= hold)
            .map(|(id, _)| *id)
            .collect();
        for id in quiet {
            let n = self.sources.get(&id).map_or(0, |s| s.pending.len());
            self.emit(id, n)?;
        }
        for o in &mut self.observers {
            o.on_tick(now);
        }
        let due = self
            .oldest_buffered
            .is_some_and(|t| now.duration_since(t) >= self.cfg.flush_interval);
        if due || self.buffered_bytes >= self.cfg.flush_bytes || self.replay {
            self.flush(shutdown)?;
        }
        if now.duration_since(self.last_publish) >= Duration::from_millis(100) {
            self.publish();
        }
        self.retention(now, shutdown)?;
        self.compaction()
    }

    fn retention(&mut self, now: Instant, shutdown: &AtomicBool) -> Result<(), LakeError> {
        if self.cfg.retention.is_off()
            || self
                .last_retention
                .is_some_and(|t| now.duration_since(t) < RETENTION_EVERY)
        {
            return Ok(());
        }
        self.last_retention = Some(now);
        // Nothing buffered may land in a partition about to go: commit it first.
        self.flush(shutdown)?;
        let today = chrono::Utc::now().date_naive();
        let dropped =
            crate::lake::retention::apply(&mut self.manifest, &self.cfg.retention, today)?;
        self.metrics
            .retention_dropped
            .fetch_add(dropped.partitions.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Swap in a finished merge; start the next one.
    fn compaction(&mut self) -> Result<(), LakeError> {
        let Some(c) = &mut self.compactor else {
            return Ok(());
        };
        match c.poll() {
            Some(Ok(m)) => {
                let rows = m.entry.rows;
                let n = m.job.parts.len();
                let seq = self.manifest.commit_compaction(m.job.parts, m.entry)?;
                self.metrics.compactions.fetch_add(1, Ordering::Relaxed);
                tracing::info!(dt = %m.job.dt, parts = n, rows, seq, "compacted partition");
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "compaction failed; will retry later");
                self.metrics.error("compaction");
            }
            None => {}
        }
        if !c.busy()
            && let Some(job) =
                compaction_job(self.manifest.live_parts(), self.cfg.compact_min_files)
        {
            c.submit(job);
        }
        Ok(())
    }

    /// Every sender is gone: close every open record.
    fn finish_all(&mut self) {
        let ids: Vec<SourceId> = self.sources.keys().copied().collect();
        for id in ids {
            if let Some(s) = self.sources.get_mut(&id) {
                s.ended = true;
            }
        }
        self.close_unreplayable_or_all(true);
    }

    /// At shutdown, stdin's held bytes cannot be read again: emit them. Files and streams keep
    /// theirs uncommitted; the next run re-reads them from the checkpoint.
    fn close_unreplayable(&mut self) {
        self.close_unreplayable_or_all(false);
    }

    fn close_unreplayable_or_all(&mut self, all: bool) {
        let ids: Vec<SourceId> = self
            .sources
            .iter()
            .filter(|(_, s)| !s.pending.is_empty() && (all || s.kind == SourceKind::Stdin))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let n = self.sources.get(&id).map_or(0, |s| s.pending.len());
            if let Err(e) = self.emit(id, n) {
                tracing::error!(error = %e, "could not close a held record at shutdown");
            }
        }
    }

    /// One attempt of [`Self::flush`].
    fn try_flush(&mut self) -> Result<(), LakeError> {
        if self.replay {
            self.rewrite_retained()?;
        }
        let keys: Vec<(i64, SourceId)> = self.builders.keys().copied().collect();
        for key in keys {
            self.spill(key)?;
        }
        // Builders of sources that are gone are dropped; the others are kept (pre-sized).
        let live: std::collections::HashSet<SourceId> = self.sources.keys().copied().collect();
        self.builders.retain(|(_, id), _| live.contains(id));
        let mut sources = Vec::new();
        let mut streams = Vec::new();
        for src in self.sources.values() {
            if src.emitted <= src.committed {
                continue;
            }
            match &src.kind {
                SourceKind::File {
                    identity,
                    head_len,
                    path,
                    file_id,
                } => sources.push(SourceProgress {
                    fp: identity.clone(),
                    head_len: *head_len,
                    path: path.display().to_string(),
                    from: src.committed,
                    to: src.emitted,
                    prefix_hash: format!("{:016x}", src.prefix.as_ref().map_or(0, |p| p.digest())),
                    marks: Vec::new(),
                    file_id: Some(*file_id),
                }),
                SourceKind::Stream { key } => {
                    if let Some(pos) = src.emitted_pos {
                        streams.push(StreamProgress {
                            stream: key.clone(),
                            pos,
                        });
                    }
                }
                SourceKind::Stdin => {}
            }
        }
        let parts = match self.parts.take() {
            Some(p) => p.finish()?,
            None => Vec::new(),
        };
        if parts.is_empty() && sources.is_empty() && streams.is_empty() {
            self.retained.clear();
            self.reset_buffer();
            return Ok(());
        }
        sources.sort_by(|a, b| (&a.fp, a.to).cmp(&(&b.fp, b.to)));
        let rows: u64 = parts
            .iter()
            .filter(|p| p.path.starts_with(crate::lake::schema::EVENTS))
            .map(|p| p.rows)
            .sum();
        let n_parts = parts.len() as u64;
        let commit = Commit {
            version: 1,
            seq: self.manifest.next_seq(),
            created: chrono::Utc::now().to_rfc3339(),
            table: crate::lake::schema::EVENTS.into(),
            source: None,
            sources,
            streams,
            replaces: Vec::new(),
            parts,
            records: self.buffered_records,
            unparsed: self.buffered_unparsed,
        };
        if let Err(e) = self.manifest.commit(&commit) {
            self.metrics.error("lake_commit");
            return Err(e);
        }
        self.retained.clear();
        for src in self.sources.values_mut() {
            src.committed = src.emitted;
        }
        self.sources
            .retain(|_, s| !(s.ended && s.pending.is_empty()));
        let m = &self.metrics;
        m.commits.fetch_add(1, Ordering::Relaxed);
        m.parts_published.fetch_add(n_parts, Ordering::Relaxed);
        m.rows_published.fetch_add(rows, Ordering::Relaxed);
        m.last_commit_unix
            .store(chrono::Utc::now().timestamp() as u64, Ordering::Relaxed);
        tracing::debug!(seq = commit.seq, rows, parts = n_parts, "committed");
        self.reset_buffer();
        Ok(())
    }

    fn reset_buffer(&mut self) {
        self.buffered_bytes = 0;
        self.buffered_records = 0;
        self.buffered_unparsed = 0;
        self.oldest_buffered = None;
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        if let Ok(mut k) = self.metrics.kinds.lock() {
            k.clone_from(&self.kinds);
        }
        self.metrics
            .pending_records
            .store(self.buffered_records, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::record_cut;

    #[test]
    fn cut_is_at_the_last_record_start() {
        let a = b"[I 2026-11-28 10:00:00.000 JupyterHub app:1] a\n";
        let tb = b"    Traceback line\n";
        let mut p = Vec::new();
        p.extend_from_slice(a);
        assert_eq!(record_cut(&p), 0);
        p.extend_from_slice(tb);
        assert_eq!(record_cut(&p), 0);
        p.extend_from_slice(a);
        assert_eq!(record_cut(&p), a.len() + tb.len());
        p.extend_from_slice(b"plain\n");
        assert_eq!(record_cut(&p), a.len() + tb.len());
    }
}
