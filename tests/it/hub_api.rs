//! The hub API client (`hubpulse::hub`) against a real JupyterHub 6.1.1 with
//! configurable-http-proxy, started on loopback by `tests/support/harness/api_hub.py` through
//! [`crate::support::hub`] (free ports,
//! fast stand-in single-user servers). One hub is shared by the tests of this module (each uses
//! its own user names); the 429 test starts its own with `concurrent_spawn_limit = 1`.
//! The stand-in server is enough here: these tests prove what the hub's own API does (paging,
//! filters, scopes, stop answers, and `ActivityAPIHandler.post` on activity the test posts
//! itself); none depends on a single-user server reporting activity. Culling on real
//! `jupyterhub-singleuser` servers is tested in `cull.rs` on `cull_common::real_hub`.
//! The harness stops the hub when our end of its stdin closes, i.e. when the test process exits.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hubpulse::hub::{
    ApiToken, HubClient, HubConfig, HubError, Pending, StartOutcome, StopOutcome, User, UserState,
};

use super::cull_common::{user, wait_for};
use crate::support::hub::{HubOptions, RunningHub, token};

struct Hub {
    api_url: String,
    admin_token: String,
    limited_token: String,
    /// Dropping it stops the hub.
    _hub: RunningHub,
}

fn start_hub(concurrent_spawn_limit: u32) -> Hub {
    let (admin_token, limited_token) = (token("hp-admin"), token("hp-limited"));
    let hub = HubOptions::default()
        .arg("--concurrent-spawn-limit")
        .arg(concurrent_spawn_limit.to_string())
        .env("HUBPULSE_HUB_ADMIN_TOKEN", &admin_token)
        .env("HUBPULSE_HUB_LIMITED_TOKEN", &limited_token)
        .start();
    Hub {
        api_url: hub.api_url.clone(),
        admin_token,
        limited_token,
        _hub: hub,
    }
}

fn shared_hub() -> &'static Hub {
    static HUB: OnceLock<Hub> = OnceLock::new();
    HUB.get_or_init(|| start_hub(0))
}

fn client_with(hub: &Hub, token: &str, page_size: u32) -> HubClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut config = HubConfig::new(hub.api_url.parse().unwrap(), ApiToken::new(token));
    config.page_size = page_size;
    HubClient::new(config).unwrap()
}

fn admin(hub: &Hub) -> HubClient {
    client_with(hub, &hub.admin_token, 200)
}

async fn wait_ready(c: &HubClient, name: &str, server: &str) -> User {
    wait_for(
        &format!("{name}:{server} ready"),
        Duration::from_secs(60),
        || async {
            let u = user(c, name).await;
            u.server(server).is_some_and(|s| s.ready).then_some(u)
        },
    )
    .await
}

async fn wait_gone(c: &HubClient, name: &str, server: &str) {
    wait_for(
        &format!("{name}:{server} gone"),
        Duration::from_secs(60),
        || async { user(c, name).await.server(server).is_none().then_some(()) },
    )
    .await
}

async fn start_ready(c: &HubClient, name: &str, server: &str) -> User {
    let outcome = c.start_server(name, server, None).await.unwrap();
    assert!(
        matches!(outcome, StartOutcome::Started | StartOutcome::Pending),
        "{outcome:?}"
    );
    wait_ready(c, name, server).await
}

#[tokio::test]
async fn listing_follows_pagination_over_more_users_than_one_page() {
    let hub = shared_hub();
    let names: Vec<String> = (0..7).map(|i| format!("page-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let created = admin(hub).create_users(&refs).await.unwrap();
    assert_eq!(created.len(), 7);

    let c = client_with(hub, &hub.admin_token, 3);
    let first = c.users_page(None, 0, 3).await.unwrap();
    assert_eq!(first.items.len(), 3);
    assert_eq!((first.offset, first.limit), (0, 3));
    assert!(first.total >= 8, "alice + 7: {}", first.total);
    let next = first.next.expect("a next page");
    assert_eq!((next.offset, next.limit), (3, 3));

    let all = c.users(None).await.unwrap();
    assert!(all.len() >= 8, "{} users", all.len());
    let mut seen: Vec<&str> = all.iter().map(|u| u.name.as_str()).collect();
    seen.sort_unstable();
    let before = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), before, "no user twice across pages");
    for n in &names {
        assert!(seen.contains(&n.as_str()), "{n} listed");
    }
    // The last page says so.
    let last = c.users_page(None, first.total - 1, 3).await.unwrap();
    assert_eq!(last.next, None);
}

