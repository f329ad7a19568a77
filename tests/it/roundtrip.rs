//! Lake format 3 is lossless: every record read back from the lake (`events` and `lifecycle`,
//! views over the stored rows and the heartbeats folded into `activity`) is the record
//! `hubpulse parse` prints, column for column and byte for byte in `message`. Inputs: every file
//! under fixtures/logs, a generated log, and random mixtures of lines in each family's shapes
//! (exact and near-miss request lines, heartbeats, continuation lines, secrets, ANSI, CR,
//! invalid UTF-8, arbitrary bytes). A generated log also shows what the lake does not store:
//! no `text` for a line its columns rebuild, no `events` row for a folded heartbeat.
//!
//! Normalisation (the only differences allowed between the two outputs):
//! * `ts`: `parse` prints `2026-11-28T10:32:33.231000Z`, the query `2026-11-28T10:32:33.231Z`;
//!   both are read as RFC 3339 and compared as integer µs since the epoch.
//! * nulls: `parse` prints `"col":null`, the query omits the key; null keys are dropped.
//! * `duration_ms`: compared as the `f64` both texts denote.
//! * `dt` exists only in the query output: it must be the UTC day of `ts` and is then dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use hubpulse::lake::derived::is_lifecycle;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use serde_json::Value;

use crate::support::{bin, root, run_ok};

type Row = BTreeMap<String, Value>;
/// (source_file, source_offset): a record's identity.
type Key = (String, i64);

fn json_lines(out: &str) -> Vec<serde_json::Map<String, Value>> {
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("not a JSON object: {l}: {other:?}"),
        })
        .collect()
}

fn ts_micros(v: &Value) -> Value {
    let s = v.as_str().unwrap_or_else(|| panic!("ts not a string: {v}"));
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("ts {s}: {e}"));
    Value::from(t.timestamp_micros())
}

/// A row with the normalisation of the module docs applied (`dt` left in).
fn normalise(m: serde_json::Map<String, Value>) -> Row {
    let mut row = Row::new();
    for (k, v) in m {
        let v = match (k.as_str(), v) {
            (_, Value::Null) => continue,
            ("ts", v) => ts_micros(&v),
            ("duration_ms", v) => {
                Value::from(v.as_f64().unwrap_or_else(|| panic!("duration_ms {v}")))
            }
            (_, v) => v,
        };
        row.insert(k, v);
    }
    row
}

fn key(r: &Row) -> Key {
    let file = r["source_file"].as_str().unwrap().to_string();
    (file, r["source_offset"].as_i64().unwrap())
}

fn keyed(rows: Vec<Row>, what: &str) -> BTreeMap<Key, Row> {
    let n = rows.len();
    let map: BTreeMap<Key, Row> = rows.into_iter().map(|r| (key(&r), r)).collect();
    assert_eq!(map.len(), n, "{what}: two records share a source offset");
    map
}

/// `hubpulse parse` of `file`: every record, every column present (null or not), but those
/// of a partial last line (no newline yet): `ingest` leaves that for the next run (README,
/// "Guarantees"), `parse` reads its input to the end.
fn parsed(file: &Path, opts: &[&str]) -> BTreeMap<Key, Row> {
    let bytes = std::fs::read(file).unwrap();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) as i64;
    let mut rows = parsed_all(file, opts);
    rows.retain(|k, _| k.1 < complete);
    rows
}

fn parsed_all(file: &Path, opts: &[&str]) -> BTreeMap<Key, Row> {
    let out = run_ok(bin().arg("parse").args(opts).arg(file));
    let columns: BTreeSet<String> = hubpulse::lake::tables::events::events()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let rows = json_lines(&out)
        .into_iter()
        .map(|m| {
            let keys: BTreeSet<String> = m.keys().cloned().collect();
            assert_eq!(keys, columns, "parse prints every column of events");
            normalise(m)
        })
        .collect();
    keyed(rows, "parse")
}

