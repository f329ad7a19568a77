//! The `[datadog]` section of the agent's config, the site table, and the API key.
//!
//! # Invariants
//! * No secret is read from the config file: the API key comes from `DD_API_KEY` (the
//!   dashboards' application key from `DD_APP_KEY`), as Datadog's own tools read them, and lives
//!   in [`ApiKey`], whose `Debug` prints `***` and which has no `Display`.
//! * The site is one of [`SITES`] (from the config, else `DD_SITE`, else `datadoghq.com`); an
//!   explicit `url` replaces the site's API host (tests point it at 127.0.0.1).
//! * Configured tags are `key:value` with a bounded alphabet; they never reuse a key the agent
//!   sets itself ([`crate::sinks::datadog::TAG_KEYS`], `hubpulse_instance`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::units::{parse_duration, parse_size};
use crate::sinks::SinkError;
use crate::sinks::datadog::TAG_KEYS;
use crate::sinks::datadog::payload::Codec;

/// Datadog sites (the OpenAPI `site` enum): the API host is `api.{site}`.
pub const SITES: &[&str] = &[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "datadoghq.eu",
    "ddog-gov.com",
    "us2.ddog-gov.com",
];

/// The tag that tells agent instances apart (Datadog keeps one write per series and second).
pub const INSTANCE_TAG: &str = "hubpulse_instance";

