//! The `[capacity]` config section: the forecast, the placeholder StatefulSet and its policy.
//!
//! ```toml
//! [capacity]
//! namespace = "jhub"                 # required: where the hub and the placeholders run
//! statefulset = "user-placeholder"   # Z2JH's name with the default fullnameOverride
//! user_pods = "component=singleuser-server"
//! # profile = "gpu"                  # a set per profile: that profile's forecast (its slug)
//! # log_profile = "GPU (large)"      # the profile's display name in the hub's log, if not the slug
//! default_profile = "default"        # sessions whose profile the log does not name
//! min_replicas = 0
//! max_replicas = 10
//! look_ahead = "1h"
//! headroom = 0.1
//! cooldown = "30m"
//! every = "1m"
//! dry_run = true
//! history_weeks = 8
//! quantile = 0.9
//! trend_weeks = 2
//! trend_min = 0.5
//! trend_max = 2.0
//! ```
//!
//! A placeholder set per profile: instead of `statefulset`/`profile`, one
//! `[[capacity.placeholders]]` table per set (the section's keys are the defaults of each set's
//! `min_replicas`, `max_replicas`, `look_ahead`, `headroom`, `cooldown`, `dry_run`):
//!
//! ```toml
//! [[capacity.placeholders]]
//! statefulset = "user-placeholder"          # required, unique
//! # profile: none = all servers
//! [[capacity.placeholders]]
//! statefulset = "user-placeholder-gpu"
//! profile = "gpu"
//! log_profile = "GPU (large)"   # how the hub's log names it (the forecast's key), if not "gpu"
//! user_pods = "component=singleuser-server,hub.jupyter.org/profile=gpu"  # its pods (default: all)
//! min_replicas = 0
//! max_replicas = 2
//! ```
//!
//! Each set subtracts the user pods its `user_pods` selector lists from its profile's forecast:
//! give a profile's pods a label of their own (KubeSpawner `extra_labels` in the profile's
//! `kubespawner_override`) and select it, or every running server counts against every
//! profile.
//!
//! Errors are `(key, why)` pairs; the agent config turns them into `FILE:LINE:COL: key: why`.

use std::time::Duration;

use serde::Deserialize;

use crate::config::units::parse_duration;
use crate::control::capacity::forecast::ForecastPolicy;
use crate::control::capacity::placeholder::PlaceholderPolicy;
use crate::control::capacity::runner::Target;

type KeyErr = (String, String);

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCapacity {
    enabled: Option<bool>,
    namespace: Option<String>,
    statefulset: Option<String>,
    user_pods: Option<String>,
    profile: Option<String>,
    log_profile: Option<String>,
    default_profile: Option<String>,
    min_replicas: Option<i32>,
    max_replicas: Option<i32>,
    look_ahead: Option<String>,
    headroom: Option<f64>,
    cooldown: Option<String>,
    every: Option<String>,
    dry_run: Option<bool>,
    history_weeks: Option<u32>,
    quantile: Option<f64>,
    trend_weeks: Option<u32>,
    trend_min: Option<f64>,
    trend_max: Option<f64>,
    placeholders: Option<Vec<RawSet>>,
}

/// One `[[capacity.placeholders]]` table.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawSet {
    statefulset: Option<String>,
    profile: Option<String>,
    log_profile: Option<String>,
    user_pods: Option<String>,
    min_replicas: Option<i32>,
    max_replicas: Option<i32>,
    look_ahead: Option<String>,
    headroom: Option<f64>,
    cooldown: Option<String>,
    dry_run: Option<bool>,
}

/// One placeholder StatefulSet and its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaceholderSet {
    pub target: Target,
    pub policy: PlaceholderPolicy,
}

/// The validated section.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityConfig {
    /// The placeholder sets, each with its own policy (one without `[[capacity.placeholders]]`).
    pub sets: Vec<PlaceholderSet>,
    pub default_profile: String,
    pub forecast: ForecastPolicy,
    /// Time between cycles.
    pub every: Duration,
}

fn key(k: &str) -> String {
    format!("capacity.{k}")
}

fn dur(k: &str, v: &Option<String>, default: Duration) -> Result<Duration, KeyErr> {
    v.as_deref()
        .map_or(Ok(default), parse_duration)
        .map_err(|e| (key(k), e.to_string()))
}

