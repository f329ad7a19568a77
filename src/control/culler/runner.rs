//! The culler's runner: fetches, calls [`decide`], acts, records. Thin and idempotent: every
//! stop is preceded by a fresh `GET` of that user, and stopping a stopped server is harmless.
//!
//! Two triggers:
//! - **Reconcile** (at start, then every `reconcile_every`, default 5 min): list every active
//!   user (`state=active`, paginated), decide for all, and compute each server's *next wake-up*
//!   (its warning window or its deadline).
//! - **Deadline**: when a wake-up comes, refetch just those users and decide again. A server is
//!   therefore stopped within one API round-trip of crossing its limit, not up to a polling
//!   period late. Deadlines come from the hub's `last_activity` only; a wake-up that comes too
//!   early (the hub saw activity since) finds the server active and reschedules it.
//! - **The stream says where to look** (`stream.rs`): a spawn line schedules a read of that
//!   user at the new server's earliest possible deadline (its start plus the shortest idle
//!   limit), cached user or not, so a server started between listings is culled on time without
//!   a read per spawn; a heartbeat from a user not known to run a server schedules one read
//!   (at most one per user per `reconcile_every`). Nothing from the stream moves a deadline.
//!
//! Every listing and read is also an *observation* (`observe.rs`): the lake's `observations`
//! table and the active-user gauges.
//!
//! # Guarantees
//! - No stop without a successful API read of the user in the same pass; if the hub API fails,
//!   nothing is stopped and the pass is retried (10 s).
//! - Skips that repeat (stale stream, guard, rate cap) are recorded once per change, not once
//!   per retry; culls and warnings are always recorded.
//! - The mass-cull guard counts the culls of the last `reconcile_every` with the pass's own, so
//!   a burst of deadlines spread over seconds cannot get around it.
//! - A pass that started finishes, stop signal or not: every cull sent gets its `decisions` row
//!   (the agent waits for this task within `shutdown_deadline`); no pass starts after the stop.
//!
//! # Assumptions
//! - The agent follows the hub's own log. When the stream has been quiet for half of
//!   `stream_max_silence`, the culler *probes* it: one logged API request
//!   (`GET /users?state=active&limit=1`) that a healthy stream shows within the other half. So
//!   a quiet hub is not mistaken for a stalled stream, and a stalled stream is noticed.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::control::config::CullPolicy;
use crate::control::culler::decide::{
    Action, Decision, Freshness, PassInput, Reason, decide, next_wakeup,
};
use crate::control::culler::stream::{Spawned, StreamBatch, StreamState};
use crate::control::decisions::{DecisionSink, Outcome, Row};
use crate::control::metrics::ControlStats;
use crate::control::observe::Observations;
use crate::hub::{HubClient, HubError, StopOutcome, User, UserState};

const RETRY: Duration = Duration::from_secs(10);
const SHORT_RETRY: Duration = Duration::from_secs(5);

type WarnKey = (String, String, Option<DateTime<Utc>>);

pub struct Culler {
    client: HubClient,
    policy: Arc<CullPolicy>,
    sink: Option<DecisionSink>,
    stats: Arc<ControlStats>,
    stream_rx: Option<mpsc::Receiver<StreamBatch>>,
    has_stream: bool,
    stream: StreamState,
    running_total: usize,
    warned: HashSet<WarnKey>,
    recent_culls: VecDeque<Instant>,
    wake: BTreeMap<DateTime<Utc>, HashSet<String>>,
    last_recorded: HashMap<(String, Option<String>), (Action, Reason)>,
    /// Users as last read from the API (reconcile or deadline pass).
    snapshot: HashMap<String, User>,
    /// Users a heartbeat made us read, and when (one read per user per `reconcile_every`).
    looked: HashMap<String, Instant>,
    obs: Option<Observations>,
}

/// What one pass did (for `hubpulse cull --once` and tests).
#[derive(Debug, Default, Clone)]
pub struct PassReport {
    pub rows: Vec<Row<Decision>>,
    pub kept: usize,
}

