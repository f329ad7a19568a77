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

use std::borrow::Cow;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seg {
    Lit(&'static str),
    User,
    Server,
    /// A server name where nothing else can stand (`/hub/api/users/{user}/servers/{server}`):
    /// unlike [`Seg::Server`] after `/user/{user}/`, a Jupyter root word (`notebooks`, `lab`,
    /// …) here is a server's name (JupyterHub allows any URL-safe name).
    NamedServer,
    Group,
    Service,
    Id,
    /// One or more remaining segments.
    Path,
}

/// Hub routes, most specific first within a shared prefix.
const HUB_TEMPLATES: &[&str] = &[
    "/hub/api",
    "/hub/api/info",
    "/hub/api/user",
    "/hub/api/users",
    "/hub/api/users/{user}",
    "/hub/api/users/{user}/activity",
    "/hub/api/users/{user}/server",
    "/hub/api/users/{user}/server/progress",
    "/hub/api/users/{user}/servers/{server}",
    "/hub/api/users/{user}/servers/{server}/progress",
    "/hub/api/users/{user}/tokens",
    "/hub/api/users/{user}/tokens/{id}",
    "/hub/api/users/{user}/shared",
    "/hub/api/users/{user}/shared/{path}",
    "/hub/api/groups",
    "/hub/api/groups/{group}",
    "/hub/api/groups/{group}/users",
    "/hub/api/groups/{group}/properties",
    "/hub/api/groups/{group}/shared/{path}",
    "/hub/api/services",
    "/hub/api/services/{service}",
    "/hub/api/proxy",
    "/hub/api/shutdown",
    "/hub/api/shares/{path}",
    "/hub/api/share-codes/{path}",
    "/hub/api/authorizations/token/{id}",
    "/hub/api/authorizations/cookie/{path}",
    "/hub/api/oauth2/authorize",
    "/hub/api/oauth2/token",
    "/hub/api/metrics",
    "/hub",
    "/hub/home",
    "/hub/login",
    "/hub/logout",
    "/hub/admin",
    "/hub/token",
    "/hub/health",
    "/hub/metrics",
    "/hub/oauth_callback",
    "/hub/accept-share",
    "/hub/logo",
    "/hub/error/{id}",
    "/hub/spawn",
    "/hub/spawn/{user}",
    "/hub/spawn/{user}/{server}",
    "/hub/spawn-pending/{user}",
    "/hub/spawn-pending/{user}/{server}",
    "/hub/user-redirect/{path}",
    "/hub/static/{path}",
    "/hub/security/csp-report",
    "/",
    "/favicon.ico",
    "/api/routes",
    "/api/routes/{path}",
    "/metrics",
    "/user",
];

/// Routes inside a single-user server, relative to its prefix.
const SERVER_TEMPLATES: &[&str] = &[
    "",
    "api",
    "api/status",
    "api/me",
    "api/spec.yaml",
    "api/kernels",
    "api/kernels/{id}",
    "api/kernels/{id}/channels",
    "api/kernels/{id}/interrupt",
    "api/kernels/{id}/restart",
    "api/sessions",
    "api/sessions/{id}",
    "api/terminals",
    "api/terminals/{id}",
    "api/contents",
    "api/contents/{path}",
    "api/kernelspecs",
    "api/kernelspecs/{path}",
    "api/events/subscribe",
    "api/config/{id}",
    "api/nbconvert",
    "api/shutdown",
    "api/collaboration/{path}",
    "api/{path}",
    "lab",
    "lab/api/{path}",
    "lab/tree/{path}",
    "lab/workspaces/{path}",
    "lab/{path}",
    "tree",
    "tree/{path}",
    "notebooks/{path}",
    "files/{path}",
    "edit/{path}",
    "view/{path}",
    "doc/{path}",
    "static/{path}",
    "nbconvert/{path}",
    "terminals/{path}",
    "kernelspecs/{path}",
    "custom/{path}",
    "nbextensions/{path}",
    "lsp/{path}",
    "voila/{path}",
    "oauth_callback",
    "login",
    "logout",
    "metrics",
];

/// Words a Jupyter server serves at its root; anything else after `/user/<name>/` is a server name.
const SERVER_ROOT_WORDS: &[&str] = &[
    "api",
    "lab",
    "tree",
    "notebooks",
    "files",
    "edit",
    "view",
    "doc",
    "static",
    "nbconvert",
    "terminals",
    "kernelspecs",
    "custom",
    "nbextensions",
    "lsp",
    "voila",
    "oauth_callback",
    "login",
    "logout",
    "metrics",
];

struct Template {
    segs: Vec<Seg>,
    route: &'static str,
    /// Ends in `{path}` (matches any longer path), else matches exactly `segs.len()` segments.
    open_ended: bool,
    /// A route of one server: its server is `""` (the default one) unless the path names one.
    server_route: bool,
}

fn leak(s: String) -> &'static str {
    // Built once per process from the fixed tables above: bounded, never freed on purpose.
    Box::leak(s.into_boxed_str())
}

