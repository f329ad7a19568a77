//! Admission with capacity: a spawn the quota policy allows is told to **wait**, with an
//! estimate, when the cluster has no room for it now, instead of letting KubeSpawner's
//! `start_timeout` expire on a pod stuck in `Pending`.
//!
//! [`decide`] is pure. Its evidence is what the agent already sees:
//! - single-user pods **pending for lack of room** (`PodScheduled=False`), from the `[pods]`
//!   watch ([`crate::sources::kube::pending`]; each with when it started waiting and, joined with
//!   the hub's server list, its profile), else the count the `[capacity]` loop read last cycle
//!   (all pending pods, of unknown profile, waiting since the loop first saw some pending);
//! - **free placeholders**: placeholder pods a user pod can preempt now;
//! - the **recent time-to-schedule**: how long recent pods of the same profile waited for room
//!   (the median), else the configured `scale_up_time`.
//!
//! The rule, in order:
//! 1. no pod of the same profile (or of an unknown profile) is waiting for room → `allow`,
//!    unless rule 2 applies;
//! 2. only with `capacity_forecast = true` and a forecast from the `[capacity]` loop: nothing
//!    waits, no placeholder of the profile is free, and the forecast's peak for the profile
//!    within the look-ahead is above the servers of that profile running now → `wait`
//!    `typical` (the spawn would most likely need a node that is not there yet);
//! 3. more free placeholders than such pods → `allow` (the spawn preempts a placeholder);
//! 4. otherwise `wait`: a node for the waiting pods is on its way since the oldest started
//!    waiting, and is expected `typical` after that; the answer is the time left (at least
//!    `min_retry`, at most `max_retry`), with a sentence saying why and how sure.
//!
//! `typical`: the median time recent pods of the profile waited for room, else `scale_up_time`.
//!
//! # Guarantees
//! - The requesting server's own pod never makes it wait.
//! - No evidence (no `[pods]` snapshot, stale capacity numbers) is `allow`: the agent never
//!   holds back a spawn it cannot show to lack room. The forecast rule (2) is the one exception,
//!   off unless asked for: a forecast is an expectation, not an observation.
//! - `retry_after_seconds` is always within `[min_retry, max_retry]`.
//! - Deterministic: the same `now`, request and state give the same answer and message.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};

use crate::control::capacity::placeholder::Observed;
use crate::sources::kube::pending::{Pending, PendingReason};

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
    /// Also wait on the forecast alone (`capacity_forecast`): see [`decide`], rule 2.
    pub forecast: bool,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            scale_up: Duration::minutes(5),
            min_retry: Duration::seconds(30),
            max_retry: Duration::minutes(30),
            max_age: Duration::minutes(5),
            forecast: false,
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
    /// What the forecast expects of the profile; `None`: no forecast (no `[capacity]` set).
    pub forecast: Option<ForecastRoom>,
}

/// The forecast against what runs now, for one profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastRoom {
    /// The forecast's peak of concurrent servers within the look-ahead.
    pub expected: f64,
    /// Servers running now.
    pub running: u32,
}

/// Why a spawn may go ahead (a bounded label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// No pod of this profile waits for room.
    NoneWaiting,
    /// A free placeholder makes room at once.
    Placeholder,
}

/// Why a spawn is told to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// Pods of the profile already wait for a node.
    Waiting,
    /// Nothing waits yet, but the forecast expects more servers than there is known room for.
    Forecast,
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
        why: Why,
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
    let name = if profile.is_empty() {
        "server".to_string()
    } else {
        format!("'{profile}' server")
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
    let clamp = |d: Duration| {
        let retry = d.clamp(p.min_retry, p.max_retry.max(p.min_retry));
        (retry.num_milliseconds() + 999) / 1000
    };
    if same.is_empty() {
        let free = state.free_placeholders.unwrap_or(0);
        let short = state
            .forecast
            .filter(|f| p.forecast && free == 0 && f.expected.is_finite())
            .filter(|f| f.expected > f64::from(f.running) + 1e-9);
        let Some(f) = short else {
            return Verdict::Allow(Fit::NoneWaiting);
        };
        let retry_s = clamp(typical);
        let message = format!(
            "No room is expected for a {name} right now: the forecast expects {:.1} such servers \
             soon, {} running and no free placeholder; {basis}; expect room in ~{}.",
            f.expected,
            f.running,
            human(retry_s)
        );
        return Verdict::Wait {
            retry_after_seconds: u64::try_from(retry_s).unwrap_or(0),
            message,
            waiting: 0,
            measured,
            why: Why::Forecast,
        };
    }
    if state.free_placeholders.unwrap_or(0) as usize > same.len() {
        return Verdict::Allow(Fit::Placeholder);
    }
    let oldest = same.iter().map(|w| w.since).min().unwrap_or(now).min(now);
    let waited = now - oldest;
    let left = typical - waited;
    let retry_s = clamp(left);
    let who = match same.len() {
        1 => "1 server is".to_string(),
        n => format!("{n} servers are"),
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
        why: Why::Waiting,
    }
}

