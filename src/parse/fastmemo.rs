//! Request lines seen before, for the fast path ([`super::fastpath`]): a hub's log repeats each
//! server's activity heartbeat (`200 POST /hub/api/users/alice/activity (alice@10.0.0.1) 3.21ms`)
//! every few minutes, the same text but for the duration. [`Requests`] keeps, per message text
//! up to the `)` that closes `({user}@{ip})`, where its fields are and the route it took, and
//! reads a message with the same text by parsing its duration alone.
//!
//! Exact: [`super::fastpath`]'s request parser reads every field but the duration from the text
//! before that `)` (the duration is the digits and dot between the space after it and the
//! closing `ms`), and `route::classify` is a function of the path; so the same text gives the
//! same fields, taken at the same places. Only fields that are slices of the message (or the
//! default server's `""`) are kept: a percent-decoded name is not, and its line is parsed.
//! Bounded, and current: texts are kept in two generations of at most [`GENERATION`] each. A
//! text is looked up in the young one, then the old one (and moved to the young one); when the
//! young one is full it becomes the old one and the old one is dropped. So a text in use stays
//! and one no longer used (a server's address after it stopped) goes, as in a least-recently-used
//! cache, with no bookkeeping per lookup. The heartbeats, most of a hub's request lines, do not
//! come here (`fastpath::heartbeat` reads them straight), nor do names that needed decoding;
//! what does are other texts that repeat: the idle culler's and the probes' polls, a dashboard's
//! or a user's API calls, a few hundred at a time on a large hub. (Measured on the benchmark
//! log's request lines, 8,400 users a day: with its heartbeats in it, this memo missed 4.3 % of
//! them at 8,192 a generation, where keeping the first 4,096 texts for good, as before, missed
//! 97.8 %; without them, 2,048 a generation keeps the memo under 2 MB a parser thread.)

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::request::Request;
use super::route::RouteInfo;

/// Most texts in a generation (under 200 bytes each: at most two generations, ~1.5 MB with
/// the table's room).
pub(super) const GENERATION: usize = 2048;
/// Texts kept before the memo has to pay: past that, a text is kept only while the texts
/// read from the memo are at least as many as those kept (a log of texts that do not repeat,
/// a single-user server's file paths, say, stops costing a copy of each).
pub(super) const TRIAL: usize = 256;

/// Where a field is in the text: offset and length (the text is at most [`KEY_MAX`] bytes).
#[derive(Debug, Clone, Copy)]
struct Span(u8, u8);

impl Span {
    fn of(msg: &str, part: &str) -> Option<Span> {
        let start = (part.as_ptr() as usize).checked_sub(msg.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        (end <= KEY_MAX).then_some(Span(start as u8, part.len() as u8))
    }

    fn get(self, msg: &str) -> Option<&str> {
        msg.get(usize::from(self.0)..usize::from(self.0) + usize::from(self.1))
    }
}

/// A name: a slice of the message, or the default server's `""`.
#[derive(Debug, Clone, Copy)]
enum Name {
    Absent,
    Empty,
    At(Span),
}

#[derive(Debug, Clone)]
struct Fields {
    status: u16,
    method: Span,
    path: Span,
    redirect: Option<Span>,
    actor: Span,
    ip: Span,
    route: &'static str,
    user: Name,
    server: Name,
    /// The text holds one of the scrubber's prescan gate bytes; a `%`.
    wary: bool,
    percent: bool,
}

/// Longest text kept (a heartbeat's is about 40 bytes and twice its user's name; a longer one
/// is parsed every time). Kept in place, not behind a pointer: a lookup reads one entry.
const KEY_MAX: usize = 110;

/// A kept text, in place.
#[derive(Clone)]
struct Key {
    len: u8,
    bytes: [u8; KEY_MAX],
}

impl Key {
    fn new(text: &[u8]) -> Option<Key> {
        let mut k = Key {
            len: u8::try_from(text.len()).ok()?,
            bytes: [0; KEY_MAX],
        };
        k.bytes.get_mut(..text.len())?.copy_from_slice(text);
        Some(k)
    }
}

impl std::borrow::Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        std::borrow::Borrow::<[u8]>::borrow(self) == std::borrow::Borrow::<[u8]>::borrow(other)
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    /// As the text's `[u8]` hashes (lookups are by `&[u8]`).
    fn hash<H: Hasher>(&self, state: &mut H) {
        std::borrow::Borrow::<[u8]>::borrow(self).hash(state);
    }
}

/// A message read from [`Requests`]: its request and route, and whether it holds one of the
/// scrubber's prescan gate bytes, and a `%` (the duration holds neither).
pub(super) struct Seen<'a> {
    pub(super) request: Request<'a>,
    pub(super) info: RouteInfo<'a>,
    pub(super) wary: bool,
    pub(super) percent: bool,
}

