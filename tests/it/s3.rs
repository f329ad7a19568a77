//! The lake on an S3-compatible store: a real `moto` server (PyPI, server mode) on loopback,
//! written by the real binary, read back by `hubpulse query` and by DuckDB (through s3fs).
//! Covers: the same rows as a local lake, idempotent re-ingest, a crash between commit and
//! publish, a second writer for one hub, two hubs' agents at once, SIGKILL at random moments,
//! and retention.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::agent::{Env, each_once, lake_count_env, scenario_on, start_env};
use crate::support::{bin, root, run, run_ok};
use crate::support::{free_port, wait_for};

/// A moto S3 server on 127.0.0.1 with one bucket, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        crate::support::kill(&mut self.child);
    }
}

impl Moto {
    pub fn start() -> Moto {
        let exe = crate::support::prereq::moto_server();
        let mut child = Command::new(&exe)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (run tests/support/s3_setup.sh, or scripts/test.sh)",
                    exe.display()
                )
            });
        // werkzeug announces its port, then logs every request: keep draining it.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.split("Running on http://").nth(1)
                    && let Some(t) = tx.take()
                {
                    let _ = t.send(rest.trim().to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("moto_server announced no address");
        let m = Moto {
            child,
            endpoint: format!("http://{addr}"),
            bucket: "lake".into(),
        };
        let (status, body) = m.http("PUT", "/lake", b"");
        assert_eq!(
            status,
            200,
            "create bucket: {}",
            String::from_utf8_lossy(&body)
        );
        m
    }

    /// What the binary needs to reach this store.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn lake(&self, prefix: &str) -> PathBuf {
        PathBuf::from(format!("s3://{}/{prefix}", self.bucket))
    }

    /// One plain HTTP/1.0 request (moto does not check signatures): (status, body).
    fn http(&self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let host = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(host).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let split = out
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("HTTP response");
        let head = String::from_utf8_lossy(&out[..split]).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap();
        (status, out[split + 4..].to_vec())
    }

    /// `s3://<bucket>/<prefix>` with this store's endpoint and credentials as explicit settings
    /// (the test process's environment stays as it is).
    pub fn location(&self, prefix: &str) -> hubpulse::lake::LakeLocation {
        let url = hubpulse::lake::S3Url::parse(&format!("s3://{}/{prefix}", self.bucket))
            .unwrap()
            .with_options(&[
                ("aws_endpoint", self.endpoint.as_str()),
                ("aws_access_key_id", "testing"),
                ("aws_secret_access_key", "testing"),
                ("aws_region", "us-east-1"),
            ]);
        hubpulse::lake::LakeLocation::S3(url)
    }

    /// A client of this store (signed requests: moto keeps objects private to their writer).
    pub fn client(&self) -> hubpulse::lake::store::Remote {
        let hubpulse::lake::LakeLocation::S3(url) = self.location("") else {
            unreachable!("an s3:// location")
        };
        hubpulse::lake::store::Remote::open(&url).unwrap()
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.client().read_opt(key).unwrap()
    }

    pub fn put(&self, key: &str, body: &[u8]) {
        self.client().put(key, body.to_vec()).unwrap();
    }

    pub fn delete(&self, key: &str) {
        self.client().delete(key).unwrap();
    }

    /// Every key under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .client()
            .list(prefix.trim_end_matches('/'))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys
    }
}

fn with_env<'c>(cmd: &'c mut Command, env: &Env) -> &'c mut Command {
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
}