/// What the capacity loop saw last of one set, for admissions between its cycles.
#[derive(Debug, Clone, PartialEq)]
struct Cycle {
    at: DateTime<Utc>,
    /// The set's profile (`None`: all servers).
    profile: Option<String>,
    observed: Observed,
    /// Since when user pods have been pending without a break (as the loop saw it).
    pending_since: Option<DateTime<Utc>>,
    /// The forecast's peak for the set's profile within its look-ahead.
    peak: Option<f64>,
}

/// The live evidence: the `[pods]` watch's pending state and the `[capacity]` loop's last read
/// of each placeholder set.
#[derive(Debug, Default)]
pub struct CapacityView {
    pub pods: Option<std::sync::Arc<Pending>>,
    cycles: Mutex<std::collections::BTreeMap<String, Cycle>>,
}

impl CapacityView {
    pub fn new(pods: Option<std::sync::Arc<Pending>>) -> Self {
        CapacityView {
            pods,
            cycles: Mutex::new(Default::default()),
        }
    }

    /// The capacity loop read `observed` at `at` (one set for all servers, no forecast).
    pub fn cycle(&self, at: DateTime<Utc>, observed: Observed) {
        self.record("", None, at, observed, None);
    }

    /// The capacity loop read `observed` of the set `set` (placeholders of `profile`) at `at`,
    /// when the forecast expected `peak` servers of that profile within its look-ahead.
    pub fn set_cycle(
        &self,
        set: &str,
        profile: Option<String>,
        at: DateTime<Utc>,
        observed: Observed,
        peak: f64,
    ) {
        self.record(
            set,
            profile,
            at,
            observed,
            Some(peak).filter(|p| p.is_finite()),
        );
    }

    fn record(
        &self,
        set: &str,
        profile: Option<String>,
        at: DateTime<Utc>,
        observed: Observed,
        peak: Option<f64>,
    ) {
        if let Ok(mut c) = self.cycles.lock() {
            let pending_since = match c.get(set) {
                _ if observed.pending == 0 => None,
                Some(Cycle {
                    pending_since: Some(s),
                    ..
                }) => Some(*s),
                _ => Some(at),
            };
            c.insert(
                set.to_string(),
                Cycle {
                    at,
                    profile,
                    observed,
                    pending_since,
                    peak,
                },
            );
        }
    }

    /// The state at `now` for any profile; see [`CapacityView::state_for`].
    pub fn state(
        &self,
        now: DateTime<Utc>,
        p: &WaitPolicy,
        profile_of: impl Fn(&str, &str) -> Option<String>,
    ) -> Option<CapacityState> {
        self.state_for(now, p, None, None, profile_of)
    }

    /// The state at `now` for a spawn of `profile` (`None`: any); `profile_of(user, server)`
    /// names a pod's profile (the hub's server list); `running` is how many servers of `profile`
    /// run now (the hub's server list), for the forecast. `None`: no evidence.
    ///
    /// Free placeholders, from the capacity loop's fresh reads of the sets of that profile (of
    /// the sets for all servers when it has none of its own): while no user pod is pending,
    /// every placeholder replica is taken to be preemptible (the scheduler preempts
    /// placeholders before leaving a user pod pending); while one is, none is.
    ///
    /// The forecast ([`CapacityState::forecast`]): the peak of the set of exactly that profile,
    /// else of a set for all servers (then compared with all running user pods).
    pub fn state_for(
        &self,
        now: DateTime<Utc>,
        p: &WaitPolicy,
        profile: Option<&str>,
        running: Option<u32>,
        profile_of: impl Fn(&str, &str) -> Option<String>,
    ) -> Option<CapacityState> {
        let cycles: Vec<Cycle> = self
            .cycles
            .lock()
            .map(|c| {
                c.values()
                    .filter(|c| now - c.at <= p.max_age)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        // a profile with sets of its own is served by them only (other sets' placeholders sit
        // on other nodes); any other profile by the sets for all servers
        let own = profile.is_some() && cycles.iter().any(|c| c.profile.as_deref() == profile);
        let serves = |c: &Cycle| match (profile, own) {
            (None, _) => true,
            (Some(_), true) => c.profile.as_deref() == profile,
            (Some(_), false) => c.profile.is_none(),
        };
        let free = (!cycles.is_empty()).then(|| {
            cycles
                .iter()
                .filter(|c| serves(c) && c.observed.pending == 0)
                .map(|c| u32::try_from(c.observed.current.max(0)).unwrap_or(0))
                .sum::<u32>()
        });
        let exact = cycles
            .iter()
            .find(|c| profile.is_some() && c.profile.as_deref() == profile);
        let forecast = match exact {
            Some(c) => c
                .peak
                .zip(running)
                .map(|(expected, running)| ForecastRoom { expected, running }),
            None => cycles.iter().find(|c| c.profile.is_none()).and_then(|c| {
                c.peak.map(|expected| ForecastRoom {
                    expected,
                    running: c.observed.running,
                })
            }),
        };
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
                forecast,
            });
        }
        // every set's loop lists the same pods: the freshest read counts them
        let c = cycles.iter().max_by_key(|c| c.at)?;
        let since = cycles
            .iter()
            .filter_map(|c| c.pending_since)
            .min()
            .unwrap_or(c.at);
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
            forecast,
        })
    }
}

#[cfg(test)]
#[path = "wait_tests.rs"]
mod tests;
