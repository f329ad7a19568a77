//! A typed client for the JupyterHub REST API: what the idle culler and the quota reconciler
//! act through. It is not the culler or the quota logic; those decide, this calls.
//!
//! Configured as JupyterHub configures its services: `JUPYTERHUB_API_URL` (the API root, e.g.
//! `http://hub:8081/hub/api`) and `JUPYTERHUB_API_TOKEN` ([`HubClient::from_env`]), or
//! explicitly ([`HubConfig`]). Every request carries `Authorization: token …`.
//!
//! # Scopes each call needs
//!
//! From `jupyterhub/scopes.py`; give the service a role with exactly what it uses. Fields a
//! token cannot read are *omitted* by the hub and are `None` here.
//!
//! | call | scope | notes |
//! | --- | --- | --- |
//! | [`HubClient::version`] | none | `GET /` |
//! | [`HubClient::whoami`] | any valid token | `GET /user`, lists the token's scopes |
//! | [`HubClient::users`], [`HubClient::users_page`] | `list:users` | names and `admin` only |
//! | … `User::last_activity` | `read:users:activity` | |
//! | … `User::groups` | `read:users:groups` | not in the idle culler's set; quotas need it |
//! | … `User::servers` (state, `last_activity`, `user_options`) | `read:servers` | |
//! | … `User::roles`, `created`, `pending` | `read:users` (implies the three above) | |
//! | [`HubClient::user`] | `read:users` / `read:servers` as above | |
//! | [`HubClient::groups`] | `list:groups`; `read:groups` for members and properties | |
//! | [`HubClient::stop_server`] | `delete:servers` | `remove` too |
//! | [`HubClient::start_server`] | `servers` (6.x: `start:servers`) | only if the agent starts servers |
//! | [`HubClient::create_users`] | `admin:users` | tests and administration only |
//!
//! The idle culler's set is `list:users`, `read:users:activity`, `read:servers`,
//! `delete:servers` (plus `admin:users` to delete users). Quotas add `read:users:groups` and
//! `list:groups` + `read:groups`. Scopes can be narrowed with filters (`read:servers!group=gpu`);
//! list endpoints honour only `user=`/`group=` filters.
//!
//! # Behaviours of a real hub (JupyterHub 6.1.1, tested in `tests/it/hub_api.rs`)
//! - A bad token: 403 `{"message": "Missing or invalid credentials."}` → [`HubError::BadCredentials`].
//!   A missing scope: 403 `Action is not authorized with current scopes; requires any of
//!   [delete:servers]` → [`HubError::MissingScope`].
//! - Stop: 204 when stopped within `slow_stop_timeout` (10 s), else 202, and 202 again while that
//!   stop runs. Stopping a server that is not running is 204 too (default or named), not 404;
//!   404 comes only for an unknown user or a named server that no longer exists (removed).
//! - `remove` on the default server: 400. Starting a running server: 400 `<name> is already
//!   running` ([`HubError::Api`]).
//! - Start: 201 ready within `slow_spawn_timeout`, else 202; 429 with `Retry-After` (30–60 s)
//!   when `concurrent_spawn_limit` is reached.
//! - Service tokens (`api_token` in the hub's config) longer than 64 characters stop the hub at
//!   start-up (`Cannot create tokens larger than 64 characters`).
//! - `POST /users/{name}/activity` answers 200. A report for a server (`{"servers": {…}}`)
//!   moves only that server's `last_activity`, not the user's; reports older than the stored
//!   value are ignored; the hub accepts timestamps up to 59 minutes in the future.
//! - Pagination: `next` is `{offset, limit, url}` until the last page, where it is `null`;
//!   `state=ready` filters after offset/limit, so pages can be short.

pub mod activity;
mod client;
mod config;
mod error;
mod model;

pub use client::{HubClient, PAGINATION_ACCEPT, parse_retry_after};
pub use config::{ApiToken, ApiUrl, HubConfig};
pub use error::HubError;
pub use model::{
    Group, Identity, NextPage, Page, Pending, Server, StartOutcome, StopOutcome, User, UserState,
};
