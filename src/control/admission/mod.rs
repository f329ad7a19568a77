//! Profile quotas: the policy file and the pure admission decision.
//!
//! The policy (TOML, named by `[admission] policy` in the agent config):
//!
//! ```toml
//! on_error = "deny"            # when hubpulse cannot judge (hub API or lake failing): "allow" | "deny"
//! default_profile = "small"    # the profile of a spawn without user_options.profile
//! grace = "10m"                # the quota loop stops a violating server after this long
//!
//! [profiles.gpu]
//! groups = ["data-science", "analyst"]   # only these groups may start it (absent: everyone)
//! max_running = 4                        # servers of this profile running at once
//! class = "gpu"                          # budget class (default: the profile's own name)
//!
//! [groups.students]
//! max_running = 10                       # servers the group's members run at once
//!
//! [budgets]
//! user_hours = 300                       # server-hours per user per calendar month (UTC)
//! [budgets.classes.gpu]
//! user_hours = 20                        # GPU server-hours per user per month
//! group_hours = { data-science = 400 }   # ... per group (its members' sum)
//! ```
//!
//! [`admit`] is pure: it takes the request, the servers running now and the month's usage, and
//! answers allow or deny with a sentence a user can act on.
//!
//! # Guarantees
//! - Every deny names the rule that denied it and the numbers involved.
//! - The requesting server itself is never counted against its own limits.

pub mod view;
pub mod wait;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::control::ControlError;

use serde::Deserialize;

/// Why a spawn is allowed, refused or asked to wait: a bounded vocabulary (a metric label and
/// the `decisions` row's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Allowed,
    ProfileForbidden,
    ProfileLimit,
    GroupLimit,
    OverBudget,
    /// The policy could not be applied (the lake could not be read and `on_error` decided).
    PolicyError,
    /// Allowed, but the cluster has no room for it now (`wait`).
    NoCapacity,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::ProfileForbidden => "profile_forbidden",
            Reason::ProfileLimit => "profile_limit",
            Reason::GroupLimit => "group_limit",
            Reason::OverBudget => "over_budget",
            Reason::PolicyError => "policy_error",
            Reason::NoCapacity => "no_capacity",
        }
    }
}

/// The answer to one spawn: the `decisions` row's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    /// Allowed, but the cluster has no room for it now: try again later.
    Wait,
}

impl Action {
    pub fn label(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Wait => "wait",
        }
    }
}

/// One admission answer as the `decisions` table records it.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionDecision {
    pub user: String,
    pub server: String,
    pub profile: String,
    pub action: Action,
    pub reason: Reason,
}

impl crate::control::decisions::Decided for AdmissionDecision {
    const COMPONENT: crate::control::decisions::Component =
        crate::control::decisions::Component::Admission;

    fn action(&self) -> &'static str {
        self.action.label()
    }

    fn reason(&self) -> &'static str {
        self.reason.label()
    }

    fn subject(&self) -> crate::control::decisions::Subject<'_> {
        crate::control::decisions::Subject {
            user: &self.user,
            server: Some(&self.server),
            profile: Some(&self.profile),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    Allow,
    #[default]
    Deny,
}

