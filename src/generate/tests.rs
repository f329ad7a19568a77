//! Tests of the generator: determinism, exact truth, ordering, coverage of every kind.
#![allow(clippy::unwrap_used)]

use super::*;
use chrono::NaiveDateTime;
use std::collections::BTreeSet;

fn cfg(users: u32, days: u32, seed: u64, interval: u32) -> GenConfig {
    let start = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(); // a Monday
    GenConfig {
        users,
        days,
        start,
        seed,
        activity_interval_secs: interval,
    }
}

fn run(c: &GenConfig) -> (String, Truth) {
    let mut out = Vec::new();
    let truth = generate(c, &mut out).unwrap();
    (String::from_utf8(out).unwrap(), truth)
}

/// Timestamp of a hub, culler or CHP line; `None` for continuation and unparsed lines.
fn stamp(line: &str) -> Option<NaiveDateTime> {
    let b = line.as_bytes();
    let parse = |s: &str, f: &str| NaiveDateTime::parse_from_str(s, f).ok();
    if b.first()?.is_ascii_digit() {
        return parse(&line[..23], "%Y-%m-%dT%H:%M:%S%.3f");
    }
    if b[0] != b'[' {
        return None;
    }
    if b[7] == b'-' {
        return parse(&line[3..26], "%Y-%m-%d %H:%M:%S%.3f");
    }
    parse(&line[3..18], "%y%m%d %H:%M:%S")
}

/// Kind of the record a line starts, by markers independent of the generator's code.
fn classify(line: &str) -> Option<&'static str> {
    const MARKERS: [(&str, &str); 22] = [
        ("JupyterHub log:192] ", "request"),
        ("JupyterHub log:184] {", "request_headers"),
        ("base:837] User logged in: ", "login"),
        ("base:843] Failed login for '", "login_failed"),
        ("login:47] User logged out: ", "logout"),
        (
            "provider:661] Creating oauth client jupyterhub-user-",
            "oauth_client",
        ),
        (
            "spawner:2469] Attempting to create pod jupyter-",
            "pod_create",
        ),
        ("base:1124] User ", "spawn_succeeded"),
        ("proxy:331] Adding user ", "proxy_route_added"),
        ("user:1004] Unhandled error starting ", "spawn_failed"),
        ("user:1063] ", "spawn_timeout"),
        ("proxy:356] Removing user ", "proxy_route_removed"),
        ("spawner:3395] Deleting pod jhub/jupyter-", "pod_delete"),
        ("base:1382] User ", "stop_succeeded"),
        (
            "spawner:1988] Applying KubeSpawner override for profile",
            "profile_override",
        ),
        ("base:1448] User ", "server_exited"),
        ("__init__:251] Culling server ", "cull_server"),
        ("metrics:373] Found ", "active_users"),
        ("\x1b[32minfo\x1b[39m: 200 GET /api/routes ", "chp_request"),
        (
            "\x1b[32minfo\x1b[39m: Adding route /user/",
            "chp_route_added",
        ),
        (
            "\x1b[32minfo\x1b[39m: Removing route /user/",
            "chp_route_removed",
        ),
        ("\x1b[31merror\x1b[39m: 503 GET /user/", "chp_proxy_error"),
    ];
    if line.starts_with(' ') {
        return None;
    }
    let hit = MARKERS.iter().find(|(m, _)| line.contains(m));
    Some(hit.map_or("unparsed", |&(_, k)| k))
}

