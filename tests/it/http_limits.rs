//! The agent's HTTP server under slow clients (issue 18, item 6): 1,000 connections that send
//! part of a request head and then nothing, against the real agent binary run with only 256
//! file descriptors (as in the report: accept failed with ~370 idle sockets). `/healthz` must
//! keep answering, and every slow socket must be closed by the server (evicted to make room,
//! or at `header_timeout`), which the test observes as end-of-stream on each socket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{free_port, http_get, wait_for};

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, port: u16, limits: &str, nofile: u32) -> Agent {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("hub.log"),
        "[I 2026-11-28 12:00:00.000 JupyterHub app:1] probe seq=0\n",
    )
    .unwrap();
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nhub = \"test-hub\"\nlog_level = \"warn\"\n[lake]\npath = {:?}\n[http]\nlisten = \"127.0.0.1:{port}\"\n{limits}\n[[files]]\ninclude = [{:?}]\n",
            dir.join("lake"),
            logs.join("hub.log*")
        ),
    )
    .unwrap();
    // `prlimit` (util-linux) runs the agent with a low descriptor limit.
    let child = std::process::Command::new("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg(env!("CARGO_BIN_EXE_hubpulse"))
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("prlimit (util-linux) must be installed");
    Agent(child)
}

/// Reads until the server closes the socket (end of stream or reset): `Ok(())`, or the error
/// (a read timeout: still open).
fn until_closed(s: &mut TcpStream, timeout: Duration) -> std::io::Result<()> {
    s.set_read_timeout(Some(timeout))?;
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            // A response before the close (e.g. 408) is fine: keep reading to the end.
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn metric(port: u16, line_start: &str) -> u64 {
    let (_, m) = http_get(port, "/metrics").expect("/metrics answers");
    m.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line_start} not in /metrics:\n{m}"))
}

#[test]
fn healthz_keeps_answering_under_1000_slow_clients_and_they_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let agent = start(
        dir.path(),
        port,
        "header_timeout = \"3s\"\nmax_connections = 512",
        256,
    );
    wait_for("/healthz 200", Duration::from_secs(30), || {
        http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });

    // 1,000 clients each send half a request head, then nothing. With 256 descriptors the
    // agent cannot hold them all: accept fails (EMFILE) and the oldest idle ones are evicted.
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
        slow.push(s);
    }

    // /healthz still answers while they are open (a probe gets in: it is not idle).
    let probe = Instant::now();
    let (status, body) = http_get(port, "/healthz").expect("/healthz answers under load");
    let took = probe.elapsed();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    assert!(took < Duration::from_secs(5), "/healthz took {took:?}");
    eprintln!("healthz under 1000 slow clients answered in {took:?}");

    // Every slow socket is closed by the server: evicted, or at the 3 s header timeout.
    for (i, s) in slow.iter_mut().enumerate() {
        if let Err(e) = until_closed(s, Duration::from_secs(20)) {
            panic!(
                "slow socket {i} still open after {:?}: {e}",
                opened.elapsed()
            );
        }
    }
    let all_closed = opened.elapsed();
    assert!(
        all_closed < Duration::from_secs(25),
        "closed in {all_closed:?}"
    );
    eprintln!("all 1000 slow sockets closed by the server {all_closed:?} after opening");

    let evicted = metric(
        port,
        "hubpulse_http_connections_closed_total{reason=\"evicted\"} ",
    );
    let timed_out = metric(
        port,
        "hubpulse_http_connections_closed_total{reason=\"header_timeout\"} ",
    );
    assert!(evicted > 0, "with 256 descriptors some were evicted");
    assert!(timed_out > 0, "the ones kept were closed at header_timeout");
    // Only the /metrics request itself stays open (evicted tasks may still be ending).
    wait_for(
        "open connections back to 1",
        Duration::from_secs(10),
        || metric(port, "hubpulse_http_connections_open ") == 1,
    );
    drop(agent);
}

#[test]
fn a_client_that_sends_nothing_is_closed_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _agent = start(dir.path(), port, "header_timeout = \"1s\"", 1024);
    wait_for("/healthz 200", Duration::from_secs(30), || {
        http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let opened = Instant::now();
    let r = until_closed(&mut s, Duration::from_secs(15));
    let after = opened.elapsed();
    assert!(r.is_ok(), "{r:?} after {after:?}");
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(10),
        "closed {after:?} after opening (header_timeout = 1s)"
    );
}
