//! Monthly reports: exact totals against the generator's truth, the session rules on a
//! hand-made log that crosses a month boundary, and the HTML as a browser renders it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{bin, root, run, run_ok};

const PRICING: &str = r#"currency = "EUR"
default_profile = "small"
idle_timeout = "30m"

[profiles.small]
hourly = 0.05

[profiles.medium]
hourly = 0.2
names = ["Medium (4 CPU)"]

[profiles.gpu]
instance_type = "g4dn.xlarge"
node_share = 1.0
names = ["GPU (large)"]

[instance_types."g4dn.xlarge"]
hourly = 0.526

[[groups]]
name = "data-science"
users = ["user0001", "user0002", "user0003", "user0004", "user0005", "user0006", "user0007"]

[[groups]]
name = "analysts"
users = ["user0008", "user0009", "user0010", "user0011", "user0012"]

[[projects]]
name = "churn"
groups = ["data-science"]
users = ["user0013"]
"#;

fn price(profile_display: &str) -> f64 {
    match profile_display {
        "" => 0.05,
        "Medium (4 CPU)" => 0.2,
        "GPU (large)" => 0.526,
        other => panic!("unexpected profile {other}"),
    }
}

fn slug(profile_display: &str) -> &'static str {
    match profile_display {
        "" => "small",
        "Medium (4 CPU)" => "medium",
        _ => "gpu",
    }
}

/// `section -> key -> (server_seconds, sessions, cost)` from the report's CSV.
fn read_csv(csv: &str) -> BTreeMap<(String, String), (i64, u64, String)> {
    crate::support::read_report(csv)
        .into_iter()
        .map(|(k, r)| (k, (r.seconds, r.sessions, r.cost)))
        .collect()
}

fn ingest(lake: &Path, log: &Path) {
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(lake)
            .arg(log),
    );
}

fn cents(x: f64) -> String {
    format!("{:.2}", (x * 100.0).round() / 100.0)
}

#[test]
fn monthly_totals_equal_the_generators_truth_to_the_second_and_the_cent() {
    let dir = tempfile::tempdir().unwrap();
    let (log, truth_path, lake, pricing) = (
        dir.path().join("gen.log"),
        dir.path().join("truth.json"),
        dir.path().join("lake"),
        dir.path().join("pricing.toml"),
    );
    run_ok(
        bin()
            .args([
                "generate",
                "--users",
                "30",
                "--days",
                "36",
                "--start",
                "2026-09-28",
            ])
            .args(["--seed", "11", "--out"])
            .arg(&log)
            .arg("--truth")
            .arg(&truth_path),
    );
    std::fs::write(&pricing, PRICING).unwrap();
    let truth: hubpulse::generate::Truth =
        serde_json::from_slice(&std::fs::read(&truth_path).unwrap()).unwrap();
    ingest(&lake, &log);
    let csv = run_ok(
        bin()
            .args([
                "report", "monthly", "--month", "2026-10", "--format", "csv", "--lake",
            ])
            .arg(&lake)
            .arg("--pricing")
            .arg(&pricing),
    );
    let got = read_csv(&csv);
    let oct = &truth.server_ms["2026-10"];

    let (mut total_ms, mut total_cost) = (0u64, 0.0);
    let mut by_profile: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    let mut by_group: BTreeMap<&str, (u64, f64)> = BTreeMap::new();
    for (user, profiles) in oct {
        let (mut ms, mut cost) = (0u64, 0.0);
        for (p, &m) in profiles {
            let c = m as f64 / 3.6e6 * price(p);
            ms += m;
            cost += c;
            let e = by_profile.entry(slug(p)).or_default();
            (e.0, e.1) = (e.0 + m, e.1 + c);
        }
        let row = &got[&("user".to_string(), user.clone())];
        assert_eq!(row.0, (ms as f64 / 1000.0).round() as i64, "{user} seconds");
        assert_eq!(row.2, cents(cost), "{user} cost");
        let n: u32 = user
            .strip_prefix("user")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let group = match n {
            1..=7 => "data-science",
            8..=12 => "analysts",
            _ => "(no group)",
        };
        let e = by_group.entry(group).or_default();
        (e.0, e.1) = (e.0 + ms, e.1 + cost);
        total_ms += ms;
        total_cost += cost;
    }
    let total = &got[&("total".to_string(), "total".to_string())];
    assert_eq!(total.0, (total_ms as f64 / 1000.0).round() as i64);
    assert_eq!(total.1, truth.server_runs["2026-10"]);
    assert_eq!(total.2, cents(total_cost));
    for (p, (ms, cost)) in &by_profile {
        let row = &got[&("profile".to_string(), p.to_string())];
        assert_eq!(row.0, (*ms as f64 / 1000.0).round() as i64, "profile {p}");
        assert_eq!(row.2, cents(*cost), "profile {p}");
    }
    assert_eq!(by_profile.len(), 3, "every profile appears: {by_profile:?}");
    for (g, (ms, cost)) in &by_group {
        let row = &got[&("group".to_string(), g.to_string())];
        assert_eq!(row.0, (*ms as f64 / 1000.0).round() as i64, "group {g}");
        assert_eq!(row.2, cents(*cost), "group {g}");
    }
    // September is in the lake too (from the 28th): the month-over-month line is there.
    assert!(got.contains_key(&("previous_month_total".to_string(), "total".to_string())));
}

