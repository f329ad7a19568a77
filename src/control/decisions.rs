//! The lake table `decisions`: one row per culler or admission decision worth keeping (every
//! cull, warning and skip, and every admission answer), Hive-partitioned like `events`:
//! `DIR/decisions/hub=<hub>/dt=YYYY-MM-DD/part-<unix_ms>-<pid>-<n>.parquet`.
//!
//! # Guarantees
//! - A part is written under a hidden `.….parquet.tmp` name, `fsync`ed, then renamed into place
//!   (and the directory `fsync`ed): readers (DataFusion lists `*.parquet` only, DuckDB, pyarrow)
//!   see whole parts or nothing.
//! - Unlike `events`, `decisions` does not go through the manifest: it has no source offsets to
//!   checkpoint, and `hubpulse cull --once` must be able to record next to a running agent (which
//!   holds the lake lock). Names are unique per process and call, so writers never collide.
//! - No token is ever a column; `user`/`server_name` are data, never metric labels.

use std::fs::{self, File};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use parquet::arrow::ArrowWriter;

use super::decide::{Action, Decision};
use crate::lake::LakeLocation;
use crate::lake::store::Remote;
use crate::lake::writer::{WriterConfig, writer_properties};

pub const DECISIONS: &str = "decisions";

/// A nullable UTC timestamp column (µs), as every side table stores times.
pub fn utc_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )
}

/// `decisions`: one row per decision (see README, "Table `decisions`").
pub fn schema() -> SchemaRef {
    let ts = utc_field;
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        ts("ts"),
        s("hub", false),
        s("component", false),
        s("pass", false),
        s("action", false),
        s("reason", false),
        s("user", false),
        s("server_name", true),
        s("profile", true),
        ts("last_activity"),
        s("activity_source", true),
        ts("started"),
        f("limit_s"),
        f("idle_s"),
        ts("deadline"),
        f("lateness_s"),
        Field::new("dry_run", DataType::Boolean, false),
        s("outcome", true),
        s("message", true),
    ]))
}

/// One row: a decision plus what acting on it did.
#[derive(Debug, Clone)]
pub struct Row {
    pub ts: DateTime<Utc>,
    /// `culler` or `admission` or `quota`.
    pub component: &'static str,
    /// `reconcile`, `deadline`, `once`, `admission`.
    pub pass: &'static str,
    pub decision: Decision,
    pub dry_run: bool,
    /// `stopped`, `stopping`, `gone`, `throttled`, `error`, `dry_run`, `deleted`; `None` when
    /// nothing was done.
    pub outcome: Option<&'static str>,
    /// A human-readable note (the admission reason, an error).
    pub message: Option<String>,
}

impl Row {
    pub fn action_label(&self) -> &'static str {
        self.decision.action.label()
    }
}

/// Writes rows as parts of the `decisions` table under a lake root.
#[derive(Debug, Clone)]
pub struct DecisionSink {
    root: SideRoot,
    hub: String,
    seq: Arc<AtomicU64>,
}

/// Where a side table (`decisions`, `pods`) of one hub is written: `<lake>/<table>/hub=<hub>/`,
/// in a directory or in an object store (its client opened on first use).
#[derive(Debug, Clone)]
pub struct SideRoot {
    /// `<lake>/<table>/hub=<hub>`.
    dir: LakeLocation,
    remote: Arc<std::sync::OnceLock<Result<Arc<Remote>, String>>>,
}

impl SideRoot {
    pub fn new(lake: &LakeLocation, table: &str, hub: &str) -> SideRoot {
        SideRoot {
            dir: lake.join(&format!("{table}/hub={hub}")),
            remote: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Publish `batch` as a new part of partition `dt`. `n` makes the name unique within the
    /// process (with the time and the pid).
    ///
    /// # Errors
    /// I/O, store or encoding errors, with the path.
    pub fn publish(&self, dt: &str, n: u64, batch: &RecordBatch) -> Result<(), String> {
        match &self.dir {
            LakeLocation::Local(d) => publish(&d.join(format!("dt={dt}")), n, batch),
            LakeLocation::S3(url) => {
                let remote = self
                    .remote
                    .get_or_init(|| Remote::open(url).map(Arc::new))
                    .clone()?;
                let body = encode(batch).map_err(|e| format!("{url}: {e}"))?;
                // One PUT: the object appears whole or not at all.
                remote
                    .put(&format!("dt={dt}/{}", part_name(n)), body)
                    .map_err(|e| format!("{url}: {e}"))
            }
        }
    }
}

/// A part's name: unique per process even when two recorders of one table publish their
/// part number `n` in the same millisecond (a process-wide counter), and across processes
/// (the pid).
fn part_name(n: u64) -> String {
    static UNIQUE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let u = UNIQUE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "part-{}-{}-{n}-{u}.parquet",
        Utc::now().timestamp_millis(),
        std::process::id()
    )
}

fn encode(batch: &RecordBatch) -> Result<Vec<u8>, parquet::errors::ParquetError> {
    let props = writer_properties(&WriterConfig::default());
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    w.write(batch)?;
    w.into_inner()
}

/// Writes `batch` as a new part in `dir` (created if missing): under a hidden temporary name,
/// `fsync`ed, renamed into place, the directory `fsync`ed. `n` makes the name unique within the
/// process (with the time and the pid). Shared by the small side tables (`decisions`, `pods`).
///
/// # Errors
/// I/O or encoding errors, with the path.
pub fn publish(dir: &Path, n: u64, batch: &RecordBatch) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let name = part_name(n);
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = File::create(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let props = writer_properties(&WriterConfig::default());
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props))
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    w.write(batch)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let file = w
        .into_inner()
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    file.sync_all()
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let dst = dir.join(&name);
    fs::rename(&tmp, &dst).map_err(|e| format!("{}: {e}", dst.display()))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(())
}

