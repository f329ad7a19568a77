//! Datadog counts and gauges against an independent count from the raw log, per 10-s interval
//! (issue 17, items 6–10): a real JupyterHub 6.1 capture through the deriver, and a Z2JH-style
//! hub pod log (leading untimed lines, a two-hour backlog, KubeSpawner retries, a managed
//! culler, refused logins) through the real binary to the local Datadog intake.
//!
//! The counter here reads the log text with its own regexes, never hubpulse's parser or
//! `src/datadog`; its rules are the upstream meanings:
//! * one failed login per `Failed login for` (JupyterHub `BaseHandler.login_user`, 4.x–6.x; a
//!   `User 'x' not allowed.` / `blocked` / `Disallowing invalid username` from
//!   `Authenticator.get_authenticated_user` is the reason logged just before it);
//! * a launch is a user's `Spawning …` (module `spawner`, not `service`: `_ServiceSpawner` in
//!   `services/service.py`) or the first `Attempting to create pod P` until P is deleted outside
//!   a `Found existing pod P, attempting to kill` retry (KubeSpawner `_start`,
//!   `_make_create_pod_request`, `_make_delete_pod_request`);
//! * pending = launches less outcomes (`took N seconds to start`, `Unhandled error starting`,
//!   `never showed up`, `failed to start in`), never below 0;
//! * running servers by default/named: started at `User U[:S] took`, stopped at `User U server
//!   took N seconds to stop` (the server named by the `Removing user U from proxy (/user/U/S/)`
//!   just before it, `handlers/base.py` `stop_single_user`) or `User U server stopped, with exit
//!   code` (the user's only running server);
//! * untimed leading lines belong to the first stamped record's interval; an untimed line later
//!   takes the last stamp before it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use hubpulse::sinks::datadog::derive::DeriveConfig;
use hubpulse::sinks::datadog::names as n;
use regex::Regex;
use serde_json::json;

use super::dd_common::{Intake, derive};
use crate::support::{bin, root};
use crate::support::{free_port, http_get, wait_for};

const IV_US: i64 = 10_000_000;
const COUNTS: [&str; 9] = [
    n::REQUESTS,
    n::LOGINS,
    n::SPAWNS_STARTED,
    n::SPAWNS_SUCCEEDED,
    n::SPAWNS_FAILED,
    n::STOPS,
    n::CULLS,
    n::TRACEBACKS,
    "jupyterhub.logins.failed",
];

/// Per-interval truth: counts keyed (metric[:outcome], interval start s); gauges at each
/// interval end from the first record's interval to the last's.
#[derive(Debug, Default)]
struct Truth {
    counts: BTreeMap<(String, i64), f64>,
    gauges: BTreeMap<(String, i64), f64>,
    first_s: i64,
    last_s: i64,
}

#[derive(Default)]
struct State {
    pending: i64,
    pods: HashMap<String, bool>,
    running: HashSet<(String, String)>,
    removed: HashMap<String, String>,
}

