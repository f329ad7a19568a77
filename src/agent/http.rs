//! `/healthz` and `/metrics` (Prometheus text), on 127.0.0.1 by default, served with the
//! slow-client limits of [`limits`].
//!
//! `/healthz` is 200 `ok` when the agent is ready and its lake writes go through; 503 with one
//! line saying why otherwise (starting, or lake writes failing and being retried): a readiness
//! signal. `/livez` is 200 while the process serves HTTP at all: a liveness probe on it does not
//! restart an agent that is waiting for disk space (a restart would not bring space back).

pub mod limits;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::stream::metrics::Metrics;

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if !m.ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: sources not attached yet\n".to_string(),
        );
    }
    match m.lake_stall() {
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        None => (StatusCode::OK, "ok\n".to_string()),
    }
}

async fn livez() -> &'static str {
    "alive\n"
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let body = m.render(chrono::Utc::now().timestamp_micros());
    (
        [(header::CONTENT_TYPE, crate::telemetry::CONTENT_TYPE)],
        body,
    )
}

pub fn router(m: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics))
        .with_state(m)
}

/// Bind first (so a bad address fails the start, not later), then serve until `stop` fires.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    m: Arc<Metrics>,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    serve_with(listener, m, Router::new(), stop).await
}

/// [`serve`], with more routes (the admission endpoint) merged in, and the default limits.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    m: Arc<Metrics>,
    extra: Router,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    serve_limited(listener, m, extra, limits::Limits::default(), stop).await
}

/// [`serve_with`] under `limits` (`[http]` in the config).
pub async fn serve_limited(
    listener: tokio::net::TcpListener,
    m: Arc<Metrics>,
    extra: Router,
    limits: limits::Limits,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let stats = Arc::<limits::HttpStats>::default();
    m.registry.register(stats.clone());
    limits::serve(listener, router(m).merge(extra), limits, stats, stop).await
}
