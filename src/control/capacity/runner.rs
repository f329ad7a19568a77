//! The placeholder runner: each cycle reads the StatefulSet's scale and the single-user pods,
//! calls [`decide`], patches `spec.replicas` when the decision changes it, and records the
//! decision in the lake table `decisions` (`component = capacity`, `server_name` = the set).
//! With a set per profile ([`run_sets`]), each set does this in turn every cycle, with its own
//! policy (bounds, cooldown, dry-run) and its profile's series of one shared forecast.
//!
//! Requests per cycle, in order (pinned by `tests/it/capacity.rs`):
//! 1. `GET /apis/apps/v1/namespaces/{ns}/statefulsets/{name}/scale`
//! 2. `GET /api/v1/namespaces/{ns}/pods?labelSelector=component=singleuser-server`
//! 3. only for a change outside dry-run: `PATCH …/statefulsets/{name}/scale`, content type
//!    `application/merge-patch+json`, body `{"spec":{"replicas":N}}`.
//!
//! # Guarantees
//! - Idempotent: the patch sets an absolute value, and the value is re-read every cycle, so a
//!   `helm upgrade` that resets `replicas` is undone on the next cycle (scale-ups at once).
//! - Nothing is patched when any read fails, in dry-run, or when the target equals the current
//!   replicas.
//! - A decision is recorded when it patches, fails to, or differs from the last one recorded
//!   (action, reason, current, target): a steady hold, or a dry-run repeating the same would-be
//!   change, is one row, not one per cycle.
//! - The cooldown counts from the last *successful* patch of this process; after a restart the
//!   first scale-down is not delayed (the forecast's look-ahead already smooths it).
//!
//! # Assumptions
//! - The scale subresource is served (apps/v1 StatefulSets always have it), so the agent needs
//!   only `statefulsets/scale` get + patch, not write access to the whole StatefulSet.
//! - Single-user pods carry Z2JH's `component=singleuser-server` label (configurable).

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};

use crate::control::capacity::forecast::{Forecast, ForecastPolicy, forecast, runs_from_sessions};
use crate::control::capacity::metrics::CapacityStats;
use crate::control::capacity::placeholder::{
    Action, Decision, Observed, PlaceholderPolicy, Reason, decide,
};
use crate::control::decisions::{Component, Decided, DecisionSink, Outcome, Row};

/// Where the placeholders live.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub namespace: String,
    /// The StatefulSet (Z2JH: `user-placeholder`).
    pub name: String,
    /// Label selector of single-user pods.
    pub user_pods: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CapacityError {
    #[error("{what}: {source}")]
    Kube {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("forecast: {0}")]
    Lake(String),
}

impl CapacityError {
    /// A bounded label for logs and metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            CapacityError::Kube { what, .. } => what,
            CapacityError::Lake(_) => "lake",
        }
    }
}

fn kube_err(what: &'static str) -> impl FnOnce(kube::Error) -> CapacityError {
    move |source| CapacityError::Kube { what, source }
}

/// Reads the current replicas and counts running and pending single-user pods.
///
/// # Errors
/// The Kubernetes error of the read that failed (forbidden, not found, unreachable).
pub async fn observe(client: &kube::Client, t: &Target) -> Result<Observed, CapacityError> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &t.namespace);
    let scale = sets
        .get_scale(&t.name)
        .await
        .map_err(kube_err("get statefulset scale"))?;
    let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &t.namespace);
    let list = pods
        .list(&ListParams::default().labels(&t.user_pods))
        .await
        .map_err(kube_err("list user pods"))?;
    let (mut running, mut pending) = (0, 0);
    for p in &list.items {
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        match p.status.as_ref().and_then(|s| s.phase.as_deref()) {
            Some("Running") => running += 1,
            Some("Pending") => pending += 1,
            _ => {}
        }
    }
    Ok(Observed {
        current,
        running,
        pending,
    })
}

/// Sets `spec.replicas` through the scale subresource (a JSON merge patch).
///
/// # Errors
/// The Kubernetes error.
pub async fn set_replicas(
    client: &kube::Client,
    t: &Target,
    replicas: i32,
) -> Result<(), CapacityError> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &t.namespace);
    let body = serde_json::json!({ "spec": { "replicas": replicas } });
    sets.patch_scale(&t.name, &PatchParams::default(), &Patch::Merge(&body))
        .await
        .map_err(kube_err("patch statefulset scale"))?;
    Ok(())
}

