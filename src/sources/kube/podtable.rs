//! The lake table `pods`: one row each time a single-user pod's enrichment changes (phase, node,
//! its instance type and zone, requests, scheduling, OOM kill) or the pod goes away, from a list +
//! watch of `component=singleuser-server` pods; and one row per event about such a pod
//! (`Preempted`, `FailedScheduling`, `OOMKilled`) from a list + watch of the namespace's Events.
//! Rows are [`PodRow`]s ([`crate::sources::kube::enrich`]) with the time they were observed and what happened
//! (`seen`, `changed`, `deleted`, `event`).
//!
//! Layout like `decisions`: `DIR/pods/hub=<hub>/dt=YYYY-MM-DD/part-*.parquet`, each part published
//! atomically ([`crate::lake::tables::publish`]), outside the manifest.
//!
//! # Guarantees
//! - A pod whose enrichment did not change produces no row (resyncs and status heartbeats are
//!   deduplicated against the last row written for it).
//! - Rows of one watcher event are one part; nothing is buffered across events, so a crash loses
//!   at most the event being written (the relist on restart rewrites each pod's current state).
//! - An `event` row carries the pod's last written state plus `event`, `event_message` and
//!   `event_ts`; an event is written once per occurrence in a run ([`crate::sources::kube::podevents`]), and may
//!   be written again after a restart (same `pod`, `event`, `event_ts`).
//! - `instance_type`/`zone` stay null when nodes cannot be read ([`crate::sources::kube::nodes`]).
//! - A pod deleted while the watch was down (the watcher relists, e.g. after `410 Gone`) gets
//!   its `deleted` row when the relist completes: no delete event comes for it.
//! - Events received before the pods are first listed (both lists start together) are held
//!   until then ([`EARLY_CAP`] at most), so an event about a pod listed later is still its row.
//!
//! # Assumptions
//! - Events about pods the pods watch does not select (placeholders) are counted in
//!   `hubpulse_pod_events_total{pods="other"}`, not written.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::Api;
use kube::runtime::utils::ResetTimerBackoff;
use kube::runtime::watcher;

use crate::backoff::{Backoff, Jitter, Policy};
use crate::lake::tables::pods::{PODS, schema};
use crate::sources::kube::enrich::{PodEvent, PodRow, pod_row};
use crate::sources::kube::nodes::{Lookup, NodeCache, lookup};
use crate::sources::kube::podevents::{EventDedup, EventStats, note};

/// What a row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// First seen by this watcher (at start or when created).
    Seen,
    Changed,
    Deleted,
    /// An event about the pod (the row's `event` columns).
    Event,
}

impl Change {
    pub fn label(self) -> &'static str {
        match self {
            Change::Seen => "seen",
            Change::Changed => "changed",
            Change::Deleted => "deleted",
            Change::Event => "event",
        }
    }
}

/// Keeps the last row per pod and turns watcher observations into rows worth writing. Pure.
#[derive(Debug, Default)]
pub struct Dedup {
    last: HashMap<(String, String), PodRow>,
    /// During a (re)list: the pods it showed so far.
    relisted: Option<std::collections::HashSet<(String, String)>>,
}

