//! The lake's guarantees: idempotent and incremental ingest, crash recovery, nothing lost.

use std::io::Write;
use std::path::Path;

use crate::support::{bin, fixture_logs, query_csv, query_num, root, run, run_ok};

fn ingest(lake: &Path, files: &[&Path]) -> String {
    let mut cmd = bin();
    cmd.args(["ingest", "--no-progress", "--lake"])
        .arg(lake)
        .args(files);
    run_ok(&mut cmd)
}

pub(crate) fn field(summary: &str, key: &str) -> u64 {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing in {summary}"))
        .parse()
        .unwrap()
}

/// Ingest options as `hubpulse ingest` sets them (parsing on the reading thread), into `lake`.
pub(crate) fn options(lake: &Path) -> hubpulse::ingest::IngestOptions {
    hubpulse::ingest::IngestOptions::new(
        &hubpulse::lake::LakeLocation::local(lake),
        hubpulse::parse::time::Zone::parse("UTC").unwrap(),
        "jupyterhub",
        std::sync::Arc::new(hubpulse::parse::catalogue::Catalogue::embedded().unwrap()),
        Default::default(),
    )
}

const LINE: &str = "[I 2026-11-28 10:00:00.000 JupyterHub log:192] 200 POST /hub/api/users/alice/activity (alice@10.0.0.1) 1.00ms\n";

#[test]
fn ingesting_the_same_file_twice_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let f = root().join("fixtures/logs/kubespawner/z2jh-spawn-lifecycle.log");
    let s1 = ingest(&lake, &[&f]);
    assert_eq!(field(&s1, "files"), 1);
    let n = field(&s1, "records");
    assert!(n > 20);
    let s2 = ingest(&lake, &[&f]);
    assert_eq!(field(&s2, "records"), 0, "{s2}");
    assert_eq!(query_num(&lake, "SELECT count(*) FROM events"), n as i64);
    // The same content under another path is the same source.
    let copy = dir.path().join("renamed.log");
    std::fs::copy(&f, &copy).unwrap();
    assert_eq!(field(&ingest(&lake, &[&copy]), "records"), 0);
    assert_eq!(query_num(&lake, "SELECT count(*) FROM events"), n as i64);
}

#[test]
fn a_grown_file_adds_only_its_new_records_and_a_partial_line_waits() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, log) = (dir.path().join("lake"), dir.path().join("hub.log"));
    std::fs::write(&log, LINE.repeat(3)).unwrap();
    assert_eq!(field(&ingest(&lake, &[&log]), "records"), 3);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(LINE.repeat(2).as_bytes()).unwrap();
    f.write_all(&LINE.as_bytes()[..40]).unwrap();
    assert_eq!(field(&ingest(&lake, &[&log]), "records"), 2);
    f.write_all(&LINE.as_bytes()[40..]).unwrap();
    assert_eq!(field(&ingest(&lake, &[&log]), "records"), 1);
    assert_eq!(query_num(&lake, "SELECT count(*) FROM events"), 6);
    assert_eq!(
        query_num(&lake, "SELECT count(DISTINCT source_offset) FROM events"),
        6
    );
}

#[test]
fn a_file_truncated_and_rewritten_is_a_new_source_not_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (lake, log) = (dir.path().join("lake"), dir.path().join("hub.log"));
    std::fs::write(&log, LINE.repeat(4)).unwrap();
    ingest(&lake, &[&log]);
    let other = LINE.replace("alice", "bobby");
    std::fs::write(&log, other.repeat(6)).unwrap();
    assert_eq!(field(&ingest(&lake, &[&log]), "records"), 6);
    assert_eq!(
        query_num(
            &lake,
            "SELECT count(*) FROM events WHERE \"user\" = 'bobby'"
        ),
        6
    );
    // Same first 4 KiB, different bytes before the old end: caught by the prefix guard.
    // (A file whose first bytes equal another source's whole content is that source grown:
    // content fingerprints cannot tell them apart, so this one starts differently.)
    let log2 = dir.path().join("hub2.log");
    let carol = LINE.replace("alice", "carol");
    std::fs::write(&log2, carol.repeat(50)).unwrap();
    assert_eq!(field(&ingest(&lake, &[&log2]), "records"), 50);
    std::fs::write(&log2, format!("{}{}", carol.repeat(40), other.repeat(20))).unwrap();
    let s = ingest(&lake, &[&log2]);
    assert_eq!(field(&s, "records"), 60, "{s}");
    assert_eq!(
        field(&ingest(&lake, &[&log2]), "records"),
        0,
        "and idempotent under its new identity"
    );
}

