//! Pod rows from pods written in the shape of the API server's answers for KubeSpawner 7 pods
//! (hand-written, not recorded from a cluster).
#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;

fn gpu_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "jupyter-alice-2ename---gpu", "namespace": "jhub",
            "labels": {
                "component": "singleuser-server", "app": "jupyterhub",
                "hub.jupyter.org/username": "alice-2ename",
                "hub.jupyter.org/servername": "gpu"
            },
            "annotations": {
                "hub.jupyter.org/username": "alice.name",
                "hub.jupyter.org/servername": "gpu"
            }
        },
        "spec": {
            "nodeName": "gpu-node-1",
            "containers": [
                {"name": "notebook", "image": "jupyter/base",
                 "resources": {
                     "requests": {"cpu": "500m", "memory": "2Gi"},
                     "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"}}},
                {"name": "sidecar", "image": "busybox",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
            ]
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "notebook", "ready": true, "restartCount": 1, "image": "jupyter/base",
                 "imageID": "x", "state": {"running": {"startedAt": "2026-11-30T09:01:00Z"}},
                 "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
            ]
        }
    })
}

fn pod(v: Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

#[test]
fn quantities_follow_the_kubernetes_grammar() {
    assert_eq!(quantity("500m"), Some(0.5));
    assert_eq!(quantity("2"), Some(2.0));
    assert_eq!(quantity("1.5"), Some(1.5));
    assert_eq!(quantity("512Mi"), Some(536_870_912.0));
    assert_eq!(quantity("1Gi"), Some(1_073_741_824.0));
    assert_eq!(quantity("1G"), Some(1e9));
    assert_eq!(quantity("1e3"), Some(1000.0));
    assert_eq!(quantity("128974848"), Some(128_974_848.0));
    assert_eq!(quantity(""), None);
    assert_eq!(quantity("lots"), None);
    assert_eq!(quantity("1Zi"), None);
}

#[test]
fn a_gpu_pod_gives_user_server_node_summed_requests_and_an_oom_kill() {
    let r = pod_row(&pod(gpu_pod()));
    assert_eq!(r.namespace, "jhub");
    assert_eq!(r.pod, "jupyter-alice-2ename---gpu");
    // the annotation holds the real name; the label the escaped one
    assert_eq!(r.user.as_deref(), Some("alice.name"));
    assert_eq!(r.server.as_deref(), Some("gpu"));
    assert_eq!(r.node.as_deref(), Some("gpu-node-1"));
    assert_eq!(r.phase.as_deref(), Some("Running"));
    assert!((r.cpu_request.unwrap() - 0.6).abs() < 1e-9);
    assert_eq!(r.cpu_limit, Some(2.0));
    assert_eq!(r.memory_request, Some(2_147_483_648.0 + 67_108_864.0));
    assert_eq!(r.memory_limit, Some(4_294_967_296.0));
    // only a limit set for the GPU: it counts
    assert_eq!(r.gpus, Some(1.0));
    assert!(r.oom_killed);
    assert_eq!(r.unschedulable, None);
}

#[test]
fn a_pending_pod_without_resources_or_labels_yields_what_is_there() {
    let r = pod_row(&pod(json!({
        "metadata": {"name": "jupyter-bob", "namespace": "jhub",
                     "labels": {"hub.jupyter.org/username": "bob"}},
        "spec": {"containers": [{"name": "notebook"}]},
        "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
             "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
    })));
    assert_eq!(r.user.as_deref(), Some("bob"));
    assert_eq!(r.server, None);
    assert_eq!(r.node, None);
    assert_eq!(r.phase.as_deref(), Some("Pending"));
    assert_eq!((r.cpu_request, r.memory_limit, r.gpus), (None, None, None));
    assert_eq!(r.unschedulable.as_deref(), Some("Unschedulable"));
    assert!(!r.oom_killed);
}

#[test]
fn an_unparsable_quantity_is_none_not_a_partial_sum() {
    let mut v = gpu_pod();
    v["spec"]["containers"][1]["resources"]["requests"]["cpu"] = json!("a lot");
    let r = pod_row(&pod(v));
    assert_eq!(r.cpu_request, None);
    assert_eq!(r.memory_request, Some(2_147_483_648.0 + 67_108_864.0));
}

#[test]
fn events_about_pods_are_classified_by_reason() {
    let ev = |kind: &str, reason: &str| -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": "e1", "namespace": "jhub"},
            "involvedObject": {"kind": kind, "name": "jupyter-bob", "namespace": "jhub"},
            "reason": reason, "type": "Warning"
        }))
        .unwrap()
    };
    assert_eq!(
        classify(&ev("Pod", "FailedScheduling")),
        Some(PodEvent::FailedScheduling)
    );
    assert_eq!(classify(&ev("Pod", "Preempted")), Some(PodEvent::Preempted));
    assert_eq!(classify(&ev("Pod", "Scheduled")), Some(PodEvent::Scheduled));
    assert_eq!(classify(&ev("Pod", "Pulled")), None);
    assert_eq!(classify(&ev("Node", "OOMKilling")), None);
    assert_eq!(PodEvent::FailedScheduling.label(), "failed_scheduling");
}

