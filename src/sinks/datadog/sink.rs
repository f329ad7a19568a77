//! The Datadog sink as it runs inside `hubpulse run`: the pipeline observer, the collector that
//! builds payloads every flush interval, the spool, and the sender.
//!
//! ```text
//! pipeline thread                     sink thread (blocks on the process's runtime)
//! DerivingObserver ─ try_send ─► channel ─► collector ──► PromState (/metrics)
//!  (never blocks; a full             (1024      │ every flush_interval: payload::build
//!   channel is a counted drop)     intervals)   ▼
//!                                             Spool (memory ≤ memory_limit, then disk) ─► Sender ─► intake
//! ```
//!
//! # Guarantees
//! * The observer never blocks the pipeline: it hands closed intervals over with `try_send`.
//! * Every point that does not reach Datadog is counted in `hubpulse_datadog_dropped_points_total`
//!   by a bounded reason (`queue_full`, `expired`, `bad_request`, `forbidden`, `rejected`,
//!   `too_large`, `buffer_full`, `spool_full`, `spool_io`, `invalid_value`, `logs_queue_full`).
//!   The counters are in [`crate::sinks::datadog::stats`], the observer in `observe.rs`.
//! * Shutdown ([`SinkHandle::finish`]): the last intervals are built and sent until the grace
//!   deadline; what is left is written to the spool directory and sent by the next run.
//! * Without a key (or with `enabled = false`) nothing is sent; the derived metrics are still
//!   exported on `/metrics`.
//!
//! The sink runs on a thread of its own that drives it with `Handle::block_on` on the process's
//! one runtime: its timers and sockets are the runtime's, while building and compressing
//! payloads and writing the spool (synchronous work) stay off the runtime's worker threads.
//! [`start`] must therefore be given a handle, and is called from outside or inside the runtime
//! alike (the thread it starts is never a runtime thread).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot, watch};

use crate::sinks::SinkError;
use crate::sinks::datadog::Interval;
use crate::sinks::datadog::config::{self, ApiKey, DatadogConfig, INSTANCE_TAG};
use crate::sinks::datadog::derive::DeriveConfig;
use crate::sinks::datadog::events;
use crate::sinks::datadog::logs::{self, LogItem};
pub use crate::sinks::datadog::observe::observer;
use crate::sinks::datadog::observe::{Announcing, LogTap, deriving};
use crate::sinks::datadog::payload::{self, Codec, PayloadConfig};
use crate::sinks::datadog::retry::RetryPolicy;
use crate::sinks::datadog::sender::{
    Delivery, DryRunTransport, HttpTransport, RealTimer, Sender, SharedTimer, Transport,
    deadline_passed, sleep_until,
};
use crate::sinks::datadog::spool::{Spool, SpoolConfig};
pub use crate::sinks::datadog::stats::SinkStats;
use crate::sinks::prometheus::PromState;
use crate::stream::Observer;
use crate::stream::metrics::Metrics;

/// Closed intervals in flight from the pipeline to the collector (about 2.8 h at 10 s).
pub const CHANNEL_DEPTH: usize = 1024;
/// Log items in flight from the pipeline to the collector (with `[datadog] logs = true`).
pub const LOG_CHANNEL_DEPTH: usize = 16_384;

/// How the collector builds payloads.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub payload: PayloadConfig,
    pub spool: SpoolConfig,
    pub flush_interval: Duration,
    /// Also build spawn-failure and cull events ([`crate::sinks::datadog::events`]).
    pub events: bool,
}

/// Collector + spool + sender; `run` is the whole sink, on any tokio runtime (tests pause time).
pub struct Sink<T: Transport> {
    sender: Option<Sender<T>>,
    spool: Mutex<Spool>,
    opts: SinkOptions,
    stats: Arc<SinkStats>,
    prom: Arc<Mutex<PromState>>,
    notify: Notify,
    input_done: AtomicBool,
    sending: bool,
    timer: SharedTimer,
    /// Records as logs ([`logs`]), when forwarding is on.
    logs_rx: Option<mpsc::Receiver<LogItem>>,
}

