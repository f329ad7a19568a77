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
//! * [`follow`] runs until `shutdown` is cancelled, sending [`PodLines`] into `tx`.
//! * A stream is one container of one pod, keyed `k8s/<namespace>/<pod>/<container>`.
//! * [`StreamPos`] is what the lake's manifest stores per stream as its checkpoint; `follow`
//!   receives the committed positions at start (`resume`) and must not send any line at or
//!   before them again.
//!
//! # How it works
//! For each selector (`cfg.selector`, and `cfg.proxy_selector` if set) one loop runs kube-rs's
//! [`watcher`]: it lists the matching pods in `cfg.namespace`, then watches them from the
//! list's `resourceVersion` (`GET /api/v1/namespaces/{ns}/pods?labelSelector=…[&watch=true…]`),
//! watches again from the last version seen when a watch ends, and lists again when that
//! version expired (`410 Gone`). After every change (or a complete list) it
//! picks the pod to follow with [`choose_pod`] (the newest `Running` pod that is not
//! terminating) and, if no task follows that pod yet, starts one. A task reads
//! `GET …/pods/{pod}/log?container=…&follow=true&timestamps=true[&sinceTime=…]` to its end and
//! reconnects while the pod lives ([`after_stream_end`]); so when the hub is replaced, the old
//! pod's stream is read to its end while the new pod's is already being read. A followed pod
//! stays followed until its log is complete, even once a newer pod is chosen; a pod whose log
//! is complete is never attached again in this run.
//!
//! # Guarantees
//! * No line is sent twice in one run, and no line at or before a committed position is sent
//!   after a restart: see [`already_delivered`]; positions are computed the same way on every
//!   connection because `sinceTime` is always a whole second and `same_ts` restarts there.
//! * No line is dropped by this module: sending waits for the pipeline (back-pressure).
//!   Lines can be lost only where Kubernetes itself loses them (a pod deleted before it was
//!   attached, log files rotated away while the agent was down).
//! * [`follow`] returns within a few milliseconds of `shutdown` being cancelled; tasks it
//!   started have stopped by then.
//!
//! # Errors
//! Network errors, 5xx and 429 answers, expired watches (410) and logs of containers not yet
//! started (400) are retried with [`BACKOFF`] and counted in [`KubeStats::errors`].
//! [`follow`] returns an error only for what retrying cannot fix: see [`KubeError`].

pub mod enrich;
mod lines;
pub mod nodes;
pub mod pending;
pub mod podevents;
mod pods;
pub mod podtable;
mod stream;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::sources::SourceError;
pub use lines::{LineAssembler, already_delivered, next_pos, parse_kubelet_line, since_second};
pub use pods::{
    BACKOFF, BACKOFF_BASE, BACKOFF_CAP, Next, PodInfo, StreamEnd, after_stream_end, choose_pod,
    container_for,
};
pub use stream::MAX_BATCH_BYTES;
use stream::{PodMap, StreamTask, TaskEnd};

pub use crate::lake::manifest::StreamPos;

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

/// The stream key of one container of one pod: `k8s/<namespace>/<pod>/<container>`.
pub fn stream_key(namespace: &str, pod: &str, container: &str) -> String {
    format!("k8s/{namespace}/{pod}/{container}")
}

/// Counters of the pod-log source, shared with the agent's `/metrics`.
#[derive(Debug, Default)]
pub struct KubeStats {
    /// Lines sent to the pipeline.
    pub lines: AtomicU64,
    /// Bytes sent to the pipeline (timestamps stripped, newlines included).
    pub bytes: AtomicU64,
    /// Streams attached (first successful connection of a pod's container).
    pub attaches: AtomicU64,
    /// Streams complete: their pod is gone, terminating or finished, and its log was read to
    /// the end (or the pod vanished before it could be).
    pub detaches: AtomicU64,
    /// Log connections retried after the first, and watches restarted after a failure.
    pub reconnects: AtomicU64,
    /// Failed requests and broken streams (all retried; fatal ones end [`follow`]).
    pub errors: AtomicU64,
    /// Lines received but not sent because a resume or a reconnect had already delivered them.
    pub skipped_on_resume: AtomicU64,
    /// Lines sent whose kubelet timestamp did not parse (passed through whole).
    pub malformed_ts: AtomicU64,
}

/// A copy of [`KubeStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KubeCounts {
    pub lines: u64,
    pub bytes: u64,
    pub attaches: u64,
    pub detaches: u64,
    pub reconnects: u64,
    pub errors: u64,
    pub skipped_on_resume: u64,
    pub malformed_ts: u64,
}

