//! Where log lines come from: files (with rotation), stdin, Kubernetes pod logs; and the
//! Kubernetes pods/events watches that record the `pods` side table. Every source sends
//! [`crate::stream::SourceMsg`]s into the pipeline's bounded channel.

mod error;
pub mod files;
pub mod kube;
pub mod stdin;

pub use error::SourceError;
