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
//! and shared part ([`super::activity`]), and the `events` view unnests them back into rows. Only a report
//! whose row is exactly that rebuild is folded ([`fold_row`]): any other (a user name that
//! needed percent-encoding, another level, a flag, a scrubbed or unusual line) stays an
//! `events` row, and only its time is listed here (a group without details), as before.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

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

/// The path of `user`'s activity report, as the hub's router matches it unescaped
/// (`apihandlers/users.py` `ActivityAPIHandler`, route `/users/([^/]+)/activity`).
pub fn is_activity_path(path: &str, user: &str) -> bool {
    path.strip_prefix("/hub/api/users/")
        .and_then(|p| p.strip_prefix(user))
        .is_some_and(|p| p == "/activity")
}

/// A report's row as the `events` view rebuilds it, checked field by field: the duration in
/// hundredths of a millisecond (what `log_request`'s `{:.2f}` printed) when the row is exactly
/// that rebuild, `None` when it must stay an `events` row.
///
/// Its time must be a whole millisecond (`activity.times` is in ms, what the hub's log prefix
/// prints: `%(msecs).03d`); a time with finer digits is kept whole in its `events` row.
///
/// Fixed fields: `source` hub, `level` INFO, `kind` request, `actor` = `user`, `method` POST,
/// `route` the activity route, `path` = `/hub/api/users/<user>/activity` (so a name that needed
/// escaping is not folded), one line, no flags, and nothing in `server_name`, `target`,
/// `service`, `exit_code`, `count`, `attrs`; the message is `log_request`'s line of them.
pub struct Candidate<'a> {
    pub source: &'a str,
    pub level: Option<&'a str>,
    pub user: &'a str,
    /// µs since the epoch.
    pub ts: i64,
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
        && c.ts.rem_euclid(1000) == 0
        && c.rest_empty
        && is_activity_path(path, c.user);
    if !fixed {
        return None;
    }
    let cs = (ms * 100.0).round();
    if !(0.0..=i32::MAX as f64).contains(&cs) {
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
    req.rebuilds(c.message).then_some(cs as i32)
}

/// [`fold_row`] on a parsed record, before it becomes a row (the parser threads apply it as
/// they build batches, [`super::batch`]; [`super::derived::split`] applies it to whole rows):
/// the same fields, the same rule. Reports with a time in the future or far out of order
/// (flagged) are never folded, as they never count as activity.
pub fn fold_record(r: &crate::parse::record::Record<'_>) -> Option<i32> {
    use crate::parse::prefix::{Family, Level};
    let (Some(status), Some(user), Some(ts)) = (r.status, r.user.as_deref(), r.ts) else {
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
        ts,
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

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The type of `activity.times`' items: UTC milliseconds.
pub fn utc_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn list(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, false)))
}

/// `activity`: per user, day and group (until compaction, per commit too), the times of their
/// activity reports, and for folded reports (`offsets` not null) every other field of their rows.
///
/// `times` are milliseconds (a folded report's time is a whole millisecond, [`fold_row`]);
/// `first` and `last` are µs, exact. The times of reports kept as `events` rows (`offsets` null)
/// are an index of those rows: one that is not a whole millisecond is listed in a row of its own
/// (`count` 1) whose `first` and `last` hold it exactly, so a reader that takes a row's first
/// and last times from `first` and `last` reads every time exactly (see
/// [`super::activity::Activity::to_batch`]).
pub fn activity_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, false),
        Field::new("first", utc(), false),
        Field::new("last", utc(), false),
        Field::new("count", DataType::Int64, false),
        Field::new("times", list(utc_ms()), false),
        Field::new("logger", DataType::Utf8, true),
        Field::new("module", DataType::Utf8, true),
        Field::new("source_file", DataType::Utf8, true),
        Field::new("source_fp", DataType::Utf8, true),
        Field::new("statuses", list(DataType::Int32), true),
        Field::new("client_ips", list(DataType::Utf8), true),
        Field::new("durations_cs", list(DataType::Int32), true),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cand<'a>(message: &'a str, path: &'a str, user: &'a str) -> Candidate<'a> {
        Candidate {
            source: "hub",
            level: Some("INFO"),
            user,
            ts: 1_793_610_037_023_000,
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
        assert_eq!(fold_row(&c), Some(741));
        let sub_ms = Candidate {
            ts: 1_793_610_037_023_456,
            ..cand(line, "/hub/api/users/ana/activity", "ana")
        };
        assert_eq!(
            fold_row(&sub_ms),
            None,
            "a time finer than 1 ms stays a row"
        );
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
