//! The JupyterHub REST API's JSON models, typed: users, servers, groups, pages, and the typed
//! outcomes of starting and stopping a server.
//!
//! Fields a token may not be allowed to read are `Option`s: the hub *omits* what the caller's
//! scopes do not cover (`user_model`'s `access_map` in `jupyterhub/apihandlers/base.py`), so
//! `groups: None` means "not visible to this token" (needs `read:users:groups`), which is not the
//! same as `Some(vec![])` ("in no group"). Timestamps are UTC (`…Z`, microseconds) or `null`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// A user as `GET /users` and `GET /users/{name}` return it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct User {
    pub name: String,
    /// `read:users:name` (implied by `list:users`).
    #[serde(default)]
    pub admin: bool,
    /// `read:users:groups`; `None` when the token cannot see groups.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
    /// `read:roles:users`; `None` when not visible.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// `read:users:activity`: the most recent activity over the user and all their servers.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub last_activity: Option<DateTime<Utc>>,
    /// `read:users`.
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub created: Option<DateTime<Utc>>,
    /// `read:users`: the default server's pending action.
    #[serde(default)]
    pub pending: Option<Pending>,
    /// `read:servers`: active servers (ready or pending) keyed by server name, `""` being the
    /// default server. `None` when the token cannot read servers.
    #[serde(default)]
    pub servers: Option<BTreeMap<String, Server>>,
}

impl User {
    /// The user's active servers (empty when none or not visible).
    pub fn active_servers(&self) -> impl Iterator<Item = &Server> {
        self.servers.iter().flat_map(|s| s.values())
    }

    /// One server by name (`""` = the default server), if active and visible.
    pub fn server(&self, name: &str) -> Option<&Server> {
        self.servers.as_ref().and_then(|s| s.get(name))
    }
}

/// One server of a user (`server_model` in `jupyterhub/apihandlers/base.py`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Server {
    /// `""` for the default server.
    pub name: String,
    #[serde(default)]
    pub ready: bool,
    #[serde(default)]
    pub pending: Option<Pending>,
    /// True only for stopped servers listed with `include_stopped_servers`.
    #[serde(default)]
    pub stopped: bool,
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub started: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "opt_timestamp")]
    pub last_activity: Option<DateTime<Utc>>,
    #[serde(default)]
    pub url: Option<String>,
    /// What the spawn request carried (form or JSON body); reused by a later spawn without
    /// options. KubeSpawner's profile is `user_options.profile`.
    #[serde(default)]
    pub user_options: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Server {
    /// `user_options.profile`, if the spawn chose one; `None` means the spawner's default profile.
    pub fn profile(&self) -> Option<&str> {
        self.user_options
            .as_ref()
            .and_then(|o| o.get("profile"))
            .and_then(|p| p.as_str())
    }
}

/// A server's pending action (`spawner.pending`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum Pending {
    Spawn,
    Stop,
    /// Another action (6.x has `rename`; older hubs `check`).
    Other(String),
}

impl From<String> for Pending {
    fn from(s: String) -> Self {
        match s.as_str() {
            "spawn" => Pending::Spawn,
            "stop" => Pending::Stop,
            _ => Pending::Other(s),
        }
    }
}

/// A group as `GET /groups` returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Group {
    pub name: String,
    /// `read:groups`; `None` with only `list:groups`.
    #[serde(default)]
    pub users: Option<Vec<String>>,
    /// `read:groups`.
    #[serde(default)]
    pub properties: Option<serde_json::Map<String, serde_json::Value>>,
    /// `read:roles:groups`.
    #[serde(default)]
    pub roles: Option<Vec<String>>,
}

/// The token's own identity (`GET /user`): a service or a user, with its resolved scopes.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Identity {
    /// `"service"` or `"user"`.
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// The server-side `state=` filter of `GET /users`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserState {
    /// Any server with a database row: ready **or** pending.
    Active,
    /// No active server.
    Inactive,
    /// At least one ready server (filtered after offset/limit: pages can be short).
    Ready,
}

impl UserState {
    pub fn as_str(self) -> &'static str {
        match self {
            UserState::Active => "active",
            UserState::Inactive => "inactive",
            UserState::Ready => "ready",
        }
    }
}

/// One page of a paginated list (`Accept: application/jupyterhub-pagination+json`).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub offset: u64,
    pub limit: u64,
    /// The query's total before `state=ready` filtering.
    pub total: u64,
    /// Where the next page starts, if there is one.
    pub next: Option<NextPage>,
}

