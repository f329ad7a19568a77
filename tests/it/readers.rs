//! The lake is readable by independent readers (DuckDB and Spark from PyPI) through the tables
//! and views docs/ENGINES.md declares, with the same rows as `hubpulse query`.

use std::path::{Path, PathBuf};
use std::process::Command;

use hubpulse::query::engines::{Engine, script};

use crate::support::{bin, python, query_csv, query_num, root, run_ok};

/// A real hub's log (fixtures/logs/real) with four lines added next to the lines they copy:
/// a request whose duration has three decimals and a heartbeat whose has one (both parsed as
/// requests that `log_request` did not write, so their text is kept), a heartbeat stamped to
/// the µs (a row, its time listed exactly), and a request with two spaces after its status (a
/// `message` row).
fn varied_log(dir: &Path) -> PathBuf {
    let real = std::fs::read_to_string(root().join("fixtures/logs/real/hub-only/hub.log")).unwrap();
    let mut out = String::new();
    let (mut request, mut beat, mut spaced) = (false, false, false);
    for line in real.lines() {
        out.push_str(line);
        out.push('\n');
        if !request && line.contains("log:192] 200 GET /hub/api/ (@127.0.0.1) 5.35ms") {
            out.push_str(&line.replace("5.35ms", "5.350ms"));
            out.push('\n');
            request = true;
        } else if !beat && line.contains("/activity (alice@127.0.0.1) 43.39ms") {
            out.push_str(&line.replace("43.39ms", "43.4ms"));
            out.push('\n');
            // `[I 2026-11-28 17:04:22.197 JupyterHub …`: three more digits after the ms.
            out.push_str(&format!("{}250{}", &line[..26], &line[26..]));
            out.push('\n');
            beat = true;
        } else if !spaced && line.contains("log:192] 302 GET /hub/logout -> ") {
            out.push_str(&line.replacen("302 GET", "302  GET", 1));
            out.push('\n');
            spaced = true;
        }
    }
    assert!(
        request && beat && spaced,
        "fixtures/logs/real/hub-only/hub.log changed"
    );
    let path = dir.join("hub.log");
    std::fs::write(&path, out).unwrap();
    path
}

/// A lake with every kind of stored row the views rebuild, and `hubpulse query`'s `events`,
/// `lifecycle` and their column types in `<dir>/want/` (see tests/support/engine_views.py).
fn lake_and_want(dir: &Path) -> PathBuf {
    let lake = dir.join("lake");
    let real = root().join("fixtures/logs/real/hub-only");
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--hub", "prod-hub", "--lake"])
            .arg(&lake)
            .arg(varied_log(dir))
            .arg(real.join("chp.log"))
            .arg(real.join("singleuser-alice-default.log")),
    );
    // What the comparison must cover: each is a way a stored row differs from its view row.
    for (what, sql) in [
        (
            "folded heartbeats",
            "SELECT count(*) FROM activity WHERE offsets IS NOT NULL",
        ),
        (
            "times of unfolded heartbeats",
            "SELECT count(*) FROM activity WHERE offsets IS NULL",
        ),
        (
            "heartbeats stamped finer than a millisecond",
            "SELECT count(*) FROM events_rows WHERE route = '/hub/api/users/{user}/activity' \
             AND text IS NULL AND CAST(ts AS BIGINT) % 1000 <> 0",
        ),
        (
            "requests rebuilt, redirects among them",
            "SELECT count(*) FROM events_rows WHERE kind = 'request' AND text IS NULL AND target IS NOT NULL",
        ),
        (
            "requests kept as written",
            "SELECT count(*) FROM events_rows WHERE kind = 'request' AND text IS NOT NULL",
        ),
        (
            "catalogue rows",
            "SELECT count(*) FROM events_rows WHERE kind NOT IN ('request', 'message', 'unparsed')",
        ),
        ("lifecycle rows", "SELECT count(*) FROM lifecycle_rows"),
    ] {
        assert!(query_num(&lake, sql) > 0, "the lake has no {what}");
    }
    let want = dir.join("want");
    std::fs::create_dir_all(&want).unwrap();
    for view in ["events", "lifecycle"] {
        let rows = run_ok(
            bin()
                .args(["query", "--format", "json", "--lake"])
                .arg(&lake)
                .arg(format!(
                    "SELECT * FROM {view} ORDER BY source_fp, source_offset"
                )),
        );
        std::fs::write(want.join(format!("{view}.jsonl")), rows).unwrap();
    }
    let types = query_csv(
        &lake,
        "SELECT table_name, column_name, data_type FROM information_schema.columns \
         WHERE table_name IN ('events', 'lifecycle') ORDER BY table_name, ordinal_position",
    );
    let body: Vec<&str> = types.lines().skip(1).collect();
    std::fs::write(want.join("types.csv"), body.join("\n") + "\n").unwrap();
    lake
}

