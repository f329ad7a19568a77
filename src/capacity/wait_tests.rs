#![allow(clippy::unwrap_used)]
use super::*;
use proptest::prelude::*;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_796_000_000 + s, 0).unwrap()
}

fn w(user: &str, profile: Option<&str>, since: i64) -> Waiting {
    Waiting {
        user: Some(user.into()),
        server: Some(String::new()),
        profile: profile.map(String::from),
        since: t(since),
    }
}

fn wait_of(v: &Verdict) -> (u64, &str) {
    match v {
        Verdict::Wait {
            retry_after_seconds,
            message,
            ..
        } => (*retry_after_seconds, message.as_str()),
        Verdict::Allow(f) => panic!("allowed: {f:?}"),
    }
}

#[test]
fn a_gpu_spawn_waits_for_the_node_being_added_for_the_gpu_pods_pending() {
    let p = WaitPolicy::default();
    let s = CapacityState {
        waiting: vec![w("ann", Some("gpu"), -120), w("bo", Some("gpu"), -60)],
        free_placeholders: Some(0),
        recent: vec![
            (Some("gpu".into()), 400.0),
            (Some("gpu".into()), 360.0),
            (Some("gpu".into()), 380.0),
            (Some("small".into()), 30.0),
        ],
    };
    let v = decide(t(0), "cy", "", "gpu", &s, &p);
    let (retry, msg) = wait_of(&v);
    // the median gpu wait is 380 s; the oldest has waited 120 s
    assert_eq!(retry, 260);
    assert_eq!(
        msg,
        "No room for a 'gpu' server right now: 2 servers are already waiting for a node \
         (the oldest for 2 min); recent spawns waited 6 min for a node (median of 3); \
         expect room in ~4 min."
    );
    // another profile does not wait for gpu nodes
    assert_eq!(
        decide(t(0), "cy", "", "small", &s, &p),
        Verdict::Allow(Fit::NoneWaiting)
    );
    // enough free placeholders make room at once
    let more = CapacityState {
        free_placeholders: Some(3),
        ..s.clone()
    };
    assert_eq!(
        decide(t(0), "cy", "", "gpu", &more, &p),
        Verdict::Allow(Fit::Placeholder)
    );
    // the requester's own pending pod does not count against it
    let own = CapacityState {
        waiting: vec![w("cy", Some("gpu"), -120)],
        ..s
    };
    assert_eq!(
        decide(t(0), "cy", "", "gpu", &own, &p),
        Verdict::Allow(Fit::NoneWaiting)
    );
}

#[test]
fn without_measurements_the_configured_scale_up_time_is_used_and_overdue_says_so() {
    let p = WaitPolicy {
        scale_up: Duration::minutes(6),
        ..WaitPolicy::default()
    };
    let s = CapacityState {
        waiting: vec![w("ann", None, -60)],
        free_placeholders: None,
        recent: vec![],
    };
    let v = decide(t(0), "cy", "", "", &s, &p);
    let (retry, msg) = wait_of(&v);
    assert_eq!(retry, 300);
    assert!(
        msg.starts_with("No room for a server right now: 1 server is already waiting"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "a new node usually takes 6 min (the configured scale-up time); expect room in ~5 min"
        ),
        "{msg}"
    );
    let v = decide(t(3600), "cy", "", "", &s, &p);
    let (retry, msg) = wait_of(&v);
    assert_eq!(retry, 30, "overdue: min_retry");
    assert!(
        msg.contains("longer than usual; try again in ~30 s"),
        "{msg}"
    );
}

