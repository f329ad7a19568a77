//! Records → Datadog points, aggregated per series per interval of *record* time.
//!
//! [`Deriver`] is pure: it is fed records with the wall-clock time they were read, and time
//! passing (`advance`), and it hands back closed [`Interval`]s. [`DerivingObserver`] plugs it
//! into the pipeline as an [`Observer`].
//!
//! # Timeline
//! A record with timestamp `t` belongs to the interval `[s, s + len)` with `s = floor(t / len)`.
//! The *watermark* is the newest record time seen; while no record arrives it moves on with the
//! wall clock (from the last record's `(ts, read time)` pair), so quiet periods still produce
//! gauges. An interval closes once the watermark is `lateness` past its end. A record whose
//! interval already closed is folded into the oldest open interval (counted in
//! [`DeriveStats::late`]): its count is kept, a few seconds late, rather than sent as a second
//! point for a second Datadog would overwrite.
//!
//! # Gauges
//! A gauge is the state at the end of its interval. It is sampled when the first record of a
//! later interval arrives (before that record changes the state), so in-order records give exact
//! values. Across a gap with no records, at most `max_gap_intervals` intervals are filled.
//!
//! # Assumptions
//! * `spawns.started` counts launches the spawner logs at INFO (LocalProcessSpawner's
//!   `Spawning …`, KubeSpawner's `Attempting to create pod`); other spawners log none, so for
//!   them `spawns.pending` stays 0.
//! * `profile` is KubeSpawner's `Applying KubeSpawner override for profile` (no user on that
//!   line): it is given to the next server that starts, best effort under concurrent spawns.
//! * `users.active` follows the hub's own `last_activity` when the agent observes the hub (a
//!   `[hub]` section: see `control::observe`): users with a running server whose
//!   `last_activity` falls in the window, as of the latest observation. Without observations
//!   (or for intervals older than the latest observation by more than a minute, a backlog), a
//!   user is *active* at a login, an `Activity for user` record (DEBUG: logged only when the
//!   posted time is newer), or a request the user made themselves (`actor == user`), services
//!   (learnt from `Creating service …`) excluded. An activity POST's request line is *not*
//!   activity: it is a heartbeat that repeats an unchanged time.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::agent::pipeline::Observer;
use crate::datadog::classify;
use crate::datadog::names as n;
use crate::datadog::state::{HubState, Interner, Running};
use crate::datadog::{Interval, Point, Tag, TagValue, Value};
use crate::lake::batch::SourceInfo;
use crate::record::Record;

const US: i64 = 1_000_000;
/// Record times further ahead of the wall clock than this are taken as read time.
const MAX_FUTURE_US: i64 = 600 * US;

/// Windows of `jupyterhub.users.active`: (tag value, seconds).
pub const ACTIVE_WINDOWS: [(&str, i64); 3] = [("5m", 300), ("1h", 3600), ("24h", 86_400)];

#[derive(Debug, Clone)]
pub struct DeriveConfig {
    /// Interval length (Datadog's flush interval), seconds. Default 10.
    pub interval_secs: u32,
    /// How long after its end an interval waits for late records, seconds. Default 5.
    pub lateness_secs: u32,
    /// At most this many empty intervals get gauges when time jumps. Default 360 (1 h: Datadog
    /// accepts nothing older).
    pub max_gap_intervals: u32,
    /// Distinct values kept per free-text tag (hub, profile, logger); more become `other`.
    pub max_tag_values: usize,
}

