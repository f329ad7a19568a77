//! Reads the lifecycle records a report needs from the lake, in log order.
//!
//! One DataFusion query over `events`, pruned to the window's `dt` partitions and to the kinds
//! [`sessions`](super::sessions) reads (a few per cent of the rows: activity POSTs are most of
//! them), plus each hub's first and last record in the window.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use super::sessions::{ActivityIndex, Life, LifeEvent};
use crate::query::{self, QueryError};

const ACTIVITY_ROUTE: &str = "/hub/api/users/{user}/activity";
const SERVER_ROUTES: [&str; 2] = [
    "/hub/api/users/{user}/server",
    "/hub/api/users/{user}/servers/{server}",
];
const KINDS: [&str; 10] = [
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
];

/// Lifecycle records and hub bounds of `[from, to]` (dates, inclusive).
pub struct Loaded {
    /// Lifecycle records in log order, with each user's first activity among them.
    pub events: Vec<LifeEvent>,
    pub activity: ActivityIndex,
    /// hub -> first record in the window (µs).
    pub first_ts: HashMap<String, i64>,
    /// hub -> last record in the window (µs).
    pub last_ts: HashMap<String, i64>,
}

pub async fn load(
    ctx: &SessionContext,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Loaded, QueryError> {
    let window = format!("dt >= '{from}' AND dt <= '{to}'");
    let bounds = query::run(
        ctx,
        &format!(
            "SELECT hub, CAST(min(ts) AS BIGINT) AS lo, CAST(max(ts) AS BIGINT) AS hi \
             FROM events WHERE {window} AND ts IS NOT NULL GROUP BY hub"
        ),
    )
    .await?;
    let (mut first_ts, mut last_ts) = (HashMap::new(), HashMap::new());
    for b in &bounds {
        let hub = utf8(b.column(0));
        let hub = hub.as_string::<i32>();
        let (lo, hi) = (
            b.column(1).as_primitive::<Int64Type>(),
            b.column(2).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            first_ts.insert(hub.value(i).to_string(), lo.value(i));
            last_ts.insert(hub.value(i).to_string(), hi.value(i));
        }
    }
    let list = |v: &[&str]| {
        v.iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(",")
    };
    // Lifecycle records (a few per cent of the rows), in log order.
    let sql = format!(
        "SELECT ts, hub, kind, \"user\", actor, server_name, duration_ms, attrs FROM events \
         WHERE {window} AND ts IS NOT NULL AND (kind IN ({kinds}) OR (kind = 'request' AND status < 400 \
           AND method = 'DELETE' AND route IN ({servers}))) \
         ORDER BY ts, source_fp, source_offset",
        kinds = list(&KINDS),
        servers = list(&SERVER_ROUTES),
    );
    let batches = query::run(ctx, &sql).await?;
    let mut events = Vec::new();
    for b in &batches {
        decode(b, &mut events);
    }
    // Activity POSTs (most of the rows): not sorted by the engine, only grouped per user here.
    let sql = format!(
        "SELECT hub, \"user\", CAST(ts AS BIGINT) FROM events WHERE {window} AND ts IS NOT NULL \
         AND kind = 'request' AND status < 400 AND method = 'POST' AND route = '{ACTIVITY_ROUTE}' \
         AND \"user\" IS NOT NULL"
    );
    // hub -> user -> times; looked up by &str, so a known user costs no allocation.
    let mut by_hub: HashMap<String, HashMap<String, Vec<i64>>> = HashMap::new();
    for b in &query::run(ctx, &sql).await? {
        let (hub, user) = (utf8(b.column(0)), utf8(b.column(1)));
        let (hub, user) = (hub.as_string::<i32>(), user.as_string::<i32>());
        let ts = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            let (h, u) = (hub.value(i), user.value(i));
            let users = match by_hub.get_mut(h) {
                Some(m) => m,
                None => by_hub.entry(h.to_string()).or_default(),
            };
            match users.get_mut(u) {
                Some(v) => v.push(ts.value(i)),
                None => {
                    users.insert(u.to_string(), vec![ts.value(i)]);
                }
            }
        }
    }
    let activity: ActivityIndex = by_hub
        .into_iter()
        .flat_map(|(h, users)| users.into_iter().map(move |(u, v)| ((h.clone(), u), v)))
        .collect();
    // Each user's first activity goes into the record stream, at its place: it opens a session
    // for a server whose start the data does not show.
    let mut firsts: Vec<LifeEvent> = activity
        .iter()
        .filter_map(|((h, u), v)| {
            Some(LifeEvent {
                ts: *v.iter().min()?,
                hub: h.clone(),
                user: Some(u.clone()),
                server: None,
                life: Life::Activity,
            })
        })
        .collect();
    firsts.sort_by_key(|e| e.ts);
    let mut merged = Vec::with_capacity(events.len() + firsts.len());
    let mut it = events.into_iter().peekable();
    for f in firsts {
        while let Some(e) = it.next_if(|e| e.ts <= f.ts) {
            merged.push(e);
        }
        merged.push(f);
    }
    merged.extend(it);
    Ok(Loaded {
        events: merged,
        activity,
        first_ts,
        last_ts,
    })
}

/// Any string column (DataFusion reads Parquet strings as views) as plain `Utf8`; other
/// columns come back unchanged and are not read as strings.
fn utf8(a: &ArrayRef) -> ArrayRef {
    match a.data_type() {
        DataType::Utf8View | DataType::LargeUtf8 | DataType::Dictionary(..) => {
            cast(a, &DataType::Utf8).unwrap_or_else(|_| a.clone())
        }
        _ => a.clone(),
    }
}

fn decode(b: &RecordBatch, out: &mut Vec<LifeEvent>) {
    let ts = b.column(0).as_primitive::<TimestampMicrosecondType>();
    let strings: Vec<ArrayRef> = (0..b.num_columns()).map(|i| utf8(b.column(i))).collect();
    let s = |i: usize| strings[i].as_string::<i32>();
    let (hub, kind, user, actor, server) = (s(1), s(2), s(3), s(4), s(5));
    let dur = b.column(6).as_primitive::<Float64Type>();
    let attrs = s(7);
    let opt =
        |a: &arrow::array::StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_string());
    for i in 0..b.num_rows() {
        let attr = |name: &str| -> Option<String> {
            let v: serde_json::Value = serde_json::from_str(opt(attrs, i)?.as_str()).ok()?;
            v.get(name)?.as_str().map(str::to_string)
        };
        let life = match kind.value(i) {
            "profile_override" => match attr("profile") {
                Some(p) => Life::ProfileOverride(p),
                None => continue,
            },
            "pod_create" => match attr("pod") {
                Some(p) => Life::PodCreate(p),
                None => continue,
            },
            "spawn_succeeded" => {
                Life::SpawnSucceeded((!dur.is_null(i)).then(|| dur.value(i) / 1000.0))
            }
            "stop_succeeded" => Life::StopSucceeded,
            "server_exited" => Life::Exited,
            "server_lost" => Life::Lost,
            "server_still_running" => Life::StillRunning,
            "cull_server" | "cull_user" => Life::CullRequested,
            "hub_shutdown" => Life::HubShutdown,
            "request" => Life::Delete {
                actor: opt(actor, i).unwrap_or_default(),
            },
            _ => continue,
        };
        out.push(LifeEvent {
            ts: ts.value(i),
            hub: hub.value(i).to_string(),
            user: opt(user, i),
            server: opt(server, i),
            life,
        });
    }
}
