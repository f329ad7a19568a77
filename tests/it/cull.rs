//! The idle culler against a real JupyterHub 6.1.1 with **real `jupyterhub-singleuser`
//! servers** ([`real_hub`], see `cull_common.rs`): each server posts its last activity every 3 s
//! whether or not it changed (`notify_activity` in `jupyterhub/singleuser/extension.py` skips
//! only an older time), so the hub log is full of activity-POST heartbeats from idle servers.
//! Busy users make real requests to their servers through the proxy; the hub folds the proxy's
//! route activity into `last_activity` every 2 s. The truth for idleness is the hub's own
//! `last_activity`, read by the test from the API.
//!
//! `reconcile_every` is 5 min in every test, so a cull within seconds can only come from the
//! per-server deadlines, and a server started after the agent's first listing can only be found
//! through the log stream's spawn line.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hubpulse::hub::HubClient;

use super::cull_common::*;
use crate::support::{bin, query_csv, run_ok};

async fn create(c: &HubClient, names: &[&str]) {
    // 409 when they exist already (a re-run against the same hub): fine.
    let _ = c.create_users(names).await;
}

/// Makes a real request to `name`'s server `server` through the proxy every 2 s until `stop`
/// (`GET …/api/contents`: jupyter-server counts it as activity, and the proxy records it on the
/// route).
fn keep_busy(
    h: &'static TestHub,
    name: &'static str,
    server: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let url = match server {
            "" => format!("{}/user/{name}/api/contents", h.public_url()),
            s => format!("{}/user/{name}/{s}/api/contents", h.public_url()),
        };
        let http = reqwest::Client::new();
        let mut ok = 0;
        while !stop.load(Ordering::Relaxed) {
            let r = http
                .get(&url)
                .header("Authorization", format!("token {}", h.admin_token))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{url}");
            ok += 1;
            // The user's pace (a request every 2 s keeps the server in use), not a wait for
            // an event: the loop ends when the test observes the cull of the other servers.
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        ok
    })
}

/// Per `user:server`: the hub's last `last_activity` while it ran, and when it was first seen
/// stopping or gone.
type Culled = HashMap<String, (DateTime<Utc>, DateTime<Utc>)>;

