//! What a batch of parsed records becomes in the lake (format 3, see [`super::format`]):
//!
//! * `events`: every record but the activity heartbeats folded into `activity`, in the stored
//!   schema ([`schema::stored`]): `text` holds the message only when the columns do not rebuild
//!   it ([`super::rebuild`]).
//! * `lifecycle`: the `events` rows about servers starting and stopping (same stored schema;
//!   ~2 % of its rows), so the reports never scan the request rows: the spawn, stop, exit,
//!   cull, profile, pod and proxy-removal lines, and the DELETE requests that stop a server.
//! * `activity`: per user, the times of their activity POSTs
//!   (`POST /hub/api/users/{user}/activity`, status < 400), sorted, and for the reports that
//!   are exactly `log_request` lines every other field of their rows ([`super::heartbeat`]):
//!   those are stored there only. Compaction regroups a partition's rows.
//!
//! All are written in the same commit as the `events` rows they come from (exactly once, like
//! them), under `<table>/hub=<hub>/dt=<day>/`, and dropped with them by retention.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray,
    StringBuilder,
};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow::error::ArrowError;

use super::activity::{Activity, Beat, Beats, MetaRef};
use super::batch::Rows;
use super::heartbeat;
use super::rebuild::RequestFields;
use super::tables::events as schema;

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

/// What a commit's writer learns from stored rows: their lifecycle rows, and the activity
/// reports among them (reports kept as rows: only their times go to `activity`).
pub struct Scan {
    /// Mask over the rows of the `lifecycle` rows (`None`: there are none).
    pub lifecycle: Option<arrow::array::BooleanArray>,
    /// How many activity times the rows added.
    pub activity_times: usize,
}

/// Scan stored rows ([`schema::stored`]): their lifecycle mask, and their activity reports'
/// times added to `activity` (user → a group of bare times).
pub fn scan(stored: &RecordBatch, activity: &mut Activity) -> Result<Scan, ArrowError> {
    let s = stored.schema_ref();
    let col = |n: &str| s.index_of(n).map(|i| stored.column(i));
    let bad = |n: &str| ArrowError::SchemaError(format!("events.{n}: unexpected type"));
    let st = |n: &'static str| col(n)?.as_string_opt::<i32>().ok_or_else(|| bad(n));
    let (kind, user, method, route, flags) = (
        st("kind")?,
        st("user")?,
        st("method")?,
        st("route")?,
        st("flags")?,
    );
    let status = col("status")?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| bad("status"))?;
    let ts = col("ts")?
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| bad("ts"))?;
    let mut mask = Vec::with_capacity(stored.num_rows());
    let (mut any, mut activity_times) = (false, 0);
    for i in 0..stored.num_rows() {
        let k = kind.value(i);
        let (m, st, r) = (opt(method, i), num(status, i), opt(route, i));
        // A record stamped in the future, or far before its stream's order, is kept in
        // `events` but trusted nowhere (`parse::Parser::judge`).
        let future = flags.is_valid(i) && {
            let f = flags.value(i);
            f.contains("future") || f.contains("late")
        };
        let life = !future && is_lifecycle(k, m, st, r);
        any |= life;
        mask.push(life);
        if !future && ts.is_valid(i) && user.is_valid(i) && is_activity(k, m, st, r) {
            activity_times += 1;
            activity.add_time(user.value(i), ts.value(i));
        }
    }
    Ok(Scan {
        lifecycle: any.then(|| BooleanArray::from(mask)),
        activity_times,
    })
}

/// The columns of an `events` batch.
struct Cols<'a> {
    ts: &'a arrow::array::TimestampMicrosecondArray,
    source: &'a StringArray,
    level: &'a StringArray,
    logger: &'a StringArray,
    module: &'a StringArray,
    kind: &'a StringArray,
    user: &'a StringArray,
    actor: &'a StringArray,
    server_name: &'a StringArray,
    method: &'a StringArray,
    status: &'a Int32Array,
    route: &'a StringArray,
    path: &'a StringArray,
    target: &'a StringArray,
    client_ip: &'a StringArray,
    service: &'a StringArray,
    duration_ms: &'a Float64Array,
    exit_code: &'a Int32Array,
    count: &'a arrow::array::Int64Array,
    attrs: &'a StringArray,
    message: &'a StringArray,
    lines: &'a Int32Array,
    flags: &'a StringArray,
    source_file: &'a StringArray,
    source_fp: &'a StringArray,
    source_offset: &'a arrow::array::Int64Array,
}

fn cols(batch: &RecordBatch) -> Result<Cols<'_>, ArrowError> {
    let s = batch.schema_ref();
    let col = |n: &str| s.index_of(n).map(|i| batch.column(i));
    let bad = |n: &str| ArrowError::SchemaError(format!("events.{n}: unexpected type"));
    let st = |n: &'static str| col(n)?.as_string_opt::<i32>().ok_or_else(|| bad(n));
    let i32s = |n: &'static str| {
        col(n)?
            .as_primitive_opt::<Int32Type>()
            .ok_or_else(|| bad(n))
    };
    let i64s = |n: &'static str| {
        col(n)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| bad(n))
    };
    Ok(Cols {
        ts: col("ts")?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(|| bad("ts"))?,
        source: st("source")?,
        level: st("level")?,
        logger: st("logger")?,
        module: st("module")?,
        kind: st("kind")?,
        user: st("user")?,
        actor: st("actor")?,
        server_name: st("server_name")?,
        method: st("method")?,
        status: i32s("status")?,
        route: st("route")?,
        path: st("path")?,
        target: st("target")?,
        client_ip: st("client_ip")?,
        service: st("service")?,
        duration_ms: col("duration_ms")?
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| bad("duration_ms"))?,
        exit_code: i32s("exit_code")?,
        count: i64s("count")?,
        attrs: st("attrs")?,
        message: st("message")?,
        lines: i32s("lines")?,
        flags: st("flags")?,
        source_file: st("source_file")?,
        source_fp: st("source_fp")?,
        source_offset: i64s("source_offset")?,
    })
}