impl Default for DeriveConfig {
    fn default() -> Self {
        DeriveConfig {
            interval_secs: 10,
            lateness_secs: 5,
            max_gap_intervals: 360,
            max_tag_values: 32,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeriveStats {
    pub records: u64,
    /// Records whose interval had closed: counted in the oldest open interval instead.
    pub late: u64,
    pub intervals: u64,
    /// Empty intervals skipped when time jumped by more than `max_gap_intervals`.
    pub gap_skipped: u64,
    /// Records stamped more than 10 min after they were read: counted at their read time.
    pub future: u64,
}

type Key = (&'static str, Vec<Tag>);

#[derive(Debug, Default)]
struct Bucket {
    counts: HashMap<Key, f64>,
    dists: HashMap<Key, Vec<f64>>,
    gauges: Vec<Point>,
    lag_max: HashMap<TagValue, f64>,
}

pub struct Deriver {
    cfg: DeriveConfig,
    len_us: i64,
    open: BTreeMap<i64, Bucket>,
    /// Start (µs) of the newest interval whose predecessors have their gauges sampled.
    newest: Option<i64>,
    watermark: i64,
    /// (watermark, wall µs) at the last record: the origin of idle advance.
    anchor: Option<(i64, i64)>,
    /// Start of the newest closed interval: nothing at or before it is emitted again.
    closed_through: Option<i64>,
    hubs: BTreeMap<TagValue, HubState>,
    hub_names: Interner,
    profiles: Interner,
    loggers: Interner,
    ready: Vec<Interval>,
    stats: DeriveStats,
    /// The hub's observed activity, when the agent reads the hub.
    hub_activity: Option<std::sync::Arc<crate::hub::activity::ActivityView>>,
}

fn tags(pairs: &[(&'static str, TagValue)]) -> Vec<Tag> {
    let mut v: Vec<Tag> = pairs
        .iter()
        .map(|(k, val)| Tag {
            key: k,
            value: val.clone(),
        })
        .collect();
    v.sort();
    v
}

fn st(s: &'static str) -> TagValue {
    TagValue::Static(s)
}

impl Deriver {
    pub fn new(cfg: DeriveConfig) -> Self {
        let cap = cfg.max_tag_values;
        Deriver {
            len_us: i64::from(cfg.interval_secs.max(1)) * US,
            cfg,
            open: BTreeMap::new(),
            newest: None,
            watermark: i64::MIN,
            anchor: None,
            closed_through: None,
            hubs: BTreeMap::new(),
            hub_names: Interner::new(cap),
            profiles: Interner::new(cap),
            loggers: Interner::new(cap),
            ready: Vec::new(),
            stats: DeriveStats::default(),
            hub_activity: None,
        }
    }

    pub fn stats(&self) -> &DeriveStats {
        &self.stats
    }

    /// Intervals closed so far, oldest first.
    pub fn take_ready(&mut self) -> Vec<Interval> {
        std::mem::take(&mut self.ready)
    }

    fn start_of(&self, t_us: i64) -> i64 {
        t_us.div_euclid(self.len_us) * self.len_us
    }

    /// Feed one record of hub `hub`, read at wall-clock `read_us` (POSIX µs).
    pub fn record(&mut self, rec: &Record<'_>, hub: &str, read_us: i64) {
        self.stats.records += 1;
        let mut t = rec.ts.or(rec.ts_hint).unwrap_or(if self.anchor.is_some() {
            self.watermark
        } else {
            read_us
        });
        // A stamp from the future (a skewed clock, a mangled line) would drag the watermark
        // ahead and make every later record late; Datadog refuses points > 10 min ahead anyway.
        if t > read_us + MAX_FUTURE_US {
            self.stats.future += 1;
            t = read_us;
        }
        let key = self.start_of(t);
        self.sample_until(key);
        self.watermark = self.watermark.max(t);
        self.anchor = Some((self.watermark, read_us));
        let target = match self.closed_through {
            Some(closed) if key <= closed => {
                self.stats.late += 1;
                let oldest = self.open.keys().next().copied();
                oldest.unwrap_or(closed + self.len_us)
            }
            _ => key,
        };
        let hub = self.hub_names.get(hub);
        let bucket = self.open.entry(target).or_default();
        if rec.ts.is_some() {
            let lag = (read_us - t) as f64 / US as f64;
            let m = bucket.lag_max.entry(hub.clone()).or_insert(lag);
            *m = m.max(lag);
        }
        self.apply(rec, hub, t, target);
        self.close_until(self.watermark);
    }

    /// Time passes without records: at wall-clock `now_us`, the watermark moves on from the last
    /// record by the wall time elapsed since it was read.
    pub fn advance(&mut self, now_us: i64) {
        let Some((wm, wall)) = self.anchor else {
            return;
        };
        let t = wm + (now_us - wall).max(0);
        if t <= self.watermark {
            return;
        }
        self.sample_until(self.start_of(t));
        self.watermark = t;
        self.close_until(t);
    }

    /// Close every open interval now (shutdown, tests): gauges are sampled from the current state.
    pub fn flush_all(&mut self) {
        if let Some(newest) = self.newest {
            self.sample_until(newest + self.len_us);
        }
        self.close_until(i64::MAX);
    }

    /// Sample gauges for every interval that ends at or before `key` and has not been sampled.
    fn sample_until(&mut self, key: i64) {
        let Some(mut s) = self.newest else {
            self.newest = Some(key);
            return;
        };
        if key <= s {
            return;
        }
        let gap = (key - s) / self.len_us;
        let max = i64::from(self.cfg.max_gap_intervals.max(1));
        if gap > max + 1 {
            // Intervals strictly between `s` and `key`, less the `max` filled.
            self.stats.gap_skipped += (gap - 1 - max) as u64;
            // The interval `s` (which has records) still gets its gauges; then jump.
            self.sample_one(s);
            s = key - max * self.len_us;
        }
        while s < key {
            self.sample_one(s);
            s += self.len_us;
        }
        self.newest = Some(key);
    }

    /// Active users per window from the hub's observations, for an interval ending at `end`:
    /// only while `end` is current (at most a minute before the latest observation); the view
    /// holds each user's *latest* time, which says nothing of an older interval.
    fn observed_active(&self, end: i64) -> Option<[usize; 3]> {
        let v = self.hub_activity.as_ref()?;
        if end < v.observed_at()? - 60 * US {
            return None;
        }
        let w = ACTIVE_WINDOWS.map(|(_, s)| s * US);
        let c = v.active_counts(end, &w)?;
        Some([c[0], c[1], c[2]])
    }

    /// Take `users.active` from the hub's observations (see the module docs).
    pub fn with_hub_activity(
        mut self,
        view: std::sync::Arc<crate::hub::activity::ActivityView>,
    ) -> Self {
        self.hub_activity = Some(view);
        self
    }

    fn sample_one(&mut self, start: i64) {
        let end = start + self.len_us;
        let observed = self.observed_active(end);
        let mut gauges = Vec::new();
        for (hub, h) in &mut self.hubs {
            gauges.extend(h.gauges(hub, end, observed));
        }
        self.open.entry(start).or_default().gauges = gauges;
    }

    fn close_until(&mut self, watermark: i64) {
        let lateness = i64::from(self.cfg.lateness_secs) * US;
        while let Some((&start, _)) = self.open.first_key_value() {
            let sampled = self.newest.is_some_and(|n| n > start);
            if !sampled || start.saturating_add(self.len_us + lateness) > watermark {
                break;
            }
            if let Some(b) = self.open.remove(&start) {
                self.closed_through = Some(start);
                let iv = self.finish(start, b);
                self.stats.intervals += 1;
                self.ready.push(iv);
            }
        }
    }

    fn finish(&self, start: i64, b: Bucket) -> Interval {
        let mut points = b.gauges;
        for ((metric, tags), v) in b.counts {
            points.push(Point {
                metric,
                tags,
                value: Value::Count(v),
            });
        }
        for ((metric, tags), v) in b.dists {
            points.push(Point {
                metric,
                tags,
                value: Value::Distribution(v),
            });
        }
        for (hub, lag) in b.lag_max {
            let tags = vec![Tag {
                key: "hub",
                value: hub,
            }];
            points.push(Point {
                metric: n::AGENT_LAG,
                tags,
                value: Value::Gauge(lag),
            });
        }
        points.sort_by(|a, b| (a.metric, &a.tags).cmp(&(b.metric, &b.tags)));
        Interval {
            start_s: start / US,
            len_s: self.cfg.interval_secs.max(1),
            points,
        }
    }

    fn count(&mut self, at: i64, metric: &'static str, pairs: &[(&'static str, TagValue)]) {
        let b = self.open.entry(at).or_default();
        *b.counts.entry((metric, tags(pairs))).or_insert(0.0) += 1.0;
    }

    fn dist(&mut self, at: i64, metric: &'static str, pairs: &[(&'static str, TagValue)], v: f64) {
        let b = self.open.entry(at).or_default();
        b.dists.entry((metric, tags(pairs))).or_default().push(v);
    }

    /// Counts, distributions and state changes of one record.
    fn apply(&mut self, rec: &Record<'_>, hub: TagValue, t: i64, at: i64) {
        let h = || ("hub", hub.clone());
        if classify::is_traceback(rec) {
            let logger = match rec.logger {
                Some(l) => self.loggers.get(l),
                None => st(rec.source.as_str()),
            };
            self.count(at, n::TRACEBACKS, &[h(), ("logger", logger)]);
        }
        let user = rec.user.as_deref();
        let server = rec.server_name.as_deref();
        match rec.kind {
            "request" => {
                let group = st(rec.route.map_or("other", classify::route_group));
                let class = st(rec.status.map_or("other", classify::status_class));
                self.count(
                    at,
                    n::REQUESTS,
                    &[h(), ("route_group", group.clone()), ("status_class", class)],
                );
                if let Some(ms) = rec.duration_ms {
                    self.dist(
                        at,
                        n::REQUEST_DURATION,
                        &[h(), ("route_group", group)],
                        ms / 1000.0,
                    );
                }
                // A single-user server reports its heartbeat with its user's token: the
                // activity POST's line names the user as actor, but is no activity.
                let heartbeat = rec.route == Some("/hub/api/users/{user}/activity");
                if let (Some(a), Some(u)) = (rec.actor, user)
                    && a == u
                    && !heartbeat
                {
                    self.state(&hub).active(u, t);
                }
            }
            "login" => {
                self.count(at, n::LOGINS, &[h(), ("outcome", st("ok"))]);
                if let Some(u) = user {
                    self.state(&hub).active(u, t);
                }
            }
            "login_failed" | "login_refused" => {
                self.count(at, n::LOGINS, &[h(), ("outcome", st("failed"))]);
            }
            "activity_recorded" => {
                if let Some(u) = user {
                    self.state(&hub).active(u, t);
                }
            }
            "process_spawned" | "pod_create" => {
                self.count(at, n::SPAWNS_STARTED, &[h()]);
                self.state(&hub).started += 1;
            }
            "spawn_succeeded" => {
                let s = self.state(&hub);
                s.finished += 1;
                let profile = s.profiles.pop_front();
                let server = server.unwrap_or("");
                let ty = classify::server_type(server);
                if let Some(u) = user {
                    let r = Running {
                        server_type: ty,
                        profile: profile.clone(),
                    };
                    s.running.insert((u.to_string(), server.to_string()), r);
                }
                let mut pairs = vec![h(), ("server_type", st(ty))];
                pairs.extend(profile.map(|p| ("profile", p)));
                self.count(at, n::SPAWNS_SUCCEEDED, &pairs);
                if let Some(ms) = rec.duration_ms {
                    self.dist(at, n::SPAWN_DURATION, &pairs, ms / 1000.0);
                }
            }
            "spawn_failed" | "spawn_timeout" => {
                if let Some(reason) = classify::spawn_failure_reason(rec) {
                    self.state(&hub).finished += 1;
                    self.count(at, n::SPAWNS_FAILED, &[h(), ("reason", st(reason))]);
                }
            }
            "stop_succeeded" | "server_exited" | "server_lost" => {
                let reason = match rec.kind {
                    "stop_succeeded" => "requested",
                    "server_exited" => "exited",
                    _ => "lost",
                };
                let ty = self.state(&hub).stopped(user, server);
                self.count(
                    at,
                    n::STOPS,
                    &[h(), ("reason", st(reason)), ("server_type", st(ty))],
                );
                if let (true, Some(ms)) = (rec.kind == "stop_succeeded", rec.duration_ms) {
                    self.dist(
                        at,
                        n::STOP_DURATION,
                        &[h(), ("server_type", st(ty))],
                        ms / 1000.0,
                    );
                }
            }
            "server_still_running" => {
                if let Some(u) = user {
                    let server = server.unwrap_or("");
                    let r = Running {
                        server_type: classify::server_type(server),
                        profile: None,
                    };
                    self.state(&hub)
                        .running
                        .insert((u.to_string(), server.to_string()), r);
                }
            }
            "hub_starting" => {
                let s = self.state(&hub);
                s.running.clear();
                s.started = 0;
                s.finished = 0;
                s.profiles.clear();
            }
            "profile_override" => {
                if let Some((_, p)) = rec.attrs.iter().find(|(k, _)| *k == "profile") {
                    let p = self.profiles.get(p);
                    let s = self.state(&hub);
                    if s.profiles.len() == 64 {
                        s.profiles.pop_front();
                    }
                    s.profiles.push_back(p);
                }
            }
            "service_created" | "service_registered" | "service_starting" => {
                let name = rec.service.or_else(|| {
                    rec.attrs
                        .iter()
                        .find(|(k, _)| matches!(*k, "service" | "token_service" | "quoted_service"))
                        .map(|(_, v)| *v)
                });
                if let Some(name) = name {
                    let s = self.state(&hub);
                    if s.services.len() < 10_000 {
                        s.services.insert(name.to_string());
                    }
                }
            }
            "active_users" => {
                let period = rec
                    .attrs
                    .iter()
                    .find(|(k, _)| *k == "period")
                    .map(|(_, v)| *v);
                let period = match period {
                    Some("twenty_four_hours") => Some("24h"),
                    Some("seven_days") => Some("7d"),
                    Some("thirty_days") => Some("30d"),
                    _ => None,
                };
                if let (Some(p), Some(c)) = (period, rec.count) {
                    self.state(&hub).reported.insert(p, c as f64);
                }
            }
            kind => {
                if let Some(r) = classify::cull_reason(kind) {
                    self.count(at, n::CULLS, &[h(), ("reason", st(r))]);
                } else if let Some(r) = classify::proxy_error_reason(kind) {
                    self.count(at, n::PROXY_ERRORS, &[h(), ("reason", st(r))]);
                } else if let Some(r) = classify::spawn_denied_reason(kind) {
                    self.count(at, n::SPAWNS_DENIED, &[h(), ("reason", st(r))]);
                }
            }
        }
    }

    fn state(&mut self, hub: &TagValue) -> &mut HubState {
        self.hubs.entry(hub.clone()).or_default()
    }
}

/// `Instant` → POSIX µs, anchored once (the pipeline passes `Instant`s; Datadog wants wall time).
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    at: Instant,
    unix_us: i64,
}

impl WallClock {
    pub fn now() -> Self {
        let unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        WallClock {
            at: Instant::now(),
            unix_us,
        }
    }