impl State {
    fn gauges(&self) -> [(&'static str, f64); 3] {
        let named = self.running.iter().filter(|(_, s)| !s.is_empty()).count();
        [
            ("jupyterhub.spawns.pending", self.pending as f64),
            (
                "jupyterhub.servers.running:default",
                (self.running.len() - named) as f64,
            ),
            ("jupyterhub.servers.running:named", named as f64),
        ]
    }
    fn outcome(&mut self) {
        self.pending = (self.pending - 1).max(0);
    }
}

fn split_log_name(s: &str) -> (String, String) {
    match s.split_once(':') {
        Some((u, n)) => (u.to_string(), n.to_string()),
        None => (s.to_string(), String::new()),
    }
}

fn count_log(text: &str) -> Truth {
    // JupyterHub's and jupyter-server's format (`[L date time.ms logger[ module:line]] msg`).
    let hub = Regex::new(
        r"^\[([DIWEC]) (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) \S+(?: (\w+):\d+)?\] (.*)$",
    )
    .unwrap();
    let culler = Regex::new(r"^\[([DIWEC]) (\d{6} \d{2}:\d{2}:\d{2}) \w+:\d+\] (.*)$").unwrap();
    // One record: (time µs or None, module, first line, whole text).
    let mut recs: Vec<(Option<i64>, String, String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(c) = hub.captures(line) {
            let t = chrono::NaiveDateTime::parse_from_str(&c[2], "%Y-%m-%d %H:%M:%S%.3f")
                .unwrap()
                .and_utc()
                .timestamp_micros();
            let module = c.get(3).map_or("", |m| m.as_str()).to_string();
            recs.push((Some(t), module, c[4].to_string(), line.into()));
        } else if let Some(c) = culler.captures(line) {
            let t = chrono::NaiveDateTime::parse_from_str(&c[2], "%y%m%d %H:%M:%S")
                .unwrap()
                .and_utc()
                .timestamp_micros();
            recs.push((Some(t), "culler".into(), c[3].to_string(), line.into()));
        } else if line.starts_with(' ') && !recs.is_empty() {
            let r = recs.last_mut().unwrap();
            r.3.push('\n');
            r.3.push_str(line);
        } else {
            recs.push((None, String::new(), line.to_string(), line.into()));
        }
    }
    // Times: the last stamp before; leading untimed records take the first stamp.
    let first = recs.iter().find_map(|r| r.0).unwrap();
    let mut last = first;
    let mut truth = Truth::default();
    let mut st = State::default();
    let mut cur: Option<i64> = None;
    let re = |p: &str| Regex::new(p).unwrap();
    let (request, took, stop_took, exited, removing) = (
        re(r"^\d{3} [A-Z]+ \S+.* \([^)]*@[^)]*\) [\d.]+ms$"),
        re(r"^User (\S+) took [\d.]+ seconds to start"),
        re(r"^User (\S+) server took [\d.]+ seconds to stop"),
        re(r"^User (\S+) server stopped, with exit code"),
        re(r"^Removing user (\S+) from proxy \(/user/[^/]+/([^/)]*)/?\)"),
    );
    let (pod_create, pod_conflict, pod_delete) = (
        re(r"^Attempting to create pod (\S+), with timeout"),
        re(r"^Found existing pod (\S+), attempting to kill"),
        re(r"^(?:Deleting pod|No pod) (?:\S+/)?(\S+?)(?: to delete.*)?$"),
    );
    let failed = re(
        r"^(?:Unhandled error starting .+'s server:|.+'s server never showed up at |.+'s server failed to start in \d+ seconds)",
    );
    for (ts, module, msg, whole) in &recs {
        let t = ts.unwrap_or(last);
        last = t;
        let iv = t.div_euclid(IV_US) * IV_US / 1_000_000;
        // Gauges of every interval before this one, from the state before this record.
        let from = cur.unwrap_or(iv);
        for s in (from..iv).step_by(10) {
            for (g, v) in st.gauges() {
                truth.gauges.insert((g.to_string(), s), v);
            }
        }
        cur = Some(iv);
        let mut count = |m: &str| *truth.counts.entry((m.to_string(), iv)).or_insert(0.0) += 1.0;
        if whole.contains("Traceback (most recent call last):") && ts.is_some() {
            count(n::TRACEBACKS);
        }
        if request.is_match(msg) && ts.is_some() {
            count(n::REQUESTS);
        } else if msg.starts_with("User logged in: ") {
            count(n::LOGINS);
        } else if msg.starts_with("Failed login for ") {
            count("jupyterhub.logins.failed");
        } else if msg.starts_with("Spawning ") && ts.is_some() && module != "service" {
            count(n::SPAWNS_STARTED);
            st.pending += 1;
        } else if let Some(c) = pod_create.captures(msg) {
            match st.pods.get_mut(&c[1]) {
                Some(conflict) => *conflict = false,
                None => {
                    st.pods.insert(c[1].to_string(), false);
                    st.pending += 1;
                    count(n::SPAWNS_STARTED);
                }
            }
        } else if let Some(c) = pod_conflict.captures(msg) {
            if let Some(k) = st.pods.get_mut(&c[1]) {
                *k = true;
            }
        } else if let Some(c) = pod_delete.captures(msg) {
            if st.pods.get(&c[1]) == Some(&false) {
                st.pods.remove(&c[1]);
            }
        } else if let Some(c) = took.captures(msg) {
            count(n::SPAWNS_SUCCEEDED);
            st.outcome();
            st.running.insert(split_log_name(&c[1]));
        } else if failed.is_match(msg) {
            count(n::SPAWNS_FAILED);
            st.outcome();
        } else if let Some(c) = removing.captures(msg) {
            st.removed.insert(c[1].to_string(), c[2].to_string());
        } else if let Some(c) = stop_took.captures(msg) {
            count(n::STOPS);
            let u = c[1].to_string();
            let s = st.removed.remove(&u).unwrap_or_default();
            st.running.remove(&(u, s));
        } else if let Some(c) = exited.captures(msg) {
            count(n::STOPS);
            let mine: Vec<_> = st.running.iter().filter(|r| r.0 == c[1]).cloned().collect();
            let key = match mine.as_slice() {
                [only] => only.clone(),
                _ => (c[1].to_string(), String::new()),
            };
            st.running.remove(&key);
        } else if msg.starts_with("Culling server ") {
            count(n::CULLS);
        }
    }
    let end = cur.unwrap();
    for (g, v) in st.gauges() {
        truth.gauges.insert((g.to_string(), end), v);
    }
    truth.first_s = first.div_euclid(IV_US) * IV_US / 1_000_000;
    truth.last_s = end;
    truth
}

/// The derived points in the counter's keys: counts summed over their tags (logins split by
/// outcome), gauges as the counter names them.
fn keyed(metric: &str, tags: &[String]) -> Option<String> {
    let has = |t: &str| tags.iter().any(|x| x == t);
    match metric {
        m if m == n::LOGINS && has("outcome:failed") => Some("jupyterhub.logins.failed".into()),
        m if COUNTS.contains(&m) => Some(m.to_string()),
        m if m == n::SPAWNS_PENDING => Some(m.to_string()),
        m if m == n::SERVERS_RUNNING => {
            let ty = if has("server_type:named") {
                "named"
            } else {
                "default"
            };
            Some(format!("{m}:{ty}"))
        }
        _ => None,
    }
}

/// Summed over the tag sets a key stands for (profiles of one server type, reasons, groups).
fn add(map: &mut BTreeMap<(String, i64), f64>, k: String, ts: i64, v: f64) {
    *map.entry((k, ts)).or_insert(0.0) += v;
}

fn is_gauge(k: &str) -> bool {
    k.starts_with(n::SPAWNS_PENDING) || k.starts_with(n::SERVERS_RUNNING)
}

/// Real JupyterHub 6.1.1 captures (LocalProcessSpawner, a managed idle culler, a failed login):
/// every count and gauge per interval equals the counter's.
#[test]
fn dd_real_hub_logs_counts_and_gauges_equal_an_independent_count_per_interval() {
    // hub-only: the hub alone at INFO; combined-debug: hub, managed idle culler (its
    // `Spawning` from services/service.py) and single-user servers in one stream, at DEBUG.
    for rel in ["hub-only", "combined-debug"] {
        real_log_matches(&root().join("fixtures/logs/real").join(rel).join("hub.log"));
    }
}

fn real_log_matches(log: &std::path::Path) {
    let truth = count_log(&std::fs::read_to_string(log).unwrap());
    let (ivs, _) = derive(log, DeriveConfig::default());
    let mut got = BTreeMap::new();
    for iv in &ivs {
        for p in &iv.points {
            let tags: Vec<String> = p.tags.iter().map(ToString::to_string).collect();
            let Some(k) = keyed(p.metric, &tags) else {
                continue;
            };
            let v = match &p.value {
                hubpulse::sinks::datadog::Value::Count(c)
                | hubpulse::sinks::datadog::Value::Gauge(c) => *c,
                hubpulse::sinks::datadog::Value::Distribution(_) => continue,
            };
            add(&mut got, k, iv.start_s, v);
        }
    }
    assert!(truth.counts.len() > 20, "{:?}", truth.counts.len());
    // Tracebacks left out: the capture's unprefixed asyncio reports are records of their own
    // for hubpulse's reader, which this line-based counter does not model.
    compare(&truth, &got, truth.first_s, truth.last_s, false);
}

/// Every count of the truth in `[from, to]` equals the derived one (and no derived count is
/// there that the truth lacks); every gauge in `[from, to]` is present and equal.
fn compare(truth: &Truth, got: &BTreeMap<(String, i64), f64>, from: i64, to: i64, traceback: bool) {
    let inside = |ts: i64| (from..=to).contains(&ts);
    let want_counts: BTreeMap<_, _> = truth
        .counts
        .iter()
        .filter(|((m, ts), _)| inside(*ts) && (traceback || m != n::TRACEBACKS))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let got_counts: BTreeMap<_, _> = got
        .iter()
        .filter(|((m, ts), v)| {
            inside(*ts) && !is_gauge(m) && **v != 0.0 && (traceback || m != n::TRACEBACKS)
        })
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let diff: Vec<_> = want_counts
        .keys()
        .chain(got_counts.keys())
        .filter(|k| want_counts.get(*k) != got_counts.get(*k))
        .map(|k| (k.clone(), want_counts.get(k), got_counts.get(k)))
        .collect();
    assert!(
        diff.is_empty(),
        "counts differ (key, truth, derived): {diff:?}"
    );
    let mut checked = 0;
    for ((g, ts), v) in truth.gauges.iter().filter(|((_, ts), _)| inside(*ts)) {
        assert_eq!(got.get(&(g.clone(), *ts)), Some(v), "{g} at {ts}");
        checked += 1;
    }
    assert!(checked > 0);
}

// ---------------------------------------------------------------------------------------------
// A Z2JH-style hub pod log, two hours of it, read as a backlog by the real binary.

/// Log lines with their time (ms since the start), written in time order.
struct Z2jh {
    start_ms: i64,
    lines: Vec<(i64, usize, String)>,
}

impl Z2jh {
    /// JupyterHub's default log format (`[L YYYY-MM-DD HH:MM:SS.mmm JupyterHub module:line]`).
    fn hub(&mut self, at: i64, level: char, module: &str, msg: &str) {
        let t = chrono::DateTime::from_timestamp_millis(self.start_ms + at).unwrap();
        let line = format!(
            "[{level} {} JupyterHub {module}] {msg}",
            t.format("%Y-%m-%d %H:%M:%S%.3f")
        );
        let seq = self.lines.len();
        self.lines.push((at, seq, line));
    }

