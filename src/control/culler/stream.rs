//! The culler's eyes on the log stream: an [`Observer`] on the pipeline thread that notes which
//! servers just started and which users' servers sent a heartbeat, and hands them to the
//! culler's task in coalesced batches. **Nothing here is activity**: the culler decides from the
//! hub's `last_activity` alone (see `decide.rs` and ARCHITECTURE.md, "The activity model"); the
//! stream only tells it *when to look*.
//!
//! What the stream tells the culler (never the culler's own API calls):
//! - `spawn_succeeded` (`User {name}[:{server}] took N seconds to start`, logged by
//!   `BaseHandler.finish_user_spawn` in `jupyterhub/handlers/base.py`, 1.x–6.x, once the server
//!   is ready): a new server. Its earliest possible deadline is its start (`started`, set by
//!   `User.spawn` in `jupyterhub/user.py` when the spawn begins, N seconds before the line)
//!   plus the shortest idle limit; the culler reads the user then (or at the next full listing,
//!   whichever comes first) and schedules the true deadline.
//! - a 2xx `POST /hub/api/users/{user}/activity`: a heartbeat of one of the user's servers
//!   (`notify_activity` in `jupyterhub/singleuser/extension.py` re-posts an unchanged time every
//!   `JUPYTERHUB_ACTIVITY_INTERVAL`). It proves a server is *alive*; for a user the culler does
//!   not know to be running a server (a spawn line it missed), it triggers one read.
//!
//! # Guarantees
//! - Never blocks the pipeline: signals are folded into a small batch and sent at most every
//!   tick with `try_send`; when the channel is full the batch is kept (and keeps folding) until
//!   the next tick, so nothing is lost and memory is bounded by the number of distinct users
//!   seen between two successful sends.
//! - Every record, signal or not, is a heartbeat of the *stream*: the culler's stale-data guard
//!   reads the time of the last record and the lag of the newest one.
//! - A forged line can only make the culler *look* (one read, bounded per user); it cannot
//!   move a deadline, stop or keep a server.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::lake::batch::SourceInfo;
use crate::parse::record::Record;
use crate::stream::Observer;

/// A server the stream saw start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spawned {
    pub user: String,
    pub server: String,
    /// When the spawn began (UTC µs): the line's time minus the duration it reports.
    pub began_us: i64,
}

/// Signals seen since the last batch (timestamps are UTC µs).
#[derive(Debug, Default, Clone)]
pub struct StreamBatch {
    pub spawned: Vec<Spawned>,
    /// Users whose server sent a heartbeat, with the newest heartbeat's time.
    pub heartbeats: HashMap<String, i64>,
    /// When the newest record was read (any record).
    pub last_record: Option<Instant>,
    /// How far behind the wall clock the newest stamped record was when it was read.
    pub last_lag: Option<Duration>,
}

impl StreamBatch {
    fn is_empty(&self) -> bool {
        self.last_record.is_none()
    }
}

pub struct ActivityObserver {
    tx: mpsc::Sender<StreamBatch>,
    pending: StreamBatch,
}

impl ActivityObserver {
    pub fn new(tx: mpsc::Sender<StreamBatch>) -> Self {
        ActivityObserver {
            tx,
            pending: StreamBatch::default(),
        }
    }
}

/// What a record tells the culler.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal<'a> {
    /// A server became ready; `seconds` is how long its spawn took, if the line says.
    Spawned {
        user: &'a str,
        server: &'a str,
        seconds: Option<f64>,
    },
    /// One of the user's servers is alive.
    Heartbeat { user: &'a str },
}

/// The signal in a record, if any.
pub fn classify<'a>(rec: &'a Record<'_>) -> Option<Signal<'a>> {
    let user = rec.user.as_deref()?;
    if rec.kind == "spawn_succeeded" {
        return Some(Signal::Spawned {
            user,
            server: rec.server_name.as_deref().unwrap_or(""),
            seconds: rec.duration_ms.map(|ms| ms / 1000.0),
        });
    }
    let ok = rec.status.is_some_and(|s| (200..300).contains(&s));
    if ok && rec.method == Some("POST") && rec.route == Some("/hub/api/users/{user}/activity") {
        return Some(Signal::Heartbeat { user });
    }
    None
}

impl Observer for ActivityObserver {
    fn on_record(&mut self, rec: &Record<'_>, _src: &SourceInfo, read_at: Instant) {
        self.pending.last_record = Some(read_at);
        let Some(ts) = rec.ts else { return };
        let lag_us = chrono::Utc::now().timestamp_micros() - ts;
        self.pending.last_lag = Some(Duration::from_micros(lag_us.max(0) as u64));
        match classify(rec) {
            Some(Signal::Spawned {
                user,
                server,
                seconds,
            }) => {
                let took = seconds
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .unwrap_or(0.0);
                self.pending.spawned.push(Spawned {
                    user: user.to_string(),
                    server: server.to_string(),
                    began_us: ts - (took * 1e6) as i64,
                });
            }
            Some(Signal::Heartbeat { user }) => {
                let e = self
                    .pending
                    .heartbeats
                    .entry(user.to_string())
                    .or_insert(ts);
                *e = (*e).max(ts);
            }
            None => {}
        }
    }

