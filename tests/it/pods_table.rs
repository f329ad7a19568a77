//! The `pods` table from a list + watch of single-user pods, against a scripted API server (the
//! technique of `kube_source.rs`): the list answers from a table, each watch request hands its
//! response body to the test, which replays watch events (one JSON document per line) and ends
//! the body. The end makes the watcher re-watch: that second request arriving proves every event
//! before it was processed, so the test waits on requests, never on the clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hubpulse::sources::kube::podevents::EventStats;
use hubpulse::sources::kube::podtable::{PodSink, PodWatch, watch_pods};
use serde_json::{Value, json};
use std::collections::HashMap;

use crate::kube_fixtures;
use crate::support::api::{RequestLog, ScriptedApi, StreamTx, kube_status, stream};

#[derive(Clone)]
struct Api {
    pods: Arc<Mutex<Vec<Value>>>,
    /// The requests, recorded by the scripted server.
    log: RequestLog,
    watches: tokio::sync::mpsc::UnboundedSender<StreamTx>,
    /// Events listed, and the event watches' bodies (the same technique as pods).
    events: Arc<Mutex<Vec<Value>>>,
    event_watches: Option<tokio::sync::mpsc::UnboundedSender<StreamTx>>,
    /// Nodes by name; `None`: every node GET is forbidden (403).
    nodes: Option<HashMap<String, Value>>,
    /// Every events request is forbidden (403).
    events_forbidden: bool,
    /// The lists' `metadata.resourceVersion` (pods, events).
    pods_rv: Arc<Mutex<String>>,
    events_rv: Arc<Mutex<String>>,
    /// The pods list answers only once the events watch was asked for (the events list was
    /// handled first).
    pods_after_events: bool,
}

impl Api {
    fn new(pods: Vec<Value>, watches: tokio::sync::mpsc::UnboundedSender<StreamTx>) -> Api {
        Api {
            pods: Arc::new(Mutex::new(pods)),
            log: RequestLog::default(),
            watches,
            events: Arc::default(),
            event_watches: None,
            nodes: Some(HashMap::new()),
            events_forbidden: false,
            pods_rv: Arc::new(Mutex::new("100".into())),
            events_rv: Arc::new(Mutex::new("200".into())),
            pods_after_events: false,
        }
    }
}

async fn events(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> Response {
    if api.events_forbidden {
        return kube_status(
            403,
            "Forbidden",
            "events is forbidden: User \"system:serviceaccount:jhub:hubpulse\" cannot list resource \"events\" in API group \"\" in the namespace \"jhub\"",
        );
    }
    if q.get("watch").map(String::as_str) == Some("true") {
        let (tx, response) = stream();
        if let Some(w) = &api.event_watches {
            let _ = w.send(tx);
        }
        return response;
    }
    let items = api.events.lock().unwrap().clone();
    let rv = api.events_rv.lock().unwrap().clone();
    axum::Json(json!({"kind": "EventList", "apiVersion": "v1",
        "metadata": {"resourceVersion": rv}, "items": items}))
    .into_response()
}

async fn node(
    State(api): State<Api>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let status = |code: u16, reason: &str, message: String| kube_status(code, reason, &message);
    match &api.nodes {
        None => status(
            403,
            "Forbidden",
            format!(
                "nodes \"{name}\" is forbidden: User \"system:serviceaccount:jhub:hubpulse\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
            ),
        ),
        Some(nodes) => match nodes.get(&name) {
            Some(n) => axum::Json(n.clone()).into_response(),
            None => status(404, "NotFound", format!("nodes \"{name}\" not found")),
        },
    }
}

async fn pods(State(api): State<Api>, Query(q): Query<HashMap<String, String>>) -> Response {
    if q.get("watch").map(String::as_str) == Some("true") {
        let (tx, response) = stream();
        let _ = api.watches.send(tx);
        return response;
    }
    if api.pods_after_events {
        api.log
            .until(|r| r.contains("/events") && r.contains("watch=true"))
            .await;
    }
    let items = api.pods.lock().unwrap().clone();
    let rv = api.pods_rv.lock().unwrap().clone();
    axum::Json(json!({"kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": rv}, "items": items}))
    .into_response()
}

