//! A lake on a full file system (issue 18, item 3, the transient half): the agent keeps the
//! rows, answers `/healthz` 503 with the reason, counts the retries, and writes everything
//! exactly once when space comes back; a SIGTERM during the stall still ends it within
//! `shutdown_deadline`, and a restart reads the rest again from the last commit.
//!
//! The lake is on a real 1 MiB tmpfs the test mounts (the test machine runs as root). Nothing
//! is simulated: the file system answers the agent's writes with ENOSPC.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{bin, query_num};
use crate::support::{free_port, http_get, wait_for};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "this test needs to mount a small tmpfs (run it as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn line(seq: u64) -> String {
    let (m, s) = ((seq / 1000) % 60, (seq % 1000) * 60 / 1000);
    format!(
        "[I 2026-11-28 12:{m:02}:{s:02}.{:03} JupyterHub app:1] probe seq={seq}\n",
        seq % 1000
    )
}

fn append(f: &mut File, seqs: std::ops::Range<u64>) {
    let mut text = String::new();
    for s in seqs {
        text.push_str(&line(s));
    }
    f.write_all(text.as_bytes()).unwrap();
}

/// Fills the file system under `dir` until a write fails for lack of space.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = File::create(&path).unwrap();
    let chunk = vec![0u8; 16 << 10];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|_| f.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(28), "{e}");
            break;
        }
    }
    path
}

fn metric(port: u16, name: &str) -> Option<u64> {
    let (_, m) = http_get(port, "/metrics")?;
    m.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn start(cfg: &Path, err: &Path) -> Agent {
    Agent(
        bin()
            .args(["run", "--config"])
            .arg(cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(err).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[test]
fn a_full_lake_is_retried_reported_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let _fs = Tmpfs::mount(&lake, "1m");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let mut log = File::create(logs.join("hub.log")).unwrap();
    append(&mut log, 0..200);
    let port = free_port();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nhub = \"test-hub\"\nlog_level = \"warn\"\nrecord_hold = \"30ms\"\nshutdown_deadline = \"10s\"\n[lake]\npath = {lake:?}\nflush_interval = \"150ms\"\ncompact_min_files = 0\n[http]\nlisten = \"127.0.0.1:{port}\"\n[[files]]\ninclude = [{:?}]\npoll_interval = \"10ms\"\n",
            logs.join("hub.log*")
        ),
    )
    .unwrap();
    let err = dir.path().join("agent.err");
    let mut agent = start(&cfg, &err);
    let rows = |n: u64| move || metric(port, "hubpulse_lake_rows_published_total") == Some(n);
    wait_for("200 rows committed", Duration::from_secs(30), rows(200));

    // The lake's file system fills up; 300 more lines arrive.
    let filler = fill(&lake);
    append(&mut log, 200..500);
    wait_for(
        "/healthz 503 with the reason, and retries counted",
        Duration::from_secs(30),
        || {
            let h = http_get(port, "/healthz");
            h.as_ref().is_some_and(|(s, b)| {
                *s == 503
                    && b.starts_with("lake writes failing, retrying with the same rows:")
                    && b.contains("No space left on device")
                    && b.lines().count() == 1
            }) && metric(port, "hubpulse_lake_write_retries_total").is_some_and(|n| n >= 1)
                && metric(port, "hubpulse_lake_write_stalled") == Some(1)
        },
    );
    assert_eq!(
        metric(port, "hubpulse_lake_rows_published_total"),
        Some(200),
        "nothing committed while the disk is full"
    );
    assert_eq!(
        http_get(port, "/livez"),
        Some((200, "alive\n".to_string())),
        "alive, only not ready"
    );

    // Space comes back: the same rows are written, once.
    std::fs::remove_file(&filler).unwrap();
    wait_for("500 rows committed", Duration::from_secs(30), rows(500));
    wait_for("/healthz 200 again", Duration::from_secs(10), || {
        http_get(port, "/healthz").is_some_and(|(s, b)| s == 200 && b == "ok\n")
    });
    assert_eq!(metric(port, "hubpulse_lake_write_stalled"), Some(0));
    let in_lake = |sql: &str| query_num(&lake, sql);
    assert_eq!(in_lake("SELECT COUNT(*) FROM events"), 500);
    assert_eq!(in_lake("SELECT COUNT(DISTINCT message) FROM events"), 500);
    assert_eq!(
        in_lake("SELECT COUNT(*) FROM events WHERE message LIKE 'probe seq=%'"),
        500
    );
    let staging = lake.join("_hubpulse/hubs/test-hub/staging");
    let stray: Vec<_> = std::fs::read_dir(&staging)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        stray.is_empty(),
        "no failed part left in staging: {stray:?}"
    );

    // Full again; SIGTERM during the stall ends the agent within its shutdown deadline.
    let filler = fill(&lake);
    append(&mut log, 500..600);
    wait_for("stalled again", Duration::from_secs(30), || {
        metric(port, "hubpulse_lake_write_stalled") == Some(1)
    });
    let term = Instant::now();
    crate::support::sigterm(&agent.0);
    let status = loop {
        if let Some(st) = agent.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            term.elapsed() < Duration::from_secs(12),
            "the agent ignored SIGTERM during a lake stall"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = term.elapsed();
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM"
    );
    assert!(
        !status.success(),
        "the stalled rows were not written: {stderr}"
    );
    assert!(stderr.contains("No space left on device"), "{stderr}");

    // A restart with space reads the uncommitted lines again: every line once.
    std::fs::remove_file(&filler).unwrap();
    let _agent = start(&cfg, &err);
    wait_for("600 rows in the lake", Duration::from_secs(30), || {
        query_num(&lake, "SELECT COUNT(*) FROM events") == 600
    });
    assert_eq!(in_lake("SELECT COUNT(DISTINCT message) FROM events"), 600);
}
