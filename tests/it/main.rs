//! hubpulse's integration tests: one binary, one module per behaviour area.
//! They run the real binary or the library against real files, real lakes and real servers.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod admission_cache;
mod admission_wait;
mod agent;
mod capacity;
mod cli;
mod cli_edges;
mod cli_help;
mod cli_pipes;
mod cull;
mod cull_admission;
mod cull_common;
mod dd_agent;
mod dd_common;
mod dd_dashboards;
mod dd_derive;
mod dd_payload;
mod dd_sink;
mod dd_truth;
mod disk_full;
mod golden;
mod grounding;
mod http_limits;
mod hub_api;
mod kube_fixtures;
mod kube_source;
mod lake;
mod month_truth;
mod observe;
mod pods_table;
mod queries;
mod quota_trust;
mod readers;
mod real_hub;
mod report;
mod report_observed;
mod rotation;
mod s3;
mod scale;
mod scrub;
mod z2jh_values;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python of the real-JupyterHub venv (fixtures/harness/setup.sh; `HUBPULSE_JH_DIR` moves it).
pub fn harness_python() -> PathBuf {
    let dir = std::env::var_os("HUBPULSE_JH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hubpulse-jh")
        });
    dir.join("venv/bin/python")
}

/// Every fixture log (`fixtures/logs/**/*.log`), sorted.
pub fn fixture_logs() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root().join("fixtures/logs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "log") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hubpulse"))
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn hubpulse");
    assert!(
        out.status.success(),
        "{:?} failed: {}\n{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8 stdout")
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("spawn hubpulse")
}

/// `HUBPULSE_BLESS=1` rewrites golden files instead of comparing (then review the diff).
pub fn bless() -> bool {
    std::env::var_os("HUBPULSE_BLESS").is_some()
}

pub fn check_golden(path: &Path, actual: &str) {
    if bless() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with HUBPULSE_BLESS=1 to create it, then review it)",
            path.display()
        )
    });
    if expected != actual {
        let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
        let first = e
            .iter()
            .zip(&a)
            .position(|(x, y)| x != y)
            .unwrap_or(e.len().min(a.len()));
        panic!(
            "{} differs at line {} ({} expected lines, {} actual)\nexpected: {}\nactual:   {}",
            path.display(),
            first + 1,
            e.len(),
            a.len(),
            e.get(first).unwrap_or(&"<none>"),
            a.get(first).unwrap_or(&"<none>")
        );
    }
}

/// The Python interpreter that has duckdb/pyarrow: `HUBPULSE_PYTHON`, else the venv that
/// `bench/setup.sh` makes (scripts/test.sh runs it), else `python3`.
pub fn python() -> String {
    if let Ok(p) = std::env::var("HUBPULSE_PYTHON") {
        return p;
    }
    let venv = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/hubpulse-bench/venv/bin/python");
    if venv.exists() {
        venv.display().to_string()
    } else {
        "python3".into()
    }
}

/// Query the lake through the CLI and return CSV.
/// A lake at `dir/lake` holding `fixture` (a log, by its path from the repository root),
/// ingested by the binary.
pub fn fixture_lake(dir: &Path, fixture: &str) -> PathBuf {
    let lake = dir.join("lake");
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(&lake)
            .arg(root().join(fixture)),
    );
    lake
}

pub fn query_csv(lake: &Path, sql: &str) -> String {
    run_ok(
        bin()
            .args(["query", "--format", "csv", "--lake"])
            .arg(lake)
            .arg(sql),
    )
}

/// A single number from a one-cell CSV result.
pub fn query_num(lake: &Path, sql: &str) -> i64 {
    let csv = query_csv(lake, sql);
    let v = csv
        .lines()
        .nth(1)
        .unwrap_or_else(|| panic!("no row for {sql}: {csv}"));
    v.trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number for {sql}: {v}"))
}
