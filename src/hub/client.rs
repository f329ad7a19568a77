//! The HTTP client: authentication, bounded concurrency, timeouts, pagination and typed outcomes.
//!
//! # Guarantees
//! - The token goes only into the `Authorization: token …` header, marked sensitive; it is never
//!   in a URL, an error, a log event or a `Debug` output ([`ApiToken`] prints `***`).
//! - At most [`HubConfig::max_concurrency`] requests are in flight per client (a semaphore held
//!   until the response body has been read); every request has a total timeout.
//! - Expected answers are values ([`StartOutcome`], [`StopOutcome`], `Ok(None)` for an unknown
//!   user); everything else is a [`HubError`] that says whether a retry can help.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::config::{ApiToken, HubConfig};
use super::error::{HubError, error_for, error_message};
use super::model::{Group, Identity, Page, RawPage, StartOutcome, StopOutcome, User, UserState};

/// `Accept` value that opts into `{"items": [...], "_pagination": {...}}` list bodies.
pub const PAGINATION_ACCEPT: &str = "application/jupyterhub-pagination+json";

/// A typed JupyterHub REST API client. Cheap to clone (shares the connection pool and the
/// concurrency limit). `Debug` redacts the token.
#[derive(Clone)]
pub struct HubClient {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    token: ApiToken,
    permits: Arc<Semaphore>,
    max_concurrency: usize,
    page_size: u32,
    /// Requests sent (shared by clones and by clients given the same counter).
    requests: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("max_concurrency", &self.max_concurrency)
            .field("page_size", &self.page_size)
            .finish()
    }
}