fn micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_micros())
}

impl DecisionSink {
    pub fn new(lake: &LakeLocation, hub: &str) -> Self {
        DecisionSink {
            root: SideRoot::new(lake, DECISIONS, hub),
            hub: hub.to_string(),
            seq: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Writes `rows` (grouped by UTC day); no-op when empty.
    ///
    /// # Errors
    /// I/O or encoding errors, with the path.
    pub fn write(&self, rows: &[Row]) -> Result<(), String> {
        let mut by_day: std::collections::BTreeMap<String, Vec<&Row>> = Default::default();
        for r in rows {
            by_day
                .entry(r.ts.format("%Y-%m-%d").to_string())
                .or_default()
                .push(r);
        }
        for (dt, rows) in by_day {
            self.write_part(&dt, &rows)?;
        }
        Ok(())
    }

    fn write_part(&self, dt: &str, rows: &[&Row]) -> Result<(), String> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let batch = self
            .batch(rows)
            .map_err(|e| format!("decisions batch: {e}"))?;
        self.root.publish(dt, n, &batch)
    }

    fn batch(&self, rows: &[&Row]) -> Result<RecordBatch, arrow::error::ArrowError> {
        let n = rows.len();
        let tsb = || TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let (mut ts, mut last, mut started, mut deadline) = (tsb(), tsb(), tsb(), tsb());
        let sb = || StringBuilder::with_capacity(n, n * 8);
        let (mut hub, mut comp, mut pass, mut action, mut reason) = (sb(), sb(), sb(), sb(), sb());
        let (mut user, mut server, mut profile, mut source) = (sb(), sb(), sb(), sb());
        let (mut outcome, mut message) = (sb(), sb());
        let fb = || Float64Builder::with_capacity(n);
        let (mut limit, mut idle, mut late) = (fb(), fb(), fb());
        let mut dry = BooleanBuilder::with_capacity(n);
        for r in rows {
            let d = &r.decision;
            ts.append_value(r.ts.timestamp_micros());
            hub.append_value(&self.hub);
            comp.append_value(r.component);
            pass.append_value(r.pass);
            action.append_value(d.action.label());
            reason.append_value(d.reason.label());
            user.append_value(&d.user);
            server.append_option(d.server.as_deref());
            profile.append_option(d.profile.as_deref());
            last.append_option(micros(d.last_activity));
            source.append_option((d.last_activity.is_some()).then(|| d.activity_source.label()));
            started.append_option(micros(d.started));
            limit.append_option(d.limit.map(|l| l.as_secs_f64()));
            idle.append_option(
                d.last_activity
                    .map(|l| (r.ts - l).num_milliseconds() as f64 / 1000.0),
            );
            deadline.append_option(micros(d.deadline));
            let is_cull = matches!(d.action, Action::Cull | Action::CullUser);
            late.append_option(
                d.deadline
                    .filter(|_| is_cull)
                    .map(|dl| (r.ts - dl).num_milliseconds() as f64 / 1000.0),
            );
            dry.append_value(r.dry_run);
            outcome.append_option(r.outcome);
            message.append_option(r.message.as_deref());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(ts.finish()),
            Arc::new(hub.finish()),
            Arc::new(comp.finish()),
            Arc::new(pass.finish()),
            Arc::new(action.finish()),
            Arc::new(reason.finish()),
            Arc::new(user.finish()),
            Arc::new(server.finish()),
            Arc::new(profile.finish()),
            Arc::new(last.finish()),
            Arc::new(source.finish()),
            Arc::new(started.finish()),
            Arc::new(limit.finish()),
            Arc::new(idle.finish()),
            Arc::new(deadline.finish()),
            Arc::new(late.finish()),
            Arc::new(dry.finish()),
            Arc::new(outcome.finish()),
            Arc::new(message.finish()),
        ];
        RecordBatch::try_new(schema(), cols)
    }
}
