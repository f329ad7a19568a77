#![allow(clippy::unwrap_used)]
use super::*;
use crate::hub::Pending;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn server(name: &str, last: Option<i64>, profile: Option<&str>) -> Server {
    let opts = profile.map(|p| {
        let mut m = serde_json::Map::new();
        m.insert("profile".into(), p.into());
        m
    });
    Server {
        name: name.into(),
        ready: true,
        pending: None,
        stopped: false,
        started: Some(t(0)),
        last_activity: last.map(t),
        url: None,
        user_options: opts,
    }
}

fn user(name: &str, groups: &[&str], servers: Vec<Server>) -> User {
    User {
        name: name.into(),
        admin: false,
        groups: Some(groups.iter().map(|g| g.to_string()).collect()),
        roles: None,
        last_activity: None,
        created: Some(t(-1000)),
        pending: None,
        servers: Some(servers.into_iter().map(|s| (s.name.clone(), s)).collect()),
    }
}

fn policy() -> CullPolicy {
    CullPolicy {
        timeout: Duration::from_secs(600),
        mass_cull_min: 100,
        ..CullPolicy::default()
    }
}

fn run(users: &[User], now: i64, p: &CullPolicy) -> Vec<Decision> {
    let warned = HashSet::new();
    let inp = PassInput {
        now: t(now),
        freshness: Freshness::Fresh,
        running_total: 100,
        recent_culls: 0,
        rate_room: usize::MAX,
        warned: &warned,
    };
    decide(users, &inp, p)
}

fn one(d: &[Decision]) -> (Action, Reason) {
    assert_eq!(d.len(), 1, "{d:#?}");
    (d[0].action, d[0].reason)
}

#[test]
fn idle_past_the_limit_is_culled_and_active_is_kept_until_its_deadline() {
    let p = policy();
    let users = [user("a", &[], vec![server("", Some(100), None)])];
    let d = run(&users, 699, &p);
    assert_eq!(one(&d), (Action::Keep, Reason::Active));
    assert_eq!(d[0].deadline, Some(t(700)));
    assert_eq!(one(&run(&users, 700, &p)), (Action::Cull, Reason::Idle));
}

/// The decision rests on the hub's per-server `last_activity` alone (a heartbeat line cannot
/// reach it: `PassInput` carries nothing from the stream), and falls back to `started`.
#[test]
fn the_hubs_last_activity_decides_and_started_stands_in_when_there_is_none() {
    let p = policy();
    let two = [user(
        "a",
        &[],
        vec![server("nb", Some(100), None), server("", Some(400), None)],
    )];
    let d = run(&two, 800, &p);
    let by = |n: &str| d.iter().find(|d| d.server.as_deref() == Some(n)).unwrap();
    assert_eq!(
        (by("nb").action, by("nb").reason),
        (Action::Cull, Reason::Idle)
    );
    assert_eq!(by("nb").activity_source, ActivitySource::Api);
    assert_eq!(
        (by("").action, by("").deadline),
        (Action::Keep, Some(t(1000)))
    );
    let fresh = [user("b", &[], vec![server("", None, None)])];
    let d = run(&fresh, 599, &p);
    assert_eq!(
        (d[0].action, d[0].activity_source, d[0].deadline),
        (Action::Keep, ActivitySource::Started, Some(t(600)))
    );
}

#[test]
fn profile_then_group_then_default_limits() {
    let mut p = policy();
    p.profile_timeouts
        .insert("gpu".into(), Duration::from_secs(60));
    p.group_timeouts
        .insert("night-owls".into(), Duration::from_secs(3000));
    p.group_timeouts
        .insert("short".into(), Duration::from_secs(120));
    p.default_profile = Some("small".into());
    let gpu = [user(
        "g",
        &["night-owls"],
        vec![server("", Some(0), Some("gpu"))],
    )];
    assert_eq!(run(&gpu, 60, &p)[0].action, Action::Cull);
    // The most generous group wins.
    let owl = [user(
        "o",
        &["short", "night-owls"],
        vec![server("", Some(0), None)],
    )];
    let d = run(&owl, 2999, &p);
    assert_eq!(
        (d[0].action, d[0].limit),
        (Action::Keep, Some(Duration::from_secs(3000)))
    );
    assert_eq!(d[0].profile.as_deref(), Some("small"));
}

#[test]
fn pending_not_ready_exempt_and_disabled_kinds_are_skipped() {
    let mut p = policy();
    p.exempt_users.insert("boss".into());
    p.exempt_groups.insert("vip".into());
    p.exempt_servers.push(glob::Pattern::new("keep-*").unwrap());
    p.cull_named_servers = false;
    let mut pend = server("", Some(0), None);
    pend.pending = Some(Pending::Spawn);
    let mut nr = server("", Some(0), None);
    nr.ready = false;
    let r = |u: User| one(&run(&[u], 5000, &p));
    assert_eq!(
        r(user("a", &[], vec![pend])),
        (Action::Skip, Reason::Pending)
    );
    assert_eq!(
        r(user("a", &[], vec![nr])),
        (Action::Skip, Reason::NotReady)
    );
    assert_eq!(
        r(user("boss", &[], vec![server("", Some(0), None)])),
        (Action::Skip, Reason::ExemptUser)
    );
    assert_eq!(
        r(user("x", &["vip"], vec![server("", Some(0), None)])),
        (Action::Skip, Reason::ExemptGroup)
    );
    assert_eq!(
        r(user("x", &[], vec![server("gpu", Some(0), None)])),
        (Action::Skip, Reason::KindDisabled)
    );
    p.cull_named_servers = true;
    let r = |u: User| one(&run(&[u], 5000, &p));
    assert_eq!(
        r(user("x", &[], vec![server("keep-this", Some(0), None)])),
        (Action::Skip, Reason::ExemptServer)
    );
    assert_eq!(
        r(user("x", &[], vec![server("scratch", Some(0), None)])),
        (Action::Cull, Reason::Idle)
    );
}

