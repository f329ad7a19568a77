//! The idle culler's decision: a pure function from (now, the hub's users, whether the log stream
//! is trusted, the policy) to one [`Decision`] per server (and per user with `cull_users`). It
//! reads no clock and does no I/O; the runner (`runner.rs`) fetches, calls [`decide`], acts,
//! records.
//!
//! A server's last activity is **the hub's `last_activity` for it**, and nothing else (with none,
//! its `started`). The log stream never moves a deadline: an activity POST line is a single-user
//! server's heartbeat, not its user's activity. `notify_activity` in
//! `jupyterhub/singleuser/extension.py` (JupyterHub 4.x–6.x) re-posts an *unchanged*
//! `last_activity` every `JUPYTERHUB_ACTIVITY_INTERVAL` (it skips only a strictly older time),
//! and the hub's `ActivityAPIHandler.post` (`apihandlers/users.py`) keeps the newer of the
//! stored and posted times, so the stored value stays put while the user is away; the request
//! line does not show the body. The hub also folds in the proxy's per-route activity
//! (`JupyterHub.update_last_activity`, every `last_activity_interval`). See ARCHITECTURE.md,
//! "The activity model".
//!
//! # Guarantees
//! - A pending (spawning or stopping) or not-ready server is never culled.
//! - An exempt user, group or server name is never culled.
//! - With a stale stream and `on_stale = "pause"`, nothing is culled (`stale_stream`).
//! - If the culls of one pass exceed `max(mass_cull_min, max_cull_fraction × running)`, none
//!   is made (`mass_cull_guard`): mass idleness is far more often bad data than truth.
//! - At most `rate_room` culls are returned; the rest are `rate_limited` (retried later).
//!
//! # Assumptions
//! - `users` are fresh from the hub API (the runner refetches a user right before culling it).
//! - The hub's `last_activity` lags the user by up to `JUPYTERHUB_ACTIVITY_INTERVAL` (300 s by
//!   default) or the hub's `last_activity_interval` (300 s): idle limits are meant to be well
//!   above that, as with jupyterhub-idle-culler, which reads the same field.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::control::config::{CullPolicy, OnStale};
use crate::hub::{Server, User};

/// What the culler does about one server or user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cull,
    /// The cull is close (`warn_before`): told once per server start.
    Warn,
    /// Would be culled, or cannot be judged, but is not culled: see the reason.
    Skip,
    /// Active: nothing to do before `deadline`.
    Keep,
    /// Delete the user (`cull_users`).
    CullUser,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Cull => "cull",
            Action::Warn => "warn",
            Action::Skip => "skip",
            Action::Keep => "keep",
            Action::CullUser => "cull_user",
        }
    }
}

/// Why. A bounded vocabulary (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Idle,
    MaxAge,
    WarnWindow,
    Active,
    Pending,
    NotReady,
    ExemptUser,
    ExemptGroup,
    ExemptServer,
    KindDisabled,
    Admin,
    StaleStream,
    MassCullGuard,
    RateLimited,
    NoActivityData,
    ApiError,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Idle => "idle",
            Reason::MaxAge => "max_age",
            Reason::WarnWindow => "warn_window",
            Reason::Active => "active",
            Reason::Pending => "pending",
            Reason::NotReady => "not_ready",
            Reason::ExemptUser => "exempt_user",
            Reason::ExemptGroup => "exempt_group",
            Reason::ExemptServer => "exempt_server",
            Reason::KindDisabled => "kind_disabled",
            Reason::Admin => "admin",
            Reason::StaleStream => "stale_stream",
            Reason::MassCullGuard => "mass_cull_guard",
            Reason::RateLimited => "rate_limited",
            Reason::NoActivityData => "no_activity_data",
            Reason::ApiError => "api_error",
        }
    }
}

/// Where the last-activity time came from: the hub's `last_activity`, or (without one) the
/// server's `started`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivitySource {
    Api,
    Started,
    None,
}

impl ActivitySource {
    pub fn label(self) -> &'static str {
        match self {
            ActivitySource::Api => "api",
            ActivitySource::Started => "started",
            ActivitySource::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub user: String,
    /// `None`: about the user (`cull_users`); `Some("")`: the default server.
    pub server: Option<String>,
    pub action: Action,
    pub reason: Reason,
    pub profile: Option<String>,
    pub last_activity: Option<DateTime<Utc>>,
    pub activity_source: ActivitySource,
    pub started: Option<DateTime<Utc>>,
    /// The idle limit that applied.
    pub limit: Option<Duration>,
    /// When the server becomes cullable (idle or max-age), if it is not yet.
    pub deadline: Option<DateTime<Utc>>,
    /// Whether the server's stop removes it (named servers with `remove_named_servers`).
    pub remove: bool,
}

impl crate::control::decisions::Decided for Decision {
    const COMPONENT: crate::control::decisions::Component =
        crate::control::decisions::Component::Culler;

    fn action(&self) -> &'static str {
        self.action.label()
    }