/// Run `engine`'s statements of docs/ENGINES.md over `lake` with `py`, then compare its views
/// with `hubpulse query`'s, row by row (tests/support/engine_views.py).
fn views_agree(py: &str, engine: Engine, name: &str, dir: &Path, lake: &Path) {
    let sql = dir.join(format!("{name}.sql"));
    let lake = std::fs::canonicalize(lake).unwrap();
    std::fs::write(&sql, script(engine, &lake.display().to_string())).unwrap();
    let out = Command::new(py)
        .arg(root().join("tests/support/engine_views.py"))
        .arg(name)
        .arg(&sql)
        .arg(dir.join("want"))
        .output()
        .unwrap_or_else(|e| panic!("{py}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name}'s views differ from hubpulse query's:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for view in ["events", "lifecycle"] {
        let n = query_num(&lake, &format!("SELECT count(*) FROM {view}"));
        assert!(
            stdout.contains(&format!("{view} rows={n}\n")),
            "{view}: {stdout}"
        );
    }
}

/// DuckDB's `SELECT * FROM events` (and `lifecycle`) through the documented views equals
/// `hubpulse query`'s, message, heartbeats and types included.
#[test]
fn duckdb_views_give_the_rows_of_hubpulse_query() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_and_want(dir.path());
    views_agree(&python(), Engine::DuckDb, "duckdb", dir.path(), &lake);
}

/// Spark's, through its documented tables and views, the same.
#[test]
fn spark_views_give_the_rows_of_hubpulse_query() {
    let dir = tempfile::tempdir().unwrap();
    let lake = lake_and_want(dir.path());
    let py = crate::support::prereq::spark_python();
    views_agree(&py, Engine::Spark, "spark", dir.path(), &lake);
}

/// Every DuckDB statement of docs/ENGINES.md runs, and reads what it says, on a lake in this
/// layout (two hubs, decoys under `_hubpulse/` that must not be read): the doc cannot drift.
#[test]
fn the_duckdb_statements_in_docs_engines_run_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let engines = crate::support::root().join("bench/engines");
    for (script, arg) in [("make_lake.py", &lake), ("check_duckdb.py", &lake)] {
        let out = Command::new(python())
            .arg(engines.join(script))
            .arg(arg)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "{script}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The Spark statements of docs/ENGINES.md (DataFrame reader with `basePath`, `CREATE TABLE …
/// PARTITIONED BY … LOCATION`, `MSCK REPAIR TABLE`) run in a real local Spark and read what the
/// doc says: one `hub` column, string partitions, microseconds kept, partition filters used.
#[test]
fn the_spark_statements_in_docs_engines_run_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let engines = crate::support::root().join("bench/engines");
    let spark_python = crate::support::prereq::spark_python();
    for (py, script) in [(python(), "make_lake.py"), (spark_python, "check_spark.py")] {
        let out = Command::new(&py)
            .arg(engines.join(script))
            .arg(&lake)
            .output()
            .unwrap_or_else(|e| panic!("{py}: {e} (run tests/support/spark_setup.sh)"));
        assert!(
            out.status.success(),
            "{script}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