#[test]
fn an_interrupted_commit_is_finished_and_stray_staging_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let f = root().join("fixtures/logs/chp/chp3.log");
    ingest(&lake, &[&f]);
    let before = query_num(&lake, "SELECT count(*) FROM events");
    // Simulate a crash after the commit file was written but before its parts were renamed.
    let commit: serde_json::Value = serde_json::from_slice(
        &std::fs::read(lake.join("_hubpulse/hubs/jupyterhub/manifest/00000000000000000001.json"))
            .unwrap(),
    )
    .unwrap();
    let part = commit["parts"][0].clone();
    std::fs::rename(
        lake.join(part["path"].as_str().unwrap()),
        lake.join(part["staging"].as_str().unwrap()),
    )
    .unwrap();
    // And a crash while writing parts of a commit that never happened.
    std::fs::write(
        lake.join("_hubpulse/hubs/jupyterhub/staging/00000000000000000099-0.parquet"),
        b"PAR1 half written",
    )
    .unwrap();
    assert_eq!(query_num(&lake, "SELECT count(*) FROM events"), 0);
    ingest(&lake, &[&f]);
    assert_eq!(query_num(&lake, "SELECT count(*) FROM events"), before);
    assert!(
        !lake
            .join("_hubpulse/hubs/jupyterhub/staging/00000000000000000099-0.parquet")
            .exists()
    );
}

