//! Reads the lifecycle records a report needs from the lake, in log order.
//!
//! One DataFusion query over the `lifecycle` table and one over `activity` (derived from
//! `events` at ingest, `lake::derived`), pruned to the window's `dt` partitions, plus each hub's
//! first and last record in the window. [`load_windows`] reads several windows in one pass and
//! gives each exactly what [`load`] of it alone would (a window's records are those whose UTC
//! day, the `dt` they are partitioned by, falls in it).

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::datatypes::{
    Float64Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::sessions::{Activity, ActivityIndex, Ev, Life, Names, intern_activity};
use crate::query::{self, QueryError};

/// Lifecycle records and hub bounds of `[from, to]` (dates, inclusive).
pub struct Loaded {
    /// Lifecycle records in log order, with each user's first activity among them.
    pub events: Vec<Ev>,
    /// The names `events` and `activity` refer to.
    pub names: Names,
    pub activity: Activity,
    /// hub -> its first record (µs).
    pub first_ts: HashMap<String, i64>,
    /// hub -> its last record (µs).
    pub last_ts: HashMap<String, i64>,
}

/// The dates a report reads: lifecycle records over `life`, activity over `activity` (a
/// narrower window: activity only sets idle time and a missing stop's end).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub life: (NaiveDate, NaiveDate),
    pub activity: (NaiveDate, NaiveDate),
}

fn dates(w: (NaiveDate, NaiveDate)) -> String {
    format!("dt >= '{}' AND dt <= '{}'", w.0, w.1)
}

pub async fn load(ctx: &SessionContext, w: Window) -> Result<Loaded, QueryError> {
    let mut v = load_windows(ctx, &[w]).await?;
    v.pop()
        .ok_or_else(|| QueryError::Sql("no window read".into()))
}

/// What each of `windows` holds, read at once: the records of all of them are read once (one
/// lifecycle and one activity scan over their union), then each window gets exactly the
/// records and bounds [`load`] of that window alone gives. A month's figures are made from the
/// window of that month ([`super::monthly::window`]), so a report's previous-month row equals
/// that month's own report.
pub async fn load_windows(
    ctx: &SessionContext,
    windows: &[Window],
) -> Result<Vec<Loaded>, QueryError> {
    let Some(first) = windows.first() else {
        return Ok(Vec::new());
    };
    let mut u = *first;
    for w in &windows[1..] {
        u.life = (u.life.0.min(w.life.0), u.life.1.max(w.life.1));
        u.activity = (
            u.activity.0.min(w.activity.0),
            u.activity.1.max(w.activity.1),
        );
    }
    // The two scans run at once: each is mostly one thread decoding what the engine streams.
    let activity = tokio::spawn(activity(ctx.clone(), u));
    let mut names = Names::default();
    names.id("");
    let events = lifecycle(ctx, u, &mut names).await?;
    let activity = activity.await.map_err(|e| QueryError::Step {
        step: "activity scan",
        source: Box::new(e),
    })??;
    let activity = intern_activity(activity, &mut names);
    let parts: Vec<(Vec<Ev>, Activity)> = if windows.len() == 1 {
        // The union is the window: nothing to cut.
        vec![(events, activity)]
    } else {
        windows
            .iter()
            .map(|w| restrict(&events, &activity, *w))
            .collect()
    };
    let spans: Vec<HashMap<String, (i64, i64)>> =
        parts.iter().map(|(e, a)| spans(e, &names, a)).collect();
    let days = day_bounds(ctx, &spans).await?;
    let mut out = Vec::with_capacity(windows.len());
    for ((events, activity), span) in parts.into_iter().zip(&spans) {
        let (first_ts, last_ts) = refine(span, &days);
        out.push(Loaded {
            events: with_first_activities(events, &activity),
            names: names.clone(),
            activity,
            first_ts,
            last_ts,
        });
    }
    Ok(out)
}

/// The UTC day of a time, as the lake's `dt` partitions it.
fn day_of(us: i64) -> Option<NaiveDate> {
    chrono::DateTime::from_timestamp_micros(us).map(|t| t.date_naive())
}

