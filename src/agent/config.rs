//! The agent's configuration: a TOML file (see `hubpulse.example.toml`, every field documented)
//! or the zero-config flags, validated up front into typed values.
//!
//! Errors name the file, the line and column, the key and why, on one line:
//! `hubpulse.toml:12:17: lake.flush_interval: invalid duration "6o s" (use e.g. 250ms, 10s, 5m, 1h)`.
//! Secrets are never read from this file (keys and tokens come from the environment or from
//! files named here), so a config can be committed and shared.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::AgentError;
use crate::config::toml::{invalid_key, toml_from_str};
use crate::config::units::SizeValue;
pub use crate::config::units::{parse_duration, parse_size};
pub use crate::sources::files::config::{FileSourceConfig, StartAt};
use crate::sources::kube::KubeSourceConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    pub hub: String,
    /// The time zone of local timestamps, parsed once here.
    pub tz: chrono_tz::Tz,
    pub parsers: Option<PathBuf>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub lake: LakeConfig,
    /// `None`: no HTTP endpoint.
    pub http: Option<SocketAddr>,
    /// `[http]` slow-client limits (header and request timeouts, connection cap).
    pub http_limits: crate::agent::http::limits::Limits,
    pub files: Vec<FileSourceConfig>,
    pub stdin: bool,
    pub kubernetes: Option<KubeSourceConfig>,
    /// How long a record may stay open waiting for continuation lines (a traceback written in
    /// several writes) once its source has gone quiet.
    pub record_hold: Duration,
    /// Graceful shutdown: stop reading, flush, commit; give up (still losing nothing: the
    /// checkpoint rule) after this long.
    pub shutdown_deadline: Duration,
    /// `[datadog]`: the metrics sink (sends only when `DD_API_KEY` is set).
    pub datadog: crate::sinks::datadog::config::DatadogConfig,
    /// `[hub]`, `[culler]`, `[admission]`: the control loops (issue 5).
    pub control: crate::control::config::ControlConfig,
    /// `[capacity]`: the placeholder loop (issue 7); `None` = off.
    pub capacity: Option<crate::control::capacity::config::CapacityConfig>,
    /// `[pods]`: the `pods` table from watching single-user pods (issue 7); `None` = off.
    pub pods: Option<PodsConfig>,
}

/// The validated `[pods]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct PodsConfig {
    pub namespace: String,
    /// Label selector of single-user pods (default `component=singleuser-server`).
    pub selector: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LakeConfig {
    /// Parsed once, here: a directory or an S3 bucket prefix.
    pub path: crate::lake::LakeLocation,
    /// Commit at least this often while records are buffered (freshness of queries).
    pub flush_interval: Duration,
    /// Commit once this many input bytes are buffered (bounds memory).
    pub flush_bytes: u64,
    /// Merge a partition's small parts once it has at least this many (0: never).
    pub compact_min_files: usize,
    /// `[lake.retention]`: months kept per table (default: everything).
    pub retention: crate::lake::retention::Retention,
}

impl AgentConfig {
    /// The zero-config form: `hubpulse run --lake DIR --follow PATH_OR_GLOB…` (`-` = stdin).
    ///
    /// # Errors
    /// A `--follow` that is not a glob.
    pub fn zero(
        lake: crate::lake::LakeLocation,
        follow: &[String],
    ) -> Result<AgentConfig, AgentError> {
        let stdin = follow.iter().any(|f| f == "-");
        let include: Vec<String> = follow.iter().filter(|f| *f != "-").cloned().collect();
        for g in &include {
            glob::Pattern::new(g).map_err(|source| AgentError::Follow {
                glob: g.clone(),
                source,
            })?;
        }
        let files = if include.is_empty() {
            Vec::new()
        } else {
            vec![FileSourceConfig {
                include,
                ..FileSourceConfig::default()
            }]
        };
        Ok(AgentConfig {
            hub: "jupyterhub".into(),
            tz: chrono_tz::Tz::UTC,
            parsers: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            lake: LakeConfig {
                path: lake,
                flush_interval: Duration::from_secs(60),
                flush_bytes: 32 << 20,
                compact_min_files: 16,
                retention: Default::default(),
            },
            http: Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            http_limits: Default::default(),
            files,
            stdin,
            kubernetes: None,
            record_hold: Duration::from_millis(50),
            shutdown_deadline: Duration::from_secs(10),
            datadog: Default::default(),
            control: Default::default(),
            capacity: None,
            pods: None,
        })
    }

