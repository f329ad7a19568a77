//! The `[hub]`, `[culler]` and `[admission]` sections of the agent's TOML config, validated
//! into typed values. Parsing lives here so `agent/config.rs` only forwards three tables.
//!
//! Errors are `(key, why)` pairs; `agent/config.rs` turns them into the usual one line
//! `FILE:LINE:COL: key: why` (exit 2). Tokens never come from this file: the hub token is read
//! from `JUPYTERHUB_API_TOKEN` (or the file `hub.token_file` names), the admission token from
//! `HUBPULSE_ADMISSION_TOKEN` (or `admission.token_file`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::units::parse_duration;
use crate::control::ControlError;

type KeyErr = (String, String);

/// What the culler does when its view of activity may be out of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnStale {
    /// No culls until the stream is fresh again (decisions say `skip`/`stale_stream`).
    #[default]
    Pause,
    /// Keep culling on the hub's `last_activity` (what jupyterhub-idle-culler does).
    Api,
}

/// The validated `[culler]` section: jupyterhub-idle-culler 2.0's options plus hubpulse's.
#[derive(Debug, Clone, PartialEq)]
pub struct CullPolicy {
    /// Idle limit (`--timeout`).
    pub timeout: Duration,
    /// Cull servers older than this even if active (`--max-age`); `None` = off.
    pub max_age: Option<Duration>,
    /// Also delete users with no server, idle for `timeout` (`--cull-users`; needs `admin:users`).
    pub cull_users: bool,
    pub cull_admin_users: bool,
    pub cull_default_servers: bool,
    pub cull_named_servers: bool,
    /// Stop named servers with `{"remove": true}` (deletes them).
    pub remove_named_servers: bool,
    /// Hub API requests in flight at once.
    pub concurrency: usize,
    /// `limit` of each list request (the hub caps it at 200).
    pub page_size: u32,
    /// The profile a server without `user_options.profile` runs (KubeSpawner's default).
    pub default_profile: Option<String>,
    /// Idle limit per profile slug; wins over group and default limits.
    pub profile_timeouts: BTreeMap<String, Duration>,
    /// Idle limit per group; a user in several groups gets the most generous one.
    pub group_timeouts: BTreeMap<String, Duration>,
    pub exempt_users: BTreeSet<String>,
    pub exempt_groups: BTreeSet<String>,
    /// Server names (globs) never culled, e.g. `"keep-*"`.
    pub exempt_servers: Vec<glob::Pattern>,
    /// Warn this long before a cull (a `warn` decision, logged); zero = no warning.
    pub warn_before: Duration,
    /// Decide and record, stop nothing.
    pub dry_run: bool,
    /// At most this many culls in any 60 s (0 = no cap).
    pub max_culls_per_minute: u32,
    /// Mass-cull guard: a pass that would stop more than this fraction of running servers
    /// (and more than `mass_cull_min`) stops none of them.
    pub max_cull_fraction: f64,
    pub mass_cull_min: usize,
    /// The log stream is stale when no record arrived for this long...
    pub stream_max_silence: Duration,
    /// ...or its newest record is older than this.
    pub stream_max_lag: Duration,
    pub on_stale: OnStale,
    /// Full pass over the hub API at least this often (and at start).
    pub reconcile_every: Duration,
}

impl CullPolicy {
    /// One plain sentence on what the culler will do: whether it stops servers (and which).
    pub fn summary(&self) -> String {
        let kinds = match (self.cull_default_servers, self.cull_named_servers) {
            (true, true) => "default and named servers",
            (true, false) => "default servers",
            (false, true) => "named servers",
            (false, false) => "no servers (both kinds disabled)",
        };
        let mut s = if self.dry_run {
            format!(
                "the idle culler runs as a dry run: it records which {kinds} it would stop, and stops nothing"
            )
        } else {
            format!(
                "the idle culler is live: it WILL STOP {kinds} idle for more than {} by the hub's last_activity",
                crate::report::render::humanize(self.timeout.as_secs())
            )
        };
        if !self.profile_timeouts.is_empty() || !self.group_timeouts.is_empty() {
            s.push_str(" (or their profile's or group's limit)");
        }
        if let Some(m) = self.max_age {
            s.push_str(&format!(
                ", and any server older than {}",
                crate::report::render::humanize(m.as_secs())
            ));
        }
        if self.cull_users && !self.dry_run {
            s.push_str(", and DELETE users idle that long with no server");
        }
        let exempt = self.exempt_users.len() + self.exempt_groups.len() + self.exempt_servers.len();
        if exempt > 0 {
            s.push_str(&format!("; {exempt} exemption(s)"));
        }
        s
    }
}

