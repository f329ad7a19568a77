//! Text hygiene applied to a record before it is parsed: invalid UTF-8, ANSI colour codes,
//! carriage returns, NUL bytes, and secrets the hub did not scrub.
//!
//! Everything here borrows when there is nothing to change (the common case in a
//! Kubernetes log stream: no TTY, no colours, valid UTF-8), so the hot path allocates nothing.
//!
//! Invariant: nothing is dropped silently. A change that loses information (lossy UTF-8
//! decoding, NUL removal) sets a [`Flags`] bit that ends up in the record's `flags` column.

use std::borrow::Cow;
use std::sync::LazyLock;

/// Anomalies seen while cleaning a record; stored in the lake's `flags` column.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flags(u16);

impl Flags {
    pub const INVALID_UTF8: Flags = Flags(1);
    pub const TRUNCATED: Flags = Flags(2);
    pub const NUL: Flags = Flags(4);
    pub const ANSI: Flags = Flags(8);
    pub const SCRUBBED: Flags = Flags(16);
    pub const SPLIT: Flags = Flags(32);
    /// A user, actor or server name held control characters and was not taken.
    pub const BAD_NAME: Flags = Flags(64);
    /// Stamped more than 10 min after it was parsed: kept, counted, never trusted (not in the
    /// `lifecycle` and `activity` tables, so no session, usage or control action rests on it).
    pub const FUTURE: Flags = Flags(128);
    /// Stamped more than an hour before the stream had already reached (its confirmed high
    /// water, see `Parser`): kept, counted, never trusted, like [`Flags::FUTURE`]. A forged
    /// line dated days back makes no session in the past.
    pub const LATE: Flags = Flags(256);

    const NAMES: [(Flags, &'static str); 9] = [
        (Flags::INVALID_UTF8, "invalid_utf8"),
        (Flags::TRUNCATED, "truncated"),
        (Flags::NUL, "nul"),
        (Flags::ANSI, "ansi"),
        (Flags::SCRUBBED, "scrubbed"),
        (Flags::SPLIT, "split"),
        (Flags::BAD_NAME, "bad_name"),
        (Flags::FUTURE, "future"),
        (Flags::LATE, "late"),
    ];

    pub fn set(&mut self, f: Flags) {
        self.0 |= f.0;
    }
    pub fn contains(self, f: Flags) -> bool {
        self.0 & f.0 != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// `|`-separated names, e.g. `invalid_utf8|truncated`; `None` when no flag is set.
    pub fn names(self) -> Option<&'static str> {
        /// Every combination, joined once (a record's flags cost no allocation).
        static JOINED: LazyLock<Vec<String>> = LazyLock::new(|| {
            (0..1u16 << Flags::NAMES.len())
                .map(|bits| {
                    let v: Vec<&str> = Flags::NAMES
                        .iter()
                        .filter(|(f, _)| Flags(bits).contains(*f))
                        .map(|(_, n)| *n)
                        .collect();
                    v.join("|")
                })
                .collect()
        });
        if self.is_empty() {
            return None;
        }
        JOINED.get(self.0 as usize).map(String::as_str)
    }
}

/// Decode bytes as UTF-8, lossily if needed (flagged), removing NUL bytes (flagged).
pub fn decode<'a>(bytes: &'a [u8], flags: &mut Flags) -> Cow<'a, str> {
    let text = match std::str::from_utf8(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => {
            flags.set(Flags::INVALID_UTF8);
            String::from_utf8_lossy(bytes)
        }
    };
    if memchr::memchr(0, text.as_bytes()).is_some() {
        flags.set(Flags::NUL);
        return Cow::Owned(text.replace('\0', ""));
    }
    text
}

