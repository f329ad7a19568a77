//! What a new operator hit first (issue 20), each pinned: a follow path that matches nothing is
//! said, an input that is all unparsed is warned about, SQL errors and unknown tables are one
//! human line, `check-config` reads as a summary, and the demo ends with what to try next (and
//! the report it suggests has data).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{bin, fixture_lake, root, run, run_ok};

fn one_stderr_line(out: &std::process::Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(s.lines().count(), 1, "one line on stderr: {s:?}");
    s
}

#[test]
fn following_a_missing_file_or_a_directory_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let missing = dir.path().join("no/such/hub.log");
    let out = run(bin()
        .args(["run", "--http", "off", "--lake"])
        .arg(&lake)
        .arg("--follow")
        .arg(&missing));
    assert_eq!(out.status.code(), Some(2));
    let e = one_stderr_line(&out);
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("no such file") && e.contains("glob"), "{e}");
    let out = run(bin()
        .args(["run", "--http", "off", "--lake"])
        .arg(&lake)
        .arg("--follow")
        .arg(dir.path()));
    assert_eq!(out.status.code(), Some(2));
    let e = one_stderr_line(&out);
    assert!(e.contains("is a directory") && e.contains("/*.log"), "{e}");
    // The same check for a config's [[files]] include.
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[lake]\npath = {:?}\n[http]\nlisten = \"off\"\n[[files]]\ninclude = [{:?}]\n",
            lake, missing
        ),
    )
    .unwrap();
    let out = run(bin().args(["run", "--config"]).arg(&cfg));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(one_stderr_line(&out).contains("no such file"));
}

/// A glob that matches nothing is said once, and the agent then picks up the file that appears.
#[test]
fn a_glob_that_matches_nothing_yet_is_said_once_and_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut child = bin()
        .args(["run", "--http", "off", "--flush-interval", "1s", "--lake"])
        .arg(&lake)
        .arg("--follow")
        .arg(logs.join("*.log"))
        .env("HUBPULSE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a warning within 60 s");
    assert!(
        first.contains("no file matches yet") && first.contains("waiting"),
        "{first}"
    );
    std::fs::write(
        logs.join("hub.log"),
        std::fs::read(root().join("fixtures/logs/real/hub-only/hub.log")).unwrap(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = run(bin()
            .args(["query", "--format", "csv", "--lake"])
            .arg(&lake)
            .arg("SELECT count(*) AS n FROM events"));
        let n = String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.parse::<u64>().ok())
            .unwrap_or(0);
        if n > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the file that appeared was not followed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::support::sigterm(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    reader.join().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        !rest.iter().any(|l| l.contains("no file matches")),
        "said once: {rest:?}"
    );
}

/// Deterministic bytes that are no text at all (xorshift).
fn garbage(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn an_input_that_is_all_unparsed_is_kept_and_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("garbage.bin");
    std::fs::write(&bad, garbage(64 << 10)).unwrap();
    let lake = dir.path().join("lake");
    let out = run(bin()
        .args(["ingest", "--no-progress", "--lake"])
        .arg(&lake)
        .arg(&bad));
    assert_eq!(out.status.code(), Some(0));
    let e = one_stderr_line(&out);
    assert!(
        e.contains("warning") && e.contains("garbage.bin") && e.contains("100 % unparsed"),
        "{e}"
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(!summary.contains("records=0 "), "kept: {summary}");
    let out = run(bin().args(["parse", "--summary"]).arg(&bad));
    assert_eq!(out.status.code(), Some(0));
    assert!(one_stderr_line(&out).contains("100 % unparsed"));
    // A real log: no warning.
    let out = run(bin()
        .args(["ingest", "--no-progress", "--lake"])
        .arg(&lake)
        .arg(root().join("fixtures/logs/real/hub-only/hub.log")));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sql_errors_and_unknown_tables_are_one_human_line() {
    let dir = tempfile::tempdir().unwrap();
    let lake = fixture_lake(dir.path(), "fixtures/logs/real/hub-only/hub.log");
    let q = |sql: &str| run(bin().args(["query", "--lake"]).arg(&lake).arg(sql));
    let out = q("SELEC broken");
    assert_eq!(out.status.code(), Some(2));
    let e = one_stderr_line(&out);
    assert!(e.starts_with("hubpulse: SQL syntax error: "), "{e}");
    assert!(!e.contains("ParserError("), "no Rust debug form: {e}");
    let out = q("SELECT * FROM decisions");
    assert_eq!(out.status.code(), Some(2));
    let e = one_stderr_line(&out);
    assert!(e.contains("no table 'decisions' in this lake"), "{e}");
    assert!(!e.contains("datafusion.public"), "{e}");
    for t in ["events", "lifecycle", "activity"] {
        assert!(e.contains(t), "names the tables it has: {e}");
        run_ok(
            bin()
                .args(["query", "--lake"])
                .arg(&lake)
                .arg(format!("SELECT count(*) FROM {t}")),
        );
    }
    run_ok(
        bin()
            .args(["query", "--lake"])
            .arg(&lake)
            .arg("SELECT count(*) FROM sessions"),
    );
}

#[test]
fn check_config_prints_a_readable_summary_and_no_secret() {
    let out = run_ok(
        bin()
            .arg("check-config")
            .arg(root().join("deploy/hubpulse.toml")),
    );
    assert!(!out.contains("AgentConfig") && !out.contains('{'), "{out}");
    for key in [
        "agent",
        "lake",
        "kubernetes",
        "http",
        "datadog",
        "hub API",
        "culler",
        "capacity",
        "pods",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(key)),
            "a {key} line: {out}"
        );
    }
    assert!(
        out.contains("0.0.0.0:9464") && out.contains("user-placeholder"),
        "{out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[lake]\npath = {:?}\n[[files]]\ninclude = [\"/var/log/hub*.log\"]\n[datadog]\nurl = \"http://proxyuser:pr0xy-s3cret@127.0.0.1:1\"\n[hub]\napi_url = \"http://hub:8081/hub/api\"\ntoken_file = \"/etc/hubpulse/hub-token\"\n",
            dir.path().join("lake")
        ),
    )
    .unwrap();
    let out = run_ok(bin().arg("check-config").arg(&cfg));
    assert!(
        !out.contains("pr0xy-s3cret") && !out.contains("proxyuser"),
        "{out}"
    );
    assert!(out.contains("/etc/hubpulse/hub-token"), "{out}");
    assert!(out.contains("/var/log/hub*.log"), "{out}");
}

