use super::*;

const S: i64 = 1_000_000;

fn ev(ts: i64, user: Option<&str>, server: Option<&str>, life: Life) -> LifeEvent {
    LifeEvent {
        ts: ts * S,
        hub: "h".into(),
        user: user.map(Into::into),
        server: server.map(Into::into),
        life,
    }
}

fn first(ts: i64) -> HashMap<String, i64> {
    HashMap::from([("h".to_string(), ts * S)])
}

#[test]
fn a_spawn_and_its_stop_make_one_user_stopped_session_with_its_profile() {
    let evs = [
        ev(10, None, None, Life::ProfileOverride("GPU (large)".into())),
        ev(11, None, None, Life::PodCreate("jupyter-alice--gpu".into())),
        ev(
            40,
            Some("alice"),
            Some("gpu"),
            Life::SpawnSucceeded(Some(29.5)),
        ),
        ev(100, Some("alice"), None, Life::Activity),
        ev(500, Some("alice"), Some("gpu"), Life::StopSucceeded),
        ev(
            501,
            Some("alice"),
            Some("gpu"),
            Life::Delete {
                actor: "alice".into(),
            },
        ),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    assert_eq!(s.len(), 1);
    let s = &s[0];
    assert_eq!((s.start, s.end), (40 * S, Some(500 * S)));
    assert_eq!(s.profile.as_deref(), Some("GPU (large)"));
    assert_eq!(s.end_reason, EndReason::UserStop);
    assert_eq!(s.spawn_seconds, Some(29.5));
    assert_eq!(s.last_activity, Some(100 * S));
    assert_eq!(s.idle_tail_us(500 * S), 400 * S);
    assert_eq!(s.flags(), "");
}

#[test]
fn culls_are_told_apart_from_user_and_admin_stops() {
    let evs = [
        ev(1, Some("a"), Some(""), Life::SpawnSucceeded(None)),
        ev(2, Some("b"), Some(""), Life::SpawnSucceeded(None)),
        ev(3, Some("c"), Some(""), Life::SpawnSucceeded(None)),
        ev(100, Some("a"), Some(""), Life::CullRequested),
        ev(101, Some("a"), Some(""), Life::StopSucceeded),
        ev(102, Some("b"), Some(""), Life::StopSucceeded),
        ev(
            103,
            Some("b"),
            Some(""),
            Life::Delete {
                actor: "idle-culler".into(),
            },
        ),
        ev(104, Some("c"), Some(""), Life::StopSucceeded),
        ev(
            105,
            Some("c"),
            Some(""),
            Life::Delete {
                actor: "admin".into(),
            },
        ),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    let reasons: Vec<_> = s.iter().map(|s| (s.user.as_str(), s.end_reason)).collect();
    assert_eq!(
        reasons,
        [
            ("a", EndReason::Culled),
            ("b", EndReason::Culled),
            ("c", EndReason::AdminStop)
        ]
    );
}

#[test]
fn a_server_running_before_the_data_starts_at_the_first_record_and_is_flagged() {
    let evs = [
        ev(50, Some("a"), None, Life::Activity),
        ev(60, Some("b"), Some(""), Life::StopSucceeded),
        ev(70, Some("c"), Some(""), Life::StillRunning),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(5));
    assert_eq!(s.len(), 3);
    assert!(s.iter().all(|s| s.started_before_data && s.start == 5 * S));
    let by: HashMap<_, _> = s.iter().map(|s| (s.user.as_str(), s)).collect();
    assert_eq!(by["a"].end, None);
    assert_eq!(by["a"].end_reason, EndReason::Running);
    assert_eq!(by["b"].end, Some(60 * S));
    assert_eq!(by["c"].end, None);
}

#[test]
fn stray_activity_after_a_stop_does_not_open_a_phantom_session() {
    let evs = [
        ev(1, Some("a"), Some(""), Life::SpawnSucceeded(None)),
        ev(10, Some("a"), Some(""), Life::StopSucceeded),
        ev(11, Some("a"), None, Life::Activity),
    ];
    assert_eq!(derive(&evs, ActivityIndex::default(), &first(0)).len(), 1);
}

#[test]
fn a_second_spawn_without_a_stop_closes_the_first_at_its_last_activity() {
    let evs = [
        ev(1, Some("a"), Some(""), Life::SpawnSucceeded(None)),
        ev(30, Some("a"), None, Life::Activity),
        ev(900, Some("a"), Some(""), Life::SpawnSucceeded(None)),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].end, s[0].end_reason),
        (Some(30 * S), EndReason::Replaced)
    );
    assert!(s[0].missing_stop);
    assert_eq!((s[1].start, s[1].end), (900 * S, None));
}

