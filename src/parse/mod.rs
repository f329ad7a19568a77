//! Log records → typed [`Record`]s.
//!
//! Pipeline for one raw record (see [`reader`] for how lines become records):
//! decode (lossy UTF-8, NULs) → strip ANSI/CR → prefix ([`prefix`], nom) → scrub secrets
//! ([`scrub`]; the prefix is parsed again if anything was scrubbed) →
//! request line ([`request`], nom) or message kind ([`catalogue`], one `RegexSet` per family) →
//! fields → enrichment (server names the hub left out) → callback.
//!
//! What this is not: it does not read files or write the lake; it never drops a record. A record
//! whose prefix matches no family is classified by the `python` catalogue or kept as `unparsed`;
//! a prefixed record whose message is unknown keeps the generic kind `message`.
//!
//! The parser is stateful in three small, bounded ways, all in stream order: the last local date
//! (for CHP 3.x/4.x lines that carry only a time), the last timestamp (for records without one),
//! and per-user server names seen in proxy routes and spawn requests (for the lifecycle messages
//! that omit them).

pub mod catalogue;
pub mod prefix;
pub mod reader;
pub mod record;
pub mod request;
pub mod route;
pub mod scrub;
pub mod text;
pub mod time;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDate;

use crate::parse::record::Record;
use catalogue::{Catalogue, FieldTarget};
use prefix::{Family, Header, Stamp};
use reader::RawRecord;
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
/// How far before the stream's confirmed high water a stamp may be before the record is
/// flagged `late`. One file or pod log is written in time order; JupyterHub stamps each record
/// when it logs it (`log.py`, tornado's `LogFormatter`), so records of one stream are out of
/// order by the time a request took at most (the request line is logged when it ends).
pub const LATE_SLACK_US: i64 = 3_600_000_000;

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
}

/// The stream's time order, to flag records stamped far before it (`late`).
///
/// The high water rises only when two consecutive trusted records agree on it (it is the
/// smaller of the pair), so one forged record dated ahead cannot make the honest records after
/// it look late; a record more than [`LATE_SLACK_US`] before it is `late`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Order {
    pub high_water: Option<i64>,
    /// The last trusted stamp, waiting for the next to confirm it.
    pub last: Option<i64>,
    /// The earliest trusted stamp seen (for pieces parsed without the state before them).
    pub lowest: Option<i64>,
}

impl Order {
    /// Whether `t` is late; if not, it is taken into the order.
    fn judge(&mut self, t: i64) -> bool {
        if self.high_water.is_some_and(|h| t < h - LATE_SLACK_US) {
            return true;
        }
        if let Some(p) = self.last {
            let agreed = p.min(t);
            self.high_water = Some(self.high_water.map_or(agreed, |h| h.max(agreed)));
        }
        self.last = Some(t);
        self.lowest = Some(self.lowest.map_or(t, |l| l.min(t)));
        false
    }

