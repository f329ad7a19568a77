//! The monthly report's numbers: sessions clipped to the month, priced, and broken down.
//!
//! A session counts for the part of its run inside `[first day 00:00 UTC, next month's first
//! day 00:00 UTC)`, so one crossing the boundary is split at it. A session still running is
//! counted to its hub's last record. Idle time is a session's tail after its last activity; "a
//! culler would have saved" is the part of that tail beyond the pricing file's `idle_timeout`.
//! A user's active days are the days with activity. Where the lake holds the hub's own
//! observations of the session's server ([`super::observed`]), activity is the hub's
//! `last_activity` (the user's); otherwise it is the last activity POST line (a heartbeat:
//! liveness) and active days are the days the server ran. [`Monthly::grounded`] counts which.
//!
//! A session is priced from its pod's requests and its node's price when the lake's `pods`
//! table has them ([`super::pods`]), else by its profile's price.
//!
//! A month's figures are always made from the sessions rebuilt over that month's own window
//! ([`window`]): the previous-month row of a report is [`month_totals`] of the previous month
//! over *its* window, so it equals that month's own report (a rebuild over a window that starts
//! later may see a session only as running since the data began, without its profile).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Months, NaiveDate, TimeDelta};

use super::observed::Observed;
use super::pods::PodPrices;
use super::pricing::Pricing;
use super::sessions::{EndReason, Session};

const US_PER_S: f64 = 1e6;
const US_PER_DAY: i64 = 86_400_000_000;

/// One line of a breakdown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub key: String,
    /// Server time inside the month, µs.
    pub server_us: i64,
    pub cost: f64,
    pub sessions: u64,
    /// Distinct (user, day) pairs with a server running: a user's active days.
    pub active_days: u64,
    pub users: u64,
    pub idle_us: i64,
}

impl Row {
    pub fn hours(&self) -> f64 {
        self.server_us as f64 / US_PER_S / 3600.0
    }
    pub fn idle_hours(&self) -> f64 {
        self.idle_us as f64 / US_PER_S / 3600.0
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub all: Row,
    pub culled_sessions: u64,
    /// Idle time of culled sessions before the cull, µs.
    pub culled_idle_us: i64,
    /// Idle time beyond `idle_timeout` of every session, µs, and its cost.
    pub saved_us: i64,
    pub saved_cost: f64,
    pub spawn_seconds_p50: Option<f64>,
    pub spawn_seconds_p95: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flags {
    pub started_before_data: u64,
    pub missing_stop: u64,
    pub end_estimated: u64,
    pub running_at_end: u64,
}

#[derive(Debug, Clone)]
pub struct Monthly {
    /// `YYYY-MM`.
    pub month: String,
    pub previous_month: String,
    pub currency: String,
    pub idle_timeout_s: u64,
    pub hubs: Vec<String>,
    pub totals: Totals,
    /// `None` when the lake holds no record of the previous month.
    pub previous: Option<Totals>,
    /// First and last record of the data read (UTC, µs), to say when a month is partial.
    pub data_from: Option<i64>,
    pub data_to: Option<i64>,
    pub by_user: Vec<Row>,
    pub by_group: Vec<Row>,
    pub by_profile: Vec<Row>,
    pub by_project: Vec<Row>,
    /// Day -> profile -> server µs.
    pub daily: BTreeMap<NaiveDate, BTreeMap<String, i64>>,
    pub end_reasons: BTreeMap<&'static str, u64>,
    pub flags: Flags,
    /// Profiles seen in the logs that the pricing file does not price (costed at 0).
    pub unpriced: BTreeSet<String>,
    /// Sessions priced from their pod's requests ([`FROM_POD`]) and by their profile
    /// ([`FROM_PROFILE`]); empty when the lake has no `pods` rows for the report.
    pub priced_from: Vec<Row>,
    /// Sessions of the month whose idle time and active days rest on the hub's observations,
    /// and all sessions of the month.
    pub grounded: (u64, u64),
    /// What checking the month's sessions against the hub's observations changed.
    pub hub_check: super::grounding::Grounding,
}

/// Key of the [`Monthly::priced_from`] row of sessions priced from their pod's requests.
pub const FROM_POD: &str = "pod_requests";
/// Key of the [`Monthly::priced_from`] row of sessions priced by their profile.
pub const FROM_PROFILE: &str = "profile";

/// How far inside a month's bounds the data may begin or end and still cover the month: a hub
/// with no server running logs little, so the last record of a full month can be minutes
/// before its end.
const COVERED_SLACK_US: i64 = 3_600_000_000;

impl Monthly {
    /// The part of `[lo, hi)` the data covers, when it does not cover all of it (more than an
    /// hour is missing at either end).
    fn partial(&self, lo: i64, hi: i64) -> Option<String> {
        let (from, to) = (self.data_from?, self.data_to?);
        let fmt = |us: i64| {
            DateTime::from_timestamp_micros(us)
                .map_or(String::new(), |t| t.format("%Y-%m-%d %H:%M").to_string())
        };
        // A quiet hour at either end (no server, no request) is not a gap in the data.
        match (from > lo + COVERED_SLACK_US, to < hi - COVERED_SLACK_US) {
            (false, false) => None,
            (true, false) => Some(format!("data from {}", fmt(from))),
            (false, true) => Some(format!("data to {}", fmt(to))),
            (true, true) => Some(format!("data {} to {}", fmt(from), fmt(to))),
        }
    }

    /// Whether the data covers only part of this month: what it covers.
    pub fn month_partial(&self) -> Option<String> {
        let first = NaiveDate::parse_from_str(&format!("{}-01", self.month), "%Y-%m-%d").ok()?;
        let (lo, hi) = month_bounds(first);
        self.partial(lo, hi)
    }

    /// Whether the data covers only part of the previous month: what it covers.
    pub fn previous_partial(&self) -> Option<String> {
        let first =
            NaiveDate::parse_from_str(&format!("{}-01", self.previous_month), "%Y-%m-%d").ok()?;
        let (lo, hi) = month_bounds(first);
        self.partial(lo, hi)
    }
}

/// `[start, end)` of a month in µs.
pub fn month_bounds(first: NaiveDate) -> (i64, i64) {
    let next = first + Months::new(1);
    let us = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_micros())
    };
    (us(first), us(next))
}

