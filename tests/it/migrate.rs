//! `hubpulse migrate`: a lake of format 1 (fixtures/lake-v1, written by hubpulse b0ce055) or of
//! format 2 (fixtures/lake-v2, written by hubpulse 6f38148; see their README.txt) converted in
//! place reads exactly as a lake the current hubpulse ingested from the same logs; a second run
//! does nothing; a run interrupted is finished by the next.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{bin, root, run, run_ok};

const FIXTURE: &str = "fixtures/lake-v1/lake";
const FIXTURE_V2: &str = "fixtures/lake-v2/lake";
/// The logs the fixtures were ingested from, by hub, as paths from the repository root (they
/// are stored as `source_file`, so the fresh lake is ingested from the same directory).
const GEN_LOG: &str = "fixtures/lake-v1/gen.log";
/// Hub `gen`'s second log in the format 2 fixture: activity reports stamped to the µs.
const FINER_LOG: &str = "fixtures/lake-v2/finer.log";
const REAL_LOGS: &str = "fixtures/logs/real/hub-only";

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dst = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &dst);
        } else {
            std::fs::copy(&p, &dst).unwrap();
        }
    }
}

/// A copy of the format 1 fixture at `dir/v1`.
fn v1_lake(dir: &Path) -> PathBuf {
    let lake = dir.join("v1");
    copy_tree(&root().join(FIXTURE), &lake);
    lake
}

/// A copy of the format 2 fixture at `dir/v2-old`.
fn v2_lake(dir: &Path) -> PathBuf {
    let lake = dir.join("v2-old");
    copy_tree(&root().join(FIXTURE_V2), &lake);
    lake
}

fn real_logs() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root().join(REAL_LOGS))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .map(|n| format!("{REAL_LOGS}/{n}"))
        .collect();
    out.sort();
    out
}

/// The format 1 fixture's logs ingested by this hubpulse into a new lake at `dir/fresh`.
fn fresh_lake(dir: &Path) -> PathBuf {
    fresh_lake_of(dir, "fresh", &[GEN_LOG])
}

/// The logs of hub `gen` (one commit each) and the real hub logs (hub `jupyterhub`) ingested
/// by this hubpulse into a new lake at `dir/name`.
fn fresh_lake_of(dir: &Path, name: &str, gen_logs: &[&str]) -> PathBuf {
    let lake = dir.join(name);
    let ingest = |hub: &str, files: &[String]| {
        run_ok(
            bin()
                .current_dir(root())
                .args(["ingest", "--no-progress", "--hub", hub, "--lake"])
                .arg(&lake)
                .args(files),
        );
    };
    for log in gen_logs {
        ingest("gen", &[log.to_string()]);
    }
    ingest("jupyterhub", &real_logs());
    lake
}

/// Every file of a lake (path from its root → bytes).
fn tree(lake: &Path) -> BTreeMap<String, Vec<u8>> {
    crate::support::files_under(lake)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(lake).unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).unwrap();
            (rel, bytes)
        })
        .collect()
}

fn parquet_files(lake: &Path) -> usize {
    tree(lake)
        .keys()
        .filter(|k| k.ends_with(".parquet") && !k.starts_with("_hubpulse"))
        .count()
}

fn migrate(lake: &Path) -> (Output, String) {
    let out = run(bin().args(["migrate", "--lake"]).arg(lake));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, err)
}

fn migrate_ok(lake: &Path) -> String {
    let (out, err) = migrate(lake);
    assert!(out.status.success(), "migrate failed: {err}");
    err
}

/// What readers see, as JSON lines: every column of `events` and `lifecycle` (views over the
/// stored rows and, for `events`, the heartbeats folded into `activity`), and the activity
/// times of each user and day. `activity`'s rows themselves are not compared: how a day's
/// times are grouped into rows depends on the commits that wrote them (readers fold them,
/// compaction regroups them); every heartbeat's fields come back through `events`.
fn dump(lake: &Path, env: &[(String, String)]) -> Vec<(String, Vec<String>)> {
    [
        "SELECT * FROM events ORDER BY hub, source_fp, source_offset",
        "SELECT * FROM lifecycle ORDER BY hub, source_fp, source_offset",
        "SELECT hub, dt, \"user\", unnest(times) AS t FROM activity ORDER BY hub, dt, \"user\", t",
    ]
    .iter()
    .map(|sql| {
        let out = run_ok(
            bin()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .args(["query", "--format", "json", "--lake"])
                .arg(lake)
                .arg(sql),
        );
        (sql.to_string(), out.lines().map(str::to_string).collect())
    })
    .collect()
}

