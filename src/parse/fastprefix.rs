//! The hub prefix of the fast path ([`super::fastpath`]), remembered: consecutive lines of a
//! hub's log mostly share their level, date, logger and `module:lineno` (`[I 2026-11-02` …
//! `JupyterHub log:192]`) and differ in the time between them. [`Memo::header`] parses the
//! first such line with [`prefix::bracketed_fast`] and keeps those bytes and what they parsed
//! to; a line that has the same bytes around its time is then read by parsing its time alone.
//!
//! Exact: [`prefix::bracketed_fast`] reads the level and date from bytes 1..13, the time from
//! the fixed positions after them, then the logger up to the first space or `]` and the module
//! up to the next `]`, and the message after that `]` and one space. When the bytes before the
//! time and from the logger to that `]` are those of the remembered line, every one of those
//! reads gives what it gave then, so the header is the remembered one with this line's time
//! and message.

use chrono::NaiveDate;

use super::fastpath::plain;
use super::prefix::{self, Family, Header, Level, Stamp};
use super::time::{LocalStamp, micros_of_day};

/// `[L YYYY-MM-DD`
const HEAD: usize = 13;
/// Longest `logger module:lineno]` remembered.
const TAIL: usize = 64;

#[derive(Debug, Clone)]
pub(super) struct Memo {
    head: [u8; HEAD],
    tail: [u8; TAIL],
    tail_len: usize,
    level: Option<Level>,
    date: NaiveDate,
    family: Family,
    logger_len: usize,
    /// Start and end of `module:lineno` in the tail.
    module: Option<(usize, usize)>,
    /// [`plain`] of the header.
    plain: bool,
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            head: [0; HEAD],
            tail: [0; TAIL],
            // Matches no line: every tail has at least a logger and a `]`.
            tail_len: 0,
            level: None,
            date: NaiveDate::MIN,
            family: Family::Unknown,
            logger_len: 0,
            module: None,
            plain: false,
        }
    }
}

/// `N` ASCII digits at `at` as a number.
fn digits<const N: usize>(b: &[u8], at: usize) -> Option<u32> {
    let mut v = 0u32;
    for &c in b.get(at..at + N)? {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// `HH:MM:SS` at 14, `.` or `,`, 1 to 9 digits (the first 6 count), a space: micros of day and
/// where the logger starts.
fn time(b: &[u8]) -> Option<(i64, usize)> {
    if b.get(13) != Some(&b' ')
        || b.get(16) != Some(&b':')
        || b.get(19) != Some(&b':')
        || !matches!(b.get(22), Some(b'.' | b','))
    {
        return None;
    }
    let (h, m, s) = (
        digits::<2>(b, 14)?,
        digits::<2>(b, 17)?,
        digits::<2>(b, 20)?,
    );
    // Three digits and a space (JupyterHub's `.%(msecs).03d`), mostly: what the loop below
    // reads of them, at once.
    if let Some(ms) = digits::<3>(b, 23)
        && b.get(26) == Some(&b' ')
    {
        return Some((micros_of_day(h, m, s, ms * 1000)?, 27));
    }
    let mut i = 23;
    let mut frac = 0u32;
    while i < b.len() && b[i].is_ascii_digit() && i < 32 {
        frac = frac * 10 + u32::from(b[i] - b'0');
        i += 1;
    }
    if i == 23 || b.get(i) != Some(&b' ') {
        return None;
    }
    const SCALE: [u32; 10] = [0, 100_000, 10_000, 1_000, 100, 10, 1, 1, 1, 1];
    let n = i - 23;
    // Digits past the sixth do not count.
    let frac = if n > 6 {
        frac / 10u32.pow((n - 6) as u32)
    } else {
        frac * SCALE[n]
    };
    Some((micros_of_day(h, m, s, frac)?, i + 1))
}

impl Memo {
    /// [`prefix::bracketed_fast`]`(body)`, or `None` where that gives `None` (and sometimes
    /// where it does not: then the caller takes the general path); with [`plain`] of it.
    pub(super) fn header<'a>(&mut self, body: &'a str) -> Option<(Header<'a>, bool)> {
        if let Some(found) = self.hit(body) {
            return Some(found);
        }
        let h = prefix::bracketed_fast(body)?;
        self.remember(body, &h);
        Some((h, plain(&h)))
    }

    /// [`Memo::header`] when `body` has the remembered bytes around its time, else `None`. Every
    /// byte of the prefix it answers for is then a remembered one, or a digit, `:`, `.`, `,` or
    /// space of the time.
    pub(super) fn hit<'a>(&self, body: &'a str) -> Option<(Header<'a>, bool)> {
        let b = body.as_bytes();
        if self.tail_len > 0
            && b.first_chunk::<HEAD>() == Some(&self.head)
            && let Some((tod, at)) = time(b)
            && b.get(at..at + self.tail_len) == Some(&self.tail[..self.tail_len])
        {
            let end = at + self.tail_len;
            let rest = &body[end..];
            let h = Header {
                family: self.family,
                level: self.level,
                stamp: Stamp::Local(LocalStamp {
                    date: self.date,
                    micros_of_day: tod,
                }),
                logger: Some(&body[at..at + self.logger_len]),
                module: self.module.map(|(s, e)| &body[at + s..at + e]),
                message: rest.strip_prefix(' ').unwrap_or(rest),
            };
            return Some((h, self.plain));
        }
        None
    }

    /// Keep the bytes around the time of `body`, whose header is `h`.
    fn remember(&mut self, body: &str, h: &Header<'_>) {
        let (Some(logger), Stamp::Local(st)) = (h.logger, h.stamp) else {
            return;
        };
        let base = body.as_ptr() as usize;
        let at = logger.as_ptr() as usize - base;
        let module = h.module.map(|m| {
            (
                m.as_ptr() as usize - base - at,
                m.as_ptr() as usize - base - at + m.len(),
            )
        });
        // The `]` after the module, or after the logger when there is none.
        let close = module.map_or(logger.len(), |(_, e)| e);
        let tail = &body.as_bytes()[at..];
        if close >= TAIL || tail.get(close) != Some(&b']') || body.len() < HEAD {
            self.tail_len = 0;
            return;
        }
        self.head.copy_from_slice(&body.as_bytes()[..HEAD]);
        self.tail[..=close].copy_from_slice(&tail[..=close]);
        self.tail_len = close + 1;
        self.level = h.level;
        self.date = st.date;
        self.family = h.family;
        self.logger_len = logger.len();
        self.module = module;
        self.plain = plain(h);
    }
}