fn chrono_dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A set's policy: its keys, else `d`'s; `at` prefixes the keys in errors.
fn set_policy(r: &RawSet, d: &PlaceholderPolicy, at: &str) -> Result<PlaceholderPolicy, KeyErr> {
    let k = |n: &str| format!("{at}{n}");
    let min = r.min_replicas.unwrap_or(d.min_replicas);
    let max = r.max_replicas.unwrap_or(d.max_replicas);
    if min < 0 {
        return Err((key(&k("min_replicas")), format!("{min}: must be 0 or more")));
    }
    if max < min {
        return Err((
            key(&k("max_replicas")),
            format!("{max}: must be at least min_replicas ({min})"),
        ));
    }
    let headroom = r.headroom.unwrap_or(d.headroom);
    if !(0.0..=10.0).contains(&headroom) {
        return Err((
            key(&k("headroom")),
            format!("{headroom}: must be in [0, 10]"),
        ));
    }
    let std = |c: chrono::Duration| c.to_std().unwrap_or(Duration::ZERO);
    let profile = r.profile.clone().or_else(|| d.profile.clone());
    let log_profile = r.log_profile.clone().or_else(|| d.log_profile.clone());
    if log_profile.is_some() && profile.is_none() {
        return Err((
            key(&k("log_profile")),
            "needs profile (the slug admission sees; log_profile is how the log names it)".into(),
        ));
    }
    Ok(PlaceholderPolicy {
        profile,
        log_profile,
        min_replicas: min,
        max_replicas: max,
        look_ahead: chrono_dur(dur(&k("look_ahead"), &r.look_ahead, std(d.look_ahead))?),
        headroom,
        cooldown: chrono_dur(dur(&k("cooldown"), &r.cooldown, std(d.cooldown))?),
        dry_run: r.dry_run.unwrap_or(d.dry_run),
    })
}

