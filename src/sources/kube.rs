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
//! For each selector (`cfg.selector`, and `cfg.proxy_selector` if set) one loop lists the
//! matching pods in `cfg.namespace`, then watches them from the list's `resourceVersion`
//! (`GET /api/v1/namespaces/{ns}/pods?labelSelector=…[&watch=true…]`). After every change it
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
//! started (400) are retried with [`backoff_delay`] and counted in [`KubeStats::errors`].
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
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, WatchEvent, WatchParams};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

pub use lines::{LineAssembler, already_delivered, next_pos, parse_kubelet_line, since_second};
pub use pods::{
    BACKOFF_BASE, BACKOFF_CAP, Next, PodInfo, StreamEnd, after_stream_end, backoff_delay,
    choose_pod, container_for, random_jitter,
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
    /// Prometheus counter names and values (all `_total`, no labels).
    pub fn metrics(&self) -> [(&'static str, u64); 8] {
        [
            ("hubpulse_kube_lines_total", self.lines),
            ("hubpulse_kube_bytes_total", self.bytes),
            ("hubpulse_kube_attaches_total", self.attaches),
            ("hubpulse_kube_detaches_total", self.detaches),
            ("hubpulse_kube_reconnects_total", self.reconnects),
            ("hubpulse_kube_errors_total", self.errors),
            (
                "hubpulse_kube_skipped_on_resume_total",
                self.skipped_on_resume,
            ),
            (
                "hubpulse_kube_malformed_timestamps_total",
                self.malformed_ts,
            ),
        ]
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
/// [`KubeError::Forbidden`] (RBAC), [`KubeError::Rejected`] (e.g. an invalid selector),
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
) -> Result<(), KubeError> {
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
    futures::future::try_join_all(loops).await.map(|_| ())
}

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// What one list or watch call led to.
enum Step {
    /// Watch from this resource version next (`None`: list first).
    Continue(Option<String>),
    /// Same, after a backoff.
    Retry(Option<String>),
    Shutdown,
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

    async fn list_and_watch(&mut self) -> Result<(), KubeError> {
        let mut version: Option<String> = None;
        let mut attempt: u32 = 0;
        loop {
            let step = match version.take() {
                None => self.list().await?,
                Some(v) => self.watch(v).await?,
            };
            match step {
                Step::Shutdown => return Ok(()),
                Step::Continue(v) => {
                    attempt = 0;
                    version = v;
                }
                Step::Retry(v) => {
                    let delay = backoff_delay(attempt, random_jitter());
                    attempt = attempt.saturating_add(1);
                    if self.pause(delay).await? {
                        return Ok(());
                    }
                    self.stats.reconnects.fetch_add(1, Relaxed);
                    version = v;
                }
            }
        }
    }

    async fn list(&mut self) -> Result<Step, KubeError> {
        let api = self.api.clone();
        let params = ListParams::default().labels(&self.selector);
        let list = api.list(&params);
        tokio::pin!(list);
        let listed = loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(Step::Shutdown),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.reap(done)?,
                r = &mut list => break r,
            }
        };
        let list = match listed {
            Ok(list) => list,
            Err(e) => return self.failed("list pods", e, None),
        };
        let pods = list
            .items
            .iter()
            .map(PodInfo::from_pod)
            .map(|p| (p.name.clone(), p))
            .collect();
        self.pods.send_replace(pods);
        self.reconcile();
        Ok(Step::Continue(Some(
            list.metadata.resource_version.unwrap_or_default(),
        )))
    }

    async fn watch(&mut self, mut version: String) -> Result<Step, KubeError> {
        let api = self.api.clone();
        let params = WatchParams::default()
            .labels(&self.selector)
            .timeout(WATCH_TIMEOUT_SECS);
        let from = version.clone();
        let opening = api.watch(&params, &from);
        tokio::pin!(opening);
        let opened = loop {
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(Step::Shutdown),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => self.reap(done)?,
                r = &mut opening => break r,
            }
        };
        let events = match opened {
            Ok(events) => events,
            Err(e) => return self.failed("watch pods", e, Some(version)),
        };
        tokio::pin!(events);
        let mut progressed = false;
        loop {
            let event = tokio::select! {
                () = self.shutdown.cancelled() => return Ok(Step::Shutdown),
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    self.reap(done)?;
                    continue;
                }
                event = events.next() => event,
            };
            let event = match event {
                // The server's timeout: watch again from where this one got to.
                None if progressed => return Ok(Step::Continue(Some(version))),
                None => return Ok(Step::Retry(Some(version))),
                Some(Err(e)) => {
                    self.stats.errors.fetch_add(1, Relaxed);
                    tracing::warn!(selector = %self.selector, error = %e, "pod watch failed");
                    return Ok(Step::Retry(Some(version)));
                }
                Some(Ok(event)) => event,
            };
            progressed = true;
            if let Some(step) = self.apply(event, &mut version) {
                return Ok(step);
            }
        }
    }

    /// Applies one watch event to the pod map (and `version`); `Some` ends this watch.
    fn apply(&mut self, event: WatchEvent<Pod>, version: &mut String) -> Option<Step> {
        let pod = match event {
            WatchEvent::Added(pod) | WatchEvent::Modified(pod) => {
                let info = PodInfo::from_pod(&pod);
                self.pods.send_modify(|m| {
                    m.insert(info.name.clone(), info);
                });
                pod
            }
            WatchEvent::Deleted(pod) => {
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                self.pods.send_modify(|m| {
                    m.remove(name);
                });
                pod
            }
            WatchEvent::Bookmark(b) => {
                *version = b.metadata.resource_version;
                return None;
            }
            // The version is too old to watch from: list again.
            WatchEvent::Error(status) if status.code == 410 => return Some(Step::Continue(None)),
            WatchEvent::Error(status) => {
                self.stats.errors.fetch_add(1, Relaxed);
                tracing::warn!(selector = %self.selector, ?status, "pod watch error");
                return Some(Step::Retry(None));
            }
        };
        if let Some(v) = pod.metadata.resource_version {
            *version = v;
        }
        self.reconcile();
        None
    }

    /// A failed list or watch request: fatal, or retried from `version`.
    fn failed(
        &self,
        action: &'static str,
        e: kube::Error,
        version: Option<String>,
    ) -> Result<Step, KubeError> {
        let namespace = self.namespace.clone();
        let message = e.to_string();
        match api_code(&e) {
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
            Some(410) => Ok(Step::Continue(None)),
            _ => {
                self.stats.errors.fetch_add(1, Relaxed);
                tracing::warn!(selector = %self.selector, error = %message, "{action} failed");
                Ok(Step::Retry(version))
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
