//! Secret scrubbing: a rule set over key *names*, applied in every syntax that JupyterHub and
//! the software around it (oauthenticator, oauthlib, tornado, configurable-http-proxy,
//! jupyter-server, the Kubernetes client) write secrets in. The rule set, with the upstream
//! code each rule answers, is documented in `docs/SCRUBBING.md`.
//!
//! What it does: every secret *value* becomes [`MARKER`] (`[secret]`, the marker JupyterHub's own
//! `jupyterhub/log.py` `_scrub_uri`/`_scrub_headers` write); the key, the scheme of an
//! `Authorization` value and cookie names stay, so the line stays readable. A record is scrubbed
//! once, before it is parsed, so every column derived from it (`message`, `path`, `target`,
//! `attrs`, ...) and everything built from those (the lake, `hubpulse parse`, Datadog logs) only
//! ever sees the scrubbed text.
//!
//! Guarantees:
//! * Idempotent: values that already are a redaction (`[secret]`, JupyterHub's `REDACTED`,
//!   oauthlib's `<SANITIZED>`, jupyter-server's `...`) are left as they are and do not count
//!   as a change.
//! * Cheap when there is nothing to do: [`may_hold_secret`] rules out, with byte scans, the
//!   records no rule can apply to (no `=`, no syntactic colon, no cookie/xsrf message); for the
//!   others one case-insensitive multi-pattern scan ([`WORDS`]) finds every place a rule can
//!   start. A record without a match is returned borrowed, untouched.
//! * Only ASCII delimiters bound a replaced span, so the output is valid UTF-8.
//!
//! Assumptions and limits: a value ends at the first delimiter of its syntax (a quote, `&`, `;`,
//! white space, ...), so a secret *containing* its syntax's delimiter is only scrubbed up to it;
//! a user name used alone as URL userinfo (`https://ghp_x@github.com`) is kept.

use std::ops::Range;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};

use rules::{Ctx, Kind, Mode, PHRASES, Phrase, classify};

pub mod fuzz;
mod rules;

/// What a secret value becomes.
pub const MARKER: &str = "[secret]";

/// Values that already are a redaction: ours; JupyterHub `oauth/provider.py` `save_bearer_token`
/// (`REDACTED`); oauthlib `common.py` `Request.__repr__` (`<SANITIZED>`); jupyter-server
/// `serverapp.py` `_get_urlparts` (`token=...` when the token came from config).
const REDACTED: [&str; 4] = [MARKER, "REDACTED", "<SANITIZED>", "..."];

/// Sub-words of key names that can start a rule (see [`classify`]), matched case-insensitively.
pub(super) const KEY_WORDS: [&str; 14] = [
    "token",
    "secret",
    "passw",
    "pwd",
    "jwt",
    "xsrf",
    "auth",
    "key",
    "code",
    "state",
    "cookie",
    "session",
    "signature",
    "credential",
];

/// Pattern ids: `KEY_WORDS`, then `://` (URL userinfo), then `PHRASES`.
const USERINFO: usize = KEY_WORDS.len();
const PHRASE0: usize = USERINFO + 1;

/// Every place a rule can start; also the prescan ([`scrub`] does nothing without a match).
static WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    let mut pats: Vec<&str> = KEY_WORDS.to_vec();
    pats.push("://");
    pats.extend(PHRASES.iter().map(|(p, _)| *p));
    #[allow(clippy::unwrap_used)] // fixed literals, covered by tests
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(pats)
        .unwrap()
});

/// Words that make a record an OAuth exchange, where `code` and `state` are secrets: module
/// names (`oauthlib…`, oauthenticator's `oauth2`), `oauth_callback`, `/oauth2/authorize`,
/// `grant_type`, `redirect_uri`, `client_id`, OpenID, and token responses (`access_token`,
/// `Bearer`: JupyterHub's `save_bearer_token` logs `state` next to them).
static OAUTH_WORDS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build([
            "oauth",
            "grant",
            "redirect_uri",
            "authoriz",
            "openid",
            "client_id",
            "access_token",
            "bearer",
        ])
        .unwrap()
});

/// Case-sensitive markers of the rules that need neither `=` nor a syntactic colon: the
/// messages of [`PHRASES`] without a colon (all hold `xsrf` or `ookie`, in lower case, as
/// jupyterhub `_xsrf_utils.py` and tornado `web.py` write them) and the secret-bearing paths.
static MARKERS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    AhoCorasick::builder()
        // Leftmost-first semantics let aho-corasick use its SIMD (Teddy) search.
        .match_kind(MatchKind::LeftmostFirst)
        .build(["ookie", "xsrf", "/authorizations/"])
        .unwrap()
});