#[tokio::test]
async fn the_state_filter_is_applied_by_the_hub() {
    let hub = shared_hub();
    let c = admin(hub);
    c.create_users(&["state-idle", "state-running"])
        .await
        .unwrap();
    start_ready(&c, "state-running", "").await;

    let small = client_with(hub, &hub.admin_token, 2);
    let names = |users: Vec<User>| -> Vec<String> { users.into_iter().map(|u| u.name).collect() };
    let ready = names(small.users(Some(UserState::Ready)).await.unwrap());
    let active = names(small.users(Some(UserState::Active)).await.unwrap());
    let inactive = names(small.users(Some(UserState::Inactive)).await.unwrap());
    for (list, running, idle) in [
        (&ready, true, false),
        (&active, true, false),
        (&inactive, false, true),
    ] {
        assert_eq!(
            list.contains(&"state-running".to_string()),
            running,
            "{list:?}"
        );
        assert_eq!(list.contains(&"state-idle".to_string()), idle, "{list:?}");
    }
    assert!(
        small
            .users(Some(UserState::Ready))
            .await
            .unwrap()
            .iter()
            .all(|u| u.active_servers().any(|s| s.ready)),
        "every ready user has a ready server"
    );
    c.stop_server("state-running", "", false).await.unwrap();
    wait_gone(&c, "state-running", "").await;
}

#[tokio::test]
async fn a_default_server_starts_reports_its_times_and_stops() {
    let hub = shared_hub();
    let c = admin(hub);
    c.create_users(&["def-user"]).await.unwrap();
    let t0 = Utc::now() - chrono::Duration::seconds(5);
    let u = start_ready(&c, "def-user", "").await;
    let s = u.server("").unwrap();
    assert_eq!(s.name, "");
    assert_eq!(s.pending, None);
    assert_eq!(
        s.profile(),
        None,
        "no user_options.profile: the default profile"
    );
    let (started, active) = (s.started.unwrap(), s.last_activity.unwrap());
    let t1 = Utc::now() + chrono::Duration::seconds(5);
    assert!(t0 <= started && started <= t1, "started {started}");
    assert!(t0 <= active && active <= t1, "last_activity {active}");
    assert!(u.last_activity.unwrap() >= started);

    // The parsed instant is the hub's JSON string to the microsecond.
    let raw: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/users/def-user", hub.api_url))
        .header("Authorization", format!("token {}", hub.admin_token))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw_ts = raw["servers"][""]["last_activity"].as_str().unwrap();
    assert!(raw_ts.ends_with('Z') && raw_ts.len() == 27, "{raw_ts}");
    let expected: DateTime<Utc> = DateTime::parse_from_rfc3339(raw_ts).unwrap().into();
    assert_eq!(
        user(&c, "def-user").await.server("").unwrap().last_activity,
        Some(expected)
    );

    // Starting it again while it runs is the hub's 400.
    let again = c.start_server("def-user", "", None).await.unwrap_err();
    assert!(
        matches!(&again, HubError::Api { status: 400, message, .. } if message.contains("already running")),
        "{again}"
    );

    // A fast server stops within slow_stop_timeout (1 s here): 204. Under heavy load the hub
    // may take longer and answer 202; either way it is gone afterwards.
    let stop = c.stop_server("def-user", "", false).await.unwrap();
    assert!(
        matches!(stop, StopOutcome::Stopped | StopOutcome::Stopping),
        "{stop:?}"
    );
    wait_gone(&c, "def-user", "").await;
    // Stopping a stopped default server: the hub answers 204 again, not 404.
    assert_eq!(
        c.stop_server("def-user", "", false).await.unwrap(),
        StopOutcome::Stopped
    );
    // remove=true is refused for the default server.
    let err = c.stop_server("def-user", "", true).await.unwrap_err();
    assert!(matches!(err, HubError::Api { status: 400, .. }), "{err}");
    // An unknown user: 404.
    assert!(matches!(
        c.stop_server("nobody-here", "", false).await.unwrap(),
        StopOutcome::NotFound { .. }
    ));
    assert_eq!(c.user("nobody-here").await.unwrap(), None);
}

/// POSTs `/users/{name}/activity` as a single-user server does (the hub's `users:activity`).
async fn post_activity(hub: &Hub, name: &str, server: &str, ts: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{}/users/{name}/activity", hub.api_url))
        .header("Authorization", format!("token {}", hub.admin_token))
        .json(&serde_json::json!({"servers": {server: {"last_activity": ts}}}))
        .send()
        .await
        .unwrap();
    // JupyterHub 6.1.1 answers 200 with an empty body.
    assert_eq!(
        resp.status().as_u16(),
        200,
        "{}",
        resp.text().await.unwrap()
    );
}

