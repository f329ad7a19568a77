//! Two small tables derived from `events` as each commit is written, so that the reports
//! never scan the request rows (activity POSTs are most of a hub's log):
//!
//! * `lifecycle`: the `events` rows about servers starting and stopping (same schema as
//!   `events`; ~2 % of its rows): the spawn, stop, exit, cull, profile, pod and proxy-removal
//!   lines, and the DELETE requests that stop a server.
//! * `activity`: per user and commit, the times of their activity POSTs
//!   (`POST /hub/api/users/{user}/activity`, status < 400) as one sorted list. Compaction
//!   regroups a partition's rows to one per user.
//!
//! Both are written in the same commit as the `events` rows they come from (exactly once, like
//! them), under `<table>/hub=<hub>/dt=<day>/`, and dropped with them by retention.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{
    DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use arrow::error::ArrowError;

pub const LIFECYCLE: &str = "lifecycle";
pub const ACTIVITY: &str = "activity";

/// The route template of a single-user server's activity report.
pub const ACTIVITY_ROUTE: &str = "/hub/api/users/{user}/activity";
/// Routes whose successful DELETE stops a server.
pub const SERVER_ROUTES: [&str; 2] = [
    "/hub/api/users/{user}/server",
    "/hub/api/users/{user}/servers/{server}",
];
/// Message kinds about a server's life. `proxy_route_removed` names the server that an exit
/// line (`User alice server stopped, with exit code: 1`, user only) ended: JupyterHub logs it
/// right after (`handlers/base.py` `user_stopped`, `proxy.py` `delete_user`).
pub const LIFECYCLE_KINDS: [&str; 11] = [
    "profile_override",
    "pod_create",
    "spawn_succeeded",
    "stop_succeeded",
    "server_exited",
    "server_lost",
    "server_still_running",
    "cull_server",
    "cull_user",
    "hub_shutdown",
    "proxy_route_removed",
];

/// Whether an `events` row belongs in `lifecycle`.
pub fn is_lifecycle(
    kind: &str,
    method: Option<&str>,
    status: Option<i32>,
    route: Option<&str>,
) -> bool {
    LIFECYCLE_KINDS.contains(&kind)
        || (kind == "request"
            && method == Some("DELETE")
            && matches!(status, Some(202 | 204))
            && route.is_some_and(|r| SERVER_ROUTES.contains(&r)))
}

/// Whether an `events` row is an activity report.
pub fn is_activity(
    kind: &str,
    method: Option<&str>,
    status: Option<i32>,
    route: Option<&str>,
) -> bool {
    kind == "request"
        && method == Some("POST")
        && status.is_some_and(|s| s < 400)
        && route == Some(ACTIVITY_ROUTE)
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `activity`: one row per user (per commit, until compaction) and day.
pub fn activity_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("hub", DataType::Utf8, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("first", utc(), false),
        Field::new("last", utc(), false),
        Field::new("count", DataType::Int64, false),
        Field::new(
            "times",
            DataType::List(Arc::new(Field::new_list_field(utc(), false))),
            false,
        ),
    ]))
}

/// A batch of `events` rows split into what the derived tables need.
pub struct Split {
    /// Row mask of the `lifecycle` rows (`None`: there are none).
    pub lifecycle: Option<arrow::array::BooleanArray>,
    /// How many activity times the batch added.
    pub activity_times: usize,
}

/// Column positions in an `events` batch.
struct Cols {
    ts: usize,
    kind: usize,
    user: usize,
    method: usize,
    status: usize,
    route: usize,
    flags: usize,
}

fn cols(schema: &Schema) -> Result<Cols, ArrowError> {
    Ok(Cols {
        ts: schema.index_of("ts")?,
        kind: schema.index_of("kind")?,
        user: schema.index_of("user")?,
        method: schema.index_of("method")?,
        status: schema.index_of("status")?,
        route: schema.index_of("route")?,
        flags: schema.index_of("flags")?,
    })
}