fn query(lake: &Path, sql: &str) -> Vec<serde_json::Map<String, Value>> {
    json_lines(&run_ok(
        bin()
            .args(["query", "--format", "json", "--lake"])
            .arg(lake)
            .arg(sql),
    ))
}

/// The rows of the `events` and `lifecycle` views (one query: each is a process start), `dt`
/// checked against `ts` and dropped.
fn views(lake: &Path) -> (BTreeMap<Key, Row>, BTreeMap<Key, Row>) {
    let sql = "SELECT *, 'events' AS \"view\" FROM events UNION ALL \
               SELECT *, 'lifecycle' AS \"view\" FROM lifecycle";
    let (mut events, mut lifecycle) = (Vec::new(), Vec::new());
    for m in query(lake, sql) {
        let mut r = normalise(m);
        let dt = r
            .remove("dt")
            .unwrap_or_else(|| panic!("row without dt: {r:?}"));
        if let Some(ts) = r.get("ts").and_then(Value::as_i64) {
            let day = chrono::DateTime::from_timestamp_micros(ts).unwrap();
            assert_eq!(dt, day.format("%Y-%m-%d").to_string(), "dt of {r:?}");
        }
        match r.remove("view").as_ref().and_then(Value::as_str) {
            Some("events") => events.push(r),
            _ => lifecycle.push(r),
        }
    }
    (keyed(events, "events"), keyed(lifecycle, "lifecycle"))
}

/// `hubpulse ingest` of `file` with `opts` (options `parse` takes too: `--hub`, `--tz`, ...).
fn ingest(lake: &Path, file: &Path, opts: &[&str]) {
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(lake)
            .args(opts)
            .arg(file),
    );
}

fn s<'a>(r: &'a Row, col: &str) -> Option<&'a str> {
    r.get(col).and_then(Value::as_str)
}

/// Whether the record belongs in `lifecycle` (derived.rs's rule; records flagged future or
/// late are trusted nowhere).
fn lifecycle_record(r: &Row) -> bool {
    let status = r.get("status").and_then(Value::as_i64).map(|v| v as i32);
    let untrusted = s(r, "flags").is_some_and(|f| f.contains("future") || f.contains("late"));
    !untrusted && is_lifecycle(s(r, "kind").unwrap(), s(r, "method"), status, s(r, "route"))
}

/// The first column where two rows differ, for a readable failure.
fn first_difference(want: &Row, got: &Row) -> String {
    let cols: BTreeSet<&String> = want.keys().chain(got.keys()).collect();
    for c in cols {
        if want.get(c) != got.get(c) {
            return format!("{c}: parse {:?} lake {:?}", want.get(c), got.get(c));
        }
    }
    String::new()
}

/// Compare `parse`'s records with `events` and `lifecycle` of the lake built from the same file.
/// Returns the error as text (so proptest can shrink on it).
fn compare(what: &str, want: &BTreeMap<Key, Row>, lake: &Path) -> Result<(), String> {
    let (events, lifecycle) = views(lake);
    for (k, w) in want {
        let Some(g) = events.get(k) else {
            return Err(format!("{what}: record {k:?} missing from events: {w:?}"));
        };
        if w != g {
            return Err(format!("{what}: {k:?}: {}", first_difference(w, g)));
        }
    }
    if let Some(k) = events.keys().find(|k| !want.contains_key(*k)) {
        return Err(format!("{what}: events has {k:?}, parse has not"));
    }
    for (k, l) in &lifecycle {
        if events.get(k) != Some(l) {
            return Err(format!(
                "{what}: lifecycle {k:?} differs from events: {l:?}"
            ));
        }
    }
    let expected: BTreeSet<&Key> = want
        .iter()
        .filter(|(_, r)| lifecycle_record(r))
        .map(|(k, _)| k)
        .collect();
    let got: BTreeSet<&Key> = lifecycle.keys().collect();
    if expected != got {
        return Err(format!(
            "{what}: lifecycle offsets {got:?}, lifecycle records {expected:?}"
        ));
    }
    Ok(())
}

/// Every file under fixtures/logs (recursively), whatever its extension.
fn fixture_files() -> Vec<PathBuf> {
    crate::support::files_under(&root().join("fixtures/logs"))
}

