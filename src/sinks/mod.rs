//! Where parsed records go: the lake (Parquet, committed with the checkpoints) and Datadog
//! (metrics, events, logs).

pub mod datadog;
pub mod lake;
