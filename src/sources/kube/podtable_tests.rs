#![allow(clippy::unwrap_used)]
use super::*;

fn row(pod: &str, phase: &str) -> PodRow {
    PodRow {
        namespace: "jhub".into(),
        pod: pod.into(),
        phase: Some(phase.into()),
        ..PodRow::default()
    }
}

#[test]
fn only_changes_become_rows() {
    let mut d = Dedup::default();
    assert_eq!(d.applied(row("a", "Pending")).unwrap().0, Change::Seen);
    assert_eq!(d.applied(row("a", "Pending")), None);
    assert_eq!(d.applied(row("a", "Running")).unwrap().0, Change::Changed);
    assert_eq!(d.applied(row("b", "Running")).unwrap().0, Change::Seen);
    let (c, r) = d.deleted(row("a", "Succeeded")).unwrap();
    // the deletion carries the last state written
    assert_eq!((c, r.phase.as_deref()), (Change::Deleted, Some("Running")));
    assert_eq!(d.deleted(row("a", "Succeeded")), None);
}

/// After a watch failure (`410 Gone`) the watcher relists; a pod deleted meanwhile gets no
/// delete event, only its absence from the relist.
#[test]
fn a_pod_missing_from_a_relist_is_deleted_once() {
    let mut d = Dedup::default();
    // the first list: nothing was known, nothing is deleted
    d.relisting();
    d.applied(row("a", "Running"));
    d.applied(row("b", "Running"));
    assert_eq!(d.relisted(), vec![]);
    // the relist shows b (unchanged: no row) and c, not a
    d.relisting();
    assert_eq!(d.applied(row("b", "Running")), None);
    assert_eq!(d.applied(row("c", "Pending")).unwrap().0, Change::Seen);
    let gone = d.relisted();
    assert_eq!(gone.len(), 1);
    assert_eq!(
        (
            gone[0].0,
            gone[0].1.pod.as_str(),
            gone[0].1.phase.as_deref()
        ),
        (Change::Deleted, "a", Some("Running"))
    );
    assert_eq!(d.last("jhub", "a"), None);
    // outside a relist, InitDone alone deletes nothing
    assert_eq!(d.relisted(), vec![]);
    assert!(d.last("jhub", "b").is_some() && d.last("jhub", "c").is_some());
}

#[test]
fn an_event_is_a_row_for_a_watched_pod_and_a_count_for_any() {
    use crate::sources::kube::podevents::{EventDedup, EventStats};
    let ev = |pod: &str, uid: &str| -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{pod}.1"), "namespace": "jhub", "uid": uid},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": "jhub"},
            "reason": "Preempted", "message": "Preempted by jhub/jupyter-bob on node n1",
            "lastTimestamp": "2026-11-30T09:00:05Z", "count": 1, "type": "Normal"
        }))
        .unwrap()
    };
    let mut pods = Dedup::default();
    pods.applied(row("jupyter-alice", "Running"));
    let (mut seen, stats) = (EventDedup::default(), EventStats::default());
    let rows = event_rows(&ev("jupyter-alice", "u1"), &pods, &mut seen, Some(&stats));
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, Change::Event);
    assert_eq!(rows[0].1.phase.as_deref(), Some("Running"));
    assert_eq!(rows[0].1.event.as_ref().unwrap().event, PodEvent::Preempted);
    // the same occurrence again: nothing
    assert!(event_rows(&ev("jupyter-alice", "u1"), &pods, &mut seen, Some(&stats)).is_empty());
    // a placeholder: counted, not written
    assert!(
        event_rows(
            &ev("user-placeholder-0", "u2"),
            &pods,
            &mut seen,
            Some(&stats)
        )
        .is_empty()
    );
    assert_eq!(stats.get(PodEvent::Preempted, true), 1);
    assert_eq!(stats.get(PodEvent::Preempted, false), 1);
    // the stored state is not the event row
    assert_eq!(pods.last("jhub", "jupyter-alice").unwrap().event, None);
}

/// Parts written before the event and node columns existed read as nulls there.
#[tokio::test]
async fn parts_without_the_new_columns_still_query() {
    let dir = tempfile::tempdir().unwrap();
    let sink = PodSink::new(&crate::lake::LakeLocation::local(dir.path()), "hub");
    let ts = DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let batch = sink
        .batch(ts, &[(Change::Seen, row("old", "Running"))])
        .unwrap();
    // the 16 columns of the first `pods` schema
    let old = batch.project(&(0..16).collect::<Vec<_>>()).unwrap();
    sink.root.publish("2026-11-30", 0, &old).unwrap();
    let mut new_row = row("new", "Running");
    new_row.instance_type = Some("m5.xlarge".into());
    sink.write(ts, &[(Change::Seen, new_row)]).unwrap();
    let ctx = crate::query::session(&crate::lake::LakeLocation::local(dir.path()))
        .await
        .unwrap();
    let out = crate::query::run(
        &ctx,
        "SELECT pod, instance_type, event IS NULL AS no_event FROM pods ORDER BY pod",
    )
    .await
    .unwrap();
    let mut text = Vec::new();
    crate::query::render(&out, crate::query::Format::Csv, &mut text).unwrap();
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "pod,instance_type,no_event\nnew,m5.xlarge,true\nold,,true\n"
    );
}

#[test]
fn a_part_holds_the_rows_of_one_event() {
    let dir = tempfile::tempdir().unwrap();
    let sink = PodSink::new(&crate::lake::LakeLocation::local(dir.path()), "hub");
    let ts = DateTime::parse_from_rfc3339("2026-11-30T09:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    sink.write(ts, &[]).unwrap();
    assert!(!dir.path().join("pods").exists());
    sink.write(
        ts,
        &[
            (Change::Seen, row("a", "Pending")),
            (Change::Seen, row("b", "Running")),
        ],
    )
    .unwrap();
    let parts: Vec<_> = std::fs::read_dir(dir.path().join("pods/hub=hub/dt=2026-11-30"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(parts.len(), 1);
    assert!(parts[0].starts_with("part-") && parts[0].ends_with(".parquet"));
}
