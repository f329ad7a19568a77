//! Shared set-up for the culler and quota tests against a real JupyterHub 6.1.1, started by
//! `tests/support/harness/api_hub.py` (through [`crate::support::hub`]) with a culler service token holding exactly the documented
//! scopes and extra groups. Two hubs, each started once for the test binary:
//! - [`real_hub`]: **real `jupyterhub-singleuser` servers** (jupyter-server) that post their
//!   activity every 3 s, changed or not, with the hub folding in the proxy's route activity every
//!   2 s. Every test about activity or culling runs on it.
//! - [`hub`]: the fast stand-in single-user server (`fake_singleuser.py`, ready in ~0.1 s, never
//!   posts activity) and `contrib/pre_spawn_hook.py` wired to a reserved admission port. Only for
//!   tests that do not depend on activity (admission, quotas, a stop that must take time).
//!
//! The agent runs in-process; a log relay can be stalled. Tests take [`serial`]: one culler at a
//! time, on either hub (timings are asserted to the second on a 2-core machine).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hubpulse::agent::config::AgentConfig;
use hubpulse::hub::{ApiToken, HubClient, HubConfig, StartOutcome, User};
use hubpulse::stream::metrics::Metrics;

use crate::support::free_port;
use crate::support::hub::{HubOptions, RunningHub, token};
pub use crate::support::wait_for_async as wait_for;

pub struct TestHub {
    pub api_url: String,
    pub admin_token: String,
    pub culler_token: String,
    pub admission_token: String,
    pub admission_port: u16,
    pub log: PathBuf,
    /// Declared before `_dir`: the hub stops before its log's directory goes.
    _hub: RunningHub,
    _dir: tempfile::TempDir,
}

/// The hub with stand-in single-user servers (see the module docs).
pub fn hub() -> &'static TestHub {
    static HUB: OnceLock<TestHub> = OnceLock::new();
    HUB.get_or_init(|| start_hub(false))
}

/// The hub with real `jupyterhub-singleuser` servers (see the module docs).
pub fn real_hub() -> &'static TestHub {
    static HUB: OnceLock<TestHub> = OnceLock::new();
    HUB.get_or_init(|| start_hub(true))
}

fn start_hub(real: bool) -> TestHub {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hub.log");
    let (admin, culler, adm) = (token("hp-a"), token("hp-c"), token("hp-adm"));
    let port = free_port();
    let groups = if real {
        r#"{"vip": ["r-vip"]}"#
    } else {
        r#"{"data-science": ["ds-ann"], "students": ["st-sam", "q-over"], "vip": ["c-vip"]}"#
    };
    let mut opts = HubOptions::default().arg("--log").arg(&log);
    opts = if real {
        opts.arg("--real-singleuser").args([
            "--activity-interval",
            "3",
            "--last-activity-interval",
            "2",
        ])
    } else {
        opts.arg("--admission-url")
            .arg(format!("http://127.0.0.1:{port}/v1/admission"))
    };
    let hub = opts
        .env("HUBPULSE_HUB_ADMIN_TOKEN", &admin)
        .env("HUBPULSE_HUB_CULLER_TOKEN", &culler)
        .env("HUBPULSE_ADMISSION_TOKEN", &adm)
        .env("HUBPULSE_HUB_GROUPS", groups)
        .start();
    TestHub {
        api_url: hub.api_url.clone(),
        admin_token: admin,
        culler_token: culler,
        admission_token: adm,
        admission_port: port,
        log,
        _dir: dir,
        _hub: hub,
    }
}

impl TestHub {
    /// A client with the admin service token.
    pub fn admin(&self) -> HubClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        HubClient::new(HubConfig::new(
            self.api_url.parse().unwrap(),
            ApiToken::new(&self.admin_token),
        ))
        .unwrap()
    }

    /// The proxy's public URL (`http://127.0.0.1:PORT`).
    pub fn public_url(&self) -> &str {
        self._hub.public_url()
    }
}

/// One culler at a time on the shared hub.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static M: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    M.lock().await
}

pub fn admin() -> HubClient {
    hub().admin()
}

pub async fn user(c: &HubClient, name: &str) -> User {
    c.user(name).await.unwrap().expect("user exists")
}

pub async fn spawn(c: &HubClient, name: &str, server: &str, profile: Option<&str>) -> User {
    let opts = profile.map(|p| serde_json::json!({ "profile": p }));
    let o = c.start_server(name, server, opts.as_ref()).await.unwrap();
    assert!(
        matches!(o, StartOutcome::Started | StartOutcome::Pending),
        "{o:?}"
    );
    wait_for(
        &format!("{name}:{server} ready"),
        Duration::from_secs(60),
        || async {
            let u = user(c, name).await;
            u.server(server).is_some_and(|s| s.ready).then_some(u)
        },
    )
    .await
}

