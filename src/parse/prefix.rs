//! Line prefixes of every family that lands in a hub's log stream, parsed with nom.
//!
//! Grammar (one per family; `L` is one of `D I W E C`):
//!
//! ```text
//! hub        "[" L " " YYYY-MM-DD " " HH:MM:SS.mmm " " logger " " module ":" lineno "] " message
//!            [I 2026-11-28 15:30:10.250 JupyterHub log:192] 200 GET /hub/api/ (@127.0.0.1) 1.14ms
//! singleuser "[" L " " YYYY-MM-DD " " HH:MM:SS.mmm " " logger "] " message
//!            [I 2026-11-28 15:30:12.001 ServerApp] Kernel started: 5d7c…
//! culler 1.x "[" L " " YYMMDD " " HH:MM:SS " " module ":" lineno "] " message   (tornado default)
//!            [I 241111 16:38:10 __init__:251] Culling server alice (inactive for 01:00:41)
//! chp 5.x    YYYY-MM-DD "T" HH:MM:SS.mmm "Z [ConfigProxy] " level ": " message
//!            2026-11-28T15:32:33.223Z [ConfigProxy] info: 200 GET /api/routes
//! chp 4.x    HH:MM:SS.mmm " [ConfigProxy] " level ": " message
//!            21:44:04.424 [ConfigProxy] info: Adding route /user/jim -> http://127.0.0.1:32772
//! chp 3.x    HH:MM:SS.mmm " - " level ": [ConfigProxy] " message
//!            14:02:57.164 - info: [ConfigProxy] Removing route /user/jaime
//! kernel     "[" App "] " LEVEL " | " message
//!            [IPKernelApp] WARNING | Parent appears to have exited, shutting down.
//! ```
//!
//! The parsers take the whole (already cleaned) record text; `message` is everything after the
//! prefix, continuation lines included. Nothing here allocates.

use chrono::NaiveDate;
use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::{tag, take_till1, take_while_m_n, take_while1},
    character::complete::{char, one_of},
    combinator::{map_res, opt},
    sequence::{preceded, terminated},
};

use super::time::{LocalStamp, micros_of_day};

/// The log family a record came from: the lake's `source` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Hub,
    SingleUser,
    Culler,
    Chp,
    /// Un-prefixed output: Python tracebacks, asyncio's "Task exception was never retrieved",
    /// `warnings`, Z2JH's config-loading `print()`s.
    Python,
    Unknown,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Hub,
        Family::SingleUser,
        Family::Culler,
        Family::Chp,
        Family::Python,
        Family::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Hub => "hub",
            Family::SingleUser => "singleuser",
            Family::Culler => "culler",
            Family::Chp => "chp",
            Family::Python => "python",
            Family::Unknown => "unknown",
        }
    }

    pub fn from_name(s: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }

    fn from_letter(c: char) -> Level {
        match c {
            'D' => Level::Debug,
            'W' => Level::Warning,
            'E' => Level::Error,
            'C' => Level::Critical,
            _ => Level::Info,
        }
    }

    fn from_word(w: &str) -> Option<Level> {
        Some(match w.to_ascii_lowercase().as_str() {
            "debug" | "silly" | "verbose" => Level::Debug,
            "info" | "http" => Level::Info,
            "warn" | "warning" => Level::Warning,
            "error" => Level::Error,
            "critical" | "fatal" => Level::Critical,
            _ => return None,
        })
    }
}

/// How much of the time a prefix carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// Local wall time without a zone (hub, single-user, culler).
    Local(LocalStamp),
    /// Already UTC (CHP 5.x `…Z`), micros since the epoch.
    Utc(i64),
    /// Time of day only (CHP 3.x/4.x), micros since midnight, local time.
    TimeOnly(i64),
    None,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Header<'a> {
    pub family: Family,
    pub level: Option<Level>,
    pub stamp: Stamp,
    pub logger: Option<&'a str>,
    /// `module:lineno` as printed, e.g. `log:192`.
    pub module: Option<&'a str>,
    pub message: &'a str,
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}

/// Exactly `n` ASCII digits as a number: the fixed-width fields of every stamp. Written by hand
/// (it runs a dozen times per line) rather than as `map_res(take_while_m_n(..), str::parse)`.
fn num<'a>(n: usize) -> impl Parser<&'a str, Output = u32, Error = nom::error::Error<&'a str>> {
    move |i: &'a str| {
        let b = i.as_bytes();
        if b.len() < n || !b[..n].iter().all(u8::is_ascii_digit) {
            return Err(nom::Err::Error(nom::error::Error::new(
                i,
                nom::error::ErrorKind::Digit,
            )));
        }
        let v = b[..n]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        Ok((&i[n..], v))
    }
}