/// `_pagination.next`: the offset and limit of the next request. (Its `url` is ignored: it is
/// built from the URL the hub saw, which behind a proxy need not be the one this client uses.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct NextPage {
    pub offset: u64,
    pub limit: u64,
}

#[derive(Deserialize)]
pub(crate) struct RawPage<T> {
    pub items: Vec<T>,
    #[serde(rename = "_pagination")]
    pub pagination: RawPagination,
}

#[derive(Deserialize)]
pub(crate) struct RawPagination {
    pub offset: u64,
    pub limit: u64,
    pub total: u64,
    pub next: Option<NextPage>,
}

impl<T> From<RawPage<T>> for Page<T> {
    fn from(p: RawPage<T>) -> Self {
        Page {
            items: p.items,
            offset: p.pagination.offset,
            limit: p.pagination.limit,
            total: p.pagination.total,
            next: p.pagination.next,
        }
    }
}

/// What `POST /users/{name}/server[s/{server}]` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// 201: the server became ready within the hub's `slow_spawn_timeout` (10 s; 0 in Z2JH).
    Started,
    /// 202: the spawn is still pending (also when a spawn was already pending). Poll the user.
    Pending,
    /// 429: the hub's `concurrent_spawn_limit` (with `Retry-After`) or `active_server_limit`
    /// (without it) was hit.
    Throttled { retry_after: Option<Duration> },
}

/// What `DELETE /users/{name}/server[s/{server}]` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopOutcome {
    /// 204: stopped (or was not running: the hub answers 204 for a stopped server too).
    Stopped,
    /// 202: the stop outlasted the hub's `slow_stop_timeout` (10 s) and continues, or a stop was
    /// already in progress. Poll the user until the server is gone.
    Stopping,
    /// 404: no such user, or no such named server (e.g. already removed).
    NotFound { message: String },
    /// 429 (not sent by JupyterHub 6.1 for stops; possible through a rate-limiting proxy).
    Throttled { retry_after: Option<Duration> },
}

fn opt_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    raw.map(|s| {
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| serde::de::Error::custom(format!("timestamp {s:?}: {e}")))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_real_user_model_parses() {
        // From JupyterHub 6.1.1 (admin token, so `state` is present; it is ignored).
        let json = r#"{"name": "u1", "groups": [], "pending": null, "kind": "user",
            "last_activity": "2026-11-28T20:55:16.873496Z", "created": "2026-11-28T20:55:16.543858Z",
            "admin": false, "auth_state": null, "roles": ["user"], "server": "/user/u1/",
            "servers": {"": {"name": "", "display_name": "", "full_name": "u1/",
              "last_activity": "2026-11-28T20:55:16.873496Z", "started": "2026-11-28T20:55:16.873496Z",
              "pending": null, "ready": true, "stopped": false, "url": "/user/u1/",
              "user_options": {"profile": "gpu"}, "progress_url": "/hub/api/users/u1/server/progress",
              "full_url": null, "full_progress_url": null, "state": {"pid": 23199}}}, "user_info": null}"#;
        let u: User = serde_json::from_str(json).unwrap();
        assert_eq!(u.name, "u1");
        assert_eq!(u.groups, Some(vec![]));
        let s = u.server("").unwrap();
        assert!(s.ready);
        assert_eq!(s.profile(), Some("gpu"));
        assert_eq!(
            s.last_activity.unwrap().to_rfc3339(),
            "2026-11-28T20:55:16.873496+00:00"
        );
    }

    #[test]
    fn fields_a_token_cannot_see_are_none() {
        let u: User =
            serde_json::from_str(r#"{"kind": "user", "name": "bob", "admin": false}"#).unwrap();
        assert_eq!((u.groups, u.servers, u.last_activity), (None, None, None));
        let s: Server =
            serde_json::from_str(r#"{"name": "x", "pending": "rename", "user_options": {}}"#)
                .unwrap();
        assert_eq!(s.pending, Some(Pending::Other("rename".into())));
        assert_eq!(s.profile(), None);
    }

    #[test]
    fn a_bad_timestamp_is_an_error_not_a_none() {
        let r: Result<User, _> =
            serde_json::from_str(r#"{"name": "bob", "last_activity": "yesterday"}"#);
        assert!(r.unwrap_err().to_string().contains("yesterday"));
    }
}