#[test]
fn every_fixture_reads_back_as_parsed() {
    let files = fixture_files();
    assert!(
        files.iter().any(|f| f.to_string_lossy().contains("/real/"))
            && files.iter().any(|f| f.to_string_lossy().contains("/edge/")),
        "fixtures/logs holds real/ and edge/"
    );
    let dir = tempfile::tempdir().unwrap();
    // Two workers, a lake per file (files whose heads match would be taken as copies of one
    // another by ingest's lineage if they shared a lake).
    let (next, records) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|sc| {
        for _ in 0..2 {
            sc.spawn(|| {
                while let Some(f) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let want = parsed(f, &[]);
                    records.fetch_add(want.len(), Ordering::Relaxed);
                    let lake = dir.path().join(f.strip_prefix(root()).unwrap());
                    ingest(&lake, f, &[]);
                    compare(&f.display().to_string(), &want, &lake)
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            });
        }
    });
    let records = records.into_inner();
    assert!(records > 1000, "the fixtures hold {records} records");
}

/// The lake of a generated log: (parse's records, lake, log path), kept alive by `dir`.
fn generated(dir: &Path) -> (BTreeMap<Key, Row>, PathBuf) {
    let log = dir.join("gen.log");
    run_ok(
        bin()
            .args(["generate", "--users", "50", "--days", "1", "--seed", "11"])
            .arg("--out")
            .arg(&log),
    );
    let lake = dir.join("lake");
    ingest(&lake, &log, &[]);
    (parsed(&log, &[]), lake)
}

/// `log_request`'s line (`jupyterhub/log.py`), written here independently of src/lake/rebuild.rs.
fn log_request(r: &Row) -> Option<String> {
    let target = s(r, "target")
        .map(|t| format!(" -> {t}"))
        .unwrap_or_default();
    Some(format!(
        "{} {} {}{target} ({}@{}) {:.2}ms",
        r.get("status")?.as_i64()?,
        s(r, "method")?,
        s(r, "path")?,
        s(r, "actor").unwrap_or(""),
        s(r, "client_ip")?,
        r.get("duration_ms")?.as_f64()?
    ))
}

/// A record that is exactly an activity heartbeat as the hub logs it.
fn is_plain_heartbeat(r: &Row) -> bool {
    let Some(user) = s(r, "user") else {
        return false;
    };
    let fixed: Row = [
        ("source", "hub"),
        ("level", "INFO"),
        ("kind", "request"),
        ("method", "POST"),
        ("route", "/hub/api/users/{user}/activity"),
        ("actor", user),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), Value::from(v)))
    .collect();
    fixed.iter().all(|(k, v)| r.get(k) == Some(v))
        && s(r, "path") == Some(&format!("/hub/api/users/{user}/activity"))
        && r.get("status")
            .and_then(Value::as_i64)
            .is_some_and(|v| v < 400)
        && r.get("lines") == Some(&Value::from(1))
        // `activity.times` are milliseconds: a finer time stays a row.
        && r.get("ts").and_then(Value::as_i64).is_some_and(|t| t % 1000 == 0)
        && log_request(r).as_deref() == s(r, "message")
        && [
            "server_name",
            "target",
            "service",
            "exit_code",
            "count",
            "attrs",
            "flags",
        ]
        .iter()
        .all(|c| !r.contains_key(*c))
}

