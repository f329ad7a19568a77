//! The fast path for the commonest record of a hub's log: a JupyterHub request line, alone on
//! its line, in printable ASCII, e.g.
//!
//! ```text
//! [I 2026-11-02 00:00:01.234 JupyterHub log:191] 200 POST /hub/api/users/alice/activity (alice@10.0.0.1) 3.21ms
//! ```
//!
//! The prefix is JupyterHub's default `log_format` (`app.py` `_log_format_default`:
//! `[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s %(module)s:%(lineno)d] %(message)s`) and
//! the message `log.py` `log_request`'s `"{status} {method} {uri}{location} ({user}@{ip})
//! {request_time:.2f}ms"`, `location` being `" -> {uri}"` on redirects. Request lines are about
//! 89 % of a hub's log (of the generator's output too), nearly all of them the single-user
//! servers' activity heartbeats.
//!
//! [`Parser::request_line`] takes a record only when it can tell, cheaply, that the general path
//! ([`Parser::parse`]) would clean nothing and parse it as a request; it then fills the record
//! as the general path does, with the same functions for the stamp and stream state
//! (`Parser::timestamp`), the route (`route::classify`), enrichment and the counters
//! (`Parser::finish`). Anything else is handed back (`Err`) before any state changed, and the
//! general path (the reference) parses the record. Why the shortcuts are exact:
//!
//! * Cleaning: a record of printable ASCII (`0x20..=0x7e`, after its trailing newlines) has no
//!   NUL, escape or carriage return and is valid UTF-8, so the general path's cleaning borrows
//!   it unchanged and sets no flag; its trimmed body is the same slice. A line whose prefix the
//!   prefix memo answers for and whose message [`heartbeat`] or the request memo does is not
//!   scanned for it: every byte is then one compared equal to a remembered byte of a line that
//!   was scanned or to a literal, or one checked to be a digit, `.`, `,`, `:`, space, `)` or
//!   `ms`, or one of `heartbeat`'s name and address bytes.
//! * Prefix: [`Memo::header`] answers as `prefix::bracketed_fast` does, the first thing
//!   `prefix::header` tries on a record starting with `[`; when it answers, `header` returns
//!   that answer.
//! * Request: [`request_after`] answers only where `request::parse` gives that answer, and
//!   [`Requests`] answers as it did for the same text before the duration (`fastmemo`).
//!   [`heartbeat`] reads the one text most lines have, a running server's activity report
//!   (`singleuser/extension.py` posts it; `apihandlers/users.py` `ActivityAPIHandler` answers
//!   `200`), straight and without a table: see its docs.
//! * Scrubbing: with a logger and module free of `= % ' " /` ([`plain`]) the general path
//!   prescans the message only, with [`scrub::may_hold_secret`]; the fast path leaves the
//!   record to the general path when that same function says yes on the same message. It skips
//!   the call for a message without `=`, `%`, `:`, `k`, `x` and `z`, where the function says no
//!   without looking further (its syntax scan finds no `=`, `%` or `:`, and each of its markers
//!   holds a `k`, `x` or `z`). So no record the fast path takes can hold what `parse::scrub`
//!   removes: the prescan is the scrubber's own first step, and `scrub` returns the text
//!   unchanged when it says no (tested: `scrub::scrub` changes no record the fast path takes).
//! * Names: printable ASCII holds no control character, and the only names not cut from the
//!   text as they are, are percent-decoded path segments; so without a `%` in the message, the
//!   general path's `reject_control_names` finds nothing (it is run when there is a `%`).
//!   Enrichment changes no name of a `request` record ([`Enricher::apply`] has no arm for it).

use std::borrow::Cow;

use super::enrich::{EnrichOp, Enricher};
use super::fastmemo::Requests;
use super::fastprefix::Memo;
use super::fields::{reject_control_names, set_path};
use super::prefix::{Family, Header};
use super::reader::RawRecord;
use super::record::Record;
use super::request::{self, Request};
use super::route::{self, RouteInfo};
use super::scrub;
use super::text::Flags;
use super::{KIND_MESSAGE, KIND_REQUEST, Parser};