impl<T: Transport> Sink<T> {
    /// `sender: None`: derive for `/metrics` only, send nothing (no spool directory is opened).
    ///
    /// # Errors
    /// The spool directory cannot be opened or is held by another agent.
    pub fn new(
        mut opts: SinkOptions,
        sender: Option<Sender<T>>,
        stats: Arc<SinkStats>,
        prom: Arc<Mutex<PromState>>,
        timer: SharedTimer,
    ) -> Result<Self, SinkError> {
        if sender.is_none() {
            opts.spool.dir = None;
        }
        let spool = Spool::open(opts.spool.clone()).map_err(|source| SinkError::Spool {
            dir: opts.spool.dir.clone().unwrap_or_else(|| "-".into()),
            source,
        })?;
        stats.spool(&spool);
        let sending = sender.is_some();
        Ok(Sink {
            sender,
            spool: Mutex::new(spool),
            opts,
            stats,
            prom,
            notify: Notify::new(),
            input_done: AtomicBool::new(false),
            sending,
            timer,
            logs_rx: None,
        })
    }

    /// Also batch the log items arriving on `rx` into `/api/v2/logs` payloads.
    #[must_use]
    pub fn with_logs(mut self, rx: mpsc::Receiver<LogItem>) -> Self {
        self.logs_rx = Some(rx);
        self
    }

    /// Run until `rx` is closed and everything is delivered, or until the deadline set through
    /// `deadline` passes; then spill what is left to disk.
    pub async fn run(
        mut self,
        rx: mpsc::Receiver<Interval>,
        deadline: watch::Receiver<Option<u64>>,
    ) {
        let mut sender = self.sender.take();
        let logs_rx = self.logs_rx.take();
        let this = &self;
        let collect = this.collect(rx, logs_rx);
        let send = async {
            if let Some(s) = sender.as_mut() {
                this.send_loop(s, deadline).await;
            }
        };
        tokio::join!(collect, send);
        if let Ok(mut s) = self.spool.lock() {
            let left = s.len();
            let drops = s.persist();
            if left > 0 && s.dir().is_some() {
                tracing::info!(
                    payloads = left,
                    "datadog: payloads not yet delivered are spooled for the next run"
                );
            }
            self.stats.drops(drops);
            self.stats.spool(&s);
        }
    }

    async fn collect(
        &self,
        mut rx: mpsc::Receiver<Interval>,
        mut logs_rx: Option<mpsc::Receiver<LogItem>>,
    ) {
        let every = u64::try_from(self.opts.flush_interval.as_millis())
            .unwrap_or(10_000)
            .max(1);
        let mut next = self.timer.mono_ms() + every;
        let mut pending: Vec<Interval> = Vec::new();
        let mut pending_logs: Vec<LogItem> = Vec::new();
        loop {
            tokio::select! {
                Some(item) = next_log(&mut logs_rx) => {
                    pending_logs.push(item);
                    if pending_logs.len() >= logs::MAX_ITEMS {
                        self.build_logs(&mut pending_logs);
                    }
                }
                m = rx.recv() => match m {
                    Some(iv) => {
                        self.stats.bump(&self.stats.intervals);
                        if let Ok(mut p) = self.prom.lock() {
                            p.observe(&iv);
                        }
                        if self.sending {
                            pending.push(iv);
                        }
                    }
                    None => break,
                },
                () = sleep_until(&self.timer, next) => {
                    self.build(&mut pending);
                    self.build_logs(&mut pending_logs);
                    next = self.timer.mono_ms().max(next) + every;
                }
            }
        }
        // The pipeline is gone: what its log tap queued is all there will be.
        if let Some(l) = logs_rx.as_mut() {
            while let Ok(item) = l.try_recv() {
                pending_logs.push(item);
            }
        }
        self.build(&mut pending);
        self.build_logs(&mut pending_logs);
        self.input_done.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn build_logs(&self, pending: &mut Vec<LogItem>) {
        if pending.is_empty() || !self.sending {
            pending.clear();
            return;
        }
        let items = std::mem::take(pending);
        let n = items.len() as u64;
        match logs::build(items, Codec::Gzip) {
            Ok(payloads) => self.enqueue(payloads),
            Err(e) => {
                tracing::error!(error = %e, "datadog: cannot build log payloads; dropped");
                self.stats.drop_points("invalid_value", n);
            }
        }
    }

    fn enqueue(&self, payloads: Vec<payload::Payload>) {
        if let Ok(mut s) = self.spool.lock() {
            for p in payloads {
                let d = s.push(p);
                self.stats.drops(d);
            }
            self.stats.spool(&s);
        }
        self.notify.notify_one();
    }

    fn build(&self, pending: &mut Vec<Interval>) {
        if pending.is_empty() {
            return;
        }
        let ivs = std::mem::take(pending);
        let built = match payload::build(&ivs, &self.opts.payload) {
            Ok(b) => b,
            Err(e) => {
                let points: usize = ivs.iter().map(|i| i.points.len()).sum();
                tracing::error!(error = %e, "datadog: cannot build payloads; dropped");
                self.stats.drop_points("invalid_value", points as u64);
                return;
            }
        };
        self.stats
            .drop_points("invalid_value", built.dropped_values);
        self.stats.drop_points("too_large", built.dropped_series);
        let mut payloads = built.payloads;
        if self.opts.events {
            let (host, tags) = (&self.opts.payload.host, &self.opts.payload.tags);
            for iv in &ivs {
                payloads.extend(events::from_interval(iv, host, tags));
            }
        }
        self.enqueue(payloads);
    }

    async fn send_loop(&self, sender: &mut Sender<T>, mut deadline: watch::Receiver<Option<u64>>) {
        loop {
            let (head, drops) = match self.spool.lock() {
                Ok(mut s) => s.front(),
                Err(_) => return,
            };
            self.stats.drops(drops);
            let Some((seq, p)) = head else {
                if self.input_done.load(Ordering::SeqCst) {
                    if self.spool.lock().is_ok_and(|s| s.is_empty()) {
                        return;
                    }
                    continue;
                }
                tokio::select! {
                    () = self.notify.notified() => {}
                    () = deadline_passed(&self.timer, &mut deadline) => return,
                }
                continue;
            };
            match sender.deliver(p, &mut deadline).await {
                Delivery::Finished => {
                    if let Ok(mut s) = self.spool.lock() {
                        s.ack(seq);
                        self.stats.spool(&s);
                    }
                }
                Delivery::Interrupted => return,
            }
        }
    }
}

/// The running sink thread.
pub struct SinkHandle {
    deadline: watch::Sender<Option<u64>>,
    thread: std::thread::JoinHandle<()>,
    grace: Duration,
    timer: SharedTimer,
}

impl SinkHandle {
    /// Call once the pipeline has stopped (its observer, and so the channel, dropped): send what
    /// is left for at most the grace period, spool the rest, and wait for the thread.
    pub fn finish(self) {
        let grace = u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX / 2);
        let _ = self.deadline.send(Some(self.timer.mono_ms() + grace));
        if self.thread.join().is_err() {
            tracing::error!("datadog sink thread panicked");
        }
    }
}