/// Stops every server still running (a clean hub for the next test).
pub async fn stop_all(c: &HubClient) {
    for u in c
        .users(Some(hubpulse::hub::UserState::Active))
        .await
        .unwrap()
    {
        for s in u.active_servers() {
            let _ = c.stop_server(&u.name, &s.name, false).await;
        }
    }
    wait_for("no server running", Duration::from_secs(60), || async {
        let n = c
            .users(Some(hubpulse::hub::UserState::Active))
            .await
            .unwrap();
        n.is_empty().then_some(())
    })
    .await;
}

/// Copies the hub's log into a file the agent follows, from its current end; `on = false`
/// stalls it (a stuck log shipper), `true` resumes where it stopped.
pub struct Relay {
    pub on: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    pub path: PathBuf,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn relay(h: &TestHub, dir: &Path) -> Relay {
    let path = dir.join("relay.log");
    std::fs::write(&path, b"").unwrap();
    let (on, stop) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(false)),
    );
    let (src, dst) = (h.log.clone(), path.clone());
    let (o, s) = (on.clone(), stop.clone());
    std::thread::spawn(move || {
        let mut input = std::fs::File::open(&src).unwrap();
        input.seek(SeekFrom::End(0)).unwrap();
        let mut out = std::fs::OpenOptions::new().append(true).open(&dst).unwrap();
        let mut buf = Vec::new();
        while !s.load(Ordering::Relaxed) {
            if o.load(Ordering::Relaxed) {
                buf.clear();
                input.read_to_end(&mut buf).unwrap();
                out.write_all(&buf).unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    Relay { on, stop, path }
}

/// The agent, in-process, following `follow`, with the control sections given.
pub struct Agent {
    stop: tokio_util::sync::CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    pub metrics: Arc<Metrics>,
    pub lake: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The agent config text: a lake in `dir`, `follow`ed from its end, hub `h` with the culler
/// token, and `sections` (`[culler]`, `[admission]`, `[http]`; bare keys first go to `[hub]`).
pub fn config_text_for(h: &TestHub, dir: &Path, follow: &Path, sections: &str) -> String {
    let token_file = dir.join("hub-token");
    std::fs::write(&token_file, &h.culler_token).unwrap();
    let http = if sections.contains("[http]") {
        String::new()
    } else {
        "[http]\nlisten = \"off\"\n".to_string()
    };
    format!(
        "[agent]\nrecord_hold = \"50ms\"\n[lake]\npath = {:?}\nflush_interval = \"1s\"\n{http}\
         [[files]]\ninclude = [{:?}]\nstart_at = \"end\"\nrotate_wait = \"2s\"\n\
         [hub]\napi_url = {:?}\ntoken_file = {:?}\n{sections}",
        dir.join("lake"),
        follow,
        h.api_url,
        token_file
    )
}

pub fn start_agent(dir: &Path, follow: &Path, sections: &str) -> Agent {
    start_agent_on(hub(), dir, follow, sections, Vec::new())
}

/// [`start_agent`] on hub `h`, with extra pipeline observers (e.g. the Datadog sink's).
pub fn start_agent_on(
    h: &TestHub,
    dir: &Path,
    follow: &Path,
    sections: &str,
    observers: Vec<Box<dyn hubpulse::stream::Observer>>,
) -> Agent {
    start_agent_with(
        h,
        dir,
        follow,
        sections,
        observers,
        Arc::new(Metrics::default()),
    )
}

/// [`start_agent_on`] with the agent's metrics given (so an observer can share them).
pub fn start_agent_with(
    h: &TestHub,
    dir: &Path,
    follow: &Path,
    sections: &str,
    observers: Vec<Box<dyn hubpulse::stream::Observer>>,
    metrics: Arc<Metrics>,
) -> Agent {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = config_text_for(h, dir, follow, sections);
    let config = dir.join("agent.toml");
    std::fs::write(&config, &text).unwrap();
    let cfg = AgentConfig::from_toml(&text, "agent.toml").unwrap();
    let tx = tokio_util::sync::CancellationToken::new();
    let (m, rx) = (metrics.clone(), tx.clone());
    let thread = std::thread::spawn(move || {
        // The agent's runtime (a process's one, as `hubpulse run` builds it).
        let rt = tokio::runtime::Runtime::new().unwrap();
        hubpulse::agent::run_with(rt.handle(), cfg, observers, m, rx).unwrap();
        rt.shutdown_timeout(std::time::Duration::from_millis(500));
    });
    Agent {
        stop: tx,
        thread: Some(thread),
        metrics,
        lake: dir.join("lake"),
    }
}

/// Rows of `SELECT … FROM decisions` through `hubpulse query` (CSV, header dropped).
pub fn decisions(lake: &Path, cols: &str, filter: &str) -> Vec<Vec<String>> {
    if !lake.join("decisions").is_dir() {
        return Vec::new();
    }
    let sql = format!("SELECT {cols} FROM decisions WHERE {filter} ORDER BY ts");
    crate::support::query_csv(lake, &sql)
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// The server's `last_activity` as the hub reports it now.
pub async fn api_activity(c: &HubClient, name: &str, server: &str) -> Option<DateTime<Utc>> {
    user(c, name)
        .await
        .server(server)
        .and_then(|s| s.last_activity)
}
