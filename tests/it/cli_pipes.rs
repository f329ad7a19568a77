//! A reader that stops early (`hubpulse … | head`) ends every command quietly with exit 0, with
//! real pipes: the binary writes into an OS pipe whose reading end is closed, either before it
//! starts (every write fails: the command must stop at its first line) or after one line was
//! read while the command still had more than a pipe's capacity to write (the write that fails
//! is one that was blocked). Also with stderr on the same closed pipe (`2>&1 | head`), where an
//! `eprintln!` would panic.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{bin, root, run_ok};

/// Exit status and stderr of `cmd` with stdout (and, with `stderr_too`, stderr) on a pipe whose
/// reader is gone before the command starts.
fn with_closed_stdout(cmd: &mut Command, stderr_too: bool) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    if stderr_too {
        cmd.stderr(writer.try_clone().unwrap());
    } else {
        cmd.stderr(Stdio::piped());
    }
    let out = cmd
        .stdout(writer)
        .stdin(Stdio::null())
        .output()
        .expect("spawn hubpulse");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn assert_quiet(what: &str, mut cmd: Command) {
    for stderr_too in [false, true] {
        let (code, err) = with_closed_stdout(&mut cmd, stderr_too);
        assert_eq!(
            code,
            Some(0),
            "{what} (stderr closed too: {stderr_too}): {err}"
        );
        assert_eq!(err, "", "{what}: nothing on stderr");
    }
}

/// A lake with the real hub sample in it.
fn sample_lake(dir: &std::path::Path) -> std::path::PathBuf {
    let lake = dir.join("lake");
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(&lake)
            .arg(root().join("fixtures/logs/real/hub-only/hub.log")),
    );
    lake
}

#[test]
fn every_command_that_prints_ends_quietly_when_its_reader_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let log = root().join("fixtures/logs/real/hub-only/hub.log");
    let cfg = root().join("hubpulse.example.toml");
    let cmd = |args: &[&str]| {
        let mut c = bin();
        c.args(args);
        c
    };
    let lake_s = lake.display().to_string();
    let log_s = log.display().to_string();
    for format in ["table", "csv", "json"] {
        assert_quiet(
            &format!("query --format {format}"),
            cmd(&[
                "query",
                "--lake",
                &lake_s,
                "--format",
                format,
                "SELECT * FROM events",
            ]),
        );
    }
    assert_quiet(
        "query --name",
        cmd(&["query", "--lake", &lake_s, "--name", "activity_by_user"]),
    );
    assert_quiet("parse", cmd(&["parse", &log_s]));
    assert_quiet("parse --summary", cmd(&["parse", "--summary", &log_s]));
    assert_quiet(
        "check-config",
        cmd(&["check-config", &cfg.display().to_string()]),
    );
    assert_quiet("kinds", cmd(&["kinds"]));
    assert_quiet(
        "report monthly",
        cmd(&[
            "report", "monthly", "--lake", &lake_s, "--month", "2026-11", "--format", "md",
        ]),
    );
    assert_quiet(
        "capacity plan",
        cmd(&[
            "capacity",
            "plan",
            "--lake",
            &lake_s,
            "--at",
            "2026-11-30T08:00:00Z",
        ]),
    );
    let mut push = cmd(&["dashboards", "push", "--dry-run"]);
    push.env_remove("DD_API_KEY").env_remove("DD_APP_KEY");
    assert_quiet("dashboards push --dry-run", push);
    let out = dir.path().join("gen.log");
    assert_quiet(
        "generate",
        cmd(&[
            "generate",
            "--users",
            "2",
            "--days",
            "1",
            "--out",
            &out.display().to_string(),
            "--truth",
            &dir.path().join("truth.json").display().to_string(),
        ]),
    );
    assert_quiet(
        "ingest",
        cmd(&[
            "ingest",
            "--no-progress",
            "--lake",
            &dir.path().join("lake2").display().to_string(),
            &log_s,
        ]),
    );
    assert_quiet(
        "demo",
        cmd(&[
            "demo",
            "--lake",
            &dir.path().join("demo").display().to_string(),
        ]),
    );
    assert_quiet("--help", cmd(&["--help"]));
    assert_quiet("query --help", cmd(&["query", "--help"]));
    assert_quiet("--version", cmd(&["--version"]));
}

/// `hubpulse query … | head -1` (and `2>&1 | head -1`): the reader takes one line and leaves
/// while the query still has far more than a pipe's 64 KiB to write.
#[test]
fn query_piped_into_head_exits_0_when_head_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let lake = sample_lake(dir.path());
    let sql = "SELECT e.message, n.value FROM events e CROSS JOIN generate_series(1, 20) n";
    let all = run_ok(
        bin()
            .args(["query", "--format", "csv", "--lake"])
            .arg(&lake)
            .arg(sql),
    );
    assert!(
        all.len() > 256 << 10,
        "far more than a pipe holds (64 KiB): {} bytes",
        all.len()
    );
    for stderr_too in [false, true] {
        let (reader, writer) = std::io::pipe().unwrap();
        let mut cmd = bin();
        cmd.args(["query", "--format", "csv", "--lake"])
            .arg(&lake)
            .arg(sql)
            .stdin(Stdio::null());
        if stderr_too {
            cmd.stderr(writer.try_clone().unwrap());
        } else {
            cmd.stderr(Stdio::piped());
        }
        let child = cmd.stdout(writer).spawn().unwrap();
        // `cmd` still holds the writing end(s): drop them, so that only the child writes.
        drop(cmd);
        let mut head = BufReader::new(reader);
        let mut first = String::new();
        head.read_line(&mut first).unwrap();
        assert_eq!(first.trim_end(), "message,value", "the CSV header");
        drop(head);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "stderr too: {stderr_too}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
