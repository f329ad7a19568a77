//! Deterministic generator of large, realistic JupyterHub log streams, with their ground truth.
//!
//! [`generate`] (behind `hubpulse generate`) simulates `users` people over `days` days:
//! logins (some failing first), default and named server spawns (a few failing with a traceback
//! or timing out, then retried), single-user activity POSTs every `activity_interval_secs`,
//! user stops and logouts, idle-culler culls about an hour after the last activity, crashed
//! servers, assorted hub requests (200/204/302/404/424/500), hourly hub metrics lines, per-minute
//! configurable-http-proxy (CHP) lines and the rare line that matches no template. It returns a
//! [`Truth`] counting exactly what it wrote, so parser output can be checked against it.
//!
//! The lifecycle lines take the shapes JupyterHub and KubeSpawner really log (see
//! `docs/SESSIONS.md`): each pod posts its first activity just before the hub logs it ready,
//! pods are named as KubeSpawner's `escape` scheme names them (`jupyter-user0001--gpu`,
//! `jupyter-ana-2elopez-40example-2eorg`), and a crashed server's exit line (user only) is
//! followed by the proxy-route removal that names its server.
//!
//! What it is not: a model fitted to any real deployment (rates are plausible, not measured), nor
//! a fuzzer — every line follows one of the fixed templates except the deliberate `unparsed` ones.
//!
//! Invariants:
//! - Deterministic: the same [`GenConfig`] gives byte-identical output and an equal [`Truth`] on
//!   every platform (integer arithmetic, a seeded splitmix64 PRNG, no clocks, no hash maps).
//! - Timestamped lines (hub, culler, CHP; all naive UTC) are in non-decreasing timestamp order.
//!   Events come from a per-day priority queue; a line scheduled before the previous line's stamp
//!   is clamped forward to it (culler lines, which have no millis, to the next whole second).
//! - Memory is bounded by the user count, never by the output: the simulation streams one day at a
//!   time, its queue holds at most one pending event per user plus three periodic ones, and each
//!   event's records are written as soon as it fires. Output goes through an internal `BufWriter`.
//! - `Truth.lines`/`Truth.bytes` are exactly what was written; every line ends with `\n`. The maps
//!   in [`Truth`] hold only non-zero entries.
//! - Each user works at most one session a day, between 07:00 and about 20:00, so no session
//!   crosses midnight. On the first day the first six users each get a scripted incident (failed
//!   login + logout, spawn error, spawn timeout, crashed server, culled named server, 404/424/CHP
//!   503), so every record kind appears even in tiny runs (six or more users).
//!
//! This module holds the event loop (one day's queue, the periodic hub, culler and CHP lines);
//! `plan` decides each user's day, `activity` (login, activity, logout), `spawn` and `stop` write
//! a session's lines, and `sink` formats and counts them.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::{self, Write as _};
use std::io::{self, BufWriter, Write};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Number of distinct users.
    pub users: u32,
    /// Simulated days.
    pub days: u32,
    /// First simulated day.
    pub start: NaiveDate,
    pub seed: u64,
    /// Single-user activity POST interval (JupyterHub default 300); 0 is treated as 1.
    pub activity_interval_secs: u32,
}

/// What was generated, counted while writing.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Truth {
    /// Physical lines written.
    pub lines: u64,
    pub bytes: u64,
    /// Logical records (a multi-line record counts once).
    pub records: u64,
    /// Records per kind (names in `KIND_NAMES`).
    pub kinds: BTreeMap<String, u64>,
    /// Records of kind `unparsed`.
    pub unparsed: u64,
    /// Hub request records by status class: "2xx", "3xx", "4xx", "5xx".
    pub requests_by_status_class: BTreeMap<String, u64>,
    /// "YYYY-MM-DD" -> distinct users who sent an activity POST, logged in or started a server.
    pub daily_active_users: BTreeMap<String, u64>,
    pub spawns_succeeded_per_day: BTreeMap<String, u64>,
    /// Records that carry a Python traceback.
    pub tracebacks: u64,
    /// "YYYY-MM" -> user -> profile display name ("" = the default profile) -> server time in ms,
    /// from the ready line to the stop (or exit) line. No server runs across midnight.
    pub server_ms: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
    /// "YYYY-MM" -> server runs.
    pub server_runs: BTreeMap<String, u64>,
}

