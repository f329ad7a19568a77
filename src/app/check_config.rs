//! `hubpulse check-config FILE`: what the agent would do with a configuration, in plain words.
//!
//! Guarantees: one line per section that is on (`key  what it does`), sections that are off
//! left out; the culler's line says plainly whether it stops servers. Nothing secret is
//! printed: tokens are only ever named by where they come from (a file or an environment
//! variable), and a URL's user name and password are dropped.

use std::time::Duration;

use crate::agent::config::{AgentConfig, LogFormat, StartAt};

use super::AppError;
use super::out::Out;

/// The summary lines (without the leading `FILE: ok`).
pub fn summary(cfg: &AgentConfig) -> Vec<String> {
    let mut v = Vec::new();
    let mut row = |k: &str, s: String| v.push(format!("{k:<10} {s}"));
    agent_and_lake(cfg, &mut row);
    sources(cfg, &mut row);
    outputs(cfg, &mut row);
    control(cfg, &mut row);
    cluster(cfg, &mut row);
    v
}

/// Adds one summary line: the section's key and what it does.
type Row<'a> = dyn FnMut(&str, String) + 'a;

/// `agent` and `lake`.
fn agent_and_lake(cfg: &AgentConfig, row: &mut Row<'_>) {
    let fmt = match cfg.log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "JSON",
    };
    row(
        "agent",
        format!(
            "hub {:?}, local time zone {}, logs {} at level {}{}",
            cfg.hub,
            cfg.tz,
            fmt,
            cfg.log_level,
            cfg.parsers
                .as_ref()
                .map(|p| format!(", message catalogue {}", p.display()))
                .unwrap_or_default()
        ),
    );
    let l = &cfg.lake;
    let keep = match (l.retention.events, l.retention.decisions, l.retention.pods) {
        (None, None, None) => "keeps everything".to_string(),
        (e, d, p) => {
            let m = |n: Option<u32>| n.map_or("all".to_string(), |n| format!("{n} months"));
            format!("keeps events {}, decisions {}, pods {}", m(e), m(d), m(p))
        }
    };
    row(
        "lake",
        format!(
            "{}: commits at least every {} (or at {} MiB read); {}; {keep}",
            l.path,
            dur(l.flush_interval),
            l.flush_bytes >> 20,
            match l.compact_min_files {
                0 => "never compacts".to_string(),
                n => format!("compacts a partition at {n} parts"),
            }
        ),
    );
}

/// The sources: `files`, `stdin`, `kubernetes`.
fn sources(cfg: &AgentConfig, row: &mut Row<'_>) {
    for f in &cfg.files {
        let from = match f.start_at {
            StartAt::Beginning => "from the beginning",
            StartAt::End => "from the end",
        };
        let excl = if f.exclude.is_empty() {
            String::new()
        } else {
            format!(", except {}", f.exclude.join(", "))
        };
        row(
            "files",
            format!("follows {} {from}{excl}", f.include.join(", ")),
        );
    }
    if cfg.stdin {
        row("stdin", "follows standard input until its end".into());
    }
    if let Some(k) = &cfg.kubernetes {
        row(
            "kubernetes",
            format!(
                "follows the logs of pods {}{} in namespace {}{}",
                k.selector,
                k.proxy_selector
                    .as_ref()
                    .map(|p| format!(" and {p}"))
                    .unwrap_or_default(),
                k.namespace,
                k.container
                    .as_ref()
                    .map(|c| format!(", container {c}"))
                    .unwrap_or_default()
            ),
        );
    }
}

/// `http` and `datadog`.
fn outputs(cfg: &AgentConfig, row: &mut Row<'_>) {
    row(
        "http",
        match cfg.http {
            Some(a) => format!("serves /healthz and /metrics on {a}"),
            None => "off".into(),
        },
    );
    let dd = &cfg.datadog;
    row(
        "datadog",
        if !dd.enabled {
            "off (enabled = false)".into()
        } else {
            format!(
                "sends metrics every {} to {} when DD_API_KEY is set{}",
                dur(dd.flush_interval),
                dd.url
                    .as_deref()
                    .map(without_credentials)
                    .or_else(|| dd.site.as_ref().map(|s| format!("site {s}")))
                    .unwrap_or_else(|| "site DD_SITE (default datadoghq.com)".into()),
                match std::env::var_os("DD_API_KEY") {
                    Some(_) => " (it is set here)",
                    None => " (it is not set here)",
                }
            )
        },
    );
}