impl Default for CullPolicy {
    fn default() -> Self {
        CullPolicy {
            timeout: Duration::from_secs(600),
            max_age: None,
            cull_users: false,
            cull_admin_users: true,
            cull_default_servers: true,
            cull_named_servers: true,
            remove_named_servers: false,
            concurrency: 10,
            page_size: 200,
            default_profile: None,
            profile_timeouts: BTreeMap::new(),
            group_timeouts: BTreeMap::new(),
            exempt_users: BTreeSet::new(),
            exempt_groups: BTreeSet::new(),
            exempt_servers: Vec::new(),
            warn_before: Duration::ZERO,
            dry_run: false,
            max_culls_per_minute: 0,
            max_cull_fraction: 0.5,
            mass_cull_min: 5,
            stream_max_silence: Duration::from_secs(600),
            stream_max_lag: Duration::from_secs(120),
            on_stale: OnStale::Pause,
            reconcile_every: Duration::from_secs(300),
        }
    }
}

/// `[hub]`: how to reach the hub API.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSection {
    /// `None`: `JUPYTERHUB_API_URL`.
    pub api_url: Option<crate::hub::ApiUrl>,
    /// `None`: `JUPYTERHUB_API_TOKEN`.
    pub token_file: Option<PathBuf>,
    pub request_timeout: Duration,
    /// How often the hub's running servers are listed into `observations` when no culler runs
    /// (the culler's `reconcile_every` listing is the observation when it does); 0 = never.
    pub observe_every: Duration,
}

/// `[admission]`: the spawn-time policy endpoint and the quota reconcile loop.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionSection {
    /// The policy file (TOML; see `control::admission::policy`).
    pub policy: PathBuf,
    /// `None`: `HUBPULSE_ADMISSION_TOKEN`.
    pub token_file: Option<PathBuf>,
    /// How often running servers are checked against the policy (0 = never).
    pub reconcile_every: Duration,
    pub dry_run: bool,
    /// `capacity_wait = true`: an allowed spawn is told to wait when the cluster has no room
    /// (needs `[pods]` or `[capacity]`, checked by the agent config); `None` = off.
    pub wait: Option<crate::control::admission::wait::WaitPolicy>,
    /// `view_refresh` and `max_concurrent` of `POST /v1/admission`.
    pub endpoint: crate::control::quota::EndpointConfig,
}

/// Everything the control loops need from the agent config.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ControlConfig {
    pub hub: Option<HubSection>,
    pub culler: Option<CullPolicy>,
    pub admission: Option<AdmissionSection>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawHub {
    api_url: Option<String>,
    token_file: Option<PathBuf>,
    request_timeout: Option<String>,
    observe_every: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCuller {
    #[serde(default = "yes")]
    enabled: bool,
    timeout: Option<String>,
    max_age: Option<String>,
    cull_users: Option<bool>,
    cull_admin_users: Option<bool>,
    cull_default_servers: Option<bool>,
    cull_named_servers: Option<bool>,
    remove_named_servers: Option<bool>,
    concurrency: Option<usize>,
    api_page_size: Option<u32>,
    default_profile: Option<String>,
    #[serde(default)]
    profile_timeouts: BTreeMap<String, String>,
    #[serde(default)]
    group_timeouts: BTreeMap<String, String>,
    #[serde(default)]
    exempt_users: Vec<String>,
    #[serde(default)]
    exempt_groups: Vec<String>,
    #[serde(default)]
    exempt_servers: Vec<String>,
    warn_before: Option<String>,
    dry_run: Option<bool>,
    max_culls_per_minute: Option<u32>,
    max_cull_fraction: Option<f64>,
    mass_cull_min: Option<usize>,
    stream_max_silence: Option<String>,
    stream_max_lag: Option<String>,
    on_stale: Option<OnStale>,
    reconcile_every: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmission {
    policy: PathBuf,
    token_file: Option<PathBuf>,
    reconcile_every: Option<String>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    capacity_wait: bool,
    scale_up_time: Option<String>,
    #[serde(default)]
    capacity_forecast: bool,
    view_refresh: Option<String>,
    max_concurrent: Option<usize>,
}

fn dur(key: &str, v: &Option<String>, default: Duration) -> Result<Duration, KeyErr> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s).map_err(|e| (key.to_string(), e.to_string())),
    }
}