fn compile(route: &'static str) -> Template {
    let mut prev = "";
    let segs: Vec<Seg> = route
        .split('/')
        .skip(1)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let after = std::mem::replace(&mut prev, s);
            (s, after)
        })
        .map(|(s, after)| match s {
            "{user}" => Seg::User,
            "{server}" if after == "servers" => Seg::NamedServer,
            "{server}" => Seg::Server,
            "{group}" => Seg::Group,
            "{service}" => Seg::Service,
            "{id}" => Seg::Id,
            "{path}" => Seg::Path,
            lit => Seg::Lit(lit),
        })
        .collect();
    let open_ended = segs.last() == Some(&Seg::Path);
    Template {
        segs,
        route,
        open_ended,
        server_route: is_server_route(route),
    }
}

/// Every template, in priority order: the hub's, then the four single-user prefixes.
fn templates() -> Vec<Template> {
    let mut routes: Vec<&'static str> = HUB_TEMPLATES.to_vec();
    for prefix in [
        "/user/{user}",
        "/user/{user}/{server}",
        "/hub/user/{user}",
        "/hub/user/{user}/{server}",
    ] {
        for t in SERVER_TEMPLATES {
            routes.push(leak(format!("{prefix}/{t}")));
        }
    }
    routes.into_iter().map(compile).collect()
}

/// The templates as a trie of segments.
///
/// The rule it implements (the one this module has always had): a path takes the first
/// template, in table order, among those whose first two segments are the path's literally;
/// failing that, the first among those whose second segment is a placeholder. So a template's
/// priority is `(second segment is a placeholder, index)`, and the trie returns the matching
/// template of least priority, walking literal and placeholder branches alike. Only that one
/// template is then matched segment by segment to capture user and server.
struct Trie {
    nodes: Vec<Node>,
    templates: Vec<Template>,
    /// `unrivalled[i]`: no template of smaller priority can match a path template `i` matches,
    /// so a path template `i` matches needs no walk (see [`RECENT`]).
    unrivalled: Vec<bool>,
}

thread_local! {
    /// The last few unrivalled templates returned: a log repeats a handful of routes, and
    /// trying these first (a length check rejects most) skips the walk for most paths.
    static RECENT: std::cell::Cell<[usize; RECENT_LEN]> = const { std::cell::Cell::new([usize::MAX; RECENT_LEN]) };
}

const RECENT_LEN: usize = 4;

/// Can some path match both `a` and `b`? Conservative: `true` unless provably not.
fn may_overlap(a: &Template, b: &Template) -> bool {
    let fixed = |t: &Template| t.segs.len() - usize::from(t.open_ended);
    let (fa, fb) = (fixed(a), fixed(b));
    // Path lengths: exactly `fixed` segments, or at least `fixed + 1` when open-ended.
    let lengths_meet = match (a.open_ended, b.open_ended) {
        (false, false) => fa == fb,
        (true, false) => fb > fa,
        (false, true) => fa > fb,
        (true, true) => true,
    };
    let root = |s: &Seg, l: &str| *s == Seg::Server && SERVER_ROOT_WORDS.contains(&l);
    lengths_meet
        && a.segs[..fa]
            .iter()
            .zip(&b.segs[..fb])
            .all(|(x, y)| match (x, y) {
                (Seg::Lit(l), Seg::Lit(m)) => l == m,
                (Seg::Lit(l), s) | (s, Seg::Lit(l)) => !root(s, l),
                _ => true,
            })
}

#[derive(Default)]
struct Node {
    lits: Vec<(&'static str, usize)>,
    /// Placeholder children; only `Server` refuses some segments (the server root words).
    holes: Vec<(Seg, usize)>,
    /// Least priority of a template ending here.
    exact: Option<u32>,
    /// Least priority of a template ending here in `{path}` (needs one more segment at least).
    open: Option<u32>,
}

const STAR: u32 = 1 << 16;

fn least(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        _ => a.or(b),
    }
}

