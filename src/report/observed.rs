//! The hub's own word on activity, for the report: the lake's `observations` table (written by
//! the agent's culler or `[hub]` observation loop, see `control::observe`).
//!
//! A session is **grounded** when the observations hold at least one `server` row for its
//! server taken while it ran. Its last activity is then the latest `last_activity` the hub
//! reported for that server during the run: the user's activity (kernels, terminals, API
//! calls, proxied traffic), not the single-user server's heartbeat. Without observations, the
//! report falls back to the last activity POST line, which is *liveness*: a real server re-posts
//! an unchanged time every `JUPYTERHUB_ACTIVITY_INTERVAL` (`notify_activity` in
//! `jupyterhub/singleuser/extension.py`), so the fallback sees a server as used until its last
//! heartbeat (see ARCHITECTURE.md, "The activity model").
//!
//! The same rows give each server's **runs** as the hub saw them (first and last sighting, the
//! hub's `started`, when it was gone) and the times the hub was watched (complete listings):
//! what `super::grounding` checks session bounds against.
//!
//! # Guarantees
//! - A lake without `observations` (older lakes, backfills of old logs) gives an empty
//!   [`Observed`]: every session then falls back, and the report says how many did.
//! - Only the hub's values inside a session's run count for it (`last_activity` at or after
//!   its start and at or before its end), so a value from an earlier run of the same server
//!   never extends a later one.

use std::collections::HashMap;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::sessions::Session;
use crate::query::QueryError;

/// (hub, user, server).
type Key = (String, String, String);

/// (hub, user, server) → (observation time, the hub's `last_activity`), in time order.
type Points = HashMap<Key, Vec<(i64, i64)>>;

/// One run of one server as the hub saw it: the sightings with one `started` value.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The hub's `started` (when the spawn began), if it said.
    pub started: Option<i64>,
    /// First and last time the hub was seen to hold it running (a row or a listing).
    pub first_seen: i64,
    pub last_seen: i64,
    /// First time the hub said it was ready (a spawn in progress is listed too, not ready).
    pub first_ready: Option<i64>,
    /// When it was first seen not running any more (`None`: running at the last listing).
    pub gone: Option<i64>,
}

impl Run {
    fn span(&self) -> (i64, i64) {
        (
            self.started.unwrap_or(self.first_seen).min(self.first_seen),
            self.gone.unwrap_or(i64::MAX),
        )
    }
}

/// One row of the `observations` table, as the report reads it.
#[derive(Debug, Clone)]
pub struct Row {
    pub ts: i64,
    pub hub: String,
    pub kind: Kind,
    pub user: String,
    pub server: String,
    pub started: Option<i64>,
    pub last_activity: Option<i64>,
    pub ready: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A server row (`kind = 'server'`).
    Server,
    /// `kind = 'gone'`.
    Gone,
    /// A complete listing; `true`: the first of its recorder (`via = 'first'`).
    Listing(bool),
}

/// What the observations say over a report's window.
#[derive(Debug, Default)]
pub struct Observed {
    points: Points,
    runs: HashMap<Key, Vec<Run>>,
    /// Each hub's complete listings, in time order.
    listings: HashMap<String, Vec<i64>>,
}

