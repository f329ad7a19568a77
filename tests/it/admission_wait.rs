//! Admission with capacity through the real `POST /v1/admission` (axum on 127.0.0.1): the hub
//! API is a scripted server listing the active servers (with their profiles), the lake is a real
//! one, and the capacity evidence is the pods watch's pending state, fed pod observations. A
//! spawn of a profile whose pods already wait for room is told to wait, with the estimate in
//! the body and the `Retry-After` header; the answer is a `decisions` row and a metric.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use chrono::{Duration, Utc};
use hubpulse::control::admission::Policy;
use hubpulse::control::admission::wait::{CapacityView, WaitPolicy};
use hubpulse::control::decisions::DecisionSink;
use hubpulse::control::metrics::ControlStats;
use hubpulse::control::quota::{Quotas, router};
use hubpulse::hub::{ApiToken, HubClient, HubConfig};
use hubpulse::sources::kube::pending::{Pending, PodObs};
use serde_json::{Value, json};

use crate::cull_common::decisions;
use crate::support::api::{RequestLog, ScriptedApi, serve};
use crate::support::root;

const TOKEN: &str = "adm-secret";

/// `GET /hub/api/users?state=active`: bo runs a gpu server, ann's gpu server is pending, eve
/// runs the default profile.
async fn users() -> axum::Json<Value> {
    let server = |profile: Option<&str>, ready: bool| {
        let mut s = json!({"name": "", "ready": ready,
            "pending": if ready { Value::Null } else { json!("spawn") }});
        if let Some(p) = profile {
            s["user_options"] = json!({ "profile": p });
        }
        json!({ "": s })
    };
    axum::Json(json!({
        "items": [
            {"name": "bo", "groups": [], "servers": server(Some("gpu"), true)},
            {"name": "ann", "groups": [], "servers": server(Some("gpu"), false)},
            {"name": "eve", "groups": [], "servers": server(None, true)},
        ],
        "_pagination": {"offset": 0, "limit": 200, "total": 3, "next": null}
    }))
}

fn pod(name: &str, user: &str, phase: &str, unschedulable: bool, age_s: i64) -> PodObs {
    PodObs {
        namespace: "jhub".into(),
        pod: name.into(),
        user: Some(user.into()),
        server: Some(String::new()),
        phase: Some(phase.into()),
        created: Some(Utc::now() - Duration::seconds(age_s)),
        unschedulable,
        image_pull: false,
    }
}