fn in_days(us: i64, w: (NaiveDate, NaiveDate)) -> bool {
    day_of(us).is_some_and(|d| d >= w.0 && d <= w.1)
}

/// The records of window `w` (what its own `dt` filters would read).
fn restrict(events: &[Ev], activity: &Activity, w: Window) -> (Vec<Ev>, Activity) {
    let events = events
        .iter()
        .filter(|e| in_days(e.ts, w.life))
        .cloned()
        .collect();
    let mut act = Activity::default();
    for (k, v) in activity {
        let v: Vec<i64> = v
            .iter()
            .copied()
            .filter(|&t| in_days(t, w.activity))
            .collect();
        if !v.is_empty() {
            act.insert(*k, v);
        }
    }
    (events, act)
}

/// Lifecycle records in log order.
async fn lifecycle(
    ctx: &SessionContext,
    w: Window,
    names: &mut Names,
) -> Result<Vec<Ev>, QueryError> {
    // The `lifecycle` table holds just these records (`lake::derived`), put in log order here:
    // sorting a few integers per record is far cheaper than the engine sorting eight columns.
    let sql = format!(
        "SELECT ts, hub, kind, \"user\", actor, server_name, duration_ms, attrs, source_fp, \
         source_offset FROM {table} WHERE {dates} AND ts IS NOT NULL",
        table = crate::lake::derived::LIFECYCLE,
        dates = dates(w.life),
    );
    let t0 = std::time::Instant::now();
    let mut keyed = Vec::new();
    let mut records = Vec::new();
    let mut files: HashMap<String, u32> = HashMap::new();
    let mut stream = query::stream(ctx, &sql).await?;
    while let Some(b) = stream.next().await {
        let b = b.map_err(QueryError::from)?;
        decode(&b, &mut files, names, &mut keyed, &mut records);
    }
    // Same order as `ORDER BY ts, source_fp, source_offset`: the keys are sorted, then the
    // records (several times larger) are moved once into place.
    let mut fps: Vec<(&String, &u32)> = files.iter().collect();
    fps.sort();
    let mut rank = vec![0u32; files.len()];
    for (r, (_, id)) in fps.iter().enumerate() {
        rank[**id as usize] = r as u32;
    }
    for k in &mut keyed {
        k.1 = rank[k.1 as usize];
    }
    keyed.sort_unstable();
    let mut records: Vec<Option<Ev>> = records.into_iter().map(Some).collect();
    let events: Vec<Ev> = keyed
        .iter()
        .filter_map(|&(_, _, _, i)| records[i as usize].take())
        .collect();
    tracing::debug!(
        rows = events.len(),
        seconds = t0.elapsed().as_secs_f64(),
        "report: lifecycle records"
    );
    Ok(events)
}

/// Every activity time per (hub, user).
async fn activity(ctx: SessionContext, w: Window) -> Result<ActivityIndex, QueryError> {
    let ctx = &ctx;
    let t0 = std::time::Instant::now();
    // The `activity` table (`lake::derived`): each user's activity times as lists, a row per
    // user and day (and commit, until compacted), a few thousand rows where `events` has millions.
    // The lists are in ms, a row's first and last times exact in `first` and `last` (µs): see
    // `lake::activity::us_times`.
    let sql = format!(
        "SELECT hub, \"user\", times, \"first\", \"last\" FROM {table} WHERE {dates}",
        table = crate::lake::derived::ACTIVITY,
        dates = dates(w.activity),
    );
    // hub -> user -> times; looked up by &str, so a known user costs no allocation.
    let mut by_hub = ActivityIndex::default();
    let mut stream = query::stream(ctx, &sql).await?;
    while let Some(b) = stream.next().await {
        let b = b.map_err(QueryError::from)?;
        let (hub, user) = (Strs::of(b.column(0)), Strs::of(b.column(1)));
        let times = b.column(2).as_list::<i32>();
        let first = b.column(3).as_primitive::<TimestampMicrosecondType>();
        let last = b.column(4).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let (h, u) = (hub.value(i), user.value(i));
            let users = match by_hub.get_mut(h) {
                Some(m) => m,
                None => by_hub.entry(h.to_string()).or_default(),
            };
            let t = times.value(i);
            let t = crate::lake::activity::us_times(
                t.as_primitive::<TimestampMillisecondType>().values(),
                first.value(i),
                last.value(i),
            );
            match users.get_mut(u) {
                Some(v) => v.extend_from_slice(&t),
                None => {
                    users.insert(u.to_string(), t);
                }
            }
        }
    }
    tracing::debug!(seconds = t0.elapsed().as_secs_f64(), "report: activity");
    Ok(by_hub)
}

