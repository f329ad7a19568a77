//! `hubpulse run`: the live agent.
//!
//! ```text
//! file tailers (thread per [[files]]) ─┐
//! stdin (thread)                       ├─ bounded channel ─→ pipeline thread ─→ lake commits
//! pod logs (tokio task → bridge)      ─┘    (back-pressure)   (parse, Arrow,     (manifest =
//!                                                              observers)         checkpoints)
//! the process's tokio runtime: signals, /healthz + /metrics, Kubernetes, control loops
//! ```
//!
//! Shutdown: the first SIGTERM/SIGINT stops reading; the pipeline takes what is queued, writes,
//! commits and returns; the process exits 0 within `shutdown_deadline`. A second signal (or the
//! deadline) exits at once with status 1 — and still loses nothing, because checkpoints only
//! ever cover committed rows.
//!
//! One shutdown signal: the caller's [`CancellationToken`]; the agent's parts share a child of
//! it (`shutdown.rs`), which the agent also cancels when the pipeline ends by itself. One
//! runtime: the caller's (`hubpulse run` builds the process's only one in `app`); the agent is
//! run from a thread outside it, and blocks on it there (see `topology.rs`). Each part is built
//! by a function of `topology.rs`; [`run_with`] wires them.

pub mod config;
mod error;
pub mod http;
mod kube_bridge;
pub mod pipeline;
mod shutdown;
mod topology;

use std::sync::Arc;
use std::sync::mpsc::sync_channel;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::stream::metrics::Metrics;
use crate::stream::{Observer, SourceMsg};
use config::AgentConfig;
pub use error::AgentError;
pub use kube_bridge::bridge_pod_lines;

/// Messages in flight between sources and the pipeline (each at most ~1 MiB of lines).
const CHANNEL_DEPTH: usize = 16;

/// Run the agent on `rt` until a signal, `shutdown` is cancelled, or every source has ended
/// (e.g. stdin alone at EOF). Call it from a thread outside the runtime.
pub fn run(
    rt: &Handle,
    cfg: AgentConfig,
    observers: Vec<Box<dyn Observer>>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    run_with(rt, cfg, observers, Arc::new(Metrics::default()), shutdown)
}

/// [`run`], with the caller's metrics (to watch progress). Cancelling `shutdown` stops the
/// agent gracefully, as the first signal does.
pub fn run_with(
    rt: &Handle,
    cfg: AgentConfig,
    observers: Vec<Box<dyn Observer>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), AgentError> {
    let mut lake = topology::open_lake(&cfg, &metrics)?;
    let signals = {
        let _guard = rt.enter();
        shutdown::Signals::install()
    };
    // The agent's parts stop on this; it is also cancelled when the agent returns early.
    let stop = shutdown.child_token();
    let _stop_on_return = stop.clone().drop_guard();
    let listener = topology::bind_http(rt, &cfg)?;
    let (tx, rx) = sync_channel::<SourceMsg>(CHANNEL_DEPTH);
    let threads = topology::start_sources(rt, &cfg, &mut lake, tx, &stop, &metrics)?;
    let control = topology::start_control(rt, &cfg, &metrics, &stop)?;
    let mut observers = observers;
    observers.extend(control.observers);
    let done = topology::start_pipeline(lake, rx, observers, &metrics, &stop)?;
    let routes = control.router.unwrap_or_default();
    topology::start_http(rt, listener, &cfg, &metrics, routes, &stop);

    let deadline = cfg.shutdown_deadline;
    let outcome = rt.block_on(shutdown::until_stopped(
        signals,
        done,
        control.tasks,
        stop,
        deadline,
    ));
    let result = outcome?.map_err(AgentError::from);
    for t in threads {
        let _ = t.join();
    }
    result
}