impl KubeStats {
    pub fn snapshot(&self) -> KubeCounts {
        KubeCounts {
            lines: self.lines.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            attaches: self.attaches.load(Relaxed),
            detaches: self.detaches.load(Relaxed),
            reconnects: self.reconnects.load(Relaxed),
            errors: self.errors.load(Relaxed),
            skipped_on_resume: self.skipped_on_resume.load(Relaxed),
            malformed_ts: self.malformed_ts.load(Relaxed),
        }
    }
}

impl KubeCounts {
    /// Prometheus counter names, help and values (all `_total`, no labels).
    pub fn metrics(&self) -> [(&'static str, &'static str, u64); 8] {
        [
            (
                "hubpulse_kube_lines_total",
                "Pod-log lines sent to the pipeline.",
                self.lines,
            ),
            (
                "hubpulse_kube_bytes_total",
                "Pod-log bytes sent to the pipeline (kubelet timestamps stripped).",
                self.bytes,
            ),
            (
                "hubpulse_kube_attaches_total",
                "Pod-log streams attached (first connection to a pod's container).",
                self.attaches,
            ),
            (
                "hubpulse_kube_detaches_total",
                "Pod-log streams complete (pod gone or finished, log read to the end).",
                self.detaches,
            ),
            (
                "hubpulse_kube_reconnects_total",
                "Pod-log connections and watches restarted after a failure.",
                self.reconnects,
            ),
            (
                "hubpulse_kube_errors_total",
                "Failed Kubernetes requests and broken pod-log streams (all retried).",
                self.errors,
            ),
            (
                "hubpulse_kube_skipped_on_resume_total",
                "Pod-log lines received but not sent: a resume or reconnect had delivered them.",
                self.skipped_on_resume,
            ),
            (
                "hubpulse_kube_malformed_timestamps_total",
                "Pod-log lines whose kubelet timestamp did not parse (passed through whole).",
                self.malformed_ts,
            ),
        ]
    }
}

/// The pod-log source's counters on the agent's `/metrics` (registered when the source starts).
impl crate::telemetry::Collector for KubeStats {
    fn encode(&self, e: crate::telemetry::DescriptorEncoder) -> std::fmt::Result {
        let mut f = crate::telemetry::Families::new(e);
        for (name, help, v) in self.snapshot().metrics() {
            f.counter(name, help, v)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod metrics_tests {
    use super::*;

    #[test]
    fn the_pod_log_counters_are_on_metrics() {
        let stats = Arc::new(KubeStats::default());
        stats.lines.fetch_add(3, Relaxed);
        stats.errors.fetch_add(1, Relaxed);
        let text = crate::telemetry::encode_one(stats);
        assert!(
            text.contains("# TYPE hubpulse_kube_lines_total counter"),
            "{text}"
        );
        assert!(text.contains("\nhubpulse_kube_lines_total 3\n"), "{text}");
        assert!(text.contains("\nhubpulse_kube_errors_total 1\n"), "{text}");
        assert!(
            text.contains("\nhubpulse_kube_reconnects_total 0\n"),
            "{text}"
        );
    }
}

/// Why [`follow`] stopped. None of these is retriable by waiting: each needs a change to the
/// cluster, the configuration or the agent.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(
        "not allowed to {action} in namespace {namespace:?} (HTTP {code}): the agent's service \
         account needs `get`, `list`, `watch` on `pods` and `get` on `pods/log` there ({message})"
    )]
    Forbidden {
        action: &'static str,
        namespace: String,
        code: u16,
        message: String,
    },
    #[error(
        "the API server rejected the request to {action} in namespace {namespace:?} (HTTP {code}); \
         check the label selector ({message})"
    )]
    Rejected {
        action: &'static str,
        namespace: String,
        code: u16,
        message: String,
    },
    #[error("the pipeline stopped receiving pod log lines (its channel is closed)")]
    PipelineClosed,
    #[error("a pod log task ended abnormally: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl KubeError {
    /// A bounded label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            KubeError::Forbidden { .. } => "forbidden",
            KubeError::Rejected { .. } => "rejected",
            KubeError::PipelineClosed => "pipeline_closed",
            KubeError::Task(_) => "task",
        }
    }
}

/// Server-side timeout asked of each watch (then it is renewed from its last resource version),
/// so that a connection silently lost by a proxy is noticed within minutes.
const WATCH_TIMEOUT_SECS: u32 = 290;

