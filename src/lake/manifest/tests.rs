//! The manifest's unit tests.

use super::*;

fn commit(seq: u64, to: u64) -> Commit {
    Commit {
        version: 1,
        seq,
        created: String::new(),
        table: "events".into(),
        source: None,
        sources: vec![SourceProgress {
            fp: format!("f{}", seq % 3),
            head_len: 100,
            path: "x.log".into(),
            from: to - 1,
            to,
            prefix_hash: format!("{to:016x}"),
            marks: Vec::new(),
            file_id: None,
        }],
        streams: vec![StreamProgress {
            stream: "k8s/ns/hub/hub".into(),
            pos: super::StreamPos {
                ts_nanos: seq as i64,
                same_ts: 1,
            },
        }],
        replaces: Vec::new(),
        parts: Vec::new(),
        records: 1,
        unparsed: 0,
    }
}

#[test]
fn commits_fold_into_a_snapshot_and_reopen_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let n = FOLD_EVERY as u64 * 2 + 7;
    let (progress, streams, next) = {
        let mut m = Manifest::open(&crate::lake::LakeLocation::local(dir.path()), "h").unwrap();
        for i in 1..=n {
            let seq = m.next_seq();
            m.commit(&commit(seq, i + 10)).unwrap();
        }
        let files = fs::read_dir(dir.path().join("_hubpulse/hubs/h/manifest"))
            .unwrap()
            .count();
        assert!(files <= FOLD_EVERY, "{files} commit files left");
        (
            m.progress().clone(),
            m.stream_positions().clone(),
            m.next_seq(),
        )
    };
    assert_eq!(next, n + 1);
    // Earlier commit ends are kept as marks (what a copy shorter than the offset is checked by).
    let marks = &progress["f1"].marks;
    assert!(
        marks.len() > 2 && marks.windows(2).all(|w| w[0].0 < w[1].0),
        "{marks:?}"
    );
    assert!(marks.last().unwrap().0 < progress["f1"].to);
    assert_eq!(
        progress["f1"].to,
        (1..=n).filter(|s| s % 3 == 1).max().unwrap() + 10
    );
    let m = Manifest::open(&crate::lake::LakeLocation::local(dir.path()), "h").unwrap();
    assert_eq!(m.progress(), &progress);
    assert_eq!(m.stream_positions(), &streams);
    assert_eq!(m.next_seq(), n + 1);
}