#[test]
fn sessions_crossing_the_month_boundary_are_split_and_gaps_are_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &root().join("fixtures/reports/month-boundary.log"));
    let q = |sql: &str| {
        run_ok(
            bin()
                .args(["query", "--format", "csv", "--lake"])
                .arg(&lake)
                .arg(sql),
        )
    };
    let sessions = q(
        "SELECT \"user\", server_name, profile, start, \"end\", end_reason, flags \
                      FROM sessions ORDER BY \"user\", start",
    );
    crate::support::check_golden(
        &root().join("fixtures/reports/month-boundary.sessions.csv"),
        &sessions,
    );
    let csv = run_ok(
        bin()
            .args([
                "report", "monthly", "--month", "2026-10", "--format", "csv", "--lake",
            ])
            .arg(&lake),
    );
    let got = read_csv(&csv);
    // alice: ready 2026-10-31 22:00, stopped 2026-11-01 02:00 -> 2 h in October.
    assert_eq!(got[&("user".into(), "alice".into())].0, 7200);
    // bob: already running when the data begins (2026-10-31 20:00:00), culled 23:30 -> 3.5 h.
    assert_eq!(got[&("user".into(), "bob".into())].0, 12_600);
    // carol: spawned 21:00, no stop line, spawned again 23:00: the first ends at its last
    // activity (21:30) -> 0.5 h; the second runs to midnight -> 1 h.
    assert_eq!(
        got[&("user".into(), "carol".into())],
        (5400, 2, "0.00".into())
    );
    // dave: ready 20:30, lost while the hub was down (shutdown 2026-11-01 00:30) -> 3.5 h here.
    assert_eq!(got[&("user".into(), "dave".into())].0, 12_600);
    let md = run_ok(
        bin()
            .args([
                "report", "monthly", "--month", "2026-10", "--format", "md", "--lake",
            ])
            .arg(&lake),
    );
    assert!(
        md.starts_with("# JupyterHub usage and cost, 2026-10"),
        "{md}"
    );
    assert!(md.contains("| bob | 3.50 | 1 | 1 | 3.50 | 0.00 |"), "{md}");
    // The logs cover only the last hours of October: the report says so.
    assert!(
        md.contains("> 2026-10 is only partly covered by the logs (data from 2026-10-31 20:00"),
        "{md}"
    );
    assert!(md.contains("1 had no stop line"), "{md}");
    let empty = run_ok(
        bin()
            .args([
                "report", "monthly", "--month", "2020-01", "--format", "md", "--lake",
            ])
            .arg(&lake),
    );
    assert!(
        empty.contains("> The lake holds no record for 2020-01"),
        "{empty}"
    );
    let nov = run_ok(
        bin()
            .args([
                "report", "monthly", "--month", "2026-11", "--format", "csv", "--lake",
            ])
            .arg(&lake),
    );
    let nov = read_csv(&nov);
    // alice's remaining 2 h are November's; carol's second server runs to the last record
    // (2026-11-01 03:00:00).
    assert_eq!(nov[&("user".into(), "alice".into())].0, 7200);
    assert_eq!(nov[&("user".into(), "carol".into())].0, 3 * 3600);
    assert_eq!(nov[&("user".into(), "dave".into())].0, 1800);
}