fn assert_reads_as(migrated: &Path, fresh: &Path) {
    assert_reads_as_in(migrated, &[], fresh);
}

/// [`assert_reads_as`], `migrated` read with the environment `env` (a lake in a bucket).
fn assert_reads_as_in(migrated: &Path, env: &[(String, String)], fresh: &Path) {
    for ((sql, got), (_, want)) in dump(migrated, env).into_iter().zip(dump(fresh, &[])) {
        assert!(!want.is_empty(), "{sql}: no rows in the fresh lake");
        if let Some(i) = (0..got.len().max(want.len())).find(|&i| got.get(i) != want.get(i)) {
            panic!(
                "{sql}: row {i} differs ({} rows migrated, {} fresh)\nmigrated: {:?}\nfresh:    {:?}",
                got.len(),
                want.len(),
                got.get(i),
                want.get(i)
            );
        }
    }
}

/// The stderr line of `hub` (`migrate: hub <hub>: days=… already=… …`).
fn hub_line<'a>(err: &'a str, hub: &str) -> &'a str {
    let head = format!("migrate: hub {hub}: ");
    err.lines()
        .find(|l| l.starts_with(&head))
        .unwrap_or_else(|| panic!("no line for hub {hub} in: {err}"))
}

#[test]
fn a_format_1_lake_is_refused_by_query_and_ingest_naming_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let lake = v1_lake(dir.path());
    let before = tree(&lake);
    let query = run(bin()
        .args(["query", "--lake"])
        .arg(&lake)
        .arg("SELECT count(*) FROM events"));
    let ingest = run(bin()
        .current_dir(root())
        .args(["ingest", "--no-progress", "--hub", "gen", "--lake"])
        .arg(&lake)
        .arg(GEN_LOG));
    for (what, out) in [("query", query), ("ingest", ingest)] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what} succeeded on a format 1 lake");
        assert_eq!(err.lines().count(), 1, "{what}: {err}");
        assert!(
            err.contains(&format!("hubpulse migrate --lake {}", lake.display())),
            "{what}: {err}"
        );
    }
    assert!(before == tree(&lake), "a refused command changed the lake");
}

/// `migrate`'s lines say it converted each hub's days of the fixture lakes (three of the
/// generator's, one of the real hub's), none of them converted before.
fn migrated_every_day(err: &str) {
    assert!(hub_line(err, "gen").contains("days=3 already=0"), "{err}");
    assert!(
        hub_line(err, "jupyterhub").contains("days=1 already=0"),
        "{err}"
    );
}

#[test]
fn a_format_1_lake_migrated_reads_as_a_fresh_ingest_of_the_same_logs() {
    let dir = tempfile::tempdir().unwrap();
    let lake = v1_lake(dir.path());
    let fresh = fresh_lake(dir.path());
    let parts_before = parquet_files(&lake);
    let err = migrate_ok(&lake);
    migrated_every_day(&err);
    let summary = err.lines().last().unwrap();
    assert!(
        summary.contains("is now format 3")
            && summary.contains(&format!("parts={parts_before}->{}", parquet_files(&lake))),
        "{err}"
    );
    assert_eq!(err.lines().count(), 3, "{err}");
    assert_reads_as(&lake, &fresh);
    // The manifest's progress survives: the same log again adds nothing.
    let again = run_ok(
        bin()
            .current_dir(root())
            .args(["ingest", "--no-progress", "--hub", "gen", "--lake"])
            .arg(&lake)
            .arg(GEN_LOG),
    );
    assert!(again.contains(" records=0 "), "{again}");
    assert_reads_as(&lake, &fresh);
}

#[test]
fn a_second_migrate_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lake = v1_lake(dir.path());
    migrate_ok(&lake);
    let once = tree(&lake);
    let err = migrate_ok(&lake);
    assert!(err.contains("nothing to do"), "{err}");
    assert!(once == tree(&lake), "the second migrate changed the lake");
}