fn opt(a: &arrow::array::StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

/// Scan an `events` batch: the mask of its lifecycle rows, and its activity times added to
/// `activity` (user -> times).
pub fn split(
    batch: &RecordBatch,
    activity: &mut FxHashMap<String, Vec<i64>>,
) -> Result<Split, ArrowError> {
    let c = cols(&batch.schema())?;
    let strs = |i: usize| {
        batch
            .column(i)
            .as_string_opt::<i32>()
            .ok_or_else(|| ArrowError::SchemaError(format!("events column {i}: not Utf8")))
    };
    let (kind, user, method, route, flags) = (
        strs(c.kind)?,
        strs(c.user)?,
        strs(c.method)?,
        strs(c.route)?,
        strs(c.flags)?,
    );
    let status = batch
        .column(c.status)
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| ArrowError::SchemaError("events.status: not Int32".into()))?;
    let ts = batch
        .column(c.ts)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| ArrowError::SchemaError("events.ts: not a µs timestamp".into()))?;
    let mut mask = Vec::with_capacity(batch.num_rows());
    let mut any = false;
    let mut activity_times = 0;
    for i in 0..batch.num_rows() {
        let k = kind.value(i);
        let (m, s, r) = (
            opt(method, i),
            status.is_valid(i).then(|| status.value(i)),
            opt(route, i),
        );
        // A record stamped in the future, or far before its stream's order, is kept in
        // `events` but trusted nowhere (`parse::Parser::judge`).
        let future = flags.is_valid(i) && {
            let f = flags.value(i);
            f.contains("future") || f.contains("late")
        };
        let life = !future && is_lifecycle(k, m, s, r);
        any |= life;
        mask.push(life);
        if !future && ts.is_valid(i) && user.is_valid(i) && is_activity(k, m, s, r) {
            let u = user.value(i);
            activity_times += 1;
            match activity.get_mut(u) {
                Some(v) => v.push(ts.value(i)),
                None => {
                    activity.insert(u.to_string(), vec![ts.value(i)]);
                }
            }
        }
    }
    Ok(Split {
        lifecycle: any.then(|| arrow::array::BooleanArray::from(mask)),
        activity_times,
    })
}

/// The `activity` rows of one day: one per user, in the order given, times sorted.
pub fn activity_batch<'a>(
    hub: &str,
    by_user: impl ExactSizeIterator<Item = (&'a String, &'a Vec<i64>)>,
) -> Result<RecordBatch, ArrowError> {
    let n = by_user.len();
    let mut hubs = StringBuilder::with_capacity(n, n * hub.len());
    let mut users = StringBuilder::new();
    let mut first = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut last = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut count = Int64Builder::with_capacity(n);
    let mut times = ListBuilder::new(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
        .with_field(Arc::new(Field::new_list_field(utc(), false)));
    for (u, v) in by_user {
        let mut v = v.clone();
        v.sort_unstable();
        let (Some(&lo), Some(&hi)) = (v.first(), v.last()) else {
            continue;
        };
        hubs.append_value(hub);
        users.append_value(u);
        first.append_value(lo);
        last.append_value(hi);
        count.append_value(v.len() as i64);
        times.values().append_slice(&v);
        times.append(true);
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(hubs.finish()),
        Arc::new(users.finish()),
        Arc::new(first.finish()),
        Arc::new(last.finish()),
        Arc::new(count.finish()),
        Arc::new(times.finish()),
    ];
    RecordBatch::try_new(activity_schema(), cols)
}

/// Fold `activity` rows (as read back from parts) into user -> times.
pub fn fold_activity(
    batch: &RecordBatch,
    into: &mut BTreeMap<String, Vec<i64>>,
) -> Result<(), ArrowError> {
    let s = batch.schema();
    let user = batch
        .column(s.index_of("user")?)
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("activity.user: not Utf8".into()))?;
    let times = batch.column(s.index_of("times")?).as_list::<i32>();
    for i in 0..batch.num_rows() {
        let t = times.value(i);
        let t = t.as_primitive::<TimestampMicrosecondType>();
        into.entry(user.value(i).to_string())
            .or_default()
            .extend(t.values().iter().copied());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_activity_rows() {
        assert!(is_lifecycle("spawn_succeeded", None, None, None));
        assert!(is_lifecycle(
            "request",
            Some("DELETE"),
            Some(204),
            Some(SERVER_ROUTES[1])
        ));
        assert!(!is_lifecycle(
            "request",
            Some("DELETE"),
            Some(404),
            Some(SERVER_ROUTES[1])
        ));
        assert!(!is_lifecycle(
            "request",
            Some("POST"),
            Some(200),
            Some(ACTIVITY_ROUTE)
        ));
        assert!(is_activity(
            "request",
            Some("POST"),
            Some(200),
            Some(ACTIVITY_ROUTE)
        ));
        assert!(!is_activity(
            "request",
            Some("POST"),
            Some(403),
            Some(ACTIVITY_ROUTE)
        ));
        assert!(!is_activity(
            "request",
            Some("GET"),
            Some(200),
            Some(ACTIVITY_ROUTE)
        ));
        assert!(!is_activity(
            "message",
            Some("POST"),
            Some(200),
            Some(ACTIVITY_ROUTE)
        ));
    }

    #[test]
    fn activity_rows_round_trip_sorted() {
        let mut m = BTreeMap::new();
        m.insert("bob".to_string(), vec![30, 10, 20]);
        m.insert("al".to_string(), vec![5]);
        let b = activity_batch("h", m.iter()).unwrap();
        assert_eq!(b.num_rows(), 2);
        let mut back = BTreeMap::new();
        fold_activity(&b, &mut back).unwrap();
        assert_eq!(back["bob"], vec![10, 20, 30]);
        assert_eq!(back["al"], vec![5]);
    }
}