async fn ask(url: &str, user: &str, profile: Option<&str>) -> (u16, Option<String>, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .json(&json!({"user": user, "groups": [], "profile": profile, "server_name": ""}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, r.json().await.unwrap())
}

/// Runs `contrib/pre_spawn_hook.py`'s hook (the real-JupyterHub venv's Python and tornado) for
/// a spawner of `user` with `profile`: `CODE:RETRY_AFTER MESSAGE` for a wait, else what it did.
fn hook(url: &str, user: &str, profile: &str) -> String {
    let script = format!(
        r#"
import asyncio, logging, sys
sys.path.insert(0, {contrib:?})
from pre_spawn_hook import admission_hook, SpawnWaitError
class User: name = {user:?}; groups = []
class Spawner:
    user = User(); name = ""; user_options = {{"profile": {profile:?}}}; log = logging.getLogger("t")
async def main():
    try:
        await admission_hook({url:?}, token={TOKEN:?})(Spawner())
        print("allowed")
    except SpawnWaitError as e:
        print("%d:%d %s" % (e.status_code, e.retry_after, e.jupyterhub_message))
asyncio.run(main())
"#,
        contrib = root().join("contrib").display().to_string(),
    );
    let out = std::process::Command::new(crate::support::harness_python())
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawn_whose_profile_already_waits_for_room_is_told_to_wait_with_an_estimate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // the hub API
    let hub = Router::new().route("/hub/api/users", get(users));
    let hub_url = format!(
        "{}/hub/api",
        ScriptedApi::start(RequestLog::default(), hub).await.url
    );

    // a real lake (no usage this month: nothing is over budget)
    let dir = tempfile::tempdir().unwrap();
    let lake = crate::support::fixture_lake(dir.path(), "fixtures/reports/month-boundary.log");

    // the pods watch saw bo's gpu pod wait 360 s for a node; ann's has waited 60 s so far;
    // eve's default-profile pod is pulling its image (not waiting for room)
    let pending = Arc::new(Pending::default());
    let now = Utc::now();
    pending.observe(
        now - Duration::seconds(1000),
        &pod("jupyter-bo", "bo", "Pending", true, 1000),
    );
    pending.observe(
        now - Duration::seconds(640),
        &pod("jupyter-bo", "bo", "Running", false, 1000),
    );
    pending.observe(now, &pod("jupyter-ann", "ann", "Pending", true, 60));
    pending.observe(now, &pod("jupyter-eve", "eve", "Pending", false, 20));

    let stats = Arc::new(ControlStats::default());
    let q = Arc::new(Quotas {
        policy: Policy::parse("default_profile = \"small\"\n", "policy.toml").unwrap(),
        client: HubClient::new(HubConfig::new(
            hub_url.parse().unwrap(),
            ApiToken::new("hub-token"),
        ))
        .unwrap(),
        lake: hubpulse::lake::LakeLocation::local(&lake),
        hub: "hub".into(),
        sink: DecisionSink::new(&hubpulse::lake::LakeLocation::local(&lake), "hub"),
        stats: stats.clone(),
        token: TOKEN.into(),
        dry_run: false,
        wait: Some((
            WaitPolicy::default(),
            Arc::new(CapacityView::new(Some(pending))),
        )),
    });
    let url = format!("http://{}/v1/admission", serve(router(q)).await);

    let (status, retry, body) = ask(&url, "cy", Some("gpu")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "wait", "{body}");
    assert_eq!(body["allow"], false, "{body}");
    assert_eq!(body["code"], "no_capacity", "{body}");
    assert_eq!(body["profile"], "gpu", "{body}");
    // a node is expected 360 s after ann's pod started waiting 60 s ago (give the test 10 s)
    let secs = body["retry_after_seconds"].as_u64().unwrap();
    assert!((290..=300).contains(&secs), "{body}");
    assert_eq!(retry, Some(secs.to_string()));
    let message = body["message"].as_str().unwrap();
    assert_eq!(body["reason"], message, "old hooks show `reason`");
    assert!(
        message.starts_with(
            "No room for a 'gpu' server right now: 1 server is already waiting for a node"
        ) && message.contains("recent spawns waited 6 min for a node (median of 1)"),
        "{message}"
    );

    // contrib/pre_spawn_hook.py turns the wait into an error the spawn page shows
    let u = url.clone();
    let out = tokio::task::spawn_blocking(move || hook(&u, "cy2", "gpu"))
        .await
        .unwrap();
    let (head, shown) = out.trim_end().split_once(' ').unwrap();
    let (code, after) = head.split_once(':').unwrap();
    assert_eq!(code, "503", "{out}");
    assert!(
        (290..=300).contains(&after.parse::<u64>().unwrap()),
        "{out}"
    );
    assert!(
        shown.starts_with("No room for a 'gpu' server right now")
            && shown.contains("expect room in ~"),
        "{out}"
    );

    // the default profile has nothing waiting for room: allowed, no Retry-After
    let (status, retry, body) = ask(&url, "dee", None).await;
    assert_eq!((status, retry), (200, None), "{body}");
    assert_eq!(body["decision"], "allow", "{body}");
    assert_eq!(body["allow"], true, "{body}");
    assert!(body.get("retry_after_seconds").is_none(), "{body}");

    let rows = decisions(
        &lake,
        "action, reason, \"user\", profile",
        "component = 'admission'",
    );
    assert_eq!(
        rows,
        vec![
            vec!["wait", "no_capacity", "cy", "gpu"],
            vec!["wait", "no_capacity", "cy2", "gpu"],
            vec!["allow", "allowed", "dee", "small"],
        ]
    );
    let msg = decisions(&lake, "message", "action = 'wait'");
    assert!(
        msg[0].join(",").starts_with("No room for a 'gpu' server"),
        "{msg:?}"
    );
    let mut text = String::new();
    stats.render(&mut text);
    assert!(
        text.contains(
            "hubpulse_admission_decisions_total{answer=\"wait\",reason=\"no_capacity\"} 2"
        ),
        "{text}"
    );
    assert!(!text.contains("\"cy\""), "no user names in labels");
}

/// Waiting on the forecast (`capacity_forecast = true`), through the real endpoint: nothing is
/// pending, but the gpu placeholder set's last cycle saw a forecast of 3 gpu servers, the hub
/// lists 2 (bo, and ann's starting), and no gpu placeholder is free: a gpu spawn is told to wait
/// `scale_up_time`; the default profile, and the same state with the option off, are allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_capacity_forecast_a_spawn_waits_on_the_forecast_before_anything_is_pending() {
    use hubpulse::control::capacity::placeholder::Observed;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let hub = Router::new().route("/hub/api/users", get(users));
    let hub_url = format!(
        "{}/hub/api",
        ScriptedApi::start(RequestLog::default(), hub).await.url
    );
    let dir = tempfile::tempdir().unwrap();
    let lake = crate::support::fixture_lake(dir.path(), "fixtures/reports/month-boundary.log");
    let view = Arc::new(CapacityView::new(None));
    let seen = Observed {
        current: 0,
        running: 3,
        pending: 0,
    };
    view.set_cycle(
        "user-placeholder-gpu",
        Some("gpu".into()),
        Utc::now(),
        seen,
        3.0,
    );
    let serve = |forecast: bool| {
        let q = Arc::new(Quotas {
            policy: Policy::parse("default_profile = \"small\"\n", "policy.toml").unwrap(),
            client: HubClient::new(HubConfig::new(
                hub_url.parse().unwrap(),
                ApiToken::new("hub-token"),
            ))
            .unwrap(),
            lake: hubpulse::lake::LakeLocation::local(&lake),
            hub: "hub".into(),
            sink: DecisionSink::new(&hubpulse::lake::LakeLocation::local(&lake), "hub"),
            stats: Arc::new(ControlStats::default()),
            token: TOKEN.into(),
            dry_run: false,
            wait: Some((
                WaitPolicy {
                    forecast,
                    ..WaitPolicy::default()
                },
                view.clone(),
            )),
        });
        async move { format!("http://{}/v1/admission", serve(router(q)).await) }
    };
    let url = serve(true).await;
    let (status, retry, body) = ask(&url, "cy", Some("gpu")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"], "wait", "{body}");
    assert_eq!(body["retry_after_seconds"], 300, "{body}");
    assert_eq!(retry.as_deref(), Some("300"));
    assert_eq!(
        body["message"],
        "No room is expected for a 'gpu' server right now: the forecast expects 3.0 such servers \
         soon, 2 running and no free placeholder; a new node usually takes 5 min (the configured \
         scale-up time); expect room in ~5 min.",
        "{body}"
    );
    // the default profile has no set of its own and no forecast: allowed
    let (_, retry, body) = ask(&url, "dee", None).await;
    assert_eq!((body["decision"].as_str(), retry), (Some("allow"), None));
    // the same evidence, the option off: allowed
    let off = serve(false).await;
    let (_, retry, body) = ask(&off, "cy", Some("gpu")).await;
    assert_eq!((body["decision"].as_str(), retry), (Some("allow"), None));
}
