//! Retention: drop a hub's partitions older than N months, per table.
//!
//! `N` months keeps the current month and the N months before it, whole: with N = 13 on
//! 2026-11-29 the oldest partition kept is `dt=2025-10-01`, so every monthly report of the
//! last 13 months stays complete.
//!
//! Safe against concurrent writers:
//! * other hubs' agents: a hub's retention touches only `<table>/hub=<hub>/` and its own manifest;
//! * the hub's own agent: `events` partitions are dropped through the hub's manifest (a commit
//!   that lists the parts it removes; local: under the hub's lock, S3: a conditional create, so
//!   a second writer loses the race instead of interleaving), which the agent does itself
//!   (`[lake.retention]`); its compaction never sees a dropped part again;
//! * `decisions` and `pods` parts are only ever written into the current day's partition
//!   (and have no manifest), and N ≥ 1 month keeps that one far from the cutoff.

use chrono::{Datelike, NaiveDate};

use super::manifest::{LakeError, Manifest};

/// Months to keep per table (before the current month); `None` keeps everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub events: Option<u32>,
    pub decisions: Option<u32>,
    pub pods: Option<u32>,
}

impl Retention {
    pub fn is_off(&self) -> bool {
        self.events.is_none() && self.decisions.is_none() && self.pods.is_none()
    }
}

/// The first `dt` kept when keeping `months` months before `today`'s month.
pub fn cutoff(today: NaiveDate, months: u32) -> NaiveDate {
    let m0 = today.year() * 12 + today.month0() as i32 - months as i32;
    NaiveDate::from_ymd_opt(m0.div_euclid(12), m0.rem_euclid(12) as u32 + 1, 1)
        .unwrap_or(NaiveDate::MIN)
}

/// What one pass dropped: `(table, dt)` pairs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Dropped {
    pub partitions: Vec<(String, String)>,
}

/// Apply `r` to `manifest`'s hub in the lake the manifest was opened on.
///
/// # Errors
/// Store or I/O errors; a commit conflict with another writer of the same hub.
pub fn apply(
    manifest: &mut Manifest,
    r: &Retention,
    today: NaiveDate,
) -> Result<Dropped, LakeError> {
    let mut out = Dropped::default();
    if let Some(n) = r.events {
        let cut = cutoff(today, n).format("%Y-%m-%d").to_string();
        out.partitions.extend(manifest.drop_before(&cut)?);
    }
    let side = [
        (crate::lake::tables::decisions::DECISIONS, r.decisions),
        // Hub observations are kept as long as the decisions they explain.
        (crate::lake::tables::observations::OBSERVATIONS, r.decisions),
        (crate::lake::tables::pods::PODS, r.pods),
    ];
    for (table, months) in side {
        let Some(n) = months else { continue };
        let cut = cutoff(today, n).format("%Y-%m-%d").to_string();
        for dt in manifest.drop_side_before(table, &cut)? {
            out.partitions.push((table.to_string(), dt));
        }
    }
    if !out.partitions.is_empty() {
        tracing::info!(hub = manifest.hub(), dropped = ?out.partitions, "retention dropped partitions");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn cutoff_keeps_whole_months() {
        assert_eq!(cutoff(d("2026-11-29"), 13), d("2025-10-01"));
        assert_eq!(cutoff(d("2026-11-01"), 1), d("2026-10-01"));
        assert_eq!(cutoff(d("2026-01-31"), 1), d("2025-12-01"));
        assert_eq!(cutoff(d("2026-03-15"), 14), d("2025-01-01"));
        assert_eq!(cutoff(d("2026-03-15"), 0), d("2026-03-01"));
    }
}
