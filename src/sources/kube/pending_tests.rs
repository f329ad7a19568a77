#![allow(clippy::unwrap_used)]
use super::*;
use proptest::prelude::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_000_000 + s, 0).unwrap()
}

fn o(pod: &str, phase: &str, unsched: bool, pull: bool) -> PodObs {
    PodObs {
        namespace: "jhub".into(),
        pod: pod.into(),
        user: Some("alice".into()),
        server: Some(String::new()),
        phase: Some(phase.into()),
        created: None,
        unschedulable: unsched,
        image_pull: pull,
    }
}

#[test]
fn a_pod_waiting_for_a_node_then_its_image_counts_as_unschedulable() {
    let mut tr = Tracker::default();
    let mut first = o("a", "Pending", true, false);
    first.created = Some(t(-30));
    assert_eq!(tr.observe(t(0), &first), None);
    assert_eq!(tr.pending()[0].since, t(-30));
    assert!(tr.pending()[0].unschedulable);
    assert_eq!(tr.observe(t(200), &o("a", "Pending", false, true)), None);
    assert!(!tr.pending()[0].unschedulable);
    let iv = tr
        .observe(t(260), &o("a", "Running", false, false))
        .unwrap();
    assert_eq!(iv.reason, PendingReason::Unschedulable);
    assert_eq!(iv.seconds(), 290.0);
    // running again (a resync) is not a second interval
    assert_eq!(tr.observe(t(300), &o("a", "Running", false, false)), None);
    assert!(tr.pending().is_empty());
}

#[test]
fn image_pull_other_and_the_pods_that_give_no_interval() {
    let mut tr = Tracker::default();
    tr.observe(t(0), &o("p", "Pending", false, true));
    let iv = tr.observe(t(40), &o("p", "Running", false, false)).unwrap();
    assert_eq!((iv.reason, iv.seconds()), (PendingReason::ImagePull, 40.0));
    tr.observe(t(0), &o("q", "Pending", false, false));
    let iv = tr.observe(t(3), &o("q", "Running", false, false)).unwrap();
    assert_eq!(iv.reason, PendingReason::Other);
    // first seen running: nothing; failed or deleted while pending: nothing
    assert_eq!(tr.observe(t(0), &o("r", "Running", false, false)), None);
    tr.observe(t(0), &o("s", "Pending", true, false));
    assert_eq!(tr.observe(t(9), &o("s", "Failed", false, false)), None);
    assert_eq!(tr.observe(t(10), &o("s", "Running", false, false)), None);
    tr.observe(t(0), &o("u", "Pending", true, false));
    tr.deleted(&o("u", "Pending", true, false));
    assert!(tr.pending().is_empty());
}

#[test]
fn a_relist_forgets_pods_deleted_while_the_watch_was_down() {
    let mut tr = Tracker::default();
    tr.observe(t(0), &o("gone", "Pending", true, false));
    tr.observe(t(0), &o("kept", "Pending", true, false));
    tr.relisting();
    tr.observe(t(50), &o("kept", "Pending", true, false));
    assert_eq!(tr.pending().len(), 2, "not before the relist is complete");
    tr.relisted();
    assert_eq!(tr.pending().len(), 1);
    assert_eq!(tr.pending()[0].since, t(0), "the kept pod's spell goes on");
    // later events outside a relist are not filtered
    tr.relisted();
    tr.observe(t(60), &o("new", "Pending", false, false));
    assert_eq!(tr.pending().len(), 2);
}

#[test]
fn obs_reads_the_scheduling_condition_and_image_waits() {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "jupyter-a", "namespace": "jhub",
            "creationTimestamp": "2026-11-30T09:00:00Z",
            "annotations": {"hub.jupyter.org/username": "a"}},
        "spec": {"containers": [{"name": "notebook"}], "nodeName": "n1"},
        "status": {"phase": "Pending",
            "containerStatuses": [{"name": "notebook", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
    }))
    .unwrap();
    let ob = obs(&pod);
    assert!(ob.image_pull && !ob.unschedulable);
    assert_eq!(
        ob.created.map(|c| c.to_rfc3339()),
        Some("2026-11-30T09:00:00+00:00".to_string())
    );
    assert_eq!(ob.user.as_deref(), Some("a"));
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "jupyter-b", "namespace": "jhub"},
        "spec": {"containers": [{"name": "notebook"}]},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable"}]}
    }))
    .unwrap();
    let ob = obs(&pod);
    assert!(ob.unschedulable && !ob.image_pull);
}