/// Whether every byte is printable ASCII (`0x20..=0x7e`). No early exit: the compiler
/// vectorises the whole scan.
pub(super) fn printable_ascii(b: &[u8]) -> bool {
    b.iter()
        .fold(0u8, |bad, &c| bad | u8::from(c.wrapping_sub(0x20) > 0x5e))
        == 0
}

/// A logger or module that could hold a key or value: the scrubber's prescan then looks at the
/// whole record, not just its message.
pub(super) fn odd_word(w: Option<&str>) -> bool {
    w.is_some_and(|w| {
        w.bytes()
            .any(|b| matches!(b, b'=' | b'%' | b'\'' | b'"' | b'/'))
    })
}

impl Parser {
    /// Parse a request line the fast path takes (see the module docs) and hand its record to
    /// `f`; `Err(f)` for any other record, before anything changed (parse it with the general
    /// path).
    pub(super) fn request_line<'r, T, F: FnOnce(&Record<'_>) -> T>(
        &mut self,
        raw: &RawRecord<'r>,
        mut flags: Flags,
        f: F,
    ) -> Result<T, F> {
        let Some((h, r, info, percent)) = self
            .fast_path
            .then(|| take(raw, &mut self.prefix_memo, &mut self.requests))
            .flatten()
        else {
            return Err(f);
        };
        self.one_line = true;
        // The general path's `header_record`, `fill_request` and `set_path`, in one go.
        let ts = self.timestamp(h.stamp);
        let actor = (!r.actor.is_empty()).then_some(r.actor);
        let mut rec = Record {
            ts,
            ts_hint: None,
            source: h.family,
            level: h.level,
            logger: h.logger,
            module: h.module,
            kind: KIND_REQUEST,
            user: info.user.or(actor.map(Cow::Borrowed)),
            actor,
            server_name: info.server,
            method: Some(r.method),
            status: Some(r.status),
            route: Some(info.route),
            path: Some(r.path),
            target: r.redirect,
            client_ip: Some(r.ip),
            service: None,
            duration_ms: Some(r.duration_ms),
            exit_code: None,
            count: None,
            attrs: Vec::new(),
            message: h.message,
            lines: 1,
            flags: Flags::default(),
            offset: 0,
            length: 0,
        };
        self.enrich_or_defer(&mut rec);
        if percent {
            reject_control_names(&mut rec, &mut flags);
        }
        self.finish(raw, &mut rec, flags);
        Ok(f(&rec))
    }

    /// A `message` record with the header's fields and stamp (the stamp moves the stream state).
    pub(super) fn header_record<'r>(&mut self, h: &Header<'r>) -> Record<'r> {
        let mut rec = Record::new(KIND_MESSAGE, h.family, h.message);
        rec.ts = self.timestamp(h.stamp);
        rec.level = h.level;
        rec.logger = h.logger;
        rec.module = h.module;
        rec
    }

    /// Enrichment applied inline, or left to the caller ([`Parser::take_deferred`]).
    pub(super) fn enrich_or_defer(&mut self, rec: &mut Record<'_>) {
        if !self.defer {
            self.enrich.apply(rec);
        } else if Enricher::wants(rec) {
            self.deferred = Some(EnrichOp::of(rec));
        }
    }
}

/// What [`take`] finds: header, request, route, whether the message holds a `%`.
type Taken<'r> = (Header<'r>, Request<'r>, RouteInfo<'r>, bool);

