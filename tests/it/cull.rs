//! The idle culler against a real JupyterHub 6.1.1 (see `cull_common.rs`): event-driven culls
//! within seconds of each server's limit, per-profile limits, named servers, dry run, the
//! stale-stream guard and the mass-cull guard. The culler uses a service token with exactly the
//! documented scopes. `reconcile_every` is 5 min in every test, so a cull within seconds can only
//! come from the per-server deadlines.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::cull_common::*;
use super::{bin, run_ok};

async fn create(names: &[&str]) {
    // 409 when they exist already (a re-run against the same hub): fine.
    let _ = admin().create_users(names).await;
}

/// Posts activity for `name` every second until `stop`.
fn keep_active(name: &'static str, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            post_activity(name, "").await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

/// Watches servers through the API: the last `last_activity` seen while present, and when it
/// was first seen gone.
async fn watch_until_gone(
    servers: &[(&str, &str)],
    timeout: Duration,
) -> HashMap<String, (DateTime<Utc>, DateTime<Utc>)> {
    let c = admin();
    let mut last: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut gone: HashMap<String, (DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
    let deadline = std::time::Instant::now() + timeout;
    while gone.len() < servers.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "not culled in time: {gone:?}"
        );
        for (u, s) in servers {
            let key = format!("{u}:{s}");
            if gone.contains_key(&key) {
                continue;
            }
            let now = Utc::now();
            match user(&c, u).await.server(s) {
                Some(srv) => {
                    if let Some(a) = srv.last_activity {
                        last.insert(key, a);
                    }
                }
                None => {
                    let a = *last.get(&key).expect("seen running first");
                    gone.insert(key, (a, now));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    gone
}

const MAIN: &str = r#"
[culler]
timeout = "10s"
profile_timeouts = { gpu = "4s" }
warn_before = "2s"
remove_named_servers = true
reconcile_every = "5m"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_servers_are_culled_within_seconds_of_their_limit_and_active_ones_kept() {
    let _g = serial().await;
    let c = admin();
    stop_all(&c).await;
    create(&["c1-idle", "c1-active", "c1-gpu", "c1-named"]).await;
    spawn(&c, "c1-idle", "", None).await;
    spawn(&c, "c1-active", "", None).await;
    spawn(&c, "c1-gpu", "", Some("gpu")).await;
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(dir.path(), &hub().log, MAIN);
    let stop = Arc::new(AtomicBool::new(false));
    let active = keep_active("c1-active", stop.clone());
    // Started after the culler: found through the log stream's spawn record.
    spawn(&c, "c1-named", "scratch", None).await;

    let gone = watch_until_gone(
        &[("c1-gpu", ""), ("c1-idle", ""), ("c1-named", "scratch")],
        Duration::from_secs(60),
    )
    .await;
    for (key, (last, at)) in &gone {
        let limit = if key.starts_with("c1-gpu") { 4 } else { 10 };
        let late = (*at - *last).num_milliseconds() as f64 / 1000.0 - limit as f64;
        eprintln!("{key}: stopped {late:.2} s after its limit");
        assert!(late > -0.5, "{key} culled {late} s before its limit");
        assert!(late < 3.0, "{key} culled {late} s after its limit");
    }
    // The active server outlived the idle one's limit by well over the idle limit's margin.
    let u = user(&c, "c1-active").await;
    assert!(u.server("").is_some_and(|s| s.ready), "active server kept");
    stop.store(true, Ordering::Relaxed);
    active.await.unwrap();

    // Removed, not just stopped: the named server no longer exists even among stopped ones.
    let r = reqwest::Client::new()
        .get(format!(
            "{}/users/c1-named?include_stopped_servers=1",
            hub().api_url
        ))
        .header("Authorization", format!("token {}", hub().admin_token))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(body["servers"].get("scratch").is_none(), "{body}");

    let rows = decisions(
        &agent.lake,
        "action, reason, \"user\", server_name, profile, outcome, lateness_s",
        "component = 'culler' AND action IN ('cull', 'warn')",
    );
    let has = |a: &str, r: &str, u: &str| rows.iter().any(|x| x[0] == a && x[1] == r && x[2] == u);
    assert!(has("warn", "warn_window", "c1-idle"), "{rows:?}");
    assert!(has("cull", "idle", "c1-idle"), "{rows:?}");
    assert!(has("cull", "idle", "c1-gpu"), "{rows:?}");
    assert!(has("cull", "idle", "c1-named"), "{rows:?}");
    assert!(!rows.iter().any(|x| x[2] == "c1-active"), "{rows:?}");
    for x in rows.iter().filter(|x| x[0] == "cull") {
        assert_eq!(x[5], "stopped", "{x:?}");
        let late: f64 = x[6].parse().unwrap();
        assert!((0.0..3.0).contains(&late), "{x:?}");
    }
    assert!(
        rows.iter().any(|x| x[2] == "c1-gpu" && x[4] == "gpu"),
        "{rows:?}"
    );
    let m = agent.metrics.render(Utc::now().timestamp_micros());
    assert!(
        m.contains("hubpulse_cull_decisions_total{action=\"cull\",reason=\"idle\"} 3"),
        "{m}"
    );
    assert!(!m.contains("c1-"), "no user name in a metric label");
    drop(agent);
    stop_all(&c).await;
}

/// Waits (on the clock, which is what idleness is) until every server of `names` has been idle
/// longer than `secs` according to the hub.
async fn idle_longer_than(names: &[&str], secs: i64) {
    let c = admin();
    wait_for("servers idle", Duration::from_secs(30), || {
        let c = c.clone();
        async move {
            for n in names {
                let a = api_activity(&c, n, "").await?;
                if (Utc::now() - a).num_seconds() <= secs {
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
    let c = admin();
    stop_all(&c).await;
    create(&["c2-a", "c2-b"]).await;
    spawn(&c, "c2-a", "", None).await;
    spawn(&c, "c2-b", "", None).await;
    idle_longer_than(&["c2-a", "c2-b"], 2).await;
    let before = (
        api_activity(&c, "c2-a", "").await,
        api_activity(&c, "c2-b", "").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    let text = config_text(dir.path(), &hub().log, "[culler]\ntimeout = \"2s\"\n");
    std::fs::write(&cfg, text).unwrap();
    let out = run_ok(
        bin()
            .args(["cull", "--once", "--dry-run", "--config"])
            .arg(&cfg),
    );
    assert!(out.contains("cull\tidle\tc2-a\tdry_run"), "{out}");
    assert!(out.contains("cull\tidle\tc2-b\tdry_run"), "{out}");
    for n in ["c2-a", "c2-b"] {
        assert!(
            user(&c, n).await.server("").is_some_and(|s| s.ready),
            "{n} still running"
        );
    }
    let after = (
        api_activity(&c, "c2-a", "").await,
        api_activity(&c, "c2-b", "").await,
    );
    assert_eq!(before, after, "dry run touched nothing");
    let lake = dir.path().join("lake");
    let rows = decisions(&lake, "action, \"user\", dry_run, outcome", "pass = 'once'");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r[0] == "cull" && r[2] == "true" && r[3] == "dry_run"),
        "{rows:?}"
    );

    let out = run_ok(bin().args(["cull", "--once", "--config"]).arg(&cfg));
    assert!(out.contains("cull\tidle\tc2-a\tstopped"), "{out}");
    for n in ["c2-a", "c2-b"] {
        assert!(user(&c, n).await.server("").is_none(), "{n} stopped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_stream_pauses_culls_until_it_flows_again() {
    let _g = serial().await;
    let c = admin();
    stop_all(&c).await;
    create(&["c3-idle", "c3-active"]).await;
    let dir = tempfile::tempdir().unwrap();
    let relay = relay(dir.path());
    spawn(&c, "c3-idle", "", None).await;
    spawn(&c, "c3-active", "", None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let active = keep_active("c3-active", stop.clone());
    let sections =
        "[culler]\ntimeout = \"6s\"\nstream_max_silence = \"3s\"\nreconcile_every = \"5m\"\n";
    let agent = start_agent(dir.path(), &relay.path, sections);
    // The stream flows (activity POSTs arrive) ...
    wait_for(
        "records through the relay",
        Duration::from_secs(20),
        || async { (agent.metrics.records.load(Ordering::Relaxed) > 0).then_some(()) },
    )
    .await;
    // ... then stalls before c3-idle's limit.
    relay.on.store(false, Ordering::Relaxed);
    let stalled_at = Utc::now();
    wait_for("a stale_stream skip", Duration::from_secs(30), || async {
        let rows = decisions(&agent.lake, "\"user\"", "reason = 'stale_stream'");
        rows.iter().any(|r| r[0] == "c3-idle").then_some(())
    })
    .await;
    let m = agent.metrics.render(Utc::now().timestamp_micros());
    assert!(m.contains("hubpulse_cull_stream_stale 1"), "{m}");
    // Well past the limit, still running: paused, not slow.
    idle_longer_than(&["c3-idle"], 9).await;
    assert!(
        user(&c, "c3-idle").await.server("").is_some(),
        "not culled while stale"
    );
    assert!(decisions(&agent.lake, "\"user\"", "action = 'cull'").is_empty());
    relay.on.store(true, Ordering::Relaxed);
    wait_for(
        "c3-idle culled once the stream flows",
        Duration::from_secs(30),
        || async { user(&c, "c3-idle").await.server("").is_none().then_some(()) },
    )
    .await;
    eprintln!("stalled for {} s", (Utc::now() - stalled_at).num_seconds());
    assert!(
        user(&c, "c3-active").await.server("").is_some(),
        "active kept"
    );
    stop.store(true, Ordering::Relaxed);
    active.await.unwrap();
    drop(agent);
    stop_all(&c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mass_cull_guard_refuses_to_stop_most_servers_at_once() {
    let _g = serial().await;
    let c = admin();
    stop_all(&c).await;
    let names = ["c4-0", "c4-1", "c4-2", "c4-3"];
    create(&names).await;
    for n in names {
        spawn(&c, n, "", None).await;
    }
    idle_longer_than(&names, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let sections = "[culler]\ntimeout = \"2s\"\nmax_cull_fraction = 0.5\nmass_cull_min = 1\non_stale = \"api\"\nreconcile_every = \"5m\"\n";
    let agent = start_agent(dir.path(), &hub().log, sections);
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
