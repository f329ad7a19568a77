//! Where parsed records go besides the lake: Datadog (metrics, events, logs).

pub mod datadog;
