//! The monthly report's idle hours, active days and culler savings rest on the hub's own
//! `last_activity` where the lake holds observations, and say "liveness only" where it does not.
//!
//! The log follows JupyterHub 6.1.1's own lines (the shapes of `fixtures/logs/real/`): the spawn
//! request and `User ana took N seconds to start` (`BaseHandler.finish_user_spawn`), the
//! single-user server's activity POST every 300 s (`notify_activity` in
//! `singleuser/extension.py` re-posts an unchanged time while the user is away: it is all the
//! log shows), and the stop (`Removing user … from proxy`, `User ana server took … to stop`,
//! the DELETE). The observations are written by the agent's own recorder
//! (`control::observe::Observations`) from user models as the hub's API returns them: the user
//! worked until 22:20, then left the server running across midnight.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use hubpulse::control::metrics::ControlStats;
use hubpulse::control::observe::Observations;
use hubpulse::hub::activity::ActivityView;
use hubpulse::hub::{Server, User};

use crate::support::{bin, root, run_ok};

fn t(h: u32, m: u32, day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
}

fn line(o: &mut String, at: DateTime<Utc>, rest: &str) {
    let _ = writeln!(
        o,
        "[I {} JupyterHub {rest}",
        at.format("%Y-%m-%d %H:%M:%S%.3f")
    );
}

/// 22:00 on Nov 3 to 01:00 on Nov 4, heartbeats every 5 min to the end.
fn log() -> String {
    let mut o = String::new();
    line(
        &mut o,
        t(22, 0, 3),
        "log:192] 202 POST /hub/api/users/ana/server (ana@10.0.0.7) 1012.00ms",
    );
    line(
        &mut o,
        t(22, 0, 3) + chrono::Duration::milliseconds(3705),
        "base:1192] User ana took 3.705 seconds to start",
    );
    let mut at = t(22, 5, 3);
    while at < t(1, 0, 4) {
        line(
            &mut o,
            at,
            "log:192] 200 POST /hub/api/users/ana/activity (ana@127.0.0.1) 8.41ms",
        );
        at += chrono::Duration::minutes(5);
    }
    line(
        &mut o,
        t(1, 0, 4),
        "proxy:360] Removing user ana from proxy (/user/ana/)",
    );
    line(
        &mut o,
        t(1, 0, 4) + chrono::Duration::milliseconds(779),
        "base:1445] User ana server took 0.779 seconds to stop",
    );
    line(
        &mut o,
        t(1, 0, 4) + chrono::Duration::milliseconds(790),
        "log:192] 204 DELETE /hub/api/users/ana/server (ana@10.0.0.7) 781.00ms",
    );
    o
}

/// `ana` as `GET /users?state=active` returns her, her server last active at `last`.
fn ana(last: DateTime<Utc>) -> User {
    let server: Server = serde_json::from_value(serde_json::json!({
        "name": "", "ready": true, "pending": null, "stopped": false,
        "started": "2026-11-03T22:00:00.000000Z",
        "last_activity": last.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "url": "/user/ana/", "user_options": {},
    }))
    .unwrap();
    User {
        name: "ana".into(),
        admin: false,
        groups: Some(vec![]),
        roles: None,
        last_activity: Some(last),
        created: None,
        pending: None,
        servers: Some([(String::new(), server)].into_iter().collect()),
    }
}

/// The totals row of the CSV report: (active_days, idle_hours).
fn totals(csv: &str) -> (String, f64) {
    let head: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let row: Vec<&str> = csv
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r.get(1) == Some(&"total"))
        .unwrap_or_else(|| panic!("no totals row: {csv}"));
    (
        row[col("active_days")].to_string(),
        row[col("idle_hours")].parse().unwrap(),
    )
}

fn report(lake: &std::path::Path, format: &str) -> String {
    run_ok(
        bin()
            .args([
                "report", "monthly", "--month", "2026-11", "--format", format,
            ])
            .arg("--pricing")
            .arg(root().join("examples/pricing.toml"))
            .arg("--lake")
            .arg(lake),
    )
}

#[test]
fn idle_hours_and_active_days_follow_the_hubs_last_activity_where_the_lake_has_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.log");
    std::fs::write(&file, log()).unwrap();
    let (logs_only, observed) = (dir.path().join("a"), dir.path().join("b"));
    for lake in [&logs_only, &observed] {
        run_ok(
            bin()
                .args(["ingest", "--no-progress", "--lake"])
                .arg(lake)
                .arg(&file),
        );
    }
    // Listings every 5 min while the server ran; ana's time moved until 22:20.
    let mut o = Observations::new(
        Some(&hubpulse::lake::LakeLocation::local(&observed)),
        "jupyterhub",
        Arc::new(ActivityView::default()),
        Arc::new(ControlStats::default()),
    );
    let mut at = t(22, 1, 3);
    while at < t(1, 0, 4) {
        let last = (at - chrono::Duration::minutes(1)).min(t(22, 20, 3));
        o.listing(at, &[ana(last)]);
        at += chrono::Duration::minutes(5);
    }
    o.listing(t(1, 1, 4), &[]);
    o.flush(true).unwrap();

    // Logs only: the last heartbeat (00:55) looks like use; the server ran on two days.
    // (The CSV rounds hours to 2 decimals.)
    let csv = report(&logs_only, "csv");
    let (days, idle) = totals(&csv);
    assert_eq!(days, "2", "{csv}");
    assert!((idle - 5.0 / 60.0).abs() < 0.006, "{idle}: {csv}");
    let md = report(&logs_only, "md");
    assert!(md.contains("for all 1 sessions, on liveness only"), "{md}");

    // With the hub's word: idle from 22:20 (2 h 40 min), active on Nov 3 only.
    let csv = report(&observed, "csv");
    let (days, idle) = totals(&csv);
    assert_eq!(days, "1", "{csv}");
    assert!((idle - (2.0 + 40.0 / 60.0)).abs() < 0.006, "{idle}: {csv}");
    let md = report(&observed, "md");
    assert!(
        md.contains("rest on the hub's own last_activity for every session (1)"),
        "{md}"
    );
}
