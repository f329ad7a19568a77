//! Server names recovered for lines that omit them, on the shapes the simulated month
//! (`fixtures/month/simulate.py`) found the report getting wrong.

use std::sync::Arc;

use super::{Parser, catalogue::Catalogue, reader, time::Zone};

/// Every record of `log`, as the lake's JSON (server name and kind are what these tests read).
fn all(log: &str) -> Vec<serde_json::Value> {
    let cat = Arc::new(Catalogue::embedded().unwrap_or_else(|e| panic!("{e}")));
    let mut p = Parser::new(cat, Zone::new(chrono_tz::Tz::UTC), None);
    let mut out = Vec::new();
    let mut r = reader::RecordReader::new(log.as_bytes(), 0, reader::ReaderConfig::default());
    let _ = r.run(reader::AtEof::Finish, |raw| {
        out.push(p.parse(&raw, |rec| rec.to_json("h", "f", "fp")));
    });
    out
}

fn servers_of(log: &str, kind: &str) -> Vec<String> {
    all(log)
        .iter()
        .filter(|v| v["kind"] == kind)
        .map(|v| v["server_name"].as_str().unwrap_or("<null>").to_string())
        .collect()
}

#[test]
fn interleaved_stops_of_one_user_take_the_removal_their_seconds_point_to() {
    // jupyterhub-idle-culler gathers a user's servers at once; handlers/base.py
    // `stop_single_user.stop` takes `tic`, logs the removal, stops the pod, then logs the
    // seconds since `tic`: each stop line points back at its own removal.
    let log = "\
[I 261030 20:33:47 __init__:251] Culling server alice/train (inactive for 01:07:07)
[I 2026-10-30 20:33:47.826 JupyterHub proxy:356] Removing user alice from proxy (/user/alice/train/)
[I 261030 20:33:47 __init__:251] Culling server alice (inactive for 01:07:40)
[I 2026-10-30 20:33:47.965 JupyterHub proxy:356] Removing user alice from proxy (/user/alice/)
[I 2026-10-30 20:33:50.019 JupyterHub base:1334] User alice server took 2.205 seconds to stop
[I 2026-10-30 20:33:50.835 JupyterHub base:1334] User alice server took 2.882 seconds to stop
[I 2026-10-30 21:00:00.100 JupyterHub proxy:356] Removing user alice from proxy (/user/alice/train/)
[I 2026-10-30 21:00:01.000 JupyterHub base:1334] User alice server took 0.950 seconds to stop
";
    assert_eq!(
        servers_of(log, "stop_succeeded"),
        ["train", "", "train"],
        "each stop names the server whose removal began it"
    );
}

#[test]
fn a_server_named_like_a_jupyter_page_keeps_its_name_in_its_route_and_its_api_path() {
    // `notebooks`, `lab`, `tree`… after `/user/bob/` are the default server's pages, but a
    // route spec (proxy.py: `user.proxy_spec` + `url_escape_path(server_name)` + `/`) and
    // `/hub/api/users/{user}/servers/{server}` hold only server names.
    let log = "\
[I 2026-10-30 17:00:00.010 JupyterHub proxy:356] Removing user bob from proxy (/user/bob/notebooks/)
[I 2026-10-30 17:00:01.200 JupyterHub base:1334] User bob server took 1.190 seconds to stop
[I 2026-10-30 17:00:01.202 JupyterHub log:192] 204 DELETE /hub/api/users/bob/servers/notebooks (bob@10.128.0.7) 1199.37ms
[I 2026-10-30 17:00:02.000 JupyterHub proxy:356] Removing user a@b.org from proxy (/user/a@b.org/lab/)
[I 2026-10-30 17:00:02.000 JupyterHub proxy:356] Removing user bob from proxy (/user/bob/)
[I 2026-10-30 17:00:03.000 JupyterHub log:192] 200 GET /user/bob/notebooks/x.ipynb (bob@10.128.0.7) 9.00ms
";
    let v = all(log);
    let server = |i: usize| v[i]["server_name"].as_str().unwrap_or("<null>").to_string();
    assert_eq!(server(0), "notebooks");
    assert_eq!(
        server(1),
        "notebooks",
        "the stop line takes it from the removal"
    );
    assert_eq!(server(2), "notebooks");
    assert_eq!(v[2]["route"], "/hub/api/users/{user}/servers/{server}");
    assert_eq!(
        (v[3]["user"].as_str(), server(3).as_str()),
        (Some("a@b.org"), "lab")
    );
    assert_eq!(server(4), "");
    assert_eq!(server(5), "", "a notebook page of the default server");
}
