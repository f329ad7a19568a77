//! The lake table `pods`: one row each time a single-user pod's enrichment changes (phase, node,
//! requests, scheduling, OOM kill) or the pod goes away, from a list + watch of
//! `component=singleuser-server` pods. Rows are [`PodRow`]s ([`super::enrich`]) with the time
//! they were observed and what happened (`seen`, `changed`, `deleted`).
//!
//! Layout like `decisions`: `DIR/pods/hub=<hub>/dt=YYYY-MM-DD/part-*.parquet`, each part published
//! atomically ([`crate::control::decisions::publish`]), outside the manifest.
//!
//! # Guarantees
//! - A pod whose enrichment did not change produces no row (resyncs and status heartbeats are
//!   deduplicated against the last row written for it).
//! - Rows of one watcher event are one part; nothing is buffered across events, so a crash loses
//!   at most the event being written (the relist on restart rewrites each pod's current state).
//!
//! # Assumptions
//! - Node instance types (`node.kubernetes.io/instance-type`) are not joined yet: that needs
//!   `nodes` get/list, a cluster-scoped ClusterRole. Events (FailedScheduling, Preempted) are
//!   classified ([`super::enrich::classify`]) but not watched yet.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;

use super::enrich::{PodRow, pod_row};

pub const PODS: &str = "pods";

/// `pods`: one row per observed change of a single-user pod.
pub fn schema() -> SchemaRef {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        s("hub", false),
        s("change", false),
        s("namespace", false),
        s("pod", false),
        s("user", true),
        s("server_name", true),
        s("node", true),
        s("phase", true),
        f("cpu_request"),
        f("cpu_limit"),
        f("memory_request"),
        f("memory_limit"),
        f("gpus"),
        s("unschedulable", true),
        Field::new("oom_killed", DataType::Boolean, false),
    ]))
}

/// What a row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// First seen by this watcher (at start or when created).
    Seen,
    Changed,
    Deleted,
}

impl Change {
    pub fn label(self) -> &'static str {
        match self {
            Change::Seen => "seen",
            Change::Changed => "changed",
            Change::Deleted => "deleted",
        }
    }
}

/// Keeps the last row per pod and turns watcher observations into rows worth writing. Pure.
#[derive(Debug, Default)]
pub struct Dedup {
    last: HashMap<(String, String), PodRow>,
}

impl Dedup {
    /// A pod as it is now: a row unless nothing changed.
    pub fn applied(&mut self, row: PodRow) -> Option<(Change, PodRow)> {
        let key = (row.namespace.clone(), row.pod.clone());
        match self.last.insert(key, row.clone()) {
            None => Some((Change::Seen, row)),
            Some(old) if old != row => Some((Change::Changed, row)),
            Some(_) => None,
        }
    }

    /// A pod gone: a row when it was known.
    pub fn deleted(&mut self, row: PodRow) -> Option<(Change, PodRow)> {
        let key = (row.namespace.clone(), row.pod.clone());
        self.last.remove(&key).map(|old| (Change::Deleted, old))
    }
}

/// Writes `pods` parts under a lake root.
#[derive(Debug, Clone)]
pub struct PodSink {
    root: crate::control::decisions::SideRoot,
    hub: String,
    seq: Arc<AtomicU64>,
}

