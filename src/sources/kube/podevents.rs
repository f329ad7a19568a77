//! Pod events (issue 7): `Preempted`, `FailedScheduling` and `OOMKilled` events about pods, from a
//! list + watch of the namespace's `v1` Events (`fieldSelector=involvedObject.kind=Pod`), next to
//! the pods watch ([`crate::sources::kube::podtable`]).
//!
//! The pure half is here: [`note`] turns an Event into an [`EventNote`] (what, when, the
//! message), [`EventDedup`] tells a new occurrence from a resync or an update that changed
//! nothing, and [`EventStats`] counts them for `/metrics` as
//! `hubpulse_pod_events_total{reason, pods}`: `reason` is one of `preempted`,
//! `failed_scheduling`, `oom_killed`; `pods` is `user` (a pod of the pods watch) or `other`
//! (e.g. a placeholder preempted by a user pod). No pod, user or node name is a label.
//!
//! # Guarantees
//! - An event is counted once per occurrence: a new event, or a higher `count` (or
//!   `series.count`) of one already seen; relists and updates that do not raise the count are
//!   not counted again within one run. After a restart, events still kept by the API server
//!   (one hour by default) are seen and counted again.
//! - OOM kills are counted from the pods themselves (a container's termination reason becoming
//!   `OOMKilled`, [`crate::sources::kube::enrich::PodRow::oom_killed`]): the kubelet reports them in the pod
//!   status, not as events about the pod. An `OOMKilled` event about a pod, when a component
//!   emits one, is a row of the table but not counted twice.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Event;

use crate::sources::kube::enrich::{PodEvent, classify};

/// An event about a pod, as the `pods` table records it (`change = 'event'`).
#[derive(Debug, Clone, PartialEq)]
pub struct EventNote {
    pub event: PodEvent,
    /// The event's message (the scheduler's "Preempted by jhub/jupyter-bob on node n1").
    pub message: Option<String>,
    /// When it last happened (`lastTimestamp`, `series.lastObservedTime`, `eventTime`, else
    /// the event object's creation).
    pub at: Option<DateTime<Utc>>,
}

/// The pod an event is about, and what it says; `None` for events that are not about a pod or
/// not of a kind recorded here (`Scheduled`, `Pulled`, …).
pub fn note(e: &Event) -> Option<((String, String), EventNote)> {
    let kind = classify(e)?;
    if kind == PodEvent::Scheduled {
        return None;
    }
    let o = &e.involved_object;
    let namespace = o
        .namespace
        .clone()
        .or_else(|| e.metadata.namespace.clone())?;
    let pod = o.name.clone()?;
    let micros = |t: i64| DateTime::from_timestamp_micros(t);
    let at = e
        .last_timestamp
        .as_ref()
        .map(|t| t.0.as_microsecond())
        .or_else(|| {
            e.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_ref())
                .map(|t| t.0.as_microsecond())
        })
        .or_else(|| e.event_time.as_ref().map(|t| t.0.as_microsecond()))
        .or_else(|| {
            e.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_microsecond())
        })
        .and_then(micros);
    Some((
        (namespace, pod),
        EventNote {
            event: kind,
            message: e.message.clone(),
            at,
        },
    ))
}

/// How many times the event happened so far (`series.count`, else `count`, else 1).
pub fn occurrences(e: &Event) -> i32 {
    e.series
        .as_ref()
        .and_then(|s| s.count)
        .or(e.count)
        .unwrap_or(1)
        .max(1)
}

/// The most events remembered; beyond it the memory is cleared (an event seen again after that
/// is counted again: Events expire after an hour, so this needs a storm of events).
pub const DEDUP_CAP: usize = 50_000;

/// Events already seen, by uid (else namespace/name), with their count. Pure.
#[derive(Debug, Default)]
pub struct EventDedup {
    seen: HashMap<String, i32>,
}

