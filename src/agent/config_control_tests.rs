//! The control loops' sections (`[hub]`, `[culler]`, `[admission]`, `[capacity]`) read through
//! the agent's whole config file: what they become and where their errors point.

#![allow(clippy::unwrap_used)]

use super::AgentConfig;

use std::time::Duration;

const BASE: &str = "[lake]\npath = \"/tmp/l\"\n[[files]]\ninclude = [\"/tmp/x.log\"]\n";

#[test]
fn the_culler_section_becomes_a_policy() {
    let t = format!(
        "{BASE}[hub]\napi_url = \"http://hub:8081/hub/api\"\n[culler]\ntimeout = \"1h\"\n\
         profile_timeouts = {{ gpu = \"30m\" }}\nexempt_servers = [\"keep-*\"]\ndry_run = true\n"
    );
    let c = AgentConfig::from_toml(&t, "a.toml").unwrap();
    let p = c.control.culler.unwrap();
    assert_eq!(p.timeout, Duration::from_secs(3600));
    assert_eq!(p.profile_timeouts["gpu"], Duration::from_secs(1800));
    assert!(p.dry_run && p.exempt_servers[0].matches("keep-me"));
    assert_eq!(p.reconcile_every, Duration::from_secs(300));
    let off = format!("{BASE}[culler]\nenabled = false\n");
    assert!(
        AgentConfig::from_toml(&off, "a.toml")
            .unwrap()
            .control
            .culler
            .is_none()
    );
}

#[test]
fn a_bad_culler_value_is_one_line_with_its_position() {
    let t = format!("{BASE}[culler]\ntimeout = \"10s\"\nmax_cull_fraction = 1.5\n");
    let e = AgentConfig::from_toml(&t, "a.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(e, "a.toml:7:1: culler.max_cull_fraction: must be in (0, 1]");
    let t = format!("{BASE}[culler]\ntimeout = \"ten\"\n");
    let e = AgentConfig::from_toml(&t, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("a.toml:6:1: culler.timeout: invalid duration"),
        "{e}"
    );
    let t = format!("{BASE}[culler]\ntimout = \"10s\"\n");
    let e = AgentConfig::from_toml(&t, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("a.toml:6:1: unknown field `timout`"), "{e}");
    let t = format!("{BASE}[admission]\npolicy = \"/nonexistent/p.toml\"\n");
    let e = AgentConfig::from_toml(&t, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("a.toml:6:1: admission.policy: /nonexistent/p.toml: no such file"),
        "{e}"
    );
}

#[test]
fn capacity_wait_is_opt_in_and_bad_values_are_one_line_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "default_profile = \"small\"\n").unwrap();
    let base = format!(
        "{BASE}[http]\nlisten = \"127.0.0.1:0\"\n[pods]\nnamespace = \"jhub\"\n[admission]\npolicy = {policy:?}\n"
    );
    let c = AgentConfig::from_toml(&base, "a.toml").unwrap();
    assert_eq!(c.control.admission.unwrap().wait, None, "off unless asked");
    let t = format!("{base}capacity_wait = true\nscale_up_time = \"7m\"\n");
    let w = AgentConfig::from_toml(&t, "a.toml")
        .unwrap()
        .control
        .admission
        .unwrap()
        .wait
        .unwrap();
    assert_eq!(w.scale_up, chrono::Duration::minutes(7));
    let t = format!("{base}capacity_wait = true\nscale_up_time = \"3h\"\n");
    let e = AgentConfig::from_toml(&t, "a.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "a.toml:12:1: admission.scale_up_time: must be between 10s and 2h"
    );
    let t = format!("{base}capacity_wait = true\nscale_up_time = \"soon\"\n");
    let e = AgentConfig::from_toml(&t, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("a.toml:12:1: admission.scale_up_time: invalid duration"),
        "{e}"
    );
    let t = format!("{base}capacity_wait = \"yes\"\n");
    let e = AgentConfig::from_toml(&t, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("a.toml:11:17: "), "{e}");
    assert!(!e.contains('\n'), "{e}");
    let no_source = t
        .replace("capacity_wait = \"yes\"", "capacity_wait = true")
        .replace("[pods]\nnamespace = \"jhub\"\n", "");
    let e = AgentConfig::from_toml(&no_source, "a.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "a.toml:9:1: admission.capacity_wait: needs [pods] or [capacity] to see pods waiting for room"
    );
}