    /// jupyterhub-idle-culler 1.x: tornado's default format (`[L YYMMDD HH:MM:SS module:line]`).
    fn culler(&mut self, at: i64, msg: &str) {
        let t = chrono::DateTime::from_timestamp_millis(self.start_ms + at).unwrap();
        let line = format!("[I {} __init__:262] {msg}", t.format("%y%m%d %H:%M:%S"));
        let seq = self.lines.len();
        self.lines.push((at, seq, line));
    }

    /// A request as JupyterHub's `log_request` writes it (`log.py`:
    /// `{status} {method} {uri}{location} ({user}@{ip}) {request_time:.2f}ms`).
    fn request(&mut self, at: i64, status: u16, what: &str, who: &str, ms: f64) {
        self.hub(
            at,
            'I',
            "log:191",
            &format!("{status} {what} ({who}) {ms:.2}ms"),
        );
    }

    fn text(mut self) -> String {
        self.lines.sort();
        // z2jh.py `_load_config` prints these before JupyterHub configures logging.
        let mut out = String::from(
            "Loading /usr/local/etc/jupyterhub/secret/values.yaml\n\
             No config at /usr/local/etc/jupyterhub/existing-secret/values.yaml\n",
        );
        for (_, _, l) in self.lines {
            out.push_str(&l);
            out.push('\n');
        }
        out
    }
}

/// Two hours of a Z2JH hub (JupyterHub 5.x, KubeSpawner 7, culler 1.x as a managed service)
/// ending `end_ago_s` seconds before `now_ms`: 27 sessions, every upstream line shape of
/// items 6–8, a failure with its traceback and an exited server.
fn z2jh_log(now_ms: i64, end_ago_s: i64) -> String {
    let span = 7_200_000 + 60_000;
    let mut l = Z2jh {
        start_ms: now_ms - end_ago_s * 1000 - span,
        lines: Vec::new(),
    };
    let culler_cmd = "python3 -m jupyterhub_idle_culler --url=http://localhost:8081/hub/api --timeout=3600 --cull-every=600 --concurrency=10";
    let argv = "['python3', '-m', 'jupyterhub_idle_culler', '--url=http://localhost:8081/hub/api', '--timeout=3600', '--cull-every=600', '--concurrency=10']";
    l.hub(0, 'I', "app:3352", "Running JupyterHub version 5.2.1");
    l.hub(
        200,
        'I',
        "app:3100",
        "Creating service jupyterhub-idle-culler without oauth.",
    );
    l.hub(
        900,
        'I',
        "service:424",
        &format!("Starting service 'jupyterhub-idle-culler': {argv}"),
    );
    l.hub(901, 'I', "service:137", &format!("Spawning {culler_cmd}"));
    l.hub(
        1_500,
        'I',
        "app:3937",
        "JupyterHub is now running, internal Hub API at http://hub:8081/hub/",
    );
    let users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"];
    for k in 0..27i64 {
        let t = 30_000 + k * 267_000;
        let u = users[k as usize % users.len()];
        let named = k % 5 == 4;
        let (ln, path, pod) = if named {
            (
                format!("{u}:gpu"),
                format!("/user/{u}/gpu/"),
                format!("jupyter-{u}--gpu"),
            )
        } else {
            (u.to_string(), format!("/user/{u}/"), format!("jupyter-{u}"))
        };
        let who = format!("{u}@10.128.0.69");
        if k % 6 == 1 {
            // A refused user: get_authenticated_user's reason, then login_user's line (5.x: %s).
            l.hub(t - 4_000, 'W', "auth:739", "User 'eve' not allowed.");
            l.hub(t - 3_999, 'W', "base:980", "Failed login for eve");
            l.request(
                t - 3_998,
                403,
                "POST /hub/login?next=",
                "@10.128.0.70",
                24.5,
            );
        }
        if k % 6 == 2 {
            l.hub(t - 2_000, 'W', "base:980", &format!("Failed login for {u}"));
            l.request(
                t - 1_999,
                403,
                "POST /hub/login?next=",
                "@10.128.0.69",
                31.0,
            );
        }
        l.hub(t, 'I', "base:971", &format!("User logged in: {u}"));
        l.request(t + 1, 302, "POST /hub/login?next= -> /hub/", &who, 45.12);
        let spawn = if named {
            format!("/hub/spawn/{u}/gpu")
        } else {
            format!("/hub/spawn/{u}")
        };
        l.request(
            t + 900,
            302,
            &format!("GET {spawn} -> /hub/spawn-pending/{u}"),
            &who,
            38.38,
        );
        l.hub(
            t + 1_000,
            'I',
            "spawner:3002",
            &format!("Attempting to create pod {pod}, with timeout 3"),
        );
        if k % 4 == 1 {
            // The request timed out: exponential_backoff tries again.
            l.hub(
                t + 4_010,
                'I',
                "spawner:3002",
                &format!("Attempting to create pod {pod}, with timeout 3"),
            );
        }
        if k % 6 == 3 {
            l.hub(
                t + 1_100,
                'I',
                "spawner:3021",
                &format!("Found existing pod {pod}, attempting to kill"),
            );
            l.hub(
                t + 1_101,
                'I',
                "spawner:3397",
                &format!("Deleting pod jhub/{pod}"),
            );
            l.hub(
                t + 3_500,
                'I',
                "spawner:3026",
                &format!("Killed pod {pod}, will try starting singleuser pod again"),
            );
            l.hub(
                t + 3_501,
                'I',
                "spawner:3002",
                &format!("Attempting to create pod {pod}, with timeout 3"),
            );
        }
        if k % 8 == 5 {
            l.hub(
                t + 17_000,
                'E',
                "user:1072",
                &format!(
                    "Unhandled error starting {u}'s server: pod jhub/{pod} did not start in 300 seconds!\n    Traceback (most recent call last):\n      File \"/usr/local/lib/python3.12/site-packages/jupyterhub/user.py\", line 1032, in spawn\n        url = await gen.with_timeout(timedelta(seconds=spawner.start_timeout), f)\n    TimeoutError: pod jhub/{pod} did not start in 300 seconds!"
                ),
            );
            l.hub(
                t + 17_100,
                'I',
                "spawner:3397",
                &format!("Deleting pod jhub/{pod}"),
            );
            continue;
        }
        let took = 12.0 + (k % 9) as f64;
        let up = t + (took * 1000.0) as i64 + 1_000;
        l.hub(
            up,
            'I',
            "base:1192",
            &format!("User {ln} took {took:.3} seconds to start"),
        );
        l.hub(
            up + 1,
            'I',
            "proxy:335",
            &format!("Adding user {ln} to proxy {path} => http://10.108.1.{k}:8888"),
        );
        l.request(
            up + 150,
            200,
            &format!("GET /hub/api/users/{u}/server/progress"),
            &who,
            took * 1000.0,
        );
        for j in 0..3 {
            l.request(
                up + 30_000 + j * 60_000,
                200,
                &format!("POST /hub/api/users/{u}/activity"),
                &format!("{u}@10.108.1.{k}"),
                8.25,
            );
        }
        let down = up + 200_000;
        if k % 7 == 6 {
            l.hub(
                down,
                'W',
                "base:1386",
                &format!("User {u} server stopped, with exit code: 137"),
            );
            l.hub(
                down + 1,
                'I',
                "proxy:360",
                &format!("Removing user {u} from proxy ({path})"),
            );
            l.hub(
                down + 200,
                'I',
                "spawner:3397",
                &format!("Deleting pod jhub/{pod}"),
            );
        } else {
            if k % 3 == 0 {
                let name = if named {
                    format!("{u}/gpu")
                } else {
                    u.to_string()
                };
                l.culler(
                    down - 1_000,
                    &format!("Culling server {name} (inactive for 01:00:05)"),
                );
            }
            l.hub(
                down,
                'I',
                "proxy:360",
                &format!("Removing user {u} from proxy ({path})"),
            );
            l.hub(
                down + 100,
                'I',
                "spawner:3397",
                &format!("Deleting pod jhub/{pod}"),
            );
            l.hub(
                down + 1_500,
                'I',
                "base:1445",
                &format!("User {u} server took 1.500 seconds to stop"),
            );
            let del = if named {
                format!("/hub/api/users/{u}/servers/gpu")
            } else {
                format!("/hub/api/users/{u}/server")
            };
            l.request(down + 1_501, 204, &format!("DELETE {del}"), &who, 1_502.0);
        }
        if k == 20 {
            // The culler died; the hub restarts it (service.py `_proc_stopped`).
            l.hub(
                t + 50_000,
                'E',
                "service:505",
                "Service jupyterhub-idle-culler exited with status 1",
            );
            l.hub(
                t + 50_001,
                'I',
                "service:424",
                &format!("Starting service 'jupyterhub-idle-culler': {argv}"),
            );
            l.hub(
                t + 50_002,
                'I',
                "service:137",
                &format!("Spawning {culler_cmd}"),
            );
        }
    }
    l.text()
}

fn prom_value(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The Z2JH backlog through `hubpulse run` to the local intake: every interval Datadog still
/// accepts (the last hour) equals the independent count, the older ones are dropped and counted
/// as expired, and spawn-failure events up to 18 h old are sent. Read from the hub pod's log file.
#[test]
fn dd_z2jh_backlog_with_untimed_lines_equals_an_independent_count_per_interval() {
    z2jh_backlog(false);
}

/// The same, piped as `kubectl logs -f deploy/hub | hubpulse run` does (`[stdin]`).
#[test]
fn dd_z2jh_backlog_piped_on_stdin_equals_an_independent_count_per_interval() {
    z2jh_backlog(true);
}

fn z2jh_backlog(via_stdin: bool) {
    let dir = tempfile::tempdir().unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    let text = z2jh_log(now_ms, 20);
    let log = dir.path().join("hub.log");
    std::fs::write(&log, &text).unwrap();
    let truth = count_log(&text);
    assert!(truth.last_s - truth.first_s > 7_000, "a two-hour backlog");

    let intake = Intake::start();
    let http = free_port();
    let cfg = dir.path().join("hubpulse.toml");
    let source = if via_stdin {
        "[stdin]\nenabled = true\n".to_string()
    } else {
        format!("[[files]]\ninclude = [{:?}]\n", log.to_str().unwrap())
    };
    let toml = format!(
        "[agent]\nhub = \"z2jh\"\n[lake]\npath = {lake:?}\n[http]\nlisten = \"127.0.0.1:{http}\"\n\
         {source}[datadog]\nurl = \"http://127.0.0.1:{port}\"\nevents = true\n",
        lake = dir.path().join("lake").to_str().unwrap(),
        port = intake.port,
    );
    std::fs::write(&cfg, toml).unwrap();
    let read_from = chrono::Utc::now().timestamp();
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("DD_API_KEY", "z2jh-test-key")
        .env_remove("DD_SITE")
        .stdin(if via_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("agent.stderr")).unwrap())
        .spawn()
        .unwrap();
    // `kubectl logs -f` writes the pod's whole log, then keeps the pipe open.
    let mut pipe = child.stdin.take();
    if let Some(p) = pipe.as_mut() {
        std::io::Write::write_all(p, text.as_bytes()).unwrap();
    }
    // Observed: the intake has the last record's interval.
    let last = truth.last_s;
    wait_for(
        "the last interval at the intake",
        Duration::from_secs(120),
        || {
            intake.recorded().iter().any(|r| {
                r["path"] == "/api/v2/series"
                    && r["body"]["series"].as_array().is_some_and(|ss| {
                        ss.iter().any(|s| {
                            s["metric"] == n::SPAWNS_PENDING
                                && s["points"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .any(|p| p["timestamp"] == last)
                        })
                    })
            })
        },
    );
    let metrics = http_get(http, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default();
    crate::support::sigterm(&child);
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(60), "agent did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(child.try_wait().unwrap().and_then(|s| s.code()), Some(0));
    drop(pipe); // held open until the agent stopped, as `kubectl logs -f` does
    let sent_until = chrono::Utc::now().timestamp();

    let rec = intake.recorded();
    let mut got: BTreeMap<(String, i64), f64> = BTreeMap::new();
    let mut seen = HashSet::new();
    let mut events: BTreeMap<i64, f64> = BTreeMap::new();
    let failed_title = Regex::new(r": (\d+) spawns? failed").unwrap();
    for r in &rec {
        assert_eq!(r["valid"], json!(true), "{}: {}", r["path"], r["errors"]);
        assert_eq!(r["answered"], json!(202));
        if r["path"] == "/api/v1/events" {
            let title = r["body"]["title"].as_str().unwrap();
            if let Some(c) = failed_title.captures(title) {
                *events
                    .entry(r["body"]["date_happened"].as_i64().unwrap())
                    .or_insert(0.0) += c[1].parse::<f64>().unwrap();
            }
            continue;
        }
        if r["path"] != "/api/v2/series" {
            continue;
        }
        for s in r["body"]["series"].as_array().unwrap() {
            let metric = s["metric"].as_str().unwrap();
            let tags: Vec<String> = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            let Some(k) = keyed(metric, &tags) else {
                continue;
            };
            for p in s["points"].as_array().unwrap() {
                let ts = p["timestamp"].as_i64().unwrap();
                assert!(
                    seen.insert((metric.to_string(), tags.clone(), ts)),
                    "{metric} {tags:?} at {ts} sent twice"
                );
                assert!(
                    ts >= read_from - 3600 - 60,
                    "{metric} at {ts}: older than Datadog accepts"
                );
                add(&mut got, k.clone(), ts, p["value"].as_f64().unwrap());
            }
        }
    }
    // Everything of the last hour (as of the end of sending) is there and equal.
    let from = (sent_until - 3600) / 10 * 10 + 10;
    compare(&truth, &got, from, last, true);
    let fresh: f64 = truth
        .counts
        .iter()
        .filter(|((m, ts), _)| m == n::SPAWNS_STARTED && *ts >= from)
        .map(|(_, v)| v)
        .sum();
    assert!(fresh >= 10.0, "the last hour has launches: {fresh}");
    eprintln!(
        "z2jh backlog: {} intervals of truth, compared from {from} to {last} ({} s), {} launches \
         in it, {} series points received, {} expired on /metrics, {} failure events",
        (truth.last_s - truth.first_s) / 10 + 1,
        last - from,
        fresh,
        seen.len(),
        prom_value(
            &metrics,
            "hubpulse_datadog_dropped_points_total{reason=\"expired\"}"
        ),
        events.len()
    );
    // The older hour: not sent, counted as expired.
    assert!(got.keys().all(|(_, ts)| *ts >= read_from - 3600 - 60));
    assert!(
        prom_value(
            &metrics,
            "hubpulse_datadog_dropped_points_total{reason=\"expired\"}"
        ) > 0.0,
        "{metrics}"
    );
    // Spawn failures as events, the two-hour-old ones too (Datadog keeps events 18 h).
    let want: BTreeMap<i64, f64> = truth
        .counts
        .iter()
        .filter(|((m, _), _)| m == n::SPAWNS_FAILED)
        .map(|((_, ts), v)| (*ts, *v))
        .collect();
    assert!(want.keys().any(|ts| *ts < read_from - 3600), "{want:?}");
    assert_eq!(events, want);
}
