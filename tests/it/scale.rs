//! The generator's true counts against what the lake and the named queries say.

use std::collections::BTreeMap;

use crate::support::{bin, query_csv, query_num, run_ok};

/// A named query's result as CSV.
fn named(lake: &std::path::Path, name: &str) -> String {
    run_ok(
        bin()
            .args(["query", "--format", "csv", "--name", name, "--lake"])
            .arg(lake),
    )
}

fn csv_map(csv: &str) -> BTreeMap<String, u64> {
    csv.lines()
        .skip(1)
        .map(|l| {
            let (k, v) = l.split_once(',').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn generated_log_round_trips_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let (log, truth_path, lake) = (
        dir.path().join("gen.log"),
        dir.path().join("truth.json"),
        dir.path().join("lake"),
    );
    run_ok(
        bin()
            .args([
                "generate",
                "--users",
                "40",
                "--days",
                "3",
                "--seed",
                "7",
                "--activity-interval",
                "120",
                "--out",
            ])
            .arg(&log)
            .arg("--truth")
            .arg(&truth_path),
    );
    let truth: hubpulse::generate::Truth =
        serde_json::from_slice(&std::fs::read(&truth_path).unwrap()).unwrap();
    let summary = run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(&lake)
            .arg(&log),
    );
    assert!(
        summary.contains(&format!("records={}", truth.records)),
        "{summary} vs {}",
        truth.records
    );
    assert!(
        summary.contains(&format!("unparsed={}", truth.unparsed)),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("bytes={}", truth.bytes)),
        "{summary}"
    );

    let kinds = csv_map(&query_csv(
        &lake,
        "SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind",
    ));
    for (k, n) in &truth.kinds {
        assert_eq!(kinds.get(k), Some(n), "kind {k}");
    }
    let lines = query_num(&lake, "SELECT sum(lines) FROM events");
    assert_eq!(u64::try_from(lines).unwrap(), truth.lines);

    let classes = csv_map(&query_csv(
        &lake,
        "SELECT CAST(status / 100 AS VARCHAR) || 'xx', count(*) FROM events WHERE kind = 'request' GROUP BY 1 ORDER BY 1",
    ));
    assert_eq!(classes, truth.requests_by_status_class);

    let dau = csv_map(&named(&lake, "daily_active_users"));
    assert_eq!(dau, truth.daily_active_users);
    let spawns: BTreeMap<String, u64> = named(&lake, "spawn_duration_percentiles")
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_string(), f[1].parse().unwrap())
        })
        .collect();
    assert_eq!(spawns, truth.spawns_succeeded_per_day);
}
