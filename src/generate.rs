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

macro_rules! kinds {
    ($($variant:ident => $name:literal,)*) => {
        /// Record kinds, named as the parser names them.
        #[derive(Clone, Copy)]
        enum Kind { $($variant,)* }
        /// Kind names, indexed by `Kind as usize`.
        const KIND_NAMES: &[&str] = &[$($name,)*];
    };
}

kinds! {
    Request => "request",
    RequestHeaders => "request_headers",
    Login => "login",
    LoginFailed => "login_failed",
    Logout => "logout",
    OauthClient => "oauth_client",
    PodCreate => "pod_create",
    SpawnSucceeded => "spawn_succeeded",
    ProxyRouteAdded => "proxy_route_added",
    SpawnFailed => "spawn_failed",
    SpawnTimeout => "spawn_timeout",
    ProxyRouteRemoved => "proxy_route_removed",
    PodDelete => "pod_delete",
    StopSucceeded => "stop_succeeded",
    ServerExited => "server_exited",
    CullServer => "cull_server",
    ActiveUsers => "active_users",
    ChpRequest => "chp_request",
    ChpRouteAdded => "chp_route_added",
    ChpRouteRemoved => "chp_route_removed",
    ChpProxyError => "chp_proxy_error",
    Unparsed => "unparsed",
}

/// splitmix64: tiny, seedable, good enough for a simulation.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo))
    }
    fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    fn ip(&mut self) -> String {
        format!("10.244.{}.{}", self.below(8), self.range(2, 255))
    }
}

/// Pushes `v` zero-padded to `width` digits.
fn push_num(buf: &mut String, v: u64, width: u32) {
    for p in (0..width).rev() {
        buf.push(char::from(b'0' + ((v / 10u64.pow(p)) % 10) as u8));
    }
}

/// Pushes `HH:MM:SS` (and `.mmm` when `millis`) for a millisecond of the day.
fn push_clock(buf: &mut String, ms: u64, millis: bool) {
    let ms = ms.min(DAY_MS - 1);
    let s = ms / 1000;
    push_num(buf, s / 3600, 2);
    buf.push(':');
    push_num(buf, s / 60 % 60, 2);
    buf.push(':');
    push_num(buf, s % 60, 2);
    if millis {
        buf.push('.');
        push_num(buf, ms % 1000, 3);
    }
}

/// Actor, client IP and duration (in hundredths of a millisecond) of a hub request line.
struct Who<'a>(&'a str, &'a str, u64);

/// Formats records into a buffer, clamps timestamps to keep them ordered, counts everything.
struct Sink<W: Write> {
    out: BufWriter<W>,
    buf: String,
    /// Absolute ms (since the first day's midnight) of the latest stamped line.
    last: u64,
    day_base: u64,
    date: String,
    short_date: String,
    kinds: [u64; KIND_NAMES.len()],
    status: [u64; 4],
    lines: u64,
    bytes: u64,
    tracebacks: u64,
}