/// `YYYY-MM-DD`
fn date10(i: &str) -> IResult<&str, NaiveDate> {
    let (i, (y, _, m, _, d)) = (num(4), char('-'), num(2), char('-'), num(2)).parse(i)?;
    let date = NaiveDate::from_ymd_opt(y as i32, m, d)
        .ok_or_else(|| nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify)))?;
    Ok((i, date))
}

/// `YYMMDD` (tornado's default `%y%m%d`).
fn date6(i: &str) -> IResult<&str, NaiveDate> {
    let (i, (y, m, d)) = (num(2), num(2), num(2)).parse(i)?;
    let date = NaiveDate::from_ymd_opt(2000 + y as i32, m, d)
        .ok_or_else(|| nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify)))?;
    Ok((i, date))
}

/// `HH:MM:SS[.fff…]` → micros of day.
fn time_of_day(i: &str) -> IResult<&str, i64> {
    let (i, (h, _, m, _, s)) = (num(2), char(':'), num(2), char(':'), num(2)).parse(i)?;
    let (i, frac) = opt(preceded(one_of(".,"), take_while_m_n(1, 9, is_digit))).parse(i)?;
    let frac_micros = frac.map_or(0, |f: &str| {
        let mut v: u32 = 0;
        for (k, c) in f.bytes().take(6).enumerate() {
            v += (c - b'0') as u32 * 10u32.pow(5 - k as u32);
        }
        v
    });
    let t = micros_of_day(h, m, s, frac_micros)
        .ok_or_else(|| nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify)))?;
    Ok((i, t))
}

fn level_letter(i: &str) -> IResult<&str, Level> {
    one_of("DIWEC").map(Level::from_letter).parse(i)
}

fn module_lineno(i: &str) -> IResult<&str, &str> {
    nom::combinator::recognize((
        take_while1(|c: char| c.is_alphanumeric() || c == '_' || c == '.' || c == '-'),
        char(':'),
        take_while1(is_digit),
    ))
    .parse(i)
}

fn message(i: &str) -> &str {
    i.strip_prefix(' ').unwrap_or(i)
}

/// `[L YYYY-MM-DD HH:MM:SS.mmm logger[ module:line]] message` and the culler 1.x form.
fn bracketed(i: &str) -> IResult<&str, Header<'_>> {
    let (i, level) = preceded(char('['), terminated(level_letter, char(' '))).parse(i)?;
    alt((
        move |i| bracketed_full(i, level),
        move |i| bracketed_tornado(i, level),
    ))
    .parse(i)
}

fn bracketed_full(i: &str, level: Level) -> IResult<&str, Header<'_>> {
    let (i, (date, _, tod, _)) = (date10, char(' '), time_of_day, char(' ')).parse(i)?;
    let (i, logger) = take_till1(|c| c == ' ' || c == ']').parse(i)?;
    let (i, module) = opt(preceded(char(' '), module_lineno)).parse(i)?;
    let (i, _) = char(']').parse(i)?;
    let family = family_of(logger, module.is_some());
    Ok((
        "",
        local_header(family, level, date, tod, Some(logger), module, i),
    ))
}

fn bracketed_tornado(i: &str, level: Level) -> IResult<&str, Header<'_>> {
    let (i, (date, _, tod, _, module, _)) = (
        date6,
        char(' '),
        time_of_day,
        char(' '),
        module_lineno,
        char(']'),
    )
        .parse(i)?;
    let header = local_header(Family::Culler, level, date, tod, None, Some(module), i);
    Ok(("", header))
}

/// A header whose stamp is local wall time (hub, single-user, culler).
fn local_header<'a>(
    family: Family,
    level: Level,
    date: NaiveDate,
    micros_of_day: i64,
    logger: Option<&'a str>,
    module: Option<&'a str>,
    rest: &'a str,
) -> Header<'a> {
    let stamp = Stamp::Local(LocalStamp {
        date,
        micros_of_day,
    });
    Header {
        family,
        level: Some(level),
        stamp,
        logger,
        module,
        message: message(rest),
    }
}