impl Culler {
    /// `stream_rx`: `None` without a log stream (`hubpulse cull --once`): decisions then rest on
    /// the hub's `last_activity` alone, as jupyterhub-idle-culler's do.
    pub fn new(
        client: HubClient,
        policy: Arc<CullPolicy>,
        sink: Option<DecisionSink>,
        stats: Arc<ControlStats>,
        stream_rx: Option<mpsc::Receiver<StreamBatch>>,
    ) -> Self {
        Culler {
            client,
            policy,
            sink,
            stats,
            has_stream: stream_rx.is_some(),
            stream_rx,
            stream: StreamState::default(),
            running_total: 0,
            warned: HashSet::new(),
            recent_culls: VecDeque::new(),
            wake: BTreeMap::new(),
            last_recorded: HashMap::new(),
            snapshot: HashMap::new(),
            looked: HashMap::new(),
            obs: None,
        }
    }

    /// Records every listing and read as hub observations.
    #[must_use]
    pub fn with_observations(mut self, obs: Observations) -> Self {
        self.obs = Some(obs);
        self
    }

    /// The shortest idle limit any server can have: the earliest a new server can be due.
    fn min_limit(&self) -> Duration {
        let p = &self.policy;
        p.profile_timeouts
            .values()
            .chain(p.group_timeouts.values())
            .chain(p.max_age.iter())
            .copied()
            .fold(p.timeout, Duration::min)
    }

    /// The stream's signals: where to look, never what to decide.
    fn on_signals(
        &mut self,
        spawned: Vec<Spawned>,
        heartbeats: HashMap<String, i64>,
        now: DateTime<Utc>,
    ) {
        let soon = now + chrono_std(Duration::from_secs(1));
        let min_limit = chrono_std(self.min_limit());
        for s in spawned {
            // The cached user predates this server: the wake-up must read the hub.
            self.snapshot.remove(&s.user);
            let began = DateTime::from_timestamp_micros(s.began_us).unwrap_or(now);
            // A second of margin for the hub's `started`, set just before the timer starts.
            let at = (began + min_limit - chrono::Duration::seconds(1)).max(soon);
            tracing::debug!(user = %s.user, server = %s.server, at = %at, "culler: new server scheduled");
            self.schedule(at, s.user);
        }
        let window = self.policy.reconcile_every;
        for (user, _) in heartbeats {
            let known = self
                .snapshot
                .get(&user)
                .is_some_and(|u| u.active_servers().next().is_some());
            let recent = self.looked.get(&user).is_some_and(|t| t.elapsed() < window);
            if known || recent {
                continue;
            }
            self.looked.insert(user.clone(), Instant::now());
            self.snapshot.remove(&user);
            self.schedule(soon, user);
        }
    }

    fn observe_flush(&mut self, force: bool) {
        if let Some(o) = self.obs.as_mut()
            && let Err(e) = o.flush(force)
        {
            tracing::error!(error = %e, "culler: cannot record observations in the lake");
            self.stats.api_error("lake_write");
        }
    }

    fn freshness(&self, now: Instant) -> Freshness {
        if !self.has_stream {
            return Freshness::Absent;
        }
        let p = &self.policy;
        if self
            .stream
            .is_stale(now, p.stream_max_silence, p.stream_max_lag)
        {
            Freshness::Stale
        } else {
            Freshness::Fresh
        }
    }

    /// A full pass at `now`: list every active user (and inactive ones with `cull_users`),
    /// decide, act.
    ///
    /// # Errors
    /// The hub API failed; nothing was stopped.
    pub async fn reconcile(
        &mut self,
        pass: &'static str,
        now: DateTime<Utc>,
    ) -> Result<PassReport, HubError> {
        let mut users = self.client.users(Some(UserState::Active)).await?;
        if self.policy.cull_users {
            users.extend(self.client.users(Some(UserState::Inactive)).await?);
        }
        self.running_total = users
            .iter()
            .flat_map(|u| u.active_servers())
            .filter(|s| s.ready)
            .count();
        self.stats
            .running_servers
            .store(self.running_total as u64, Ordering::Relaxed);
        self.stats
            .last_reconcile_unix
            .store(now.timestamp().max(0) as u64, Ordering::Relaxed);
        if let Some(o) = self.obs.as_mut() {
            o.listing(now, &users);
        }
        self.wake.clear();
        self.snapshot = users.iter().map(|u| (u.name.clone(), u.clone())).collect();
        let window = self.policy.reconcile_every;
        self.looked.retain(|_, t| t.elapsed() < window);
        // Bounded memory: forget warnings and recorded skips of servers that are gone.
        let live: HashSet<(&str, &str)> = users
            .iter()
            .flat_map(|u| {
                u.active_servers()
                    .map(move |s| (u.name.as_str(), s.name.as_str()))
            })
            .collect();
        self.warned
            .retain(|(u, s, _)| live.contains(&(u.as_str(), s.as_str())));
        self.last_recorded.retain(|(u, s), _| match s {
            Some(s) => live.contains(&(u.as_str(), s.as_str())),
            None => true,
        });
        Ok(self.evaluate(&users, pass, now).await)
    }

