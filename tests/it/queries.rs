//! Golden results for every named query in `queries/`, over a lake built from the fixtures.

use std::path::{Path, PathBuf};

use crate::support::{bin, check_golden, fixture_logs, query_num, root, run_ok};

/// A time-only line before any dated record (CHP 3.x/4.x) takes its file's modification date:
/// pin it to the day the golden results were made, so that they hold on any day and any clone.
fn pin_mtimes(files: &[PathBuf]) {
    let day = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_867_200); // 2026-11-28T12:00:00Z
    for f in files {
        let file = std::fs::File::options().append(true).open(f).unwrap();
        file.set_modified(day).unwrap();
    }
}

fn fixture_lake(dir: &Path) -> PathBuf {
    let lake = dir.join("lake");
    pin_mtimes(&fixture_logs());
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--hub", "fixtures", "--lake"])
            .arg(&lake)
            .args(fixture_logs()),
    );
    lake
}

#[test]
fn every_named_query_has_a_golden_result() {
    let dir = tempfile::tempdir().unwrap();
    let lake = fixture_lake(dir.path());
    let mut names: Vec<String> = std::fs::read_dir(root().join("queries"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    assert!(names.len() >= 6);
    for name in names {
        let sql = std::fs::read_to_string(root().join(format!("queries/{name}.sql"))).unwrap();
        assert!(
            sql.starts_with("-- "),
            "{name}.sql must open with a comment saying what it answers"
        );
        let csv = run_ok(
            bin()
                .args(["query", "--format", "csv", "--lake"])
                .arg(&lake)
                .args(["--name", &name]),
        );
        assert!(
            csv.lines().count() > 1,
            "{name} returned no rows over the fixtures"
        );
        check_golden(&root().join(format!("fixtures/queries/{name}.csv")), &csv);
    }
}

#[test]
fn named_query_files_and_embedded_copies_agree() {
    for name in hubpulse::query::named::NAMES {
        let on_disk = std::fs::read_to_string(root().join(format!("queries/{name}.sql"))).unwrap();
        assert_eq!(hubpulse::query::named::get(name), Some(on_disk.as_str()));
    }
}

#[test]
fn partition_pruning_by_dt_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let lake = fixture_lake(dir.path());
    let n = query_num(
        &lake,
        "SELECT count(*) AS n FROM events WHERE dt = '2022-12-12'",
    );
    let all = query_num(
        &lake,
        "SELECT count(*) AS n FROM events WHERE CAST(ts AS DATE) = DATE '2022-12-12'",
    );
    assert_eq!(n, all);
    let json = run_ok(
        bin()
            .args(["query", "--format", "json", "--lake"])
            .arg(&lake)
            .arg("SELECT kind, count(*) AS n FROM events GROUP BY kind"),
    );
    for l in json.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["kind"].is_string() && v["n"].is_number());
    }
    let table = run_ok(
        bin()
            .args(["query", "--lake"])
            .arg(&lake)
            .arg("SELECT 1 AS one"),
    );
    assert!(table.contains("| one |"), "{table}");
}
