//! `/healthz` and `/metrics` (Prometheus text), on 127.0.0.1 by default.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::agent::metrics::Metrics;

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    if m.ready() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: sources not attached yet\n",
        )
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let body = m.render(chrono::Utc::now().timestamp_micros());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

pub fn router(m: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
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
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    serve_with(listener, m, Router::new(), stop).await
}

/// [`serve`], with more routes (the admission endpoint) merged in.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    m: Arc<Metrics>,
    extra: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(m).merge(extra))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}