impl Trie {
    fn build() -> Trie {
        let templates = templates();
        let mut nodes = vec![Node::default()];
        for (idx, t) in templates.iter().enumerate() {
            let star = !matches!(t.segs.get(1), Some(Seg::Lit(_)) | None);
            let prio = idx as u32 | if star { STAR } else { 0 };
            let mut at = 0;
            for seg in &t.segs {
                if *seg == Seg::Path {
                    break;
                }
                let found = match seg {
                    Seg::Lit(l) => nodes[at].lits.iter().find(|(k, _)| k == l).map(|c| c.1),
                    _ => nodes[at].holes.iter().find(|(k, _)| k == seg).map(|c| c.1),
                };
                at = found.unwrap_or_else(|| {
                    nodes.push(Node::default());
                    let child = nodes.len() - 1;
                    match seg {
                        Seg::Lit(l) => nodes[at].lits.push((l, child)),
                        _ => nodes[at].holes.push((*seg, child)),
                    }
                    child
                });
            }
            let node = &mut nodes[at];
            if t.open_ended {
                node.open = least(node.open, Some(prio));
            } else {
                node.exact = least(node.exact, Some(prio));
            }
        }
        let unrivalled = (0..templates.len())
            .map(|i| {
                let prio = |j: usize| {
                    let star = !matches!(templates[j].segs.get(1), Some(Seg::Lit(_)) | None);
                    (star, j)
                };
                (0..templates.len())
                    .all(|j| prio(j) >= prio(i) || !may_overlap(&templates[j], &templates[i]))
            })
            .collect();
        Trie {
            nodes,
            templates,
            unrivalled,
        }
    }

    /// Least priority of a template matching `segs[i..]` from `node`.
    fn best(&self, node: usize, segs: &[&str], i: usize) -> Option<u32> {
        let n = &self.nodes[node];
        let Some(seg) = segs.get(i) else {
            return n.exact;
        };
        let mut best = n.open;
        for (lit, child) in &n.lits {
            if lit.len() == seg.len() && lit.as_bytes()[0] == seg.as_bytes()[0] && lit == seg {
                best = least(best, self.best(*child, segs, i + 1));
            }
        }
        for (hole, child) in &n.holes {
            if *hole != Seg::Server || !SERVER_ROOT_WORDS.contains(seg) {
                best = least(best, self.best(*child, segs, i + 1));
            }
        }
        best
    }

    /// The recent templates tried on the path in place (see [`matches_path`]); `None` sends
    /// the path to the full lookup.
    fn recent_in_place<'a>(&self, path: &'a str) -> Option<RouteInfo<'a>> {
        for i in RECENT.with(|r| r.get()) {
            let t = self.templates.get(i)?;
            match matches_path(t, path) {
                Direct::Yes(mut info) => {
                    if info.server.is_none() && t.server_route {
                        info.server = Some(Cow::Borrowed(""));
                    }
                    return Some(info);
                }
                Direct::No => {}
                Direct::Unsure => return None,
            }
        }
        None
    }

    fn lookup<'a>(&self, segs: &[&'a str]) -> Option<RouteInfo<'a>> {
        let recent = RECENT.with(|r| r.get());
        for &i in &recent {
            if let Some(info) = self.templates.get(i).and_then(|t| matches(t, segs)) {
                return Some(info);
            }
        }
        let i = (self.best(0, segs, 0)? & (STAR - 1)) as usize;
        if self.unrivalled[i] {
            let mut next = [i; RECENT_LEN];
            next[1..].copy_from_slice(&recent[..RECENT_LEN - 1]);
            RECENT.with(|r| r.set(next));
        }
        matches(&self.templates[i], segs)
    }
}

static TRIE: LazyLock<Trie> = LazyLock::new(Trie::build);

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
    if !s.contains('%') {
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

fn matches<'a>(t: &Template, segs: &[&'a str]) -> Option<RouteInfo<'a>> {
    // Most templates of a bucket differ in length: reject them before comparing any segment.
    if (t.open_ended && segs.len() < t.segs.len()) || (!t.open_ended && segs.len() != t.segs.len())
    {
        return None;
    }
    let mut info = RouteInfo {
        route: t.route,
        user: None,
        server: None,
    };
    let mut i = 0;
    for (k, seg) in t.segs.iter().enumerate() {
        match seg {
            Seg::Path => {
                // `{path}` is last in every template and needs at least one segment.
                return (i < segs.len() && k == t.segs.len() - 1).then_some(info);
            }
            _ if i >= segs.len() => return None,
            Seg::Lit(l) => {
                if segs[i] != *l {
                    return None;
                }
            }
            Seg::User => info.user = Some(percent_decode(segs[i])),
            Seg::NamedServer => info.server = Some(percent_decode(segs[i])),
            Seg::Server => {
                if SERVER_ROOT_WORDS.contains(&segs[i]) {
                    return None;
                }
                info.server = Some(percent_decode(segs[i]));
            }
            Seg::Group | Seg::Service | Seg::Id => {}
        }
        i += 1;
    }
    (i == segs.len()).then_some(info)
}