const SINGLEUSER_LOGGERS: &[&str] = &[
    "ServerApp",
    "LabApp",
    "JupyterHubSingleUser",
    "NotebookApp",
    "LabServerApp",
    "NotebookNotary",
    "KernelRestarter",
    "TerminalManager",
    "ExtensionApp",
    "JupyterNotebookApp",
];

fn family_of(logger: &str, has_module: bool) -> Family {
    if logger == "IdleCuller" {
        Family::Culler
    } else if logger.starts_with("SingleUser")
        || SINGLEUSER_LOGGERS.contains(&logger)
        || !has_module
    {
        Family::SingleUser
    } else {
        Family::Hub
    }
}

fn chp_level(i: &str) -> IResult<&str, Level> {
    map_res(take_while1(|c: char| c.is_ascii_alphabetic()), |w: &str| {
        Level::from_word(w).ok_or("level")
    })
    .parse(i)
}

/// CHP 5.x: `2026-11-28T15:32:33.223Z [ConfigProxy] info: message`
fn chp5(i: &str) -> IResult<&str, Header<'_>> {
    let (i, (date, _, tod, _, _, level, _)) = (
        date10,
        char('T'),
        time_of_day,
        tag("Z "),
        tag("[ConfigProxy] "),
        chp_level,
        char(':'),
    )
        .parse(i)?;
    let utc = super::time::days_since_epoch(date) * 86_400_000_000 + tod;
    Ok(("", chp_header(level, Stamp::Utc(utc), i)))
}

/// CHP 4.x `HH:MM:SS.mmm [ConfigProxy] info: message` and 3.x `HH:MM:SS.mmm - info: [ConfigProxy] message`.
fn chp_old(i: &str) -> IResult<&str, Header<'_>> {
    let (i, tod) = time_of_day(i)?;
    let v4 = (tag(" [ConfigProxy] "), chp_level, char(':')).map(|(_, l, _)| l);
    let v3 = (tag(" - "), chp_level, tag(": [ConfigProxy]")).map(|(_, l, _)| l);
    let (i, level) = alt((v4, v3)).parse(i)?;
    Ok(("", chp_header(level, Stamp::TimeOnly(tod), i)))
}

fn chp_header(level: Level, stamp: Stamp, rest: &str) -> Header<'_> {
    Header {
        family: Family::Chp,
        level: Some(level),
        stamp,
        logger: Some("ConfigProxy"),
        module: None,
        message: message(rest),
    }
}

/// `[IPKernelApp] WARNING | message`
fn kernel_app(i: &str) -> IResult<&str, Header<'_>> {
    let (i, (_, app, _, word, _)) = (
        char('['),
        take_while1(|c: char| c.is_ascii_alphanumeric()),
        tag("] "),
        take_while1(|c: char| c.is_ascii_uppercase()),
        tag(" |"),
    )
        .parse(i)?;
    let level = Level::from_word(word);
    Ok((
        "",
        Header {
            family: Family::SingleUser,
            level,
            stamp: Stamp::None,
            logger: Some(app),
            module: None,
            message: message(i),
        },
    ))
}

/// Parse the prefix of a record; `None` if no family's prefix matches.
pub fn header(text: &str) -> Option<Header<'_>> {
    let first = *text.as_bytes().first()?;
    let r = match first {
        b'[' => {
            if let Some(h) = fast::bracketed(text) {
                return Some(h);
            }
            alt((bracketed, kernel_app)).parse(text)
        }
        b'0'..=b'9' => alt((chp5, chp_old)).parse(text),
        _ => return None,
    };
    r.ok().map(|(_, h)| h)
}

/// [`header`] of a record that starts with a hub or single-user stamp, by the byte-level fast
/// path alone: `None` for anything it does not take (which [`header`] may still parse).
pub(super) fn bracketed_fast(text: &str) -> Option<Header<'_>> {
    fast::bracketed(text)
}

/// Byte-level fast path for the fixed-width stamp of hub and single-user lines
/// (`[I 2026-11-28 15:30:10.250 JupyterHub log:192] …`), which make up nearly every line of a
/// hub's log. It accepts a strict subset of what [`bracketed_full`] accepts (ASCII module names
/// only) and returns exactly the same [`Header`]; anything else, valid or not, returns `None`
/// and goes to the nom grammar, which stays the reference.
mod fast {
    use std::cell::Cell;

    use chrono::NaiveDate;

    use super::{Header, Level, family_of, local_header};
    use crate::parse::time::micros_of_day;

