//! `hubpulse run`: the live agent, from a config file or from the zero-config flags (with the
//! flags that may refine it), with the Datadog sink as an observer.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::agent::config::AgentConfig;
use crate::parse::time::Zone;

use super::AppError;
use super::follow;

use crate::cli::RunArgs as RunFlags;

/// `hubpulse run`: the configuration from the flags, logging as it says, then the agent.
pub(super) fn run_cmd(rt: &Handle, flags: RunFlags) -> Result<(), AppError> {
    let cfg = config(flags)?;
    follow::check(&cfg.files)?;
    super::init_logging_with(&cfg.log_level, cfg.log_format);
    run_agent(rt, cfg)
}

/// `--config FILE`, or the zero configuration of `--lake DIR --follow …` with the flags that
/// refine it; the Datadog flags apply to both.
fn config(f: RunFlags) -> Result<AgentConfig, AppError> {
    let mut cfg = match (f.config, f.lake) {
        (Some(path), _) => AgentConfig::load(&path)?,
        (None, Some(lake)) => {
            let mut c = AgentConfig::zero(super::lake_at(&lake)?, &f.follow)?;
            if let Some(h) = f.http {
                c.http = match h.as_str() {
                    "off" => None,
                    a => Some(a.parse().map_err(|e| {
                        AppError::Input(format!("--http {a:?}: {e} (use ADDR:PORT or off)"))
                    })?),
                };
            }
            if let Some(d) = f.flush_interval {
                c.lake.flush_interval = crate::config::units::parse_duration(&d)
                    .map_err(|e| AppError::Input(format!("--flush-interval: {e}")))?;
            }
            if let Some(z) = f.tz {
                c.tz = Zone::parse_tz(&z).map_err(|e| AppError::Input(format!("--tz: {e}")))?;
            }
            if let Some(h) = f.hub {
                c.hub = h;
            }
            c
        }
        (None, None) => {
            return Err(AppError::Input(
                "run: give --config FILE, or --lake DIR --follow PATH_OR_GLOB...".into(),
            ));
        }
    };
    if let Some(u) = f.datadog_url {
        reqwest::Url::parse(&u)
            .map_err(|e| AppError::Input(format!("--datadog-url {u:?}: {e}")))?;
        cfg.datadog.url = Some(u);
    }
    cfg.datadog.dry_run = f.datadog_dry_run;
    Ok(cfg)
}

/// The agent with the Datadog sink as an observer; the sink finishes (sends or spools what is
/// left) after the pipeline has stopped. The process's one shutdown token is made here: the
/// agent cancels its own child of it on a signal; it is cancelled when the agent returns.
fn run_agent(rt: &Handle, cfg: AgentConfig) -> Result<(), AppError> {
    let metrics = Arc::new(crate::stream::metrics::Metrics::default());
    let grace = (cfg.shutdown_deadline / 2).min(std::time::Duration::from_secs(5));
    let (obs, sink) = crate::sinks::datadog::sink::start(
        rt,
        &cfg.datadog,
        &cfg.lake.path.state_dir(&cfg.hub),
        &metrics,
        grace,
    )?;
    let shutdown = CancellationToken::new();
    follow::warn_when_ready(metrics.clone(), cfg.files.clone(), shutdown.clone());
    let r = crate::agent::run_with(rt, cfg, vec![obs], metrics, shutdown.clone());
    shutdown.cancel();
    sink.finish();
    r.map_err(AppError::from)
}
