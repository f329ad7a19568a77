//! The monthly report against an independent witness: `fixtures/month/simulate.py` simulates six
//! weeks of a Zero to JupyterHub hub (JupyterHub 5.2 and KubeSpawner 7 at DEBUG, the idle culler
//! 1.x; three hub pods, 21 users in three groups, named servers, culls, exits, a gap in the
//! collected log, e-mail user names, midnight and month boundaries) and writes the hub's log and
//! the server time and cost the simulation ran, computed from the simulation (never from
//! hubpulse's code or its generator). The report of October and of November must give them to
//! the second and the cent, per user, group and profile, in CSV, Markdown and HTML, and each
//! month's figures must be the same whichever report shows them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support::{bin, python, root, run_ok};

/// One figure: whole seconds, sessions, cost to the cent.
#[derive(Debug, Clone, PartialEq)]
struct Fig {
    seconds: i64,
    sessions: u64,
    cost: String,
}

/// The simulator's truth: (month, section, key) -> (figure, exact ms, cost within 1e-6 cent
/// of a half cent: the report's float sum may round either way).
type Truth = BTreeMap<(String, String, String), (Fig, i64, bool)>;

fn read_truth(path: &Path) -> Truth {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let c = [
        col("month"),
        col("section"),
        col("key"),
        col("server_ms"),
        col("server_seconds"),
        col("sessions"),
        col("cost"),
        col("cost_tie"),
    ];
    lines
        .map(|l| {
            // No key holds a comma (user names, groups and profile slugs of the simulation).
            let f: Vec<&str> = l.split(',').collect();
            (
                (f[c[0]].into(), f[c[1]].into(), f[c[2]].into()),
                (
                    Fig {
                        seconds: f[c[4]].parse().unwrap(),
                        sessions: f[c[5]].parse().unwrap(),
                        cost: f[c[6]].into(),
                    },
                    f[c[3]].parse().unwrap(),
                    f[c[7]] == "1",
                ),
            )
        })
        .collect()
}

/// The report's CSV: (section, key) -> (figure, the row's columns from `key` on).
fn read_report(csv: &str) -> BTreeMap<(String, String), (Fig, String)> {
    crate::support::read_report(csv)
        .into_iter()
        .map(|(k, r)| {
            let fig = Fig {
                seconds: r.seconds,
                sessions: r.sessions,
                cost: r.cost,
            };
            (k, (fig, r.rest))
        })
        .collect()
}

fn report(lake: &Path, month: &str, format: &str) -> String {
    run_ok(
        bin()
            .args(["report", "monthly", "--month", month, "--format", format])
            .arg("--lake")
            .arg(lake)
            .arg("--pricing")
            .arg(root().join("fixtures/month/pricing.toml")),
    )
}

/// Costs equal to the cent; where the exact value is a half cent, either rounding.
fn same_cost(got: &str, want: &str, tie: bool) -> bool {
    let cents = |s: &str| -> i64 { (s.parse::<f64>().unwrap() * 100.0).round() as i64 };
    got == want || (tie && (cents(got) - cents(want)).abs() == 1)
}

/// Every difference between a month's report and the truth, one line each.
fn compare(
    month: &str,
    got: &BTreeMap<(String, String), (Fig, String)>,
    truth: &Truth,
) -> Vec<String> {
    let mut bad = Vec::new();
    for section in ["total", "user", "group", "profile"] {
        let want: BTreeMap<&str, &(Fig, i64, bool)> = truth
            .iter()
            .filter(|((m, s, _), _)| m == month && s == section)
            .map(|((_, _, k), v)| (k.as_str(), v))
            .collect();
        let have: BTreeSet<&str> = got
            .keys()
            .filter(|(s, _)| s == section)
            .map(|(_, k)| k.as_str())
            .collect();
        for k in have.iter().filter(|k| !want.contains_key(*k)) {
            bad.push(format!(
                "{month} {section} {k}: in the report, not in the truth"
            ));
        }
        for (k, (fig, ms, tie)) in &want {
            let Some((g, _)) = got.get(&(section.to_string(), k.to_string())) else {
                bad.push(format!("{month} {section} {k}: missing from the report"));
                continue;
            };
            if g.seconds != fig.seconds
                || g.sessions != fig.sessions
                || !same_cost(&g.cost, &fig.cost, *tie)
            {
                bad.push(format!(
                    "{month} {section} {k}: report {} s, {} sessions, {}; truth {} s ({ms} ms), {} sessions, {}",
                    g.seconds, g.sessions, g.cost, fig.seconds, fig.sessions, fig.cost
                ));
            }
        }
    }
    bad
}

