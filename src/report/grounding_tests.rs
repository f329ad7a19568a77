//! The rules of `grounding.rs`, one test each, on observation rows shaped as the agent's recorder
//! writes them (`control::observe`: a `server` row when a server's state changed, `gone` when a
//! server seen before is missing, a `listing` row per complete listing, `via = 'first'` for a
//! recorder's first). The end-to-end check on a real hub is `tests/it/grounding.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use super::*;
use crate::report::observed::{Kind, Row};

const M: i64 = 60_000_000;

fn session(server: &str, start: i64, end: Option<i64>) -> Session {
    Session {
        hub: "h".into(),
        user: "u".into(),
        server: server.into(),
        profile: None,
        start,
        end,
        end_reason: if end.is_some() {
            EndReason::UserStop
        } else {
            EndReason::Running
        },
        spawn_seconds: None,
        last_activity: None,
        started_before_data: false,
        missing_stop: false,
        end_estimated: false,
        hub_corrected: false,
    }
}

fn row(ts: i64, kind: Kind, server: &str, started: Option<i64>) -> Row {
    Row {
        ts,
        hub: "h".into(),
        kind,
        user: if matches!(kind, Kind::Listing(_)) {
            String::new()
        } else {
            "u".into()
        },
        server: server.into(),
        started,
        last_activity: started,
        ready: true,
    }
}

/// A recorder listing every minute from `from` to `to` (minutes), the server `""` (started at
/// `started`) in every listing while `running` holds.
fn listings(from: i64, to: i64, started: i64, running: impl Fn(i64) -> bool) -> Vec<Row> {
    let mut v = Vec::new();
    let mut was = false;
    for m in from..=to {
        let first = m == from;
        let is = running(m);
        if is && (!was || first) {
            v.push(row(m * M, Kind::Server, "", Some(started)));
        }
        if was && !is {
            v.push(row(m * M, Kind::Gone, "", None));
        }
        v.push(row(m * M, Kind::Listing(first), "", None));
        was = is;
    }
    v
}

fn last_ts(t: i64) -> HashMap<String, i64> {
    [("h".to_string(), t)].into_iter().collect()
}

const ALL: (i64, i64) = (i64::MIN, i64::MAX);

#[test]
fn without_observations_nothing_changes() {
    let mut s = vec![session("", 10 * M, None)];
    let before = s.clone();
    let g = ground(
        &mut s,
        &Observed::build(&[], i64::MAX),
        &last_ts(100 * M),
        ALL,
    );
    assert_eq!(s, before);
    assert!(!g.observed);
}

#[test]
fn a_session_left_open_by_a_missing_stop_ends_where_the_hub_saw_it_gone() {
    // Ran 10..40 (listed at 10..39, missing from 40 on); the log lost the stop line.
    let obs = Observed::build(&listings(5, 60, 9 * M, |m| (10..40).contains(&m)), i64::MAX);
    let mut s = vec![session("", 10 * M, None)];
    let g = ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s[0].end, Some(40 * M));
    assert_eq!(s[0].end_reason, EndReason::ObservedStop);
    assert!(s[0].hub_corrected && s[0].flags().contains("hub_corrected"));
    assert_eq!((g.seen, g.starts, g.ends, g.removed), (1, 0, 1, 0));
    assert_eq!(g.delta_us, -50 * M);
}

#[test]
fn an_estimated_end_moves_into_the_interval_the_hub_allows() {
    let obs = Observed::build(&listings(5, 60, 9 * M, |m| (10..40).contains(&m)), i64::MAX);
    // Ended at its last heartbeat (20) before a later spawn: the hub listed it until 39.
    let mut early = session("", 10 * M, Some(20 * M));
    early.missing_stop = true;
    // Ended at a shutdown line after the hub had seen it gone (40).
    let mut late = session("", 10 * M, Some(50 * M));
    late.end_estimated = true;
    let mut s = vec![early, late];
    ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s[0].end, Some(39 * M));
    assert_eq!(s[1].end, Some(40 * M));
}

#[test]
fn a_logged_stop_is_kept_unless_a_later_listing_held_the_server() {
    let obs = Observed::build(&listings(5, 60, 9 * M, |m| (10..40).contains(&m)), i64::MAX);
    // The stop line at 40.5 (after the listing at 40 saw it gone): kept.
    let mut s = vec![session("", 10 * M, Some(40 * M + M / 2))];
    ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s[0].end, Some(40 * M + M / 2));
    assert!(!s[0].hub_corrected);
    // A stop line at 25 (forged, or of another server): the hub held it running until 39.
    let mut s = vec![session("", 10 * M, Some(25 * M))];
    ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s[0].end, Some(39 * M));
}

#[test]
fn a_start_before_the_data_becomes_the_hubs_started() {
    let obs = Observed::build(&listings(5, 60, 3 * M, |m| m < 40), i64::MAX);
    let mut s = session("", 7 * M, Some(40 * M));
    s.started_before_data = true;
    let mut s = vec![s];
    let g = ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s[0].start, 3 * M);
    assert_eq!((g.starts, g.ends), (1, 0));
    assert_eq!(g.delta_us, 4 * M);
}

