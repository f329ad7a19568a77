//! `hubpulse capacity plan`: the forecast as a week grid and the decision it leads to, as text.
//! Pure rendering; the command reads the lake and prints.

use std::fmt::Write as _;

use chrono::{TimeZone, Utc};

use crate::control::capacity::forecast::{Forecast, SLOTS, Series, slot_label};
use crate::control::capacity::placeholder::Decision;

fn peak(s: &Series) -> (f64, usize) {
    s.slots
        .iter()
        .enumerate()
        .fold((0.0, 0), |b, (i, &v)| if v > b.0 { (v, i) } else { b })
}

fn day(us: i64) -> String {
    Utc.timestamp_micros(us).single().map_or_else(
        || us.to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// The plan as text: the window, the total's grid (hours × weekdays), each profile's trend and
/// peak, then the decision.
pub fn render(f: &Forecast, quantile: f64, d: &Decision) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "forecast: {} .. {} UTC, quantile {quantile}, trend x{:.2}, {} hourly samples",
        day(f.window_start),
        day(f.window_end),
        f.total.trend,
        f.total.samples
    );
    let _ = writeln!(out, "expected concurrent servers, all profiles (UTC):");
    let _ = writeln!(out, "hour    Mon   Tue   Wed   Thu   Fri   Sat   Sun");
    for h in 0..24 {
        let _ = write!(out, "{h:02}:00");
        for d in 0..7 {
            let _ = write!(out, "{:6.1}", f.total.slots[(d * 24 + h) % SLOTS]);
        }
        out.push('\n');
    }
    if !f.profiles.is_empty() {
        let _ = writeln!(out, "profile\ttrend\tpeak\tat");
        for (name, s) in &f.profiles {
            let (v, slot) = peak(s);
            let _ = writeln!(out, "{name}\t{:.2}\t{v:.1}\t{}", s.trend, slot_label(slot));
        }
    }
    let _ = writeln!(
        out,
        "decision{}: {} {}",
        if d.dry_run { " (dry run)" } else { "" },
        d.action.label(),
        d.message()
    );
    out
}

/// The plan of several sets: [`render`]'s text with its decision line replaced by one line per
/// set, `decision [NAME] (dry run): …`.
pub fn render_sets(single: &str, sets: &[(String, Decision)]) -> String {
    let mut out: String = single
        .lines()
        .filter(|l| !l.starts_with("decision"))
        .flat_map(|l| [l, "\n"])
        .collect();
    for (name, d) in sets {
        let _ = writeln!(
            out,
            "decision [{name}]{}: {} {}",
            if d.dry_run { " (dry run)" } else { "" },
            d.action.label(),
            d.message()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::control::capacity::forecast::{ForecastPolicy, Run, forecast};
    use crate::control::capacity::placeholder::{Observed, PlaceholderPolicy, decide};

    #[test]
    fn the_plan_shows_the_grid_the_profiles_and_the_decision() {
        // Monday 2026-11-30 00:00 UTC; 2 GPU servers every Monday 09:00 for 2 weeks
        let mon0 = 1_795_996_800_i64 * 1_000_000;
        let (h, w) = (3_600_000_000_i64, 168 * 3_600_000_000_i64);
        let runs: Vec<Run> = (1..=2)
            .flat_map(|k| {
                (0..2).map(move |_| Run {
                    profile: "GPU".into(),
                    start: mon0 - k * w + 9 * h,
                    end: Some(mon0 - k * w + 10 * h),
                })
            })
            .collect();
        let p = ForecastPolicy {
            weeks: 2,
            ..ForecastPolicy::default()
        };
        let now = Utc.timestamp_micros(mon0 + 8 * h).single().unwrap();
        let f = forecast(&runs, 0, &p, now);
        let policy = PlaceholderPolicy {
            dry_run: true,
            ..PlaceholderPolicy::default()
        };
        let obs = Observed {
            current: 0,
            running: 0,
            pending: 0,
        };
        let d = decide(now, &f, obs, &policy, None);
        let text = render(&f, p.quantile, &d);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "forecast: 2026-11-16 08:00 .. 2026-11-30 08:00 UTC, quantile 0.9, trend x1.00, 336 hourly samples"
        );
        assert_eq!(lines[2], "hour    Mon   Tue   Wed   Thu   Fri   Sat   Sun");
        assert_eq!(
            lines[3 + 9],
            "09:00   2.0   0.0   0.0   0.0   0.0   0.0   0.0"
        );
        assert_eq!(lines[3 + 24 + 1], "GPU\t1.00\t2.0\tMon 09:00");
        assert_eq!(
            *lines.last().unwrap(),
            "decision (dry run): scale_up replicas 0 -> 3 (forecast): forecast peak 2.00 servers at Mon 09:00 UTC, 0 running, 0 pending, wanted 3"
        );
    }

    #[test]
    fn several_sets_get_a_decision_line_each() {
        let now = Utc
            .timestamp_opt(1_795_996_800 + 8 * 3600, 0)
            .single()
            .unwrap();
        let mut f = forecast(&[], 0, &ForecastPolicy::default(), now);
        f.total.slots[9] = 5.0;
        let mut gpu = f.total.clone();
        gpu.slots[9] = 2.0;
        f.profiles.insert("gpu".into(), gpu);
        let obs = Observed {
            current: 0,
            running: 1,
            pending: 0,
        };
        let all = PlaceholderPolicy {
            dry_run: true,
            headroom: 0.0,
            ..PlaceholderPolicy::default()
        };
        let g = PlaceholderPolicy {
            profile: Some("gpu".into()),
            ..all.clone()
        };
        let sets = vec![
            (
                "user-placeholder".to_string(),
                decide(now, &f, obs, &all, None),
            ),
            (
                "user-placeholder-gpu".to_string(),
                decide(now, &f, obs, &g, None),
            ),
        ];
        let text = render_sets(&render(&f, 0.9, &sets[0].1), &sets);
        let decisions: Vec<&str> = text.lines().filter(|l| l.starts_with("decision")).collect();
        assert_eq!(
            decisions,
            vec![
                "decision [user-placeholder] (dry run): scale_up replicas 0 -> 4 (forecast): forecast peak 5.00 servers at Mon 09:00 UTC, 1 running, 0 pending, wanted 4",
                "decision [user-placeholder-gpu] (dry run): scale_up replicas 0 -> 1 (forecast): forecast peak 2.00 servers at Mon 09:00 UTC, 1 running, 0 pending, wanted 1",
            ]
        );
        assert!(text.starts_with("forecast: "));
    }
}
