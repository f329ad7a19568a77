//! Message fields → [`Record`] columns: the request path (route, user, server), the catalogue's
//! captured fields ([`FieldTarget`]), and the rule that no name with a control character is
//! taken.

use std::borrow::Cow;

use super::catalogue::FieldTarget;
use super::record::Record;
use super::route;
use super::text::Flags;

pub(super) fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Names are never taken with control characters: percent-decoding turns `/user/alice%0A/` into
/// `alice\n` (issue 18: a name that is not the user's, or a forged line). The record keeps its
/// message and path; its `user`, `actor` and `server_name` are left empty and it is flagged
/// `bad_name`.
pub(super) fn reject_control_names(rec: &mut Record<'_>, flags: &mut Flags) {
    let bad = rec.user.as_deref().is_some_and(has_control)
        || rec.server_name.as_deref().is_some_and(has_control)
        || rec.actor.is_some_and(has_control);
    if bad {
        rec.user = None;
        rec.server_name = None;
        rec.actor = None;
        flags.set(Flags::BAD_NAME);
    }
}

pub(super) fn set_path<'r>(rec: &mut Record<'r>, path: &'r str) {
    let info = route::classify(path);
    rec.path = Some(path);
    rec.route = Some(info.route);
    if info.user.is_some() {
        rec.user = info.user;
    }
    if info.server.is_some() {
        rec.server_name = info.server;
    }
}

/// `/user/<name>/` or `/user/<name>/<server>/` (a server's route spec): name and server.
fn server_routespec(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_prefix("/user/")?.strip_suffix('/')?;
    let (u, s) = inner.split_once('/').unwrap_or((inner, ""));
    (!u.is_empty() && !s.contains('/')).then_some((u, s))
}

/// Split `alice:gpu` (hub) or `alice/gpu` (culler) into user and server (`""` = default server).
fn split_name(s: &str, sep: char) -> (&str, &str) {
    s.split_once(sep).unwrap_or((s, ""))
}

pub(super) fn apply_field<'r>(
    rec: &mut Record<'r>,
    name: &'static str,
    target: FieldTarget,
    v: &'r str,
) {
    use FieldTarget as T;
    match target {
        T::User => rec.user = Some(Cow::Borrowed(v)),
        T::Actor => rec.actor = Some(v),
        T::ServerName => rec.server_name = Some(Cow::Borrowed(v)),
        T::Method => rec.method = Some(v),
        T::Status => rec.status = v.parse().ok(),
        T::Path => set_path(rec, v),
        T::ClientIp => rec.client_ip = Some(v),
        T::Target => rec.target = Some(v),
        T::Service => rec.service = Some(v),
        T::ExitCode => rec.exit_code = v.parse().ok(),
        T::Count => rec.count = v.parse().ok(),
        T::DurationMs => rec.duration_ms = v.parse().ok(),
        T::Seconds => rec.duration_ms = v.parse::<f64>().ok().map(|s| s * 1000.0),
        T::LogName | T::CullerName => {
            let (u, s) = split_name(v, if target == T::LogName { ':' } else { '/' });
            rec.user = Some(Cow::Borrowed(u));
            rec.server_name = Some(Cow::Borrowed(s));
        }
        T::RouteSpec => {
            rec.attrs.push((name, v));
            let path = v
                .find("://")
                .map_or(v, |i| v[i + 3..].find('/').map_or("", |j| &v[i + 3 + j..]));
            // A server's route spec is `/user/<name>/` or `/user/<name>/<server>/` (proxy.py
            // `add_user`/`delete_user`: `user.proxy_spec` + `url_escape_path(server_name)`):
            // its third segment is a server name even when it is a Jupyter root word.
            if let Some((u, s)) = server_routespec(path) {
                if rec.user.is_none() {
                    rec.user = Some(route::percent_decode(u));
                }
                rec.server_name = Some(route::percent_decode(s));
                return;
            }
            let info = route::classify(path);
            if rec.user.is_none() {
                rec.user = info.user;
            }
            if info.route.starts_with("/user/{user}") {
                rec.server_name = info.server.or(Some(Cow::Borrowed("")));
            }
        }
        T::QuotedUser => rec.user = Some(Cow::Borrowed(v.trim_matches(|c| c == '\'' || c == '"'))),
        T::Attr => rec.attrs.push((name, v)),
    }
}