/// What [`matches_path`] can tell without splitting the path.
enum Direct<'a> {
    Yes(RouteInfo<'a>),
    No,
    /// An empty segment (`//`, a trailing `/`) or no leading `/`: split the path and match
    /// its segments instead.
    Unsure,
}

/// [`matches`] on the path itself, for the recent-template shortcut: most paths are matched
/// by the template of the path before, and comparing it in place skips splitting the path.
/// Answers `Yes` or `No` only where `matches` over the split segments gives that answer.
fn matches_path<'a>(t: &Template, path: &'a str) -> Direct<'a> {
    let b = path.as_bytes();
    let mut at = 0;
    let mut info = RouteInfo {
        route: t.route,
        user: None,
        server: None,
    };
    for seg in &t.segs {
        if *seg == Seg::Path {
            // At least one non-empty segment must remain.
            return if b[at..].iter().any(|&c| c != b'/') {
                Direct::Yes(info)
            } else {
                Direct::No
            };
        }
        if b.get(at) != Some(&b'/') {
            // The path ended (or, at the start, does not begin with `/`).
            return if at == 0 { Direct::Unsure } else { Direct::No };
        }
        at += 1;
        // A literal that is there: no need to look for the segment's end.
        if let Seg::Lit(l) = seg {
            let end = at + l.len();
            if b.get(at..end) == Some(l.as_bytes()) && b.get(end).is_none_or(|&c| c == b'/') {
                at = end;
                continue;
            }
        }
        let end = b[at..]
            .iter()
            .position(|&c| c == b'/')
            .map_or(b.len(), |i| at + i);
        if end == at {
            return Direct::Unsure;
        }
        // `/` is ASCII: `at` and `end` are char boundaries.
        let text = &path[at..end];
        match seg {
            Seg::Lit(l) => {
                if text != *l {
                    return Direct::No;
                }
            }
            Seg::User => info.user = Some(percent_decode(text)),
            Seg::NamedServer => info.server = Some(percent_decode(text)),
            Seg::Server => {
                if SERVER_ROOT_WORDS.contains(&text) {
                    return Direct::No;
                }
                info.server = Some(percent_decode(text));
            }
            Seg::Group | Seg::Service | Seg::Id | Seg::Path => {}
        }
        at = end;
    }
    if at == b.len() {
        Direct::Yes(info)
    } else if b[at..].iter().all(|&c| c == b'/') {
        Direct::Unsure
    } else {
        Direct::No
    }
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
mod tests {
    use super::*;

    fn r(p: &str) -> (&'static str, Option<String>, Option<String>) {
        let i = classify(p);
        (
            i.route,
            i.user.map(|c| c.into_owned()),
            i.server.map(|c| c.into_owned()),
        )
    }

    #[test]
    fn hub_api_routes() {
        assert_eq!(
            r("/hub/api/users/alice/activity"),
            ("/hub/api/users/{user}/activity", Some("alice".into()), None)
        );
        assert_eq!(
            r("/hub/api/users/carol/servers/scratch"),
            (
                "/hub/api/users/{user}/servers/{server}",
                Some("carol".into()),
                Some("scratch".into())
            )
        );
        assert_eq!(
            r("/hub/api/users/bob/server"),
            (
                "/hub/api/users/{user}/server",
                Some("bob".into()),
                Some("".into())
            )
        );
        assert_eq!(r("/hub/api/users?state=[secret]").0, "/hub/api/users");
        assert_eq!(r("/hub/api/").0, "/hub/api");
        assert_eq!(
            r("/hub/api/groups/data-science/users").0,
            "/hub/api/groups/{group}/users"
        );
    }

    #[test]
    fn user_server_routes() {
        assert_eq!(
            r("/user/alice/analysis/api/kernels/5d7c-11/channels?session_id=x"),
            (
                "/user/{user}/{server}/api/kernels/{id}/channels",
                Some("alice".into()),
                Some("analysis".into())
            )
        );
        assert_eq!(
            r("/user/alice/api/kernels/5d7c"),
            (
                "/user/{user}/api/kernels/{id}",
                Some("alice".into()),
                Some("".into())
            )
        );
        assert_eq!(
            r("/user/alice/lab/tree/a/b.ipynb").0,
            "/user/{user}/lab/tree/{path}"
        );
        assert_eq!(
            r("/hub/user/alice/api/status").0,
            "/hub/user/{user}/api/status"
        );
        assert_eq!(
            r("/user/frank%40example.org/lab").1.as_deref(),
            Some("frank@example.org")
        );
    }

