//! Where parsed records go: the lake (Parquet, committed with the checkpoints), Datadog
//! (metrics, events, logs), and Prometheus (the same derived metrics on `/metrics`). Their
//! public functions fail with [`SinkError`].

pub mod datadog;
mod error;
pub mod lake;
pub mod prometheus;

pub use error::SinkError;
