//! Datadog metrics derived from real fixture logs equal what the expected records (and the
//! harness's own account of what it did, `truth.json`) say, counted here independently.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use hubpulse::lake::batch::SourceInfo;
use hubpulse::sinks::datadog::classify::{TRACEBACK_MARKER, route_group};
use hubpulse::sinks::datadog::derive::{DeriveConfig, DerivingObserver, WallClock};
use hubpulse::sinks::datadog::names as n;
use hubpulse::stream::Observer;
use serde_json::{Value, json};

use super::dd_common::{Expected, LAG_US, Table, derive, expected, table};
use crate::support::root;

const IV: i64 = 10_000_000;

fn start(t: i64) -> i64 {
    t.div_euclid(IV) * IV / 1_000_000
}

fn kind(e: &Expected) -> &str {
    e.v["kind"].as_str().unwrap()
}

fn s<'a>(e: &'a Expected, f: &str) -> Option<&'a str> {
    e.v[f].as_str()
}

/// Sum of a count metric over all intervals, per tag set.
fn totals(t: &Table, metric: &str) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    for ((_, tags), v) in t.get(metric).into_iter().flatten() {
        *out.entry(tags.clone()).or_insert(0.0) += v.as_f64().unwrap();
    }
    out
}

fn total(t: &Table, metric: &str, tag: &str) -> f64 {
    totals(t, metric)
        .iter()
        .filter(|(tags, _)| tag.is_empty() || tags.iter().any(|x| x == tag))
        .map(|(_, v)| v)
        .sum()
}

/// Sorted, to 1e-9 (the deriver and this test read `duration_ms` through different paths).
fn round(mut v: Vec<f64>) -> Vec<i64> {
    v.sort_by(f64::total_cmp);
    v.iter().map(|x| (x * 1e9).round() as i64).collect()
}