    /// The order after a piece that left `after`, parsed from this one.
    fn then(&self, after: &Order) -> Order {
        let max = |a: Option<i64>, b: Option<i64>| a.max(b);
        Order {
            high_water: max(self.high_water, after.high_water),
            last: after.last.or(self.last),
            lowest: match (self.lowest, after.lowest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }

    /// Whether a piece parsed without this state may have records late against it that it
    /// could not flag (then parse it again with the state).
    pub fn misses_late(&self, piece: &Order) -> bool {
        matches!((self.high_water, piece.lowest), (Some(h), Some(l)) if l < h - LATE_SLACK_US)
    }
}

/// The stream state a [`Parser`] carries from one record to the next, apart from enrichment:
/// the date for time-only stamps and the time for records without one.
#[derive(Debug, Clone, Default)]
pub struct StreamState {
    pub carry: DateCarry,
    pub last_ts: Option<i64>,
    pub order: Order,
}

impl StreamState {
    /// The state after a piece whose own end state is `after`, parsed from this one.
    pub fn then(&self, after: &StreamState) -> StreamState {
        StreamState {
            carry: if after.carry.is_set() {
                after.carry.clone()
            } else {
                self.carry.clone()
            },
            last_ts: after.last_ts.or(self.last_ts),
            order: self.order.then(&after.order),
        }
    }
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
        // One scan finds the records with nothing to clean (most): valid UTF-8, no NUL, no
        // escape sequence, no carriage return.
        let text = match memchr::memchr3(0, 0x1b, b'\r', raw.bytes) {
            None => std::str::from_utf8(raw.bytes).map(Cow::Borrowed).ok(),
            Some(_) => None,
        };
        let text = text.unwrap_or_else(|| {
            let text = text::decode(raw.bytes, &mut flags);
            text::strip_controls(text, &mut flags)
        });
        let body = text.trim_end_matches(['\n', '\r']);
        // The prefix (level, time, logger, `module:line`) holds no secret, and its colons would
        // slow the scrubber's prescan down: the prescan looks at the message, and a record is
        // parsed again only when it was scrubbed (rarely).
        let header = prefix::header(body);
        // The logger and module are free words: one that could hold a key or value sends the
        // whole record to the prescan.
        let odd = |w: Option<&str>| {
            w.is_some_and(|w| {
                w.bytes()
                    .any(|b| matches!(b, b'=' | b'%' | b'\'' | b'"' | b'/'))
            })
        };
        let from = header.as_ref().map_or(0, |h| {
            if odd(h.logger) || odd(h.module) {
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
        f(&rec)
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
        let mut rec = Record::new(KIND_MESSAGE, h.family, h.message);
        rec.ts = self.timestamp(h.stamp);
        rec.level = h.level;
        rec.logger = h.logger;
        rec.module = h.module;
        let first = self.first_line(h.message);
        if matches!(h.family, Family::Hub | Family::SingleUser)
            && let Some(r) = request::parse(first)
        {
            rec.kind = KIND_REQUEST;
            rec.status = Some(r.status);
            rec.method = Some(r.method);
            rec.duration_ms = Some(r.duration_ms);
            rec.target = r.redirect;
            rec.client_ip = Some(r.ip);
            rec.actor = (!r.actor.is_empty()).then_some(r.actor);
            set_path(&mut rec, r.path);
            if rec.user.is_none() {
                rec.user = rec.actor.map(Cow::Borrowed);
            }
        } else {
            self.classify(&mut rec, h.family, first);
        }
        if !self.defer {
            self.enrich.apply(&mut rec);
        } else if Enricher::wants(&rec) {
            self.deferred = Some(EnrichOp::of(&rec));
        }
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

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Names are never taken with control characters: percent-decoding turns `/user/alice%0A/` into
/// `alice\n` (issue 18: a name that is not the user's, or a forged line). The record keeps its
/// message and path; its `user`, `actor` and `server_name` are left empty and it is flagged
/// `bad_name`.
fn reject_control_names(rec: &mut Record<'_>, flags: &mut Flags) {
    let bad = rec.user.as_deref().is_some_and(has_control)
        || rec.server_name.as_deref().is_some_and(has_control)
        || rec.actor.is_some_and(has_control);
    if bad {
        rec.user = None;
        rec.server_name = None;
        rec.actor = None;
        flags.set(Flags::BAD_NAME);
    }
}

fn set_path<'r>(rec: &mut Record<'r>, path: &'r str) {
    let info = route::classify(path);
    rec.path = Some(path);
    rec.route = Some(info.route);
    if info.user.is_some() {
        rec.user = info.user;
    }
    if info.server.is_some() {
        rec.server_name = info.server;
    }
}

/// `/user/<name>/` or `/user/<name>/<server>/` (a server's route spec): name and server.
fn server_routespec(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_prefix("/user/")?.strip_suffix('/')?;
    let (u, s) = inner.split_once('/').unwrap_or((inner, ""));
    (!u.is_empty() && !s.contains('/')).then_some((u, s))
}

/// Split `alice:gpu` (hub) or `alice/gpu` (culler) into user and server (`""` = default server).
fn split_name(s: &str, sep: char) -> (&str, &str) {
    s.split_once(sep).unwrap_or((s, ""))
}

fn apply_field<'r>(rec: &mut Record<'r>, name: &'static str, target: FieldTarget, v: &'r str) {
    use FieldTarget as T;
    match target {
        T::User => rec.user = Some(Cow::Borrowed(v)),
        T::Actor => rec.actor = Some(v),
        T::ServerName => rec.server_name = Some(Cow::Borrowed(v)),
        T::Method => rec.method = Some(v),
        T::Status => rec.status = v.parse().ok(),
        T::Path => set_path(rec, v),
        T::ClientIp => rec.client_ip = Some(v),
        T::Target => rec.target = Some(v),
        T::Service => rec.service = Some(v),
        T::ExitCode => rec.exit_code = v.parse().ok(),
        T::Count => rec.count = v.parse().ok(),
        T::DurationMs => rec.duration_ms = v.parse().ok(),
        T::Seconds => rec.duration_ms = v.parse::<f64>().ok().map(|s| s * 1000.0),
        T::LogName | T::CullerName => {
            let (u, s) = split_name(v, if target == T::LogName { ':' } else { '/' });
            rec.user = Some(Cow::Borrowed(u));
            rec.server_name = Some(Cow::Borrowed(s));
        }
        T::RouteSpec => {
            rec.attrs.push((name, v));
            let path = v
                .find("://")
                .map_or(v, |i| v[i + 3..].find('/').map_or("", |j| &v[i + 3 + j..]));
            // A server's route spec is `/user/<name>/` or `/user/<name>/<server>/` (proxy.py
            // `add_user`/`delete_user`: `user.proxy_spec` + `url_escape_path(server_name)`):
            // its third segment is a server name even when it is a Jupyter root word.
            if let Some((u, s)) = server_routespec(path) {
                if rec.user.is_none() {
                    rec.user = Some(route::percent_decode(u));
                }
                rec.server_name = Some(route::percent_decode(s));
                return;
            }
            let info = route::classify(path);
            if rec.user.is_none() {
                rec.user = info.user;
            }
            if info.route.starts_with("/user/{user}") {
                rec.server_name = info.server.or(Some(Cow::Borrowed("")));
            }
        }
        T::QuotedUser => rec.user = Some(Cow::Borrowed(v.trim_matches(|c| c == '\'' || c == '"'))),
        T::Attr => rec.attrs.push((name, v)),
    }
}

/// Recovers server names that some hub messages leave out, from records seen just before.
#[derive(Debug, Default)]
struct Enricher {
    /// user → routes removed from the proxy whose stop line has not come yet, (time µs, server),
    /// oldest first (stop lines omit the server; two stops of one user can interleave).
    removed: HashMap<String, Vec<(Option<i64>, String)>>,
    /// user → server of the last `Initiating spawn for user:server` (DEBUG logs only).
    spawning: HashMap<String, String>,
    /// The latest OAuth client ids, `jupyterhub-user-<quote(user)>[-<quote(server)>]`: the
    /// first INFO line of every spawn, and the only place a failed spawn names its server.
    clients: std::collections::VecDeque<String>,
}

/// What enrichment needs of a record, owned, for [`Enrichment::apply`].
#[derive(Debug, Clone)]
pub struct EnrichOp {
    kind: &'static str,
    ts: Option<i64>,
    duration_ms: Option<f64>,
    user: Option<String>,
    server: Option<String>,
    client_id: Option<String>,
}

impl EnrichOp {
    fn of(rec: &Record<'_>) -> Self {
        EnrichOp {
            kind: rec.kind,
            ts: rec.ts,
            duration_ms: rec.duration_ms,
            user: rec.user.as_deref().map(str::to_string),
            server: rec.server_name.as_deref().map(str::to_string),
            client_id: rec
                .attrs
                .iter()
                .find(|(k, _)| *k == "client_id")
                .map(|(_, v)| v.to_string()),
        }
    }
}

/// Enrichment applied apart from parsing, in stream order, to the records of pieces parsed in
/// parallel: the same rules, fed the same records, as a [`Parser`] applies inline.
#[derive(Debug, Default)]
pub struct Enrichment(Enricher);

impl Enrichment {
    /// The server name enrichment gives a record that had none, if any.
    pub fn apply(&mut self, op: &EnrichOp) -> Option<String> {
        let mut rec = Record::new(op.kind, prefix::Family::Hub, "");
        (rec.ts, rec.duration_ms) = (op.ts, op.duration_ms);
        rec.user = op.user.as_deref().map(Cow::Borrowed);
        rec.server_name = op.server.as_deref().map(Cow::Borrowed);
        if let Some(id) = &op.client_id {
            rec.attrs.push(("client_id", id));
        }
        self.0.apply(&mut rec);
        match (&op.server, rec.server_name) {
            (None, Some(s)) if !has_control(&s) => Some(s.into_owned()),
            _ => None,
        }
    }
}

const ENRICH_CAP: usize = 100_000;
/// How long before its stop line a route removal can be (as `report::sessions_rules`).
const REMOVAL_TO_STOP_US: i64 = 120_000_000;
const CLIENTS_CAP: usize = 256;

impl Enricher {
    /// Whether [`Enricher::apply`] may read or change anything for this record.
    fn wants(rec: &Record<'_>) -> bool {
        matches!(
            rec.kind,
            "oauth_client"
                | "proxy_route_removed"
                | "stop_succeeded"
                | "spawn_requested"
                | "spawn_failed"
                | "spawn_timeout"
                | "spawn_cleanup_failed"
                | "spawn_succeeded"
        )
    }

    fn apply(&mut self, rec: &mut Record<'_>) {
        if rec.kind == "oauth_client" {
            if let Some((_, id)) = rec.attrs.iter().find(|(k, _)| *k == "client_id") {
                if self.clients.len() == CLIENTS_CAP {
                    self.clients.pop_front();
                }
                self.clients.push_back(id.to_string());
            }
            return;
        }
        let Some(user) = rec.user.as_deref() else {
            return;
        };
        if self.removed.len() > ENRICH_CAP || self.spawning.len() > ENRICH_CAP {
            self.removed.clear();
            self.spawning.clear();
        }
        match rec.kind {
            "proxy_route_removed" => {
                if let Some(s) = rec.server_name.as_deref() {
                    let list = self.removed.entry(user.to_string()).or_default();
                    // Removals a stop can still follow (sessions_rules: 120 s), at most 8.
                    if let Some(t) = rec.ts {
                        list.retain(|(r, _)| r.is_some_and(|r| t - r <= REMOVAL_TO_STOP_US));
                    }
                    if list.len() == 8 {
                        list.remove(0);
                    }
                    list.push((rec.ts, s.to_string()));
                }
            }
            // Only the stop line: it follows its route's removal. An exit line comes *before*
            // its removal, so an entry found then would be a stale one (an earlier exit's).
            // `User x server took N seconds to stop` counts N from just before the removal
            // (handlers/base.py `stop_single_user.stop`: `tic`, then `proxy.delete_user`, whose
            // first statement logs it), so when two stops of the user interleave (the idle
            // culler stops a user's servers at once) the removal nearest `ts - N` is this one's.
            "stop_succeeded" if rec.server_name.is_none() => {
                if let Some(list) = self.removed.get_mut(user) {
                    let began = rec
                        .ts
                        .zip(rec.duration_ms)
                        .map(|(t, d)| t - (d * 1000.0) as i64);
                    let pick = match began {
                        Some(b) => list
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, (r, _))| r.map_or(i64::MAX, |r| (r - b).abs()))
                            .map(|(i, _)| i),
                        None => list.len().checked_sub(1),
                    };
                    if let Some(i) = pick {
                        rec.server_name = Some(Cow::Owned(list.remove(i).1));
                    }
                    if list.is_empty() {
                        self.removed.remove(user);
                    }
                }
            }
            "spawn_requested" => {
                if let Some(s) = rec.server_name.as_deref() {
                    self.spawning.insert(user.to_string(), s.to_string());
                }
            }
            "spawn_failed" | "spawn_timeout" | "spawn_cleanup_failed"
                if rec.server_name.is_none() =>
            {
                let found = self
                    .spawning
                    .get(user)
                    .cloned()
                    .or_else(|| self.client_server(user));
                rec.server_name = found.map(Cow::Owned);
            }
            "spawn_succeeded" => {
                self.spawning.remove(user);
            }
            _ => {}
        }
    }

    /// The server of the newest OAuth client created for `user`.
    fn client_server(&self, user: &str) -> Option<String> {
        let base = format!("jupyterhub-user-{}", py_quote(user));
        self.clients.iter().rev().find_map(|id| {
            let rest = id.strip_prefix(&base)?;
            match rest.strip_prefix('-') {
                _ if rest.is_empty() => Some(String::new()),
                Some(server) => Some(route::percent_decode(server).into_owned()),
                None => None,
            }
        })
    }
}

/// Python's `urllib.parse.quote(s)` (safe `/`), as JupyterHub builds OAuth client ids.
fn py_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The JSON record of one line.
    fn one(line: &str) -> serde_json::Value {
        let cat = Arc::new(Catalogue::embedded().unwrap_or_else(|e| panic!("{e}")));
        let mut p = Parser::new(cat, Zone::new(chrono_tz::Tz::UTC), None);
        let bytes = format!("{line}\n");
        let mut out = None;
        let mut r = reader::RecordReader::new(bytes.as_bytes(), 0, reader::ReaderConfig::default());
        let _ = r.run(reader::AtEof::Finish, |raw| {
            out = Some(p.parse(&raw, |rec| rec.to_json("h", "f", "fp")));
        });
        out.unwrap_or_default()
    }

    #[test]
    fn names_with_control_characters_are_not_taken() {
        let prefix = "[I 2026-11-28 10:00:00.000 JupyterHub log:192] ";
        let v = one(&format!(
            "{prefix}200 GET /user/alice%0A/api/status (alice@10.0.0.1) 2.00ms"
        ));
        assert_eq!(v["user"], serde_json::Value::Null, "{v}");
        assert_eq!(v["actor"], serde_json::Value::Null, "{v}");
        assert_eq!(v["flags"], "bad_name", "{v}");
        assert_eq!(
            v["path"], "/user/alice%0A/api/status",
            "the record keeps its path"
        );
        let v = one(&format!(
            "{prefix}200 GET /user/a%40b/gpu%09x/api (@10.0.0.1) 2.00ms"
        ));
        assert_eq!(v["server_name"], serde_json::Value::Null, "{v}");
        // An encoded `@` is a name character, not a control one.
        let v = one(&format!(
            "{prefix}200 GET /user/a%40b/api/status (@10.0.0.1) 2.00ms"
        ));
        assert_eq!(v["user"], "a@b", "{v}");
        assert_eq!(v["flags"], serde_json::Value::Null, "{v}");
    }

    const PREFIXES: &[&str] = &[
        "[I 2026-11-28 15:30:10.250 JupyterHub log:192] ",
        "[W 2026-11-28 15:30:10.250 ServerApp] ",
        "[E 241111 16:38:10 __init__:251] ",
        "2026-11-28T15:30:10.250Z [ConfigProxy] info: ",
        "21:44:04.424 [ConfigProxy] info: ",
        "    ",
        "200 GET /hub/api/users/a@b@::1 (x@y@::ffff:1.2.3.4) 1.0ms",
        "Task exception was never retrieved\n",
        "\x1b[32m",
        "}\n",
        "\n",
    ];

    fn chunks() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![
                prop::sample::select(PREFIXES).prop_map(|s| s.as_bytes().to_vec()),
                prop::collection::vec(any::<u8>(), 0..40),
                "[ -~]{0,60}".prop_map(|s| s.into_bytes()),
            ],
            0..30,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
        #[test]
        fn parser_never_panics_and_loses_no_byte(input in chunks()) {
            super::fuzz_one(&input);
        }

        #[test]
        fn parser_never_panics_on_raw_bytes(input in prop::collection::vec(any::<u8>(), 0..600)) {
            super::fuzz_one(&input);
        }
    }
}