/// A Datadog API or application key. `Debug` prints `ApiKey(***)`; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key in environment variable `var`, if set and not blank.
    pub fn from_env(var: &str) -> Option<ApiKey> {
        let v = std::env::var(var).ok()?;
        let v = v.trim();
        (!v.is_empty()).then(|| ApiKey(v.to_string()))
    }

    /// The key as a header value marked sensitive (never printed by the HTTP stack); `var`
    /// names the key in the error.
    ///
    /// # Errors
    /// A key that is not a valid header value.
    pub fn header(&self, var: &'static str) -> Result<reqwest::header::HeaderValue, SinkError> {
        let mut v = reqwest::header::HeaderValue::from_str(&self.0)
            .map_err(|source| SinkError::Key { var, source })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// The validated `[datadog]` section (defaults when the section is absent).
#[derive(Debug, Clone, PartialEq)]
pub struct DatadogConfig {
    /// `false`: never send, even with `DD_API_KEY` set. Default `true` (on when a key is set).
    pub enabled: bool,
    /// `None`: `DD_SITE`, else `datadoghq.com` (resolved at start, see [`api_base`]).
    pub site: Option<String>,
    /// Replaces `https://api.{site}` (a proxy, or a test intake).
    pub url: Option<String>,
    /// Points are aggregated per series over this interval and flushed at its end. Default 10 s.
    pub flush_interval: Duration,
    /// Extra `key:value` tags on every series.
    pub tags: Vec<String>,
    /// Value of the `hubpulse_instance` tag. Default: the host name.
    pub instance: Option<String>,
    /// The `host` resource. Default: the host name.
    pub host: Option<String>,
    /// `Content-Encoding` of `/api/v2/series` (distribution points are always `deflate`).
    pub compression: Codec,
    /// One request, body included.
    pub request_timeout: Duration,
    /// Spill directory. Default: `<lake>/_hubpulse/hubs/<hub>/datadog-spool` (see `LakeLocation::state_dir`).
    pub spool_dir: Option<PathBuf>,
    /// Payload bytes kept in memory before spilling to disk. Default 8 MiB.
    pub memory_limit: u64,
    /// Payload bytes kept on disk; past it the oldest are dropped (counted). Default 512 MiB.
    pub disk_limit: u64,
    /// Write the payloads to this file instead of sending (`--datadog-dry-run`; CLI only).
    pub dry_run: Option<PathBuf>,
    /// Also send spawn failures and culls as events (`/api/v1/events`). Default false.
    pub events: bool,
    /// Also forward every record as a log (`/api/v2/logs`). Default false.
    pub logs: bool,
}

impl Default for DatadogConfig {
    fn default() -> Self {
        DatadogConfig {
            enabled: true,
            site: None,
            url: None,
            flush_interval: Duration::from_secs(10),
            tags: Vec::new(),
            instance: None,
            host: None,
            compression: Codec::Deflate,
            request_timeout: Duration::from_secs(15),
            spool_dir: None,
            memory_limit: 8 << 20,
            disk_limit: 512 << 20,
            dry_run: None,
            events: false,
            logs: false,
        }
    }
}

/// The API base URL (no trailing slash): `url`, else `https://api.{site}` with the site from the
/// config, else `DD_SITE`, else `datadoghq.com`.
///
/// # Errors
/// `DD_SITE` names no known site.
pub fn api_base(cfg: &DatadogConfig) -> Result<String, SinkError> {
    if let Some(u) = &cfg.url {
        return Ok(u.trim_end_matches('/').to_string());
    }
    let site = match &cfg.site {
        Some(s) => s.clone(),
        None => match std::env::var("DD_SITE") {
            Ok(s) if !s.trim().is_empty() => {
                let s = s.trim().to_string();
                check_site(&s).map_err(SinkError::Site)?;
                s
            }
            _ => "datadoghq.com".into(),
        },
    };
    Ok(format!("https://api.{site}"))
}

/// The logs intake base URL: `url` when set (one endpoint for everything, e.g. a proxy or a
/// test intake), else `https://http-intake.logs.{site}`.
///
/// # Errors
/// `DD_SITE` names no known site.
pub fn logs_base(cfg: &DatadogConfig) -> Result<String, SinkError> {
    if let Some(u) = &cfg.url {
        return Ok(u.trim_end_matches('/').to_string());
    }
    let api = api_base(cfg)?;
    Ok(api.replacen("https://api.", "https://http-intake.logs.", 1))
}

/// A Datadog site that is none of [`SITES`].
#[derive(Debug, thiserror::Error)]
#[error("unknown site {0:?} (one of {sites})", sites = SITES.join(", "))]
pub struct UnknownSite(pub String);

fn check_site(s: &str) -> Result<(), UnknownSite> {
    if SITES.contains(&s) {
        Ok(())
    } else {
        Err(UnknownSite(s.to_string()))
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`, else `HOSTNAME`, else `localhost`).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `[datadog]` as written in the TOML file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDatadog {
    enabled: Option<bool>,
    site: Option<String>,
    url: Option<String>,
    flush_interval: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    instance: Option<String>,
    host: Option<String>,
    compression: Option<String>,
    request_timeout: Option<String>,
    spool_dir: Option<PathBuf>,
    memory_limit: Option<String>,
    disk_limit: Option<String>,
    events: Option<bool>,
    logs: Option<bool>,
}

type KeyErr = (String, String);

fn key(leaf: &str) -> String {
    format!("datadog.{leaf}")
}

fn tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | ':')
}

/// A configured tag: `key:value`, at most 200 characters of `[A-Za-z0-9_.:/-]`, the key starting
/// with a letter and not one the agent sets.
fn check_tag(t: &str) -> Result<(), String> {
    let Some((k, v)) = t.split_once(':') else {
        return Err(format!("{t:?}: use key:value"));
    };
    if k.is_empty() || v.is_empty() || t.len() > 200 || !t.chars().all(tag_char) {
        return Err(format!(
            "{t:?}: use key:value, at most 200 characters of A-Z a-z 0-9 _ - . / :"
        ));
    }
    if !k.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!("{t:?}: a tag key starts with a letter"));
    }
    if TAG_KEYS.contains(&k) || k == INSTANCE_TAG {
        return Err(format!("{t:?}: the agent sets `{k}` itself"));
    }
    Ok(())
}

/// Validate `[datadog]` (`None`: the section is absent, defaults apply).
///
/// # Errors
/// `(key, why)` for the first bad value.
pub fn validate(raw: Option<RawDatadog>) -> Result<DatadogConfig, KeyErr> {
    let d = DatadogConfig::default();
    let Some(r) = raw else { return Ok(d) };
    let dur = |leaf: &str, v: &Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|e| (key(leaf), e.to_string())),
    };
    let size = |leaf: &str, v: &Option<String>, default: u64| match v {
        None => Ok(default),
        Some(s) => parse_size(s).map_err(|e| (key(leaf), e.to_string())),
    };
    if let Some(s) = &r.site {
        check_site(s).map_err(|e| (key("site"), e.to_string()))?;
    }
    if let Some(u) = &r.url {
        let parsed = reqwest::Url::parse(u).map_err(|e| (key("url"), format!("{u:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err((key("url"), format!("{u:?}: use http(s)://HOST[:PORT]")));
        }
    }
    let flush_interval = dur("flush_interval", &r.flush_interval, d.flush_interval)?;
    let secs = flush_interval.as_secs();
    if flush_interval.subsec_nanos() != 0 || !(1..=3600).contains(&secs) {
        return Err((
            key("flush_interval"),
            "whole seconds from 1s to 1h (Datadog stamps points in seconds)".into(),
        ));
    }
    if r.tags.len() > 20 {
        return Err((key("tags"), "at most 20 tags".into()));
    }
    for t in &r.tags {
        check_tag(t).map_err(|e| (key("tags"), e))?;
    }
    for (leaf, v) in [("instance", &r.instance), ("host", &r.host)] {
        if let Some(s) = v {
            check_tag(&format!("x:{s}")).map_err(|_| {
                (
                    key(leaf),
                    format!("{s:?}: at most 190 characters of A-Z a-z 0-9 _ - . / :"),
                )
            })?;
        }
    }
    let compression = match r.compression.as_deref() {
        None => d.compression,
        Some("deflate") => Codec::Deflate,
        Some("gzip") => Codec::Gzip,
        Some("zstd1") => Codec::Zstd1,
        Some(o) => {
            return Err((
                key("compression"),
                format!("{o:?}: one of deflate, gzip, zstd1 (the spec's Content-Encoding enum)"),
            ));
        }
    };
    let request_timeout = dur("request_timeout", &r.request_timeout, d.request_timeout)?;
    if request_timeout.is_zero() {
        return Err((key("request_timeout"), "must be > 0".into()));
    }
    let memory_limit = size("memory_limit", &r.memory_limit, d.memory_limit)?;
    if memory_limit < 1 << 20 {
        return Err((key("memory_limit"), "must be at least 1MiB".into()));
    }
    let disk_limit = size("disk_limit", &r.disk_limit, d.disk_limit)?;
    Ok(DatadogConfig {
        enabled: r.enabled.unwrap_or(true),
        site: r.site,
        url: r.url,
        flush_interval,
        tags: r.tags,
        instance: r.instance,
        host: r.host,
        compression,
        request_timeout,
        spool_dir: r.spool_dir,
        memory_limit,
        disk_limit,
        dry_run: None,
        events: r.events.unwrap_or(false),
        logs: r.logs.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> Result<DatadogConfig, KeyErr> {
        validate(Some(toml::from_str(toml_text).unwrap()))
    }

    #[test]
    fn defaults_and_values() {
        let c = raw("site = \"datadoghq.eu\"\ntags = [\"env:prod\"]\ncompression = \"zstd1\"\nflush_interval = \"20s\"").unwrap();
        assert_eq!(c.site.as_deref(), Some("datadoghq.eu"));
        assert_eq!(c.compression, Codec::Zstd1);
        assert_eq!(c.flush_interval, Duration::from_secs(20));
        assert_eq!(api_base(&c).unwrap(), "https://api.datadoghq.eu");
        assert_eq!(validate(None).unwrap(), DatadogConfig::default());
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(raw("site = \"datadog.com\"").unwrap_err().0, "datadog.site");
        assert_eq!(raw("tags = [\"hub:x\"]").unwrap_err().0, "datadog.tags");
        assert_eq!(raw("tags = [\"novalue\"]").unwrap_err().0, "datadog.tags");
        assert_eq!(
            raw("flush_interval = \"1500ms\"").unwrap_err().0,
            "datadog.flush_interval"
        );
        assert_eq!(
            raw("compression = \"zstd\"").unwrap_err().0,
            "datadog.compression"
        );
        assert_eq!(raw("url = \"ftp://x\"").unwrap_err().0, "datadog.url");
    }

    #[test]
    fn the_key_never_prints() {
        let k = ApiKey::new("0123456789abcdef");
        assert_eq!(format!("{k:?}"), "ApiKey(***)");
        assert!(k.header("DD_API_KEY").unwrap().is_sensitive());
    }
}