#[test]
fn a_bad_pricing_file_or_month_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &root().join("fixtures/reports/month-boundary.log"));
    let pricing = dir.path().join("p.toml");
    std::fs::write(
        &pricing,
        "currency = \"EUR\"\n[profiles.small]\nhourly = -1\n",
    )
    .unwrap();
    let sizes = dir.path().join("sizes.toml");
    std::fs::write(
        &sizes,
        "[instance_types.\"m5.2xlarge\"]\nhourly = 0.8\ncpu = 8\nmemory = \"32 gigs\"\n",
    )
    .unwrap();
    for args in [
        vec!["--month", "2026-10", "--pricing", pricing.to_str().unwrap()],
        vec!["--month", "2026-10", "--pricing", sizes.to_str().unwrap()],
        vec!["--month", "October"],
    ] {
        let out = run(bin()
            .args(["report", "monthly", "--lake"])
            .arg(&lake)
            .args(&args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(
            err.contains("p.toml:3:1: profiles.small.hourly")
                || err.contains("sizes.toml:4:1: instance_types.\"m5.2xlarge\".memory: ")
                || err.contains("--month"),
            "{err}"
        );
    }
}

/// The HTML report opened in headless Chromium (tests/support/render_check.mjs): the charts
/// and tables render with content, nothing is fetched from outside the file, and the console
/// stays silent.
#[test]
fn the_html_report_renders_in_a_browser_with_charts_tables_and_a_silent_console() {
    let browser = crate::support::prereq::browser_dir();
    let dir = tempfile::tempdir().unwrap();
    let (log, lake, pricing, html, shot) = (
        dir.path().join("gen.log"),
        dir.path().join("lake"),
        dir.path().join("pricing.toml"),
        dir.path().join("report.html"),
        dir.path().join("report.png"),
    );
    run_ok(
        bin()
            .args([
                "generate",
                "--users",
                "40",
                "--days",
                "40",
                "--start",
                "2026-09-25",
            ])
            .args(["--seed", "5", "--out"])
            .arg(&log),
    );
    std::fs::write(&pricing, PRICING).unwrap();
    ingest(&lake, &log);
    run_ok(
        bin()
            .args(["report", "monthly", "--month", "2026-10", "--lake"])
            .arg(&lake)
            .arg("--pricing")
            .arg(&pricing)
            .arg("--out")
            .arg(&html),
    );
    let out = std::process::Command::new("node")
        .arg(root().join("tests/support/render_check.mjs"))
        .arg(&html)
        .arg(&shot)
        .env("HUBPULSE_BROWSER_DIR", &browser)
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "render_check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["title"], "JupyterHub usage and cost, 2026-10");
    assert_eq!(v["console_messages"], serde_json::json!([]), "{v}");
    assert_eq!(v["page_errors"], serde_json::json!([]), "{v}");
    assert_eq!(v["external"], serde_json::json!([]), "self-contained: {v}");
    let charts = v["charts"].as_array().unwrap();
    let labels: Vec<&str> = charts
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "Daily server-hours by profile",
            "Cost by group",
            "Top users by cost"
        ]
    );
    // 31 days of stacked bars (three profiles), three groups, the top 15 users.
    assert!(charts[0]["marks"].as_u64().unwrap() >= 31, "{v}");
    assert_eq!(charts[1]["marks"], 3, "{v}");
    assert_eq!(charts[2]["marks"], 15, "{v}");
    for (c, px) in charts.iter().zip(v["chart_pixels"].as_array().unwrap()) {
        assert!(c["width"].as_f64().unwrap() > 300.0, "{c}");
        // Drawn, in colour: a blank or failed chart has no ink and one colour at most.
        assert!(px["ink_fraction"].as_f64().unwrap() > 0.01, "{c} {px}");
        assert!(px["colours"].as_u64().unwrap() >= 3, "{c} {px}");
    }
    let tables: Vec<u64> = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .collect();
    // group (2 named + no group), profile (3), project (churn + none), user (40).
    assert_eq!(tables, [3, 3, 2, 40], "{v}");
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a full-page screenshot"
    );
}