/// The forecast at `now` from the lake's sessions over the policy's window.
///
/// # Errors
/// Lake or query errors, as one line.
pub async fn forecast_from_lake(
    lake: &crate::lake::LakeLocation,
    policy: &ForecastPolicy,
    default_profile: &str,
    now: DateTime<Utc>,
) -> Result<Forecast, CapacityError> {
    use crate::report::load;
    let err = |e: crate::query::QueryError| CapacityError::Lake(e.to_string());
    let ctx = crate::query::session(lake).await.map_err(err)?;
    let to = now.date_naive();
    let days = i64::from(policy.weeks.max(1)) * 7 + 1;
    let from = to - chrono::Duration::days(days);
    // The same rebuild as the report's, checked against the hub's observations.
    let l = crate::report::rebuild(
        &ctx,
        load::Window {
            life: (from, to),
            activity: (from, to),
        },
    )
    .await
    .map_err(err)?;
    let s = &l.sessions;
    let observed_from = l.first_ts.values().copied().min().unwrap_or(i64::MAX);
    // A server still open at the end of the data runs until its hub's last record, not until
    // `now`: a lake that stopped growing must not forecast servers it never saw.
    let mut runs = runs_from_sessions(s, default_profile);
    for (r, s) in runs.iter_mut().zip(s) {
        if r.end.is_none() {
            r.end = l.last_ts.get(&s.hub).map(|&t| t.max(s.start));
        }
    }
    Ok(forecast(&runs, observed_from, policy, now))
}

/// The placeholder loop for one StatefulSet.
pub struct Placeholders {
    client: kube::Client,
    target: Target,
    policy: PlaceholderPolicy,
    sink: Option<DecisionSink>,
    last_change: Option<DateTime<Utc>>,
    last_recorded: Option<(Action, Reason, i32, i32)>,
    stats: Option<Arc<CapacityStats>>,
    view: Option<Arc<crate::control::admission::wait::CapacityView>>,
    /// Whether the set's profile was missing from the last forecast (warned once per streak).
    profile_missing: bool,
}

/// One placeholder set's decision as the `decisions` table records it: the set (its
/// StatefulSet) in `server_name`, no user.
pub struct SetDecision<'a> {
    pub set: &'a str,
    pub profile: Option<&'a str>,
    pub d: &'a Decision,
}

impl Decided for SetDecision<'_> {
    const COMPONENT: Component = Component::Capacity;

    fn action(&self) -> &'static str {
        self.d.action.label()
    }

    fn reason(&self) -> &'static str {
        self.d.reason.label()
    }

    fn subject(&self) -> crate::control::decisions::Subject<'_> {
        crate::control::decisions::Subject {
            user: "",
            server: Some(self.set),
            profile: self.profile,
        }
    }
}

/// What one cycle did.
#[derive(Debug, Clone, PartialEq)]
pub struct Cycle {
    pub decision: Decision,
    /// `Scaled`, `DryRun`, `Error`; `None` for a hold.
    pub outcome: Option<Outcome>,
    pub recorded: bool,
}

impl Placeholders {
    pub fn new(
        client: kube::Client,
        target: Target,
        policy: PlaceholderPolicy,
        sink: Option<DecisionSink>,
    ) -> Self {
        Placeholders {
            client,
            target,
            policy,
            sink,
            last_change: None,
            last_recorded: None,
            stats: None,
            view: None,
            profile_missing: false,
        }
    }

    /// Counts decisions and errors in `stats` (the agent's `/metrics`).
    pub fn with_stats(mut self, stats: Arc<CapacityStats>) -> Self {
        self.stats = Some(stats);
        self
    }

    /// Shares each cycle's reading with the admission endpoint (`capacity_wait`).
    pub fn with_view(mut self, view: Arc<crate::control::admission::wait::CapacityView>) -> Self {
        self.view = Some(view);
        self
    }

    /// A set whose profile the forecast does not know follows the hub's total: say so once (a
    /// slug where the log has a display name is the usual cause; `log_profile` fixes it).
    fn check_profile(&mut self, forecast: &Forecast) {
        let missing = self
            .policy
            .forecast_profile()
            .filter(|p| !forecast.profiles.contains_key(*p));
        if let (Some(p), false) = (missing, self.profile_missing) {
            let known: Vec<&str> = forecast.profiles.keys().map(String::as_str).collect();
            tracing::warn!(
                statefulset = %self.target.name,
                profile = p,
                known = ?known,
                "capacity: the forecast has no profile of this name, so this set follows the \
                 whole hub's forecast; set log_profile to the profile's name as the hub logs it"
            );
        }
        self.profile_missing = missing.is_some();
    }