/// The header, request and route of a record the fast path takes, and whether its message
/// holds a `%`; reads, changes nothing (but what it remembers of lines before).
pub(super) fn take<'r>(
    raw: &RawRecord<'r>,
    memo: &mut Memo,
    requests: &mut Requests,
) -> Option<Taken<'r>> {
    if raw.lines != 1 {
        return None;
    }
    let mut b = raw.bytes;
    while let [rest @ .., b'\n'] = b {
        b = rest;
    }
    if b.first() != Some(&b'[') {
        return None;
    }
    let body = std::str::from_utf8(b).ok()?;
    // A line is taken only in printable ASCII. A prefix the memo answers for is (`Memo::hit`:
    // remembered bytes of a line that was, and the time's); so is a message the request memo
    // answers for (a kept text of a line that was, and `) {digits and dots}ms`), and one
    // `heartbeat` reads (every byte of its text checked against its classes). The line is
    // checked when the prefix memo does not answer, or neither of those does, before
    // anything is remembered of it.
    let (h, plain, checked) = match memo.hit(body) {
        Some((h, plain)) => (h, plain, false),
        None if printable_ascii(b) => {
            let (h, plain) = memo.header(body)?;
            (h, plain, true)
        }
        None => return None,
    };
    if !plain {
        return None;
    }
    // Most other messages fail here, before a scan: no `) {duration}ms` at the end.
    let msg = h.message;
    let (d, duration_ms) = duration_back(msg)?;
    // The text before the duration: up to the `)` before its space (see `fastmemo`).
    let key = &msg[..d - 1];
    if let Some((r, info, wary)) = heartbeat(key, duration_ms) {
        // The message is this text, a space, digits, a dot and `ms`: printable ASCII, and
        // with a prescan gate byte only where the text has one.
        if wary && scrub::may_hold_secret(msg) {
            return None;
        }
        return Some((h, r, info, false));
    }
    if let Some(seen) = requests.get(msg, key, duration_ms) {
        // Its message is this one but for the duration, which holds none of the prescan's
        // gate bytes: the same prescan answer.
        if seen.wary && scrub::may_hold_secret(msg) {
            return None;
        }
        return Some((h, seen.request, seen.info, seen.percent));
    }
    if !checked && !printable_ascii(b) {
        return None;
    }
    let (status, method, rest) = status_method(msg)?;
    let m = msg.as_bytes();
    let wary = m.iter().fold(false, |any, &c| any | gate_byte(c));
    if wary && scrub::may_hold_secret(msg) {
        return None;
    }
    let r = request_after(status, method, rest)?;
    let info = route::classify(r.path);
    let percent = wary && memchr::memchr(b'%', m).is_some();
    requests.keep(msg, key, &r, &info, (wary, percent));
    Some((h, r, info, percent))
}

/// A byte without which `scrub::may_hold_secret` says no without a look: `=`, `%` and `:` (its
/// syntax), `k`, `x` and `z` (each of its markers holds one).
pub(super) const fn gate_byte(c: u8) -> bool {
    matches!(c, b'=' | b'%' | b':' | b'k' | b'x' | b'z')
}

/// What a byte can be in the texts [`heartbeat`] reads, as bits of one table lookup: a byte of
/// a name ([`NAME`]: one that no step of `request::parse` or `route::classify` treats apart, so
/// not `/ ? # % ( ) @` or space), of an address ([`IP`]), a prescan gate byte ([`GATE`]: the
/// ones names and addresses can hold, `k x z :`).
const NAME: u8 = 1;
const IP: u8 = 2;
const GATE: u8 = 4;
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            t[c] |= NAME;
        }
        if b.is_ascii_hexdigit() || matches!(b, b'.' | b':') {
            t[c] |= IP;
        }
        if gate_byte(b) {
            t[c] |= GATE;
        }
        c += 1;
    }
    t
};

/// `200 POST /hub/api/users/{name}/activity ({name}@{ip})`, the text of a heartbeat up to its
/// `)`, with `name` of [`NAME`] bytes and `ip` of hex digits, dots and colons (IPv4 or IPv6, as
/// Tornado's `remote_ip` prints them): its request and route, and whether it holds a prescan
/// gate byte (`k`, `x` or `z` in the name, `:` in the address). `None` for any other.
///
/// Exact: in such a text `request_after` finds the path between the method and the last ` (`
/// (no ` -> `: no redirect), the name (actor) up to the last `@` and the address up to the `)`;
/// `route::classify` of a path of plain segments without `?`, `#` or `%` matches the template
/// `/hub/api/users/{user}/activity`, borrows the name undecoded, and names no server (not a
/// server route). The differential tests (`parse::differential`) hold both paths to this on
/// the fixtures' real heartbeats, the generator's output and near misses.
fn heartbeat(key: &str, duration_ms: f64) -> Option<(Request<'_>, RouteInfo<'_>, bool)> {
    const HEAD: &str = "200 POST /hub/api/users/";
    const TAIL: &str = "/activity (";
    let b = key.as_bytes();
    let rest = b.strip_prefix(HEAD.as_bytes())?;
    let (mut n, mut seen) = (0, 0u8);
    while let Some(&c) = rest.get(n) {
        let class = CLASS[usize::from(c)];
        if class & NAME == 0 {
            break;
        }
        seen |= class;
        n += 1;
    }
    let name = rest.get(..n).filter(|_| n > 0)?;
    let after = rest[n..].strip_prefix(TAIL.as_bytes())?;
    let ip = after
        .strip_prefix(name)?
        .strip_prefix(b"@")?
        .strip_suffix(b")")?;
    let all = ip.iter().fold(IP, |all, &c| all & CLASS[usize::from(c)]);
    let any = ip.iter().fold(seen, |any, &c| any | CLASS[usize::from(c)]);
    if ip.is_empty() || all & IP == 0 {
        return None;
    }
    // Every byte checked is ASCII: these are char boundaries.
    let at = HEAD.len();
    let name = &key[at..at + n];
    let ip = &key[key.len() - 1 - ip.len()..key.len() - 1];
    let r = Request {
        status: 200,
        method: &key[4..8],
        path: &key["200 POST ".len()..at + n + "/activity".len()],
        redirect: None,
        actor: name,
        ip,
        duration_ms,
    };
    let info = RouteInfo {
        route: route::ACTIVITY,
        user: Some(Cow::Borrowed(name)),
        server: None,
    };
    Some((r, info, any & GATE != 0))
}