#[test]
fn the_demo_ends_with_what_to_try_next_and_its_report_has_data() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = run_ok(bin().args(["demo", "--lake"]).arg(&lake));
    assert!(!out.contains(" 1 commits"), "{out}");
    let report_cmd = format!("hubpulse report monthly --lake {} --month ", lake.display());
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(&report_cmd))
        .unwrap_or_else(|| panic!("a report to try: {out}"));
    assert!(out.contains("hubpulse dashboards push"), "{out}");
    assert!(out.contains("hubpulse run --config"), "{out}");
    // Run the suggested report as printed (as Markdown, to stdout): the month has the sample.
    let args: Vec<&str> = line.split_whitespace().skip(1).collect();
    let month = args[args.iter().position(|a| *a == "--month").unwrap() + 1];
    let md = run_ok(
        bin()
            .args(["report", "monthly", "--format", "md", "--lake"])
            .arg(&lake)
            .args(["--month", month]),
    );
    assert!(!md.contains("holds no record"), "{md}");
}

/// `check-config` with `text`: its one error line (exit 2), the file's path taken out.
fn config_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("a.toml");
    std::fs::write(&cfg, text).unwrap();
    let out = run(bin().arg("check-config").arg(&cfg));
    assert_eq!(out.status.code(), Some(2), "{text}");
    one_stderr_line(&out).replace(&cfg.display().to_string(), "a.toml")
}

/// An error's position is where the TOML parser saw the key, not the first line a search of
/// the text finds.
#[test]
fn config_errors_point_at_the_key_the_parser_read() {
    let base = "[lake]\npath = \"/tmp/l\"\n[[files]]\ninclude = [\"/x.log\"]\n";
    // `max_replicas` twice under [capacity]: a set's (an inline table over two lines, TOML 1.1),
    // line 9, and the section's, line 11. A search for the first `max_replicas =` line under
    // the header named the set's.
    let e = config_error(&format!(
        "{base}[capacity]\nnamespace = \"jhub\"\nplaceholders = [\n  {{ statefulset = \"a\",\n    max_replicas = 2 }},\n]\nmax_replicas = 1\nmin_replicas = 3\n"
    ));
    assert!(
        e.starts_with("hubpulse: a.toml:11:1: capacity.max_replicas: 1: must be at least"),
        "{e}"
    );
    // A dotted key, a quoted key and an inline table (a search found none of them).
    let e = config_error(
        "lake.path = \"/tmp/l\"\nlake.flush_interval = \"soon\"\nstdin.enabled = true\n",
    );
    assert!(
        e.starts_with("hubpulse: a.toml:2:6: lake.flush_interval: "),
        "{e}"
    );
    let e = config_error(
        "[lake]\npath = \"/tmp/l\"\n\"flush_interval\" = \"soon\"\n[stdin]\nenabled = true\n",
    );
    assert!(
        e.starts_with("hubpulse: a.toml:3:1: lake.flush_interval: "),
        "{e}"
    );
    let e = config_error(
        "lake = { path = \"/tmp/l\", flush_interval = \"soon\" }\nstdin = { enabled = true }\n",
    );
    assert!(
        e.starts_with("hubpulse: a.toml:1:27: lake.flush_interval: "),
        "{e}"
    );
    // The second of two [[files]] tables.
    let e = config_error(&format!(
        "{base}[[files]]\ninclude = [\"/y.log\"]\npoll_interval = \"soon\"\n"
    ));
    assert!(
        e.starts_with("hubpulse: a.toml:7:1: files[1].poll_interval: "),
        "{e}"
    );
    // A lake in a bucket without a bucket is refused here, before anything starts.
    let e = config_error("[lake]\npath = \"s3:///lake\"\n[stdin]\nenabled = true\n");
    assert!(
        e.starts_with("hubpulse: a.toml:2:1: lake.path: s3:///lake: no bucket"),
        "{e}"
    );
}
