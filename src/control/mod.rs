//! Acting on the hub: the idle culler and profile quotas. Each is a pure decision
//! ([`decide::decide`], [`admission::admit`]) plus a thin runner that fetches from the hub API
//! (`crate::hub`), acts, and records every decision in the lake table `decisions` and in
//! metrics.
//!
//! | module | what it is |
//! | --- | --- |
//! | `config` | the `[hub]`, `[culler]`, `[admission]` config sections |
//! | `decide` | the culler's pure decision, merged idleness, the pass-wide guards |
//! | `stream` | the pipeline observer telling the culler where to look (spawns, heartbeats) |
//! | `observe` | hub observations: the `observations` table and the active-user view |
//! | `runner` | reconcile + per-server deadlines, acting, recording |
//! | `admission` | the quota policy file and the pure admission decision |
//! | `quota` | `POST /v1/admission`, usage from the lake, the quota reconcile loop |
//! | `decisions` | the `decisions` table writer |
//! | `metrics` | the Prometheus counters (bounded labels) |
//!
//! # Scopes
//! The culler: `list:users`, `read:users:activity`, `read:servers`, `delete:servers`
//! (+ `read:users:groups` for group timeouts and exemptions, + `admin:users` for
//! `cull_users`). Admission and quotas: `list:users`, `read:servers`, `read:users:groups`
//! (+ `delete:servers` for the quota loop, + `list:groups`, `read:groups` for group budgets).

pub mod admission;
pub mod capacity;
pub mod config;
pub mod culler;
pub mod decisions;
mod error;
pub mod metrics;
pub mod observe;
pub mod quota;

use std::sync::Arc;

use crate::hub::{ApiToken, HubClient, HubConfig};
use crate::stream::Observer;
use config::{ControlConfig, HubSection, read_token};
pub use error::ControlError;

/// The hub client for the control loops: `[hub]` (or `JUPYTERHUB_API_URL`) and the token from
/// `hub.token_file` (or `JUPYTERHUB_API_TOKEN`).
///
/// # Errors
/// One line naming what is missing (never the token).
pub fn hub_client(
    hub: Option<&HubSection>,
    concurrency: usize,
    page_size: u32,
) -> Result<HubClient, ControlError> {
    let url = match hub.and_then(|h| h.api_url.clone()) {
        Some(u) => u,
        None => {
            let text = std::env::var("JUPYTERHUB_API_URL").map_err(|_| ControlError::NoHubUrl)?;
            crate::hub::ApiUrl::parse(&text).map_err(ControlError::HubClient)?
        }
    };
    let token = read_token(
        "hub token",
        hub.and_then(|h| h.token_file.as_deref()),
        "JUPYTERHUB_API_TOKEN",
    )?;
    let mut c = HubConfig::new(url, ApiToken::new(token));
    c.max_concurrency = concurrency;
    c.page_size = page_size;
    if let Some(h) = hub {
        c.request_timeout = h.request_timeout;
    }
    HubClient::new(c).map_err(ControlError::HubClient)
}

/// What the agent adds for the control loops: observers for the pipeline, routes for its
/// HTTP server, and the loops' tasks (awaited at shutdown, so a pass in progress is recorded).
pub struct Started {
    pub observers: Vec<Box<dyn Observer>>,
    pub router: Option<axum::Router>,
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Starts the culler and the quota loop (as configured) on `rt`. `capacity` is the evidence
/// the admission's `capacity_wait` reads (the `[pods]` watch, the `[capacity]` loop).
///
/// # Errors
/// Configuration problems (exit 2): no hub URL or token, unreadable policy.
pub fn start(
    cfg: &ControlConfig,
    lake: &crate::lake::LakeLocation,
    hub_name: &str,
    rt: &tokio::runtime::Handle,
    metrics: &crate::stream::metrics::Metrics,
    capacity: Option<Arc<crate::control::admission::wait::CapacityView>>,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Started, ControlError> {
    let mut started = Started {
        observers: Vec::new(),
        router: None,
        tasks: Vec::new(),
    };
    if cfg.culler.is_none() && cfg.admission.is_none() && cfg.hub.is_none() {
        return Ok(started);
    }
    let stats = Arc::new(metrics::ControlStats::default());
    metrics.registry.register(stats.clone());
    let sink = decisions::DecisionSink::new(lake, hub_name);
    let obs = observe::Observations::new(
        Some(lake),
        hub_name,
        metrics.hub_activity.clone(),
        stats.clone(),
    );
    if let Some(policy) = &cfg.culler {
        let client = hub_client(cfg.hub.as_ref(), policy.concurrency, policy.page_size)?
            .with_request_counter(stats.hub_requests.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        started
            .observers
            .push(Box::new(culler::stream::ActivityObserver::new(tx)));
        let culler = culler::runner::Culler::new(
            client,
            Arc::new(policy.clone()),
            Some(sink.clone()),
            stats.clone(),
            Some(rx),
        )
        .with_observations(obs);
        started.tasks.push(rt.spawn(culler.run(stop.clone())));
        if policy.dry_run {
            tracing::info!("idle culler started: {}", policy.summary());
        } else {
            tracing::warn!("idle culler started: {}", policy.summary());
        }
    } else if let Some(h) = cfg.hub.as_ref().filter(|h| !h.observe_every.is_zero()) {
        let client = hub_client(Some(h), 4, 200)?.with_request_counter(stats.hub_requests.clone());
        started.tasks.push(rt.spawn(observe::observe_loop(
            client,
            h.observe_every,
            obs,
            stats.clone(),
            stop.clone(),
        )));
        tracing::info!(every = ?h.observe_every, "hub observations started");
    }
    if let Some(a) = &cfg.admission {
        let policy = admission::Policy::load(&a.policy)?;
        let token = read_token(
            "admission token",
            a.token_file.as_deref(),
            "HUBPULSE_ADMISSION_TOKEN",
        )?;
        let q = Arc::new(quota::Quotas {
            policy,
            client: hub_client(cfg.hub.as_ref(), 10, 200)?
                .with_request_counter(stats.hub_requests.clone()),
            lake: lake.clone(),
            hub: hub_name.to_string(),
            sink,
            stats,
            token,
            dry_run: a.dry_run,
            wait: a.wait.clone().zip(capacity),
        });
        let (router, view) = quota::router_with(q.clone(), a.endpoint);
        started.router = Some(router);
        started
            .tasks
            .push(rt.spawn(view.run(q.clone(), stop.clone())));
        started
            .tasks
            .push(rt.spawn(q.run(a.reconcile_every, stop.clone())));
        tracing::info!("admission endpoint and quota loop started");
    }
    Ok(started)
}