    #[test]
    fn unknown_paths_fall_back_to_bounded_heads() {
        assert_eq!(r("/hub/some/custom/handler/alice").0, "/hub/*");
        assert_eq!(
            r("/user/alice/gpu/weird/deep/path").0,
            "/user/{user}/{server}/*"
        );
        assert_eq!(r("/wp-login.php").0, "/*");
        assert_eq!(r("").0, "/");
    }

    /// The table scan the trie replaced: templates bucketed by their first two segments, the
    /// literal bucket first, then the placeholder one, first match in table order.
    fn reference(path: &str) -> RouteInfo<'_> {
        use std::collections::HashMap;
        type Buckets = HashMap<(&'static str, &'static str), Vec<Template>>;
        static BY_HEAD: LazyLock<Buckets> = LazyLock::new(|| {
            let key_of = |seg: Option<&Seg>| match seg {
                Some(Seg::Lit(l)) => *l,
                Some(_) => "*",
                None => "",
            };
            let mut by_head = Buckets::new();
            for t in templates() {
                let key = (key_of(t.segs.first()), key_of(t.segs.get(1)));
                by_head.entry(key).or_default().push(t);
            }
            by_head
        });
        let by_head = &*BY_HEAD;
        let path = path.split(['?', '#']).next().unwrap_or("");
        let segs: Vec<&str> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .take(MAX_SEGS)
            .collect();
        let first = segs.first().copied().unwrap_or("");
        let second = segs.get(1).copied().unwrap_or("");
        let lookup = |key: (&str, &str)| {
            by_head
                .get(&key)
                .and_then(|ts| ts.iter().find_map(|t| matches(t, &segs)))
        };
        let mut info = lookup((first, second))
            .or_else(|| {
                if second.is_empty() {
                    None
                } else {
                    lookup((first, "*"))
                }
            })
            .unwrap_or_else(|| fallback(&segs));
        if info.server.is_none() && is_server_route(info.route) {
            info.server = Some(Cow::Borrowed(""));
        }
        info
    }

    #[test]
    fn trie_agrees_with_the_table_scan() {
        let words = [
            "",
            "hub",
            "api",
            "user",
            "users",
            "alice",
            "a%40b",
            "lab",
            "tree",
            "api",
            "kernels",
            "k1",
            "channels",
            "servers",
            "server",
            "progress",
            "gpu",
            "spawn",
            "static",
            "x",
            "*",
            "routes",
            "groups",
            "g",
            "shared",
            "tokens",
            "activity",
            "contents",
            "metrics",
            "favicon.ico",
            "services",
            "login",
            "oauth_callback",
            "authorizations",
            "token",
        ];
        let mut paths: Vec<String> = templates()
            .iter()
            .map(|t| {
                t.route
                    .replace("{user}", "alice")
                    .replace("{server}", "gpu")
                    .replace("{path}", "a/b")
                    .replace(['{', '}'], "")
            })
            .collect();
        // Every combination of up to three words, and a sample of deeper ones.
        let n = words.len();
        for i in 0..n * n * n {
            let (a, b, c) = (i % n, i / n % n, i / n / n);
            paths.push(format!("/{}/{}/{}", words[a], words[b], words[c]));
            let d = (i * 7) % n;
            paths.push(format!(
                "/{}/{}/{}/{}",
                words[c], words[b], words[a], words[d]
            ));
            paths.push(format!(
                "/user/{}/{}/{}/{}",
                words[a], words[b], words[c], words[d]
            ));
            paths.push(format!(
                "/hub/{}/{}/{}/{}/x",
                words[a], words[b], words[c], words[d]
            ));
        }
        for p in &paths {
            assert_eq!(classify(p), reference(p), "{p}");
        }
        // Again in reverse, so the recent-template shortcut sees other sequences.
        for p in paths.iter().rev() {
            assert_eq!(classify(p), reference(p), "{p}");
        }
        let t = &*TRIE;
        let hot = |r: &str| t.templates.iter().position(|x| x.route == r).unwrap();
        assert!(t.unrivalled[hot("/hub/api/users/{user}/activity")]);
        assert!(t.unrivalled[hot("/user/{user}/{server}/api/kernels/{id}/channels")]);
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%40b"), "a@b");
        assert_eq!(percent_decode("a%4"), "a%4");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
