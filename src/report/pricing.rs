//! The pricing file: what a server-hour of each profile costs, who belongs to which group, and
//! which project pays for whom.
//!
//! ```toml
//! currency = "EUR"
//! default_profile = "small"   # servers whose profile the logs do not show
//! idle_timeout = "1h"         # "a culler with this timeout would have saved …"
//!
//! [profiles.small]
//! hourly = 0.04               # a price per server-hour …
//! names = ["Small (1 CPU)"]   # … and the display names the hub logs for it
//!
//! [profiles.gpu]
//! instance_type = "g4dn.xlarge"   # … or a node type and the share of a node it takes
//! node_share = 1.0
//! names = ["GPU (large)"]
//!
//! [instance_types."g4dn.xlarge"]
//! hourly = 0.526
//! cpu = 4                     # optional: the node's allocatable size, to price sessions
//! memory = "16Gi"             # from their pod's requests (bytes, or a Kubernetes quantity)
//! gpu = 1
//!
//! [[groups]]                  # first listed group wins for a user in several
//! name = "data-science"
//! users = ["alice", "bob"]
//!
//! [[projects]]                # users listed by name win over groups
//! name = "churn-model"
//! groups = ["data-science"]
//! users = ["carol"]
//! ```
//!
//! Errors are one line, `FILE:LINE:COL: key: why`. Prices are per hour of a server's run, from
//! ready to stopped (spawn time is reported, not billed).
//!
//! **Priced from the pod.** When the lake's `pods` table holds the session's pod
//! ([`super::pods`]) and its node's instance type has a `[instance_types."…"]` table with
//! `hourly`, `cpu` and `memory` (and `gpu` when the pod requests GPUs), the session costs
//! `hourly × max(cpu_request / cpu, memory_request / memory[, gpus / gpu])` per hour: the
//! share of the node its dominant resource takes (as Kubecost's), at most 1. Other sessions
//! cost their profile's price.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::config::toml::{invalid_key, toml_from_str};
use crate::config::units::parse_duration;
use crate::report::ReportError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default = "default_currency")]
    currency: String,
    default_profile: Option<String>,
    idle_timeout: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, RawProfile>,
    #[serde(default)]
    instance_types: BTreeMap<String, RawInstance>,
    #[serde(default)]
    groups: Vec<RawMembers>,
    #[serde(default)]
    projects: Vec<RawMembers>,
}

fn default_currency() -> String {
    "USD".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    hourly: Option<f64>,
    instance_type: Option<String>,
    node_share: Option<f64>,
    #[serde(default)]
    names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstance {
    hourly: f64,
    cpu: Option<f64>,
    memory: Option<RawQuantity>,
    gpu: Option<f64>,
}

/// Bytes as a number or a Kubernetes quantity (`"16Gi"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawQuantity {
    Int(i64),
    Float(f64),
    Text(String),
}

impl RawQuantity {
    fn value(&self) -> Option<f64> {
        match self {
            RawQuantity::Int(n) => Some(*n as f64),
            RawQuantity::Float(x) => Some(*x),
            RawQuantity::Text(s) => crate::config::quantity::quantity(s),
        }
    }
}

/// A node type: its price and, when given, its allocatable size.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Instance {
    pub hourly: f64,
    /// Cores.
    pub cpu: Option<f64>,
    /// Bytes.
    pub memory: Option<f64>,
    pub gpu: Option<f64>,
}

/// What a pod requests (cores, bytes, GPUs; `None`: not set).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Requests {
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    pub gpus: Option<f64>,
}

