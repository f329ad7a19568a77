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

/// The profile a user's server runs with: the display name the hub logs at DEBUG, or `None`
/// for the default profile (no override line). A function of the user and server only, so the
/// random sequence (and every other figure) is unchanged by it.
fn profile_of(u: usize, server: Option<&str>) -> Option<&'static str> {
    match (server, u % 5) {
        (Some("gpu"), _) => Some("GPU (large)"),
        (_, 0) => Some("Medium (4 CPU)"),
        _ => None,
    }
}

/// The pod KubeSpawner names for a server: `pod_name_template` `jupyter-{username}--{servername}`
/// (trailing `-` dropped for the default server) over the `escape` slug scheme, KubeSpawner ≤ 6
/// and 7 with `slug_scheme = "escape"` (`kubespawner/spawner.py` `_expand_user_properties`,
/// `slugs.py` `escape_slug`): every character outside `[a-z0-9]` becomes `-` and the hex of its
/// UTF-8 bytes, so `ana.lopez@example.org` is `jupyter-ana-2elopez-40example-2eorg`.
fn pod_name(user: &str, server: Option<&str>) -> String {
    fn escape(name: &str, out: &mut String) {
        for c in name.chars() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                out.push(c);
            } else {
                let mut b = [0u8; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    let _ = write!(out, "-{byte:x}");
                }
            }
        }
    }
    let mut out = String::from("jupyter-");
    escape(user, &mut out);
    if let Some(s) = server {
        out.push_str("--");
        escape(s, &mut out);
    }
    out
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

mod sink;
use sink::*;

/// Whether a spawn attempt fails, and how.
#[derive(Clone, Copy, Default)]
enum Fault {
    #[default]
    None,
    Error,
    Timeout,
}

/// How a session's server goes away once the user stops working.
#[derive(Clone, Copy, Default)]
enum End {
    Stop,
    Exit,
    #[default]
    Cull,
}

/// One user's plan and state for the current day.
#[derive(Default)]
struct Session {
    server: Option<&'static str>,
    pod: String,
    failed_logins: u8,
    give_up: bool,
    cookie: bool,
    /// Faults of the first two spawn attempts; later attempts succeed.
    faults: [Fault; 2],
    attempt: u8,
    spawn_started: u64,
    end: End,
    logout: bool,
    force_extras: bool,
    work_ms: u64,
    work_end: u64,
    last_activity: u64,
    /// Ms of day the server was ready.
    ready_at: u64,
}

impl Session {
    /// `("/", name)` for a named server, `("", "")` for the default one.
    fn sl(&self) -> (&'static str, &'static str) {
        self.server.map_or(("", ""), |s| ("/", s))
    }
    /// `/hub/api/users/{u}/server` or `/hub/api/users/{u}/servers/{s}`.
    fn api(&self, u: &str) -> String {
        match self.server {
            Some(s) => format!("/hub/api/users/{u}/servers/{s}"),
            None => format!("/hub/api/users/{u}/server"),
        }
    }
    fn fault(&self) -> Fault {
        let i = usize::from(self.attempt);
        self.faults.get(i).copied().unwrap_or_default()
    }
}

