//! `activity` parts of format 2 read for `hubpulse migrate` ([`super::migrate`]): format 3 lists
//! times in milliseconds and durations in hundredths of a millisecond, where format 2 listed µs
//! for both.
//!
//! A format 2 heartbeat whose time is a whole millisecond (every heartbeat of a hub logging
//! with its default `%(msecs).03d` prefix) is folded again as it was, its duration divided by 10
//! (format 2 wrote `round(ms * 100) * 10` µs, so the division is exact). One whose time is
//! finer is not a format 3 heartbeat ([`super::heartbeat::fold_row`]): it becomes the `events`
//! row the format 2 view showed for it, built from the same fields by [`EventsBuilder`] (its
//! message rebuilds, so its `text` stays null), and its time is listed as a bare one. The times
//! of reports kept as `events` rows are listed again, exactly ([`Activity::to_batch`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::error::ArrowError;

use super::activity::{Activity, Beat, MetaRef};
use super::activity_rows::ActivityRows;
use super::batch::{EventsBuilder, Rows, SourceInfo};
use super::derived::ACTIVITY_ROUTE;
use crate::parse::prefix::{Family, Level};
use crate::parse::record::Record;

/// The column format 2 had and format 3 has not: what tells a format 2 `activity` part.
pub const FORMAT_2_DURATIONS: &str = "durations_us";

/// What a day's format 2 `activity` rows become.
pub struct Converted {
    /// The heartbeats and bare times, as format 3 groups them.
    pub activity: Activity,
    /// Heartbeats whose time is finer than a millisecond, as the `events` rows they now are
    /// (one [`Rows`] per source).
    pub rows: Vec<Rows>,
}

/// One folded heartbeat of format 2, borrowed from its batch.
struct Old<'a> {
    user: &'a str,
    meta: MetaRef<'a>,
    ts: i64,
    status: i32,
    duration_us: i32,
    client_ip: &'a str,
    offset: i64,
}

/// Reads format 2 `activity` batches of one day of `hub`.
pub struct Converter {
    hub: String,
    activity: Activity,
    /// (source_file, source_fp) → the `events` rows of its finer heartbeats.
    rows: BTreeMap<(String, String), EventsBuilder>,
}

impl Converter {
    pub fn new(hub: &str) -> Self {
        Converter {
            hub: hub.to_string(),
            activity: Activity::default(),
            rows: BTreeMap::new(),
        }
    }

    /// Add the rows of a format 2 `activity` batch.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let rows = ActivityRows::of(batch, FORMAT_2_DURATIONS)?;
        for i in 0..rows.len() {
            let t = rows.times.value(i);
            let t = t
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| ArrowError::SchemaError("activity.times: not µs".into()))?;
            let user = rows.user.value(i);
            match rows.reports(i)? {
                None => t
                    .values()
                    .iter()
                    .for_each(|&ts| self.activity.add_time(user, ts)),
                Some((meta, reports)) => {
                    for (&ts, r) in t.values().iter().zip(reports) {
                        self.beat(Old {
                            user,
                            meta,
                            ts,
                            status: r.status,
                            duration_us: r.duration,
                            client_ip: r.client_ip,
                            offset: r.offset,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn beat(&mut self, b: Old<'_>) {
        if b.ts.rem_euclid(1000) == 0 {
            let beat = Beat {
                ts: b.ts,
                status: b.status,
                duration_cs: b.duration_us / 10,
                client_ip: b.client_ip,
                offset: b.offset,
            };
            self.activity.add_beat(b.user, b.meta, beat);
            return;
        }
        let key = (b.meta.source_file.to_string(), b.meta.source_fp.to_string());
        let hub = &self.hub;
        let builder = self.rows.entry(key).or_insert_with(|| {
            EventsBuilder::new(Arc::new(SourceInfo {
                hub: hub.clone(),
                file: b.meta.source_file.to_string(),
                fp: b.meta.source_fp.to_string(),
            }))
        });
        let (cs, path) = (
            b.duration_us / 10,
            format!("/hub/api/users/{}/activity", b.user),
        );
        let message = format!(
            "{} POST {path} ({}@{}) {}.{:02}ms",
            b.status,
            b.user,
            b.client_ip,
            cs / 100,
            cs % 100
        );
        let mut r = Record::new(crate::parse::KIND_REQUEST, Family::Hub, &message);
        r.ts = Some(b.ts);
        r.level = Some(Level::Info);
        r.logger = Some(b.meta.logger);
        r.module = Some(b.meta.module);
        r.user = Some(b.user.into());
        r.actor = Some(b.user);
        r.method = Some("POST");
        r.status = u16::try_from(b.status).ok();
        r.route = Some(ACTIVITY_ROUTE);
        r.path = Some(&path);
        r.client_ip = Some(b.client_ip);
        r.duration_ms = Some(f64::from(cs) / 100.0);
        r.offset = u64::try_from(b.offset).unwrap_or_default();
        builder.append(&r);
    }

    pub fn finish(self) -> Result<Converted, ArrowError> {
        let mut rows = Vec::with_capacity(self.rows.len());
        for (_, mut b) in self.rows {
            rows.push(b.finish()?);
        }
        Ok(Converted {
            activity: self.activity,
            rows,
        })
    }
}
