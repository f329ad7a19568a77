//! Latency of `POST /v1/admission` at 100 concurrent requests, through the agent's own HTTP
//! server loop (`agent::http::serve_limited`, with its limits).
//!
//! The hub API is a scripted stand-in listing `USERS` active servers in pages of 200 (what a
//! real hub answers to `GET /users?state=active`, at the speed of a local process); the lake is
//! the one given (a real one, e.g. a month from `hubpulse generate` + `ingest`). Rounds of 100
//! requests at once: the first finds the cache empty, the next ones are answered from the view;
//! then the same with every request denied (each deny is decided again on a fresh read, reads
//! shared). Prints p50, p99 and max per round. Figures go to BENCHMARKS.md; nothing here is a
//! test.
//!
//! ```sh
//! cargo run --example admission_load -- LAKE [USERS]
//! ```

#![allow(clippy::unwrap_used)] // a benchmark program: a panic is its error report

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Query;
use axum::routing::get;
use hubpulse::control::admission::Policy;
use hubpulse::control::decisions::DecisionSink;
use hubpulse::control::metrics::ControlStats;
use hubpulse::control::quota::{EndpointConfig, Quotas, router_with};
use hubpulse::hub::{ApiToken, HubClient, HubConfig};
use hubpulse::stream::metrics::Metrics;
use serde_json::json;

const TOKEN: &str = "bench-token";

#[derive(serde::Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn round(c: &reqwest::Client, url: &str, profile: &str, tag: &str) -> Vec<Duration> {
    let asks = (0..100).map(|i| {
        let (c, url) = (c.clone(), url.to_string());
        let body = json!({"user": format!("{tag}{i}"), "groups": [], "profile": profile});
        tokio::spawn(async move {
            let t = Instant::now();
            let r = c
                .post(&url)
                .header("Authorization", format!("Bearer {TOKEN}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let _ = r.bytes().await.unwrap();
            t.elapsed()
        })
    });
    let mut v: Vec<Duration> = futures::future::join_all(asks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    v.sort();
    v
}

fn show(name: &str, v: &[Duration]) {
    let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    println!(
        "{name:<34} p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
        p(0.5).as_secs_f64() * 1e3,
        p(0.99).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let lake = std::path::PathBuf::from(args.next().expect("usage: admission_load LAKE [USERS]"));
    let users: usize = args.next().map_or(2000, |s| s.parse().unwrap());

    let hub = Router::new().route(
        "/hub/api/users",
        get(move |Query(p): Query<Page>| async move {
            let (offset, limit) = (p.offset.unwrap_or(0), p.limit.unwrap_or(200).min(200));
            let end = (offset + limit).min(users);
            let items: Vec<_> = (offset..end)
                .map(|i| {
                    let profile = if i == 0 { "gpu" } else { "small" };
                    json!({"name": format!("user{i}"), "groups": [], "servers": {"": {
                        "name": "", "ready": true, "pending": null,
                        "started": "2026-12-01T08:00:00Z",
                        "user_options": {"profile": profile}}}})
                })
                .collect();
            let next = (end < users).then(|| json!({"offset": end, "limit": limit}));
            axum::Json(json!({"items": items,
                "_pagination": {"offset": offset, "limit": limit, "total": users, "next": next}}))
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hub_url = format!("http://{}/hub/api", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, hub).await.unwrap() });

    let scratch = tempfile::tempdir().unwrap();
    let q = Arc::new(Quotas {
        // gpu: one at a time, and user0 runs it: every gpu spawn is denied.
        policy: Policy::parse(
            "default_profile = \"small\"\n[profiles.gpu]\nmax_running = 1\n[budgets]\nuser_hours = 10000\n",
            "policy.toml",
        )
        .unwrap(),
        client: HubClient::new(HubConfig::new(hub_url.parse().unwrap(), ApiToken::new("hub-token"))).unwrap(),
        lake: hubpulse::lake::LakeLocation::local(&lake),
        hub: "jupyterhub".into(),
        // Decisions go to a scratch lake, so the measured lake is not changed.
        sink: DecisionSink::new(&hubpulse::lake::LakeLocation::local(scratch.path()), "jupyterhub"),
        stats: Arc::new(ControlStats::default()),
        token: TOKEN.into(),
        dry_run: false,
        wait: None,
    });
    let (router, _view) = router_with(q, EndpointConfig::default());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/admission", l.local_addr().unwrap());
    let stop = tokio_util::sync::CancellationToken::new();
    let m = Arc::new(Metrics::default());
    tokio::spawn(hubpulse::agent::http::serve_limited(
        l,
        m,
        router,
        hubpulse::agent::http::limits::Limits::default(),
        stop,
    ));
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(200)
        .build()
        .unwrap();
    println!(
        "{users} active servers listed in pages of 200; lake {}",
        lake.display()
    );
    for r in 0..4 {
        let name = if r == 0 {
            "allow, cold cache (one read)"
        } else {
            "allow, from the view"
        };
        show(
            &format!("{name} #{r}"),
            &round(&c, &url, "small", &format!("a{r}-")).await,
        );
    }
    for r in 0..3 {
        show(
            &format!("deny, confirmed by a fresh read #{r}"),
            &round(&c, &url, "gpu", &format!("d{r}-")).await,
        );
    }
}
