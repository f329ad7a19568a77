//! Timestamps: the hub, single-user servers and the idle culler write *local* time with no
//! zone; configurable-http-proxy 5.x writes UTC with `Z`; CHP 3.x/4.x write a time of day
//! with no date at all. Everything leaves this module as microseconds since the Unix epoch, UTC.
//!
//! The zone conversion is cached per local hour, so the hot path is integer arithmetic.
//! Ambiguous local times (the repeated hour when DST ends) resolve to the earlier instant;
//! non-existent ones (the skipped hour) are shifted forward by the gap.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;

/// A calendar date and time of day as written in a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalStamp {
    pub date: NaiveDate,
    /// Microseconds since local midnight.
    pub micros_of_day: i64,
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// Parse `HH:MM:SS` plus an optional fraction of up to 6 digits into micros of day.
pub fn micros_of_day(h: u32, m: u32, s: u32, frac_micros: u32) -> Option<i64> {
    if h > 23 || m > 59 || s > 60 {
        return None;
    }
    Some(((h as i64 * 60 + m as i64) * 60 + s as i64) * 1_000_000 + frac_micros as i64)
}

/// Converts local stamps of one zone to UTC micros.
#[derive(Debug, Clone)]
pub struct Zone {
    tz: Tz,
    /// (local date, local hour) -> the UTC micros of that date's local midnight, as that
    /// hour's offset (local - utc) places it.
    cache: Option<(NaiveDate, i64, i64)>,
}

impl Zone {
    pub fn new(tz: Tz) -> Self {
        Zone { tz, cache: None }
    }

    /// Parse an IANA zone name (`UTC`, `Europe/Paris`); the error names the bad value.
    pub fn parse(name: &str) -> Result<Self, super::ParseError> {
        Zone::parse_tz(name).map(Zone::new)
    }

    /// [`Zone::parse`]'s zone alone, for a config to hold (parsed once, where it is read).
    pub fn parse_tz(name: &str) -> Result<Tz, super::ParseError> {
        name.parse::<Tz>()
            .map_err(|source| super::ParseError::UnknownZone {
                name: name.to_string(),
                source,
            })
    }

    /// Local stamp → UTC micros since the epoch.
    pub fn to_utc(&mut self, st: LocalStamp) -> i64 {
        let hour = st.micros_of_day / MICROS_PER_HOUR;
        let midnight = match self.cache {
            Some((d, h, midnight)) if d == st.date && h == hour => midnight,
            _ => {
                let off = self.offset_for(st.date, hour);
                let midnight = days_since_epoch(st.date) * MICROS_PER_DAY - off;
                self.cache = Some((st.date, hour, midnight));
                midnight
            }
        };
        midnight + st.micros_of_day
    }

    fn offset_for(&self, date: NaiveDate, hour: i64) -> i64 {
        let naive = NaiveDateTime::new(
            date,
            NaiveTime::from_hms_opt(hour as u32, 30, 0).unwrap_or(NaiveTime::MIN),
        );
        let secs = match self.tz.offset_from_local_datetime(&naive) {
            chrono::LocalResult::Single(o) => o.fix().local_minus_utc(),
            chrono::LocalResult::Ambiguous(a, _) => a.fix().local_minus_utc(),
            // In the DST gap: use the offset in force just before it.
            chrono::LocalResult::None => {
                let before = naive - chrono::Duration::hours(1);
                self.tz
                    .offset_from_local_datetime(&before)
                    .earliest()
                    .map_or(0, |o| o.fix().local_minus_utc())
            }
        };
        secs as i64 * 1_000_000
    }
}

pub fn days_since_epoch(d: NaiveDate) -> i64 {
    use chrono::Datelike;
    d.num_days_from_ce() as i64 - 719_163
}

/// UTC micros → `YYYY-MM-DD` of the UTC day (the lake's `dt` partition).
pub fn utc_date(micros: i64) -> NaiveDate {
    let days = micros.div_euclid(MICROS_PER_DAY);
    NaiveDate::from_num_days_from_ce_opt((days + 719_163) as i32).unwrap_or(NaiveDate::MIN)
}

/// UTC micros → RFC 3339 with microseconds and `Z`.
pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// Fills in the date of lines that carry only a time of day (CHP 3.x/4.x) from the records
/// around them: the last dated record's local date, rolling over midnight when the time of day
/// jumps back by more than twelve hours.
#[derive(Debug, Default, Clone)]
pub struct DateCarry {
    last: Option<LocalStamp>,
}

impl DateCarry {
    /// Whether a date is carried (a dated record was seen).
    pub fn is_set(&self) -> bool {
        self.last.is_some()
    }

    pub fn observe(&mut self, st: LocalStamp) {
        self.last = Some(st);
    }

    /// The most plausible full stamp for a time of day, or `None` before any dated record.
    pub fn complete(&mut self, micros_of_day: i64) -> Option<LocalStamp> {
        let last = self.last?;
        let half = MICROS_PER_DAY / 2;
        let date = if micros_of_day + half < last.micros_of_day {
            last.date.succ_opt()?
        } else if micros_of_day > last.micros_of_day + half {
            last.date.pred_opt()?
        } else {
            last.date
        };
        let st = LocalStamp {
            date,
            micros_of_day,
        };
        self.last = Some(st);
        Some(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn utc_is_identity() {
        let mut z = Zone::parse("UTC").unwrap();
        let st = LocalStamp {
            date: d(2026, 11, 28),
            micros_of_day: micros_of_day(15, 32, 33, 231_000).unwrap(),
        };
        assert_eq!(rfc3339(z.to_utc(st)), "2026-11-28T15:32:33.231000Z");
    }

    #[test]
    fn named_zone_converts_local_to_utc() {
        // The tty sample: hub 10:32:33.231 local directly follows CHP 15:32:33.223Z (UTC-5).
        let mut z = Zone::parse("America/New_York").unwrap();
        let st = LocalStamp {
            date: d(2026, 11, 28),
            micros_of_day: micros_of_day(10, 32, 33, 231_000).unwrap(),
        };
        assert_eq!(rfc3339(z.to_utc(st)), "2026-11-28T15:32:33.231000Z");
    }

    #[test]
    fn dst_ambiguous_hour_takes_earlier_instant() {
        let mut z = Zone::parse("Europe/Paris").unwrap();
        let st = LocalStamp {
            date: d(2026, 10, 25),
            micros_of_day: micros_of_day(2, 30, 0, 0).unwrap(),
        };
        assert_eq!(rfc3339(z.to_utc(st)), "2026-10-25T00:30:00.000000Z");
    }

    #[test]
    fn bad_zone_names_the_value() {
        assert!(
            Zone::parse("Mars/Olympus")
                .unwrap_err()
                .to_string()
                .contains("Mars/Olympus")
        );
    }

    #[test]
    fn date_carry_rolls_over_midnight() {
        let mut c = DateCarry::default();
        assert_eq!(c.complete(0), None);
        c.observe(LocalStamp {
            date: d(2026, 11, 28),
            micros_of_day: micros_of_day(23, 59, 59, 0).unwrap(),
        });
        let st = c.complete(micros_of_day(0, 0, 1, 0).unwrap()).unwrap();
        assert_eq!(st.date, d(2026, 11, 29));
        let st = c.complete(micros_of_day(23, 59, 58, 0).unwrap()).unwrap();
        assert_eq!(st.date, d(2026, 11, 28));
    }

    #[test]
    fn utc_date_of_negative_and_positive_micros() {
        assert_eq!(utc_date(0), d(1970, 1, 1));
        assert_eq!(utc_date(-1), d(1969, 12, 31));
    }
}