#[test]
fn max_age_culls_active_servers() {
    let mut p = policy();
    p.max_age = Some(Duration::from_secs(3600));
    let users = [user("a", &[], vec![server("", Some(3590), None)])];
    let d = run(&users, 3600, &p);
    assert_eq!(one(&d), (Action::Cull, Reason::MaxAge));
}

#[test]
fn a_stale_stream_pauses_culls_only_in_pause_mode() {
    let mut p = policy();
    let users = [user("a", &[], vec![server("", Some(0), None)])];
    let warned = HashSet::new();
    let inp = PassInput {
        now: t(5000),
        freshness: Freshness::Stale,
        running_total: 100,
        recent_culls: 0,
        rate_room: usize::MAX,
        warned: &warned,
    };
    assert_eq!(
        one(&decide(&users, &inp, &p)),
        (Action::Skip, Reason::StaleStream)
    );
    p.on_stale = OnStale::Api;
    assert_eq!(one(&decide(&users, &inp, &p)), (Action::Cull, Reason::Idle));
}

#[test]
fn the_mass_cull_guard_refuses_the_whole_pass() {
    let mut p = policy();
    p.max_cull_fraction = 0.5;
    p.mass_cull_min = 1;
    let users: Vec<User> = (0..4)
        .map(|i| user(&format!("u{i}"), &[], vec![server("", Some(0), None)]))
        .collect();
    let warned = HashSet::new();
    let mut inp = PassInput {
        now: t(5000),
        freshness: Freshness::Fresh,
        running_total: 4,
        recent_culls: 0,
        rate_room: usize::MAX,
        warned: &warned,
    };
    let d = decide(&users, &inp, &p);
    assert!(
        d.iter().all(|d| d.reason == Reason::MassCullGuard),
        "{d:#?}"
    );
    inp.running_total = 8;
    let d = decide(&users, &inp, &p);
    assert!(d.iter().all(|d| d.action == Action::Cull));
    // Culls spread over the window count too: 1 more after 4 of 9 is over half.
    inp.running_total = 5;
    inp.recent_culls = 4;
    let d = decide(&users[..1], &inp, &p);
    assert_eq!(one(&d), (Action::Skip, Reason::MassCullGuard));
    inp.recent_culls = 3;
    assert_eq!(one(&decide(&users[..1], &inp, &p)).0, Action::Cull);
}

#[test]
fn the_rate_cap_defers_the_freshest() {
    let p = policy();
    let users = [
        user("old", &[], vec![server("", Some(0), None)]),
        user("new", &[], vec![server("", Some(100), None)]),
    ];
    let warned = HashSet::new();
    let inp = PassInput {
        now: t(5000),
        freshness: Freshness::Fresh,
        running_total: 100,
        recent_culls: 0,
        rate_room: 1,
        warned: &warned,
    };
    let d = decide(&users, &inp, &p);
    assert_eq!(
        (d[0].action, d[1].reason),
        (Action::Cull, Reason::RateLimited)
    );
}

#[test]
fn a_warning_comes_once_before_the_cull() {
    let mut p = policy();
    p.warn_before = Duration::from_secs(60);
    let users = [user("a", &[], vec![server("", Some(0), None)])];
    assert_eq!(run(&users, 539, &p)[0].action, Action::Keep);
    let d = run(&users, 540, &p);
    assert_eq!(one(&d), (Action::Warn, Reason::WarnWindow));
    let mut warned = HashSet::new();
    warned.insert(("a".to_string(), String::new(), Some(t(0))));
    let inp = PassInput {
        now: t(541),
        freshness: Freshness::Fresh,
        running_total: 100,
        recent_culls: 0,
        rate_room: usize::MAX,
        warned: &warned,
    };
    assert_eq!(decide(&users, &inp, &p)[0].action, Action::Keep);
    // The wakeup is the deadline once warned, the warning window before.
    let w = next_wakeup(&run(&users, 0, &p), &p, &HashSet::new());
    assert_eq!(w.keys().next(), Some(&t(540)));
    let w = next_wakeup(&decide(&users, &inp, &p), &p, &warned);
    assert_eq!(w.keys().next(), Some(&t(600)));
}

#[test]
fn users_are_culled_only_when_serverless_and_admins_only_if_allowed() {
    let mut p = policy();
    p.cull_users = true;
    let mut lonely = user("l", &[], vec![]);
    lonely.last_activity = Some(t(0));
    assert_eq!(
        one(&run(&[lonely.clone()], 600, &p)),
        (Action::CullUser, Reason::Idle)
    );
    assert!(run(&[lonely.clone()], 599, &p).is_empty());
    lonely.admin = true;
    p.cull_admin_users = false;
    assert_eq!(one(&run(&[lonely], 600, &p)), (Action::Skip, Reason::Admin));
    let busy = user("b", &[], vec![server("", Some(590), None)]);
    assert_eq!(run(&[busy], 600, &p)[0].action, Action::Keep);
}