impl Dedup {
    /// A pod as it is now: a row unless nothing changed.
    pub fn applied(&mut self, row: PodRow) -> Option<(Change, PodRow)> {
        let key = (row.namespace.clone(), row.pod.clone());
        if let Some(seen) = &mut self.relisted {
            seen.insert(key.clone());
        }
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

    /// A (re)list starts (the watcher's `Init`: first start, or after the watch failed, e.g.
    /// `410 Gone`).
    pub fn relisting(&mut self) {
        self.relisted = Some(Default::default());
    }

    /// The (re)list is complete: a `deleted` row for each known pod it did not show (deleted
    /// while the watch was down: no delete event comes for it), in pod order.
    pub fn relisted(&mut self) -> Vec<(Change, PodRow)> {
        let Some(seen) = self.relisted.take() else {
            return Vec::new();
        };
        let mut gone: Vec<(String, String)> = self
            .last
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        gone.sort();
        gone.into_iter()
            .filter_map(|k| self.last.remove(&k))
            .map(|old| (Change::Deleted, old))
            .collect()
    }

    /// The last row written for a pod.
    pub fn last(&self, namespace: &str, pod: &str) -> Option<&PodRow> {
        self.last.get(&(namespace.to_string(), pod.to_string()))
    }
}

/// Writes `pods` parts under a lake root.
#[derive(Debug, Clone)]
pub struct PodSink {
    root: crate::lake::tables::SideRoot,
    hub: String,
    seq: Arc<AtomicU64>,
}

impl PodSink {
    pub fn new(lake: &crate::lake::LakeLocation, hub: &str) -> Self {
        PodSink {
            root: crate::lake::tables::SideRoot::new(lake, PODS, hub),
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
            .map_err(|e| e.to_string())
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
        let (mut event, mut emsg, mut itype, mut zone) = (sb(), sb(), sb(), sb());
        let mut ets = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
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
            let e = r.event.as_ref();
            event.append_option(e.map(|e| e.event.label()));
            emsg.append_option(e.and_then(|e| e.message.as_deref()));
            ets.append_option(e.and_then(|e| e.at).map(|t| t.timestamp_micros()));
            itype.append_option(r.instance_type.as_deref());
            zone.append_option(r.zone.as_deref());
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
            Arc::new(event.finish()),
            Arc::new(emsg.finish()),
            Arc::new(ets.finish()),
            Arc::new(itype.finish()),
            Arc::new(zone.finish()),
        ];
        RecordBatch::try_new(schema(), cols)
    }
}

/// What a pods watch feeds besides the table.
#[derive(Debug, Clone)]
pub struct PodWatch {
    pub namespace: String,
    /// Label selector of single-user pods.
    pub selector: String,
    pub sink: PodSink,
    /// Fed every observation (time pending by reason, [`crate::sources::kube::pending`]).
    pub pending: Option<Arc<crate::sources::kube::pending::Pending>>,
    /// Watch the namespace's Events too, counting them here ([`crate::sources::kube::podevents`]).
    pub events: Option<Arc<EventStats>>,
    /// Look up each pod's node for `instance_type` and `zone` ([`crate::sources::kube::nodes`]).
    pub nodes: bool,
}

/// Lists and watches the pods matching `selector` in `namespace` and writes their changes to
/// `sink` until `stop`; `pending` (when given) is fed every observation (time pending by reason,
/// [`crate::sources::kube::pending`]). No events, no node lookups: see [`watch`].
pub async fn watch_pods(
    client: kube::Client,
    namespace: &str,
    selector: &str,
    sink: PodSink,
    pending: Option<Arc<crate::sources::kube::pending::Pending>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let w = PodWatch {
        namespace: namespace.to_string(),
        selector: selector.to_string(),
        sink,
        pending,
        events: None,
        nodes: false,
    };
    watch(client, w, stop).await;
}

/// The waits between watcher failures: kube-rs's default timings (800 ms doubling up to 30 s,
/// up to as much again drawn on top) as a policy of [`crate::backoff`].
const WATCH_BACKOFF: Policy = Policy::doubling(
    std::time::Duration::from_millis(800),
    std::time::Duration::from_secs(30),
    Jitter::Added,
);

/// [`WATCH_BACKOFF`] as kube-rs's watchers take it.
struct WatchBackoff(Backoff);

impl Iterator for WatchBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<std::time::Duration> {
        Some(self.0.next_delay())
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.0.reset();
    }
}

/// [`WATCH_BACKOFF`], back to its first delay once two minutes pass without a failure (as
/// kube-rs's default does).
fn watch_backoff() -> ResetTimerBackoff<WatchBackoff> {
    ResetTimerBackoff::new(
        WatchBackoff(Backoff::new(WATCH_BACKOFF)),
        std::time::Duration::from_secs(120),
    )
}

