//! The lake is readable as it is by an independent reader (DuckDB from PyPI), with the same answers.

use std::process::Command;

use crate::support::{bin, python, query_csv, root, run_ok};

#[test]
fn duckdb_reads_the_lake_and_agrees_with_datafusion() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(&lake)
            .arg(root().join("fixtures/logs/kubespawner/z2jh-spawn-lifecycle.log"))
            .arg(root().join("fixtures/logs/chp/chp5-ansi-error-object.log")),
    );
    let sql = "SELECT CAST(dt AS VARCHAR) AS dt, kind, count(*) AS n, count(\"user\") AS users, \
               epoch_us(min(ts)) AS first FROM events GROUP BY 1, 2 ORDER BY 1, 2";
    let script = format!(
        "import duckdb, sys\n\
         con = duckdb.connect()\n\
         con.execute(\"SET TimeZone='UTC'\")\n\
         con.execute(\"CREATE VIEW events AS SELECT * FROM read_parquet('{}/events/*/*/*.parquet', hive_partitioning=true)\")\n\
         for r in con.execute(\"{}\").fetchall():\n    print(','.join('' if v is None else str(v) for v in r))\n",
        lake.display(),
        sql.replace('"', "\\\"")
    );
    let out = Command::new(python())
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "duckdb failed (set HUBPULSE_PYTHON to a Python with duckdb; .ci/run does): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let duck = String::from_utf8(out.stdout).unwrap();
    let df = query_csv(
        &lake,
        "SELECT dt, kind, count(*) AS n, count(\"user\") AS users, \
         CAST(ROUND(date_part('epoch', min(ts)) * 1000000) AS BIGINT) AS first FROM events GROUP BY 1, 2 ORDER BY 1, 2",
    );
    let norm = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let df_rows: Vec<String> = norm(&df).into_iter().skip(1).collect();
    let duck_rows = norm(&duck);
    assert_eq!(duck_rows.len(), df_rows.len(), "duck:\n{duck}\ndf:\n{df}");
    for (d, f) in duck_rows.iter().zip(&df_rows) {
        let (d, f): (Vec<&str>, Vec<&str>) = (d.split(',').collect(), f.split(',').collect());
        assert_eq!(d, f, "row differs: duck {d:?} datafusion {f:?}");
    }
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
