//! The rule set of the scrubber: which key names hold secrets, in which context, and the
//! messages that print a secret without a key. `docs/SCRUBBING.md` is the same list, with the
//! upstream sources; every entry here cites the code that logs it.

/// Messages that print a secret without a key name before it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Phrase {
    /// One Python repr (or bare word) follows.
    Repr,
    /// `a != b`: two reprs.
    TwoReprs,
    /// An `Authorization` header value follows.
    Header,
    /// A value up to the next `:`.
    UpToColon,
}

pub(super) const PHRASES: [(&str, Phrase); 11] = [
    // jupyterhub `_xsrf_utils.py` `_set_xsrf_cookie` (INFO, 4.1+): `Setting new xsrf cookie for
    // b'<session id>:<user cookie id>' {...}`.
    ("xsrf cookie for ", Phrase::Repr),
    // jupyterhub `_xsrf_utils.py` `get_xsrf_token` (DEBUG): `xsrf id mismatch b'..' != b'..'`.
    ("xsrf id mismatch ", Phrase::TwoReprs),
    // tornado `web.py` `_decode_signed_value_v1`/`decode_signed_value` (WARNING).
    ("invalid cookie signature ", Phrase::Repr),
    ("expired cookie ", Phrase::Repr),
    ("possible tampering ", Phrase::Repr),
    ("tampered cookie ", Phrase::Repr),
    // oauthenticator `oauth2.py` `OAuthCallbackHandler.check_state` (WARNING).
    ("oauth state mismatch: ", Phrase::TwoReprs),
    // jupyterhub `oauth/provider.py` `JupyterHubRequestValidator.validate_code` (DEBUG).
    ("no such code: ", Phrase::Repr),
    // jupyterhub `handlers/pages.py` `AcceptShareHandler` (HTTPError 400, logged by tornado).
    ("invalid share code: ", Phrase::Repr),
    // configurable-http-proxy `lib/configproxy.js` `authorized()` (DEBUG):
    // `Rejecting API request from: <Authorization header>`.
    ("rejecting api request from: ", Phrase::Header),
    // jupyterhub `services/auth.py` `HubAuth._check_hub_authorization` (DEBUG):
    // `HubAuth cache miss: token:<session id>:<sha256 of the token>`.
    ("hubauth cache miss: token:", Phrase::UpToColon),
];

/// How a secret value is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The whole value.
    Plain,
    /// An `Authorization` value: its scheme (`token`, `Bearer`, `Basic`) stays.
    Auth,
    /// A `Cookie`/`Set-Cookie` value: each cookie's value; names and attributes stay.
    Cookie,
}

/// The syntax of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// After `=`: query strings, forms, env, keyword arguments.
    Assign,
    /// After `'key':` in a Python or JSON dict.
    Dict,
    /// After `key: ` (headers, YAML-like dumps).
    Header,
}

/// Where a key was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ctx {
    /// A query-string or form parameter (after `?`, `&`, `;`, or their percent-encodings).
    Query,
    /// Anything else: JSON, Python reprs, keyword arguments, env, `key: value`, headers.
    Strict,
}

/// Sub-words that make a *query parameter* secret: JupyterHub's own `SCRUB_PARAM_KEYS`
/// (`jupyterhub/log.py`: `token`, `auth`, `key`, `code`, `state`, `_xsrf`, any key containing
/// one) and ours.
const QUERY_SUBWORDS: [&str; 14] = [
    "token",
    "auth",
    "key",
    "code",
    "state",
    "xsrf",
    "secret",
    "passw",
    "pwd",
    "jwt",
    "cookie",
    "session",
    "signature",
    "credential",
];

/// Keys secret in any syntax, compared after lower-casing and `-` → `_`.
const EXACT_KEYS: [&str; 13] = [
    "pwd",
    "auth",
    "session",
    "session_id",
    "sessionid",
    "apikey",
    "api_key",
    "x_api_key",
    "private_key",
    "access_key",
    "signing_key",
    "jwt",
    "xsrf",
];

/// Suffixes of keys that *name* a secret without holding one (`token_url`, `cookie_secret_file`,
/// `token_type`, `token_expires_at`, ...): not scrubbed outside query strings.
const NOT_SECRET_SUFFIXES: [&str; 16] = [
    "_url",
    "_uri",
    "_endpoint",
    "_type",
    "_hint",
    "_file",
    "_path",
    "_name",
    "_id",
    "_expires_at",
    "_expires_in",
    "_expiry",
    "_ttl",
    "_count",
    "_scopes",
    "_length",
];

/// Sub-words that make a key secret outside query strings: `*_token`, `access_token`,
/// `X-Jupyterhub-Api-Token`, `JUPYTERHUB_API_TOKEN`, `client_secret`, `password`, `passwd`, ...
const STRICT_SUBWORDS: [&str; 7] = [
    "token",
    "secret",
    "passw",
    "jwt",
    "xsrf",
    "credential",
    "signature",
];

/// The rule set over key names: whether the value of `key` is secret here, and how it is cut.
pub(super) fn classify(key: &str, ctx: Ctx, oauth: &mut dyn FnMut() -> bool) -> Option<Kind> {
    let k: String = key
        .trim_start_matches('-')
        .bytes()
        .map(|b| match b {
            b'-' => '_',
            b => b.to_ascii_lowercase() as char,
        })
        .collect();
    match k.as_str() {
        "authorization" | "proxy_authorization" => return Some(Kind::Auth),
        "cookie" | "set_cookie" => return Some(Kind::Cookie),
        _ => {}
    }
    if ctx == Ctx::Query {
        return QUERY_SUBWORDS
            .iter()
            .any(|w| k.contains(w))
            .then_some(Kind::Plain);
    }
    // OAuth's `code` and `state` (and oauthenticator's `state_id`, JupyterHub's
    // `<cookie>-oauth-state` cookie): secrets in an OAuth exchange, ordinary words elsewhere
    // (`exit code: 1`, a pod's `'state': 'Running'`).
    // A dotted config path (`c.JupyterHub.proxy_auth_token`, `--ServerApp.token`): its last
    // part is the name.
    let k = k.rsplit('.').next().unwrap_or(&k);
    if matches!(k, "code" | "state" | "state_id") || k.ends_with("oauth_state") {
        return oauth().then_some(Kind::Plain);
    }
    if EXACT_KEYS.contains(&k) {
        return Some(Kind::Plain);
    }
    if NOT_SECRET_SUFFIXES.iter().any(|s| k.ends_with(s)) {
        return None;
    }
    STRICT_SUBWORDS
        .iter()
        .any(|w| k.contains(w))
        .then_some(Kind::Plain)
}
