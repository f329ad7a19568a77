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

    fn user(&self) -> &str {
        &self.user
    }

    fn server(&self) -> Option<&str> {
        Some(&self.server)
    }

    fn profile(&self) -> Option<&str> {
        Some(&self.profile)
    }
}

/// A failure reading the month's usage from the lake, as its message.
fn usage_err(e: impl std::fmt::Display) -> ControlError {
    ControlError::Usage(e.to_string())
}

/// The first instant of the UTC month of `now`.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
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

/// This month's server-hours per user (and per profile class) from the lake: the report's
/// session rebuild ([`crate::report::sessions`], over the same window as the month's report,
/// [`crate::report::monthly::window`]), clipped to `[month start, now]`; a session still open
/// counts up to `now`. A session's profile is the one last admitted for its user and server
/// before it started (`decisions`, `component = 'admission'`), else the policy's default.
/// `hub`: count that hub's sessions only (`None`: every hub of the lake). `running`: the servers
/// the hub's API lists now; when given, a server's current run is counted from the API's
/// `started` and the lake's sessions that overlap it are not; a session open in the lake but
/// not listed counts to its own last sign of life. So a log line alone, such as a forged start
/// or stop, cannot add or hide usage. `None` (reports, tests) counts the lake's sessions as
/// they are.
pub async fn month_usage(
    lake: &crate::lake::LakeLocation,
    policy: &Policy,
    now: DateTime<Utc>,
    hub: Option<&str>,
    running: Option<&[Running]>,
) -> Result<Usage, ControlError> {
    use crate::report::monthly;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Int64Type};
    let start = month_start(now);
    let ctx = crate::query::session(lake).await.map_err(usage_err)?;
    // The same rebuild as the report's, checked against the hub's observations.
    let runs = crate::report::rebuild(&ctx, monthly::window(start.date_naive()))
        .await
        .map_err(usage_err)?
        .sessions;
    // (user, server) -> [(admitted at, profile)] in time order.
    let mut admitted: HashMap<(String, String), Vec<(i64, String)>> = HashMap::new();
    // Registered when the lake has the table (a directory; an S3 prefix is asked through the
    // object store, see `query::session`): never a local `is_dir` check, which a bucket fails.
    let has_decisions = ctx
        .table_exist(crate::lake::tables::decisions::DECISIONS)
        .map_err(usage_err)?;
    if has_decisions {
        let look_back = start - chrono::Duration::days(62);
        let sql = format!(
            "SELECT \"user\", COALESCE(server_name, ''), CAST(ts AS BIGINT) AS t, COALESCE(profile, '')
             FROM decisions WHERE component = 'admission' AND action = 'allow' AND ts >= TIMESTAMP '{}'{}
             ORDER BY t",
            look_back.format("%Y-%m-%dT%H:%M:%SZ"),
            hub.map_or(String::new(), |h| format!(" AND hub = '{}'", h.replace('\'', "''")))
        );
        let batches = crate::query::run(&ctx, &sql).await.map_err(usage_err)?;
        for b in &batches {
            let col = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8);
            let (user, server, prof) = (
                col(0).map_err(usage_err)?,
                col(1).map_err(usage_err)?,
                col(3).map_err(usage_err)?,
            );
            let t = arrow::compute::cast(b.column(2), &DataType::Int64).map_err(usage_err)?;
            let t = t.as_primitive::<Int64Type>();
            let (user, server, prof) = (
                user.as_string::<i32>(),
                server.as_string::<i32>(),
                prof.as_string::<i32>(),
            );
            for i in 0..b.num_rows() {
                if t.is_null(i) || user.is_null(i) {
                    continue;
                }
                let key = (user.value(i).to_string(), server.value(i).to_string());
                admitted
                    .entry(key)
                    .or_default()
                    .push((t.value(i), prof.value(i).to_string()));
            }
        }
    }
    let mut usage = Usage::default();
    let (lo, hi) = (start.timestamp_micros(), now.timestamp_micros());
    // (user, server) -> the API's start of its current run.
    let live: HashMap<(&str, &str), i64> = running
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let started = r.started.map_or(hi, |t| t.timestamp_micros());
            ((r.user.as_str(), r.server.as_str()), started)
        })
        .collect();
    let mut add = |user: &str, server: &str, start: i64, from: i64, to: i64| {
        if to <= from {
            return;
        }
        let h = (to - from) as f64 / 3.6e9;
        let key = (user.to_string(), server.to_string());
        let profile = admitted
            .get(&key)
            .and_then(|v| v.iter().rev().find(|(t, _)| *t <= start))
            .map_or("", |(_, p)| p.as_str());
        *usage.user.entry(user.to_string()).or_default() += h;
        let class = policy
            .class_of(policy.profile_of(Some(profile)))
            .to_string();
        *usage
            .class_user
            .entry((class, user.to_string()))
            .or_default() += h;
    };
    for s in runs.iter().filter(|s| hub.is_none_or(|h| s.hub == h)) {
        let mut end = s.end.unwrap_or(hi);
        if running.is_some() {
            // Open in the log, not listed by the API: it ran at most to its own last sign of
            // life (a start line alone, forged or not, counts nothing; a real run whose stop
            // line is not yet in the lake counts to its last heartbeat).
            if s.end.is_none() {
                end = s.last_activity.unwrap_or(s.start).max(s.start);
            }
            // The API's current run replaces what the log says of it.
            if live
                .get(&(s.user.as_str(), s.server.as_str()))
                .is_some_and(|&started| end > started)
            {
                continue;
            }
        }
        add(&s.user, &s.server, s.start, s.start.max(lo), end.min(hi));
    }
    for ((user, server), started) in &live {
        add(user, server, *started, (*started).max(lo), hi);
    }
    Ok(usage)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, tok) = v.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| tok.trim())
}

