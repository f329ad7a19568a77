//! Activity heartbeats, stored once: in `activity`, not as `events` rows.
//!
//! A running single-user server reports its activity every `JUPYTERHUB_ACTIVITY_INTERVAL`
//! (300 s by default) whether or not its user did anything (`jupyterhub/singleuser/extension.py`
//! `notify_activity` and `keep_activity_updated` post unchanged times too), and the hub logs
//! each report as a request line (`jupyterhub/log.py` `log_request`):
//!
//! ```text
//! [I 2026-11-02 09:00:37.023 JupyterHub log:192] 200 POST /hub/api/users/ana/activity (ana@10.244.1.7) 7.41ms
//! ```
//!
//! They are most of a hub's log. Such a row is fully described by its user, time, status,
//! client address, duration and byte offset, with the logger, module and source shared by all
//! of a user's reports: `activity` keeps exactly these, one list per field and one row per user
//! and shared part ([`Group`]), and the `events` view unnests them back into rows. Only a report
//! whose row is exactly that rebuild is folded ([`fold_row`]): any other (a user name that
//! needed percent-encoding, another level, a flag, a scrubbed or unusual line) stays an
//! `events` row, and only its time is listed here (a group without details), as before.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use rustc_hash::FxHashMap;

use super::rebuild::RequestFields;

/// What the folded reports of one group share (the rest of their rows is fixed: see
/// [`fold_row`] and the `events` view in `query`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Meta {
    pub logger: String,
    pub module: String,
    pub source_file: String,
    pub source_fp: String,
}

/// One user's activity times of one kind: folded reports (`meta` set, every list aligned with
/// `times`) or the times of reports kept as `events` rows (`meta` unset, `times` only).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    pub meta: Option<Meta>,
    pub times: Vec<i64>,
    pub statuses: Vec<i32>,
    pub durations_us: Vec<i32>,
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

    /// Append `other`'s reports (same user, same `meta`).
    fn extend(&mut self, other: &Group) {
        self.times.extend_from_slice(&other.times);
        if self.meta.is_some() {
            self.statuses.extend_from_slice(&other.statuses);
            self.durations_us.extend_from_slice(&other.durations_us);
            self.offsets.extend_from_slice(&other.offsets);
            for &i in &other.ips {
                self.push_ip(&other.ip_names[i as usize]);
            }
        }
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

/// user → their groups (a handful: one per logger/module/source, and one of bare times).
pub type Activity = FxHashMap<String, Vec<Group>>;

fn group<'a>(activity: &'a mut Activity, user: &str, meta: Option<MetaRef<'_>>) -> &'a mut Group {
    if !activity.contains_key(user) {
        activity.insert(user.to_string(), Vec::new());
    }
    let groups = activity.get_mut(user).expect("inserted above");
    let at = groups.iter().position(|g| match (&g.meta, &meta) {
        (None, None) => true,
        (Some(m), Some(r)) => r.is(m),
        _ => false,
    });
    let at = at.unwrap_or_else(|| {
        groups.push(Group {
            meta: meta.map(MetaRef::owned),
            ..Group::default()
        });
        groups.len() - 1
    });
    &mut groups[at]
}

/// A [`Meta`] borrowed from a batch.
#[derive(Clone, Copy)]
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
pub struct Beat<'a> {
    pub ts: i64,
    pub status: i32,
    pub duration_us: i32,
    pub client_ip: &'a str,
    pub offset: i64,
}

/// Add a folded report of `user`.
pub fn add_beat(activity: &mut Activity, user: &str, meta: MetaRef<'_>, b: Beat<'_>) {
    let g = group(activity, user, Some(meta));
    g.times.push(b.ts);
    g.statuses.push(b.status);
    g.durations_us.push(b.duration_us);
    g.offsets.push(b.offset);
    g.push_ip(b.client_ip);
}

/// Add the time of a report of `user` kept as an `events` row.
pub fn add_time(activity: &mut Activity, user: &str, ts: i64) {
    group(activity, user, None).times.push(ts);
}

/// The path of `user`'s activity report, as the hub's router matches it unescaped
/// (`apihandlers/users.py` `ActivityAPIHandler`, route `/users/([^/]+)/activity`).
pub fn is_activity_path(path: &str, user: &str) -> bool {
    path.strip_prefix("/hub/api/users/")
        .and_then(|p| p.strip_prefix(user))
        .is_some_and(|p| p == "/activity")
}

