//! Request paths → a bounded-cardinality `route` template, plus the user and server named in it.
//!
//! `/user/alice/analysis/api/kernels/5d7c…/channels` → `/user/{user}/{server}/api/kernels/{id}/channels`,
//! user `alice`, server `analysis`. Every route this module returns is one of a fixed set of
//! `&'static str` built once at start-up, so the `route` column (and any metric tag made from it)
//! can never carry a user name, an id or a file path, whatever the input.
//!
//! A `/user/<name>/<segment>` path is a *named* server unless `<segment>` is a word a Jupyter
//! server uses at its root (`api`, `lab`, `tree`, `files`, …) — the same ambiguity
//! configurable-http-proxy resolves by prefix.
//!
//! `table` holds the templates; `trie` finds the one a path takes (this module keeps the
//! entry point, the fallback for paths no template knows, and percent-decoding).

mod table;

/// The route of a single-user server's activity reports (`apihandlers/users.py`
/// `ActivityAPIHandler`).
pub const ACTIVITY: &str = "/hub/api/users/{user}/activity";
mod trie;

use std::borrow::Cow;

use table::SERVER_ROOT_WORDS;
use trie::TRIE;

/// What a path says: its route template and the user/server it names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteInfo<'a> {
    pub route: &'static str,
    pub user: Option<Cow<'a, str>>,
    /// `Some("")` for the default server, `Some(name)` for a named one, `None` if not server-specific.
    pub server: Option<Cow<'a, str>>,
}

/// Percent-decode a path segment (user names with `@` arrive as `%40`).
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    // A byte loop: segments are short, closer than a vectorised search pays for.
    if !s.bytes().any(|c| c == b'%') {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

const MAX_SEGS: usize = 32;

/// Classify a request path (query string and fragment ignored).
pub fn classify(path: &str) -> RouteInfo<'_> {
    let path = memchr::memchr2(b'?', b'#', path.as_bytes()).map_or(path, |i| &path[..i]);
    if let Some(info) = TRIE.recent_in_place(path) {
        return info;
    }
    // No template is longer than a dozen segments; a fixed array keeps the hot path allocation-free.
    let mut buf = [""; MAX_SEGS];
    let mut n = 0;
    let mut start = 0;
    let b = path.as_bytes();
    // Non-empty `/`-separated segments (`/` is ASCII, so every cut is a char boundary).
    for i in 0..=b.len() {
        if i < b.len() && b[i] != b'/' {
            continue;
        }
        if i > start {
            if n == MAX_SEGS {
                break;
            }
            buf[n] = &path[start..i];
            n += 1;
        }
        start = i + 1;
    }
    let segs = &buf[..n];
    let mut info = TRIE.lookup(segs).unwrap_or_else(|| fallback(segs));
    if info.server.is_none() && is_server_route(info.route) {
        info.server = Some(Cow::Borrowed(""));
    }
    info
}

fn is_server_route(route: &str) -> bool {
    route.starts_with("/user/{user}/")
        || route.starts_with("/hub/user/{user}/")
        || route.ends_with("/users/{user}/server")
        || route.ends_with("/users/{user}/server/progress")
}

/// Routes no template knows keep only their well-known head, so cardinality stays bounded.
fn fallback<'a>(segs: &[&'a str]) -> RouteInfo<'a> {
    let user = |i: usize| segs.get(i).map(|s| percent_decode(s));
    match segs {
        ["user", _, s, ..] if !SERVER_ROOT_WORDS.contains(s) => RouteInfo {
            route: "/user/{user}/{server}/*",
            user: user(1),
            server: Some(percent_decode(s)),
        },
        ["user", _, ..] => RouteInfo {
            route: "/user/{user}/*",
            user: user(1),
            server: None,
        },
        ["hub", "user", _, ..] => RouteInfo {
            route: "/hub/user/{user}/*",
            user: user(2),
            server: None,
        },
        ["hub", "api", "users", _, ..] => RouteInfo {
            route: "/hub/api/users/{user}/*",
            user: user(3),
            server: None,
        },
        ["hub", "api", ..] => RouteInfo {
            route: "/hub/api/*",
            user: None,
            server: None,
        },
        ["hub", ..] => RouteInfo {
            route: "/hub/*",
            user: None,
            server: None,
        },
        ["services", ..] => RouteInfo {
            route: "/services/*",
            user: None,
            server: None,
        },
        _ => RouteInfo {
            route: "/*",
            user: None,
            server: None,
        },
    }
}

#[cfg(test)]
#[path = "route_tests.rs"]
mod tests;