    /// One cycle at `now` with `forecast`: read, decide, patch if needed, record.
    ///
    /// # Errors
    /// A failed read (nothing patched, nothing recorded) or a failed patch (recorded as
    /// `outcome = error`).
    pub async fn reconcile(
        &mut self,
        now: DateTime<Utc>,
        forecast: &Forecast,
    ) -> Result<Cycle, CapacityError> {
        let observed = match observe(&self.client, &self.target).await {
            Ok(o) => o,
            Err(e) => {
                self.count_error(&e);
                return Err(e);
            }
        };
        self.check_profile(forecast);
        let d = decide(now, forecast, observed, &self.policy, self.last_change);
        if let Some(v) = &self.view {
            v.set_cycle(
                &self.target.name,
                self.policy.profile.clone(),
                now,
                observed,
                d.peak,
            );
        }
        if let Some(s) = &self.stats {
            s.decided(&d, now.timestamp());
        }
        let mut result = Ok(());
        let outcome = if d.apply() {
            result = set_replicas(&self.client, &self.target, d.target).await;
            match &result {
                Ok(()) => {
                    self.last_change = Some(now);
                    Some(Outcome::Scaled)
                }
                Err(e) => {
                    self.count_error(e);
                    Some(Outcome::Error)
                }
            }
        } else if d.action != Action::Hold {
            Some(Outcome::DryRun)
        } else {
            None
        };
        let key = (d.action, d.reason, d.current, d.target);
        let acted = matches!(outcome, Some(Outcome::Scaled | Outcome::Error));
        let recorded = acted || self.last_recorded != Some(key);
        if recorded {
            tracing::info!(
                statefulset = %self.target.name,
                action = d.action.label(),
                reason = d.reason.label(),
                current = d.current,
                target = d.target,
                dry_run = d.dry_run,
                "capacity: {}",
                d.message()
            );
            let message = match &result {
                Ok(()) => d.message(),
                Err(e) => format!("{}: {e}", d.message()),
            };
            self.record(now, &d, outcome, message);
            self.last_recorded = Some(key);
        }
        result.map(|()| Cycle {
            decision: d,
            outcome,
            recorded,
        })
    }

    fn count_error(&self, e: &CapacityError) {
        if let Some(s) = &self.stats {
            s.error(e.metric_label());
        }
    }

    fn record(&self, now: DateTime<Utc>, d: &Decision, outcome: Option<Outcome>, msg: String) {
        let Some(sink) = &self.sink else { return };
        let row = Row {
            ts: now,
            pass: "reconcile",
            decision: SetDecision {
                set: &self.target.name,
                profile: self.policy.profile.as_deref(),
                d,
            },
            dry_run: d.dry_run,
            outcome,
            message: Some(msg),
        };
        if let Err(e) = sink.write(&[row]) {
            tracing::warn!(error = %e, "capacity: decision not recorded");
        }
    }

    /// Runs a cycle every `every` until `stop`, refreshing the forecast from `lake` every hour.
    /// A failed cycle is logged and retried on the next tick.
    pub async fn run(
        self,
        lake: crate::lake::LakeLocation,
        forecast_policy: ForecastPolicy,
        default_profile: String,
        every: StdDuration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        run_sets(
            vec![self],
            lake,
            forecast_policy,
            default_profile,
            every,
            stop,
        )
        .await;
    }

    /// The StatefulSet this loop scales.
    pub fn name(&self) -> &str {
        &self.target.name
    }
}

/// One cycle of every set at `now` with the same forecast, in order: each set is read, decided,
/// patched and recorded on its own ([`Placeholders::reconcile`]); a failure of one does not
/// stop the others.
pub async fn reconcile_all(
    sets: &mut [Placeholders],
    now: DateTime<Utc>,
    forecast: &Forecast,
) -> Vec<Result<Cycle, CapacityError>> {
    let mut out = Vec::with_capacity(sets.len());
    for p in sets.iter_mut() {
        out.push(p.reconcile(now, forecast).await);
    }
    out
}

/// The placeholder loop of several sets (a set per profile): a cycle of every set every
/// `every` until `stop`, with one forecast refreshed from `lake` every hour. A failed cycle is
/// logged (with its set) and retried on the next tick.
pub async fn run_sets(
    mut sets: Vec<Placeholders>,
    lake: crate::lake::LakeLocation,
    forecast_policy: ForecastPolicy,
    default_profile: String,
    every: StdDuration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut current: Option<(DateTime<Utc>, Forecast)> = None;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let now = Utc::now();
        let stale = current
            .as_ref()
            .is_none_or(|(at, _)| now - *at >= chrono::Duration::hours(1));
        if stale {
            match forecast_from_lake(&lake, &forecast_policy, &default_profile, now).await {
                Ok(f) => current = Some((now, f)),
                Err(e) => tracing::warn!(error = %e, "capacity: forecast not refreshed"),
            }
        }
        let Some((_, f)) = &current else { continue };
        let results = reconcile_all(&mut sets, now, f).await;
        for (p, r) in sets.iter().zip(results) {
            if let Err(e) = r {
                tracing::warn!(statefulset = %p.target.name, error = %e, kind = e.metric_label(), "capacity: cycle failed");
            }
        }
    }
}
