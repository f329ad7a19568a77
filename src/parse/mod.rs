//! Log records → typed [`Record`]s.
//!
//! Pipeline for one raw record (see [`reader`] for how lines become records):
//! decode (lossy UTF-8, NULs) → strip ANSI/CR → prefix ([`prefix`], nom) → scrub secrets
//! ([`scrub`]; the prefix is parsed again if anything was scrubbed) →
//! request line ([`request`], nom) or message kind ([`catalogue`], one `RegexSet` per family) →
//! fields (`fields`) → enrichment (`enrich`: server names the hub left out) → callback.
//! Request lines of JupyterHub's own shape, most of a hub's log, take a fast path
//! (`fastpath`) that reads them in fewer passes and gives the very same records.
//!
//! What this is not: it does not read files or write the lake; it never drops a record. A record
//! whose prefix matches no family is classified by the `python` catalogue or kept as `unparsed`;
//! a prefixed record whose message is unknown keeps the generic kind `message`.
//!
//! The parser is stateful in three small, bounded ways, all in stream order: the last local date
//! (for CHP 3.x/4.x lines that carry only a time), the last timestamp (for records without one),
//! and per-user server names seen in proxy routes and spawn requests (for the lifecycle messages
//! that omit them). The first two, with the stream's time order, are the [`StreamState`]
//! (`state`); the last is the enrichment's.

pub mod catalogue;
#[doc(hidden)]
pub mod differential;
mod enrich;
mod error;
mod fastmemo;
mod fastpath;
mod fastprefix;
mod fields;
pub mod prefix;
pub mod reader;
pub mod record;
pub mod request;
pub mod route;
pub mod scrub;
mod state;
pub mod text;
pub mod time;

pub use error::ParseError;

use std::borrow::Cow;
use std::sync::Arc;

use chrono::NaiveDate;

use crate::parse::record::Record;
use catalogue::Catalogue;
use enrich::Enricher;
pub use enrich::{EnrichOp, Enrichment};
use fields::{apply_field, reject_control_names};
use prefix::{Family, Header, Stamp};
use reader::RawRecord;
pub use state::{LATE_SLACK_US, Order, StreamState};
use text::Flags;
use time::{DateCarry, LocalStamp, Zone};

pub const KIND_REQUEST: &str = "request";
pub const KIND_MESSAGE: &str = "message";
pub const KIND_UNPARSED: &str = "unparsed";

/// Counters a caller may report (the `ingest` summary line, `/metrics`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParseStats {
    pub records: u64,
    pub lines: u64,
    pub bytes: u64,
    pub unparsed: u64,
    pub truncated: u64,
}

/// How far past the wall clock a stamp may be before the record is flagged `future`.
const FUTURE_SLACK_US: i64 = 600_000_000;

pub struct Parser {
    catalogue: Arc<Catalogue>,
    zone: Zone,
    carry: DateCarry,
    default_date: Option<NaiveDate>,
    last_ts: Option<i64>,
    enrich: Enricher,
    pub stats: ParseStats,
    /// `false` when parsing a piece of a stream without the state the records before it left
    /// (see [`Parser::for_piece`]).
    state_known: bool,
    /// A record needed that unknown state: the piece must be parsed again with it.
    needed_state: bool,
    /// Enrichment is left to the caller ([`Parser::take_deferred`], [`Enrichment`]).
    defer: bool,
    deferred: Option<EnrichOp>,
    /// The record being parsed is one line.
    one_line: bool,
    /// A stamp after this (µs, the wall clock + 10 min when last read) is in the future.
    future_after: i64,
    /// Stream order: see [`Order`].
    order: Order,
    /// What the last stamp was judged (`FUTURE`, `LATE` or empty).
    judged: Flags,
    /// Request lines may take the fast path ([`fastpath`]).
    fast_path: bool,
    /// The fast path's last hub prefix.
    prefix_memo: fastprefix::Memo,
    /// The fast path's request texts seen before.
    requests: fastmemo::Requests,
}

impl Parser {
    /// `default_date` dates time-only lines seen before any dated record (e.g. the file's mtime).
    pub fn new(catalogue: Arc<Catalogue>, zone: Zone, default_date: Option<NaiveDate>) -> Self {
        Parser {
            catalogue,
            zone,
            carry: DateCarry::default(),
            default_date,
            last_ts: None,
            enrich: Enricher::default(),
            stats: ParseStats::default(),
            state_known: true,
            needed_state: false,
            defer: false,
            deferred: None,
            one_line: false,
            future_after: 0,
            order: Order::default(),
            judged: Flags::default(),
            fast_path: true,
            prefix_memo: fastprefix::Memo::default(),
            requests: fastmemo::Requests::default(),
        }
    }

