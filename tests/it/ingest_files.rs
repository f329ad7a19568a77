//! `hubpulse ingest` of several files: one commit (one part per table and day) covers them all,
//! and the lake holds the rows, and resumes each file where, ingesting them one per run would.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::lake::{field, options};
use crate::support::{bin, files_under, query_csv, root, run_ok, wait_for};

const HUB: &str = "_hubpulse/hubs/jupyterhub";

fn ingest(lake: &Path, files: &[PathBuf]) -> String {
    run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(lake)
            .args(files),
    )
}

/// The real fixture logs (`fixtures/logs/real/**/*.log`), sorted.
fn real_logs() -> Vec<PathBuf> {
    let mut out = files_under(&root().join("fixtures/logs/real"));
    out.retain(|p| p.extension().is_some_and(|x| x == "log"));
    assert!(out.len() >= 5, "{out:?}");
    out
}

/// Copies of `files` in `dir` (so that a test may grow them), in the same order.
fn copies(files: &[PathBuf], dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let to = dir.join(format!(
                "{i:02}-{}",
                f.file_name().unwrap().to_string_lossy()
            ));
            std::fs::copy(f, &to).unwrap();
            to
        })
        .collect()
}

/// Every row of the lake, in an order that does not depend on how the rows were committed
/// (activity folded per user, day and file: readers fold the rows of several commits).
fn contents(lake: &Path) -> String {
    [
        "SELECT * FROM events ORDER BY source_file, source_offset",
        "SELECT * FROM lifecycle ORDER BY source_file, source_offset",
        "SELECT dt, \"user\", source_file, sum(count), min(first), max(last) FROM activity \
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
    ]
    .iter()
    .map(|sql| query_csv(lake, sql))
    .collect::<Vec<_>>()
    .join("\n")
}

/// Published Parquet parts, by (table, partition).
fn parts(lake: &Path) -> std::collections::BTreeMap<(String, String), usize> {
    let mut out = std::collections::BTreeMap::new();
    for p in files_under(lake) {
        let rel = p.strip_prefix(lake).unwrap().to_string_lossy().into_owned();
        if rel.starts_with("_hubpulse") || !rel.ends_with(".parquet") {
            continue;
        }
        let mut it = rel.split('/');
        let (table, _hub, dt) = (it.next().unwrap(), it.next(), it.next().unwrap());
        *out.entry((table.to_string(), dt.to_string())).or_default() += 1;
    }
    out
}

/// The hub's commit files, in sequence order.
fn commits(lake: &Path) -> Vec<(PathBuf, Value)> {
    files_under(&lake.join(HUB).join("manifest"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            (p, v)
        })
        .collect()
}

/// Every file's progress a commit lists.
fn sources(commit: &Value) -> Vec<Value> {
    let mut out: Vec<Value> = commit["sources"].as_array().cloned().unwrap_or_default();
    out.extend(
        commit["source"]
            .as_object()
            .map(|o| Value::Object(o.clone())),
    );
    out
}

/// Each file in a run of its own, into `lake`; returns each run's records.
fn one_per_run(lake: &Path, files: &[PathBuf]) -> Vec<u64> {
    files
        .iter()
        .map(|f| field(&ingest(lake, std::slice::from_ref(f)), "records"))
        .collect()
}

#[test]
fn several_files_in_one_run_make_one_part_per_table_and_day_with_the_rows_of_one_run_each() {
    let dir = tempfile::tempdir().unwrap();
    let files = real_logs();
    let (together, apart) = (dir.path().join("together"), dir.path().join("apart"));
    let s = ingest(&together, &files);
    let each = one_per_run(&apart, &files);
    assert_eq!(contents(&together), contents(&apart));
    assert!(each.iter().all(|&n| n > 0), "{each:?}");
    assert_eq!(field(&s, "records"), each.iter().sum::<u64>(), "{s}");
    assert_eq!(field(&s, "files"), files.len() as u64);
    let bytes: u64 = files.iter().map(|f| f.metadata().unwrap().len()).sum();
    assert_eq!(field(&s, "bytes"), bytes);
    // One part per table and day, one commit listing every file, and `parts=` says so.
    let shared = parts(&together);
    assert!(shared.values().all(|&n| n == 1), "{shared:?}");
    assert_eq!(field(&s, "parts"), shared.len() as u64);
    let separate = parts(&apart);
    assert_eq!(
        shared.keys().collect::<Vec<_>>(),
        separate.keys().collect::<Vec<_>>()
    );
    assert!(
        separate.values().sum::<usize>() > shared.len() * 2,
        "{separate:?}"
    );
    let c = commits(&together);
    assert_eq!(c.len(), 1);
    let listed: Vec<String> = sources(&c[0].1)
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_string())
        .collect();
    let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    assert_eq!(listed, paths);
    // What each file added, as its own run added it (the CLI warns from these).
    let lib = dir.path().join("lib");
    let summary = hubpulse::ingest::ingest(&options(&lib), &files).unwrap();
    let by_file: Vec<(PathBuf, u64)> = summary
        .by_file
        .iter()
        .map(|f| (f.path.clone(), f.records))
        .collect();
    let want: Vec<(PathBuf, u64)> = files.iter().cloned().zip(each).collect();
    assert_eq!(by_file, want);
    assert!(summary.by_file.iter().all(|f| f.unparsed == 0));
}