/// Remove ANSI escape sequences (CSI `ESC [ ... final`, charset `ESC ( B`) and carriage returns.
///
/// After an `ESC`: a `[` opens a CSI, dropped up to and with its final byte (`0x40..=0x7e`);
/// `(`, `)`, `*` or `+` is dropped with the character after it; any other character is dropped.
/// The text between the `ESC`s and carriage returns is copied a run at a time: every byte this
/// looks at is ASCII, so each run starts and ends on a character boundary (a CSI's bytes are
/// skipped one by one up to an ASCII final byte; a UTF-8 sequence holds no byte below `0x80`).
pub fn strip_controls<'a>(text: Cow<'a, str>, flags: &mut Flags) -> Cow<'a, str> {
    let s: &str = &text;
    let b = s.as_bytes();
    let Some(mut at) = memchr::memchr2(0x1b, b'\r', b) else {
        return text;
    };
    // The end of the character starting at `j` (or `j` at the end of the text).
    let after_char = |j: usize| s[j..].chars().next().map_or(j, |c| j + c.len_utf8());
    let mut out = String::with_capacity(b.len());
    let mut from = 0;
    loop {
        out.push_str(&s[from..at]);
        let mut j = at + 1;
        if b[at] == 0x1b {
            flags.set(Flags::ANSI);
            match b.get(j) {
                Some(b'[') => {
                    j += 1;
                    while let Some(&c) = b.get(j) {
                        j += 1;
                        if (0x40..=0x7e).contains(&c) {
                            break;
                        }
                    }
                }
                Some(b'(' | b')' | b'*' | b'+') => j = after_char(j + 1),
                Some(_) => j = after_char(j),
                None => {}
            }
        }
        from = j;
        match memchr::memchr2(0x1b, b'\r', &b[from..]) {
            Some(k) => at = from + k,
            None => break,
        }
    }
    out.push_str(&s[from..]);
    Cow::Owned(out)
}

/// [`scrub`] for a record whose prefix ends at byte `from` of `body`: the prescan
/// ([`super::scrub::may_hold_secret`]) looks at the message after it only (the prefix's colons
/// are no syntax a secret is written in); if it may hold one, the whole record is scrubbed.
/// `None`: nothing to scrub.
pub fn scrub_record(body: &str, from: usize, flags: &mut Flags) -> Option<String> {
    let message = body.get(from..).unwrap_or(body);
    if !super::scrub::may_hold_secret(message) {
        return None;
    }
    let s = super::scrub::scrub(body)?;
    flags.set(Flags::SCRUBBED);
    Some(s)
}