/// The user of a pod named by KubeSpawner's `escape` scheme (`jupyter-` stripped):
/// `ana-2elopez-40example-2eorg--gpu` is `ana.lopez@example.org`. An escape is `-` and two hex
/// digits; `--` separates the server name.
fn pod_user(pod: &str) -> String {
    let b = pod.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => break,
            b'-' => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn pod_names_are_kubespawners_escape_scheme() {
    // Values printed by kubespawner 6.2.0's template over `escapism.escape`.
    assert_eq!(
        super::pod_name("ana.lopez@example.org", Some("gpu")),
        "jupyter-ana-2elopez-40example-2eorg--gpu"
    );
    assert_eq!(super::pod_name("user0001", None), "jupyter-user0001");
    assert_eq!(
        pod_user("ana-2elopez-40example-2eorg--gpu"),
        "ana.lopez@example.org"
    );
}

/// Recounts everything in `Truth` from the text alone.
fn recount(text: &str) -> Truth {
    let mut t = Truth {
        bytes: text.len() as u64,
        ..Truth::default()
    };
    let mut active: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    // Server runs: a profile line belongs to the next pod created; a run goes from the user's
    // ready line to their stop or exit line.
    let (mut pending, mut profile_of, mut ready) = (
        None::<String>,
        BTreeMap::<String, String>::new(),
        BTreeMap::new(),
    );
    for line in text.lines() {
        let msg = line.split_once("] ").map_or("", |(_, m)| m);
        let name = |prefix: &str| {
            msg.strip_prefix(prefix)
                .and_then(|m| m.split([' ', ':', ',']).next())
                .map(str::to_string)
        };
        if let Some(p) = msg.strip_prefix("Applying KubeSpawner override for profile '") {
            pending = Some(p.trim_end_matches('\'').to_string());
        } else if let Some(pod) = name("Attempting to create pod jupyter-") {
            profile_of.insert(pod_user(&pod), pending.take().unwrap_or_default());
        } else if msg.contains(" seconds to start") {
            ready.insert(name("User ").unwrap(), stamp(line).unwrap());
        } else if msg.contains(" seconds to stop") || msg.contains("server stopped, with exit code")
        {
            let (u, end) = (name("User ").unwrap(), stamp(line).unwrap());
            let start = ready.remove(&u).unwrap();
            let month = end.format("%Y-%m").to_string();
            let ms = (end - start).num_milliseconds() as u64;
            let by_user = t.server_ms.entry(month.clone()).or_default();
            *by_user
                .entry(u.clone())
                .or_default()
                .entry(profile_of[&u].clone())
                .or_default() += ms;
            *t.server_runs.entry(month).or_default() += 1;
        }
    }
    for line in text.lines() {
        t.lines += 1;
        t.tracebacks += u64::from(line == "    Traceback (most recent call last):");
        let Some(kind) = classify(line) else { continue };
        t.records += 1;
        *t.kinds.entry(kind.into()).or_default() += 1;
        let day = stamp(line)
            .map(|s| s.date().to_string())
            .unwrap_or_default();
        let msg = line.split_once("] ").map_or("", |(_, m)| m);
        let user = match kind {
            "request" => {
                let class = format!("{}xx", &msg[..1]);
                *t.requests_by_status_class.entry(class).or_default() += 1;
                msg.strip_prefix("200 POST /hub/api/users/")
                    .and_then(|m| m.split_once('/'))
                    .filter(|(_, rest)| rest.starts_with("activity "))
                    .map(|(u, _)| u)
            }
            "login" => msg.strip_prefix("User logged in: "),
            "spawn_succeeded" => {
                *t.spawns_succeeded_per_day.entry(day.clone()).or_default() += 1;
                msg.strip_prefix("User ")
                    .and_then(|m| m.split([' ', ':']).next())
            }
            _ => None,
        };
        if let Some(u) = user {
            active.entry(day).or_default().insert(u.to_string());
        }
    }
    t.unparsed = t.kinds.get("unparsed").copied().unwrap_or(0);
    t.daily_active_users = active
        .into_iter()
        .map(|(d, s)| (d, s.len() as u64))
        .collect();
    t
}

#[test]
fn same_config_same_bytes_and_truth() {
    let c = cfg(20, 3, 7, 300);
    let (a, ta) = run(&c);
    let (b, tb) = run(&c);
    assert_eq!(a, b);
    assert_eq!(ta, tb);
    let (other, _) = run(&cfg(20, 3, 8, 300));
    assert_ne!(a, other, "a different seed must change the output");
}

#[test]
fn truth_matches_the_text() {
    let (text, truth) = run(&cfg(20, 3, 1, 300));
    assert!(text.ends_with('\n'));
    assert_eq!(truth.lines, text.matches('\n').count() as u64);
    assert_eq!(truth.bytes, text.len() as u64);
    assert_eq!(truth, recount(&text));
    let json = serde_json::to_string(&truth).unwrap();
    assert_eq!(serde_json::from_str::<Truth>(&json).unwrap(), truth);
}

#[test]
fn timestamps_never_decrease() {
    for seed in 0..3 {
        let (text, _) = run(&cfg(60, 4, seed, 120));
        let (mut last, mut culls) = (None, 0);
        for (i, line) in text.lines().enumerate() {
            let Some(s) = stamp(line) else { continue };
            assert!(last <= Some(s), "line {} goes back in time: {line}", i + 1);
            last = Some(s);
            culls += usize::from(line.contains("__init__:251]"));
        }
        assert!(culls > 10, "culler stamps must parse");
    }
}

#[test]
fn every_kind_appears_in_a_small_run() {
    for seed in [0, 1, 42] {
        let (_, truth) = run(&cfg(20, 3, seed, 300));
        for kind in KIND_NAMES {
            assert!(
                truth.kinds.get(*kind).copied().unwrap_or(0) > 0,
                "{kind} missing"
            );
        }
        for class in ["2xx", "3xx", "4xx", "5xx"] {
            assert!(
                truth.requests_by_status_class.contains_key(class),
                "{class} missing"
            );
        }
        assert!(truth.tracebacks > 0 && truth.unparsed > 0);
        assert_eq!(truth.daily_active_users.len(), 3);
    }
}

#[test]
fn size_scales_with_users_and_days() {
    let bytes = |users, days| {
        generate(&cfg(users, days, 3, 60), io::sink())
            .unwrap()
            .bytes
    };
    let base = bytes(50, 7) as f64;
    let users = bytes(100, 7) as f64 / base;
    let days = bytes(50, 14) as f64 / base;
    assert!((1.7..2.3).contains(&users), "doubling users: x{users:.2}");
    assert!((1.8..2.2).contains(&days), "doubling days: x{days:.2}");
}

#[test]
fn degenerate_configs_do_not_panic() {
    assert_eq!(run(&cfg(0, 0, 0, 0)).1.lines, 1);
    assert!(run(&cfg(0, 1, 0, 0)).1.kinds.contains_key("chp_request"));
    assert!(run(&cfg(1, 2, 0, 0)).1.lines > 1440 * 2);
    let end = GenConfig {
        start: NaiveDate::MAX,
        ..cfg(1, 2, 0, 300)
    };
    assert!(generate(&end, io::sink()).is_err());
}
