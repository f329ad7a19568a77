//! The lake sink: the pipeline's records as Arrow batches, streamed into staging Parquet parts
//! and committed through the manifest together with the sources' checkpoints; and the lake's
//! upkeep while the agent runs (retention hourly, merging small parts).
//!
//! # Guarantees
//! * A commit holds the rows of every record before each checkpoint it carries ([`Checkpoints`]
//!   come from the pipeline, which advances them only once the commit is durable): a crash
//!   replays from the last commit and re-creates exactly the rows that were not committed.
//! * Memory is bounded: rows are streamed into staging Parquet as batches fill, and a commit
//!   happens every `flush_bytes`; freshness: at least every `flush_interval` while rows are
//!   buffered.
//! * A lake write that fails for lack of space (`ENOSPC`, `EDQUOT`) is retried with capped
//!   exponential backoff, writing the same batches under the same commit number, while
//!   `/healthz` is 503 ([`stall`]); so the batches of the commit in progress stay in memory
//!   until it is durable (about `flush_bytes` of Arrow data). Any other write error is fatal.

mod stall;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::lake::batch::{BATCH_BYTES, EventsBuilder, Rows, SourceInfo};
use crate::lake::compact::{Compactor, Job};
use crate::lake::manifest::{Commit, LakeError, Manifest, SourceProgress, StreamProgress};
use crate::lake::tables::events::EVENTS;
use crate::lake::writer::{PartSet, WriterConfig};
use crate::parse::record::Record;
use crate::parse::time::utc_date;
use crate::stream::SourceId;
use crate::stream::metrics::Metrics;

/// How often retention runs in the agent.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

#[derive(Clone)]
pub struct LakeSinkConfig {
    pub writer: WriterConfig,
    pub flush_interval: Duration,
    pub flush_bytes: u64,
    /// Rows per Arrow batch streamed into the open Parquet parts.
    pub batch_rows: usize,
    /// Merge a partition's small parts once it has this many (0: never).
    pub compact_min_files: usize,
    /// `[lake.retention]`, applied at start and then hourly.
    pub retention: crate::lake::retention::Retention,
}

/// The sources' progress a commit carries: what the pipeline has emitted beyond the last commit.
#[derive(Debug, Clone, Default)]
pub struct Checkpoints {
    pub sources: Vec<SourceProgress>,
    pub streams: Vec<StreamProgress>,
}

pub struct LakeSink {
    cfg: LakeSinkConfig,
    manifest: Manifest,
    metrics: Arc<Metrics>,
    /// One builder per (UTC day, source): `hub`, `source_file`, `source_fp` are per source.
    builders: BTreeMap<(i64, SourceId), EventsBuilder>,
    parts: Option<PartSet>,
    buffered_bytes: u64,
    buffered_records: u64,
    buffered_unparsed: u64,
    oldest_buffered: Option<Instant>,
    compactor: Option<Compactor>,
    last_retention: Option<Instant>,
    /// Every batch written into `parts` since the last commit (partition, batch), in order:
    /// what a retry after a lack of space writes again.
    retained: Vec<(String, Rows)>,
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

impl LakeSink {
    pub fn new(cfg: LakeSinkConfig, manifest: Manifest, metrics: Arc<Metrics>) -> LakeSink {
        LakeSink {
            cfg,
            manifest,
            metrics,
            builders: BTreeMap::new(),
            parts: None,
            buffered_bytes: 0,
            buffered_records: 0,
            buffered_unparsed: 0,
            oldest_buffered: None,
            compactor: None,
            last_retention: None,
            retained: Vec::new(),
            replay: false,
        }
    }

    /// Start merging small parts in the background (not on an object store: a merged part
    /// cannot replace its inputs atomically for readers that list files, as there is no rename).
    pub fn start(&mut self) {
        if self.cfg.compact_min_files >= 2 && !self.manifest.is_remote() {
            self.compactor = Some(Compactor::start(
                self.manifest.root().to_path_buf(),
                self.manifest.names(),
                self.cfg.writer,
            ));
        }
    }

    pub fn stop(&mut self) {
        if let Some(c) = self.compactor.take() {
            c.stop();
        }
    }

