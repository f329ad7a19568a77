//! The Parquet usage lake: Hive-partitioned tables under one root directory, published
//! atomically through a manifest so that every reader (DataFusion, DuckDB, pyarrow, Spark,
//! Athena) sees whole commits only, and no source is ever counted twice.
//!
//! * [`tables`]: every table's name and Arrow schema.
//! * [`batch`]: records → Arrow batches.
//! * [`writer`]: batches → zstd Parquet parts in staging.
//! * [`derived`]: the `lifecycle` and `activity` tables written with `events`, for the reports.
//! * [`manifest`]: the commit protocol, crash recovery, and per-source progress.
//! * [`compact`]: merging a partition's small parts, swapped in atomically.
//! * [`migrate`]: a lake of format 1 or 2 converted to format 3 in place (`hubpulse migrate`).
//! * [`retention`]: dropping partitions older than N months, per table.
//! * [`location`]: where the lake lives, parsed once: a directory, or an S3 bucket prefix.
//! * [`store`]: the object-store operations of a lake in a bucket.

pub mod activity;
pub mod activity_rows;
pub mod batch;
pub mod compact;
pub mod derived;
mod error;
pub mod format;
pub mod heartbeat;
pub mod location;
pub mod manifest;
pub mod migrate;
pub mod migrate_activity;
pub mod rebuild;
pub mod retention;
pub mod store;
pub mod tables;
pub mod writer;

pub use error::LakeConfigError;
pub use location::{LakeLocation, S3Url};
pub use manifest::{LakeError, Manifest};
