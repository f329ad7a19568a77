//! A checkpoint position in a Kubernetes pod-log stream.

use serde::{Deserialize, Serialize};

/// Position in a pod-log stream: the kubelet timestamp (ns since the epoch, UTC) of the last
/// line, and how many lines so far carried exactly that timestamp (two lines can share one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamPos {
    pub ts_nanos: i64,
    pub same_ts: u32,
}
