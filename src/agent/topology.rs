//! The parts of the agent, one builder each: the lake pipeline, the sources, the control
//! loops, the `[pods]` watch and the HTTP server. [`super::run_with`] wires them.
//!
//! Every part takes the agent's stop token (a child of the caller's shutdown token): threads
//! poll it, tasks `select!` on it. Tasks run on the process's one runtime (`rt`); a builder
//! that must wait for something async (a cluster client) does so with `rt.block_on`, which is
//! only ever called from the agent's own thread, never from inside the runtime.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::AgentError;
use super::config::AgentConfig;
use super::http;
use super::pipeline::{Pipeline, PipelineConfig};
use crate::control::admission::wait::CapacityView;
use crate::lake::manifest::{LakeError, Manifest, StreamPos};
use crate::lake::writer::WriterConfig;
use crate::parse::catalogue::Catalogue;
use crate::parse::reader::ReaderConfig;
use crate::parse::time::Zone;
use crate::sinks::lake::LakeSinkConfig;
use crate::sources::files as tail;
use crate::sources::kube;
use crate::sources::kube::pending::Pending;
use crate::stream::metrics::Metrics;
use crate::stream::{Observer, SourceMsg};

/// The lake, open for writing, and how the pipeline writes into it.
pub(super) struct Lake {
    pub manifest: Manifest,
    pub pipeline: PipelineConfig,
    pub progress: std::collections::HashMap<String, crate::lake::manifest::SourceProgress>,
    pub resume_streams: std::collections::HashMap<String, StreamPos>,
}

/// The zone, the catalogue and the lake; every failure here is a configuration problem.
pub(super) fn open_lake(cfg: &AgentConfig, metrics: &Metrics) -> Result<Lake, AgentError> {
    let zone = Zone::new(cfg.tz);
    let catalogue = match &cfg.parsers {
        Some(d) => Catalogue::from_dir(d),
        None => Catalogue::embedded(),
    }
    .map_err(AgentError::Catalogue)?;
    // A lake that cannot be opened for writing is a configuration problem (exit 2).
    let manifest = Manifest::open(&cfg.lake.path, &cfg.hub).map_err(AgentError::LakeOpen)?;
    metrics.lake_open.store(true, Ordering::Relaxed);
    let progress = manifest.progress().clone();
    let resume_streams = manifest.stream_positions().clone();
    let max_line = cfg.files.iter().map(|f| f.max_line_bytes).max();
    let reader = ReaderConfig {
        max_line_bytes: max_line.unwrap_or(ReaderConfig::default().max_line_bytes),
        ..ReaderConfig::default()
    };
    let pipeline = PipelineConfig {
        hub: cfg.hub.clone(),
        zone,
        catalogue: Arc::new(catalogue),
        reader,
        record_hold: cfg.record_hold,
        lake: LakeSinkConfig {
            writer: WriterConfig::default(),
            flush_interval: cfg.lake.flush_interval,
            flush_bytes: cfg.lake.flush_bytes,
            batch_rows: 64 * 1024,
            compact_min_files: cfg.lake.compact_min_files,
            retention: cfg.lake.retention,
        },
    };
    Ok(Lake {
        manifest,
        pipeline,
        progress,
        resume_streams,
    })
}

/// Binds the HTTP listener first, so that a bad address fails the start (exit 2).
pub(super) fn bind_http(
    rt: &Handle,
    cfg: &AgentConfig,
) -> Result<Option<tokio::net::TcpListener>, AgentError> {
    let Some(addr) = cfg.http else {
        return Ok(None);
    };
    rt.block_on(http::bind(addr))
        .map(Some)
        .map_err(|source| AgentError::Listen { addr, source })
}

fn thread(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, AgentError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(AgentError::Thread)
}

/// Starts the file tailers (a thread per `[[files]]`), stdin and the pod-log source, all
/// sending into `tx`. Returns the threads to join once the pipeline has stopped.
pub(super) fn start_sources(
    rt: &Handle,
    cfg: &AgentConfig,
    lake: &mut Lake,
    tx: SyncSender<SourceMsg>,
    stop: &CancellationToken,
    metrics: &Arc<Metrics>,
) -> Result<Vec<std::thread::JoinHandle<()>>, AgentError> {
    let mut threads = Vec::new();
    for f in &cfg.files {
        metrics.starting.fetch_add(1, Ordering::Relaxed);
        let t = tail::Tailer::new(
            f.clone(),
            lake.progress.clone(),
            tx.clone(),
            stop.clone(),
            metrics.clone(),
        );
        threads.push(thread("hubpulse-tail", move || t.run())?);
    }
    if cfg.stdin {
        metrics.starting.fetch_add(1, Ordering::Relaxed);
        let (tx, sd, m) = (tx.clone(), stop.clone(), metrics.clone());
        // Not joined: a read on stdin cannot be interrupted.
        thread("hubpulse-stdin", move || {
            crate::sources::stdin::stdin_thread(tx, sd, m, 1 << 20);
        })?;
    }
    if let Some(k) = &cfg.kubernetes {
        metrics.starting.fetch_add(1, Ordering::Relaxed);
        let resume = std::mem::take(&mut lake.resume_streams);
        super::kube_bridge::start(rt, k.clone(), resume, tx, stop.clone(), metrics.clone())?;
    }
    Ok(threads)
}

