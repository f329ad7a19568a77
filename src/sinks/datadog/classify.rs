//! Records → bounded tag values: route groups, status classes, failure and cull reasons.
//!
//! Every function here returns a `&'static str` from a fixed table, whatever the input, so a
//! tag built from it cannot carry a user name, an id or a path.

use crate::parse::record::Record;

/// Route groups, in the order [`route_group`] tries them.
pub const ROUTE_GROUPS: &[&str] = &[
    "login",
    "oauth",
    "spawn",
    "server_api",
    "activity",
    "hub_api",
    "user_redirect",
    "singleuser",
    "static",
    "health",
    "proxy_api",
    "services",
    "hub_pages",
    "other",
];

/// The group of a route template (`crate::parse::route`): a dozen values a dashboard can show.
pub fn route_group(route: &str) -> &'static str {
    let r = route;
    if matches!(r, "/hub/login" | "/hub/logout" | "/hub/oauth_callback") {
        "login"
    } else if r.starts_with("/hub/api/oauth2/") || r.starts_with("/hub/api/authorizations/") {
        "oauth"
    } else if r.starts_with("/hub/spawn") {
        "spawn"
    } else if r.starts_with("/hub/api/users/{user}/server") {
        "server_api"
    } else if r == "/hub/api/users/{user}/activity" {
        "activity"
    } else if r == "/hub/api" || r.starts_with("/hub/api/") {
        "hub_api"
    } else if r.starts_with("/hub/user/") || r.starts_with("/hub/user-redirect/") {
        "user_redirect"
    } else if r == "/user" || r.starts_with("/user/") {
        "singleuser"
    } else if r.starts_with("/hub/static/") || r == "/favicon.ico" || r == "/hub/logo" {
        "static"
    } else if matches!(r, "/hub/health" | "/hub/metrics" | "/metrics") {
        "health"
    } else if r.starts_with("/api/routes") {
        "proxy_api"
    } else if r.starts_with("/services/") {
        "services"
    } else if r == "/hub" || r.starts_with("/hub/") {
        "hub_pages"
    } else {
        "other"
    }
}

/// `2xx`, `4xx`, …; `other` for anything outside 100–599.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

/// Why a spawn failed, for a `spawn_failed` / `spawn_timeout` record; `None` when the record
/// re-reports an earlier failure (`Previous spawn for … failed`) and must not be counted again.
pub fn spawn_failure_reason(rec: &Record<'_>) -> Option<&'static str> {
    let has_url = rec.attrs.iter().any(|(k, _)| *k == "url");
    match rec.kind {
        "spawn_timeout" if has_url => Some("http_timeout"),
        "spawn_timeout" => Some("start_timeout"),
        "spawn_failed" if rec.message.starts_with("Previous spawn for") => None,
        "spawn_failed" if rec.message.starts_with("Unhandled error waiting for") => {
            Some("unreachable")
        }
        "spawn_failed" if rec.message.contains("didn't start for unknown reason") => {
            Some("unknown")
        }
        "spawn_failed" => Some("error"),
        _ => None,
    }
}

/// Kinds that are one failed login attempt each: `Failed login for …` only.
///
/// JupyterHub (4.x–6.x) logs it in `BaseHandler.login_user` (`handlers/base.py`) whenever
/// `authenticate()` returns nothing, for every login path: the form's `LoginHandler.post`, an
/// `auto_login` `LoginHandler.get`, and oauthenticator's `OAuthCallbackHandler.get` (16.x, 17.x;
/// `Failed login for 'unknown user'`). 4.x/5.x write the name with `%s`, 6.x with `%r`. A refusal
/// by `Authenticator.get_authenticated_user` (`auth.py`: `Disallowing invalid username %r.`,
/// `User %r blocked. Stop authentication`, `User %r not allowed.`, kind `login_refused`) comes
/// *before* that line in the same attempt, so it is the reason, not a second attempt; a wrong
/// password logs `Failed login for` alone. (The one refusal without `Failed login`, the
/// deprecated `POST /hub/api/users/{name}/tokens` with an `auth` body, is not a login.)
pub const LOGIN_FAILED_KINDS: &[&str] = &["login_failed"];

/// A line that starts, retries or ends a spawner launch (see [`launch_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch<'a> {
    /// LocalProcessSpawner's `Spawning …` for a user's server: always a launch.
    Process,
    /// KubeSpawner's `Attempting to create pod P, with timeout N`: a launch, or a retry of one.
    PodCreate(&'a str),
    /// `Found existing pod P, attempting to kill`: the next create of P is a retry.
    PodConflict(&'a str),
    /// `Deleting pod NS/P` or `No pod NS/P to delete`: P's launch is over (unless in conflict).
    PodDeleted(&'a str),
}

/// What a record says about spawner launches, if anything.
///
/// * `Spawning CMD` is logged by `LocalProcessSpawner.start` (`jupyterhub/spawner.py`, module
///   `spawner`) for users' servers, and by `_ServiceSpawner.start` (`jupyterhub/services/
///   service.py`, module `service`, 1.x–6.x) for every managed service (the Z2JH idle culler:
///   `Spawning python3 -m jupyterhub_idle_culler …`), right after `Starting service 'NAME': […]`.
///   A service is not a user's spawn and has no spawn outcome: it is not a launch.
/// * KubeSpawner's lines are read in [`crate::sinks::datadog::state::HubState::launch`]; pod names are taken
///   without the namespace (`Deleting pod` writes `NS/P`, `Attempting to create pod` writes `P`).
pub fn launch_event<'r>(rec: &Record<'r>) -> Option<Launch<'r>> {
    let attr = |k: &str| rec.attrs.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    let pod = |p: &'r str| p.rsplit('/').next().unwrap_or(p);
    match rec.kind {
        "process_spawned" => {
            let module = rec.module.map(|m| m.split(':').next().unwrap_or(m));
            (module != Some("service")).then_some(Launch::Process)
        }
        "pod_create" => attr("pod").map(|p| Launch::PodCreate(pod(p))),
        "pod_delete" => attr("pod")
            .or_else(|| attr("missing"))
            .map(|p| Launch::PodDeleted(pod(p))),
        _ => {
            let m = rec.message.strip_prefix("Found existing pod ")?;
            let p = m.lines().next()?.strip_suffix(", attempting to kill")?;
            Some(Launch::PodConflict(pod(p)))
        }
    }
}

/// The reason tag of a cull record.
pub fn cull_reason(kind: &str) -> Option<&'static str> {
    match kind {
        "cull_server" => Some("server_idle"),
        "cull_user" => Some("user_idle"),
        "kernel_culled" => Some("kernel_idle"),
        _ => None,
    }
}

