//! Pod enrichment, the pure half: what a single-user pod and its events say about a server, as
//! one row of the lake table `pods` ([`crate::sources::kube::podtable`] watches the pods and writes the rows;
//! events are classified here and watched there, [`crate::sources::kube::podevents`]).
//!
//! What is taken from a pod (Z2JH / KubeSpawner labels and annotations):
//! - `hub.jupyter.org/username` (label; the escaped form, KubeSpawner ≥ 7 also sets the
//!   annotation with the real name, which wins) and `hub.jupyter.org/servername`;
//! - requests and limits summed over the regular containers (`notebook` and sidecars): CPU in
//!   cores, memory in bytes, GPUs (`nvidia.com/gpu`, `amd.com/gpu`);
//! - `spec.nodeName`, `status.phase`, the scheduling condition's reason (`Unschedulable`) and
//!   whether a container was OOM-killed.
//!
//! Quantities follow Kubernetes' grammar (`500m`, `2`, `1.5`, `512Mi`, `1G`, `1e3`); one that
//! does not parse is `None`, never a guess.

pub use crate::config::quantity::quantity;
use k8s_openapi::api::core::v1::{Container, Event, Pod};

/// GPU resource names summed as `gpus`.
pub const GPU_RESOURCES: [&str; 2] = ["nvidia.com/gpu", "amd.com/gpu"];

/// One single-user pod as the `pods` table would hold it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodRow {
    pub namespace: String,
    pub pod: String,
    pub user: Option<String>,
    /// `""` for the default server.
    pub server: Option<String>,
    pub node: Option<String>,
    pub phase: Option<String>,
    pub cpu_request: Option<f64>,
    pub cpu_limit: Option<f64>,
    pub memory_request: Option<f64>,
    pub memory_limit: Option<f64>,
    pub gpus: Option<f64>,
    /// The `PodScheduled=False` condition's reason (`Unschedulable`).
    pub unschedulable: Option<String>,
    /// A container's current or last termination was `OOMKilled`.
    pub oom_killed: bool,
    /// The node's `node.kubernetes.io/instance-type` ([`crate::sources::kube::nodes`]; not from the pod).
    pub instance_type: Option<String>,
    /// The node's `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// Set only on rows of an event about the pod ([`crate::sources::kube::podevents`]).
    pub event: Option<crate::sources::kube::podevents::EventNote>,
}

/// The sum of one resource over the containers' requests (or limits); `None` when no container
/// sets it or one value does not parse.
fn total(containers: &[Container], limits: bool, name: &str) -> Option<f64> {
    let mut out = None;
    for c in containers {
        let Some(r) = &c.resources else { continue };
        let m = if limits { &r.limits } else { &r.requests };
        if let Some(q) = m.as_ref().and_then(|m| m.get(name)) {
            *out.get_or_insert(0.0) += quantity(&q.0)?;
        }
    }
    out
}

/// The row of a pod.
pub fn pod_row(pod: &Pod) -> PodRow {
    let meta = &pod.metadata;
    let label = |k: &str| meta.labels.as_ref().and_then(|l| l.get(k)).cloned();
    let annotation = |k: &str| meta.annotations.as_ref().and_then(|a| a.get(k)).cloned();
    let containers = pod.spec.as_ref().map_or(&[][..], |s| &s.containers[..]);
    // GPUs: requests, else limits (extended resources may set only the limit)
    let gpus = GPU_RESOURCES
        .iter()
        .filter_map(|g| total(containers, false, g).or_else(|| total(containers, true, g)))
        .reduce(|a, b| a + b);
    let status = pod.status.as_ref();
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
        .and_then(|c| c.reason.clone());
    let oom_killed = status
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                let now = c.state.as_ref().and_then(|s| s.terminated.as_ref());
                let last = c.last_state.as_ref().and_then(|s| s.terminated.as_ref());
                [now, last]
                    .into_iter()
                    .flatten()
                    .any(|t| t.reason.as_deref() == Some("OOMKilled"))
            })
        });
    PodRow {
        namespace: meta.namespace.clone().unwrap_or_default(),
        pod: meta.name.clone().unwrap_or_default(),
        user: annotation("hub.jupyter.org/username").or_else(|| label("hub.jupyter.org/username")),
        server: annotation("hub.jupyter.org/servername")
            .or_else(|| label("hub.jupyter.org/servername")),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        phase: status.and_then(|s| s.phase.clone()),
        cpu_request: total(containers, false, "cpu"),
        cpu_limit: total(containers, true, "cpu"),
        memory_request: total(containers, false, "memory"),
        memory_limit: total(containers, true, "memory"),
        gpus,
        unschedulable,
        oom_killed,
        instance_type: None,
        zone: None,
        event: None,
    }
}

/// What an event about a pod means for the `pods` table and the "time pending by reason"
/// metric; `None` for events that do not matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodEvent {
    FailedScheduling,
    Preempted,
    OomKilled,
    /// The scheduler placed the pod (ends a pending interval).
    Scheduled,
}

impl PodEvent {
    pub fn label(self) -> &'static str {
        match self {
            PodEvent::FailedScheduling => "failed_scheduling",
            PodEvent::Preempted => "preempted",
            PodEvent::OomKilled => "oom_killed",
            PodEvent::Scheduled => "scheduled",
        }
    }
}

/// Classifies an event about a pod by its `reason`; events about other objects are `None` (the
/// kernel's `OOMKilling` is reported on the Node: a pod's OOM kill is read from its container
/// status, [`PodRow::oom_killed`]).
pub fn classify(e: &Event) -> Option<PodEvent> {
    if e.involved_object.kind.as_deref() != Some("Pod") {
        return None;
    }
    match e.reason.as_deref()? {
        "FailedScheduling" => Some(PodEvent::FailedScheduling),
        "Preempted" | "Preempting" => Some(PodEvent::Preempted),
        "OOMKilled" | "OOMKilling" => Some(PodEvent::OomKilled),
        "Scheduled" => Some(PodEvent::Scheduled),
        _ => None,
    }
}

#[cfg(test)]
#[path = "enrich_tests.rs"]
mod tests;
