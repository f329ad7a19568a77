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
//! # Records without a time
//! A record with no stamp takes the last stamp seen before it in its file (`ts_hint`), else the
//! watermark. Records with no time at all that come before any timed record (every Z2JH hub pod
//! log starts with `Loading /usr/local/etc/jupyterhub/secret/values.yaml`, printed by the
//! chart's `_load_config` in `jupyterhub/files/hub/z2jh.py` (jupyterhub/zero-to-jupyterhub-k8s)
//! before JupyterHub configures logging; `kubectl logs -f deploy/hub |
//! hubpulse run --follow -` starts with it too) are *held*: their counts wait in a bucket of
//! their own and go to the interval of the first timed record, and they move neither the
//! watermark nor the idle-advance anchor (the read time of a backlog is not its record time:
//! taking it made every older record late). If no timed record comes within one interval plus
//! the lateness of wall time (or at shutdown), the held records are placed at their read time.
//!
//! # Gauges
//! A gauge is the state at the end of its interval. It is sampled when the first record of a
//! later interval arrives (before that record changes the state), so in-order records give exact
//! values. Across a gap with no records, at most `max_gap_intervals` intervals are filled.
//!
//! # Assumptions
//! * `spawns.started` counts launches the spawner logs at INFO (LocalProcessSpawner's
//!   `Spawning …`, KubeSpawner's first `Attempting to create pod` of a launch; a managed
//!   service's `Spawning …` and a pod-create retry are not launches: see
//!   [`launch_event`](crate::sinks::datadog::classify::launch_event)); other spawners log none, so
//!   for them `spawns.pending` stays 0. `spawns.pending` goes up at a launch and down (never
//!   below 0) at each spawn outcome.
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

use crate::lake::batch::SourceInfo;
use crate::parse::record::Record;
use crate::sinks::datadog::names as n;
use crate::sinks::datadog::state::{HubState, Interner};
use crate::sinks::datadog::{Interval, Point, Tag, TagValue, Value};
use crate::stream::Observer;

#[path = "derive_apply.rs"]
mod apply;

const US: i64 = 1_000_000;
/// The `at` of a record with no time at all, held until the first timed record (see the module
/// doc): its counts go to [`Held::bucket`].
const UNTIMED: i64 = i64::MIN;
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
    /// Records with no time at all before the first timed one: counted in the first timed
    /// record's interval (or at their read time when none came).
    pub untimed_held: u64,
}

type Key = (&'static str, Vec<Tag>);

#[derive(Debug, Default)]
struct Bucket {
    counts: HashMap<Key, f64>,
    dists: HashMap<Key, Vec<f64>>,
    gauges: Vec<Point>,
    lag_max: HashMap<TagValue, f64>,
}

/// What records with no time at all left before the first timed record.
#[derive(Debug, Default)]
struct Held {
    bucket: Bucket,
    /// (hub, user) of held records that made a user active.
    active: Vec<(TagValue, String)>,
    /// Wall time the first of them was read.
    first_read_us: i64,
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
    held: Option<Held>,
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
            held: None,
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
        let mut t = match rec.ts.or(rec.ts_hint) {
            Some(t) => t,
            None if self.anchor.is_some() => self.watermark,
            None => {
                // No time at all, and none seen yet: hold it (module doc).
                self.stats.untimed_held += 1;
                let h = self.held.get_or_insert_with(Held::default);
                if h.first_read_us == 0 {
                    h.first_read_us = read_us;
                }
                let hub = self.hub_names.get(hub);
                self.apply(rec, hub, UNTIMED, UNTIMED);
                return;
            }
        };
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
        self.release_held(target, t);
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
            // Held untimed records wait for a timed one one interval plus the lateness at most.
            let wait = self.len_us + i64::from(self.cfg.lateness_secs) * US;
            if let Some(first) = self.held.as_ref().map(|h| h.first_read_us)
                && now_us - first >= wait
            {
                self.place_held_at_read_time();
                self.advance(now_us);
            }
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
        if self.anchor.is_none() {
            self.place_held_at_read_time();
        }
        if let Some(newest) = self.newest {
            self.sample_until(newest + self.len_us);
        }
        self.close_until(i64::MAX);
    }

    /// Move the held counts into the interval `target` of the record at `t` being placed.
    fn release_held(&mut self, target: i64, t: i64) {
        let Some(h) = self.held.take() else { return };
        let b = self.open.entry(target).or_default();
        for (k, v) in h.bucket.counts {
            *b.counts.entry(k).or_insert(0.0) += v;
        }
        for (k, v) in h.bucket.dists {
            b.dists.entry(k).or_default().extend(v);
        }
        for (hub, user) in h.active {
            self.state(&hub).active(&user, t);
        }
    }

    /// No timed record came: the held records take the time they were read (the anchor starts
    /// there, as it would have without holding).
    fn place_held_at_read_time(&mut self) {
        let Some(first) = self.held.as_ref().map(|h| h.first_read_us) else {
            return;
        };
        let key = self.start_of(first);
        self.sample_until(key);
        self.watermark = self.watermark.max(first);
        self.anchor = Some((self.watermark, first));
        let target = match self.closed_through {
            Some(closed) if key <= closed => closed + self.len_us,
            _ => key,
        };
        self.release_held(target, first);
        self.close_until(self.watermark);
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
/// sink's bounded channel, see [`crate::sinks::datadog::sink::observer`]). Cheap per record: a few hash-map updates, no I/O.
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