/// `log` ingested in small batches and pieces on two workers (so records are split, and
/// `activity` written, across many batches and commits), then every partition with several
/// parts compacted (which regroups `activity`).
fn small_pieces_then_compacted(log: &Path, lake: &Path) {
    use hubpulse::lake::{LakeLocation, compact, manifest};
    let defaults = hubpulse::ingest::IngestOptions::new(
        &LakeLocation::local(lake),
        hubpulse::parse::time::Zone::parse("UTC").unwrap(),
        "jupyterhub",
        std::sync::Arc::new(hubpulse::parse::catalogue::Catalogue::embedded().unwrap()),
        Default::default(),
    );
    let opts = hubpulse::ingest::IngestOptions {
        writer: hubpulse::lake::writer::WriterConfig {
            row_group_rows: 700,
            activity_flush: 97,
            ..Default::default()
        },
        batch_rows: 300,
        batch_bytes: 9_000,
        workers: 2,
        piece_records: 500,
        piece_bytes: 40_000,
        commit_bytes: 100_000,
        ..defaults
    };
    hubpulse::ingest::ingest(&opts, &[log.to_path_buf()]).unwrap();
    let mut m = manifest::Manifest::open(&LakeLocation::local(lake), "jupyterhub").unwrap();
    let live = m.live_parts().clone();
    let mut merged = 0;
    for (key, parts) in live.iter().filter(|(_, p)| p.len() > 1) {
        let table = key.split('/').next().unwrap();
        let job = compact::Job {
            table: table.into(),
            dt: manifest::key_dt(key).into(),
            parts: parts.clone(),
        };
        let done = compact::merge(lake, &m.names(), job, &Default::default()).unwrap();
        m.commit_compaction(done.job.parts, done.entry).unwrap();
        merged += 1;
    }
    assert!(merged >= 3, "partitions with several parts: {live:?}");
}

#[test]
fn generated_log_reads_back_as_parsed_after_small_commits_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let (want, _) = generated(dir.path());
    let lake = dir.path().join("small");
    small_pieces_then_compacted(&dir.path().join("gen.log"), &lake);
    compare("generated log, compacted", &want, &lake).unwrap_or_else(|e| panic!("{e}"));
}

/// The offsets of the records that are plain heartbeats.
fn plain_heartbeats(want: &BTreeMap<Key, Row>) -> BTreeSet<i64> {
    want.iter()
        .filter(|(_, r)| is_plain_heartbeat(r))
        .map(|(k, _)| k.1)
        .collect()
}

/// The offsets of the heartbeats folded into `activity`.
fn folded_offsets(lake: &Path) -> BTreeSet<i64> {
    let sql = "SELECT unnest(offsets) AS o FROM activity WHERE offsets IS NOT NULL";
    query(lake, sql)
        .iter()
        .map(|m| m["o"].as_i64().unwrap())
        .collect()
}

#[test]
fn generated_log_reads_back_as_parsed_and_stores_each_fact_once() {
    let dir = tempfile::tempdir().unwrap();
    let (want, lake) = generated(dir.path());
    compare("generated log", &want, &lake).unwrap_or_else(|e| panic!("{e}"));

    // No text kept for a request line its columns rebuild.
    let rows: Vec<Row> = query(&lake, "SELECT * FROM events_rows")
        .into_iter()
        .map(normalise)
        .collect();
    let kept_text = rows.iter().filter(|r| r.contains_key("text")).count();
    let needless: Vec<&Row> = rows
        .iter()
        .filter(|r| s(r, "kind") == Some("request"))
        .filter(|r| s(r, "text").is_some() && log_request(r).as_deref() == s(r, "text"))
        .collect();
    assert!(
        needless.is_empty(),
        "rebuildable lines stored: {needless:?}"
    );
    let requests = want
        .values()
        .filter(|r| s(r, "kind") == Some("request"))
        .count();
    let rebuilt = rows
        .iter()
        .filter(|r| s(r, "kind") == Some("request") && !r.contains_key("text"))
        .count();
    assert!(
        rebuilt > 0 && kept_text > 0 && requests > 100,
        "rebuilt {rebuilt}, kept {kept_text}, requests {requests}"
    );

    // Plain heartbeats are in activity only.
    let beats = plain_heartbeats(&want);
    let stored: BTreeSet<i64> = rows
        .iter()
        .map(|r| r["source_offset"].as_i64().unwrap())
        .collect();
    let folded = folded_offsets(&lake);
    assert!(beats.len() > 100, "{} plain heartbeats", beats.len());
    assert_eq!(folded, beats, "activity holds exactly the plain heartbeats");
    let both: Vec<&i64> = stored.intersection(&beats).collect();
    assert!(both.is_empty(), "heartbeats also stored as rows: {both:?}");
    let events_rows = crate::support::query_num(&lake, "SELECT count(*) FROM events_rows");
    let events = crate::support::query_num(&lake, "SELECT count(*) FROM events");
    assert_eq!(events_rows as usize, rows.len());
    assert_eq!(events as usize, want.len());
    assert_eq!(events_rows as usize + beats.len(), want.len());
}

