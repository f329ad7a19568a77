//! Kubernetes pod-log source: follows the hub pod (and optionally the proxy pod) through the
//! API server's log endpoint, re-attaches when the pod is replaced, and resumes after an agent
//! restart from the last committed kubelet timestamp without duplicates.
//!
//! Kept thin on purpose: the decisions (which pods to follow, which lines a resume must skip,
//! how long to back off) are pure functions tested on their own; the calls (list/watch pods,
//! `GET …/log?follow=true&timestamps=true&sinceTime=…`) are pinned in tests by a scripted API
//! server, since no real Kubernetes API server can run here.
//!
//! Interface with the agent pipeline (fixed; the pipeline is written against it):
//! * [`follow`] runs until `shutdown` flips to `true`, sending [`PodLines`] into `tx`.
//! * A stream is one container of one pod, keyed `k8s/<namespace>/<pod>/<container>`.
//! * [`StreamPos`] is what the lake's manifest stores per stream as its checkpoint; `follow`
//!   receives the committed positions at start (`resume`) and must not send any line at or
//!   before them again.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Position in a pod-log stream: the kubelet timestamp (ns since the epoch, UTC) of the last
/// line, and how many lines so far carried exactly that timestamp (two lines can share one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamPos {
    pub ts_nanos: i64,
    pub same_ts: u32,
}

/// A batch of complete log lines from one stream, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct PodLines {
    /// `k8s/<namespace>/<pod>/<container>`.
    pub stream: String,
    /// The lines with the kubelet timestamp removed, each ending in `\n`.
    pub bytes: Vec<u8>,
    /// For each line, in order: its end offset within `bytes`, and the stream position after it.
    pub ends: Vec<(usize, StreamPos)>,
}

/// Which pods to follow.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeSourceConfig {
    pub namespace: String,
    /// Label selector of the hub pod (default `component=hub`).
    pub selector: String,
    /// Also follow the proxy pod (`component=proxy`).
    pub proxy_selector: Option<String>,
    /// Containers to follow (default: the pod's first container).
    pub container: Option<String>,
}

impl Default for KubeSourceConfig {
    fn default() -> Self {
        KubeSourceConfig {
            namespace: "default".into(),
            selector: "component=hub".into(),
            proxy_selector: None,
            container: None,
        }
    }
}

/// Resume positions by stream key, from the lake's manifest.
pub type Resume = HashMap<String, StreamPos>;