/// The share of a node a pod's requests take: its dominant resource's,
/// `max(cpu / node cpu, memory / node memory[, gpus / node gpus])`, at most 1.
///
/// `None` (price it by its profile instead) when the node's CPU or memory size is not given,
/// when the pod requests neither CPU nor memory, or when it requests GPUs of a node whose GPU
/// count is not given.
pub fn dominant_share(req: &Requests, node: &Instance) -> Option<f64> {
    let (node_cpu, node_mem) = (node.cpu?, node.memory?);
    if req.cpu.is_none() && req.memory.is_none() {
        return None;
    }
    let mut share = f64::max(
        req.cpu.unwrap_or(0.0) / node_cpu,
        req.memory.unwrap_or(0.0) / node_mem,
    );
    if let Some(g) = req.gpus.filter(|g| *g > 0.0) {
        share = share.max(g / node.gpu.filter(|n| *n > 0.0)?);
    }
    share.is_finite().then_some(share.clamp(0.0, 1.0))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMembers {
    name: String,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
}

/// A validated pricing file.
#[derive(Debug, Clone)]
pub struct Pricing {
    pub currency: String,
    /// Slug of the profile servers get when the logs do not show one.
    pub default_profile: String,
    pub idle_timeout: Duration,
    /// Profile slug -> price per server-hour.
    pub hourly: BTreeMap<String, f64>,
    /// Instance type -> its price and size.
    pub instances: BTreeMap<String, Instance>,
    /// Display name or slug (as logged) -> slug.
    names: HashMap<String, String>,
    /// user -> group, group order as listed.
    user_group: HashMap<String, String>,
    pub groups: Vec<String>,
    user_project: HashMap<String, String>,
    group_project: HashMap<String, String>,
    pub projects: Vec<String>,
}

pub const NO_GROUP: &str = "(no group)";
pub const NO_PROJECT: &str = "(no project)";

impl Default for Pricing {
    /// No prices: every profile costs 0 and the default profile is called `default`.
    fn default() -> Self {
        Pricing {
            currency: default_currency(),
            default_profile: "default".into(),
            idle_timeout: Duration::from_secs(3600),
            hourly: BTreeMap::new(),
            instances: BTreeMap::new(),
            names: HashMap::new(),
            user_group: HashMap::new(),
            groups: Vec::new(),
            user_project: HashMap::new(),
            group_project: HashMap::new(),
            projects: Vec::new(),
        }
    }
}

impl Pricing {
    pub fn load(path: &Path) -> Result<Pricing, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::ReadPricing {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    pub fn from_toml(text: &str, name: &str) -> Result<Pricing, ReportError> {
        let raw: Raw = toml_from_str(text, name)?;
        raw.validate()
            .map_err(|(key, why)| invalid_key(text, name, &key, &why).into())
    }

    /// The slug of a logged profile name (`None`: the default profile).
    pub fn profile_slug(&self, logged: Option<&str>) -> String {
        match logged {
            None => self.default_profile.clone(),
            Some(n) => self.names.get(n).cloned().unwrap_or_else(|| n.to_string()),
        }
    }

    /// Price per server-hour; `None` for a profile the file does not price.
    pub fn price(&self, slug: &str) -> Option<f64> {
        self.hourly.get(slug).copied()
    }

    /// Price per server-hour of a pod with these requests on a node of this type: the node's
    /// price times [`dominant_share`]. `None` when the type is unknown or its size not given.
    pub fn pod_price(&self, instance_type: &str, req: &Requests) -> Option<f64> {
        let node = self.instances.get(instance_type)?;
        Some(node.hourly * dominant_share(req, node)?)
    }

    pub fn group_of(&self, user: &str) -> &str {
        self.user_group.get(user).map_or(NO_GROUP, String::as_str)
    }

    pub fn project_of(&self, user: &str) -> &str {
        if let Some(p) = self.user_project.get(user) {
            return p;
        }
        self.user_group
            .get(user)
            .and_then(|g| self.group_project.get(g))
            .map_or(NO_PROJECT, String::as_str)
    }
}

/// A refused key and why: private to validation, placed in the text by `invalid_key`.
type Invalid = (String, String);

impl Raw {
    fn validate(self) -> Result<Pricing, Invalid> {
        let bad = |k: String, why: &str| Err((k, why.to_string()));
        let mut p = Pricing {
            currency: self.currency,
            ..Pricing::default()
        };
        if let Some(t) = self.idle_timeout {
            p.idle_timeout =
                parse_duration(&t).map_err(|e| ("idle_timeout".into(), e.to_string()))?;
        }
        for (slug, prof) in &self.profiles {
            let key = |f: &str| format!("profiles.{slug}.{f}");
            let hourly = match (prof.hourly, &prof.instance_type) {
                (Some(_), Some(_)) => {
                    return bad(key("hourly"), "give hourly or instance_type, not both");
                }
                (None, None) => {
                    return bad(format!("profiles.{slug}"), "needs hourly or instance_type");
                }
                (Some(h), None) => h,
                (None, Some(it)) => {
                    let Some(node) = self.instance_types.get(it) else {
                        return bad(
                            key("instance_type"),
                            &format!("no [instance_types.\"{it}\"] gives its price"),
                        );
                    };
                    let share = prof.node_share.unwrap_or(1.0);
                    if !(share > 0.0 && share <= 1.0) {
                        return bad(key("node_share"), "must be in (0, 1]");
                    }
                    node.hourly * share
                }
            };
            if !(hourly.is_finite() && hourly >= 0.0) {
                return bad(key("hourly"), "must be a price ≥ 0");
            }
            p.hourly.insert(slug.clone(), hourly);
            p.names.insert(slug.clone(), slug.clone());
            for n in &prof.names {
                p.names.insert(n.clone(), slug.clone());
            }
        }
        for (name, it) in &self.instance_types {
            let key = |f: &str| format!("instance_types.\"{name}\".{f}");
            if !(it.hourly.is_finite() && it.hourly >= 0.0) {
                return bad(key("hourly"), "must be a price ≥ 0");
            }
            let positive = |x: f64| x.is_finite() && x > 0.0;
            if it.cpu.is_some_and(|c| !positive(c)) {
                return bad(key("cpu"), "must be a number of cores > 0");
            }
            let memory = match &it.memory {
                None => None,
                Some(m) => match m.value().filter(|v| positive(*v)) {
                    Some(v) => Some(v),
                    None => {
                        return bad(
                            key("memory"),
                            "must be bytes > 0 or a quantity like \"16Gi\"",
                        );
                    }
                },
            };
            if it.gpu.is_some_and(|g| !(g.is_finite() && g >= 0.0)) {
                return bad(key("gpu"), "must be a number of GPUs ≥ 0");
            }
            p.instances.insert(
                name.clone(),
                Instance {
                    hourly: it.hourly,
                    cpu: it.cpu,
                    memory,
                    gpu: it.gpu,
                },
            );
        }
        p.default_profile = match self.default_profile {
            Some(d) if !p.hourly.is_empty() && !p.hourly.contains_key(&d) => {
                return bad(
                    "default_profile".into(),
                    &format!("{d:?} is not a [profiles.…] table"),
                );
            }
            Some(d) => d,
            None => p
                .hourly
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| "default".into()),
        };
        for (i, g) in self.groups.iter().enumerate() {
            if !g.groups.is_empty() {
                return bad(
                    format!("groups[{i}].groups"),
                    "a group lists users, not groups",
                );
            }
            p.groups.push(g.name.clone());
            for u in &g.users {
                p.user_group
                    .entry(u.clone())
                    .or_insert_with(|| g.name.clone());
            }
        }
        for pr in &self.projects {
            p.projects.push(pr.name.clone());
            for u in &pr.users {
                p.user_project
                    .entry(u.clone())
                    .or_insert_with(|| pr.name.clone());
            }
            for g in &pr.groups {
                p.group_project
                    .entry(g.clone())
                    .or_insert_with(|| pr.name.clone());
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"currency = "EUR"
default_profile = "small"
idle_timeout = "30m"

[profiles.small]
hourly = 0.04
names = ["Small (1 CPU)"]

[profiles.gpu]
instance_type = "g4dn.xlarge"
node_share = 0.5
names = ["GPU (large)"]

[instance_types."g4dn.xlarge"]
hourly = 0.526

[[groups]]
name = "data-science"
users = ["alice", "bob"]

[[groups]]
name = "analysts"
users = ["bob", "carol"]

[[projects]]
name = "churn"
groups = ["data-science"]
users = ["carol"]
"#;

    #[test]
    fn prices_names_groups_and_projects_resolve() {
        let p = Pricing::from_toml(FILE, "p.toml").unwrap();
        assert_eq!(p.currency, "EUR");
        assert_eq!(p.idle_timeout, Duration::from_secs(1800));
        assert_eq!(p.profile_slug(Some("GPU (large)")), "gpu");
        assert_eq!(p.profile_slug(None), "small");
        assert_eq!(p.profile_slug(Some("other")), "other");
        assert_eq!(p.price("gpu"), Some(0.263));
        assert_eq!(p.price("other"), None);
        assert_eq!(p.group_of("bob"), "data-science");
        assert_eq!(p.group_of("zed"), NO_GROUP);
        assert_eq!(p.project_of("alice"), "churn");
        assert_eq!(p.project_of("carol"), "churn");
        assert_eq!(p.project_of("zed"), NO_PROJECT);
    }

    #[test]
    fn errors_say_where_and_why_in_one_line() {
        let err = Pricing::from_toml(&FILE.replace("0.526", "\"x\""), "p.toml").unwrap_err();
        assert!(matches!(err, ReportError::Pricing(_)), "{err:?}");
        assert!(std::error::Error::source(&err).is_some(), "{err:?}");
        assert!(err.to_string().starts_with("p.toml:15:10:"), "{err}");
        let e = refused(&FILE.replace("\"g4dn.xlarge\"\nnode", "\"m5\"\nnode"));
        assert!(e.starts_with("p.toml:10:1: profiles.gpu.instance_type:"));
        let e = refused(&FILE.replace("default_profile = \"small\"", "default_profile = \"xl\""));
        assert!(e.starts_with("p.toml:2:1: default_profile:"), "{e}");
        assert!(!e.contains('\n'));
    }

    fn refused(text: &str) -> String {
        Pricing::from_toml(text, "p.toml").unwrap_err().to_string()
    }

    const GI: f64 = 1_073_741_824.0;

    fn node() -> Instance {
        Instance {
            hourly: 0.8,
            cpu: Some(8.0),
            memory: Some(32.0 * GI),
            gpu: Some(2.0),
        }
    }

    fn req(cpu: Option<f64>, mem_gi: Option<f64>, gpus: Option<f64>) -> Requests {
        Requests {
            cpu,
            memory: mem_gi.map(|m| m * GI),
            gpus,
        }
    }

    #[test]
    fn the_dominant_resource_sets_the_share() {
        // CPU-dominant: 2 of 8 cores (0.25) beats 4 of 32 GiB (0.125)
        assert_eq!(
            dominant_share(&req(Some(2.0), Some(4.0), None), &node()),
            Some(0.25)
        );
        // memory-dominant: 16 of 32 GiB (0.5) beats 1 of 8 cores
        assert_eq!(
            dominant_share(&req(Some(1.0), Some(16.0), None), &node()),
            Some(0.5)
        );
        // GPU-dominant: 1 of 2 GPUs (0.5) beats 1 core and 4 GiB
        assert_eq!(
            dominant_share(&req(Some(1.0), Some(4.0), Some(1.0)), &node()),
            Some(0.5)
        );
        // memory only: the CPU share is 0
        assert_eq!(
            dominant_share(&req(None, Some(8.0), None), &node()),
            Some(0.25)
        );
        // more than the node: the whole node
        assert_eq!(
            dominant_share(&req(Some(16.0), None, None), &node()),
            Some(1.0)
        );
        // no requests, no node size, GPUs on a node of unknown GPU count: no share
        assert_eq!(dominant_share(&req(None, None, Some(1.0)), &node()), None);
        let no_size = Instance {
            cpu: None,
            ..node()
        };
        assert_eq!(dominant_share(&req(Some(1.0), None, None), &no_size), None);
        let no_gpu = Instance {
            gpu: None,
            ..node()
        };
        assert_eq!(
            dominant_share(&req(Some(1.0), None, Some(1.0)), &no_gpu),
            None
        );
        assert_eq!(
            dominant_share(&req(Some(1.0), None, Some(0.0)), &no_gpu),
            Some(0.125)
        );
    }

    #[test]
    fn the_share_is_the_largest_ratio_and_between_0_and_1() {
        // a grid of requests against the definition
        for cpu in [None, Some(0.0), Some(0.5), Some(3.0), Some(9.0)] {
            for mem in [None, Some(0.0), Some(1.0), Some(20.0), Some(40.0)] {
                for gpus in [None, Some(0.0), Some(1.0), Some(2.0)] {
                    let r = req(cpu, mem, gpus);
                    let got = dominant_share(&r, &node());
                    if cpu.is_none() && mem.is_none() {
                        assert_eq!(got, None, "{r:?}");
                        continue;
                    }
                    let want = [
                        cpu.unwrap_or(0.0) / 8.0,
                        mem.unwrap_or(0.0) / 32.0,
                        gpus.unwrap_or(0.0) / 2.0,
                    ]
                    .into_iter()
                    .fold(0.0, f64::max)
                    .min(1.0);
                    assert_eq!(got, Some(want), "{r:?}");
                }
            }
        }
    }

    #[test]
    fn instance_sizes_parse_and_price_pods() {
        let file = FILE.replace(
            "hourly = 0.526\n",
            "hourly = 0.526\ncpu = 4\nmemory = \"16Gi\"\ngpu = 1\n\n\
             [instance_types.\"m5.2xlarge\"]\nhourly = 0.384\ncpu = 8\nmemory = 34359738368\n",
        );
        let p = Pricing::from_toml(&file, "p.toml").unwrap();
        let g4 = p.instances["g4dn.xlarge"];
        assert_eq!(
            (g4.cpu, g4.memory, g4.gpu),
            (Some(4.0), Some(16.0 * GI), Some(1.0))
        );
        assert_eq!(p.instances["m5.2xlarge"].memory, Some(32.0 * GI));
        // 2 of 8 cores, 4 of 32 GiB: a quarter of 0.384
        let r = req(Some(2.0), Some(4.0), None);
        assert_eq!(p.pod_price("m5.2xlarge", &r), Some(0.096));
        assert_eq!(p.pod_price("c5.large", &r), None);
        // the profile price is unchanged
        assert_eq!(p.price("gpu"), Some(0.263));
        for (bad, at) in [
            (
                "memory = \"lots\"",
                "p.toml:17:1: instance_types.\"g4dn.xlarge\".memory:",
            ),
            (
                "memory = -5",
                "p.toml:17:1: instance_types.\"g4dn.xlarge\".memory:",
            ),
            (
                "cpu = 0\nmemory = 1",
                "p.toml:16:1: instance_types.\"g4dn.xlarge\".cpu:",
            ),
        ] {
            let f = FILE.replace("hourly = 0.526\n", &format!("hourly = 0.526\n{bad}\n"));
            let f = if bad.starts_with("cpu") {
                f
            } else {
                f.replace("hourly = 0.526\n", "hourly = 0.526\ncpu = 4\n")
            };
            let e = refused(&f);
            assert!(e.starts_with(at), "{bad}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn the_example_pricing_file_parses_with_its_instance_sizes() {
        let text = include_str!("../../examples/pricing.toml");
        let p = Pricing::from_toml(text, "examples/pricing.toml").unwrap();
        let m5 = p.instances["m5.2xlarge"];
        assert_eq!((m5.cpu, m5.memory), (Some(8.0), Some(32.0 * GI)));
        assert_eq!(p.instances["g4dn.xlarge"].gpu, Some(1.0));
    }
}