impl<W: Write> Sink<W> {
    fn new(out: W) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 17, out),
            buf: String::with_capacity(1 << 12),
            last: 0,
            day_base: 0,
            date: String::new(),
            short_date: String::new(),
            kinds: [0; KIND_NAMES.len()],
            status: [0; 4],
            lines: 0,
            bytes: 0,
            tracebacks: 0,
        }
    }
    fn begin_day(&mut self, day_base: u64, date: NaiveDate) {
        self.day_base = day_base;
        self.date = date.format("%Y-%m-%d").to_string();
        self.short_date = date.format("%y%m%d").to_string();
    }
    /// Clamps ms-of-day `t` to no earlier than the latest stamp, records it and returns it.
    fn stamp(&mut self, t: u64) -> u64 {
        self.last = (self.day_base + t).max(self.last);
        self.last - self.day_base
    }
    /// Like [`Self::stamp`], rounded up to a whole second (the culler format has no millis).
    fn stamp_second(&mut self, t: u64) -> u64 {
        let abs = (self.day_base + t).max(self.last);
        self.stamp(abs.div_ceil(1000) * 1000 - self.day_base)
    }
    fn newline(&mut self) {
        self.buf.push('\n');
        self.lines += 1;
    }
    fn record(&mut self, kind: Kind, msg: fmt::Arguments<'_>) {
        self.kinds[kind as usize] += 1;
        let _ = self.buf.write_fmt(msg);
        self.newline();
    }
    /// A continuation line of the current record.
    fn cont(&mut self, text: &str) {
        self.buf.push_str(text);
        self.newline();
    }
    fn hub(&mut self, kind: Kind, t: u64, level: char, src: &str, msg: fmt::Arguments<'_>) -> u64 {
        let t = self.stamp(t);
        self.buf.push('[');
        self.buf.push(level);
        self.buf.push(' ');
        self.buf.push_str(&self.date);
        self.buf.push(' ');
        push_clock(&mut self.buf, t, true);
        self.buf.push_str(" JupyterHub ");
        self.buf.push_str(src);
        self.buf.push_str("] ");
        self.record(kind, msg);
        t
    }
    fn info(&mut self, kind: Kind, t: u64, src: &str, msg: fmt::Arguments<'_>) -> u64 {
        self.hub(kind, t, 'I', src, msg)
    }
    fn chp(&mut self, kind: Kind, t: u64, msg: fmt::Arguments<'_>) -> u64 {
        let t = self.stamp(t);
        self.buf.push_str(&self.date);
        self.buf.push('T');
        push_clock(&mut self.buf, t, true);
        let error = matches!(kind, Kind::ChpProxyError);
        self.buf.push_str(if error { CHP_ERROR } else { CHP_INFO });
        self.record(kind, msg);
        t
    }
    fn culler(&mut self, t: u64, msg: fmt::Arguments<'_>) -> u64 {
        let t = self.stamp_second(t);
        self.buf.push_str("[I ");
        self.buf.push_str(&self.short_date);
        self.buf.push(' ');
        push_clock(&mut self.buf, t, false);
        self.buf.push_str(" __init__:251] ");
        self.record(Kind::CullServer, msg);
        t
    }
    /// `{status} {what} ({actor}@{ip}) {ms}ms`; a 5xx is preceded by a request_headers record.
    fn request(&mut self, t: u64, status: u16, who: Who<'_>, what: fmt::Arguments<'_>) -> u64 {
        if status >= 500 {
            self.hub(Kind::RequestHeaders, t, 'E', "log:184", format_args!("{{"));
            self.cont("    \"Host\": \"hub.example\",");
            self.cont("    \"Authorization\": \"token [secret]\",");
            self.cont("    \"Cookie\": \"_xsrf=[secret]\"");
            self.cont("    }");
        }
        let level = match status {
            500.. => 'E',
            400.. => 'W',
            _ => 'I',
        };
        self.status[usize::from(status / 100).clamp(2, 5) - 2] += 1;
        let Who(actor, ip, centi) = who;
        let (ms, frac) = (centi / 100, centi % 100);
        let msg = format_args!("{status} {what} ({actor}@{ip}) {ms}.{frac:02}ms");
        self.hub(Kind::Request, t, level, "log:192", msg)
    }
    fn commit(&mut self) -> io::Result<()> {
        self.bytes += self.buf.len() as u64;
        self.out.write_all(self.buf.as_bytes())?;
        self.buf.clear();
        Ok(())
    }
}

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
        let msg = format_args!("Attempting to create pod jupyter-{name}, with timeout 3");
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
        let (secs, frac) = (took / 1000, took % 1000);
        let msg = format_args!("User {name}{colon}{sv} took {secs}.{frac:03} seconds to start");
        let t = sink.info(Kind::SpawnSucceeded, t, "base:1124", msg);
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
        let msg = format_args!("Deleting pod jhub/jupyter-{name}");
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
        let (msg, gap) = (
            format_args!("Deleting pod jhub/jupyter-{name}"),
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
        let msg = format_args!("Deleting pod jhub/jupyter-{name}");
        sink.info(Kind::PodDelete, t + r.range(5, 40), "spawner:3395", msg);
        t0
    }

    /// Route removal, pod deletion and stop, all within a second, then the 204 DELETE.
    fn stop_sequence(&mut self, t: u64, u: usize, by_culler: bool) {
        let t0 = self.remove_route(t, u);
        let (user, s) = (&self.users[u], &self.sessions[u]);
        let (name, ip) = (user.name.as_str(), user.ip.as_str());
        let (actor, ip) = if by_culler {
            (CULLER, LOCALHOST)
        } else {
            (name, ip)
        };
        let (r, sink) = (&mut self.rng, &mut self.sink);
        let took = r.range(120, 900);
        let (secs, frac) = (took / 1000, took % 1000);
        let msg = format_args!("User {name} server took {secs}.{frac:03} seconds to stop");
        let t = sink.info(Kind::StopSucceeded, t0 + took, "base:1382", msg);
        let (who, api) = (Who(actor, ip, took * 100 + r.below(100)), s.api(name));
        sink.request(t + r.range(1, 10), 204, who, format_args!("DELETE {api}"));
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::NaiveDateTime;
    use std::collections::BTreeSet;

    fn cfg(users: u32, days: u32, seed: u64, interval: u32) -> GenConfig {
        let start = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(); // a Monday
        GenConfig {
            users,
            days,
            start,
            seed,
            activity_interval_secs: interval,
        }
    }

    fn run(c: &GenConfig) -> (String, Truth) {
        let mut out = Vec::new();
        let truth = generate(c, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), truth)
    }

    /// Timestamp of a hub, culler or CHP line; `None` for continuation and unparsed lines.
    fn stamp(line: &str) -> Option<NaiveDateTime> {
        let b = line.as_bytes();
        let parse = |s: &str, f: &str| NaiveDateTime::parse_from_str(s, f).ok();
        if b.first()?.is_ascii_digit() {
            return parse(&line[..23], "%Y-%m-%dT%H:%M:%S%.3f");
        }
        if b[0] != b'[' {
            return None;
        }
        if b[7] == b'-' {
            return parse(&line[3..26], "%Y-%m-%d %H:%M:%S%.3f");
        }
        parse(&line[3..18], "%y%m%d %H:%M:%S")
    }

    /// Kind of the record a line starts, by markers independent of the generator's code.
    fn classify(line: &str) -> Option<&'static str> {
        const MARKERS: [(&str, &str); 21] = [
            ("JupyterHub log:192] ", "request"),
            ("JupyterHub log:184] {", "request_headers"),
            ("base:837] User logged in: ", "login"),
            ("base:843] Failed login for '", "login_failed"),
            ("login:47] User logged out: ", "logout"),
            (
                "provider:661] Creating oauth client jupyterhub-user-",
                "oauth_client",
            ),
            (
                "spawner:2469] Attempting to create pod jupyter-",
                "pod_create",
            ),
            ("base:1124] User ", "spawn_succeeded"),
            ("proxy:331] Adding user ", "proxy_route_added"),
            ("user:1004] Unhandled error starting ", "spawn_failed"),
            ("user:1063] ", "spawn_timeout"),
            ("proxy:356] Removing user ", "proxy_route_removed"),
            ("spawner:3395] Deleting pod jhub/jupyter-", "pod_delete"),
            ("base:1382] User ", "stop_succeeded"),
            ("base:1448] User ", "server_exited"),
            ("__init__:251] Culling server ", "cull_server"),
            ("metrics:373] Found ", "active_users"),
            ("\x1b[32minfo\x1b[39m: 200 GET /api/routes ", "chp_request"),
            (
                "\x1b[32minfo\x1b[39m: Adding route /user/",
                "chp_route_added",
            ),
            (
                "\x1b[32minfo\x1b[39m: Removing route /user/",
                "chp_route_removed",
            ),
            ("\x1b[31merror\x1b[39m: 503 GET /user/", "chp_proxy_error"),
        ];
        if line.starts_with(' ') {
            return None;
        }
        let hit = MARKERS.iter().find(|(m, _)| line.contains(m));
        Some(hit.map_or("unparsed", |&(_, k)| k))
    }

    /// Recounts everything in `Truth` from the text alone.
    fn recount(text: &str) -> Truth {
        let mut t = Truth {
            bytes: text.len() as u64,
            ..Truth::default()
        };
        let mut active: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for line in text.lines() {
            t.lines += 1;
            t.tracebacks += u64::from(line == "    Traceback (most recent call last):");
            let Some(kind) = classify(line) else { continue };
            t.records += 1;
            *t.kinds.entry(kind.into()).or_default() += 1;
            let day = stamp(line)
                .map(|s| s.date().to_string())
                .unwrap_or_default();
            let msg = line.split_once("] ").map_or("", |(_, m)| m);
            let user = match kind {
                "request" => {
                    let class = format!("{}xx", &msg[..1]);
                    *t.requests_by_status_class.entry(class).or_default() += 1;
                    msg.strip_prefix("200 POST /hub/api/users/")
                        .and_then(|m| m.split_once('/'))
                        .filter(|(_, rest)| rest.starts_with("activity "))
                        .map(|(u, _)| u)
                }
                "login" => msg.strip_prefix("User logged in: "),
                "spawn_succeeded" => {
                    *t.spawns_succeeded_per_day.entry(day.clone()).or_default() += 1;
                    msg.strip_prefix("User ")
                        .and_then(|m| m.split([' ', ':']).next())
                }
                _ => None,
            };
            if let Some(u) = user {
                active.entry(day).or_default().insert(u.to_string());
            }
        }
        t.unparsed = t.kinds.get("unparsed").copied().unwrap_or(0);
        t.daily_active_users = active
            .into_iter()
            .map(|(d, s)| (d, s.len() as u64))
            .collect();
        t
    }

    #[test]
    fn same_config_same_bytes_and_truth() {
        let c = cfg(20, 3, 7, 300);
        let (a, ta) = run(&c);
        let (b, tb) = run(&c);
        assert_eq!(a, b);
        assert_eq!(ta, tb);
        let (other, _) = run(&cfg(20, 3, 8, 300));
        assert_ne!(a, other, "a different seed must change the output");
    }

    #[test]
    fn truth_matches_the_text() {
        let (text, truth) = run(&cfg(20, 3, 1, 300));
        assert!(text.ends_with('\n'));
        assert_eq!(truth.lines, text.matches('\n').count() as u64);
        assert_eq!(truth.bytes, text.len() as u64);
        assert_eq!(truth, recount(&text));
        let json = serde_json::to_string(&truth).unwrap();
        assert_eq!(serde_json::from_str::<Truth>(&json).unwrap(), truth);
    }

    #[test]
    fn timestamps_never_decrease() {
        for seed in 0..3 {
            let (text, _) = run(&cfg(60, 4, seed, 120));
            let (mut last, mut culls) = (None, 0);
            for (i, line) in text.lines().enumerate() {
                let Some(s) = stamp(line) else { continue };
                assert!(last <= Some(s), "line {} goes back in time: {line}", i + 1);
                last = Some(s);
                culls += usize::from(line.contains("__init__:251]"));
            }
            assert!(culls > 10, "culler stamps must parse");
        }
    }

    #[test]
    fn every_kind_appears_in_a_small_run() {
        for seed in [0, 1, 42] {
            let (_, truth) = run(&cfg(20, 3, seed, 300));
            for kind in KIND_NAMES {
                assert!(
                    truth.kinds.get(*kind).copied().unwrap_or(0) > 0,
                    "{kind} missing"
                );
            }
            for class in ["2xx", "3xx", "4xx", "5xx"] {
                assert!(
                    truth.requests_by_status_class.contains_key(class),
                    "{class} missing"
                );
            }
            assert!(truth.tracebacks > 0 && truth.unparsed > 0);
            assert_eq!(truth.daily_active_users.len(), 3);
        }
    }

    #[test]
    fn size_scales_with_users_and_days() {
        let bytes = |users, days| {
            generate(&cfg(users, days, 3, 60), io::sink())
                .unwrap()
                .bytes
        };
        let base = bytes(50, 7) as f64;
        let users = bytes(100, 7) as f64 / base;
        let days = bytes(50, 14) as f64 / base;
        assert!((1.7..2.3).contains(&users), "doubling users: x{users:.2}");
        assert!((1.8..2.2).contains(&days), "doubling days: x{days:.2}");
    }

    #[test]
    fn degenerate_configs_do_not_panic() {
        assert_eq!(run(&cfg(0, 0, 0, 0)).1.lines, 1);
        assert!(run(&cfg(0, 1, 0, 0)).1.kinds.contains_key("chp_request"));
        assert!(run(&cfg(1, 2, 0, 0)).1.lines > 1440 * 2);
        let end = GenConfig {
            start: NaiveDate::MAX,
            ..cfg(1, 2, 0, 300)
        };
        assert!(generate(&end, io::sink()).is_err());
    }
}