    /// Refetch `names` and decide for them at `now` (a deadline pass).
    async fn deadline_pass(&mut self, names: Vec<String>, now: DateTime<Utc>) {
        // A wake-up left over from an earlier schedule finds the cached user not due: it is
        // rescheduled without a request (a stream signal removes the user from the cache).
        let names: Vec<String> = names
            .into_iter()
            .filter(|n| !self.rescheduled_from_cache(n, now))
            .collect();
        if names.is_empty() {
            return;
        }
        let fetched = futures::future::join_all(names.iter().map(|n| self.client.user(n))).await;
        let mut users = Vec::new();
        let at = now;
        for (name, r) in names.into_iter().zip(fetched) {
            match r {
                Ok(Some(u)) => {
                    if let Some(o) = self.obs.as_mut() {
                        o.read(at, &name, Some(&u));
                    }
                    self.snapshot.insert(name, u.clone());
                    users.push(u);
                }
                Ok(None) => {
                    if let Some(o) = self.obs.as_mut() {
                        o.read(at, &name, None);
                    }
                    self.snapshot.remove(&name);
                }
                Err(e) => {
                    tracing::warn!(user = %name, error = %e, "culler: cannot read user; retrying");
                    self.stats.api_error(e.metric_label());
                    self.schedule(now + chrono_std(RETRY), name);
                }
            }
        }
        if !users.is_empty() {
            self.evaluate(&users, "deadline", now).await;
        }
    }

    /// True when the cached user is not due for anything yet (so it was rescheduled without a
    /// request). Only a fresh stream can make that call: it is what tells of new servers.
    fn rescheduled_from_cache(&mut self, name: &str, now: DateTime<Utc>) -> bool {
        let Some(u) = self.snapshot.get(name) else {
            return false;
        };
        if self.has_stream && self.freshness(Instant::now()) != Freshness::Fresh {
            return false;
        }
        let inp = PassInput {
            now,
            freshness: Freshness::Fresh,
            running_total: usize::MAX,
            recent_culls: 0,
            rate_room: usize::MAX,
            warned: &self.warned,
        };
        let ds = decide(std::slice::from_ref(u), &inp, &self.policy);
        if ds.iter().any(|d| d.action != Action::Keep) {
            return false;
        }
        for (t, names) in next_wakeup(&ds, &self.policy, &self.warned) {
            for n in names {
                self.schedule(t, n);
            }
        }
        self.stats.pass("cached");
        true
    }

    fn schedule(&mut self, at: DateTime<Utc>, user: String) {
        self.wake.entry(at).or_default().insert(user);
    }

