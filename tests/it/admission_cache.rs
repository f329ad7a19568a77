//! `POST /v1/admission` answered from a cached view (issue 18, item 6), through the real router
//! on 127.0.0.1: the hub API is a scripted server whose active-server list the test changes
//! and whose listings it counts (what matters here is when the agent asks, which a real hub
//! cannot count for us); the lake is a real one.
//!
//! Pinned: the token is checked before the body; allows within `view_refresh` cost no hub
//! read; a deny is never given on a cached view (it is decided again on a read made after the
//! request arrived, which here turns it into an allow); 100 concurrent requests share one read.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use hubpulse::control::admission::Policy;
use hubpulse::control::decisions::DecisionSink;
use hubpulse::control::metrics::ControlStats;
use hubpulse::control::quota::{EndpointConfig, Quotas, router_with};
use hubpulse::hub::{ApiToken, HubClient, HubConfig};
use serde_json::{Value, json};

use crate::support::api::{RequestLog, ScriptedApi, serve};

const TOKEN: &str = "adm-secret";

#[derive(Default)]
struct Hub {
    bo_runs_gpu: AtomicBool,
}

/// `GET /hub/api/users?state=active`: bo's gpu server while `bo_runs_gpu`, else nobody.
async fn users(State(h): State<Arc<Hub>>) -> axum::Json<Value> {
    let items = if h.bo_runs_gpu.load(Ordering::SeqCst) {
        json!([{"name": "bo", "groups": [], "servers": {"": {
            "name": "", "ready": true, "pending": null, "user_options": {"profile": "gpu"}}}}])
    } else {
        json!([])
    };
    let total = items.as_array().map_or(0, Vec::len);
    axum::Json(json!({
        "items": items,
        "_pagination": {"offset": 0, "limit": 200, "total": total, "next": null}
    }))
}

async fn post(c: &reqwest::Client, url: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
    let mut r = c
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn ask(user: &str) -> String {
    json!({"user": user, "groups": [], "profile": "gpu", "server_name": ""}).to_string()
}

/// The quotas: gpu servers are limited to one at a time.
fn q2(lake: &std::path::Path, hub_url: &str) -> Arc<Quotas> {
    Arc::new(Quotas {
        policy: Policy::parse("[profiles.gpu]\nmax_running = 1\n", "policy.toml").unwrap(),
        client: HubClient::new(HubConfig::new(
            hub_url.parse().unwrap(),
            ApiToken::new("hub-token"),
        ))
        .unwrap(),
        lake: hubpulse::lake::LakeLocation::local(lake),
        hub: "hub".into(),
        sink: DecisionSink::new(&hubpulse::lake::LakeLocation::local(lake), "hub"),
        stats: Arc::new(ControlStats::default()),
        token: TOKEN.into(),
        dry_run: false,
        wait: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_from_a_cached_view_and_a_deny_is_confirmed_on_a_fresh_read() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let hub = Arc::new(Hub::default());
    hub.bo_runs_gpu.store(true, Ordering::SeqCst);
    let app = Router::new()
        .route("/hub/api/users", get(users))
        .with_state(hub.clone());
    let hub_api = ScriptedApi::start(RequestLog::default(), app).await;
    let hub_url = format!("{}/hub/api", hub_api.url);
    // The hub's user listings so far.
    let listings = || hub_api.log.uris().len();

    let dir = tempfile::tempdir().unwrap();
    let lake = crate::support::fixture_lake(dir.path(), "fixtures/reports/month-boundary.log");
    let hub_url2 = hub_url.clone();
    let q = q2(&lake, &hub_url);
    // A view lives 10 minutes here: any second read within the test is a confirmation.
    let cfg = EndpointConfig {
        view_refresh: Duration::from_secs(600),
        max_concurrent: 8,
    };
    let (router, _view) = router_with(q, cfg);
    let url = format!("http://{}/v1/admission", serve(router).await);
    let c = reqwest::Client::new();
    let bearer = format!("Bearer {TOKEN}");

    // The token before the body: a wrong token with a malformed body is 401, not a schema
    // error, and costs no hub read.
    let (s, b) = post(&c, &url, Some("Bearer wrong"), "{not json").await;
    assert_eq!(
        (s, b["error"].as_str()),
        (401, Some("missing or invalid token"))
    );
    let (s, _) = post(&c, &url, None, "{}").await;
    assert_eq!(s, 401);
    assert_eq!(listings(), 0);
    // With the token, a malformed body is a one-line 400.
    let (s, b) = post(&c, &url, Some(&bearer), "{\"groups\": []}").await;
    assert_eq!(s, 400, "{b}");
    assert!(
        b["error"]
            .as_str()
            .unwrap()
            .starts_with("bad request body: missing field `user`")
    );

    // bo runs the only gpu server: cy is denied, on the read the request itself made.
    let (s, b) = post(&c, &url, Some(&bearer), &ask("cy")).await;
    assert_eq!((s, &b["decision"]), (200, &json!("deny")), "{b}");
    assert_eq!(b["code"], "profile_limit");
    assert_eq!(listings(), 1);

    // bo stops. The cached view still shows his server; the deny it suggests is checked on a
    // fresh read, which allows dee.
    hub.bo_runs_gpu.store(false, Ordering::SeqCst);
    let (s, b) = post(&c, &url, Some(&bearer), &ask("dee")).await;
    assert_eq!((s, &b["decision"]), (200, &json!("allow")), "{b}");
    assert_eq!(listings(), 2, "one confirming read");

    // Allows on a fresh enough view cost no read: 100 at once, none reads the hub.
    let asks = (0..100).map(|i| {
        let (c, url, bearer) = (c.clone(), url.clone(), bearer.clone());
        tokio::spawn(async move { post(&c, &url, Some(&bearer), &ask(&format!("u{i}"))).await })
    });
    for a in futures::future::join_all(asks).await {
        let (s, b) = a.unwrap();
        assert_eq!((s, &b["decision"]), (200, &json!("allow")), "{b}");
    }
    assert_eq!(listings(), 2);

    // bo starts again. A new endpoint (empty cache) gets 100 gpu requests at once: every one
    // is denied, each on a read made after it arrived, yet the reads are shared: the first
    // request's read serves those that arrived before it started, one more serves the rest
    // (without sharing this was 100 listings and 100 lake scans).
    hub.bo_runs_gpu.store(true, Ordering::SeqCst);
    let (router, _view) = router_with(q2(&lake, &hub_url2), cfg);
    let url = format!("http://{}/v1/admission", serve(router).await);
    let before = listings();
    let asks = (0..100).map(|i| {
        let (c, url, bearer) = (c.clone(), url.clone(), bearer.clone());
        tokio::spawn(async move { post(&c, &url, Some(&bearer), &ask(&format!("w{i}"))).await })
    });
    for a in futures::future::join_all(asks).await {
        let (s, b) = a.unwrap();
        assert_eq!((s, &b["code"]), (200, &json!("profile_limit")), "{b}");
    }
    let reads = listings() - before;
    eprintln!("{reads} hub listings for 100 concurrent denied requests");
    assert!(
        (1..=10).contains(&reads),
        "{reads} hub listings for 100 requests"
    );
}