/// A watcher's events, boxed.
type Watched<K> = futures::stream::BoxStream<'static, watcher::Result<watcher::Event<K>>>;

/// The watchers of [`watch`]: the pods of the selector, and the Events about pods when asked
/// (else a stream that never yields).
fn watchers(client: &kube::Client, w: &PodWatch) -> (Watched<Pod>, Watched<Event>) {
    use kube::runtime::WatchStreamExt;
    let api: Api<Pod> = Api::namespaced(client.clone(), &w.namespace);
    let cfg = watcher::Config::default().labels(&w.selector);
    let pods = watcher(api, cfg).backoff(watch_backoff()).boxed();
    let events = match &w.events {
        Some(_) => {
            let api: Api<Event> = Api::namespaced(client.clone(), &w.namespace);
            let cfg = watcher::Config::default().fields("involvedObject.kind=Pod");
            watcher(api, cfg).backoff(watch_backoff()).boxed()
        }
        None => futures::stream::pending().boxed(),
    };
    (pods, events)
}

/// Fills the row's instance type and zone from its node, reading the node once.
async fn with_node(row: &mut PodRow, nodes: &mut NodeCache, node_api: &Api<Node>) {
    let Some(n) = row.node.clone() else {
        return;
    };
    if nodes.needs(&n) {
        let l = lookup(node_api, &n).await;
        if let Lookup::Failed(e) = &l {
            tracing::warn!(node = %n, error = %e, "pods: node not read (retried later)");
        }
        if let Some(warning) = nodes.learn(&n, l) {
            tracing::warn!("{warning}");
        }
    }
    let i = nodes.info(&n);
    (row.instance_type, row.zone) = (i.instance_type, i.zone);
}

