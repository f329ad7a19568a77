//! The culler's eyes on the log stream: an [`Observer`] on the pipeline thread that notes, per
//! user and per server, the latest activity the hub's log shows, and hands it to the culler's
//! task in coalesced batches.
//!
//! What counts as activity (never the culler's own API calls):
//! - `POST /hub/api/users/{user}/activity` answered 2xx (a single-user server reporting; the
//!   log line names only the user, so it counts for all of the user's servers);
//! - a 2xx request under `/user/{user}/{server}/…` (the user's server, when the proxy logs it);
//! - `spawn_succeeded` (a new server: the culler fetches it and schedules its deadline).
//!
//! # Guarantees
//! - Never blocks the pipeline: activity is folded into a small map per user/server and sent at
//!   most every tick with `try_send`; when the channel is full the map is kept (and keeps
//!   folding) until the next tick, so nothing is lost and memory is bounded by the number of
//!   distinct users and servers seen between two successful sends.
//! - Every record, active or not, is a heartbeat: the culler's stale-data guard reads the time
//!   of the last record and the lag of the newest one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::agent::pipeline::Observer;
use crate::lake::batch::SourceInfo;
use crate::record::Record;

/// Activity seen since the last batch (timestamps are UTC µs).
#[derive(Debug, Default, Clone)]
pub struct StreamBatch {
    pub user: HashMap<String, i64>,
    pub server: HashMap<(String, String), i64>,
    /// (user, server) that just started.
    pub spawned: Vec<(String, String)>,
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

fn bump<K: Eq + std::hash::Hash>(m: &mut HashMap<K, i64>, k: K, ts: i64) {
    let e = m.entry(k).or_insert(ts);
    *e = (*e).max(ts);
}

/// What a record says about activity: `(user, Some(server) | None for all servers, spawned)`.
pub fn classify<'a>(rec: &'a Record<'_>) -> Option<(&'a str, Option<&'a str>, bool)> {
    let user = rec.user.as_deref()?;
    if rec.kind == "spawn_succeeded" {
        return Some((user, Some(rec.server_name.as_deref().unwrap_or("")), true));
    }
    let ok = rec.status.is_some_and(|s| (200..300).contains(&s));
    let route = rec.route?;
    if ok && rec.method == Some("POST") && route == "/hub/api/users/{user}/activity" {
        return Some((user, None, false));
    }
    if ok && route.starts_with("/user/{user}") {
        return Some((user, rec.server_name.as_deref(), false));
    }
    None
}

impl Observer for ActivityObserver {
    fn on_record(&mut self, rec: &Record<'_>, _src: &SourceInfo, read_at: Instant) {
        self.pending.last_record = Some(read_at);
        let Some(ts) = rec.ts else { return };
        let lag_us = chrono::Utc::now().timestamp_micros() - ts;
        self.pending.last_lag = Some(Duration::from_micros(lag_us.max(0) as u64));
        if let Some((user, server, spawned)) = classify(rec) {
            match server {
                Some(s) => bump(
                    &mut self.pending.server,
                    (user.to_string(), s.to_string()),
                    ts,
                ),
                None => bump(&mut self.pending.user, user.to_string(), ts),
            }
            if spawned {
                self.pending
                    .spawned
                    .push((user.to_string(), server.unwrap_or("").to_string()));
            }
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

/// The culler's merged view, built from batches.
#[derive(Debug, Default)]
pub struct StreamState {
    pub view: super::decide::StreamView,
    pub last_record: Option<Instant>,
    pub last_lag: Option<Duration>,
}

impl StreamState {
    /// Folds a batch in; returns the servers that just started.
    pub fn apply(&mut self, b: StreamBatch) -> Vec<(String, String)> {
        let to_dt = |us: i64| chrono::DateTime::from_timestamp_micros(us);
        for (u, ts) in b.user {
            if let Some(t) = to_dt(ts) {
                let e = self.view.user.entry(u).or_insert(t);
                *e = (*e).max(t);
            }
        }
        for (k, ts) in b.server {
            if let Some(t) = to_dt(ts) {
                let e = self.view.server.entry(k).or_insert(t);
                *e = (*e).max(t);
            }
        }
        if b.last_record.is_some() {
            self.last_record = b.last_record;
        }
        if b.last_lag.is_some() {
            self.last_lag = b.last_lag;
        }
        b.spawned
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

    /// Forget activity older than `before` (bounded memory over months of running).
    pub fn prune(&mut self, before: chrono::DateTime<chrono::Utc>) {
        self.view.user.retain(|_, t| *t >= before);
        self.view.server.retain(|_, t| *t >= before);
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

    #[test]
    fn only_activity_reports_user_server_requests_and_spawns_count() {
        let a = req("/hub/api/users/{user}/activity", "POST", 200, None);
        assert_eq!(classify(&a), Some(("alice", None, false)));
        let u = req("/user/{user}/{server}/api/kernels", "GET", 200, Some("gpu"));
        assert_eq!(classify(&u), Some(("alice", Some("gpu"), false)));
        // The culler's own calls, failures and redirects to the hub are not activity.
        for r in [
            req("/hub/api/users/{user}/server", "DELETE", 204, None),
            req("/hub/api/users/{user}/activity", "POST", 400, None),
            req("/user/{user}/{server}/api/kernels", "GET", 302, Some("gpu")),
        ] {
            assert_eq!(classify(&r), None, "{r:?}");
        }
        let mut s = Record::new("spawn_succeeded", Family::Hub, "");
        s.user = Some(Cow::Borrowed("bob"));
        assert_eq!(classify(&s), Some(("bob", Some(""), true)));
    }

    #[test]
    fn the_observer_folds_and_never_loses_when_the_channel_is_full() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut o = ActivityObserver::new(tx);
        let src = SourceInfo {
            hub: "h".into(),
            file: "f".into(),
            fp: "0".into(),
        };
        let mut r = req("/hub/api/users/{user}/activity", "POST", 200, None);
        o.on_record(&r, &src, Instant::now());
        o.on_tick(Instant::now());
        r.ts = Some(5);
        o.on_record(&r, &src, Instant::now());
        o.on_tick(Instant::now()); // full: kept
        assert_eq!(rx.try_recv().unwrap().user["alice"], 1);
        o.on_tick(Instant::now());
        assert_eq!(rx.try_recv().unwrap().user["alice"], 5);
    }
}
