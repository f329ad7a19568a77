//! Where parsed records go: the lake (Parquet, committed with the checkpoints) and Datadog
//! (metrics, events, logs). Their public functions fail with [`SinkError`].

pub mod datadog;
mod error;
pub mod lake;

pub use error::SinkError;