/// The pods watch of [`PodWatch`] until `stop`: pods (list + watch), and when asked, the
/// namespace's Events about pods (`fieldSelector=involvedObject.kind=Pod`) and the pods' nodes
/// (`GET /api/v1/nodes/{name}`, once per node). Watch errors are logged and retried by the
/// watcher (with backoff).
pub async fn watch(client: kube::Client, w: PodWatch, stop: tokio_util::sync::CancellationToken) {
    let (mut pods, mut events) = watchers(&client, &w);
    let node_api: Api<Node> = Api::all(client);
    let mut nodes = NodeCache::default();
    let mut dedup = Dedup::default();
    let mut seen_events = EventDedup::default();
    let mut events_failing = false;
    // Events that came before the pods were first listed (the two lists race at start): held
    // until then, so that an event about a pod not listed yet is still that pod's row.
    let mut pods_listed = false;
    let mut early: Vec<Event> = Vec::new();
    let pending = &w.pending;
    loop {
        let (pod_ev, event_ev) = tokio::select! {
            ev = pods.next() => (Some(ev), None),
            ev = events.next() => (None, Some(ev)),
            () = stop.cancelled() => return,
        };
        let now = Utc::now();
        let rows: Vec<(Change, PodRow)> = match (pod_ev, event_ev) {
            (Some(None), _) | (_, Some(None)) => return,
            (Some(Some(Err(e))), _) => {
                tracing::warn!(error = %e, "pods: watch error (retrying)");
                if let Some(p) = pending {
                    p.watch_error();
                }
                continue;
            }
            (_, Some(Some(Err(e)))) => {
                // once per failing streak (a missing `events` rule fails every retry)
                if !events_failing {
                    tracing::warn!(error = %e, "pods: events watch error (retrying quietly)");
                }
                events_failing = true;
                continue;
            }
            (Some(Some(Ok(ev))), _) => match ev {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    if let Some(t) = pending {
                        t.observe(now, &crate::sources::kube::pending::obs(&p));
                    }
                    let mut row = pod_row(&p);
                    if w.nodes {
                        with_node(&mut row, &mut nodes, &node_api).await;
                    }
                    let was_oom = dedup.last(&row.namespace, &row.pod).map(|r| r.oom_killed);
                    if let (Some(s), Some(false), true) = (&w.events, was_oom, row.oom_killed) {
                        s.count(PodEvent::OomKilled, true, 1);
                    }
                    dedup.applied(row).into_iter().collect()
                }
                watcher::Event::Delete(p) => {
                    if let Some(t) = pending {
                        t.deleted(&crate::sources::kube::pending::obs(&p));
                    }
                    dedup.deleted(pod_row(&p)).into_iter().collect()
                }
                watcher::Event::InitDone => {
                    if let Some(t) = pending {
                        t.synced();
                    }
                    let mut rows = dedup.relisted();
                    pods_listed = true;
                    for e in std::mem::take(&mut early) {
                        rows.extend(event_rows(
                            &e,
                            &dedup,
                            &mut seen_events,
                            w.events.as_deref(),
                        ));
                    }
                    rows
                }
                watcher::Event::Init => {
                    if let Some(t) = pending {
                        t.relisting();
                    }
                    dedup.relisting();
                    Vec::new()
                }
            },
            (_, Some(Some(Ok(ev)))) => {
                if std::mem::take(&mut events_failing) {
                    tracing::info!("pods: events watch recovered");
                }
                match ev {
                    watcher::Event::Apply(e) | watcher::Event::InitApply(e)
                        if !pods_listed && early.len() < EARLY_CAP =>
                    {
                        early.push(e);
                        Vec::new()
                    }
                    watcher::Event::Apply(e) | watcher::Event::InitApply(e) => {
                        event_rows(&e, &dedup, &mut seen_events, w.events.as_deref())
                    }
                    watcher::Event::Delete(e) => {
                        early.retain(|x| x.metadata.uid != e.metadata.uid);
                        seen_events.forget(&e);
                        Vec::new()
                    }
                    watcher::Event::Init | watcher::Event::InitDone => Vec::new(),
                }
            }
            (None, None) => continue,
        };
        if let Err(e) = w.sink.write(now, &rows) {
            tracing::warn!(error = %e, "pods: rows not written");
        }
    }
}

/// The most Events held while the pods are not listed yet; beyond it they are taken at once
/// (about a pod not known yet: counted as `other`, no row).
pub const EARLY_CAP: usize = 10_000;

