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

/// The hub's API root, parsed and checked once (where the configuration or the environment is
/// read): an `http(s)` URL that can be a base, without credentials; its query and fragment are
/// dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUrl(url::Url);

impl ApiUrl {
    /// # Errors
    /// [`HubError::BadUrl`] for text that is not a URL, [`HubError::Config`] for a URL that is
    /// not http(s) or holds credentials (which the message never repeats).
    pub fn parse(text: &str) -> Result<ApiUrl, HubError> {
        let mut base = url::Url::parse(text.trim()).map_err(|source| HubError::BadUrl {
            url: text.to_string(),
            source,
        })?;
        if !base.username().is_empty() || base.password().is_some() {
            return Err(HubError::Config(
                "api_url must not contain credentials".into(),
            ));
        }
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(HubError::Config(format!(
                "api_url {text:?} is not an http(s) URL"
            )));
        }
        base.set_query(None);
        base.set_fragment(None);
        Ok(ApiUrl(base))
    }

    pub fn url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl std::str::FromStr for ApiUrl {
    type Err = HubError;

    fn from_str(s: &str) -> Result<ApiUrl, HubError> {
        ApiUrl::parse(s)
    }
}

impl std::fmt::Display for ApiUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// How to reach the hub. `Debug` redacts the token.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The API root, e.g. `http://hub:8081/hub/api` (what `JUPYTERHUB_API_URL` holds).
    pub api_url: ApiUrl,
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
    pub fn new(api_url: ApiUrl, token: ApiToken) -> Self {
        HubConfig {
            api_url,
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
        let url = ApiUrl::parse(&var("JUPYTERHUB_API_URL")?)?;
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
        assert_eq!(c.api_url.as_str(), "http://hub:8081/hub/api");
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
