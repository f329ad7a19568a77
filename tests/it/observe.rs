//! Hub observations without a culler (`[hub] observe_every`), on the hub with real
//! `jupyterhub-singleuser` servers ([`real_hub`]): the `observations` table holds what the hub's
//! API said, and the active-user gauges (`jupyterhub.users.active`, through the Datadog sink's
//! Prometheus exposition) equal the count the hub's own API gives.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use hubpulse::stream::metrics::Metrics;

use super::cull_common::*;
use crate::support::query_csv;

/// `jupyterhub_users_active{…window="W"…} V` → V, from the exposition.
fn gauge(text: &str, window: &str) -> Option<usize> {
    text.lines()
        .find(|l| {
            l.starts_with("jupyterhub_users_active{") && l.contains(&format!("window=\"{window}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as usize)
}

/// Users of `names` whose `last_activity` the hub's API puts within `secs` of now.
async fn hub_count(names: &[&str], secs: i64) -> usize {
    let c = real_hub().admin();
    let mut n = 0;
    for name in names {
        let u = user(&c, name).await;
        if u.last_activity
            .is_some_and(|t| (Utc::now() - t).num_seconds() < secs)
        {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_user_gauges_equal_the_hubs_count_and_observations_hold_the_hubs_word() {
    let _g = serial().await;
    let h = real_hub();
    let c = h.admin();
    stop_all(&c).await;
    let names = ["r6-a", "r6-b", "r6-c"];
    let _ = c.create_users(&names).await;
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::default());
    // The Datadog sink with no key: its metrics are on /metrics only (no account needed).
    let dd = hubpulse::sinks::datadog::config::DatadogConfig {
        enabled: false,
        flush_interval: Duration::from_secs(1),
        ..Default::default()
    };
    let (obs, sink) = hubpulse::sinks::datadog::sink::start(
        &tokio::runtime::Handle::current(),
        &dd,
        dir.path(),
        &metrics,
        Duration::from_secs(1),
    )
    .unwrap();
    // A bare key first lands in the `[hub]` section the config text ends with.
    let sections = "observe_every = \"1s\"\n";
    let agent = start_agent_with(h, dir.path(), &h.log, sections, vec![obs], metrics.clone());
    for n in names {
        spawn(&c, n, "", None).await;
    }
    // One busy user: real requests to the server through the proxy.
    let stop = Arc::new(AtomicBool::new(false));
    let (s2, public, token) = (
        stop.clone(),
        h.public_url().to_string(),
        h.admin_token.clone(),
    );
    let busy = tokio::spawn(async move {
        let http = reqwest::Client::new();
        while !s2.load(Ordering::Relaxed) {
            let r = http
                .get(format!("{public}/user/r6-a/api/contents"))
                .header("Authorization", format!("token {token}"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    let windows = [("5m", 300), ("1h", 3600), ("24h", 86_400)];
    // The gauges reach the three users once an observation after the spawns has been made and
    // an interval after it has closed.
    wait_for(
        "the gauges to count the three users",
        Duration::from_secs(60),
        || {
            let m = metrics.clone();
            async move {
                (gauge(&m.render(Utc::now().timestamp_micros()), "5m") == Some(3)).then_some(())
            }
        },
    )
    .await;
    for _ in 0..3 {
        let text = metrics.render(Utc::now().timestamp_micros());
        for (w, secs) in windows {
            let hub = hub_count(&names, secs).await;
            assert_eq!(gauge(&text, w), Some(hub), "window {w}: {text}");
        }
        // Another observation and interval between samples.
        let seen = metrics.hub_activity.observed_at().unwrap();
        wait_for("a newer observation", Duration::from_secs(10), || {
            let m = metrics.clone();
            async move { (m.hub_activity.observed_at() > Some(seen)).then_some(()) }
        })
        .await;
    }
    // The view behind the gauges holds exactly the hub's times.
    for n in ["r6-b", "r6-c"] {
        let t = api_activity(&c, n, "").await.unwrap();
        assert!(
            t < Utc::now() - chrono::Duration::seconds(2),
            "{n} is idle: its time does not move with heartbeats"
        );
    }
    stop.store(true, Ordering::Relaxed);
    busy.await.unwrap();
    let m = metrics.render(Utc::now().timestamp_micros());
    let requests: u64 = m
        .lines()
        .find_map(|l| l.strip_prefix("hubpulse_hub_api_requests_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{m}"));
    assert!(requests >= 3, "{m}");
    drop(agent);
    sink.finish();

    let lake = dir.path().join("lake");
    let rows = query_csv(
        &lake,
        "SELECT \"user\", kind, via, CAST(last_activity AS BIGINT) AS la, ready FROM observations \
         WHERE kind = 'server' ORDER BY ts",
    );
    let c2 = real_hub().admin();
    for n in ["r6-b", "r6-c"] {
        // The idle servers' last row carries the hub's current time for them.
        let t = api_activity(&c2, n, "").await.unwrap().timestamp_micros();
        let last = rows
            .lines()
            .rfind(|l| l.starts_with(&format!("{n},server,list,")))
            .unwrap_or_else(|| panic!("no row for {n}: {rows}"));
        assert!(last.contains(&format!(",{t},true")), "{last} vs {t}");
    }
    let listings: i64 = crate::support::query_num(
        &lake,
        "SELECT COUNT(*) FROM observations WHERE kind = 'listing'",
    );
    assert!(listings >= 3, "{listings}");
    stop_all(&c).await;
}