struct User {
    name: String,
    ip: String,
}

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

    /// Decides whether and how user `u` works today, and schedules the login.
    fn plan(&mut self, u: usize, first_day: bool, weekend: bool) {
        let scripted = first_day && u < SCRIPTED_USERS;
        let r = &mut self.rng;
        if !scripted && !r.chance(if weekend { 12 } else { 85 }, 100) {
            return;
        }
        let mut fault = || match r.below(100) {
            0..3 => Fault::Error,
            3..5 => Fault::Timeout,
            _ => Fault::None,
        };
        let faults = [fault(), fault()];
        let mut s = Session {
            server: r.chance(3, 10).then(|| SERVER_NAMES[r.below(3) as usize]),
            failed_logins: u8::from(r.chance(1, 12)) * (1 + r.below(2) as u8),
            give_up: r.chance(1, 4),
            cookie: r.chance(3, 10),
            faults,
            end: match r.below(100) {
                0..25 => End::Stop,
                25..28 => End::Exit,
                _ => End::Cull,
            },
            logout: r.chance(1, 2),
            work_ms: 90 * MIN_MS + r.below(5 * HOUR_MS),
            ..Session::default()
        };
        if scripted {
            script(u, &mut s);
        }
        self.sessions[u] = s;
        let login = 7 * HOUR_MS + self.rng.below(5 * HOUR_MS);
        self.push(login, Ev::Login(u));
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

    fn on_login(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &mut self.sessions[u]);
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        if s.failed_logins > 0 {
            s.failed_logins -= 1;
            let msg = format_args!("Failed login for '{name}'");
            let t = sink.hub(Kind::LoginFailed, t, 'W', "base:843", msg);
            let (who, what) = (
                Who("", ip, r.range(2000, 9000)),
                format_args!("POST {LOGIN_PATH}"),
            );
            sink.request(t + r.range(1, 20), 200, who, what);
            let retry = t + r.range(5_000, 40_000);
            if s.failed_logins > 0 || !s.give_up {
                self.push(retry, Ev::Login(u));
            }
            return;
        }
        let mut t = t;
        if !s.cookie {
            let msg = format_args!("User logged in: {name}");
            t = sink.info(Kind::Login, t, "base:837", msg);
            let who = Who(name, ip, r.range(2000, 9000));
            let what = format_args!("POST {LOGIN_PATH} -> /hub/");
            t = sink.request(t + r.range(1, 20), 302, who, what);
            self.last_seen[u] = Some(sink.day_base + t);
            self.seen_today[u] = true;
        }
        let (who, what) = (
            Who(name, ip, r.range(500, 5000)),
            format_args!("GET /hub/home"),
        );
        let t = sink.request(t + r.range(50, 900), 200, who, what);
        let at = t + r.range(2_000, 30_000);
        self.push(at, Ev::Spawn(u));
    }

    fn on_spawn(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &mut self.sessions[u]);
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        s.pod = r.ip();
        let (sl, sv) = s.sl();
        let dash = if s.server.is_some() { "-" } else { "" };
        let msg = format_args!("Creating oauth client jupyterhub-user-{name}{dash}{sv}");
        let t0 = sink.info(Kind::OauthClient, t, "provider:661", msg);
        s.spawn_started = t0;
        if let Some(p) = profile_of(u, s.server) {
            let msg = format_args!("Applying KubeSpawner override for profile '{p}'");
            sink.hub(Kind::ProfileOverride, t0 + 1, 'D', "spawner:1988", msg);
        }
        let pod_name = pod_name(name, s.server);
        let msg = format_args!("Attempting to create pod {pod_name}, with timeout 3");
        let t = sink.info(Kind::PodCreate, t0 + r.range(5, 40), "spawner:2469", msg);
        let what =
            format_args!("GET /hub/spawn/{name}{sl}{sv} -> /hub/spawn-pending/{name}{sl}{sv}");
        let who = Who(name, ip, r.range(3000, 30_000));
        sink.request(t + r.range(20, 200), 302, who, what);
        let delay = match s.fault() {
            Fault::None => r.range(3_000, 45_000),
            Fault::Error => r.range(2_000, 10_000),
            Fault::Timeout => r.range(30_000, 30_500),
        };
        self.push(t0 + delay, Ev::SpawnDone(u));
    }

    fn on_spawn_done(&mut self, t: u64, u: usize) {
        let fault = self.sessions[u].fault();
        self.sessions[u].attempt += 1;
        match fault {
            Fault::None => return self.spawn_ok(t, u),
            Fault::Error => self.spawn_error(t, u),
            Fault::Timeout => self.spawn_timeout(t, u),
        }
        if self.sessions[u].attempt < SPAWN_ATTEMPTS {
            let retry = self.sink.last - self.sink.day_base + self.rng.range(20_000, 120_000);
            self.push(retry, Ev::Spawn(u));
        }
    }

    fn spawn_ok(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &mut self.sessions[u]);
        let (name, ip, pod) = (user.name.as_str(), user.ip.as_str(), s.pod.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        let (sl, sv) = s.sl();
        let colon = if s.server.is_some() { ":" } else { "" };
        let took = t.saturating_sub(s.spawn_started);
        // The single-user server posts its first activity as it starts, before the hub has
        // seen it respond (`singleuser/extension.py` `keep_activity_updated` posts, then
        // sleeps): a heartbeat just before the ready line.
        let early = t.saturating_sub(r.range(50, took.clamp(51, 2_000)));
        let who = Who(name, pod, r.range(300, 4000));
        let what = format_args!("POST /hub/api/users/{name}/activity");
        let early = sink.request(early, 200, who, what);
        s.last_activity = early;
        let t = t.max(early);
        let (secs, frac) = (took / 1000, took % 1000);
        let msg = format_args!("User {name}{colon}{sv} took {secs}.{frac:03} seconds to start");
        let t = sink.info(Kind::SpawnSucceeded, t, "base:1124", msg);
        s.ready_at = t;
        let route = format!("/user/{name}{sl}{sv}");
        let msg = format_args!("Adding user {name} to proxy {route}/ => http://{pod}:8888");
        let t = sink.info(Kind::ProxyRouteAdded, t + r.range(1, 10), "proxy:331", msg);
        let msg = format_args!("Adding route {route} -> http://{pod}:8888");
        let t = sink.chp(Kind::ChpRouteAdded, t + r.range(1, 10), msg);
        let who = Who(name, ip, took * 100 + r.below(100));
        let what = format_args!("GET {}/progress", s.api(name));
        let t = sink.request(t + r.range(5, 50), 200, who, what);
        s.work_end = t + s.work_ms;
        let first = t + r.range(1_000, self.interval_ms.clamp(1_001, 30_000));
        self.spawns_today += 1;
        self.mark_seen(t, u);
        self.push(first, Ev::Activity(u));
    }

    fn spawn_error(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &self.sessions[u]);
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        let msg =
            format_args!("Unhandled error starting {name}'s server: ValueError: image pull failed");
        let t = sink.hub(Kind::SpawnFailed, t, 'E', "user:1004", msg);
        sink.cont("    Traceback (most recent call last):");
        sink.cont(concat!(
            "      File \"/usr/local/lib/python3.12/site-packages/jupyterhub/user.py\", ",
            "line 998, in spawn"
        ));
        sink.cont("        await spawner.start()");
        sink.cont("    ValueError: image pull failed");
        sink.cont("    ");
        sink.tracebacks += 1;
        let (who, api) = (Who(name, ip, r.range(1000, 20_000)), s.api(name));
        let t = sink.request(t + r.range(1, 10), 500, who, format_args!("POST {api}"));
        let pod_name = pod_name(name, s.server);
        let msg = format_args!("Deleting pod jhub/{pod_name}");
        sink.info(Kind::PodDelete, t + r.range(10, 300), "spawner:3395", msg);
    }

    fn spawn_timeout(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &self.sessions[u]);
        let (name, pod) = (user.name.as_str(), s.pod.as_str());
        let ((sl, sv), sink) = (s.sl(), &mut self.sink);
        let msg = format_args!(
            "{name}'s server never showed up at http://{pod}:8888/user/{name}{sl}{sv}/ \
             after 30 seconds. Giving up."
        );
        let t = sink.hub(Kind::SpawnTimeout, t, 'W', "user:1063", msg);
        sink.cont("    ");
        sink.cont("    Common causes of this timeout, and debugging tips:");
        sink.cont("    ");
        sink.cont("    1. The server didn't finish starting,");
        sink.cont("       or it crashed due to a configuration issue.");
        let pod_name = pod_name(name, s.server);
        let (msg, gap) = (
            format_args!("Deleting pod jhub/{pod_name}"),
            self.rng.range(10, 300),
        );
        sink.info(Kind::PodDelete, t + gap, "spawner:3395", msg);
    }

    fn on_activity(&mut self, t: u64, u: usize) {
        let (name, s) = (self.users[u].name.as_str(), &self.sessions[u]);
        let who = Who(name, &s.pod, self.rng.range(300, 4000));
        let what = format_args!("POST /hub/api/users/{name}/activity");
        let t = self.sink.request(t, 200, who, what);
        self.mark_seen(t, u);
        self.sessions[u].last_activity = t;
        self.extras(t, u);
        let next = t + self.interval_ms + self.rng.below(2000);
        if next < self.sessions[u].work_end {
            self.push(next, Ev::Activity(u));
        } else {
            self.wind_down(t, u);
        }
    }

    /// The user stopped working at `t`: schedule the server's stop, crash or cull.
    fn wind_down(&mut self, t: u64, u: usize) {
        let (r, crash_cap) = (&mut self.rng, self.interval_ms.clamp(1_001, 600_000));
        let tick = (t + CULL_AFTER_MS - CULL_OFFSET_MS).div_ceil(CULL_EVERY_MS);
        let (at, ev) = match self.sessions[u].end {
            End::Stop => (t + r.range(MIN_MS, 20 * MIN_MS), Ev::Stop(u)),
            End::Exit => (t + r.range(1_000, crash_cap), Ev::Exit(u)),
            End::Cull => (
                CULL_OFFSET_MS + tick * CULL_EVERY_MS + r.range(100, 400),
                Ev::Cull(u),
            ),
        };
        self.push(at, ev);
    }

    /// Occasional requests beside an activity POST: 404, 424, CHP 503, home page.
    fn extras(&mut self, t: u64, u: usize) {
        let (user, s) = (&self.users[u], &mut self.sessions[u]);
        let (name, ip, pod) = (user.name.as_str(), user.ip.as_str(), s.pod.as_str());
        let (r, sink) = (&mut self.rng, &mut self.sink);
        let force = std::mem::take(&mut s.force_extras);
        let (sl, sv) = s.sl();
        if force || r.chance(1, 150) {
            let (who, what) = (
                Who(name, ip, r.range(200, 2000)),
                format_args!("GET /hub/user/{name}/api/kernels"),
            );
            sink.request(t + r.range(1, 500), 404, who, what);
        }
        if force || r.chance(1, 400) {
            let (who, what) = (
                Who(name, ip, r.range(500, 5000)),
                format_args!("GET /hub/user/{name}/lab"),
            );
            sink.request(t + r.range(1, 500), 424, who, what);
        }
        if force || r.chance(1, 300) {
            let msg = format_args!(
                "503 GET /user/{name}{sl}{sv}/api/kernels connect ECONNREFUSED {pod}:8888"
            );
            sink.chp(Kind::ChpProxyError, t + r.range(1, 500), msg);
        }
        if r.chance(1, 60) {
            let (who, what) = (
                Who(name, ip, r.range(500, 5000)),
                format_args!("GET /hub/home"),
            );
            sink.request(t + r.range(1, 500), 200, who, what);
        }
    }

    /// Removes the route from hub proxy and CHP, deletes the pod; returns the first stamp.
    fn remove_route(&mut self, t: u64, u: usize) -> u64 {
        let (name, s) = (self.users[u].name.as_str(), &self.sessions[u]);
        let ((sl, sv), r, sink) = (s.sl(), &mut self.rng, &mut self.sink);
        let msg = format_args!("Removing user {name} from proxy (/user/{name}{sl}{sv}/)");
        let t0 = sink.info(Kind::ProxyRouteRemoved, t, "proxy:356", msg);
        let msg = format_args!("Removing route /user/{name}{sl}{sv}");
        let t = sink.chp(Kind::ChpRouteRemoved, t0 + r.range(1, 8), msg);
        let pod_name = pod_name(name, s.server);
        let msg = format_args!("Deleting pod jhub/{pod_name}");
        sink.info(Kind::PodDelete, t + r.range(5, 40), "spawner:3395", msg);
        t0
    }

    /// Route removal, pod deletion and stop, all within a second, then the 204 DELETE.
    fn stop_sequence(&mut self, t: u64, u: usize, by_culler: bool) {
        let t0 = self.remove_route(t, u);
        let took = self.rng.range(120, 900);
        let name = self.users[u].name.as_str();
        let (secs, frac) = (took / 1000, took % 1000);
        let msg = format_args!("User {name} server took {secs}.{frac:03} seconds to stop");
        let t = self
            .sink
            .info(Kind::StopSucceeded, t0 + took, "base:1382", msg);
        self.ended(u, t);
        let (user, s) = (&self.users[u], &self.sessions[u]);
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let (actor, ip) = if by_culler {
            (CULLER, LOCALHOST)
        } else {
            (name, ip)
        };
        let (r, sink) = (&mut self.rng, &mut self.sink);
        let (who, api) = (Who(actor, ip, took * 100 + r.below(100)), s.api(name));
        sink.request(t + r.range(1, 10), 204, who, format_args!("DELETE {api}"));
    }

    /// The server of user `u` stopped at `t` (ms of day): add its run to the truth.
    fn ended(&mut self, u: usize, t: u64) {
        let month = self.sink.date[..7].to_string();
        let profile = profile_of(u, self.sessions[u].server).unwrap_or("");
        let ms = t.saturating_sub(self.sessions[u].ready_at);
        let by_user = self.server_ms.entry(month.clone()).or_default();
        let by_profile = by_user.entry(self.users[u].name.clone()).or_default();
        *by_profile.entry(profile.to_string()).or_default() += ms;
        *self.server_runs.entry(month).or_default() += 1;
    }

    fn on_stop(&mut self, t: u64, u: usize) {
        self.stop_sequence(t, u, false);
        if self.sessions[u].logout {
            let at = self.sink.last - self.sink.day_base + self.rng.range(5_000, 90_000);
            self.push(at, Ev::Logout(u));
        }
    }

    fn on_exit(&mut self, t: u64, u: usize) {
        let name = self.users[u].name.as_str();
        let msg = format_args!("User {name} server stopped, with exit code: 137");
        let t = self.sink.hub(Kind::ServerExited, t, 'W', "base:1448", msg);
        self.ended(u, t);
        let gap = self.rng.range(5, 50);
        self.remove_route(t + gap, u);
    }

    fn on_cull(&mut self, t: u64, u: usize) {
        let (name, s) = (self.users[u].name.as_str(), &self.sessions[u]);
        let (sl, sv) = s.sl();
        let t0 = self.sink.stamp_second(t);
        let idle = t0.saturating_sub(s.last_activity) / 1000;
        let (h, m, sec) = (idle / 3600, idle / 60 % 60, idle % 60);
        let msg =
            format_args!("Culling server {name}{sl}{sv} (inactive for {h:02}:{m:02}:{sec:02})");
        let t0 = self.sink.culler(t0, msg);
        let gap = self.rng.range(20, 80);
        self.stop_sequence(t0 + gap, u, true);
    }

    fn on_logout(&mut self, t: u64, u: usize) {
        let user = &self.users[u];
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let msg = format_args!("User logged out: {name}");
        let t = self.sink.info(Kind::Logout, t, "login:47", msg);
        let (who, what) = (
            Who(name, ip, self.rng.range(300, 3000)),
            format_args!("GET /hub/logout -> /hub/login"),
        );
        let at = t + self.rng.range(1, 10);
        self.sink.request(at, 302, who, what);
    }
}

/// First-day incidents for the first users, so every record kind shows up in small runs.
fn script(u: usize, s: &mut Session) {
    (s.faults, s.failed_logins) = ([Fault::None; 2], 0);
    (s.end, s.logout) = if u == 0 {
        (End::Stop, true)
    } else {
        (End::Cull, false)
    };
    match u {
        0 => (s.failed_logins, s.give_up, s.cookie) = (1, false, false),
        1 => s.faults[0] = Fault::Error,
        2 => s.faults[0] = Fault::Timeout,
        3 => s.end = End::Exit,
        4 => s.server = Some("gpu"),
        _ => s.force_extras = true,
    }
}

#[cfg(test)]
mod tests;
