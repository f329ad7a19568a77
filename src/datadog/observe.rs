//! The sink's side of the pipeline: the observer that derives points and hands them (and, when
//! log forwarding is on, log items) to the sink thread without ever blocking the pipeline.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::agent::pipeline::Observer;
use crate::datadog::Interval;
use crate::datadog::derive::{DeriveConfig, DerivingObserver, WallClock};
use crate::datadog::logs::{self, LogItem};
use crate::datadog::stats::SinkStats;
use crate::lake::batch::SourceInfo;
use crate::record::Record;

/// The observer for the pipeline: derives points and hands each closed interval to `tx`
/// without blocking (a full channel drops the interval, counted as `queue_full`).
pub fn observer(
    derive: DeriveConfig,
    tx: mpsc::Sender<Interval>,
    stats: Arc<SinkStats>,
) -> Box<dyn Observer> {
    Box::new(deriving(derive, tx, stats))
}

pub(crate) fn deriving(
    derive: DeriveConfig,
    tx: mpsc::Sender<Interval>,
    stats: Arc<SinkStats>,
) -> DerivingObserver<impl FnMut(Interval) + Send> {
    DerivingObserver::new(derive, WallClock::now(), move |iv: Interval| {
        if let Err(e) = tx.try_send(iv) {
            let iv = match e {
                mpsc::error::TrySendError::Full(iv) | mpsc::error::TrySendError::Closed(iv) => iv,
            };
            // One point per series per interval, as the payloads count them.
            stats.drop_points("queue_full", iv.points.len() as u64);
        }
    })
}

/// Tells the sink thread once that the pipeline runs (the lake opened): the sink's status line
/// is logged then, so a configuration error stays the only line the agent prints.
pub(crate) struct Announcing<O: Observer> {
    pub(crate) inner: O,
    pub(crate) started: Option<oneshot::Sender<()>>,
    pub(crate) logs: Option<LogTap>,
}

/// Records → log items, handed over without blocking (a full channel is a counted drop).
pub(crate) struct LogTap {
    pub(crate) tx: mpsc::Sender<LogItem>,
    pub(crate) host: String,
    pub(crate) tags: Vec<String>,
    pub(crate) stats: Arc<SinkStats>,
}

impl<O: Observer> Announcing<O> {
    fn announce(&mut self) {
        if let Some(tx) = self.started.take() {
            let _ = tx.send(());
        }
    }
}

impl<O: Observer> Observer for Announcing<O> {
    fn on_record(&mut self, rec: &Record<'_>, src: &SourceInfo, read_at: Instant) {
        self.announce();
        self.inner.on_record(rec, src, read_at);
        if let Some(t) = &self.logs
            && t.tx
                .try_send(logs::item(rec, src, &t.host, &t.tags))
                .is_err()
        {
            t.stats.drop_points("logs_queue_full", 1);
        }
    }
    fn on_tick(&mut self, now: Instant) {
        self.announce();
        self.inner.on_tick(now);
    }
    fn on_shutdown(&mut self) {
        self.inner.on_shutdown();
    }
}
