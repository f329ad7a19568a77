//! Quotas at run time: the admission endpoint (`POST /v1/admission`), the month's usage read
//! from the lake, and the reconcile loop that stops servers breaking the policy.
//!
//! Usage is server-hours of the sessions the monthly report rebuilds from the lake
//! ([`crate::report::sessions`]; one still running counts up to now), clipped to the current
//! UTC calendar month. A server's profile is the one its admission allowed (the `decisions`
//! table, `component = 'admission'`), else the policy's default profile.
//!
//! # Guarantees
//! - The endpoint needs `Authorization: Bearer <token>` (or `token <token>`); a wrong or
//!   missing token is 401 and is not recorded, and is answered before the body is read. The
//!   token is never logged or recorded. Bodies over 64 KiB are refused.
//! - Answers come from a cached view of the hub and the lake ([`crate::control::admission::view`],
//!   refreshed every `view_refresh`); a deny is decided again on a view read after the request
//!   arrived. At most `max_concurrent` requests are answered at once; the others wait.
//! - When the hub API or the lake cannot be read, the answer follows the policy's `on_error`
//!   and says so; it is recorded with reason `policy_error`.
//! - The reconcile loop stops a server only after it has broken the policy continuously for
//!   `grace`, checked on fresh API data each time.
//! - With `capacity_wait`, a spawn the policy allows is answered `"decision": "wait"` (with
//!   `retry_after_seconds`, `message` and `Retry-After`) only on evidence that pods of its
//!   profile already wait for a node ([`crate::control::admission::wait`]); the answer keeps `allow`
//!   (false), `reason` (the message) and `code` (`no_capacity`) for hooks that predate it.

mod endpoint;
mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Datelike, TimeZone, Utc};

use crate::control::ControlError;
use crate::control::admission::view::{View, ViewCache};
use crate::control::admission::wait::{CapacityView, Verdict, WaitPolicy};
use crate::control::admission::{
    Action, AdmissionDecision, Policy, Reason, Request, Running, Usage, admit, over_budget,
};
use crate::control::decisions::{Component, Decided, DecisionSink, Outcome, Row};
use crate::control::metrics::ControlStats;
use crate::hub::{HubClient, UserState};
pub use endpoint::{Endpoint, EndpointConfig, router, router_with};
pub use usage::{month_start, month_usage};

pub struct Quotas {
    pub policy: Policy,
    pub client: HubClient,
    pub lake: crate::lake::LakeLocation,
    /// This agent's hub: usage is counted per hub.
    pub hub: String,
    pub sink: DecisionSink,
    pub stats: Arc<ControlStats>,
    pub token: String,
    pub dry_run: bool,
    /// Admission with capacity (`capacity_wait`): the policy and the live evidence.
    pub wait: Option<(WaitPolicy, Arc<CapacityView>)>,
}

/// What the quota loop does about a running server that breaks the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaAction {
    /// First seen breaking the policy: stopped after the grace.
    Violation,
    /// Stopped (the grace is over).
    Cull,
}

/// One quota decision as the `decisions` table records it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaDecision {
    pub user: String,
    pub server: String,
    pub profile: String,
    pub action: QuotaAction,
    pub reason: Reason,
}

impl Decided for QuotaDecision {
    const COMPONENT: Component = Component::Quota;

    fn action(&self) -> &'static str {
        match self.action {
            QuotaAction::Violation => "violation",
            QuotaAction::Cull => "cull",
        }
    }

    fn reason(&self) -> &'static str {
        self.reason.label()
    }

    fn subject(&self) -> crate::control::decisions::Subject<'_> {
        crate::control::decisions::Subject {
            user: &self.user,
            server: Some(&self.server),
            profile: Some(&self.profile),
        }
    }
}