#[test]
fn hive_layout_zstd_and_no_partial_files_visible() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(
        &lake,
        &[&root().join("fixtures/logs/kubespawner/z2jh-spawn-lifecycle.log")],
    );
    let dt = lake.join("events/hub=jupyterhub/dt=2022-12-12");
    let parts: Vec<_> = std::fs::read_dir(&dt)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(parts.len(), 1);
    assert!(
        parts[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("part-")
    );
    let file = std::fs::File::open(&parts[0]).unwrap();
    let meta = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    let rg = meta.metadata().row_group(0);
    let kind = rg
        .columns()
        .iter()
        .find(|c| c.column_path().string() == "kind")
        .unwrap();
    assert_eq!(
        kind.compression(),
        parquet::basic::Compression::ZSTD(Default::default())
    );
    assert!(
        kind.encodings()
            .any(|e| e == parquet::basic::Encoding::RLE_DICTIONARY),
        "dictionary-encoded"
    );
    let stats_of = |name: &str| {
        rg.columns()
            .iter()
            .find(|c| c.column_path().string() == name)
            .unwrap()
            .statistics()
            .is_some()
    };
    assert!(stats_of("kind"), "kind keeps min/max: it prunes row groups");
    assert!(!stats_of("text"), "free text carries no min/max");
    assert!(
        std::fs::read_dir(lake.join("_hubpulse/hubs/jupyterhub/staging"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn a_lake_held_by_another_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let f = root().join("fixtures/logs/chp/chp3.log");
    ingest(&lake, &[&f]);
    let lock = std::fs::File::options()
        .write(true)
        .open(lake.join("_hubpulse/hubs/jupyterhub/lock"))
        .unwrap();
    lock.lock().unwrap();
    let out = run(bin().args(["ingest", "--lake"]).arg(&lake).arg(&f));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another hubpulse process"));
}

/// Rows in `dt`'s partition as a directory-listing reader sees it: list, then read each
/// part's footer. `None` when a listed part vanished before it was opened (a reader that
/// raced a swap retries; it must never get a wrong count).
fn listed_rows(dir: &Path) -> Option<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.extension().is_none_or(|x| x != "parquet") {
            continue;
        }
        let f = std::fs::File::open(&p).ok()?;
        let meta = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .ok()?
            .metadata()
            .clone();
        total += meta.file_metadata().num_rows() as u64;
    }
    Some(total)
}

#[test]
fn compaction_swaps_a_partition_without_a_partial_or_duplicated_view() {
    use hubpulse::lake::compact::merge;
    use hubpulse::lake::manifest::Manifest;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let part_dir = lake.join("events/hub=jupyterhub/dt=2026-11-28");
    // While `expected` is non-zero, every complete listing must count exactly that many rows.
    let expected = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicU64::new(0));
    let reader = {
        let (expected, stop, checked, part_dir) = (
            expected.clone(),
            stop.clone(),
            checked.clone(),
            part_dir.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let before = expected.load(Ordering::Acquire);
                let rows = listed_rows(&part_dir);
                let after = expected.load(Ordering::Acquire);
                if let (Some(rows), true) = (rows, before != 0 && before == after) {
                    assert_eq!(
                        rows, before,
                        "a reader saw a partial or duplicated partition"
                    );
                    checked.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let mut written = 0u64;
    for round in 0..6 {
        for i in 0..4 {
            let f = dir.path().join(format!("r{round}-{i}.log"));
            let body: String = (0..(10 + i))
                .map(|n| LINE.replace("alice/activity", &format!("u{round}x{i}x{n}/activity")))
                .collect();
            std::fs::write(&f, body).unwrap();
            ingest(&lake, &[&f]);
            written += 10 + i as u64;
        }
        let mut m =
            Manifest::open(&hubpulse::lake::LakeLocation::local(&lake), "jupyterhub").unwrap();
        let parts = m.live_parts()["events/2026-11-28"].clone();
        assert!(parts.len() >= 4);
        let merged = merge(
            &lake,
            &m.names(),
            hubpulse::lake::compact::Job {
                table: "events".into(),
                dt: "2026-11-28".into(),
                parts,
            },
            &Default::default(),
        )
        .unwrap();
        expected.store(written, Ordering::Release);
        m.commit_compaction(merged.job.parts, merged.entry).unwrap();
        // Keep the reader checking the swapped directory for a moment of observed listings.
        let seen = checked.load(Ordering::Relaxed);
        crate::support::wait_for(
            "a listing after the swap",
            std::time::Duration::from_secs(30),
            || checked.load(Ordering::Relaxed) > seen + 20,
        );
        expected.store(0, Ordering::Release);
        drop(m);
        let files = std::fs::read_dir(&part_dir).unwrap().count();
        assert_eq!(files, 1, "round {round}: one merged part left");
        assert_eq!(
            query_num(&lake, "SELECT count(*) FROM events"),
            written as i64
        );
    }
    stop.store(true, Ordering::Release);
    reader.join().unwrap();
    // Ingest stays idempotent after compaction: the sources' progress is untouched.
    let f = dir.path().join("r0-0.log");
    let s = ingest(&lake, &[&f]);
    assert_eq!(field(&s, "records"), 0, "{s}");
    assert_eq!(
        query_num(&lake, "SELECT count(*) FROM events"),
        written as i64
    );
}

/// `lifecycle` and `activity` hold exactly the `events` rows they summarise, on generated days
/// written in two commits per day, before and after compaction regroups `activity`.
#[test]
fn lifecycle_and_activity_tables_match_the_events_they_come_from() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("week.log");
    run_ok(
        bin()
            .args(["generate", "--users", "30", "--days", "3", "--out"])
            .arg(&log),
    );
    // Two sources (so two commits) over the same days: the odd and the even lines. Some
    // activity reports of the odd ones are stamped to the µs (`.023250`): they stay `events`
    // rows, and their times are listed exactly.
    let text = std::fs::read_to_string(&log).unwrap();
    let (mut a, mut b) = (String::new(), String::new());
    let mut finer = 0;
    for (i, l) in text.lines().enumerate() {
        let s = if i % 2 == 0 { &mut a } else { &mut b };
        let ms_prefix = l.len() > 27 && l.as_bytes()[22] == b'.' && l.as_bytes()[26] == b' ';
        if i % 6 == 1 && ms_prefix && l.contains("/activity (") {
            s.push_str(&format!("{}250{}", &l[..26], &l[26..]));
            finer += 1;
        } else {
            s.push_str(l);
        }
        s.push('\n');
    }
    assert!(finer > 20, "{finer} reports stamped to the µs");
    let (fa, fb) = (dir.path().join("a.log"), dir.path().join("b.log"));
    std::fs::write(&fa, a).unwrap();
    std::fs::write(&fb, b).unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &[&fa]);
    ingest(&lake, &[&fb]);
    check_derived(&lake);
    {
        let mut m = hubpulse::lake::manifest::Manifest::open(
            &hubpulse::lake::LakeLocation::local(&lake),
            "jupyterhub",
        )
        .unwrap();
        let live = m.live_parts().clone();
        let mut merged = 0;
        for (key, parts) in live.iter().filter(|(k, _)| k.starts_with("activity/")) {
            assert_eq!(parts.len(), 2, "{key}");
            let job = hubpulse::lake::compact::Job {
                table: "activity".into(),
                dt: hubpulse::lake::manifest::key_dt(key).into(),
                parts: parts.clone(),
            };
            let done = hubpulse::lake::compact::merge(&lake, &m.names(), job, &Default::default())
                .unwrap();
            m.commit_compaction(done.job.parts, done.entry).unwrap();
            merged += 1;
        }
        assert!(merged >= 3, "{live:?}");
    }
    check_derived(&lake);
    // One row per user, day and group once regrouped (a group: the heartbeats of one source,
    // logger and module; or the bare times of reports kept as `events` rows), but for the bare
    // times finer than a millisecond: a row each, exact in `first` and `last`.
    let finer = "offsets IS NULL AND CAST(first AS BIGINT) % 1000 <> 0";
    assert_eq!(
        query_num(
            &lake,
            &format!(
                "SELECT count(*) - count(DISTINCT concat_ws('/', dt, \"user\", logger, module, \
                 source_fp, CAST(offsets IS NULL AS VARCHAR))) FROM activity WHERE NOT ({finer})"
            )
        ),
        0
    );
    let rows = query_num(
        &lake,
        &format!("SELECT count(*) FROM activity WHERE {finer} AND count = 1 AND first = last"),
    );
    assert!(rows > 20, "{rows} rows of a time finer than a millisecond");
    assert_eq!(
        rows,
        query_num(
            &lake,
            "SELECT count(*) FROM events WHERE route = '/hub/api/users/{user}/activity' \
             AND CAST(ts AS BIGINT) % 1000 <> 0"
        ),
    );
    assert!(
        query_num(
            &lake,
            "SELECT count(*) FROM activity WHERE offsets IS NOT NULL"
        ) > 30,
        "heartbeats are folded"
    );
}

/// The writer's memory bounds (small batches and row groups, activity written out every few
/// times, past days' row groups closed when a later day starts) change how rows are cut into
/// batches, row groups and `activity` rows, never which rows the lake holds.
#[test]
fn memory_bounds_change_how_rows_are_cut_not_which_rows_land() {
    use hubpulse::ingest::{IngestOptions, ingest as ingest_with};
    use hubpulse::lake::writer::WriterConfig;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("days.log");
    run_ok(
        bin()
            .args(["generate", "--users", "20", "--days", "3", "--out"])
            .arg(&log),
    );
    // The first lines again at the end: day 1 comes back after later days closed its row group.
    let text = std::fs::read_to_string(&log).unwrap();
    let head: String = text.lines().take(2_000).map(|l| format!("{l}\n")).collect();
    std::fs::write(&log, format!("{text}{head}")).unwrap();
    let (plain, small) = (dir.path().join("plain"), dir.path().join("small"));
    ingest(&plain, &[&log]);
    let opts = IngestOptions {
        writer: WriterConfig {
            row_group_rows: 700,
            activity_flush: 97,
            ..WriterConfig::default()
        },
        batch_rows: 300,
        batch_bytes: 9_000,
        workers: 2,
        piece_records: 500,
        piece_bytes: 40_000,
        commit_bytes: 1 << 20,
        ..options(&small)
    };
    ingest_with(&opts, std::slice::from_ref(&log)).unwrap();
    for sql in [
        "SELECT dt, count(*), sum(source_offset), count(DISTINCT \"user\") FROM events GROUP BY dt ORDER BY dt",
        "SELECT dt, kind, count(*), sum(source_offset) FROM lifecycle GROUP BY 1, 2 ORDER BY 1, 2",
        "SELECT dt, \"user\", sum(count), min(first), max(last) FROM activity GROUP BY 1, 2 ORDER BY 1, 2",
    ] {
        assert_eq!(query_csv(&plain, sql), query_csv(&small, sql), "{sql}");
    }
    // The first lines again at the end are days before the stream's order: flagged `late`
    // (and left out of the derived tables), the same in small pieces as in one.
    let late = "SELECT count(*) FROM events WHERE flags LIKE '%late%'";
    assert!(
        query_num(&small, late) > 1_500,
        "{}",
        query_num(&small, late)
    );
    assert_eq!(query_num(&plain, late), query_num(&small, late));
    check_derived(&small);
    // The bounds did cut: users have several activity rows a day, parts several row groups.
    assert!(
        query_num(
            &small,
            "SELECT count(*) - count(DISTINCT dt || '/' || \"user\") FROM activity"
        ) > 0
    );
    let part = std::fs::read_dir(small.join("events/hub=jupyterhub"))
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap())
        .map(|f| f.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let meta =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(&part).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    assert!(meta.metadata().num_row_groups() > 1, "{part:?}");
}

/// `lifecycle` and `activity` hold exactly the `events` rows of their kinds that are trusted:
/// records flagged `future` or `late` (stamped out of time) are left out of both.
fn check_derived(lake: &Path) {
    let trusted = "(flags IS NULL OR (flags NOT LIKE '%future%' AND flags NOT LIKE '%late%'))";
    let life = "kind IN ('profile_override','pod_create','spawn_succeeded','stop_succeeded',\
                'server_exited','server_lost','server_still_running','cull_server','cull_user',\
                'hub_shutdown','proxy_route_removed') OR (kind = 'request' AND status IN (202, 204) AND method = 'DELETE' \
                AND route IN ('/hub/api/users/{user}/server','/hub/api/users/{user}/servers/{server}'))";
    let from_events = query_csv(
        lake,
        &format!(
            "SELECT dt, kind, count(*) AS n, sum(source_offset) AS o FROM events WHERE ({life}) AND {trusted} GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    );
    let from_lifecycle = query_csv(
        lake,
        "SELECT dt, kind, count(*) AS n, sum(source_offset) AS o FROM lifecycle GROUP BY 1, 2 ORDER BY 1, 2",
    );
    assert!(from_events.lines().count() > 5, "{from_events}");
    assert_eq!(from_lifecycle, from_events);
    let act_events = query_csv(
        lake,
        &format!(
            "SELECT dt, \"user\", count(*) AS n, min(ts) AS a, max(ts) AS b FROM events WHERE kind = 'request' \
             AND method = 'POST' AND status < 400 AND route = '/hub/api/users/{{user}}/activity' \
             AND \"user\" IS NOT NULL AND ts IS NOT NULL AND {trusted} GROUP BY 1, 2 ORDER BY 1, 2"
        ),
    );
    let act_table = query_csv(
        lake,
        "SELECT dt, \"user\", sum(count) AS n, min(first) AS a, max(last) AS b FROM activity \
         GROUP BY 1, 2 ORDER BY 1, 2",
    );
    assert!(act_events.lines().count() > 30, "{act_events}");
    assert_eq!(act_table, act_events);
    // Every time itself, not only the counts and bounds, in µs: `times` lists milliseconds, and
    // a row's first and last times are exact in `first` and `last` (a time finer than a
    // millisecond is in a row of its own: `lake::activity`), so the µs past the millisecond
    // are added from those.
    let unnested = query_csv(
        lake,
        "SELECT sum(n) AS n, sum(s) AS s FROM ( \
         SELECT CAST(1 AS BIGINT) AS n, CAST(t AS BIGINT) * 1000 AS s FROM (SELECT \
           unnest(times) AS t FROM activity) \
         UNION ALL SELECT 0, CAST(first AS BIGINT) % 1000 + CASE WHEN count > 1 \
           THEN CAST(last AS BIGINT) % 1000 ELSE 0 END FROM activity)",
    );
    let direct = query_csv(
        lake,
        &format!(
            "SELECT count(*) AS n, sum(CAST(ts AS BIGINT)) AS s FROM events WHERE kind = 'request' \
             AND method = 'POST' AND status < 400 AND route = '/hub/api/users/{{user}}/activity' \
             AND \"user\" IS NOT NULL AND ts IS NOT NULL AND {trusted}"
        ),
    );
    assert_eq!(unnested, direct);
}

/// A hub whose log has no server lifecycle or activity (a proxy-only log) still gets a report
/// and a `sessions` table, empty.
#[test]
fn a_lake_without_lifecycle_rows_reports_zero() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &[&root().join("fixtures/logs/chp/chp3.log")]);
    assert!(!lake.join("lifecycle").exists());
    assert_eq!(query_num(&lake, "SELECT count(*) FROM sessions"), 0);
    let out = run_ok(
        bin()
            .args([
                "report", "monthly", "--month", "2026-11", "--format", "csv", "--lake",
            ])
            .arg(&lake),
    );
    assert!(out.contains("2026-11,total,total,0,"), "{out}");
}

/// Parsing pieces of a file on several threads gives, column by column, the rows the parser
/// gives reading the file alone (`hubpulse parse`): every fixture (time-only CHP 3.x/4.x stamps
/// dated from records before, records without a time, server names recovered from records seen
/// earlier, tracebacks, long lines, invalid UTF-8) and a generated log, cut into pieces of one
/// or two records, so that every piece depends on the ones before it.
#[test]
fn pieces_parsed_in_parallel_give_the_rows_of_a_sequential_parse() {
    use hubpulse::ingest::{IngestOptions, ingest as ingest_with};
    use serde_json::Value;
    let dir = tempfile::tempdir().unwrap();
    let generated = dir.path().join("gen.log");
    run_ok(
        bin()
            .args([
                "generate", "--users", "12", "--days", "2", "--seed", "7", "--out",
            ])
            .arg(&generated),
    );
    let mut inputs = fixture_logs();
    assert!(inputs.len() > 10, "{inputs:?}");
    inputs.push(generated);
    // A dated first line, so that nothing depends on the file's date; a stamp that is not a
    // date, which starts a piece that must be parsed again with the state before it.
    let mut all = LINE.as_bytes().to_vec();
    all.extend_from_slice(b"[I 2026-02-30 10:00:00.000 JupyterHub app:1] not a date\n");
    for f in &inputs {
        let mut bytes = std::fs::read(f).unwrap();
        if !bytes.ends_with(b"\n") {
            bytes.push(b'\n');
        }
        all.extend_from_slice(&bytes);
    }
    let log = dir.path().join("all.log");
    std::fs::write(&log, &all).unwrap();

    let parsed = run_ok(bin().args(["parse", "--tz", "Europe/Paris"]).arg(&log));
    let parsed: Vec<Value> = parsed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Three workers, and none (pieces parsed in turn on the reading thread).
    for workers in [3, 0] {
        let lake = dir.path().join(format!("lake{workers}"));
        let opts = IngestOptions {
            zone: hubpulse::parse::time::Zone::parse("Europe/Paris").unwrap(),
            batch_rows: 7,
            workers,
            piece_records: 1,
            commit_bytes: 50_000,
            ..options(&lake)
        };
        ingest_with(&opts, std::slice::from_ref(&log)).unwrap();
        let rows = run_ok(
            bin()
                .args(["query", "--format", "json", "--lake"])
                .arg(&lake)
                .arg("SELECT *, CAST(ts AS BIGINT) AS t_us FROM events ORDER BY source_offset"),
        );
        let rows: Vec<Value> = rows
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(parsed.len(), rows.len());
        assert!(rows.len() > 5_000, "{}", rows.len());
        for (p, r) in parsed.iter().zip(&rows) {
            let p = p.as_object().unwrap();
            for (k, want) in p {
                let got = r.get(k.as_str()).unwrap_or(&Value::Null);
                let same = match (k.as_str(), want, got) {
                    ("ts", Value::String(s), _) => {
                        let us = chrono::DateTime::parse_from_rfc3339(s)
                            .unwrap()
                            .timestamp_micros();
                        r.get("t_us").and_then(Value::as_i64) == Some(us)
                    }
                    ("ts", Value::Null, _) => r.get("t_us").is_none(),
                    (_, Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                    _ => want == got,
                };
                assert!(
                    same,
                    "workers {workers}, column {k}: parse {want}, lake {got}\nrecord {p:?}"
                );
            }
        }
    }
    let lake = dir.path().join("lake3");
    // The cases this is about occurred: CHP lines dated from the records before them, and
    // server names that only enrichment knows (a stop line of a named server omits it).
    let n = |sql: &str| query_num(&lake, sql);
    assert!(n("SELECT count(*) FROM events WHERE source = 'chp' AND ts IS NOT NULL") > 10);
    assert!(
        n(
            "SELECT count(*) FROM events WHERE kind = 'stop_succeeded' AND server_name <> '' \
           AND strpos(message, server_name) = 0"
        ) > 0
    );
}

/// Time-only lines before any dated record (a CHP 4.x log on its own) take the file's
/// modification date, in `parse` as in `ingest`: both give the same times.
#[test]
fn parse_and_ingest_date_leading_time_only_lines_alike() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("chp4.log");
    std::fs::write(
        &log,
        "09:15:02.001 - info: [ConfigProxy] 200 GET /api/routes\n\
         23:59:59.500 - info: [ConfigProxy] 200 GET /api/routes\n",
    )
    .unwrap();
    let day = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_176_000); // 2026-11-20T12:00:00Z
    std::fs::File::options()
        .append(true)
        .open(&log)
        .unwrap()
        .set_modified(day)
        .unwrap();
    let parsed = run_ok(bin().arg("parse").arg(&log));
    let ts: Vec<String> = parsed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["ts"].to_string())
        .collect();
    assert_eq!(
        ts,
        [
            "\"2026-11-20T09:15:02.001000Z\"",
            "\"2026-11-20T23:59:59.500000Z\""
        ]
    );
    let lake = dir.path().join("lake");
    ingest(&lake, &[&log]);
    assert_eq!(
        query_csv(
            &lake,
            "SELECT CAST(ts AS BIGINT) AS t FROM events ORDER BY source_offset"
        ),
        "t\n1795166102001000\n1795219199500000\n"
    );
}
