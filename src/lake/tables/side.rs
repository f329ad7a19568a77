//! The side-table writer: a side table (`decisions`, `observations`, `pods`) does not go
//! through the manifest; each write is a whole Parquet part, published atomically.
//!
//! # Guarantees
//! - A part is written under a hidden `.….parquet.tmp` name, `fsync`ed, then renamed into place
//!   (and the directory `fsync`ed); on S3 it is one PUT. Readers (DataFusion lists `*.parquet`
//!   only, DuckDB, pyarrow) see whole parts or nothing.
//! - Names are unique per process and call (time, pid, a process-wide counter), so writers
//!   (the agent, `hubpulse cull --once` next to it) never collide.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use chrono::Utc;
use parquet::arrow::ArrowWriter;

use crate::lake::manifest::io_err;
use crate::lake::store::Remote;
use crate::lake::writer::{WriterConfig, writer_properties};
use crate::lake::{LakeError, LakeLocation};

/// Where a side table (`decisions`, `pods`) of one hub is written: `<lake>/<table>/hub=<hub>/`,
/// in a directory or in an object store (its client opened on first use).
#[derive(Debug, Clone)]
pub struct SideRoot {
    /// `<lake>/<table>/hub=<hub>`.
    dir: LakeLocation,
    /// The store's client, or why it could not be opened (kept: the next part would fail alike).
    remote: Arc<std::sync::OnceLock<Result<Arc<Remote>, Arc<LakeError>>>>,
}

impl SideRoot {
    pub fn new(lake: &LakeLocation, table: &str, hub: &str) -> SideRoot {
        SideRoot {
            dir: lake.join(&format!("{table}/hub={hub}")),
            remote: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Publish `batch` as a new part of partition `dt`. `n` makes the name unique within the
    /// process (with the time and the pid).
    ///
    /// # Errors
    /// I/O, store or encoding errors, with the path.
    pub fn publish(&self, dt: &str, n: u64, batch: &RecordBatch) -> Result<(), LakeError> {
        match &self.dir {
            LakeLocation::Local(d) => publish(&d.join(format!("dt={dt}")), n, batch),
            LakeLocation::S3(url) => {
                let remote = self
                    .remote
                    .get_or_init(|| Remote::open(url).map(Arc::new).map_err(Arc::new))
                    .clone()
                    .map_err(LakeError::Shared)?;
                let body = encode(batch).map_err(|source| LakeError::Encode {
                    at: url.to_string(),
                    source,
                })?;
                // One PUT: the object appears whole or not at all.
                remote
                    .put(&format!("dt={dt}/{}", part_name(n)), body)
                    .map_err(|source| LakeError::Store {
                        url: url.to_string(),
                        source,
                    })
            }
        }
    }
}

/// A part's name: unique per process even when two recorders of one table publish their
/// part number `n` in the same millisecond (a process-wide counter), and across processes
/// (the pid).
fn part_name(n: u64) -> String {
    static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let u = UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "part-{}-{}-{n}-{u}.parquet",
        Utc::now().timestamp_millis(),
        std::process::id()
    )
}

fn encode(batch: &RecordBatch) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let props = writer_properties(&WriterConfig::default());
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    w.write(batch)?;
    w.into_inner()
}

/// Writes `batch` as a new part in `dir` (created if missing): under a hidden temporary name,
/// `fsync`ed, renamed into place, the directory `fsync`ed. `n` makes the name unique within the
/// process (with the time and the pid). Shared by the small side tables (`decisions`, `pods`).
///
/// # Errors
/// I/O or encoding errors, with the path.
pub fn publish(dir: &Path, n: u64, batch: &RecordBatch) -> Result<(), LakeError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let name = part_name(n);
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let encode_err = |source| LakeError::Encode {
        at: tmp.display().to_string(),
        source,
    };
    let props = writer_properties(&WriterConfig::default());
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(encode_err)?;
    w.write(batch).map_err(encode_err)?;
    let file = w.into_inner().map_err(encode_err)?;
    file.sync_all().map_err(io_err(&tmp))?;
    let dst = dir.join(&name);
    fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}
