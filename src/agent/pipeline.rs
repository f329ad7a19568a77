//! Lines → records → observers and the lake sink, with the checkpoint rule.
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
//! * Writing, committing and the lake's upkeep are the lake sink's ([`crate::sinks::lake`]),
//!   including how a lake write that fails for lack of space is waited out.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::Xxh3;

use crate::lake::batch::SourceInfo;
use crate::lake::manifest::StreamPos;
use crate::lake::manifest::{LakeError, Manifest, SourceProgress, StreamProgress};
use crate::parse::catalogue::Catalogue;
use crate::parse::prefix::starts_record;
use crate::parse::reader::{AtEof, ReaderConfig, RecordReader};
use crate::parse::time::Zone;
use crate::parse::{KIND_UNPARSED, Parser};
use crate::sinks::lake::{Checkpoints, LakeSink, LakeSinkConfig};
use crate::stream::metrics::Metrics;
use crate::stream::{Observer, SourceId, SourceKind, SourceMsg};

const TICK: Duration = Duration::from_millis(10);

#[derive(Clone)]
pub struct PipelineConfig {
    pub hub: String,
    pub zone: Zone,
    pub catalogue: Arc<Catalogue>,
    pub reader: ReaderConfig,
    pub record_hold: Duration,
    /// Where the records go: batches, commits, the lake's upkeep.
    pub lake: LakeSinkConfig,
}

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
    lake: LakeSink,
    metrics: Arc<Metrics>,
    observers: Vec<Box<dyn Observer>>,
    sources: HashMap<SourceId, Src>,
    kinds: BTreeMap<&'static str, u64>,
    last_publish: Instant,
}

impl Pipeline {
    pub fn new(
        cfg: PipelineConfig,
        manifest: Manifest,
        metrics: Arc<Metrics>,
        observers: Vec<Box<dyn Observer>>,
    ) -> Pipeline {
        let lake = LakeSink::new(cfg.lake.clone(), manifest, metrics.clone());
        Pipeline {
            cfg,
            lake,
            metrics,
            observers,
            sources: HashMap::new(),
            kinds: BTreeMap::new(),
            last_publish: Instant::now(),
        }
    }

    /// Run until `shutdown` is cancelled (then drain what is queued, flush, commit) or every
    /// sender is gone and every source has ended.
    pub fn run(
        mut self,
        rx: Receiver<SourceMsg>,
        shutdown: &CancellationToken,
    ) -> Result<(), LakeError> {
        self.lake.start();
        let r = self.run_loop(rx, shutdown);
        self.lake.stop();
        r
    }

    fn run_loop(
        &mut self,
        rx: Receiver<SourceMsg>,
        shutdown: &CancellationToken,
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
            if shutdown.is_cancelled() {
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
        let (lake, observers, kinds) = (&mut self.lake, &mut self.observers, &mut self.kinds);
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
            let read_at = *read_at;
            reader
                .run(AtEof::Finish, |raw| {
                    parser.parse(&raw, |rec| {
                        let ts = rec.ts.or(rec.ts_hint).unwrap_or(default_ts);
                        let day = ts.div_euclid(86_400_000_000);
                        if lake.append(day, id, info, rec) {
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
        self.lake.buffered(upto as u64, records, unparsed);
        for day in full_days {
            self.lake.spill_or_defer((day, id))?;
        }
        Ok(())
    }

    fn tick(&mut self, now: Instant, shutdown: &CancellationToken) -> Result<(), LakeError> {
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
        if self.lake.due(now) {
            self.flush(shutdown)?;
        }
        if now.duration_since(self.last_publish) >= Duration::from_millis(100) {
            self.publish();
        }
        if self.lake.retention_due(now) {
            // Nothing buffered may land in a partition about to go: commit it first.
            self.flush(shutdown)?;
            self.lake.apply_retention()?;
        }
        self.lake.compaction()
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

    /// What the sources emitted beyond their last commit: the checkpoints the next commit
    /// carries.
    fn checkpoints(&self) -> Checkpoints {
        let mut cp = Checkpoints::default();
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
                } => cp.sources.push(SourceProgress {
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
                        cp.streams.push(StreamProgress {
                            stream: key.clone(),
                            pos,
                        });
                    }
                }
                SourceKind::Stdin => {}
            }
        }
        cp
    }

    /// Commit what is buffered with the sources' checkpoints; once durable, advance them.
    fn flush(&mut self, shutdown: &CancellationToken) -> Result<(), LakeError> {
        let cp = self.checkpoints();
        let live: HashSet<SourceId> = self.sources.keys().copied().collect();
        if self.lake.flush(&cp, &live, shutdown)? {
            for src in self.sources.values_mut() {
                src.committed = src.emitted;
            }
            self.sources
                .retain(|_, s| !(s.ended && s.pending.is_empty()));
        }
        Ok(())
    }

    fn publish(&mut self) {
        self.last_publish = Instant::now();
        if let Ok(mut k) = self.metrics.kinds.lock() {
            k.clone_from(&self.kinds);
        }
        self.metrics
            .pending_records
            .store(self.lake.buffered_records(), Ordering::Relaxed);
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
