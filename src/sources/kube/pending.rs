//! Time pending by reason: how long single-user pods stay `Pending` before they run, and why.
//!
//! [`Tracker`] is pure: it is fed what the pods watch sees ([`PodObs`], from [`obs`]) with the
//! time it saw it, keeps one open interval per pending pod, and closes it when the pod runs. The
//! interval's reason is the first of these seen while it was pending:
//!
//! | reason | seen as |
//! | --- | --- |
//! | `unschedulable` | the `PodScheduled=False` condition (FailedScheduling: no node had room) |
//! | `image_pull` | a container (init containers included) waiting with `ErrImagePull` / `ImagePullBackOff`, or still `ContainerCreating` on a node (the pull) |
//! | `other` | neither (init containers, volumes, a fast start) |
//!
//! [`Pending`] is the shared half: the tracker behind a lock, the recent finished intervals (the
//! admission's time-to-schedule, `control::admission::wait`) and the histogram
//! `hubpulse_pod_pending_seconds{reason}` on the agent's `/metrics`. Labels are the reason only:
//! never a user, pod or profile name (pods do not carry their profile).
//!
//! # Guarantees
//! - An interval starts at the pod's `creationTimestamp` (else when first seen) and ends when
//!   the watch first sees it `Running`; a pod already running when first seen, or one deleted or
//!   failed while pending, gives no interval.
//! - Each pod gives at most one interval per pending spell.
//! - A pod missing from a relist (deleted while the watch was down) stops counting as pending.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

/// What the tracker needs from one observation of a pod.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodObs {
    pub namespace: String,
    pub pod: String,
    pub user: Option<String>,
    pub server: Option<String>,
    pub phase: Option<String>,
    pub created: Option<DateTime<Utc>>,
    /// `PodScheduled=False` (the scheduler found no room).
    pub unschedulable: bool,
    /// A container (init or regular) is waiting on its image (or being created on a node: the
    /// pull).
    pub image_pull: bool,
}

/// The observation of a pod (pure).
pub fn obs(pod: &Pod) -> PodObs {
    let row = crate::sources::kube::enrich::pod_row(pod);
    let status = pod.status.as_ref();
    let scheduled = pod.spec.as_ref().is_some_and(|s| s.node_name.is_some());
    // init containers too: Z2JH pods have at least one, and while one of them cannot pull its
    // image the regular containers only say `PodInitializing`
    let image_pull = status.is_some_and(|s| {
        [&s.init_container_statuses, &s.container_statuses]
            .into_iter()
            .flatten()
            .flatten()
            .any(|c| {
                let r = c
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.as_deref());
                matches!(r, Some("ErrImagePull" | "ImagePullBackOff"))
                    || (scheduled && r == Some("ContainerCreating"))
            })
    });
    PodObs {
        namespace: row.namespace,
        pod: row.pod,
        user: row.user,
        server: row.server,
        phase: row.phase,
        created: pod
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| DateTime::from_timestamp_micros(t.0.as_microsecond())),
        unschedulable: row.unschedulable.is_some(),
        image_pull,
    }
}

/// Why a pod was pending (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PendingReason {
    Unschedulable,
    ImagePull,
    Other,
}

impl PendingReason {
    pub const ALL: [PendingReason; 3] = [
        PendingReason::Unschedulable,
        PendingReason::ImagePull,
        PendingReason::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PendingReason::Unschedulable => "unschedulable",
            PendingReason::ImagePull => "image_pull",
            PendingReason::Other => "other",
        }
    }
}

/// A finished pending spell.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub user: Option<String>,
    pub server: Option<String>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: PendingReason,
}

impl Interval {
    pub fn seconds(&self) -> f64 {
        (self.end - self.start).num_milliseconds().max(0) as f64 / 1000.0
    }
}

/// A pod pending now.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingNow {
    pub user: Option<String>,
    pub server: Option<String>,
    pub since: DateTime<Utc>,
    /// Unschedulable as last seen.
    pub unschedulable: bool,
}

#[derive(Debug, Clone)]
struct Open {
    now: PendingNow,
    unschedulable_seen: bool,
    image_pull_seen: bool,
}

/// Open pending intervals per pod. Pure.
#[derive(Debug, Default)]
pub struct Tracker {
    open: HashMap<(String, String), Open>,
    /// During a relist: the pods it has shown so far.
    relisted: Option<std::collections::HashSet<(String, String)>>,
}

impl Tracker {
    /// The pod as seen at `at`: the finished interval when it just started running.
    pub fn observe(&mut self, at: DateTime<Utc>, o: &PodObs) -> Option<Interval> {
        let key = (o.namespace.clone(), o.pod.clone());
        if let Some(seen) = &mut self.relisted {
            seen.insert(key.clone());
        }
        match o.phase.as_deref() {
            Some("Pending") => {
                let e = self.open.entry(key).or_insert_with(|| Open {
                    now: PendingNow {
                        user: o.user.clone(),
                        server: o.server.clone(),
                        since: o.created.map_or(at, |c| c.min(at)),
                        unschedulable: false,
                    },
                    unschedulable_seen: false,
                    image_pull_seen: false,
                });
                e.now.unschedulable = o.unschedulable;
                e.unschedulable_seen |= o.unschedulable;
                e.image_pull_seen |= o.image_pull;
                None
            }
            Some("Running") => {
                let open = self.open.remove(&key)?;
                let reason = if open.unschedulable_seen {
                    PendingReason::Unschedulable
                } else if open.image_pull_seen {
                    PendingReason::ImagePull
                } else {
                    PendingReason::Other
                };
                Some(Interval {
                    user: open.now.user,
                    server: open.now.server,
                    start: open.now.since,
                    end: at.max(open.now.since),
                    reason,
                })
            }
            _ => {
                self.open.remove(&key);
                None
            }
        }
    }

