//! `hubpulse run` with the Datadog sink, end to end: a real fixture log followed by the real
//! binary, the local intake validating every body against Datadog's spec, values compared with
//! the fixture's expected records; the dry run; the sink off without a key; `dashboards push`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hubpulse::sinks::datadog::classify::route_group;
use regex::Regex;
use serde_json::{Value, json};

use super::dd_common::Intake;
use crate::support::{bin, root, run};
use crate::support::{free_port, http_get, wait_for};

const KEY: &str = "dd-e2e-secret-key-9f8e7d6c5b4a";
const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "frank"];
const DIR: &str = "fixtures/logs/real/hub-only";

/// The fixture's hub log with every prefix timestamp moved so the first record is `ago` old.
fn shifted_log(dir: &Path, ago: i64) -> PathBuf {
    let text = std::fs::read_to_string(root().join(DIR).join("hub.log")).unwrap();
    let re = Regex::new(r"(?m)^\[(\w) (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.").unwrap();
    let fmt = "%Y-%m-%d %H:%M:%S";
    let first = re.captures(&text).unwrap()[2].to_string();
    let first = chrono::NaiveDateTime::parse_from_str(&first, fmt).unwrap();
    let target = chrono::Utc::now().naive_utc() - chrono::Duration::seconds(ago);
    let shift = target - first;
    let out = re.replace_all(&text, |c: &regex::Captures<'_>| {
        let t = chrono::NaiveDateTime::parse_from_str(&c[2], fmt).unwrap() + shift;
        format!("[{} {}.", &c[1], t.format(fmt))
    });
    let p = dir.join("hub.log");
    std::fs::write(&p, out.as_bytes()).unwrap();
    p
}

