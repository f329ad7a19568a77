//! The `activity` table's rows in the making: heartbeats and activity times gathered per user
//! and group, then written one row per (user, group) with one list per field.
//!
//! The parser threads leave a batch's heartbeats flat ([`Beats`]: a few numbers and two short
//! strings each, in one arena); the commit's writer sorts them into their users' groups
//! ([`Activity::absorb`]): a hash lookup per report, no allocation but a user's first.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, TimestampMicrosecondType, TimestampMillisecondType};
use arrow::error::ArrowError;
use rustc_hash::FxHashMap;

use super::activity_rows::ActivityRows;
use super::heartbeat::{Meta, activity_schema, utc_ms};

/// A [`Meta`] borrowed from a record or a batch.
#[derive(Clone, Copy, Debug)]
pub struct MetaRef<'a> {
    pub logger: &'a str,
    pub module: &'a str,
    pub source_file: &'a str,
    pub source_fp: &'a str,
}

impl MetaRef<'_> {
    fn is(&self, m: &Meta) -> bool {
        m.logger == self.logger
            && m.module == self.module
            && m.source_file == self.source_file
            && m.source_fp == self.source_fp
    }

    fn owned(self) -> Meta {
        Meta {
            logger: self.logger.into(),
            module: self.module.into(),
            source_file: self.source_file.into(),
            source_fp: self.source_fp.into(),
        }
    }
}

/// One folded report.
#[derive(Clone, Copy, Debug)]
pub struct Beat<'a> {
    /// µs, a whole millisecond ([`super::heartbeat::fold_row`]).
    pub ts: i64,
    pub status: i32,
    /// Hundredths of a millisecond.
    pub duration_cs: i32,
    pub client_ip: &'a str,
    pub offset: i64,
}

/// A heartbeat of a [`Beats`]: its strings are spans of the arena.
#[derive(Clone, Copy, Debug)]
struct BeatRow {
    meta: u32,
    user: (u32, u32),
    ip: (u32, u32),
    ts: i64,
    offset: i64,
    status: i32,
    duration_cs: i32,
}

/// A batch's heartbeats, flat, in the order they came.
#[derive(Clone, Debug, Default)]
pub struct Beats {
    metas: Vec<Meta>,
    arena: String,
    rows: Vec<BeatRow>,
}

impl Beats {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn span(&mut self, s: &str) -> (u32, u32) {
        let at = self.arena.len() as u32;
        self.arena.push_str(s);
        (at, s.len() as u32)
    }

    fn text(&self, (at, len): (u32, u32)) -> &str {
        &self.arena[at as usize..(at + len) as usize]
    }

    pub fn push(&mut self, user: &str, meta: MetaRef<'_>, b: Beat<'_>) {
        // A batch is one source's, and its logger and module rarely change: the last first.
        let meta = match self.metas.iter().rposition(|m| meta.is(m)) {
            Some(i) => i,
            None => {
                self.metas.push(meta.owned());
                self.metas.len() - 1
            }
        } as u32;
        let (user, ip) = (self.span(user), self.span(b.client_ip));
        self.rows.push(BeatRow {
            meta,
            user,
            ip,
            ts: b.ts,
            offset: b.offset,
            status: b.status,
            duration_cs: b.duration_cs,
        });
    }
}

/// One user's activity times of one kind: folded reports (`meta` set, every list aligned with
/// `times`) or the times of reports kept as `events` rows (`meta` unset, `times` only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Index into [`Activity`]'s metas.
    pub meta: Option<u32>,
    pub times: Vec<i64>,
    pub statuses: Vec<i32>,
    pub durations_cs: Vec<i32>,
    pub offsets: Vec<i64>,
    /// Index into `ip_names` per report (a server keeps its address for its life).
    pub ips: Vec<u32>,
    pub ip_names: Vec<String>,
}

impl Group {
    fn push_ip(&mut self, ip: &str) {
        let at = match self.ip_names.iter().rposition(|n| n == ip) {
            Some(i) => i,
            None => {
                self.ip_names.push(ip.to_string());
                self.ip_names.len() - 1
            }
        };
        self.ips.push(at as u32);
    }

