//! Errors from the hub API: typed by what the caller can do about them. None carries the token.

/// The hub's message for a missing, unknown or expired token (`APIHandler`, 6.1.1).
const BAD_CREDENTIALS: &str = "Missing or invalid credentials";

/// Errors from the hub API. None of them carries the token.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A configuration the client refuses (a limit of 0, credentials in the URL, no token).
    #[error("hub API configuration: {0}")]
    Config(String),
    /// An `api_url` that is not a URL.
    #[error("hub API configuration: api_url {url:?}: {source}")]
    BadUrl {
        url: String,
        #[source]
        source: url::ParseError,
    },
    /// The HTTP client could not be built (its TLS set-up).
    #[error("hub API configuration: HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// 401, or 403 "Missing or invalid credentials.": the token is unknown, expired or absent.
    #[error("the hub rejected the API token ({status} on {method} {path}): {message}")]
    BadCredentials {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    /// 403 for a valid token: its scopes do not cover the call (the message names the scope).
    #[error("the API token lacks a scope for {method} {path}: {message}")]
    MissingScope {
        method: &'static str,
        path: String,
        message: String,
    },
    /// Any other unexpected status; the hub's JSON `message` when it sent one.
    #[error("hub API {method} {path} answered {status}: {message}")]
    Api {
        method: &'static str,
        path: String,
        status: u16,
        message: String,
    },
    #[error("hub API {method} {path} timed out")]
    Timeout { method: &'static str, path: String },
    #[error("hub API {method} {path}: {source}")]
    Transport {
        method: &'static str,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("hub API {method} {path}: unexpected body: {source}")]
    Decode {
        method: &'static str,
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl HubError {
    /// True when the same request may succeed later (network, timeout, 5xx, 429).
    pub fn is_retriable(&self) -> bool {
        match self {
            HubError::Timeout { .. } | HubError::Transport { .. } => true,
            HubError::Api { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// A bounded label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            HubError::Config(_) | HubError::BadUrl { .. } | HubError::Client(_) => "config",
            HubError::BadCredentials { .. } => "bad_credentials",
            HubError::MissingScope { .. } => "missing_scope",
            HubError::Api { .. } => "status",
            HubError::Timeout { .. } => "timeout",
            HubError::Transport { .. } => "transport",
            HubError::Decode { .. } => "decode",
        }
    }
}

/// The typed error for a non-success `status` with its `body`.
pub(crate) fn error_for(status: u16, body: &[u8], method: &'static str, path: &str) -> HubError {
    let message = error_message(body);
    let path = path.to_string();
    match status {
        401 => HubError::BadCredentials {
            method,
            path,
            status,
            message,
        },
        403 if message.starts_with(BAD_CREDENTIALS) => HubError::BadCredentials {
            method,
            path,
            status,
            message,
        },
        403 => HubError::MissingScope {
            method,
            path,
            message,
        },
        _ => HubError::Api {
            method,
            path,
            status,
            message,
        },
    }
}

/// The hub's `{"status": …, "message": "…"}`, else the start of the body.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        message: Option<String>,
    }
    if let Ok(E { message: Some(m) }) = serde_json::from_slice::<E>(body) {
        return m;
    }
    let text = String::from_utf8_lossy(body);
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn forbidden_is_split_into_bad_credentials_and_missing_scope() {
        let e = error_for(
            403,
            br#"{"status": 403, "message": "Missing or invalid credentials."}"#,
            "GET",
            "/users",
        );
        assert!(
            matches!(e, HubError::BadCredentials { status: 403, .. }),
            "{e}"
        );
        let e = error_for(
            403,
            br#"{"status": 403, "message": "Action is not authorized with current scopes; requires any of [delete:servers]"}"#,
            "DELETE",
            "/users/a/server",
        );
        assert!(matches!(e, HubError::MissingScope { .. }), "{e}");
        assert!(e.to_string().contains("delete:servers"));
        let e = error_for(502, b"<html>bad gateway</html>", "GET", "/users");
        assert!(e.is_retriable());
        assert!(e.to_string().contains("bad gateway"));
        let e = error_for(401, b"", "GET", "/user");
        assert!(
            matches!(e, HubError::BadCredentials { status: 401, .. }),
            "{e}"
        );
    }
}