#[test]
fn a_logged_ready_line_keeps_its_start() {
    // The hub's `started` is when the spawn began (9), the log's start when it was ready (10).
    let obs = Observed::build(&listings(5, 60, 9 * M, |m| (11..40).contains(&m)), i64::MAX);
    let mut s = vec![session("", 10 * M, Some(40 * M))];
    let before = s.clone();
    let g = ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s, before);
    assert_eq!((g.seen, g.starts, g.ends, g.delta_us), (1, 0, 0, 0));
}

#[test]
fn a_ready_line_dated_before_the_hub_saw_the_spawn_starts_at_the_hubs_started() {
    // The hub was watched from 5 on and saw the server from 30 (started 29); the log's ready
    // line says 10 (a forged line dated back, or one of another server).
    let obs = Observed::build(
        &listings(5, 60, 29 * M, |m| (30..40).contains(&m)),
        i64::MAX,
    );
    let mut s = vec![session("", 10 * M, Some(40 * M + 1))];
    let g = ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s[0].start, 29 * M);
    assert_eq!(g.delta_us, -19 * M);
    // Not watched before the spawn (the first listing at 30): nothing says otherwise.
    let obs = Observed::build(&listings(30, 60, 29 * M, |m| m < 40), i64::MAX);
    let mut s = vec![session("", 10 * M, Some(40 * M + 1))];
    ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s[0].start, 10 * M);
}

#[test]
fn a_session_the_hub_never_saw_is_cut_or_removed() {
    // The hub was watched every minute from 5 to 60 and never listed the server.
    let obs = Observed::build(&listings(5, 60, 0, |_| false), i64::MAX);
    // Both bounds estimated (a phantom from a stray line): removed.
    let mut phantom = session("", 5 * M + 1, None);
    phantom.started_before_data = true;
    // A logged start, no stop: it did not run at the next listing.
    let logged = session("", 20 * M + 1, None);
    // A logged stop, start estimated: it did not run at the listing before the stop.
    let mut tail = session("", 5 * M + 1, Some(30 * M + 1));
    tail.started_before_data = true;
    tail.user = "v".into();
    let mut s = vec![phantom, logged.clone(), tail];
    let g = ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[0].start, logged.start);
    assert_eq!(s[0].end, Some(21 * M));
    // `v` was never listed either: its start moves to the last listing before its stop.
    assert_eq!(s[1].start, 30 * M);
    assert_eq!(g.removed, 1);
}

#[test]
fn a_run_missing_from_a_recorders_first_listing_ended_while_nobody_watched() {
    // Listed 10..20; the agent was down 20..50; its first listing (50) no longer holds it.
    let mut rows = listings(10, 20, 9 * M, |_| true);
    rows.extend(listings(50, 60, 0, |_| false));
    let obs = Observed::build(&rows, i64::MAX);
    let mut s = vec![session("", 10 * M, None)];
    ground(&mut s, &obs, &last_ts(90 * M), ALL);
    assert_eq!(s[0].end, Some(50 * M));
    // Without the first-listing mark, later listings would have claimed it ran to 60.
    let run = obs.run_for(&s[0]).unwrap();
    assert_eq!((run.last_seen, run.gone), (20 * M, Some(50 * M)));
}

#[test]
fn a_new_started_value_is_a_new_run() {
    let mut rows = listings(5, 30, 9 * M, |m| (10..30).contains(&m));
    // Re-spawned between two listings: the same key, a new `started`.
    rows.push(row(20 * M, Kind::Server, "", Some(19 * M + M / 2)));
    let obs = Observed::build(&rows, i64::MAX);
    let mut first = session("", 10 * M, Some(12 * M));
    first.missing_stop = true;
    let mut s = vec![first];
    ground(&mut s, &obs, &last_ts(90 * M), ALL);
    // The first run: listed to 19, over by the time the second spawn began (19.5); the end
    // moves the least that agrees with both, to 19.
    assert_eq!(s[0].end, Some(19 * M));
    assert_eq!(obs.run_for(&s[0]).unwrap().gone, Some(19 * M + M / 2));
}

#[test]
fn only_observations_before_the_cut_count_and_the_tally_is_for_the_month() {
    let rows = listings(5, 60, 9 * M, |m| (10..40).contains(&m));
    // Read before the gone row was written: nothing says it stopped yet.
    let early = Observed::build(&rows, 35 * M);
    let mut s = vec![session("", 10 * M, None)];
    ground(&mut s, &early, &last_ts(90 * M), ALL);
    assert_eq!(s[0].end, None);
    // A month that ends at 30: the correction (90 -> 40) is outside it.
    let obs = Observed::build(&rows, i64::MAX);
    let mut s = vec![session("", 10 * M, None)];
    let g = ground(&mut s, &obs, &last_ts(90 * M), (0, 30 * M));
    assert_eq!(s[0].end, Some(40 * M));
    assert_eq!((g.ends, g.delta_us), (1, 0));
}