/// The single-user pod of `fixtures/kube/pods-list.json` (KubeSpawner's shape: labels,
/// annotations, init container, requests `500m`/`1Gi`, limits `2`/`2Gi`, user `alice.smith`),
/// with the name, resourceVersion, phase and node the test scripts, and no other status.
fn user_pod(name: &str, rv: &str, phase: &str, node: Option<&str>) -> Value {
    let mut p = kube_fixtures::json("pods-list.json")["items"][0].clone();
    p["kind"] = json!("Pod");
    p["apiVersion"] = json!("v1");
    p["metadata"]["name"] = json!(name);
    p["metadata"]["resourceVersion"] = json!(rv);
    if let Some(n) = node {
        p["spec"]["nodeName"] = json!(n);
    }
    p["status"] = json!({"phase": phase, "qosClass": "Burstable"});
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_listed_watched_and_written_once_per_change() {
    let (wtx, mut watches) = tokio::sync::mpsc::unbounded_channel();
    let api = Api::new(vec![user_pod("jupyter-alice", "90", "Pending", None)], wtx);
    let client = serve(api.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let stop_tx = tokio_util::sync::CancellationToken::new();
    let stop_rx = stop_tx.clone();
    let task = tokio::spawn(watch_pods(
        client,
        "jhub",
        "component=singleuser-server",
        PodSink::new(&hubpulse::lake::LakeLocation::local(&lake), "hub"),
        None,
        stop_rx,
    ));
    let wait = Duration::from_secs(10);
    let body = next(&mut watches).await;
    let send = |v: Value| body.line(&v);
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
    body.close();
    // the re-watch comes only after the events above were handled
    let second = next(&mut watches).await;
    stop_tx.cancel();
    tokio::time::timeout(wait, task).await.unwrap().unwrap();
    drop(second);

    let reqs = api.log.uris();
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

    let csv = crate::support::query_csv(
        &lake,
        "SELECT change, pod, \"user\", phase, node, cpu_request, memory_request FROM pods ORDER BY ts",
    );
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(
        rows,
        vec![
            "seen,jupyter-alice,alice.smith,Pending,,0.5,1073741824.0",
            "changed,jupyter-alice,alice.smith,Running,node-a,0.5,1073741824.0",
            "deleted,jupyter-alice,alice.smith,Running,node-a,0.5,1073741824.0",
        ]
    );
}

/// Time pending by reason: a pod that waited for a node, then ran, is one `unschedulable`
/// observation of `hubpulse_pod_pending_seconds`, timed from its creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_waited_for_a_node_is_timed_as_unschedulable() {
    use hubpulse::sources::kube::pending::Pending;
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
    let api = Api::new(vec![pod("90", "Pending", None, true)], wtx);
    let client = serve(api.clone()).await;

    let dir = tempfile::tempdir().unwrap();
    let pending = Arc::new(Pending::default());
    let stop_tx = tokio_util::sync::CancellationToken::new();
    let stop_rx = stop_tx.clone();
    let task = tokio::spawn(watch_pods(
        client,
        "jhub",
        "component=singleuser-server",
        PodSink::new(
            &hubpulse::lake::LakeLocation::local(dir.path().join("lake")),
            "hub",
        ),
        Some(pending.clone()),
        stop_rx,
    ));
    let wait = Duration::from_secs(10);
    let body = next(&mut watches).await;
    // listed (the watch's first request follows the list): one pod waiting for a node
    let (now, _) = pending.snapshot().unwrap();
    assert_eq!(now.len(), 1);
    assert!(now[0].unschedulable);
    // scheduled on a new node, pulling, then running
    for (rv, phase) in [("101", "Pending"), ("102", "Running")] {
        let v = json!({"type": "MODIFIED", "object": pod(rv, phase, Some("node-new"), false)});
        body.line(&v);
    }
    body.close();
    let second = next(&mut watches).await;
    stop_tx.cancel();
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

/// A `v1` Event about a pod, in the scheduler's shape.
fn pod_event(uid: &str, pod: &str, reason: &str, message: &str, count: i32) -> Value {
    json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": format!("{pod}.1879f3a4c2d0e5b1"), "namespace": "jhub", "uid": uid,
            "resourceVersion": "150", "creationTimestamp": "2026-11-30T09:00:00Z"},
        "involvedObject": {"kind": "Pod", "namespace": "jhub", "name": pod, "apiVersion": "v1"},
        "reason": reason, "message": message,
        "source": {"component": "default-scheduler"},
        "firstTimestamp": "2026-11-30T09:00:00Z", "lastTimestamp": "2026-11-30T09:00:05Z",
        "count": count, "type": "Normal"})
}