    /// A clock on which `at` is `unix_us` (tests).
    pub fn anchored(at: Instant, unix_us: i64) -> Self {
        WallClock { at, unix_us }
    }

    pub fn unix_us(&self, i: Instant) -> i64 {
        match i.checked_duration_since(self.at) {
            Some(d) => self.unix_us + i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2),
            None => self.unix_us - i64::try_from((self.at - i).as_micros()).unwrap_or(0),
        }
    }
}

/// The pipeline observer: derives points and hands every closed interval to `sink` (the
/// sink's bounded channel, see [`super::sink::observer`]). Cheap per record: a few hash-map updates, no I/O.
pub struct DerivingObserver<S: FnMut(Interval) + Send> {
    deriver: Deriver,
    clock: WallClock,
    sink: S,
}

impl<S: FnMut(Interval) + Send> DerivingObserver<S> {
    pub fn new(cfg: DeriveConfig, clock: WallClock, sink: S) -> Self {
        DerivingObserver {
            deriver: Deriver::new(cfg),
            clock,
            sink,
        }
    }

    pub fn stats(&self) -> &DeriveStats {
        self.deriver.stats()
    }

    /// See [`Deriver::with_hub_activity`].
    #[must_use]
    pub fn with_hub_activity(
        mut self,
        view: std::sync::Arc<crate::hub::activity::ActivityView>,
    ) -> Self {
        self.deriver = self.deriver.with_hub_activity(view);
        self
    }

    fn drain(&mut self) {
        for iv in self.deriver.take_ready() {
            (self.sink)(iv);
        }
    }
}

impl<S: FnMut(Interval) + Send> Observer for DerivingObserver<S> {
    fn on_record(&mut self, rec: &Record<'_>, src: &SourceInfo, read_at: Instant) {
        self.deriver
            .record(rec, &src.hub, self.clock.unix_us(read_at));
        self.drain();
    }

    fn on_tick(&mut self, now: Instant) {
        self.deriver.advance(self.clock.unix_us(now));
        self.drain();
    }

    /// Close every open interval (their gauges from the final state) and hand them over.
    fn on_shutdown(&mut self) {
        self.deriver.flush_all();
        self.drain();
    }
}

#[cfg(test)]
#[path = "derive_tests.rs"]
mod tests;