/// The reason tag of a proxy error record.
pub fn proxy_error_reason(kind: &str) -> Option<&'static str> {
    match kind {
        "chp_proxy_error" => Some("upstream"),
        "proxy_api_error" => Some("api"),
        "proxy_add_failed" => Some("add_route"),
        "chp_exception" => Some("exception"),
        _ => None,
    }
}

/// The reason tag of a refused spawn (a quota or limit).
pub fn spawn_denied_reason(kind: &str) -> Option<&'static str> {
    match kind {
        "spawn_throttled" => Some("throttled"),
        "server_limit_reached" => Some("server_limit"),
        _ => None,
    }
}

/// The marker CPython prints at the top of every traceback.
pub const TRACEBACK_MARKER: &str = "Traceback (most recent call last):";

/// Kinds that report an exception even without a Python traceback in the record.
pub const EXCEPTION_KINDS: &[&str] = &[
    "asyncio_exception",
    "exception_ignored",
    "culler_exception",
    "chp_exception",
];

/// Whether a record reports an exception (counted once per record, however long its traceback).
pub fn is_traceback(rec: &Record<'_>) -> bool {
    // One searcher for the process: `memmem::find` would build (and allocate) one per record.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(TRACEBACK_MARKER.as_bytes()));
    EXCEPTION_KINDS.contains(&rec.kind) || FINDER.find(rec.message.as_bytes()).is_some()
}

/// `default` for a user's default server (`""`), else `named`.
pub fn server_type(server: &str) -> &'static str {
    if server.is_empty() {
        "default"
    } else {
        "named"
    }
}

/// A tag value made safe from free text (a logger or profile name): Datadog's tag charset
/// (lowercased alphanumerics, `_ - . /`), at most 64 characters.
pub fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() {
        out.push_str("none");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_groups_are_from_the_table_and_hide_users() {
        for (route, group) in [
            ("/hub/login", "login"),
            ("/hub/api/oauth2/token", "oauth"),
            ("/hub/spawn/{user}/{server}", "spawn"),
            ("/hub/spawn-pending/{user}", "spawn"),
            ("/hub/api/users/{user}/server", "server_api"),
            (
                "/hub/api/users/{user}/servers/{server}/progress",
                "server_api",
            ),
            ("/hub/api/users/{user}/activity", "activity"),
            ("/hub/api/users/{user}", "hub_api"),
            ("/hub/api", "hub_api"),
            ("/hub/user/{user}/api/status", "user_redirect"),
            ("/user/{user}/{server}/api/kernels/{id}", "singleuser"),
            ("/hub/static/{path}", "static"),
            ("/hub/health", "health"),
            ("/api/routes/{path}", "proxy_api"),
            ("/services/*", "services"),
            ("/hub/home", "hub_pages"),
            ("/*", "other"),
            ("/wp-login.php", "other"),
        ] {
            assert_eq!(route_group(route), group, "{route}");
            assert!(ROUTE_GROUPS.contains(&group));
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(302), "3xx");
        assert_eq!(status_class(424), "4xx");
        assert_eq!(status_class(599), "5xx");
        assert_eq!(status_class(0), "other");
        assert_eq!(status_class(600), "other");
    }

    #[test]
    fn sanitize_keeps_tags_to_datadogs_charset() {
        assert_eq!(sanitize("GPU (large)"), "gpu__large_");
        assert_eq!(sanitize("tornado.application"), "tornado.application");
        assert_eq!(sanitize(""), "none");
        assert_eq!(sanitize(&"x".repeat(100)).len(), 64);
    }
}