/// The row an Event gives (about a pod of the watch, new), and its count in `stats`. Pure but
/// for the counters.
pub fn event_rows(
    e: &Event,
    pods: &Dedup,
    seen: &mut EventDedup,
    stats: Option<&EventStats>,
) -> Vec<(Change, PodRow)> {
    let Some(((ns, pod), note)) = note(e) else {
        return Vec::new();
    };
    let n = seen.fresh(e);
    if n == 0 {
        return Vec::new();
    }
    let last = pods.last(&ns, &pod);
    // OOM kills are counted from the pod status (`oom_killed` turning true), not twice
    if let (Some(s), false) = (stats, note.event == PodEvent::OomKilled) {
        s.count(note.event, last.is_some(), n);
    }
    let Some(last) = last else {
        return Vec::new();
    };
    let mut row = last.clone();
    row.event = Some(note);
    vec![(Change::Event, row)]
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

    /// After a watch failure (`410 Gone`) the watcher relists; a pod deleted meanwhile gets no
    /// delete event, only its absence from the relist.
    #[test]
    fn a_pod_missing_from_a_relist_is_deleted_once() {
        let mut d = Dedup::default();
        // the first list: nothing was known, nothing is deleted
        d.relisting();
        d.applied(row("a", "Running"));
        d.applied(row("b", "Running"));
        assert_eq!(d.relisted(), vec![]);
        // the relist shows b (unchanged: no row) and c, not a
        d.relisting();
        assert_eq!(d.applied(row("b", "Running")), None);
        assert_eq!(d.applied(row("c", "Pending")).unwrap().0, Change::Seen);
        let gone = d.relisted();
        assert_eq!(gone.len(), 1);
        assert_eq!(
            (
                gone[0].0,
                gone[0].1.pod.as_str(),
                gone[0].1.phase.as_deref()
            ),
            (Change::Deleted, "a", Some("Running"))
        );
        assert_eq!(d.last("jhub", "a"), None);
        // outside a relist, InitDone alone deletes nothing
        assert_eq!(d.relisted(), vec![]);
        assert!(d.last("jhub", "b").is_some() && d.last("jhub", "c").is_some());
    }

    #[test]
    fn an_event_is_a_row_for_a_watched_pod_and_a_count_for_any() {
        use crate::sources::kube::podevents::{EventDedup, EventStats};
        let ev = |pod: &str, uid: &str| -> Event {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("{pod}.1"), "namespace": "jhub", "uid": uid},
                "involvedObject": {"kind": "Pod", "name": pod, "namespace": "jhub"},
                "reason": "Preempted", "message": "Preempted by jhub/jupyter-bob on node n1",
                "lastTimestamp": "2026-11-30T09:00:05Z", "count": 1, "type": "Normal"
            }))
            .unwrap()
        };
        let mut pods = Dedup::default();
        pods.applied(row("jupyter-alice", "Running"));
        let (mut seen, stats) = (EventDedup::default(), EventStats::default());
        let rows = event_rows(&ev("jupyter-alice", "u1"), &pods, &mut seen, Some(&stats));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, Change::Event);
        assert_eq!(rows[0].1.phase.as_deref(), Some("Running"));
        assert_eq!(rows[0].1.event.as_ref().unwrap().event, PodEvent::Preempted);
        // the same occurrence again: nothing
        assert!(event_rows(&ev("jupyter-alice", "u1"), &pods, &mut seen, Some(&stats)).is_empty());
        // a placeholder: counted, not written
        assert!(
            event_rows(
                &ev("user-placeholder-0", "u2"),
                &pods,
                &mut seen,
                Some(&stats)
            )
            .is_empty()
        );
        assert_eq!(stats.get(PodEvent::Preempted, true), 1);
        assert_eq!(stats.get(PodEvent::Preempted, false), 1);
        // the stored state is not the event row
        assert_eq!(pods.last("jhub", "jupyter-alice").unwrap().event, None);
    }

    /// Parts written before the event and node columns existed read as nulls there.
    #[tokio::test]
    async fn parts_without_the_new_columns_still_query() {
        let dir = tempfile::tempdir().unwrap();
        let sink = PodSink::new(&crate::lake::LakeLocation::local(dir.path()), "hub");
        let ts = DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let batch = sink
            .batch(ts, &[(Change::Seen, row("old", "Running"))])
            .unwrap();
        // the 16 columns of the first `pods` schema
        let old = batch.project(&(0..16).collect::<Vec<_>>()).unwrap();
        sink.root.publish("2026-11-30", 0, &old).unwrap();
        let mut new_row = row("new", "Running");
        new_row.instance_type = Some("m5.xlarge".into());
        sink.write(ts, &[(Change::Seen, new_row)]).unwrap();
        let ctx = crate::query::session(&crate::lake::LakeLocation::local(dir.path()))
            .await
            .unwrap();
        let out = crate::query::run(
            &ctx,
            "SELECT pod, instance_type, event IS NULL AS no_event FROM pods ORDER BY pod",
        )
        .await
        .unwrap();
        let mut text = Vec::new();
        crate::query::render(&out, crate::query::Format::Csv, &mut text).unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "pod,instance_type,no_event\nnew,m5.xlarge,true\nold,,true\n"
        );
    }

    #[test]
    fn a_part_holds_the_rows_of_one_event() {
        let dir = tempfile::tempdir().unwrap();
        let sink = PodSink::new(&crate::lake::LakeLocation::local(dir.path()), "hub");
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