/// Validate the three raw sections.
pub fn validate(
    hub: Option<RawHub>,
    culler: Option<RawCuller>,
    admission: Option<RawAdmission>,
) -> Result<ControlConfig, KeyErr> {
    let hub = hub.map(validate_hub).transpose()?;
    let culler = match culler {
        Some(c) if c.enabled => Some(validate_culler(c)?),
        _ => None,
    };
    let admission = admission
        .map(|a| -> Result<AdmissionSection, KeyErr> {
            if !a.policy.is_file() {
                return Err((
                    "admission.policy".into(),
                    format!("{}: no such file", a.policy.display()),
                ));
            }
            // A policy that does not parse is refused at start, with its own file:line.
            crate::control::admission::Policy::load(&a.policy)
                .map_err(|e| ("admission.policy".into(), e.to_string()))?;
            if a.capacity_forecast && !a.capacity_wait {
                return Err((
                    "admission.capacity_forecast".into(),
                    "needs capacity_wait = true (it extends the wait answer)".into(),
                ));
            }
            let wait = a.capacity_wait.then(|| wait_policy(&a)).transpose()?;
            let endpoint = endpoint_config(&a)?;
            Ok(AdmissionSection {
                policy: a.policy,
                token_file: a.token_file,
                reconcile_every: dur(
                    "admission.reconcile_every",
                    &a.reconcile_every,
                    Duration::from_secs(60),
                )?,
                dry_run: a.dry_run,
                wait,
                endpoint,
            })
        })
        .transpose()?;
    Ok(ControlConfig {
        hub,
        culler,
        admission,
    })
}

fn endpoint_config(a: &RawAdmission) -> Result<crate::control::quota::EndpointConfig, KeyErr> {
    let d = crate::control::quota::EndpointConfig::default();
    let view_refresh = dur("admission.view_refresh", &a.view_refresh, d.view_refresh)?;
    if view_refresh > Duration::from_secs(600) {
        return Err((
            "admission.view_refresh".into(),
            "at most 10m (allows rest on a view this old)".into(),
        ));
    }
    let max_concurrent = a.max_concurrent.unwrap_or(d.max_concurrent);
    if !(1..=1024).contains(&max_concurrent) {
        return Err((
            "admission.max_concurrent".into(),
            "must be between 1 and 1024".into(),
        ));
    }
    Ok(crate::control::quota::EndpointConfig {
        view_refresh,
        max_concurrent,
    })
}

fn wait_policy(a: &RawAdmission) -> Result<crate::control::admission::wait::WaitPolicy, KeyErr> {
    let d = crate::control::admission::wait::WaitPolicy::default();
    let scale_up = dur(
        "admission.scale_up_time",
        &a.scale_up_time,
        d.scale_up.to_std().unwrap_or(Duration::from_secs(300)),
    )?;
    if !(Duration::from_secs(10)..=Duration::from_secs(7200)).contains(&scale_up) {
        return Err((
            "admission.scale_up_time".into(),
            "must be between 10s and 2h".into(),
        ));
    }
    Ok(crate::control::admission::wait::WaitPolicy {
        scale_up: chrono::Duration::from_std(scale_up).unwrap_or(d.scale_up),
        forecast: a.capacity_forecast,
        ..d
    })
}

fn validate_hub(h: RawHub) -> Result<HubSection, KeyErr> {
    let api_url = match &h.api_url {
        Some(u) => Some(crate::hub::ApiUrl::parse(u).map_err(|e| {
            let why = match e {
                // The URL is not repeated: it holds a password.
                crate::hub::HubError::Config(m) if m.contains("credentials") => m,
                _ => format!("{u:?} is not an http(s) URL"),
            };
            ("hub.api_url".to_string(), why)
        })?),
        None => None,
    };
    Ok(HubSection {
        api_url,
        token_file: h.token_file,
        request_timeout: dur(
            "hub.request_timeout",
            &h.request_timeout,
            Duration::from_secs(30),
        )?,
        observe_every: dur(
            "hub.observe_every",
            &h.observe_every,
            Duration::from_secs(300),
        )?,
    })
}