fn metric(text: &str, line: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line))
        .unwrap_or_else(|| panic!("{line} not in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// Events and nodes through the scripted API server: a preempted placeholder (listed, not a user
/// pod: counted, not written), a user pod scheduled on a node (one `GET /api/v1/nodes/n1` however
/// often the pod is seen; instance type and zone in its row), OOM-killed (counted once from its
/// status), then preempted (an `event` row with the message; a resync of the same event adds
/// nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preemptions_oom_kills_and_instance_types_reach_the_pods_table_and_metrics() {
    let (wtx, mut watches) = tokio::sync::mpsc::unbounded_channel();
    let (etx, mut event_watches) = tokio::sync::mpsc::unbounded_channel();
    let mut api = Api::new(vec![user_pod("jupyter-alice", "90", "Pending", None)], wtx);
    api.event_watches = Some(etx);
    *api.events.lock().unwrap() = vec![pod_event(
        "ev-1",
        "user-placeholder-0",
        "Preempted",
        "Preempted by jhub/jupyter-carol on node n0",
        1,
    )];
    // the node of fixtures/kube/node.json (an EKS t3.medium in us-east-1a), served as n1
    let mut n1 = kube_fixtures::json("node.json");
    n1["metadata"]["name"] = json!("n1");
    api.nodes = Some(HashMap::from([("n1".to_string(), n1)]));
    let client = serve(api.clone()).await;

    let mut run = start(client, true, true).await;
    let lake = run.lake.clone();
    let stats = run.stats.clone();
    let send = send_line;
    let pods_body = next(&mut watches).await;
    // running on n1, seen twice, then OOM-killed once (restarted)
    let running = user_pod("jupyter-alice", "101", "Running", Some("n1"));
    send(&pods_body, json!({"type": "MODIFIED", "object": running}));
    let mut resync = user_pod("jupyter-alice", "102", "Running", Some("n1"));
    send(
        &pods_body,
        json!({"type": "MODIFIED", "object": resync.clone()}),
    );
    resync["metadata"]["resourceVersion"] = json!("103");
    resync["status"]["containerStatuses"] = json!([{"name": "notebook", "ready": true,
        "restartCount": 1, "image": "jupyter/base", "imageID": "", "state": {"running": {}},
        "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]);
    send(
        &pods_body,
        json!({"type": "MODIFIED", "object": resync.clone()}),
    );
    resync["metadata"]["resourceVersion"] = json!("104");
    send(&pods_body, json!({"type": "MODIFIED", "object": resync}));
    pods_body.close();
    let pods_again = next(&mut watches).await;
    // the pod's rows are written: now its preemption
    let events_body = next(&mut event_watches).await;
    let preempted = pod_event(
        "ev-2",
        "jupyter-alice",
        "Preempted",
        "Preempted by jhub/jupyter-bob on node n1",
        1,
    );
    send(
        &events_body,
        json!({"type": "ADDED", "object": preempted.clone()}),
    );
    send(
        &events_body,
        json!({"type": "MODIFIED", "object": preempted}),
    );
    events_body.close();
    let events_again = next(&mut event_watches).await;
    run.stop().await;
    drop((pods_again, events_again));

    let reqs = api.log.uris();
    let nodes: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("/api/v1/nodes"))
        .collect();
    assert_eq!(nodes, vec!["/api/v1/nodes/n1"], "{reqs:?}");
    let ev: Vec<&String> = reqs.iter().filter(|r| r.contains("/events")).collect();
    assert!(
        ev[0].starts_with("/api/v1/namespaces/jhub/events?")
            && ev[0].contains("fieldSelector=involvedObject.kind%3DPod")
            && !ev[0].contains("watch=true"),
        "{ev:?}"
    );
    assert!(
        ev[1].contains("watch=true") && ev[1].contains("resourceVersion=200"),
        "{ev:?}"
    );

    let csv = crate::support::query_csv(
        &lake,
        "SELECT change, phase, node, instance_type, zone, oom_killed, event, event_message, \
         CAST(event_ts AS VARCHAR) AS event_ts FROM pods ORDER BY ts, change",
    );
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(
        rows,
        vec![
            "seen,Pending,,,,false,,,",
            "changed,Running,n1,t3.medium,us-east-1a,false,,,",
            "changed,Running,n1,t3.medium,us-east-1a,true,,,",
            "event,Running,n1,t3.medium,us-east-1a,true,preempted,Preempted by jhub/jupyter-bob on node n1,2026-11-30T09:00:05Z",
        ]
    );

    let mut text = String::new();
    stats.render(&mut text);
    let m = "hubpulse_pod_events_total";
    assert_eq!(
        metric(
            &text,
            &format!("{m}{{reason=\"preempted\",pods=\"other\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(&text, &format!("{m}{{reason=\"preempted\",pods=\"user\"}}")),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("{m}{{reason=\"oom_killed\",pods=\"user\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("{m}{{reason=\"failed_scheduling\",pods=\"user\"}}")
        ),
        0.0
    );
    assert!(
        !text.contains("alice") && !text.contains("n1"),
        "no names in labels"
    );
}

/// Without RBAC on nodes: one `GET` (403), one warning, the columns stay null, rows still written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nodes_rbac_instance_type_stays_null_after_one_request() {
    let (wtx, mut watches) = tokio::sync::mpsc::unbounded_channel();
    let mut api = Api::new(
        vec![
            user_pod("jupyter-alice", "90", "Running", Some("n1")),
            user_pod("jupyter-bob", "91", "Running", Some("n2")),
        ],
        wtx,
    );
    api.nodes = None;
    let client = serve(api.clone()).await;
    let mut run = start(client, false, true).await;
    let lake = run.lake.clone();
    // the watch starts after the list was handled
    let body = next(&mut watches).await;
    run.stop().await;
    drop(body);
    let reqs = api.log.uris();
    let nodes: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("/api/v1/nodes"))
        .collect();
    assert_eq!(nodes, vec!["/api/v1/nodes/n1"], "{reqs:?}");
    let csv = crate::support::query_csv(
        &lake,
        "SELECT pod, node, instance_type IS NULL AS none FROM pods ORDER BY pod",
    );
    assert_eq!(
        csv.lines().skip(1).collect::<Vec<_>>(),
        vec!["jupyter-alice,n1,true", "jupyter-bob,n2,true"]
    );
}

/// Without RBAC on events: the events list is refused (and retried), pods are still written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_events_rbac_pods_are_still_written() {
    let (wtx, mut watches) = tokio::sync::mpsc::unbounded_channel();
    let mut api = Api::new(vec![user_pod("jupyter-alice", "90", "Pending", None)], wtx);
    api.events_forbidden = true;
    let client = serve(api.clone()).await;
    let mut run = start(client, true, false).await;
    let lake = run.lake.clone();
    let stats = run.stats.clone();
    // the pods list was handled (its watch follows), and the events list was refused
    let body = next(&mut watches).await;
    api.log
        .wait("the events list", 1, |r| r.contains("/events"))
        .await;
    send_line(
        &body,
        json!({"type": "MODIFIED", "object": user_pod("jupyter-alice", "101", "Running", Some("n1"))}),
    );
    body.close();
    let again = next(&mut watches).await;
    run.stop().await;
    drop(again);
    let csv = crate::support::query_csv(&lake, "SELECT change, phase FROM pods ORDER BY ts");
    assert_eq!(
        csv.lines().skip(1).collect::<Vec<_>>(),
        vec!["seen,Pending", "changed,Running"]
    );
    let mut text = String::new();
    stats.render(&mut text);
    assert!(
        text.contains("hubpulse_pod_events_total{reason=\"preempted\",pods=\"user\"} 0"),
        "{text}"
    );
}

fn send_raw(body: &StreamTx, line: &str) {
    body.send(&format!("{line}\n"));
}

/// The watch streams of `fixtures/kube/` replayed byte for byte against the scripted API server
/// (objects in the shape real clusters emit: KubeSpawner's pod, the user scheduler's events
/// written through `events.k8s.io` with `eventTime`/`series` and no `lastTimestamp`, an EKS
/// node, a `BOOKMARK`, a `410 Gone`): the request sequence (list, watch from the list's version,
/// re-watch from the bookmark's, relist after 410, one node GET) and the rows and counters
/// carry the fixtures' values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_watch_streams_replayed_reach_the_pods_table_and_metrics() {
    let pods_list = kube_fixtures::json("pods-list.json");
    let events_list = kube_fixtures::json("events-list.json");
    let node = kube_fixtures::json("node.json");
    let culled = kube_fixtures::json("pods-list-after-cull.json");
    let pod_watch = kube_fixtures::watch_events("pods-watch.jsonl");
    let event_watch = kube_fixtures::watch_events("events-watch.jsonl");
    let gone = kube_fixtures::watch_events("watch-410-gone.jsonl");
    let pod0 = &pods_list["items"][0];
    let node_name = node["metadata"]["name"].as_str().unwrap();

    let (wtx, mut watches) = tokio::sync::mpsc::unbounded_channel();
    let (etx, mut event_watches) = tokio::sync::mpsc::unbounded_channel();
    let mut api = Api::new(pods_list["items"].as_array().unwrap().clone(), wtx);
    *api.pods_rv.lock().unwrap() = kube_fixtures::list_rv(&pods_list);
    api.event_watches = Some(etx);
    *api.events.lock().unwrap() = events_list["items"].as_array().unwrap().clone();
    *api.events_rv.lock().unwrap() = kube_fixtures::list_rv(&events_list);
    api.nodes = Some(HashMap::from([(node_name.to_string(), node.clone())]));
    let client = serve(api.clone()).await;

    let mut run = start(client, true, true).await;
    let lake = run.lake.clone();
    let stats = run.stats.clone();
    // the pods list was handled (its watch follows): the pending pod is known
    let pods_body = next(&mut watches).await;
    // the scheduler's events about it: FailedScheduling, its series update, Scheduled, Pulling
    let events_body = next(&mut event_watches).await;
    for line in kube_fixtures::watch_lines("events-watch.jsonl") {
        send_raw(&events_body, &line);
    }
    events_body.close();
    let events_again = next(&mut event_watches).await;
    // the pod scheduled, running, OOM-killed and restarted; then a bookmark
    for line in kube_fixtures::watch_lines("pods-watch.jsonl") {
        send_raw(&pods_body, &line);
    }
    pods_body.close();
    let pods_again = next(&mut watches).await;
    // the pod is culled while the watch is down: the re-watch gets 410 Gone, the relist is empty
    *api.pods.lock().unwrap() = culled["items"].as_array().unwrap().clone();
    *api.pods_rv.lock().unwrap() = kube_fixtures::list_rv(&culled);
    for line in kube_fixtures::watch_lines("watch-410-gone.jsonl") {
        send_raw(&pods_again, &line);
    }
    // the watch after the relist comes only after the relist was handled
    let third = next(&mut watches).await;
    run.stop().await;
    drop((pods_again, events_again, third));

    // request sequence and shape
    let reqs = api.log.uris();
    let pods: Vec<&String> = reqs.iter().filter(|r| r.contains("/pods")).collect();
    assert_eq!(pods.len(), 5, "{pods:?}");
    let bookmark_rv = pod_watch.last().unwrap()["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap();
    assert_eq!(pod_watch.last().unwrap()["type"], "BOOKMARK");
    for (i, watching, rv) in [
        (0, false, None),
        (1, true, Some(kube_fixtures::list_rv(&pods_list))),
        (2, true, Some(bookmark_rv.to_string())),
        (3, false, None),
        (4, true, Some(kube_fixtures::list_rv(&culled))),
    ] {
        let r = pods[i];
        assert!(
            r.starts_with("/api/v1/namespaces/jhub/pods?")
                && r.contains("labelSelector=component%3Dsingleuser-server"),
            "{pods:?}"
        );
        assert_eq!(r.contains("watch=true"), watching, "{i}: {pods:?}");
        if let Some(rv) = rv {
            assert!(
                r.contains(&format!("resourceVersion={rv}&"))
                    || r.ends_with(&format!("resourceVersion={rv}")),
                "{i}: {pods:?}"
            );
            assert!(r.contains("allowWatchBookmarks=true"), "{i}: {pods:?}");
        }
    }
    let nodes: Vec<&String> = reqs
        .iter()
        .filter(|r| r.starts_with("/api/v1/nodes"))
        .collect();
    assert_eq!(
        nodes,
        vec![&format!("/api/v1/nodes/{node_name}")],
        "{reqs:?}"
    );
    let ev: Vec<&String> = reqs.iter().filter(|r| r.contains("/events")).collect();
    assert!(
        ev[0].starts_with("/api/v1/namespaces/jhub/events?")
            && ev[0].contains("fieldSelector=involvedObject.kind%3DPod")
            && !ev[0].contains("watch=true"),
        "{ev:?}"
    );
    let last_event_rv = event_watch.last().unwrap()["object"]["metadata"]["resourceVersion"]
        .as_str()
        .unwrap();
    for (r, rv) in [
        (ev[1], kube_fixtures::list_rv(&events_list)),
        (ev[2], last_event_rv.to_string()),
    ] {
        assert!(
            r.contains("watch=true") && r.contains(&format!("resourceVersion={rv}")),
            "{ev:?}"
        );
    }

    // the rows carry the fixtures' values
    let s = |v: &Value| v.as_str().unwrap().to_string();
    let user = s(&pod0["metadata"]["annotations"]["hub.jupyter.org/username"]);
    assert_ne!(
        user,
        s(&pod0["metadata"]["labels"]["hub.jupyter.org/username"]),
        "the label is KubeSpawner's escaped name, the annotation the real one"
    );
    let notebook = &pod0["spec"]["containers"][0];
    assert_eq!(notebook["name"], "notebook");
    // the quantities as the API server writes them, and their values
    assert_eq!(
        notebook["resources"],
        json!({"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}})
    );
    let resources = "0.5,2.0,1073741824.0,2147483648.0";
    let unsched = pod0["status"]["conditions"][0].clone();
    assert_eq!(
        (&unsched["type"], &unsched["status"]),
        (&json!("PodScheduled"), &json!("False"))
    );
    let unsched = s(&unsched["reason"]);
    let labels = &node["metadata"]["labels"];
    let (itype, zone) = (
        s(&labels["node.kubernetes.io/instance-type"]),
        s(&labels["topology.kubernetes.io/zone"]),
    );
    let scheduled_on = s(&pod_watch[0]["object"]["spec"]["nodeName"]);
    assert_eq!(scheduled_on, node_name);
    let failed = &event_watch[0]["object"];
    assert_eq!(failed["reason"], "FailedScheduling");
    assert!(failed["lastTimestamp"].is_null() && failed["count"].is_null());
    let message = s(&failed["message"]);
    let first_at = s(&failed["eventTime"]);
    let series = &event_watch[1]["object"]["series"];
    let again_at = s(&series["lastObservedTime"]);
    let oom = &pod_watch[2]["object"]["status"]["containerStatuses"][0]["lastState"]["terminated"];
    assert_eq!(oom["reason"], "OOMKilled");
    assert_eq!(gone[0]["object"]["code"], 410);
    let csv = crate::support::query_csv(
        &lake,
        "SELECT change, pod, \"user\", phase, node, instance_type, zone, cpu_request, cpu_limit, \
         memory_request, memory_limit, unschedulable, oom_killed, event, event_message, \
         CAST(event_ts AS VARCHAR) AS event_ts FROM pods ORDER BY ts, change",
    );
    let pod = s(&pod0["metadata"]["name"]);
    let expected: Vec<String> = vec![
        format!("seen,{pod},{user},Pending,,,,{resources},{unsched},false,,,"),
        format!(
            "event,{pod},{user},Pending,,,,{resources},{unsched},false,failed_scheduling,{},{}",
            message, first_at
        ),
        format!(
            "event,{pod},{user},Pending,,,,{resources},{unsched},false,failed_scheduling,{},{}",
            message, again_at
        ),
        format!("changed,{pod},{user},Pending,{node_name},{itype},{zone},{resources},,false,,,"),
        format!("changed,{pod},{user},Running,{node_name},{itype},{zone},{resources},,false,,,"),
        format!("changed,{pod},{user},Running,{node_name},{itype},{zone},{resources},,true,,,"),
        format!("deleted,{pod},{user},Running,{node_name},{itype},{zone},{resources},,true,,,"),
    ];
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows, expected, "\n{csv}");

    // counters: the series counts as its occurrences; the listed placeholder preemption is
    // `other`; the OOM kill once, from the pod status; Scheduled and Pulling count nothing
    let mut text = String::new();
    stats.render(&mut text);
    let m = "hubpulse_pod_events_total";
    let occurrences = series["count"].as_i64().unwrap() as f64;
    assert_eq!(
        metric(
            &text,
            &format!("{m}{{reason=\"failed_scheduling\",pods=\"user\"}}")
        ),
        occurrences
    );
    let placeholder = &events_list["items"][0];
    assert_eq!(placeholder["reason"], "Preempted");
    assert!(s(&placeholder["involvedObject"]["name"]).starts_with("user-placeholder-"));
    assert_eq!(
        metric(
            &text,
            &format!("{m}{{reason=\"preempted\",pods=\"other\"}}")
        ),
        1.0
    );
    assert_eq!(
        metric(&text, &format!("{m}{{reason=\"preempted\",pods=\"user\"}}")),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            &format!("{m}{{reason=\"oom_killed\",pods=\"user\"}}")
        ),
        1.0
    );
}

/// At start the Events list may be handled before the pods list: the FailedScheduling events of
/// the fixtures, about a pod not known yet, still become its rows and count as `user` once the
/// pods are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_listed_before_the_pods_still_reach_their_pod() {
    let pods_list = kube_fixtures::json("pods-list.json");
    // the events watch stream's FailedScheduling (and its series update), served as the list
    let stream = kube_fixtures::watch_events("events-watch.jsonl");
    let failed = stream[1]["object"].clone();
    assert_eq!(failed["reason"], "FailedScheduling");
    let occurrences = failed["series"]["count"].as_i64().unwrap();
    let (wtx, mut watches) = tokio::sync::mpsc::unbounded_channel();
    let (etx, mut event_watches) = tokio::sync::mpsc::unbounded_channel();
    let mut api = Api::new(pods_list["items"].as_array().unwrap().clone(), wtx);
    *api.pods_rv.lock().unwrap() = kube_fixtures::list_rv(&pods_list);
    api.event_watches = Some(etx);
    *api.events.lock().unwrap() = vec![failed.clone()];
    api.pods_after_events = true;
    let client = serve(api.clone()).await;
    let mut run = start(client, true, false).await;
    let lake = run.lake.clone();
    let stats = run.stats.clone();
    let events_body = next(&mut event_watches).await;
    // the pods watch follows the pods list, answered after the events list
    let pods_body = next(&mut watches).await;
    // one more pods event, so that the rows of the list are written before the stop
    let mut running = pods_list["items"][0].clone();
    running["metadata"]["resourceVersion"] = json!("4118300");
    running["status"]["phase"] = json!("Running");
    send_line(&pods_body, json!({"type": "MODIFIED", "object": running}));
    pods_body.close();
    let again = next(&mut watches).await;
    run.stop().await;
    drop((events_body, again));

    let reqs = api.log.uris();
    // the events were listed (their watch asked for) before the pods watch started
    let at = |f: &dyn Fn(&String) -> bool| reqs.iter().position(f).unwrap();
    let event_watch = at(&|r| r.contains("/events") && r.contains("watch=true"));
    let pods_watch = at(&|r| r.contains("/pods") && r.contains("watch=true"));
    assert!(event_watch < pods_watch, "{reqs:?}");
    let csv = crate::support::query_csv(
        &lake,
        "SELECT change, pod, phase, event, event_message FROM pods ORDER BY ts, change",
    );
    let pod = pods_list["items"][0]["metadata"]["name"].as_str().unwrap();
    let message = failed["message"].as_str().unwrap();
    assert_eq!(
        csv.lines().skip(1).collect::<Vec<_>>(),
        vec![
            format!("seen,{pod},Pending,,"),
            format!("event,{pod},Pending,failed_scheduling,{message}"),
            format!("changed,{pod},Running,,"),
        ]
    );
    let mut text = String::new();
    stats.render(&mut text);
    let m = "hubpulse_pod_events_total";
    assert_eq!(
        metric(
            &text,
            &format!("{m}{{reason=\"failed_scheduling\",pods=\"user\"}}")
        ),
        occurrences as f64
    );
    assert_eq!(
        metric(
            &text,
            &format!("{m}{{reason=\"failed_scheduling\",pods=\"other\"}}")
        ),
        0.0
    );
}

fn send_line(body: &StreamTx, v: Value) {
    body.line(&v);
}

/// The next value on `rx` (a request the scripted API server saw), within 10 s.
async fn next<T>(rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the watch did not make the request")
        .expect("the API server is gone")
}

/// A pods watch running against a scripted API server, into a fresh lake.
struct Running {
    _dir: tempfile::TempDir,
    lake: std::path::PathBuf,
    stats: Arc<EventStats>,
    stop: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stop the watch and wait (10 s at most) for it to end.
    async fn stop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the watch did not stop")
                .unwrap();
        }
    }
}

