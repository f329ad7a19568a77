//! The command-line contract: exit codes and one-line errors that name what and where.

use std::io::Write;
use std::process::Stdio;

use crate::support::{bin, root, run, run_ok};

fn stderr_line(out: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        s.trim_end().lines().count(),
        1,
        "stderr should be one line: {s:?}"
    );
    s
}

#[test]
fn missing_file_is_exit_2_naming_the_file() {
    let out = run(bin().args(["parse", "/nonexistent/hub.log"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("/nonexistent/hub.log"));
}

#[test]
fn bad_zone_is_exit_2_naming_the_zone() {
    let f = root().join("fixtures/logs/chp/chp3.log");
    let out = run(bin().args(["parse", "--tz", "Mars/Olympus"]).arg(&f));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("Mars/Olympus"));
}

#[test]
fn bad_catalogue_entry_is_exit_2_naming_file_and_entry() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("mine.toml"),
        "families = [\"hub\"]\n[[kind]]\nname = \"broken_kind\"\npattern = '^User (?P<user>\\S+'\nfields = [\"user\"]\n",
    )
    .unwrap();
    let f = root().join("fixtures/logs/chp/chp3.log");
    let out = run(bin().arg("parse").arg("--parsers").arg(dir.path()).arg(&f));
    assert_eq!(out.status.code(), Some(2));
    let e = stderr_line(&out);
    assert!(e.contains("mine.toml") && e.contains("broken_kind"), "{e}");
}

#[test]
fn catalogue_example_that_its_pattern_rejects_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.toml"),
        "families = [\"hub\"]\n[[kind]]\nname = \"greeting\"\npattern = '^hello'\nexample = \"goodbye\"\n",
    )
    .unwrap();
    let out = run(bin().arg("kinds").arg("--parsers").arg(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("greeting"));
}

#[test]
fn operator_taught_kind_is_used_without_recompiling() {
    let dir = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(root().join("parsers")).unwrap() {
        let p = f.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.path().join("zz-site.toml"),
        "families = [\"hub\"]\n[[kind]]\nname = \"quota_warning\"\npattern = '^Quota: (?P<user>\\S+) used (?P<percent>\\d+)%'\nfields = [\"user\", \"percent\"]\nexample = \"Quota: alice used 95%\"\n",
    )
    .unwrap();
    let log = dir.path().join("x.log");
    std::fs::write(
        &log,
        "[W 2026-11-28 10:00:00.000 JupyterHub quota:12] Quota: alice used 95%\n",
    )
    .unwrap();
    let out = run_ok(
        bin()
            .arg("parse")
            .arg("--parsers")
            .arg(dir.path())
            .arg(&log),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["kind"], "quota_warning");
    assert_eq!(v["user"], "alice");
    assert_eq!(v["attrs"], "{\"percent\":\"95\"}");
    // The embedded catalogue does not know it: a generic message, not lost.
    let out = run_ok(bin().arg("parse").arg(&log));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["kind"], "message");
}

#[test]
fn parse_reads_stdin_and_prints_json_lines_with_every_column() {
    let mut child = bin()
        .args(["parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[I 2026-11-28 15:30:10.250 JupyterHub log:192] 200 GET /hub/api/ (@127.0.0.1) 1.14ms\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ts"], "2026-11-28T15:30:10.250000Z");
    assert_eq!(v["route"], "/hub/api");
    assert_eq!(v["user"], serde_json::Value::Null);
    assert_eq!(
        v.as_object().unwrap().len(),
        27,
        "every lake column, nulls included: {v}"
    );
}

#[test]
fn query_errors_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(bin()
        .args(["query", "--lake"])
        .arg(dir.path().join("nope"))
        .arg("SELECT 1"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("nope"));
    let lake = dir.path().join("lake");
    run_ok(
        bin()
            .args(["ingest", "--lake"])
            .arg(&lake)
            .arg(root().join("fixtures/logs/chp/chp3.log")),
    );
    let out = run(bin()
        .args(["query", "--lake"])
        .arg(&lake)
        .arg("SELEC broken"));
    assert_eq!(out.status.code(), Some(2));
    stderr_line(&out);
    let out = run(bin()
        .args(["query", "--lake"])
        .arg(&lake)
        .args(["--name", "no_such_query"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_line(&out).contains("daily_active_users"));
}

#[test]
fn usage_errors_are_exit_2() {
    let out = run(bin().args(["ingest", "x.log"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn parse_summary_counts_what_json_lines_print() {
    let f = root().join("fixtures/logs/real/hub-only/hub.log");
    let json = run_ok(bin().arg("parse").arg(&f));
    let summary = run_ok(bin().args(["parse", "--summary"]).arg(&f));
    let records = json.lines().count();
    assert!(
        summary.contains(&format!("records={records} ")),
        "{summary}"
    );
    let lines = std::fs::read_to_string(&f).unwrap().lines().count();
    assert!(summary.contains(&format!("lines={lines} ")), "{summary}");
}

/// A `[culler]` with only a timeout stops servers: `check-config` says so plainly (and which),
/// and says "stops nothing" for a dry run.
#[test]
fn check_config_says_plainly_whether_the_culler_will_stop_servers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    let base = format!(
        "[lake]\npath = {:?}\n[[files]]\ninclude = [{:?}]\n[hub]\napi_url = \"http://127.0.0.1:1/hub/api\"\n",
        dir.path().join("lake"),
        dir.path().join("hub.log")
    );
    std::fs::write(&cfg, format!("{base}[culler]\ntimeout = \"30m\"\n")).unwrap();
    let out = run_ok(bin().arg("check-config").arg(&cfg));
    assert!(
        out.contains("the idle culler is live: it WILL STOP default and named servers idle for more than 30 min"),
        "{out}"
    );
    std::fs::write(
        &cfg,
        format!("{base}[culler]\ntimeout = \"30m\"\ndry_run = true\ncull_named_servers = false\n"),
    )
    .unwrap();
    let out = run_ok(bin().arg("check-config").arg(&cfg));
    assert!(
        out.contains("dry run: it records which default servers it would stop, and stops nothing"),
        "{out}"
    );
}
