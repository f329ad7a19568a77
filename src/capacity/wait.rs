//! Admission with capacity: a spawn the quota policy allows is told to **wait**, with an
//! estimate, when the cluster has no room for it now, instead of letting KubeSpawner's
//! `start_timeout` expire on a pod stuck in `Pending`.
//!
//! [`decide`] is pure. Its evidence is what the agent already sees:
//! - single-user pods **pending for lack of room** (`PodScheduled=False`), from the `[pods]`
//!   watch ([`crate::agent::kube::pending`]; each with when it started waiting and, joined with
//!   the hub's server list, its profile), else the count the `[capacity]` loop read last cycle
//!   (all pending pods, of unknown profile, waiting since the loop first saw some pending);
//! - **free placeholders**: placeholder pods a user pod can preempt now;
//! - the **recent time-to-schedule**: how long recent pods of the same profile waited for room
//!   (the median), else the configured `scale_up_time`.
//!
//! The rule, in order:
//! 1. no pod of the same profile (or of an unknown profile) is waiting for room → `allow`;
//! 2. more free placeholders than such pods → `allow` (the spawn preempts a placeholder);
//! 3. otherwise `wait`: a node for the waiting pods is on its way since the oldest started
//!    waiting, and is expected `typical` after that; the answer is the time left (at least
//!    `min_retry`, at most `max_retry`), with a sentence saying why and how sure.
//!
//! # Guarantees
//! - The requesting server's own pod never makes it wait.
//! - No evidence (no `[pods]` snapshot, stale capacity numbers) is `allow`: the agent never
//!   holds back a spawn it cannot show to lack room.
//! - `retry_after_seconds` is always within `[min_retry, max_retry]`.
//! - Deterministic: the same `now`, request and state give the same answer and message.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use super::placeholder::Observed;
use crate::agent::kube::pending::{Pending, PendingReason};

/// The `[admission]` capacity keys, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitPolicy {
    /// Time from "no room" to a new node taking pods, when no recent pod measured it
    /// (`scale_up_time`, default 5 min).
    pub scale_up: Duration,
    pub min_retry: Duration,
    pub max_retry: Duration,
    /// Capacity-loop numbers older than this are not evidence.
    pub max_age: Duration,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            scale_up: Duration::minutes(5),
            min_retry: Duration::seconds(30),
            max_retry: Duration::minutes(30),
            max_age: Duration::minutes(5),
        }
    }
}

/// A single-user pod waiting for room.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub user: Option<String>,
    pub server: Option<String>,
    /// `None`: unknown (it counts against every profile).
    pub profile: Option<String>,
    pub since: DateTime<Utc>,
}

/// What the agent knows about room in the cluster at one instant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CapacityState {
    pub waiting: Vec<Waiting>,
    /// Placeholder pods a user pod can preempt now; `None`: not known.
    pub free_placeholders: Option<u32>,
    /// Recent pods that waited for room: (profile, seconds until scheduled and running).
    pub recent: Vec<(Option<String>, f64)>,
}

/// Why a spawn may go ahead (a bounded label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// No pod of this profile waits for room.
    NoneWaiting,
    /// A free placeholder makes room at once.
    Placeholder,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Allow(Fit),
    Wait {
        retry_after_seconds: u64,
        message: String,
        /// Pods of this profile waiting for room.
        waiting: usize,
        /// From recent pods (`true`) or `scale_up_time` (`false`).
        measured: bool,
    },
}