/// A report's row as the `events` view rebuilds it, checked field by field: the duration in µs
/// when the row is exactly that rebuild, `None` when it must stay an `events` row.
///
/// Fixed fields: `source` hub, `level` INFO, `kind` request, `actor` = `user`, `method` POST,
/// `route` the activity route, `path` = `/hub/api/users/<user>/activity` (so a name that needed
/// escaping is not folded), one line, no flags, and nothing in `server_name`, `target`,
/// `service`, `exit_code`, `count`, `attrs`; the message is `log_request`'s line of them.
pub struct Candidate<'a> {
    pub source: &'a str,
    pub level: Option<&'a str>,
    pub user: &'a str,
    pub actor: Option<&'a str>,
    pub path: Option<&'a str>,
    pub status: i32,
    pub client_ip: Option<&'a str>,
    pub duration_ms: Option<f64>,
    pub lines: i32,
    pub message: &'a str,
    /// `server_name`, `target`, `service`, `exit_code`, `count`, `attrs`, `flags` all null.
    pub rest_empty: bool,
}

pub fn fold_row(c: &Candidate<'_>) -> Option<i32> {
    let (Some(path), Some(ip), Some(ms)) = (c.path, c.client_ip, c.duration_ms) else {
        return None;
    };
    let fixed = c.source == "hub"
        && c.level == Some("INFO")
        && c.actor == Some(c.user)
        && c.lines == 1
        && c.rest_empty
        && is_activity_path(path, c.user);
    if !fixed {
        return None;
    }
    let us = (ms * 100.0).round() * 10.0;
    if !(0.0..i32::MAX as f64).contains(&us) {
        return None;
    }
    let req = RequestFields {
        status: c.status,
        method: "POST",
        path,
        target: None,
        actor: Some(c.user),
        client_ip: ip,
        duration_ms: ms,
    };
    req.rebuilds(c.message).then_some(us as i32)
}

/// [`fold_row`] on a parsed record, before it becomes a row (the parser threads apply it as
/// they build batches, [`super::batch`]; [`super::derived::split`] applies it to whole rows):
/// the same fields, the same rule. Reports with a time in the future or far out of order
/// (flagged) are never folded, as they never count as activity.
pub fn fold_record(r: &crate::parse::record::Record<'_>) -> Option<i32> {
    use crate::parse::prefix::{Family, Level};
    let (Some(status), Some(user), Some(_)) = (r.status, r.user.as_deref(), r.ts) else {
        return None;
    };
    let status = i32::from(status);
    let activity = super::derived::is_activity(r.kind, r.method, Some(status), r.route);
    if !activity || r.source != Family::Hub || r.level != Some(Level::Info) {
        return None;
    }
    let rest_empty = r.server_name.is_none()
        && r.target.is_none()
        && r.service.is_none()
        && r.attrs.is_empty()
        && r.flags.is_empty()
        && r.exit_code.is_none()
        && r.count.is_none()
        && r.logger.is_some()
        && r.module.is_some();
    fold_row(&Candidate {
        source: "hub",
        level: Some("INFO"),
        user,
        actor: r.actor,
        path: r.path,
        status,
        client_ip: r.client_ip,
        duration_ms: r.duration_ms,
        lines: i32::try_from(r.lines).unwrap_or(i32::MAX),
        message: r.message,
        rest_empty,
    })
}

/// Move `from`'s groups into `into` (a batch's heartbeats into a commit's): per group, not per
/// report.
pub fn merge(into: &mut Activity, from: Activity) {
    for (user, groups) in from {
        match into.get_mut(&user) {
            None => {
                into.insert(user, groups);
            }
            Some(mine) => {
                for g in groups {
                    match mine.iter_mut().find(|h| h.meta == g.meta) {
                        Some(h) => h.extend(&g),
                        None => mine.push(g),
                    }
                }
            }
        }
    }
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn list(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, false)))
}

/// `activity`: per user, day and group (until compaction, per commit too), the times of their
/// activity reports, and for folded reports (`offsets` not null) every other field of their rows.
pub fn activity_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("first", utc(), false),
        Field::new("last", utc(), false),
        Field::new("count", DataType::Int64, false),
        Field::new("times", list(utc()), false),
        Field::new("logger", DataType::Utf8, true),
        Field::new("module", DataType::Utf8, true),
        Field::new("source_file", DataType::Utf8, true),
        Field::new("source_fp", DataType::Utf8, true),
        Field::new("statuses", list(DataType::Int32), true),
        Field::new("client_ips", list(DataType::Utf8), true),
        Field::new("durations_us", list(DataType::Int32), true),
        Field::new("offsets", list(DataType::Int64), true),
    ]))
}