fn ingest(env: &Env, lake: &Path, hub: &str, files: &[PathBuf]) -> String {
    let out = run(with_env(&mut bin(), env)
        .args(["ingest", "--no-progress", "--hub", hub, "--lake"])
        .arg(lake)
        .args(files));
    assert!(
        out.status.success(),
        "ingest failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn query(env: &Env, lake: &Path, sql: &str) -> String {
    run_ok(
        with_env(&mut bin(), env)
            .args(["query", "--format", "csv", "--lake"])
            .arg(lake)
            .arg(sql),
    )
}

fn fixture(rel: &str) -> PathBuf {
    root().join("fixtures/logs").join(rel)
}

const PER_HUB: &str = "SELECT hub, count(*) AS n, count(DISTINCT source_offset) AS offsets, \
     sum(CASE WHEN kind = 'unparsed' THEN 1 ELSE 0 END) AS unparsed, min(dt) AS first, max(dt) AS last \
     FROM events GROUP BY hub ORDER BY hub";

#[test]
fn an_s3_lake_holds_what_a_local_one_does_and_duckdb_reads_it() {
    let s3 = Moto::start();
    let env = s3.env();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("lake");
    let remote = s3.lake("prod/lake");
    let alpha = vec![
        fixture("kubespawner/z2jh-spawn-lifecycle.log"),
        fixture("chp/chp3.log"),
    ];
    let beta = vec![fixture("real/hub-only/hub.log")];
    for lake in [&local, &remote] {
        ingest(&env, lake, "alpha", &alpha);
        ingest(&env, lake, "beta", &beta);
    }
    let want = query(&[], &local, PER_HUB);
    assert!(want.contains("alpha,") && want.contains("beta,"), "{want}");
    assert_eq!(query(&env, &remote, PER_HUB), want);

    // Idempotent: the manifest in the bucket remembers what each hub read.
    let again = ingest(&env, &remote, "alpha", &alpha);
    assert!(again.contains("records=0"), "{again}");
    assert_eq!(query(&env, &remote, PER_HUB), want);

    // The monthly report reads a bucket like a directory.
    let report = |env: &Env, lake: &Path| {
        run_ok(
            with_env(&mut bin(), env)
                .args([
                    "report", "monthly", "--month", "2022-12", "--format", "csv", "--lake",
                ])
                .arg(lake),
        )
    };
    let local_report = report(&[], &local);
    assert!(local_report.contains("\n2022-12,user,"), "{local_report}");
    assert_eq!(report(&env, &remote), local_report);

    // `WHERE hub = …` lists and reads that hub's prefix only (the plan names the files).
    let plan = query(
        &env,
        &remote,
        "EXPLAIN SELECT count(DISTINCT kind) FROM events WHERE hub = 'beta' AND dt >= '2000-01-01'",
    );
    assert!(plan.contains("hub=beta/dt="), "{plan}");
    assert!(!plan.contains("hub=alpha"), "{plan}");

    // Each hub's parts under its own prefix; nothing left in staging.
    let keys = s3.keys("prod/lake/");
    let parts: Vec<_> = keys.iter().filter(|k| k.ends_with(".parquet")).collect();
    assert!(parts.len() >= 3, "{keys:?}");
    for k in &parts {
        let rest = k.strip_prefix("prod/lake/").unwrap();
        let (table, rest) = rest.split_once('/').unwrap();
        assert!(["events", "lifecycle", "activity"].contains(&table), "{k}");
        assert!(
            rest.starts_with("hub=alpha/dt=") || rest.starts_with("hub=beta/dt="),
            "{k}"
        );
    }
    assert!(keys.iter().all(|k| !k.contains("/staging/")), "{keys:?}");
    assert!(keys.contains(
        &"prod/lake/_hubpulse/hubs/alpha/manifest/00000000000000000001.json".to_string()
    ));

    // DuckDB through s3fs, with docs/ENGINES.md's tables and views, counts the same.
    let ddl = hubpulse::query::engines::script(
        hubpulse::query::engines::Engine::DuckDb,
        "s3://lake/prod/lake",
    );
    let script = format!(
        r#"
import duckdb, s3fs
fs = s3fs.S3FileSystem(key="testing", secret="testing", endpoint_url="{ep}")
con = duckdb.connect()
con.register_filesystem(fs)
for stmt in {ddl:?}.split(";\n"):
    if stmt.strip():
        con.execute(stmt)
rows = con.execute("""
  SELECT hub, count(*), count(DISTINCT source_offset),
         sum(CASE WHEN kind = 'unparsed' THEN 1 ELSE 0 END), min(dt), max(dt)
  FROM events GROUP BY hub ORDER BY hub""").fetchall()
print("hub,n,offsets,unparsed,first,last")
for r in rows:
    print(",".join(str(x) for x in r))
"#,
        ep = s3.endpoint
    );
    let out = Command::new(crate::support::prereq::s3fs_python())
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "duckdb over s3fs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
}

#[test]
fn a_crash_between_commit_and_publish_is_finished_by_the_next_writer() {
    let s3 = Moto::start();
    let env = s3.env();
    let lake = s3.lake("l");
    let f = vec![fixture("chp/chp3.log")];
    ingest(&env, &lake, "h", &f);
    let before = query(&env, &lake, "SELECT count(*) AS n FROM events");
    // The state a writer killed after its commit and before its copies leaves: the commit
    // names parts that are still only in staging.
    let commit: serde_json::Value = serde_json::from_slice(
        &s3.get("l/_hubpulse/hubs/h/manifest/00000000000000000001.json")
            .unwrap(),
    )
    .unwrap();
    let parts = commit["parts"].as_array().unwrap();
    assert!(!parts.is_empty());
    for p in parts {
        let (path, staging) = (
            format!("l/{}", p["path"].as_str().unwrap()),
            format!("l/{}", p["staging"].as_str().unwrap()),
        );
        let body = s3
            .get(&path)
            .unwrap_or_else(|| panic!("{path} not in {:?}", s3.keys("l/")));
        s3.put(&staging, &body);
        s3.delete(&path);
    }
    // And uploads of a commit that never happened: one whose number is taken (garbage), one
    // for the next number (it may be a live writer's: kept until that number is used).
    let dead = "l/_hubpulse/hubs/h/staging/00000000000000000001-5.0123456789abcdef.parquet";
    let next = "l/_hubpulse/hubs/h/staging/00000000000000000002-0.0123456789abcdef.parquet";
    s3.put(dead, b"PAR1 never committed");
    s3.put(next, b"PAR1 maybe a live writer's");
    // Readers see nothing of the unfinished commit...
    assert_eq!(
        query(&env, &lake, "SELECT count(*) AS n FROM events"),
        "n\n0\n"
    );
    // ...until the next writer opens the hub and finishes it; no row twice.
    let again = ingest(&env, &lake, "h", &f);
    assert!(again.contains("records=0"), "{again}");
    assert_eq!(
        query(&env, &lake, "SELECT count(*) AS n FROM events"),
        before
    );
    let keys = s3.keys("l/_hubpulse/hubs/h/staging/");
    assert_eq!(keys, vec![next.to_string()]);
}

fn agent_config(dir: &Path, hub: &str, lake: &Path, logs: &Path, port: u16) -> PathBuf {
    let cfg = dir.join(format!("{hub}-{port}.toml"));
    std::fs::write(
        &cfg,
        format!(
            r#"
[agent]
hub = "{hub}"
log_level = "warn"
record_hold = "30ms"

[lake]
path = "{}"
flush_interval = "200ms"

[http]
listen = "127.0.0.1:{port}"

[[files]]
include = ["{}/*.log"]
poll_interval = "20ms"
glob_interval = "100ms"
"#,
            lake.display(),
            logs.display()
        ),
    )
    .unwrap();
    cfg
}

fn line(seq: u64) -> String {
    format!(
        "[I 2026-11-28 10:{:02}:{:02}.{:03} JupyterHub log:191] 200 GET /hub/api/users/u{}/activity (u@10.0.0.1) 1.00ms seq={seq}\n",
        (seq / 60_000) % 60,
        (seq / 1000) % 60,
        seq % 1000,
        seq % 50
    )
}

/// Append `n` numbered lines to `path` in bursts (the pace of a busy hub, not a wait).
fn append_lines(path: &Path, from: u64, n: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for s in from..from + n {
        f.write_all(line(s).as_bytes()).unwrap();
        if s % 200 == 199 {
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Every `seq=` in `0..n` exactly once for `hub`.
fn check_seqs(env: &Env, lake: &Path, hub: &str, n: u64) {
    let csv = query(
        env,
        lake,
        &format!(
            "SELECT CAST(split_part(message, 'seq=', 2) AS BIGINT) AS s, count(*) AS c \
             FROM events WHERE hub = '{hub}' AND kind <> 'unparsed' GROUP BY 1 ORDER BY 1"
        ),
    );
    let got: BTreeMap<u64, u64> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let (s, c) = l.split_once(',').unwrap();
            (s.parse().unwrap(), c.parse().unwrap())
        })
        .collect();
    each_once(&got, n, hub);
}

fn sigterm(child: &mut Child) {
    crate::support::sigterm(child);
    let st = child.wait().unwrap();
    assert!(st.success(), "agent exited with {st}");
}

#[test]
fn two_hubs_agents_write_one_bucket_at_once() {
    let s3 = Moto::start();
    let env = s3.env();
    let tmp = tempfile::tempdir().unwrap();
    let lake = s3.lake("shared");
    let mut agents = Vec::new();
    for hub in ["east", "west"] {
        let logs = tmp.path().join(hub);
        std::fs::create_dir_all(&logs).unwrap();
        let cfg = agent_config(tmp.path(), hub, &lake, &logs, free_port());
        agents.push((hub, logs, start_env(&cfg, &env)));
    }
    let n = 3000;
    let writers: Vec<_> = agents
        .iter()
        .map(|(_, logs, _)| {
            let p = logs.join("hub.log");
            std::thread::spawn(move || append_lines(&p, 0, n))
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for (hub, _, _) in &agents {
        wait_for(
            &format!("{hub}'s lines in the bucket"),
            Duration::from_secs(120),
            || lake_count_env(&lake, &format!("hub = '{hub}'"), &env) >= n,
        );
    }
    for (_, _, child) in &mut agents {
        sigterm(child);
    }
    for hub in ["east", "west"] {
        check_seqs(&env, &lake, hub, n);
    }
    // Partitions and manifests are per hub: no object is shared but the lake's format marker,
    // which every writer of a new lake writes with the same bytes.
    for k in s3.keys("shared/") {
        let rest = k.strip_prefix("shared/").unwrap();
        let in_table = rest.split_once('/').map_or("", |(_, r)| r);
        assert!(
            in_table.starts_with("hub=east/")
                || in_table.starts_with("hub=west/")
                || rest.starts_with("_hubpulse/hubs/east/")
                || rest.starts_with("_hubpulse/hubs/west/")
                || rest == hubpulse::lake::format::MARKER,
            "{k}"
        );
    }
}

#[test]
fn a_second_writer_for_one_hub_loses_a_commit_race_and_nothing_is_duplicated() {
    let s3 = Moto::start();
    let env = s3.env();
    let tmp = tempfile::tempdir().unwrap();
    let lake = s3.lake("race");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("hub.log");
    append_lines(&log, 0, 500);
    let first = start_env(
        &agent_config(tmp.path(), "solo", &lake, &logs, free_port()),
        &env,
    );
    wait_for("the first agent's commit", Duration::from_secs(60), || {
        lake_count_env(&lake, "true", &env) >= 500
    });
    // A misconfigured second agent for the same hub.
    let second = start_env(
        &agent_config(tmp.path(), "solo", &lake, &logs, free_port()),
        &env,
    );
    let mut children = [first, second];
    let mut written = 500;
    let mut loser = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while loser.is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "no writer lost a commit race"
        );
        append_lines(&log, written, 200);
        written += 200;
        for (i, c) in children.iter_mut().enumerate() {
            if let Some(st) = c.try_wait().unwrap() {
                loser = Some((i, st));
            }
        }
    }
    let (i, st) = loser.unwrap();
    assert_eq!(st.code(), Some(1), "the loser exits 1");
    let mut winner = children.into_iter().nth(1 - i).unwrap();
    wait_for("every line in the bucket", Duration::from_secs(120), || {
        lake_count_env(&lake, "true", &env) >= written
    });
    sigterm(&mut winner);
    check_seqs(&env, &lake, "solo", written);
}

#[test]
fn sigkill_at_random_moments_on_s3_loses_and_duplicates_nothing() {
    let s3 = Moto::start();
    let lake = s3.lake("kill");
    scenario_on(0x5eed_5301, 15, true, Some(&lake), &s3.env());
}

/// A log of `n` lines on `day` (its UTC date as `YYYY-MM-DD`).
fn dated_log(path: &Path, day: &str, n: u64) {
    let body: String = (0..n)
        .map(|s| {
            format!("[I {day} 09:00:{:02}.000 JupyterHub log:191] 200 GET /hub/api/users/u/activity (u@10.0.0.1) 1.00ms seq={s}\n", s % 60)
        })
        .collect();
    std::fs::write(path, body).unwrap();
}

#[test]
fn retention_drops_old_partitions_locally_and_on_s3_and_they_do_not_come_back() {
    let s3 = Moto::start();
    let env = s3.env();
    let tmp = tempfile::tempdir().unwrap();
    let today = chrono::Utc::now().date_naive();
    let old = hubpulse::lake::retention::cutoff(today, 2) - chrono::Days::new(1);
    let kept = hubpulse::lake::retention::cutoff(today, 2);
    let (old_s, kept_s) = (old.to_string(), kept.to_string());
    let f_old = tmp.path().join("old.log");
    let f_kept = tmp.path().join("kept.log");
    dated_log(&f_old, &old_s, 40);
    dated_log(&f_kept, &kept_s, 30);
    let local = tmp.path().join("lake");
    let remote = s3.lake("ret");
    for lake in [&local, &remote] {
        // Another hub's old partition: not this hub's retention to drop.
        ingest(&env, lake, "other", std::slice::from_ref(&f_old));
        ingest(&env, lake, "h", &[f_old.clone(), f_kept.clone()]);
    }
    // Old and current side-table partitions.
    let side = |dt: &str| format!("decisions/hub=h/dt={dt}/part-1-1-0.parquet");
    std::fs::create_dir_all(local.join(format!("decisions/hub=h/dt={old_s}"))).unwrap();
    std::fs::create_dir_all(local.join(format!("decisions/hub=h/dt={kept_s}"))).unwrap();
    std::fs::write(local.join(side(&old_s)), b"x").unwrap();
    std::fs::write(local.join(side(&kept_s)), b"x").unwrap();
    s3.put(&format!("ret/{}", side(&old_s)), b"x");
    s3.put(&format!("ret/{}", side(&kept_s)), b"x");

    for lake in [&local, &remote] {
        let out = run_ok(
            with_env(&mut bin(), &env)
                .args([
                    "retention",
                    "--hub",
                    "h",
                    "--events",
                    "2",
                    "--decisions",
                    "2",
                    "--lake",
                ])
                .arg(lake),
        );
        assert_eq!(
            out,
            format!("dropped events/hub=h/dt={old_s}\ndropped decisions/hub=h/dt={old_s}\n"),
            "{}",
            lake.display()
        );
        let per = |lake: &Path| {
            query(
                &env,
                lake,
                "SELECT hub, dt, count(*) AS n FROM events GROUP BY 1, 2 ORDER BY 1, 2",
            )
        };
        let want = format!("hub,dt,n\nh,{kept_s},30\nother,{old_s},40\n");
        assert_eq!(per(lake), want);
        // The manifest remembers the dropped file was read: ingesting it again adds nothing.
        let again = ingest(&env, lake, "h", &[f_old.clone(), f_kept.clone()]);
        assert!(again.contains("records=0"), "{again}");
        assert_eq!(per(lake), want);
    }
    assert!(!local.join(format!("events/hub=h/dt={old_s}")).exists());
    assert!(!local.join(format!("decisions/hub=h/dt={old_s}")).exists());
    assert!(local.join(side(&kept_s)).exists());
    let keys = s3.keys("ret/");
    assert!(
        keys.iter()
            .all(|k| !k.contains(&format!("hub=h/dt={old_s}"))),
        "{keys:?}"
    );
    assert!(keys.contains(&format!("ret/{}", side(&kept_s))));
    assert!(
        keys.iter()
            .any(|k| k.starts_with(&format!("ret/events/hub=other/dt={old_s}/")))
    );
}

#[test]
fn a_bad_bucket_url_or_hub_name_is_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let f = fixture("chp/chp3.log");
    let out = run(bin()
        .args(["ingest", "--no-progress", "--hub", "a/b", "--lake"])
        .arg(tmp.path().join("lake"))
        .arg(&f));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("hub \"a/b\""), "{err}");
    let out = run(bin()
        .args(["ingest", "--no-progress", "--lake", "s3:///no-bucket"])
        .arg(&f));
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no bucket"), "{err}");
}

