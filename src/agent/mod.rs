//! `hubpulse run`: the live agent.
//!
//! ```text
//! file tailers (thread per [[files]]) ─┐
//! stdin (thread)                       ├─ bounded channel ─→ pipeline thread ─→ lake commits
//! pod logs (tokio task → bridge)      ─┘    (back-pressure)   (parse, Arrow,     (manifest =
//!                                                              observers)         checkpoints)
//! tokio runtime: signals, /healthz + /metrics, Kubernetes
//! ```
//!
//! Shutdown: the first SIGTERM/SIGINT stops reading; the pipeline takes what is queued, writes,
//! commits and returns; the process exits 0 within `shutdown_deadline`. A second signal (or the
//! deadline) exits at once with status 1 — and still loses nothing, because checkpoints only
//! ever cover committed rows.

pub mod config;
pub mod http;
pub mod kube;
pub mod metrics;
pub mod pipeline;
pub mod source;
pub mod tail;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Instant;

use crate::lake::manifest::{LakeError, Manifest};
use crate::lake::writer::WriterConfig;
use crate::parse::catalogue::Catalogue;
use crate::parse::reader::ReaderConfig;
use crate::parse::time::Zone;
use config::AgentConfig;
use kube::{PodLines, StreamPos};
use metrics::Metrics;
use pipeline::{Observer, Pipeline, PipelineConfig};
use source::{SourceId, SourceKind, SourceMsg};

/// Messages in flight between sources and the pipeline (each at most ~1 MiB of lines).
const CHANNEL_DEPTH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration or the environment is wrong (exit 2).
    #[error("{0}")]
    Config(String),
    /// Something failed while running (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl From<LakeError> for AgentError {
    fn from(e: LakeError) -> Self {
        match e {
            LakeError::Locked { .. } => AgentError::Config(e.to_string()),
            other => AgentError::Runtime(other.to_string()),
        }
    }
}

/// Run the agent until a signal (or until every source has ended, e.g. stdin alone at EOF).
pub fn run(cfg: AgentConfig, observers: Vec<Box<dyn Observer>>) -> Result<(), AgentError> {
    run_with(cfg, observers, Arc::new(Metrics::default()), None)
}

