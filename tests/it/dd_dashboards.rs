//! `dashboards/*.json`: valid `Dashboard` bodies by Datadog's own spec (checked by the local
//! intake), and every metric a widget queries is one the agent emits, queried as its type allows.

use std::collections::BTreeSet;

use hubpulse::sinks::datadog::{MetricType, TAG_KEYS, metric_def};
use regex::Regex;
use serde_json::Value;

use super::dd_common::Intake;
use crate::support::root;

fn dashboards() -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.display().to_string(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Every `query` string under `v`.
fn queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("query" | "q", Value::String(s)) => out.push(s.clone()),
                    _ => queries(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| queries(x, out)),
        _ => {}
    }
}

#[test]
fn dd_dashboards_validate_against_the_dashboard_schema() {
    let all = dashboards();
    assert!(all.len() >= 3, "{all:?}");
    let intake = Intake::start();
    let h = [
        ("DD-API-KEY", "k"),
        ("DD-APPLICATION-KEY", "app"),
        ("Content-Type", "application/json"),
    ];
    for (path, d) in &all {
        let (status, body) =
            intake.request("POST", "/api/v1/dashboard", &h, d.to_string().as_bytes());
        // The Dashboards API answers a creation with 200 and the dashboard.
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    }
    for r in intake.recorded() {
        assert_eq!(r["valid"], Value::Bool(true), "{}", r["errors"]);
        assert_eq!(r["unknown_fields"], serde_json::json!([]));
    }
    // The schema check can fail: a widget without its required `requests`.
    let mut broken = all[0].1.clone();
    broken["widgets"][0]["definition"]
        .as_object_mut()
        .unwrap()
        .remove("requests");
    let (status, _) = intake.request(
        "POST",
        "/api/v1/dashboard",
        &h,
        broken.to_string().as_bytes(),
    );
    assert_eq!(status, 400);
}

#[test]
fn dd_every_dashboard_metric_is_one_the_agent_emits() {
    let re = Regex::new(
        r"^(avg|sum|min|max|p50|p75|p90|p95|p99):([a-z0-9_.]+)\{([^}]*)\}(?: by \{([^}]*)\})?(\.rollup\([a-z]+(?:, \d+)?\))?(\.as_count\(\))?$",
    )
    .unwrap();
    let mut titles = BTreeSet::new();
    let mut used = BTreeSet::new();
    for (path, d) in dashboards() {
        assert!(
            titles.insert(d["title"].as_str().unwrap().to_string()),
            "{path}: title twice"
        );
        let mut qs = Vec::new();
        queries(&d, &mut qs);
        assert!(!qs.is_empty(), "{path}");
        for q in qs {
            let c = re
                .captures(&q)
                .unwrap_or_else(|| panic!("{path}: unexpected query {q}"));
            let (agg, metric) = (&c[1], &c[2]);
            let def =
                metric_def(metric).unwrap_or_else(|| panic!("{path}: {metric} is not emitted"));
            used.insert(metric.to_string());
            let percentile = agg.starts_with('p');
            assert_eq!(
                percentile,
                def.kind == MetricType::Distribution,
                "{path}: {q}"
            );
            assert_eq!(
                c.get(6).is_some(),
                def.kind == MetricType::Count,
                "{path}: as_count on counts only: {q}"
            );
            let filter_keys = c[3]
                .split(',')
                .filter_map(|t| t.trim().split_once(':'))
                .map(|(k, _)| k);
            let by_keys = c
                .get(4)
                .map_or("", |m| m.as_str())
                .split(',')
                .filter(|k| !k.is_empty());
            for k in filter_keys.chain(by_keys) {
                let k = k.trim();
                assert!(TAG_KEYS.contains(&k), "{path}: tag {k} in {q}");
                assert!(
                    k == "hub" || def.tags.contains(&k),
                    "{path}: {metric} has no tag {k}"
                );
            }
            assert!(
                c[3].contains("$hub"),
                "{path}: every query follows the hub variable: {q}"
            );
        }
    }
    for t in [
        "JupyterHub usage",
        "JupyterHub spawns and health",
        "JupyterHub culling and quotas",
    ] {
        assert!(titles.contains(t), "{t} missing: {titles:?}");
    }
    for m in [
        "jupyterhub.users.active",
        "jupyterhub.servers.running",
        "jupyterhub.spawn.duration",
        "jupyterhub.spawns.failed",
        "jupyterhub.requests",
        "jupyterhub.proxy.errors",
        "jupyterhub.tracebacks",
        "jupyterhub.culls",
        "jupyterhub.spawns.denied",
    ] {
        assert!(used.contains(m), "no widget shows {m}");
    }
}