/// One answer, body read while the concurrency permit was held.
struct Reply {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl HubClient {
    /// Needs a rustls crypto provider installed (`rustls::crypto::ring::default_provider()
    /// .install_default()`), as every HTTP client in hubpulse does.
    ///
    /// # Errors
    /// [`HubError::Config`] (or `BadUrl`, `Client`) for an unusable URL, token or limit.
    pub fn new(config: HubConfig) -> Result<Self, HubError> {
        let base = config.api_url.url().clone();
        if config.max_concurrency == 0 || config.page_size == 0 {
            return Err(HubError::Config(
                "max_concurrency and page_size must be at least 1".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("hubpulse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(HubError::Client)?;
        Ok(HubClient {
            http,
            base,
            auth: config.token.header()?,
            token: config.token,
            permits: Arc::new(Semaphore::new(config.max_concurrency)),
            max_concurrency: config.max_concurrency,
            page_size: config.page_size,
            requests: Arc::default(),
        })
    }

    /// Counts this client's requests into `counter` (e.g. a metric shared by several clients).
    #[must_use]
    pub fn with_request_counter(mut self, counter: Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.requests = counter;
        self
    }

    /// Requests this client (and any sharing its counter) has sent.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// [`HubConfig::from_env`] then [`HubClient::new`].
    pub fn from_env() -> Result<Self, HubError> {
        Self::new(HubConfig::from_env()?)
    }

    /// The API root this client talks to.
    pub fn api_url(&self) -> &str {
        self.base.as_str()
    }

    /// `GET /` → the hub's version (no scope needed).
    pub async fn version(&self) -> Result<String, HubError> {
        #[derive(serde::Deserialize)]
        struct V {
            version: String,
        }
        let v: V = self.get_json(&[""], &[]).await?;
        Ok(v.version)
    }

    /// `GET /user`: who the token is, with its resolved scopes (any valid token).
    pub async fn whoami(&self) -> Result<Identity, HubError> {
        self.get_json(&["user"], &[]).await
    }

    /// Every user, following `_pagination.next` to the end (`list:users`; the fields depend on
    /// the other scopes, see [`User`]). A user created or deleted while paging can be missed or
    /// seen twice, as with any offset pagination.
    pub async fn users(&self, state: Option<UserState>) -> Result<Vec<User>, HubError> {
        let mut out = Vec::new();
        let mut offset = 0;
        let mut limit = u64::from(self.page_size);
        loop {
            let page = self.users_page(state, offset, limit).await?;
            out.extend(page.items);
            match page.next {
                // A hub that does not advance would loop forever: stop instead.
                Some(next) if next.offset > offset => (offset, limit) = (next.offset, next.limit),
                _ => return Ok(out),
            }
        }
    }

    /// One page of `GET /users?state=…&offset=…&limit=…`.
    pub async fn users_page(
        &self,
        state: Option<UserState>,
        offset: u64,
        limit: u64,
    ) -> Result<Page<User>, HubError> {
        let mut query = vec![("offset", offset.to_string()), ("limit", limit.to_string())];
        if let Some(s) = state {
            query.push(("state", s.as_str().to_string()));
        }
        self.get_page(&["users"], &query).await
    }

    /// `GET /users/{name}`; `Ok(None)` if there is no such user (`read:users` and/or
    /// `read:servers` for the fields).
    pub async fn user(&self, name: &str) -> Result<Option<User>, HubError> {
        let reply = self
            .send(Method::GET, &["users", name], &[], None, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let path = display_path(&["users", name]);
        let reply = check(reply, "GET", &path)?;
        decode(&reply.body, "GET", &path).map(Some)
    }

    /// Every group, all pages (`list:groups`; `read:groups` adds members and properties).
    pub async fn groups(&self) -> Result<Vec<Group>, HubError> {
        let mut out = Vec::new();
        let mut offset = 0;
        let mut limit = u64::from(self.page_size);
        loop {
            let query = [("offset", offset.to_string()), ("limit", limit.to_string())];
            let page: Page<Group> = self.get_page(&["groups"], &query).await?;
            out.extend(page.items);
            match page.next {
                Some(next) if next.offset > offset => (offset, limit) = (next.offset, next.limit),
                _ => return Ok(out),
            }
        }
    }

    /// `POST /users` with `{"usernames": [...]}` (`admin:users`). The hub answers 409 if all of
    /// them exist already and skips existing ones otherwise.
    pub async fn create_users(&self, names: &[&str]) -> Result<Vec<User>, HubError> {
        let body = serde_json::json!({ "usernames": names });
        let reply = self
            .send(Method::POST, &["users"], &[], Some(body), false)
            .await?;
        let reply = check(reply, "POST", "/users")?;
        decode(&reply.body, "POST", "/users")
    }

    /// Start a server: `POST /users/{user}/server` (`server_name` empty) or
    /// `/users/{user}/servers/{server_name}`; `user_options` is sent as the body, the form every
    /// JupyterHub since 1.0 accepts (6.x also takes `{"user_options": …}`). Scope `servers`
    /// (6.x: `start:servers`).
    ///
    /// # Errors
    /// 400 (already running, pending stop, named servers disabled or over the limit) and other
    /// statuses are [`HubError::Api`] with the hub's message.
    pub async fn start_server(
        &self,
        user: &str,
        server_name: &str,
        user_options: Option<&serde_json::Value>,
    ) -> Result<StartOutcome, HubError> {
        let segments = server_segments(user, server_name);
        let reply = self
            .send(Method::POST, &segments, &[], user_options.cloned(), false)
            .await?;
        match reply.status {
            StatusCode::CREATED | StatusCode::OK => Ok(StartOutcome::Started),
            StatusCode::ACCEPTED => Ok(StartOutcome::Pending),
            StatusCode::TOO_MANY_REQUESTS => Ok(StartOutcome::Throttled {
                retry_after: reply.retry_after,
            }),
            _ => check(reply, "POST", &display_path(&segments)).map(|_| StartOutcome::Started),
        }
    }

    /// Stop a server: `DELETE /users/{user}/server` (`server_name` empty) or
    /// `/users/{user}/servers/{server_name}`, with `{"remove": true}` when `remove` (named servers
    /// only: the hub refuses it for the default server with 400). Scope `delete:servers`.
    pub async fn stop_server(
        &self,
        user: &str,
        server_name: &str,
        remove: bool,
    ) -> Result<StopOutcome, HubError> {
        let segments = server_segments(user, server_name);
        let body = remove.then(|| serde_json::json!({ "remove": true }));
        let reply = self
            .send(Method::DELETE, &segments, &[], body, false)
            .await?;
        match reply.status {
            StatusCode::NO_CONTENT | StatusCode::OK => Ok(StopOutcome::Stopped),
            StatusCode::ACCEPTED => Ok(StopOutcome::Stopping),
            StatusCode::NOT_FOUND => Ok(StopOutcome::NotFound {
                message: error_message(&reply.body),
            }),
            StatusCode::TOO_MANY_REQUESTS => Ok(StopOutcome::Throttled {
                retry_after: reply.retry_after,
            }),
            _ => check(reply, "DELETE", &display_path(&segments)).map(|_| StopOutcome::Stopped),
        }
    }

    /// Delete a user: `DELETE /users/{name}` (`admin:users`; the idle culler's `--cull-users`).
    /// `Ok(false)` when there was no such user.
    pub async fn delete_user(&self, name: &str) -> Result<bool, HubError> {
        let reply = self
            .send(Method::DELETE, &["users", name], &[], None, false)
            .await?;
        if reply.status == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        check(reply, "DELETE", &display_path(&["users", name])).map(|_| true)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, HubError> {
        let path = display_path(segments);
        let reply = self.send(Method::GET, segments, query, None, false).await?;
        let reply = check(reply, "GET", &path)?;
        decode(&reply.body, "GET", &path)
    }

    async fn get_page<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<Page<T>, HubError> {
        let path = display_path(segments);
        let reply = self.send(Method::GET, segments, query, None, true).await?;
        let reply = check(reply, "GET", &path)?;
        let raw: RawPage<T> = decode(&reply.body, "GET", &path)?;
        Ok(raw.into())
    }

    /// Sends one request and reads its body, holding a concurrency permit throughout.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<serde_json::Value>,
        paginated: bool,
    ) -> Result<Reply, HubError> {
        let method_str = method_name(&method);
        let path = display_path(segments);
        let mut url = self.base.clone();
        if let Ok(mut segs) = url.path_segments_mut() {
            segs.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut req = self
            .http
            .request(method, url)
            .header(AUTHORIZATION, self.auth.clone());
        req = req.header(
            ACCEPT,
            if paginated {
                PAGINATION_ACCEPT
            } else {
                "application/json"
            },
        );
        if let Some(b) = body {
            req = req.json(&b);
        }
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| HubError::Config("the client's semaphore was closed".into()))?;
        let started = Instant::now();
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let transport = |source: reqwest::Error| {
            if source.is_timeout() {
                HubError::Timeout {
                    method: method_str,
                    path: path.clone(),
                }
            } else {
                HubError::Transport {
                    method: method_str,
                    path: path.clone(),
                    source: source.without_url(),
                }
            }
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, Utc::now()));
        let body = resp.bytes().await.map_err(transport)?.to_vec();
        tracing::debug!(
            method = method_str,
            path = %path,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "hub API request"
        );
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }
}

fn server_segments<'a>(user: &'a str, server_name: &'a str) -> Vec<&'a str> {
    if server_name.is_empty() {
        vec!["users", user, "server"]
    } else {
        vec!["users", user, "servers", server_name]
    }
}

/// The path for messages: relative to the API root, never with a query (nor a token).
fn display_path(segments: &[&str]) -> String {
    format!("/{}", segments.join("/"))
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Success statuses pass; errors become typed [`HubError`]s.
fn check(reply: Reply, method: &'static str, path: &str) -> Result<Reply, HubError> {
    if reply.status.is_success() {
        Ok(reply)
    } else {
        Err(error_for(reply.status.as_u16(), &reply.body, method, path))
    }
}

fn decode<T: DeserializeOwned>(
    body: &[u8],
    method: &'static str,
    path: &str,
) -> Result<T, HubError> {
    serde_json::from_slice(body).map_err(|source| HubError::Decode {
        method,
        path: path.to_string(),
        source,
    })
}

/// `Retry-After`: delta-seconds, or an HTTP-date (IMF-fixdate) relative to `now`. A date in the
/// past is zero; anything else unparsable is `None`.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("42", now), Some(Duration::from_secs(42)));
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let token = ApiToken::new("s3cr3t-token-value");
        let config = HubConfig::new("http://127.0.0.1:1/hub/api".parse().unwrap(), token);
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = HubClient::new(config).unwrap();
        let dbg = format!("{client:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("***"), "{dbg}");
    }

    /// A local server that answers every request after `hold`, recording the most requests it
    /// ever had in progress at once.
    async fn slow_server(hold: Duration) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (active, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let max_out = max.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (active, max) = (active.clone(), max.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = sock.read(&mut buf).await {
                        if n == 0 {
                            return;
                        }
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        max.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(hold).await;
                        active.fetch_sub(1, Ordering::SeqCst);
                        let body = r#"{"version": "6.1.1"}"#;
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if sock.write_all(resp.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (format!("http://{addr}/hub/api"), max_out)
    }

    #[tokio::test]
    async fn no_more_than_max_concurrency_requests_are_in_flight() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, max) = slow_server(Duration::from_millis(150)).await;
        let mut config = HubConfig::new(url.parse().unwrap(), ApiToken::new("t"));
        config.max_concurrency = 2;
        let c = HubClient::new(config).unwrap();
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.version().await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap(), "6.1.1");
        }
        assert_eq!(max.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_hub_that_does_not_answer_is_a_retriable_timeout() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (url, _) = slow_server(Duration::from_secs(30)).await;
        let mut config = HubConfig::new(url.parse().unwrap(), ApiToken::new("t"));
        config.request_timeout = Duration::from_millis(300);
        let err = HubClient::new(config).unwrap().version().await.unwrap_err();
        assert!(
            matches!(err, HubError::Timeout { method: "GET", .. }),
            "{err}"
        );
        assert!(err.is_retriable());
    }

    #[test]
    fn bad_configurations_are_refused() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        for url in ["not a url", "ftp://hub/api", "http://user:pw@hub/api"] {
            let err = crate::hub::ApiUrl::parse(url).unwrap_err();
            assert_eq!(err.metric_label(), "config", "{url}: {err}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
        let mut c = HubConfig::new("http://hub/api".parse().unwrap(), ApiToken::new("t"));
        c.max_concurrency = 0;
        assert!(HubClient::new(c).is_err());
        let err = HubClient::new(HubConfig::new(
            "http://hub/api".parse().unwrap(),
            ApiToken::new("a\nb"),
        ))
        .unwrap_err();
        assert!(!err.to_string().contains("a\nb"));
    }

    #[test]
    fn user_and_server_names_are_escaped_in_paths() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let c = HubClient::new(HubConfig::new(
            "http://127.0.0.1:1/prefix/hub/api/".parse().unwrap(),
            ApiToken::new("t"),
        ))
        .unwrap();
        let mut url = c.base.clone();
        url.path_segments_mut()
            .unwrap()
            .pop_if_empty()
            .extend(server_segments("a/b c", "x?y"));
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:1/prefix/hub/api/users/a%2Fb%20c/servers/x%3Fy"
        );
    }
}
