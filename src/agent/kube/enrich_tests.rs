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