/// [`run`], with the caller's metrics (to watch progress) and an optional programmatic stop
/// (`true` = shut down gracefully, as on the first signal).
pub fn run_with(
    cfg: AgentConfig,
    observers: Vec<Box<dyn Observer>>,
    metrics: Arc<Metrics>,
    stop: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<(), AgentError> {
    let zone = Zone::new(cfg.tz);
    let catalogue = match &cfg.parsers {
        Some(d) => Catalogue::from_dir(d),
        None => Catalogue::embedded(),
    }
    .map_err(|e| AgentError::Config(format!("catalogue: {e}")))?;
    // A lake that cannot be opened for writing is a configuration problem (exit 2).
    let manifest = Manifest::open(&cfg.lake.path, &cfg.hub)
        .map_err(|e| AgentError::Config(format!("lake.path: {e}")))?;
    metrics.lake_open.store(true, Ordering::Relaxed);
    let progress = manifest.progress().clone();
    let resume_streams = manifest.stream_positions().clone();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| AgentError::Runtime(format!("tokio runtime: {e}")))?;
    let mut signals = {
        let _guard = rt.enter();
        Signals::install()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let listener = match cfg.http {
        Some(addr) => Some(
            rt.block_on(http::bind(addr))
                .map_err(|e| AgentError::Config(format!("http.listen {addr}: {e}")))?,
        ),
        None => None,
    };

    let shutdown = Arc::new(AtomicBool::new(false));
    let (tx, rx) = sync_channel::<SourceMsg>(CHANNEL_DEPTH);
    let max_line = cfg.files.iter().map(|f| f.max_line_bytes).max();
    let reader = ReaderConfig {
        max_line_bytes: max_line.unwrap_or(ReaderConfig::default().max_line_bytes),
        ..ReaderConfig::default()
    };
    let pcfg = PipelineConfig {
        hub: cfg.hub.clone(),
        zone,
        catalogue: Arc::new(catalogue),
        reader,
        writer: WriterConfig::default(),
        flush_interval: cfg.lake.flush_interval,
        flush_bytes: cfg.lake.flush_bytes,
        record_hold: cfg.record_hold,
        batch_rows: 64 * 1024,
        compact_min_files: cfg.lake.compact_min_files,
        retention: cfg.lake.retention,
    };

    let mut threads = Vec::new();
    for f in &cfg.files {
        metrics.starting.fetch_add(1, Ordering::Relaxed);
        let t = tail::Tailer::new(
            f.clone(),
            progress.clone(),
            tx.clone(),
            shutdown.clone(),
            metrics.clone(),
        );
        threads.push(
            std::thread::Builder::new()
                .name("hubpulse-tail".into())
                .spawn(move || t.run())
                .map_err(|e| AgentError::Runtime(format!("thread: {e}")))?,
        );
    }
    if cfg.stdin {
        metrics.starting.fetch_add(1, Ordering::Relaxed);
        let (tx, sd, m) = (tx.clone(), shutdown.clone(), metrics.clone());
        // Not joined: a read on stdin cannot be interrupted.
        std::thread::Builder::new()
            .name("hubpulse-stdin".into())
            .spawn(move || source::stdin_thread(tx, sd, m, 1 << 20))
            .map_err(|e| AgentError::Runtime(format!("thread: {e}")))?;
    }
    if let Some(k) = &cfg.kubernetes {
        metrics.starting.fetch_add(1, Ordering::Relaxed);
        start_kube(
            &rt,
            k.clone(),
            resume_streams,
            tx.clone(),
            stop_rx.clone(),
            metrics.clone(),
        )?;
    }
    drop(tx);

    // Time pending by reason (the [pods] watch) and the evidence of admission with capacity.
    let pending = cfg.pods.as_ref().map(|_| {
        let p = std::sync::Arc::new(kube::pending::Pending::default());
        if let Ok(mut extra) = metrics.extra.lock() {
            let r = p.clone();
            extra.push(std::sync::Arc::new(move |o: &mut String| r.render(o)));
        }
        p
    });
    let view = std::sync::Arc::new(crate::capacity::wait::CapacityView::new(pending.clone()));
    // The idle culler and quotas (issue 5): observers for the pipeline, routes for http.
    let control = crate::control::start(
        &cfg.control,
        &cfg.lake.path,
        &cfg.hub,
        &rt,
        &metrics,
        Some(view.clone()),
        stop_rx.clone(),
    )
    .map_err(AgentError::Config)?;
    if let Some(p) = &cfg.pods {
        let client = rt
            .block_on(::kube::Client::try_default())
            .map_err(|e| AgentError::Config(format!("pods: no usable cluster config: {e}")))?;
        let events = std::sync::Arc::new(kube::podevents::EventStats::default());
        if let Ok(mut extra) = metrics.extra.lock() {
            let r = events.clone();
            extra.push(std::sync::Arc::new(move |o: &mut String| r.render(o)));
        }
        let w = kube::podtable::PodWatch {
            namespace: p.namespace.clone(),
            selector: p.selector.clone(),
            sink: kube::podtable::PodSink::new(&cfg.lake.path, &cfg.hub),
            pending,
            events: Some(events),
            nodes: true,
        };
        let stop = stop_rx.clone();
        rt.spawn(kube::podtable::watch(client, w, stop));
        tracing::info!(namespace = %p.namespace, "pods: watching single-user pods");
    }
    if let Some(c) = &cfg.capacity {
        crate::capacity::start(
            c,
            &cfg.lake.path,
            &cfg.hub,
            &rt,
            &metrics,
            Some(view),
            stop_rx.clone(),
        )
        .map_err(AgentError::Config)?;
    }
    let mut observers = observers;
    observers.extend(control.observers);
    let extra_routes = control.router.unwrap_or_default();
    let control_tasks = control.tasks;

    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let sd = shutdown.clone();
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("hubpulse-pipeline".into())
        .spawn(move || {
            let p = Pipeline::new(pcfg, manifest, m, observers);
            let _ = done_tx.send(p.run(rx, &sd));
        })
        .map_err(|e| AgentError::Runtime(format!("thread: {e}")))?;

    if let Some(l) = listener {
        if let Ok(a) = l.local_addr() {
            tracing::info!(addr = %a, "serving /healthz and /metrics");
        }
        let (m, stop, limits) = (metrics.clone(), stop_rx.clone(), cfg.http_limits);
        rt.spawn(async move {
            if let Err(e) = http::serve_limited(l, m, extra_routes, limits, stop).await {
                tracing::error!(error = %e, "http server failed");
            }
        });
    }

    let deadline = cfg.shutdown_deadline;
    let outcome = rt.block_on(async move {
        let mut done_rx = done_rx;
        let external = async move {
            match stop {
                Some(mut s) => {
                    let _ = s.wait_for(|v| *v).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            r = &mut done_rx => {
                // The pipeline ended by itself: every source ended, or a fatal error (e.g. the
                // lake cannot be written). Everything else stops with it, so no thread waits on
                // a shutdown flag nobody sets (a hang that also ignored SIGTERM).
                shutdown.store(true, Ordering::Relaxed);
                let _ = stop_tx.send(true);
                let r = r.map_err(|_| AgentError::Runtime("pipeline thread panicked".into()));
                if let Ok(Err(e)) = &r {
                    tracing::error!(error = %e, "the pipeline failed: stopping the agent");
                }
                let wait = async {
                    for t in control_tasks {
                        let _ = t.await;
                    }
                };
                if tokio::time::timeout(deadline, wait).await.is_err() {
                    tracing::error!(seconds = deadline.as_secs_f64(), "control loops did not stop within the shutdown deadline");
                }
                return r;
            }
            s = signals.next() => tracing::info!(signal = s, "shutting down: stop reading, flush, commit"),
            _ = external => tracing::info!("shutting down on request: stop reading, flush, commit"),
        }
        shutdown.store(true, Ordering::Relaxed);
        let _ = stop_tx.send(true);
        let started = Instant::now();
        // The pipeline commits; the control loops finish the pass they are in (a cull sent is
        // recorded), all within the deadline.
        let finish = async move {
            let r = done_rx.await;
            for t in control_tasks {
                let _ = t.await;
            }
            r
        };
        tokio::select! {
            r = finish => {
                tracing::info!(seconds = started.elapsed().as_secs_f64(), "shutdown complete");
                r.map_err(|_| AgentError::Runtime("pipeline thread panicked".into()))
            }
            s = signals.next() => {
                tracing::warn!(signal = s, "second signal: exiting now (uncommitted records will be re-read on restart)");
                std::process::exit(1);
            }
            _ = tokio::time::sleep(deadline) => {
                tracing::error!(seconds = deadline.as_secs_f64(), "shutdown deadline passed: exiting now (uncommitted records will be re-read on restart)");
                std::process::exit(1);
            }
        }
    });
    let result = outcome?.map_err(AgentError::from);
    for t in threads {
        let _ = t.join();
    }
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    result
}

/// SIGTERM and SIGINT, caught from the moment this is created (inside the runtime).
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
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

fn start_kube(
    rt: &tokio::runtime::Runtime,
    cfg: kube::KubeSourceConfig,
    resume: HashMap<String, StreamPos>,
    tx: SyncSender<SourceMsg>,
    stop: tokio::sync::watch::Receiver<bool>,
    metrics: Arc<Metrics>,
) -> Result<(), AgentError> {
    // In-cluster service account, or KUBECONFIG / ~/.kube/config.
    let client = rt
        .block_on(::kube::Client::try_default())
        .map_err(|e| AgentError::Config(format!("kubernetes: no usable cluster config: {e}")))?;
    let stats = Arc::new(kube::KubeStats::default());
    if let Ok(mut k) = metrics.kube.lock() {
        *k = Some(stats.clone());
    }
    let (ptx, prx) = tokio::sync::mpsc::channel::<PodLines>(CHANNEL_DEPTH);
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("hubpulse-kube".into())
        .spawn(move || bridge_pod_lines(prx, tx, m))
        .map_err(|e| AgentError::Runtime(format!("thread: {e}")))?;
    let (ns, m) = (cfg.namespace.clone(), metrics.clone());
    let st = stats.clone();
    rt.spawn(async move {
        // Ready once the first stream is attached (or the source stops).
        let ready = {
            let (st, m) = (st.clone(), m.clone());
            tokio::spawn(async move {
                while st.attaches.load(Ordering::Relaxed) == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                m.starting.fetch_sub(1, Ordering::Relaxed);
            })
        };
        let r = kube::follow(client, cfg, resume, ptx, stop, st).await;
        if !ready.is_finished() {
            ready.abort();
            m.starting.fetch_sub(1, Ordering::Relaxed);
        }
        if let Err(e) = r {
            tracing::error!(namespace = %ns, error = %e, "kubernetes pod-log source stopped");
            m.error("kube_source");
        }
    });
    Ok(())
}

/// Turns pod-log batches into pipeline messages: one source per stream, with byte offsets
/// counted from the stream's first line in this run (positions travel in `stamps`).
pub fn bridge_pod_lines(
    mut rx: tokio::sync::mpsc::Receiver<PodLines>,
    tx: SyncSender<SourceMsg>,
    metrics: Arc<Metrics>,
) {
    let mut streams: HashMap<String, (SourceId, u64)> = HashMap::new();
    while let Some(batch) = rx.blocking_recv() {
        let entry = match streams.get_mut(&batch.stream) {
            Some(e) => e,
            None => {
                let id = source::next_id();
                let msg = SourceMsg::Attach {
                    id,
                    kind: SourceKind::Stream {
                        key: batch.stream.clone(),
                    },
                    start: 0,
                    prefix: None,
                };
                if tx.send(msg).is_err() {
                    return;
                }
                metrics.sources_attached.fetch_add(1, Ordering::Relaxed);
                streams.entry(batch.stream.clone()).or_insert((id, 0))
            }
        };
        let (id, offset) = *entry;
        let n = batch.bytes.len() as u64;
        entry.1 += n;
        metrics.bytes_read.fetch_add(n, Ordering::Relaxed);
        let msg = SourceMsg::Lines {
            id,
            start: offset,
            bytes: batch.bytes,
            stamps: batch.ends,
            read_at: Instant::now(),
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}