/// A duration as people say it: `45 s`, `6 min`, `1 h 20 min`.
pub fn human(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 90 {
        return format!("{secs} s");
    }
    let min = (secs + 30) / 60;
    if min < 90 {
        return format!("{min} min");
    }
    format!("{} h {} min", min / 60, min % 60)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Allow, or wait with an estimate, for a spawn of `profile` by `user`'s server `server` that
/// the quota policy already allows.
pub fn decide(
    now: DateTime<Utc>,
    user: &str,
    server: &str,
    profile: &str,
    state: &CapacityState,
    p: &WaitPolicy,
) -> Verdict {
    let mine = |w: &Waiting| w.user.as_deref() == Some(user) && w.server.as_deref() == Some(server);
    let same: Vec<&Waiting> = state
        .waiting
        .iter()
        .filter(|w| !mine(w) && w.profile.as_deref().is_none_or(|q| q == profile))
        .collect();
    if same.is_empty() {
        return Verdict::Allow(Fit::NoneWaiting);
    }
    if state.free_placeholders.unwrap_or(0) as usize > same.len() {
        return Verdict::Allow(Fit::Placeholder);
    }
    let samples: Vec<f64> = state
        .recent
        .iter()
        .filter(|(q, s)| q.as_deref() == Some(profile) && s.is_finite() && *s >= 0.0)
        .map(|(_, s)| *s)
        .collect();
    let n_samples = samples.len();
    let (typical, measured) = match median(samples) {
        Some(m) => (Duration::milliseconds((m * 1000.0) as i64), true),
        None => (p.scale_up, false),
    };
    let oldest = same.iter().map(|w| w.since).min().unwrap_or(now).min(now);
    let waited = now - oldest;
    let left = typical - waited;
    let retry = left.clamp(p.min_retry, p.max_retry.max(p.min_retry));
    let retry_s = (retry.num_milliseconds() + 999) / 1000;
    let name = if profile.is_empty() {
        "server".to_string()
    } else {
        format!("'{profile}' server")
    };
    let who = match same.len() {
        1 => "1 server is".to_string(),
        n => format!("{n} servers are"),
    };
    let basis = if measured {
        format!(
            "recent spawns waited {} for a node (median of {n_samples})",
            human(typical.num_seconds())
        )
    } else {
        format!(
            "a new node usually takes {} (the configured scale-up time)",
            human(typical.num_seconds())
        )
    };
    let when = if left > Duration::zero() {
        format!("expect room in ~{}", human(retry_s))
    } else {
        format!(
            "it is taking longer than usual; try again in ~{}",
            human(retry_s)
        )
    };
    let message = format!(
        "No room for a {name} right now: {who} already waiting for a node (the oldest for {}); {basis}; {when}.",
        human(waited.num_seconds())
    );
    Verdict::Wait {
        retry_after_seconds: u64::try_from(retry_s).unwrap_or(0),
        message,
        waiting: same.len(),
        measured,
    }
}

/// What the capacity loop saw last, for admissions between its cycles.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cycle {
    at: DateTime<Utc>,
    observed: Observed,
    /// Since when user pods have been pending without a break (as the loop saw it).
    pending_since: Option<DateTime<Utc>>,
}

/// The live evidence: the `[pods]` watch's pending state and the `[capacity]` loop's last read.
#[derive(Debug, Default)]
pub struct CapacityView {
    pub pods: Option<std::sync::Arc<Pending>>,
    cycle: Mutex<Option<Cycle>>,
}

impl CapacityView {
    pub fn new(pods: Option<std::sync::Arc<Pending>>) -> Self {
        CapacityView {
            pods,
            cycle: Mutex::new(None),
        }
    }

    /// The capacity loop read `observed` at `at`.
    pub fn cycle(&self, at: DateTime<Utc>, observed: Observed) {
        if let Ok(mut c) = self.cycle.lock() {
            let pending_since = match *c {
                _ if observed.pending == 0 => None,
                Some(Cycle {
                    pending_since: Some(s),
                    ..
                }) => Some(s),
                _ => Some(at),
            };
            *c = Some(Cycle {
                at,
                observed,
                pending_since,
            });
        }
    }

    /// The state at `now`; `profile_of(user, server)` names a pod's profile (the hub's server
    /// list). `None`: no evidence.
    ///
    /// Free placeholders, from the capacity loop: while no user pod is pending, every placeholder
    /// replica is taken to be preemptible (the scheduler preempts placeholders before leaving a
    /// user pod pending); while one is, none is.
    pub fn state(
        &self,
        now: DateTime<Utc>,
        p: &WaitPolicy,
        profile_of: impl Fn(&str, &str) -> Option<String>,
    ) -> Option<CapacityState> {
        let cycle = self
            .cycle
            .lock()
            .ok()
            .and_then(|c| *c)
            .filter(|c| now - c.at <= p.max_age);
        let free = cycle.map(|c| {
            if c.observed.pending == 0 {
                u32::try_from(c.observed.current.max(0)).unwrap_or(0)
            } else {
                0
            }
        });
        let prof = |u: &Option<String>, s: &Option<String>| {
            u.as_deref()
                .and_then(|u| profile_of(u, s.as_deref().unwrap_or("")))
        };
        if let Some((now_pending, recent)) = self.pods.as_ref().and_then(|x| x.snapshot()) {
            return Some(CapacityState {
                waiting: now_pending
                    .into_iter()
                    .filter(|w| w.unschedulable)
                    .map(|w| Waiting {
                        profile: prof(&w.user, &w.server),
                        user: w.user,
                        server: w.server,
                        since: w.since,
                    })
                    .collect(),
                free_placeholders: free,
                recent: recent
                    .into_iter()
                    .filter(|i| i.reason == PendingReason::Unschedulable)
                    .map(|i| (prof(&i.user, &i.server), i.seconds()))
                    .collect(),
            });
        }
        let c = cycle?;
        let since = c.pending_since.unwrap_or(c.at);
        Some(CapacityState {
            waiting: (0..c.observed.pending)
                .map(|_| Waiting {
                    user: None,
                    server: None,
                    profile: None,
                    since,
                })
                .collect(),
            free_placeholders: free,
            recent: Vec::new(),
        })
    }
}

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
