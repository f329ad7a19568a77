//! The `pods` table from a list + watch of single-user pods, against a scripted API server (the
//! technique of `kube_source.rs`): the list answers from a table, each watch request hands its
//! response body to the test, which replays watch events (one JSON document per line) and ends
//! the body. The end makes the watcher re-watch: that second request arriving proves every event
//! before it was processed, so the test waits on requests, never on the clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::channel::mpsc as body_channel;
use hubpulse::agent::kube::podtable::{PodSink, watch_pods};
use serde_json::{Value, json};
use std::collections::HashMap;

type BodyTx = body_channel::UnboundedSender<Result<Bytes, std::io::Error>>;

#[derive(Clone)]
struct Api {
    pods: Arc<Mutex<Vec<Value>>>,
    requests: Arc<Mutex<Vec<String>>>,
    seen: Arc<tokio::sync::watch::Sender<usize>>,
    watches: tokio::sync::mpsc::UnboundedSender<BodyTx>,
}

async fn pods(
    State(api): State<Api>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    api.requests.lock().unwrap().push(uri.to_string());
    api.seen.send_modify(|n| *n += 1);
    if q.get("watch").map(String::as_str) == Some("true") {
        let (tx, rx) = body_channel::unbounded();
        let _ = api.watches.send(tx);
        return Body::from_stream(rx).into_response();
    }
    let items = api.pods.lock().unwrap().clone();
    axum::Json(json!({"kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": "100"}, "items": items}))
    .into_response()
}