/// Validates `[capacity]`; `None` when absent or `enabled = false`.
///
/// # Errors
/// The first bad key and why.
pub fn validate(raw: Option<RawCapacity>) -> Result<Option<CapacityConfig>, KeyErr> {
    let Some(r) = raw else { return Ok(None) };
    if r.enabled == Some(false) {
        return Ok(None);
    }
    let namespace = r.namespace.filter(|n| !n.is_empty()).ok_or_else(|| {
        (
            key("namespace"),
            "required: the namespace of the hub and its user-placeholder StatefulSet".into(),
        )
    })?;
    let fd = ForecastPolicy::default();
    let quantile = r.quantile.unwrap_or(fd.quantile);
    if !(0.0..=1.0).contains(&quantile) {
        return Err((key("quantile"), format!("{quantile}: must be in [0, 1]")));
    }
    let weeks = r.history_weeks.unwrap_or(fd.weeks);
    if !(1..=104).contains(&weeks) {
        return Err((key("history_weeks"), format!("{weeks}: must be 1 to 104")));
    }
    let trend_weeks = r.trend_weeks.unwrap_or(fd.trend_weeks);
    if trend_weeks == 0 || trend_weeks > weeks {
        return Err((
            key("trend_weeks"),
            format!("{trend_weeks}: must be 1 to history_weeks ({weeks})"),
        ));
    }
    let (tmin, tmax) = (
        r.trend_min.unwrap_or(fd.trend_min),
        r.trend_max.unwrap_or(fd.trend_max),
    );
    if !(tmin > 0.0 && tmin <= 1.0) {
        return Err((key("trend_min"), format!("{tmin}: must be in (0, 1]")));
    }
    if !(1.0..=100.0).contains(&tmax) {
        return Err((key("trend_max"), format!("{tmax}: must be in [1, 100]")));
    }
    let every = dur("every", &r.every, Duration::from_secs(60))?;
    if every < Duration::from_secs(1) {
        return Err((key("every"), "must be at least 1s".into()));
    }
    let user_pods = r
        .user_pods
        .clone()
        .unwrap_or_else(|| "component=singleuser-server".into());
    let section = RawSet {
        statefulset: r.statefulset.clone(),
        profile: r.profile.clone(),
        log_profile: r.log_profile.clone(),
        user_pods: None,
        min_replicas: r.min_replicas,
        max_replicas: r.max_replicas,
        look_ahead: r.look_ahead.clone(),
        headroom: r.headroom,
        cooldown: r.cooldown.clone(),
        dry_run: r.dry_run,
    };
    let defaults = set_policy(&section, &PlaceholderPolicy::default(), "")?;
    let sets = match &r.placeholders {
        None => vec![PlaceholderSet {
            target: Target {
                namespace: namespace.clone(),
                name: r
                    .statefulset
                    .clone()
                    .unwrap_or_else(|| "user-placeholder".into()),
                user_pods: user_pods.clone(),
            },
            policy: defaults,
        }],
        Some(list) => {
            for (k, v) in [
                ("statefulset", &r.statefulset),
                ("profile", &r.profile),
                ("log_profile", &r.log_profile),
            ] {
                if v.is_some() {
                    return Err((
                        key(k),
                        "set it in each [[capacity.placeholders]] instead (not both)".into(),
                    ));
                }
            }
            if list.is_empty() {
                return Err((
                    key("placeholders"),
                    "empty: leave it out for one user-placeholder set".into(),
                ));
            }
            let mut sets: Vec<PlaceholderSet> = Vec::new();
            for (i, raw) in list.iter().enumerate() {
                let at = format!("placeholders[{i}].");
                let name = raw
                    .statefulset
                    .clone()
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        (
                            key(&format!("{at}statefulset")),
                            "required: the placeholder StatefulSet's name".into(),
                        )
                    })?;
                if sets.iter().any(|s| s.target.name == name) {
                    return Err((
                        key(&format!("{at}statefulset")),
                        format!("{name:?} is already another set"),
                    ));
                }
                sets.push(PlaceholderSet {
                    target: Target {
                        namespace: namespace.clone(),
                        name,
                        user_pods: raw.user_pods.clone().unwrap_or_else(|| user_pods.clone()),
                    },
                    policy: set_policy(raw, &defaults, &at)?,
                });
            }
            sets
        }
    };
    Ok(Some(CapacityConfig {
        sets,
        default_profile: r.default_profile.unwrap_or_else(|| "default".into()),
        forecast: ForecastPolicy {
            weeks,
            quantile,
            trend_weeks,
            trend_min: tmin,
            trend_max: tmax,
        },
        every,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<Option<CapacityConfig>, KeyErr> {
        let raw: RawCapacity = toml::from_str(text).map_err(|e| ("toml".into(), e.to_string()))?;
        validate(Some(raw))
    }

    #[test]
    fn defaults_fill_everything_but_the_namespace() {
        let c = parse("namespace = \"jhub\"").unwrap().unwrap();
        assert_eq!(c.sets.len(), 1);
        assert_eq!(c.sets[0].target.name, "user-placeholder");
        assert_eq!(c.sets[0].target.user_pods, "component=singleuser-server");
        assert_eq!(c.sets[0].policy, PlaceholderPolicy::default());
        assert_eq!(c.forecast, ForecastPolicy::default());
        assert_eq!(c.every, Duration::from_secs(60));
        assert_eq!(parse("enabled = false").unwrap(), None);
        assert_eq!(validate(None).unwrap(), None);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |t: &str| parse(&format!("namespace = \"jhub\"\n{t}")).unwrap_err().0;
        assert_eq!(parse("").unwrap_err().0, "capacity.namespace");
        assert_eq!(err("quantile = 1.5"), "capacity.quantile");
        assert_eq!(
            err("min_replicas = 4\nmax_replicas = 2"),
            "capacity.max_replicas"
        );
        assert_eq!(err("min_replicas = -1"), "capacity.min_replicas");
        assert_eq!(err("trend_weeks = 9"), "capacity.trend_weeks");
        assert_eq!(err("trend_min = 0"), "capacity.trend_min");
        assert_eq!(err("cooldown = \"soon\""), "capacity.cooldown");
        assert_eq!(err("every = \"0s\""), "capacity.every");
        assert!(parse("namespace = \"jhub\"\nreplicas = 3").is_err());
    }

    #[test]
    fn a_full_section_is_taken_as_written() {
        let c = parse(
            "namespace = \"jhub\"\nstatefulset = \"gpu-placeholder\"\nprofile = \"GPU\"\n\
             min_replicas = 1\nmax_replicas = 4\nlook_ahead = \"90m\"\nheadroom = 0.25\n\
             cooldown = \"1h\"\nevery = \"30s\"\ndry_run = true\nhistory_weeks = 4\n\
             quantile = 0.5\ntrend_weeks = 1\ntrend_min = 0.8\ntrend_max = 1.5",
        )
        .unwrap()
        .unwrap();
        let set = &c.sets[0];
        assert_eq!(c.sets.len(), 1);
        assert_eq!(set.target.name, "gpu-placeholder");
        assert_eq!(set.policy.profile.as_deref(), Some("GPU"));
        assert_eq!((set.policy.min_replicas, set.policy.max_replicas), (1, 4));
        assert_eq!(set.policy.look_ahead, chrono::Duration::minutes(90));
        assert_eq!(set.policy.cooldown, chrono::Duration::hours(1));
        assert!(set.policy.dry_run);
        assert_eq!(
            c.forecast,
            ForecastPolicy {
                weeks: 4,
                quantile: 0.5,
                trend_weeks: 1,
                trend_min: 0.8,
                trend_max: 1.5
            }
        );
        assert_eq!(c.every, Duration::from_secs(30));
    }

    #[test]
    fn a_set_per_profile_takes_the_section_keys_as_defaults() {
        let c = parse(
            "namespace = \"jhub\"\nmax_replicas = 8\ncooldown = \"1h\"\ndry_run = true\n\
             [[placeholders]]\nstatefulset = \"user-placeholder\"\n\
             [[placeholders]]\nstatefulset = \"user-placeholder-gpu\"\nprofile = \"gpu\"\n\
             min_replicas = 1\nmax_replicas = 2\ndry_run = false\nlook_ahead = \"2h\"\n\
             user_pods = \"profile=gpu\"\nlog_profile = \"GPU (large)\"",
        )
        .unwrap()
        .unwrap();
        let names: Vec<&str> = c.sets.iter().map(|s| s.target.name.as_str()).collect();
        assert_eq!(names, ["user-placeholder", "user-placeholder-gpu"]);
        let (cpu, gpu) = (&c.sets[0].policy, &c.sets[1].policy);
        assert_eq!(
            (
                cpu.profile.as_deref(),
                cpu.min_replicas,
                cpu.max_replicas,
                cpu.dry_run
            ),
            (None, 0, 8, true)
        );
        assert_eq!(cpu.cooldown, chrono::Duration::hours(1));
        assert_eq!(
            (
                gpu.profile.as_deref(),
                gpu.min_replicas,
                gpu.max_replicas,
                gpu.dry_run
            ),
            (Some("gpu"), 1, 2, false)
        );
        assert_eq!(gpu.cooldown, chrono::Duration::hours(1));
        assert_eq!(gpu.look_ahead, chrono::Duration::hours(2));
        assert_eq!(c.sets[1].target.namespace, "jhub");
        assert_eq!(c.sets[0].target.user_pods, "component=singleuser-server");
        assert_eq!(c.sets[1].target.user_pods, "profile=gpu");
        assert_eq!(cpu.forecast_profile(), None);
        assert_eq!(gpu.forecast_profile(), Some("GPU (large)"));
    }

    #[test]
    fn bad_sets_name_their_key() {
        let err = |t: &str| parse(&format!("namespace = \"jhub\"\n{t}")).unwrap_err().0;
        let set = |n: &str| format!("[[placeholders]]\nstatefulset = \"{n}\"\n");
        assert_eq!(
            err(&format!("{}{}", set("a"), set("a"))),
            "capacity.placeholders[1].statefulset"
        );
        assert_eq!(
            err(&format!("{}[[placeholders]]\nprofile = \"gpu\"", set("a"))),
            "capacity.placeholders[1].statefulset"
        );
        assert_eq!(
            err(&format!("{}min_replicas = 3\nmax_replicas = 1", set("a"))),
            "capacity.placeholders[0].max_replicas"
        );
        assert_eq!(
            err(&format!("statefulset = \"x\"\n{}", set("a"))),
            "capacity.statefulset"
        );
        assert_eq!(err("placeholders = []"), "capacity.placeholders");
        assert_eq!(
            err(&format!("{}log_profile = \"GPU (large)\"", set("a"))),
            "capacity.placeholders[0].log_profile"
        );
        assert_eq!(
            err(&format!("log_profile = \"GPU\"\n{}", set("a"))),
            "capacity.log_profile"
        );
        assert_eq!(err("log_profile = \"GPU\""), "capacity.log_profile");
        assert!(parse(&format!("namespace = \"jhub\"\n{}replicas = 1", set("a"))).is_err());
    }
}