    async fn evaluate(
        &mut self,
        users: &[User],
        pass: &'static str,
        now: DateTime<Utc>,
    ) -> PassReport {
        self.stats.pass(pass);
        let now_i = Instant::now();
        let rate_room = self.rate_room(now_i);
        let freshness = self.freshness(now_i);
        self.stats
            .stream_stale
            .store(freshness == Freshness::Stale, Ordering::Relaxed);
        let inp = PassInput {
            now,
            freshness,
            running_total: self.running_total,
            recent_culls: self.recent_culls.len(),
            rate_room,
            warned: &self.warned,
        };
        let decisions = decide(users, &inp, &self.policy);
        for (t, names) in next_wakeup(&decisions, &self.policy, &self.warned) {
            for n in names {
                self.schedule(t, n);
            }
        }
        let mut report = PassReport::default();
        let mut to_act = Vec::new();
        for d in decisions {
            match d.action {
                Action::Keep => report.kept += 1,
                Action::Cull | Action::CullUser => to_act.push(d),
                Action::Warn => {
                    tracing::warn!(server = %d.log_name(), deadline = ?d.deadline, "culler: server will be culled soon unless it is used");
                    self.warned.insert((
                        d.user.clone(),
                        d.server.clone().unwrap_or_default(),
                        d.started,
                    ));
                    report.rows.push(self.row(d, pass, None, None));
                }
                Action::Skip => {
                    let retry = match d.reason {
                        Reason::StaleStream | Reason::RateLimited => Some(SHORT_RETRY),
                        Reason::ApiError => Some(RETRY),
                        _ => None,
                    };
                    if let Some(r) = retry {
                        self.schedule(now + chrono_std(r), d.user.clone());
                    }
                    let key = (d.user.clone(), d.server.clone());
                    if self.last_recorded.get(&key) != Some(&(d.action, d.reason)) {
                        tracing::info!(server = %d.log_name(), reason = d.reason.label(), "culler: not culling");
                        report.rows.push(self.row(d, pass, None, None));
                    }
                }
            }
        }
        self.act_all(to_act, pass, now, &mut report).await;
        self.record(&report);
        report
    }

