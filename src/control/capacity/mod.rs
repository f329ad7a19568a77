//! Capacity ahead of demand: a forecast of concurrent servers per hour of the week from the
//! lake's sessions, and the Z2JH `user-placeholder` StatefulSet (or a set per profile) scaled
//! ahead of its peaks.
//! Each is pure ([`forecast::forecast`], [`placeholder::decide`]) with a thin runner
//! ([`runner`]) that reads and patches the StatefulSet's scale and records every change in the
//! lake table `decisions`.
//!
//! | module | what it is |
//! | --- | --- |
//! | `config` | the `[capacity]` section |
//! | `forecast` | expected concurrent servers per profile and hour of the week (quantile × trend) |
//! | `metrics` | the loop's Prometheus gauges and counters (`hubpulse_capacity_*`) |
//! | `placeholder` | the pure replicas decision (look-ahead, bounds, cooldown, dry-run) |
//! | `plan` | `hubpulse capacity plan`: the forecast grid and the decision as text |
//! | `runner` | Kubernetes reads and the scale patch, recording, the periodic loop |
//! | `wait` | admission with capacity: the pure allow-or-wait decision and the live evidence |
//!
//! # RBAC
//! The runner needs, in the hub's namespace: `statefulsets/scale` get + patch (each placeholder
//! set), and `pods` list (running and pending single-user pods). See `deploy/rbac.yaml`.

pub mod config;
pub mod forecast;
pub mod metrics;
pub mod placeholder;
pub mod plan;
pub mod runner;

/// Starts the placeholder loop on `rt` (the agent's `[capacity]` section).
///
/// # Errors
/// No usable cluster configuration (in-cluster service account, `KUBECONFIG` or
/// `~/.kube/config`): a configuration error (exit 2).
pub fn start(
    cfg: &config::CapacityConfig,
    lake: &crate::lake::LakeLocation,
    hub: &str,
    rt: &tokio::runtime::Handle,
    agent_metrics: &crate::stream::metrics::Metrics,
    view: Option<std::sync::Arc<crate::control::admission::wait::CapacityView>>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), crate::control::ControlError> {
    let client = rt
        .block_on(kube::Client::try_default())
        .map_err(crate::control::ControlError::Cluster)?;
    let many = cfg.sets.len() > 1;
    let mut sets = Vec::with_capacity(cfg.sets.len());
    let mut all_stats = Vec::with_capacity(cfg.sets.len());
    for set in &cfg.sets {
        let sink = crate::control::decisions::DecisionSink::new(lake, hub);
        let stats = std::sync::Arc::new(if many {
            metrics::CapacityStats::for_set(&set.target.name)
        } else {
            metrics::CapacityStats::default()
        });
        let mut p = runner::Placeholders::new(
            client.clone(),
            set.target.clone(),
            set.policy.clone(),
            Some(sink),
        )
        .with_stats(stats.clone());
        if let Some(v) = &view {
            p = p.with_view(v.clone());
        }
        tracing::info!(
            namespace = %set.target.namespace,
            statefulset = %set.target.name,
            profile = set.policy.profile.as_deref().unwrap_or("(all)"),
            dry_run = set.policy.dry_run,
            "capacity: placeholder set"
        );
        sets.push(p);
        all_stats.push(stats);
    }
    agent_metrics
        .registry
        .register(metrics::CapacitySets(all_stats));
    rt.spawn(runner::run_sets(
        sets,
        lake.clone(),
        cfg.forecast.clone(),
        cfg.default_profile.clone(),
        cfg.every,
        stop,
    ));
    tracing::info!("capacity: placeholder loop started");
    Ok(())
}
