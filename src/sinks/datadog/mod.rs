//! The Datadog sink: JupyterHub usage and health as Datadog metrics, derived from the record
//! stream (never by polling the hub).
//!
//! * [`derive`]: an [`Observer`](crate::stream::Observer) that turns records into
//!   per-interval points ([`Interval`]): gauges, counts and distributions named in [`METRICS`].
//! * [`payload`]: points → compressed request bodies for `POST /api/v2/series` and
//!   `POST /api/v1/distribution_points`, split by measured size.
//! * [`retry`]: what to do with the intake's answer to a payload (a pure `decide()`).
//! * [`spool`]: the bounded buffer (memory, spilling to disk) between building and sending.
//! * [`sender`]: the HTTP and dry-run transports and the retry loop acting on [`retry`].
//! * [`sink`]: the whole sink as `hubpulse run` starts it (observer → collector → spool →
//!   sender), with its counters; [`prom`]: the derived metrics on `/metrics`.
//! * [`config`]: the `[datadog]` section, sites, the API key; [`dashboards`]: `hubpulse
//!   dashboards push`.
//!
//! * [`events`]: spawn failures and culls as Datadog events (opt-in); [`logs`]: records as
//!   Datadog logs (opt-in).
//!
//! # Invariants
//! * Every metric is one of [`METRICS`] (prefix `jupyterhub.`), and every tag key is one of
//!   [`TAG_KEYS`]: values are bounded by construction (route groups, status classes and reasons
//!   are `&'static str` from fixed tables; hub, profile and logger are capped, see
//!   [`derive::DeriveConfig::max_tag_values`]). No tag ever carries a user name, an IP or a raw
//!   path: per-user detail lives in the lake.
//! * One point per series per interval, stamped with the interval's start (whole seconds), so two
//!   points of one series never share a second (Datadog keeps only the last write per second).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

pub mod classify;
pub mod config;
pub mod dashboards;
pub mod derive;
pub mod events;
pub mod logs;
mod observe;
pub mod payload;
pub mod retry;
pub mod sender;
pub mod sink;
pub mod spool;
mod state;
pub mod stats;

/// Metric types as the agent produces them (Datadog's v2 `MetricIntakeType` plus distributions,
/// which go to their own endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetricType {
    Count,
    Rate,
    Gauge,
    Distribution,
}

/// One metric the agent emits: what dashboards and tests may refer to.
#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    pub name: &'static str,
    pub kind: MetricType,
    /// Datadog unit name (`second`, `request`, …), for the metric's metadata.
    pub unit: &'static str,
    /// Tag keys besides `hub` (and the instance tag the sender adds).
    pub tags: &'static [&'static str],
    pub description: &'static str,
}

/// Metric names, one constant each.
pub mod names {
    pub const SERVERS_RUNNING: &str = "jupyterhub.servers.running";
    pub const SPAWNS_PENDING: &str = "jupyterhub.spawns.pending";
    pub const USERS_ACTIVE: &str = "jupyterhub.users.active";
    pub const USERS_ACTIVE_REPORTED: &str = "jupyterhub.users.active_reported";
    pub const AGENT_LAG: &str = "jupyterhub.agent.lag";
    pub const REQUESTS: &str = "jupyterhub.requests";
    pub const LOGINS: &str = "jupyterhub.logins";
    pub const SPAWNS_STARTED: &str = "jupyterhub.spawns.started";
    pub const SPAWNS_SUCCEEDED: &str = "jupyterhub.spawns.succeeded";
    pub const SPAWNS_FAILED: &str = "jupyterhub.spawns.failed";
    pub const SPAWNS_DENIED: &str = "jupyterhub.spawns.denied";
    pub const STOPS: &str = "jupyterhub.stops";
    pub const CULLS: &str = "jupyterhub.culls";
    pub const PROXY_ERRORS: &str = "jupyterhub.proxy.errors";
    pub const TRACEBACKS: &str = "jupyterhub.tracebacks";
    pub const SPAWN_DURATION: &str = "jupyterhub.spawn.duration";
    pub const STOP_DURATION: &str = "jupyterhub.stop.duration";
    pub const REQUEST_DURATION: &str = "jupyterhub.request.duration";
}

use MetricType::{Count, Distribution, Gauge};