impl EventDedup {
    /// How many new occurrences `e` shows (0: nothing new).
    pub fn fresh(&mut self, e: &Event) -> u32 {
        let key = e.metadata.uid.clone().unwrap_or_else(|| {
            format!(
                "{}/{}",
                e.metadata.namespace.as_deref().unwrap_or_default(),
                e.metadata.name.as_deref().unwrap_or_default()
            )
        });
        let n = occurrences(e);
        if self.seen.len() >= DEDUP_CAP && !self.seen.contains_key(&key) {
            self.seen.clear();
        }
        let before = self.seen.insert(key.clone(), n).unwrap_or(0);
        if n < before {
            // a count never goes down: keep the highest
            self.seen.insert(key, before);
        }
        u32::try_from(n - before).unwrap_or(0)
    }

    /// The event expired or was deleted.
    pub fn forget(&mut self, e: &Event) {
        if let Some(uid) = &e.metadata.uid {
            self.seen.remove(uid);
        }
    }
}

/// The metric's reasons, in output order.
pub const REASONS: [PodEvent; 3] = [
    PodEvent::Preempted,
    PodEvent::FailedScheduling,
    PodEvent::OomKilled,
];

/// `hubpulse_pod_events_total{reason, pods}`, shared with `/metrics`.
#[derive(Debug, Default)]
pub struct EventStats {
    /// (reason index in [`REASONS`], user pod) → count.
    counts: Mutex<HashMap<(usize, bool), u64>>,
}