    /// The pod is gone: its open interval (if any) is dropped.
    pub fn deleted(&mut self, o: &PodObs) {
        self.open.remove(&(o.namespace.clone(), o.pod.clone()));
    }

    /// A (re)list starts: pods it does not show by [`Tracker::relisted`] are gone (a pod
    /// deleted while the watch was down gets no delete event).
    pub fn relisting(&mut self) {
        self.relisted = Some(Default::default());
    }

    /// The (re)list is complete: open intervals of pods it did not show are dropped.
    pub fn relisted(&mut self) {
        if let Some(seen) = self.relisted.take() {
            self.open.retain(|k, _| seen.contains(k));
        }
    }

    /// The pods pending now.
    pub fn pending(&self) -> Vec<PendingNow> {
        let mut v: Vec<PendingNow> = self.open.values().map(|o| o.now.clone()).collect();
        v.sort_by_key(|p| p.since);
        v
    }
}

/// Histogram buckets (seconds) of `hubpulse_pod_pending_seconds`.
pub const BUCKETS: [f64; 10] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// How many finished intervals are kept for the admission's estimates.
pub const RECENT: usize = 64;

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Inner {
    tracker: Tracker,
    recent: VecDeque<Interval>,
    hist: HashMap<PendingReason, Histogram>,
    /// False after a watch error, until the next event: its view may be out of date.
    healthy: bool,
}

/// The pods watch's pending state, shared with `/metrics` and the admission endpoint.
#[derive(Debug, Default)]
pub struct Pending {
    inner: Mutex<Inner>,
}

impl Pending {
    /// A pod seen at `at` (applied or relisted).
    pub fn observe(&self, at: DateTime<Utc>, o: &PodObs) -> Option<Interval> {
        let mut g = self.inner.lock().ok()?;
        g.healthy = true;
        let iv = g.tracker.observe(at, o)?;
        let secs = iv.seconds();
        let h = g.hist.entry(iv.reason).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
        if g.recent.len() == RECENT {
            g.recent.pop_front();
        }
        g.recent.push_back(iv.clone());
        Some(iv)
    }

    pub fn deleted(&self, o: &PodObs) {
        if let Ok(mut g) = self.inner.lock() {
            g.healthy = true;
            g.tracker.deleted(o);
        }
    }

    /// The watch starts listing every pod.
    pub fn relisting(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.tracker.relisting();
        }
    }

    /// The watch listed every pod (its view is current even with no pod at all).
    pub fn synced(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.tracker.relisted();
            g.healthy = true;
        }
    }

    /// The watch failed: until its next event, what it saw may be out of date.
    pub fn watch_error(&self) {
        if let Ok(mut g) = self.inner.lock() {
            g.healthy = false;
        }
    }

    /// The pods pending now and the recent finished intervals, oldest first; `None` while the
    /// watch has not delivered anything since its last error.
    pub fn snapshot(&self) -> Option<(Vec<PendingNow>, Vec<Interval>)> {
        let g = self.inner.lock().ok()?;
        g.healthy
            .then(|| (g.tracker.pending(), g.recent.iter().cloned().collect()))
    }

    /// Appends the Prometheus text of these families alone.
    pub fn render(self: &std::sync::Arc<Self>, o: &mut String) {
        o.push_str(&crate::telemetry::encode_one(self.clone()));
    }
}

/// `hubpulse_pod_pending_seconds` (every reason, empty ones included) and `hubpulse_pods_pending`.
impl crate::telemetry::Collector for Pending {
    fn encode(&self, e: crate::telemetry::DescriptorEncoder) -> std::fmt::Result {
        use crate::telemetry::{Families, Histogram as Hist};
        let Ok(g) = self.inner.lock() else {
            return Ok(());
        };
        let rows = PendingReason::ALL.map(|r| {
            let h = g.hist.get(&r).cloned().unwrap_or_default();
            // ours are cumulative, the encoder's per bucket
            let mut below = 0;
            let buckets = BUCKETS
                .iter()
                .zip(h.buckets)
                .map(|(b, n)| {
                    let own = n.saturating_sub(below);
                    below = n;
                    (*b, own)
                })
                .collect();
            let h = Hist {
                buckets,
                sum: h.sum,
                count: h.count,
            };
            ([("reason", r.label())], h)
        });
        let mut f = Families::new(e);
        f.histograms(
            "hubpulse_pod_pending_seconds",
            "Seconds single-user pods spent Pending before Running, by reason (unschedulable, image_pull, other).",
            rows,
        )?;
        f.gauge(
            "hubpulse_pods_pending",
            "Single-user pods pending now (as the pods watch sees them).",
            g.tracker.open.len(),
        )
    }
}

#[cfg(test)]
#[path = "pending_tests.rs"]
mod tests;
