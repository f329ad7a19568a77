//! The decisions of the pod-log source, as pure functions: which pod to follow, whether a
//! stream that ended is reconnected, which container is read, how long to back off.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::backoff::{Jitter, Policy};

/// What the source needs to know about a pod, taken from the API's `Pod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub uid: String,
    /// `metadata.creationTimestamp`, seconds since the epoch (the API's precision).
    pub created_secs: i64,
    /// `status.phase`: `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown` (empty if unset).
    pub phase: String,
    /// `metadata.deletionTimestamp` is set: the pod is terminating.
    pub deleting: bool,
    /// `spec.containers[*].name`, in order.
    pub containers: Vec<String>,
}

impl PodInfo {
    pub fn from_pod(pod: &Pod) -> PodInfo {
        let meta = &pod.metadata;
        PodInfo {
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            created_secs: meta
                .creation_timestamp
                .as_ref()
                .map_or(0, |t| t.0.as_second()),
            phase: pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
            containers: pod
                .spec
                .as_ref()
                .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default(),
        }
    }

    fn is_terminal(&self) -> bool {
        self.phase == "Succeeded" || self.phase == "Failed"
    }
}

/// The pod to attach to among those matching a selector: the `Running` ones that are not
/// terminating, and of those the newest by creation timestamp (ties: the greatest name, so the
/// choice does not depend on list order).
///
/// Newest, because when a Deployment replaces the hub the new pod is the one that will keep
/// logging; the old one's stream, if already followed, is read to its end anyway.
pub fn choose_pod<'a>(pods: impl IntoIterator<Item = &'a PodInfo>) -> Option<&'a PodInfo> {
    pods.into_iter()
        .filter(|p| p.phase == "Running" && !p.deleting)
        .max_by(|a, b| (a.created_secs, &a.name).cmp(&(b.created_secs, &b.name)))
}

/// The container to read in `pod`: `wanted` if the pod has it, else (no `wanted`) the pod's
/// first container. `None` if `wanted` is not in the pod or the pod lists no containers.
pub fn container_for<'a>(pod: &'a PodInfo, wanted: Option<&str>) -> Option<&'a str> {
    match wanted {
        Some(w) => pod.containers.iter().map(String::as_str).find(|c| *c == w),
        None => pod.containers.first().map(String::as_str),
    }
}

/// How a log connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The body ended normally: the container stopped, or the server closed an idle stream.
    Clean,
    /// The request or the body failed (network, API server, container not started yet).
    Failed,
}

/// What to do with a stream whose connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Reconnect,
    /// The stream is complete: its pod is gone, terminating or finished.
    Done,
}

/// Reconnect while the pod still exists (`pod`: its current state in the watch, `None` when
/// deleted or replaced by a pod of the same name but another uid), except after a clean end
/// when the pod is terminating or finished: then the log really is complete. After a failure
/// the rest of a terminating pod's log is still worth fetching.
pub fn after_stream_end(end: StreamEnd, pod: Option<&PodInfo>) -> Next {
    match (end, pod) {
        (_, None) => Next::Done,
        (StreamEnd::Clean, Some(p)) if p.deleting || p.is_terminal() => Next::Done,
        _ => Next::Reconnect,
    }
}

/// First delay before a reconnect.
pub const BACKOFF_BASE: Duration = Duration::from_millis(200);
/// Longest delay between reconnects.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);

/// The waits between reconnects: doubling from [`BACKOFF_BASE`] up to [`BACKOFF_CAP`], with
/// "equal jitter" (the upper half drawn), so many agents restarting together do not reconnect
/// in lockstep while each still waits at least half the nominal delay.
pub const BACKOFF: Policy = Policy::doubling(BACKOFF_BASE, BACKOFF_CAP, Jitter::Equal);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pod(name: &str, created_secs: i64, phase: &str, deleting: bool) -> PodInfo {
        PodInfo {
            name: name.into(),
            uid: format!("uid-{name}"),
            created_secs,
            phase: phase.into(),
            deleting,
            containers: vec!["hub".into(), "sidecar".into()],
        }
    }

    #[test]
    fn choice_is_the_newest_running_pod_not_terminating() {
        let pods = [
            pod("hub-old", 100, "Running", false),
            pod("hub-new", 200, "Running", false),
            pod("hub-newer-pending", 300, "Pending", false),
            pod("hub-newest-terminating", 400, "Running", true),
            pod("hub-failed", 500, "Failed", false),
        ];
        assert_eq!(choose_pod(&pods).unwrap().name, "hub-new");
        assert_eq!(choose_pod(&pods[2..]), None);
        assert_eq!(choose_pod(&[]), None);
    }

    #[test]
    fn choice_does_not_depend_on_order() {
        let a = pod("hub-a", 100, "Running", false);
        let b = pod("hub-b", 100, "Running", false);
        assert_eq!(choose_pod([&a, &b]).unwrap().name, "hub-b");
        assert_eq!(choose_pod([&b, &a]).unwrap().name, "hub-b");
    }

    #[test]
    fn container_is_the_named_one_or_the_first() {
        let p = pod("hub", 1, "Running", false);
        assert_eq!(container_for(&p, None), Some("hub"));
        assert_eq!(container_for(&p, Some("sidecar")), Some("sidecar"));
        assert_eq!(container_for(&p, Some("chp")), None);
        let empty = PodInfo {
            containers: vec![],
            ..p
        };
        assert_eq!(container_for(&empty, None), None);
    }

    #[test]
    fn streams_reconnect_while_the_pod_lives() {
        let running = pod("hub", 1, "Running", false);
        let terminating = pod("hub", 1, "Running", true);
        let done = pod("hub", 1, "Succeeded", false);
        use {Next::*, StreamEnd::*};
        assert_eq!(after_stream_end(Clean, None), Done);
        assert_eq!(after_stream_end(Failed, None), Done);
        assert_eq!(after_stream_end(Clean, Some(&running)), Reconnect);
        assert_eq!(after_stream_end(Failed, Some(&running)), Reconnect);
        assert_eq!(after_stream_end(Clean, Some(&terminating)), Done);
        assert_eq!(after_stream_end(Failed, Some(&terminating)), Reconnect);
        assert_eq!(after_stream_end(Clean, Some(&done)), Done);
        let pending = pod("hub", 1, "Pending", false);
        assert_eq!(after_stream_end(Failed, Some(&pending)), Reconnect);
    }

    #[test]
    fn backoff_doubles_then_caps_with_bounded_jitter() {
        let ms = |a, j| BACKOFF.delay_with(a, j).as_millis();
        assert_eq!([ms(0, 0.0), ms(0, 1.0)], [100, 200]);
        assert_eq!([ms(1, 0.0), ms(1, 1.0)], [200, 400]);
        assert_eq!(ms(3, 0.5), 1200);
        assert_eq!([ms(8, 0.0), ms(8, 1.0)], [15_000, 30_000]);
        assert_eq!([ms(40, 0.0), ms(u32::MAX, 1.0)], [15_000, 30_000]);
        assert_eq!([ms(0, -3.0), ms(0, 7.0)], [100, 200]);
        for a in 0..12 {
            let (d, n) = (BACKOFF.delay(a), BACKOFF.nominal(a));
            assert!(d >= n / 2 && d <= n, "attempt {a}: {d:?} of {n:?}");
        }
    }
}