    /// A parser for a piece of a stream that starts at a record boundary, for parsing pieces
    /// in parallel. With `start`, it continues from that state, exactly as if it had parsed
    /// the records before; without, it parses as far as it can and [`Parser::needed_state`]
    /// says whether a record depended on the state it lacked (then parse the piece again with
    /// it). Either way enrichment is deferred: see [`Parser::take_deferred`].
    pub fn for_piece(
        catalogue: Arc<Catalogue>,
        zone: Zone,
        default_date: Option<NaiveDate>,
        start: Option<StreamState>,
    ) -> Self {
        let known = start.is_some();
        let start = start.unwrap_or_default();
        let mut p = Parser::new(catalogue, zone, default_date);
        p.carry = start.carry;
        p.last_ts = start.last_ts;
        p.order = Order {
            lowest: None,
            ..start.order
        };
        p.state_known = known;
        p.defer = true;
        p
    }

    /// Whether a record of this piece depended on the state before it, which it did not have.
    pub fn needed_state(&self) -> bool {
        self.needed_state
    }

    /// The state the next record would start from.
    pub fn state(&self) -> StreamState {
        StreamState {
            carry: self.carry.clone(),
            last_ts: self.last_ts,
            order: self.order,
        }
    }

    /// The enrichment the record just parsed awaits, when enrichment is deferred: apply it in
    /// stream order with [`Enrichment::apply`] and set the server name it returns.
    pub fn take_deferred(&mut self) -> Option<EnrichOp> {
        self.deferred.take()
    }

    /// Parse one raw record and hand the result to `f`.
    pub fn parse<T>(&mut self, raw: &RawRecord<'_>, f: impl FnOnce(&Record<'_>) -> T) -> T {
        let mut flags = Flags::default();
        if raw.truncated {
            flags.set(Flags::TRUNCATED);
        }
        if raw.split {
            flags.set(Flags::SPLIT);
        }
        let f = match self.request_line(raw, flags, f) {
            Ok(out) => return out,
            Err(f) => f,
        };
        let text = clean(raw.bytes, &mut flags);
        let body = text.trim_end_matches(['\n', '\r']);
        // The prefix (level, time, logger, `module:line`) holds no secret, and its colons would
        // slow the scrubber's prescan down: the prescan looks at the message, and a record is
        // parsed again only when it was scrubbed (rarely).
        let header = prefix::header(body);
        // The logger and module are free words: one that could hold a key or value sends the
        // whole record to the prescan.
        let from = header.as_ref().map_or(0, |h| {
            if fastpath::odd_word(h.logger) || fastpath::odd_word(h.module) {
                0
            } else {
                body.len().saturating_sub(h.message.len())
            }
        });
        let scrubbed = text::scrub_record(body, from, &mut flags);
        let (body, header) = match &scrubbed {
            Some(s) => (s.as_str(), prefix::header(s)),
            None => (body, header),
        };
        // A record of one line has no newline left in `body`: no need to look for one.
        self.one_line = raw.lines == 1;
        let mut rec = match header {
            Some(h) => self.prefixed(&h),
            None => self.unprefixed(body),
        };
        reject_control_names(&mut rec, &mut flags);
        self.finish(raw, &mut rec, flags);
        f(&rec)
    }

    /// What every record gets last, on either path: its flags (with the stamp's judgement),
    /// place in the stream, time hint, and the counters.
    fn finish(&mut self, raw: &RawRecord<'_>, rec: &mut Record<'_>, mut flags: Flags) {
        if rec.ts.is_some() {
            flags.set(std::mem::take(&mut self.judged));
        }
        rec.flags = flags;
        rec.lines = raw.lines;
        rec.offset = raw.offset;
        rec.length = raw.end - raw.offset;
        if rec.ts.is_none() {
            self.needed_state |= !self.state_known && self.last_ts.is_none();
            rec.ts_hint = self.last_ts;
        }
        self.stats.records += 1;
        self.stats.lines += raw.lines as u64;
        self.stats.bytes += rec.length;
        self.stats.unparsed += (rec.kind == KIND_UNPARSED) as u64;
        self.stats.truncated += raw.truncated as u64;
    }

    /// Whether request lines may take the fast path ([`fastpath`]); [`differential`] turns it
    /// off to compare with the general path.
    pub(crate) fn set_fast_path(&mut self, on: bool) {
        self.fast_path = on;
    }

    /// Whether a stamp is to be trusted: `FUTURE` (more than 10 min past the wall clock),
    /// `LATE` (far before the stream's order), or empty. An untrusted stamp moves no state: not
    /// the date carried to time-only stamps, not the time given to records without one.
    fn judge(&mut self, t: i64) -> Flags {
        if t > self.future_after {
            // The clock is read only when a stamp passes the last limit (rarely).
            self.future_after = chrono::Utc::now().timestamp_micros() + FUTURE_SLACK_US;
            if t > self.future_after {
                return Flags::FUTURE;
            }
        }
        if self.order.judge(t) {
            return Flags::LATE;
        }
        Flags::default()
    }

    fn timestamp(&mut self, stamp: Stamp) -> Option<i64> {
        let ts = match stamp {
            Stamp::Local(st) => {
                let t = self.zone.to_utc(st);
                self.judged = self.judge(t);
                if self.judged.is_empty() {
                    self.carry.observe(st);
                    self.last_ts = Some(t);
                }
                return Some(t);
            }
            Stamp::Utc(us) => Some(us),
            Stamp::TimeOnly(tod) => {
                self.needed_state |= !self.state_known && !self.carry.is_set();
                let st = self.carry.complete(tod).or_else(|| {
                    self.default_date.map(|date| LocalStamp {
                        date,
                        micros_of_day: tod,
                    })
                });
                st.map(|st| self.zone.to_utc(st))
            }
            Stamp::None => None,
        };
        if let Some(t) = ts {
            self.judged = self.judge(t);
            if self.judged.is_empty() {
                self.last_ts = ts;
            }
        }
        ts
    }

    fn prefixed<'r>(&mut self, h: &Header<'r>) -> Record<'r> {
        let mut rec = self.header_record(h);
        let first = self.first_line(h.message);
        if matches!(h.family, Family::Hub | Family::SingleUser)
            && let Some(r) = request::parse(first)
        {
            fastpath::fill_request(&mut rec, r);
        } else {
            self.classify(&mut rec, h.family, first);
        }
        self.enrich_or_defer(&mut rec);
        rec
    }

    fn unprefixed<'r>(&mut self, body: &'r str) -> Record<'r> {
        let mut rec = Record::new(KIND_UNPARSED, Family::Python, body);
        self.classify(&mut rec, Family::Python, self.first_line(body));
        if rec.kind == KIND_MESSAGE {
            rec.kind = KIND_UNPARSED;
        }
        if rec.kind == KIND_UNPARSED {
            rec.source = Family::Unknown;
        }
        rec
    }

    fn classify<'r>(&self, rec: &mut Record<'r>, family: Family, first: &'r str) {
        let Some((kind, caps)) = self.catalogue.classify(family, first) else {
            return;
        };
        rec.kind = kind.name;
        for &(i, name, target) in &kind.groups {
            if let Some(m) = caps.get(i) {
                apply_field(rec, name, target, m.as_str());
            }
        }
    }
}

