//! Forecasts over constructed histories whose answers are known by hand.
#![allow(clippy::unwrap_used)]

use super::*;

/// Monday 2026-11-30 00:00:00 UTC, in µs.
const MON0: i64 = 1_795_996_800 * 1_000_000;
const MIN: i64 = 60_000_000;

fn now() -> DateTime<Utc> {
    // half past midnight: the window ends at MON0
    Utc.timestamp_micros(MON0 + 30 * MIN).single().unwrap()
}

/// `weeks_ago` 1 = the last whole week before `now`; `day` 0 = Monday.
fn t(weeks_ago: i64, day: i64, hour: i64, min: i64) -> i64 {
    MON0 - weeks_ago * WEEK_US + day * 24 * HOUR_US + hour * HOUR_US + min * MIN
}

fn run(profile: &str, start: i64, end: i64) -> Run {
    Run {
        profile: profile.into(),
        start,
        end: Some(end),
    }
}

fn policy(weeks: u32, q: f64) -> ForecastPolicy {
    ForecastPolicy {
        weeks,
        quantile: q,
        trend_weeks: 2,
        trend_min: 1.0,
        trend_max: 1.0,
    }
}

/// `n` servers of `profile` on `day` from `hour` for `hours`, `weeks_ago` weeks back.
fn servers(n: usize, profile: &str, weeks_ago: i64, day: i64, hour: i64, hours: i64) -> Vec<Run> {
    (0..n)
        .map(|_| {
            run(
                profile,
                t(weeks_ago, day, hour, 0),
                t(weeks_ago, day, hour + hours, 0),
            )
        })
        .collect()
}

const EARLY: i64 = 0;

#[test]
fn slots_are_hours_of_the_week_from_monday_utc() {
    let at = |us: i64| Utc.timestamp_micros(us).single().unwrap();
    assert_eq!(slot_of(at(MON0)), 0);
    assert_eq!(slot_of(at(MON0 + 59 * MIN)), 0);
    assert_eq!(slot_of(at(MON0 + HOUR_US)), 1);
    assert_eq!(slot_of(at(t(0, 6, 23, 59))), 167);
    assert_eq!(slot_label(0), "Mon 00:00");
    assert_eq!(slot_label(24 + 9), "Tue 09:00");
    assert_eq!(slot_label(167), "Sun 23:00");
}

#[test]
fn quantile_interpolates_between_order_statistics() {
    let q = |mut v: Vec<f64>, q: f64| quantile(&mut v, q);
    assert_eq!(q(vec![4.0, 1.0, 3.0, 2.0], 0.5), 2.5);
    assert_eq!(q(vec![4.0, 1.0, 3.0, 2.0], 0.0), 1.0);
    assert_eq!(q(vec![4.0, 1.0, 3.0, 2.0], 1.0), 4.0);
    assert!((q(vec![4.0, 1.0, 3.0, 2.0], 0.9) - 3.7).abs() < 1e-9);
    assert_eq!(q(vec![], 0.9), 0.0);
}

#[test]
fn a_steady_weekly_class_is_forecast_in_its_hours_only() {
    // 3 servers every Monday 09:00-11:00 for 4 weeks
    let runs: Vec<Run> = (1..=4)
        .flat_map(|w| servers(3, "cpu", w, 0, 9, 2))
        .collect();
    let f = forecast(&runs, EARLY, &policy(4, 0.9), now());
    assert_eq!(f.window_end, MON0);
    assert_eq!(f.window_start, MON0 - 4 * WEEK_US);
    assert_eq!(f.total.slots[9], 3.0);
    assert_eq!(f.total.slots[10], 3.0);
    // ends at 11:00 exactly: not running in the 11:00 hour
    assert_eq!(f.total.slots[11], 0.0);
    assert_eq!(f.total.slots[8], 0.0);
    assert_eq!(f.total.slots.iter().sum::<f64>(), 6.0);
    assert_eq!(f.profiles["cpu"].slots, f.total.slots);
    assert_eq!(f.total.samples, 4 * SLOTS);
}