/// The `[culler]` section (also used by `hubpulse cull --once`).
pub fn validate_culler(c: RawCuller) -> Result<CullPolicy, KeyErr> {
    let d = CullPolicy::default();
    let k = |leaf: &str| format!("culler.{leaf}");
    let timeout = dur(&k("timeout"), &c.timeout, d.timeout)?;
    if timeout.is_zero() {
        return Err((k("timeout"), "must be > 0".into()));
    }
    let max_age = match &c.max_age {
        None => None,
        Some(s) => Some(parse_duration(s).map_err(|e| (k("max_age"), e.to_string()))?)
            .filter(|d| !d.is_zero()),
    };
    let mut profile_timeouts = BTreeMap::new();
    for (p, v) in &c.profile_timeouts {
        let t = parse_duration(v).map_err(|e| (k("profile_timeouts"), format!("{p}: {e}")))?;
        profile_timeouts.insert(p.clone(), t);
    }
    let mut group_timeouts = BTreeMap::new();
    for (g, v) in &c.group_timeouts {
        let t = parse_duration(v).map_err(|e| (k("group_timeouts"), format!("{g}: {e}")))?;
        group_timeouts.insert(g.clone(), t);
    }
    let mut exempt_servers = Vec::new();
    for p in &c.exempt_servers {
        exempt_servers
            .push(glob::Pattern::new(p).map_err(|e| (k("exempt_servers"), format!("{p:?}: {e}")))?);
    }
    let concurrency = c.concurrency.unwrap_or(d.concurrency);
    if concurrency == 0 {
        return Err((k("concurrency"), "must be at least 1".into()));
    }
    let page_size = c.api_page_size.unwrap_or(d.page_size);
    if !(1..=200).contains(&page_size) {
        return Err((
            k("api_page_size"),
            "must be 1..=200 (the hub caps it at 200)".into(),
        ));
    }
    let max_cull_fraction = c.max_cull_fraction.unwrap_or(d.max_cull_fraction);
    if !(max_cull_fraction > 0.0 && max_cull_fraction <= 1.0) {
        return Err((k("max_cull_fraction"), "must be in (0, 1]".into()));
    }
    let reconcile_every = dur(&k("reconcile_every"), &c.reconcile_every, d.reconcile_every)?;
    if reconcile_every < Duration::from_secs(1) {
        return Err((k("reconcile_every"), "must be at least 1s".into()));
    }
    Ok(CullPolicy {
        timeout,
        max_age,
        cull_users: c.cull_users.unwrap_or(d.cull_users),
        cull_admin_users: c.cull_admin_users.unwrap_or(d.cull_admin_users),
        cull_default_servers: c.cull_default_servers.unwrap_or(d.cull_default_servers),
        cull_named_servers: c.cull_named_servers.unwrap_or(d.cull_named_servers),
        remove_named_servers: c.remove_named_servers.unwrap_or(d.remove_named_servers),
        concurrency,
        page_size,
        default_profile: c.default_profile,
        profile_timeouts,
        group_timeouts,
        exempt_users: c.exempt_users.into_iter().collect(),
        exempt_groups: c.exempt_groups.into_iter().collect(),
        exempt_servers,
        warn_before: dur(&k("warn_before"), &c.warn_before, d.warn_before)?,
        dry_run: c.dry_run.unwrap_or(false),
        max_culls_per_minute: c.max_culls_per_minute.unwrap_or(0),
        max_cull_fraction,
        mass_cull_min: c.mass_cull_min.unwrap_or(d.mass_cull_min),
        stream_max_silence: dur(
            &k("stream_max_silence"),
            &c.stream_max_silence,
            d.stream_max_silence,
        )?,
        stream_max_lag: dur(&k("stream_max_lag"), &c.stream_max_lag, d.stream_max_lag)?,
        on_stale: c.on_stale.unwrap_or_default(),
        reconcile_every,
    })
}

/// Reads a token (`what`: which one, for errors) from `file` (trimmed), else from the
/// environment variable `var`.
///
/// # Errors
/// One line naming the file or the variable; never the token.
pub fn read_token(
    what: &'static str,
    file: Option<&std::path::Path>,
    var: &str,
) -> Result<String, ControlError> {
    let t = match file {
        Some(f) => std::fs::read_to_string(f).map_err(|source| ControlError::TokenRead {
            what,
            path: f.to_path_buf(),
            source,
        })?,
        None => std::env::var(var).map_err(|_| ControlError::TokenUnset {
            what,
            var: var.to_string(),
        })?,
    };
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(match file {
            Some(f) => ControlError::TokenEmptyFile {
                what,
                path: f.to_path_buf(),
            },
            None => ControlError::TokenEmpty {
                what,
                var: var.to_string(),
            },
        });
    }
    Ok(t)
}