impl Observed {
    /// No observation in the window.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty() && self.runs.is_empty() && self.listings.is_empty()
    }

    /// The observations of `rows` made before `until` (µs): runs, listings and activity.
    pub fn build(rows: &[Row], until: i64) -> Observed {
        let mut rows: Vec<&Row> = rows.iter().filter(|r| r.ts < until).collect();
        // Server and gone rows of a listing are written before the listing's own row.
        rows.sort_by_key(|r| (r.ts, r.kind));
        let mut out = Observed::default();
        // Index of the open run of each key in `out.runs[key]`.
        let mut open: HashMap<Key, usize> = HashMap::new();
        for r in rows {
            let key = (r.hub.clone(), r.user.clone(), r.server.clone());
            match r.kind {
                Kind::Server => {
                    if let Some(la) = r.last_activity {
                        out.points.entry(key.clone()).or_default().push((r.ts, la));
                    }
                    let runs = out.runs.entry(key.clone()).or_default();
                    let same = open.get(&key).map(|&i| &mut runs[i]).filter(|run| {
                        run.started.is_none() || r.started.is_none() || run.started == r.started
                    });
                    if let Some(run) = same {
                        run.last_seen = run.last_seen.max(r.ts);
                        run.started = run.started.or(r.started);
                        if r.ready && run.first_ready.is_none() {
                            run.first_ready = Some(r.ts);
                        }
                        continue;
                    }
                    if let Some(i) = open.remove(&key) {
                        // A new `started`: the old run ended before the new spawn began.
                        runs[i].gone = Some(r.started.unwrap_or(r.ts).max(runs[i].last_seen));
                    }
                    open.insert(key, runs.len());
                    runs.push(Run {
                        started: r.started,
                        first_seen: r.ts,
                        last_seen: r.ts,
                        first_ready: r.ready.then_some(r.ts),
                        gone: None,
                    });
                }
                Kind::Gone => {
                    if let (Some(i), Some(runs)) = (open.remove(&key), out.runs.get_mut(&key)) {
                        runs[i].gone = Some(r.ts);
                    }
                }
                Kind::Listing(first) => {
                    out.listings.entry(r.hub.clone()).or_default().push(r.ts);
                    let mut ended = Vec::new();
                    for (k, &i) in &open {
                        if k.0 != r.hub {
                            continue;
                        }
                        let Some(run) = out.runs.get_mut(k).map(|v| &mut v[i]) else {
                            continue;
                        };
                        if run.last_seen == r.ts {
                            continue;
                        }
                        if first {
                            // A new recorder lists every running server: this one ended
                            // while nobody watched.
                            run.gone = Some(r.ts);
                            ended.push(k.clone());
                        } else {
                            run.last_seen = r.ts;
                        }
                    }
                    for k in ended {
                        open.remove(&k);
                    }
                }
            }
        }
        out
    }

    /// The hub's run of `s`'s server that overlaps it most, if any.
    pub fn run_for(&self, s: &Session) -> Option<&Run> {
        let (a, b) = (s.start, s.end.unwrap_or(i64::MAX));
        self.runs
            .get(&(s.hub.clone(), s.user.clone(), s.server.clone()))?
            .iter()
            .filter_map(|r| {
                let (x, y) = r.span();
                let overlap = b.min(y).saturating_sub(a.max(x));
                (overlap > 0 || (x <= a && a <= y)).then_some((overlap, r))
            })
            .max_by_key(|(o, _)| *o)
            .map(|(_, r)| r)
    }

    /// The first and last of `s.hub`'s listings strictly inside `(from, to)`, if any: times the
    /// hub was watched (callers ask when no run of the server overlaps, i.e. it was not listed).
    pub fn listings_without(&self, s: &Session, from: i64, to: i64) -> Option<(i64, i64)> {
        let l = self.listings.get(&s.hub)?;
        let i = l.partition_point(|&t| t <= from);
        let j = l.partition_point(|&t| t < to);
        (i < j).then(|| (l[i], l[j - 1]))
    }

    /// `None`: the session is not grounded (no observation of its server while it ran).
    /// `Some(t)`: the hub's latest `last_activity` for it during the run, not before its start.
    pub fn last_activity(&self, s: &Session, end: i64) -> Option<i64> {
        let pts = self
            .points
            .get(&(s.hub.clone(), s.user.clone(), s.server.clone()))?;
        let mut seen = false;
        let mut last = s.start;
        for &(ts, la) in pts {
            if ts < s.start || ts > end {
                continue;
            }
            seen = true;
            if la <= end {
                last = last.max(la);
            }
        }
        seen.then_some(last)
    }

    /// The days (UTC) of the hub's activity values for this session inside `[from, to)`.
    pub fn active_days(&self, s: &Session, from: i64, to: i64) -> Vec<NaiveDate> {
        let Some(pts) = self
            .points
            .get(&(s.hub.clone(), s.user.clone(), s.server.clone()))
        else {
            return Vec::new();
        };
        let mut days: Vec<NaiveDate> = pts
            .iter()
            .filter(|(ts, la)| *ts >= s.start && *la >= s.start && *la >= from && *la < to)
            .filter_map(|(_, la)| DateTime::from_timestamp_micros(*la).map(|t| t.date_naive()))
            .collect();
        days.sort();
        days.dedup();
        days
    }
}