/// Whether `text` may hold a secret. Every rule needs one of: a `=` or a `%` (assignments,
/// percent-encoded ones), a colon that is not part of a time or a `module:line` (`: `, `://`, or
/// next to a quote), or one of [`MARKERS`]; only then are the key words looked for. Most records
/// have none, and cost a SIMD scan that stops at each colon, and two byte scans.
pub fn may_hold_secret(text: &str) -> bool {
    let t = text.as_bytes();
    let syntax = memchr::memchr3_iter(b'=', b'%', b':', t).any(|i| {
        t[i] != b':'
            || match t.get(i + 1) {
                Some(b'0'..=b'9') => false,
                Some(b' ' | b'\t' | b'\'' | b'"') => true,
                Some(b'/') => t.get(i + 2) == Some(&b'/'),
                _ => i > 0 && is_quote(t[i - 1]),
            }
    });
    // Each marker holds a `k` (`ookie`), an `x` (`xsrf`) or a `z` (`authorizations`): one byte
    // scan rules most records out before the marker search.
    (syntax || (memchr::memchr3(b'k', b'x', b'z', t).is_some() && MARKERS.is_match(text)))
        && WORDS.is_match(text)
}

/// The byte ranges of `text` that hold secret values, sorted and disjoint. Empty when there is
/// nothing to scrub (values already redacted are not listed).
pub fn secret_spans(text: &str) -> Vec<Range<usize>> {
    let mut cx = Cx {
        t: text.as_bytes(),
        text,
        spans: Vec::new(),
        done: 0,
        oauth: None,
    };
    for m in WORDS.find_iter(text) {
        let id = m.pattern().as_usize();
        if id < USERINFO {
            cx.word(m.start(), m.end());
        } else if id == USERINFO {
            cx.userinfo(m.end());
        } else {
            cx.phrase(PHRASES[id - PHRASE0].1, m.end());
        }
    }
    let mut spans = cx.spans;
    spans.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for r in spans {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out.retain(|r| !REDACTED.contains(&&text[r.clone()]));
    out
}

/// `text` with every span of [`secret_spans`] replaced by [`MARKER`]; `None` if there is none.
pub fn scrub(text: &str) -> Option<String> {
    if !may_hold_secret(text) {
        return None;
    }
    let spans = secret_spans(text);
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 8 * spans.len());
    let mut at = 0;
    for r in spans {
        out.push_str(&text[at..r.start]);
        out.push_str(MARKER);
        at = r.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

fn is_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

fn is_quote(b: u8) -> bool {
    b == b'\'' || b == b'"'
}

/// `%` and two hex digits at `i`.
fn pct_at(t: &[u8], i: usize) -> bool {
    i + 2 < t.len() && t[i] == b'%' && pct_hex2(t, i + 1)
}

/// Whether `t[i..]` starts with `pat`, ASCII case-insensitively.
fn at_ci(t: &[u8], i: usize, pat: &str) -> bool {
    t.get(i..i + pat.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(pat.as_bytes()))
}

/// Percent-encoded separators that end a value nested in a URL-encoded query (`&`, `;`, `#`,
/// space), once or twice encoded.
const ENC_STOPS: [&str; 8] = [
    "%26", "%3B", "%23", "%20", "%2526", "%253B", "%2523", "%2520",
];

/// Percent-encoded separators that start a nested query parameter (`?`, `&`, `;`).
const ENC_STARTS: [&str; 6] = ["%3F", "%26", "%3B", "%253F", "%2526", "%253B"];

/// Bytes that end an unquoted value after `=` (query strings, forms, env, keyword arguments).
fn assign_stop(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b'&' | b';' | b',' | b')' | b'\'' | b'"' | b'#' | b'<' | b'>' | b']' | b'}'
        )
}

/// Bytes that end an unquoted value after `key: ` or in a dict.
fn word_stop(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b',' | b';' | b'\'' | b'"' | b')' | b'}' | b']')
}

struct Cx<'a> {
    t: &'a [u8],
    text: &'a str,
    spans: Vec<Range<usize>>,
    /// End of the last key looked at (a key with two key words is looked at once).
    done: usize,
    oauth: Option<bool>,
}

