//! The Kubernetes pod-log source against a scripted API server.
//!
//! No real API server can run here, so an axum server on 127.0.0.1 plays one: it answers pod
//! lists from a table the test edits, and hands every watch and every log request to the test
//! (with its query) together with the sending end of the response body. The test decides what
//! the body carries and when it ends, asserts the exact requests the source made, and waits
//! on what it observes (requests arriving, batches received), never on the clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hubpulse::sources::kube::{
    KubeError, KubeSourceConfig, KubeStats, PodLines, Resume, StreamPos, follow,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::kube_fixtures;
use crate::support::api::{self, RequestLog, StreamTx, WAIT};

/// 2026-11-28T19:00:00Z in nanoseconds.
const T0: i64 = 1_795_892_400 * 1_000_000_000;

/// A watch or log request, handed to the test with the body it controls.
struct Call {
    /// The pod of a log request.
    pod: Option<String>,
    query: HashMap<String, String>,
    body: StreamTx,
}

impl Call {
    fn send(&self, data: &str) {
        self.body.send(data);
    }

    /// Breaks the connection mid-body (no terminating chunk): the client sees an error.
    fn cut(self) {
        self.body.cut();
    }

    /// A watch event, one JSON document per line as the API server sends them.
    fn event(&self, kind: &str, pod: &Value) {
        self.body.event(kind, pod);
    }
}

#[derive(Clone)]
struct ApiState {
    pods: Arc<Mutex<Vec<Value>>>,
    forbid: Arc<AtomicBool>,
    watches: mpsc::UnboundedSender<Call>,
    logs: mpsc::UnboundedSender<Call>,
}

/// The scripted API server ([`api::ScriptedApi`]) with this module's routes.
struct Kube {
    server: api::ScriptedApi,
    state: ApiState,
    watches: mpsc::UnboundedReceiver<Call>,
    logs: mpsc::UnboundedReceiver<Call>,
}

impl Kube {
    async fn start(pods: Vec<Value>) -> Kube {
        let (watch_tx, watches) = mpsc::unbounded_channel();
        let (log_tx, logs) = mpsc::unbounded_channel();
        let state = ApiState {
            pods: Arc::new(Mutex::new(pods)),
            forbid: Arc::default(),
            watches: watch_tx,
            logs: log_tx,
        };
        let app = Router::new()
            .route("/api/v1/namespaces/{ns}/pods", get(pods_handler))
            .route("/api/v1/namespaces/{ns}/pods/{pod}/log", get(log_handler))
            .fallback(unexpected)
            .with_state(state.clone());
        Kube {
            server: api::ScriptedApi::start(RequestLog::default(), app).await,
            state,
            watches,
            logs,
        }
    }

    fn client(&self) -> kube::Client {
        self.server.kube_client()
    }

    async fn next_watch(&mut self) -> Call {
        tokio::time::timeout(WAIT, self.watches.recv())
            .await
            .expect("the source opens a watch")
            .unwrap()
    }

    async fn next_log(&mut self) -> Call {
        tokio::time::timeout(WAIT, self.logs.recv())
            .await
            .expect("the source requests a pod log")
            .unwrap()
    }

    fn set_pods(&self, pods: Vec<Value>) {
        *self.state.pods.lock().unwrap() = pods;
    }

    /// Every request, as `path?query`, in arrival order.
    fn requests(&self) -> Vec<String> {
        self.server.uris()
    }

    /// Waits until `n` requests containing `part` have been recorded (the answer to the last
    /// is on its way).
    async fn wait_request(&self, part: &str, n: usize) {
        self.server.wait_request(part, n).await;
    }

    fn log_requests(&self) -> Vec<String> {
        let mut r = self.requests();
        r.retain(|r| r.contains("/log?"));
        r
    }
}

fn status(code: StatusCode, reason: &str) -> Response {
    api::kube_status(code.as_u16(), reason, &format!("scripted {reason}"))
}

fn streaming(call: impl FnOnce(StreamTx) -> Call, to: &mpsc::UnboundedSender<Call>) -> Response {
    let (tx, response) = api::stream();
    let _ = to.send(call(tx));
    response
}

