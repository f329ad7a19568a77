//! The placeholder decision over a hand-made forecast: Monday 09:00 expects 8 servers, every
//! other hour 1 (the GPU profile: 3 at Monday 09:00, 0 otherwise).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::TimeZone;

use super::*;
use crate::control::capacity::forecast::{SLOTS, Series};

/// Monday 2026-11-30 00:00:00 UTC, in seconds.
const MON0: i64 = 1_795_996_800;

fn at(h: i64, m: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(MON0 + h * 3600 + m * 60, 0)
        .single()
        .unwrap()
}

fn series(peak: f64, rest: f64) -> Series {
    let mut slots = [rest; SLOTS];
    slots[9] = peak;
    Series {
        slots,
        trend: 1.0,
        samples: SLOTS,
    }
}

fn forecast() -> Forecast {
    Forecast {
        window_start: 0,
        window_end: 0,
        total: series(8.0, 1.0),
        profiles: BTreeMap::from([("gpu".to_string(), series(3.0, 0.0))]),
    }
}

fn policy() -> PlaceholderPolicy {
    PlaceholderPolicy {
        profile: None,
        log_profile: None,
        min_replicas: 0,
        max_replicas: 20,
        look_ahead: Duration::minutes(120),
        headroom: 0.0,
        cooldown: Duration::minutes(30),
        dry_run: false,
    }
}

fn seen(current: i32, running: u32, pending: u32) -> Observed {
    Observed {
        current,
        running,
        pending,
    }
}

#[test]
fn scales_up_ahead_of_a_peak_inside_the_look_ahead_only() {
    let f = forecast();
    let d = decide(at(7, 30), &f, seen(0, 0, 0), &policy(), None);
    assert_eq!(
        (d.action, d.reason, d.target, d.wanted),
        (Action::ScaleUp, Reason::Forecast, 8, 8)
    );
    assert_eq!((d.peak, d.peak_at), (8.0, at(9, 0)));
    assert!(d.apply());
    let short = PlaceholderPolicy {
        look_ahead: Duration::minutes(60),
        ..policy()
    };
    let d = decide(at(7, 30), &f, seen(0, 0, 0), &short, None);
    assert_eq!((d.action, d.target, d.peak), (Action::ScaleUp, 1, 1.0));
}

#[test]
fn running_servers_are_subtracted_and_headroom_rounds_up() {
    let p = PlaceholderPolicy {
        headroom: 0.1,
        ..policy()
    };
    // ceil(8 × 1.1) = 9, 3 already running
    let d = decide(at(8, 0), &forecast(), seen(2, 3, 0), &p, None);
    assert_eq!((d.action, d.target, d.wanted), (Action::ScaleUp, 6, 6));
    // more running than expected: nothing wanted (never negative)
    let d = decide(at(8, 0), &forecast(), seen(0, 12, 0), &policy(), None);
    assert_eq!((d.action, d.target, d.wanted), (Action::Hold, 0, -4));
    // an exact product does not round up by a float error: 8 × 1.0
    let d = decide(at(8, 0), &forecast(), seen(0, 0, 0), &policy(), None);
    assert_eq!(d.target, 8);
}

#[test]
fn the_target_stays_within_min_and_max() {
    let capped = PlaceholderPolicy {
        max_replicas: 5,
        ..policy()
    };
    let d = decide(at(8, 0), &forecast(), seen(0, 0, 0), &capped, None);
    assert_eq!(
        (d.action, d.reason, d.target),
        (Action::ScaleUp, Reason::MaxReplicas, 5)
    );
    let floor = PlaceholderPolicy {
        min_replicas: 2,
        ..policy()
    };
    let d = decide(at(20, 0), &forecast(), seen(0, 5, 0), &floor, None);
    assert_eq!(
        (d.action, d.reason, d.target),
        (Action::ScaleUp, Reason::MinReplicas, 2)
    );
    // above max (a helm value of 12) comes down to max even during the cooldown
    let d = decide(
        at(8, 0),
        &forecast(),
        seen(12, 0, 0),
        &capped,
        Some(at(7, 59)),
    );
    assert_eq!(
        (d.action, d.reason, d.target),
        (Action::ScaleDown, Reason::MaxReplicas, 5)
    );
}

