//! Messages rebuilt from their columns, so the lake stores no second copy of them.
//!
//! A request line is JupyterHub's `log_request` (`jupyterhub/log.py`, the same from 1.x to
//! 5.x and in the `jupyterhub-singleuser` extension):
//!
//! ```text
//! msg = "{status} {method} {uri}{location} ({user}@{ip}) {request_time:.2f}ms"
//! ```
//!
//! with `location = " -> {location}"` for a redirect and `user` empty for an anonymous request.
//! The parser reads those into `status`, `method`, `path`, `target`, `actor`, `client_ip` and
//! `duration_ms` ([`crate::parse::request`]). A stored row whose message is exactly that rebuild
//! (checked here, byte for byte, when the row is written) keeps its `text` null; any other row
//! (another shape, odd spacing, a scrubbed secret, several lines) keeps its text whole.
//!
//! The rebuild is one SQL expression ([`message_sql`]) so every reader can run it: the
//! `events` view of `hubpulse query`, and the views docs/ENGINES.md gives for DuckDB, Spark and
//! Athena. Durations are written from integer hundredths of a millisecond, `round(ms * 100)`,
//! which is what `{:.2f}` prints for a duration read from two decimals.

use std::fmt::Write as _;

/// A duration as `log_request` prints it (`12.34`) from its hundredths of a millisecond.
fn centis(ms: f64) -> Option<i64> {
    let c = (ms * 100.0).round();
    (c.is_finite() && (0.0..1e15).contains(&c)).then_some(c as i64)
}

/// Whether `text` is the duration `ms` as [`message_sql`] prints it: `{c / 100}.{c % 100:02}`
/// for `c` its hundredths (so no sign, no leading zero but a lone `0`, exactly two decimals).
/// Read digit by digit rather than printed (this runs on every request line).
pub fn duration_is(text: &str, ms: f64) -> bool {
    let Some(c) = centis(ms) else {
        return false;
    };
    let Some((int, frac)) = text.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || frac.len() != 2 || !digits(frac) || (int.len() > 1 && int.starts_with('0')) {
        return false;
    }
    if int.len() > 15 {
        return false;
    }
    let value = |s: &str| s.bytes().fold(0i64, |a, b| a * 10 + i64::from(b - b'0'));
    value(int) * 100 + value(frac) == c
}

/// `message` without the status `status` and the space after it.
fn after_status(message: &str, status: i32) -> Option<&str> {
    let b = message.as_bytes();
    if (100..1000).contains(&status) && b.len() > 3 && b[3] == b' ' {
        let want = [
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ];
        return (b[..3] == want).then(|| &message[4..]);
    }
    let mut buf = Small::default();
    let _ = write!(buf, "{status} ");
    message.strip_prefix(buf.as_str())
}

/// The fields of a request row that its message is rebuilt from.
#[derive(Debug, Clone, Copy)]
pub struct RequestFields<'a> {
    pub status: i32,
    pub method: &'a str,
    pub path: &'a str,
    pub target: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub client_ip: &'a str,
    pub duration_ms: f64,
}

impl RequestFields<'_> {
    /// Whether `message` is exactly this request's `log_request` line.
    pub fn rebuilds(&self, message: &str) -> bool {
        let rest = after_status(message, self.status);
        let rest = rest.and_then(|r| r.strip_prefix(self.method));
        let rest = rest.and_then(|r| r.strip_prefix(' '));
        let rest = rest.and_then(|r| r.strip_prefix(self.path));
        let rest = match self.target {
            Some(t) => rest
                .and_then(|r| r.strip_prefix(" -> "))
                .and_then(|r| r.strip_prefix(t)),
            None => rest,
        };
        let rest = rest.and_then(|r| r.strip_prefix(" ("));
        let rest = rest.and_then(|r| r.strip_prefix(self.actor.unwrap_or("")));
        let rest = rest.and_then(|r| r.strip_prefix('@'));
        let rest = rest.and_then(|r| r.strip_prefix(self.client_ip));
        let rest = rest.and_then(|r| r.strip_prefix(") "));
        let rest = rest.and_then(|r| r.strip_suffix("ms"));
        rest.is_some_and(|d| duration_is(d, self.duration_ms))
    }
}

/// The SQL dialects the rebuild is written for (they differ in casts and integer division).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// DataFusion (`hubpulse query`).
    DataFusion,
    /// DuckDB (its `/` divides as floating point; `//` is the integer division).
    DuckDb,
    /// Spark SQL (`div` is the integer division; double quotes make strings, backquotes names).
    Spark,
    /// Athena (Trino).
    Athena,
}

impl Dialect {
    fn string(self) -> &'static str {
        match self {
            Dialect::Spark => "STRING",
            Dialect::DataFusion | Dialect::DuckDb | Dialect::Athena => "VARCHAR",
        }
    }

    /// The integer quotient of `a` by `b` (both integer expressions).
    fn div(self, a: &str, b: &str) -> String {
        match self {
            Dialect::Spark => format!("{a} div {b}"),
            Dialect::DuckDb => format!("{a} // {b}"),
            Dialect::DataFusion | Dialect::Athena => format!("{a} / {b}"),
        }
    }

    /// `name` quoted as an identifier (for names that are also keywords: `user`, `count`).
    pub fn quote(self, name: &str) -> String {
        match self {
            Dialect::Spark => format!("`{name}`"),
            _ => format!("\"{name}\""),
        }
    }
}

