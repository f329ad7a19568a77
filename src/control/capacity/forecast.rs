//! Demand forecast: the expected number of concurrent servers for each hour of the week (168
//! slots, Monday 00:00 UTC = slot 0), per profile and in total, from past server runs.
//!
//! Pure: [`forecast`] takes the runs, the time the data starts, the policy and `now`; nothing
//! here reads the clock or the lake (the runner and `hubpulse capacity plan` pass sessions
//! rebuilt by [`crate::report::sessions::derive`], see [`runs_from_sessions`]).
//!
//! How one slot is computed:
//! 1. The window is the `weeks` whole weeks of hours ending at the start of `now`'s hour. Each
//!    hour of it gets a *sample*: the **peak** number of servers running at once during that hour
//!    (not the average: placeholders must cover the busiest moment, and a run shorter than an
//!    hour still occupies a node).
//! 2. A slot's value is the `quantile` (linear interpolation between order statistics, as
//!    numpy's default) of its samples, one per week. Hours before `observed_from` (the first
//!    record of the data) are not samples: a young lake does not forecast zeros for weeks it
//!    never saw.
//! 3. Trend: the mean hourly peak over the last `trend_weeks` divided by the mean over the whole
//!    window, clamped to `[trend_min, trend_max]` (1 when either is empty or zero). Every slot is
//!    multiplied by it, so a growing course shows up within two weeks without waiting for the
//!    quantile over eight to move.
//!
//! # Assumptions
//! - Hours of the week are UTC. A hub whose users live far from UTC still gets the right shape,
//!   only shifted in the labels printed by `hubpulse capacity plan`.
//! - A run still going at `now` (no end) counts as running until `now`.
//! - The total is its own series over all runs, not the sum of per-profile quantiles (which would
//!   overstate it: profiles rarely peak in the same week).

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

use crate::report::sessions::Session;

/// Slots in a week.
pub const SLOTS: usize = 168;
const HOUR_US: i64 = 3_600_000_000;
const WEEK_US: i64 = SLOTS as i64 * HOUR_US;

/// One server run: `[start, end)` in µs since the epoch; `end: None` = still running.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub profile: String,
    pub start: i64,
    pub end: Option<i64>,
}

/// How the forecast is made (the `[capacity]` section's forecast keys).
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastPolicy {
    /// Weeks of history (`history_weeks`, default 8).
    pub weeks: u32,
    /// Quantile of the weekly samples of a slot, in `[0, 1]` (`quantile`, default 0.9).
    pub quantile: f64,
    /// Recent weeks the trend compares with the window (`trend_weeks`, default 2).
    pub trend_weeks: u32,
    /// Clamp of the trend ratio (`trend_min` 0.5, `trend_max` 2.0).
    pub trend_min: f64,
    pub trend_max: f64,
}

impl Default for ForecastPolicy {
    fn default() -> Self {
        ForecastPolicy {
            weeks: 8,
            quantile: 0.9,
            trend_weeks: 2,
            trend_min: 0.5,
            trend_max: 2.0,
        }
    }
}

/// One series: a profile's (or the total's) expected concurrent servers per slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Already multiplied by `trend`.
    pub slots: [f64; SLOTS],
    pub trend: f64,
    /// Hours of the window that were samples (after `observed_from`).
    pub samples: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Start of the window (µs), a whole hour.
    pub window_start: i64,
    /// End of the window (µs): the start of `now`'s hour.
    pub window_end: i64,
    pub total: Series,
    pub profiles: BTreeMap<String, Series>,
}

/// The slot of the hour containing `t` (Monday 00:00–00:59 UTC = 0).
pub fn slot_of(t: DateTime<Utc>) -> usize {
    t.weekday().num_days_from_monday() as usize * 24 + t.hour() as usize
}

/// A slot as `Mon 09:00` (UTC).
pub fn slot_label(slot: usize) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    format!("{} {:02}:00", DAYS[(slot / 24) % 7], slot % 24)
}

fn slot_of_us(t: i64) -> usize {
    Utc.timestamp_micros(t).single().map_or(0, slot_of)
}

impl Forecast {
    /// The expected servers at `t` in `series` (the total when `None` or unknown).
    pub fn at(&self, profile: Option<&str>, t: DateTime<Utc>) -> f64 {
        self.series(profile).slots[slot_of(t)]
    }

    pub fn series(&self, profile: Option<&str>) -> &Series {
        profile
            .and_then(|p| self.profiles.get(p))
            .unwrap_or(&self.total)
    }

    /// The highest expected value over `[now, now + look_ahead]`, hour by hour, and when.
    pub fn peak(
        &self,
        profile: Option<&str>,
        now: DateTime<Utc>,
        look_ahead: Duration,
    ) -> (f64, DateTime<Utc>) {
        let s = self.series(profile);
        let mut best = (s.slots[slot_of(now)], now);
        let mut t = now;
        let end = now + look_ahead;
        loop {
            // the next whole hour
            t = t + Duration::hours(1)
                - Duration::minutes(t.minute().into())
                - Duration::seconds(t.second().into())
                - Duration::nanoseconds(t.nanosecond().into());
            if t > end {
                return best;
            }
            let v = s.slots[slot_of(t)];
            if v > best.0 {
                best = (v, t);
            }
        }
    }
}

