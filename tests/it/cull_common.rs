//! Shared set-up for the culler and quota tests against a real JupyterHub 6.1.1: one hub for the
//! module (started by `fixtures/harness/api_hub.py` with a culler service token holding exactly
//! the documented scopes, extra groups, and `contrib/pre_spawn_hook.py` wired to a reserved
//! admission port), the agent run in-process, a log relay that can be stalled, and helpers.
//! Tests take [`serial`]: one culler at a time acts on the shared hub.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hubpulse::agent::config::AgentConfig;
use hubpulse::agent::metrics::Metrics;
use hubpulse::hub::{ApiToken, HubClient, HubConfig, StartOutcome, User};

use super::{harness_python, root};

pub struct TestHub {
    pub api_url: String,
    pub admin_token: String,
    pub culler_token: String,
    pub admission_token: String,
    pub admission_port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

fn token(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(prefix.as_bytes());
    format!("{prefix}-{:016x}{:08x}", h.finish(), std::process::id())
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn hub() -> &'static TestHub {
    static HUB: OnceLock<TestHub> = OnceLock::new();
    HUB.get_or_init(|| {
        let py = harness_python();
        assert!(
            py.exists(),
            "{} missing: run fixtures/harness/setup.sh",
            py.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("hub.log");
        let (admin, culler, adm) = (token("hp-a"), token("hp-c"), token("hp-adm"));
        let port = free_port();
        let groups =
            r#"{"data-science": ["ds-ann"], "students": ["st-sam", "q-over"], "vip": ["c-vip"]}"#;
        let mut child = Command::new(&py)
            .arg(root().join("fixtures/harness/api_hub.py"))
            .arg("--log")
            .arg(&log)
            .arg("--admission-url")
            .arg(format!("http://127.0.0.1:{port}/v1/admission"))
            .env("HUBPULSE_HUB_ADMIN_TOKEN", &admin)
            .env("HUBPULSE_HUB_CULLER_TOKEN", &culler)
            .env("HUBPULSE_ADMISSION_TOKEN", &adm)
            .env("HUBPULSE_HUB_GROUPS", groups)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start api_hub.py");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let api_url = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("harness said {line:?}"))
            .to_string();
        TestHub {
            api_url,
            admin_token: admin,
            culler_token: culler,
            admission_token: adm,
            admission_port: port,
            log,
            _dir: dir,
            child: Mutex::new(Some(child)),
        }
    })
}

/// One culler at a time on the shared hub.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static M: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    M.lock().await
}

pub fn admin() -> HubClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    HubClient::new(HubConfig::new(
        &hub().api_url,
        ApiToken::new(&hub().admin_token),
    ))
    .unwrap()
}

/// Polls `probe` every 200 ms until it returns `Some`, or panics after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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

/// What a single-user server's activity report looks like: `POST /users/{name}/activity`.
pub async fn post_activity(name: &str, server: &str) {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let body =
        serde_json::json!({"last_activity": now, "servers": {server: {"last_activity": now}}});
    let r = reqwest::Client::new()
        .post(format!("{}/users/{name}/activity", hub().api_url))
        .header("Authorization", format!("token {}", hub().admin_token))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "activity POST for {name}");
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

pub fn relay(dir: &Path) -> Relay {
    let path = dir.join("relay.log");
    std::fs::write(&path, b"").unwrap();
    let (on, stop) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(false)),
    );
    let (src, dst) = (hub().log.clone(), path.clone());
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
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub metrics: Arc<Metrics>,
    pub lake: PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The agent config text: a lake in `dir`, `follow`ed from its end, the hub with the culler
/// token, and `sections` (`[culler]`, `[admission]`, `[http]`).
pub fn config_text(dir: &Path, follow: &Path, sections: &str) -> String {
    let token_file = dir.join("hub-token");
    std::fs::write(&token_file, &hub().culler_token).unwrap();
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
        hub().api_url,
        token_file
    )
}

pub fn start_agent(dir: &Path, follow: &Path, sections: &str) -> Agent {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let text = config_text(dir, follow, sections);
    let config = dir.join("agent.toml");
    std::fs::write(&config, &text).unwrap();
    let cfg = AgentConfig::from_toml(&text, "agent.toml").unwrap();
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let m = metrics.clone();
    let thread = std::thread::spawn(move || {
        hubpulse::agent::run_with(cfg, Vec::new(), m, Some(rx)).unwrap();
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
    super::query_csv(lake, &sql)
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