const DAY_MS: u64 = 86_400_000;
const HOUR_MS: u64 = 3_600_000;
const MIN_MS: u64 = 60_000;
const CULL_EVERY_MS: u64 = 600_000;
const CULL_OFFSET_MS: u64 = 37_000;
const CULL_AFTER_MS: u64 = 3_600_000;
const SPAWN_ATTEMPTS: u8 = 3;
const SCRIPTED_USERS: usize = 6;
const SERVER_NAMES: [&str; 3] = ["analysis", "gpu", "scratch"];
const EMAIL_USERS: [&str; 2] = ["ana.lopez@example.org", "j.smith@example.org"];
const CULLER: &str = "jupyterhub-idle-culler";
const LOCALHOST: &str = "127.0.0.1";
const PROXY_IP: &str = "::ffff:10.244.0.1";
const LOGIN_PATH: &str = "/hub/login?next=%2Fhub%2F";
const LOADING: &str = "sh: 1: /usr/local/bin/pre-start.sh: not found";
const CHP_INFO: &str = "Z [ConfigProxy] \x1b[32minfo\x1b[39m: ";
const CHP_ERROR: &str = "Z [ConfigProxy] \x1b[31merror\x1b[39m: ";

mod activity;
mod plan;
mod sink;
mod spawn;
mod stop;

use plan::{End, Fault, Session, User};
use sink::*;
use spawn::{pod_name, profile_of};

/// Queue events; user events carry the user index.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Routes,
    Metrics,
    CullerPoll,
    Login(usize),
    Spawn(usize),
    SpawnDone(usize),
    Activity(usize),
    Stop(usize),
    Exit(usize),
    Cull(usize),
    Logout(usize),
}

struct Sim<W: Write> {
    rng: Rng,
    interval_ms: u64,
    users: Vec<User>,
    sessions: Vec<Session>,
    /// Absolute ms each user was last active (login, server start or activity POST).
    last_seen: Vec<Option<u64>>,
    seen_today: Vec<bool>,
    spawns_today: u64,
    /// `(ms of day, insertion sequence, event)`, earliest first.
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    next_unparsed: u64,
    sink: Sink<W>,
    daily_active: BTreeMap<String, u64>,
    daily_spawns: BTreeMap<String, u64>,
    server_ms: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
    server_runs: BTreeMap<String, u64>,
}

/// Writes the simulated log to `out` (buffered internally) and returns what was written.
///
/// Errors: I/O errors from `out`, or `InvalidInput` if `start + days` leaves chrono's calendar.
pub fn generate<W: Write>(cfg: &GenConfig, out: W) -> io::Result<Truth> {
    let mut sim = Sim::new(cfg, out);
    sim.sink.record(Kind::Unparsed, format_args!("{LOADING}"));
    sim.sink.commit()?;
    for d in 0..cfg.days {
        let date = cfg
            .start
            .checked_add_days(Days::new(u64::from(d)))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "date out of range"))?;
        sim.run_day(d, date)?;
    }
    sim.finish()
}

impl<W: Write> Sim<W> {
    fn new(cfg: &GenConfig, out: W) -> Self {
        let mut rng = Rng(cfg.seed);
        let n = cfg.users as usize;
        let users = (0..n)
            .map(|i| {
                let email = (i + 2).checked_sub(n).filter(|_| n >= 10);
                let name =
                    email.map_or_else(|| format!("user{:04}", i + 1), |k| EMAIL_USERS[k].into());
                let proxied = rng.chance(1, 5);
                let ip = if proxied { PROXY_IP.into() } else { rng.ip() };
                User { name, ip }
            })
            .collect();
        let next_unparsed = rng.range(10_000, 30_000);
        Self {
            rng,
            interval_ms: u64::from(cfg.activity_interval_secs.max(1)) * 1000,
            users,
            sessions: (0..n).map(|_| Session::default()).collect(),
            last_seen: vec![None; n],
            seen_today: vec![false; n],
            spawns_today: 0,
            queue: BinaryHeap::new(),
            seq: 0,
            next_unparsed,
            sink: Sink::new(out),
            daily_active: BTreeMap::new(),
            daily_spawns: BTreeMap::new(),
            server_ms: BTreeMap::new(),
            server_runs: BTreeMap::new(),
        }
    }

