//! Everything the integration tests share, once: paths and the binary ([`bin`], [`run_ok`]),
//! lake queries ([`query_csv`], [`query_num`]), golden files, free ports, waiting on an observed
//! condition, stopping children, the scripted HTTP API server ([`api`]), the real-JupyterHub
//! launcher ([`hub`]) and the external prerequisites `scripts/test.sh` installs ([`prereq`]).

pub mod api;
pub mod hub;
pub mod prereq;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub use prereq::{harness_python, python};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Every fixture log (`fixtures/logs/**/*.log`), sorted.
pub fn fixture_logs() -> Vec<PathBuf> {
    let mut out = files_under(&root().join("fixtures/logs"));
    out.retain(|p| p.extension().is_some_and(|x| x == "log"));
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

/// Query the lake through the CLI and return CSV.
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

/// One row of a report's CSV (`hubpulse report … --format csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRow {
    pub seconds: i64,
    pub sessions: u64,
    pub cost: String,
    /// The row's columns from `key` on, joined by commas.
    pub rest: String,
}

/// A report's CSV by (section, key).
pub fn read_report(csv: &str) -> BTreeMap<(String, String), ReportRow> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (sec, key, secs, sess, cost) = (
        col("section"),
        col("key"),
        col("server_seconds"),
        col("sessions"),
        col("cost"),
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let row = ReportRow {
                seconds: f[secs].parse().unwrap(),
                sessions: f[sess].parse().unwrap(),
                cost: f[cost].to_string(),
                rest: f[key..].join(","),
            };
            ((f[sec].to_string(), f[key].to_string()), row)
        })
        .collect()
}

/// A loopback port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET over plain HTTP/1.0; returns (status, body), or None if nothing listens yet.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Poll `cond` until it holds or `deadline` passes (then panic with `what`).
pub fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        // The poll interval of an observed condition (lake contents, HTTP answers), not a wait
        // for time to pass: the loop ends as soon as the condition is seen.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `probe` every 200 ms until it returns `Some`, or panics after `timeout`.
pub async fn wait_for_async<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends SIGTERM to `child` (by its own pid).
pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {}", child.id());
}

/// Kills `child` (SIGKILL, by its own pid) and reaps it; for teardown, errors ignored.
pub fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