fn day_of(us: i64) -> NaiveDate {
    DateTime::from_timestamp_micros(us).map_or(NaiveDate::MIN, |t| t.date_naive())
}

struct Piece<'a> {
    s: &'a Session,
    slug: String,
    from: i64,
    to: i64,
    idle_from: i64,
    cost: f64,
    /// Priced from its pod's requests.
    from_pod: bool,
    /// Idle time and active days from the hub's observations.
    grounded: bool,
    /// The user's active days in this piece.
    days: Vec<NaiveDate>,
}

/// Clip every session of `d` to `[lo, hi)`; its `last_ts` closes running ones. A session is
/// priced from its pod when `d.pods` has it, else by its profile.
fn pieces<'a>(
    d: &MonthData<'a>,
    lo: i64,
    hi: i64,
    pricing: &Pricing,
    unpriced: &mut BTreeSet<String>,
) -> Vec<Piece<'a>> {
    let (last_ts, observed) = (d.last_ts, d.observed);
    let pods = d.pods.filter(|p| !p.is_empty());
    let mut out = Vec::new();
    for s in d.sessions {
        let end = s
            .end
            .unwrap_or_else(|| last_ts.get(&s.hub).copied().unwrap_or(s.start));
        let (from, to) = (s.start.max(lo), end.min(hi));
        if to <= from {
            continue;
        }
        let slug = pricing.profile_slug(s.profile.as_deref());
        let from_pod = pods.and_then(|p| p.hourly(s, end, pricing));
        let price = from_pod
            .or_else(|| pricing.price(&slug))
            .unwrap_or_else(|| {
                unpriced.insert(slug.clone());
                0.0
            });
        let hub_said = observed.last_activity(s, end);
        let idle_from = hub_said.or(s.last_activity).unwrap_or(s.start).max(s.start);
        let days = match hub_said {
            Some(_) => observed.active_days(s, from, to),
            None => days_between(from, to).collect(),
        };
        out.push(Piece {
            s,
            cost: (to - from) as f64 / US_PER_S / 3600.0 * price,
            slug,
            from,
            to,
            idle_from,
            from_pod: from_pod.is_some(),
            grounded: hub_said.is_some(),
            days,
        });
    }
    out
}