/// Sessions whose pod the lake's `pods` table has, on a node type the pricing file sizes, cost
/// the node's price times their dominant share; the others keep their profile's price.
#[test]
fn sessions_with_a_pod_on_a_sized_node_are_priced_from_its_requests() {
    use hubpulse::sources::kube::enrich::PodRow;
    use hubpulse::sources::kube::podtable::{Change, PodSink};
    let dir = tempfile::tempdir().unwrap();
    let (lake, pricing) = (dir.path().join("lake"), dir.path().join("pricing.toml"));
    ingest(&lake, &root().join("fixtures/reports/month-boundary.log"));
    // PRICING's profiles, plus a node type with its size (8 cores, 32 GiB) and a price.
    let file = format!(
        "{PRICING}\n[instance_types.\"m5.2xlarge\"]\nhourly = 0.8\ncpu = 8\nmemory = \"32Gi\"\n"
    );
    std::fs::write(&pricing, file).unwrap();
    let report = |format: &str, month: &str| {
        run_ok(
            bin()
                .args(["report", "monthly", "--month", month, "--format", format])
                .arg("--lake")
                .arg(&lake)
                .arg("--pricing")
                .arg(&pricing),
        )
    };
    let before = read_csv(&report("csv", "2026-10"));
    let before_md = report("md", "2026-10");
    assert!(!before_md.contains("pod's requests"), "{before_md}");

    let sink = PodSink::new(&hubpulse::lake::LakeLocation::local(&lake), "jupyterhub");
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let pod = |user: &str, itype: Option<&str>, cpu: f64, mem_gi: f64| PodRow {
        namespace: "jhub".into(),
        pod: format!("jupyter-{user}"),
        user: Some(user.into()),
        server: Some(String::new()),
        node: itype.map(|_| "node-1".into()),
        phase: Some(
            if itype.is_some() {
                "Running"
            } else {
                "Pending"
            }
            .into(),
        ),
        cpu_request: Some(cpu),
        memory_request: Some(mem_gi * 1_073_741_824.0),
        instance_type: itype.map(str::to_string),
        ..PodRow::default()
    };
    // alice (GPU profile, 0.526/h): created 21:59:50, scheduled on an m5.2xlarge, requesting
    // 2 of 8 cores and 12 of 32 GiB: memory-dominant, 0.375 of the node, 0.30/h.
    let alice = pod("alice", Some("m5.2xlarge"), 2.0, 12.0);
    sink.write(
        at("2026-10-31T21:59:50.2Z"),
        &[(Change::Seen, pod("alice", None, 2.0, 12.0))],
    )
    .unwrap();
    sink.write(
        at("2026-10-31T21:59:55Z"),
        &[(Change::Changed, alice.clone())],
    )
    .unwrap();
    sink.write(at("2026-11-01T01:59:59.9Z"), &[(Change::Deleted, alice)])
        .unwrap();
    // bob: on a node type the pricing file does not know; dave: node not read (no type).
    sink.write(
        at("2026-10-31T20:00:00Z"),
        &[
            (Change::Seen, pod("bob", Some("c5.large"), 1.0, 2.0)),
            (Change::Seen, pod("dave", None, 1.0, 2.0)),
        ],
    )
    .unwrap();

    let got = read_csv(&report("csv", "2026-10"));
    let row = |section: &str, key: &str| got[&(section.to_string(), key.to_string())].clone();
    // alice: 2 h in October at 0.8 × 0.375 (her GPU profile would be 1.05).
    assert_eq!(row("user", "alice"), (7200, 1, cents(2.0 * 0.8 * 0.375)));
    assert_ne!(
        before[&("user".into(), "alice".into())].2,
        row("user", "alice").2
    );
    // bob (3.5 h of the small profile at 0.05/h), carol and dave: as without pods.
    assert_eq!(row("user", "bob"), (12_600, 1, cents(3.5 * 0.05)));
    for u in ["bob", "carol", "dave"] {
        assert_eq!(row("user", u), before[&("user".into(), u.into())], "{u}");
    }
    assert_eq!(row("priced_from", "pod_requests"), (7200, 1, "0.60".into()));
    let profile = row("priced_from", "profile");
    let total = row("total", "total");
    assert_eq!((profile.0, profile.1), (total.0 - 7200, total.1 - 1));
    // the profile still says what the server was: the GPU row holds alice's pod-priced cost
    assert_eq!(row("profile", "gpu"), (7200, 1, "0.60".into()));
    // November: alice's other 2 h, from the same pod.
    let nov = read_csv(&report("csv", "2026-11"));
    assert_eq!(
        nov[&("user".into(), "alice".into())],
        (7200, 1, "0.60".into())
    );
    let md = report("md", "2026-10");
    assert!(
        md.contains("- Sessions priced from their pod's requests: 1 (2.00 server-hours, 0.60 EUR); by their profile's price: 4"),
        "{md}"
    );
    let html = report("html", "2026-10");
    assert!(
        html.contains("<li>Sessions priced from their pod's requests: 1 (2.00 server-hours"),
        "{html}"
    );
}

