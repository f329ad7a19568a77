//! JupyterHub request lines (`jupyterhub/log.py` `log_request`, also installed in single-user
//! servers by the `jupyterhub-singleuser` extension).
//!
//! Grammar:
//!
//! ```text
//! request  = status " " method " " uri [ " -> " target ] " (" who ")" " " duration "ms"
//! who      = [ user ] "@" ip          ; split on the LAST "@": user names may contain "@"
//! status   = 3DIGIT ; method = 1*UPPER ; duration = float
//! ```
//!
//! `302 GET /hub/ -> /hub/spawn (ana.lopez@example.org@::ffff:10.244.0.1) 13.12ms`
//!
//! The `who` part is read from the right: the duration is the last word, the parenthesised
//! part ends just before it, and it opens at the last ` (` before that. Services appear as the
//! user (`jupyterhub-idle-culler@::1`); anonymous requests are `(@ip)`.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use nom::IResult;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request<'a> {
    pub status: u16,
    pub method: &'a str,
    pub path: &'a str,
    pub redirect: Option<&'a str>,
    /// The authenticated name; `""` for anonymous requests.
    pub actor: &'a str,
    pub ip: &'a str,
    pub duration_ms: f64,
}

/// ` -> ` and the `→` of very old hubs, with their lengths in bytes.
static ARROWS: LazyLock<[(Finder<'static>, usize); 2]> =
    LazyLock::new(|| [(Finder::new(" -> "), 4), (Finder::new(" → "), " → ".len())]);

/// `status " " METHOD " "`, shared with CHP's API and proxy-error lines.
///
/// Written by hand (it runs on every hub line); the grammar is that of
/// `(take_while_m_n(3, 3, digit), char(' '), take_while1(uppercase), char(' '))`.
pub fn status_method(i: &str) -> IResult<&str, (u16, &str)> {
    let b = i.as_bytes();
    let err = || nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify));
    if b.len() < 5 || !b[..3].iter().all(u8::is_ascii_digit) || b[3] != b' ' {
        return Err(err());
    }
    let status = b[..3]
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    let len = b[4..].iter().take_while(|c| c.is_ascii_uppercase()).count();
    if len == 0 || b.get(4 + len) != Some(&b' ') {
        return Err(err());
    }
    Ok((&i[5 + len..], (status, &i[4..4 + len])))
}

/// `str::parse::<f64>` for the `12.34` of a request line, without its general machinery.
///
/// Exact: a decimal with at most 15 digits has a mantissa below 2^53 and a power of ten below
/// 10^22, both exact in an `f64`, so one IEEE division rounds correctly, as `parse` does
/// (Clinger's fast path). Anything else (exponents, signs, long fractions) goes to `parse`.
/// Powers of ten exact in an `f64`, for [`duration`].
pub(super) const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

pub(super) fn duration(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let (mut mant, mut digits, mut frac, mut dot) = (0u64, 0usize, 0usize, false);
    for &c in b {
        match c {
            b'0'..=b'9' => {
                mant = mant * 10 + u64::from(c - b'0');
                digits += 1;
                frac += usize::from(dot);
            }
            b'.' if !dot => dot = true,
            _ => return s.parse().ok(),
        }
        if digits > 15 {
            return s.parse().ok();
        }
    }
    if digits == 0 || (dot && frac == 0) || b.first() == Some(&b'.') {
        return s.parse().ok();
    }
    Some(mant as f64 / POW10[frac])
}

/// The position of the last `c` in `b`.
fn last(b: &[u8], c: u8) -> Option<usize> {
    b.iter().rposition(|&x| x == c)
}

/// The position of the last ` (` in `b`.
fn open_paren(b: &[u8]) -> Option<usize> {
    let mut end = b.len();
    while let Some(i) = last(&b[..end], b'(') {
        if i > 0 && b[i - 1] == b' ' {
            return Some(i - 1);
        }
        end = i;
    }
    None
}

