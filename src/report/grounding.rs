//! Sessions checked against the hub's own observations of its servers, and corrected where the
//! log disagrees with the hub.
//!
//! The log alone leaves some session bounds estimated (`started_before_data`, `missing_stop`,
//! `end_estimated`, or still running at the end of the data: see `docs/SESSIONS.md`). Where the
//! lake's `observations` table (written by the agent's culler or `[hub]` loop,
//! `control::observe`) saw the server, [`ground`] moves each bound the least that makes it agree
//! with what the hub said:
//!
//! | the hub said | what it proves (upstream) | correction |
//! |---|---|---|
//! | a server row with `started` = S | JupyterHub sets `orm_spawner.started` when the spawn begins, just before `Spawner.start` (`user.py` `User.spawn`, 4.1 – 6.1) and clears it when the server stops (`User.stop`) | an estimated start (`started_before_data`), a start later than the hub's first sighting of it ready, or a start before a listing that came before S (a ready line dated back), becomes S |
//! | the server in a listing at L | it ran at L (`GET /users?state=active` lists servers whose `started` is set) | an end before L becomes L (a lost or forged stop line) |
//! | `gone` at G (missing from a listing, a read, or stopped by the culler) | it no longer ran at G | an *estimated* end after G, or a session still open, ends at G (reason `observed_stop`); a logged stop line is kept (the line follows the stop within milliseconds, and a culler's accepted stop may finish after G) |
//! | a listing at L without the server, and no run of it overlapping the session | it did not run at L | a session with a logged start ends at the first such L; one with a logged end starts at the last such L; one estimated at both ends (a phantom) is removed |
//!
//! A run of a server is the hub's sightings of it with one `started` value; a new `started` or
//! a `gone` row ends it. A recorder's first listing (`via = 'first'`) writes every running
//! server, so a run not seen in it ended while no recorder watched (the agent was down) before
//! that listing.
//!
//! # Guarantees
//! - Pure: the same sessions and observations give the same result.
//! - Only observations up to the end of the report's own window are used, so a closed month's
//!   figures do not depend on which report reads it (see `report::monthly::window`).
//! - Logged bounds are moved only when the hub's word contradicts them; every moved session
//!   carries the flag `hub_corrected`, and [`Grounding`] says how many moved and by how much.
//! - Without observations nothing changes.

use std::collections::HashMap;

use super::observed::{Observed, Run};
use super::sessions::{EndReason, Session};

/// What the check did to the sessions of one month.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Grounding {
    /// Whether the lake held any observation for the report.
    pub observed: bool,
    /// Sessions of the month with at least one hub sighting of their run.
    pub seen: u64,
    /// Sessions of the month whose start the hub moved.
    pub starts: u64,
    /// Sessions of the month whose end the hub moved (or closed).
    pub ends: u64,
    /// Sessions the hub never saw running although it was watched, removed.
    pub removed: u64,
    /// Change of the month's server time by the corrections, µs (negative: less billed).
    pub delta_us: i64,
}

/// Checks `sessions` against `obs` and corrects them in place (see the module docs); the
/// returned tally counts the sessions overlapping `[lo, hi)` and the change inside it.
/// `last_ts` is where open sessions are billed to (each hub's last record).
pub fn ground(
    sessions: &mut Vec<Session>,
    obs: &Observed,
    last_ts: &HashMap<String, i64>,
    (lo, hi): (i64, i64),
) -> Grounding {
    let mut g = Grounding {
        observed: !obs.is_empty(),
        ..Grounding::default()
    };
    if obs.is_empty() {
        return g;
    }
    let billed = |s: &Session| {
        let end = s
            .end
            .unwrap_or_else(|| last_ts.get(&s.hub).copied().unwrap_or(s.start));
        (end.min(hi) - s.start.max(lo)).max(0)
    };
    let in_month = |s: &Session| {
        let end = s
            .end
            .unwrap_or_else(|| last_ts.get(&s.hub).copied().unwrap_or(s.start));
        s.start < hi && end >= lo
    };
    sessions.retain_mut(|s| {
        let before = billed(s);
        let counted = in_month(s);
        let (start, end) = (s.start, s.end);
        let keep = correct(s, obs);
        if counted {
            if obs.run_for(s).is_some() {
                g.seen += 1;
            }
            if !keep {
                g.removed += 1;
                g.delta_us -= before;
            } else {
                g.starts += u64::from(s.start != start);
                g.ends += u64::from(s.end != end);
                g.delta_us += billed(s) - before;
            }
        }
        keep
    });
    g
}

/// Corrects one session; `false`: the hub says it never ran (remove it).
fn correct(s: &mut Session, obs: &Observed) -> bool {
    match obs.run_for(s) {
        Some(r) => {
            correct_by_run(s, r, obs);
            true
        }
        None => correct_by_absence(s, obs),
    }
}

fn end_estimated(s: &Session) -> bool {
    s.end.is_none() || s.missing_stop || s.end_estimated
}

fn correct_by_run(s: &mut Session, r: &Run, obs: &Observed) {
    let end_before = s.end.unwrap_or(i64::MAX);
    if let Some(st) = r.started
        && st != s.start
        && st < end_before
        && (s.started_before_data
            || r.first_ready.is_some_and(|t| t < s.start)
            // Watched between the logged start and the hub's: it did not run yet.
            || (st > s.start && obs.listings_without(s, s.start, st).is_some()))
    {
        s.start = st;
        s.hub_corrected = true;
    }
    let lower = r.last_seen;
    if end_estimated(s)
        && let Some(g) = r.gone
    {
        let new = s.end.unwrap_or(g).clamp(lower.min(g), g);
        if s.end != Some(new) {
            if s.end.is_none() {
                s.end_reason = EndReason::ObservedStop;
            }
            s.end = Some(new.max(s.start));
            s.hub_corrected = true;
        }
        return;
    }
    if let Some(e) = s.end
        && e < lower
    {
        s.end = Some(lower);
        s.hub_corrected = true;
    }
}

fn correct_by_absence(s: &mut Session, obs: &Observed) -> bool {
    let end = s.end.unwrap_or(i64::MAX);
    let Some((first, last)) = obs.listings_without(s, s.start, end) else {
        return true;
    };
    let start_logged = !s.started_before_data;
    if start_logged {
        if s.end != Some(first) {
            if s.end.is_none() {
                s.end_reason = EndReason::ObservedStop;
            }
            s.end = Some(first);
            s.hub_corrected = true;
        }
        true
    } else if !end_estimated(s) {
        s.start = last;
        s.hub_corrected = true;
        true
    } else {
        false
    }
}

#[cfg(test)]
#[path = "grounding_tests.rs"]
mod tests;