fn sessions_csv(lake: &Path) -> String {
    run_ok(
        bin()
            .args(["query", "--format", "csv", "--lake"])
            .arg(lake)
            .arg(
                "SELECT \"user\", server_name, profile, start, \"end\", end_reason, flags \
                 FROM sessions ORDER BY \"user\", server_name, start",
            ),
    )
}

/// The log shapes of issue 17 in one hand-made log whose every line follows a JupyterHub 5.x /
/// KubeSpawner 7 (DEBUG) template (fixtures/reports/README.md names the emitter of each):
/// a pre-ready heartbeat of a user who only runs a named server, an exit line whose proxy
/// removal names the named server that died while the default one runs on, `still running`
/// after a restart for a named server, a missing stop line with the next pod's heartbeat
/// before ready, and e-mail users with KubeSpawner 7 `safe` and 6 `escape` pod names.
#[test]
fn the_session_rules_follow_the_lifecycle_shapes_jupyterhub_and_kubespawner_log() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &root().join("fixtures/reports/lifecycle-shapes.log"));
    crate::support::check_golden(
        &root().join("fixtures/reports/lifecycle-shapes.sessions.csv"),
        &sessions_csv(&lake),
    );
    let pricing = dir.path().join("pricing.toml");
    std::fs::write(&pricing, PRICING).unwrap();
    let got = read_csv(&run_ok(
        bin()
            .args([
                "report", "monthly", "--month", "2026-11", "--format", "csv", "--lake",
            ])
            .arg(&lake)
            .arg("--pricing")
            .arg(&pricing),
    ));
    // frank@example.org: 17:30:10 to 19:00:01 on the GPU profile, found through the `safe` pod
    // name `jupyter-frank-example-org---80ca8af6`.
    let secs = 5391;
    assert_eq!(
        got[&("user".into(), "frank@example.org".into())],
        (secs, 1, cents(secs as f64 / 3600.0 * 0.526))
    );
    // grace ran one named server (2 h), no default server from the first line on.
    assert_eq!(got[&("user".into(), "grace".into())].0, 7191);
}

/// The real JupyterHub 6.1.1 captures (fixtures/logs/real: the hub and culler logs apart, and
/// one combined DEBUG log): the sessions are exactly the servers their driver saw start
/// (truth.json), each ended as the driver saw it end. Before issue 17 every pod's pre-ready
/// heartbeat made a phantom server "running since the data began" (five in the combined log;
/// carol, who runs named servers only, kept a default one to the end).
#[test]
fn the_real_hub_logs_rebuild_exactly_the_servers_their_driver_saw() {
    for (capture, logs) in [
        ("hub-only", &["hub.log", "culler.log"][..]),
        ("combined-debug", &["hub.log"][..]),
    ] {
        real_capture_sessions(capture, logs);
    }
}

