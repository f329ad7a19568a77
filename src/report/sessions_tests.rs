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

// --- The log shapes of issue 17. Each input follows the order in which JupyterHub emits the
// --- lines (the emitting function is named at each test); see docs/SESSIONS.md.

const MS: i64 = 1_000;

fn at_ms(ms: i64, user: Option<&str>, server: Option<&str>, life: Life) -> LifeEvent {
    LifeEvent {
        ts: ms * MS,
        hub: "h".into(),
        user: user.map(Into::into),
        server: server.map(Into::into),
        life,
    }
}

fn keys(s: &[Session]) -> Vec<(String, String, Option<i64>, EndReason)> {
    s.iter()
        .map(|s| (s.user.clone(), s.server.clone(), s.end, s.end_reason))
        .collect()
}

/// The real JupyterHub 6.1.1 capture (`fixtures/logs/real/hub-only/hub.log`): carol's pod posts
/// activity at 17:04:29.381 (`singleuser/extension.py` starts its activity loop when the
/// server starts), 1.7 s before `User carol:analysis took 4.384 seconds to start`
/// (`handlers/base.py` `spawn_single_user.finish_user_spawn`). Carol never runs a default
/// server: the heartbeat is her named server's, not a server running before the data.
#[test]
fn a_pre_ready_heartbeat_belongs_to_the_spawn_not_to_a_phantom_default_server() {
    let t0 = 1_764_349_453_000; // 2026-11-28 17:04:13 UTC, the log's first record
    let evs = [
        at_ms(t0 + 16_381, Some("carol"), None, Life::Activity),
        at_ms(
            t0 + 18_057,
            Some("carol"),
            Some("analysis"),
            Life::SpawnSucceeded(Some(4.384)),
        ),
        at_ms(
            t0 + 41_055,
            Some("carol"),
            Some("analysis"),
            Life::ProxyRemoved,
        ),
        at_ms(
            t0 + 41_861,
            Some("carol"),
            Some("analysis"),
            Life::StopSucceeded,
        ),
    ];
    let first = HashMap::from([("h".to_string(), t0 * MS)]);
    let s = derive(&evs, ActivityIndex::default(), &first);
    assert_eq!(
        keys(&s),
        [(
            "carol".into(),
            "analysis".into(),
            Some((t0 + 41_861) * MS),
            EndReason::UserStop
        )]
    );
    assert!(!s[0].started_before_data);
}

/// Activity well before a user's first spawn is a server that ran when the data began: if the
/// user then spawns a server, that one was it (JupyterHub does not spawn a running server,
/// `handlers/base.py` `spawn_single_user`), its stop line missing: it ends at its last
/// activity before the spawn began. With no spawn after it, it runs on.
#[test]
fn activity_long_before_a_spawn_is_a_server_from_before_the_data_ended_at_its_last_sign() {
    let evs = [
        ev(100, Some("a"), None, Life::Activity),
        ev(
            1000,
            Some("a"),
            Some("gpu"),
            Life::SpawnSucceeded(Some(30.0)),
        ),
        ev(200, Some("b"), None, Life::Activity),
    ];
    let mut act = ActivityIndex::default();
    act.entry("h".into()).or_default().insert(
        "a".into(),
        // 980 is after the spawn began (1000 − 30): the new pod's heartbeat
        vec![100 * S, 400 * S, 980 * S, 1500 * S],
    );
    let mut evs = evs.to_vec();
    evs.sort_by_key(|e| e.ts);
    let s = derive(&evs, act, &first(10));
    let by: Vec<_> = s
        .iter()
        .map(|s| {
            (
                s.user.as_str(),
                s.server.as_str(),
                s.start,
                s.end,
                s.flags(),
            )
        })
        .collect();
    assert_eq!(
        by,
        [
            (
                "a",
                "gpu",
                10 * S,
                Some(400 * S),
                "started_before_data,missing_stop".to_string()
            ),
            ("b", "", 10 * S, None, "started_before_data".to_string()),
            ("a", "gpu", 1000 * S, None, String::new()),
        ]
    );
}