fn idle_in(p: &Piece, from_offset: i64) -> i64 {
    let a = (p.idle_from + from_offset).max(p.from);
    (p.to - a).max(0)
}

fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[i])
}

fn totals(ps: &[Piece], pricing: &Pricing) -> Totals {
    let timeout = pricing.idle_timeout.as_micros() as i64;
    let mut t = Totals::default();
    let mut users = HashSet::new();
    let mut days = HashSet::new();
    let mut spawns = Vec::new();
    for p in ps {
        t.all.server_us += p.to - p.from;
        t.all.cost += p.cost;
        t.all.sessions += 1;
        t.all.idle_us += idle_in(p, 0);
        users.insert(p.s.user.as_str());
        for d in &p.days {
            days.insert((p.s.user.as_str(), *d));
        }
        let saved = idle_in(p, timeout);
        t.saved_us += saved;
        if p.to > p.from {
            t.saved_cost += p.cost * saved as f64 / (p.to - p.from) as f64;
        }
        if p.s.end_reason == EndReason::Culled {
            t.culled_sessions += 1;
            t.culled_idle_us += idle_in(p, 0);
        }
        if let Some(x) = p.s.spawn_seconds {
            spawns.push(x);
        }
    }
    t.all.users = users.len() as u64;
    t.all.active_days = days.len() as u64;
    t.all.key = "total".into();
    spawns.sort_by(f64::total_cmp);
    t.spawn_seconds_p50 = quantile(&spawns, 0.5);
    t.spawn_seconds_p95 = quantile(&spawns, 0.95);
    t
}

fn days_of(p: &Piece) -> impl Iterator<Item = NaiveDate> {
    days_between(p.from, p.to)
}

/// The UTC days `[from, to)` touches.
fn days_between(from: i64, to: i64) -> impl Iterator<Item = NaiveDate> {
    let (first, last) = (day_of(from), day_of(to - 1));
    first.iter_days().take_while(move |d| *d <= last)
}

fn breakdown<'a>(ps: &[Piece<'a>], key: impl Fn(&Piece<'a>) -> String) -> Vec<Row> {
    type Acc<'s> = (Row, HashSet<&'s str>, HashSet<(&'s str, NaiveDate)>);
    let mut rows: HashMap<String, Acc> = HashMap::new();
    for p in ps {
        let k = key(p);
        let (r, users, days) = rows.entry(k.clone()).or_default();
        r.key = k;
        r.server_us += p.to - p.from;
        r.cost += p.cost;
        r.sessions += 1;
        r.idle_us += idle_in(p, 0);
        users.insert(p.s.user.as_str());
        for d in &p.days {
            days.insert((p.s.user.as_str(), *d));
        }
    }
    let mut out: Vec<Row> = rows
        .into_values()
        .map(|(mut r, u, d)| {
            r.users = u.len() as u64;
            r.active_days = d.len() as u64;
            r
        })
        .collect();
    out.sort_by(|a, b| {
        b.cost
            .total_cmp(&a.cost)
            .then(b.server_us.cmp(&a.server_us))
            .then(a.key.cmp(&b.key))
    });
    out
}

/// Server time per day and profile.
fn daily(ps: &[Piece]) -> BTreeMap<NaiveDate, BTreeMap<String, i64>> {
    let mut out: BTreeMap<NaiveDate, BTreeMap<String, i64>> = BTreeMap::new();
    for p in ps {
        for d in days_of(p) {
            let day_lo = d
                .and_hms_opt(0, 0, 0)
                .map_or(0, |t| t.and_utc().timestamp_micros());
            let (a, b) = (p.from.max(day_lo), p.to.min(day_lo + US_PER_DAY));
            if b > a {
                *out.entry(d).or_default().entry(p.slug.clone()).or_default() += b - a;
            }
        }
    }
    out
}

/// The sessions of one month's data window ([`window`]) and what prices them.
pub struct MonthData<'a> {
    pub sessions: &'a [Session],
    /// hub -> its first and last record in the window.
    pub first_ts: &'a HashMap<String, i64>,
    pub last_ts: &'a HashMap<String, i64>,
    pub pods: Option<&'a PodPrices>,
    /// The hub's observations (empty without any): idle time and active days.
    pub observed: &'a Observed,
}