/// Z2JH pods have init containers (`block-cloud-metadata`, often more): an image that cannot be
/// pulled for one of them shows in `initContainerStatuses`, the notebook container only says
/// `PodInitializing`.
#[test]
fn obs_sees_an_init_container_image_that_cannot_be_pulled() {
    let stream = include_str!("../../../fixtures/kube/pods-watch.jsonl");
    let first: serde_json::Value = serde_json::from_str(stream.lines().next().unwrap()).unwrap();
    let mut scheduled = first["object"].clone();
    assert_eq!(
        scheduled["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    // scheduled, initialising: nothing says the image is the wait
    let ob = obs(&serde_json::from_value(scheduled.clone()).unwrap());
    assert!(!ob.image_pull && !ob.unschedulable);
    let image = scheduled["status"]["initContainerStatuses"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    for reason in ["ErrImagePull", "ImagePullBackOff"] {
        scheduled["status"]["initContainerStatuses"][0]["state"] = serde_json::json!({"waiting": {
            "reason": reason,
            "message": format!("Back-off pulling image \"{image}\"")}});
        let ob = obs(&serde_json::from_value(scheduled.clone()).unwrap());
        assert!(ob.image_pull, "{reason}");
    }
}

#[test]
fn the_histogram_counts_per_reason_cumulatively() {
    let p = std::sync::Arc::new(Pending::default());
    assert_eq!(p.snapshot(), None, "nothing delivered yet");
    p.synced();
    assert_eq!(p.snapshot(), Some((vec![], vec![])));
    p.observe(t(0), &o("a", "Pending", true, false));
    p.observe(t(100), &o("a", "Running", false, false));
    p.observe(t(0), &o("b", "Pending", false, false));
    p.observe(t(2), &o("b", "Running", false, false));
    p.observe(t(0), &o("c", "Pending", false, false));
    let mut out = String::new();
    p.render(&mut out);
    for line in [
        "hubpulse_pod_pending_seconds_bucket{reason=\"unschedulable\",le=\"60\"} 0",
        "hubpulse_pod_pending_seconds_bucket{reason=\"unschedulable\",le=\"120\"} 1",
        "hubpulse_pod_pending_seconds_bucket{reason=\"unschedulable\",le=\"+Inf\"} 1",
        // a histogram's sum is written as a float by the encoder
        "hubpulse_pod_pending_seconds_sum{reason=\"unschedulable\"} 100.0",
        "hubpulse_pod_pending_seconds_bucket{reason=\"other\",le=\"5\"} 1",
        "hubpulse_pod_pending_seconds_count{reason=\"image_pull\"} 0",
        "hubpulse_pods_pending 1",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
    }
    assert!(!out.contains("alice"));
    let (now, recent) = p.snapshot().unwrap();
    assert_eq!((now.len(), recent.len()), (1, 2));
    p.watch_error();
    assert_eq!(p.snapshot(), None);
}

proptest! {
    /// Any sequence of observations: intervals are never negative, one per pending spell that
    /// ends in Running, and the reason is the strongest signal seen during the spell.
    #[test]
    fn intervals_follow_the_observed_spells(steps in prop::collection::vec((0usize..3, 0u8..4, any::<bool>(), any::<bool>(), 0i64..600), 0..60)) {
        let mut tr = Tracker::default();
        let mut at = 0i64;
        // the model: per pod, the open spell's (start, unsched seen, pull seen)
        let mut model: HashMap<usize, (i64, bool, bool)> = HashMap::new();
        for (pod, phase, unsched, pull, dt) in steps {
            at += dt;
            let phase = ["Pending", "Running", "Succeeded", "Failed"][phase as usize];
            let name = format!("p{pod}");
            let got = tr.observe(t(at), &o(&name, phase, unsched, pull));
            let want = match phase {
                "Pending" => {
                    let e = model.entry(pod).or_insert((at, false, false));
                    e.1 |= unsched;
                    e.2 |= pull;
                    None
                }
                "Running" => model.remove(&pod).map(|(s, u, p)| {
                    let r = if u { PendingReason::Unschedulable } else if p { PendingReason::ImagePull } else { PendingReason::Other };
                    (s, r)
                }),
                _ => { model.remove(&pod); None }
            };
            prop_assert_eq!(got.as_ref().map(|i| (i.start, i.reason)), want.map(|(s, r)| (t(s), r)));
            if let Some(i) = got {
                prop_assert!(i.seconds() >= 0.0);
                prop_assert_eq!(i.end, t(at));
            }
            prop_assert_eq!(tr.pending().len(), model.len());
        }
    }
}