impl PodSink {
    pub fn new(lake: &Path, hub: &str) -> Self {
        PodSink {
            root: crate::control::decisions::SideRoot::new(lake, PODS, hub),
            hub: hub.to_string(),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Writes `rows` observed at `ts` as one part; no-op when empty.
    ///
    /// # Errors
    /// I/O or encoding errors, with the path.
    pub fn write(&self, ts: DateTime<Utc>, rows: &[(Change, PodRow)]) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = self
            .batch(ts, rows)
            .map_err(|e| format!("pods batch: {e}"))?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.root
            .publish(&ts.format("%Y-%m-%d").to_string(), n, &batch)
    }

    fn batch(
        &self,
        ts: DateTime<Utc>,
        rows: &[(Change, PodRow)],
    ) -> Result<RecordBatch, arrow::error::ArrowError> {
        let n = rows.len();
        let mut tsb = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let sb = || StringBuilder::with_capacity(n, n * 8);
        let (mut hub, mut change, mut ns, mut pod, mut user) = (sb(), sb(), sb(), sb(), sb());
        let (mut server, mut node, mut phase, mut unsched) = (sb(), sb(), sb(), sb());
        let fb = || Float64Builder::with_capacity(n);
        let (mut cr, mut cl, mut mr, mut ml, mut gpus) = (fb(), fb(), fb(), fb(), fb());
        let mut oom = BooleanBuilder::with_capacity(n);
        for (c, r) in rows {
            tsb.append_value(ts.timestamp_micros());
            hub.append_value(&self.hub);
            change.append_value(c.label());
            ns.append_value(&r.namespace);
            pod.append_value(&r.pod);
            user.append_option(r.user.as_deref());
            server.append_option(r.server.as_deref());
            node.append_option(r.node.as_deref());
            phase.append_option(r.phase.as_deref());
            cr.append_option(r.cpu_request);
            cl.append_option(r.cpu_limit);
            mr.append_option(r.memory_request);
            ml.append_option(r.memory_limit);
            gpus.append_option(r.gpus);
            unsched.append_option(r.unschedulable.as_deref());
            oom.append_value(r.oom_killed);
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(tsb.finish()),
            Arc::new(hub.finish()),
            Arc::new(change.finish()),
            Arc::new(ns.finish()),
            Arc::new(pod.finish()),
            Arc::new(user.finish()),
            Arc::new(server.finish()),
            Arc::new(node.finish()),
            Arc::new(phase.finish()),
            Arc::new(cr.finish()),
            Arc::new(cl.finish()),
            Arc::new(mr.finish()),
            Arc::new(ml.finish()),
            Arc::new(gpus.finish()),
            Arc::new(unsched.finish()),
            Arc::new(oom.finish()),
        ];
        RecordBatch::try_new(schema(), cols)
    }
}

/// Lists and watches the pods matching `selector` in `namespace` and writes their changes to
/// `sink` until `stop`; `pending` (when given) is fed every observation (time pending by reason,
/// [`super::pending`]). Watch errors are logged and retried by the watcher (with backoff).
pub async fn watch_pods(
    client: kube::Client,
    namespace: &str,
    selector: &str,
    sink: PodSink,
    pending: Option<Arc<super::pending::Pending>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use kube::runtime::WatchStreamExt;
    let api: Api<Pod> = Api::namespaced(client, namespace);
    let cfg = watcher::Config::default().labels(selector);
    let mut events = watcher(api, cfg).default_backoff().boxed();
    let mut dedup = Dedup::default();
    loop {
        let ev = tokio::select! {
            ev = events.next() => ev,
            _ = stop.wait_for(|s| *s) => return,
        };
        let now = Utc::now();
        let rows: Vec<(Change, PodRow)> = match ev {
            None => return,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "pods: watch error (retrying)");
                if let Some(p) = &pending {
                    p.watch_error();
                }
                continue;
            }
            Some(Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p))) => {
                if let Some(t) = &pending {
                    t.observe(now, &super::pending::obs(&p));
                }
                dedup.applied(pod_row(&p)).into_iter().collect()
            }
            Some(Ok(watcher::Event::Delete(p))) => {
                if let Some(t) = &pending {
                    t.deleted(&super::pending::obs(&p));
                }
                dedup.deleted(pod_row(&p)).into_iter().collect()
            }
            Some(Ok(watcher::Event::InitDone)) => {
                if let Some(t) = &pending {
                    t.synced();
                }
                Vec::new()
            }
            Some(Ok(watcher::Event::Init)) => {
                if let Some(t) = &pending {
                    t.relisting();
                }
                Vec::new()
            }
        };
        if let Err(e) = sink.write(now, &rows) {
            tracing::warn!(error = %e, "pods: rows not written");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(pod: &str, phase: &str) -> PodRow {
        PodRow {
            namespace: "jhub".into(),
            pod: pod.into(),
            phase: Some(phase.into()),
            ..PodRow::default()
        }
    }

    #[test]
    fn only_changes_become_rows() {
        let mut d = Dedup::default();
        assert_eq!(d.applied(row("a", "Pending")).unwrap().0, Change::Seen);
        assert_eq!(d.applied(row("a", "Pending")), None);
        assert_eq!(d.applied(row("a", "Running")).unwrap().0, Change::Changed);
        assert_eq!(d.applied(row("b", "Running")).unwrap().0, Change::Seen);
        let (c, r) = d.deleted(row("a", "Succeeded")).unwrap();
        // the deletion carries the last state written
        assert_eq!((c, r.phase.as_deref()), (Change::Deleted, Some("Running")));
        assert_eq!(d.deleted(row("a", "Succeeded")), None);
    }

    #[test]
    fn a_part_holds_the_rows_of_one_event() {
        let dir = tempfile::tempdir().unwrap();
        let sink = PodSink::new(dir.path(), "hub");
        let ts = DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        sink.write(ts, &[]).unwrap();
        assert!(!dir.path().join("pods").exists());
        sink.write(
            ts,
            &[
                (Change::Seen, row("a", "Pending")),
                (Change::Seen, row("b", "Running")),
            ],
        )
        .unwrap();
        let parts: Vec<_> = std::fs::read_dir(dir.path().join("pods/hub=hub/dt=2026-11-30"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(parts.len(), 1);
        assert!(parts[0].starts_with("part-") && parts[0].ends_with(".parquet"));
    }
}
