//! `hubpulse run`: the live agent against real files that grow and rotate, a real lake, and real
//! signals (SIGTERM, SIGKILL). Every wait is on an observed state (the lake's contents, the
//! HTTP endpoints, the process exit), with a generous deadline.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{bin, free_port, http_get, query_csv, run, run_ok, sigterm, wait_for};

/// A small deterministic PRNG (xorshift64*), so every scenario is reproducible from its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn config(dir: &Path, lake: &Path, http: &str, extra_files: &str) -> PathBuf {
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[agent]
hub = "test-hub"
log_level = "warn"
record_hold = "30ms"
shutdown_deadline = "20s"

[lake]
path = "{}"
flush_interval = "150ms"

[http]
listen = "{http}"

[[files]]
include = ["{}/hub.log*"]
poll_interval = "10ms"
glob_interval = "40ms"
rotate_wait = "300ms"
{extra_files}
"#,
            lake.display(),
            dir.join("logs").display()
        ),
    )
    .unwrap();
    cfg
}

fn start(cfg: &Path) -> Child {
    start_env(cfg, &[])
}

/// Environment for the child processes (the S3 store's endpoint and credentials).
pub type Env = [(String, String)];

pub fn start_env(cfg: &Path, env: &Env) -> Child {
    bin()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["run", "--config"])
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hubpulse run")
}

fn lake_count(lake: &Path, where_: &str) -> u64 {
    lake_count_env(lake, where_, &[])
}

pub fn lake_count_env(lake: &Path, where_: &str, env: &Env) -> u64 {
    if env.is_empty() && !lake.join("events").exists() {
        return 0;
    }
    let out = run(bin()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["query", "--lake"])
        .arg(lake)
        .args(["--format", "csv"])
        .arg(format!("SELECT count(*) FROM events WHERE {where_}")));
    if !out.status.success() {
        return 0; // an empty lake has no files yet
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

/// A log writer that appends numbered lines and rotates like the hub's operators do.
struct Writer {
    dir: PathBuf,
    file: File,
    seq: u64,
    rotations: u64,
    rng: Rng,
    /// Rotated files and the seqs `[first, end)` they hold.
    rotated: Arc<Mutex<Vec<(PathBuf, u64, u64)>>>,
    gen_first_seq: u64,
}

pub fn line(seq: u64) -> String {
    let (m, s) = ((seq / 1000) % 60, (seq % 1000) * 60 / 1000);
    format!(
        "[I 2026-11-28 12:{m:02}:{s:02}.{:03} JupyterHub app:1] probe seq={seq}\n",
        seq % 1000
    )
}

impl Writer {
    fn new(dir: &Path, seed: u64, rotated: Arc<Mutex<Vec<(PathBuf, u64, u64)>>>) -> Writer {
        std::fs::create_dir_all(dir).unwrap();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("hub.log"))
            .unwrap();
        Writer {
            dir: dir.to_path_buf(),
            file,
            seq: 0,
            rotations: 0,
            rng: Rng(seed | 1),
            rotated,
            gen_first_seq: 0,
        }
    }

    fn write_line(&mut self) {
        let l = line(self.seq);
        if self.rng.below(5) == 0 {
            // A partial write: the tailer must hold the half line until its newline arrives.
            let cut = 1 + self.rng.below(l.len() as u64 - 1) as usize;
            self.file.write_all(&l.as_bytes()[..cut]).unwrap();
            self.file.flush().unwrap();
            std::thread::yield_now();
            self.file.write_all(&l.as_bytes()[cut..]).unwrap();
        } else {
            self.file.write_all(l.as_bytes()).unwrap();
        }
        self.seq += 1;
    }

    fn rotate(&mut self) {
        self.rotations += 1;
        let active = self.dir.join("hub.log");
        let old = self.dir.join(format!("hub.log.{}", self.rotations));
        if self.rng.below(2) == 0 {
            std::fs::rename(&active, &old).unwrap();
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&active)
                .unwrap();
        } else {
            std::fs::copy(&active, &old).unwrap();
            self.file.set_len(0).unwrap();
        }
        self.rotated
            .lock()
            .unwrap()
            .push((old, self.gen_first_seq, self.seq));
        self.gen_first_seq = self.seq;
    }

    /// One random operation.
    fn step(&mut self) {
        match self.rng.below(100) {
            0..=2 => self.rotate(),
            3..=8 => {
                for _ in 0..20 {
                    self.write_line();
                }
            }
            _ => self.write_line(),
        }
    }
}

