//! Exactly-once tailing through slow copy-truncate rotations and files that start alike (issue
//! 18, items 4 and 5): the real agent, real files, a real lake read back, SIGKILLs aimed inside
//! the copy and rename windows. Every wait is on an observed state (the copier's progress, the
//! lake's rows, `/metrics`), with a generous deadline.
//!
//! Every generation of the log starts with the same untimestamped banner Z2JH's hub prints
//! while `jupyterhub_config.py` loads the chart's values, so every file shares its head with
//! every other.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::agent::{Rng, config, each_once, line, start_env};
use crate::support::{bin, free_port, http_get, run_ok, sigterm, wait_for};

const BANNER: &str = "Loading /usr/local/etc/jupyterhub/secret/values.yaml\nLoading /usr/local/etc/jupyterhub/existing-secret/values.yaml\n";

/// Lake rows a banner makes, as `hubpulse parse` groups it (the independent count).
fn banner_rows() -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("b.log");
    std::fs::write(&p, format!("{BANNER}{}", line(0))).unwrap();
    let out = run_ok(bin().arg("parse").arg(&p));
    out.lines().filter(|l| l.contains("values.yaml")).count() as u64
}

/// The hub's log: the file written, lines so far, generations (banners) written, and what
/// the rotations are doing (for the kills aimed at them).
struct Log {
    dir: PathBuf,
    file: File,
    seq: u64,
    generations: u64,
    rotations: u64,
}

#[derive(Default)]
struct Phase {
    /// Bytes a slow copy has copied so far (0: no copy under way).
    copying: AtomicU64,
    /// A renamed `hub.log` has no successor yet.
    rename_window: AtomicBool,
    /// The driver has killed the agent inside the rename window: it may close.
    killed_in_window: AtomicBool,
}

impl Log {
    fn open(dir: &Path) -> Log {
        std::fs::create_dir_all(dir).unwrap();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("hub.log"))
            .unwrap();
        file.write_all(BANNER.as_bytes()).unwrap();
        Log {
            dir: dir.to_path_buf(),
            file,
            seq: 0,
            generations: 1,
            rotations: 0,
        }
    }

    fn write_line(&mut self, rng: &mut Rng) {
        let l = line(self.seq);
        if rng.below(5) == 0 {
            // A partial write: the tailer must hold the half line until its newline arrives.
            let cut = 1 + rng.below(l.len() as u64 - 1) as usize;
            self.file.write_all(&l.as_bytes()[..cut]).unwrap();
            std::thread::yield_now();
            self.file.write_all(&l.as_bytes()[cut..]).unwrap();
        } else {
            self.file.write_all(l.as_bytes()).unwrap();
        }
        self.seq += 1;
    }

    /// A new generation: the hub restarts and prints its banner first.
    fn banner(&mut self) {
        self.file.write_all(BANNER.as_bytes()).unwrap();
        self.generations += 1;
    }

    fn next_rotated(&mut self) -> PathBuf {
        self.rotations += 1;
        self.dir.join(format!("hub.log.{}", self.rotations))
    }
}

/// Rename rotation, holding the window (renamed, no new file yet) open until the driver has
/// killed the agent inside it (or `hold` passes when it aims elsewhere).
fn rotate_by_rename(log: &Mutex<Log>, phase: &Phase, hold: Duration) {
    let mut l = log.lock().unwrap();
    let old = l.next_rotated();
    std::fs::rename(l.dir.join("hub.log"), &old).unwrap();
    phase.killed_in_window.store(false, Ordering::SeqCst);
    phase.rename_window.store(true, Ordering::SeqCst);
    let start = std::time::Instant::now();
    while !phase.killed_in_window.load(Ordering::SeqCst) && start.elapsed() < hold {
        // The window's length is the workload (a slow log shipper), not a wait for an event.
        std::thread::sleep(Duration::from_millis(5));
    }
    phase.rename_window.store(false, Ordering::SeqCst);
    l.file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(l.dir.join("hub.log"))
        .unwrap();
    l.banner();
}