#[tokio::test]
async fn reported_activity_shows_in_last_activity_and_never_moves_back() {
    let hub = shared_hub();
    let c = admin(hub);
    c.create_users(&["active-user"]).await.unwrap();
    start_ready(&c, "active-user", "").await;
    // Ten minutes ahead (the hub accepts up to 59), to the microsecond.
    let ahead = (Utc::now() + chrono::Duration::minutes(10)).format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let ahead = ahead.to_string();
    post_activity(hub, "active-user", "", &ahead).await;
    let expected: DateTime<Utc> = DateTime::parse_from_rfc3339(&ahead).unwrap().into();
    let u = user(&c, "active-user").await;
    assert_eq!(u.server("").unwrap().last_activity, Some(expected));
    // A report for a server alone does not move the user's own last_activity (the single-user
    // extension sends both): idleness must be read per server.
    assert!(u.last_activity.unwrap() < expected, "{:?}", u.last_activity);
    // An older report is ignored: last_activity only moves forward.
    post_activity(hub, "active-user", "", "2020-01-01T00:00:00.000000Z").await;
    assert_eq!(
        user(&c, "active-user")
            .await
            .server("")
            .unwrap()
            .last_activity,
        Some(expected)
    );
    c.stop_server("active-user", "", false).await.unwrap();
    wait_gone(&c, "active-user", "").await;
}