fn user_pod(name: &str, rv: &str, phase: &str, node: Option<&str>) -> Value {
    let mut spec = json!({"containers": [{"name": "notebook",
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "jhub", "resourceVersion": rv,
            "labels": {"component": "singleuser-server", "hub.jupyter.org/username": "alice"}},
        "spec": spec, "status": {"phase": phase}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_listed_watched_and_written_once_per_change() {
    let (wtx, mut watches) = tokio::sync::mpsc::unbounded_channel();
    let api = Api {
        pods: Arc::new(Mutex::new(vec![user_pod(
            "jupyter-alice",
            "90",
            "Pending",
            None,
        )])),
        requests: Arc::default(),
        seen: Arc::new(tokio::sync::watch::Sender::new(0)),
        watches: wtx,
    };
    let client = serve(api.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(watch_pods(
        client,
        "jhub",
        "component=singleuser-server",
        PodSink::new(&lake, "hub"),
        None,
        stop_rx,
    ));
    let wait = Duration::from_secs(10);
    let body = tokio::time::timeout(wait, watches.recv())
        .await
        .unwrap()
        .unwrap();
    let send = |v: Value| {
        body.unbounded_send(Ok(Bytes::from(format!("{v}\n"))))
            .unwrap();
    };
    // scheduled and running; an unchanged resync; then deleted
    send(
        json!({"type": "MODIFIED", "object": user_pod("jupyter-alice", "101", "Running", Some("node-a"))}),
    );
    send(
        json!({"type": "MODIFIED", "object": user_pod("jupyter-alice", "102", "Running", Some("node-a"))}),
    );
    send(
        json!({"type": "DELETED", "object": user_pod("jupyter-alice", "103", "Succeeded", Some("node-a"))}),
    );
    body.close_channel();
    // the re-watch comes only after the events above were handled
    let second = tokio::time::timeout(wait, watches.recv())
        .await
        .unwrap()
        .unwrap();
    stop_tx.send(true).unwrap();
    tokio::time::timeout(wait, task).await.unwrap().unwrap();
    drop(second);

    let reqs = api.requests.lock().unwrap().clone();
    assert!(
        reqs[0].starts_with("/api/v1/namespaces/jhub/pods?"),
        "{reqs:?}"
    );
    assert!(
        reqs[0].contains("labelSelector=component%3Dsingleuser-server"),
        "{reqs:?}"
    );
    assert!(!reqs[0].contains("watch=true"), "{reqs:?}");
    assert!(
        reqs[1].contains("watch=true") && reqs[1].contains("resourceVersion=100"),
        "{reqs:?}"
    );
    assert!(
        reqs[2].contains("watch=true") && reqs[2].contains("resourceVersion=103"),
        "{reqs:?}"
    );

    let csv = crate::query_csv(
        &lake,
        "SELECT change, pod, \"user\", phase, node, cpu_request, memory_request FROM pods ORDER BY ts",
    );
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(
        rows,
        vec![
            "seen,jupyter-alice,alice,Pending,,0.5,1073741824.0",
            "changed,jupyter-alice,alice,Running,node-a,0.5,1073741824.0",
            "deleted,jupyter-alice,alice,Running,node-a,0.5,1073741824.0",
        ]
    );
}

/// Time pending by reason: a pod that waited for a node, then ran, is one `unschedulable`
/// observation of `hubpulse_pod_pending_seconds`, timed from its creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_waited_for_a_node_is_timed_as_unschedulable() {
    use hubpulse::agent::kube::pending::Pending;
    let created = (chrono::Utc::now() - chrono::Duration::seconds(150))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let pod = |rv: &str, phase: &str, node: Option<&str>, unschedulable: bool| {
        let mut p = user_pod("jupyter-alice", rv, phase, node);
        p["metadata"]["creationTimestamp"] = json!(created);
        if unschedulable {
            p["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available"}]);
        }
        p
    };
    let (wtx, mut watches) = tokio::sync::mpsc::unbounded_channel();
    let api = Api {
        pods: Arc::new(Mutex::new(vec![pod("90", "Pending", None, true)])),
        requests: Arc::default(),
        seen: Arc::new(tokio::sync::watch::Sender::new(0)),
        watches: wtx,
    };
    let client = serve(api.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let pending = Arc::new(Pending::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(watch_pods(
        client,
        "jhub",
        "component=singleuser-server",
        PodSink::new(&dir.path().join("lake"), "hub"),
        Some(pending.clone()),
        stop_rx,
    ));
    let wait = Duration::from_secs(10);
    let body = tokio::time::timeout(wait, watches.recv())
        .await
        .unwrap()
        .unwrap();
    // listed (the watch's first request follows the list): one pod waiting for a node
    let (now, _) = pending.snapshot().unwrap();
    assert_eq!(now.len(), 1);
    assert!(now[0].unschedulable);
    // scheduled on a new node, pulling, then running
    for (rv, phase) in [("101", "Pending"), ("102", "Running")] {
        let v = json!({"type": "MODIFIED", "object": pod(rv, phase, Some("node-new"), false)});
        body.unbounded_send(Ok(Bytes::from(format!("{v}\n"))))
            .unwrap();
    }
    body.close_channel();
    let second = tokio::time::timeout(wait, watches.recv())
        .await
        .unwrap()
        .unwrap();
    stop_tx.send(true).unwrap();
    tokio::time::timeout(wait, task).await.unwrap().unwrap();
    drop(second);

    let mut text = String::new();
    pending.render(&mut text);
    let value = |line: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(line))
            .unwrap_or_else(|| panic!("{line} not in\n{text}"))
            .trim()
            .parse()
            .unwrap()
    };
    let m = "hubpulse_pod_pending_seconds";
    assert_eq!(
        value(&format!("{m}_count{{reason=\"unschedulable\"}}")),
        1.0
    );
    assert_eq!(
        value(&format!(
            "{m}_bucket{{reason=\"unschedulable\",le=\"120\"}}"
        )),
        0.0
    );
    assert_eq!(
        value(&format!(
            "{m}_bucket{{reason=\"unschedulable\",le=\"300\"}}"
        )),
        1.0
    );
    let secs = value(&format!("{m}_sum{{reason=\"unschedulable\"}}"));
    assert!((150.0..200.0).contains(&secs), "{secs}");
    assert_eq!(value(&format!("{m}_count{{reason=\"other\"}}")), 0.0);
    assert_eq!(value("hubpulse_pods_pending"), 0.0);
    assert!(!text.contains("alice"), "no user names in labels");
}

/// Serve the scripted pods API on a free loopback port; a kube client pointed at it.
async fn serve(api: Api) -> kube::Client {
    let app = Router::new()
        .route("/api/v1/namespaces/{ns}/pods", get(pods))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let _ = rustls::crypto::ring::default_provider().install_default();
    kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
}
