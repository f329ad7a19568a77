//! Compaction: a partition's many small parts (one per commit, every `flush_interval`) merged
//! into one, without a reader ever seeing a partial or duplicated partition.
//!
//! The merge runs on its own thread ([`Compactor`]): it reads the parts named by a job, in
//! commit order (so per-source order is kept), and writes one part into staging. The swap is
//! done by the lake's single writer (see [`super::manifest::Manifest::commit_compaction`]):
//! a commit naming the replaced parts is made durable, then a complete new partition
//! directory (the merged part, plus hard links to any part committed since the job started) is
//! exchanged with the live one in one `renameat2(RENAME_EXCHANGE)`. A directory-listing reader
//! (DuckDB, pyarrow, Spark, DataFusion) lists either the old directory or the new one, never a
//! mix. A query that listed the old directory and opens a part after the swap gets "file not
//! found" (retry it); it never gets a wrong answer.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};

use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::derived;
use super::manifest::{LakeError, PartEntry, io_err};
use super::tables::events as schema;
use super::writer::{WriterConfig, writer_properties};

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// `events`, or a table derived from it (`lifecycle`, `activity`).
    pub table: String,
    /// Partition value, `YYYY-MM-DD`.
    pub dt: String,
    /// Published parts to merge, relative to the lake root, in commit order.
    pub parts: Vec<String>,
}

#[derive(Debug)]
pub struct Merged {
    pub job: Job,
    /// The merged part, in staging, durable; `path` is where it will be published.
    pub entry: PartEntry,
}

/// Merge `job.parts` into one part in staging.
pub fn merge(
    root: &Path,
    names: &super::manifest::Names,
    job: Job,
    cfg: &WriterConfig,
) -> Result<Merged, LakeError> {
    let tag = xxhash_rust::xxh3::xxh3_64(job.parts.join("\n").as_bytes());
    let stem = format!("compact-{tag:016x}");
    let name = format!("{stem}.parquet");
    let staging_rel = names.staging_rel(&stem);
    let staging = root.join(&staging_rel);
    let file = File::create(&staging).map_err(io_err(&staging))?;
    let activity = job.table == derived::ACTIVITY;
    let file_schema = if activity {
        super::heartbeat::activity_schema()
    } else {
        schema::stored()
    };
    let mut w = ArrowWriter::try_new(file, file_schema, Some(writer_properties(cfg)))?;
    let mut rows = 0u64;
    // `activity` is regrouped to one row per user; the others are concatenated.
    let mut users = super::activity::Activity::default();
    for rel in &job.parts {
        let p = root.join(rel);
        let f = File::open(&p).map_err(io_err(&p))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(f)?
            .with_batch_size(64 * 1024)
            .build()?;
        for b in reader {
            let b = b?;
            if activity {
                users.fold_batch(&b)?;
            } else {
                rows += b.num_rows() as u64;
                w.write(&b)?;
            }
        }
    }
    if activity {
        let b = users.to_batch()?;
        rows = b.num_rows() as u64;
        w.write(&b)?;
    }
    let file = w.into_inner()?;
    file.sync_all().map_err(io_err(&staging))?;
    let bytes = file.metadata().map_err(io_err(&staging))?.len();
    let entry = PartEntry {
        path: names.part_rel(&job.table, &job.dt, &name),
        staging: staging_rel,
        rows,
        bytes,
    };
    Ok(Merged { job, entry })
}

/// The merge thread: one job at a time.
pub struct Compactor {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Result<Merged, LakeError>>,
    busy: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Compactor {
    pub fn start(root: PathBuf, names: super::manifest::Names, cfg: WriterConfig) -> Compactor {
        let (jtx, jrx) = sync_channel::<Job>(1);
        let (rtx, rrx) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("hubpulse-compact".into())
            .spawn(move || {
                for job in jrx {
                    if rtx.send(merge(&root, &names, job, &cfg)).is_err() {
                        return;
                    }
                }
            })
            .ok();
        Compactor {
            jobs: Some(jtx),
            results: rrx,
            busy: false,
            thread,
        }
    }

    pub fn busy(&self) -> bool {
        self.busy
    }

    pub fn submit(&mut self, job: Job) {
        if let Some(tx) = &self.jobs
            && tx.send(job).is_ok()
        {
            self.busy = true;
        }
    }

    /// A finished merge, if one is ready.
    pub fn poll(&mut self) -> Option<Result<Merged, LakeError>> {
        match self.results.try_recv() {
            Ok(r) => {
                self.busy = false;
                Some(r)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                self.busy = false;
                None
            }
        }
    }

    /// Stop without waiting for a merge in progress: its staging file, which no commit names,
    /// is removed by the next recovery.
    pub fn stop(mut self) {
        self.jobs = None;
        drop(self.thread.take());
    }
}