    fn reason(&self) -> &'static str {
        self.reason.label()
    }

    fn subject(&self) -> crate::control::decisions::Subject<'_> {
        crate::control::decisions::Subject {
            user: &self.user,
            server: self.server.as_deref(),
            profile: self.profile.as_deref(),
        }
    }

    fn evidence(&self) -> crate::control::decisions::Evidence {
        crate::control::decisions::Evidence {
            last_activity: self.last_activity,
            activity_source: Some(self.activity_source.label()),
            started: self.started,
            limit: self.limit,
            deadline: self.deadline,
            due: matches!(self.action, Action::Cull | Action::CullUser),
        }
    }
}

impl Decision {
    /// When the warning window opens for this server, if warnings are on.
    pub fn warn_at(&self, p: &CullPolicy) -> Option<DateTime<Utc>> {
        if p.warn_before.is_zero() {
            return None;
        }
        self.deadline.map(|d| d - chrono_dur(p.warn_before))
    }

    /// `user` or `user:server`, as the hub writes it.
    pub fn log_name(&self) -> String {
        match self.server.as_deref() {
            None | Some("") => self.user.clone(),
            Some(s) => format!("{}:{s}", self.user),
        }
    }
}

/// Whether the log stream can be trusted right now (computed by the runner from the observer's
/// heartbeats; `Absent` for `hubpulse cull --once`, which has no stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    Stale,
    Absent,
}

/// The inputs of one pass beyond the users.
#[derive(Debug, Clone)]
pub struct PassInput<'a> {
    pub now: DateTime<Utc>,
    pub freshness: Freshness,
    /// Servers running on the hub (from the latest full listing), for the mass-cull guard.
    pub running_total: usize,
    /// Culls made in the guard's window before this pass (they count against the guard).
    pub recent_culls: usize,
    /// Culls still allowed by `max_culls_per_minute` (`usize::MAX` without a cap).
    pub rate_room: usize,
    /// (user, server, started) already warned: warned once per server start.
    pub warned: &'a HashSet<(String, String, Option<DateTime<Utc>>)>,
}

pub fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The idle limit for one server: its profile's, else the most generous of its user's groups',
/// else the default.
pub fn limit_for(p: &CullPolicy, user: &User, profile: Option<&str>) -> Duration {
    if let Some(t) = profile.and_then(|pr| p.profile_timeouts.get(pr)) {
        return *t;
    }
    user.groups
        .iter()
        .flatten()
        .filter_map(|g| p.group_timeouts.get(g))
        .max()
        .copied()
        .unwrap_or(p.timeout)
}

/// The server's last activity as the hub knows it (else its start).
fn last_activity(s: &Server) -> (Option<DateTime<Utc>>, ActivitySource) {
    match (s.last_activity, s.started) {
        (Some(a), _) => (Some(a), ActivitySource::Api),
        (None, Some(t)) => (Some(t), ActivitySource::Started),
        (None, None) => (None, ActivitySource::None),
    }
}

fn exemption(p: &CullPolicy, user: &User, server: &str) -> Option<Reason> {
    if p.exempt_users.contains(&user.name) {
        return Some(Reason::ExemptUser);
    }
    if user
        .groups
        .iter()
        .flatten()
        .any(|g| p.exempt_groups.contains(g))
    {
        return Some(Reason::ExemptGroup);
    }
    if !server.is_empty() && p.exempt_servers.iter().any(|g| g.matches(server)) {
        return Some(Reason::ExemptServer);
    }
    None
}

/// One server, on its own (before the pass-wide guards).
fn judge(p: &CullPolicy, user: &User, s: &Server, inp: &PassInput<'_>) -> Decision {
    let profile = s
        .profile()
        .map(str::to_string)
        .or_else(|| p.default_profile.clone());
    let limit = limit_for(p, user, profile.as_deref());
    let (last, source) = last_activity(s);
    let mut d = Decision {
        user: user.name.clone(),
        server: Some(s.name.clone()),
        action: Action::Keep,
        reason: Reason::Active,
        profile,
        last_activity: last,
        activity_source: source,
        started: s.started,
        limit: Some(limit),
        deadline: None,
        remove: !s.name.is_empty() && p.remove_named_servers,
    };
    let idle_at = last.map(|l| l + chrono_dur(limit));
    let age_at = match (p.max_age, s.started) {
        (Some(m), Some(st)) => Some(st + chrono_dur(m)),
        _ => None,
    };
    let deadline = [idle_at, age_at].into_iter().flatten().min();
    d.deadline = deadline;
    let due = deadline.is_some_and(|t| inp.now >= t);
    let skip = |mut d: Decision, r: Reason| {
        d.action = Action::Skip;
        d.reason = r;
        d
    };
    let enabled = if s.name.is_empty() {
        p.cull_default_servers
    } else {
        p.cull_named_servers
    };
    if !enabled {
        return skip(d, Reason::KindDisabled);
    }
    if let Some(r) = exemption(p, user, &s.name) {
        return skip(d, r);
    }
    if s.pending.is_some() {
        return skip(d, Reason::Pending);
    }
    if !s.ready {
        return skip(d, Reason::NotReady);
    }
    if last.is_none() && age_at.is_none() {
        return skip(d, Reason::NoActivityData);
    }
    if due {
        d.action = Action::Cull;
        d.reason = if idle_at.is_some_and(|t| inp.now >= t) {
            Reason::Idle
        } else {
            Reason::MaxAge
        };
        return d;
    }
    let key = (user.name.clone(), s.name.clone(), s.started);
    if let Some(w) = d.warn_at(p)
        && inp.now >= w
        && !inp.warned.contains(&key)
    {
        d.action = Action::Warn;
        d.reason = Reason::WarnWindow;
    }
    d
}