impl OnError {
    pub fn label(self) -> &'static str {
        match self {
            OnError::Allow => "allow",
            OnError::Deny => "deny",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProfileRule {
    pub groups: Option<BTreeSet<String>>,
    pub max_running: Option<usize>,
    pub class: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    pub max_running: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub user_hours: Option<f64>,
    #[serde(default)]
    pub group_hours: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    pub user_hours: Option<f64>,
    #[serde(default)]
    pub classes: BTreeMap<String, Budget>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    on_error: OnError,
    default_profile: Option<String>,
    grace: Option<String>,
    #[serde(default)]
    profiles: BTreeMap<String, ProfileRule>,
    #[serde(default)]
    groups: BTreeMap<String, GroupRule>,
    #[serde(default)]
    budgets: Budgets,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub on_error: OnError,
    pub default_profile: Option<String>,
    pub grace: Duration,
    pub profiles: BTreeMap<String, ProfileRule>,
    pub groups: BTreeMap<String, GroupRule>,
    pub budgets: Budgets,
}

impl Policy {
    /// Reads and validates a policy file.
    ///
    /// # Errors
    /// One line `FILE:LINE:COL: why` (or `FILE: why`).
    pub fn load(path: &Path) -> Result<Policy, ControlError> {
        let text = std::fs::read_to_string(path).map_err(|source| ControlError::PolicyRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and validates a policy; `name` is used in error messages.
    ///
    /// # Errors
    /// [`ControlError::PolicyInvalid`]: one line `NAME:LINE:COL: why` (or `NAME: why`).
    pub fn parse(text: &str, name: &str) -> Result<Policy, ControlError> {
        Self::parse_raw(text, name).map_err(ControlError::PolicyInvalid)
    }

    fn parse_raw(text: &str, name: &str) -> Result<Policy, String> {
        let raw: RawPolicy =
            crate::config::toml::toml_from_str(text, name).map_err(|e| e.to_string())?;
        let grace = match &raw.grace {
            None => Duration::from_secs(600),
            Some(g) => crate::config::units::parse_duration(g)
                .map_err(|e| format!("{name}: grace: {e}"))?,
        };
        let bad_hours = |h: f64| !(h.is_finite() && h >= 0.0);
        if raw.budgets.user_hours.is_some_and(bad_hours)
            || raw.budgets.classes.values().any(|b| {
                b.user_hours.is_some_and(bad_hours) || b.group_hours.values().any(|h| bad_hours(*h))
            })
        {
            return Err(format!("{name}: budgets: hours must be finite and >= 0"));
        }
        Ok(Policy {
            on_error: raw.on_error,
            default_profile: raw.default_profile,
            grace,
            profiles: raw.profiles,
            groups: raw.groups,
            budgets: raw.budgets,
        })
    }

    /// The profile a spawn runs: its own, else the policy's default, else `""`.
    pub fn profile_of<'a>(&'a self, requested: Option<&'a str>) -> &'a str {
        requested
            .filter(|p| !p.is_empty())
            .or(self.default_profile.as_deref())
            .unwrap_or("")
    }

    /// The budget class of a profile (its `class`, else its name).
    pub fn class_of<'a>(&'a self, profile: &'a str) -> &'a str {
        self.profiles
            .get(profile)
            .and_then(|r| r.class.as_deref())
            .unwrap_or(profile)
    }
}

/// A spawn asking to be admitted.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Request {
    pub user: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub profile: Option<String>,
    #[serde(default)]
    pub server_name: String,
}

/// A running (or pending) server, as the hub lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    pub user: String,
    pub server: String,
    pub profile: String,
    pub groups: Vec<String>,
    /// The hub's `started` for the server (what its usage this month is counted from).
    pub started: Option<chrono::DateTime<chrono::Utc>>,
}

/// Server-hours used this month, by user and by (class, user).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub user: BTreeMap<String, f64>,
    pub class_user: BTreeMap<(String, String), f64>,
    /// Group members from the hub (`GET /groups`, `read:groups`), read only when the policy
    /// has group budgets; members with no running server count through it.
    pub group_members: BTreeMap<String, BTreeSet<String>>,
}

impl Usage {
    fn class_group(&self, class: &str, members: &BTreeSet<&str>) -> f64 {
        self.class_user
            .iter()
            .filter(|((c, u), _)| c == class && members.contains(u.as_str()))
            .map(|(_, h)| h)
            .sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub allow: bool,
    pub reason: Reason,
    pub message: String,
    pub profile: String,
}

/// A group's members: from the hub's group list when read, plus what the running servers and
/// the request show.
fn members<'a>(
    group: &str,
    req: &'a Request,
    running: &'a [Running],
    usage: &'a Usage,
) -> BTreeSet<&'a str> {
    let mut m: BTreeSet<&str> = running
        .iter()
        .filter(|r| r.groups.iter().any(|g| g == group))
        .map(|r| r.user.as_str())
        .collect();
    if req.groups.iter().any(|g| g == group) {
        m.insert(&req.user);
    }
    m.extend(
        usage
            .group_members
            .get(group)
            .into_iter()
            .flatten()
            .map(String::as_str),
    );
    m
}