impl Quotas {
    /// Every active server with its profile and its user's groups (`list:users`,
    /// `read:servers`, `read:users:groups`).
    pub async fn running(&self) -> Result<Vec<Running>, ControlError> {
        let users = self
            .client
            .users(Some(UserState::Active))
            .await
            .map_err(|e| {
                self.stats.api_error(e.metric_label());
                ControlError::HubApi(e)
            })?;
        let mut out = Vec::new();
        for u in users {
            for s in u.active_servers() {
                out.push(Running {
                    user: u.name.clone(),
                    server: s.name.clone(),
                    profile: self.policy.profile_of(s.profile()).to_string(),
                    groups: u.groups.clone().unwrap_or_default(),
                    started: s.started,
                });
            }
        }
        Ok(out)
    }

    /// This month's server-hours of this hub: closed sessions from the lake, running servers
    /// from the hub's API (`running`, their `started`), never from log lines alone.
    pub async fn usage(
        &self,
        now: DateTime<Utc>,
        running: &[Running],
    ) -> Result<Usage, ControlError> {
        let mut usage = month_usage(
            &self.lake,
            &self.policy,
            now,
            Some(&self.hub),
            Some(running),
        )
        .await?;
        let group_budgets = self
            .policy
            .budgets
            .classes
            .values()
            .any(|b| !b.group_hours.is_empty());
        if group_budgets {
            let groups = self.client.groups().await.map_err(|e| {
                self.stats.api_error(e.metric_label());
                ControlError::HubApi(e)
            })?;
            for g in groups {
                let members = g.users.unwrap_or_default().into_iter().collect();
                usage.group_members.insert(g.name, members);
            }
        }
        Ok(usage)
    }

    /// The policy's answer on `view`, and the error that made it fall back to `on_error`.
    fn decide_on(
        &self,
        req: &Request,
        view: &View,
    ) -> (crate::control::admission::Answer, Option<String>) {
        match &view.data {
            Ok((r, u)) => (admit(&self.policy, req, r, u), None),
            Err(e) => {
                let allow = self.policy.on_error == crate::control::admission::OnError::Allow;
                let a = crate::control::admission::Answer {
                    allow,
                    reason: Reason::PolicyError,
                    message: format!(
                        "hubpulse could not check the spawn policy ({}); the policy says {} in that case.",
                        e.to_string().lines().next().unwrap_or(""),
                        self.policy.on_error.label()
                    ),
                    profile: self.policy.profile_of(req.profile.as_deref()).to_string(),
                };
                (a, Some(e.to_string()))
            }
        }
    }

    /// The policy's answer, the error that made it fall back to `on_error`, and the view it
    /// rests on (its running servers feed the capacity check). Anything but an allow is
    /// decided again on a view whose read started after `arrived` (when the request came in).
    async fn answer(
        &self,
        req: &Request,
        cache: &ViewCache,
        arrived: Instant,
    ) -> (crate::control::admission::Answer, Option<String>, Arc<View>) {
        let view = cache.get(self, None, Utc::now()).await;
        let (a, err) = self.decide_on(req, &view);
        if a.allow || view.at >= arrived {
            return (a, err, view);
        }
        let view = cache.get(self, Some(arrived), Utc::now()).await;
        let (a, err) = self.decide_on(req, &view);
        (a, err, view)
    }

    /// For a spawn the policy allows: `Some((retry_after_seconds, message))` when the cluster
    /// has no room for it now (see [`crate::control::admission::wait`]).
    pub fn capacity_wait(
        &self,
        now: DateTime<Utc>,
        req: &Request,
        profile: &str,
        running: &[Running],
    ) -> Option<(u64, String)> {
        let (policy, view) = self.wait.as_ref()?;
        let profile_of = |u: &str, s: &str| {
            running
                .iter()
                .find(|r| r.user == u && r.server == s)
                .map(|r| r.profile.clone())
        };
        let of_profile = running.iter().filter(|r| r.profile == profile).count();
        let state = view.state_for(
            now,
            policy,
            Some(profile),
            Some(u32::try_from(of_profile).unwrap_or(u32::MAX)),
            profile_of,
        )?;
        match crate::control::admission::wait::decide(
            now,
            &req.user,
            &req.server_name,
            profile,
            &state,
            policy,
        ) {
            Verdict::Allow(_) => None,
            Verdict::Wait {
                retry_after_seconds,
                message,
                ..
            } => Some((retry_after_seconds, message)),
        }
    }