/// Parse the first line of a hub/single-user message as a request line.
pub fn parse(msg: &str) -> Option<Request<'_>> {
    let (rest, (status, method)) = status_method(msg).ok()?;
    // duration: the last word, `12.34ms`
    // (The searches from the end are byte loops: what they look for is a few bytes away, closer
    // than a vectorised search pays for. Each byte sought is ASCII, so every cut is a char
    // boundary.)
    let sp = last(rest.as_bytes(), b' ')?;
    let (head, dur) = (&rest[..sp], &rest[sp + 1..]);
    let duration_ms = duration(dur.strip_suffix("ms")?)?;
    // who: `(user@ip)` just before the duration
    let head = head.strip_suffix(')')?;
    let open = open_paren(head.as_bytes())?;
    let (target, who) = (&head[..open], &head[open + 2..]);
    let at = last(who.as_bytes(), b'@')?;
    let (actor, ip) = (&who[..at], &who[at + 1..]);
    // Both arrows need a `-` or the first byte of `→`: one scan rules them out for most lines.
    let arrow = memchr::memchr2(b'-', 0xE2, target.as_bytes()).and_then(|_| {
        ARROWS
            .iter()
            .find_map(|(f, n)| f.find(target.as_bytes()).map(|i| (i, *n)))
    });
    let (path, redirect) = match arrow {
        Some((i, n)) => (&target[..i], Some(&target[i + n..])),
        None => (target, None),
    };
    if path.is_empty() {
        return None;
    }
    Some(Request {
        status,
        method,
        path,
        redirect,
        actor,
        ip,
        duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_request() {
        let r = parse("200 POST /hub/api/users/alice/activity (alice@10.0.1.23) 7.38ms").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/hub/api/users/alice/activity");
        assert_eq!((r.actor, r.ip), ("alice", "10.0.1.23"));
        assert_eq!(r.duration_ms, 7.38);
        assert_eq!(r.redirect, None);
    }

    #[test]
    fn redirect_and_at_in_user_and_mapped_ipv6() {
        let r =
            parse("302 GET /hub/ -> /hub/spawn (XXXXXX@mail.tau.ac.il@::ffff:10.128.0.69) 13.12ms")
                .unwrap();
        assert_eq!(r.redirect, Some("/hub/spawn"));
        assert_eq!(
            (r.actor, r.ip),
            ("XXXXXX@mail.tau.ac.il", "::ffff:10.128.0.69")
        );
    }

    #[test]
    fn anonymous_service_and_ipv6() {
        let r = parse("200 GET /hub/api/users?state=[secret] (jupyterhub-idle-culler@::1) 34.92ms")
            .unwrap();
        assert_eq!((r.actor, r.ip), ("jupyterhub-idle-culler", "::1"));
        let r = parse("404 GET /hub/user/nobody/api (@127.0.0.1) 3.10ms").unwrap();
        assert_eq!((r.actor, r.ip), ("", "127.0.0.1"));
    }

    #[test]
    fn unicode_arrow_of_old_hubs() {
        let r = parse("302 GET /hub/ → /hub/home (a@1.2.3.4) 1.00ms").unwrap();
        assert_eq!(r.redirect, Some("/hub/home"));
    }

    #[test]
    fn not_requests() {
        assert!(parse("User logged in: alice").is_none());
        assert!(parse("200 GET /api/routes ").is_none());
        assert!(parse("429 POST /hub/api/users/alice/server (10.0.0.7): Too many users").is_none());
        assert!(parse("200 GET (a@b) 1ms").is_none());
        assert!(parse("200 get /x (a@b) 1ms").is_none());
        assert!(parse("20 GET /x (a@b) 1ms").is_none());
    }

    #[test]
    fn duration_matches_std_parse() {
        for s in [
            "0",
            "7.38",
            "13.12",
            "0.1",
            "34.92",
            "1.",
            ".5",
            "1e3",
            "-1.0",
            "",
            ".",
            "1.2.3",
            "123456789012345.6",
            "1234567890.12345",
            "99999999999999.9",
            "0.000000000000001",
            "inf",
            "NaN",
            "+1.5",
            "12.345678901234567",
        ] {
            assert_eq!(
                duration(s).map(f64::to_bits),
                s.parse::<f64>().ok().map(f64::to_bits),
                "{s:?}"
            );
        }
        for m in 0..20_000u32 {
            let s = format!("{}.{:02}", m / 100, m % 100);
            assert_eq!(duration(&s), s.parse::<f64>().ok(), "{s}");
        }
    }

    proptest::proptest! {
        /// The byte-loop searches find what `str::rfind` finds.
        #[test]
        fn searches_from_the_end_agree_with_rfind(s in "[ (a@)]{0,12}") {
            proptest::prop_assert_eq!(open_paren(s.as_bytes()), s.rfind(" ("));
            proptest::prop_assert_eq!(last(s.as_bytes(), b'@'), s.rfind('@'));
        }
    }
}
