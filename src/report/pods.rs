//! Sessions priced from their pod: the `pods` table's requests and instance types, matched to
//! sessions.
//!
//! [`load`] reads the rows of the report's window (one DataFusion query over `pods`; a lake
//! without the table has no pods). [`PodPrices::hourly`] finds a session's pod and prices it by
//! [`Pricing::pod_price`]; [`matching_row`] is the matching rule, a pure function:
//!
//! * the rows of the session's hub, user and server name (`server_name` null counts as the
//!   default server `""`),
//! * written from a little before the session was ready (its pod is created before: the spawn
//!   time, plus [`CREATE_SLACK_US`]; any time before, for a session already running when the
//!   data begins, whose start is not its pod's) to its end,
//! * not of an earlier pod: rows at or before a `deleted` row written before the session was
//!   ready belong to the previous run of the server,
//! * the latest of those with an instance type (rows from before the pod was scheduled have
//!   none), which gives the requests and the instance type.
//!
//! A session with no such row, or whose instance type the pricing file does not size, is priced
//! by its profile.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, TimestampMicrosecondType};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::load::Window;
use super::pricing::{Pricing, Requests};
use super::sessions::Session;
use crate::lake::tables::pods::PODS;
use crate::query::{self, QueryError};

/// How long before a session was ready (beyond its spawn time) its pod's first row can be.
pub const CREATE_SLACK_US: i64 = 5 * 60_000_000;

/// One `pods` row, as far as pricing goes.
#[derive(Debug, Clone, PartialEq)]
pub struct PodObs {
    pub ts: i64,
    pub deleted: bool,
    pub requests: Requests,
    pub instance_type: Option<String>,
}

/// The `pods` rows of a window per (hub, user, server name), each list in time order.
#[derive(Debug, Clone, Default)]
pub struct PodPrices {
    /// hub -> user -> server name -> rows (looked up by `&str`: no allocation per session).
    rows: HashMap<String, HashMap<String, HashMap<String, Vec<PodObs>>>>,
}

impl PodPrices {
    /// From rows in any order.
    pub fn new(rows: impl IntoIterator<Item = ((String, String, String), PodObs)>) -> Self {
        let mut p = PodPrices::default();
        for ((hub, user, server), o) in rows {
            let users = p.rows.entry(hub).or_default();
            users
                .entry(user)
                .or_default()
                .entry(server)
                .or_default()
                .push(o);
        }
        for v in p.rows.values_mut().flat_map(|u| u.values_mut()) {
            for rows in v.values_mut() {
                rows.sort_by_key(|o| o.ts);
            }
        }
        p
    }

    /// No `pods` row in the window.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The price per server-hour of a session from its pod (`end`: where its billing ends),
    /// or `None`: price it by its profile.
    pub fn hourly(&self, s: &Session, end: i64, pricing: &Pricing) -> Option<f64> {
        let rows = self.rows.get(&s.hub)?.get(&s.user)?.get(&s.server)?;
        let created_from = if s.started_before_data {
            i64::MIN
        } else {
            let spawn_us = s.spawn_seconds.map_or(0, |x| (x.max(0.0) * 1e6) as i64);
            s.start - spawn_us - CREATE_SLACK_US
        };
        let row = matching_row(rows, created_from, s.start, end)?;
        pricing.pod_price(row.instance_type.as_deref()?, &row.requests)
    }
}

/// The row that prices a session ready at `start` and billed to `end` whose pod was created at
/// or after `created_from` (`rows` in time order): see the module documentation.
pub fn matching_row(rows: &[PodObs], created_from: i64, start: i64, end: i64) -> Option<&PodObs> {
    let hi = rows.partition_point(|o| o.ts <= end);
    let from = rows[..hi]
        .iter()
        .rposition(|o| o.deleted && o.ts < start)
        .map_or(0, |i| i + 1);
    rows[from..hi]
        .iter()
        .rev()
        .take_while(|o| o.ts >= created_from)
        .find(|o| o.instance_type.is_some())
}

/// The `pods` rows of the window's lifecycle dates; none when the lake has no `pods` table.
pub async fn load(ctx: &SessionContext, w: Window) -> Result<PodPrices, QueryError> {
    if !ctx.table_exist(PODS).unwrap_or(false) {
        return Ok(PodPrices::default());
    }
    let sql = format!(
        "SELECT ts, hub, \"user\", server_name, change, cpu_request, memory_request, gpus, \
         instance_type FROM {PODS} WHERE dt >= '{}' AND dt <= '{}' AND \"user\" IS NOT NULL",
        w.life.0, w.life.1
    );
    let mut rows = Vec::new();
    let mut stream = query::stream(ctx, &sql).await?;
    while let Some(b) = stream.next().await {
        let b = b.map_err(QueryError::from)?;
        decode(&b, &mut rows);
    }
    tracing::debug!(rows = rows.len(), "report: pods");
    Ok(PodPrices::new(rows))
}

fn utf8(a: &ArrayRef) -> ArrayRef {
    match a.data_type() {
        DataType::Utf8 => a.clone(),
        _ => cast(a, &DataType::Utf8).unwrap_or_else(|_| a.clone()),
    }
}