/// Copy-truncate the way logrotate does, slowly: the copy is written in 40 chunks 25 ms apart
/// (about a second per copy) while the hub keeps appending to the original; the rest and the
/// truncation happen with the writer paused, so no line falls between them (logrotate's own
/// loss window is not what is tested here).
fn rotate_by_slow_copy(log: &Mutex<Log>, phase: &Phase) {
    let (src, dst) = {
        let mut l = log.lock().unwrap();
        let d = l.next_rotated();
        (l.dir.join("hub.log"), d)
    };
    let mut from = File::open(&src).unwrap();
    let mut to = File::create(&dst).unwrap();
    let chunk = (from.metadata().unwrap().len() / 40).max(1024) as usize;
    let mut buf = vec![0u8; chunk];
    let mut copied = 0u64;
    for _ in 0..40 {
        let n = from.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).unwrap();
        copied += n as u64;
        phase.copying.store(copied, Ordering::SeqCst);
        // The copy's pace (a big log on a slow volume), not a wait for an event.
        std::thread::sleep(Duration::from_millis(25));
    }
    let mut l = log.lock().unwrap();
    std::io::copy(&mut from, &mut to).unwrap();
    l.file.set_len(0).unwrap();
    phase.copying.store(0, Ordering::SeqCst);
    l.banner();
}