/// A month's totals from the sessions of its own window: what the month's report says, and
/// what any later report's previous-month row says (`None`: the data holds no record of it).
pub fn month_totals(first: NaiveDate, d: &MonthData, pricing: &Pricing) -> Option<Totals> {
    let (lo, hi) = month_bounds(first);
    let has = d.first_ts.values().any(|&f| f < hi) && d.last_ts.values().any(|&l| l >= lo);
    let mut ignore = BTreeSet::new();
    let ps = pieces(d, lo, hi, pricing, &mut ignore);
    has.then(|| totals(&ps, pricing))
}

/// Build the report of the month starting at `first` from the sessions of its window
/// ([`window`]); the previous month's row comes from the sessions of *its* window, so that it
/// equals that month's own report.
pub fn build(first: NaiveDate, cur: &MonthData, prev: &MonthData, pricing: &Pricing) -> Monthly {
    let (last_ts, first_ts) = (cur.last_ts, cur.first_ts);
    let (lo, hi) = month_bounds(first);
    let prev_first = first - Months::new(1);
    let pods = cur.pods.filter(|p| !p.is_empty());
    let mut unpriced = BTreeSet::new();
    let ps = pieces(cur, lo, hi, pricing, &mut unpriced);
    let grounded = (
        ps.iter().filter(|p| p.grounded).count() as u64,
        ps.len() as u64,
    );
    let mut end_reasons = BTreeMap::new();
    let mut flags = Flags::default();
    for p in &ps {
        *end_reasons.entry(p.s.end_reason.as_str()).or_insert(0) += 1;
        flags.started_before_data += u64::from(p.s.started_before_data);
        flags.missing_stop += u64::from(p.s.missing_stop);
        flags.end_estimated += u64::from(p.s.end_estimated);
        flags.running_at_end += u64::from(p.s.end.is_none());
    }
    let mut hubs: Vec<String> = ps.iter().map(|p| p.s.hub.clone()).collect();
    hubs.sort();
    hubs.dedup();
    Monthly {
        month: first.format("%Y-%m").to_string(),
        previous_month: prev_first.format("%Y-%m").to_string(),
        currency: pricing.currency.clone(),
        idle_timeout_s: pricing.idle_timeout.as_secs(),
        hubs,
        totals: totals(&ps, pricing),
        previous: month_totals(prev_first, prev, pricing),
        data_from: first_ts.values().min().copied(),
        data_to: last_ts.values().max().copied(),
        by_user: breakdown(&ps, |p| p.s.user.clone()),
        by_group: breakdown(&ps, |p| pricing.group_of(&p.s.user).to_string()),
        by_profile: breakdown(&ps, |p| p.slug.clone()),
        by_project: breakdown(&ps, |p| pricing.project_of(&p.s.user).to_string()),
        daily: daily(&ps),
        end_reasons,
        flags,
        unpriced,
        grounded,
        hub_check: super::grounding::Grounding::default(),
        priced_from: match pods {
            None => Vec::new(),
            Some(_) => {
                let rows = breakdown(&ps, |p| {
                    (if p.from_pod { FROM_POD } else { FROM_PROFILE }).to_string()
                });
                [FROM_POD, FROM_PROFILE]
                    .iter()
                    .map(|k| {
                        rows.iter().find(|r| r.key == *k).cloned().unwrap_or(Row {
                            key: k.to_string(),
                            ..Row::default()
                        })
                    })
                    .collect()
            }
        },
    }
}

/// The data a report of the month starting at `first` reads.
///
/// Lifecycle records: from 31 days before the previous month (so that servers started then are
/// seen starting, with their profile) to the day after the month (a record after its end shows
/// which servers still ran at it: they are clipped there). Activity: the previous month and
/// this one, a day either side (idle time is only counted inside them).
pub fn window(first: NaiveDate) -> super::load::Window {
    let prev = first - Months::new(1);
    let next = first + Months::new(1);
    super::load::Window {
        life: (prev - TimeDelta::days(31), next),
        activity: (prev - TimeDelta::days(1), next),
    }
}
