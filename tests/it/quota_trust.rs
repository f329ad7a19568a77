//! Quota usage never rests on log lines alone (issue 18, item 1): a running server's usage comes
//! from the hub API's `started`, a session open only in the log counts nothing, a stop line
//! cannot end a run the API still lists, and only this hub's sessions count.
//!
//! The log lines follow JupyterHub 6.1.1's own (`BaseHandler.finish_user_spawn`'s `User X took N
//! seconds to start`, `stop_single_user`'s `User X server took N seconds to stop`); the forged
//! ones are what a user can put in the hub log (e.g. through a `Failed login for %s` name
//! holding a newline).

use chrono::{DateTime, Duration, TimeZone, Utc};
use hubpulse::control::admission::{Action, AdmissionDecision, Policy, Reason, Running};
use hubpulse::control::quota::month_usage;

use crate::support::{bin, run_ok};

fn at(t: DateTime<Utc>, rest: &str) -> String {
    format!(
        "[I {} JupyterHub {rest}\n",
        t.format("%Y-%m-%d %H:%M:%S%.3f")
    )
}

fn ingest(lake: &std::path::Path, hub: &str, log: &str) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hub.log");
    std::fs::write(&f, log).unwrap();
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--hub", hub, "--lake"])
            .arg(lake)
            .arg(&f),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_start_and_stop_lines_and_other_hubs_change_no_quota_usage() {
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
    let h = |x: i64| now - Duration::hours(x);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut log = String::new();
    // Forged: alice "started" five days ago and never stopped.
    log += &at(h(120), "base:1192] User alice took 1.000 seconds to start");
    // bob: a real, closed hour.
    log += &at(h(3), "base:1192] User bob took 2.500 seconds to start");
    log += &at(
        h(2),
        "base:1445] User bob server took 0.700 seconds to stop",
    );
    // carol: running for 2 h by the API; a forged stop line ten minutes in.
    log += &at(h(2), "base:1192] User carol took 2.500 seconds to start");
    log += &at(
        h(2) + Duration::minutes(10),
        "base:1445] User carol server took 0.700 seconds to stop",
    );
    log += &at(h(0), "log:192] 200 GET /hub/api/ (@127.0.0.1) 1.00ms");
    ingest(&lake, "hub-a", &log);
    // Another hub of the same lake: dave's hours there are not this hub's.
    let other = at(h(4), "base:1192] User dave took 2.500 seconds to start")
        + &at(
            h(1),
            "base:1445] User dave server took 0.700 seconds to stop",
        );
    ingest(&lake, "hub-b", &other);

    let policy = Policy::parse("default_profile = \"small\"\n", "p.toml").unwrap();
    let running = [Running {
        user: "carol".into(),
        server: String::new(),
        profile: "small".into(),
        groups: vec![],
        started: Some(h(2) - Duration::seconds(3)),
    }];
    let u = month_usage(
        &hubpulse::lake::LakeLocation::local(&lake),
        &policy,
        now,
        Some("hub-a"),
        Some(&running),
    )
    .await
    .unwrap();
    let hours = |n: &str| u.user.get(n).copied().unwrap_or(0.0);
    assert_eq!(hours("alice"), 0.0, "{u:?}");
    assert!((hours("bob") - 1.0).abs() < 0.01, "{u:?}");
    assert!(
        (hours("carol") - (2.0 + 3.0 / 3600.0)).abs() < 0.01,
        "{u:?}"
    );
    assert!(!u.user.contains_key("dave"), "{u:?}");

    // What the log alone says (the report's view): the forgeries are there.
    let all = month_usage(
        &hubpulse::lake::LakeLocation::local(&lake),
        &policy,
        now,
        None,
        None,
    )
    .await
    .unwrap();
    assert!(all.user["alice"] > 100.0, "{all:?}");
    assert!(all.user["carol"] < 0.2, "{all:?}");
    assert!(all.user.contains_key("dave"), "{all:?}");
}

/// A record stamped in the future (a forged line; the parser accepts any year) is kept in
/// `events`, flagged `future`, and trusted nowhere: not in `lifecycle` or `activity`, so no
/// session, usage or control action rests on it.
#[test]
fn a_future_stamped_record_is_kept_flagged_and_out_of_derived_state() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let now = Utc::now();
    let mut log = String::new();
    log += &at(
        now - Duration::hours(1),
        "base:1192] User bob took 2.500 seconds to start",
    );
    log += &at(
        now - Duration::hours(1) + Duration::seconds(30),
        "log:192] 200 POST /hub/api/users/bob/activity (bob@127.0.0.1) 8.00ms",
    );
    log += "[I 9999-01-01 00:00:00.000 JupyterHub base:1192] User mallory took 1.000 seconds to start\n";
    log += "[I 9999-01-01 00:00:01.000 JupyterHub log:192] 200 POST /hub/api/users/mallory/activity (mallory@127.0.0.1) 8.00ms\n";
    ingest(&lake, "hub-a", &log);
    let q = |sql: &str| crate::support::query_num(&lake, sql);
    assert_eq!(
        q("SELECT COUNT(*) FROM events WHERE \"user\" = 'mallory' AND flags LIKE '%future%'"),
        2
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM events WHERE \"user\" = 'bob' AND flags LIKE '%future%'"),
        0
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM lifecycle WHERE \"user\" = 'mallory'"),
        0
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM activity WHERE \"user\" = 'mallory'"),
        0
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM lifecycle WHERE \"user\" = 'bob'"),
        1
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM sessions WHERE \"user\" = 'mallory'"),
        0
    );
}