fn real_capture_sessions(capture: &str, logs: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let real = root().join("fixtures/logs/real").join(capture);
    let mut cmd = bin();
    cmd.args(["ingest", "--no-progress", "--lake"]).arg(&lake);
    for l in logs {
        cmd.arg(real.join(l));
    }
    run_ok(&mut cmd);
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(real.join("truth.json")).unwrap()).unwrap();
    let pairs = |k: &str| -> Vec<(String, String)> {
        truth[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["user"].as_str().unwrap().to_string(),
                    v["server"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // How the driver ended each server: a DELETE by its own token (an admin's stop), the
    // culler, a SIGKILL, or still running when the hub shut down (and cleaned it up unlogged).
    let mut want: Vec<(String, String, &str)> = Vec::new();
    for (u, s) in pairs("spawns_succeeded") {
        let key = (u.clone(), s.clone());
        let end = if pairs("stops").contains(&key) {
            "admin_stop"
        } else if pairs("culled").contains(&key) {
            "culled"
        } else if pairs("servers_died").contains(&key) {
            "failed"
        } else if pairs("running_at_shutdown").contains(&key) {
            "running"
        } else {
            panic!("truth.json does not say how {key:?} ended");
        };
        want.push((u, s, end));
    }
    want.sort();
    let csv = run_ok(
        bin()
            .args(["query", "--format", "csv", "--lake"])
            .arg(&lake)
            .arg(
                "SELECT \"user\", server_name, end_reason, flags FROM sessions \
                 ORDER BY \"user\", server_name",
            ),
    );
    let got: Vec<(String, String, String)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(
                f[3], "",
                "{capture}: no session of this log is estimated: {l}"
            );
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect();
    let want: Vec<(String, String, String)> = want
        .into_iter()
        .map(|(u, s, e)| (u, s, e.to_string()))
        .collect();
    assert_eq!(got, want, "{capture}");
}

/// A month's figures do not depend on which report reads them: September's total in the
/// September report equals the October report's previous-month row, to the second and the cent.
/// eve's GPU server started in July (its profile line is there) and was culled on 3 September:
/// a rebuild starting in August (October's window) sees it only as running since the data
/// began, with the default profile.
#[test]
fn a_closed_month_has_the_same_figures_in_its_report_and_in_the_next_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, pricing) = (dir.path().join("lake"), dir.path().join("pricing.toml"));
    ingest(&lake, &root().join("fixtures/reports/closed-month.log"));
    std::fs::write(&pricing, PRICING).unwrap();
    let report = |month: &str| {
        run_ok(
            bin()
                .args(["report", "monthly", "--month", month, "--format", "csv"])
                .arg("--lake")
                .arg(&lake)
                .arg("--pricing")
                .arg(&pricing),
        )
    };
    let row = |csv: &str, section: &str| -> String {
        let l = csv
            .lines()
            .find(|l| l.split(',').nth(1) == Some(section))
            .unwrap_or_else(|| panic!("no {section} row in\n{csv}"));
        // Everything but the month column.
        l.split_once(',')
            .unwrap()
            .1
            .split_once(',')
            .unwrap()
            .1
            .to_string()
    };
    let sep = report("2026-09");
    let oct = report("2026-10");
    assert_eq!(row(&oct, "previous_month_total"), row(&sep, "total"));
    // eve: 1 September 00:00 to the stop line on the 3rd at 19:10:38, on the GPU profile.
    let got = read_csv(&sep);
    assert_eq!(got[&("profile".into(), "gpu".into())].0, 241_838);
    // frank@example.org: his `escape` pod name (KubeSpawner 6) pairs his Medium profile.
    assert_eq!(got[&("profile".into(), "medium".into())].0, 28_789);
    // And the November report's previous row is October's own total.
    assert_eq!(
        row(&report("2026-11"), "previous_month_total"),
        row(&oct, "total")
    );
}