#[test]
fn scales_down_only_after_the_cooldown() {
    let f = forecast();
    // 10:30: the peak has passed, the forecast wants 1
    let d = decide(at(10, 30), &f, seen(8, 0, 0), &policy(), Some(at(10, 10)));
    assert_eq!(
        (d.action, d.reason, d.target, d.wanted),
        (Action::Hold, Reason::Cooldown, 8, 1)
    );
    assert!(!d.apply());
    let d = decide(at(10, 40), &f, seen(8, 0, 0), &policy(), Some(at(10, 10)));
    assert_eq!(
        (d.action, d.reason, d.target),
        (Action::ScaleDown, Reason::Forecast, 1)
    );
    // never changed by this loop: no cooldown
    let d = decide(at(10, 30), &f, seen(8, 0, 0), &policy(), None);
    assert_eq!((d.action, d.target), (Action::ScaleDown, 1));
}

#[test]
fn scaling_up_ignores_the_cooldown_so_a_helm_reset_is_undone_at_once() {
    // we set 8 five minutes ago; a helm upgrade put 0 back
    let d = decide(
        at(8, 5),
        &forecast(),
        seen(0, 0, 0),
        &policy(),
        Some(at(8, 0)),
    );
    assert_eq!((d.action, d.target), (Action::ScaleUp, 8));
}

#[test]
fn no_scale_down_while_user_pods_are_pending() {
    let d = decide(at(10, 30), &forecast(), seen(8, 0, 2), &policy(), None);
    assert_eq!(
        (d.action, d.reason, d.target),
        (Action::Hold, Reason::PendingPods, 8)
    );
    // pending pods do not stop a scale-up
    let d = decide(at(8, 0), &forecast(), seen(2, 0, 2), &policy(), None);
    assert_eq!((d.action, d.target), (Action::ScaleUp, 8));
}

#[test]
fn dry_run_decides_the_same_and_applies_nothing() {
    let p = PlaceholderPolicy {
        dry_run: true,
        ..policy()
    };
    let d = decide(at(7, 30), &forecast(), seen(0, 0, 0), &p, None);
    assert_eq!((d.action, d.target), (Action::ScaleUp, 8));
    assert!(d.dry_run);
    assert!(!d.apply());
}

#[test]
fn a_set_per_profile_follows_its_own_series() {
    let p = PlaceholderPolicy {
        profile: Some("gpu".into()),
        ..policy()
    };
    let d = decide(at(7, 30), &forecast(), seen(0, 0, 0), &p, None);
    assert_eq!((d.target, d.peak), (3, 3.0));
    let d = decide(at(12, 0), &forecast(), seen(3, 0, 0), &p, None);
    assert_eq!((d.action, d.target), (Action::ScaleDown, 0));
}

#[test]
fn a_set_follows_the_series_of_its_logged_profile_name_when_it_differs_from_the_slug() {
    // The forecast knows the profile by the display name the hub logs; admission by its slug.
    let mut f = forecast();
    let gpu = f.profiles.remove("gpu").unwrap();
    f.profiles.insert("GPU (large)".into(), gpu);
    let slug_only = PlaceholderPolicy {
        profile: Some("gpu".into()),
        ..policy()
    };
    // Unknown to the forecast: the hub's total (8), which is why the runner warns.
    let d = decide(at(7, 30), &f, seen(0, 0, 0), &slug_only, None);
    assert_eq!((d.target, d.peak), (8, 8.0));
    assert!(!f.profiles.contains_key("gpu"));
    let named = PlaceholderPolicy {
        log_profile: Some("GPU (large)".into()),
        ..slug_only
    };
    assert_eq!(named.forecast_profile(), Some("GPU (large)"));
    let d = decide(at(7, 30), &f, seen(0, 0, 0), &named, None);
    assert_eq!((d.target, d.peak), (3, 3.0));
}

#[test]
fn the_message_says_why() {
    let d = decide(
        at(10, 30),
        &forecast(),
        seen(8, 0, 0),
        &policy(),
        Some(at(10, 10)),
    );
    assert_eq!(
        d.message(),
        "replicas 8 -> 8 (cooldown): forecast peak 1.00 servers at Mon 10:00 UTC, 0 running, 0 pending, wanted 1"
    );
}
