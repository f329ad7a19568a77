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

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::agent::config::{invalid_key, parse_duration, toml_from_str};

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
    pub fn load(path: &Path) -> Result<Pricing, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    pub fn from_toml(text: &str, name: &str) -> Result<Pricing, String> {
        let raw: Raw = toml_from_str(text, name)?;
        raw.validate()
            .map_err(|(key, why)| invalid_key(text, name, &key, &why))
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

type Invalid = (String, String);

impl Raw {
    fn validate(self) -> Result<Pricing, Invalid> {
        let bad = |k: String, why: &str| Err((k, why.to_string()));
        let mut p = Pricing {
            currency: self.currency,
            ..Pricing::default()
        };
        if let Some(t) = self.idle_timeout {
            p.idle_timeout = parse_duration(&t).map_err(|e| ("idle_timeout".to_string(), e))?;
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
            if !(it.hourly.is_finite() && it.hourly >= 0.0) {
                return bad(
                    format!("instance_types.{name}.hourly"),
                    "must be a price ≥ 0",
                );
            }
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
        let e = Pricing::from_toml(&FILE.replace("0.526", "\"x\""), "p.toml").unwrap_err();
        assert!(e.starts_with("p.toml:15:10:"), "{e}");
        let e = Pricing::from_toml(
            &FILE.replace("\"g4dn.xlarge\"\nnode", "\"m5\"\nnode"),
            "p.toml",
        )
        .unwrap_err();
        assert!(
            e.starts_with("p.toml:10:1: profiles.gpu.instance_type:"),
            "{e}"
        );
        let e = Pricing::from_toml(
            &FILE.replace("default_profile = \"small\"", "default_profile = \"xl\""),
            "p.toml",
        )
        .unwrap_err();
        assert!(e.starts_with("p.toml:2:1: default_profile:"), "{e}");
        assert!(!e.contains('\n'));
    }
}