/// [`duration_back`] of `) {digits}.{2 digits}ms` (`end` is where the `ms` starts), with 1 to 13
/// digits before the dot: the case it reads itself, taken straight (`None`: any other).
fn two_decimals(b: &[u8], end: usize) -> Option<(usize, f64)> {
    let digit = |i: usize| b[i].wrapping_sub(b'0');
    if end < 6 || b[end - 3] != b'.' || digit(end - 1) > 9 || digit(end - 2) > 9 {
        return None;
    }
    let mut mant = u64::from(digit(end - 2)) * 10 + u64::from(digit(end - 1));
    let (mut i, mut scale) = (end - 3, 100u64);
    // Stops before a 14th digit: `duration_back` then reads the whole run itself.
    while i > 2 && end - 3 - i < 13 && digit(i - 1) <= 9 {
        mant += u64::from(digit(i - 1)) * scale;
        scale *= 10;
        i -= 1;
    }
    (i < end - 3 && b[i - 1] == b' ' && b[i - 2] == b')')
        .then(|| (i, mant as f64 / request::POW10[2]))
}

/// `) {duration}ms` at the end of `b`: where the duration starts and ends, after `) `.
#[cfg(test)]
fn duration_at(b: &[u8]) -> Option<(usize, usize)> {
    let end = b.len().checked_sub(2)?;
    if b[end..] != *b"ms" {
        return None;
    }
    let mut d = end;
    while d > 0 && matches!(b[d - 1], b'0'..=b'9' | b'.') {
        d -= 1;
    }
    (d >= 2 && b[d - 1] == b' ' && b[d - 2] == b')').then_some((d, end))
}

/// [`duration_at`] of `m` and [`request::duration`] of the digits and dots it finds, in one
/// scan back from the `ms`: where the duration starts, and its value.
///
/// Exact: the scan stops where `duration_at`'s does. For 1 to 15 digits with at most one dot,
/// neither first nor last (JupyterHub's `{request_time:.2f}`), `request::duration` computes
/// the digits as one integer over 10 to the number of digits after the dot, in one division:
/// so does this, with the integer summed from the right. Anything else is handed to
/// `request::duration` itself.
fn duration_back(m: &str) -> Option<(usize, f64)> {
    let b = m.as_bytes();
    let end = b.len().checked_sub(2)?;
    if b[end..] != *b"ms" {
        return None;
    }
    if let Some(found) = two_decimals(b, end) {
        return Some(found);
    }
    let (mut mant, mut scale) = (0u64, 1u64);
    let (mut n, mut digits, mut dots, mut frac) = (0usize, 0usize, 0usize, 0usize);
    for &c in b[..end].iter().rev() {
        let v = c.wrapping_sub(b'0');
        if v <= 9 {
            if digits < 15 {
                mant += u64::from(v) * scale;
                scale *= 10;
            }
            digits += 1;
        } else if c == b'.' {
            dots += 1;
            frac = digits;
        } else {
            break;
        }
        n += 1;
    }
    let d = end - n;
    if d < 2 || b[d - 1] != b' ' || b[d - 2] != b')' {
        return None;
    }
    let plain = (1..=15).contains(&digits) && (dots == 0 || dots == 1 && frac > 0 && b[d] != b'.');
    if !plain {
        return Some((d, request::duration(&m[d..end])?));
    }
    Some((d, mant as f64 / request::POW10[frac]))
}