/// The month's and the previous month's cost and server-hours as the Markdown headline shows them.
fn md_headline(md: &str, label: &str) -> (String, String) {
    let line = md
        .lines()
        .find(|l| l.starts_with(&format!("| {label} |")))
        .unwrap_or_else(|| panic!("no {label} row in\n{md}"));
    let f: Vec<&str> = line.split('|').map(str::trim).collect();
    (f[2].to_string(), f[3].to_string())
}

/// The same from the HTML report's cards.
fn html_card(html: &str, label: &str) -> (String, String) {
    let needle = format!("<small>{label}</small><b>");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {label} card"));
    let rest = &html[at + needle.len()..];
    let now = &rest[..rest.find("</b>").unwrap()];
    let rest = &rest[rest.find("<small>").unwrap() + 7..];
    let before = &rest[..rest.find(" last month").unwrap()];
    (now.to_string(), before.to_string())
}

fn hours(ms: i64) -> String {
    // The report's arithmetic: µs / 3.6e9, two decimals.
    format!("{:.2}", (ms * 1000) as f64 / 3.6e9)
}

#[test]
fn monthly_reports_equal_an_independent_simulation_to_the_second_and_the_cent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sim");
    let sim = std::process::Command::new(python())
        .arg(root().join("fixtures/month/simulate.py"))
        .args(["--seed", "17", "--out"])
        .arg(&out)
        .output()
        .expect("run python3 (HUBPULSE_PYTHON) for fixtures/month/simulate.py");
    assert!(
        sim.status.success(),
        "simulate.py: {}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let truth = read_truth(&out.join("truth.csv"));
    let lake = dir.path().join("lake");
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(&lake)
            .arg(out.join("hub.log")),
    );

    let mut bad = Vec::new();
    let mut rows = BTreeMap::new();
    for month in ["2026-10", "2026-11"] {
        let got = read_report(&report(&lake, month, "csv"));
        bad.extend(compare(month, &got, &truth));
        rows.insert(month, got);
    }
    // Each month's figures, whichever report shows them: September (from the 20th, when the
    // data begins) in October's report, October in November's.
    let t = |m: &str| truth[&(m.to_string(), "total".to_string(), "total".to_string())].clone();
    let row = |m: &str, section: &str| rows[m][&(section.to_string(), "total".to_string())].clone();
    let prev = |m: &str| row(m, "previous_month_total");
    let own = |m: &str| row(m, "total");
    let (sep, oct, nov) = (t("2026-09"), t("2026-10"), t("2026-11"));
    for (label, (fig, _), want) in [
        ("September in October's report", prev("2026-10"), &sep),
        ("October in November's report", prev("2026-11"), &oct),
    ] {
        if fig.seconds != want.0.seconds
            || fig.sessions != want.0.sessions
            || !same_cost(&fig.cost, &want.0.cost, want.2)
        {
            bad.push(format!("{label}: report {fig:?}, truth {:?}", want.0));
        }
    }
    assert_eq!(
        prev("2026-11").1,
        own("2026-10").1,
        "October's row in November's report and October's own total row"
    );

    // Markdown and HTML say the same totals.
    for (month, now, before) in [("2026-10", &oct, &sep), ("2026-11", &nov, &oct)] {
        let md = report(&lake, month, "md");
        let html = report(&lake, month, "html");
        let cost = |f: &(Fig, i64, bool)| format!("{} EUR", f.0.cost);
        for (format, (c_now, c_before), (h_now, h_before)) in [
            (
                "md",
                md_headline(&md, "Cost"),
                md_headline(&md, "Server-hours"),
            ),
            (
                "html",
                html_card(&html, "Cost"),
                html_card(&html, "Server-hours"),
            ),
        ] {
            let want = (cost(now), cost(before), hours(now.1), hours(before.1));
            let have = (c_now, c_before, h_now, h_before);
            if have != want && !(now.2 || before.2) {
                bad.push(format!(
                    "{month} {format} headline: {have:?}, truth {want:?}"
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} differences from the simulation's truth:\n{}",
        bad.len(),
        bad.join("\n")
    );
    // The scenario holds every shape it is meant to (simulate.py asserts how each ended).
    let log = std::fs::read_to_string(out.join("hub.log")).unwrap();
    for shape in [
        "still running",
        "appears to have stopped while the Hub was down",
        "server stopped, with exit code: 137",
        "server stopped with exit code: 137",
        "Culling server ",
        "jupyter-frank-example-org---",
        "Received signal SIGTERM",
    ] {
        assert!(log.contains(shape), "the simulated log has no {shape:?}");
    }
}
