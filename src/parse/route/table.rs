//! The fixed route templates: the hub's, and a single-user server's under its four prefixes,
//! in priority order, compiled once into [`Seg`]ments. Also the words a Jupyter server serves at
//! its root, which tell a named server from a default server's own route.

use super::is_server_route;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seg {
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
pub(super) const HUB_TEMPLATES: &[&str] = &[
    "/hub/api",
    "/hub/api/info",
    "/hub/api/user",
    "/hub/api/users",
    "/hub/api/users/{user}",
    super::ACTIVITY,
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
pub(super) const SERVER_TEMPLATES: &[&str] = &[
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
pub(super) const SERVER_ROOT_WORDS: &[&str] = &[
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

pub(super) struct Template {
    pub(super) segs: Vec<Seg>,
    pub(super) route: &'static str,
    /// Ends in `{path}` (matches any longer path), else matches exactly `segs.len()` segments.
    pub(super) open_ended: bool,
    /// A route of one server: its server is `""` (the default one) unless the path names one.
    pub(super) server_route: bool,
    /// The leading literal segments, as a path (`/hub/api/users`), and how many they are.
    pub(super) lead: &'static str,
    pub(super) lead_segs: usize,
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
    let lits: Vec<&str> = segs
        .iter()
        .map_while(|s| match s {
            Seg::Lit(l) => Some(*l),
            _ => None,
        })
        .collect();
    Template {
        lead: leak(lits.iter().map(|l| format!("/{l}")).collect()),
        lead_segs: lits.len(),
        segs,
        route,
        open_ended,
        server_route: is_server_route(route),
    }
}

/// Every template, in priority order: the hub's, then the four single-user prefixes.
pub(super) fn templates() -> Vec<Template> {
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