#[test]
fn capacity_forecast_needs_capacity_wait_and_a_capacity_section() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.toml");
    std::fs::write(&policy, "default_profile = \"small\"\n").unwrap();
    let base = format!(
        "{BASE}[http]\nlisten = \"127.0.0.1:0\"\n[pods]\nnamespace = \"jhub\"\n[admission]\npolicy = {policy:?}\n"
    );
    let e = AgentConfig::from_toml(&format!("{base}capacity_forecast = true\n"), "a.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "a.toml:11:1: admission.capacity_forecast: needs capacity_wait = true (it extends the wait answer)"
    );
    let t = format!("{base}capacity_wait = true\ncapacity_forecast = true\n");
    let e = AgentConfig::from_toml(&t, "a.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "a.toml:12:1: admission.capacity_forecast: needs [capacity]: the forecast comes from the placeholder loop"
    );
    let t = format!("{t}[capacity]\nnamespace = \"jhub\"\n");
    let c = AgentConfig::from_toml(&t, "a.toml").unwrap();
    assert!(c.control.admission.unwrap().wait.unwrap().forecast);
}

#[test]
fn an_agent_config_error_points_at_the_capacity_key() {
    let text = "[lake]\npath = \"/tmp/l\"\n[stdin]\nenabled = true\n\
                [capacity]\nnamespace = \"jhub\"\nquantile = 2.0\n";
    let e = AgentConfig::from_toml(text, "hubpulse.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "hubpulse.toml:7:1: capacity.quantile: 2: must be in [0, 1]"
    );
    let text = text.replace("quantile = 2.0", "quantile = 0.5");
    let c = AgentConfig::from_toml(&text, "hubpulse.toml").unwrap();
    assert_eq!(c.capacity.unwrap().forecast.quantile, 0.5);
}

#[test]
fn an_agent_config_error_in_a_set_points_at_its_line() {
    let text = "[lake]\npath = \"/tmp/l\"\n[stdin]\nenabled = true\n\
                [capacity]\nnamespace = \"jhub\"\n\
                [[capacity.placeholders]]\nstatefulset = \"a\"\n\
                [[capacity.placeholders]]\nstatefulset = \"b\"\nheadroom = 20.0\n";
    let e = AgentConfig::from_toml(text, "hubpulse.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "hubpulse.toml:11:1: capacity.placeholders[1].headroom: 20: must be in [0, 10]"
    );
}

#[test]
fn the_hub_url_is_parsed_once_and_refused_with_credentials_without_echoing_them() {
    let ok = format!("{BASE}[hub]\napi_url = \"http://hub:8081/hub/api?x=1#f\"\n");
    let c = AgentConfig::from_toml(&ok, "a.toml").unwrap();
    let url = c.control.hub.unwrap().api_url.unwrap();
    assert_eq!(url.as_str(), "http://hub:8081/hub/api");
    let secret = format!("{BASE}[hub]\napi_url = \"http://bob:hunter2@hub/hub/api\"\n");
    let e = AgentConfig::from_toml(&secret, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("hub.api_url") && e.contains("credentials"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "{e}");
    let ftp = format!("{BASE}[hub]\napi_url = \"ftp://hub/api\"\n");
    let e = AgentConfig::from_toml(&ftp, "a.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("hub.api_url: \"ftp://hub/api\" is not an http(s) URL"),
        "{e}"
    );
}