    fn push(&mut self, b: Beat<'_>) {
        self.times.push(b.ts);
        self.statuses.push(b.status);
        self.durations_cs.push(b.duration_cs);
        self.offsets.push(b.offset);
        self.push_ip(b.client_ip);
    }

    /// The order of its reports by (time, offset).
    fn order(&self) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.times.len()).collect();
        if self.meta.is_some() {
            idx.sort_unstable_by_key(|&i| (self.times[i], self.offsets[i]));
        } else {
            idx.sort_unstable_by_key(|&i| self.times[i]);
        }
        idx
    }
}

/// A day's activity in the making: user → their groups (a handful: one per logger, module and
/// source, and one of bare times).
#[derive(Debug, Clone, Default)]
pub struct Activity {
    metas: Vec<Meta>,
    users: FxHashMap<String, Vec<Group>>,
}

impl Activity {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The shared fields of a group.
    pub fn meta(&self, g: &Group) -> Option<&Meta> {
        g.meta.map(|i| &self.metas[i as usize])
    }

    fn meta_id(&mut self, m: MetaRef<'_>) -> u32 {
        match self.metas.iter().position(|x| m.is(x)) {
            Some(i) => i as u32,
            None => {
                self.metas.push(m.owned());
                (self.metas.len() - 1) as u32
            }
        }
    }

    fn group(&mut self, user: &str, meta: Option<u32>) -> &mut Group {
        if !self.users.contains_key(user) {
            self.users.insert(user.to_string(), Vec::new());
        }
        let groups = self.users.get_mut(user).expect("inserted above");
        let at = match groups.iter().position(|g| g.meta == meta) {
            Some(i) => i,
            None => {
                groups.push(Group {
                    meta,
                    ..Group::default()
                });
                groups.len() - 1
            }
        };
        &mut groups[at]
    }

    /// Add a folded report of `user`.
    pub fn add_beat(&mut self, user: &str, meta: MetaRef<'_>, b: Beat<'_>) {
        let id = self.meta_id(meta);
        self.group(user, Some(id)).push(b);
    }

    /// Add the time of a report of `user` kept as an `events` row.
    pub fn add_time(&mut self, user: &str, ts: i64) {
        self.group(user, None).times.push(ts);
    }

    /// Sort a batch's heartbeats into their users' groups.
    pub fn absorb(&mut self, beats: &Beats) {
        let ids: Vec<u32> = beats
            .metas
            .iter()
            .map(|m| {
                self.meta_id(MetaRef {
                    logger: &m.logger,
                    module: &m.module,
                    source_file: &m.source_file,
                    source_fp: &m.source_fp,
                })
            })
            .collect();
        for r in &beats.rows {
            let beat = Beat {
                ts: r.ts,
                status: r.status,
                duration_cs: r.duration_cs,
                client_ip: beats.text(r.ip),
                offset: r.offset,
            };
            let id = ids[r.meta as usize];
            self.group(beats.text(r.user), Some(id)).push(beat);
        }
    }

    /// The `activity` rows: one per user and group, users by name (so a part's bytes do not
    /// depend on hashing), groups by their shared fields, reports by time.
    ///
    /// `times` holds milliseconds. A folded report's time is one ([`super::heartbeat::fold_row`]);
    /// a bare time that is not (a report kept as an `events` row, its prefix printed finer) gets
    /// a row of its own after its user's bare row, where `first` and `last` hold it exactly.
    pub fn to_batch(&self) -> Result<RecordBatch, ArrowError> {
        let mut users: Vec<_> = self.users.iter().collect();
        users.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Columns::default();
        for (u, groups) in users {
            let mut groups: Vec<&Group> = groups.iter().filter(|g| !g.times.is_empty()).collect();
            groups.sort_by(|a, b| self.meta(a).cmp(&self.meta(b)));
            for g in groups {
                if g.meta.is_some() || g.times.iter().all(|t| t % 1000 == 0) {
                    out.row(u, g, self.meta(g));
                    continue;
                }
                let (whole, mut finer): (Vec<i64>, Vec<i64>) =
                    g.times.iter().partition(|&&t| t % 1000 == 0);
                finer.sort_unstable();
                let bare = |times| Group {
                    times,
                    ..Group::default()
                };
                if !whole.is_empty() {
                    out.row(u, &bare(whole), None);
                }
                for t in finer {
                    out.row(u, &bare(vec![t]), None);
                }
            }
        }
        out.finish()
    }

