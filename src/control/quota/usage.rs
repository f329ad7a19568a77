//! The month's usage read from the lake: server-hours per user, group and profile class, for
//! the quota budgets.

use super::*;

/// A failure reading the month's usage from the lake, as its message.
pub(super) fn usage_err(e: impl std::fmt::Display) -> ControlError {
    ControlError::Usage(e.to_string())
}

/// The first instant of the UTC month of `now`.
pub fn month_start(now: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

/// This month's server-hours per user (and per profile class) from the lake: the report's
/// session rebuild ([`crate::report::sessions`], over the same window as the month's report,
/// [`crate::report::monthly::window`]), clipped to `[month start, now]`; a session still open
/// counts up to `now`. A session's profile is the one last admitted for its user and server
/// before it started (`decisions`, `component = 'admission'`), else the policy's default.
/// `hub`: count that hub's sessions only (`None`: every hub of the lake). `running`: the servers
/// the hub's API lists now; when given, a server's current run is counted from the API's
/// `started` and the lake's sessions that overlap it are not; a session open in the lake but
/// not listed counts to its own last sign of life. So a log line alone, such as a forged start
/// or stop, cannot add or hide usage. `None` (reports, tests) counts the lake's sessions as
/// they are.
pub async fn month_usage(
    lake: &crate::lake::LakeLocation,
    policy: &Policy,
    now: DateTime<Utc>,
    hub: Option<&str>,
    running: Option<&[Running]>,
) -> Result<Usage, ControlError> {
    use crate::report::monthly;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Int64Type};
    let start = month_start(now);
    let ctx = crate::query::session(lake).await.map_err(usage_err)?;
    // The same rebuild as the report's, checked against the hub's observations.
    let runs = crate::report::rebuild(&ctx, monthly::window(start.date_naive()))
        .await
        .map_err(usage_err)?
        .sessions;
    // (user, server) -> [(admitted at, profile)] in time order.
    let mut admitted: HashMap<(String, String), Vec<(i64, String)>> = HashMap::new();
    // Registered when the lake has the table (a directory; an S3 prefix is asked through the
    // object store, see `query::session`): never a local `is_dir` check, which a bucket fails.
    let has_decisions = ctx
        .table_exist(crate::lake::tables::decisions::DECISIONS)
        .map_err(usage_err)?;
    if has_decisions {
        let look_back = start - chrono::Duration::days(62);
        let sql = format!(
            "SELECT \"user\", COALESCE(server_name, ''), CAST(ts AS BIGINT) AS t, COALESCE(profile, '')
             FROM decisions WHERE component = 'admission' AND action = 'allow' AND ts >= TIMESTAMP '{}'{}
             ORDER BY t",
            look_back.format("%Y-%m-%dT%H:%M:%SZ"),
            hub.map_or(String::new(), |h| format!(" AND hub = '{}'", h.replace('\'', "''")))
        );
        let batches = crate::query::run(&ctx, &sql).await.map_err(usage_err)?;
        for b in &batches {
            let col = |i: usize| arrow::compute::cast(b.column(i), &DataType::Utf8);
            let (user, server, prof) = (
                col(0).map_err(usage_err)?,
                col(1).map_err(usage_err)?,
                col(3).map_err(usage_err)?,
            );
            let t = arrow::compute::cast(b.column(2), &DataType::Int64).map_err(usage_err)?;
            let t = t.as_primitive::<Int64Type>();
            let (user, server, prof) = (
                user.as_string::<i32>(),
                server.as_string::<i32>(),
                prof.as_string::<i32>(),
            );
            for i in 0..b.num_rows() {
                if t.is_null(i) || user.is_null(i) {
                    continue;
                }
                let key = (user.value(i).to_string(), server.value(i).to_string());
                admitted
                    .entry(key)
                    .or_default()
                    .push((t.value(i), prof.value(i).to_string()));
            }
        }
    }
    let mut usage = Usage::default();
    let (lo, hi) = (start.timestamp_micros(), now.timestamp_micros());
    // (user, server) -> the API's start of its current run.
    let live: HashMap<(&str, &str), i64> = running
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let started = r.started.map_or(hi, |t| t.timestamp_micros());
            ((r.user.as_str(), r.server.as_str()), started)
        })
        .collect();
    let mut add = |user: &str, server: &str, start: i64, from: i64, to: i64| {
        if to <= from {
            return;
        }
        let h = (to - from) as f64 / 3.6e9;
        let key = (user.to_string(), server.to_string());
        let profile = admitted
            .get(&key)
            .and_then(|v| v.iter().rev().find(|(t, _)| *t <= start))
            .map_or("", |(_, p)| p.as_str());
        *usage.user.entry(user.to_string()).or_default() += h;
        let class = policy
            .class_of(policy.profile_of(Some(profile)))
            .to_string();
        *usage
            .class_user
            .entry((class, user.to_string()))
            .or_default() += h;
    };
    for s in runs.iter().filter(|s| hub.is_none_or(|h| s.hub == h)) {
        let mut end = s.end.unwrap_or(hi);
        if running.is_some() {
            // Open in the log, not listed by the API: it ran at most to its own last sign of
            // life (a start line alone, forged or not, counts nothing; a real run whose stop
            // line is not yet in the lake counts to its last heartbeat).
            if s.end.is_none() {
                end = s.last_activity.unwrap_or(s.start).max(s.start);
            }
            // The API's current run replaces what the log says of it.
            if live
                .get(&(s.user.as_str(), s.server.as_str()))
                .is_some_and(|&started| end > started)
            {
                continue;
            }
        }
        add(&s.user, &s.server, s.start, s.start.max(lo), end.min(hi));
    }
    for ((user, server), started) in &live {
        add(user, server, *started, (*started).max(lo), hi);
    }
    Ok(usage)
}