/// Follows the pods selected by `cfg` until `shutdown` is `true`; see the module docs.
///
/// # Errors
/// [`SourceError::Kube`]: [`KubeError::Forbidden`] (RBAC), [`KubeError::Rejected`] (e.g. an invalid selector),
/// [`KubeError::PipelineClosed`] (`tx`'s receiver dropped), [`KubeError::Task`] (a panic).
///
/// # Assumptions
/// * The selected pods are replaced by new pods with new names or uids (a Deployment), and
///   the kubelet's timestamps never go backwards within a container's log.
/// * `cfg.container` names a container of the pods of `cfg.selector`; proxy pods are read
///   through their first container (`chp` in Zero to JupyterHub). A pod without the named
///   container is not followed (counted in `errors`, logged).
pub async fn follow(
    client: kube::Client,
    cfg: KubeSourceConfig,
    resume: Resume,
    tx: mpsc::Sender<PodLines>,
    shutdown: tokio_util::sync::CancellationToken,
    stats: Arc<KubeStats>,
) -> Result<(), SourceError> {
    let mut selectors = vec![(cfg.selector.clone(), cfg.container.clone())];
    if let Some(proxy) = &cfg.proxy_selector {
        selectors.push((proxy.clone(), None));
    }
    let loops = selectors.into_iter().map(|(selector, container)| {
        SelectorLoop {
            api: Api::namespaced(client.clone(), &cfg.namespace),
            namespace: cfg.namespace.clone(),
            selector,
            container,
            positions: resume.clone(),
            tx: tx.clone(),
            stats: stats.clone(),
            shutdown: shutdown.clone(),
            pods: watch::Sender::new(PodMap::new()),
            tasks: JoinSet::new(),
            active: HashSet::new(),
            finished: HashSet::new(),
        }
        .run()
    });
    futures::future::try_join_all(loops).await?;
    Ok(())
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// What follows a failed list or watch.
enum After {
    /// Go on polling the watcher (it relists by itself after a `410 Gone` watch event).
    Poll,
    /// Start a new watcher: list again (a watch request answered `410 Gone`).
    Relist,
    /// Poll again after a backoff.
    Retry,
}

/// List + watch of one selector, and the stream tasks of the pods it picks.
struct SelectorLoop {
    api: Api<Pod>,
    namespace: String,
    selector: String,
    container: Option<String>,
    /// Per stream key: committed position at start, then the last position sent.
    positions: Resume,
    tx: mpsc::Sender<PodLines>,
    stats: Arc<KubeStats>,
    shutdown: tokio_util::sync::CancellationToken,
    /// The pods as last seen; stream tasks read it when their connection ends.
    pods: watch::Sender<PodMap>,
    tasks: JoinSet<TaskEnd>,
    /// Uids of pods a task is following.
    active: HashSet<String>,
    /// Uids of pods whose log is complete (or cannot be read): never attached again.
    finished: HashSet<String>,
}

impl SelectorLoop {
    async fn run(mut self) -> Result<(), KubeError> {
        let result = self.list_and_watch().await;
        // Tasks watch `shutdown` too; aborting also covers the error path.
        self.tasks.shutdown().await;
        result
    }

    /// The watcher of this selector: list, then watch from the list's version (renewed every
    /// [`WATCH_TIMEOUT_SECS`] from the last version seen), list again when it expired.
    fn watcher(&self) -> BoxStream<'static, Result<watcher::Event<Pod>, watcher::Error>> {
        let cfg = watcher::Config {
            // One list request, as the selector matches a handful of pods.
            page_size: None,
            ..watcher::Config::default()
                .labels(&self.selector)
                .timeout(WATCH_TIMEOUT_SECS)
        };
        watcher(self.api.clone(), cfg).boxed()
    }

    async fn list_and_watch(&mut self) -> Result<(), KubeError> {
        let mut events = self.watcher();
        // The pods of a list in progress (between `Init` and `InitDone`).
        let mut listing: Option<PodMap> = None;
        let mut attempt: u32 = 0;
        loop {
            let event = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.reap(done)?;
                    continue;
                }
                event = events.next() => event,
            };
            let after = match event {
                Some(Ok(event)) => {
                    if !matches!(event, watcher::Event::Init) {
                        attempt = 0;
                    }
                    self.apply(event, &mut listing);
                    continue;
                }
                Some(Err(e)) => self.failed(e)?,
                // A watcher does not end; should it, start it again.
                None => After::Relist,
            };
            match after {
                After::Poll => {}
                After::Relist => {
                    events = self.watcher();
                    listing = None;
                }
                After::Retry => {
                    let delay = BACKOFF.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    if self.pause(delay).await? {
                        return Ok(());
                    }
                    self.stats.reconnects.fetch_add(1, Relaxed);
                }
            }
        }
    }

    /// Applies one watcher event to the pod map: a list replaces it whole once complete.
    fn apply(&mut self, event: watcher::Event<Pod>, listing: &mut Option<PodMap>) {
        match event {
            watcher::Event::Init => *listing = Some(PodMap::new()),
            watcher::Event::InitApply(pod) => {
                let info = PodInfo::from_pod(&pod);
                listing
                    .get_or_insert_with(PodMap::new)
                    .insert(info.name.clone(), info);
            }
            watcher::Event::InitDone => {
                self.pods.send_replace(listing.take().unwrap_or_default());
                self.reconcile();
            }
            watcher::Event::Apply(pod) => {
                let info = PodInfo::from_pod(&pod);
                self.pods.send_modify(|m| {
                    m.insert(info.name.clone(), info);
                });
                self.reconcile();
            }
            watcher::Event::Delete(pod) => {
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                self.pods.send_modify(|m| {
                    m.remove(name);
                });
                self.reconcile();
            }
        }
    }

    /// A failed list or watch: fatal, or what to do next.
    fn failed(&self, e: watcher::Error) -> Result<After, KubeError> {
        // A request that failed is described by the API's own error, as before the watcher.
        let (action, code, message) = match &e {
            watcher::Error::InitialListFailed(e) => ("list pods", api_code(e), e.to_string()),
            watcher::Error::WatchStartFailed(e) => ("watch pods", api_code(e), e.to_string()),
            watcher::Error::WatchError(status) if status.code == 410 => return Ok(After::Poll),
            e => ("watch pods", None, e.to_string()),
        };
        let namespace = self.namespace.clone();
        match code {
            Some(code @ (401 | 403)) => Err(KubeError::Forbidden {
                action,
                namespace,
                code,
                message,
            }),
            Some(code @ (400 | 422)) => Err(KubeError::Rejected {
                action,
                namespace,
                code,
                message,
            }),
            Some(410) => Ok(After::Relist),
            _ => {
                self.stats.errors.fetch_add(1, Relaxed);
                tracing::warn!(selector = %self.selector, error = %message, "{action} failed");
                Ok(After::Retry)
            }
        }
    }

    /// Waits `delay`, reaping tasks meanwhile. `Ok(true)` on shutdown.
    async fn pause(&mut self, delay: Duration) -> Result<bool, KubeError> {
        let sleep = tokio::time::sleep(delay);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(true),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.reap(done)?,
                _ = &mut sleep => return Ok(false),
            }
        }
    }

    /// Starts a task for the pod [`choose_pod`] picks, unless one follows it already.
    fn reconcile(&mut self) {
        let pods = self.pods.borrow();
        let Some(pod) = choose_pod(pods.values()) else {
            return;
        };
        if self.active.contains(&pod.uid) || self.finished.contains(&pod.uid) {
            return;
        }
        let Some(container) = container_for(pod, self.container.as_deref()) else {
            self.stats.errors.fetch_add(1, Relaxed);
            tracing::error!(pod = %pod.name, wanted = ?self.container, containers = ?pod.containers,
                "pod has no such container; not following it");
            self.finished.insert(pod.uid.clone());
            return;
        };
        let key = stream_key(&self.namespace, &pod.name, container);
        tracing::info!(stream = %key, from = ?self.positions.get(&key), "attaching to pod log");
        let task = StreamTask {
            api: self.api.clone(),
            namespace: self.namespace.clone(),
            pod: pod.clone(),
            container: container.to_string(),
            floor: self.positions.get(&key).copied(),
            key,
            pods: self.pods.subscribe(),
            tx: self.tx.clone(),
            stats: self.stats.clone(),
            shutdown: self.shutdown.clone(),
        };
        self.active.insert(pod.uid.clone());
        drop(pods);
        self.tasks.spawn(task.run());
    }

    fn reap(&mut self, done: Result<TaskEnd, tokio::task::JoinError>) -> Result<(), KubeError> {
        let end = done?;
        self.active.remove(&end.uid);
        if let Some(last) = end.last {
            self.positions.insert(end.key.clone(), last);
        }
        match end.result {
            Ok(true) => {
                self.finished.insert(end.uid);
                Ok(())
            }
            Ok(false) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
