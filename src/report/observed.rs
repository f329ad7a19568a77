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

/// (hub, user, server) → (observation time, the hub's `last_activity`), in time order.
type Points = HashMap<(String, String, String), Vec<(i64, i64)>>;

/// What the observations say over a report's window.
#[derive(Debug, Default)]
pub struct Observed {
    points: Points,
}

impl Observed {
    /// No observation in the window.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
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

/// The `server` observations of `[from, to]` (dates of `dt`, inclusive).
///
/// # Errors
/// The query failed (a lake without the table is not an error: it gives an empty result).
pub async fn load(
    ctx: &SessionContext,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Observed, QueryError> {
    let table = crate::control::observe::OBSERVATIONS;
    if !ctx
        .table_exist(table)
        .map_err(|e| QueryError::Sql(e.to_string()))?
    {
        return Ok(Observed::default());
    }
    let sql = format!(
        "SELECT ts, hub, \"user\", server_name, last_activity FROM {table} \
         WHERE dt >= '{from}' AND dt <= '{to}' AND kind = 'server' \
         AND last_activity IS NOT NULL AND \"user\" IS NOT NULL ORDER BY ts"
    );
    let df = ctx
        .sql(&sql)
        .await
        .map_err(|e| QueryError::Sql(e.to_string()))?;
    let mut stream = df
        .execute_stream()
        .await
        .map_err(|e| QueryError::Sql(e.to_string()))?;
    let mut out = Observed::default();
    while let Some(b) = stream.next().await {
        let b = b.map_err(|e| QueryError::Sql(e.to_string()))?;
        let s = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8);
        let (hub, user, server) = (s(1), s(2), s(3));
        let (Ok(hub), Ok(user), Ok(server)) = (hub, user, server) else {
            return Err(QueryError::Sql(
                "observations: unexpected column types".into(),
            ));
        };
        let (hub, user, server) = (
            hub.as_string::<i32>(),
            user.as_string::<i32>(),
            server.as_string::<i32>(),
        );
        let ts = b.column(0).as_primitive::<TimestampMicrosecondType>();
        let la = b.column(4).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let key = (
                hub.value(i).to_string(),
                user.value(i).to_string(),
                if server.is_null(i) {
                    String::new()
                } else {
                    server.value(i).to_string()
                },
            );
            out.points
                .entry(key)
                .or_default()
                .push((ts.value(i), la.value(i)));
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