/// A record stamped far before its stream's order (a forged `User X took N seconds to start`
/// dated five days back, as a `Failed login for %s` name with a newline can write it) is kept
/// in `events`, flagged `late`, and trusted nowhere; one forged line dated *ahead* does not make
/// the honest lines after it late (the order rises only when two records agree). Checked on a
/// file large enough to be parsed in parallel pieces (16,384 records each), with a forgery as
/// the first record of a piece, which the piece's own parser cannot judge without the order
/// before it (`Order::misses_late`: the piece is parsed again with it).
#[test]
fn a_back_dated_forged_record_is_flagged_late_and_makes_no_session() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let t0 = Utc::now() - Duration::days(2);
    let mut log = String::new();
    log += &at(t0, "base:1192] User bob took 2.500 seconds to start");
    let forged = |o: &mut String| {
        *o += &at(
            t0 - Duration::days(5),
            "base:1192] User mallory took 1.000 seconds to start",
        );
    };
    for i in 1..40_000i64 {
        match i {
            16_384 | 30_000 => forged(&mut log),
            // One forged line ahead of the stream (by a day, still in the past).
            20_000 => {
                log += &at(
                    t0 + Duration::days(1),
                    "log:192] 200 POST /hub/api/users/eve/activity (eve@127.0.0.1) 8.00ms",
                )
            }
            _ => {
                log += &at(
                    t0 + Duration::seconds(i),
                    "log:192] 200 POST /hub/api/users/bob/activity (bob@127.0.0.1) 8.00ms",
                )
            }
        }
    }
    ingest(&lake, "hub-a", &log);
    let q = |sql: &str| crate::support::query_num(&lake, sql);
    assert_eq!(
        q("SELECT COUNT(*) FROM events WHERE \"user\" = 'mallory' AND flags LIKE '%late%'"),
        2
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM events WHERE flags LIKE '%late%'"),
        2,
        "only the forgeries are late"
    );
    assert_eq!(q("SELECT COUNT(*) FROM events"), 40_000, "nothing dropped");
    assert_eq!(
        q("SELECT COUNT(*) FROM lifecycle WHERE \"user\" = 'mallory'"),
        0
    );
    assert_eq!(
        q("SELECT COUNT(*) FROM sessions WHERE \"user\" = 'mallory'"),
        0
    );
    assert_eq!(
        q("SELECT SUM(count) FROM activity WHERE \"user\" = 'bob'"),
        39_996
    );
}

/// An admission `allow` of `profile` for `user`'s default server at `ts`, as the admission
/// endpoint records it.
fn admitted(
    ts: DateTime<Utc>,
    user: &str,
    profile: &str,
) -> hubpulse::control::decisions::Row<AdmissionDecision> {
    hubpulse::control::decisions::Row {
        ts,
        pass: "admission",
        decision: AdmissionDecision {
            user: user.into(),
            server: String::new(),
            profile: profile.into(),
            action: Action::Allow,
            reason: Reason::Allowed,
        },
        dry_run: false,
        outcome: None,
        message: None,
    }
}

/// The quota run on a lake in S3 counts a server's hours in the class of the profile its
/// admission allowed (the `decisions` table), exactly as on a local lake. (It used to look for
/// a local `decisions/` directory, which a bucket never has: every S3 server then counted in
/// the default profile's class, and a GPU budget never bit.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_lake_counts_admitted_profiles_like_a_local_one() {
    use hubpulse::lake::LakeLocation;
    let s3 = super::s3::Moto::start();
    let now = Utc.with_ymd_and_hms(2026, 11, 20, 12, 0, 0).unwrap();
    let h = |x: i64| now - Duration::hours(x);
    let mut log = String::new();
    // bob: two closed hours on the profile he was admitted to (gpu); carol: one, no admission.
    log += &at(h(3), "base:1192] User bob took 2.500 seconds to start");
    log += &at(
        h(1),
        "base:1445] User bob server took 0.700 seconds to stop",
    );
    log += &at(h(3), "base:1192] User carol took 2.500 seconds to start");
    log += &at(
        h(2),
        "base:1445] User carol server took 0.700 seconds to stop",
    );
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("hub.log");
    std::fs::write(&f, &log).unwrap();
    let local = dir.path().join("lake");
    let remote = s3.location("quota/lake");
    for (lake, env) in [
        (local.display().to_string(), vec![]),
        (remote.to_string(), s3.env()),
    ] {
        run_ok(
            bin()
                .envs(env)
                .args(["ingest", "--no-progress", "--hub", "hub-a", "--lake", &lake])
                .arg(&f),
        );
    }
    let policy = Policy::parse(
        "default_profile = \"small\"\n[profiles.small]\n[profiles.gpu]\nclass = \"gpu\"\n",
        "p.toml",
    )
    .unwrap();
    let mut seen = Vec::new();
    for lake in [LakeLocation::local(&local), remote] {
        hubpulse::control::decisions::DecisionSink::new(&lake, "hub-a")
            .write(&[admitted(h(3) - Duration::seconds(5), "bob", "gpu")])
            .unwrap();
        let u = month_usage(&lake, &policy, now, Some("hub-a"), None)
            .await
            .unwrap_or_else(|e| panic!("{lake}: {e}"));
        let class = |c: &str, user: &str| {
            u.class_user
                .get(&(c.to_string(), user.to_string()))
                .copied()
                .unwrap_or(0.0)
        };
        assert!((class("gpu", "bob") - 2.0).abs() < 0.01, "{lake}: {u:?}");
        assert_eq!(class("small", "bob"), 0.0, "{lake}: {u:?}");
        assert!(
            (class("small", "carol") - 1.0).abs() < 0.01,
            "{lake}: {u:?}"
        );
        seen.push(u.class_user);
    }
    assert_eq!(seen[0], seen[1]);
}