fn expected() -> Vec<Value> {
    std::fs::read_to_string(root().join(DIR).join("hub.expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Expected `jupyterhub.requests` per sorted (route_group, status_class) tags.
fn expected_requests() -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for e in expected().iter().filter(|e| e["kind"] == "request") {
        let g = route_group(e["route"].as_str().unwrap());
        let c = e["status"].as_u64().unwrap() / 100;
        *m.entry(format!("route_group:{g},status_class:{c}xx"))
            .or_insert(0.0) += 1.0;
    }
    m
}

fn start_agent(
    dir: &Path,
    log: &Path,
    http: u16,
    extra: &[&str],
    key: Option<&str>,
) -> (Child, PathBuf) {
    let stderr = dir.join("agent.stderr");
    let mut cmd = bin();
    cmd.args(["run", "--lake"])
        .arg(dir.join("lake"))
        .arg("--follow")
        .arg(log)
        .args(["--http", &format!("127.0.0.1:{http}")])
        .args(extra)
        .env_remove("DD_API_KEY")
        .env_remove("DD_SITE")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    if let Some(k) = key {
        cmd.env("DD_API_KEY", k);
    }
    (cmd.spawn().unwrap(), stderr)
}

fn metric_sum(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn scrape(port: u16) -> String {
    http_get(port, "/metrics")
        .map(|(_, b)| b)
        .unwrap_or_default()
}

/// SIGTERM, then wait for the exit (observed), and return the status code.
fn stop(mut child: Child) -> i32 {
    crate::support::sigterm(&child);
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code().unwrap_or(-1);
        }
        assert!(t.elapsed() < Duration::from_secs(60), "agent did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sum of every point of `metric` in series bodies, per its tags (without hub and instance).
fn series_sums(bodies: &[&Value], metric: &str) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for b in bodies {
        for s in b["series"].as_array().unwrap() {
            if s["metric"] != metric {
                continue;
            }
            let tags: Vec<&str> = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .filter(|t| !t.starts_with("hub:") && !t.starts_with("hubpulse_instance:"))
                .collect();
            let v: f64 = s["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["value"].as_f64().unwrap())
                .sum();
            *m.entry(tags.join(",")).or_insert(0.0) += v;
        }
    }
    m
}

fn no_personal_data(what: &str, text: &str) {
    assert!(!text.contains(KEY), "the API key is in {what}");
    for u in USERS {
        assert!(!text.contains(u), "user name {u} is in {what}");
    }
}

#[test]
fn dd_agent_sends_spec_valid_metrics_equal_to_the_fixture_logs_counts() {
    let dir = tempfile::tempdir().unwrap();
    let log = shifted_log(dir.path(), 300);
    let intake = Intake::start();
    let http = free_port();
    let url = format!("http://127.0.0.1:{}", intake.port);
    let (child, stderr) = start_agent(dir.path(), &log, http, &["--datadog-url", &url], Some(KEY));
    let want = expected_requests();
    let want_total: f64 = want.values().sum();
    // Observed: every request interval closed and exported on /metrics.
    wait_for(
        "derived requests on /metrics",
        Duration::from_secs(90),
        || metric_sum(&scrape(http), "jupyterhub_requests_total") == want_total,
    );
    let metrics = scrape(http);
    assert!(
        metrics.contains("hubpulse_datadog_points_sent_total"),
        "{metrics}"
    );
    no_personal_data("/metrics", &metrics);
    assert_eq!(stop(child), 0);

    let rec = intake.recorded();
    assert!(!rec.is_empty());
    for r in &rec {
        assert_eq!(r["valid"], json!(true), "{}: {}", r["path"], r["errors"]);
        assert_eq!(r["unknown_fields"], json!([]), "{}", r["path"]);
        assert_eq!(r["answered"], json!(202));
        assert_eq!(r["api_key"], json!(KEY), "the key travels in its header");
        no_personal_data("a payload", &r["body"].to_string());
    }
    let series: Vec<&Value> = rec
        .iter()
        .filter(|r| r["path"] == "/api/v2/series")
        .map(|r| &r["body"])
        .collect();
    assert_eq!(series_sums(&series, "jupyterhub.requests"), want);
    let logins_ok = expected().iter().filter(|e| e["kind"] == "login").count() as f64;
    assert_eq!(
        series_sums(&series, "jupyterhub.logins").get("outcome:ok"),
        Some(&logins_ok)
    );
    for s in series.iter().flat_map(|b| b["series"].as_array().unwrap()) {
        let tags = s["tags"].to_string();
        assert!(tags.contains("hubpulse_instance:"), "{tags}");
        assert!(tags.contains("\"hub:jupyterhub\""), "{tags}");
    }
    // Spawn durations: every successful spawn's duration, as a distribution value.
    let mut want_spawn: Vec<f64> = expected()
        .iter()
        .filter(|e| e["kind"] == "spawn_succeeded")
        .filter_map(|e| e["duration_ms"].as_f64())
        .map(|ms| ms / 1000.0)
        .collect();
    let mut got_spawn: Vec<f64> = rec
        .iter()
        .filter(|r| r["path"] == "/api/v1/distribution_points")
        .flat_map(|r| r["body"]["series"].as_array().unwrap().clone())
        .filter(|s| s["metric"] == "jupyterhub.spawn.duration")
        .flat_map(|s| s["points"].as_array().unwrap().clone())
        .flat_map(|p| p[1].as_array().unwrap().clone())
        .map(|v| v.as_f64().unwrap())
        .collect();
    want_spawn.sort_by(f64::total_cmp);
    got_spawn.sort_by(f64::total_cmp);
    assert!(!want_spawn.is_empty());
    assert_eq!(got_spawn.len(), want_spawn.len());
    for (g, w) in got_spawn.iter().zip(&want_spawn) {
        assert!((g - w).abs() < 1e-9, "{g} vs {w}");
    }
    let log_text = std::fs::read_to_string(stderr).unwrap();
    assert!(!log_text.contains(KEY), "the key is in the agent's log");
    // Delivered or dropped, nothing left behind in the spool.
    let spool = dir
        .path()
        .join("lake/_hubpulse/hubs/jupyterhub/datadog-spool");
    let left: Vec<_> = std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "lock")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn dd_dry_run_writes_the_exact_payloads_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The fixture as it is: hours old, so only a dry run shows its points.
    let log = root().join(DIR).join("hub.log");
    let intake = Intake::start();
    let http = free_port();
    let out = dir.path().join("payloads.jsonl");
    let url = format!("http://127.0.0.1:{}", intake.port);
    let args = [
        "--datadog-url",
        &url,
        "--datadog-dry-run",
        out.to_str().unwrap(),
    ];
    let (child, _) = start_agent(dir.path(), &log, http, &args, Some(KEY));
    let want = expected_requests();
    let want_total: f64 = want.values().sum();
    wait_for(
        "derived requests on /metrics",
        Duration::from_secs(90),
        || metric_sum(&scrape(http), "jupyterhub_requests_total") == want_total,
    );
    assert_eq!(stop(child), 0);
    assert!(intake.recorded().is_empty(), "a dry run sends nothing");
    let text = std::fs::read_to_string(&out).unwrap();
    no_personal_data("the dry-run file", &text);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    // Each line ends with the exact body: posted as it is, the intake accepts it by the spec.
    for (l, line) in lines.iter().zip(text.lines()) {
        let path = l["path"].as_str().unwrap();
        let at = line.find(",\"body\":").unwrap() + 8;
        let body = &line[at..line.len() - 1];
        let (status, _) = intake.request(
            "POST",
            path,
            &[
                ("DD-API-KEY", "k"),
                ("Content-Type", l["content_type"].as_str().unwrap()),
            ],
            body.as_bytes(),
        );
        assert_eq!(status, 202, "{path}");
        assert_eq!(l["decoded_bytes"].as_u64().unwrap() as usize, body.len());
    }
    let bodies: Vec<&Value> = lines
        .iter()
        .filter(|l| l["path"] == "/api/v2/series")
        .map(|l| &l["body"])
        .collect();
    assert_eq!(series_sums(&bodies, "jupyterhub.requests"), want);
    // Nothing was spooled for a later real run to send.
    assert!(
        !dir.path()
            .join("lake/_hubpulse/hubs/jupyterhub/datadog-spool")
            .exists()
    );
}

#[test]
fn dd_without_a_key_the_sink_is_off_says_so_once_and_metrics_stay_on_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let log = root().join(DIR).join("hub.log");
    let http = free_port();
    let (child, stderr) = start_agent(dir.path(), &log, http, &[], None);
    let want_total: f64 = expected_requests().values().sum();
    wait_for(
        "derived requests on /metrics",
        Duration::from_secs(90),
        || metric_sum(&scrape(http), "jupyterhub_requests_total") == want_total,
    );
    let m = scrape(http);
    for name in [
        "jupyterhub_spawn_duration_seconds_bucket",
        "jupyterhub_servers_running",
        "jupyterhub_users_active",
    ] {
        assert!(m.contains(name), "{name} missing");
    }
    assert_eq!(stop(child), 0);
    let log_text = std::fs::read_to_string(stderr).unwrap();
    assert_eq!(
        log_text.matches("DD_API_KEY is not set").count(),
        1,
        "{log_text}"
    );
}

#[test]
fn dd_a_bad_datadog_section_is_one_line_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        "[lake]\npath = \"/tmp/x\"\n\n[stdin]\nenabled = true\n\n[datadog]\nsite = \"datadog.com\"\n",
    )
    .unwrap();
    let out = run(bin().arg("check-config").arg(&cfg));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("agent.toml:8:1: datadog.site: unknown site \"datadog.com\""),
        "{err}"
    );
}