// Objects in the shape real clusters emit (fixtures/kube/, see its README): KubeSpawner's pod as
// the API server returns it, the schedulers' events and an EKS node.
const PODS: &str = include_str!("../../../fixtures/kube/pods-list.json");
const POD_WATCH: &str = include_str!("../../../fixtures/kube/pods-watch.jsonl");
const EVENTS: &str = include_str!("../../../fixtures/kube/events-list.json");
const EVENT_WATCH: &str = include_str!("../../../fixtures/kube/events-watch.jsonl");
const NODE: &str = include_str!("../../../fixtures/kube/node.json");

/// The `(type, object)` of each line of a watch stream.
fn stream(text: &str) -> Vec<(String, Value)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["type"].as_str().unwrap().to_string(), v["object"].clone())
        })
        .collect()
}

#[test]
fn the_fixture_pod_gives_its_kubespawner_values() {
    let list: Value = serde_json::from_str(PODS).unwrap();
    let p = &list["items"][0];
    let r = pod_row(&pod(p.clone()));
    // the annotation is the real name, the label its escaped form
    assert_eq!(r.user.as_deref(), Some("alice.smith"));
    assert_eq!(
        p["metadata"]["labels"]["hub.jupyter.org/username"],
        "alice-2esmith"
    );
    assert_eq!(r.server.as_deref(), Some(""));
    assert_eq!(
        (r.namespace.as_str(), r.pod.as_str()),
        ("jhub", "jupyter-alice-2esmith")
    );
    assert_eq!(r.phase.as_deref(), Some("Pending"));
    assert_eq!(r.node, None);
    // "500m", "2", "1Gi", "2Gi"; the init container's empty resources count for nothing
    assert_eq!((r.cpu_request, r.cpu_limit), (Some(0.5), Some(2.0)));
    assert_eq!(
        (r.memory_request, r.memory_limit),
        (Some(1_073_741_824.0), Some(2_147_483_648.0))
    );
    assert_eq!(r.gpus, None);
    assert_eq!(r.unschedulable.as_deref(), Some("Unschedulable"));
    assert!(!r.oom_killed);

    let s = stream(POD_WATCH);
    let types: Vec<&str> = s.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["MODIFIED", "MODIFIED", "MODIFIED", "BOOKMARK"]);
    let rows: Vec<PodRow> = s[..3]
        .iter()
        .map(|(_, o)| pod_row(&pod(o.clone())))
        .collect();
    let node = s[0].1["spec"]["nodeName"].as_str().unwrap();
    for r in &rows {
        assert_eq!(r.node.as_deref(), Some(node));
        assert_eq!(r.unschedulable, None);
        assert_eq!(r.cpu_request, Some(0.5));
    }
    let phases: Vec<_> = rows.iter().map(|r| r.phase.as_deref().unwrap()).collect();
    assert_eq!(phases, ["Pending", "Running", "Running"]);
    let oom: Vec<_> = rows.iter().map(|r| r.oom_killed).collect();
    assert_eq!(oom, [false, false, true]);
}

#[test]
fn the_fixture_events_take_their_time_from_event_time_and_series() {
    use super::super::podevents::{note, occurrences};
    let ev = |v: &Value| -> Event { serde_json::from_value(v.clone()).unwrap() };
    let s = stream(EVENT_WATCH);
    let (first, again) = (ev(&s[0].1), ev(&s[1].1));
    // written through events.k8s.io: no lastTimestamp, no count
    assert_eq!((first.last_timestamp.is_none(), first.count), (true, None));
    let ((ns, p), n) = note(&first).unwrap();
    assert_eq!((ns.as_str(), p.as_str()), ("jhub", "jupyter-alice-2esmith"));
    assert_eq!(n.event, PodEvent::FailedScheduling);
    assert_eq!(n.message.as_deref(), s[0].1["message"].as_str());
    let micros = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .timestamp_micros()
    };
    assert_eq!(
        n.at.unwrap().timestamp_micros(),
        micros(&s[0].1["eventTime"])
    );
    assert_eq!(occurrences(&first), 1);
    let (_, n) = note(&again).unwrap();
    assert_eq!(
        n.at.unwrap().timestamp_micros(),
        micros(&s[1].1["series"]["lastObservedTime"])
    );
    assert_eq!(occurrences(&again), 2);
    // Scheduled ends a pending interval but is no note; the kubelet's Pulling is nothing here
    assert_eq!(classify(&ev(&s[2].1)), Some(PodEvent::Scheduled));
    assert_eq!(note(&ev(&s[2].1)), None);
    assert_eq!(classify(&ev(&s[3].1)), None);
    // the placeholder preempted by a user pod
    let list: Value = serde_json::from_str(EVENTS).unwrap();
    let ((_, p), n) = note(&ev(&list["items"][0])).unwrap();
    assert_eq!(p, "user-placeholder-1");
    assert_eq!(n.event, PodEvent::Preempted);
    assert!(n.message.unwrap().starts_with("Preempted by pod "));
}

#[test]
fn the_fixture_node_gives_instance_type_and_zone() {
    use super::super::nodes::node_info;
    let n: k8s_openapi::api::core::v1::Node = serde_json::from_str(NODE).unwrap();
    let i = node_info(&n);
    assert_eq!(i.instance_type.as_deref(), Some("t3.medium"));
    assert_eq!(i.zone.as_deref(), Some("us-east-1a"));
}