#[test]
fn the_quantile_is_taken_over_the_weeks_of_a_slot() {
    // Tuesday 14:00: 1, 2, 3, 4 servers in the four weeks (oldest first)
    let runs: Vec<Run> = (1..=4)
        .flat_map(|w| servers((5 - w) as usize, "cpu", w, 1, 14, 1))
        .collect();
    let slot = 24 + 14;
    assert_eq!(
        forecast(&runs, EARLY, &policy(4, 0.5), now()).total.slots[slot],
        2.5
    );
    assert_eq!(
        forecast(&runs, EARLY, &policy(4, 1.0), now()).total.slots[slot],
        4.0
    );
    assert_eq!(
        forecast(&runs, EARLY, &policy(4, 0.0), now()).total.slots[slot],
        1.0
    );
    // a 2-week window sees only the last two weeks (3 and 4)
    assert_eq!(
        forecast(&runs, EARLY, &policy(2, 0.0), now()).total.slots[slot],
        3.0
    );
}

#[test]
fn a_slot_sample_is_the_peak_within_the_hour_not_the_average() {
    let runs = vec![
        // back to back in the same hour: never two at once
        run("cpu", t(1, 2, 10, 0), t(1, 2, 10, 15)),
        run("cpu", t(1, 2, 10, 30), t(1, 2, 10, 45)),
        // overlapping for ten minutes: two at once
        run("cpu", t(1, 3, 10, 10), t(1, 3, 10, 40)),
        run("cpu", t(1, 3, 10, 30), t(1, 3, 10, 50)),
        // one end and one start at the same instant do not overlap
        run("cpu", t(1, 4, 10, 0), t(1, 4, 10, 30)),
        run("cpu", t(1, 4, 10, 30), t(1, 4, 11, 0)),
    ];
    let f = forecast(&runs, EARLY, &policy(1, 1.0), now());
    assert_eq!(f.total.slots[2 * 24 + 10], 1.0);
    assert_eq!(f.total.slots[3 * 24 + 10], 2.0);
    assert_eq!(f.total.slots[4 * 24 + 10], 1.0);
    // a run over several hours counts in each, and one already running when the window opens
    let long = vec![run("cpu", t(2, 6, 22, 0), t(1, 0, 2, 30))];
    let f = forecast(&long, EARLY, &policy(1, 1.0), now());
    assert_eq!(&f.total.slots[0..4], &[1.0, 1.0, 1.0, 0.0]);
}

#[test]
fn the_recent_trend_scales_every_slot_and_is_clamped() {
    // Wednesday 10:00: 1 server in weeks 4 and 3, 2 servers in weeks 2 and 1
    let runs: Vec<Run> = (1..=4)
        .flat_map(|w| servers(if w <= 2 { 2 } else { 1 }, "cpu", w, 2, 10, 1))
        .collect();
    let p = ForecastPolicy {
        weeks: 4,
        quantile: 1.0,
        trend_weeks: 2,
        trend_min: 0.5,
        trend_max: 2.0,
    };
    let f = forecast(&runs, EARLY, &p, now());
    // recent mean 4/336, window mean 6/672: ratio 4/3
    assert!((f.total.trend - 4.0 / 3.0).abs() < 1e-9);
    assert!((f.total.slots[2 * 24 + 10] - 8.0 / 3.0).abs() < 1e-9);
    let clamped = forecast(
        &runs,
        EARLY,
        &ForecastPolicy {
            trend_max: 1.2,
            ..p.clone()
        },
        now(),
    );
    assert!((clamped.total.slots[2 * 24 + 10] - 2.4).abs() < 1e-9);
    // shrinking demand: the reverse history gives 2/3
    let runs: Vec<Run> = (1..=4)
        .flat_map(|w| servers(if w <= 2 { 1 } else { 2 }, "cpu", w, 2, 10, 1))
        .collect();
    let f = forecast(&runs, EARLY, &p, now());
    assert!((f.total.trend - 2.0 / 3.0).abs() < 1e-9);
    // no history at all: trend 1, every slot 0
    let f = forecast(&[], EARLY, &p, now());
    assert_eq!(f.total.trend, 1.0);
    assert!(f.total.slots.iter().all(|&v| v == 0.0));
}