    fn digits<const N: usize>(b: &[u8], at: usize) -> Option<u32> {
        let d = b.get(at..at + N)?;
        let mut v = 0u32;
        for &c in d {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    }

    thread_local! {
        /// The last `(y, m, d)` validated, and its date: a log stays on one day for hours.
        static LAST_DATE: Cell<(u32, u32, u32, Option<NaiveDate>)> = const { Cell::new((0, 0, 0, None)) };
    }

    fn date(y: u32, m: u32, d: u32) -> Option<NaiveDate> {
        LAST_DATE.with(|c| {
            let (cy, cm, cd, date) = c.get();
            if (cy, cm, cd) == (y, m, d) && date.is_some() {
                return date;
            }
            let date = NaiveDate::from_ymd_opt(y as i32, m, d)?;
            c.set((y, m, d, Some(date)));
            Some(date)
        })
    }

    /// `[L YYYY-MM-DD HH:MM:SS.f… logger[ module:lineno]] message`
    pub(super) fn bracketed(text: &str) -> Option<Header<'_>> {
        let b = text.as_bytes();
        let level = match b.get(1)? {
            b'D' => Level::Debug,
            b'I' => Level::Info,
            b'W' => Level::Warning,
            b'E' => Level::Error,
            b'C' => Level::Critical,
            _ => return None,
        };
        let fixed = b.get(..23)?;
        if fixed[0] != b'['
            || fixed[2] != b' '
            || fixed[7] != b'-'
            || fixed[10] != b'-'
            || fixed[13] != b' '
            || fixed[16] != b':'
            || fixed[19] != b':'
            || !matches!(fixed[22], b'.' | b',')
        {
            return None;
        }
        let (y, mo, d) = (digits::<4>(b, 3)?, digits::<2>(b, 8)?, digits::<2>(b, 11)?);
        let (h, mi, s) = (
            digits::<2>(b, 14)?,
            digits::<2>(b, 17)?,
            digits::<2>(b, 20)?,
        );
        // 1 to 9 fraction digits (the first 6 count), then a space.
        let mut i = 23;
        let mut frac = 0u32;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - 23 < 6 {
                frac += u32::from(b[i] - b'0') * 10u32.pow(5 - (i - 23) as u32);
            }
            i += 1;
        }
        if i == 23 || i - 23 > 9 || b.get(i) != Some(&b' ') {
            return None;
        }
        let tod = micros_of_day(h, mi, s, frac)?;
        let date = date(y, mo, d)?;
        let rest = &text[i + 1..];
        let end = memchr::memchr2(b' ', b']', rest.as_bytes())?;
        if end == 0 {
            return None;
        }
        let logger = &rest[..end];
        let after = &rest[end..];
        let (module, tail) = if after.as_bytes()[0] == b']' {
            (None, &after[1..])
        } else {
            let (module, tail) = module_lineno(&after[1..])?;
            (Some(module), tail)
        };
        let family = family_of(logger, module.is_some());
        Some(local_header(
            family,
            level,
            date,
            tod,
            Some(logger),
            module,
            tail,
        ))
    }

    /// ASCII `name:digits]`; returns the `name:digits` and the text after `]`.
    fn module_lineno(s: &str) -> Option<(&str, &str)> {
        let b = s.as_bytes();
        let name = b
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-')))?;
        if name == 0 || b[name] != b':' {
            return None;
        }
        let num = b[name + 1..].iter().position(|c| !c.is_ascii_digit())? + name + 1;
        if num == name + 1 || b[num] != b']' {
            return None;
        }
        Some((&s[..num], &s[num + 1..]))
    }
}

/// Cheap test used while assembling lines into records: does this line open a new record?
pub fn starts_record(line: &[u8]) -> bool {
    match line.first() {
        Some(b'[') => {
            matches!(line.get(1), Some(b'D' | b'I' | b'W' | b'E' | b'C'))
                && line.get(2) == Some(&b' ')
                && line.get(3).is_some_and(u8::is_ascii_digit)
                || line.get(1).is_some_and(u8::is_ascii_uppercase)
                    && memchr::memmem::find(line, b"] ").is_some_and(|p| p < 40)
        }
        Some(b'0'..=b'9') => memchr::memmem::find(line, b"[ConfigProxy]").is_some_and(|p| p < 40),
        Some(0x1b) => true,
        _ => false,
    }
}

#[cfg(test)]
#[path = "prefix_tests.rs"]
mod tests;