    /// Read and validate a TOML config file.
    ///
    /// # Errors
    /// An unreadable file, or what [`AgentConfig::from_toml`] finds.
    pub fn load(path: &Path) -> Result<AgentConfig, AgentError> {
        let text = std::fs::read_to_string(path).map_err(|source| AgentError::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parse and validate TOML text; `name` is used in error messages.
    ///
    /// # Errors
    /// [`AgentError::ConfigInvalid`]: one line naming the file, the line and the key.
    pub fn from_toml(text: &str, name: &str) -> Result<AgentConfig, AgentError> {
        let raw: RawConfig = toml_from_str(text, name).map_err(AgentError::ConfigInvalid)?;
        raw.validate(text)
            .map_err(|(key, why)| AgentError::ConfigInvalid(invalid_key(text, name, &key, &why)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    agent: RawAgent,
    lake: RawLake,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    files: Vec<RawFiles>,
    #[serde(default)]
    stdin: RawStdin,
    kubernetes: Option<RawKube>,
    datadog: Option<crate::sinks::datadog::config::RawDatadog>,
    hub: Option<crate::control::config::RawHub>,
    culler: Option<crate::control::config::RawCuller>,
    admission: Option<crate::control::config::RawAdmission>,
    capacity: Option<crate::control::capacity::config::RawCapacity>,
    pods: Option<RawPods>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPods {
    namespace: String,
    selector: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    hub: Option<String>,
    tz: Option<String>,
    parsers: Option<PathBuf>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    record_hold: Option<String>,
    shutdown_deadline: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLake {
    path: PathBuf,
    flush_interval: Option<String>,
    flush_bytes: Option<SizeValue>,
    compact_min_files: Option<usize>,
    retention: Option<RawRetention>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    events: Option<u32>,
    decisions: Option<u32>,
    pods: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    /// `"127.0.0.1:9464"` or `"off"`.
    listen: Option<String>,
    header_timeout: Option<String>,
    request_timeout: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFiles {
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    start_at: Option<StartAt>,
    max_line_bytes: Option<SizeValue>,
    poll_interval: Option<String>,
    glob_interval: Option<String>,
    rotate_wait: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStdin {
    #[serde(default)]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKube {
    namespace: String,
    selector: Option<String>,
    proxy_selector: Option<String>,
    container: Option<String>,
}

type KeyErr = (String, String);

fn dur(key: &str, v: &Option<String>, default: Duration) -> Result<Duration, KeyErr> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|e| (key.to_string(), e.to_string())),
    }
}

impl RawConfig {
    fn validate(self, _text: &str) -> Result<AgentConfig, KeyErr> {
        let zero = FileSourceConfig::default();
        let a = &self.agent;
        let tz = match &a.tz {
            None => chrono_tz::Tz::UTC,
            Some(z) => crate::parse::time::Zone::parse_tz(z)
                .map_err(|e| ("agent.tz".into(), e.to_string()))?,
        };
        if let Some(p) = &a.parsers
            && !p.is_dir()
        {
            return Err((
                "agent.parsers".into(),
                format!("{}: not a directory", p.display()),
            ));
        }
        let log_level = a.log_level.clone().unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|e| ("agent.log_level".into(), e.to_string()))?;
        let record_hold = dur(
            "agent.record_hold",
            &a.record_hold,
            Duration::from_millis(50),
        )?;
        let shutdown_deadline = dur(
            "agent.shutdown_deadline",
            &a.shutdown_deadline,
            Duration::from_secs(10),
        )?;
        let path = crate::lake::LakeLocation::from_path(&self.lake.path)
            .map_err(|e| ("lake.path".to_string(), e.to_string()))?;
        let flush_interval = dur(
            "lake.flush_interval",
            &self.lake.flush_interval,
            Duration::from_secs(60),
        )?;
        if flush_interval.is_zero() {
            return Err(("lake.flush_interval".into(), "must be > 0".into()));
        }
        let datadog = crate::sinks::datadog::config::validate(self.datadog)?;
        let flush_bytes = match &self.lake.flush_bytes {
            None => 32 << 20,
            Some(v) => v
                .get()
                .map_err(|e| ("lake.flush_bytes".to_string(), e.to_string()))?,
        };
        if flush_bytes < 4096 {
            return Err(("lake.flush_bytes".into(), "must be at least 4KiB".into()));
        }
        let http = match self.http.listen.as_deref() {
            None => Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            Some("off") => None,
            Some(s) => Some(s.parse::<SocketAddr>().map_err(|e| {
                (
                    "http.listen".to_string(),
                    format!("{s:?}: {e} (use ADDR:PORT or \"off\")"),
                )
            })?),
        };
        let http_limits = crate::agent::http::limits::Limits::from_raw(
            self.http.header_timeout.as_deref(),
            self.http.request_timeout.as_deref(),
            self.http.max_connections,
        )?;
        let mut files = Vec::new();
        for (i, f) in self.files.iter().enumerate() {
            let k = |leaf: &str| format!("files[{i}].{leaf}");
            if f.include.is_empty() {
                return Err((k("include"), "needs at least one path or glob".into()));
            }
            for (key, pats) in [("include", &f.include), ("exclude", &f.exclude)] {
                for g in pats.iter() {
                    glob::Pattern::new(g).map_err(|e| (k(key), format!("{g:?}: {e}")))?;
                }
            }
            let max_line_bytes = match &f.max_line_bytes {
                None => zero.max_line_bytes,
                Some(v) => v.get().map_err(|e| (k("max_line_bytes"), e.to_string()))? as usize,
            };
            if max_line_bytes < 256 {
                return Err((k("max_line_bytes"), "must be at least 256".into()));
            }
            files.push(FileSourceConfig {
                include: f.include.clone(),
                exclude: f.exclude.clone(),
                start_at: f.start_at.unwrap_or_default(),
                max_line_bytes,
                poll_interval: dur(&k("poll_interval"), &f.poll_interval, zero.poll_interval)?,
                glob_interval: dur(&k("glob_interval"), &f.glob_interval, zero.glob_interval)?,
                rotate_wait: dur(&k("rotate_wait"), &f.rotate_wait, zero.rotate_wait)?,
            });
        }
        let kubernetes = self.kubernetes.map(|k| KubeSourceConfig {
            namespace: k.namespace,
            selector: k.selector.unwrap_or_else(|| "component=hub".into()),
            proxy_selector: k.proxy_selector,
            container: k.container,
        });
        if files.is_empty() && !self.stdin.enabled && kubernetes.is_none() {
            return Err((
                "files".into(),
                "no source: add a [[files]] table, [stdin] enabled = true, or [kubernetes]".into(),
            ));
        }
        let control = crate::control::config::validate(self.hub, self.culler, self.admission)?;
        if let Some(h) = &a.hub {
            crate::lake::store::check_hub(h)
                .map_err(|e| ("agent.hub".to_string(), e.to_string()))?;
        }
        let r = self.lake.retention.unwrap_or_default();
        for (key, v) in [
            ("events", r.events),
            ("decisions", r.decisions),
            ("pods", r.pods),
        ] {
            if v.is_some_and(|m| !(1..=1200).contains(&m)) {
                return Err((
                    format!("lake.retention.{key}"),
                    "months to keep before the current one: 1 to 1200 (leave it out to keep everything)".into(),
                ));
            }
        }
        let retention = crate::lake::retention::Retention {
            events: r.events,
            decisions: r.decisions,
            pods: r.pods,
        };
        let capacity = crate::control::capacity::config::validate(self.capacity)?;
        if control.admission.as_ref().is_some_and(|a| a.wait.is_some())
            && self.pods.is_none()
            && capacity.is_none()
        {
            return Err((
                "admission.capacity_wait".into(),
                "needs [pods] or [capacity] to see pods waiting for room".into(),
            ));
        }
        if control
            .admission
            .as_ref()
            .and_then(|a| a.wait.as_ref())
            .is_some_and(|w| w.forecast)
            && capacity.is_none()
        {
            return Err((
                "admission.capacity_forecast".into(),
                "needs [capacity]: the forecast comes from the placeholder loop".into(),
            ));
        }
        if control.admission.is_some() && http.is_none() {
            return Err((
                "admission.policy".into(),
                "POST /v1/admission is served on [http]: set http.listen".into(),
            ));
        }
        Ok(AgentConfig {
            hub: a.hub.clone().unwrap_or_else(|| "jupyterhub".into()),
            tz,
            parsers: a.parsers.clone(),
            log_format: a.log_format.unwrap_or_default(),
            log_level,
            lake: LakeConfig {
                path,
                flush_interval,
                flush_bytes,
                compact_min_files: self.lake.compact_min_files.unwrap_or(16),
                retention,
            },
            http,
            http_limits,
            files,
            stdin: self.stdin.enabled,
            kubernetes,
            record_hold,
            shutdown_deadline,
            datadog,
            control,
            capacity,
            pods: self.pods.map(|p| PodsConfig {
                namespace: p.namespace,
                selector: p
                    .selector
                    .unwrap_or_else(|| "component=singleuser-server".into()),
            }),
        })
    }
}

#[cfg(test)]
#[path = "config_control_tests.rs"]
mod control_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[agent]
hub = "prod"
tz = "Europe/Paris"

[lake]
path = "/tmp/lake"
flush_interval = "10s"
flush_bytes = "8MiB"

[http]
listen = "127.0.0.1:0"

[[files]]
include = ["/var/log/jupyterhub/*.log*"]
start_at = "end"
rotate_wait = "2s"
"#;

    #[test]
    fn good_config_becomes_typed_values() {
        let c = AgentConfig::from_toml(GOOD, "x.toml").unwrap();
        assert_eq!(c.hub, "prod");
        assert_eq!(c.lake.flush_interval, Duration::from_secs(10));
        assert_eq!(c.lake.flush_bytes, 8 << 20);
        assert_eq!(c.files[0].start_at, StartAt::End);
        assert_eq!(c.files[0].rotate_wait, Duration::from_secs(2));
        assert_eq!(c.http.unwrap().port(), 0);
    }

    #[test]
    fn errors_name_file_line_key_and_why() {
        let bad = GOOD.replace("\"10s\"", "\"6o s\"");
        let e = AgentConfig::from_toml(&bad, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.toml:8:1: lake.flush_interval: invalid duration"),
            "{e}"
        );
        let bad = GOOD.replace("start_at = \"end\"", "start_at = \"middle\"");
        let e = AgentConfig::from_toml(&bad, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:16:12: "), "{e}");
        assert!(e.contains("middle"), "{e}");
        let bad = GOOD.replace("hub = \"prod\"", "hubb = \"prod\"");
        let e = AgentConfig::from_toml(&bad, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:3:1: unknown field `hubb`"), "{e}");
        let bad = GOOD.replace("Europe/Paris", "Mars/Olympus");
        let e = AgentConfig::from_toml(&bad, "x.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.toml:4:1: agent.tz: "), "{e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert!(parse_size("64kb").is_err());
    }
}