const LINE: &str = "[I 2026-11-28 10:00:00.000 JupyterHub log:192] 200 POST /hub/api/users/alice/activity (alice@10.0.0.1) 1.00ms\n";

#[test]
fn ingesting_the_files_again_adds_nothing_and_an_appended_file_only_its_new_lines() {
    let dir = tempfile::tempdir().unwrap();
    let originals = real_logs();
    let (together, apart) = (dir.path().join("together"), dir.path().join("apart"));
    let files = copies(&originals, &dir.path().join("logs"));
    ingest(&together, &files);
    one_per_run(&apart, &files);
    let again = ingest(&together, &files);
    assert_eq!(
        (field(&again, "records"), field(&again, "bytes")),
        (0, 0),
        "{again}"
    );
    assert_eq!(field(&again, "parts"), 0);
    assert_eq!(
        commits(&together).len(),
        1,
        "nothing read, nothing committed"
    );
    // Three lines and the start of a fourth appended to one file in the middle of the list.
    let grown = &files[files.len() / 2];
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(grown)
        .unwrap();
    f.write_all(LINE.repeat(3).as_bytes()).unwrap();
    f.write_all(&LINE.as_bytes()[..30]).unwrap();
    let s = ingest(&together, &files);
    assert_eq!(field(&s, "records"), 3, "{s}");
    assert_eq!(field(&s, "bytes"), LINE.len() as u64 * 3);
    let c = commits(&together);
    assert_eq!(c.len(), 2);
    let listed = sources(&c[1].1);
    assert_eq!(listed.len(), 1, "only the file that advanced: {listed:?}");
    assert_eq!(listed[0]["path"], grown.display().to_string());
    one_per_run(&apart, &files);
    assert_eq!(contents(&together), contents(&apart));
}

/// A file listed twice, a copy of a file read earlier in the run, and a file that continues one
/// read earlier in the run (whose progress is not committed yet) resume as they would after
/// that file's own commit: nothing twice.
#[test]
fn a_file_read_twice_or_continued_in_one_run_resumes_as_in_separate_runs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let real = copies(&real_logs()[..3], &logs);
    // Shorter than a fingerprint's 4 KiB, then the same lines and more: the second continues
    // the first (the same source, grown).
    let short = logs.join("short.log");
    std::fs::write(&short, LINE.repeat(3)).unwrap();
    let long = logs.join("long.log");
    let bob = LINE.replace("alice", "bobby");
    std::fs::write(&long, format!("{}{}", LINE.repeat(3), bob.repeat(2))).unwrap();
    let copy = logs.join("copy.log");
    std::fs::copy(&real[1], &copy).unwrap();
    let files = vec![
        real[0].clone(),
        short.clone(),
        real[1].clone(),
        real[0].clone(),
        long.clone(),
        copy.clone(),
        real[2].clone(),
    ];
    let (together, apart) = (dir.path().join("together"), dir.path().join("apart"));
    let lib = dir.path().join("lib");
    let each = one_per_run(&apart, &files);
    assert_eq!(each[1], 3);
    assert_eq!((each[3], each[4], each[5]), (0, 2, 0), "{each:?}");
    let s = ingest(&together, &files);
    assert_eq!(field(&s, "records"), each.iter().sum::<u64>(), "{s}");
    assert_eq!(contents(&together), contents(&apart));
    let summary = hubpulse::ingest::ingest(&options(&lib), &files).unwrap();
    let by_file: Vec<u64> = summary.by_file.iter().map(|f| f.records).collect();
    assert_eq!(by_file, each);
    assert_eq!(field(&ingest(&together, &files), "records"), 0);
}

/// Moves a commit's parts back to staging: the state of a crash after they were written and
/// before the commit file was (`drop_commit`), or after it and before they were published.
fn unpublish(lake: &Path, commit: &(PathBuf, Value), drop_commit: bool) {
    for p in commit.1["parts"].as_array().unwrap() {
        let staging = lake.join(p["staging"].as_str().unwrap());
        std::fs::create_dir_all(staging.parent().unwrap()).unwrap();
        std::fs::rename(lake.join(p["path"].as_str().unwrap()), staging).unwrap();
    }
    if drop_commit {
        std::fs::remove_file(&commit.0).unwrap();
    }
}