/// Lake rows as (source identity, offset, seq), checked against what was written: every seq
/// in `0..n` exactly once, and per source identity, offsets and seqs in the same order.
fn check_lake(lake: &Path, n: u64, env: &Env) {
    let csv = run_ok(
        bin()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["query", "--format", "csv", "--lake"])
            .arg(lake)
            .arg("SELECT source_fp, source_offset, message FROM events ORDER BY source_fp, source_offset"),
    );
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for row in csv.lines().skip(1) {
        let mut f = row.splitn(3, ',');
        let (fp, _off, msg) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let seq: u64 = msg
            .rsplit("seq=")
            .next()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("row without a seq: {row}"));
        *seen.entry(seq).or_default() += 1;
        if let Some(prev) = last.insert(fp.to_string(), seq) {
            assert!(
                prev < seq,
                "order broken in source {fp}: seq {seq} after {prev}"
            );
        }
    }
    each_once(&seen, n, "");
}

/// Every seq in `0..n` seen exactly once, and no other (`what` names the stream in failures).
pub fn each_once<C: Copy + Into<u64>>(seen: &BTreeMap<u64, C>, n: u64, what: &str) {
    let dups: Vec<_> = seen
        .iter()
        .filter(|(_, c)| (**c).into() != 1)
        .map(|(s, c)| (*s, (*c).into()))
        .collect();
    assert!(dups.is_empty(), "{what} duplicated seqs: {dups:?}");
    let missing: Vec<u64> = (0..n).filter(|s| !seen.contains_key(s)).collect();
    assert!(
        missing.is_empty(),
        "{what} {} seqs lost, first: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(seen.keys().all(|s| *s < n), "{what} rows nobody wrote");
}

/// Drive `rounds` agent lifetimes while a writer appends and rotates; `kill` ends each one with
/// SIGKILL at a random moment, otherwise with SIGTERM (which must exit 0), after which rotated
/// files the lake already holds are deleted at random (the tailer must cope with vanished files).
fn scenario(seed: u64, rounds: u32, kill: bool) {
    scenario_on(seed, rounds, kill, None, &[]);
}

/// [`scenario`] on a given lake (`None`: a directory of its own) with the children's environment.
pub fn scenario_on(seed: u64, rounds: u32, kill: bool, lake: Option<&Path>, env: &Env) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    // HUBPULSE_KEEP=1 keeps the scenario's files for a post-mortem.
    let _guard = if std::env::var_os("HUBPULSE_KEEP").is_some() {
        eprintln!("scenario files kept in {}", tmp.keep().display());
        None
    } else {
        Some(tmp)
    };
    let logs = root.as_path().join("logs");
    let lake = lake.map_or_else(|| root.as_path().join("lake"), Path::to_path_buf);
    let port = free_port();
    let cfg = config(root.as_path(), &lake, &format!("127.0.0.1:{port}"), "");
    let stop = Arc::new(AtomicBool::new(false));
    let rotated = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let (stop, rotated, logs) = (stop.clone(), rotated.clone(), logs.clone());
        std::thread::spawn(move || {
            let mut w = Writer::new(&logs, seed, rotated);
            while !stop.load(Ordering::Relaxed) && w.seq < 30_000 {
                w.step();
                // The workload's pace (a hub writes a few hundred lines a second), not a wait.
                std::thread::sleep(Duration::from_micros(300));
            }
            w
        })
    };
    let mut rng = Rng(seed.wrapping_mul(7919) | 1);
    for _ in 0..rounds {
        let mut child = start_env(&cfg, env);
        if !kill {
            // A graceful stop is tested once the agent runs (before its signal handlers exist
            // the default action applies, which the SIGKILL scenario already covers).
            wait_for("/healthz", Duration::from_secs(30), || {
                http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
            });
        }
        let life = Duration::from_millis(30 + rng.below(400));
        std::thread::sleep(life); // the random moment of the crash or stop
        if kill {
            child.kill().unwrap();
            let _ = child.wait();
        } else {
            sigterm(&child);
            let st = child.wait().unwrap();
            assert!(st.success(), "graceful shutdown exited with {st}");
            delete_ingested(&lake, &rotated, &mut rng, env);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let w = writer.join().unwrap();
    let n = w.seq;
    assert!(n > 1000, "writer wrote only {n} lines");
    assert!(
        w.rotations >= 3,
        "writer rotated only {} times",
        w.rotations
    );
    // A last lifetime to catch up, then stop gracefully.
    let mut child = start_env(&cfg, env);
    wait_for("/healthz", Duration::from_secs(30), || {
        http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    wait_for(
        "the lake to hold every written line",
        Duration::from_secs(120),
        || lake_count_env(&lake, "kind = 'message'", env) >= n,
    );
    sigterm(&child);
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}");
    check_lake(&lake, n, env);
}

/// Delete, at random, rotated files whose every line is already in the lake.
fn delete_ingested(
    lake: &Path,
    rotated: &Mutex<Vec<(PathBuf, u64, u64)>>,
    rng: &mut Rng,
    env: &Env,
) {
    let files: Vec<_> = rotated.lock().unwrap().clone();
    for (path, first, end) in files {
        if !path.exists() || rng.below(2) == 0 {
            continue;
        }
        let have = lake_count_env(
            lake,
            &format!(
                "kind = 'message' AND CAST(split_part(message, 'seq=', 2) AS BIGINT) BETWEEN {first} AND {}",
                end.saturating_sub(1)
            ),
            env,
        );
        if have == end - first {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    scenario(0x5eed_0001, 50, true);
}

#[test]
fn graceful_restarts_through_rotations_keep_every_line_once_in_order() {
    scenario(0x5eed_0002, 12, false);
}

/// A scratch directory with `logs/hub.log` holding `n` lines, the agent config following it
/// with its HTTP endpoint on a free port: (dir, lake, port, config, the log file).
fn http_agent_with_lines(n: u64) -> (tempfile::TempDir, PathBuf, u16, PathBuf, File) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let lake = dir.path().join("lake");
    let port = free_port();
    let cfg = config(dir.path(), &lake, &format!("127.0.0.1:{port}"), "");
    let mut f = File::create(logs.join("hub.log")).unwrap();
    for s in 0..n {
        f.write_all(line(s).as_bytes()).unwrap();
    }
    (dir, lake, port, cfg, f)
}

#[test]
fn serves_health_and_metrics_and_stops_on_sigterm() {
    let (_dir, lake, port, cfg, mut f) = http_agent_with_lines(100);
    f.write_all(b"[W 2026-11-28 12:00:02.000 JupyterHub app:1] not finished")
        .unwrap();
    let mut child = start(&cfg);
    wait_for("/healthz to answer 200", Duration::from_secs(30), || {
        http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    wait_for(
        "100 committed rows in /metrics",
        Duration::from_secs(30),
        || {
            http_get(port, "/metrics")
                .is_some_and(|(_, b)| b.contains("\nhubpulse_lake_rows_published_total 100\n"))
        },
    );
    let (_, m) = http_get(port, "/metrics").unwrap();
    assert!(
        m.contains("hubpulse_records_by_kind_total{kind=\"message\"} 100\n"),
        "{m}"
    );
    assert!(
        m.contains("# TYPE hubpulse_source_lag_seconds gauge\nhubpulse_source_lag_seconds{source="),
        "{m}"
    );
    assert_eq!(
        lake_count(&lake, "true"),
        100,
        "the partial last line is held back"
    );
    // The partial line completes: it arrives as one record.
    f.write_all(b" yet\n").unwrap();
    wait_for(
        "the completed line in the lake",
        Duration::from_secs(30),
        || lake_count(&lake, "message = 'not finished yet'") == 1,
    );
    sigterm(&child);
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}");
    assert!(
        http_get(port, "/healthz").is_none(),
        "server still up after exit"
    );
    // Restart: resumes from the checkpoint, adds nothing.
    let mut child = start(&cfg);
    wait_for("/healthz after restart", Duration::from_secs(30), || {
        http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    sigterm(&child);
    assert!(child.wait().unwrap().success());
    assert_eq!(lake_count(&lake, "true"), 101);
}

#[test]
fn stdin_is_followed_until_eof() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut child = bin()
        .args(["run", "--http", "off", "--lake"])
        .arg(&lake)
        .args(["--follow", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for s in 0..50 {
        stdin.write_all(line(s).as_bytes()).unwrap();
    }
    stdin.write_all(b"no newline at the end").unwrap();
    drop(stdin);
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}");
    assert_eq!(lake_count(&lake, "kind = 'message'"), 50);
    assert_eq!(lake_count(&lake, "kind = 'unparsed'"), 1);
}

#[test]
fn check_config_accepts_the_example_and_names_file_line_key_on_error() {
    let ex = crate::support::root().join("hubpulse.example.toml");
    let out = run_ok(bin().arg("check-config").arg(&ex));
    assert!(out.starts_with(&format!("{}: ok", ex.display())), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[lake]\npath = \"/tmp/x\"\nflush_interval = \"soon\"\n\n[[files]]\ninclude = [\"/var/log/*.log\"]\n",
    )
    .unwrap();
    let out = run(bin().arg("check-config").arg(&bad));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "hubpulse: {}:3:1: lake.flush_interval: invalid duration \"soon\"",
            bad.display()
        )),
        "{err}"
    );
    // The same check runs before `run` starts anything.
    let out = run(bin().args(["run", "--config"]).arg(&bad));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_readme_main_job_fills_the_lake_live_and_queries_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = run_ok(bin().args(["demo", "--lake"]).arg(&lake));
    assert!(out.contains(" commits (parsed "), "{out}");
    assert!(out.contains("# hubpulse query"), "{out}");
    assert!(out.contains("daily_active_users"), "{out}");
    let sample = include_str!("../../fixtures/logs/real/hub-only/hub.log");
    let batch = dir.path().join("batch");
    let copy = dir.path().join("hub.log");
    std::fs::write(&copy, sample).unwrap();
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(&batch)
            .arg(&copy),
    );
    let by_kind = "SELECT kind, count(*) AS n FROM events GROUP BY kind ORDER BY kind";
    assert_eq!(
        query_csv(&lake, by_kind),
        query_csv(&batch, by_kind),
        "live == batch"
    );
    // Again: the agent resumes at its checkpoint and adds nothing.
    let out = run_ok(bin().args(["demo", "--lake"]).arg(&lake));
    assert!(out.contains("adds nothing"), "{out}");
    assert_eq!(query_csv(&lake, by_kind), query_csv(&batch, by_kind));
}

#[test]
fn an_unwritable_lake_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = run(bin()
        .args(["run", "--http", "off", "--lake"])
        .arg(file.join("lake"))
        .args(["--follow", "/nonexistent/*.log"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("hubpulse: lake.path: "), "{err}");
    assert!(err.contains("not-a-dir"), "{err}");
}

/// A lake that cannot be written any more (its staging directory replaced by a file, so every
/// part write fails with ENOTDIR) ends the agent with a non-zero exit and the reason, within
/// its shutdown deadline, instead of leaving the file source waiting forever on a shutdown
/// flag nobody sets (which also made it deaf to SIGTERM).
#[test]
fn a_fatal_lake_error_ends_the_agent_non_zero_instead_of_hanging() {
    let (_dir, lake, port, cfg, mut f) = http_agent_with_lines(10);
    let mut child = bin()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("10 committed rows", Duration::from_secs(30), || {
        http_get(port, "/metrics")
            .is_some_and(|(_, b)| b.contains("\nhubpulse_lake_rows_published_total 10\n"))
    });
    let staging = lake.join("_hubpulse/hubs/test-hub/staging");
    assert!(staging.is_dir(), "{}", staging.display());
    std::fs::remove_dir_all(&staging).unwrap();
    std::fs::write(&staging, b"not a directory").unwrap();
    for s in 10..20 {
        f.write_all(line(s).as_bytes()).unwrap();
    }
    // No more input after this: the source has nothing to send, only the shutdown flag ends it.
    let mut exited = None;
    wait_for(
        "the agent's exit after a fatal lake error (it must not hang)",
        Duration::from_secs(30),
        || {
            exited = child.try_wait().unwrap();
            exited.is_some()
        },
    );
    let status = exited.unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("staging"),
        "the reason, naming the path: {err}"
    );
}