#[test]
fn the_agent_applies_its_retention_to_its_own_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let lake = tmp.path().join("lake");
    let today = chrono::Utc::now().date_naive();
    let old = (hubpulse::lake::retention::cutoff(today, 1) - chrono::Days::new(1)).to_string();
    let kept = today.to_string();
    let f_old = tmp.path().join("old.log");
    dated_log(&f_old, &old, 25);
    ingest(&[], &lake, "h", std::slice::from_ref(&f_old));
    ingest(&[], &lake, "other", std::slice::from_ref(&f_old));
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    dated_log(&logs.join("hub.log"), &kept, 30);
    let port = free_port();
    let cfg = agent_config(tmp.path(), "h", &lake, &logs, port);
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text = text.replace("[http]", "[lake.retention]\nevents = 1\n\n[http]");
    std::fs::write(&cfg, text).unwrap();
    let mut agent = start_env(&cfg, &[]);
    wait_for(
        "the agent's retention pass",
        Duration::from_secs(60),
        || {
            crate::support::http_get(port, "/metrics").is_some_and(|(_, m)| {
                m.contains("hubpulse_lake_retention_dropped_partitions_total 1\n")
            })
        },
    );
    wait_for("today's lines", Duration::from_secs(60), || {
        lake_count_env(&lake, "hub = 'h'", &[]) >= 30
    });
    sigterm(&mut agent);
    assert_eq!(
        query(
            &[],
            &lake,
            "SELECT hub, dt, count(*) AS n FROM events GROUP BY 1, 2 ORDER BY 1, 2"
        ),
        format!("hub,dt,n\nh,{kept},30\nother,{old},25\n")
    );
}