impl Cx<'_> {
    fn push(&mut self, r: Range<usize>) {
        if r.start < r.end {
            self.spans.push(r);
        }
    }

    /// A key word at `s..e`: find the whole key, its syntax, and its value.
    fn word(&mut self, s: usize, e: usize) {
        let t = self.t;
        let (mut ks, mut ke) = (s, e);
        while ks > 0 && is_key_byte(t[ks - 1]) {
            // `%3Ftoken`, `%253Ftoken`: the key starts after the percent-encoding.
            if ks >= 3 && pct_at(t, ks - 3) {
                break;
            }
            if ks >= 5 && t[ks - 5] == b'%' && at_ci(t, ks - 4, "25") && pct_hex2(t, ks - 2) {
                break;
            }
            ks -= 1;
        }
        while ke < t.len() && is_key_byte(t[ke]) {
            ke += 1;
        }
        if ks < self.done {
            return;
        }
        self.done = ke;
        let key = &self.text[ks..ke];
        if key.eq_ignore_ascii_case("authorizations") && ks > 0 && t[ks - 1] == b'/' {
            return self.authorizations_path(ke);
        }
        let query = (ks > 0 && matches!(t[ks - 1], b'?' | b'&' | b';' | b'#'))
            || ENC_STARTS
                .iter()
                .any(|p| ks >= p.len() && at_ci(t, ks - p.len(), p));
        let ctx = if query { Ctx::Query } else { Ctx::Strict };
        // `key=value`; `key = 'value'` (Python assignments, config dumps) outside queries.
        let eq = if ctx == Ctx::Strict {
            skip_ws(t, ke)
        } else {
            ke
        };
        if t.get(eq) == Some(&b'=') && t.get(eq + 1) != Some(&b'=') {
            let v = if eq > ke { skip_ws(t, eq + 1) } else { eq + 1 };
            if let Some(kind) = self.classify(key, ctx) {
                self.value(v, kind, Mode::Assign);
            }
            return;
        }
        // `key%3Dvalue` (a parameter of a URL-encoded `next=`), once or twice encoded.
        for eq in ["%3D", "%253D"] {
            if at_ci(t, ke, eq) {
                if self.classify(key, Ctx::Query).is_some() {
                    let v = ke + eq.len();
                    let end = self.run(v, assign_stop, true);
                    self.push(v..end);
                }
                return;
            }
        }
        // `'key': value`, `"key": value`, `\"key\": value`
        if ks > 0 && is_quote(t[ks - 1]) {
            let q = t[ks - 1];
            let esc = ks > 1 && t[ks - 2] == b'\\';
            let mut i = ke;
            if esc {
                if t.get(i) != Some(&b'\\') {
                    return;
                }
                i += 1;
            }
            if t.get(i) != Some(&q) {
                return;
            }
            i = skip_ws(t, i + 1);
            if t.get(i) == Some(&b':') {
                if let Some(kind) = self.classify(key, Ctx::Strict) {
                    self.value(skip_ws(t, i + 1), kind, Mode::Dict);
                }
            } else if t.get(i) == Some(&b',') {
                // Kubernetes `V1EnvVar` repr: `{'name': 'JUPYTERHUB_API_TOKEN', 'value': '…'}`.
                let j = skip_ws(t, i + 1);
                if j + 7 <= t.len()
                    && is_quote(t[j])
                    && at_ci(t, j + 1, "value")
                    && t[j + 6] == t[j]
                {
                    let c = skip_ws(t, j + 7);
                    if t.get(c) == Some(&b':') && self.classify(key, Ctx::Strict).is_some() {
                        self.value(skip_ws(t, c + 1), Kind::Plain, Mode::Dict);
                    }
                }
            }
            return;
        }
        // `key: value` (headers, YAML-like dumps); `module:123]` (no space) is a logger prefix.
        if t.get(ke) == Some(&b':')
            && matches!(t.get(ke + 1), Some(b' ' | b'\t'))
            && let Some(kind) = self.classify(key, Ctx::Strict)
        {
            self.value(skip_ws(t, ke + 1), kind, Mode::Header);
        }
    }

    fn classify(&mut self, key: &str, ctx: Ctx) -> Option<Kind> {
        let text = self.text;
        let oauth = &mut self.oauth;
        classify(key, ctx, &mut || {
            *oauth.get_or_insert_with(|| OAUTH_WORDS.is_match(text))
        })
    }

    /// The value starting at `v`: quoted (its content), or unquoted up to its syntax's end.
    fn value(&mut self, v: usize, kind: Kind, mode: Mode) {
        let t = self.t;
        let Some(&first) = t.get(v) else { return };
        if let Some(r) = quoted(t, v) {
            return self.cut(r, kind);
        }
        if matches!(first, b'[' | b'{' | b'(' | b'<') {
            // A structure (its own keys are looked at) or a bracketed status, not a scalar.
            return;
        }
        let end = match (mode, kind) {
            (Mode::Header, Kind::Auth) => return self.auth_value(v),
            (Mode::Header, Kind::Cookie) => return self.cookie_pairs(v..line_end(t, v)),
            (Mode::Assign, _) => self.run(v, assign_stop, false),
            _ => self.run(v, word_stop, false),
        };
        let w = &self.text[v..end];
        if mode == Mode::Dict && matches!(w, "None" | "null" | "True" | "False" | "true" | "false")
        {
            return;
        }
        self.push(v..end);
    }

    /// Replace a value's span according to its kind.
    fn cut(&mut self, r: Range<usize>, kind: Kind) {
        match kind {
            Kind::Plain => self.push(r),
            Kind::Auth => {
                let w = &self.t[r.clone()];
                // `token abc`, `Bearer abc`: the scheme stays (as JupyterHub's `_scrub_headers`).
                let sp = w.iter().position(|&b| b == b' ');
                match sp {
                    Some(i) if i > 0 && w[..i].iter().all(u8::is_ascii_alphabetic) => {
                        self.push(r.start + i + 1..r.end)
                    }
                    _ => self.push(r),
                }
            }
            Kind::Cookie => self.cookie_pairs(r),
        }
    }

    /// An unquoted `Authorization` value at `v`: an optional scheme, then one word.
    fn auth_value(&mut self, v: usize) {
        let t = self.t;
        if at_ci(t, v, "no authorization") {
            return; // configurable-http-proxy's placeholder for a missing header
        }
        let mut i = v;
        while i < t.len() && t[i].is_ascii_alphabetic() {
            i += 1;
        }
        let start = if i > v
            && t.get(i) == Some(&b' ')
            && t.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace())
        {
            i + 1
        } else {
            v
        };
        let end = self.run(start, word_stop, false);
        if let Some(r) = quoted(t, start) {
            return self.push(r);
        }
        self.push(start..end);
    }

    /// `a=b; c=d` (Cookie) or `name=value; Path=/; HttpOnly` (Set-Cookie) in `r`: the values
    /// of cookies go, their names and the Set-Cookie attributes stay.
    fn cookie_pairs(&mut self, r: Range<usize>) {
        const ATTRS: [&str; 9] = [
            "path",
            "domain",
            "expires",
            "max-age",
            "samesite",
            "secure",
            "httponly",
            "priority",
            "partitioned",
        ];
        let mut at = r.start;
        for piece in self.text[r.clone()].split(';') {
            let lead = piece.len() - piece.trim_start().len();
            let p = piece.trim();
            let ps = at + lead;
            match p.split_once('=') {
                Some((name, _)) if ATTRS.iter().any(|a| name.trim().eq_ignore_ascii_case(a)) => {}
                Some((name, val)) => {
                    let vs = ps + name.len() + 1;
                    self.push(vs..vs + val.len());
                }
                None if !p.is_empty() && !ATTRS.iter().any(|a| p.eq_ignore_ascii_case(a)) => {
                    self.push(ps..ps + p.len())
                }
                None => {}
            }
            at += piece.len() + 1;
        }
    }

    /// End of an unquoted value at `v`; `encoded` also stops at percent-encoded separators.
    fn run(&self, v: usize, stop: fn(u8) -> bool, encoded: bool) -> usize {
        let t = self.t;
        if t[v.min(t.len())..].starts_with(MARKER.as_bytes()) {
            return v + MARKER.len(); // already scrubbed (`]` would end it early)
        }
        let mut i = v;
        while i < t.len() && !stop(t[i]) {
            // `…?token=abc: Bad credentials`: a colon that ends a sentence ends the value.
            if t[i] == b':' && t.get(i + 1).is_none_or(u8::is_ascii_whitespace) {
                break;
            }
            if encoded && t[i] == b'%' && ENC_STOPS.iter().any(|p| at_ci(t, i, p)) {
                break;
            }
            i += 1;
        }
        i
    }

    /// `/api/authorizations/token/<token>` and `/api/authorizations/cookie/<name>/<value>`
    /// (JupyterHub < 2.0 `apihandlers/auth.py`; JupyterHub's `_scrub_uri` cuts the last segment).
    fn authorizations_path(&mut self, ke: usize) {
        let t = self.t;
        let seg_end = |from: usize| {
            let mut i = from;
            while i < t.len()
                && !t[i].is_ascii_whitespace()
                && !matches!(t[i], b'/' | b'?' | b'#' | b'\'' | b'"' | b')' | b'>')
            {
                i += 1;
            }
            i
        };
        if at_ci(t, ke, "/token/") {
            let s = ke + 7;
            self.push(s..seg_end(s));
        } else if at_ci(t, ke, "/cookie/") {
            let name_end = seg_end(ke + 8);
            if t.get(name_end) == Some(&b'/') {
                self.push(name_end + 1..seg_end(name_end + 1));
            }
        }
    }

    /// `scheme://user:password@host`: the password goes, the user stays.
    fn userinfo(&mut self, e: usize) {
        let t = self.t;
        let mut end = e;
        while end < t.len()
            && !t[end].is_ascii_whitespace()
            && !matches!(
                t[end],
                b'/' | b'?' | b'#' | b'\'' | b'"' | b'<' | b'>' | b')'
            )
        {
            end += 1;
        }
        let Some(at) = t[e..end].iter().rposition(|&b| b == b'@') else {
            return;
        };
        if let Some(c) = t[e..e + at].iter().position(|&b| b == b':') {
            self.push(e + c + 1..e + at);
        }
    }

    fn phrase(&mut self, p: Phrase, e: usize) {
        match p {
            Phrase::Repr => {
                self.repr(e);
            }
            Phrase::TwoReprs => {
                if let Some(end) = self.repr(e)
                    && at_ci(self.t, end, " != ")
                {
                    self.repr(end + 4);
                }
            }
            Phrase::Header => self.auth_value(e),
            Phrase::UpToColon => {
                let end = self.run(e, |b| b == b':' || b.is_ascii_whitespace(), false);
                self.push(e..end);
            }
        }
    }

    /// A Python repr (`b'…'`, `'…'`, `"…"`) or a bare word at `v`; returns where it ends.
    fn repr(&mut self, v: usize) -> Option<usize> {
        let t = self.t;
        if let Some(r) = quoted(t, v) {
            let end = (r.end + 1).min(t.len());
            self.push(r);
            return Some(end);
        }
        let end = self.run(v, |b| b.is_ascii_whitespace(), false);
        if end == v || &self.text[v..end] == "None" {
            return Some(end);
        }
        self.push(v..end);
        Some(end)
    }
}