/// Columns of `activity` written with a dictionary.
pub const DICTIONARY_COLUMNS: &[&str] = &[
    "user",
    "logger",
    "module",
    "source_file",
    "source_fp",
    "client_ips.list.item",
];

/// The `activity` rows of one day: one per user and group, users in the order given, groups
/// by their shared fields, reports by time.
pub fn activity_batch<'a>(
    by_user: impl Iterator<Item = (&'a String, &'a Vec<Group>)>,
) -> Result<RecordBatch, ArrowError> {
    let mut users = StringBuilder::new();
    let mut first = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut last = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut count = Int64Builder::new();
    let mut times = ListBuilder::new(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
        .with_field(Arc::new(Field::new_list_field(utc(), false)));
    let mut meta: [StringBuilder; 4] = std::array::from_fn(|_| StringBuilder::new());
    let mut statuses = ListBuilder::new(Int32Builder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Int32, false)));
    let mut ips = ListBuilder::new(StringBuilder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Utf8, false)));
    let mut durs = ListBuilder::new(Int32Builder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Int32, false)));
    let mut offsets = ListBuilder::new(Int64Builder::new())
        .with_field(Arc::new(Field::new_list_field(DataType::Int64, false)));
    for (u, groups) in by_user {
        let mut groups: Vec<&Group> = groups.iter().filter(|g| !g.times.is_empty()).collect();
        groups.sort_by(|a, b| a.meta.cmp(&b.meta));
        for g in groups {
            let order = g.order();
            let (lo, hi) = (g.times[order[0]], g.times[order[order.len() - 1]]);
            users.append_value(u);
            first.append_value(lo);
            last.append_value(hi);
            count.append_value(order.len() as i64);
            times
                .values()
                .extend(order.iter().map(|&i| Some(g.times[i])));
            times.append(true);
            let fields = g.meta.as_ref().map(|m| {
                [
                    m.logger.as_str(),
                    m.module.as_str(),
                    &m.source_file,
                    &m.source_fp,
                ]
            });
            for (b, v) in meta
                .iter_mut()
                .zip(fields.map_or([None; 4], |f| f.map(Some)))
            {
                b.append_option(v);
            }
            let folded = g.meta.is_some();
            if folded {
                statuses
                    .values()
                    .extend(order.iter().map(|&i| Some(g.statuses[i])));
                durs.values()
                    .extend(order.iter().map(|&i| Some(g.durations_us[i])));
                offsets
                    .values()
                    .extend(order.iter().map(|&i| Some(g.offsets[i])));
                for &i in &order {
                    ips.values().append_value(&g.ip_names[g.ips[i] as usize]);
                }
            }
            statuses.append(folded);
            durs.append(folded);
            offsets.append(folded);
            ips.append(folded);
        }
    }
    let [logger, module, file, fp] = meta.map(|mut b| Arc::new(b.finish()) as ArrayRef);
    let cols: Vec<ArrayRef> = vec![
        Arc::new(users.finish()),
        Arc::new(first.finish()),
        Arc::new(last.finish()),
        Arc::new(count.finish()),
        Arc::new(times.finish()),
        logger,
        module,
        file,
        fp,
        Arc::new(statuses.finish()),
        Arc::new(ips.finish()),
        Arc::new(durs.finish()),
        Arc::new(offsets.finish()),
    ];
    RecordBatch::try_new(activity_schema(), cols)
}