fn opt(a: &StringArray, i: usize) -> Option<&str> {
    a.is_valid(i).then(|| a.value(i))
}

fn num<T: arrow::array::ArrowPrimitiveType>(
    a: &arrow::array::PrimitiveArray<T>,
    i: usize,
) -> Option<T::Native> {
    a.is_valid(i).then(|| a.value(i))
}

impl Cols<'_> {
    /// Whether row `i`'s message is the request line its columns rebuild
    /// ([`super::rebuild`]).
    fn rebuilds(&self, i: usize) -> bool {
        let (Some(status), Some(method), Some(path), Some(ip), Some(ms)) = (
            num(self.status, i),
            opt(self.method, i),
            opt(self.path, i),
            opt(self.client_ip, i),
            num(self.duration_ms, i),
        ) else {
            return false;
        };
        let r = RequestFields {
            status,
            method,
            path,
            target: opt(self.target, i),
            actor: opt(self.actor, i),
            client_ip: ip,
            duration_ms: ms,
        };
        self.kind.value(i) == crate::parse::KIND_REQUEST && r.rebuilds(self.message.value(i))
    }

    /// Row `i` as a heartbeat to fold into `activity`, if it is exactly one.
    fn heartbeat(&self, i: usize, user: &str, status: i32) -> Option<i32> {
        let rest_empty = [
            self.server_name,
            self.target,
            self.service,
            self.attrs,
            self.flags,
        ]
        .iter()
        .all(|a| a.is_null(i))
            && self.exit_code.is_null(i)
            && self.count.is_null(i);
        heartbeat::fold_row(&heartbeat::Candidate {
            source: self.source.value(i),
            level: opt(self.level, i),
            user,
            ts: self.ts.value(i),
            actor: opt(self.actor, i),
            path: opt(self.path, i),
            status,
            client_ip: opt(self.client_ip, i),
            duration_ms: num(self.duration_ms, i),
            lines: self.lines.value(i),
            message: self.message.value(i),
            rest_empty,
        })
    }
}

/// Split an `events` batch of the readers' schema ([`schema::events`]: a format 1 part, or
/// rows built for a test) into what the lake stores: the heartbeats folded by user, and the
/// other rows in the stored schema, with `text` only where the columns do not rebuild the
/// message. The rule is [`super::batch::EventsBuilder`]'s, applied to rows.
pub fn split(batch: &RecordBatch) -> Result<Rows, ArrowError> {
    let c = cols(batch)?;
    let n = batch.num_rows();
    let mut beats = Beats::default();
    let mut keep: Vec<u32> = Vec::with_capacity(n);
    let mut text = StringBuilder::with_capacity(n / 8, 0);
    for i in 0..n {
        let k = c.kind.value(i);
        let (m, s, r) = (opt(c.method, i), num(c.status, i), opt(c.route, i));
        let flagged = c.flags.is_valid(i);
        if !flagged && c.ts.is_valid(i) && c.user.is_valid(i) && is_activity(k, m, s, r) {
            let (u, status) = (c.user.value(i), s.unwrap_or_default());
            if let Some(duration_cs) = c.heartbeat(i, u, status) {
                let meta = MetaRef {
                    logger: opt(c.logger, i).unwrap_or_default(),
                    module: opt(c.module, i).unwrap_or_default(),
                    source_file: c.source_file.value(i),
                    source_fp: c.source_fp.value(i),
                };
                let beat = Beat {
                    ts: c.ts.value(i),
                    status,
                    duration_cs,
                    client_ip: opt(c.client_ip, i).unwrap_or_default(),
                    offset: c.source_offset.value(i),
                };
                beats.push(u, meta, beat);
                continue;
            }
        }
        keep.push(i as u32);
        text.append_option((!c.rebuilds(i)).then(|| c.message.value(i)));
    }
    Ok(Rows {
        stored: stored_rows(batch, &keep, Arc::new(text.finish()))?,
        beats,
    })
}

/// Rows `keep` of `batch` in the stored schema, `text` in place of `message`.
fn stored_rows(
    batch: &RecordBatch,
    keep: &[u32],
    text: ArrayRef,
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema_ref();
    let all = keep.len() == batch.num_rows();
    let idx = arrow::array::UInt32Array::from(keep.to_vec());
    let stored = schema::stored();
    let mut out = Vec::with_capacity(stored.fields().len());
    for f in stored.fields() {
        if f.name() == schema::TEXT_COL {
            out.push(text.clone());
            continue;
        }
        let a = batch.column(schema.index_of(f.name())?);
        out.push(if all {
            a.clone()
        } else {
            arrow::compute::take(a.as_ref(), &idx, None)?
        });
    }
    RecordBatch::try_new(stored, out)
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
}