fn truth() -> Value {
    let p = root().join("fixtures/logs/real/hub-only/truth.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn hub_only() -> (Table, Vec<Expected>, Vec<i64>) {
    let dir = root().join("fixtures/logs/real/hub-only");
    let (ivs, stats) = derive(&dir, DeriveConfig::default());
    assert_eq!(stats.late, 0, "records were fed in time order");
    let starts: Vec<i64> = ivs.iter().map(|i| i.start_s).collect();
    assert!(
        starts.windows(2).all(|w| w[1] == w[0] + 10),
        "one interval per 10 s: {starts:?}"
    );
    (table(&ivs), expected(&dir), starts)
}

#[test]
fn dd_request_counts_and_latencies_per_interval_equal_the_expected_records() {
    let (t, exp, _) = hub_only();
    let mut counts: BTreeMap<(i64, Vec<String>), f64> = BTreeMap::new();
    let mut lat: BTreeMap<(i64, Vec<String>), Vec<f64>> = BTreeMap::new();
    for e in exp.iter().filter(|e| kind(e) == "request") {
        let group = format!("route_group:{}", route_group(s(e, "route").unwrap()));
        let class = format!("status_class:{}xx", e.v["status"].as_u64().unwrap() / 100);
        let mut tags = vec![group.clone(), class];
        tags.sort();
        *counts.entry((start(e.t), tags)).or_insert(0.0) += 1.0;
        let ms = e.v["duration_ms"].as_f64().unwrap();
        lat.entry((start(e.t), vec![group]))
            .or_default()
            .push(ms / 1000.0);
    }
    assert!(
        counts.len() > 20,
        "the fixture has requests in many intervals"
    );
    let got: BTreeMap<_, f64> = t[n::REQUESTS]
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect();
    assert_eq!(got, counts);
    let got: BTreeMap<_, Vec<i64>> = t[n::REQUEST_DURATION]
        .iter()
        .map(|(k, v)| (k.clone(), round(serde_json::from_value(v.clone()).unwrap())))
        .collect();
    let lat: BTreeMap<_, Vec<i64>> = lat.into_iter().map(|(k, v)| (k, round(v))).collect();
    assert_eq!(got, lat);
}

#[test]
fn dd_event_counts_equal_the_expected_records_and_the_harness_truth() {
    let (t, exp, _) = hub_only();
    let truth = truth();
    let count = |k: &[&str]| exp.iter().filter(|e| k.contains(&kind(e))).count() as f64;
    let len = |f: &str| truth[f].as_array().unwrap().len() as f64;

    assert_eq!(total(&t, n::LOGINS, "outcome:ok"), count(&["login"]));
    assert_eq!(
        total(&t, n::LOGINS, "outcome:ok"),
        truth["logins_ok"].as_f64().unwrap()
    );
    assert_eq!(
        total(&t, n::LOGINS, "outcome:failed"),
        truth["logins_failed"].as_f64().unwrap()
    );

    assert_eq!(
        total(&t, n::SPAWNS_STARTED, ""),
        count(&["process_spawned", "pod_create"])
    );
    assert_eq!(total(&t, n::SPAWNS_SUCCEEDED, ""), len("spawns_succeeded"));
    let named = truth["spawns_succeeded"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["server"] != "")
        .count();
    assert_eq!(
        total(&t, n::SPAWNS_SUCCEEDED, "server_type:named"),
        named as f64
    );
    assert_eq!(total(&t, n::SPAWNS_FAILED, ""), len("spawns_failed"));
    assert_eq!(total(&t, n::CULLS, "reason:server_idle"), len("culled"));
    assert_eq!(
        total(&t, n::STOPS, "reason:requested"),
        len("stops") + len("culled")
    );
    assert_eq!(total(&t, n::STOPS, "reason:exited"), len("servers_died"));

    // Spawn durations: exactly the logged `took N seconds` values.
    let want: Vec<f64> = exp
        .iter()
        .filter(|e| kind(e) == "spawn_succeeded")
        .map(|e| e.v["duration_ms"].as_f64().unwrap() / 1000.0)
        .collect();
    let got: Vec<f64> = t[n::SPAWN_DURATION]
        .values()
        .flat_map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    assert_eq!(round(got), round(want));

    // Tracebacks, by logger.
    let mut tb: BTreeMap<Vec<String>, f64> = BTreeMap::new();
    for e in &exp {
        let k = kind(e);
        let msg = s(e, "message").unwrap();
        let exc = [
            "asyncio_exception",
            "exception_ignored",
            "culler_exception",
            "chp_exception",
        ];
        if msg.contains(TRACEBACK_MARKER) || exc.contains(&k) {
            let logger = s(e, "logger")
                .unwrap_or(s(e, "source").unwrap())
                .to_lowercase();
            *tb.entry(vec![format!("logger:{logger}")]).or_insert(0.0) += 1.0;
        }
    }
    assert!(!tb.is_empty());
    assert_eq!(totals(&t, n::TRACEBACKS), tb);
}

/// State at the end of each interval, replayed from the expected records.
#[test]
fn dd_gauges_at_each_interval_end_equal_a_replay_of_the_expected_records() {
    let (t, exp, starts) = hub_only();
    let services: HashSet<&str> = exp
        .iter()
        .filter(|e| kind(e) == "service_created")
        .filter_map(|e| s(e, "service"))
        .collect();
    assert!(services.contains("idle-culler"));
    let gauge = |metric: &str, at: i64, tag: &str| -> f64 {
        let tags = if tag.is_empty() {
            vec![]
        } else {
            vec![tag.to_string()]
        };
        t[metric]
            .get(&(at, tags))
            .unwrap_or_else(|| panic!("{metric} {tag} at {at}"))
            .as_f64()
            .unwrap()
    };
    for &st in &starts {
        let end = (st + 10) * 1_000_000;
        let before = |e: &&Expected| e.t < end;
        let mut running = [0i64; 2];
        let (mut started, mut finished) = (0i64, 0i64);
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for e in exp.iter().filter(before) {
            let ty = usize::from(s(e, "server_name").is_some_and(|x| !x.is_empty()));
            match kind(e) {
                "spawn_succeeded" => {
                    running[ty] += 1;
                    finished += 1;
                }
                "stop_succeeded" | "server_exited" | "server_lost" => running[ty] -= 1,
                "process_spawned" | "pod_create" => started += 1,
                "spawn_timeout" => finished += 1,
                "spawn_failed" if !s(e, "message").unwrap().starts_with("Previous spawn") => {
                    finished += 1
                }
                _ => {}
            }
            let user = s(e, "user");
            let acted = match kind(e) {
                "login" | "activity_recorded" => user,
                // The activity POST is a single-user server's heartbeat (it re-posts an
                // unchanged time: singleuser/extension.py, notify_activity), not activity.
                "request"
                    if s(e, "actor").is_some()
                        && s(e, "actor") == user
                        && s(e, "route") != Some("/hub/api/users/{user}/activity") =>
                {
                    user
                }
                _ => None,
            };
            if let Some(u) = acted.filter(|u| !services.contains(u)) {
                last.insert(u, e.t);
            }
        }
        assert_eq!(
            gauge(n::SERVERS_RUNNING, st, "server_type:default") as i64,
            running[0],
            "at {st}"
        );
        assert_eq!(
            gauge(n::SERVERS_RUNNING, st, "server_type:named") as i64,
            running[1],
            "at {st}"
        );
        assert_eq!(
            gauge(n::SPAWNS_PENDING, st, "") as i64,
            (started - finished).max(0),
            "at {st}"
        );
        for (w, secs) in [("5m", 300), ("1h", 3600), ("24h", 86_400)] {
            let want = last
                .values()
                .filter(|t| **t >= end - secs * 1_000_000)
                .count();
            assert_eq!(
                gauge(n::USERS_ACTIVE, st, &format!("window:{w}")) as usize,
                want,
                "{w} at {st}"
            );
        }
        let lag = t[n::AGENT_LAG]
            .get(&(st, vec![]))
            .map(|v| v.as_f64().unwrap());
        assert!(
            lag.is_none_or(|l| (l - LAG_US as f64 / 1e6).abs() < 1e-9),
            "lag {lag:?}"
        );
    }
    // The harness left exactly alice's default server running at shutdown.
    let last = *starts.last().unwrap();
    assert_eq!(gauge(n::SERVERS_RUNNING, last, "server_type:default"), 1.0);
    assert_eq!(
        truth()["running_at_shutdown"],
        json!([{"user": "alice", "server": "", "ready": true}])
    );
    let peak = starts
        .iter()
        .map(|&st| gauge(n::SERVERS_RUNNING, st, "server_type:default"))
        .fold(0.0, f64::max);
    assert!(peak >= 2.0, "several default servers ran at once: {peak}");
}

/// Other fixture families: every count total equals the expected records' count of its kinds.
#[test]
fn dd_count_totals_match_on_every_fixture_family() {
    for rel in [
        "fixtures/logs/chp",
        "fixtures/logs/culler",
        "fixtures/logs/kubespawner",
        "fixtures/logs/real/combined-debug",
    ] {
        let dir = root().join(rel);
        let (ivs, _) = derive(&dir, DeriveConfig::default());
        let t = table(&ivs);
        let exp = expected(&dir);
        let count = |k: &[&str]| exp.iter().filter(|e| k.contains(&kind(e))).count() as f64;
        let failed = exp
            .iter()
            .filter(|e| matches!(kind(e), "spawn_failed" | "spawn_timeout"))
            .filter(|e| !s(e, "message").unwrap().starts_with("Previous spawn"))
            .count() as f64;
        let checks = [
            (n::REQUESTS, count(&["request"])),
            (
                n::LOGINS,
                count(&["login", "login_failed", "login_refused"]),
            ),
            (n::SPAWNS_SUCCEEDED, count(&["spawn_succeeded"])),
            (n::SPAWNS_FAILED, failed),
            (
                n::SPAWNS_DENIED,
                count(&["spawn_throttled", "server_limit_reached"]),
            ),
            (
                n::STOPS,
                count(&["stop_succeeded", "server_exited", "server_lost"]),
            ),
            (
                n::CULLS,
                count(&["cull_server", "cull_user", "kernel_culled"]),
            ),
            (
                n::PROXY_ERRORS,
                count(&[
                    "chp_proxy_error",
                    "proxy_api_error",
                    "proxy_add_failed",
                    "chp_exception",
                ]),
            ),
        ];
        for (metric, want) in checks {
            assert_eq!(total(&t, metric, ""), want, "{rel}: {metric}");
        }
        let profiles: BTreeSet<&String> = t
            .get(n::SPAWNS_SUCCEEDED)
            .into_iter()
            .flatten()
            .flat_map(|((_, tags), _)| tags)
            .collect();
        assert!(
            profiles.iter().all(|p| !p.contains('@')),
            "{rel}: {profiles:?}"
        );
    }
}

/// The observer in the pipeline's shape: records with `Instant`s, ticks with no records; every
/// interval reaches the sink once, and quiet time closes the last one.
#[test]
fn dd_observer_hands_each_interval_to_the_sink_once() {
    let dir = root().join("fixtures/logs/real/hub-only");
    let (pure, _) = derive(&dir, DeriveConfig::default());
    let exp = expected(&dir);
    let t0 = exp.first().unwrap().t;
    let i0 = Instant::now();
    let clock = WallClock::anchored(i0, t0);
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let got = got.clone();
        move |iv| got.lock().unwrap().push(iv)
    };
    // It is what `agent::run_with` takes.
    let _boxed: Box<dyn Observer> = Box::new(DerivingObserver::new(
        DeriveConfig::default(),
        clock,
        |_| {},
    ));
    let mut obs = DerivingObserver::new(DeriveConfig::default(), clock, sink);
    let src = SourceInfo {
        hub: "golden".into(),
        file: "hub.log".into(),
        fp: "fp".into(),
    };
    let at = |t: i64| i0 + Duration::from_micros(u64::try_from(t - t0).unwrap());
    // Only hub.log here (one source, in order): compare against its own pure derivation.
    let hub_log = dir.join("hub.log");
    let (pure_hub, _) = derive(&hub_log, DeriveConfig::default());
    assert!(pure.len() >= pure_hub.len());
    let text = std::fs::read(&hub_log).unwrap();
    let cat = std::sync::Arc::new(hubpulse::parse::catalogue::Catalogue::embedded().unwrap());
    let zone = hubpulse::parse::time::Zone::parse("UTC").unwrap();
    let mut parser =
        hubpulse::parse::Parser::new(cat, zone, chrono::NaiveDate::from_ymd_opt(2026, 11, 28));
    let mut reader = hubpulse::parse::reader::RecordReader::new(&text[..], 0, Default::default());
    let mut last_t = t0;
    reader
        .run(hubpulse::parse::reader::AtEof::Finish, |raw| {
            parser.parse(&raw, |rec| {
                last_t = rec.ts.or(rec.ts_hint).unwrap_or(last_t);
                obs.on_record(rec, &src, at(last_t + LAG_US));
            });
        })
        .unwrap();
    let before_quiet = got.lock().unwrap().len();
    assert!(
        before_quiet < pure_hub.len(),
        "the newest intervals wait for lateness"
    );
    obs.on_tick(at(last_t + LAG_US + 60_000_000));
    let got = got.lock().unwrap();
    let n_pure = pure_hub.len();
    // Quiet time closed everything the pure run closed at flush, and then some empty intervals.
    assert!(got.len() >= n_pure, "{} < {n_pure}", got.len());
    assert_eq!(&got[..n_pure - 1], &pure_hub[..n_pure - 1]);
    let starts: Vec<i64> = got.iter().map(|i| i.start_s).collect();
    assert!(starts.windows(2).all(|w| w[1] == w[0] + 10));
}
