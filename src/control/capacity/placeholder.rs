//! The placeholder decision: how many replicas Z2JH's `user-placeholder` StatefulSet should
//! have now, so that nodes exist before the users the forecast expects arrive.
//!
//! A placeholder is a pause pod with a user's requests and a lower priority: a user pod preempts
//! it at once, and the evicted placeholder, now pending, makes the cluster autoscaler add a node
//! for the next user. So the placeholders needed are the servers expected beyond those running:
//!
//! ```text
//! wanted = ceil(peak × (1 + headroom)) − running      peak = forecast max over [now, now + look_ahead]
//! target = clamp(wanted, min_replicas, max_replicas)
//! ```
//!
//! Pure: [`decide`] takes `now` and what the runner observed; it reads no clock and no cluster.
//!
//! # Guarantees
//! - The target is always within `[min_replicas, max_replicas]` (a current value outside them is
//!   brought back, even during the cooldown).
//! - Scaling up is immediate; scaling down waits until `cooldown` has passed since the last
//!   change this loop made, and never happens while user pods are pending. Because the peak is
//!   taken over the whole look-ahead, the target falls only once the peak has left the window.
//! - A target equal to the current replicas is a `hold`: the runner patches nothing.
//! - `dry_run` is carried into the decision; [`Decision::apply`] is false for it.
//!
//! # Assumptions
//! - One placeholder stands for one user server (Z2JH's default: placeholders reuse the
//!   singleuser requests). A set per profile is decided with that profile's series.
//! - `current` is the StatefulSet's `spec.replicas` as read this cycle: a `helm upgrade` that
//!   reset it shows up as a difference and is re-applied (up at once, down after the cooldown).

use chrono::{DateTime, Duration, Utc};

use crate::control::capacity::forecast::{Forecast, slot_label, slot_of};

/// The `[capacity]` section's placeholder keys, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceholderPolicy {
    /// The profile whose series drives this set; `None` = the total. Also the name admission
    /// matches the set's free placeholders against (`user_options.profile`, the slug).
    pub profile: Option<String>,
    /// The same profile as the hub's log names it (`Applying KubeSpawner override for profile
    /// '<display name>'`), which is what the forecast is keyed by, when that differs from
    /// `profile` (`None`: the same).
    pub log_profile: Option<String>,
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// How far ahead the peak is looked for (`look_ahead_minutes`, default 60): about a node's
    /// start-up time plus an image pull.
    pub look_ahead: Duration,
    /// Extra room as a fraction of the peak (`headroom`, default 0.1).
    pub headroom: f64,
    /// Minimum time between a change and a scale-down (`cooldown_minutes`, default 30).
    pub cooldown: Duration,
    pub dry_run: bool,
}

impl PlaceholderPolicy {
    /// The forecast series this set follows: `log_profile`, else `profile` (`None`: the total).
    pub fn forecast_profile(&self) -> Option<&str> {
        self.log_profile.as_deref().or(self.profile.as_deref())
    }
}

impl Default for PlaceholderPolicy {
    fn default() -> Self {
        PlaceholderPolicy {
            profile: None,
            log_profile: None,
            min_replicas: 0,
            max_replicas: 10,
            look_ahead: Duration::minutes(60),
            headroom: 0.1,
            cooldown: Duration::minutes(30),
            dry_run: false,
        }
    }
}

/// What the runner saw this cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// The StatefulSet's `spec.replicas`.
    pub current: i32,
    /// Single-user pods running (and not terminating).
    pub running: u32,
    /// Single-user pods pending (waiting for room).
    pub pending: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    ScaleUp,
    ScaleDown,
    Hold,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::ScaleUp => "scale_up",
            Action::ScaleDown => "scale_down",
            Action::Hold => "hold",
        }
    }
}

/// Why: a bounded vocabulary (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The target follows the forecast.
    Forecast,
    /// Raised to `min_replicas`.
    MinReplicas,
    /// Capped at `max_replicas`.
    MaxReplicas,
    /// A scale-down waits for the cooldown.
    Cooldown,
    /// A scale-down waits while user pods are pending.
    PendingPods,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Forecast => "forecast",
            Reason::MinReplicas => "min_replicas",
            Reason::MaxReplicas => "max_replicas",
            Reason::Cooldown => "cooldown",
            Reason::PendingPods => "pending_pods",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub action: Action,
    pub reason: Reason,
    pub current: i32,
    /// The replicas to set (equal to `current` for a hold).
    pub target: i32,
    /// What the forecast alone asks for, before bounds, cooldown and pending pods.
    pub wanted: i64,
    /// The forecast's peak in the look-ahead, and when.
    pub peak: f64,
    pub peak_at: DateTime<Utc>,
    pub observed: Observed,
    pub dry_run: bool,
}

impl Decision {
    /// Whether the runner patches: a change, not in dry-run.
    pub fn apply(&self) -> bool {
        self.action != Action::Hold && !self.dry_run
    }

    /// One line saying why (written to `decisions.message` and the log).
    pub fn message(&self) -> String {
        format!(
            "replicas {} -> {} ({}): forecast peak {:.2} servers at {} UTC, {} running, {} pending, wanted {}",
            self.current,
            self.target,
            self.reason.label(),
            self.peak,
            slot_label(slot_of(self.peak_at)),
            self.observed.running,
            self.observed.pending,
            self.wanted,
        )
    }
}

/// The decision at `now`. `last_change`: when this loop last changed the replicas (`None`:
/// never, so no cooldown applies).
pub fn decide(
    now: DateTime<Utc>,
    forecast: &Forecast,
    observed: Observed,
    policy: &PlaceholderPolicy,
    last_change: Option<DateTime<Utc>>,
) -> Decision {
    let (peak, peak_at) = forecast.peak(policy.forecast_profile(), now, policy.look_ahead);
    let need = (peak * (1.0 + policy.headroom.max(0.0)) - 1e-9)
        .ceil()
        .max(0.0) as i64;
    let wanted = need - i64::from(observed.running);
    let (min, max) = (
        i64::from(policy.min_replicas.max(0)),
        i64::from(policy.max_replicas.max(policy.min_replicas).max(0)),
    );
    let (mut target, mut reason) = if wanted < min {
        (min, Reason::MinReplicas)
    } else if wanted > max {
        (max, Reason::MaxReplicas)
    } else {
        (wanted, Reason::Forecast)
    };
    let current = i64::from(observed.current);
    if target < current {
        let floor = current.min(max);
        let cooling = last_change.is_some_and(|t| now - t < policy.cooldown);
        if observed.pending > 0 && floor > target {
            (target, reason) = (floor, Reason::PendingPods);
        } else if cooling && floor > target {
            (target, reason) = (floor, Reason::Cooldown);
        }
    }
    let action = match target.cmp(&current) {
        std::cmp::Ordering::Greater => Action::ScaleUp,
        std::cmp::Ordering::Less => Action::ScaleDown,
        std::cmp::Ordering::Equal => Action::Hold,
    };
    Decision {
        action,
        reason,
        current: observed.current,
        target: i32::try_from(target).unwrap_or(i32::MAX),
        wanted,
        peak,
        peak_at,
        observed,
        dry_run: policy.dry_run,
    }
}

#[cfg(test)]
#[path = "placeholder_tests.rs"]
mod tests;