/// Every line written exactly once, every banner exactly once per generation, and per source
/// the lines in order.
fn check_lake(lake: &Path, log: &Log) {
    let csv = run_ok(
        bin()
            .args(["query", "--format", "csv", "--lake"])
            .arg(lake)
            .arg("SELECT source_fp, source_offset, message, flags FROM events ORDER BY source_fp, source_offset"),
    );
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    let mut banners = 0u64;
    for row in csv.lines().skip(1) {
        let mut f = row.splitn(3, ',');
        let (fp, _off, rest) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        assert!(!rest.contains("split"), "a record was split: {row}");
        if rest.contains("values.yaml") {
            banners += 1;
            continue;
        }
        let seq: u64 = rest
            .rsplit("seq=")
            .next()
            .and_then(|s| s.split(',').next())
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
    each_once(&seen, log.seq, "");
    assert_eq!(
        banners,
        log.generations * banner_rows(),
        "banner rows: {} generations",
        log.generations
    );
}

fn lake_rows(lake: &Path) -> u64 {
    if !lake.join("events").exists() {
        return 0;
    }
    let out = crate::support::run(
        bin()
            .args(["query", "--format", "csv", "--lake"])
            .arg(lake)
            .arg("SELECT count(*) FROM events"),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0)
}

fn metric(port: u16, name: &str) -> Option<u64> {
    let (_, body) = http_get(port, "/metrics")?;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// An agent killed when the test ends, passing or not (no process outlives its test).
struct Agent(std::process::Child);

impl Agent {
    fn start(s: &Setup) -> Agent {
        Agent(start_env(&s.cfg, &[]))
    }

    fn stop(mut self) {
        sigterm(&self.0);
        assert!(self.0.wait().unwrap().success());
    }

    fn kill(mut self) {
        self.0.kill().unwrap();
        let _ = self.0.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    /// `None` with HUBPULSE_KEEP=1: the files stay for a post-mortem.
    _dir: Option<tempfile::TempDir>,
    logs: PathBuf,
    lake: PathBuf,
    port: u16,
    cfg: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let lake = dir.path().join("lake");
    let port = free_port();
    let cfg = config(dir.path(), &lake, &format!("127.0.0.1:{port}"), "");
    let dir = if std::env::var_os("HUBPULSE_KEEP").is_some() {
        eprintln!("scenario files kept in {}", dir.keep().display());
        None
    } else {
        Some(dir)
    };
    Setup {
        logs,
        lake,
        port,
        cfg,
        _dir: dir,
    }
}

fn healthy(s: &Setup) {
    wait_for("/healthz", Duration::from_secs(30), || {
        http_get(s.port, "/healthz").is_some_and(|(c, _)| c == 200)
    });
}

/// Catch up with a last lifetime, stop it gracefully, and read the lake back.
fn finish(s: &Setup, log: &Log) {
    let agent = Agent::start(s);
    healthy(s);
    let want = log.seq + log.generations * banner_rows();
    let t = std::time::Instant::now();
    while lake_rows(&s.lake) < want && t.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(50)); // polling the lake's rows
    }
    assert_eq!(
        metric(s.port, "hubpulse_rotation_lost_bytes_total"),
        Some(0)
    );
    agent.stop();
    // Says which lines are missing or duplicated if the lake never got them all.
    check_lake(&s.lake, log);
}

#[test]
fn slow_copy_truncates_and_same_banner_files_survive_sigkills_in_every_window() {
    let s = setup();
    let log = Arc::new(Mutex::new(Log::open(&s.logs)));
    let phase = Arc::new(Phase::default());
    let rotated = Arc::new(AtomicBool::new(false));
    // A rotation every 450 lines, alternately a slow copy-truncate and a rename (8 of each).
    const EVERY: u64 = 450;
    let writer = {
        let (log, rotated) = (log.clone(), rotated.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(0x5eed_0018);
            // Lines until the last rotation is done and a generation more, then quiet (every
            // generation holds lines after its banner).
            let done = || rotated.load(Ordering::SeqCst) && log.lock().unwrap().seq >= 17 * EVERY;
            while !done() {
                log.lock().unwrap().write_line(&mut rng);
                // The workload's pace (a hub writing ~400 lines a second), not a wait.
                std::thread::sleep(Duration::from_micros(2500));
            }
        })
    };
    let rotator = {
        let (log, phase, rotated) = (log.clone(), phase.clone(), rotated.clone());
        std::thread::spawn(move || {
            for r in 0..16u64 {
                let at = (r + 1) * EVERY;
                wait_for("the writer", Duration::from_secs(300), || {
                    log.lock().unwrap().seq >= at
                });
                if r % 2 == 0 {
                    rotate_by_slow_copy(&log, &phase);
                } else {
                    rotate_by_rename(&log, &phase, Duration::from_millis(300));
                }
            }
            rotated.store(true, Ordering::SeqCst);
        })
    };
    let mut rng = Rng(0x0018_4242);
    let (mut in_copy, mut in_rename) = (0, 0);
    while !rotator.is_finished() {
        let agent = Agent::start(&s);
        match rng.below(3) {
            0 => {
                // Inside a copy: once it has copied something, at a random point of it.
                let at = 1 + rng.below(20 << 10);
                let t = std::time::Instant::now();
                while phase.copying.load(Ordering::SeqCst) < at
                    && t.elapsed() < Duration::from_secs(3)
                    && !rotator.is_finished()
                {
                    std::thread::sleep(Duration::from_millis(2)); // polling the copier's progress
                }
                in_copy += (phase.copying.load(Ordering::SeqCst) > 0) as u32;
            }
            1 => {
                let t = std::time::Instant::now();
                while !phase.rename_window.load(Ordering::SeqCst)
                    && t.elapsed() < Duration::from_secs(3)
                    && !rotator.is_finished()
                {
                    std::thread::sleep(Duration::from_millis(2)); // polling the rotator's state
                }
                in_rename += phase.rename_window.load(Ordering::SeqCst) as u32;
            }
            _ => std::thread::sleep(Duration::from_millis(30 + rng.below(400))),
        }
        agent.kill();
        phase.killed_in_window.store(true, Ordering::SeqCst);
    }
    rotator.join().unwrap();
    writer.join().unwrap();
    let log = log.lock().unwrap();
    assert!(log.rotations >= 12, "only {} rotations", log.rotations);
    assert!(
        in_copy >= 2 && in_rename >= 2,
        "kills in copies {in_copy}, in renames {in_rename}"
    );
    finish(&s, &log);
}