/// Replace the secret values in `text` with `[secret]` (the rule set: [`super::scrub`]), and
/// flag the record when anything was replaced. Borrows when there is nothing to scrub.
pub fn scrub<'a>(text: Cow<'a, str>, flags: &mut Flags) -> Cow<'a, str> {
    match super::scrub::scrub(&text) {
        Some(s) => {
            flags.set(Flags::SCRUBBED);
            Cow::Owned(s)
        }
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The character-at-a-time stripper `strip_controls` replaced: the reference it is tested against.
    fn strip_controls_chars<'a>(text: Cow<'a, str>, flags: &mut Flags) -> Cow<'a, str> {
        let bytes = text.as_bytes();
        if memchr::memchr2(0x1b, b'\r', bytes).is_none() {
            return text;
        }
        let mut out = String::with_capacity(bytes.len());
        let mut chars = text.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            match c {
                '\r' => {}
                '\x1b' => {
                    flags.set(Flags::ANSI);
                    match chars.next() {
                        Some((_, '[')) => {
                            // CSI: parameters and intermediates, then one final byte in 0x40..=0x7e.
                            for (_, c) in chars.by_ref() {
                                if ('\x40'..='\x7e').contains(&c) {
                                    break;
                                }
                            }
                        }
                        Some((_, '(' | ')' | '*' | '+')) => {
                            chars.next();
                        }
                        _ => {}
                    }
                }
                c => out.push(c),
            }
        }
        Cow::Owned(out)
    }

    proptest! {
        #[test]
        fn strip_controls_matches_the_char_at_a_time_stripper(
            parts in proptest::collection::vec(prop_oneof![
                Just("\x1b".to_string()), Just("\r".to_string()), Just("[".to_string()),
                Just("(".to_string()), Just("+".to_string()), Just("m".to_string()),
                Just("é".to_string()), Just("\u{1f600}".to_string()), Just("31;1".to_string()),
                "[ -~]{0,6}", ".{0,3}",
            ], 0..24)
        ) {
            let text: String = parts.concat();
            let (mut f1, mut f2) = (Flags::default(), Flags::default());
            let got = strip_controls(Cow::Borrowed(&text), &mut f1);
            let want = strip_controls_chars(Cow::Borrowed(&text), &mut f2);
            prop_assert_eq!(got, want);
            prop_assert_eq!(f1, f2);
        }
    }

    fn clean(s: &str) -> (String, Flags) {
        let mut f = Flags::default();
        let t = strip_controls(Cow::Borrowed(s), &mut f);
        let t = scrub(t, &mut f);
        (t.into_owned(), f)
    }

    #[test]
    fn strips_tornado_pty_colours_and_crlf() {
        let (t, f) =
            clean("\x1b[32m[I 2026-11-28 10:32:33.231 JupyterHub app:3913]\x1b(B\x1b[m Running\r");
        assert_eq!(t, "[I 2026-11-28 10:32:33.231 JupyterHub app:3913] Running");
        assert!(f.contains(Flags::ANSI));
    }

    #[test]
    fn strips_chp_level_colour() {
        let (t, _) = clean(
            "2026-11-02T09:15:45.192Z [ConfigProxy] \x1b[32minfo\x1b[39m: 200 GET /api/routes ",
        );
        assert_eq!(
            t,
            "2026-11-02T09:15:45.192Z [ConfigProxy] info: 200 GET /api/routes "
        );
    }

    #[test]
    fn scrubs_oauth_code_and_state_in_raw_uri() {
        let (t, f) = clean(
            "Uncaught exception GET /hub/oauth_callback?state=eyJzdGF0ZSI6&code=8a544009-1 (::1)",
        );
        assert_eq!(
            t,
            "Uncaught exception GET /hub/oauth_callback?state=[secret]&code=[secret] (::1)"
        );
        assert!(f.contains(Flags::SCRUBBED));
    }

    #[test]
    fn leaves_already_scrubbed_values_and_counts_no_change() {
        let s = "200 GET /hub/api/users?state=[secret] (jupyterhub-idle-culler@::1) 34.92ms";
        let (t, f) = clean(s);
        assert_eq!(t, s);
        assert!(!f.contains(Flags::SCRUBBED));
    }

    #[test]
    fn scrubs_culler_api_token_repr() {
        let (t, _) = clean(
            "functools.partial(<function cull_idle at 0x7f>, url='http://localhost:8081/hub/api', api_token='2f57c9af00', inactive_limit=3600)",
        );
        assert!(t.contains("api_token='[secret]'"), "{t}");
        assert!(!t.contains("2f57c9af00"));
    }

    #[test]
    fn scrubs_header_dump_values() {
        let (t, _) = clean(
            "    \"Authorization\": \"token abcdef123\",\n    \"Cookie\": \"jupyterhub-session-id=abc; _xsrf=def\"",
        );
        assert!(t.contains("\"Authorization\": \"token [secret]\""), "{t}");
        assert!(
            t.contains("jupyterhub-session-id=[secret]; _xsrf=[secret]"),
            "{t}"
        );
    }

    #[test]
    fn module_named_authorization_is_not_a_header() {
        let s = "[D 2026-11-28 17:05:25.241 oauthlib.oauth2.rfc6749.endpoints.authorization authorization:98] Dispatching";
        assert_eq!(clean(s).0, s);
        let (t, _) = clean("Authorization: Bearer abc.def");
        assert_eq!(t, "Authorization: Bearer [secret]");
    }

    #[test]
    fn lossy_utf8_and_nul_are_flagged_not_dropped() {
        let mut f = Flags::default();
        let t = decode(b"ab\xffc\0d", &mut f);
        assert_eq!(t, "ab\u{fffd}cd");
        assert!(f.contains(Flags::INVALID_UTF8) && f.contains(Flags::NUL));
        assert_eq!(f.names(), Some("invalid_utf8|nul"));
    }
}