#[test]
fn a_directory_without_a_lake_is_refused_and_left_unmarked() {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = migrate(dir.path());
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing to migrate"), "{err}");
    assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()).keys());
}

/// The lake as a crash during migrate's last commit of hub `gen` leaves it: that day's old parts
/// (those of `fixture`) back in place and its new parts in staging, with the commit file
/// written (`durable`: the crash came before the partitions were swapped) or not (the crash
/// came before the commit); and no format marker (it is written last).
fn crash_in_last_commit(lake: &Path, fixture: &str, durable: bool) {
    let manifests = lake.join("_hubpulse/hubs/gen/manifest");
    let last = std::fs::read_dir(&manifests)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .max()
        .unwrap();
    let c: serde_json::Value = serde_json::from_slice(&std::fs::read(&last).unwrap()).unwrap();
    let parts = c["parts"].as_array().unwrap();
    let replaces = c["replaces"].as_array().unwrap();
    assert!(!parts.is_empty() && !replaces.is_empty(), "{c}");
    for p in parts {
        let (path, staging) = (p["path"].as_str().unwrap(), p["staging"].as_str().unwrap());
        std::fs::create_dir_all(lake.join(staging).parent().unwrap()).unwrap();
        std::fs::rename(lake.join(path), lake.join(staging)).unwrap();
    }
    for r in replaces {
        let r = r.as_str().unwrap();
        std::fs::create_dir_all(lake.join(r).parent().unwrap()).unwrap();
        std::fs::copy(root().join(fixture).join(r), lake.join(r)).unwrap();
    }
    if !durable {
        std::fs::remove_file(&last).unwrap();
    }
    std::fs::remove_file(lake.join("_hubpulse/format.json")).unwrap();
}

#[test]
fn a_migrate_interrupted_is_finished_by_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = fresh_lake(dir.path());
    let fresh_v2 = fresh_lake_of(dir.path(), "fresh-v2", &[GEN_LOG, FINER_LOG]);
    for (i, (fixture, fresh)) in [(FIXTURE, &fresh), (FIXTURE_V2, &fresh_v2)]
        .into_iter()
        .enumerate()
    {
        for durable in [false, true] {
            let lake = dir.path().join(format!("crashed-{i}-{durable}"));
            copy_tree(&root().join(fixture), &lake);
            migrate_ok(&lake);
            crash_in_last_commit(&lake, fixture, durable);
            let at = format!("{fixture} durable={durable}");
            // Readers still refuse the lake half converted.
            let q = run(bin()
                .args(["query", "--lake"])
                .arg(&lake)
                .arg("SELECT 1 FROM events"));
            assert!(!q.status.success(), "{at}: a reader read it");
            let err = migrate_ok(&lake);
            // A durable commit is rolled forward when the hub is opened (its day is then of
            // format 3); one never written is rolled back, and its day converted again.
            let gen_days = if durable {
                "days=0 already=3"
            } else {
                "days=1 already=2"
            };
            assert!(hub_line(&err, "gen").contains(gen_days), "{at}: {err}");
            assert!(
                hub_line(&err, "jupyterhub").contains("days=0 already=1"),
                "{at}: {err}"
            );
            let staging = lake.join("_hubpulse/hubs/gen/staging");
            assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
            let swap = lake.join("_hubpulse/hubs/gen/swap");
            assert!(!swap.exists() || std::fs::read_dir(&swap).unwrap().count() == 0);
            assert_reads_as(&lake, fresh);
        }
    }
}