#[test]
fn dd_dashboards_push_creates_then_updates_by_title() {
    let intake = Intake::start();
    let url = format!("http://127.0.0.1:{}", intake.port);
    let push = |extra: &[&str], app_key: bool| {
        let mut c = bin();
        c.args(["dashboards", "push", "--url", &url])
            .args(extra)
            .env("DD_API_KEY", KEY);
        if app_key {
            c.env("DD_APP_KEY", "app-key");
        } else {
            c.env_remove("DD_APP_KEY");
        }
        run(&mut c)
    };
    let out = push(&[], false);
    assert_eq!(out.status.code(), Some(2), "no application key: bad usage");
    let out = push(&["--dry-run"], true);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("would create").count(), 3, "{text}");
    let out = push(&[], true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("created").count(), 3, "{text}");
    let out = push(&[], true);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.matches("updated").count(), 3, "{text}");
    let rec = intake.recorded();
    let methods: Vec<&str> = rec.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(
        methods,
        [
            "GET", "GET", "POST", "POST", "POST", "GET", "PUT", "PUT", "PUT"
        ]
    );
    for r in rec.iter().filter(|r| r["method"] != "GET") {
        assert_eq!(r["valid"], json!(true), "{}", r["errors"]);
        assert_eq!(r["answered"], json!(200));
    }
    // Idempotent by title: still three dashboards.
    let (_, body) = intake.request(
        "GET",
        "/api/v1/dashboard",
        &[("DD-API-KEY", "k"), ("DD-APPLICATION-KEY", "a")],
        b"",
    );
    let list: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(list["dashboards"].as_array().unwrap().len(), 3);
}