/// Allow or deny one spawn. `usage` is `None` when the lake could not be read (budgets are then
/// not checked: the caller applies `on_error` if the policy has budgets).
pub fn admit(p: &Policy, req: &Request, running: &[Running], usage: &Usage) -> Answer {
    let profile = p.profile_of(req.profile.as_deref()).to_string();
    let deny = |reason: Reason, message: String| Answer {
        allow: false,
        reason,
        message,
        profile: profile.clone(),
    };
    let others: Vec<&Running> = running
        .iter()
        .filter(|r| !(r.user == req.user && r.server == req.server_name))
        .collect();
    if let Some(rule) = p.profiles.get(&profile) {
        if let Some(allowed) = &rule.groups
            && !req.groups.iter().any(|g| allowed.contains(g))
        {
            let list: Vec<&str> = allowed.iter().map(String::as_str).collect();
            return deny(
                Reason::ProfileForbidden,
                format!(
                    "The profile '{profile}' is limited to members of: {}. Choose another profile or ask to join one of these groups.",
                    list.join(", ")
                ),
            );
        }
        if let Some(max) = rule.max_running {
            let n = others.iter().filter(|r| r.profile == profile).count();
            if n >= max {
                return deny(
                    Reason::ProfileLimit,
                    format!(
                        "All {max} '{profile}' servers are in use ({n} running). Try again later or choose another profile."
                    ),
                );
            }
        }
    }
    for g in &req.groups {
        if let Some(max) = p.groups.get(g).and_then(|r| r.max_running) {
            let n = others.iter().filter(|r| r.groups.contains(g)).count();
            if n >= max {
                return deny(
                    Reason::GroupLimit,
                    format!(
                        "Your group '{g}' already runs {n} servers (its limit is {max}). Stop one or try again later."
                    ),
                );
            }
        }
    }
    if let Some(m) = over_budget(p, req, &profile, running, usage) {
        return deny(Reason::OverBudget, m);
    }
    Answer {
        allow: true,
        reason: Reason::Allowed,
        message: format!("'{profile}' allowed"),
        profile,
    }
}