    /// Buffer one record of source `id` for UTC day `day`; true when that day's batch is full
    /// (then [`Self::spill_or_defer`] it).
    #[inline]
    pub fn append(
        &mut self,
        day: i64,
        id: SourceId,
        info: &Arc<SourceInfo>,
        rec: &Record<'_>,
    ) -> bool {
        let b = self
            .builders
            .entry((day, id))
            .or_insert_with(|| EventsBuilder::new(info.clone()));
        b.append(rec);
        b.full(self.cfg.batch_rows, BATCH_BYTES)
    }

    /// Count what an emit added to the commit in progress.
    pub fn buffered(&mut self, bytes: u64, records: u64, unparsed: u64) {
        self.buffered_bytes += bytes;
        self.buffered_records += records;
        self.buffered_unparsed += unparsed;
        self.oldest_buffered.get_or_insert_with(Instant::now);
    }

    pub fn buffered_records(&self) -> u64 {
        self.buffered_records
    }

    /// A commit is due: by age, by size, or to replay a failed write.
    pub fn due(&self, now: Instant) -> bool {
        let old = self
            .oldest_buffered
            .is_some_and(|t| now.duration_since(t) >= self.cfg.flush_interval);
        old || self.buffered_bytes >= self.cfg.flush_bytes || self.replay
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
        parts.write_rows(&dt, batch)
    }

    /// Retention is due (hourly, and at start): the caller commits what it buffered, then
    /// calls [`Self::apply_retention`].
    pub fn retention_due(&mut self, now: Instant) -> bool {
        if self.cfg.retention.is_off()
            || self
                .last_retention
                .is_some_and(|t| now.duration_since(t) < RETENTION_EVERY)
        {
            return false;
        }
        self.last_retention = Some(now);
        true
    }

    pub fn apply_retention(&mut self) -> Result<(), LakeError> {
        let today = chrono::Utc::now().date_naive();
        let dropped =
            crate::lake::retention::apply(&mut self.manifest, &self.cfg.retention, today)?;
        self.metrics
            .retention_dropped
            .fetch_add(dropped.partitions.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Swap in a finished merge; start the next one.
    pub fn compaction(&mut self) -> Result<(), LakeError> {
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

    /// One attempt of [`Self::flush`]: write every buffered row, then commit them with `cp`.
    /// True when a commit was written (the caller then advances its sources' checkpoints).
    fn try_flush(&mut self, cp: &Checkpoints, live: &HashSet<SourceId>) -> Result<bool, LakeError> {
        if self.replay {
            self.rewrite_retained()?;
        }
        let keys: Vec<(i64, SourceId)> = self.builders.keys().copied().collect();
        for key in keys {
            self.spill(key)?;
        }
        // Builders of sources that are gone are dropped; the others are kept (pre-sized).
        self.builders.retain(|(_, id), _| live.contains(id));
        let parts = match self.parts.take() {
            Some(p) => p.finish()?,
            None => Vec::new(),
        };
        if parts.is_empty() && cp.sources.is_empty() && cp.streams.is_empty() {
            self.retained.clear();
            self.reset_buffer();
            return Ok(false);
        }
        let mut sources = cp.sources.clone();
        sources.sort_by(|a, b| (&a.fp, a.to).cmp(&(&b.fp, b.to)));
        let rows: u64 = parts
            .iter()
            .filter(|p| p.path.starts_with(EVENTS))
            .map(|p| p.rows)
            .sum();
        let n_parts = parts.len() as u64;
        let commit = Commit {
            version: 1,
            seq: self.manifest.next_seq(),
            created: chrono::Utc::now().to_rfc3339(),
            table: EVENTS.into(),
            source: None,
            sources,
            streams: cp.streams.clone(),
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
        let m = &self.metrics;
        m.commits.fetch_add(1, Ordering::Relaxed);
        m.parts_published.fetch_add(n_parts, Ordering::Relaxed);
        m.rows_published.fetch_add(rows, Ordering::Relaxed);
        m.last_commit_unix
            .store(chrono::Utc::now().timestamp() as u64, Ordering::Relaxed);
        tracing::debug!(seq = commit.seq, rows, parts = n_parts, "committed");
        self.reset_buffer();
        Ok(true)
    }

    fn reset_buffer(&mut self) {
        self.buffered_bytes = 0;
        self.buffered_records = 0;
        self.buffered_unparsed = 0;
        self.oldest_buffered = None;
    }
}
