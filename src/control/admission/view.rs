//! The admission endpoint's cached view of the hub and the lake (issue 18, item 6).
//!
//! Answering a spawn needs every running server (`GET /users?state=active`, paginated) and the
//! month's usage (a scan of the lake). Done per request, a hundred spawns at once made a
//! hundred listings and a hundred scans. The [`ViewCache`] keeps the last answer of both and
//! refreshes it every `view_refresh` (`[admission] view_refresh`, default 30 s): from a
//! background loop while requests keep using it (a quiet endpoint costs the hub no listing), or
//! by the first request that finds it older than that. One refresh runs at a time; requests
//! that arrive meanwhile wait for it and share its result.
//!
//! # Guarantees
//! - Running servers still come from the hub's API, never from log lines (the view holds what
//!   [`Quotas::running`] and [`Quotas::usage`] returned).
//! - An answer that is not *allow* (a deny, or `on_error` after a failed read) is never given
//!   on a cached view: it is decided again on a view read after the request arrived
//!   ([`ViewCache::get`] with `fresher_than`), so the hub confirms the requester's servers and
//!   everyone else's. A cached view can only make a spawn *allowed* a little late or early by
//!   at most `view_refresh`.
//! - A failed read is kept for the same time as a good one is (so a hub that is down is asked
//!   once per `view_refresh`, not once per request), and only confirmed failures deny.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::control::ControlError;
use crate::control::admission::{Running, Usage};
use crate::control::quota::Quotas;

/// What the hub listed and the lake counted, at `at` (tokio's clock, so a test on paused time
/// drives the view's age along with the refresh loop).
#[derive(Debug, Clone)]
pub struct View {
    pub at: Instant,
    /// `Err`: why the hub or the lake could not be read.
    pub data: Result<(Vec<Running>, Usage), Arc<ControlError>>,
}

/// One view, refreshed at most every `refresh`, one refresh at a time.
pub struct ViewCache {
    refresh: Duration,
    current: Mutex<Option<Arc<View>>>,
    /// A request used the view since the background loop last read it.
    used: AtomicBool,
}

impl ViewCache {
    pub fn new(refresh: Duration) -> ViewCache {
        ViewCache {
            refresh,
            current: Mutex::new(None),
            used: AtomicBool::new(true),
        }
    }

    pub fn refresh_every(&self) -> Duration {
        self.refresh
    }

    /// The view at `now`: the cached one if it is younger than `refresh` and (with
    /// `fresher_than`) was read after that instant; else a new read. Holding the lock during
    /// the read makes every concurrent caller wait for that one read.
    pub async fn get(
        &self,
        q: &Quotas,
        fresher_than: Option<Instant>,
        now: DateTime<Utc>,
    ) -> Arc<View> {
        self.used.store(true, Ordering::Relaxed);
        let mut cur = self.current.lock().await;
        if let Some(v) = cur.as_ref()
            && v.at.elapsed() < self.refresh
            && fresher_than.is_none_or(|t| v.at >= t)
        {
            return v.clone();
        }
        let v = Arc::new(read(q, now).await);
        *cur = Some(v.clone());
        v
    }

    /// Refreshes the view every `refresh` until `stop`, so requests rarely wait for a read;
    /// skips a refresh when no request used the view since the last one.
    pub async fn run(self: Arc<Self>, q: Arc<Quotas>, stop: tokio_util::sync::CancellationToken) {
        if self.refresh.is_zero() {
            return;
        }
        loop {
            if self.used.swap(false, Ordering::Relaxed) {
                // Read first, then swap: requests keep the old view meanwhile.
                let v = Arc::new(read(&q, Utc::now()).await);
                *self.current.lock().await = Some(v);
            }
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tokio::time::sleep(self.refresh) => {}
            }
        }
    }
}

/// Reads the running servers and the usage of the month of `now`.
async fn read(q: &Quotas, now: DateTime<Utc>) -> View {
    let started = Instant::now();
    let data = match q.running().await {
        Ok(r) => q.usage(now, &r).await.map(|u| (r, u)),
        Err(e) => Err(e),
    }
    .map_err(Arc::new);
    q.stats.admission_view_read(started.elapsed(), data.is_ok());
    View { at: started, data }
}