#[test]
fn hours_before_the_data_starts_are_not_zero_samples() {
    // the lake starts two weeks ago; 2 servers every Thursday 15:00 since
    let runs: Vec<Run> = (1..=2)
        .flat_map(|w| servers(2, "cpu", w, 3, 15, 1))
        .collect();
    let from = t(2, 0, 0, 0);
    let f = forecast(&runs, from, &policy(8, 0.0), now());
    assert_eq!(f.total.slots[3 * 24 + 15], 2.0);
    assert_eq!(f.total.samples, 2 * SLOTS);
    // counted from the start of the window, the six unseen weeks drag the median to 0
    let f = forecast(&runs, EARLY, &policy(8, 0.5), now());
    assert_eq!(f.total.slots[3 * 24 + 15], 0.0);
}

#[test]
fn a_running_server_counts_until_now_only() {
    let runs = vec![Run {
        profile: "gpu".into(),
        start: t(1, 6, 22, 0),
        end: None,
    }];
    let f = forecast(&runs, EARLY, &policy(1, 1.0), now());
    assert_eq!(f.total.slots[6 * 24 + 22], 1.0);
    assert_eq!(f.total.slots[6 * 24 + 23], 1.0);
    assert_eq!(f.profiles["gpu"].slots[6 * 24 + 23], 1.0);
}

#[test]
fn profiles_are_separate_series_and_the_total_is_not_their_sum() {
    // Friday 09:00: 2 cpu servers in week 1, 2 gpu servers in week 2
    let mut runs = servers(2, "cpu", 1, 4, 9, 1);
    runs.extend(servers(2, "gpu", 2, 4, 9, 1));
    let f = forecast(&runs, EARLY, &policy(2, 1.0), now());
    let slot = 4 * 24 + 9;
    assert_eq!(f.profiles["cpu"].slots[slot], 2.0);
    assert_eq!(f.profiles["gpu"].slots[slot], 2.0);
    assert_eq!(f.total.slots[slot], 2.0);
    assert_eq!(f.series(Some("gpu")).slots[slot], 2.0);
    assert_eq!(f.series(Some("unknown")).slots[slot], 2.0);
}

#[test]
fn the_peak_looks_ahead_hour_by_hour_within_the_window_only() {
    // 5 servers Monday 09:00, 2 servers Monday 03:00
    let mut runs: Vec<Run> = (1..=2)
        .flat_map(|w| servers(5, "cpu", w, 0, 9, 1))
        .collect();
    runs.extend((1..=2).flat_map(|w| servers(2, "cpu", w, 0, 3, 1)));
    let f = forecast(&runs, EARLY, &policy(2, 1.0), now());
    let at = |h: i64, m: i64| {
        Utc.timestamp_micros(MON0 + h * HOUR_US + m * MIN)
            .single()
            .unwrap()
    };
    let (v, when) = f.peak(None, at(0, 30), Duration::hours(4));
    assert_eq!((v, when), (2.0, at(3, 0)));
    let (v, when) = f.peak(None, at(0, 30), Duration::hours(9));
    assert_eq!((v, when), (5.0, at(9, 0)));
    // 08:59 plus one minute reaches 09:00
    assert_eq!(f.peak(None, at(8, 59), Duration::minutes(1)).0, 5.0);
    assert_eq!(f.peak(None, at(8, 58), Duration::minutes(1)).0, 0.0);
}

#[test]
fn sessions_without_a_profile_run_the_default_one() {
    let s = crate::report::sessions::Session {
        hub: "hub".into(),
        user: "alice".into(),
        server: String::new(),
        profile: None,
        start: 1,
        end: Some(2),
        end_reason: crate::report::sessions::EndReason::UserStop,
        spawn_seconds: None,
        last_activity: None,
        started_before_data: false,
        missing_stop: false,
        end_estimated: false,
        hub_corrected: false,
    };
    let runs = runs_from_sessions(
        &[
            s.clone(),
            crate::report::sessions::Session {
                profile: Some("GPU".into()),
                ..s
            },
        ],
        "default",
    );
    assert_eq!(runs[0].profile, "default");
    assert_eq!(runs[1].profile, "GPU");
}
