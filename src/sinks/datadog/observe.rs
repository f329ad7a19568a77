//! The sink's side of the pipeline: the observer that derives points and hands them (and, when
//! log forwarding is on, log items) to the sink thread without ever blocking the pipeline.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::lake::batch::SourceInfo;
use crate::parse::record::Record;
use crate::sinks::datadog::Interval;
use crate::sinks::datadog::derive::{DeriveConfig, DerivingObserver, WallClock};
use crate::sinks::datadog::logs::{self, LogItem};
use crate::sinks::datadog::stats::SinkStats;
use crate::stream::Observer;

/// Closed intervals kept on the pipeline's side while the channel is full (a backlog read at
/// once closes intervals much faster than the collector takes them): about 2.8 h at 10 s.
pub const OVERFLOW_DEPTH: usize = 1024;

/// The observer for the pipeline: derives points and hands each closed interval to `tx`
/// without blocking. While the channel is full, intervals wait in a bounded queue of
/// [`OVERFLOW_DEPTH`] on this side, in order, and go first at the next hand-over; past that the
/// *oldest* is dropped (counted as `queue_full`), so a long backlog keeps its newest hours,
/// the ones Datadog still accepts.
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
    let mut out = Handover {
        tx,
        stats,
        overflow: VecDeque::new(),
    };
    DerivingObserver::new(derive, WallClock::now(), move |iv: Interval| {
        out.overflow.push_back(iv);
        out.send_queued();
        while out.overflow.len() > OVERFLOW_DEPTH {
            if let Some(old) = out.overflow.pop_front() {
                out.dropped(&old);
            }
        }
    })
}

/// The channel to the sink thread and the intervals waiting for room in it.
struct Handover {
    tx: mpsc::Sender<Interval>,
    stats: Arc<SinkStats>,
    overflow: VecDeque<Interval>,
}

impl Handover {
    /// Send queued intervals, oldest first, until the channel is full.
    fn send_queued(&mut self) {
        while let Some(iv) = self.overflow.pop_front() {
            match self.tx.try_send(iv) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(iv)) => {
                    self.overflow.push_front(iv);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(iv)) => self.dropped(&iv),
            }
        }
    }

    fn dropped(&self, iv: &Interval) {
        // One point per series per interval, as the payloads count them.
        self.stats.drop_points("queue_full", iv.points.len() as u64);
    }
}

impl Drop for Handover {
    /// The pipeline stopped: one last try, and whatever still finds no room is counted.
    fn drop(&mut self) {
        self.send_queued();
        for iv in std::mem::take(&mut self.overflow) {
            self.dropped(&iv);
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use super::*;
    use crate::parse::prefix::Family;

    /// A backlog closes intervals faster than the sink takes them: the channel's share goes
    /// first, then the newest [`OVERFLOW_DEPTH`] wait in order and the ones between are dropped
    /// and counted; when the channel has room again the oldest waiting go next.
    #[test]
    fn a_full_channel_keeps_the_newest_intervals_in_order() {
        let (tx, mut rx) = mpsc::channel(4);
        let stats = Arc::new(SinkStats::default());
        let mut obs = deriving(DeriveConfig::default(), tx, stats.clone());
        let src = SourceInfo {
            hub: "h".into(),
            file: "f".into(),
            fp: "x".into(),
        };
        let t0 = 1_700_000_000_000_000i64;
        let feed = |obs: &mut DerivingObserver<_>, i: i64| {
            let mut r = Record::new("login", Family::Hub, "");
            r.ts = Some(t0 + i * 10_000_000);
            obs.on_record(&r, &src, Instant::now());
        };
        let n = 1100;
        for i in 0..n {
            feed(&mut obs, i);
        }
        let closed = obs.stats().intervals as i64;
        assert!(closed > 4 + OVERFLOW_DEPTH as i64, "{closed}");
        let mut got = Vec::new();
        while let Ok(iv) = rx.try_recv() {
            got.push(iv.start_s);
        }
        let s0 = t0 / 1_000_000;
        assert_eq!(got, [s0, s0 + 10, s0 + 20, s0 + 30], "the channel's share");
        let dropped = stats.dropped("queue_full");
        assert!(dropped > 0, "the middle was dropped and counted");
        // Room again: the oldest waiting interval is the first past the dropped ones.
        feed(&mut obs, n);
        let first_kept = closed - OVERFLOW_DEPTH as i64;
        let mut next = Vec::new();
        while let Ok(iv) = rx.try_recv() {
            next.push(iv.start_s);
        }
        assert_eq!(next.len(), 4);
        assert_eq!(next[0], s0 + 10 * first_kept, "{next:?}");
        assert!(next.windows(2).all(|w| w[1] == w[0] + 10));
        // Stopped with intervals still waiting: each is counted, none vanishes.
        let before = stats.dropped("queue_full");
        drop(obs);
        assert!(stats.dropped("queue_full") > before);
    }
}
