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

use memchr::memmem::{Finder, FinderRev};
use nom::{
    IResult, Parser,
    bytes::complete::{take_while_m_n, take_while1},
    character::complete::char,
    combinator::map_res,
};

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

static OPEN_PAREN: LazyLock<FinderRev<'static>> = LazyLock::new(|| FinderRev::new(" ("));
/// ` -> ` and the `→` of very old hubs, with their lengths in bytes.
static ARROWS: LazyLock<[(Finder<'static>, usize); 2]> =
    LazyLock::new(|| [(Finder::new(" -> "), 4), (Finder::new(" → "), " → ".len())]);

/// `status " " METHOD " "`, shared with CHP's API and proxy-error lines.
pub fn status_method(i: &str) -> IResult<&str, (u16, &str)> {
    let (i, (status, _, method, _)) = (
        map_res(
            take_while_m_n(3, 3, |c: char| c.is_ascii_digit()),
            |s: &str| s.parse::<u16>(),
        ),
        char(' '),
        take_while1(|c: char| c.is_ascii_uppercase()),
        char(' '),
    )
        .parse(i)?;
    Ok((i, (status, method)))
}

/// Parse the first line of a hub/single-user message as a request line.
pub fn parse(msg: &str) -> Option<Request<'_>> {
    let (rest, (status, method)) = status_method(msg).ok()?;
    // duration: the last word, `12.34ms`
    let (head, dur) = rest.rsplit_once(' ')?;
    let duration_ms: f64 = dur.strip_suffix("ms")?.parse().ok()?;
    // who: `(user@ip)` just before the duration
    let head = head.strip_suffix(')')?;
    let open = OPEN_PAREN.rfind(head.as_bytes())?;
    let (target, who) = (&head[..open], &head[open + 2..]);
    let (actor, ip) = who.rsplit_once('@')?;
    let arrow = ARROWS
        .iter()
        .find_map(|(f, n)| f.find(target.as_bytes()).map(|i| (i, *n)));
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
    }
}