/// rustc's Fx hash, over eight bytes at a time: the keys are short texts, hashed once a line.
#[derive(Default)]
pub(super) struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0xf135_7aea_2e62_a9c5;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Texts = HashMap<Key, Fields, BuildHasherDefault<Fx>>;

/// `f` kept as `key` in the young generation `seen`, which becomes the old one when full.
/// The old generation's table is reused, cleared: no allocation after the first two.
fn young<'m>(seen: &'m mut Texts, old: &mut Texts, key: Key, f: Fields) -> &'m Fields {
    if seen.len() >= GENERATION {
        std::mem::swap(seen, old);
        seen.clear();
    }
    seen.entry(key).or_insert(f)
}

#[derive(Default)]
pub(super) struct Requests {
    /// The young generation: texts kept or read since it was started.
    seen: Texts,
    /// The old generation: texts not read since.
    old: Texts,
    /// Messages read from the memo.
    hits: usize,
    /// Texts kept, ever.
    kept: usize,
}

impl std::fmt::Debug for Requests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Requests({} kept)", self.seen.len() + self.old.len())
    }
}

fn name_in(msg: &str, name: &Option<Cow<'_, str>>) -> Option<Name> {
    match name {
        None => Some(Name::Absent),
        Some(Cow::Borrowed(s)) => match Span::of(msg, s) {
            Some(r) => Some(Name::At(r)),
            None if s.is_empty() => Some(Name::Empty),
            None => None,
        },
        Some(Cow::Owned(_)) => None,
    }
}

impl Requests {
    /// How many texts are kept.
    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        self.seen.len() + self.old.len()
    }

    /// Whether the text `key` is kept.
    #[cfg(test)]
    pub(super) fn holds(&self, key: &str) -> bool {
        self.seen.contains_key(key.as_bytes()) || self.old.contains_key(key.as_bytes())
    }

    /// The request and route of `msg`, whose text up to the `)` of `({user}@{ip})` is `key`
    /// and whose duration is `duration_ms`, if that text was kept.
    pub(super) fn get<'a>(
        &mut self,
        msg: &'a str,
        key: &str,
        duration_ms: f64,
    ) -> Option<Seen<'a>> {
        let f = match self.seen.get(key.as_bytes()) {
            Some(f) => f,
            None => {
                let (key, f) = self.old.remove_entry(key.as_bytes())?;
                young(&mut self.seen, &mut self.old, key, f)
            }
        };
        self.hits += 1;
        let at = |r: &Span| r.get(msg);
        let name = |n: &Name| match n {
            Name::Absent => Some(None),
            Name::Empty => Some(Some(Cow::Borrowed(""))),
            Name::At(r) => at(r).map(|s| Some(Cow::Borrowed(s))),
        };
        let request = Request {
            status: f.status,
            method: at(&f.method)?,
            path: at(&f.path)?,
            redirect: match &f.redirect {
                Some(r) => Some(at(r)?),
                None => None,
            },
            actor: at(&f.actor)?,
            ip: at(&f.ip)?,
            duration_ms,
        };
        let info = RouteInfo {
            route: f.route,
            user: name(&f.user)?,
            server: name(&f.server)?,
        };
        Some(Seen {
            request,
            info,
            wary: f.wary,
            percent: f.percent,
        })
    }

    /// Keep what `msg` (text up to its `)`: `key`) parsed to, if it is all slices of `msg`,
    /// with whether it holds a prescan gate byte and a `%`.
    pub(super) fn keep(
        &mut self,
        msg: &str,
        key: &str,
        r: &Request<'_>,
        info: &RouteInfo<'_>,
        (wary, percent): (bool, bool),
    ) {
        let n = self.kept;
        if n >= TRIAL && self.hits < n {
            return;
        }
        let fields = || -> Option<Fields> {
            Some(Fields {
                status: r.status,
                method: Span::of(msg, r.method)?,
                path: Span::of(msg, r.path)?,
                redirect: match r.redirect {
                    Some(t) => Some(Span::of(msg, t)?),
                    None => None,
                },
                actor: Span::of(msg, r.actor)?,
                ip: Span::of(msg, r.ip)?,
                route: info.route,
                user: name_in(msg, &info.user)?,
                server: name_in(msg, &info.server)?,
                wary,
                percent,
            })
        };
        if let (Some(f), Some(key)) = (fields(), Key::new(key.as_bytes())) {
            self.kept += 1;
            young(&mut self.seen, &mut self.old, key, f);
        }
    }
}