/// `log_request`'s duration from the hundredths of a millisecond `c` (an integer expression).
fn duration_sql(c: &str, d: Dialect) -> String {
    let s = d.string();
    let (div, rem) = (d.div(&format!("({c})"), "100"), format!("({c}) % 100"));
    format!("concat(CAST({div} AS {s}), '.', lpad(CAST({rem} AS {s}), 2, '0'))")
}

/// The request line rebuilt from the columns `status`, `method`, `path`, `target`, `actor`,
/// `client_ip` and the hundredths-of-a-millisecond expression `centis`.
fn request_line(centis: &str, d: Dialect) -> String {
    let s = d.string();
    format!(
        "concat(CAST(status AS {s}), ' ', method, ' ', path, \
         CASE WHEN target IS NULL THEN '' ELSE concat(' -> ', target) END, \
         ' (', COALESCE(actor, ''), '@', client_ip, ') ', {}, 'ms')",
        duration_sql(centis, d)
    )
}

/// The message of a stored `events` or `lifecycle` row: its `text`, or the request line its
/// columns rebuild.
pub fn message_sql(d: Dialect) -> String {
    format!(
        "COALESCE(text, {})",
        request_line("CAST(round(duration_ms * 100) AS BIGINT)", d)
    )
}

/// The request line of a heartbeat unnested from `activity` (its `status`, `user`,
/// `client_ip`, and `duration_cs` in hundredths of a millisecond: see [`crate::lake::heartbeat`]).
pub fn heartbeat_message_sql(d: Dialect) -> String {
    let s = d.string();
    let user = d.quote("user");
    format!(
        "concat(CAST(status AS {s}), ' POST /hub/api/users/', {user}, '/activity (', {user}, \
         '@', client_ip, ') ', {}, 'ms')",
        duration_sql("duration_cs", d)
    )
}

/// A stack buffer for the few short numbers written per row (no allocation on the hot path).
#[derive(Default)]
struct Small {
    buf: [u8; 32],
    len: usize,
}

impl Small {
    fn as_str(&self) -> &str {
        // Only `str`s are written into it.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for Small {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(target: Option<&'a str>, actor: Option<&'a str>, ms: f64) -> RequestFields<'a> {
        RequestFields {
            status: 302,
            method: "GET",
            path: "/hub/",
            target,
            actor,
            client_ip: "::ffff:10.244.0.1",
            duration_ms: ms,
        }
    }

    /// Lines as `log_request` writes them (`jupyterhub/log.py`), and near misses.
    #[test]
    fn request_lines_rebuild_exactly_or_not_at_all() {
        let r = req(Some("/hub/spawn"), Some("ana@example.org"), 13.12);
        let line = "302 GET /hub/ -> /hub/spawn (ana@example.org@::ffff:10.244.0.1) 13.12ms";
        assert!(r.rebuilds(line));
        let anon = req(None, None, 0.5);
        assert!(anon.rebuilds("302 GET /hub/ (@::ffff:10.244.0.1) 0.50ms"));
        for miss in [
            "302 GET /hub/ (@::ffff:10.244.0.1) 0.5ms",
            "302 GET /hub/ (@::ffff:10.244.0.1)  0.50ms",
            "302 GET /hub/ (@::ffff:10.244.0.1) 0.50ms ",
            "302 GET /hub/ → /hub/spawn (@::ffff:10.244.0.1) 0.50ms",
            "302  GET /hub/ (@::ffff:10.244.0.1) 0.50ms",
        ] {
            assert!(!anon.rebuilds(miss), "{miss}");
        }
        assert!(!req(None, None, f64::NAN).rebuilds("302 GET /hub/ (@::ffff:10.244.0.1) NaNms"));
        let odd = RequestFields { status: 42, ..anon };
        assert!(odd.rebuilds("42 GET /hub/ (@::ffff:10.244.0.1) 0.50ms"));
        assert!(!odd.rebuilds("042 GET /hub/ (@::ffff:10.244.0.1) 0.50ms"));
    }

    #[test]
    fn durations_print_as_log_request_does() {
        assert!(duration_is("28.73", 28.73));
        assert!(duration_is("0.07", 0.07));
        assert!(duration_is("1000.00", 1000.0));
        assert!(!duration_is("28.730", 28.73));
        assert!(!duration_is("-1.00", -1.0));
        assert!(!duration_is("028.73", 28.73));
        assert!(!duration_is("28.7", 28.7));
        assert!(!duration_is("+28.73", 28.73));
        assert!(!duration_is("28.74", 28.73));
        // The reading agrees with the printing it replaces, value by value.
        for c in [0i64, 1, 9, 10, 99, 100, 101, 999, 1000, 123456] {
            let ms = c as f64 / 100.0;
            assert!(
                duration_is(&format!("{}.{:02}", c / 100, c % 100), ms),
                "{c}"
            );
        }
    }

    /// Spark reads `"user"` as the string 'user' (every heartbeat became `users/user/activity`
    /// once): each dialect names the column.
    #[test]
    fn heartbeat_line_quotes_user_as_a_column_in_each_dialect() {
        let spark = heartbeat_message_sql(Dialect::Spark);
        assert!(!spark.contains("\"user\""), "{spark}");
        assert_eq!(spark.matches("`user`").count(), 2, "{spark}");
        for d in [Dialect::DataFusion, Dialect::DuckDb, Dialect::Athena] {
            assert_eq!(heartbeat_message_sql(d).matches("\"user\"").count(), 2);
        }
    }
}