#[test]
fn an_agent_with_no_open_watch_resumes_a_slow_copy_where_the_original_was_read_to() {
    let s = setup();
    let mut log = Log::open(&s.logs);
    let mut rng = Rng(7);
    for _ in 0..8000 {
        log.write_line(&mut rng);
    }
    let want = 8000 + banner_rows();
    // A first lifetime reads it all; the second starts with nothing new, so it opens no watch.
    let child = Agent::start(&s);
    healthy(&s);
    wait_for("8000 lines in the lake", Duration::from_secs(60), || {
        lake_rows(&s.lake) >= want
    });
    child.stop();
    let child = Agent::start(&s);
    healthy(&s);
    let log = Mutex::new(log);
    rotate_by_slow_copy(&log, &Phase::default());
    let mut log = log.into_inner().unwrap();
    for _ in 0..2000 {
        log.write_line(&mut rng);
    }
    let want = want + 2000 + banner_rows();
    wait_for("the new lines in the lake", Duration::from_secs(60), || {
        lake_rows(&s.lake) >= want
    });
    child.stop();
    finish(&s, &log);
}

#[test]
fn files_with_the_same_banner_followed_together_are_each_read_once() {
    let s = setup();
    let child = Agent::start(&s);
    healthy(&s);
    // Three hub starts, each a file that so far holds only the banner (so their heads are the
    // same bytes), then lines interleaved across them.
    let mut files: Vec<File> = (0..3)
        .map(|i| {
            let mut f = File::create(s.logs.join(format!("hub.log.{i}"))).unwrap();
            f.write_all(BANNER.as_bytes()).unwrap();
            f
        })
        .collect();
    wait_for(
        "a banner-only file to be followed",
        Duration::from_secs(30),
        || metric(s.port, "hubpulse_sources_attached_total").is_some_and(|n| n >= 1),
    );
    let mut seq = 0u64;
    for round in 0..300 {
        let f = &mut files[round % 3];
        f.write_all(line(seq).as_bytes()).unwrap();
        seq += 1;
    }
    let log = Log {
        dir: s.logs.clone(),
        file: File::open(s.logs.join("hub.log.0")).unwrap(),
        seq,
        generations: 3,
        rotations: 0,
    };
    let want = seq + 3 * banner_rows();
    wait_for("every line in the lake", Duration::from_secs(30), || {
        lake_rows(&s.lake) >= want
    });
    child.stop();
    // A restart adds nothing: each file continues its own source.
    let child = Agent::start(&s);
    healthy(&s);
    child.stop();
    check_lake(&s.lake, &log);
}

#[test]
fn a_truncation_with_no_copy_counts_the_bytes_it_lost() {
    let s = setup();
    let mut f = File::create(s.logs.join("hub.log")).unwrap();
    for seq in 0..100 {
        f.write_all(line(seq).as_bytes()).unwrap();
    }
    let half = "[I 2026-11-28 12:00:59.000 JupyterHub app:1] never fini";
    f.write_all(half.as_bytes()).unwrap();
    let size = f.metadata().unwrap().len();
    let child = Agent::start(&s);
    healthy(&s);
    wait_for("the half line to be read", Duration::from_secs(30), || {
        metric(s.port, "hubpulse_bytes_read_total").is_some_and(|b| b >= size)
    });
    // Copy-truncate whose copy goes where the globs do not look: the half line is gone.
    f.set_len(0).unwrap();
    wait_for("the lost bytes counted", Duration::from_secs(30), || {
        metric(s.port, "hubpulse_rotation_lost_bytes_total") == Some(half.len() as u64)
    });
    child.stop();
}
