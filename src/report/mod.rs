//! Monthly cost and usage reports, and the `sessions` table they stand on.
//!
//! * [`sessions`]: server runs rebuilt from lifecycle records (pure; every gap in the log closed
//!   by a stated rule and flagged).
//! * [`load`]: reads those records from the lake with DataFusion.
//! * [`pricing`]: the pricing file (profile and instance prices, groups, projects).
//! * [`pods`]: the `pods` table's requests and instance types, to price sessions from their pod.
//! * [`observed`]: the hub's own `last_activity` from the `observations` table, for idle time
//!   and active days, and each server's runs as the hub saw them.
//! * [`grounding`]: session bounds checked against those runs and corrected where the log
//!   disagrees with the hub.
//! * [`monthly`]: sessions clipped to a month, priced and broken down; [`render`] and [`html`]
//!   write it as Markdown, CSV or one self-contained HTML file.

pub mod grounding;
pub mod html;
pub mod load;
pub mod monthly;
pub mod observed;
pub mod podname;
pub mod pods;
pub mod pricing;
pub mod render;
pub mod sessions;

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::query::QueryError;
use pricing::Pricing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Html,
    Md,
    Csv,
}

/// What a report is asked for that cannot be: a month that does not read, a pricing file that
/// cannot be read or is refused. (Reading the lake fails with [`QueryError`].)
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("--month {text:?}: expected YYYY-MM, e.g. 2026-10")]
    BadMonth {
        text: String,
        source: chrono::ParseError,
    },
    #[error("{path}: {source}")]
    ReadPricing {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// The pricing file's TOML, at its position (`NAME:LINE:COL: key: why`).
    #[error(transparent)]
    Pricing(#[from] crate::config::ConfigError),
}

/// Parse `YYYY-MM` into the month's first day.
pub fn parse_month(s: &str) -> Result<NaiveDate, ReportError> {
    NaiveDate::parse_from_str(&format!("{s}-01"), "%Y-%m-%d").map_err(|source| {
        ReportError::BadMonth {
            text: s.to_string(),
            source,
        }
    })
}

/// The monthly report of the month starting at `first`, over the lake of `ctx`.
pub async fn monthly(
    ctx: &SessionContext,
    first: NaiveDate,
    pricing: &Pricing,
) -> Result<monthly::Monthly, QueryError> {
    let prev = first - chrono::Months::new(1);
    let (w, pw) = (monthly::window(first), monthly::window(prev));
    let mut loaded = load::load_windows(ctx, &[w, pw]).await?;
    let (Some(pl), Some(l)) = (loaded.pop(), loaded.pop()) else {
        return Err(QueryError::Sql("report windows not read".into()));
    };
    let (pods, prev_pods) = (pods::load(ctx, w).await?, pods::load(ctx, pw).await?);
    // The hub's own observations up to the end of each month's window (a closed month reads
    // the same ones whichever report shows it).
    let rows = observed::load(ctx, w.life.1).await?;
    let (observed, prev_observed) = (
        observed::Observed::build(&rows, day_end(w.life.1)),
        observed::Observed::build(&rows, day_end(pw.life.1)),
    );
    let t0 = std::time::Instant::now();
    // The two rebuilds are independent and pure: one on each core.
    let (l_act, pl_act) = (l.activity, pl.activity);
    let (mut sessions, prev_sessions) = std::thread::scope(|sc| {
        let prev =
            sc.spawn(|| sessions::derive_interned(&pl.events, &pl.names, pl_act, &pl.first_ts));
        let cur = sessions::derive_interned(&l.events, &l.names, l_act, &l.first_ts);
        (cur, prev.join())
    });
    let mut prev_sessions =
        prev_sessions.map_err(|_| QueryError::Sql("previous month's rebuild panicked".into()))?;
    // Session bounds checked against the hub's runs (no change without observations).
    let hub_check = grounding::ground(
        &mut sessions,
        &observed,
        &l.last_ts,
        monthly::month_bounds(first),
    );
    grounding::ground(
        &mut prev_sessions,
        &prev_observed,
        &pl.last_ts,
        monthly::month_bounds(prev),
    );
    tracing::debug!(
        sessions = sessions.len(),
        previous = prev_sessions.len(),
        seconds = t0.elapsed().as_secs_f64(),
        "report: sessions derived"
    );
    let cur = monthly::MonthData {
        sessions: &sessions,
        first_ts: &l.first_ts,
        last_ts: &l.last_ts,
        pods: Some(&pods),
        observed: &observed,
    };
    let prev = monthly::MonthData {
        sessions: &prev_sessions,
        first_ts: &pl.first_ts,
        last_ts: &pl.last_ts,
        pods: Some(&prev_pods),
        observed: &prev_observed,
    };
    let mut m = monthly::build(first, &cur, &prev, pricing);
    m.hub_check = hub_check;
    Ok(m)
}

/// Sessions rebuilt over a window and checked against the hub's observations up to its end:
/// the one rebuild the `sessions` table, the quota budgets and the capacity forecast use (the
/// monthly report does the same for its two windows at once, in [`monthly`]).
pub struct Rebuilt {
    pub sessions: Vec<sessions::Session>,
    /// hub -> its first and last record in the window (µs).
    pub first_ts: std::collections::HashMap<String, i64>,
    pub last_ts: std::collections::HashMap<String, i64>,
}

/// Rebuild the sessions of window `w` (see [`Rebuilt`]).
///
/// # Errors
/// A lake read failed.
pub async fn rebuild(ctx: &SessionContext, w: load::Window) -> Result<Rebuilt, QueryError> {
    let l = load::load(ctx, w).await?;
    let mut s = sessions::derive_interned(&l.events, &l.names, l.activity, &l.first_ts);
    let rows = observed::load(ctx, w.life.1).await?;
    grounding::ground(
        &mut s,
        &observed::Observed::build(&rows, day_end(w.life.1)),
        &l.last_ts,
        (i64::MIN, i64::MAX),
    );
    Ok(Rebuilt {
        sessions: s,
        first_ts: l.first_ts,
        last_ts: l.last_ts,
    })
}

/// The first instant after the UTC day `d` (µs).
fn day_end(d: NaiveDate) -> i64 {
    (d + chrono::TimeDelta::days(1))
        .and_hms_opt(0, 0, 0)
        .map_or(i64::MAX, |t| t.and_utc().timestamp_micros())
}

pub fn render(m: &monthly::Monthly, format: ReportFormat) -> String {
    match format {
        ReportFormat::Html => html::html(m),
        ReportFormat::Md => render::markdown(m),
        ReportFormat::Csv => render::csv(m),
    }
}

/// Schema of the `sessions` table.
pub fn sessions_schema() -> Arc<Schema> {
    let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("hub", DataType::Utf8, false),
        Field::new("user", DataType::Utf8, false),
        Field::new("server_name", DataType::Utf8, false),
        Field::new("profile", DataType::Utf8, true),
        Field::new("start", ts(), false),
        Field::new("end", ts(), true),
        Field::new("end_reason", DataType::Utf8, false),
        Field::new("spawn_seconds", DataType::Float64, true),
        Field::new("last_activity", ts(), true),
        Field::new("flags", DataType::Utf8, false),
        Field::new("running", DataType::Boolean, false),
    ]))
}

