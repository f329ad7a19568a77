//! The placeholder runner against a scripted Kubernetes API server (the technique of
//! `kube_source.rs`): an axum server on 127.0.0.1 serves the `user-placeholder` StatefulSet's
//! scale subresource and a pod list from state the test edits, and records every request with
//! its method, content type and body. The tests pin the request sequence and shape: GET scale,
//! GET pods, then PATCH only for a change outside dry-run; and the rows in `decisions`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, TimeZone, Utc};
use hubpulse::control::capacity::forecast::{Forecast, SLOTS, Series};
use hubpulse::control::capacity::metrics::CapacityStats;
use hubpulse::control::capacity::placeholder::{Action, PlaceholderPolicy, Reason};
use hubpulse::control::capacity::runner::{CapacityError, Placeholders, Target};
use hubpulse::control::decisions::DecisionSink;
use hubpulse::control::decisions::Outcome;
use serde_json::{Value, json};

use crate::cull_common::decisions;
use crate::kube_fixtures;
use crate::support::api::{RequestLog, ScriptedApi, kube_status};

const SCALE: &str = "/apis/apps/v1/namespaces/jhub/statefulsets/user-placeholder/scale";
const PODS: &str = "/api/v1/namespaces/jhub/pods?&labelSelector=component%3Dsingleuser-server";

#[derive(Clone, Default)]
struct Api {
    replicas: Arc<Mutex<i32>>,
    /// Other placeholder sets served (a set per profile), by name.
    others: Arc<Mutex<BTreeMap<String, i32>>>,
    pods: Arc<Mutex<Vec<Value>>>,
    forbid_patch: Arc<Mutex<bool>>,
    /// The requests: `METHOD path?query`, and for a PATCH ` content-type body`.
    log: RequestLog,
}

impl Api {
    async fn start(replicas: i32) -> (Api, kube::Client) {
        let api = Api::default();
        *api.replicas.lock().unwrap() = replicas;
        let app = Router::new()
            .route(
                "/apis/apps/v1/namespaces/{ns}/statefulsets/{name}/scale",
                get(scale).patch(scale),
            )
            .route("/api/v1/namespaces/{ns}/pods", get(pods))
            .fallback(unexpected)
            .with_state(api.clone());
        let client = ScriptedApi::start(api.log.clone(), app).await.kube_client();
        (api, client)
    }

    /// Waits (on requests being answered, 10 s at most) until `n` answered requests start
    /// with `prefix` (a PATCH is answered once applied: the test then sees its effect).
    async fn wait_for(&self, prefix: &str, n: usize) {
        self.log.wait(prefix, n, |r| r.starts_with(prefix)).await;
    }

    fn take(&self) -> Vec<String> {
        self.log.take()
    }
}

/// The `user-placeholder` StatefulSet's scale subresource as the API server answers it
/// (`fixtures/kube/user-placeholder-scale.json`), for the set `name` at `replicas`.
fn scale_json(name: &str, replicas: i32) -> Value {
    let mut s = kube_fixtures::json("user-placeholder-scale.json");
    s["metadata"]["name"] = json!(name);
    s["spec"]["replicas"] = json!(replicas);
    s["status"]["replicas"] = json!(replicas);
    s
}

async fn scale(
    State(api): State<Api>,
    Path((_ns, name)): Path<(String, String)>,
    method: Method,
    body: Bytes,
) -> Response {
    let other = api.others.lock().unwrap().contains_key(&name);
    if other {
        if method == Method::PATCH {
            let v: Value = serde_json::from_slice(&body).unwrap();
            let n = i32::try_from(v["spec"]["replicas"].as_i64().unwrap()).unwrap();
            api.others.lock().unwrap().insert(name.clone(), n);
        }
        let n = api.others.lock().unwrap()[&name];
        return axum::Json(scale_json(&name, n)).into_response();
    }
    if name != "user-placeholder" {
        return kube_status(404, "NotFound", "scripted not found");
    }
    if method == Method::PATCH {
        if *api.forbid_patch.lock().unwrap() {
            return kube_status(403, "Forbidden", "scripted forbidden");
        }
        let v: Value = serde_json::from_slice(&body).unwrap();
        // applied before the answer: a test waiting for the PATCH then sees its effect
        *api.replicas.lock().unwrap() =
            i32::try_from(v["spec"]["replicas"].as_i64().unwrap()).unwrap();
    }
    let n = *api.replicas.lock().unwrap();
    axum::Json(scale_json(&name, n)).into_response()
}