/// The time pending by reason (fed by the `[pods]` watch), exported on `/metrics`.
fn pending_stats(cfg: &AgentConfig, metrics: &Metrics) -> Option<Arc<Pending>> {
    cfg.pods.as_ref().map(|_| {
        let p = Arc::new(Pending::default());
        metrics.registry.register(p.clone());
        p
    })
}

/// The idle culler, quotas and admission (issue 5), the `[pods]` watch and the `[capacity]`
/// loop: observers for the pipeline, routes for the HTTP server, tasks to await at shutdown.
pub(super) fn start_control(
    rt: &Handle,
    cfg: &AgentConfig,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> Result<crate::control::Started, AgentError> {
    let pending = pending_stats(cfg, metrics);
    // The evidence of admission with capacity.
    let view = Arc::new(CapacityView::new(pending.clone()));
    let control = crate::control::start(
        &cfg.control,
        &cfg.lake.path,
        &cfg.hub,
        rt,
        metrics,
        Some(view.clone()),
        stop,
    )?;
    start_pods(rt, cfg, metrics, pending, stop)?;
    if let Some(c) = &cfg.capacity {
        crate::control::capacity::start(
            c,
            &cfg.lake.path,
            &cfg.hub,
            rt,
            metrics,
            Some(view),
            stop.clone(),
        )?;
    }
    Ok(control)
}

/// The `[pods]` watch: single-user pods, their events and nodes, into the pods table.
fn start_pods(
    rt: &Handle,
    cfg: &AgentConfig,
    metrics: &Metrics,
    pending: Option<Arc<Pending>>,
    stop: &CancellationToken,
) -> Result<(), AgentError> {
    let Some(p) = &cfg.pods else {
        return Ok(());
    };
    let client = rt
        .block_on(::kube::Client::try_default())
        .map_err(|source| AgentError::Cluster {
            what: "pods",
            source,
        })?;
    let events = Arc::new(kube::podevents::EventStats::default());
    metrics.registry.register(events.clone());
    let w = kube::podtable::PodWatch {
        namespace: p.namespace.clone(),
        selector: p.selector.clone(),
        sink: kube::podtable::PodSink::new(&cfg.lake.path, &cfg.hub),
        pending,
        events: Some(events),
        nodes: true,
    };
    rt.spawn(kube::podtable::watch(client, w, stop.clone()));
    tracing::info!(namespace = %p.namespace, "pods: watching single-user pods");
    Ok(())
}

/// The lake pipeline on a thread of its own; its result arrives on the returned receiver.
pub(super) fn start_pipeline(
    lake: Lake,
    rx: Receiver<SourceMsg>,
    observers: Vec<Box<dyn Observer>>,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> Result<tokio::sync::oneshot::Receiver<Result<(), LakeError>>, AgentError> {
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let (stop, m) = (stop.clone(), metrics.clone());
    thread("hubpulse-pipeline", move || {
        let p = Pipeline::new(lake.pipeline, lake.manifest, m, observers);
        let _ = done_tx.send(p.run(rx, &stop));
    })?;
    Ok(done_rx)
}

/// `/healthz`, `/metrics` and the control routes, until `stop`.
pub(super) fn start_http(
    rt: &Handle,
    listener: Option<tokio::net::TcpListener>,
    cfg: &AgentConfig,
    metrics: &Arc<Metrics>,
    routes: axum::Router,
    stop: &CancellationToken,
) {
    let Some(l) = listener else {
        return;
    };
    if let Ok(a) = l.local_addr() {
        tracing::info!(addr = %a, "serving /healthz and /metrics");
    }
    let (m, stop, limits) = (metrics.clone(), stop.clone(), cfg.http_limits);
    rt.spawn(async move {
        if let Err(e) = http::serve_limited(l, m, routes, limits, stop).await {
            tracing::error!(error = %e, "http server failed");
        }
    });
}
