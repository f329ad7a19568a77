//! The lake table `decisions`: one row per decision worth keeping (every cull, warning and skip,
//! every admission answer, quota violation and placeholder change), Hive-partitioned like
//! `events`:
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

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use chrono::{DateTime, Utc};

use crate::lake::LakeLocation;
use crate::lake::tables::SideRoot;
use crate::lake::tables::decisions::{DECISIONS, schema};

/// Which loop decided: the `component` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Culler,
    Admission,
    Quota,
    Capacity,
}

impl Component {
    pub fn label(self) -> &'static str {
        match self {
            Component::Culler => "culler",
            Component::Admission => "admission",
            Component::Quota => "quota",
            Component::Capacity => "capacity",
        }
    }
}

/// What acting on a decision did: the `outcome` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The hub stopped the server (or deleted the user: [`Outcome::Deleted`]).
    Stopped,
    /// The hub accepted the stop and is still stopping it (202).
    Stopping,
    /// Already gone when the stop was sent (404).
    Gone,
    /// The hub refused for now (429); tried again next pass.
    Throttled,
    Deleted,
    /// The placeholder StatefulSet's scale was set.
    Scaled,
    /// Dry run: what would have been done was only recorded.
    DryRun,
    Error,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Stopped => "stopped",
            Outcome::Stopping => "stopping",
            Outcome::Gone => "gone",
            Outcome::Throttled => "throttled",
            Outcome::Deleted => "deleted",
            Outcome::Scaled => "scaled",
            Outcome::DryRun => "dry_run",
            Outcome::Error => "error",
        }
    }

    /// The outcome of a stop request (`user_deleted`: it was `DELETE /users/{name}`), with the
    /// error's text when it failed.
    pub fn of_stop(
        r: &Result<crate::hub::StopOutcome, crate::hub::HubError>,
        user_deleted: bool,
    ) -> (Outcome, Option<String>) {
        use crate::hub::StopOutcome;
        match r {
            Ok(StopOutcome::Stopped) if user_deleted => (Outcome::Deleted, None),
            Ok(StopOutcome::Stopped) => (Outcome::Stopped, None),
            Ok(StopOutcome::Stopping) => (Outcome::Stopping, None),
            Ok(StopOutcome::NotFound { .. }) => (Outcome::Gone, None),
            Ok(StopOutcome::Throttled { .. }) => (Outcome::Throttled, None),
            Err(e) => (Outcome::Error, Some(e.to_string())),
        }
    }

    /// The server is stopped or going away.
    pub fn stopped(self) -> bool {
        matches!(
            self,
            Outcome::Stopped | Outcome::Stopping | Outcome::Gone | Outcome::Deleted
        )
    }
}

/// The culler's evidence for a decision (other loops have none): the `last_activity`,
/// `activity_source`, `started`, `limit_s`, `deadline` and `lateness_s` columns.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    pub last_activity: Option<DateTime<Utc>>,
    pub activity_source: Option<&'static str>,
    pub started: Option<DateTime<Utc>>,
    pub limit: Option<std::time::Duration>,
    pub deadline: Option<DateTime<Utc>>,
    /// A stop that was due at `deadline` (its lateness is recorded).
    pub due: bool,
}

/// A decision as the `decisions` table records it. Every loop has its own decision type (the
/// culler's, the admission's, the quota loop's, the placeholder sets'); each says here what its
/// row holds.
pub trait Decided {
    const COMPONENT: Component;
    fn action(&self) -> &'static str;
    fn reason(&self) -> &'static str;
    /// Empty for a decision about no user (a placeholder set).
    fn user(&self) -> &str;
    fn server(&self) -> Option<&str>;
    fn profile(&self) -> Option<&str>;
    fn evidence(&self) -> Evidence {
        Evidence::default()
    }
}

/// One row: a decision plus what acting on it did.
#[derive(Debug, Clone)]
pub struct Row<D> {
    pub ts: DateTime<Utc>,
    /// `reconcile`, `deadline`, `once`, `admission`.
    pub pass: &'static str,
    pub decision: D,
    pub dry_run: bool,
    /// `None` when nothing was done.
    pub outcome: Option<Outcome>,
    /// A human-readable note (the admission reason, an error).
    pub message: Option<String>,
}

/// Writes rows as parts of the `decisions` table under a lake root.
#[derive(Debug, Clone)]
pub struct DecisionSink {
    root: SideRoot,
    hub: String,
    seq: Arc<AtomicU64>,
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
    pub fn write<D: Decided>(&self, rows: &[Row<D>]) -> Result<(), String> {
        let mut by_day: std::collections::BTreeMap<String, Vec<&Row<D>>> = Default::default();
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

    fn write_part<D: Decided>(&self, dt: &str, rows: &[&Row<D>]) -> Result<(), String> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let batch = self
            .batch(rows)
            .map_err(|e| format!("decisions batch: {e}"))?;
        self.root.publish(dt, n, &batch).map_err(|e| e.to_string())
    }

    fn batch<D: Decided>(&self, rows: &[&Row<D>]) -> Result<RecordBatch, arrow::error::ArrowError> {
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
            let e = d.evidence();
            ts.append_value(r.ts.timestamp_micros());
            hub.append_value(&self.hub);
            comp.append_value(D::COMPONENT.label());
            pass.append_value(r.pass);
            action.append_value(d.action());
            reason.append_value(d.reason());
            user.append_value(d.user());
            server.append_option(d.server());
            profile.append_option(d.profile());
            last.append_option(micros(e.last_activity));
            source.append_option(e.last_activity.and(e.activity_source));
            started.append_option(micros(e.started));
            limit.append_option(e.limit.map(|l| l.as_secs_f64()));
            idle.append_option(
                e.last_activity
                    .map(|l| (r.ts - l).num_milliseconds() as f64 / 1000.0),
            );
            deadline.append_option(micros(e.deadline));
            late.append_option(
                e.deadline
                    .filter(|_| e.due)
                    .map(|dl| (r.ts - dl).num_milliseconds() as f64 / 1000.0),
            );
            dry.append_value(r.dry_run);
            outcome.append_option(r.outcome.map(Outcome::label));
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