    fn push(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn run_day(&mut self, d: u32, date: NaiveDate) -> io::Result<()> {
        self.sink.begin_day(u64::from(d) * DAY_MS, date);
        self.seen_today.fill(false);
        self.spawns_today = 0;
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        for u in 0..self.users.len() {
            self.plan(u, d == 0, weekend);
        }
        let (routes, metrics) = (self.rng.below(1000), 17 * MIN_MS + self.rng.below(1000));
        self.push(routes, Ev::Routes);
        self.push(metrics, Ev::Metrics);
        self.push(CULL_OFFSET_MS, Ev::CullerPoll);
        while let Some(Reverse((t, _, ev))) = self.queue.pop() {
            self.dispatch(t, ev);
            if self.sink.lines >= self.next_unparsed {
                self.unparsed();
            }
            self.sink.commit()?;
        }
        let active = self.seen_today.iter().filter(|&&s| s).count() as u64;
        let day = &self.sink.date;
        for (map, n) in [
            (&mut self.daily_active, active),
            (&mut self.daily_spawns, self.spawns_today),
        ] {
            if n > 0 {
                map.insert(day.clone(), n);
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, t: u64, ev: Ev) {
        match ev {
            Ev::Routes => self.on_routes(t),
            Ev::Metrics => self.on_metrics(t),
            Ev::CullerPoll => self.on_culler_poll(t),
            Ev::Login(u) => self.on_login(t, u),
            Ev::Spawn(u) => self.on_spawn(t, u),
            Ev::SpawnDone(u) => self.on_spawn_done(t, u),
            Ev::Activity(u) => self.on_activity(t, u),
            Ev::Stop(u) => self.on_stop(t, u),
            Ev::Exit(u) => self.on_exit(t, u),
            Ev::Cull(u) => self.on_cull(t, u),
            Ev::Logout(u) => self.on_logout(t, u),
        }
    }

    /// A line matching no template (no timestamp, not indented).
    fn unparsed(&mut self) {
        let (pick, n) = (self.rng.below(3), self.rng.below(99_999));
        let msg = match pick {
            0 => format_args!("{LOADING}"),
            1 => format_args!("random garbage {n}"),
            _ => format_args!("Terminated"),
        };
        self.sink.record(Kind::Unparsed, msg);
        self.next_unparsed = self.sink.lines + self.rng.range(10_000, 30_000);
    }

    fn finish(mut self) -> io::Result<Truth> {
        self.sink.out.flush()?;
        let s = &self.sink;
        let nonzero = |(k, n): (&&str, u64)| (n > 0).then(|| ((*k).to_string(), n));
        let classes = ["2xx", "3xx", "4xx", "5xx"];
        Ok(Truth {
            lines: s.lines,
            bytes: s.bytes,
            records: s.kinds.iter().sum(),
            kinds: KIND_NAMES.iter().zip(s.kinds).filter_map(nonzero).collect(),
            unparsed: s.kinds[Kind::Unparsed as usize],
            requests_by_status_class: classes.iter().zip(s.status).filter_map(nonzero).collect(),
            daily_active_users: self.daily_active,
            spawns_succeeded_per_day: self.daily_spawns,
            tracebacks: s.tracebacks,
            server_ms: self.server_ms,
            server_runs: self.server_runs,
        })
    }

    fn mark_seen(&mut self, t: u64, u: usize) {
        self.last_seen[u] = Some(self.sink.day_base + t);
        self.seen_today[u] = true;
    }

    fn on_routes(&mut self, t: u64) {
        let msg = format_args!("200 GET /api/routes ");
        self.sink.chp(Kind::ChpRequest, t, msg);
        let next = (t / MIN_MS + 1) * MIN_MS + self.rng.below(1000);
        if next < DAY_MS {
            self.push(next, Ev::Routes);
        }
    }

    fn on_metrics(&mut self, t: u64) {
        let now = self.sink.day_base + t;
        let recent = |seen: &&Option<u64>| seen.is_some_and(|s| s + DAY_MS > now);
        let n = self.last_seen.iter().filter(recent).count();
        let msg =
            format_args!("Found {n} active users in the last ActiveUserPeriods.twenty_four_hours");
        self.sink.info(Kind::ActiveUsers, t, "metrics:373", msg);
        if t + HOUR_MS < DAY_MS {
            self.push(t + HOUR_MS, Ev::Metrics);
        }
    }

    fn on_culler_poll(&mut self, t: u64) {
        let who = Who(CULLER, LOCALHOST, self.rng.range(500, 3000));
        let at = t + self.rng.below(90);
        let what = format_args!("GET /hub/api/users?state=[secret]");
        self.sink.request(at, 200, who, what);
        if t + CULL_EVERY_MS < DAY_MS {
            self.push(t + CULL_EVERY_MS, Ev::CullerPoll);
        }
    }
}

#[cfg(test)]
mod tests;