fn spawn<T: Transport>(
    sink: Sink<T>,
    rx: mpsc::Receiver<Interval>,
    grace: Duration,
    started: oneshot::Receiver<()>,
    status: String,
    rt: &tokio::runtime::Handle,
) -> Result<SinkHandle, SinkError> {
    let timer = sink.timer.clone();
    let (dtx, drx) = watch::channel(None);
    let rt = rt.clone();
    let thread = std::thread::Builder::new()
        .name("hubpulse-datadog".into())
        .spawn(move || {
            rt.block_on(async move {
                let announce = async move {
                    if started.await.is_ok() {
                        tracing::info!("{status}");
                    }
                };
                tokio::join!(sink.run(rx, drx), announce);
            });
        })
        .map_err(SinkError::Thread)?;
    Ok(SinkHandle {
        deadline: dtx,
        thread,
        grace,
        timer,
    })
}

/// Start the sink for `hubpulse run`: the observer to give the pipeline, and the handle to
/// finish it after the pipeline returns. `state` is the default home of the spool
/// ([`crate::lake::LakeLocation::state_dir`]).
///
/// # Errors
/// A bad `DD_SITE` or key, an unusable spool directory or dry-run file (exit 2).
pub fn start(
    rt: &tokio::runtime::Handle,
    cfg: &DatadogConfig,
    state: &Path,
    metrics: &Metrics,
    grace: Duration,
) -> Result<(Box<dyn Observer>, SinkHandle), SinkError> {
    let stats = Arc::new(SinkStats::default());
    let prom = Arc::new(Mutex::new(PromState::default()));
    metrics.registry.register(stats.clone());
    metrics
        .registry
        .register(crate::sinks::prometheus::PromFamilies(prom.clone()));
    let host = cfg.host.clone().unwrap_or_else(config::hostname);
    let instance = cfg.instance.clone().unwrap_or_else(|| host.clone());
    let mut pcfg = PayloadConfig::new(host);
    pcfg.tags = std::iter::once(format!("{INSTANCE_TAG}:{instance}"))
        .chain(cfg.tags.iter().cloned())
        .collect();
    pcfg.series_codec = cfg.compression;
    pcfg.distribution_codec = Codec::Deflate;
    let mut opts = SinkOptions {
        payload: pcfg,
        spool: SpoolConfig {
            dir: Some(
                cfg.spool_dir
                    .clone()
                    .unwrap_or_else(|| state.join("datadog-spool")),
            ),
            memory_limit: usize::try_from(cfg.memory_limit).unwrap_or(usize::MAX),
            disk_limit: cfg.disk_limit,
        },
        flush_interval: cfg.flush_interval,
        events: cfg.events,
    };
    let derive = DeriveConfig {
        interval_secs: cfg.flush_interval.as_secs().clamp(1, 3600) as u32,
        ..DeriveConfig::default()
    };
    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let (started_tx, started) = oneshot::channel();
    let key = ApiKey::from_env("DD_API_KEY");
    let sending = cfg.dry_run.is_some() || (cfg.enabled && key.is_some());
    let (log_tap, logs_rx) = if cfg.logs && sending {
        let (ltx, lrx) = mpsc::channel(LOG_CHANNEL_DEPTH);
        let tap = LogTap {
            tx: ltx,
            host: opts.payload.host.clone(),
            tags: opts.payload.tags.clone(),
            stats: stats.clone(),
        };
        (Some(tap), Some(lrx))
    } else {
        (None, None)
    };
    let obs = Box::new(Announcing {
        inner: deriving(derive, tx, stats.clone()).with_hub_activity(metrics.hub_activity.clone()),
        started: Some(started_tx),
        logs: log_tap,
    });
    let timer = RealTimer::shared();
    let seed = u64::from(std::process::id()) ^ timer.unix_s().unsigned_abs();
    let off = |why: &str| format!("datadog: {why}; the derived metrics are on /metrics only");
    let handle = if let Some(path) = &cfg.dry_run {
        let t = DryRunTransport::create(path).map_err(|source| SinkError::DryRun {
            path: path.clone(),
            source,
        })?;
        let status = format!(
            "datadog: dry run, payloads are written to {}, nothing is sent",
            path.display()
        );
        // Everything is written, however old: a dry run shows what the agent derives. No
        // spool: a dry run must not leave payloads for a later real run to send.
        let policy = RetryPolicy {
            max_age_secs: i64::MAX / 2,
            ..RetryPolicy::default()
        };
        opts.spool.dir = None;
        let s = Sender::new(t, policy, timer.clone(), stats.clone(), seed);
        let sink = attach_logs(Sink::new(opts, Some(s), stats, prom, timer)?, logs_rx);
        spawn(sink, rx, grace, started, status, rt)?
    } else if !cfg.enabled {
        let status = off("disabled ([datadog] enabled = false)");
        let sink = Sink::<HttpTransport>::new(opts, None, stats, prom, timer)?;
        spawn(sink, rx, grace, started, status, rt)?
    } else if let Some(key) = key {
        let base = config::api_base(cfg)?;
        let t = HttpTransport::new(&base, &key, cfg.request_timeout)?
            .with_logs_base(&config::logs_base(cfg)?);
        let status = format!(
            "datadog: sending metrics to {base}{}",
            if cfg.logs {
                ", and records as logs"
            } else {
                ""
            }
        );
        let s = Sender::new(
            t,
            RetryPolicy::default(),
            timer.clone(),
            stats.clone(),
            seed,
        );
        let sink = attach_logs(Sink::new(opts, Some(s), stats, prom, timer)?, logs_rx);
        spawn(sink, rx, grace, started, status, rt)?
    } else {
        let status = off("DD_API_KEY is not set, the Datadog sink is off");
        let sink = Sink::<HttpTransport>::new(opts, None, stats, prom, timer)?;
        spawn(sink, rx, grace, started, status, rt)?
    };
    Ok((obs, handle))
}

/// The next log item, or never when log forwarding is off (a `select!` branch).
async fn next_log(rx: &mut Option<mpsc::Receiver<LogItem>>) -> Option<LogItem> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

fn attach_logs<T: Transport>(sink: Sink<T>, rx: Option<mpsc::Receiver<LogItem>>) -> Sink<T> {
    match rx {
        Some(rx) => sink.with_logs(rx),
        None => sink,
    }
}