/// Whether a hub or single-user header's logger and module are free of what sends a record's
/// whole text to the scrubber's prescan ([`odd_word`]), so the prescan looks at its message.
pub(super) fn plain(h: &Header<'_>) -> bool {
    matches!(h.family, Family::Hub | Family::SingleUser)
        && !odd_word(h.logger)
        && !odd_word(h.module)
}

/// [`request::parse`] of a message of printable ASCII, in one scan from its end: `Some` only
/// where `request::parse` gives the same answer, `None` where it is not sure (a duration that
/// is not digits and a dot, …).
#[cfg(test)]
fn request(msg: &str) -> Option<Request<'_>> {
    let (status, method, rest) = status_method(msg)?;
    request_after(status, method, rest)
}

/// [`request`] after its status and method.
fn request_after<'a>(status: u16, method: &'a str, rest: &'a str) -> Option<Request<'a>> {
    let b = rest.as_bytes();
    // `{request_time:.2f}ms`, after the last space.
    let (d, duration_ms) = duration_back(rest)?;
    // `({user}@{ip})`: opens at the last ` (`; the name ends at the last `@` in it.
    let close = d - 2;
    let mut end = close;
    let open = loop {
        let i = memchr::memrchr(b'(', &b[..end])?;
        if i > 0 && b[i - 1] == b' ' {
            break i - 1;
        }
        end = i;
    };
    let at = memchr::memrchr(b'@', &b[open + 2..close])? + open + 2;
    // `{uri}{location}`: ` -> {location}` after the first ` -> `.
    let target = &b[..open];
    let mut arrow = None;
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'-', &target[from..]) {
        let i = from + i;
        if i > 0 && target[i - 1] == b' ' && target.get(i + 1..i + 3) == Some(b"> ") {
            arrow = Some(i);
            break;
        }
        from = i + 1;
    }
    let (path, redirect) = match arrow {
        Some(i) => (&rest[..i - 1], Some(&rest[i + 3..open])),
        None => (&rest[..open], None),
    };
    if path.is_empty() {
        return None;
    }
    Some(Request {
        status,
        method,
        path,
        redirect,
        actor: &rest[open + 2..at],
        ip: &rest[at + 1..close],
        duration_ms,
    })
}

/// [`request::status_method`] (`3DIGIT " " 1*UPPER " "`): status, method, and what follows.
fn status_method(m: &str) -> Option<(u16, &str, &str)> {
    let b = m.as_bytes();
    if b.len() < 5 || b[3] != b' ' {
        return None;
    }
    let (x, y, z) = (
        b[0].wrapping_sub(b'0'),
        b[1].wrapping_sub(b'0'),
        b[2].wrapping_sub(b'0'),
    );
    if x > 9 || y > 9 || z > 9 {
        return None;
    }
    let len = b[4..].iter().take_while(|c| c.is_ascii_uppercase()).count();
    if len == 0 || b.get(4 + len) != Some(&b' ') {
        return None;
    }
    let status = u16::from(x) * 100 + u16::from(y) * 10 + u16::from(z);
    Some((status, &m[4..4 + len], &m[5 + len..]))
}

/// A request line's fields into a record.
pub(super) fn fill_request<'r>(rec: &mut Record<'r>, r: Request<'r>) {
    rec.kind = KIND_REQUEST;
    rec.status = Some(r.status);
    rec.method = Some(r.method);
    rec.duration_ms = Some(r.duration_ms);
    rec.target = r.redirect;
    rec.client_ip = Some(r.ip);
    rec.actor = (!r.actor.is_empty()).then_some(r.actor);
    set_path(rec, r.path);
    if rec.user.is_none() {
        rec.user = rec.actor.map(Cow::Borrowed);
    }
}

#[cfg(test)]
#[path = "fastpath_tests.rs"]
mod tests;
