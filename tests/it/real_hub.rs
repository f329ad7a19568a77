//! Against a real JupyterHub (PyPI) with configurable-http-proxy (npm): the harness drives a
//! scenario and records what it observed through the API; hubpulse must find it all in the log.

use crate::support::hub::run_scenario;
use crate::support::{bin, query_csv, query_num, run_ok};

fn count(lake: &std::path::Path, where_: &str) -> u64 {
    let n = query_num(lake, &format!("SELECT count(*) FROM events WHERE {where_}"));
    u64::try_from(n).unwrap()
}

#[test]
fn a_real_hub_session_is_fully_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    // The live agent follows the hub's log while the scenario runs.
    let live = dir.path().join("live-lake");
    let port = crate::support::free_port();
    // The harness venv before the agent: a missing one fails with how to install it.
    crate::support::harness_python();
    let mut agent = bin()
        .args(["run", "--flush-interval", "1s", "--hub", "real", "--http"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--lake")
        .arg(&live)
        // A glob: the hub creates its log after the agent starts (a plain path must exist).
        .arg("--follow")
        .arg(out.join("hub.log*"))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn hubpulse run");
    crate::support::wait_for(
        "the agent's /healthz",
        std::time::Duration::from_secs(30),
        || crate::support::http_get(port, "/healthz").is_some_and(|(s, _)| s == 200),
    );
    let status = run_scenario(&[
        "--layout".into(),
        "combined".into(),
        "--scenario".into(),
        "quick".into(),
        "--out".into(),
        out.clone().into(),
    ]);
    assert!(status.success(), "harness failed");
    // The hub has exited: its last record (the shutdown) reaches the live lake within the
    // flush interval; then the agent stops gracefully.
    crate::support::wait_for(
        "the hub's shutdown in the live lake",
        std::time::Duration::from_secs(60),
        || live.join("events").exists() && count(&live, "kind = 'hub_shutdown'") == 1,
    );
    crate::support::sigterm(&agent);
    assert!(agent.wait().unwrap().success(), "agent exit status");
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("truth.json")).unwrap()).unwrap();
    let lake = dir.path().join("lake");
    let summary = run_ok(
        bin()
            .args(["ingest", "--no-progress", "--lake"])
            .arg(&lake)
            .arg(out.join("hub.log")),
    );
    assert!(
        summary.contains("unparsed=0"),
        "every line of a real hub log is recognised: {summary}"
    );
    // The live agent's lake holds exactly what a batch ingest of the finished file holds.
    let by_kind = "SELECT kind, count(*) AS n, sum(source_offset) AS o FROM events GROUP BY kind ORDER BY kind";
    assert_eq!(query_csv(&live, by_kind), query_csv(&lake, by_kind));

    let ok = truth["spawns_succeeded"].as_array().unwrap();
    assert_eq!(count(&lake, "kind = 'spawn_succeeded'"), ok.len() as u64);
    for s in ok {
        let (u, srv) = (s["user"].as_str().unwrap(), s["server"].as_str().unwrap());
        assert_eq!(
            count(
                &lake,
                &format!("kind = 'spawn_succeeded' AND \"user\" = '{u}' AND server_name = '{srv}'")
            ),
            1,
            "spawn of {u}:{srv}"
        );
    }
    let stops = truth["stops"].as_array().unwrap();
    for s in stops {
        let (u, srv) = (s["user"].as_str().unwrap(), s["server"].as_str().unwrap());
        assert!(
            count(
                &lake,
                &format!("kind = 'stop_succeeded' AND \"user\" = '{u}' AND server_name = '{srv}'")
            ) >= 1,
            "stop of {u}:{srv} with its server name recovered"
        );
    }
    let failed = truth["spawns_failed"].as_array().unwrap();
    assert!(!failed.is_empty());
    for s in failed {
        let (u, srv) = (s["user"].as_str().unwrap(), s["server"].as_str().unwrap());
        assert!(
            count(
                &lake,
                &format!(
                    "kind IN ('spawn_failed', 'spawn_timeout') AND \"user\" = '{u}' AND server_name = '{srv}'"
                )
            ) >= 1,
            "failed spawn of {u}:{srv}"
        );
    }
    assert_eq!(
        count(&lake, "kind = 'login'"),
        truth["logins_ok"].as_u64().unwrap()
    );
    assert_eq!(count(&lake, "kind = 'hub_shutdown'"), 1);
    assert!(count(&lake, "kind = 'request'") > 10);
    assert_eq!(
        count(
            &lake,
            "message LIKE '%api_token=%' AND message NOT LIKE '%api_token=''[secret]''%'"
        ),
        0
    );
}