/// One session model: the quota budgets read the same rebuild as the report. At the end of
/// November, each user's server-hours this month in `control::quota::month_usage` equal the
/// November report's (the lifecycle-shapes log: pre-ready heartbeat, named exit, restart, gap,
/// e-mail users).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quota_budgets_count_the_reports_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &root().join("fixtures/reports/lifecycle-shapes.log"));
    let csv = run_ok(
        bin()
            .args([
                "report", "monthly", "--month", "2026-11", "--format", "csv", "--lake",
            ])
            .arg(&lake),
    );
    let report = read_csv(&csv);
    let policy =
        hubpulse::control::admission::Policy::parse("default_profile = \"small\"\n", "p.toml")
            .unwrap();
    // The log's last record is 2026-11-02 20:00; judy's second run and the others are closed.
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-02T20:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let usage = hubpulse::control::quota::month_usage(
        &hubpulse::lake::LakeLocation::local(&lake),
        &policy,
        now,
        None,
        None,
    )
    .await
    .unwrap();
    let mut users = 0;
    for ((section, user), (secs, _, _)) in &report {
        if section != "user" {
            continue;
        }
        users += 1;
        let h = usage.user.get(user).copied().unwrap_or(0.0);
        assert!(
            (h * 3600.0 - *secs as f64).abs() < 1.0,
            "{user}: quota {h} h, report {secs} s"
        );
    }
    assert_eq!(users, usage.user.len());
    assert_eq!(users, 6);
}

/// `load_windows` reads the report's two windows in one pass; each must get exactly the
/// records and bounds a read of that window alone gives, so the same sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_two_windows_at_once_gives_each_what_reading_it_alone_gives() {
    use hubpulse::report::{load, monthly, sessions};
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &root().join("fixtures/reports/closed-month.log"));
    let ctx = hubpulse::query::session(&hubpulse::lake::LakeLocation::local(&lake))
        .await
        .unwrap();
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
    let (oct, sep) = (
        monthly::window(day("2026-10-01")),
        monthly::window(day("2026-09-01")),
    );
    let both = load::load_windows(&ctx, &[oct, sep]).await.unwrap();
    assert_eq!(both.len(), 2);
    for (w, l) in [oct, sep].into_iter().zip(both) {
        let alone = load::load(&ctx, w).await.unwrap();
        assert_eq!(l.first_ts, alone.first_ts);
        assert_eq!(l.last_ts, alone.last_ts);
        assert_eq!(l.events.len(), alone.events.len());
        let a = sessions::derive_interned(&l.events, &l.names, l.activity, &l.first_ts);
        let b =
            sessions::derive_interned(&alone.events, &alone.names, alone.activity, &alone.first_ts);
        assert_eq!(a, b);
        assert!(!a.is_empty());
    }
}

/// A month the data covers to within its quiet hours is not "only partly covered"; one whose
/// data begins hours late is, and says from when (the generator's month ends minutes before
/// midnight: a hub logs little when nobody works).
#[test]
fn a_month_is_partial_only_when_hours_of_it_are_missing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("gen.log");
    run_ok(
        bin()
            .args(["generate", "--users", "8", "--days", "30", "--start"])
            .args(["2026-11-01", "--seed", "5", "--out"])
            .arg(&log),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    // The same log collected from three hours in (its lines from the first hub line then).
    let from = text
        .lines()
        .position(|l| l.starts_with('[') && l.get(3..16).is_some_and(|t| t >= "2026-11-01 03"))
        .unwrap();
    let late: String = text.lines().skip(from).map(|l| format!("{l}\n")).collect();
    let late_log = dir.path().join("late.log");
    std::fs::write(&late_log, late).unwrap();
    let md = |log: &Path, name: &str| {
        let lake = dir.path().join(name);
        ingest(&lake, log);
        run_ok(
            bin()
                .args(["report", "monthly", "--month", "2026-11", "--format", "md"])
                .arg("--pricing")
                .arg(root().join("examples/pricing.toml"))
                .arg("--lake")
                .arg(&lake),
        )
    };
    let full = md(&log, "full");
    assert!(!full.contains("2026-11 is only partly covered"), "{full}");
    let part = md(&late_log, "late");
    assert!(
        part.contains("2026-11 is only partly covered by the logs (data from 2026-11-01 03:"),
        "{part}"
    );
}