/// Runs from sessions; a session without a profile runs `default_profile`.
pub fn runs_from_sessions(sessions: &[Session], default_profile: &str) -> Vec<Run> {
    sessions
        .iter()
        .map(|s| Run {
            profile: s
                .profile
                .clone()
                .unwrap_or_else(|| default_profile.to_string()),
            start: s.start,
            end: s.end,
        })
        .collect()
}

/// Linear-interpolation quantile (numpy's default) of `v`, sorted in place; 0 when empty.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Peak concurrency of each hour of `[start, start + hours·1h)` over `runs` (clipped to `now`).
fn hourly_peaks<'a>(
    runs: impl Iterator<Item = &'a Run>,
    start: i64,
    hours: usize,
    now: i64,
) -> Vec<u32> {
    let end = start + hours as i64 * HOUR_US;
    // (time, delta): ends sort before starts at the same instant (a run ending at 10:00 and
    // another starting at 10:00 never overlap).
    let mut edges: Vec<(i64, i32)> = Vec::new();
    for r in runs {
        let e = r.end.unwrap_or(now).min(now);
        if e <= start || r.start >= end || e <= r.start {
            continue;
        }
        edges.push((r.start.max(start), 1));
        edges.push((e.min(end), -1));
    }
    edges.sort_unstable();
    let mut peaks = vec![0u32; hours];
    let mut running: i32 = 0;
    let mut i = 0;
    for (h, peak) in peaks.iter_mut().enumerate() {
        let h_start = start + h as i64 * HOUR_US;
        let h_end = h_start + HOUR_US;
        // what happens exactly at the hour's start sets its opening count
        while i < edges.len() && edges[i].0 <= h_start {
            running += edges[i].1;
            i += 1;
        }
        let mut best = running;
        while i < edges.len() && edges[i].0 < h_end {
            running += edges[i].1;
            best = best.max(running);
            i += 1;
        }
        *peak = best.max(0) as u32;
    }
    peaks
}

fn series(peaks: &[u32], first_sample: usize, p: &ForecastPolicy, window_start: i64) -> Series {
    let mut by_slot: Vec<Vec<f64>> = vec![Vec::new(); SLOTS];
    let start_slot = slot_of_us(window_start);
    for (h, &v) in peaks.iter().enumerate().skip(first_sample) {
        by_slot[(start_slot + h) % SLOTS].push(f64::from(v));
    }
    let mean = |xs: &[u32]| {
        (!xs.is_empty()).then(|| xs.iter().map(|&x| f64::from(x)).sum::<f64>() / xs.len() as f64)
    };
    let recent_from = peaks
        .len()
        .saturating_sub(p.trend_weeks as usize * SLOTS)
        .max(first_sample);
    let trend = match (mean(&peaks[first_sample..]), mean(&peaks[recent_from..])) {
        (Some(all), Some(recent)) if all > 0.0 => (recent / all).clamp(p.trend_min, p.trend_max),
        _ => 1.0,
    };
    let mut slots = [0.0; SLOTS];
    for (s, v) in slots.iter_mut().zip(by_slot.iter_mut()) {
        *s = quantile(v, p.quantile) * trend;
    }
    Series {
        slots,
        trend,
        samples: peaks.len().saturating_sub(first_sample),
    }
}

/// The forecast at `now` from `runs`, whose data starts at `observed_from` (µs).
pub fn forecast(
    runs: &[Run],
    observed_from: i64,
    policy: &ForecastPolicy,
    now: DateTime<Utc>,
) -> Forecast {
    let now_us = now.timestamp_micros();
    let window_end = now_us - now_us.rem_euclid(HOUR_US);
    let hours = policy.weeks.max(1) as usize * SLOTS;
    let window_start = window_end - hours as i64 * WEEK_US / SLOTS as i64;
    let first_sample = if observed_from <= window_start {
        0
    } else {
        // the first whole hour at or after observed_from
        (((observed_from - window_start) + HOUR_US - 1) / HOUR_US).min(hours as i64) as usize
    };
    let total = series(
        &hourly_peaks(runs.iter(), window_start, hours, now_us),
        first_sample,
        policy,
        window_start,
    );
    let mut names: Vec<&str> = runs.iter().map(|r| r.profile.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let profiles = names
        .into_iter()
        .map(|name| {
            let peaks = hourly_peaks(
                runs.iter().filter(|r| r.profile == name),
                window_start,
                hours,
                now_us,
            );
            (
                name.to_string(),
                series(&peaks, first_sample, policy, window_start),
            )
        })
        .collect();
    Forecast {
        window_start,
        window_end,
        total,
        profiles,
    }
}

#[cfg(test)]
#[path = "forecast_tests.rs"]
mod tests;