// ---- random inputs ----

/// Lines of every family, as they appear in the fixtures.
fn fixture_lines() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for f in crate::support::fixture_logs() {
        let bytes = std::fs::read(f).unwrap();
        out.extend(
            bytes
                .split_inclusive(|&b| b == b'\n')
                .filter(|l| l.len() < 2000)
                .map(<[u8]>::to_vec),
        );
    }
    out
}

const USERS: &[&str] = &[
    "ana",
    "user0001",
    "ana.lopez@example.org",
    "café",
    "a%20b",
    "a b",
    "bad\u{7f}x",
    "",
];
const IPS: &[&str] = &["10.244.1.7", "::ffff:10.244.0.1", "::1", "127.0.0.1", ""];
const PATHS: &[&str] = &[
    "/hub/api/users/{u}/activity",
    "/hub/api/users/{u}/server",
    "/hub/api/users/{u}/servers/gpu",
    "/user/{u}/api/kernels",
    "/hub/spawn/{u}",
    "/hub/home",
    "/hub/api/users?state=ready&token=supersecret",
    "/hub/oauth_callback?code=abc123&state=xyz",
    "/hub/api/users/{u}/activity?x=1",
];
const DURATIONS: &[&str] = &[
    "{d}.{c}",
    "{d}.{c}",
    "{d}.{c}",
    "{d}.5",
    "{d}.{c}7",
    "{d}",
    "-{d}.{c}",
    "+{d}.{c}",
    "1e2",
    "nan",
    "inf",
    "{d}.{c}0000000000000001",
];

fn request_line() -> impl Strategy<Value = String> {
    (
        (
            prop::sample::select(&["I", "I", "I", "W", "E", "D"][..]),
            0u32..86_400,
            prop::sample::select(&["JupyterHub log:192", "JupyterHub log:189", "JupyterHub"][..]),
        ),
        prop::sample::select(&["200", "200", "204", "302", "404", "500", "007"][..]),
        prop::sample::select(&["POST", "POST", "GET", "DELETE"][..]),
        prop::sample::select(PATHS),
        prop::sample::select(&["", "", "", " -> /hub/spawn", " → /hub/home"][..]),
        prop::sample::select(USERS),
        prop::sample::select(IPS),
        (prop::sample::select(DURATIONS), 0u32..20_000, 0u32..100),
        prop::sample::select(&["", "", "", "", "  ", " ", "\r"][..]),
    )
        .prop_map(
            |((lv, t, logger), st, m, p, arrow, u, ip, (dur, d, c), tail)| {
                let (h, mi, se) = (t / 3600, t / 60 % 60, t % 60);
                let dur = dur
                    .replace("{d}", &d.to_string())
                    .replace("{c}", &format!("{c:02}"));
                let path = p.replace("{u}", u);
                format!(
                    "[{lv} 2026-11-02 {h:02}:{mi:02}:{se:02}.{:03} {logger}] \
                 {st} {m} {path}{arrow} ({u}@{ip}) {dur}ms{tail}\n",
                    t % 1000
                )
            },
        )
}

/// Edits that make an exact line a near miss (or leave it exact).
fn mutate(line: String, how: u8, at: usize) -> Vec<u8> {
    let mut b = line.into_bytes();
    let at = at % b.len().max(1);
    match how {
        0 => b.insert(at, b' '),
        1 => b.splice(0..0, b"\x1b[32m".iter().copied()).for_each(drop),
        2 => b.insert(at, 0xff),
        3 => b.splice(at..at, b"\r\n".iter().copied()).for_each(drop),
        4 => b
            .splice(at..at, b"\n    at continuation\n".iter().copied())
            .for_each(drop),
        _ => {}
    }
    b
}