fn pct_hex2(t: &[u8], i: usize) -> bool {
    i + 1 < t.len() && t[i].is_ascii_hexdigit() && t[i + 1].is_ascii_hexdigit()
}

fn skip_ws(t: &[u8], mut i: usize) -> usize {
    while i < t.len() && matches!(t[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

fn line_end(t: &[u8], v: usize) -> usize {
    memchr::memchr(b'\n', &t[v..]).map_or(t.len(), |i| v + i)
}

/// The content of a quoted value at `v` (`'…'`, `"…"`, `b'…'`, `u"…"`, `\"…\"`), up to its
/// closing quote (backslash escapes skipped) or the end of the line.
fn quoted(t: &[u8], v: usize) -> Option<Range<usize>> {
    let (open, esc) = match t.get(v..)? {
        [q, ..] if is_quote(*q) => (v + 1, false),
        [b'b' | b'B' | b'u' | b'U' | b'r' | b'R', q, ..] if is_quote(*q) => (v + 2, false),
        [b'\\', q, ..] if is_quote(*q) => (v + 2, true),
        _ => return None,
    };
    let q = t[open - 1];
    let mut i = open;
    while i < t.len() && t[i] != b'\n' {
        if esc {
            if t[i] == b'\\' && t.get(i + 1) == Some(&q) {
                break;
            }
        } else if t[i] == b'\\' {
            i += 1;
        } else if t[i] == q {
            break;
        }
        i += 1;
    }
    Some(open..i.min(t.len()))
}

#[cfg(test)]
mod tests;