/// A format 2 lake: refused until migrated; then its `activity` parts are rewritten (times in
/// ms, durations in hundredths) and every reader's answer is a fresh ingest's, message for
/// message. Its heartbeats stamped finer than a millisecond become `events` rows with their µs.
#[test]
fn a_format_2_lake_is_migrated_to_read_as_a_fresh_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let lake = v2_lake(dir.path());
    let fresh = fresh_lake_of(dir.path(), "fresh-v2", &[GEN_LOG, FINER_LOG]);
    let q = run(bin()
        .args(["query", "--lake"])
        .arg(&lake)
        .arg("SELECT count(*) FROM events"));
    let refused = String::from_utf8_lossy(&q.stderr);
    assert!(
        !q.status.success() && refused.contains("lake format 2") && refused.lines().count() == 1,
        "{refused}"
    );
    let parts_before = parquet_files(&lake);
    let activity_parts = tree(&lake)
        .keys()
        .filter(|k| k.starts_with("activity/") && k.ends_with(".parquet"))
        .count();
    let err = migrate_ok(&lake);
    migrated_every_day(&err);
    // Only the `activity` parts are replaced (by `activity` parts, and `events` parts for the
    // heartbeats now rows); `events` and `lifecycle` parts of format 2 are of format 3.
    let summary = err.lines().last().unwrap();
    let head = format!("parts={activity_parts}->");
    let written: usize = summary
        .split_once(&head)
        .and_then(|(_, r)| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(summary.contains("is now format 3"), "{err}");
    assert_eq!(
        parquet_files(&lake),
        parts_before - activity_parts + written
    );
    assert_reads_as(&lake, &fresh);
    let finer = |lake: &Path, table: &str| {
        let sql = format!(
            "SELECT source_offset, CAST(ts AS BIGINT) AS us FROM {table} \
             WHERE route = '/hub/api/users/{{user}}/activity' AND CAST(ts AS BIGINT) % 1000 <> 0 \
             ORDER BY source_offset"
        );
        run_ok(
            bin()
                .args(["query", "--format", "csv", "--lake"])
                .arg(lake)
                .arg(sql),
        )
    };
    // Four heartbeats format 2 folded, and one WARNING it kept as a row: all rows now.
    let rows = finer(&lake, "events_rows");
    assert_eq!(rows.lines().count(), 1 + 5, "{rows}");
    assert_eq!(rows, finer(&fresh, "events_rows"));
    assert!(rows.contains("1793610037023456"), "{rows}");
    // Their times, listed in `activity`, exactly.
    let listed = run_ok(
        bin()
            .args(["query", "--format", "csv", "--lake"])
            .arg(&lake)
            .arg(
                "SELECT CAST(first AS BIGINT) AS us FROM activity WHERE offsets IS NULL \
                 AND count = 1 AND CAST(first AS BIGINT) % 1000 <> 0 ORDER BY us",
            ),
    );
    let mut want: Vec<&str> = rows
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    want.sort();
    assert_eq!(listed.lines().skip(1).collect::<Vec<_>>(), want, "{listed}");
    let again = migrate_ok(&lake);
    assert!(again.contains("nothing to do"), "{again}");
}

#[test]
fn a_lake_in_a_bucket_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = fresh_lake(dir.path());
    let moto = crate::s3::Moto::start();
    let fixture = root().join(FIXTURE);
    for (rel, body) in tree(&fixture) {
        // A lock file is a local writer's; a lake in a bucket has none.
        if !rel.ends_with("/lock") {
            moto.put(&format!("v1/{rel}"), &body);
        }
    }
    let lake = moto.lake("v1");
    let env = moto.env();
    let migrate = |lake: &Path| {
        let out = run(bin()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["migrate", "--lake"])
            .arg(lake));
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "migrate failed: {err}");
        err
    };
    let err = migrate(&lake);
    migrated_every_day(&err);
    assert_reads_as_in(&lake, &env, &fresh);
    // Nothing left in staging, and the replaced parts are gone: a day's commit writes one part
    // per table, so every partition of the fixture has exactly one part now.
    let keys = moto.keys("v1");
    assert!(!keys.iter().any(|k| k.contains("/staging/")), "{keys:#?}");
    let mut per_partition: BTreeMap<String, usize> = BTreeMap::new();
    for k in keys.iter().filter(|k| k.ends_with(".parquet")) {
        let (partition, _) = k.trim_start_matches("v1/").rsplit_once('/').unwrap();
        *per_partition.entry(partition.to_string()).or_default() += 1;
    }
    let fixture_partitions: std::collections::BTreeSet<String> = tree(&fixture)
        .keys()
        .filter(|k| k.ends_with(".parquet"))
        .map(|k| k.rsplit_once('/').unwrap().0.to_string())
        .collect();
    assert!(
        per_partition.keys().eq(fixture_partitions.iter())
            && per_partition.values().all(|&n| n == 1),
        "{keys:#?}"
    );
    assert!(migrate(&lake).contains("nothing to do"));
}
