//! [`SinkError`]: every failure of the sinks' public functions, with its cause as `source`.

use std::path::PathBuf;

/// What a sink could not do. The `Display` of each is the one line the CLI prints; the cause
/// (an I/O, HTTP or JSON error) is also its [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// `DD_SITE` names no known site.
    #[error("DD_SITE: {0}")]
    Site(#[source] crate::sinks::datadog::config::UnknownSite),
    /// A Datadog key (`var`) that is not a valid HTTP header value.
    #[error("{var}: the key is not a valid header value")]
    Key {
        var: &'static str,
        #[source]
        source: reqwest::header::InvalidHeaderValue,
    },
    /// No HTTP client (e.g. no TLS provider).
    #[error("HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The spool directory cannot be opened, or another agent holds it.
    #[error("datadog.spool_dir {}: {source}", dir.display())]
    Spool {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The `--datadog-dry-run` file cannot be created.
    #[error("--datadog-dry-run {}: {source}", path.display())]
    DryRun {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The sink's thread could not be started.
    #[error("thread: {0}")]
    Thread(#[source] std::io::Error),
    /// A dashboards directory or file that cannot be read.
    #[error("{path}: {source}")]
    DashboardsRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A dashboard file that is not JSON.
    #[error("{file}: not JSON: {source}")]
    DashboardJson {
        file: String,
        #[source]
        source: serde_json::Error,
    },
    /// A dashboard without a string `title`.
    #[error("{file}: no string `title`")]
    DashboardTitle { file: String },
    /// Nothing to push.
    #[error("no dashboards (*.json) to push")]
    NoDashboards,
    /// A Datadog API request that got no answer.
    #[error("{method} {path}: {source}")]
    Request {
        method: reqwest::Method,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// A Datadog API request that was refused (`body`: the first 500 bytes of the answer).
    #[error("{method} {path}: {status}: {body}")]
    Refused {
        method: reqwest::Method,
        path: String,
        status: reqwest::StatusCode,
        body: String,
    },
    /// An answer that is not what the API documents (`what`: what is wrong with it).
    #[error("{method} {path}: {what}")]
    Reply {
        method: reqwest::Method,
        path: String,
        what: String,
        #[source]
        source: Option<serde_json::Error>,
    },
    /// Pushing one dashboard failed (dashboards before it are pushed).
    #[error("{file} ({title}): {source}")]
    Push {
        file: String,
        title: String,
        #[source]
        source: Box<SinkError>,
    },
}

impl SinkError {
    /// Whether the configuration or the input is at fault (exit 2), rather than something that
    /// failed while working (exit 1).
    pub fn is_input(&self) -> bool {
        match self {
            SinkError::Site(_)
            | SinkError::Key { .. }
            | SinkError::Client(_)
            | SinkError::Spool { .. }
            | SinkError::DryRun { .. }
            | SinkError::DashboardsRead { .. }
            | SinkError::DashboardJson { .. }
            | SinkError::DashboardTitle { .. }
            | SinkError::NoDashboards => true,
            SinkError::Thread(_)
            | SinkError::Request { .. }
            | SinkError::Refused { .. }
            | SinkError::Reply { .. }
            | SinkError::Push { .. } => false,
        }
    }
}