/// Removes a commit and its parts, as if it had never been made.
fn forget(lake: &Path, commit: &(PathBuf, Value)) {
    for p in commit.1["parts"].as_array().unwrap() {
        std::fs::remove_file(lake.join(p["path"].as_str().unwrap())).unwrap();
    }
    std::fs::remove_file(&commit.0).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    for f in files_under(from) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

/// Commits that cover several files (and files cut between commits), interrupted at each one
/// in turn: ingesting again replays from the commit before, neither skipping nor repeating.
#[test]
fn a_crash_at_any_commit_of_several_files_replays_from_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let files = real_logs();
    let full = dir.path().join("full");
    let opts = hubpulse::ingest::IngestOptions {
        commit_bytes: 25_000,
        piece_records: 40,
        ..options(&full)
    };
    let total = hubpulse::ingest::ingest(&opts, &files).unwrap().records;
    let want = contents(&full);
    let all = commits(&full);
    assert!(all.len() >= 4, "{}", all.len());
    assert!(
        all.iter().any(|c| sources(&c.1).len() > 2),
        "a commit covers several files"
    );
    let cut: Vec<u64> = all
        .iter()
        .flat_map(|c| sources(&c.1))
        .filter(|s| s["from"].as_u64() != Some(0))
        .map(|s| s["from"].as_u64().unwrap())
        .collect();
    assert!(!cut.is_empty(), "a file spans commits");
    let mut before = 0;
    for (k, commit) in all.iter().enumerate() {
        for durable in [false, true] {
            let lake = dir.path().join(format!("crash-{k}-{durable}"));
            copy_dir(&full, &lake);
            let mine: Vec<(PathBuf, Value)> = commits(&lake);
            for later in &mine[k + 1..] {
                forget(&lake, later);
            }
            unpublish(&lake, &mine[k], !durable);
            let s = ingest(&lake, &files);
            let replayed = if durable {
                total - before - commit.1["records"].as_u64().unwrap()
            } else {
                total - before
            };
            assert_eq!(
                field(&s, "records"),
                replayed,
                "commit {k}, durable {durable}: {s}"
            );
            assert_eq!(contents(&lake), want, "commit {k}, durable {durable}");
            assert!(files_under(&lake.join(HUB).join("staging")).is_empty());
        }
        before += commit.1["records"].as_u64().unwrap();
    }
    assert_eq!(before, total);
}

/// A process killed while files read since the last commit wait in the writer's parts: the
/// next ingest adds exactly what a run without the crash adds.
#[test]
fn a_process_killed_between_files_loses_and_repeats_nothing() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.log");
    run_ok(
        bin()
            .args(["generate", "--users", "60", "--days", "10", "--out"])
            .arg(&big),
    );
    let mut files = real_logs();
    files.push(big);
    let (clean, lake) = (dir.path().join("clean"), dir.path().join("lake"));
    ingest(&clean, &files);
    // A first commit of one file, then a run of all of them killed once rows of the second are
    // with the writer.
    ingest(&lake, &files[..1]);
    assert_eq!(commits(&lake).len(), 1);
    let staging = lake.join(HUB).join("staging");
    let mut child = bin()
        .args(["ingest", "--no-progress", "--lake"])
        .arg(&lake)
        .args(&files)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "a part in staging",
        std::time::Duration::from_secs(60),
        || !files_under(&staging).is_empty(),
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed before it finished");
    assert_eq!(commits(&lake).len(), 1, "the run's commit never happened");
    let s = ingest(&lake, &files);
    assert!(field(&s, "records") > 0);
    assert_eq!(contents(&lake), contents(&clean));
}

/// A run that stops at an unreadable input commits the files read before it: the next run
/// reads only the rest.
#[test]
fn an_error_commits_the_files_read_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = real_logs();
    let (lake, apart) = (dir.path().join("lake"), dir.path().join("apart"));
    // A directory opens, and fails when it is read.
    let unreadable = dir.path().join("not-a-log");
    std::fs::create_dir(&unreadable).unwrap();
    let mut with_error = files[..3].to_vec();
    with_error.push(unreadable);
    with_error.extend_from_slice(&files[3..]);
    let err = hubpulse::ingest::ingest(&options(&lake), &with_error).unwrap_err();
    assert!(err.to_string().contains("not-a-log"), "{err}");
    let c = commits(&lake);
    assert_eq!(c.len(), 1);
    assert_eq!(sources(&c[0].1).len(), 3);
    let each = one_per_run(&apart, &files);
    let s = ingest(&lake, &files);
    assert_eq!(field(&s, "records"), each[3..].iter().sum::<u64>(), "{s}");
    assert_eq!(contents(&lake), contents(&apart));
}