/// Start the watch of the user pods (with Events when `events`, node lookups when `nodes`).
async fn start(client: kube::Client, events: bool, nodes: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let stats = Arc::new(EventStats::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_rx = stop.clone();
    let w = user_pods(&lake, events.then(|| stats.clone()), nodes);
    let task = tokio::spawn(hubpulse::sources::kube::podtable::watch(client, w, stop_rx));
    Running {
        _dir: dir,
        lake,
        stats,
        stop,
        task: Some(task),
    }
}

/// A watch of the single-user pods of namespace `jhub` into `lake`.
fn user_pods(lake: &std::path::Path, events: Option<Arc<EventStats>>, nodes: bool) -> PodWatch {
    PodWatch {
        namespace: "jhub".into(),
        selector: "component=singleuser-server".into(),
        sink: PodSink::new(&hubpulse::lake::LakeLocation::local(lake), "hub"),
        pending: None,
        events,
        nodes,
    }
}

/// Serve the scripted pods API ([`ScriptedApi`]) on a free loopback port; a kube client
/// pointed at it.
async fn serve(api: Api) -> kube::Client {
    let app = Router::new()
        .route("/api/v1/namespaces/{ns}/pods", get(pods))
        .route("/api/v1/namespaces/{ns}/events", get(events))
        .route("/api/v1/nodes/{name}", get(node))
        .with_state(api.clone());
    ScriptedApi::start(api.log, app).await.kube_client()
}
