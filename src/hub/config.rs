//! How to reach the hub: the API URL and a token that never prints.

use std::time::Duration;

use reqwest::header::HeaderValue;

use super::HubError;

/// A JupyterHub API token. `Debug` prints `ApiToken(***)`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    pub fn new(token: impl Into<String>) -> Self {
        ApiToken(token.into())
    }

    pub(crate) fn header(&self) -> Result<HeaderValue, HubError> {
        let mut v = HeaderValue::from_str(&format!("token {}", self.0))
            .map_err(|_| HubError::Config("the API token is not a valid header value".into()))?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

/// How to reach the hub. `Debug` redacts the token.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The API root, e.g. `http://hub:8081/hub/api` (what `JUPYTERHUB_API_URL` holds).
    pub api_url: String,
    pub token: ApiToken,
    /// Total time for one request, body included. A DELETE can take the hub's
    /// `slow_stop_timeout` (10 s) and a POST its `slow_spawn_timeout` (10 s) before answering.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Requests in flight at once (jupyterhub-idle-culler's `--concurrency`, default 10).
    pub max_concurrency: usize,
    /// `limit` of each list request; the hub caps it at `api_page_max_limit` (200).
    pub page_size: u32,
}

impl HubConfig {
    pub fn new(api_url: impl Into<String>, token: ApiToken) -> Self {
        HubConfig {
            api_url: api_url.into(),
            token,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_concurrency: 10,
            page_size: 200,
        }
    }

    /// From `JUPYTERHUB_API_URL` and `JUPYTERHUB_API_TOKEN`, as JupyterHub gives them to services.
    ///
    /// # Errors
    /// [`HubError::Config`] naming the variable that is missing or empty.
    pub fn from_env() -> Result<Self, HubError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`HubConfig::from_env`] over any variable lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, HubError> {
        let var = |name: &str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| HubError::Config(format!("{name} is not set")))
        };
        let url = var("JUPYTERHUB_API_URL")?;
        let token = var("JUPYTERHUB_API_TOKEN")?;
        Ok(HubConfig::new(url, ApiToken::new(token)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_environment_of_a_hub_service_configures_the_client() {
        fn env(
            url: Option<&'static str>,
            token: Option<&'static str>,
        ) -> impl Fn(&str) -> Option<String> {
            move |name| match name {
                "JUPYTERHUB_API_URL" => url.map(String::from),
                "JUPYTERHUB_API_TOKEN" => token.map(String::from),
                _ => None,
            }
        }
        let c = HubConfig::from_lookup(env(Some("http://hub:8081/hub/api"), Some("tok"))).unwrap();
        assert_eq!(c.api_url, "http://hub:8081/hub/api");
        assert_eq!(c.token, ApiToken::new("tok"));
        let e =
            HubConfig::from_lookup(env(Some("http://hub:8081/hub/api"), Some(" "))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hub API configuration: JUPYTERHUB_API_TOKEN is not set"
        );
        let e = HubConfig::from_lookup(env(None, Some("tok"))).unwrap_err();
        assert!(e.to_string().contains("JUPYTERHUB_API_URL"));
    }
}