/// A user with no server left (`cull_users`).
fn judge_user(p: &CullPolicy, user: &User, inp: &PassInput<'_>) -> Option<Decision> {
    if user.active_servers().next().is_some() {
        return None;
    }
    let last = user.last_activity.or(user.created);
    let idle_at = last.map(|l| l + chrono_dur(p.timeout));
    let age_at = match (p.max_age, user.created) {
        (Some(m), Some(c)) => Some(c + chrono_dur(m)),
        _ => None,
    };
    let deadline = [idle_at, age_at].into_iter().flatten().min()?;
    if inp.now < deadline {
        return None;
    }
    let reason = if user.admin && !p.cull_admin_users {
        Some(Reason::Admin)
    } else if p.exempt_users.contains(&user.name) {
        Some(Reason::ExemptUser)
    } else if user
        .groups
        .iter()
        .flatten()
        .any(|g| p.exempt_groups.contains(g))
    {
        Some(Reason::ExemptGroup)
    } else {
        None
    };
    Some(Decision {
        user: user.name.clone(),
        server: None,
        action: if reason.is_some() {
            Action::Skip
        } else {
            Action::CullUser
        },
        reason: reason.unwrap_or(if idle_at.is_some_and(|t| inp.now >= t) {
            Reason::Idle
        } else {
            Reason::MaxAge
        }),
        profile: None,
        last_activity: last,
        activity_source: ActivitySource::Api,
        started: user.created,
        limit: Some(p.timeout),
        deadline: Some(deadline),
        remove: false,
    })
}

/// One decision per active server of `users` (and per server-less user with `cull_users`),
/// then the pass-wide guards: stale stream, mass-cull guard, rate cap.
pub fn decide(users: &[User], inp: &PassInput<'_>, p: &CullPolicy) -> Vec<Decision> {
    let mut out: Vec<Decision> = Vec::new();
    for u in users {
        for s in u.active_servers() {
            out.push(judge(p, u, s, inp));
        }
        if p.cull_users
            && let Some(d) = judge_user(p, u, inp)
        {
            out.push(d);
        }
    }
    let is_cull = |d: &Decision| matches!(d.action, Action::Cull | Action::CullUser);
    if inp.freshness == Freshness::Stale && p.on_stale == OnStale::Pause {
        for d in out.iter_mut().filter(|d| is_cull(d)) {
            d.action = Action::Skip;
            d.reason = Reason::StaleStream;
        }
    }
    let culls = out.iter().filter(|d| d.action == Action::Cull).count();
    // The fraction is of what ran before the window's culls.
    let before = inp.running_total + inp.recent_culls;
    let allowed = ((before as f64) * p.max_cull_fraction).floor() as usize;
    if culls > 0 && culls + inp.recent_culls > allowed.max(p.mass_cull_min) {
        for d in out.iter_mut().filter(|d| d.action == Action::Cull) {
            d.action = Action::Skip;
            d.reason = Reason::MassCullGuard;
        }
    }
    let mut room = inp.rate_room;
    // Longest-overdue first, so a cap defers the freshest cases.
    let mut order: Vec<usize> = (0..out.len()).filter(|&i| is_cull(&out[i])).collect();
    order.sort_by_key(|&i| out[i].deadline);
    for i in order {
        if room == 0 {
            out[i].action = Action::Skip;
            out[i].reason = Reason::RateLimited;
        } else {
            room -= 1;
        }
    }
    out
}

/// The earliest time something may change for these decisions: a warning window opening or a
/// deadline passing. The runner sleeps until then (or until a reconcile is due).
pub fn next_wakeup(
    decisions: &[Decision],
    p: &CullPolicy,
    warned: &HashSet<(String, String, Option<DateTime<Utc>>)>,
) -> BTreeMap<DateTime<Utc>, Vec<String>> {
    let mut at: BTreeMap<DateTime<Utc>, Vec<String>> = BTreeMap::new();
    for d in decisions {
        if !matches!(d.action, Action::Keep | Action::Warn) {
            continue;
        }
        let Some(deadline) = d.deadline else { continue };
        let server = d.server.clone().unwrap_or_default();
        let warned_already =
            d.action == Action::Warn || warned.contains(&(d.user.clone(), server, d.started));
        let t = match d.warn_at(p) {
            Some(w) if !warned_already => w,
            _ => deadline,
        };
        at.entry(t).or_default().push(d.user.clone());
    }
    at
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