impl Parser {
    fn first_line<'s>(&self, s: &'s str) -> &'s str {
        if self.one_line {
            return s;
        }
        s.split_once('\n').map_or(s, |(a, _)| a)
    }
}

/// The record's text as UTF-8 (lossily, flagged), without NULs, escape sequences and carriage
/// returns; borrowed when there is nothing to clean (most records).
fn clean<'a>(bytes: &'a [u8], flags: &mut Flags) -> Cow<'a, str> {
    // One scan finds the records with nothing to clean: valid UTF-8, no NUL, no escape
    // sequence, no carriage return.
    let text = match memchr::memchr3(0, 0x1b, b'\r', bytes) {
        None => std::str::from_utf8(bytes).map(Cow::Borrowed).ok(),
        Some(_) => None,
    };
    text.unwrap_or_else(|| {
        let text = text::decode(bytes, flags);
        text::strip_controls(text, flags)
    })
}

/// Parse arbitrary bytes end to end and check the accounting invariant: the records tile the
/// input exactly. Used by the fuzz targets and the property tests; panics on any violation.
pub fn fuzz_one(input: &[u8]) {
    use std::sync::LazyLock;
    static CATALOGUE: LazyLock<Arc<Catalogue>> = LazyLock::new(|| {
        Arc::new(Catalogue::embedded().unwrap_or_else(|e| panic!("embedded catalogue: {e}")))
    });
    let zone = Zone::new(chrono_tz::Tz::Europe__Paris);
    let mut parser = Parser::new(
        CATALOGUE.clone(),
        zone,
        NaiveDate::from_ymd_opt(2026, 11, 28),
    );
    let cfg = reader::ReaderConfig {
        max_line_bytes: 300,
        max_record_bytes: 2000,
        chunk_bytes: 97,
    };
    let mut r = reader::RecordReader::new(input, 0, cfg);
    let mut pos = 0u64;
    let end = r
        .run(reader::AtEof::Finish, |raw| {
            assert_eq!(raw.offset, pos, "records must tile the input");
            pos = raw.end;
            parser.parse(&raw, |rec| {
                let _ = rec.to_json("h", "f", "fp");
            });
        })
        .unwrap_or_else(|e| panic!("reading from memory cannot fail: {e}"));
    assert_eq!(end, input.len() as u64);
}

#[cfg(test)]
mod enrich_tests;

#[cfg(test)]
mod tests;