    /// One pass of the quota loop at `now`: servers breaking the policy are stopped after
    /// `grace` (counted from the `now` of the pass that first saw them). Rows carry the
    /// wall-clock time they were written at.
    pub async fn reconcile(
        &self,
        now: DateTime<Utc>,
        first_seen: &mut HashMap<(String, String), DateTime<Utc>>,
    ) {
        let read = match self.running().await {
            Ok(r) => self.usage(now, &r).await.map(|u| (r, u)),
            Err(e) => Err(e),
        };
        let (running, usage) = match read {
            Ok(ru) => ru,
            Err(e) => {
                tracing::warn!(error = %e, "quota: cannot check running servers; nothing stopped");
                return;
            }
        };
        let mut rows = Vec::new();
        let mut still = HashMap::new();
        for r in &running {
            let req = Request {
                user: r.user.clone(),
                groups: r.groups.clone(),
                profile: Some(r.profile.clone()),
                server_name: r.server.clone(),
            };
            let forbidden = self
                .policy
                .profiles
                .get(&r.profile)
                .and_then(|rule| rule.groups.as_ref())
                .is_some_and(|allowed| !r.groups.iter().any(|g| allowed.contains(g)));
            let violation = if forbidden {
                Some((
                    Reason::ProfileForbidden,
                    format!(
                        "profile '{}' is not allowed for this user's groups",
                        r.profile
                    ),
                ))
            } else {
                over_budget(&self.policy, &req, &r.profile, &running, &usage)
                    .map(|m| (Reason::OverBudget, m))
            };
            let Some((reason, message)) = violation else {
                continue;
            };
            let key = (r.user.clone(), r.server.clone());
            let since = *first_seen.get(&key).unwrap_or(&now);
            still.insert(key.clone(), since);
            let row = |action, outcome, message: String| Row {
                ts: Utc::now(),
                pass: "reconcile",
                decision: QuotaDecision {
                    user: r.user.clone(),
                    server: r.server.clone(),
                    profile: r.profile.clone(),
                    action,
                    reason,
                },
                dry_run: self.dry_run,
                outcome,
                message: Some(message),
            };
            if since == now {
                tracing::warn!(user = %r.user, server = %r.server, reason = reason.label(), "quota: server breaks the policy; stopping it after the grace period");
                rows.push(row(QuotaAction::Violation, None, message));
                continue;
            }
            if now - since < crate::control::culler::decide::chrono_dur(self.policy.grace) {
                continue;
            }
            let outcome = if self.dry_run {
                Outcome::DryRun
            } else {
                let res = self.client.stop_server(&r.user, &r.server, false).await;
                if let Err(e) = &res {
                    self.stats.api_error(e.metric_label());
                }
                Outcome::of_stop(&res, false).0
            };
            tracing::info!(user = %r.user, server = %r.server, reason = reason.label(), outcome = outcome.label(), "quota: stopping a server that breaks the policy");
            self.stats.outcome(outcome.label());
            rows.push(row(QuotaAction::Cull, Some(outcome), message));
        }
        *first_seen = still;
        for r in &rows {
            self.stats
                .decision(r.decision.action(), r.decision.reason.label());
        }
        if let Err(e) = self.sink.write(&rows) {
            tracing::error!(error = %e, "quota: cannot record decisions");
        }
    }

    /// Runs the quota loop every `every` until `stop`.
    pub async fn run(
        self: Arc<Self>,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        if every.is_zero() {
            return;
        }
        let mut first_seen = HashMap::new();
        loop {
            self.reconcile(Utc::now(), &mut first_seen).await;
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }
}