/// Each hub's first and last record among the rows read.
fn spans(events: &[Ev], names: &Names, activity: &Activity) -> HashMap<String, (i64, i64)> {
    // Per hub id first: one name lookup per hub, not per record.
    let mut span: HashMap<u32, (i64, i64)> = HashMap::new();
    let mut by_id = |hub: u32, t: i64| {
        let s = span.entry(hub).or_insert((t, t));
        *s = (s.0.min(t), s.1.max(t));
    };
    for e in events {
        by_id(e.hub, e.ts);
    }
    for (&(h, _), v) in activity {
        for t in [v.iter().min(), v.iter().max()].into_iter().flatten() {
            by_id(h, *t);
        }
    }
    span.into_iter()
        .map(|(h, s)| (names.name(h).to_string(), s))
        .collect()
}

/// Per hub and day: the first and last record of `events` on the days the spans begin or end
/// on (a day's CHP or metrics lines may come before or after the records read).
type DayBounds = HashMap<(String, NaiveDate), (i64, i64)>;

fn span_days(span: &HashMap<String, (i64, i64)>) -> Vec<NaiveDate> {
    let mut days: Vec<NaiveDate> = span
        .values()
        .flat_map(|&(a, b)| [day_of(a), day_of(b)])
        .flatten()
        .collect();
    days.sort();
    days.dedup();
    days
}

async fn day_bounds(
    ctx: &SessionContext,
    spans: &[HashMap<String, (i64, i64)>],
) -> Result<DayBounds, QueryError> {
    let mut days: Vec<NaiveDate> = spans.iter().flat_map(span_days).collect();
    days.sort();
    days.dedup();
    let mut out = DayBounds::new();
    if days.is_empty() {
        return Ok(out);
    }
    let list = days
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(",");
    // The `events` view's bounds, read from what it is made of: the stored rows, and the
    // heartbeats' first and last times in `activity` (no need to unnest them).
    let sql = format!(
        "SELECT hub, dt, CAST(min(lo) AS BIGINT), CAST(max(hi) AS BIGINT) FROM ( \
           SELECT hub, CAST(dt AS VARCHAR) AS dt, min(ts) AS lo, max(ts) AS hi FROM {rows} \
           WHERE dt IN ({list}) AND ts IS NOT NULL GROUP BY hub, dt \
           UNION ALL \
           SELECT hub, CAST(dt AS VARCHAR) AS dt, min(\"first\") AS lo, max(\"last\") AS hi \
           FROM {activity} WHERE dt IN ({list}) GROUP BY hub, dt \
         ) AS b GROUP BY hub, dt",
        rows = crate::query::views::EVENTS_ROWS,
        activity = crate::lake::derived::ACTIVITY,
    );
    for b in &query::run(ctx, &sql).await? {
        let (hub, dt) = (Strs::of(b.column(0)), Strs::of(b.column(1)));
        let (lo, hi) = (
            b.column(2).as_primitive::<Int64Type>(),
            b.column(3).as_primitive::<Int64Type>(),
        );
        for i in 0..b.num_rows() {
            let Ok(d) = NaiveDate::parse_from_str(dt.value(i), "%Y-%m-%d") else {
                continue;
            };
            out.insert((hub.value(i).to_string(), d), (lo.value(i), hi.value(i)));
        }
    }
    Ok(out)
}