fn decode(b: &RecordBatch, out: &mut Vec<((String, String, String), PodObs)>) {
    let ts = b.column(0).as_primitive::<TimestampMicrosecondType>();
    let strings: Vec<ArrayRef> = [1, 2, 3, 4, 8].iter().map(|&i| utf8(b.column(i))).collect();
    let s = |i: usize| strings[i].as_string::<i32>();
    let (hub, user, server, change, itype) = (s(0), s(1), s(2), s(3), s(4));
    let f = |i: usize| b.column(i).as_primitive::<Float64Type>();
    let (cpu, mem, gpus) = (f(5), f(6), f(7));
    let opt = |a: &arrow::array::Float64Array, i: usize| (!a.is_null(i)).then(|| a.value(i));
    for i in 0..b.num_rows() {
        if ts.is_null(i) || user.is_null(i) {
            continue;
        }
        let key = (
            hub.value(i).to_string(),
            user.value(i).to_string(),
            if server.is_null(i) {
                String::new()
            } else {
                server.value(i).to_string()
            },
        );
        out.push((
            key,
            PodObs {
                ts: ts.value(i),
                deleted: change.value(i) == "deleted",
                requests: Requests {
                    cpu: opt(cpu, i),
                    memory: opt(mem, i),
                    gpus: opt(gpus, i),
                },
                instance_type: (!itype.is_null(i)).then(|| itype.value(i).to_string()),
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000_000;

    fn obs(ts: i64, deleted: bool, cpu: f64, itype: Option<&str>) -> PodObs {
        PodObs {
            ts,
            deleted,
            requests: Requests {
                cpu: Some(cpu),
                memory: None,
                gpus: None,
            },
            instance_type: itype.map(str::to_string),
        }
    }

    #[test]
    fn a_session_takes_the_latest_scheduled_row_of_its_own_pod() {
        let t = 1_000 * MIN;
        let rows = vec![
            // an earlier run of the server, deleted before this one
            obs(t - 60 * MIN, false, 8.0, Some("big")),
            obs(t - 2 * MIN, true, 8.0, Some("big")),
            // this run: created (pending, no node yet), scheduled, resized in place later
            obs(t - MIN, false, 1.0, None),
            obs(t - MIN + 5, false, 1.0, Some("m5")),
            obs(t + 30 * MIN, false, 2.0, Some("m5")),
            // the deletion at the stop
            obs(t + 60 * MIN, true, 2.0, Some("m5")),
            // the next run
            obs(t + 61 * MIN, false, 4.0, Some("c5")),
        ];
        let slack = CREATE_SLACK_US;
        let r = |start, end| matching_row(&rows, start - slack, start, end).map(|o| o.requests.cpu);
        assert_eq!(r(t, t + 60 * MIN), Some(Some(2.0)));
        assert_eq!(r(t, t + 10 * MIN), Some(Some(1.0)));
        // the next run, from its own rows only
        assert_eq!(r(t + 62 * MIN, t + 90 * MIN), Some(Some(4.0)));
        // a session whose pod left no row
        assert_eq!(r(t - 30 * MIN, t - 20 * MIN), None);
        // rows long before the session (beyond spawn + slack) are not its pod's
        assert_eq!(r(t + 200 * MIN, t + 300 * MIN), None);
        // a long spawn widens the window
        assert_eq!(
            matching_row(&rows, t + 60 * MIN - slack, t + 70 * MIN, t + 80 * MIN)
                .map(|o| o.requests.cpu),
            Some(Some(4.0))
        );
        // never scheduled: no instance type, no match
        let pending = vec![obs(t - MIN, false, 1.0, None)];
        assert_eq!(matching_row(&pending, i64::MIN, t, t + MIN), None);
        // already running when the data begins: a row from long before is its pod's
        assert_eq!(
            matching_row(&rows, i64::MIN, t + 200 * MIN, t + 300 * MIN).map(|o| o.requests.cpu),
            Some(Some(4.0))
        );
    }

    #[test]
    fn the_match_is_always_a_row_inside_the_window_after_the_last_earlier_deletion() {
        // every start/end over a grid of rows: whatever is returned obeys the rule
        let rows: Vec<PodObs> = (0..40)
            .map(|i| {
                obs(
                    i * 3 * MIN,
                    i % 7 == 6,
                    i as f64,
                    (i % 3 != 0).then_some("m5"),
                )
            })
            .collect();
        for start in (0..130).map(|m| m * MIN) {
            for len in [0, 1, 10, 45] {
                let end = start + len * MIN;
                let got = matching_row(&rows, start - CREATE_SLACK_US, start, end);
                let last_del = rows.iter().rfind(|o| o.deleted && o.ts < start);
                let want = rows
                    .iter()
                    .filter(|o| o.ts >= start - CREATE_SLACK_US && o.ts <= end)
                    .filter(|o| last_del.is_none_or(|d| o.ts > d.ts))
                    .rfind(|o| o.instance_type.is_some());
                assert_eq!(got, want, "start {start} end {end}");
            }
        }
    }
}