#[tokio::test]
async fn a_slow_named_stop_is_stopping_then_gone_then_not_found() {
    let hub = shared_hub();
    let c = admin(hub);
    c.create_users(&["named-user"]).await.unwrap();
    let options = serde_json::json!({"profile": "gpu-large"});
    let outcome = c
        .start_server("named-user", "slowstop-1", Some(&options))
        .await
        .unwrap();
    assert!(
        matches!(outcome, StartOutcome::Started | StartOutcome::Pending),
        "{outcome:?}"
    );
    let u = wait_ready(&c, "named-user", "slowstop-1").await;
    assert_eq!(u.server("slowstop-1").unwrap().profile(), Some("gpu-large"));

    // The server ignores SIGINT for 3 s, longer than slow_stop_timeout (1 s): 202.
    assert_eq!(
        c.stop_server("named-user", "slowstop-1", true)
            .await
            .unwrap(),
        StopOutcome::Stopping
    );
    // While that stop runs, the server shows `pending: stop`, and a second stop is 202 too.
    let s = user(&c, "named-user").await.server("slowstop-1").cloned();
    if let Some(s) = s {
        assert_eq!(s.pending, Some(Pending::Stop));
        assert_eq!(
            c.stop_server("named-user", "slowstop-1", true)
                .await
                .unwrap(),
            StopOutcome::Stopping
        );
    }
    wait_gone(&c, "named-user", "slowstop-1").await;
    // Removed: the hub no longer knows the name.
    match c
        .stop_server("named-user", "slowstop-1", true)
        .await
        .unwrap()
    {
        StopOutcome::NotFound { message } => {
            assert!(message.contains("no server named"), "{message}")
        }
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn a_stopped_named_server_that_is_kept_stops_again_with_204() {
    let hub = shared_hub();
    let c = admin(hub);
    c.create_users(&["kept-user"]).await.unwrap();
    start_ready(&c, "kept-user", "fast").await;
    let stop = c.stop_server("kept-user", "fast", false).await.unwrap();
    assert!(
        matches!(stop, StopOutcome::Stopped | StopOutcome::Stopping),
        "{stop:?}"
    );
    wait_gone(&c, "kept-user", "fast").await;
    // Not removed, so the hub still knows it: a second stop is 204, not 404.
    assert_eq!(
        c.stop_server("kept-user", "fast", false).await.unwrap(),
        StopOutcome::Stopped
    );
    // Removing it now is immediate; then it is gone for good.
    assert_eq!(
        c.stop_server("kept-user", "fast", true).await.unwrap(),
        StopOutcome::Stopped
    );
    assert!(matches!(
        c.stop_server("kept-user", "fast", false).await.unwrap(),
        StopOutcome::NotFound { .. }
    ));
}

#[tokio::test]
async fn groups_are_listed_with_members_and_properties() {
    let hub = shared_hub();
    let c = client_with(hub, &hub.admin_token, 1); // one group per page
    let groups = c.groups().await.unwrap();
    let staff = groups.iter().find(|g| g.name == "staff").expect("staff");
    assert_eq!(staff.users.as_deref(), Some(&["alice".to_string()][..]));
    assert_eq!(
        staff.properties.as_ref().unwrap()["team"],
        serde_json::json!("platform")
    );
    assert!(groups.iter().any(|g| g.name == "gpu-users"));
    let alice = user(&c, "alice").await;
    assert!(alice.admin);
    assert_eq!(alice.groups, Some(vec!["staff".to_string()]));

    let me = c.whoami().await.unwrap();
    assert_eq!(
        (me.kind.as_str(), me.name.as_str()),
        ("service", "hubpulse")
    );
    assert!(
        me.scopes.iter().any(|s| s == "list:users"),
        "{:?}",
        me.scopes
    );
    assert_eq!(c.version().await.unwrap(), "6.1.1");
}

#[tokio::test]
async fn bad_tokens_and_missing_scopes_are_typed_errors() {
    let hub = shared_hub();
    let bad = client_with(hub, "hp-not-a-valid-token-0123456789", 200);
    let err = bad.users(None).await.unwrap_err();
    match &err {
        HubError::BadCredentials {
            status, message, ..
        } => {
            assert_eq!(*status, 403);
            assert!(message.contains("invalid credentials"), "{message}");
        }
        other => panic!("expected BadCredentials, got {other:?}"),
    }
    assert!(!err.is_retriable());
    assert!(!format!("{err} {err:?}").contains("hp-not-a-valid-token"));

    // A valid token with only list:users + read:users:activity.
    let limited = client_with(hub, &hub.limited_token, 200);
    let users = limited.users(None).await.unwrap();
    let alice = users.iter().find(|u| u.name == "alice").unwrap();
    assert_eq!(alice.groups, None, "groups need read:users:groups");
    assert_eq!(alice.servers, None, "servers need read:servers");
    let err = limited.stop_server("alice", "", false).await.unwrap_err();
    assert!(
        matches!(&err, HubError::MissingScope { message, .. } if message.contains("delete:servers")),
        "{err}"
    );
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_never_appears_in_debug_output_or_logs() {
    let hub = shared_hub();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let c = admin(hub);
    let bad = client_with(hub, "hp-bad-token-that-must-not-leak", 200);
    c.users(Some(UserState::Active)).await.unwrap();
    c.stop_server("nobody-at-all", "", false).await.unwrap();
    let err = bad.whoami().await.unwrap_err();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("hub API request"),
        "requests are logged: {text}"
    );
    assert!(text.contains("status=403"), "{text}");
    let dbg = format!("{c:?} {bad:?} {err:?} {err}");
    for secret in [hub.admin_token.as_str(), "hp-bad-token-that-must-not-leak"] {
        assert!(!text.contains(secret), "token in logs");
        assert!(!dbg.contains(secret), "token in Debug/Display: {dbg}");
    }
    assert!(dbg.contains("ApiToken(***)"), "{dbg}");
}

#[tokio::test]
async fn a_spawn_over_the_concurrent_spawn_limit_is_throttled_with_retry_after() {
    let hub = start_hub(1);
    let c = admin(&hub);
    c.create_users(&["slow-a", "second-b"]).await.unwrap();
    // `slowstart*` servers listen only after 4 s: the spawn stays pending meanwhile.
    let first = {
        let c = c.clone();
        tokio::spawn(async move { c.start_server("slow-a", "slowstart-1", None).await })
    };
    wait_for(
        "slow-a:slowstart-1 pending spawn",
        Duration::from_secs(30),
        || async {
            let u = user(&c, "slow-a").await;
            u.server("slowstart-1")
                .is_some_and(|s| s.pending == Some(Pending::Spawn))
                .then_some(())
        },
    )
    .await;
    match c.start_server("second-b", "", None).await.unwrap() {
        StartOutcome::Throttled {
            retry_after: Some(after),
        } => assert!(
            (30..=60).contains(&after.as_secs()),
            "spawn_throttle_retry_range is 30-60 s: {after:?}"
        ),
        other => panic!("expected 429 with Retry-After, got {other:?}"),
    }
    let outcome = first.await.unwrap().unwrap();
    assert!(
        matches!(outcome, StartOutcome::Started | StartOutcome::Pending),
        "{outcome:?}"
    );
    wait_ready(&c, "slow-a", "slowstart-1").await;
}
