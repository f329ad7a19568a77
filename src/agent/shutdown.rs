//! How the agent stops (see the module doc of [`super`]): the first SIGTERM/SIGINT, a cancel
//! of the caller's shutdown token, or the pipeline ending by itself cancels the agent's stop
//! token; then the pipeline drains and commits and the control loops finish their pass, all
//! within `shutdown_deadline`. A second signal or the deadline exits the process with status 1.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::AgentError;
use crate::lake::manifest::LakeError;

/// The pipeline's result, once its thread returns.
pub(super) type Done = oneshot::Receiver<Result<(), LakeError>>;

/// SIGTERM and SIGINT, caught from the moment this is created (inside the runtime).
pub(super) struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Must be called within the runtime's context.
    pub(super) fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        Signals {
            term: signal(SignalKind::terminate()).ok(),
            int: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// The next SIGTERM or SIGINT; returns its name.
    async fn next(&mut self) -> &'static str {
        let (Some(term), Some(int)) = (&mut self.term, &mut self.int) else {
            std::future::pending::<()>().await;
            return "none";
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }
}

fn panicked<T>(r: Result<T, oneshot::error::RecvError>) -> Result<T, AgentError> {
    r.map_err(|_| AgentError::PipelinePanicked)
}

/// Runs until the agent has stopped: returns the pipeline's result, or exits the process (1)
/// on a second signal or when the deadline passes during the drain.
pub(super) async fn until_stopped(
    mut signals: Signals,
    mut done: Done,
    tasks: Vec<JoinHandle<()>>,
    stop: CancellationToken,
    deadline: Duration,
) -> Result<Result<(), LakeError>, AgentError> {
    tokio::select! {
        r = &mut done => return pipeline_ended(panicked(r), tasks, &stop, deadline).await,
        s = signals.next() => tracing::info!(signal = s, "shutting down: stop reading, flush, commit"),
        () = stop.cancelled() => tracing::info!("shutting down on request: stop reading, flush, commit"),
    }
    stop.cancel();
    let started = Instant::now();
    // The pipeline commits; the control loops finish the pass they are in (a cull sent is
    // recorded), all within the deadline.
    let finish = async move {
        let r = done.await;
        for t in tasks {
            let _ = t.await;
        }
        r
    };
    tokio::select! {
        r = finish => {
            tracing::info!(seconds = started.elapsed().as_secs_f64(), "shutdown complete");
            panicked(r)
        }
        s = signals.next() => {
            tracing::warn!(signal = s, "second signal: exiting now (uncommitted records will be re-read on restart)");
            std::process::exit(1);
        }
        () = tokio::time::sleep(deadline) => {
            tracing::error!(seconds = deadline.as_secs_f64(), "shutdown deadline passed: exiting now (uncommitted records will be re-read on restart)");
            std::process::exit(1);
        }
    }
}

/// The pipeline ended by itself: every source ended, or a fatal error (e.g. the lake cannot
/// be written). Everything else stops with it, so no thread waits on a stop nobody gives (a
/// hang that also ignored SIGTERM).
async fn pipeline_ended(
    r: Result<Result<(), LakeError>, AgentError>,
    tasks: Vec<JoinHandle<()>>,
    stop: &CancellationToken,
    deadline: Duration,
) -> Result<Result<(), LakeError>, AgentError> {
    stop.cancel();
    if let Ok(Err(e)) = &r {
        tracing::error!(error = %e, "the pipeline failed: stopping the agent");
    }
    let wait = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(deadline, wait).await.is_err() {
        tracing::error!(
            seconds = deadline.as_secs_f64(),
            "control loops did not stop within the shutdown deadline"
        );
    }
    r
}