/// A window's first and last record per hub: its span, widened by every record of that hub on
/// the days any hub's span of the window begins or ends on.
fn refine(
    span: &HashMap<String, (i64, i64)>,
    days: &DayBounds,
) -> (HashMap<String, i64>, HashMap<String, i64>) {
    let on = span_days(span);
    let (mut first, mut last) = (HashMap::new(), HashMap::new());
    for (hub, &(lo, hi)) in span {
        let (mut lo, mut hi) = (lo, hi);
        for d in &on {
            if let Some(&(a, b)) = days.get(&(hub.clone(), *d)) {
                (lo, hi) = (lo.min(a), hi.max(b));
            }
        }
        first.insert(hub.clone(), lo);
        last.insert(hub.clone(), hi);
    }
    (first, last)
}

/// Each user's first activity goes into the record stream, at its place: it opens a session
/// for a server whose start the data does not show.
fn with_first_activities(events: Vec<Ev>, activity: &Activity) -> Vec<Ev> {
    let mut firsts: Vec<Ev> = activity
        .iter()
        .filter_map(|(&(h, u), v)| {
            Some(Ev {
                ts: *v.iter().min()?,
                hub: h,
                user: Some(u),
                server: None,
                life: Life::Activity,
            })
        })
        .collect();
    // By time, then name ids: the order of the index's iteration must not show.
    firsts.sort_by_key(|e| (e.ts, e.hub, e.user));
    let mut merged = Vec::with_capacity(events.len() + firsts.len());
    let mut it = events.into_iter().peekable();
    for f in firsts {
        while let Some(e) = it.next_if(|e| e.ts <= f.ts) {
            merged.push(e);
        }
        merged.push(f);
    }
    merged.extend(it);
    merged
}

/// A string column as DataFusion hands it over (plain, view or dictionary), read in place.
enum Strs {
    Plain(arrow::array::StringArray),
    View(arrow::array::StringViewArray),
}

impl Strs {
    fn of(a: &ArrayRef) -> Strs {
        match a.data_type() {
            DataType::Utf8View => Strs::View(a.as_string_view().clone()),
            DataType::Utf8 => Strs::Plain(a.as_string::<i32>().clone()),
            _ => Strs::Plain(utf8(a).as_string::<i32>().clone()),
        }
    }
    fn value(&self, i: usize) -> &str {
        match self {
            Strs::Plain(a) => a.value(i),
            Strs::View(a) => a.value(i),
        }
    }
    /// The value, `None` when null.
    fn get(&self, i: usize) -> Option<&str> {
        let valid = match self {
            Strs::Plain(a) => a.is_valid(i),
            Strs::View(a) => a.is_valid(i),
        };
        valid.then(|| self.value(i))
    }
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

/// A lifecycle record's place in the log: (ts, file id (then rank), byte offset, index of the
/// record).
type Keyed = (i64, u32, i64, u32);

fn decode(
    b: &RecordBatch,
    files: &mut HashMap<String, u32>,
    names: &mut Names,
    keyed: &mut Vec<Keyed>,
    records: &mut Vec<Ev>,
) {
    let fp = Strs::of(b.column(8));
    let offset = b.column(9).as_primitive::<Int64Type>();
    let ts = b.column(0).as_primitive::<TimestampMicrosecondType>();
    let (hub, kind, user, actor, server, attrs) = (
        Strs::of(b.column(1)),
        Strs::of(b.column(2)),
        Strs::of(b.column(3)),
        Strs::of(b.column(4)),
        Strs::of(b.column(5)),
        Strs::of(b.column(7)),
    );
    let dur = b.column(6).as_primitive::<Float64Type>();
    for i in 0..b.num_rows() {
        let attr = |name: &str| -> Option<String> {
            let v: serde_json::Value = serde_json::from_str(attrs.get(i)?).ok()?;
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
            "proxy_route_removed" => Life::ProxyRemoved,
            "request" => Life::Delete {
                actor: actor.get(i).unwrap_or_default().to_string(),
            },
            _ => continue,
        };
        let n = files.len() as u32;
        let file = match files.get(fp.value(i)) {
            Some(&id) => id,
            None => *files.entry(fp.value(i).to_string()).or_insert(n),
        };
        keyed.push((ts.value(i), file, offset.value(i), records.len() as u32));
        records.push(Ev {
            ts: ts.value(i),
            hub: names.id(hub.value(i)),
            user: user.get(i).map(|u| names.id(u)),
            server: server.get(i).map(|s| names.id(s)),
            life,
        });
    }
}