    /// Forgets culls older than the guard's window; the culls still allowed this minute.
    fn rate_room(&mut self, now: Instant) -> usize {
        let window = self.policy.reconcile_every;
        while self
            .recent_culls
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.recent_culls.pop_front();
        }
        let minute = Duration::from_secs(60);
        let in_minute = self
            .recent_culls
            .iter()
            .filter(|t| now.duration_since(**t) <= minute)
            .count();
        match self.policy.max_culls_per_minute as usize {
            0 => usize::MAX,
            cap => cap.saturating_sub(in_minute),
        }
    }

    /// Acts on the culls decided at `now` (concurrently, bounded by the client), rows into
    /// `report`. Stops, lateness and rows carry the wall-clock time they happened at.
    async fn act_all(
        &mut self,
        to_act: Vec<Decision>,
        pass: &'static str,
        now: DateTime<Utc>,
        report: &mut PassReport,
    ) {
        let outcomes = futures::future::join_all(to_act.iter().map(|d| self.act(d))).await;
        for (d, (outcome, msg)) in to_act.into_iter().zip(outcomes) {
            if outcome.stopped() {
                self.recent_culls.push_back(Instant::now());
                self.running_total = self.running_total.saturating_sub(1);
            }
            if matches!(outcome, Outcome::Error | Outcome::Throttled) {
                self.schedule(now + chrono_std(RETRY), d.user.clone());
            }
            if outcome != Outcome::DryRun {
                // The cached user is stale once a stop was sent.
                self.snapshot.remove(&d.user);
            }
            // The hub answered that the server is stopped (204), stopping (202: the hub sees
            // the stop through itself; a server that survives it is listed again) or not
            // there (404). No read is spent to confirm it.
            if let (Outcome::Stopped | Outcome::Stopping | Outcome::Gone, Some(server)) =
                (outcome, d.server.as_deref())
                && let Some(o) = self.obs.as_mut()
            {
                o.stopped(Utc::now(), &d.user, server);
            }
            if let Some(dl) = d.deadline {
                self.stats
                    .lateness((Utc::now() - dl).num_milliseconds() as f64 / 1000.0);
            }
            report.rows.push(self.row(d, pass, Some(outcome), msg));
        }
    }

    /// Metrics, the skip-dedup memory and the lake, for a pass's rows.
    fn record(&mut self, report: &PassReport) {
        for r in &report.rows {
            self.stats
                .decision(r.decision.action.label(), r.decision.reason.label());
            self.last_recorded.insert(
                (r.decision.user.clone(), r.decision.server.clone()),
                (r.decision.action, r.decision.reason),
            );
        }
        if let Some(sink) = &self.sink
            && let Err(e) = sink.write(&report.rows)
        {
            tracing::error!(error = %e, "culler: cannot record decisions in the lake");
            self.stats.api_error("lake_write");
        }
    }

    fn row(
        &self,
        d: Decision,
        pass: &'static str,
        outcome: Option<Outcome>,
        message: Option<String>,
    ) -> Row<Decision> {
        Row {
            ts: Utc::now(),
            pass,
            decision: d,
            dry_run: self.policy.dry_run,
            outcome,
            message,
        }
    }

    /// Stops (or deletes) one; returns the outcome label and an error message.
    async fn act(&self, d: &Decision) -> (Outcome, Option<String>) {
        let idle = d
            .last_activity
            .map(|l| (Utc::now() - l).num_seconds())
            .unwrap_or(-1);
        if self.policy.dry_run {
            tracing::info!(server = %d.log_name(), reason = d.reason.label(), idle_s = idle, "culler (dry run): would cull");
            return (Outcome::DryRun, None);
        }
        tracing::info!(server = %d.log_name(), reason = d.reason.label(), idle_s = idle, "culler: culling");
        let r = match &d.server {
            Some(s) => self.client.stop_server(&d.user, s, d.remove).await,
            None => self.client.delete_user(&d.user).await.map(|found| {
                if found {
                    StopOutcome::Stopped
                } else {
                    StopOutcome::NotFound {
                        message: String::new(),
                    }
                }
            }),
        };
        if let Err(e) = &r {
            tracing::error!(server = %d.log_name(), error = %e, "culler: stop failed");
            self.stats.api_error(e.metric_label());
        }
        let (outcome, msg) = Outcome::of_stop(&r, d.server.is_none());
        self.stats.outcome(outcome.label());
        (outcome, msg)
    }

    /// Runs until `stop` is cancelled: reconcile every `reconcile_every`, act on deadlines, take
    /// the stream's signals. A pass in progress when `stop` comes is finished and recorded.
    pub async fn run(mut self, stop: tokio_util::sync::CancellationToken) {
        let mut next_reconcile = tokio::time::Instant::now();
        let mut rx = self.stream_rx.take();
        let half_silence = self.policy.stream_max_silence / 2;
        let mut last_probe = Instant::now();
        loop {
            let next_wake = self.wake.keys().next().map(|t| {
                let d = (*t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                tokio::time::Instant::now() + d
            });
            let mut until = next_wake.map_or(next_reconcile, |w| w.min(next_reconcile));
            // A quiet stream is probed: one logged API request that must show up in it.
            let probe_at = self
                .stream
                .last_record
                .unwrap_or(last_probe)
                .max(last_probe)
                + half_silence;
            if rx.is_some() {
                until = until.min(tokio::time::Instant::from_std(probe_at));
            }
            tokio::select! {
                // Stop first: no pass starts once it is asked.
                biased;
                () = stop.cancelled() => break,
                b = async { match rx.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                    match b {
                        Some(b) => {
                            let (spawned, heartbeats) = self.stream.apply(b);
                            self.on_signals(spawned, heartbeats, Utc::now());
                        }
                        None => rx = None,
                    }
                }
                _ = tokio::time::sleep_until(until) => {
                    if rx.is_some() && Instant::now() >= probe_at {
                        last_probe = Instant::now();
                        if let Err(e) = self.client.users_page(Some(UserState::Active), 0, 1).await {
                            self.stats.api_error(e.metric_label());
                        }
                        continue;
                    }
                    if tokio::time::Instant::now() >= next_reconcile {
                        match self.reconcile("reconcile", Utc::now()).await {
                            Ok(_) => next_reconcile = tokio::time::Instant::now() + self.policy.reconcile_every,
                            Err(e) => {
                                tracing::warn!(error = %e, "culler: reconcile failed; nothing stopped, retrying");
                                self.stats.api_error(e.metric_label());
                                next_reconcile = tokio::time::Instant::now() + RETRY;
                            }
                        }
                    } else {
                        let now = Utc::now();
                        let later = self.wake.split_off(&(now + chrono::Duration::microseconds(1)));
                        let due = std::mem::replace(&mut self.wake, later);
                        let names: HashSet<String> = due.into_values().flatten().collect();
                        self.deadline_pass(names.into_iter().collect(), now).await;
                    }
                    self.observe_flush(false);
                }
            }
        }
        self.observe_flush(true);
    }
}

fn chrono_std(d: Duration) -> chrono::Duration {
    crate::control::culler::decide::chrono_dur(d)
}