/// Registers `sessions` (every session over the whole lake) in `ctx`.
pub async fn register_sessions(ctx: &SessionContext) -> Result<(), QueryError> {
    let sql_err = QueryError::from;
    let (from, to) = (
        NaiveDate::from_ymd_opt(1, 1, 1),
        NaiveDate::from_ymd_opt(9999, 12, 31),
    );
    let (Some(from), Some(to)) = (from, to) else {
        return Err(QueryError::Sql("date range".into()));
    };
    let s = rebuild(
        ctx,
        load::Window {
            life: (from, to),
            activity: (from, to),
        },
    )
    .await?
    .sessions;
    let str_col = |f: &dyn Fn(&sessions::Session) -> Option<String>| -> ArrayRef {
        Arc::new(s.iter().map(f).collect::<StringArray>())
    };
    let ts_col = |f: &dyn Fn(&sessions::Session) -> Option<i64>| -> ArrayRef {
        Arc::new(
            s.iter()
                .map(f)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let cols: Vec<ArrayRef> = vec![
        str_col(&|x| Some(x.hub.clone())),
        str_col(&|x| Some(x.user.clone())),
        str_col(&|x| Some(x.server.clone())),
        str_col(&|x| x.profile.clone()),
        ts_col(&|x| Some(x.start)),
        ts_col(&|x| x.end),
        str_col(&|x| Some(x.end_reason.as_str().to_string())),
        Arc::new(s.iter().map(|x| x.spawn_seconds).collect::<Float64Array>()),
        ts_col(&|x| x.last_activity),
        str_col(&|x| Some(x.flags())),
        Arc::new(
            s.iter()
                .map(|x| Some(x.end.is_none()))
                .collect::<BooleanArray>(),
        ),
    ];
    let batch = RecordBatch::try_new(sessions_schema(), cols).map_err(QueryError::from)?;
    let table = MemTable::try_new(sessions_schema(), vec![vec![batch]]).map_err(sql_err)?;
    ctx.register_table("sessions", Arc::new(table))
        .map_err(sql_err)?;
    Ok(())
}