    /// Add `activity` rows read back from parts (compaction regroups a day's rows).
    pub fn fold_batch(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        let rows = ActivityRows::of(batch, "durations_cs")?;
        let stamp = |n: &str| -> Result<_, ArrowError> {
            batch
                .column(batch.schema_ref().index_of(n)?)
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or_else(|| ArrowError::SchemaError(format!("activity.{n}: not µs")))
        };
        let (first, last) = (stamp("first")?, stamp("last")?);
        for i in 0..rows.len() {
            let t = rows.times.value(i);
            let ms = t
                .as_primitive_opt::<TimestampMillisecondType>()
                .ok_or_else(|| ArrowError::SchemaError("activity.times: not ms".into()))?;
            let t = us_times(ms.values(), first.value(i), last.value(i));
            let user = rows.user.value(i);
            match rows.reports(i)? {
                None => t.iter().for_each(|&ts| self.add_time(user, ts)),
                Some((meta, reports)) => {
                    for (&ts, r) in t.iter().zip(reports) {
                        let b = Beat {
                            ts,
                            status: r.status,
                            duration_cs: r.duration,
                            client_ip: r.client_ip,
                            offset: r.offset,
                        };
                        self.add_beat(user, meta, b);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A row's times in µs: its list of milliseconds, with the ends read from `first` and `last`
/// (exact: see [`Activity::to_batch`]).
pub fn us_times(ms: &[i64], first: i64, last: i64) -> Vec<i64> {
    let mut out: Vec<i64> = ms.iter().map(|&t| t * 1000).collect();
    if let Some(t) = out.first_mut() {
        *t = first;
    }
    if let (Some(t), true) = (out.last_mut(), ms.len() > 1) {
        *t = last;
    }
    out
}

fn list_field(item: DataType) -> Arc<Field> {
    Arc::new(Field::new_list_field(item, false))
}

/// The columns of `activity` rows being built.
struct Columns {
    users: StringBuilder,
    first: TimestampMicrosecondBuilder,
    last: TimestampMicrosecondBuilder,
    count: Int64Builder,
    times: ListBuilder<TimestampMillisecondBuilder>,
    meta: [StringBuilder; 4],
    statuses: ListBuilder<Int32Builder>,
    ips: ListBuilder<StringBuilder>,
    durs: ListBuilder<Int32Builder>,
    offsets: ListBuilder<Int64Builder>,
}

impl Default for Columns {
    fn default() -> Self {
        Columns {
            users: StringBuilder::new(),
            first: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            last: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            count: Int64Builder::new(),
            times: ListBuilder::new(TimestampMillisecondBuilder::new().with_timezone("UTC"))
                .with_field(list_field(utc_ms())),
            meta: std::array::from_fn(|_| StringBuilder::new()),
            statuses: ListBuilder::new(Int32Builder::new()).with_field(list_field(DataType::Int32)),
            ips: ListBuilder::new(StringBuilder::new()).with_field(list_field(DataType::Utf8)),
            durs: ListBuilder::new(Int32Builder::new()).with_field(list_field(DataType::Int32)),
            offsets: ListBuilder::new(Int64Builder::new()).with_field(list_field(DataType::Int64)),
        }
    }
}

impl Columns {
    fn row(&mut self, user: &str, g: &Group, meta: Option<&Meta>) {
        let order = g.order();
        let (lo, hi) = (g.times[order[0]], g.times[order[order.len() - 1]]);
        self.users.append_value(user);
        self.first.append_value(lo);
        self.last.append_value(hi);
        self.count.append_value(order.len() as i64);
        // Milliseconds: a time finer than that has a row of its own (`to_batch`), exact in
        // `first` and `last`.
        self.times
            .values()
            .extend(order.iter().map(|&i| Some(g.times[i].div_euclid(1000))));
        self.times.append(true);
        let fields = meta.map(|m| {
            [
                m.logger.as_str(),
                m.module.as_str(),
                m.source_file.as_str(),
                m.source_fp.as_str(),
            ]
        });
        for (b, v) in self
            .meta
            .iter_mut()
            .zip(fields.map_or([None; 4], |f| f.map(Some)))
        {
            b.append_option(v);
        }
        let folded = meta.is_some();
        if folded {
            let at = |v: &[i32]| order.iter().map(|&i| Some(v[i])).collect::<Vec<_>>();
            self.statuses.values().extend(at(&g.statuses));
            self.durs.values().extend(at(&g.durations_cs));
            self.offsets
                .values()
                .extend(order.iter().map(|&i| Some(g.offsets[i])));
            for &i in &order {
                self.ips
                    .values()
                    .append_value(&g.ip_names[g.ips[i] as usize]);
            }
        }
        self.statuses.append(folded);
        self.durs.append(folded);
        self.offsets.append(folded);
        self.ips.append(folded);
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let [logger, module, file, fp] = self.meta.map(|mut b| Arc::new(b.finish()) as ArrayRef);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.users.finish()),
            Arc::new(self.first.finish()),
            Arc::new(self.last.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.times.finish()),
            logger,
            module,
            file,
            fp,
            Arc::new(self.statuses.finish()),
            Arc::new(self.ips.finish()),
            Arc::new(self.durs.finish()),
            Arc::new(self.offsets.finish()),
        ];
        RecordBatch::try_new(activity_schema(), cols)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(module: &str) -> MetaRef<'_> {
        MetaRef {
            logger: "JupyterHub",
            module,
            source_file: "hub.log",
            source_fp: "00ff",
        }
    }

    /// Heartbeats through a batch's flat [`Beats`], the writer's groups, the rows and back.
    #[test]
    fn groups_round_trip_through_their_rows_sorted_by_time() {
        let mut beats = Beats::default();
        for (ts, ip, off) in [
            (30_000, "10.0.0.2", 300),
            (10_000, "10.0.0.1", 100),
            (20_000, "10.0.0.1", 200),
        ] {
            let b = Beat {
                ts,
                status: 200,
                duration_cs: 741,
                client_ip: ip,
                offset: off,
            };
            beats.push("ana", meta("log:192"), b);
        }
        let bo = Beat {
            ts: 5_000,
            status: 204,
            duration_cs: 1,
            client_ip: "::1",
            offset: 7,
        };
        beats.push("bo", meta("log:189"), bo);
        let mut a = Activity::default();
        a.absorb(&beats);
        // Bare times: whole milliseconds listed together, a finer one (µs) in a row of its own.
        for t in [25_000, 15_000, 17_123_456, 16_000_001] {
            a.add_time("ana", t);
        }
        let b = a.to_batch().unwrap();
        assert_eq!(
            b.num_rows(),
            5,
            "ana's bare times are a row of their own, and each finer one another"
        );
        let mut back = Activity::default();
        back.fold_batch(&b).unwrap();
        let ana = &back.users["ana"];
        let folded = ana.iter().find(|g| g.meta.is_some()).unwrap();
        assert_eq!(folded.times, [10_000, 20_000, 30_000]);
        assert_eq!(folded.offsets, [100, 200, 300]);
        let ips: Vec<_> = folded
            .ips
            .iter()
            .map(|&i| &folded.ip_names[i as usize])
            .collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.1", "10.0.0.2"]);
        let mut bare = ana.iter().find(|g| g.meta.is_none()).unwrap().times.clone();
        bare.sort_unstable();
        assert_eq!(
            bare,
            [15_000, 25_000, 16_000_001, 17_123_456],
            "exact, in µs"
        );
        let bo = &back.users["bo"][0];
        assert_eq!(bo.statuses, [204]);
        assert_eq!(back.meta(bo).unwrap().module, "log:189");
        // Rows read back and written again are the same rows.
        assert_eq!(back.to_batch().unwrap(), b);
    }
}