#[test]
fn the_view_prefers_the_pods_watch_and_ignores_stale_loop_numbers() {
    use crate::agent::kube::pending::PodObs;
    let p = WaitPolicy::default();
    let view = CapacityView::new(None);
    assert_eq!(view.state(t(0), &p, |_, _| None), None, "no evidence");
    view.cycle(
        t(0),
        Observed {
            current: 2,
            running: 5,
            pending: 0,
        },
    );
    let s = view.state(t(10), &p, |_, _| None).unwrap();
    assert_eq!((s.waiting.len(), s.free_placeholders), (0, Some(2)));
    view.cycle(
        t(60),
        Observed {
            current: 2,
            running: 5,
            pending: 2,
        },
    );
    view.cycle(
        t(120),
        Observed {
            current: 2,
            running: 5,
            pending: 1,
        },
    );
    let s = view.state(t(130), &p, |_, _| None).unwrap();
    assert_eq!(s.free_placeholders, Some(0));
    assert_eq!(
        s.waiting,
        vec![Waiting {
            user: None,
            server: None,
            profile: None,
            since: t(60)
        }]
    );
    assert_eq!(view.state(t(120 + 301), &p, |_, _| None), None, "stale");

    let pods = std::sync::Arc::new(Pending::default());
    let view = CapacityView::new(Some(pods.clone()));
    let ob = |pod: &str, user: &str, phase: &str, unsched: bool| PodObs {
        namespace: "jhub".into(),
        pod: pod.into(),
        user: Some(user.into()),
        server: Some(String::new()),
        phase: Some(phase.into()),
        unschedulable: unsched,
        ..PodObs::default()
    };
    pods.observe(t(0), &ob("a", "ann", "Pending", true));
    pods.observe(t(300), &ob("a", "ann", "Running", false));
    pods.observe(t(400), &ob("b", "bo", "Pending", true));
    pods.observe(t(400), &ob("c", "cy", "Pending", false));
    let gpu = |u: &str, _: &str| (u != "cy").then(|| "gpu".to_string());
    let s = view.state(t(460), &p, gpu).unwrap();
    assert_eq!(s.waiting, vec![w("bo", Some("gpu"), 400)]);
    assert_eq!(s.recent, vec![(Some("gpu".into()), 300.0)]);
    let (retry, _) = wait_of(&decide(t(460), "dee", "", "gpu", &s, &p));
    assert_eq!(retry, 240);
}

#[test]
fn human_durations() {
    assert_eq!(human(45), "45 s");
    assert_eq!(human(89), "89 s");
    assert_eq!(human(360), "6 min");
    assert_eq!(human(4800), "80 min");
    assert_eq!(human(6000), "1 h 40 min");
    assert_eq!(human(-5), "0 s");
}

fn arb_state() -> impl Strategy<Value = CapacityState> {
    let profile = prop::option::of(prop::sample::select(vec!["gpu", "small"]));
    let waiting = prop::collection::vec(
        (
            prop::sample::select(vec!["ann", "bo", "cy"]),
            profile.clone(),
            -7200i64..60,
        ),
        0..6,
    );
    let recent = prop::collection::vec((profile, 0.0f64..3600.0), 0..8);
    (waiting, prop::option::of(0u32..6), recent).prop_map(|(ws, free, recent)| CapacityState {
        waiting: ws.into_iter().map(|(u, p, s)| w(u, p, s)).collect(),
        free_placeholders: free,
        recent: recent
            .into_iter()
            .map(|(p, s)| (p.map(String::from), s))
            .collect(),
    })
}

proptest! {
    /// Over generated situations: the answer follows the rule, stays in bounds, and never
    /// grows as time passes with nothing changing.
    #[test]
    fn waits_follow_the_rule(
        s in arb_state(),
        user in prop::sample::select(vec!["ann", "dee"]),
        profile in prop::sample::select(vec!["gpu", "small"]),
        later in 0i64..3600,
    ) {
        let p = WaitPolicy::default();
        let v = decide(t(0), user, "", profile, &s, &p);
        let blocking = s.waiting.iter().filter(|x| {
            x.user.as_deref() != Some(user) && x.profile.as_deref().is_none_or(|q| q == profile)
        }).count();
        match &v {
            Verdict::Allow(Fit::NoneWaiting) => prop_assert_eq!(blocking, 0),
            Verdict::Allow(Fit::Placeholder) => {
                prop_assert!(blocking > 0 && s.free_placeholders.unwrap() as usize > blocking)
            }
            Verdict::Wait { retry_after_seconds, message, waiting, .. } => {
                prop_assert!(blocking > 0 && s.free_placeholders.unwrap_or(0) as usize <= blocking);
                prop_assert_eq!(*waiting, blocking);
                prop_assert!((30..=1800).contains(retry_after_seconds), "{}", retry_after_seconds);
                prop_assert!(message.contains("waiting for a node"));
                // deterministic
                prop_assert_eq!(&decide(t(0), user, "", profile, &s, &p), &v);
                // time passing never lengthens the estimate
                if let Verdict::Wait { retry_after_seconds: r2, .. } = decide(t(later), user, "", profile, &s, &p) {
                    prop_assert!(r2 <= *retry_after_seconds);
                }
            }
        }
    }
}