/// Every metric the agent emits.
pub const METRICS: &[MetricDef] = &[
    MetricDef {
        name: names::SERVERS_RUNNING,
        kind: Gauge,
        unit: "server",
        tags: &["server_type", "profile"],
        description: "Single-user servers running at the end of the interval; server_type default|named, profile when KubeSpawner logged one",
    },
    MetricDef {
        name: names::SPAWNS_PENDING,
        kind: Gauge,
        unit: "server",
        tags: &[],
        description: "Spawns launched and not yet succeeded, failed or timed out",
    },
    MetricDef {
        name: names::USERS_ACTIVE,
        kind: Gauge,
        unit: "user",
        tags: &["window"],
        description: "Distinct users who acted (login, own request, activity) in the last 5m|1h|24h",
    },
    MetricDef {
        name: names::USERS_ACTIVE_REPORTED,
        kind: Gauge,
        unit: "user",
        tags: &["period"],
        description: "JupyterHub's own 'Found N active users' count, per period 24h|7d|30d",
    },
    MetricDef {
        name: names::AGENT_LAG,
        kind: Gauge,
        unit: "second",
        tags: &[],
        description: "Largest delay between a record's timestamp and the agent reading it, per interval",
    },
    MetricDef {
        name: names::REQUESTS,
        kind: Count,
        unit: "request",
        tags: &["route_group", "status_class"],
        description: "HTTP requests logged by the hub and single-user servers",
    },
    MetricDef {
        name: names::LOGINS,
        kind: Count,
        unit: "event",
        tags: &["outcome"],
        description: "Logins, outcome ok|failed",
    },
    MetricDef {
        name: names::SPAWNS_STARTED,
        kind: Count,
        unit: "server",
        tags: &[],
        description: "Spawner launches (a process or a pod created)",
    },
    MetricDef {
        name: names::SPAWNS_SUCCEEDED,
        kind: Count,
        unit: "server",
        tags: &["server_type", "profile"],
        description: "Spawns that started",
    },
    MetricDef {
        name: names::SPAWNS_FAILED,
        kind: Count,
        unit: "server",
        tags: &["reason"],
        description: "Spawns that failed, by reason error|http_timeout|start_timeout|unreachable|unknown",
    },
    MetricDef {
        name: names::SPAWNS_DENIED,
        kind: Count,
        unit: "event",
        tags: &["reason"],
        description: "Spawn requests refused by a limit, reason throttled|server_limit",
    },
    MetricDef {
        name: names::STOPS,
        kind: Count,
        unit: "server",
        tags: &["server_type", "reason"],
        description: "Servers stopped, reason requested|exited|lost",
    },
    MetricDef {
        name: names::CULLS,
        kind: Count,
        unit: "event",
        tags: &["reason"],
        description: "Idle culls, reason server_idle|user_idle|kernel_idle",
    },
    MetricDef {
        name: names::PROXY_ERRORS,
        kind: Count,
        unit: "error",
        tags: &["reason"],
        description: "Proxy errors, reason upstream|api|add_route|exception",
    },
    MetricDef {
        name: names::TRACEBACKS,
        kind: Count,
        unit: "error",
        tags: &["logger"],
        description: "Records carrying a Python traceback or an exception report, by logger",
    },
    MetricDef {
        name: names::SPAWN_DURATION,
        kind: Distribution,
        unit: "second",
        tags: &["server_type", "profile"],
        description: "Time from spawn request to a running server",
    },
    MetricDef {
        name: names::STOP_DURATION,
        kind: Distribution,
        unit: "second",
        tags: &["server_type"],
        description: "Time to stop a server",
    },
    MetricDef {
        name: names::REQUEST_DURATION,
        kind: Distribution,
        unit: "second",
        tags: &["route_group"],
        description: "Request latency as the hub or server logged it",
    },
];

/// Every tag key a point may carry.
pub const TAG_KEYS: &[&str] = &[
    "hub",
    "server_type",
    "profile",
    "window",
    "period",
    "route_group",
    "status_class",
    "outcome",
    "reason",
    "logger",
];

/// The definition of a metric name, if the agent emits it.
pub fn metric_def(name: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.name == name)
}

/// A tag value: a fixed word, or one of a capped set of strings seen in the logs.
#[derive(Debug, Clone)]
pub enum TagValue {
    Static(&'static str),
    Shared(Arc<str>),
}

impl TagValue {
    pub fn as_str(&self) -> &str {
        match self {
            TagValue::Static(s) => s,
            TagValue::Shared(s) => s,
        }
    }
}

impl PartialEq for TagValue {
    fn eq(&self, o: &Self) -> bool {
        self.as_str() == o.as_str()
    }
}
impl Eq for TagValue {}
impl Hash for TagValue {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}
impl PartialOrd for TagValue {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for TagValue {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(o.as_str())
    }
}

/// `key:value`, as Datadog takes tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    pub key: &'static str,
    pub value: TagValue,
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.key, self.value.as_str())
    }
}

/// One value of one series for one interval.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Occurrences in the interval (a delta).
    Count(f64),
    /// State at the end of the interval.
    Gauge(f64),
    /// Every observation in the interval.
    Distribution(Vec<f64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub metric: &'static str,
    /// Sorted by key; keys from [`TAG_KEYS`].
    pub tags: Vec<Tag>,
    pub value: Value,
}

/// Everything derived for one interval `[start_s, start_s + len_s)` of record time.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// POSIX seconds; a multiple of `len_s`. Every point of the interval carries this timestamp.
    pub start_s: i64,
    pub len_s: u32,
    /// Sorted by (metric, tags); one point per series.
    pub points: Vec<Point>,
}