const CONTINUATIONS: &[&str] = &[
    "Traceback (most recent call last):\n",
    "  File \"/usr/lib/python3/site-packages/jupyterhub/handlers/base.py\", line 1341\n",
    "    \"Authorization\": \"token 0123456789abcdef\",\n",
    "}\n",
    "\n",
    "[I 2027-06-01 00:00:00.000 JupyterHub log:192] 200 POST /hub/api/users/ana/activity (ana@::1) 1.00ms\n",
    "[I 2026-11-01 00:00:00.000 JupyterHub log:192] 200 POST /hub/api/users/ana/activity (ana@::1) 1.00ms\n",
];

/// An activity report exactly as the hub logs it (some with a status that is no report).
fn heartbeat() -> impl Strategy<Value = String> {
    (
        // 22:00 to 01:00 across two days, after most fixture lines (2026-11-28): most in the
        // stream's order, some more than an hour late.
        0u32..10_800_000,
        prop::sample::select(&USERS[..4]),
        prop::sample::select(&IPS[..4]),
        prop::sample::select(&["200", "200", "204", "302", "403"][..]),
        0u32..300_000,
    )
        .prop_map(|(ms, u, ip, st, d)| {
            let t = 79_200 + ms / 1000;
            let (day, h, mi, se) = (28 + t / 86_400, t / 3600 % 24, t / 60 % 60, t % 60);
            format!(
                "[I 2026-11-{day:02} {h:02}:{mi:02}:{se:02}.{:03} JupyterHub log:192] \
                 {st} POST /hub/api/users/{u}/activity ({u}@{ip}) {}.{:02}ms\n",
                ms % 1000,
                d / 100,
                d % 100
            )
        })
}

fn random_log(lines: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        4 => (request_line(), 0u8..12, any::<usize>()).prop_map(|(l, h, a)| mutate(l, h, a)),
        3 => heartbeat().prop_map(String::into_bytes),
        2 => prop::sample::select(lines),
        1 => prop::sample::select(CONTINUATIONS).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..40),
    ];
    // The last line complete, or a partial line of its own (a partial continuation line would
    // be read into the open record by `parse`, and left for later by `ingest`).
    let last = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\n[I 2026-11-02 23:59:59.999 JupyterHub log:192] partial".to_vec()),
    ];
    (prop::collection::vec(piece, 1..150), last).prop_map(|(v, l)| [v.concat(), l].concat())
}

