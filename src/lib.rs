//! hubpulse: makes a JupyterHub deployment observable and keeps it cheap.
//!
//! The data path: log bytes → [`parse::reader`] (records) → [`parse::Parser`] ([`record::Record`])
//! → `lake` (Arrow batches → Hive-partitioned Parquet + manifest) → `query` (DataFusion SQL).
//! `main.rs` is a thin CLI over `app`. Without the default `lake` feature only the parser is
//! built (what the fuzz targets link).

pub mod config;
pub mod generate;
pub mod parse;

#[cfg(feature = "lake")]
pub mod agent;
#[cfg(feature = "lake")]
pub mod app;
#[cfg(feature = "lake")]
pub mod backoff;
#[cfg(feature = "lake")]
pub mod cli;
#[cfg(feature = "lake")]
pub mod control;
#[cfg(feature = "lake")]
pub mod hub;
#[cfg(feature = "lake")]
pub mod ingest;
#[cfg(feature = "lake")]
pub mod lake;
#[cfg(feature = "lake")]
pub mod query;
#[cfg(feature = "lake")]
pub mod report;
#[cfg(feature = "lake")]
pub mod sinks;
#[cfg(feature = "lake")]
pub mod sources;
#[cfg(feature = "lake")]
pub mod stream;
#[cfg(feature = "lake")]
pub mod telemetry;
