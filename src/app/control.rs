//! `hubpulse capacity plan` (the forecast and the placeholder decision, a dry run) and
//! `hubpulse cull --once` (one pass of the idle culler).

use std::path::Path;
use std::sync::Arc;

use tokio::runtime::Handle;

use crate::agent::config::AgentConfig;

use super::AppError;
use super::out::Out;

/// `hubpulse capacity plan`: the forecast from the lake and the decision, printed; a dry run.
pub(super) fn capacity_plan(
    rt: &Handle,
    lake: &crate::lake::LakeLocation,
    config: Option<&Path>,
    at: Option<&str>,
    seen: crate::control::capacity::placeholder::Observed,
) -> Result<(), AppError> {
    use crate::control::capacity::{forecast::ForecastPolicy, placeholder, plan, runner};
    let (fp, sets, default_profile) = match config {
        Some(path) => {
            let cfg = AgentConfig::load(path)?;
            match cfg.capacity {
                Some(c) => (
                    c.forecast,
                    c.sets
                        .into_iter()
                        .map(|s| (s.target.name, s.policy))
                        .collect(),
                    c.default_profile,
                ),
                None => {
                    return Err(AppError::Input(format!(
                        "{}: no [capacity] section (or enabled = false)",
                        path.display()
                    )));
                }
            }
        }
        None => (
            ForecastPolicy::default(),
            vec![(
                "user-placeholder".to_string(),
                placeholder::PlaceholderPolicy::default(),
            )],
            "default".to_string(),
        ),
    };
    let now = match at {
        None => chrono::Utc::now(),
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| AppError::Input(format!("--at {s:?}: {e} (use RFC 3339)")))?
            .with_timezone(&chrono::Utc),
    };
    let f = rt
        .block_on(runner::forecast_from_lake(lake, &fp, &default_profile, now))
        .map_err(crate::control::ControlError::from)?;
    let decisions: Vec<(String, placeholder::Decision)> = sets
        .into_iter()
        .map(|(name, mut pp)| {
            pp.dry_run = true;
            (name, placeholder::decide(now, &f, seen, &pp, None))
        })
        .collect();
    let Some((_, d)) = decisions.first() else {
        return Err(AppError::Input("no placeholder set".into()));
    };
    let mut text = plan::render(&f, fp.quantile, d);
    if decisions.len() > 1 {
        // one line per set (each with its profile's series, bounds and the same --replicas)
        text = plan::render_sets(&text, &decisions);
    }
    let mut out = Out::stdout();
    out.text(&text)?;
    out.flush_now()
}

/// `hubpulse cull --once [--dry-run]`: one pass, a line per decision, a summary line.
pub(super) fn cull_cmd(rt: &Handle, config: &Path, dry_run: bool) -> Result<(), AppError> {
    use crate::control::{culler::runner::Culler, decisions::DecisionSink, metrics::ControlStats};
    let cfg = AgentConfig::load(config)?;
    let Some(mut policy) = cfg.control.culler.clone() else {
        return Err(AppError::Input(format!(
            "{}: no enabled [culler] section",
            config.display()
        )));
    };
    policy.dry_run |= dry_run;
    let client = crate::control::hub_client(
        cfg.control.hub.as_ref(),
        policy.concurrency,
        policy.page_size,
    )?;
    let sink = DecisionSink::new(&cfg.lake.path, &cfg.hub);
    let mut culler = Culler::new(
        client,
        Arc::new(policy),
        Some(sink),
        Arc::new(ControlStats::default()),
        None,
    );
    let report = rt
        .block_on(culler.reconcile("once", chrono::Utc::now()))
        .map_err(|e| AppError::Runtime(format!("hub API: {e}")))?;
    let mut out = Out::stdout();
    let mut counts = std::collections::BTreeMap::new();
    for r in &report.rows {
        let d = &r.decision;
        *counts.entry(d.action.label()).or_insert(0) += 1;
        out.line(format_args!(
            "{}\t{}\t{}\t{}",
            d.action.label(),
            d.reason.label(),
            d.log_name(),
            r.outcome.map_or("-", |o| o.label())
        ))?;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.line(format_args!("kept={} {}", report.kept, summary.join(" ")))?;
    out.flush_now()
}