impl EventStats {
    /// `n` occurrences of `event` about a single-user pod (`user`) or another pod.
    pub fn count(&self, event: PodEvent, user: bool, n: u32) {
        let Some(i) = REASONS.iter().position(|r| *r == event) else {
            return;
        };
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((i, user)).or_default() += u64::from(n);
        }
    }

    /// The count for one label pair (tests, `/metrics`).
    pub fn get(&self, event: PodEvent, user: bool) -> u64 {
        let Some(i) = REASONS.iter().position(|r| *r == event) else {
            return 0;
        };
        self.counts
            .lock()
            .map(|c| c.get(&(i, user)).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Appends the Prometheus text of these families alone.
    pub fn render(self: &std::sync::Arc<Self>, o: &mut String) {
        o.push_str(&crate::telemetry::encode_one(self.clone()));
    }
}

/// Every label pair, zeros included.
impl crate::telemetry::Collector for EventStats {
    fn encode(&self, e: crate::telemetry::DescriptorEncoder) -> std::fmt::Result {
        let rows = REASONS.iter().flat_map(|r| {
            [(true, "user"), (false, "other")].map(|(user, pods)| {
                (
                    [("reason", r.label()), ("pods", pods)],
                    self.get(*r, user).into(),
                )
            })
        });
        crate::telemetry::Families::new(e).counters(
            "hubpulse_pod_events_total",
            "Events about pods by reason (preempted, failed_scheduling, oom_killed); pods=user: single-user pods, other: the rest (placeholders).",
            rows,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::{Value, json};

    use super::*;

    /// A `v1` Event as the scheduler writes it when it evicts a lower-priority pod.
    fn preempted() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "user-placeholder-0.1879f3a4c2d0e5b1", "namespace": "jhub",
                "uid": "6c1d1c5e-7b55-4a51-9d57-0c2b9a1e7f10", "resourceVersion": "81234",
                "creationTimestamp": "2026-11-30T09:00:01Z"},
            "involvedObject": {"kind": "Pod", "namespace": "jhub", "name": "user-placeholder-0",
                "uid": "0f6e3c1a-1111-4c6b-8d2b-5b1e6c7d8e9f", "apiVersion": "v1",
                "resourceVersion": "81200"},
            "reason": "Preempted",
            "message": "Preempted by jhub/jupyter-bob on node n1",
            "source": {"component": "default-scheduler"},
            "firstTimestamp": "2026-11-30T09:00:01Z",
            "lastTimestamp": "2026-11-30T09:00:01Z",
            "count": 1, "type": "Normal",
            "eventTime": null, "reportingComponent": "default-scheduler", "reportingInstance": ""
        })
    }

    fn ev(v: Value) -> Event {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_preempted_event_names_its_pod_time_and_message() {
        let ((ns, pod), n) = note(&ev(preempted())).unwrap();
        assert_eq!((ns.as_str(), pod.as_str()), ("jhub", "user-placeholder-0"));
        assert_eq!(n.event, PodEvent::Preempted);
        assert_eq!(
            n.message.as_deref(),
            Some("Preempted by jhub/jupyter-bob on node n1")
        );
        assert_eq!(
            n.at.unwrap().to_rfc3339(),
            "2026-11-30T09:00:01+00:00".to_string()
        );
    }

    #[test]
    fn events_api_style_events_take_their_time_from_the_series() {
        // events.k8s.io writers fill eventTime and series, not first/lastTimestamp
        let mut v = preempted();
        v["reason"] = json!("FailedScheduling");
        v["message"] = json!(
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available"
        );
        v["firstTimestamp"] = Value::Null;
        v["lastTimestamp"] = Value::Null;
        v["count"] = Value::Null;
        v["eventTime"] = json!("2026-11-30T09:00:00.250000Z");
        v["series"] = json!({"count": 4, "lastObservedTime": "2026-11-30T09:03:00.500000Z"});
        let e = ev(v);
        let (_, n) = note(&e).unwrap();
        assert_eq!(n.event, PodEvent::FailedScheduling);
        assert_eq!(
            n.at.unwrap().to_rfc3339(),
            "2026-11-30T09:03:00.500+00:00".to_string()
        );
        assert_eq!(occurrences(&e), 4);
    }

    #[test]
    fn scheduled_and_node_events_are_not_notes() {
        let mut v = preempted();
        v["reason"] = json!("Scheduled");
        assert_eq!(note(&ev(v)), None);
        let mut v = preempted();
        v["involvedObject"]["kind"] = json!("Node");
        v["reason"] = json!("OOMKilling");
        assert_eq!(note(&ev(v)), None);
        let mut v = preempted();
        v["reason"] = json!("OOMKilled");
        assert_eq!(note(&ev(v)).unwrap().1.event, PodEvent::OomKilled);
    }

    #[test]
    fn an_event_counts_once_per_occurrence() {
        let mut d = EventDedup::default();
        let mut v = preempted();
        assert_eq!(d.fresh(&ev(v.clone())), 1);
        // a relist, or an update of another field
        assert_eq!(d.fresh(&ev(v.clone())), 0);
        v["count"] = json!(3);
        assert_eq!(d.fresh(&ev(v.clone())), 2);
        // an out-of-order older copy does not lower the count
        v["count"] = json!(2);
        assert_eq!(d.fresh(&ev(v.clone())), 0);
        v["count"] = json!(3);
        assert_eq!(d.fresh(&ev(v.clone())), 0);
        d.forget(&ev(v.clone()));
        assert_eq!(d.fresh(&ev(v)), 3);
    }

    #[test]
    fn the_metric_has_bounded_labels_and_zeros() {
        let s = std::sync::Arc::new(EventStats::default());
        s.count(PodEvent::Preempted, false, 2);
        s.count(PodEvent::OomKilled, true, 1);
        s.count(PodEvent::Scheduled, true, 1); // not a metric reason
        let mut o = String::new();
        s.render(&mut o);
        assert!(o.contains("hubpulse_pod_events_total{reason=\"preempted\",pods=\"other\"} 2\n"));
        assert!(o.contains("hubpulse_pod_events_total{reason=\"oom_killed\",pods=\"user\"} 1\n"));
        assert!(
            o.contains("hubpulse_pod_events_total{reason=\"failed_scheduling\",pods=\"user\"} 0\n")
        );
        assert_eq!(o.lines().filter(|l| !l.starts_with('#')).count(), 6);
    }
}