#[test]
fn dd_payloads_undelivered_at_shutdown_are_spooled_and_sent_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let log = shifted_log(dir.path(), 300);
    let intake = Intake::start();
    let down: Vec<Value> = (0..10_000).map(|_| json!({"status": 503})).collect();
    intake.script(Value::Array(down));
    let url = format!("http://127.0.0.1:{}", intake.port);
    let want = expected_requests();
    let want_total: f64 = want.values().sum();
    let http = free_port();
    let (child, stderr) = start_agent(dir.path(), &log, http, &["--datadog-url", &url], Some(KEY));
    wait_for(
        "derived requests and a retry",
        Duration::from_secs(90),
        || {
            let m = scrape(http);
            metric_sum(&m, "jupyterhub_requests_total") == want_total
                && metric_sum(&m, "hubpulse_datadog_retries_total") >= 1.0
        },
    );
    let code = stop(child);
    assert_eq!(code, 0, "{}", std::fs::read_to_string(&stderr).unwrap());
    assert!(
        intake
            .recorded()
            .iter()
            .all(|r| r["answered"] == json!(503))
    );
    let spool = dir
        .path()
        .join("lake/_hubpulse/hubs/jupyterhub/datadog-spool");
    let spooled = std::fs::read_dir(&spool)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "dd")
        })
        .count();
    assert!(spooled > 0, "undelivered payloads are on disk");

    // The intake is back; the next run (no new records) sends what the first one spooled.
    intake.reset();
    let http = free_port();
    let (child, stderr) = start_agent(dir.path(), &log, http, &["--datadog-url", &url], Some(KEY));
    // Also observed: the agent serves HTTP, so its signal handlers are installed (the spool is
    // sent from the first milliseconds, before the agent could take a SIGTERM gracefully).
    wait_for(
        "spooled payloads delivered",
        Duration::from_secs(90),
        || {
            if http_get(http, "/healthz").is_none() {
                return false;
            }
            let series: Vec<Value> = intake
                .recorded()
                .into_iter()
                .filter(|r| r["path"] == "/api/v2/series" && r["answered"] == json!(202))
                .map(|r| r["body"].clone())
                .collect();
            series_sums(&series.iter().collect::<Vec<_>>(), "jupyterhub.requests") == want
        },
    );
    let code = stop(child);
    assert_eq!(code, 0, "{}", std::fs::read_to_string(&stderr).unwrap());
    for r in intake.recorded() {
        assert_eq!(r["valid"], json!(true), "{}", r["errors"]);
    }
    let left = std::fs::read_dir(&spool)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "dd")
        })
        .count();
    assert_eq!(left, 0);
}

#[test]
fn dd_records_forwarded_as_logs_are_valid_http_logs_one_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = shifted_log(dir.path(), 300);
    let intake = Intake::start();
    let http = free_port();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[lake]\npath = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n\n[[files]]\ninclude = [\"{}\"]\n\n\
             [datadog]\nurl = \"http://127.0.0.1:{}\"\nlogs = true\nevents = true\ninstance = \"logs-test\"\n",
            dir.path().join("lake").display(),
            log.display(),
            intake.port
        ),
    )
    .unwrap();
    let child = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .env("DD_API_KEY", KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let want_total: f64 = expected_requests().values().sum();
    wait_for(
        "derived requests on /metrics",
        Duration::from_secs(90),
        || metric_sum(&scrape(http), "jupyterhub_requests_total") == want_total,
    );
    assert_eq!(stop(child), 0);
    let rec = intake.recorded();
    let logs: Vec<&Value> = rec.iter().filter(|r| r["path"] == "/api/v2/logs").collect();
    assert!(!logs.is_empty());
    let mut items = Vec::new();
    for r in &logs {
        assert_eq!(r["valid"], json!(true), "{}", r["errors"]);
        assert_eq!(r["content_encoding"], json!("gzip"));
        assert_eq!(r["answered"], json!(202));
        items.extend(r["body"].as_array().unwrap().iter().cloned());
    }
    let exp = expected();
    assert_eq!(items.len(), exp.len(), "one log per record");
    let kinds = |v: &[Value]| {
        let mut k: Vec<String> = v.iter().map(|x| x["kind"].to_string()).collect();
        k.sort();
        k
    };
    assert_eq!(kinds(&items), kinds(&exp));
    for it in &items {
        assert_eq!(it["service"], json!("jupyterhub"));
        let tags = it["ddtags"].as_str().unwrap();
        assert!(
            tags.contains("hubpulse_instance:logs-test") && tags.contains("kind:"),
            "{tags}"
        );
        assert!(!it.to_string().contains(KEY));
    }
    // Events: one per interval and reason with failed spawns (the fixture has a spawn failure
    // and two timeouts) or culls, spec-valid, as many as the non-zero points of those series.
    let events: Vec<&Value> = rec
        .iter()
        .filter(|r| r["path"] == "/api/v1/events")
        .collect();
    for r in &events {
        assert_eq!(r["valid"], json!(true), "{}", r["errors"]);
        assert_eq!(r["unknown_fields"], json!([]));
        assert!(!r["body"].to_string().contains("alice"));
    }
    let nonzero = rec
        .iter()
        .filter(|r| r["path"] == "/api/v2/series")
        .flat_map(|r| r["body"]["series"].as_array().unwrap().clone())
        .filter(|s| s["metric"] == "jupyterhub.spawns.failed" || s["metric"] == "jupyterhub.culls")
        .flat_map(|s| s["points"].as_array().unwrap().clone())
        .filter(|p| p["value"].as_f64().unwrap() > 0.0)
        .count();
    assert!(nonzero > 0);
    assert_eq!(events.len(), nonzero);
}