/// The budget a user's server of `profile` breaks, as a sentence.
pub fn over_budget(
    p: &Policy,
    req: &Request,
    profile: &str,
    running: &[Running],
    usage: &Usage,
) -> Option<String> {
    let used = usage.user.get(&req.user).copied().unwrap_or(0.0);
    if let Some(limit) = p.budgets.user_hours
        && used >= limit
    {
        return Some(format!(
            "You have used {used:.1} of your {limit} server-hours this month."
        ));
    }
    let class = p.class_of(profile);
    let b = p.budgets.classes.get(class)?;
    let used = usage
        .class_user
        .get(&(class.to_string(), req.user.clone()))
        .copied()
        .unwrap_or(0.0);
    if let Some(limit) = b.user_hours
        && used >= limit
    {
        return Some(format!(
            "You have used {used:.1} of your {limit} '{class}' server-hours this month."
        ));
    }
    for g in &req.groups {
        if let Some(limit) = b.group_hours.get(g) {
            let used = usage.class_group(class, &members(g, req, running, usage));
            if used >= *limit {
                return Some(format!(
                    "Your group '{g}' has used {used:.1} of its {limit} '{class}' server-hours this month."
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const POLICY: &str = r#"
default_profile = "small"
[profiles.gpu]
groups = ["data-science", "analyst"]
max_running = 1
[groups.students]
max_running = 2
[budgets]
user_hours = 100
[budgets.classes.gpu]
user_hours = 10
group_hours = { data-science = 15 }
"#;

    fn req(user: &str, groups: &[&str], profile: Option<&str>) -> Request {
        Request {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            profile: profile.map(String::from),
            server_name: String::new(),
        }
    }

    fn run(user: &str, profile: &str, groups: &[&str]) -> Running {
        Running {
            user: user.into(),
            server: String::new(),
            profile: profile.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            started: None,
        }
    }

    #[test]
    fn groups_limits_and_budgets() {
        let p = Policy::parse(POLICY, "p.toml").unwrap();
        let u = Usage::default();
        let a = admit(&p, &req("eve", &["students"], Some("gpu")), &[], &u);
        assert_eq!((a.allow, a.reason), (false, Reason::ProfileForbidden));
        assert!(a.message.contains("analyst, data-science"), "{}", a.message);
        let a = admit(&p, &req("ann", &["analyst"], Some("gpu")), &[], &u);
        assert!(a.allow);
        // The requesting server itself does not count; another gpu server does.
        let a = admit(
            &p,
            &req("ann", &["analyst"], Some("gpu")),
            &[run("ann", "gpu", &[])],
            &u,
        );
        assert!(a.allow);
        let a = admit(
            &p,
            &req("ann", &["analyst"], Some("gpu")),
            &[run("bo", "gpu", &[])],
            &u,
        );
        assert_eq!(a.reason, Reason::ProfileLimit);
        let two = [
            run("s1", "small", &["students"]),
            run("s2", "small", &["students"]),
        ];
        let a = admit(&p, &req("s3", &["students"], None), &two, &u);
        assert_eq!(
            (a.reason, a.profile.as_str()),
            (Reason::GroupLimit, "small")
        );
        let mut u = Usage::default();
        u.class_user.insert(("gpu".into(), "ann".into()), 10.0);
        let a = admit(&p, &req("ann", &["analyst"], Some("gpu")), &[], &u);
        assert_eq!(a.reason, Reason::OverBudget);
        assert!(a.message.contains("10.0 of your 10 'gpu'"), "{}", a.message);
        assert!(admit(&p, &req("ann", &["analyst"], Some("small")), &[], &u).allow);
        u.class_user.insert(("gpu".into(), "dan".into()), 9.0);
        let running = [run("dan", "small", &["data-science"])];
        let a = admit(
            &p,
            &req("dee", &["data-science"], Some("gpu")),
            &running,
            &u,
        );
        assert!(a.allow, "{a:?}");
        u.class_user.insert(("gpu".into(), "dee".into()), 6.0);
        let a = admit(
            &p,
            &req("dee", &["data-science"], Some("gpu")),
            &running,
            &u,
        );
        assert!(a.message.contains("group 'data-science'"), "{}", a.message);
        // A member with nothing running counts once the hub's group list is known.
        let mut u = Usage::default();
        u.class_user.insert(("gpu".into(), "dan".into()), 9.0);
        u.class_user.insert(("gpu".into(), "dee".into()), 6.0);
        let alone = req("dee", &["data-science"], Some("gpu"));
        assert!(admit(&p, &alone, &[], &u).allow);
        u.group_members
            .insert("data-science".into(), ["dan".to_string()].into());
        assert_eq!(admit(&p, &alone, &[], &u).reason, Reason::OverBudget);
    }

    #[test]
    fn the_example_policy_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contrib/quota-policy.example.toml"
        );
        let p = Policy::load(Path::new(path)).unwrap();
        assert_eq!(p.class_of("gpu"), "gpu");
        assert_eq!(p.grace, Duration::from_secs(600));
    }

    #[test]
    fn a_bad_policy_is_one_line_with_a_position() {
        let e = Policy::parse("[profiles.gpu]\ngroupz = []\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.toml:2:1: unknown field `groupz`"), "{e}");
        assert!(!e.contains('\n'));
    }
}
