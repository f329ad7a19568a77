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
        forecast: None,
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
        forecast: None,
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
    use crate::sources::kube::pending::PodObs;
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
    let forecast = prop::option::of((0.0f64..12.0, 0u32..10))
        .prop_map(|f| f.map(|(expected, running)| ForecastRoom { expected, running }));
    (waiting, prop::option::of(0u32..6), recent, forecast).prop_map(
        |(ws, free, recent, forecast)| CapacityState {
            waiting: ws.into_iter().map(|(u, p, s)| w(u, p, s)).collect(),
            free_placeholders: free,
            recent: recent
                .into_iter()
                .map(|(p, s)| (p.map(String::from), s))
                .collect(),
            forecast,
        },
    )
}

#[test]
fn the_forecast_makes_a_spawn_wait_before_anything_is_pending_only_when_asked() {
    let on = WaitPolicy {
        forecast: true,
        ..WaitPolicy::default()
    };
    // 9 gpu servers expected within the hour, 6 running, no free placeholder
    let s = CapacityState {
        waiting: vec![],
        free_placeholders: Some(0),
        recent: vec![],
        forecast: Some(ForecastRoom {
            expected: 9.0,
            running: 6,
        }),
    };
    let v = decide(t(0), "cy", "", "gpu", &s, &on);
    let (retry, msg) = wait_of(&v);
    assert_eq!(retry, 300, "scale_up_time, nothing has started waiting");
    assert_eq!(
        msg,
        "No room is expected for a 'gpu' server right now: the forecast expects 9.0 such servers \
         soon, 6 running and no free placeholder; a new node usually takes 5 min (the configured \
         scale-up time); expect room in ~5 min."
    );
    assert!(matches!(
        v,
        Verdict::Wait {
            why: Why::Forecast,
            waiting: 0,
            measured: false,
            ..
        }
    ));
    // recent gpu waits measured: their median
    let measured = CapacityState {
        recent: vec![(Some("gpu".into()), 240.0)],
        ..s.clone()
    };
    assert_eq!(
        wait_of(&decide(t(0), "cy", "", "gpu", &measured, &on)).0,
        240
    );
    // off by default; a free placeholder; the forecast met by what runs
    assert_eq!(
        decide(t(0), "cy", "", "gpu", &s, &WaitPolicy::default()),
        Verdict::Allow(Fit::NoneWaiting)
    );
    let free = CapacityState {
        free_placeholders: Some(1),
        ..s.clone()
    };
    assert_eq!(
        decide(t(0), "cy", "", "gpu", &free, &on),
        Verdict::Allow(Fit::NoneWaiting)
    );
    let met = CapacityState {
        forecast: Some(ForecastRoom {
            expected: 6.0,
            running: 6,
        }),
        ..s
    };
    assert_eq!(
        decide(t(0), "cy", "", "gpu", &met, &on),
        Verdict::Allow(Fit::NoneWaiting)
    );
}

#[test]
fn the_view_keeps_each_set_and_its_forecast_apart() {
    let p = WaitPolicy::default();
    let view = CapacityView::new(None);
    let obs = |current: i32, running: u32| Observed {
        current,
        running,
        pending: 0,
    };
    view.set_cycle("user-placeholder", None, t(0), obs(3, 7), 8.5);
    view.set_cycle(
        "user-placeholder-gpu",
        Some("gpu".into()),
        t(0),
        obs(0, 7),
        4.0,
    );
    // a gpu spawn: its own set only (0 free: the others' room is on other nodes); its
    // profile's forecast
    let s = view
        .state_for(t(10), &p, Some("gpu"), Some(2), |_, _| None)
        .unwrap();
    assert_eq!(s.free_placeholders, Some(0));
    assert_eq!(
        s.forecast,
        Some(ForecastRoom {
            expected: 4.0,
            running: 2
        })
    );
    // a profile without a set of its own: the all-servers set, against all running pods
    let s = view
        .state_for(t(10), &p, Some("small"), Some(1), |_, _| None)
        .unwrap();
    assert_eq!(s.free_placeholders, Some(3));
    assert_eq!(
        s.forecast,
        Some(ForecastRoom {
            expected: 8.5,
            running: 7
        })
    );
    // any profile (the old single-set view): every set
    let s = view.state(t(10), &p, |_, _| None).unwrap();
    assert_eq!(s.free_placeholders, Some(3));
    // sets per profile only: each profile its own; a profile without a set, none
    let view = CapacityView::new(None);
    view.set_cycle(
        "user-placeholder-gpu",
        Some("gpu".into()),
        t(0),
        obs(0, 7),
        4.0,
    );
    view.set_cycle(
        "user-placeholder-cpu",
        Some("cpu".into()),
        t(0),
        obs(5, 7),
        4.0,
    );
    let free = |profile: &str| {
        view.state_for(t(10), &p, Some(profile), Some(2), |_, _| None)
            .unwrap()
            .free_placeholders
    };
    assert_eq!(
        (free("gpu"), free("cpu"), free("small")),
        (Some(0), Some(5), Some(0))
    );
    // stale reads are no evidence, and no forecast
    assert_eq!(
        view.state_for(t(400), &p, Some("gpu"), Some(2), |_, _| None),
        None
    );
}

proptest! {
    /// The forecast rule: it only ever turns an allow into a wait (never the reverse), only when
    /// asked for, only when nothing of the profile waits, no placeholder is free and the forecast
    /// exceeds what runs; its estimate stays in bounds; and more expected demand never turns its
    /// wait into an allow.
    #[test]
    fn the_forecast_only_adds_waits_on_its_own_evidence(
        s in arb_state(),
        user in prop::sample::select(vec!["ann", "dee"]),
        profile in prop::sample::select(vec!["gpu", "small"]),
        more in 0.0f64..5.0,
    ) {
        let off = WaitPolicy::default();
        let on = WaitPolicy { forecast: true, ..off.clone() };
        let before = decide(t(0), user, "", profile, &s, &off);
        let after = decide(t(0), user, "", profile, &s, &on);
        let none = CapacityState { forecast: None, ..s.clone() };
        prop_assert_eq!(&decide(t(0), user, "", profile, &none, &on), &before);
        if after != before {
            prop_assert_eq!(&before, &Verdict::Allow(Fit::NoneWaiting));
            let f = s.forecast.unwrap();
            prop_assert_eq!(s.free_placeholders.unwrap_or(0), 0);
            prop_assert!(f.expected > f64::from(f.running));
            match &after {
                Verdict::Wait { retry_after_seconds, why, waiting, .. } => {
                    prop_assert_eq!(*why, Why::Forecast);
                    prop_assert_eq!(*waiting, 0);
                    prop_assert!((30..=1800).contains(retry_after_seconds));
                }
                Verdict::Allow(_) => prop_assert!(false, "changed to an allow"),
            }
            let busier = CapacityState {
                forecast: Some(ForecastRoom { expected: f.expected + more, ..f }),
                ..s.clone()
            };
            let busier_v = decide(t(0), user, "", profile, &busier, &on);
            let waits = matches!(busier_v, Verdict::Wait { .. });
            prop_assert!(waits, "more demand allowed: {:?}", busier_v);
        }
    }
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