async fn pods_handler(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if state.forbid.load(Relaxed) {
        return status(StatusCode::FORBIDDEN, "Forbidden");
    }
    if query.get("watch").map(String::as_str) == Some("true") {
        return streaming(
            |body| Call {
                pod: None,
                query,
                body,
            },
            &state.watches,
        );
    }
    let (key, value) = query["labelSelector"].split_once('=').unwrap();
    let items: Vec<Value> = state
        .pods
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["labels"][key] == value)
        .cloned()
        .collect();
    axum::Json(json!({
        "kind": "PodList", "apiVersion": "v1",
        "metadata": { "resourceVersion": "100" },
        "items": items,
    }))
    .into_response()
}

async fn log_handler(
    State(state): State<ApiState>,
    Path((_ns, pod)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let exists = state
        .pods
        .lock()
        .unwrap()
        .iter()
        .any(|p| p["metadata"]["name"] == pod.as_str());
    if !exists {
        return status(StatusCode::NOT_FOUND, "NotFound");
    }
    streaming(
        |body| Call {
            pod: Some(pod),
            query,
            body,
        },
        &state.logs,
    )
}

async fn unexpected() -> Response {
    status(StatusCode::NOT_FOUND, "NotFound")
}

/// A pod as the API server returns it: Z2JH's hub pod of `fixtures/kube/hub-pod.json` with the
/// name, `component` label, creation time (RFC 3339), phase and (single) container the test
/// scripts.
fn pod(name: &str, component: &str, created: &str, phase: &str, container: &str) -> Value {
    let mut p = kube_fixtures::json("hub-pod.json");
    let meta = &mut p["metadata"];
    meta["name"] = json!(name);
    meta["uid"] = json!(format!("uid-{name}"));
    meta["resourceVersion"] = json!("101");
    meta["creationTimestamp"] = json!(created);
    meta["labels"]["component"] = json!(component);
    p["spec"]["containers"][0]["name"] = json!(container);
    p["status"]["phase"] = json!(phase);
    p["status"]["containerStatuses"][0]["name"] = json!(container);
    if phase != "Running" {
        p["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "ContainerCreating"}});
        p["status"]["containerStatuses"][0]["ready"] = json!(false);
        p["status"]["containerStatuses"][0]["started"] = json!(false);
    }
    p
}

fn hub_pod(name: &str, created: &str, phase: &str) -> Value {
    pod(name, "hub", created, phase, "hub")
}

fn terminating(mut pod: Value) -> Value {
    pod["metadata"]["deletionTimestamp"] = json!("2026-11-28T19:05:00Z");
    pod
}

fn cfg() -> KubeSourceConfig {
    KubeSourceConfig {
        namespace: "jhub".into(),
        ..KubeSourceConfig::default()
    }
}

/// A `follow` running in the background.
struct Source {
    rx: mpsc::Receiver<PodLines>,
    shutdown: tokio_util::sync::CancellationToken,
    stats: Arc<KubeStats>,
    task: JoinHandle<Result<(), hubpulse::sources::SourceError>>,
}

fn start(api: &Kube, cfg: KubeSourceConfig, resume: Resume, capacity: usize) -> Source {
    let (tx, rx) = mpsc::channel(capacity);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let shutdown_rx = shutdown.clone();
    let stats = Arc::new(KubeStats::default());
    let task = tokio::spawn(follow(
        api.client(),
        cfg,
        resume,
        tx,
        shutdown_rx,
        stats.clone(),
    ));
    Source {
        rx,
        shutdown,
        stats,
        task,
    }
}

/// One received line: stream, text (with its `\n`), position.
type Line = (String, String, StreamPos);

impl Source {
    /// Receives batches until `n` lines have arrived (exactly: a batch may not overshoot).
    async fn lines(&mut self, n: usize) -> Vec<Line> {
        let mut out = Vec::new();
        while out.len() < n {
            let batch = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} lines arrived: {out:?}", out.len()))
                .expect("the source is running");
            out.extend(split(&batch));
        }
        assert_eq!(out.len(), n, "more lines than expected: {out:?}");
        out
    }

    /// Waits until `n` streams are complete (`detaches`). A counter has no event to wait on, so
    /// this polls it; the deadline is only a failure bound.
    async fn detached(&self, n: u64) {
        let stats = self.stats.clone();
        let done = async move {
            while stats.snapshot().detaches < n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(WAIT, done)
            .await
            .unwrap_or_else(|_| panic!("{n} streams never completed: {:?}", self.stats.snapshot()));
    }

    /// Asks for shutdown and checks that `follow` returns promptly and cleanly; then checks
    /// that nothing else was sent.
    async fn stop(mut self) -> Arc<KubeStats> {
        let asked = Instant::now();
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(1), self.task)
            .await
            .expect("follow returns within a second of shutdown");
        result.unwrap().unwrap();
        assert!(asked.elapsed() < Duration::from_secs(1));
        let rest = self.rx.recv().await.map(|b| split(&b));
        assert_eq!(rest, None, "nothing more was sent");
        self.stats
    }
}

/// The lines of a batch, checking its invariants (offsets, newlines, increasing positions).
fn split(batch: &PodLines) -> Vec<Line> {
    let mut start = 0;
    let mut prev: Option<StreamPos> = None;
    let lines: Vec<Line> = batch
        .ends
        .iter()
        .map(|&(end, pos)| {
            let text = std::str::from_utf8(&batch.bytes[start..end]).unwrap();
            assert!(text.ends_with('\n') && !text[..text.len() - 1].contains('\n'));
            assert!(prev.is_none_or(|p| p < pos), "positions increase");
            prev = Some(pos);
            start = end;
            (batch.stream.clone(), text.to_owned(), pos)
        })
        .collect();
    assert_eq!(start, batch.bytes.len(), "ends cover the bytes");
    assert!(!lines.is_empty(), "no empty batches");
    lines
}

fn at(stream: &str, text: &str, ts_nanos: i64, same_ts: u32) -> Line {
    (
        stream.to_owned(),
        format!("{text}\n"),
        StreamPos { ts_nanos, same_ts },
    )
}

fn assert_log_query(call: &Call, pod: &str, since: Option<&str>) {
    assert_eq!(call.pod.as_deref(), Some(pod));
    assert_eq!(call.query.get("container").map(String::as_str), Some("hub"));
    assert_eq!(call.query.get("follow").map(String::as_str), Some("true"));
    assert_eq!(
        call.query.get("timestamps").map(String::as_str),
        Some("true")
    );
    assert_eq!(call.query.get("sinceTime").map(String::as_str), since);
}

const SEC: i64 = 1_000_000_000;

#[tokio::test]
async fn attaches_to_the_newest_running_hub_pod_and_strips_kubelet_timestamps() {
    let mut api = Kube::start(vec![
        hub_pod("hub-old", "2026-11-28T17:00:00Z", "Running"),
        hub_pod("hub-new", "2026-11-28T18:00:00Z", "Running"),
        hub_pod("hub-pending", "2026-11-28T18:30:00Z", "Pending"),
        terminating(hub_pod("hub-leaving", "2026-11-28T18:45:00Z", "Running")),
        pod("proxy-1", "proxy", "2026-11-28T18:50:00Z", "Running", "chp"),
    ])
    .await;
    let mut source = start(&api, cfg(), Resume::new(), 16);

    let log = api.next_log().await;
    assert_log_query(&log, "hub-new", None);
    let watch = api.next_watch().await;
    assert_eq!(watch.query["labelSelector"], "component=hub");
    assert_eq!(watch.query["resourceVersion"], "100");
    let requests = api.requests();
    assert_eq!(
        requests[0], "/api/v1/namespaces/jhub/pods?&labelSelector=component%3Dhub",
        "first a list of the hub pods: {requests:?}"
    );

    // Chunks cut anywhere, fractions of any length, two lines sharing one timestamp, an
    // empty line.
    log.send("2026-11-28T19:00:01.5Z [I 2026-11-28 19:00:01.500 JupyterHub app:3320] Running\n2026-11-28T19:00:0");
    log.send("2.000000001Z a\n2026-11-28T19:00:02.000000001Z b\n");
    log.send("2026-11-28T19:00:03Z \n");
    let s = "k8s/jhub/hub-new/hub";
    assert_eq!(
        source.lines(4).await,
        [
            at(
                s,
                "[I 2026-11-28 19:00:01.500 JupyterHub app:3320] Running",
                T0 + SEC + SEC / 2,
                1
            ),
            at(s, "a", T0 + 2 * SEC + 1, 1),
            at(s, "b", T0 + 2 * SEC + 1, 2),
            at(s, "", T0 + 3 * SEC, 1),
        ]
    );
    let stats = source.stop().await.snapshot();
    assert_eq!((stats.lines, stats.attaches, stats.reconnects), (4, 1, 0));
    assert_eq!(stats.bytes, 56 + 2 + 2 + 1);
    assert_eq!(api.log_requests().len(), 1);
}

const A: &str = "k8s/jhub/hub-a/hub";
const B: &str = "k8s/jhub/hub-b/hub";

/// Following `hub-a`, two lines received; the watch is open.
struct Replacing {
    api: Kube,
    source: Source,
    old_log: Call,
    watch: Call,
    old: Value,
    new: Value,
}

async fn following_hub_a() -> Replacing {
    let old = hub_pod("hub-a", "2026-11-28T17:00:00Z", "Running");
    let new = hub_pod("hub-b", "2026-11-28T19:00:10Z", "Running");
    let mut api = Kube::start(vec![old.clone()]).await;
    let mut source = start(&api, cfg(), Resume::new(), 16);
    let old_log = api.next_log().await;
    assert_log_query(&old_log, "hub-a", None);
    let watch = api.next_watch().await;
    old_log.send("2026-11-28T19:00:01Z a1\n2026-11-28T19:00:02Z a2\n");
    assert_eq!(
        source.lines(2).await,
        [at(A, "a1", T0 + SEC, 1), at(A, "a2", T0 + 2 * SEC, 1)]
    );
    Replacing {
        api,
        source,
        old_log,
        watch,
        old,
        new,
    }
}

/// The rest of the old stream (`a3`, `a4` without its newline) and two lines of the new one
/// all arrive once; the old stream has ended cleanly.
async fn assert_rest_of_both(source: &mut Source, old_log: Call, new_log: &Call) {
    old_log.send("2026-11-28T19:00:11Z a3\n2026-11-28T19:00:12Z a4 last words");
    drop(old_log); // clean end of the old stream
    new_log.send("2026-11-28T19:00:11Z b1\n2026-11-28T19:00:11Z b2\n");
    let mut got = source.lines(4).await;
    got.sort_by(|x, y| (&x.0, x.2).cmp(&(&y.0, y.2)));
    assert_eq!(
        got,
        [
            at(A, "a3", T0 + 11 * SEC, 1),
            at(A, "a4 last words", T0 + 12 * SEC, 1),
            at(B, "b1", T0 + 11 * SEC, 1),
            at(B, "b2", T0 + 11 * SEC, 2),
        ]
    );
}

#[tokio::test]
async fn follows_the_replacement_pod_and_reads_the_old_stream_to_its_end() {
    let Replacing {
        mut api,
        mut source,
        old_log,
        watch,
        old,
        new,
    } = following_hub_a().await;

    // The hub is replaced: the old pod is deleted, the new one runs; the old pod's log
    // stream has not ended yet (its last lines are still in flight).
    api.set_pods(vec![new.clone()]);
    watch.event("DELETED", &old);
    watch.event("ADDED", &new);
    let new_log = api.next_log().await;
    assert_log_query(&new_log, "hub-b", None);
    assert_rest_of_both(&mut source, old_log, &new_log).await;
    source.detached(1).await;

    let stats = source.stop().await.snapshot();
    assert_eq!((stats.attaches, stats.detaches), (2, 1));
    assert_eq!((stats.reconnects, stats.errors), (0, 0));
    assert_eq!((stats.lines, stats.skipped_on_resume), (6, 0));
    let logs = api.log_requests();
    assert_eq!(
        logs.len(),
        2,
        "one request per pod, no retry of the old one: {logs:?}"
    );
}

#[tokio::test]
async fn a_terminating_old_pod_is_read_to_its_end_and_not_reconnected() {
    let Replacing {
        mut api,
        mut source,
        old_log,
        watch,
        old,
        new,
    } = following_hub_a().await;

    // A rolling replacement: the old pod starts terminating while the new one already runs.
    api.set_pods(vec![terminating(old.clone()), new.clone()]);
    watch.event("MODIFIED", &terminating(old.clone()));
    watch.event("ADDED", &new);
    let new_log = api.next_log().await;
    assert_log_query(&new_log, "hub-b", None);
    assert_rest_of_both(&mut source, old_log, &new_log).await;
    // The old pod is still there (terminating): its stream is complete all the same.
    source.detached(1).await;
    let stats = source.stats.snapshot();
    assert_eq!((stats.attaches, stats.reconnects, stats.errors), (2, 0, 0));

    let stats = source.stop().await.snapshot();
    assert_eq!(
        (stats.attaches, stats.detaches, stats.reconnects),
        (2, 1, 0)
    );
    let logs = api.log_requests();
    assert_eq!(
        logs.len(),
        2,
        "one request per pod, no retry of the old one: {logs:?}"
    );
}

#[tokio::test]
async fn an_old_stream_ending_before_the_watch_notices_ends_at_the_404() {
    let Replacing {
        mut api,
        mut source,
        old_log,
        watch,
        old,
        new,
    } = following_hub_a().await;

    // The old container exits and its pod is deleted before the watch reports anything:
    // the source still believes the pod runs, so it reconnects, and the 404 ends the stream.
    api.set_pods(vec![new.clone()]);
    old_log.send("2026-11-28T19:00:11Z a3\n");
    drop(old_log);
    assert_eq!(source.lines(1).await, [at(A, "a3", T0 + 11 * SEC, 1)]);
    api.wait_request(
        "/pods/hub-a/log?&container=hub&follow=true&sinceTime=2026-11-28T19%3A00%3A11Z",
        1,
    )
    .await;
    source.detached(1).await;

    watch.event("DELETED", &old);
    watch.event("ADDED", &new);
    let new_log = api.next_log().await;
    assert_log_query(&new_log, "hub-b", None);
    new_log.send("2026-11-28T19:00:12Z b1\n");
    assert_eq!(source.lines(1).await, [at(B, "b1", T0 + 12 * SEC, 1)]);

    let stats = source.stop().await.snapshot();
    assert_eq!((stats.attaches, stats.detaches), (2, 1));
    assert_eq!((stats.reconnects, stats.errors), (1, 0));
    let logs = api.log_requests();
    assert_eq!(logs.len(), 3, "{logs:?}");
}

#[tokio::test]
async fn reconnects_after_a_dropped_stream_and_skips_what_it_already_sent() {
    let mut api = Kube::start(vec![hub_pod("hub-x", "2026-11-28T17:00:00Z", "Running")]).await;
    let mut source = start(&api, cfg(), Resume::new(), 16);
    let first = api.next_log().await;
    assert_log_query(&first, "hub-x", None);
    first.send(
        "2026-11-28T19:00:01.1Z l1\n\
         2026-11-28T19:00:02.5Z l2\n\
         2026-11-28T19:00:02.5Z l3\n\
         2026-11-28T19:00:03Z l5 cut sh",
    );
    let s = "k8s/jhub/hub-x/hub";
    let (t1, t2, t3) = (T0 + SEC + SEC / 10, T0 + 2 * SEC + SEC / 2, T0 + 3 * SEC);
    assert_eq!(
        source.lines(3).await,
        [at(s, "l1", t1, 1), at(s, "l2", t2, 1), at(s, "l3", t2, 2)]
    );
    first.cut();

    // Reconnected from the last line sent, at the API's one-second precision; the kubelet
    // replays that second, including the two lines sharing a timestamp.
    let second = api.next_log().await;
    assert_log_query(&second, "hub-x", Some("2026-11-28T19:00:02Z"));
    second.send(
        "2026-11-28T19:00:02.5Z l2\n\
         2026-11-28T19:00:02.5Z l3\n\
         2026-11-28T19:00:02.5Z l4\n\
         2026-11-28T19:00:03Z l5 cut short before\n",
    );
    assert_eq!(
        source.lines(2).await,
        [at(s, "l4", t2, 3), at(s, "l5 cut short before", t3, 1)]
    );
    let stats = source.stop().await.snapshot();
    assert_eq!(
        (stats.lines, stats.reconnects, stats.skipped_on_resume),
        (5, 1, 2)
    );
    assert!(stats.errors >= 1, "the cut is counted: {stats:?}");
    assert_eq!(api.log_requests().len(), 2);
}

#[tokio::test]
async fn a_burst_is_sent_in_bounded_batches_in_order() {
    let mut api = Kube::start(vec![hub_pod("hub-x", "2026-11-28T17:00:00Z", "Running")]).await;
    let mut source = start(&api, cfg(), Resume::new(), 64);
    let log = api.next_log().await;
    // 400 lines of 1 KiB (after the timestamp) in one write: 400 KiB.
    let text = |i: usize| format!("{i:04} {}", "x".repeat(1018));
    let burst: String = (0..400)
        .map(|i| format!("2026-11-28T19:00:01Z {}\n", text(i)))
        .collect();
    log.send(&burst);
    let mut got = Vec::new();
    while got.len() < 400 {
        let batch = tokio::time::timeout(WAIT, source.rx.recv())
            .await
            .expect("the burst arrives")
            .unwrap();
        assert!(
            batch.bytes.len() <= 64 * 1024 + 1024,
            "{}",
            batch.bytes.len()
        );
        got.extend(split(&batch));
    }
    let s = "k8s/jhub/hub-x/hub";
    let want: Vec<Line> = (0..400)
        .map(|i| at(s, &text(i), T0 + SEC, i as u32 + 1))
        .collect();
    assert_eq!(got, want);
    source.stop().await;
}

#[tokio::test]
async fn resumes_after_the_committed_position_without_resending() {
    let mut api = Kube::start(vec![hub_pod("hub-x", "2026-11-28T17:00:00Z", "Running")]).await;
    let t2 = T0 + 2 * SEC + SEC / 2;
    let resume = Resume::from([
        (
            "k8s/jhub/hub-x/hub".to_owned(),
            StreamPos {
                ts_nanos: t2,
                same_ts: 2,
            },
        ),
        // A pod that is gone: its position is simply unused.
        (
            "k8s/jhub/hub-gone/hub".to_owned(),
            StreamPos {
                ts_nanos: T0,
                same_ts: 1,
            },
        ),
    ]);
    let mut source = start(&api, cfg(), resume, 16);
    let log = api.next_log().await;
    assert_log_query(&log, "hub-x", Some("2026-11-28T19:00:02Z"));
    log.send(
        "2026-11-28T19:00:02.1Z before\n\
         2026-11-28T19:00:02.5Z committed 1\n\
         2026-11-28T19:00:02.5Z committed 2\n\
         2026-11-28T19:00:02.5Z new 3\n\
         2026-11-28T19:00:04Z new 4\n",
    );
    let s = "k8s/jhub/hub-x/hub";
    assert_eq!(
        source.lines(2).await,
        [at(s, "new 3", t2, 3), at(s, "new 4", T0 + 4 * SEC, 1)]
    );
    let stats = source.stop().await.snapshot();
    assert_eq!((stats.lines, stats.skipped_on_resume), (2, 3));
    let requests = api.requests();
    assert!(
        !requests.iter().any(|r| r.contains("hub-gone")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn rewatches_from_the_last_version_and_relists_when_it_expired() {
    let hub = hub_pod("hub-x", "2026-11-28T17:00:00Z", "Running");
    let mut api = Kube::start(vec![hub.clone()]).await;
    let source = start(&api, cfg(), Resume::new(), 16);
    let log = api.next_log().await;
    assert_log_query(&log, "hub-x", None);
    let first = api.next_watch().await;
    assert_eq!(first.query["resourceVersion"], "100");

    // A change (seen: the source attaches to the new pod), then the connection breaks:
    // watch again from that change's version.
    let mut newer = hub_pod("hub-y", "2026-11-28T18:00:00Z", "Running");
    newer["metadata"]["resourceVersion"] = json!("205");
    api.set_pods(vec![hub.clone(), newer.clone()]);
    first.event("ADDED", &newer);
    assert_log_query(&api.next_log().await, "hub-y", None);
    first.cut();
    let second = api.next_watch().await;
    assert_eq!(second.query["labelSelector"], "component=hub");
    assert_eq!(second.query["resourceVersion"], "205");

    // That version expires (410) while the hub is being replaced again: list again, attach
    // to the pod the new list shows, watch from the new list's version.
    let newest = hub_pod("hub-z", "2026-11-28T18:30:00Z", "Running");
    api.set_pods(vec![hub, newer, newest]);
    let gone = kube_fixtures::watch_events("watch-410-gone.jsonl");
    assert_eq!(gone[0]["type"], "ERROR");
    second.event("ERROR", &gone[0]["object"]);
    assert_log_query(&api.next_log().await, "hub-z", None);
    let third = api.next_watch().await;
    assert_eq!(third.query["resourceVersion"], "100");
    api.wait_request("/pods?&labelSelector=component%3Dhub", 2)
        .await;
    source.stop().await;
    let logs = api.log_requests();
    assert_eq!(logs.len(), 3, "one log request per pod: {logs:?}");
    drop(log);
}

#[tokio::test]
async fn shutdown_returns_promptly_when_idle() {
    let mut api = Kube::start(vec![hub_pod("hub-x", "2026-11-28T17:00:00Z", "Running")]).await;
    let source = start(&api, cfg(), Resume::new(), 16);
    // Both long-lived requests are open and silent.
    let _log = api.next_log().await;
    let _watch = api.next_watch().await;
    source.stop().await;
}

#[tokio::test]
async fn shutdown_returns_promptly_when_the_pipeline_does_not_read() {
    let mut api = Kube::start(vec![hub_pod("hub-x", "2026-11-28T17:00:00Z", "Running")]).await;
    let mut source = start(&api, cfg(), Resume::new(), 1);
    let log = api.next_log().await;
    log.send("2026-11-28T19:00:01Z one\n");
    assert_eq!(source.lines(1).await.len(), 1);
    // Nobody reads any more: the second batch fills the channel, after which the source can
    // only wait in `send` (or for data), whatever it has read by the time shutdown comes.
    log.send("2026-11-28T19:00:02Z two\n");
    log.send("2026-11-28T19:00:03Z three\n");
    let asked = Instant::now();
    source.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(1), source.task)
        .await
        .expect("follow returns within a second")
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_secs(1));
    // Back-pressure, not loss: whatever was sent is still in the channel, in order.
    let mut rest = Vec::new();
    while let Ok(b) = source.rx.try_recv() {
        rest.extend(split(&b));
    }
    assert!(rest.len() <= 2, "{rest:?}");
    assert!(rest.iter().all(|l| l.1 == "two\n" || l.1 == "three\n"));
}

#[tokio::test]
async fn forbidden_pod_list_is_a_clear_error() {
    let api = Kube::start(vec![]).await;
    api.state.forbid.store(true, Relaxed);
    let source = start(&api, cfg(), Resume::new(), 16);
    let err = tokio::time::timeout(WAIT, source.task)
        .await
        .expect("a fatal error ends follow")
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            err,
            hubpulse::sources::SourceError::Kube(KubeError::Forbidden { code: 403, .. })
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("list pods") && msg.contains("\"jhub\"") && msg.contains("pods/log"),
        "{msg}"
    );
}

#[tokio::test]
async fn follows_the_proxy_pod_through_its_first_container() {
    let mut api = Kube::start(vec![
        hub_pod("hub-x", "2026-11-28T17:00:00Z", "Running"),
        pod("proxy-y", "proxy", "2026-11-28T17:00:00Z", "Running", "chp"),
    ])
    .await;
    let cfg = KubeSourceConfig {
        proxy_selector: Some("component=proxy".into()),
        container: Some("hub".into()),
        ..cfg()
    };
    let mut source = start(&api, cfg, Resume::new(), 16);
    let mut calls = [api.next_log().await, api.next_log().await];
    calls.sort_by(|a, b| a.pod.cmp(&b.pod));
    let [hub, proxy] = calls;
    assert_log_query(&hub, "hub-x", None);
    assert_eq!(proxy.pod.as_deref(), Some("proxy-y"));
    assert_eq!(proxy.query["container"], "chp");
    let mut selectors =
        [api.next_watch().await, api.next_watch().await].map(|w| w.query["labelSelector"].clone());
    selectors.sort();
    assert_eq!(selectors, ["component=hub", "component=proxy"]);
    proxy.send("2026-11-28T19:00:01Z 19:00:01.000 [ConfigProxy] info: Adding route\n");
    assert_eq!(
        source.lines(1).await,
        [at(
            "k8s/jhub/proxy-y/chp",
            "19:00:01.000 [ConfigProxy] info: Adding route",
            T0 + SEC,
            1
        )]
    );
    drop(hub);
    source.stop().await;
}

/// `hubpulse run` with a `[kubernetes]` source, against the scripted API server: the pod's log
/// reaches the lake; after a SIGKILL the restarted agent asks the API for the log since the
/// committed second and adds only what it had not committed (the manifest's stream checkpoint).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_follows_a_pod_into_the_lake_and_resumes_after_sigkill() {
    let mut api = Kube::start(vec![hub_pod("hub-a", "2026-11-28T18:00:00Z", "Running")]).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {}\n\
             contexts:\n- name: t\n  context:\n    cluster: t\n    user: u\n    namespace: jhub\n\
             current-context: t\nusers:\n- name: u\n  user: {{}}\n",
            api.server.url
        ),
    )
    .unwrap();
    let lake = dir.path().join("lake");
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nlog_level = \"warn\"\nrecord_hold = \"30ms\"\n\n[lake]\npath = \"{}\"\n\
             flush_interval = \"100ms\"\n\n[http]\nlisten = \"off\"\n\n[kubernetes]\nnamespace = \"jhub\"\n",
            lake.display()
        ),
    )
    .unwrap();
    let spawn = || {
        crate::support::bin()
            .args(["run", "--config"])
            .arg(&cfg)
            .env("KUBECONFIG", &kubeconfig)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let rows = |lake: std::path::PathBuf| async move {
        tokio::task::spawn_blocking(move || {
            if !lake.join("events").exists() {
                return 0;
            }
            let out = crate::support::run(
                crate::support::bin()
                    .args(["query", "--format", "csv", "--lake"])
                    .arg(&lake)
                    .arg("SELECT count(*) FROM events WHERE message LIKE 'line %'"),
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .nth(1)
                .and_then(|l| l.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .await
        .unwrap()
    };
    let wait_rows = |n: u64| {
        let lake = lake.clone();
        async move {
            let t = Instant::now();
            while rows(lake.clone()).await != n {
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "the lake never held {n} rows"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let line = |sec: u32, n: u32| {
        format!(
            "2026-11-28T19:00:{sec:02}.{n:09}Z [I 2026-11-28 19:00:{sec:02}.000 JupyterHub app:1] line {n}\n"
        )
    };

    let mut agent = spawn();
    let log = api.next_log().await;
    assert_log_query(&log, "hub-a", None);
    let _watch = api.next_watch().await;
    for n in 1..=3 {
        log.send(&line(1, n));
    }
    // The second line of second 2 arrives only after the restart (below).
    log.send(&line(2, 4));
    wait_rows(4).await;
    agent.kill().unwrap();
    let _ = agent.wait();

    let mut agent = spawn();
    let log = api.next_log().await;
    assert_log_query(&log, "hub-a", Some("2026-11-28T19:00:02Z"));
    let _watch = api.next_watch().await;
    // The API server replays from the second asked for: line 4 again, then new lines.
    log.send(&line(2, 4));
    log.send(&line(2, 5));
    log.send(&line(3, 6));
    wait_rows(6).await;
    let kinds = tokio::task::spawn_blocking({
        let lake = lake.clone();
        move || crate::support::query_csv(&lake, "SELECT count(DISTINCT message) AS d, count(*) AS n, min(source_file) AS f FROM events")
    })
    .await
    .unwrap();
    assert_eq!(
        kinds.lines().nth(1),
        Some("6,6,k8s/jhub/hub-a/hub"),
        "{kinds}"
    );
    crate::support::sigterm(&agent);
    assert!(agent.wait().unwrap().success());
}