async fn pods(
    State(api): State<Api>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    // equality selectors only (`a=b,c=d`), as the runner sends them
    let wanted: Vec<(String, String)> = q
        .get("labelSelector")
        .map(|s| {
            s.split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    let items: Vec<Value> = api
        .pods
        .lock()
        .unwrap()
        .iter()
        .filter(|p| {
            wanted
                .iter()
                .all(|(k, v)| p["metadata"]["labels"][k].as_str() == Some(v))
        })
        .cloned()
        .collect();
    axum::Json(json!({
        "kind": "PodList", "apiVersion": "v1",
        "metadata": { "resourceVersion": "100" },
        "items": items,
    }))
    .into_response()
}

async fn unexpected() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// The single-user pod of `fixtures/kube/pods-list.json` (KubeSpawner's labels and spec) named
/// `name`, in `phase`, terminating when `deleting`.
fn user_pod(name: &str, phase: &str, deleting: bool) -> Value {
    let mut p = kube_fixtures::json("pods-list.json")["items"][0].clone();
    p["kind"] = json!("Pod");
    p["apiVersion"] = json!("v1");
    p["metadata"]["name"] = json!(name);
    if deleting {
        p["metadata"]["deletionTimestamp"] = json!("2026-11-30T08:00:00Z");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(1);
    }
    p["status"] = json!({ "phase": phase, "qosClass": "Burstable" });
    p
}

/// Monday 2026-11-30 `h`:`m` UTC.
fn at(h: i64, m: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_795_996_800 + h * 3600 + m * 60, 0)
        .single()
        .unwrap()
}

/// 6 servers expected Monday 09:00, 1 otherwise.
fn forecast() -> Forecast {
    let mut slots = [1.0; SLOTS];
    slots[9] = 6.0;
    Forecast {
        window_start: 0,
        window_end: 0,
        total: Series {
            slots,
            trend: 1.0,
            samples: SLOTS,
        },
        profiles: BTreeMap::new(),
    }
}

fn target() -> Target {
    Target {
        namespace: "jhub".into(),
        name: "user-placeholder".into(),
        user_pods: "component=singleuser-server".into(),
    }
}

fn policy(dry_run: bool) -> PlaceholderPolicy {
    PlaceholderPolicy {
        headroom: 0.0,
        dry_run,
        ..PlaceholderPolicy::default()
    }
}

/// `n` cycles of reads only: the scale, then the user pods.
fn reads(n: usize) -> Vec<String> {
    (0..n)
        .flat_map(|_| [format!("GET {SCALE}"), format!("GET {PODS}")])
        .collect()
}

fn patch(n: i32) -> String {
    format!("PATCH {SCALE}? application/merge-patch+json {{\"spec\":{{\"replicas\":{n}}}}}")
}

fn rows(lake: &std::path::Path) -> Vec<Vec<String>> {
    decisions(
        lake,
        "component, action, reason, server_name, dry_run, outcome",
        "component = 'capacity'",
    )
}

#[tokio::test]
async fn capacity_scales_up_ahead_of_the_peak_with_one_merge_patch_and_records_it() {
    let (api, client) = Api::start(0).await;
    *api.pods.lock().unwrap() = vec![
        user_pod("jupyter-alice", "Running", false),
        user_pod("jupyter-bob", "Running", true),
        user_pod("jupyter-carol", "Succeeded", false),
    ];
    let lake = tempfile::tempdir().unwrap();
    let sink = DecisionSink::new(&hubpulse::lake::LakeLocation::local(lake.path()), "hub");
    let mut p = Placeholders::new(client, target(), policy(false), Some(sink));
    // 08:15, one hour ahead reaches 09:00: 6 expected, alice running (bob is terminating)
    let c = p.reconcile(at(8, 15), &forecast()).await.unwrap();
    assert_eq!(
        (c.decision.action, c.decision.target, c.outcome),
        (Action::ScaleUp, 5, Some(Outcome::Scaled))
    );
    assert_eq!(c.decision.observed.running, 1);
    assert_eq!(
        api.take(),
        vec![format!("GET {SCALE}"), format!("GET {PODS}"), patch(5)]
    );
    assert_eq!(*api.replicas.lock().unwrap(), 5);

    // unchanged: reads only, and the steady hold is recorded once
    let c = p.reconcile(at(8, 20), &forecast()).await.unwrap();
    assert_eq!((c.decision.action, c.recorded), (Action::Hold, true));
    let c = p.reconcile(at(8, 25), &forecast()).await.unwrap();
    assert_eq!((c.decision.action, c.recorded), (Action::Hold, false));
    assert_eq!(api.take(), reads(2));
    assert_eq!(
        rows(lake.path()),
        vec![
            vec![
                "capacity",
                "scale_up",
                "forecast",
                "user-placeholder",
                "false",
                "scaled"
            ],
            vec![
                "capacity",
                "hold",
                "forecast",
                "user-placeholder",
                "false",
                ""
            ],
        ]
    );
}

/// The scale subresource of Z2JH's `user-placeholder` StatefulSet, as recorded in
/// `fixtures/kube/` (the Scale agrees with the StatefulSet it belongs to): its replicas are the
/// current value read, and the scale-down off-peak is one merge patch of `spec.replicas` only.
#[tokio::test]
async fn capacity_reads_the_fixture_scale_of_the_z2jh_placeholder_set_and_patches_replicas() {
    let sts = kube_fixtures::json("user-placeholder-statefulset.json");
    let scale = kube_fixtures::json("user-placeholder-scale.json");
    assert_eq!(sts["kind"], "StatefulSet");
    assert_eq!(sts["metadata"]["labels"]["component"], "user-placeholder");
    assert_eq!(scale["metadata"]["name"], sts["metadata"]["name"]);
    assert_eq!(scale["metadata"]["uid"], sts["metadata"]["uid"]);
    assert_eq!(scale["spec"]["replicas"], sts["spec"]["replicas"]);
    let selector = sts["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(scale["status"]["selector"], json!(selector));
    let recorded = i32::try_from(scale["spec"]["replicas"].as_i64().unwrap()).unwrap();
    assert!(recorded > 0);

    let (api, client) = Api::start(recorded).await;
    *api.pods.lock().unwrap() = vec![user_pod("jupyter-alice-2esmith", "Running", false)];
    let mut p = Placeholders::new(client, target(), policy(false), None);
    // 03:00: 1 expected, 1 running: the recorded placeholders are released
    let c = p.reconcile(at(3, 0), &forecast()).await.unwrap();
    assert_eq!(c.decision.observed.current, recorded);
    assert_eq!(c.decision.observed.running, 1);
    assert_eq!(
        (c.decision.action, c.decision.target, c.outcome),
        (Action::ScaleDown, 0, Some(Outcome::Scaled))
    );
    assert_eq!(
        api.take(),
        vec![format!("GET {SCALE}"), format!("GET {PODS}"), patch(0)]
    );
}

#[tokio::test]
async fn capacity_reapplies_its_decision_after_a_helm_upgrade_reset_the_replicas() {
    let (api, client) = Api::start(0).await;
    let mut p = Placeholders::new(client, target(), policy(false), None);
    p.reconcile(at(8, 15), &forecast()).await.unwrap();
    assert_eq!(*api.replicas.lock().unwrap(), 6);
    // `helm upgrade` puts scheduling.userPlaceholder.replicas (0) back
    *api.replicas.lock().unwrap() = 0;
    api.take();
    let c = p.reconcile(at(8, 20), &forecast()).await.unwrap();
    assert_eq!((c.decision.action, c.decision.target), (Action::ScaleUp, 6));
    assert_eq!(
        api.take(),
        vec![format!("GET {SCALE}"), format!("GET {PODS}"), patch(6)]
    );
    // after the peak: a scale-down waits for the cooldown (30 min after 08:20), then happens
    let c = p.reconcile(at(10, 10), &forecast()).await.unwrap();
    assert_eq!(
        (c.decision.action, c.decision.reason),
        (Action::ScaleDown, Reason::Forecast)
    );
    assert_eq!(*api.replicas.lock().unwrap(), 1);
}

#[tokio::test]
async fn capacity_cooldown_holds_a_scale_down_without_patching() {
    let (api, client) = Api::start(0).await;
    let mut p = Placeholders::new(client, target(), policy(false), None);
    // 09:40, in the peak hour: up to 6
    let c = p.reconcile(at(9, 40), &forecast()).await.unwrap();
    assert_eq!((c.decision.action, c.decision.target), (Action::ScaleUp, 6));
    api.take();
    // 10:00: the forecast wants 1, but the last change was 20 minutes ago
    let c = p.reconcile(at(10, 0), &forecast()).await.unwrap();
    assert_eq!(
        (c.decision.action, c.decision.reason, c.decision.target),
        (Action::Hold, Reason::Cooldown, 6)
    );
    assert_eq!(
        api.take(),
        vec![format!("GET {SCALE}"), format!("GET {PODS}")]
    );
    // 10:10: the cooldown is over
    let c = p.reconcile(at(10, 10), &forecast()).await.unwrap();
    assert_eq!(
        (c.decision.action, c.decision.target),
        (Action::ScaleDown, 1)
    );
    assert_eq!(
        api.take(),
        vec![format!("GET {SCALE}"), format!("GET {PODS}"), patch(1)]
    );
}

#[tokio::test]
async fn capacity_dry_run_reads_decides_and_records_but_never_patches() {
    let (api, client) = Api::start(0).await;
    let lake = tempfile::tempdir().unwrap();
    let sink = DecisionSink::new(&hubpulse::lake::LakeLocation::local(lake.path()), "hub");
    let mut p = Placeholders::new(client, target(), policy(true), Some(sink));
    for (m, recorded) in [(15, true), (20, false)] {
        let c = p.reconcile(at(8, m), &forecast()).await.unwrap();
        assert_eq!(
            (c.decision.action, c.decision.target, c.outcome, c.recorded),
            (Action::ScaleUp, 6, Some(Outcome::DryRun), recorded)
        );
    }
    assert_eq!(api.take(), reads(2));
    assert_eq!(*api.replicas.lock().unwrap(), 0);
    assert_eq!(
        rows(lake.path()),
        vec![vec![
            "capacity",
            "scale_up",
            "forecast",
            "user-placeholder",
            "true",
            "dry_run"
        ]]
    );
}

#[tokio::test]
async fn capacity_a_forbidden_patch_is_an_error_and_recorded() {
    let (api, client) = Api::start(0).await;
    *api.forbid_patch.lock().unwrap() = true;
    let lake = tempfile::tempdir().unwrap();
    let sink = DecisionSink::new(&hubpulse::lake::LakeLocation::local(lake.path()), "hub");
    let stats = Arc::new(CapacityStats::default());
    let mut p =
        Placeholders::new(client, target(), policy(false), Some(sink)).with_stats(stats.clone());
    let e = p.reconcile(at(8, 15), &forecast()).await.unwrap_err();
    assert!(
        matches!(
            e,
            CapacityError::Kube {
                what: "patch statefulset scale",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(api.take().len(), 3);
    assert_eq!(
        rows(lake.path()),
        vec![vec![
            "capacity",
            "scale_up",
            "forecast",
            "user-placeholder",
            "false",
            "error"
        ]]
    );
    // the failed patch set no cooldown: a later scale-down is not held by it
    *api.forbid_patch.lock().unwrap() = false;
    *api.replicas.lock().unwrap() = 6;
    let c = p.reconcile(at(10, 0), &forecast()).await.unwrap();
    assert_eq!(
        (c.decision.action, c.decision.target),
        (Action::ScaleDown, 1)
    );
    // the metrics saw both cycles: the failed patch and the decision after it
    let mut text = String::new();
    stats.render(&mut text);
    for line in [
        "hubpulse_capacity_replicas 6",
        "hubpulse_capacity_target_replicas 1",
        "hubpulse_capacity_forecast_peak_servers 1",
        "hubpulse_capacity_decisions_total{action=\"scale_up\",reason=\"forecast\"} 1",
        "hubpulse_capacity_decisions_total{action=\"scale_down\",reason=\"forecast\"} 1",
        "hubpulse_capacity_errors_total{kind=\"patch_statefulset_scale\"} 1",
        "hubpulse_capacity_last_cycle_timestamp_seconds 1796032800",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

#[tokio::test]
async fn capacity_a_missing_statefulset_stops_the_cycle_before_any_patch() {
    let (api, client) = Api::start(0).await;
    let t = Target {
        name: "no-such-set".into(),
        ..target()
    };
    let mut p = Placeholders::new(client, t, policy(false), None);
    let e = p.reconcile(at(8, 15), &forecast()).await.unwrap_err();
    assert_eq!(e.metric_label(), "get statefulset scale");
    // a 404 for the scale: no pod list, no patch
    assert_eq!(api.take().len(), 1);
}

#[test]
fn capacity_plan_prints_the_forecast_from_the_lake_and_a_dry_run_decision() {
    use crate::support::{bin, run_ok};
    let dir = tempfile::tempdir().unwrap();
    let lake = crate::support::fixture_lake(dir.path(), "fixtures/reports/month-boundary.log");
    // A week after the data (Saturday 2026-10-31 20:00 to Sunday 03:00): the Saturday-evening
    // slots have two samples (that evening and this one), the later ones only that night's.
    let out = run_ok(bin().args(["capacity", "plan", "--lake"]).arg(&lake).args([
        "--at",
        "2026-11-07T22:30:00Z",
        "--replicas",
        "2",
        "--running",
        "1",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "forecast: 2026-09-12 22:00 .. 2026-11-07 22:00 UTC, quantile 0.9, trend x1.00, 170 hourly samples"
    );
    let row = |h: usize| lines[3 + h];
    // bob and dave at 20:00 (0.9 of the way from 0 to 2), + carol at 21:00, + alice at 23:00
    assert_eq!(row(20), "20:00   0.0   0.0   0.0   0.0   0.0   1.8   0.0");
    assert_eq!(row(21), "21:00   0.0   0.0   0.0   0.0   0.0   2.7   0.0");
    assert_eq!(row(23), "23:00   0.0   0.0   0.0   0.0   0.0   4.0   0.0");
    // carol, still running at the end of the data, counts until its last record (03:00), not
    // until --at
    assert_eq!(row(2), "02:00   0.0   0.0   0.0   0.0   0.0   0.0   1.0");
    assert_eq!(row(3), "03:00   0.0   0.0   0.0   0.0   0.0   0.0   0.0");
    assert!(
        out.contains("\nGPU (large)\t1.00\t1.0\tSat 22:00\n"),
        "{out}"
    );
    assert!(out.contains("\ndefault\t1.00\t3.0\tSat 23:00\n"), "{out}");
    // ceil(4 × 1.1) = 5 expected, 1 running: 4 placeholders
    assert_eq!(
        *lines.last().unwrap(),
        "decision (dry run): scale_up replicas 2 -> 4 (forecast): forecast peak 4.00 servers at Sat 23:00 UTC, 1 running, 0 pending, wanted 4"
    );
    let bad = crate::support::run(
        bin()
            .args(["capacity", "plan", "--lake"])
            .arg(&lake)
            .args(["--at", "saturday"]),
    );
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn capacity_plan_prints_a_decision_per_placeholder_set_of_the_config() {
    use crate::support::{bin, run_ok};
    let dir = tempfile::tempdir().unwrap();
    let lake = crate::support::fixture_lake(dir.path(), "fixtures/reports/month-boundary.log");
    let config = dir.path().join("hubpulse.toml");
    std::fs::write(
        &config,
        format!(
            "[lake]\npath = {lake:?}\n[stdin]\nenabled = true\n[capacity]\nnamespace = \"jhub\"\n\
             max_replicas = 3\n\
             [[capacity.placeholders]]\nstatefulset = \"user-placeholder\"\n\
             [[capacity.placeholders]]\nstatefulset = \"user-placeholder-gpu\"\n\
             profile = \"GPU (large)\"\nmax_replicas = 1\n"
        ),
    )
    .unwrap();
    let out = run_ok(
        bin()
            .args(["capacity", "plan", "--lake"])
            .arg(&lake)
            .arg("--config")
            .arg(&config)
            .args([
                "--at",
                "2026-11-07T22:30:00Z",
                "--replicas",
                "0",
                "--running",
                "0",
            ]),
    );
    let decisions: Vec<&str> = out.lines().filter(|l| l.starts_with("decision")).collect();
    assert_eq!(
        decisions,
        vec![
            // 4 expected in all (ceil(4 x 1.1) = 5), capped at the section's 3
            "decision [user-placeholder] (dry run): scale_up replicas 0 -> 3 (max_replicas): forecast peak 4.00 servers at Sat 23:00 UTC, 0 running, 0 pending, wanted 5",
            // 1 GPU server expected (ceil(1.1) = 2), capped at the set's 1
            "decision [user-placeholder-gpu] (dry run): scale_up replicas 0 -> 1 (max_replicas): forecast peak 1.00 servers at Sat 22:00 UTC, 0 running, 0 pending, wanted 2",
        ],
        "{out}"
    );
}

#[test]
fn capacity_the_deploy_config_is_valid_and_starts_everything_in_dry_run() {
    let out = crate::support::run_ok(
        crate::support::bin()
            .arg("check-config")
            .arg(crate::support::root().join("deploy/hubpulse.toml")),
    );
    assert!(out.contains("hubpulse.toml: ok"), "{out}");
    // the culler and the placeholder loop both start as dry runs
    let line = |key: &str| {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line: {out}"))
            .to_string()
    };
    assert!(line("culler ").contains("dry run"), "{out}");
    let capacity = line("capacity ");
    assert!(capacity.contains("jhub/user-placeholder"), "{out}");
    assert!(capacity.contains("as a dry run"), "{out}");
    assert!(
        line("pods ").contains("component=singleuser-server"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_the_agent_loop_forecasts_from_the_lake_and_reapplies_after_a_reset() {
    use hubpulse::control::capacity::forecast::ForecastPolicy;
    let dir = tempfile::tempdir().unwrap();
    let lake = crate::support::fixture_lake(dir.path(), "fixtures/reports/month-boundary.log");
    let (api, client) = Api::start(0).await;
    // min = max = 2: the target does not depend on the wall clock the loop reads
    let policy = PlaceholderPolicy {
        min_replicas: 2,
        max_replicas: 2,
        ..policy(false)
    };
    let sink = DecisionSink::new(&hubpulse::lake::LakeLocation::local(&lake), "hub");
    let p = Placeholders::new(client, target(), policy, Some(sink));
    let stop_tx = tokio_util::sync::CancellationToken::new();
    let stop_rx = stop_tx.clone();
    let task = tokio::spawn(p.run(
        hubpulse::lake::LakeLocation::local(&lake),
        ForecastPolicy::default(),
        "default".into(),
        std::time::Duration::from_millis(50),
        stop_rx,
    ));
    api.wait_for("PATCH", 1).await;
    assert_eq!(*api.replicas.lock().unwrap(), 2);
    // a helm upgrade puts 0 back: the loop sets 2 again on a later cycle
    *api.replicas.lock().unwrap() = 0;
    api.wait_for("PATCH", 2).await;
    stop_tx.cancel();
    tokio::time::timeout(std::time::Duration::from_secs(10), task)
        .await
        .expect("the loop stops when told")
        .unwrap();
    let patches: Vec<String> = api
        .take()
        .into_iter()
        .filter(|r| r.starts_with("PATCH"))
        .collect();
    assert_eq!(patches, vec![patch(2), patch(2)]);
    let lake2 = lake.clone();
    // (the reason, `forecast` or `min_replicas`, depends on the hour the loop ran)
    let rows = tokio::task::spawn_blocking(move || {
        decisions(
            &lake2,
            "action, server_name, dry_run, outcome",
            // a cycle may see the 2 before the reset: a `hold` row then, not counted here
            "component = 'capacity' AND action <> 'hold'",
        )
    })
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![vec!["scale_up", "user-placeholder", "false", "scaled"]; 2]
    );
}

/// A set per profile: one forecast, each set read with its own pods selector, decided with its
/// profile's series and its own bounds and dry-run, one merge PATCH per set that changes, and a
/// `decisions` row per set naming it; a helm reset of one set is undone on the next cycle.
#[tokio::test]
async fn capacity_a_set_per_profile_gets_one_patch_each_from_its_own_forecast() {
    use hubpulse::control::capacity::runner::reconcile_all;
    let (api, client) = Api::start(0).await;
    api.others.lock().unwrap().extend([
        ("user-placeholder-gpu".to_string(), 0),
        ("user-placeholder-big".to_string(), 0),
    ]);
    let gpu_pod = |name: &str| {
        let mut p = user_pod(name, "Running", false);
        p["metadata"]["labels"]["profile"] = json!("gpu");
        p
    };
    *api.pods.lock().unwrap() = vec![
        user_pod("jupyter-alice", "Running", false),
        gpu_pod("jupyter-bob"),
    ];
    // Monday 09:00: 6 servers in all, 4 of them gpu, 3 big
    let mut f = forecast();
    let series = |peak: f64| {
        let mut slots = [0.0; SLOTS];
        slots[9] = peak;
        Series {
            slots,
            trend: 1.0,
            samples: SLOTS,
        }
    };
    f.profiles.insert("gpu".into(), series(4.0));
    f.profiles.insert("big".into(), series(3.0));
    let lake = tempfile::tempdir().unwrap();
    let view = Arc::new(hubpulse::control::admission::wait::CapacityView::new(None));
    let set = |name: &str, profile: Option<&str>, user_pods: &str, policy: PlaceholderPolicy| {
        Placeholders::new(
            client.clone(),
            Target {
                name: name.into(),
                user_pods: user_pods.into(),
                ..target()
            },
            PlaceholderPolicy {
                profile: profile.map(String::from),
                ..policy
            },
            Some(DecisionSink::new(
                &hubpulse::lake::LakeLocation::local(lake.path()),
                "hub",
            )),
        )
        .with_view(view.clone())
    };
    let mut sets = vec![
        set(
            "user-placeholder",
            None,
            "component=singleuser-server",
            policy(false),
        ),
        set(
            "user-placeholder-gpu",
            Some("gpu"),
            "component=singleuser-server,profile=gpu",
            PlaceholderPolicy {
                max_replicas: 2,
                ..policy(false)
            },
        ),
        set(
            "user-placeholder-big",
            Some("big"),
            "component=singleuser-server,profile=big",
            policy(true),
        ),
    ];
    let results = reconcile_all(&mut sets, at(8, 15), &f).await;
    let got: Vec<(Action, Reason, i32, Option<&str>)> = results
        .iter()
        .map(|r| {
            let c = r.as_ref().unwrap();
            (
                c.decision.action,
                c.decision.reason,
                c.decision.target,
                c.outcome.map(Outcome::label),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            // 6 expected, alice and bob running
            (Action::ScaleUp, Reason::Forecast, 4, Some("scaled")),
            // 4 gpu expected, bob running: 3, capped at 2
            (Action::ScaleUp, Reason::MaxReplicas, 2, Some("scaled")),
            // 3 big expected, none running: dry run
            (Action::ScaleUp, Reason::Forecast, 3, Some("dry_run")),
        ]
    );
    let base = "/apis/apps/v1/namespaces/jhub/statefulsets";
    let pods = |sel: &str| format!("GET /api/v1/namespaces/jhub/pods?&labelSelector={sel}");
    let patch_of = |name: &str, n: i32| {
        format!(
            "PATCH {base}/{name}/scale? application/merge-patch+json {{\"spec\":{{\"replicas\":{n}}}}}"
        )
    };
    assert_eq!(
        api.take(),
        vec![
            format!("GET {SCALE}"),
            format!("GET {PODS}"),
            patch(4),
            format!("GET {base}/user-placeholder-gpu/scale"),
            pods("component%3Dsingleuser-server%2Cprofile%3Dgpu"),
            patch_of("user-placeholder-gpu", 2),
            format!("GET {base}/user-placeholder-big/scale"),
            pods("component%3Dsingleuser-server%2Cprofile%3Dbig"),
        ]
    );
    assert_eq!(*api.replicas.lock().unwrap(), 4);
    assert_eq!(api.others.lock().unwrap()["user-placeholder-gpu"], 2);
    assert_eq!(api.others.lock().unwrap()["user-placeholder-big"], 0);

    // the admission's view: each set's read and its profile's forecast peak
    let wp = hubpulse::control::admission::wait::WaitPolicy::default();
    let gpu = view
        .state_for(at(8, 16), &wp, Some("gpu"), Some(1), |_, _| None)
        .unwrap();
    assert_eq!(gpu.free_placeholders, Some(0), "read before the patches");
    assert_eq!(
        gpu.forecast,
        Some(hubpulse::control::admission::wait::ForecastRoom {
            expected: 4.0,
            running: 1
        })
    );

    // helm upgrade resets the gpu set: only it is patched again
    api.others
        .lock()
        .unwrap()
        .insert("user-placeholder-gpu".into(), 0);
    let results = reconcile_all(&mut sets, at(8, 20), &f).await;
    assert!(results.iter().all(Result::is_ok));
    let patches: Vec<String> = api
        .take()
        .into_iter()
        .filter(|r| r.starts_with("PATCH"))
        .collect();
    assert_eq!(patches, vec![patch_of("user-placeholder-gpu", 2)]);
    // a gpu spawn has only its own set, read reset to 0 (before its re-patch: new placeholders
    // are not room yet); a profile without a set of its own has the all-servers set's 4
    let free = |profile: &str| {
        view.state_for(at(8, 21), &wp, Some(profile), Some(1), |_, _| None)
            .unwrap()
            .free_placeholders
    };
    assert_eq!((free("gpu"), free("small")), (Some(0), Some(4)));

    let mut rows = decisions(
        lake.path(),
        "server_name, action, reason, profile, dry_run, outcome",
        "component = 'capacity' AND action <> 'hold'",
    );
    rows.sort();
    assert_eq!(
        rows,
        vec![
            vec![
                "user-placeholder",
                "scale_up",
                "forecast",
                "",
                "false",
                "scaled"
            ],
            vec![
                "user-placeholder-big",
                "scale_up",
                "forecast",
                "big",
                "true",
                "dry_run"
            ],
            vec![
                "user-placeholder-gpu",
                "scale_up",
                "max_replicas",
                "gpu",
                "false",
                "scaled"
            ],
            vec![
                "user-placeholder-gpu",
                "scale_up",
                "max_replicas",
                "gpu",
                "false",
                "scaled"
            ],
        ]
    );
}
