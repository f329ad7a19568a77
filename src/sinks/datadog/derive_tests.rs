#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::borrow::Cow;

use super::*;
use crate::parse::prefix::Family;
use crate::sinks::datadog::{MetricType, TAG_KEYS, metric_def};

const T0: i64 = 1_764_349_200 * US; // 2025-11-28T17:00:00Z, a multiple of 10 s

fn rec(kind: &'static str, t_ms: i64) -> Record<'static> {
    let mut r = Record::new(kind, Family::Hub, "");
    r.ts = Some(T0 + t_ms * 1000);
    r.logger = Some("JupyterHub");
    r
}

fn request(t_ms: i64, status: u16, route: &'static str, user: &'static str) -> Record<'static> {
    let mut r = rec("request", t_ms);
    r.status = Some(status);
    r.route = Some(route);
    r.duration_ms = Some(12.5);
    r.user = Some(Cow::Borrowed(user));
    r.actor = Some(user);
    r
}

fn spawned(t_ms: i64, user: &'static str, server: &'static str) -> Record<'static> {
    let mut r = rec("spawn_succeeded", t_ms);
    r.user = Some(Cow::Borrowed(user));
    r.server_name = Some(Cow::Borrowed(server));
    r.duration_ms = Some(4000.0);
    r
}