/// The hub API, the culler and admission.
fn control(cfg: &AgentConfig, row: &mut Row<'_>) {
    let c = &cfg.control;
    if let Some(h) = &c.hub {
        row(
            "hub API",
            format!(
                "{} with the token from {}{}",
                h.api_url
                    .as_ref()
                    .map(|u| u.to_string())
                    .unwrap_or_else(|| "JUPYTERHUB_API_URL".into()),
                h.token_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "JUPYTERHUB_API_TOKEN".into()),
                if h.observe_every.is_zero() || c.culler.is_some() {
                    String::new()
                } else {
                    format!("; lists running servers every {}", dur(h.observe_every))
                }
            ),
        );
    }
    if let Some(p) = &c.culler {
        row(
            "culler",
            format!(
                "{}; full pass every {}",
                p.summary(),
                dur(p.reconcile_every)
            ),
        );
    }
    if let Some(a) = &c.admission {
        row(
            "admission",
            format!(
                "answers POST /v1/admission by policy {} (token from {}); {}{}{}",
                a.policy.display(),
                a.token_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "HUBPULSE_ADMISSION_TOKEN".into()),
                if a.reconcile_every.is_zero() {
                    "never checks running servers".to_string()
                } else {
                    format!("checks running servers every {}", dur(a.reconcile_every))
                },
                if a.dry_run {
                    ", as a dry run (stops nothing)"
                } else {
                    ", and stops those that break it"
                },
                if a.wait.is_some() {
                    "; tells spawns to wait when there is no room"
                } else {
                    ""
                }
            ),
        );
    }
}

/// `capacity` and `pods`.
fn cluster(cfg: &AgentConfig, row: &mut Row<'_>) {
    if let Some(cap) = &cfg.capacity {
        for s in &cap.sets {
            let p = &s.policy;
            row(
                "capacity",
                format!(
                    "sizes StatefulSet {}/{} ({}) within {}..{} replicas every {}{}",
                    s.target.namespace,
                    s.target.name,
                    p.profile
                        .as_deref()
                        .map(|x| format!("profile {x}"))
                        .unwrap_or_else(|| "all profiles".into()),
                    p.min_replicas,
                    p.max_replicas,
                    dur(cap.every),
                    if p.dry_run {
                        ", as a dry run (changes nothing)"
                    } else {
                        ""
                    }
                ),
            );
        }
    }
    if let Some(p) = &cfg.pods {
        row(
            "pods",
            format!(
                "watches pods {} in namespace {} into the pods table",
                p.selector, p.namespace
            ),
        );
    }
}

/// `hubpulse check-config FILE`: the file loaded and validated, then [`print`]ed.
pub fn check_config(file: &std::path::Path) -> Result<(), AppError> {
    let cfg = AgentConfig::load(file)?;
    print(file, &cfg)
}

/// Prints `FILE: ok` and the summary.
pub fn print(file: &std::path::Path, cfg: &AgentConfig) -> Result<(), AppError> {
    let mut out = Out::stdout();
    out.line(format_args!("{}: ok", file.display()))?;
    for l in summary(cfg) {
        out.line(l)?;
    }
    out.flush_now()
}

/// `1 h`, `30 min`, `10 s`, `500 ms`.
fn dur(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms} ms");
    }
    let s = d.as_secs();
    match s {
        0 => "0 s".into(),
        s if s.is_multiple_of(3600) => format!("{} h", s / 3600),
        s if s.is_multiple_of(60) => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A URL without its user name and password (they never belong in output).
fn without_credentials(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut url) if !url.username().is_empty() || url.password().is_some() => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        _ => u.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials() {
        assert_eq!(
            without_credentials("http://bob:hunter2@hub:8081/hub/api"),
            "http://hub:8081/hub/api"
        );
        assert_eq!(
            without_credentials("http://hub:8081/hub/api"),
            "http://hub:8081/hub/api"
        );
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(dur(Duration::from_millis(500)), "500 ms");
        assert_eq!(dur(Duration::from_secs(600)), "10 min");
        assert_eq!(dur(Duration::from_secs(7200)), "2 h");
        assert_eq!(dur(Duration::from_secs(45)), "45 s");
    }
}