/// Fold `activity` rows read back from parts into `into` (compaction regroups a day's rows).
pub fn fold_activity(batch: &RecordBatch, into: &mut Activity) -> Result<(), ArrowError> {
    let s = batch.schema();
    let col = |n: &str| s.index_of(n).map(|i| batch.column(i));
    let strs = |n: &str| -> Result<_, ArrowError> {
        col(n)?
            .as_string_opt::<i32>()
            .ok_or_else(|| ArrowError::SchemaError(format!("activity.{n}: not Utf8")))
    };
    let user = strs("user")?;
    let [logger, module, file, fp] = [
        strs("logger")?,
        strs("module")?,
        strs("source_file")?,
        strs("source_fp")?,
    ];
    let times = col("times")?.as_list::<i32>();
    let (statuses, ips, durs, offsets) = (
        col("statuses")?.as_list::<i32>(),
        col("client_ips")?.as_list::<i32>(),
        col("durations_us")?.as_list::<i32>(),
        col("offsets")?.as_list::<i32>(),
    );
    for i in 0..batch.num_rows() {
        let t = times.value(i);
        let t = t.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        let mut g = Group {
            times: t.values().to_vec(),
            ..Group::default()
        };
        if offsets.is_valid(i) {
            g.meta = Some(Meta {
                logger: logger.value(i).into(),
                module: module.value(i).into(),
                source_file: file.value(i).into(),
                source_fp: fp.value(i).into(),
            });
            g.statuses = statuses
                .value(i)
                .as_primitive::<Int32Type>()
                .values()
                .to_vec();
            g.durations_us = durs.value(i).as_primitive::<Int32Type>().values().to_vec();
            g.offsets = offsets
                .value(i)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec();
            let ip = ips.value(i);
            for a in ip.as_string::<i32>().iter() {
                g.push_ip(a.unwrap_or_default());
            }
        }
        let groups = into.entry(user.value(i).to_string()).or_default();
        match groups.iter_mut().find(|h| h.meta == g.meta) {
            Some(h) => h.extend(&g),
            None => groups.push(g),
        }
    }
    Ok(())
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

    #[test]
    fn groups_round_trip_through_their_rows_sorted_by_time() {
        let mut a = Activity::default();
        for (ts, ip, off) in [
            (30, "10.0.0.2", 300),
            (10, "10.0.0.1", 100),
            (20, "10.0.0.1", 200),
        ] {
            let b = Beat {
                ts,
                status: 200,
                duration_us: 7410,
                client_ip: ip,
                offset: off,
            };
            add_beat(&mut a, "ana", meta("log:192"), b);
        }
        add_time(&mut a, "ana", 15);
        add_beat(
            &mut a,
            "bo",
            meta("log:189"),
            Beat {
                ts: 5,
                status: 204,
                duration_us: 10,
                client_ip: "::1",
                offset: 7,
            },
        );
        let mut users: Vec<_> = a.iter().collect();
        users.sort_by(|x, y| x.0.cmp(y.0));
        let b = activity_batch(users.into_iter()).unwrap();
        assert_eq!(b.num_rows(), 3, "ana's bare times are a row of their own");
        let mut back = Activity::default();
        fold_activity(&b, &mut back).unwrap();
        let ana = &back["ana"];
        let folded = ana.iter().find(|g| g.meta.is_some()).unwrap();
        assert_eq!(folded.times, [10, 20, 30]);
        assert_eq!(folded.offsets, [100, 200, 300]);
        let ips: Vec<_> = folded
            .ips
            .iter()
            .map(|&i| &folded.ip_names[i as usize])
            .collect();
        assert_eq!(ips, ["10.0.0.1", "10.0.0.1", "10.0.0.2"]);
        assert_eq!(ana.iter().find(|g| g.meta.is_none()).unwrap().times, [15]);
        assert_eq!(back["bo"][0].statuses, [204]);
    }

    fn cand<'a>(message: &'a str, path: &'a str, user: &'a str) -> Candidate<'a> {
        Candidate {
            source: "hub",
            level: Some("INFO"),
            user,
            actor: Some(user),
            path: Some(path),
            status: 200,
            client_ip: Some("10.244.1.7"),
            duration_ms: Some(7.41),
            lines: 1,
            message,
            rest_empty: true,
        }
    }

    /// `log_request` lines of activity posts fold; anything else stays a row.
    #[test]
    fn only_exact_reports_fold() {
        let line = "200 POST /hub/api/users/ana/activity (ana@10.244.1.7) 7.41ms";
        let c = cand(line, "/hub/api/users/ana/activity", "ana");
        assert_eq!(fold_row(&c), Some(7410));
        let escaped = "200 POST /hub/api/users/a%20b/activity (a b@10.244.1.7) 7.41ms";
        assert_eq!(
            fold_row(&cand(escaped, "/hub/api/users/a%20b/activity", "a b")),
            None
        );
        let warn = Candidate {
            level: Some("WARNING"),
            ..cand(line, "/hub/api/users/ana/activity", "ana")
        };
        assert_eq!(fold_row(&warn), None);
        let other = Candidate {
            actor: Some("admin"),
            ..cand(line, "/hub/api/users/ana/activity", "ana")
        };
        assert_eq!(fold_row(&other), None);
        let spaced = "200 POST /hub/api/users/ana/activity (ana@10.244.1.7)  7.41ms";
        assert_eq!(
            fold_row(&cand(spaced, "/hub/api/users/ana/activity", "ana")),
            None
        );
    }
}
