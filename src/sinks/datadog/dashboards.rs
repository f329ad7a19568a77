//! `hubpulse dashboards push`: create or update the dashboards of `dashboards/*.json` through
//! `/api/v1/dashboard`, idempotent by title.
//!
//! One pass: `GET /api/v1/dashboard` lists what exists; each local dashboard whose title is
//! already there is replaced with `PUT /api/v1/dashboard/{id}`, any other is created with
//! `POST /api/v1/dashboard`. Running it twice changes nothing the second time but the
//! dashboards' modification dates (the API has no conditional update).
//!
//! # Assumptions
//! * Titles are unique among the organisation's dashboards; when several share a title the first
//!   listed is updated (and a warning says so).
//! * Both keys come from the environment (`DD_API_KEY`, `DD_APP_KEY`); the application key needs
//!   the `dashboards_write` permission.

use std::path::Path;
use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use crate::sinks::SinkError;
use crate::sinks::datadog::config::ApiKey;

/// The dashboards shipped in the binary: (file name, JSON).
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "jupyterhub-usage.json",
        include_str!("../../../dashboards/jupyterhub-usage.json"),
    ),
    (
        "jupyterhub-spawns-and-health.json",
        include_str!("../../../dashboards/jupyterhub-spawns-and-health.json"),
    ),
    (
        "jupyterhub-culling-and-quotas.json",
        include_str!("../../../dashboards/jupyterhub-culling-and-quotas.json"),
    ),
];

/// One local dashboard.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub file: String,
    pub title: String,
    pub body: Value,
}

/// What the push did (or, in a dry run, would do) with one dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Update { id: String },
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub title: String,
    pub action: Action,
    /// The id Datadog gave or kept (`None` in a dry run of a creation).
    pub id: Option<String>,
    pub url: Option<String>,
}

/// Read the dashboards from `dir` (every `*.json`), or the embedded copies.
///
/// # Errors
/// An unreadable file, or one that is not a JSON object with a string `title`.
pub fn load(dir: Option<&Path>) -> Result<Vec<Dashboard>, SinkError> {
    let mut files: Vec<(String, String)> = match dir {
        None => EMBEDDED
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        Some(d) => {
            let mut v = Vec::new();
            let unreadable = |p: &Path| {
                let path = p.display().to_string();
                move |source| SinkError::DashboardsRead { path, source }
            };
            let rd = std::fs::read_dir(d).map_err(unreadable(d))?;
            for e in rd {
                let p = e.map_err(unreadable(d))?.path();
                if p.extension().is_some_and(|x| x == "json") {
                    let t = std::fs::read_to_string(&p).map_err(unreadable(&p))?;
                    v.push((p.display().to_string(), t));
                }
            }
            v
        }
    };
    files.sort();
    let mut out = Vec::new();
    for (file, text) in files {
        let body: Value = match serde_json::from_str(&text) {
            Ok(b) => b,
            Err(source) => return Err(SinkError::DashboardJson { file, source }),
        };
        let Some(title) = body["title"].as_str().map(str::to_string) else {
            return Err(SinkError::DashboardTitle { file });
        };
        out.push(Dashboard { file, title, body });
    }
    if out.is_empty() {
        return Err(SinkError::NoDashboards);
    }
    Ok(out)
}

/// The Dashboards API, with both keys.
pub struct Client {
    http: reqwest::Client,
    base: String,
    api: reqwest::header::HeaderValue,
    app: reqwest::header::HeaderValue,
}

impl Client {
    /// # Errors
    /// A key that is not a header value; no HTTP client.
    pub fn new(base: &str, api: &ApiKey, app: &ApiKey) -> Result<Client, SinkError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("hubpulse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SinkError::Client)?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            api: api.header("DD_API_KEY")?,
            app: app.header("DD_APP_KEY")?,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, SinkError> {
        let request = |source: reqwest::Error| SinkError::Request {
            method: method.clone(),
            path: path.to_string(),
            source: source.without_url(),
        };
        let mut rq = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("DD-API-KEY", self.api.clone())
            .header("DD-APPLICATION-KEY", self.app.clone());
        if let Some(b) = body {
            rq = rq
                .header(CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let resp = rq.send().await.map_err(request)?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(request)?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(500)]).into_owned();
            return Err(SinkError::Refused {
                method,
                path: path.to_string(),
                status,
                body,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| SinkError::Reply {
            what: format!("not JSON: {e}"),
            method,
            path: path.to_string(),
            source: Some(e),
        })
    }

    /// Title → id of every dashboard of the organisation (first of each title).
    ///
    /// # Errors
    /// The request failed or was refused.
    pub async fn list(&self) -> Result<Vec<(String, String)>, SinkError> {
        let v = self
            .call(reqwest::Method::GET, "/api/v1/dashboard", None)
            .await?;
        let list = v["dashboards"].as_array().ok_or_else(|| SinkError::Reply {
            method: reqwest::Method::GET,
            path: "/api/v1/dashboard".into(),
            what: "no `dashboards` list".into(),
            source: None,
        })?;
        Ok(list
            .iter()
            .filter_map(|d| {
                Some((
                    d["title"].as_str()?.to_string(),
                    d["id"].as_str()?.to_string(),
                ))
            })
            .collect())
    }

    /// Create or update every dashboard (`dry_run`: decide only).
    ///
    /// # Errors
    /// The first request that fails; dashboards before it are already pushed.
    pub async fn push(
        &self,
        dashboards: &[Dashboard],
        dry_run: bool,
    ) -> Result<Vec<Outcome>, SinkError> {
        let existing = self.list().await?;
        let mut out = Vec::new();
        for d in dashboards {
            let same: Vec<&String> = existing
                .iter()
                .filter(|(t, _)| *t == d.title)
                .map(|(_, id)| id)
                .collect();
            if same.len() > 1 {
                tracing::warn!(title = %d.title, ids = ?same, "several dashboards share this title; updating the first");
            }
            let action = match same.first() {
                Some(id) => Action::Update { id: (*id).clone() },
                None => Action::Create,
            };
            if dry_run {
                let id = match &action {
                    Action::Update { id } => Some(id.clone()),
                    Action::Create => None,
                };
                out.push(Outcome {
                    title: d.title.clone(),
                    action,
                    id,
                    url: None,
                });
                continue;
            }
            let resp = match &action {
                Action::Update { id } => {
                    let path = format!("/api/v1/dashboard/{id}");
                    self.call(reqwest::Method::PUT, &path, Some(&d.body)).await
                }
                Action::Create => {
                    self.call(reqwest::Method::POST, "/api/v1/dashboard", Some(&d.body))
                        .await
                }
            }
            .map_err(|e| SinkError::Push {
                file: d.file.clone(),
                title: d.title.clone(),
                source: Box::new(e),
            })?;
            out.push(Outcome {
                title: d.title.clone(),
                action,
                id: resp["id"].as_str().map(str::to_string),
                url: resp["url"].as_str().map(str::to_string),
            });
        }
        Ok(out)
    }
}