fn feed(d: &mut Deriver, recs: &[Record<'_>]) {
    for r in recs {
        let read = r.ts.unwrap_or(T0) + 200_000;
        d.record(r, "hub-a", read);
    }
}

fn value(iv: &Interval, metric: &str, tags: &[&str]) -> Option<Value> {
    iv.points
        .iter()
        .find(|p| {
            p.metric == metric
                && tags
                    .iter()
                    .all(|t| p.tags.iter().any(|x| x.to_string() == *t))
        })
        .map(|p| p.value.clone())
}

fn all(d: &mut Deriver) -> Vec<Interval> {
    d.flush_all();
    d.take_ready()
}

#[test]
fn counts_land_in_the_interval_of_their_record_time() {
    let mut d = Deriver::new(DeriveConfig::default());
    feed(
        &mut d,
        &[
            request(1_000, 200, "/hub/api/users/{user}", "alice"),
            request(9_999, 200, "/hub/api/users/{user}", "bob"),
            request(10_000, 503, "/user/{user}/api/kernels", "alice"),
        ],
    );
    let ivs = all(&mut d);
    assert_eq!(ivs.len(), 2);
    assert_eq!(ivs[0].start_s, T0 / US);
    assert_eq!(ivs[1].start_s, T0 / US + 10);
    let tags = ["route_group:hub_api", "status_class:2xx", "hub:hub-a"];
    assert_eq!(value(&ivs[0], n::REQUESTS, &tags), Some(Value::Count(2.0)));
    assert_eq!(value(&ivs[1], n::REQUESTS, &tags), None);
    let five = ["route_group:singleuser", "status_class:5xx"];
    assert_eq!(value(&ivs[1], n::REQUESTS, &five), Some(Value::Count(1.0)));
    assert_eq!(
        value(&ivs[0], n::REQUEST_DURATION, &["route_group:hub_api"]),
        Some(Value::Distribution(vec![0.0125, 0.0125]))
    );
}

#[test]
fn every_point_is_a_known_metric_with_known_tags_and_one_per_series() {
    let mut d = Deriver::new(DeriveConfig::default());
    let mut fail = rec("spawn_failed", 3_000);
    fail.message = "Unhandled error starting alice's server: boom";
    feed(
        &mut d,
        &[
            request(1_000, 200, "/hub/login", "alice"),
            rec("login", 1_100),
            rec("process_spawned", 1_200),
            spawned(2_000, "alice", ""),
            fail,
            rec("cull_server", 4_000),
            rec("chp_proxy_error", 5_000),
            rec("spawn_throttled", 6_000),
        ],
    );
    for iv in all(&mut d) {
        let mut seen = std::collections::HashSet::new();
        for p in &iv.points {
            let def = metric_def(p.metric).unwrap_or_else(|| panic!("unknown {}", p.metric));
            for t in &p.tags {
                assert!(TAG_KEYS.contains(&t.key), "{}", t.key);
                assert!(
                    t.key == "hub" || def.tags.contains(&t.key),
                    "{} on {}",
                    t.key,
                    p.metric
                );
            }
            let ok = matches!(
                (&p.value, def.kind),
                (Value::Count(_), MetricType::Count)
                    | (Value::Gauge(_), MetricType::Gauge)
                    | (Value::Distribution(_), MetricType::Distribution)
            );
            assert!(ok, "{} has the wrong value type", p.metric);
            assert!(
                seen.insert((p.metric, p.tags.clone())),
                "two points of {}",
                p.metric
            );
        }
    }
}

#[test]
fn a_late_record_is_counted_once_in_the_oldest_open_interval() {
    let mut d = Deriver::new(DeriveConfig::default());
    feed(
        &mut d,
        &[
            request(1_000, 200, "/hub/api", "a"),
            request(16_000, 200, "/hub/api", "a"),
        ],
    );
    // The watermark (16 s) is past 0–10 s + 5 s lateness: the first interval is closed.
    let first = d.take_ready();
    assert_eq!(first.len(), 1);
    feed(&mut d, &[request(2_000, 200, "/hub/api", "a")]);
    assert_eq!(d.stats().late, 1);
    let rest = all(&mut d);
    assert!(
        rest.iter().all(|iv| iv.start_s != first[0].start_s),
        "no second point at 0 s"
    );
    let total: f64 = first
        .iter()
        .chain(&rest)
        .filter_map(|iv| value(iv, n::REQUESTS, &[]))
        .map(|v| match v {
            Value::Count(c) => c,
            _ => 0.0,
        })
        .sum();
    assert_eq!(total, 3.0);
}

#[test]
fn quiet_time_still_closes_intervals_with_gauges() {
    let mut d = Deriver::new(DeriveConfig::default());
    let s = spawned(1_000, "alice", "");
    d.record(&s, "hub-a", T0 + 1_100_000);
    assert!(d.take_ready().is_empty());
    // 40 s of wall time later, no record: intervals 0, 10, 20 (ends + 5 s ≤ 41 s) close.
    d.advance(T0 + 41_100_000);
    let ivs = d.take_ready();
    assert_eq!(
        ivs.iter().map(|i| i.start_s - T0 / US).collect::<Vec<_>>(),
        [0, 10, 20]
    );
    for iv in &ivs {
        let running = value(iv, n::SERVERS_RUNNING, &["server_type:default"]);
        assert_eq!(running, Some(Value::Gauge(1.0)), "at {}", iv.start_s);
    }
}

#[test]
fn a_jump_in_time_fills_at_most_max_gap_intervals() {
    let cfg = DeriveConfig {
        max_gap_intervals: 6,
        ..Default::default()
    };
    let mut d = Deriver::new(cfg);
    feed(&mut d, &[rec("login", 0), rec("login", 7_200_000)]);
    let ivs = all(&mut d);
    // interval 0 (records), 6 gap intervals before the jump target, the target itself.
    assert_eq!(
        ivs.len(),
        8,
        "{:?}",
        ivs.iter().map(|i| i.start_s).collect::<Vec<_>>()
    );
    assert_eq!(d.stats().gap_skipped, 720 - 1 - 6);
    let starts: Vec<i64> = ivs.iter().map(|i| i.start_s).collect();
    assert!(starts.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn running_servers_follow_spawns_and_stops_by_server_type() {
    let mut d = Deriver::new(DeriveConfig::default());
    let mut stop = rec("stop_succeeded", 12_000);
    stop.user = Some(Cow::Borrowed("bob"));
    stop.server_name = Some(Cow::Borrowed("gpu"));
    stop.duration_ms = Some(650.0);
    let mut exited = rec("server_exited", 25_000);
    exited.user = Some(Cow::Borrowed("alice")); // no server named: alice's only one
    feed(
        &mut d,
        &[
            spawned(1_000, "alice", ""),
            spawned(2_000, "bob", "gpu"),
            stop,
            exited,
        ],
    );
    d.advance(T0 + 60_000_000);
    let ivs = d.take_ready();
    let g =
        |i: usize, ty: &str| value(&ivs[i], n::SERVERS_RUNNING, &[&format!("server_type:{ty}")]);
    assert_eq!(
        (g(0, "default"), g(0, "named")),
        (Some(Value::Gauge(1.0)), Some(Value::Gauge(1.0)))
    );
    assert_eq!(
        (g(1, "default"), g(1, "named")),
        (Some(Value::Gauge(1.0)), Some(Value::Gauge(0.0)))
    );
    assert_eq!(g(2, "default"), Some(Value::Gauge(0.0)));
    let stops = value(
        &ivs[1],
        n::STOPS,
        &["reason:requested", "server_type:named"],
    );
    assert_eq!(stops, Some(Value::Count(1.0)));
    let exits = value(&ivs[2], n::STOPS, &["reason:exited", "server_type:default"]);
    assert_eq!(exits, Some(Value::Count(1.0)));
}

#[test]
fn active_users_count_people_not_services_within_each_window() {
    let mut d = Deriver::new(DeriveConfig::default());
    let mut svc = rec("service_created", 0);
    svc.service = Some("ci-driver");
    let mut on_behalf = request(2_000, 200, "/hub/api/users/{user}", "carol");
    on_behalf.actor = Some("ci-driver");
    feed(
        &mut d,
        &[
            svc,
            request(1_000, 200, "/hub/api/user", "ci-driver"),
            on_behalf,
            rec("login", 3_000), // no user on it: nobody
            request(4_000, 200, "/hub/api/users/{user}", "alice"),
            // Heartbeats of idle servers (singleuser/extension.py re-posts an unchanged time):
            // the user is the actor, but it is no activity.
            request(5_000, 200, "/hub/api/users/{user}/activity", "dave"),
            request(400_000, 200, "/hub/api/users/{user}/activity", "dave"),
            request(400_000, 200, "/hub/api/users/{user}", "bob"),
        ],
    );
    let ivs = all(&mut d);
    let a = |iv: &Interval, w: &str| value(iv, n::USERS_ACTIVE, &[&format!("window:{w}")]);
    assert_eq!(a(&ivs[0], "5m"), Some(Value::Gauge(1.0)));
    let last = ivs.last().unwrap();
    assert_eq!(
        a(last, "5m"),
        Some(Value::Gauge(1.0)),
        "alice is > 5 min ago"
    );
    assert_eq!(a(last, "1h"), Some(Value::Gauge(2.0)));
}

/// With observations of the hub, `users.active` is the hub's count: the log's heartbeats and
/// requests do not enter it, and an interval older than the latest observation (a backlog)
/// falls back to the log.
#[test]
fn observed_hub_activity_replaces_the_logs_count_for_current_intervals() {
    use crate::hub::activity::ActivityView;
    use crate::hub::{Server, User};
    let view = std::sync::Arc::new(ActivityView::default());
    let at = |ms: i64| chrono::DateTime::from_timestamp_micros(T0 + ms * 1000).unwrap();
    let running = |name: &str, last_ms: i64| User {
        name: name.into(),
        admin: false,
        groups: None,
        roles: None,
        last_activity: Some(at(last_ms)),
        created: None,
        pending: None,
        servers: Some(
            [(
                String::new(),
                Server {
                    name: String::new(),
                    ready: true,
                    pending: None,
                    stopped: false,
                    started: Some(at(0)),
                    last_activity: Some(at(last_ms)),
                    url: None,
                    user_options: None,
                },
            )]
            .into_iter()
            .collect(),
        ),
    };
    // The hub says: erin was active 1 s in, frank 0.5 s in.
    view.observe(at(2_000), &[running("erin", 1_000), running("frank", 500)]);
    let mut d = Deriver::new(DeriveConfig::default()).with_hub_activity(view);
    feed(
        &mut d,
        &[
            request(1_000, 200, "/hub/api/users/{user}", "alice"),
            request(3_000, 200, "/hub/api/users/{user}/activity", "dave"),
            request(15_000, 200, "/hub/api/users/{user}", "bob"),
        ],
    );
    let ivs = all(&mut d);
    let a = |iv: &Interval, w: &str| value(iv, n::USERS_ACTIVE, &[&format!("window:{w}")]);
    assert_eq!(a(&ivs[0], "5m"), Some(Value::Gauge(2.0)), "erin and frank");
    assert_eq!(a(ivs.last().unwrap(), "24h"), Some(Value::Gauge(2.0)));
    // A backlog: the same records an hour before the observation take the log's count.
    let view = std::sync::Arc::new(ActivityView::default());
    view.observe(at(3_600_000), &[running("erin", 3_599_000)]);
    let mut d = Deriver::new(DeriveConfig::default()).with_hub_activity(view);
    feed(
        &mut d,
        &[request(1_000, 200, "/hub/api/users/{user}", "alice")],
    );
    let ivs = all(&mut d);
    assert_eq!(
        a(&ivs[0], "5m"),
        Some(Value::Gauge(1.0)),
        "alice, from the log"
    );
}

#[test]
fn free_text_tags_are_capped() {
    let cfg = DeriveConfig {
        max_tag_values: 2,
        ..Default::default()
    };
    let mut d = Deriver::new(cfg);
    let loggers = ["A", "B", "C", "D"];
    let recs: Vec<Record<'static>> = loggers
        .iter()
        .map(|l| {
            let mut r = rec("asyncio_exception", 1_000);
            r.logger = Some(l);
            r
        })
        .collect();
    feed(&mut d, &recs);
    let ivs = all(&mut d);
    assert_eq!(
        value(&ivs[0], n::TRACEBACKS, &["logger:a"]),
        Some(Value::Count(1.0))
    );
    assert_eq!(
        value(&ivs[0], n::TRACEBACKS, &["logger:other"]),
        Some(Value::Count(2.0))
    );
}

#[test]
fn wall_clock_maps_instants_both_ways() {
    let now = Instant::now();
    let c = WallClock::anchored(now, 5_000_000);
    assert_eq!(
        c.unix_us(now + std::time::Duration::from_millis(3)),
        5_003_000
    );
    if let Some(before) = now.checked_sub(std::time::Duration::from_millis(2)) {
        assert_eq!(c.unix_us(before), 4_998_000);
    }
}

#[test]
fn a_stamp_from_the_future_does_not_drag_time_ahead() {
    let mut d = Deriver::new(DeriveConfig::default());
    let mut bogus = rec("login", 0);
    bogus.ts = Some(T0 + 86_400 * US);
    d.record(&rec("login", 0), "hub-a", T0 + 100_000);
    d.record(&bogus, "hub-a", T0 + 200_000);
    d.record(&rec("login", 1_000), "hub-a", T0 + 1_100_000);
    assert_eq!((d.stats().future, d.stats().late), (1, 0));
    let ivs = all(&mut d);
    assert_eq!(ivs.len(), 1);
    assert_eq!(
        value(&ivs[0], n::LOGINS, &["outcome:ok"]),
        Some(Value::Count(3.0))
    );
}

// ---------------------------------------------------------------------------------------------
// Real line shapes through the real reader and parser (issue 17, items 6-8).

/// Feed log text through the real reader and parser; each record is read at `read(its time)`.
fn feed_log(d: &mut Deriver, text: &str, read: impl Fn(Option<i64>) -> i64) {
    use crate::parse::reader::{AtEof, RecordReader};
    let cat = std::sync::Arc::new(crate::parse::catalogue::Catalogue::embedded().unwrap());
    let zone = crate::parse::time::Zone::parse("UTC").unwrap();
    let mut p = crate::parse::Parser::new(cat, zone, None);
    let mut r = RecordReader::new(text.as_bytes(), 0, Default::default());
    r.run(AtEof::Finish, |raw| {
        p.parse(&raw, |rec| {
            d.record(rec, "hub-a", read(rec.ts.or(rec.ts_hint)));
        });
    })
    .unwrap();
}

fn count_of(ivs: &[Interval], metric: &str, tags: &[&str]) -> Vec<(i64, f64)> {
    ivs.iter()
        .filter_map(|iv| match value(iv, metric, tags) {
            Some(Value::Count(c)) => Some((iv.start_s - T0 / US, c)),
            _ => None,
        })
        .collect()
}

fn gauge_of(ivs: &[Interval], metric: &str) -> Vec<(i64, f64)> {
    ivs.iter()
        .filter_map(|iv| match value(iv, metric, &[]) {
            Some(Value::Gauge(g)) => Some((iv.start_s - T0 / US, g)),
            _ => None,
        })
        .collect()
}

/// A Z2JH hub pod log read as a backlog three hours after it was written
/// (`kubectl logs -f deploy/hub | hubpulse run --follow -`): the chart's `z2jh.py` prints
/// `Loading …` / `No config at …` before JupyterHub logs anything; an untimed traceback before
/// the first stamp is counted in the first stamped record's interval.
#[test]
fn leading_untimed_lines_neither_move_time_nor_make_later_records_late() {
    let log = "\
Loading /usr/local/etc/jupyterhub/secret/values.yaml
No config at /usr/local/etc/jupyterhub/existing-secret/values.yaml
Traceback (most recent call last):
  File \"/usr/local/etc/jupyterhub/jupyterhub_config.py\", line 9, in <module>
KeyError: 'hub'
[I 2025-11-28 17:00:01.000 JupyterHub app:3352] Running JupyterHub version 5.2.1
[I 2025-11-28 17:00:03.500 JupyterHub base:1025] User logged in: alice
[I 2025-11-28 17:00:12.000 JupyterHub base:1025] User logged in: bob
[I 2025-11-28 17:00:31.000 JupyterHub base:1025] User logged in: carol
";
    let backlog_read = T0 + 3 * 3600 * US;
    let mut d = Deriver::new(DeriveConfig::default());
    feed_log(&mut d, log, |_| backlog_read);
    let ivs = all(&mut d);
    assert_eq!(d.stats().late, 0);
    assert!(d.stats().untimed_held >= 3, "{:?}", d.stats());
    assert_eq!(
        count_of(&ivs, n::LOGINS, &["outcome:ok"]),
        [(0, 1.0), (10, 1.0), (30, 1.0)]
    );
    assert_eq!(count_of(&ivs, n::TRACEBACKS, &[]), [(0, 1.0)]);
    let starts: Vec<i64> = ivs.iter().map(|i| i.start_s - T0 / US).collect();
    assert_eq!(starts, [0, 10, 20, 30], "nothing at the read time");
}

/// Only untimed lines: after one interval plus the lateness of wall time they are placed at
/// the time they were read.
#[test]
fn untimed_lines_alone_are_placed_at_their_read_time() {
    let mut d = Deriver::new(DeriveConfig::default());
    let log = "Loading /usr/local/etc/jupyterhub/secret/values.yaml\nTraceback (most recent call last):\nKeyError: 'hub'\n";
    feed_log(&mut d, log, |_| T0 + 2 * US);
    d.advance(T0 + 16 * US);
    assert!(d.take_ready().is_empty(), "held for 15 s");
    d.advance(T0 + 18 * US);
    d.advance(T0 + 40 * US);
    let ivs = d.take_ready();
    assert_eq!(count_of(&ivs, n::TRACEBACKS, &[]), [(0, 1.0)]);
}

/// One refused attempt logs the refusal and `Failed login for`: one failed login (see
/// `classify::LOGIN_FAILED_KINDS` for the upstream code paths).
#[test]
fn a_refused_login_is_one_failed_attempt() {
    let log = "\
[W 2025-11-28 17:00:01.000 JupyterHub auth:819] User 'eve' not allowed.
[W 2025-11-28 17:00:01.001 JupyterHub base:1041] Failed login for 'eve'
[W 2025-11-28 17:00:02.000 JupyterHub auth:800] User 'mallory' blocked. Stop authentication
[W 2025-11-28 17:00:02.001 JupyterHub base:1041] Failed login for 'mallory'
[W 2025-11-28 17:00:03.000 JupyterHub auth:792] Disallowing invalid username '../x'.
[W 2025-11-28 17:00:03.001 JupyterHub base:1041] Failed login for '../x'
[W 2025-11-28 17:00:04.000 JupyterHub base:980] Failed login for carol
[W 2025-11-28 17:00:05.000 JupyterHub auth:819] User 'dan' not allowed.
[W 2025-11-28 17:00:05.001 JupyterHub base:1041] Failed login for 'unknown user'
[I 2025-11-28 17:00:06.000 JupyterHub base:1033] User logged in: bob
";
    let mut d = Deriver::new(DeriveConfig::default());
    feed_log(&mut d, log, |t| t.unwrap() + 100_000);
    let ivs = all(&mut d);
    assert_eq!(count_of(&ivs, n::LOGINS, &["outcome:failed"]), [(0, 5.0)]);
    assert_eq!(count_of(&ivs, n::LOGINS, &["outcome:ok"]), [(0, 1.0)]);
}

/// A managed service's `Spawning …` (services/service.py) is no user spawn, and KubeSpawner's
/// pod-create retries (a timeout, a 409 conflict) are one launch: pending spawns return to 0.
#[test]
fn service_processes_and_pod_create_retries_are_not_launches() {
    let log = "\
[I 2025-11-28 17:00:00.100 JupyterHub service:418] Starting service 'jupyterhub-idle-culler': ['python3', '-m', 'jupyterhub_idle_culler', '--timeout=3600']
[I 2025-11-28 17:00:00.101 JupyterHub service:138] Spawning python3 -m jupyterhub_idle_culler --timeout=3600
[I 2025-11-28 17:00:11.000 JupyterHub spawner:3002] Attempting to create pod jupyter-alice, with timeout 3
[I 2025-11-28 17:00:14.000 JupyterHub spawner:3002] Attempting to create pod jupyter-alice, with timeout 3
[I 2025-11-28 17:00:15.000 JupyterHub spawner:3002] Attempting to create pod jupyter-bob, with timeout 3
[I 2025-11-28 17:00:15.100 JupyterHub spawner:3021] Found existing pod jupyter-bob, attempting to kill
[I 2025-11-28 17:00:15.200 JupyterHub spawner:3397] Deleting pod jhub/jupyter-bob
[I 2025-11-28 17:00:18.000 JupyterHub spawner:3026] Killed pod jupyter-bob, will try starting singleuser pod again
[I 2025-11-28 17:00:18.100 JupyterHub spawner:3002] Attempting to create pod jupyter-bob, with timeout 3
[I 2025-11-28 17:00:25.000 JupyterHub base:1192] User alice took 14.000 seconds to start
[I 2025-11-28 17:00:33.000 JupyterHub base:1192] User bob took 18.000 seconds to start
[I 2025-11-28 17:00:41.000 JupyterHub spawner:3397] Deleting pod jhub/jupyter-alice
[I 2025-11-28 17:00:42.000 JupyterHub base:1445] User alice server took 1.000 seconds to stop
[I 2025-11-28 17:00:51.000 JupyterHub spawner:3002] Attempting to create pod jupyter-alice, with timeout 3
[I 2025-11-28 17:01:02.000 JupyterHub base:1192] User alice took 11.000 seconds to start
";
    let mut d = Deriver::new(DeriveConfig::default());
    feed_log(&mut d, log, |t| t.unwrap() + 100_000);
    let ivs = all(&mut d);
    assert_eq!(
        count_of(&ivs, n::SPAWNS_STARTED, &[]),
        [(10, 2.0), (50, 1.0)]
    );
    assert_eq!(
        gauge_of(&ivs, n::SPAWNS_PENDING),
        [
            (0, 0.0),
            (10, 2.0),
            (20, 1.0),
            (30, 0.0),
            (40, 0.0),
            (50, 1.0),
            (60, 0.0)
        ]
    );
}