/// Compares in time independent of where the strings first differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The admission endpoint's state: the quotas, the cached view, the concurrency cap.
pub struct Endpoint {
    pub q: Arc<Quotas>,
    pub view: Arc<ViewCache>,
    pub permits: tokio::sync::Semaphore,
}

/// `[admission]` settings of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EndpointConfig {
    /// How long a view of the hub and the lake answers requests (`view_refresh`).
    pub view_refresh: std::time::Duration,
    /// Requests answered at once (`max_concurrent`); the others wait.
    pub max_concurrent: usize,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            view_refresh: std::time::Duration::from_secs(30),
            max_concurrent: 16,
        }
    }
}

/// A spawn request's body is a few hundred bytes.
const MAX_BODY: usize = 64 << 10;

fn refuse(status: StatusCode, why: String) -> (StatusCode, HeaderMap, Json<serde_json::Value>) {
    (
        status,
        HeaderMap::new(),
        Json(serde_json::json!({ "error": why })),
    )
}

async fn admission(
    State(ep): State<Arc<Endpoint>>,
    http: axum::extract::Request,
) -> (StatusCode, HeaderMap, Json<serde_json::Value>) {
    let arrived = Instant::now();
    let q = &ep.q;
    // The token before the body: an unauthenticated caller learns nothing and costs nothing.
    if !bearer(http.headers()).is_some_and(|t| same(t, &q.token)) {
        return refuse(StatusCode::UNAUTHORIZED, "missing or invalid token".into());
    }
    let Ok(body) = axum::body::to_bytes(http.into_body(), MAX_BODY).await else {
        return refuse(
            StatusCode::BAD_REQUEST,
            format!("request body unreadable or over {MAX_BODY} bytes"),
        );
    };
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("bad request body: {e}")),
    };
    q.stats.admission_waiting.fetch_add(1, Ordering::Relaxed);
    let permit = ep.permits.acquire().await;
    q.stats.admission_waiting.fetch_sub(1, Ordering::Relaxed);
    let Ok(_permit) = permit else {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into());
    };
    let mut out = HeaderMap::new();
    let (mut a, err, view) = q.answer(&req, &ep.view, arrived).await;
    let running: &[Running] = match &view.data {
        Ok((r, _)) => r,
        Err(_) => &[],
    };
    let wait = if a.allow && err.is_none() {
        q.capacity_wait(Utc::now(), &req, &a.profile, running)
    } else {
        None
    };
    let action = match &wait {
        Some((_, message)) => {
            a.allow = false;
            a.reason = Reason::NoCapacity;
            a.message = message.clone();
            Action::Wait
        }
        None if a.allow => Action::Allow,
        None => Action::Deny,
    };
    q.stats.admission(action.label(), a.reason.label());
    // No user name in the log (the `decisions` row has it).
    tracing::info!(
        answer = action.label(),
        reason = a.reason.label(),
        "admission"
    );
    let row = Row {
        ts: Utc::now(),
        pass: "admission",
        decision: AdmissionDecision {
            user: req.user.clone(),
            server: req.server_name.clone(),
            profile: a.profile.clone(),
            action,
            reason: a.reason,
        },
        dry_run: false,
        outcome: None,
        message: Some(err.map_or(a.message.clone(), |e| format!("{}: {e}", a.message))),
    };
    if let Err(e) = q.sink.write(&[row]) {
        tracing::error!(error = %e, "admission: cannot record the decision");
    }
    let mut body = serde_json::json!({
        "allow": a.allow,
        "decision": action.label(),
        "reason": a.message,
        "code": a.reason.label(),
        "profile": a.profile,
        "on_error": q.policy.on_error.label(),
    });
    if let Some((secs, message)) = wait {
        body["retry_after_seconds"] = secs.into();
        body["message"] = message.into();
        out.insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    (StatusCode::OK, out, Json(body))
}

/// `POST /v1/admission`, with the default [`EndpointConfig`] (views are read on demand).
pub fn router(q: Arc<Quotas>) -> Router {
    router_with(q, EndpointConfig::default()).0
}

/// `POST /v1/admission`, and its view cache (run [`ViewCache::run`] to refresh it in the
/// background).
pub fn router_with(q: Arc<Quotas>, cfg: EndpointConfig) -> (Router, Arc<ViewCache>) {
    let view = Arc::new(ViewCache::new(cfg.view_refresh));
    let ep = Arc::new(Endpoint {
        q,
        view: view.clone(),
        permits: tokio::sync::Semaphore::new(cfg.max_concurrent.max(1)),
    });
    (
        Router::new()
            .route("/v1/admission", post(admission))
            .with_state(ep),
        view,
    )
}