/// Watches servers through the API until each is stopping or gone: the last `last_activity`
/// seen while it ran, and when it was first seen stopping or gone. A server not yet seen
/// running is waited for (start the watch before the spawns).
fn watch_until_culled(
    c: HubClient,
    servers: Vec<(&'static str, &'static str)>,
    timeout: Duration,
) -> tokio::task::JoinHandle<Culled> {
    tokio::spawn(async move {
        let mut last: HashMap<String, DateTime<Utc>> = HashMap::new();
        let mut gone: HashMap<String, (DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
        let deadline = std::time::Instant::now() + timeout;
        while gone.len() < servers.len() {
            assert!(
                std::time::Instant::now() < deadline,
                "not culled in time: {gone:?} of {servers:?}"
            );
            for (u, s) in &servers {
                let key = format!("{u}:{s}");
                if gone.contains_key(&key) {
                    continue;
                }
                let now = Utc::now();
                match user(&c, u).await.server(s) {
                    Some(srv) if srv.pending != Some(hubpulse::hub::Pending::Stop) => {
                        if let Some(a) = srv.last_activity.filter(|_| srv.ready) {
                            last.insert(key, a);
                        }
                    }
                    _ => {
                        if let Some(a) = last.get(&key) {
                            gone.insert(key, (*a, now));
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        gone
    })
}

const LIMIT_S: i64 = 15;
const MAIN: &str = r#"
[culler]
timeout = "15s"
exempt_groups = ["vip"]
remove_named_servers = true
reconcile_every = "5m"
"#;

/// The issue's scenario: two busy servers (a default one and a named one), four idle ones (a
/// default server, a default server next to the busy named one, a second user's default
/// server, a lone named server), one exempt user, and a second server started by a user the
/// culler already holds in its cache. Every idle server sends heartbeats throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_real_hub_idle_servers_are_culled_on_time_despite_heartbeats_and_busy_ones_kept() {
    let _g = serial().await;
    let h = real_hub();
    let c = h.admin();
    stop_all(&c).await;
    create(
        &c,
        &["r-busy", "r-mixed", "r-idle", "r-idle2", "r-named", "r-vip"],
    )
    .await;
    // Running before the agent starts: in its first listing (so `r-busy` is a cached user).
    spawn(&c, "r-busy", "", None).await;
    spawn(&c, "r-mixed", "work", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let busy = [
        keep_busy(h, "r-busy", "", stop.clone()),
        keep_busy(h, "r-mixed", "work", stop.clone()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent_on(h, dir.path(), &h.log, MAIN, Vec::new());
    wait_for("the first listing", Duration::from_secs(30), || async {
        let m = agent.metrics.render(Utc::now().timestamp_micros());
        m.contains("hubpulse_cull_passes_total{kind=\"reconcile\"} 1")
            .then_some(())
    })
    .await;
    let idle = [
        ("r-idle", ""),
        ("r-mixed", ""),
        ("r-idle2", ""),
        ("r-named", "scratch"),
        ("r-busy", "later"),
    ];
    let watch = watch_until_culled(c.clone(), idle.to_vec(), Duration::from_secs(120));
    // Started after the first listing: found through the log stream's spawn lines.
    for (u, s) in [
        ("r-idle", ""),
        ("r-mixed", ""),
        ("r-idle2", ""),
        ("r-named", "scratch"),
        ("r-vip", ""),
        ("r-busy", "later"),
    ] {
        spawn(&c, u, s, None).await;
    }
    let gone = watch.await.unwrap();
    for (key, (last, at)) in &gone {
        let late = (*at - *last).num_milliseconds() as f64 / 1000.0 - LIMIT_S as f64;
        eprintln!("{key}: stopping {late:.2} s after the hub's last_activity + limit");
        assert!(late > -0.5, "{key} culled {late} s before its limit");
        assert!(late < 2.5, "{key} culled {late} s after its limit");
    }
    // Heartbeats kept coming from the idle servers while they waited: the hub's log shows
    // activity POSTs for them after their last activity (which they did not move).
    let log = std::fs::read_to_string(&h.log).unwrap();
    assert!(
        log.contains("POST /hub/api/users/r-idle/activity"),
        "heartbeats"
    );
    // Busy, exempt and the busy user's first server ran all along, well past the limit.
    for (u, s) in [("r-busy", ""), ("r-mixed", "work"), ("r-vip", "")] {
        let srv = user(&c, u).await;
        assert!(
            srv.server(s)
                .is_some_and(|x| x.ready && x.pending.is_none()),
            "{u}:{s} kept"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for b in busy {
        assert!(b.await.unwrap() > 5, "busy users made requests");
    }
    // The last stop's answer (202 after the hub's `slow_stop_timeout`) comes after the hub
    // shows the server stopping: wait for the culler to have recorded all five.
    let m = wait_for("five culls recorded", Duration::from_secs(10), || async {
        let m = agent.metrics.render(Utc::now().timestamp_micros());
        m.contains("hubpulse_cull_decisions_total{action=\"cull\",reason=\"idle\"} 5")
            .then_some(m)
    })
    .await;
    assert!(
        !m.contains("r-idle") && !m.contains("r-busy"),
        "no user name in a metric label"
    );
    // Each stop the hub accepted is an observation.
    // (A server read again while its stop is still pending is listed, then gone once more:
    // at least five.)
    wait_for("five stops observed", Duration::from_secs(20), || async {
        let m = agent.metrics.render(Utc::now().timestamp_micros());
        let gone: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix("hubpulse_hub_observations_total{kind=\"gone\"} "))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (gone >= 5).then_some(())
    })
    .await;
    drop(agent);

    let lake = dir.path().join("lake");
    let rows = decisions(
        &lake,
        "action, reason, \"user\", server_name, outcome, lateness_s, activity_source, \
         CAST(last_activity AS BIGINT)",
        "component = 'culler' AND action = 'cull'",
    );
    assert_eq!(rows.len(), idle.len(), "{rows:?}");
    for (u, s) in idle {
        let r = rows
            .iter()
            .find(|r| r[2] == u && r[3] == s)
            .unwrap_or_else(|| panic!("no cull row for {u}:{s}: {rows:?}"));
        assert_eq!(r[1], "idle", "{r:?}");
        assert!(matches!(r[4].as_str(), "stopped" | "stopping"), "{r:?}");
        assert_eq!(r[6], "api", "{r:?}");
        let late: f64 = r[5].parse().unwrap();
        assert!((0.0..2.0).contains(&late), "decided {late} s late: {r:?}");
        // The deadline rests on the hub's value the test saw.
        let seen = gone[&format!("{u}:{s}")].0;
        assert_eq!(r[7], seen.timestamp_micros().to_string(), "{u}:{s}");
    }
    let kept = decisions(
        &lake,
        "\"user\"",
        "action IN ('cull', 'warn') AND \"user\" IN ('r-vip', 'r-mixed') AND server_name <> ''",
    );
    assert!(kept.is_empty(), "{kept:?}");
    let exempt = decisions(&lake, "reason", "\"user\" = 'r-vip'");
    assert!(
        !exempt.is_empty() && exempt.iter().all(|r| r[0] == "exempt_group"),
        "{exempt:?}"
    );

    // What the hub said of each server is in the lake: the idle servers' observed
    // last_activity is the hub's, and their stop is there.
    let obs = query_csv(
        &lake,
        "SELECT \"user\", server_name, kind FROM observations \
         WHERE \"user\" LIKE 'r-%' ORDER BY ts",
    );
    for (u, s) in idle {
        assert!(obs.contains(&format!("{u},{s},server")), "{obs}");
        assert!(obs.contains(&format!("{u},{s},gone")), "{obs}");
    }
    stop_all(&c).await;
}

/// Waits (on the clock, which is what idleness is) until every server of `names` has been idle
/// longer than `secs` according to the hub, counted from the server's own first activity
/// report: `User.spawn` (`user.py`) sets `started` and `last_activity` to the same instant, and
/// the single-user server's first post (`notify_activity`) carries its own later start time,
/// which can arrive late on a loaded machine. Until then the hub's time is the spawn's.
async fn idle_longer_than(c: &HubClient, names: &[&str], secs: i64) {
    wait_for("servers idle", Duration::from_secs(60), || {
        let c = c.clone();
        async move {
            for n in names {
                let u = user(&c, n).await;
                let s = u.server("")?;
                let (started, a) = (s.started?, s.last_activity?);
                if a <= started || (Utc::now() - a).num_seconds() <= secs {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cull_once_dry_run_changes_nothing_and_records_what_it_would_do() {
    let _g = serial().await;
    let h = real_hub();
    let c = h.admin();
    stop_all(&c).await;
    create(&c, &["r2-a", "r2-b"]).await;
    spawn(&c, "r2-a", "", None).await;
    spawn(&c, "r2-b", "", None).await;
    idle_longer_than(&c, &["r2-a", "r2-b"], 4).await;
    let before = (
        api_activity(&c, "r2-a", "").await,
        api_activity(&c, "r2-b", "").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    let text = config_text_for(h, dir.path(), &h.log, "[culler]\ntimeout = \"4s\"\n");
    std::fs::write(&cfg, text).unwrap();
    let out = run_ok(
        bin()
            .args(["cull", "--once", "--dry-run", "--config"])
            .arg(&cfg),
    );
    assert!(out.contains("cull\tidle\tr2-a\tdry_run"), "{out}");
    assert!(out.contains("cull\tidle\tr2-b\tdry_run"), "{out}");
    for n in ["r2-a", "r2-b"] {
        assert!(
            user(&c, n).await.server("").is_some_and(|s| s.ready),
            "{n} still running"
        );
    }
    let after = (
        api_activity(&c, "r2-a", "").await,
        api_activity(&c, "r2-b", "").await,
    );
    assert_eq!(
        before, after,
        "dry run touched nothing (heartbeats do not move it either)"
    );
    let lake = dir.path().join("lake");
    let rows = decisions(&lake, "action, \"user\", dry_run, outcome", "pass = 'once'");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r[0] == "cull" && r[2] == "true" && r[3] == "dry_run"),
        "{rows:?}"
    );

    let out = run_ok(bin().args(["cull", "--once", "--config"]).arg(&cfg));
    // A real server's stop may outlast the hub's `slow_stop_timeout` (1 s here): 202, stopping.
    for n in ["r2-a", "r2-b"] {
        assert!(
            out.contains(&format!("cull\tidle\t{n}\tstopped"))
                || out.contains(&format!("cull\tidle\t{n}\tstopping")),
            "{out}"
        );
    }
    wait_for("both stopped", Duration::from_secs(30), || async {
        for n in ["r2-a", "r2-b"] {
            if user(&c, n).await.server("").is_some() {
                return None;
            }
        }
        Some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_stream_pauses_culls_until_it_flows_again() {
    let _g = serial().await;
    let h = real_hub();
    let c = h.admin();
    stop_all(&c).await;
    create(&c, &["r3-idle", "r3-busy"]).await;
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(h, dir.path());
    spawn(&c, "r3-idle", "", None).await;
    spawn(&c, "r3-busy", "", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let busy = keep_busy(h, "r3-busy", "", stop.clone());
    // The stall must begin well before r3-idle's limit (its spawn, r3-busy's and the agent's
    // start take up to ~12 s on a loaded 2-core machine): 20 s, the stream stale after 4 s.
    let sections =
        "[culler]\ntimeout = \"20s\"\nstream_max_silence = \"4s\"\nreconcile_every = \"5m\"\n";
    let agent = start_agent_on(h, dir.path(), &relay.path, sections, Vec::new());
    // The stream flows (heartbeats arrive every 3 s per server) ...
    wait_for(
        "records through the relay",
        Duration::from_secs(20),
        || async { (agent.metrics.records.load(Ordering::Relaxed) > 0).then_some(()) },
    )
    .await;
    // ... then stalls before r3-idle's limit.
    relay.on.store(false, Ordering::Relaxed);
    let stalled_at = Utc::now();
    wait_for("a stale_stream skip", Duration::from_secs(45), || async {
        let rows = decisions(&agent.lake, "\"user\"", "reason = 'stale_stream'");
        rows.iter().any(|r| r[0] == "r3-idle").then_some(())
    })
    .await;
    let m = agent.metrics.render(Utc::now().timestamp_micros());
    assert!(m.contains("hubpulse_cull_stream_stale 1"), "{m}");
    // Well past the limit, still running: paused, not slow.
    idle_longer_than(&c, &["r3-idle"], 23).await;
    assert!(
        user(&c, "r3-idle").await.server("").is_some(),
        "not culled while stale"
    );
    assert!(decisions(&agent.lake, "\"user\"", "action = 'cull'").is_empty());
    relay.on.store(true, Ordering::Relaxed);
    wait_for(
        "r3-idle culled once the stream flows",
        Duration::from_secs(30),
        || async { user(&c, "r3-idle").await.server("").is_none().then_some(()) },
    )
    .await;
    eprintln!("stalled for {} s", (Utc::now() - stalled_at).num_seconds());
    assert!(user(&c, "r3-busy").await.server("").is_some(), "busy kept");
    stop.store(true, Ordering::Relaxed);
    busy.await.unwrap();
    drop(agent);
    stop_all(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mass_cull_guard_refuses_to_stop_most_servers_at_once() {
    let _g = serial().await;
    let h = real_hub();
    let c = h.admin();
    stop_all(&c).await;
    let names = ["r4-0", "r4-1", "r4-2", "r4-3"];
    create(&c, &names).await;
    for n in names {
        spawn(&c, n, "", None).await;
    }
    idle_longer_than(&c, &names, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let sections = "[culler]\ntimeout = \"3s\"\nmax_cull_fraction = 0.5\nmass_cull_min = 1\non_stale = \"api\"\nreconcile_every = \"5m\"\n";
    let agent = start_agent_on(h, dir.path(), &h.log, sections, Vec::new());
    let rows = wait_for("four guard decisions", Duration::from_secs(30), || async {
        let r = decisions(
            &agent.lake,
            "\"user\", action",
            "reason = 'mass_cull_guard'",
        );
        (r.len() >= 4).then_some(r)
    })
    .await;
    assert!(rows.iter().all(|r| r[1] == "skip"), "{rows:?}");
    for n in names {
        assert!(
            user(&c, n).await.server("").is_some(),
            "{n} kept by the guard"
        );
    }
    let m = agent.metrics.render(Utc::now().timestamp_micros());
    assert!(
        m.contains("hubpulse_cull_decisions_total{action=\"skip\",reason=\"mass_cull_guard\"} 4"),
        "{m}"
    );
    assert!(
        !m.contains("hubpulse_cull_stops_total{"),
        "nothing stopped: {m}"
    );
    drop(agent);
    stop_all(&c).await;
}

/// A cull whose stop is still in flight when the agent is asked to stop (the same path as
/// SIGTERM) is finished and recorded. On the stand-in hub: its `slowstop` server makes the
/// hub's stop outlast `slow_stop_timeout` (1 s) so the DELETE is in flight for a second, and
/// the test does not depend on activity (a server that never reports is idle from its start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cull_in_flight_at_shutdown_gets_its_decisions_row() {
    let _g = serial().await;
    let c = admin();
    stop_all(&c).await;
    create(&c, &["c5-slow"]).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(
        dir.path(),
        &hub().log,
        "[culler]\ntimeout = \"3s\"\nreconcile_every = \"5m\"\non_stale = \"api\"\n",
    );
    spawn(&c, "c5-slow", "slowstop1", None).await;
    // The hub got the DELETE: the server is stopping, and the culler awaits the answer.
    wait_for("the cull in flight", Duration::from_secs(30), || async {
        let u = user(&c, "c5-slow").await;
        u.server("slowstop1")
            .is_some_and(|s| s.pending == Some(hubpulse::hub::Pending::Stop))
            .then_some(())
    })
    .await;
    let lake = agent.lake.clone();
    drop(agent); // stop, as SIGTERM does, and wait for the agent to return
    let rows = decisions(
        &lake,
        "action, \"user\", server_name, outcome",
        "action = 'cull'",
    );
    assert_eq!(
        rows,
        vec![vec![
            "cull".to_string(),
            "c5-slow".into(),
            "slowstop1".into(),
            "stopping".into()
        ]]
    );
    stop_all(&c).await;
}