#[test]
fn hub_restart_keeps_running_servers_and_ends_lost_ones_at_the_shutdown() {
    let evs = [
        ev(1, Some("a"), Some(""), Life::SpawnSucceeded(None)),
        ev(2, Some("b"), Some(""), Life::SpawnSucceeded(None)),
        ev(100, None, None, Life::HubShutdown),
        ev(160, Some("a"), Some(""), Life::StillRunning),
        ev(161, Some("b"), Some(""), Life::Lost),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    let by: HashMap<_, _> = s.iter().map(|s| (s.user.as_str(), s)).collect();
    assert_eq!((by["a"].end, by["a"].started_before_data), (None, false));
    assert_eq!(by["b"].end, Some(100 * S));
    assert_eq!(by["b"].end_reason, EndReason::HubRestart);
    assert!(by["b"].end_estimated);
}

#[test]
fn an_exit_without_a_server_name_ends_the_users_only_open_server() {
    let evs = [
        ev(1, Some("a"), Some("analysis"), Life::SpawnSucceeded(None)),
        ev(50, Some("a"), None, Life::Exited),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    assert_eq!(s.len(), 1);
    assert_eq!((s[0].server.as_str(), s[0].end), ("analysis", Some(50 * S)));
    assert_eq!(s[0].end_reason, EndReason::Failed);
}

#[test]
fn profiles_pair_with_pods_in_order_and_unmatched_servers_get_the_default() {
    let evs = [
        ev(1, None, None, Life::ProfileOverride("Medium".into())),
        ev(2, None, None, Life::ProfileOverride("GPU".into())),
        ev(3, None, None, Life::PodCreate("jhub/jupyter-bob".into())),
        ev(4, None, None, Life::PodCreate("jupyter-alice".into())),
        ev(9, Some("alice"), Some(""), Life::SpawnSucceeded(None)),
        ev(9, Some("bob"), Some(""), Life::SpawnSucceeded(None)),
        ev(9, Some("carol"), Some(""), Life::SpawnSucceeded(None)),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    let by: HashMap<_, _> = s
        .iter()
        .map(|s| (s.user.as_str(), s.profile.clone()))
        .collect();
    assert_eq!(by["bob"].as_deref(), Some("Medium"));
    assert_eq!(by["alice"].as_deref(), Some("GPU"));
    assert_eq!(by["carol"], None);
}

#[test]
fn a_failed_spawns_profile_does_not_stick_to_the_users_next_server() {
    let evs = [
        ev(1, None, None, Life::ProfileOverride("GPU".into())),
        ev(2, None, None, Life::PodCreate("jupyter-alice".into())),
        // that spawn failed; the next day's spawn uses the default profile (no override line)
        ev(86_400, None, None, Life::PodCreate("jupyter-alice".into())),
        ev(86_410, Some("alice"), Some(""), Life::SpawnSucceeded(None)),
        // an override whose spawn failed before creating a pod is not paired a day later
        ev(90_000, None, None, Life::ProfileOverride("GPU".into())),
        ev(180_000, None, None, Life::PodCreate("jupyter-bob".into())),
        ev(180_010, Some("bob"), Some(""), Life::SpawnSucceeded(None)),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    assert!(s.iter().all(|s| s.profile.is_none()), "{s:?}");
}