/// `User heidi server stopped, with exit code: 137` names the user only; JupyterHub's
/// `user_stopped` (`handlers/base.py`, and `app.py` `init_spawners` for the variant without a
/// comma) logs `Removing user heidi from proxy (/user/heidi/gpu/)` right after
/// (`proxy.py` `delete_user`). With two servers open, the removal says which one died.
#[test]
fn an_exit_line_ends_the_server_its_proxy_removal_names() {
    let evs = [
        ev(1, Some("heidi"), Some(""), Life::SpawnSucceeded(None)),
        ev(2, Some("heidi"), Some("gpu"), Life::SpawnSucceeded(None)),
        ev(50, Some("heidi"), None, Life::Exited),
        ev(50, Some("heidi"), Some("gpu"), Life::ProxyRemoved),
        ev(90, Some("heidi"), Some(""), Life::ProxyRemoved),
        // a stop line whose server the parser could not recover: its removal came first
        ev(91, Some("heidi"), None, Life::StopSucceeded),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    assert_eq!(
        keys(&s),
        [
            ("heidi".into(), "".into(), Some(91 * S), EndReason::UserStop),
            (
                "heidi".into(),
                "gpu".into(),
                Some(50 * S),
                EndReason::Failed
            ),
        ]
    );
}

/// A stop line without a server name and no removal before it: the DELETE request line that
/// follows it (`log.py` `log_request`, written when the request completes) names the server.
#[test]
fn a_stop_line_without_removal_takes_the_server_of_the_delete_after_it() {
    let evs = [
        ev(1, Some("a"), Some(""), Life::SpawnSucceeded(None)),
        ev(2, Some("a"), Some("x"), Life::SpawnSucceeded(None)),
        ev(40, Some("a"), None, Life::StopSucceeded),
        ev(40, Some("a"), Some("x"), Life::Delete { actor: "a".into() }),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    assert_eq!(
        keys(&s),
        [
            ("a".into(), "".into(), None, EndReason::Running),
            ("a".into(), "x".into(), Some(40 * S), EndReason::UserStop),
        ]
    );
}

/// `%s still running` is logged with `user.name` in every JupyterHub from 1.5 to 6.1
/// (`app.py` `init_spawners.check_spawner`), so the parser reads the default server. A user
/// whose running server is named must not get a default server too.
#[test]
fn still_running_confirms_the_users_named_server_and_opens_no_default_one() {
    let evs = [
        ev(1, Some("ivan"), Some("scratch"), Life::SpawnSucceeded(None)),
        ev(100, None, None, Life::HubShutdown),
        ev(110, Some("ivan"), Some(""), Life::StillRunning),
        ev(200, Some("ivan"), Some("scratch"), Life::StopSucceeded),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    assert_eq!(
        keys(&s),
        [(
            "ivan".into(),
            "scratch".into(),
            Some(200 * S),
            EndReason::UserStop
        )]
    );
}

/// A log that begins at a hub start-up: `bob still running` for a server the data never saw
/// start. Its name comes with its stop (the stop line's server, recovered from the removal
/// before it): one session of that server from the data's start, no default server.
#[test]
fn still_running_before_any_spawn_is_named_by_the_later_stop() {
    let evs = [
        ev(5, Some("bob"), Some(""), Life::StillRunning),
        ev(5, Some("carl"), Some(""), Life::StillRunning),
        ev(300, Some("bob"), Some("scratch"), Life::ProxyRemoved),
        ev(301, Some("bob"), None, Life::StopSucceeded),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(5));
    assert_eq!(
        keys(&s),
        [
            (
                "bob".into(),
                "scratch".into(),
                Some(301 * S),
                EndReason::UserStop
            ),
            // carl's server is never named: it runs on, as the default server
            ("carl".into(), "".into(), None, EndReason::Running),
        ]
    );
    assert!(s.iter().all(|s| s.started_before_data && s.start == 5 * S));
}

/// One `still running` line per running server: a line beyond the user's open servers in the
/// same start-up is one more server, running since before the data.
#[test]
fn a_still_running_line_beyond_the_open_servers_is_one_more_server() {
    let evs = [
        ev(10, Some("u"), Some("a"), Life::SpawnSucceeded(None)),
        ev(100, None, None, Life::HubShutdown),
        ev(110, Some("u"), Some(""), Life::StillRunning),
        ev(110, Some("u"), Some(""), Life::StillRunning),
        // the next start-up, an hour later without a shutdown line (a crashed hub pod)
        ev(3700, Some("u"), Some(""), Life::StillRunning),
        ev(3700, Some("u"), Some(""), Life::StillRunning),
        ev(4000, Some("u"), Some("b"), Life::StopSucceeded),
        ev(4100, Some("u"), Some("a"), Life::StopSucceeded),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    assert_eq!(
        keys(&s),
        [
            ("u".into(), "b".into(), Some(4000 * S), EndReason::UserStop),
            ("u".into(), "a".into(), Some(4100 * S), EndReason::UserStop),
        ]
    );
    assert!(s[0].started_before_data && !s[1].started_before_data);
}

/// A gap in the collected log swallowed judy's stop line. Her next spawn took 30 s
/// ("took 30.000 seconds to start" counts from the spawn's start, `handlers/base.py`) and its
/// pod posted activity 5 s before ready: the old run ends at its own last activity before the
/// new spawn began, not at the new pod's heartbeat.
#[test]
fn a_missing_stop_ends_the_run_at_its_last_sign_before_the_next_spawn_began() {
    let evs = [
        ev(0, Some("judy"), Some(""), Life::SpawnSucceeded(Some(4.0))),
        ev(
            7_230,
            Some("judy"),
            Some(""),
            Life::SpawnSucceeded(Some(30.0)),
        ),
    ];
    let mut act = ActivityIndex::default();
    act.entry("h".into())
        .or_default()
        .insert("judy".into(), vec![300 * S, 600 * S, 7_225 * S]);
    let s = derive(&evs, act, &first(0));
    assert_eq!(
        keys(&s),
        [
            ("judy".into(), "".into(), Some(600 * S), EndReason::Replaced),
            ("judy".into(), "".into(), None, EndReason::Running),
        ]
    );
    assert_eq!(s[1].last_activity, None, "the heartbeat came before ready");
}

/// The hub's `still running` confirmation is a sign of life too: after a restart and a gap,
/// the run ends at the confirmation, not at its start.
#[test]
fn a_still_running_confirmation_is_a_sign_of_life_for_a_missing_stop() {
    let evs = [
        ev(0, Some("a"), Some(""), Life::SpawnSucceeded(None)),
        ev(100, None, None, Life::HubShutdown),
        ev(120, Some("a"), Some(""), Life::StillRunning),
        ev(900, Some("a"), Some(""), Life::SpawnSucceeded(Some(10.0))),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    assert_eq!(s[0].end, Some(120 * S));
    assert!(s[0].missing_stop);
}

/// KubeSpawner escapes user names in pod names: 6.x `escape` (`-40`, `-2e`) and 7.x `safe`
/// (`---<hash>`), see [`crate::report::podname`]. E-mail-like users get their profile.
#[test]
fn profiles_pair_with_escaped_and_hashed_pod_names() {
    let evs = [
        ev(1, None, None, Life::ProfileOverride("GPU (large)".into())),
        ev(
            2,
            None,
            None,
            Life::PodCreate("jhub/jupyter-frank-example-org---80ca8af6".into()),
        ),
        ev(3, None, None, Life::ProfileOverride("Medium".into())),
        ev(
            4,
            None,
            None,
            Life::PodCreate("jupyter-kate-2elee-40example-2eorg--gpu".into()),
        ),
        ev(5, None, None, Life::ProfileOverride("Medium".into())),
        ev(6, None, None, Life::PodCreate("jupyter-ana.lopez".into())),
        ev(
            20,
            Some("frank@example.org"),
            Some(""),
            Life::SpawnSucceeded(None),
        ),
        ev(
            21,
            Some("kate.lee@example.org"),
            Some("gpu"),
            Life::SpawnSucceeded(None),
        ),
        // not a name KubeSpawner could have made for her: no profile
        ev(22, Some("ana.lopez"), Some(""), Life::SpawnSucceeded(None)),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    let by: HashMap<_, _> = s
        .iter()
        .map(|s| (s.user.as_str(), s.profile.as_deref()))
        .collect();
    assert_eq!(by["frank@example.org"], Some("GPU (large)"));
    assert_eq!(by["kate.lee@example.org"], Some("Medium"));
    assert_eq!(by["ana.lopez"], None);
}

/// A server running since before the data was created before it: a profile line in the data is
/// never its own. Here bob's unnamed server (`still running`) ends the data as the default
/// server, and the GPU pod of his failed spawn (`Unhandled error starting bob's server`, no
/// ready line) must not price it.
#[test]
fn a_server_from_before_the_data_takes_no_profile_from_a_failed_spawns_pod() {
    let evs = [
        ev(5, Some("bob"), Some(""), Life::StillRunning),
        ev(60, None, None, Life::ProfileOverride("GPU (large)".into())),
        ev(61, None, None, Life::PodCreate("jhub/jupyter-bob".into())),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(5));
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0].profile.as_deref(), s[0].started_before_data),
        (None, true)
    );
}

/// KubeSpawner retries the pod's create request (a timeout, or a 409 after deleting the old
/// pod: `spawner.py` `_make_create_pod_request` under `exponential_backoff`), logging
/// `Attempting to create pod …` again, with no profile line of its own. The retry keeps its
/// spawn's profile and does not take the next spawn's; a quick new spawn of the same server
/// (after a failure) logs its own profile line first and takes that one.
#[test]
fn a_pod_create_retry_keeps_its_profile_and_a_new_spawn_takes_its_own() {
    let evs = [
        ev(1, None, None, Life::ProfileOverride("GPU (large)".into())),
        ev(2, None, None, Life::PodCreate("jhub/jupyter-alice".into())),
        ev(5, None, None, Life::PodCreate("jhub/jupyter-alice".into())),
        ev(6, None, None, Life::ProfileOverride("Medium".into())),
        ev(7, None, None, Life::PodCreate("jhub/jupyter-bob".into())),
        ev(
            30,
            Some("alice"),
            Some(""),
            Life::SpawnSucceeded(Some(29.0)),
        ),
        ev(31, Some("bob"), Some(""), Life::SpawnSucceeded(Some(27.0))),
        // carol's first spawn fails; she spawns again 20 s later with another profile
        ev(100, None, None, Life::ProfileOverride("GPU (large)".into())),
        ev(
            101,
            None,
            None,
            Life::PodCreate("jhub/jupyter-carol".into()),
        ),
        ev(120, None, None, Life::ProfileOverride("Medium".into())),
        ev(
            121,
            None,
            None,
            Life::PodCreate("jhub/jupyter-carol".into()),
        ),
        ev(
            140,
            Some("carol"),
            Some(""),
            Life::SpawnSucceeded(Some(20.0)),
        ),
    ];
    let s = derive(&evs, ActivityIndex::default(), &first(0));
    let by: HashMap<_, _> = s
        .iter()
        .map(|s| (s.user.as_str(), s.profile.as_deref()))
        .collect();
    assert_eq!(by["alice"], Some("GPU (large)"));
    assert_eq!(by["bob"], Some("Medium"));
    assert_eq!(by["carol"], Some("Medium"));
}