#[test]
fn random_logs_read_back_as_parsed() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(12);
    // A fixed seed unless PROPTEST_RNG_SEED names one: the coverage asserted below is then
    // that of known inputs, and a failure replays.
    let seed = match Config::default().rng_seed {
        RngSeed::Random => RngSeed::Fixed(21),
        fixed => fixed,
    };
    let mut runner = TestRunner::new(Config {
        cases,
        rng_seed: seed,
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    let (beats, near_misses) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let result = runner.run(&random_log(fixture_lines()), |bytes| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        let case = dir.path().join(format!("case{i}"));
        std::fs::create_dir(&case).unwrap();
        let log = case.join("random.log");
        std::fs::write(&log, &bytes).unwrap();
        // Every other case with another hub name, zone and line limit.
        let opts: &[&str] = match i % 2 {
            0 => &[],
            _ => &[
                "--hub",
                "Prop-hub.2_b",
                "--tz",
                "America/Sao_Paulo",
                "--max-line-bytes",
                "256",
            ],
        };
        let want = parsed(&log, opts);
        for r in want.values() {
            beats.fetch_add(usize::from(is_plain_heartbeat(r)), Ordering::Relaxed);
            let miss =
                s(r, "kind") == Some("request") && log_request(r).as_deref() != s(r, "message");
            near_misses.fetch_add(usize::from(miss), Ordering::Relaxed);
        }
        let lake = case.join("lake");
        ingest(&lake, &log, opts);
        compare("random log", &want, &lake).map_err(TestCaseError::fail)?;
        let (plain, folded) = (plain_heartbeats(&want), folded_offsets(&lake));
        if plain != folded {
            return Err(TestCaseError::fail(format!(
                "plain heartbeats at {plain:?}, folded {folded:?}"
            )));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (beats, near_misses) = (beats.into_inner(), near_misses.into_inner());
    assert!(
        beats >= 10 && near_misses >= 10,
        "the random logs held {beats} plain heartbeats and {near_misses} other request lines"
    );
}

/// Lines at the edges of what the lake folds or rebuilds: durations at the limits of the
/// heartbeats' hundredths of a ms (`i32`) and of the rebuild's, statuses at the activity bound,
/// heartbeats that differ from a plain one in one field or in a time finer than a millisecond,
/// lifecycle DELETEs.
#[test]
fn boundary_lines_read_back_as_parsed() {
    let p = "[I 2026-11-28 10:00:00.000 JupyterHub log:192]";
    let beat = |tail: &str| format!("{p} 200 POST /hub/api/users/ana/activity (ana@::1) {tail}");
    let mut lines: Vec<String> = [
        "2147483.64ms",
        "2147483.65ms",
        "21474836.47ms",
        "21474836.48ms",
        "0.00ms",
        "0.01ms",
        "0.005ms",
        "1e308ms",
        "9007199254740.99ms",
    ]
    .iter()
    .map(|d| beat(d))
    .collect();
    for l in [
        "399 POST /hub/api/users/ana/activity (ana@::1) 1.00ms",
        "400 POST /hub/api/users/ana/activity (ana@::1) 1.00ms",
        "200 POST /hub/api/users/ana/activity (admin@::1) 1.00ms",
        "200 POST /hub/api/users/ana/activity -> /x (ana@::1) 1.00ms",
        "200 POST /hub/api/users/a@b@c/activity (a@b@c@fe80::1%eth0) 1.00ms",
        "200 POST /hub/api/users/ana/activity (ana@) 1.00ms",
        "204 DELETE /hub/api/users/ana/server (admin@::1) 9999999999999.99ms",
        "202 DELETE /hub/api/users/ana/servers/gpu (ana@::1) 99999999999999.99ms",
        "204 DELETE /hub/api/users/ana/servers/ (ana@::1) 3.00ms",
        "200 GET /hub/api/users (@::1) 00.10ms",
    ] {
        lines.push(format!("{p} {l}"));
    }
    for prefix in [
        "[W 2026-11-28 10:00:01.000 JupyterHub log:192]",
        "[I 2026-11-28 10:00:02.000250 JupyterHub log:192]",
        "[I 2026-11-28 10:00:03.5 JupyterHub log:192]",
    ] {
        lines.push(format!(
            "{prefix} 200 POST /hub/api/users/ana/activity (ana@::1) 1.00ms"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("edges.log");
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let want = parsed(&log, &[]);
    assert_eq!(want.len(), lines.len());
    let lake = dir.path().join("lake");
    ingest(&lake, &log, &[]);
    compare("boundary lines", &want, &lake).unwrap_or_else(|e| panic!("{e}"));
    let (plain, folded) = (plain_heartbeats(&want), folded_offsets(&lake));
    // Those with durations beyond an i32 of hundredths stay rows; every other one is folded.
    let too_long: BTreeSet<i64> = want
        .iter()
        .filter(|(_, r)| r["duration_ms"].as_f64().unwrap() * 100.0 > f64::from(i32::MAX))
        .map(|(k, _)| k.1)
        .collect();
    // The heartbeats of times finer than a millisecond are rows too, and not plain ones.
    let finer: Vec<i64> = want
        .iter()
        .filter(|(_, r)| r["ts"].as_i64().unwrap() % 1000 != 0)
        .map(|(k, _)| k.1)
        .collect();
    assert_eq!(finer.len(), 1, "one time of 250 µs past the ms");
    assert!(
        finer
            .iter()
            .all(|o| !plain.contains(o) && !folded_offsets(&lake).contains(o))
    );
    assert_eq!(plain.len(), 11, "{plain:?}");
    assert_eq!(too_long.intersection(&plain).count(), 2, "{too_long:?}");
    let expected: BTreeSet<i64> = plain.difference(&too_long).copied().collect();
    assert_eq!(folded, expected);
}

/// DuckDB runs the `events` view docs/ENGINES.md gives it (`query::engines`, the DuckDB
/// dialect of src/lake/rebuild.rs: its `/` on integers is a division into a `DOUBLE`) over the
/// lake's files and reads every message back as `hubpulse parse` printed it.
#[test]
fn duckdb_reads_back_the_messages_of_a_generated_log() {
    use hubpulse::query::engines::{Engine, events_view};
    let dir = tempfile::tempdir().unwrap();
    let (want, lake) = generated(dir.path());
    let script = r#"
import duckdb, json, sys
c = duckdb.connect()
for t, view in (("events", "events_rows"), ("activity", "activity")):
    src = sys.argv[1] + "/" + t + "/*/*/*.parquet"
    c.sql(f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{src}', hive_partitioning = true, "
          "hive_types = {'hub': VARCHAR, 'dt': VARCHAR})")
c.sql(sys.argv[2])
for off, msg in c.sql("SELECT source_offset, message FROM events").fetchall():
    print(json.dumps({"o": off, "m": msg}))
"#;
    let out = crate::support::run_ok(
        std::process::Command::new(crate::support::python())
            .arg("-c")
            .arg(script)
            .arg(&lake)
            .arg(events_view(Engine::DuckDb)),
    );
    same_messages(&want, out.lines());
}

/// Every message `want`s, by offset, among the `{"o": offset, "m": message}` JSON `lines`
/// an engine printed (other lines ignored), and no other.
fn same_messages<'a>(want: &BTreeMap<Key, Row>, lines: impl Iterator<Item = &'a str>) {
    let got: BTreeMap<i64, String> = lines
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|m| {
            (
                m["o"].as_i64().unwrap(),
                m["m"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got.len(), want.len());
    for ((_, off), r) in want {
        assert_eq!(
            got.get(off).map(String::as_str),
            s(r, "message"),
            "offset {off}"
        );
    }
}

/// Spark runs the rebuild SQL of its dialect (src/lake/rebuild.rs) over a generated lake's
/// stored rows and folded heartbeats, and reads every message back as `hubpulse parse` printed
/// it.
#[test]
fn spark_reads_back_the_messages_of_a_generated_log() {
    use hubpulse::lake::rebuild::{Dialect, heartbeat_message_sql, message_sql};
    let dir = tempfile::tempdir().unwrap();
    let (want, lake) = generated(dir.path());
    let script = r#"
import json, sys
from pyspark.sql import SparkSession
lake, rows_sql, beat_sql = sys.argv[1:4]
spark = (SparkSession.builder.master("local[1]").config("spark.ui.enabled", "false")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
for t in ("events", "activity"):
    spark.read.option("basePath", f"{lake}/{t}").parquet(f"{lake}/{t}").createOrReplaceTempView(t)
rows = spark.sql(f"SELECT source_offset AS o, {rows_sql} AS m FROM events").collect()
beats = spark.sql(f"""SELECT o, {beat_sql} AS m FROM (SELECT `user`, z.statuses AS status,
    z.client_ips AS client_ip, z.durations_cs AS duration_cs, z.offsets AS o FROM activity
    LATERAL VIEW explode(arrays_zip(statuses, client_ips, durations_cs, offsets)) t AS z
    WHERE offsets IS NOT NULL)""").collect()
for r in rows + beats:
    print(json.dumps({"o": r.o, "m": r.m}))
"#;
    let lines = crate::support::run_ok(
        std::process::Command::new(crate::support::prereq::spark_python())
            .arg("-c")
            .arg(script)
            .arg(&lake)
            .arg(message_sql(Dialect::Spark))
            .arg(heartbeat_message_sql(Dialect::Spark)),
    );
    same_messages(&want, lines.lines());
}