/// Every observation row with `dt` up to `to` (inclusive), in no particular order.
///
/// # Errors
/// The query failed (a lake without the table is not an error: it gives no rows).
pub async fn load(ctx: &SessionContext, to: NaiveDate) -> Result<Vec<Row>, QueryError> {
    let table = crate::lake::tables::observations::OBSERVATIONS;
    if !ctx.table_exist(table).map_err(QueryError::from)? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT ts, hub, kind, via, \"user\", server_name, started, last_activity, ready FROM {table} \
         WHERE dt <= '{to}'"
    );
    let sql_err = QueryError::from;
    let mut stream = ctx
        .sql(&sql)
        .await
        .map_err(sql_err)?
        .execute_stream()
        .await
        .map_err(sql_err)?;
    let mut out = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b.map_err(sql_err)?;
        let strs: Result<Vec<_>, _> = (1..6)
            .map(|i| arrow::compute::cast(b.column(i), &DataType::Utf8))
            .collect();
        let strs = strs.map_err(|e| QueryError::Step {
            step: "observations",
            source: Box::new(e),
        })?;
        let s: Vec<_> = strs.iter().map(|a| a.as_string::<i32>()).collect();
        let ts = b.column(0).as_primitive::<TimestampMicrosecondType>();
        let started = b.column(6).as_primitive::<TimestampMicrosecondType>();
        let la = b.column(7).as_primitive::<TimestampMicrosecondType>();
        let ready = b
            .column(8)
            .as_boolean_opt()
            .ok_or_else(|| QueryError::Sql("observations.ready: not a boolean".into()))?;
        let opt = |a: &arrow::array::PrimitiveArray<TimestampMicrosecondType>, i: usize| {
            a.is_valid(i).then(|| a.value(i))
        };
        let text = |c: usize, i: usize| {
            if s[c].is_null(i) {
                String::new()
            } else {
                s[c].value(i).to_string()
            }
        };
        for i in 0..b.num_rows() {
            let kind = match (s[1].value(i), s[2].value(i)) {
                ("server", _) => Kind::Server,
                ("gone", _) => Kind::Gone,
                ("listing", via) => Kind::Listing(via == "first"),
                _ => continue,
            };
            if kind != Kind::Listing(false) && kind != Kind::Listing(true) && s[3].is_null(i) {
                continue;
            }
            out.push(Row {
                ts: ts.value(i),
                hub: text(0, i),
                kind,
                user: text(3, i),
                server: text(4, i),
                started: opt(started, i),
                last_activity: opt(la, i),
                ready: ready.is_valid(i) && ready.value(i),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::report::sessions::EndReason;

    fn session(start: i64, end: i64) -> Session {
        Session {
            hub: "h".into(),
            user: "u".into(),
            server: String::new(),
            profile: None,
            start,
            end: Some(end),
            end_reason: EndReason::UserStop,
            spawn_seconds: None,
            last_activity: Some(end - 1),
            started_before_data: false,
            missing_stop: false,
            end_estimated: false,
            hub_corrected: false,
        }
    }

    #[test]
    fn a_session_is_grounded_by_its_own_observations_only() {
        let mut o = Observed::default();
        let key = ("h".to_string(), "u".to_string(), String::new());
        // An earlier run's value (observed before this start) and this run's.
        o.points.insert(key, vec![(50, 40), (120, 110), (200, 150)]);
        let s = session(100, 300);
        assert_eq!(o.last_activity(&s, 300), Some(150));
        // Observed only before the run: not grounded.
        assert_eq!(o.last_activity(&session(400, 500), 500), None);
        let mut other = session(100, 300);
        other.server = "gpu".into();
        assert_eq!(o.last_activity(&other, 300), None);
    }
}
