//! Session bounds checked against the hub (`report::grounding`), on the hub with real
//! `jupyterhub-singleuser` servers ([`real_hub`]) and the hub's own JupyterHub 6.1.1 log.
//!
//! The agent observes the hub (`[hub] observe_every`) while the test drives three users
//! through the REST API; the log is then collected with the two gaps real collection has:
//! it starts late (after `g-late`'s named server was ready: a log shipper started after the
//! spawn, so the log shows that server only from its heartbeats on) and it lost `g-gap`'s stop
//! (the `Removing user`, `server took … to stop` and `DELETE` lines). The truth is the hub's
//! own: `started` as its API returned it, and the stop as the test's DELETE saw it. `g-ok` has
//! a complete log and must not move.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use hubpulse::stream::metrics::Metrics;

use super::cull_common::*;
use crate::support::{bin, query_csv, root, run_ok};

/// `hubpulse_hub_observations_total{kind="…"}` from the agent's exposition.
fn observed(m: &Metrics, kind: &str) -> u64 {
    let prefix = format!("hubpulse_hub_observations_total{{kind=\"{kind}\"}}");
    m.render(Utc::now().timestamp_micros())
        .lines()
        .find(|l| l.starts_with(&prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The hub log from byte `from`, as text.
fn log_from(path: &std::path::Path, from: u64) -> String {
    let all = std::fs::read(path).unwrap();
    String::from_utf8_lossy(&all[from as usize..]).into_owned()
}

/// `user,server_name,start,end,end_reason,flags` rows of the `sessions` table for `g-` users.
fn sessions(lake: &std::path::Path) -> Vec<Vec<String>> {
    query_csv(
        lake,
        "SELECT \"user\", server_name, CAST(start AS BIGINT) AS s, CAST(\"end\" AS BIGINT) AS e, \
         end_reason, flags FROM sessions WHERE \"user\" LIKE 'g-%' ORDER BY \"user\"",
    )
    .lines()
    .skip(1)
    .map(|l| {
        // The flags (last) may hold commas, quoted.
        let mut v: Vec<String> = l.splitn(6, ',').map(str::to_string).collect();
        v[5] = v[5].trim_matches('"').to_string();
        v
    })
    .collect()
}

/// Waits until the hub no longer lists `user`'s server `server`.
async fn stopped(c: &hubpulse::hub::HubClient, name: &str, server: &str) {
    wait_for(
        &format!("{name}:{server} stopped"),
        Duration::from_secs(60),
        || async { user(c, name).await.server(server).is_none().then_some(()) },
    )
    .await;
}

fn row<'a>(rows: &'a [Vec<String>], user: &str) -> &'a [String] {
    rows.iter()
        .find(|r| r[0] == user)
        .unwrap_or_else(|| panic!("no session of {user}: {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_bounds_follow_the_hub_where_the_collected_log_has_gaps() {
    let _g = serial().await;
    let h = real_hub();
    let c = h.admin();
    stop_all(&c).await;
    let _ = c.create_users(&["g-late", "g-gap", "g-ok"]).await;
    let from = std::fs::metadata(&h.log).unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    // The agent only observes: it follows an empty file; the log is collected below.
    let none = dir.path().join("none.log");
    std::fs::write(&none, b"").unwrap();
    let metrics = Arc::new(Metrics::default());
    let agent = start_agent_with(
        h,
        dir.path(),
        &none,
        "observe_every = \"1s\"\n",
        Vec::new(),
        metrics.clone(),
    );

    let late = spawn(&c, "g-late", "nb", None).await;
    let late_started = late.server("nb").unwrap().started.unwrap();
    spawn(&c, "g-gap", "", None).await;
    spawn(&c, "g-ok", "", None).await;
    // Both stopped once the agent has seen them running: a listing begun after the spawns.
    let listings = observed(&metrics, "listing");
    wait_for(
        "a listing after the spawns",
        Duration::from_secs(30),
        || {
            let m = metrics.clone();
            async move { (observed(&m, "listing") >= listings + 2).then_some(()) }
        },
    )
    .await;
    let gone_before = observed(&metrics, "gone");
    c.stop_server("g-ok", "", false).await.unwrap();
    let stop_asked = Utc::now().timestamp_micros();
    c.stop_server("g-gap", "", false).await.unwrap();
    stopped(&c, "g-gap", "").await;
    let stop_seen = Utc::now().timestamp_micros();
    wait_for(
        "the agent to see both stops",
        Duration::from_secs(30),
        || {
            let m = metrics.clone();
            async move { (observed(&m, "gone") >= gone_before + 2).then_some(()) }
        },
    )
    .await;
    // g-late's server heartbeats on (every 3 s); the log then has them after its ready line.
    wait_for(
        "a heartbeat of g-late after its ready line",
        Duration::from_secs(60),
        || async {
            let text = log_from(&h.log, from);
            let ready = text.find("User g-late:nb took")?;
            text[ready..]
                .contains("POST /hub/api/users/g-late/activity")
                .then_some(())
        },
    )
    .await;
    c.stop_server("g-late", "nb", false).await.unwrap();
    stopped(&c, "g-late", "nb").await;
    wait_for(
        "the agent to see g-late stop",
        Duration::from_secs(30),
        || {
            let m = metrics.clone();
            async move { (observed(&m, "gone") >= gone_before + 3).then_some(()) }
        },
    )
    .await;
    drop(agent);

    // The collected log: from just after g-late's ready line, without g-gap's stop lines.
    let text = log_from(&h.log, from);
    let ready = text.find("User g-late:nb took").unwrap();
    let cut = ready + text[ready..].find('\n').unwrap() + 1;
    let gap_stop = |l: &str| {
        l.contains("Removing user g-gap from proxy")
            || l.contains("User g-gap server took")
            || l.contains("DELETE /hub/api/users/g-gap/server")
    };
    let collected: String = text[cut..]
        .lines()
        .filter(|l| !gap_stop(l))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(collected.contains("User g-ok server took"), "{collected}");
    let file = dir.path().join("collected.log");
    std::fs::write(&file, &collected).unwrap();
    let (lake, log_only) = (dir.path().join("lake"), dir.path().join("log-only"));
    for l in [&lake, &log_only] {
        run_ok(
            bin()
                .args(["ingest", "--no-progress", "--lake"])
                .arg(l)
                .arg(&file),
        );
    }

    // The log alone: g-gap still running, g-late running since the data began.
    let alone = sessions(&log_only);
    assert_eq!(row(&alone, "g-gap")[4], "running", "{alone:?}");
    let late_alone = row(&alone, "g-late");
    assert_eq!(late_alone[1], "nb", "named by its stop line: {alone:?}");
    assert!(late_alone[5].contains("started_before_data"), "{alone:?}");
    assert!(late_alone[2].parse::<i64>().unwrap() > late_started.timestamp_micros());

    // With the hub's word.
    let grounded = sessions(&lake);
    let gap = row(&grounded, "g-gap");
    let end: i64 = gap[3].parse().unwrap();
    assert_eq!(gap[4], "observed_stop", "{grounded:?}");
    assert!(gap[5].contains("hub_corrected"), "{grounded:?}");
    // Gone is first seen by the listing after the stop (every 1 s).
    assert!(
        end >= stop_asked && end <= stop_seen + 5_000_000,
        "g-gap ended at {end}, the hub stopped it between {stop_asked} and {stop_seen}"
    );
    let late = row(&grounded, "g-late");
    assert_eq!(
        late[2].parse::<i64>().unwrap(),
        late_started.timestamp_micros(),
        "{grounded:?}"
    );
    assert!(late[5].contains("hub_corrected"), "{grounded:?}");
    let ok = row(&grounded, "g-ok");
    assert!(!ok[5].contains("hub_corrected"), "{grounded:?}");
    assert_eq!(ok, row(&alone, "g-ok"));

    // The report says what moved.
    let month = Utc::now().format("%Y-%m").to_string();
    let md = run_ok(
        bin()
            .args(["report", "monthly", "--month", &month, "--format", "md"])
            .arg("--pricing")
            .arg(root().join("examples/pricing.toml"))
            .arg("--lake")
            .arg(&lake),
    );
    assert!(
        md.contains(
            "3 of the month's sessions were seen by the hub; 1 starts and 1 ends were corrected"
        ),
        "{md}"
    );
    let md = run_ok(
        bin()
            .args(["report", "monthly", "--month", &month, "--format", "md"])
            .arg("--pricing")
            .arg(root().join("examples/pricing.toml"))
            .arg("--lake")
            .arg(&log_only),
    );
    assert!(md.contains("Session bounds rest on the log alone"), "{md}");
}
