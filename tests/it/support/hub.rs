//! The real-JupyterHub launcher: a real JupyterHub 6.1.1 with configurable-http-proxy, started on
//! loopback by a harness of `tests/support/harness/` in the harness venv ([`super::harness_python`]).
//! - [`HubOptions::start`]: `api_hub.py` serves until our end of its stdin closes; it picks its
//!   own free ports and prints `READY <api url>` once the hub answers. Dropping the
//!   [`RunningHub`] closes stdin and waits for the hub (and its proxy and servers) to stop.
//! - [`run_scenario`]: `run_hub.py` drives a scenario to its end and exits.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use super::{harness_python, root};

/// How long a hub may take to answer (its first start compiles and migrates its database).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// An API token the hub accepts (at most 64 characters): `prefix-` and 32 random hex digits.
pub fn token(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut s = format!("{prefix}-");
    for i in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        h.write(prefix.as_bytes());
        s.push_str(&format!("{:016x}", h.finish()));
    }
    s
}

/// What `tests/support/harness/api_hub.py` is started with.
#[derive(Default)]
pub struct HubOptions {
    /// Arguments after the script (see its `--help`).
    pub args: Vec<OsString>,
    /// Environment: the tokens and groups the harness creates (`HUBPULSE_HUB_*`).
    pub env: Vec<(String, String)>,
}

impl HubOptions {
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<A: Into<OsString>>(mut self, a: impl IntoIterator<Item = A>) -> Self {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Starts the hub and waits for its `READY` line.
    pub fn start(self) -> RunningHub {
        let mut child = harness(Path::new("tests/support/harness/api_hub.py"))
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/support/harness/api_hub.py");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx.recv_timeout(READY_TIMEOUT).unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("api_hub.py printed no READY line ({e}); see its stderr")
        });
        let api_url = line
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("unexpected harness output: {line:?}"))
            .to_string();
        RunningHub {
            api_url,
            child: Mutex::new(Some(child)),
        }
    }
}

/// A harness script run by the harness venv's Python, its stderr shown with the test's.
fn harness(script: &Path) -> Command {
    let mut cmd = Command::new(harness_python());
    cmd.arg(root().join(script)).stderr(Stdio::inherit());
    cmd
}

/// A hub started by [`HubOptions::start`].
pub struct RunningHub {
    /// `http://127.0.0.1:PORT/hub/api`, through the proxy.
    pub api_url: String,
    /// Holds the harness's stdin open; closing it stops the hub.
    child: Mutex<Option<Child>>,
}

impl RunningHub {
    /// The proxy's public URL (`http://127.0.0.1:PORT`).
    pub fn public_url(&self) -> &str {
        self.api_url.trim_end_matches("/hub/api")
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// Runs `tests/support/harness/run_hub.py` (a scenario against a hub it starts and stops) to its end.
pub fn run_scenario(args: &[OsString]) -> ExitStatus {
    harness(Path::new("tests/support/harness/run_hub.py"))
        .args(args)
        .status()
        .expect("run tests/support/harness/run_hub.py")
}