    fn on_tick(&mut self, _now: Instant) {
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        match self.tx.try_send(batch) {
            Ok(()) => {}
            // Full: keep folding into what we have and try again next tick.
            Err(mpsc::error::TrySendError::Full(b)) => self.pending = b,
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// The culler's view of the stream's health.
#[derive(Debug, Default)]
pub struct StreamState {
    pub last_record: Option<Instant>,
    pub last_lag: Option<Duration>,
}

impl StreamState {
    /// Folds a batch's health in; returns its signals.
    pub fn apply(&mut self, b: StreamBatch) -> (Vec<Spawned>, HashMap<String, i64>) {
        if b.last_record.is_some() {
            self.last_record = b.last_record;
        }
        if b.last_lag.is_some() {
            self.last_lag = b.last_lag;
        }
        (b.spawned, b.heartbeats)
    }

    /// Stale: no record yet, none for `max_silence`, or the newest one lagged over `max_lag`.
    pub fn is_stale(&self, now: Instant, max_silence: Duration, max_lag: Duration) -> bool {
        match self.last_record {
            None => true,
            Some(t) => {
                now.saturating_duration_since(t) > max_silence
                    || self.last_lag.is_some_and(|l| l > max_lag)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::parse::prefix::Family;
    use std::borrow::Cow;

    fn req(
        route: &'static str,
        method: &'static str,
        status: u16,
        server: Option<&'static str>,
    ) -> Record<'static> {
        let mut r = Record::new("request", Family::Hub, "");
        r.user = Some(Cow::Borrowed("alice"));
        r.route = Some(route);
        r.method = Some(method);
        r.status = Some(status);
        r.server_name = server.map(Cow::Borrowed);
        r.ts = Some(1);
        r
    }

    fn source() -> SourceInfo {
        SourceInfo {
            hub: "h".into(),
            file: "f".into(),
            fp: "0".into(),
        }
    }

    #[test]
    fn spawns_and_activity_posts_are_signals_and_nothing_else_is() {
        let a = req("/hub/api/users/{user}/activity", "POST", 200, None);
        assert_eq!(classify(&a), Some(Signal::Heartbeat { user: "alice" }));
        // Requests to the user's server, the culler's own calls, failures: no signal.
        for r in [
            req("/user/{user}/{server}/api/kernels", "GET", 200, Some("gpu")),
            req("/hub/api/users/{user}/server", "DELETE", 204, None),
            req("/hub/api/users/{user}/activity", "POST", 400, None),
        ] {
            assert_eq!(classify(&r), None, "{r:?}");
        }
        // `User bob:gpu took 2.5 seconds to start` (handlers/base.py, finish_user_spawn).
        let mut s = Record::new("spawn_succeeded", Family::Hub, "");
        s.user = Some(Cow::Borrowed("bob"));
        s.server_name = Some(Cow::Borrowed("gpu"));
        s.duration_ms = Some(2500.0);
        assert_eq!(
            classify(&s),
            Some(Signal::Spawned {
                user: "bob",
                server: "gpu",
                seconds: Some(2.5)
            })
        );
    }

    #[test]
    fn a_spawn_is_dated_from_when_it_began() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut o = ActivityObserver::new(tx);
        let src = source();
        let mut s = Record::new("spawn_succeeded", Family::Hub, "");
        s.user = Some(Cow::Borrowed("bob"));
        s.duration_ms = Some(2500.0);
        s.ts = Some(10_000_000);
        o.on_record(&s, &src, Instant::now());
        o.on_tick(Instant::now());
        let b = rx.try_recv().unwrap();
        assert_eq!(
            b.spawned,
            vec![Spawned {
                user: "bob".into(),
                server: String::new(),
                began_us: 7_500_000
            }]
        );
    }

    #[test]
    fn the_observer_folds_and_never_loses_when_the_channel_is_full() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut o = ActivityObserver::new(tx);
        let src = source();
        let mut r = req("/hub/api/users/{user}/activity", "POST", 200, None);
        o.on_record(&r, &src, Instant::now());
        o.on_tick(Instant::now());
        r.ts = Some(5);
        o.on_record(&r, &src, Instant::now());
        o.on_tick(Instant::now()); // full: kept
        assert_eq!(rx.try_recv().unwrap().heartbeats["alice"], 1);
        o.on_tick(Instant::now());
        assert_eq!(rx.try_recv().unwrap().heartbeats["alice"], 5);
    }
}
