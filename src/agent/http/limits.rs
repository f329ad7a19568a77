//! The HTTP server loop with slow-client limits (issue 18, item 6).
//!
//! `axum::serve` sets no header-read timeout and no connection cap: a thousand clients dripping
//! incomplete headers kept a thousand sockets open, and once the process ran out of file
//! descriptors `accept` failed and `/healthz` went unanswered. This loop serves the same
//! `Router` through hyper's HTTP/1 connection builder with three limits:
//!
//! * **Header timeout** (`header_timeout`, default 10 s): a connection that has not sent a whole
//!   request head this long after it opened, or after its previous response, is closed by
//!   hyper (its timer runs from the moment it starts reading a head).
//! * **Request timeout** (`request_timeout`, default 30 s): a request whose handler (body read
//!   included) has not answered in this time gets `503` and the handler is dropped.
//! * **Connection cap** (`max_connections`, default 512): at the cap, a new connection closes
//!   the *oldest connection not inside a request* (a slow client still sending its head, or an
//!   idle keep-alive), so a prompt client (a kubelet probe, the hub) always gets in while slow
//!   ones are shed oldest first. If every connection is inside a request, the new one is
//!   refused (closed at once). When `accept` itself fails for lack of file descriptors
//!   (`EMFILE`, `ENFILE`), the same eviction frees one and accepting goes on.
//!
//! # Guarantees
//! - No connection outlives `header_timeout` without sending a request head, and at most
//!   `max_connections` (plus evictions still closing) are open at once.
//! - A request in progress is never evicted by the cap; it ends by answering or by
//!   `request_timeout` (a request whose head completes at the very instant its connection is
//!   picked may be cut: the client sees a closed connection and retries).
//! - Every shed connection is counted (`hubpulse_http_connections_closed_total{reason}`).
//! - On `stop`, no new connection is accepted; open ones finish the request they are in.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::Notify;
use tower_service::Service as _;

/// `[http]` limits (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

impl Limits {
    /// From the raw `[http]` keys: `header_timeout`, `request_timeout` (durations such as
    /// `"10s"`) and `max_connections`.
    ///
    /// # Errors
    /// `(key, why)` for a value that does not parse or is out of range.
    pub fn from_raw(
        header_timeout: Option<&str>,
        request_timeout: Option<&str>,
        max_connections: Option<usize>,
    ) -> Result<Limits, (String, String)> {
        let d = Limits::default();
        let dur =
            |key: &str, v: Option<&str>, default: Duration| -> Result<Duration, (String, String)> {
                let t = match v {
                    None => return Ok(default),
                    Some(s) => crate::config::units::parse_duration(s)
                        .map_err(|e| (key.to_string(), e.to_string()))?,
                };
                if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&t) {
                    return Err((key.to_string(), "must be between 100ms and 1h".into()));
                }
                Ok(t)
            };
        let max_connections = max_connections.unwrap_or(d.max_connections);
        if !(1..=65_536).contains(&max_connections) {
            return Err((
                "http.max_connections".into(),
                "must be between 1 and 65536".into(),
            ));
        }
        Ok(Limits {
            header_timeout: dur("http.header_timeout", header_timeout, d.header_timeout)?,
            request_timeout: dur("http.request_timeout", request_timeout, d.request_timeout)?,
            max_connections,
        })
    }
}

/// Counters of the HTTP server, on `/metrics`.
#[derive(Debug, Default)]
pub struct HttpStats {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Closed by the cap or for lack of file descriptors while not inside a request.
    pub evicted: AtomicU64,
    /// Refused at the cap with every connection inside a request.
    pub refused: AtomicU64,
    /// Closed by hyper's header timeout.
    pub header_timeouts: AtomicU64,
    pub request_timeouts: AtomicU64,
    /// `accept` failures (out of file descriptors, and others).
    pub accept_errors: AtomicU64,
}

/// `hubpulse_http_*`, in the agent's registry.
impl crate::telemetry::Collector for HttpStats {
    fn encode(&self, e: crate::telemetry::DescriptorEncoder) -> std::fmt::Result {
        use crate::telemetry::{Families, Value};
        let g = |a: &AtomicU64| Value::from(a.load(Ordering::Relaxed));
        let mut f = Families::new(e);
        f.gauge(
            "hubpulse_http_connections_open",
            "HTTP connections open now.",
            g(&self.open),
        )?;
        f.counter(
            "hubpulse_http_connections_accepted_total",
            "HTTP connections accepted.",
            g(&self.accepted),
        )?;
        f.counters(
            "hubpulse_http_connections_closed_total",
            "HTTP connections the server closed before a full request, by reason.",
            [
                ("header_timeout", &self.header_timeouts),
                ("evicted", &self.evicted),
                ("refused", &self.refused),
            ]
            .map(|(reason, v)| ([("reason", reason)], g(v))),
        )?;
        f.counter(
            "hubpulse_http_request_timeouts_total",
            "Requests answered 503 after request_timeout.",
            g(&self.request_timeouts),
        )?;
        f.counter(
            "hubpulse_http_accept_errors_total",
            "accept() failures (e.g. out of file descriptors).",
            g(&self.accept_errors),
        )
    }
}

/// One open connection, as the cap sees it.
#[derive(Default)]
struct Conn {
    /// Requests being handled on it (0: it is reading a head, or idle).
    busy: AtomicUsize,
    evicted: AtomicBool,
    close: Notify,
}

/// The open connections, oldest first.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
}

impl Registry {
    fn len(&self) -> usize {
        self.conns.lock().map_or(0, |c| c.len())
    }

    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(Conn::default());
        if let Ok(mut m) = self.conns.lock() {
            m.insert(id, c.clone());
        }
        (id, c)
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.conns.lock() {
            m.remove(&id);
        }
    }

    /// Tells the `n` oldest connections not inside a request to close; how many there were.
    fn evict_oldest_idle(&self, n: usize) -> usize {
        let Ok(m) = self.conns.lock() else {
            return 0;
        };
        let mut done = 0;
        for c in m.values() {
            if done == n {
                break;
            }
            if c.busy.load(Ordering::SeqCst) == 0 && !c.evicted.swap(true, Ordering::SeqCst) {
                c.close.notify_one();
                done += 1;
            }
        }
        done
    }

    fn close_all(&self) {
        if let Ok(m) = self.conns.lock() {
            for c in m.values() {
                c.evicted.store(true, Ordering::SeqCst);
                c.close.notify_one();
            }
        }
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Enrolled<'a> {
    reg: &'a Registry,
    id: u64,
    stats: &'a HttpStats,
}

impl Drop for Enrolled<'_> {
    fn drop(&mut self) {
        self.reg.remove(self.id);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Marks a connection inside a request for as long as the handler runs.
struct Busy(Arc<Conn>);

impl Busy {
    fn new(c: &Arc<Conn>) -> Busy {
        c.busy.fetch_add(1, Ordering::SeqCst);
        Busy(c.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Connections closed at once when `accept` runs out of descriptors.
const EVICT_BATCH: usize = 32;

fn out_of_descriptors(e: &std::io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 (Linux): the process or the system is out
    // of something an open connection holds.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Serve `app` on `listener` with `limits` until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    stats: Arc<HttpStats>,
    stop: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let reg = Arc::new(Registry::default());
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if out_of_descriptors(&e) {
                    // Free a batch at once: the connections waiting in the kernel's queue are
                    // most likely more of the same slow clients.
                    let n = reg.evict_oldest_idle(EVICT_BATCH);
                    stats.evicted.fetch_add(n as u64, Ordering::Relaxed);
                    tracing::debug!(error = %e, open = reg.len(), evicted = n, "http: accept failed; closed the oldest idle connections");
                    // Let the evicted connections' tasks release their descriptors (with none
                    // to evict, wait for a request to end) rather than fail again at once.
                    let pause = if n == 0 { 50 } else { 1 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                } else {
                    tracing::debug!(error = %e, "http: accept failed");
                }
                continue;
            }
        };
        if reg.len() >= limits.max_connections {
            if reg.evict_oldest_idle(1) == 1 {
                stats.evicted.fetch_add(1, Ordering::Relaxed);
            } else {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
        }
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        stats.open.fetch_add(1, Ordering::Relaxed);
        let (id, conn) = reg.add();
        let (reg, stats, app, stop) = (reg.clone(), stats.clone(), app.clone(), stop.clone());
        tokio::spawn(async move {
            let _enrolled = Enrolled {
                reg: &reg,
                id,
                stats: &stats,
            };
            serve_conn(stream, conn, app, limits, &stats, stop).await;
        });
    }
    // Stop accepting; let every connection finish the request it is in.
    reg.close_all();
    let drained = async {
        while reg.len() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let _ = tokio::time::timeout(limits.request_timeout, drained).await;
    Ok(())
}

async fn serve_conn(
    stream: tokio::net::TcpStream,
    conn: Arc<Conn>,
    app: Router,
    limits: Limits,
    stats: &Arc<HttpStats>,
    stop: tokio_util::sync::CancellationToken,
) {
    let svc_conn = conn.clone();
    let svc_stats = stats.clone();
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let busy = Busy::new(&svc_conn);
        let mut app = app.clone();
        let stats = svc_stats.clone();
        async move {
            let _busy = busy;
            let call = app.call(req.map(axum::body::Body::new));
            let resp: Response = match tokio::time::timeout(limits.request_timeout, call).await {
                Ok(Ok(r)) => r,
                Ok(Err(never)) => match never {},
                Err(_) => {
                    stats.request_timeouts.fetch_add(1, Ordering::Relaxed);
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "request timed out (http.request_timeout)\n",
                    )
                        .into_response()
                }
            };
            Ok::<_, Infallible>(resp)
        }
    });
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let c = b.serve_connection(TokioIo::new(stream), svc);
    let mut c = std::pin::pin!(c);
    let mut closing = false;
    loop {
        tokio::select! {
            r = c.as_mut() => {
                if let Err(e) = r
                    && e.is_timeout()
                {
                    stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
            _ = conn.close.notified(), if !closing => {
                // Not inside a request (a head half sent, or idle): close now. hyper's own
                // graceful shutdown would wait for a half-sent head to complete.
                if conn.busy.load(Ordering::SeqCst) == 0 {
                    return;
                }
                closing = true;
                c.as_mut().graceful_shutdown();
            }
            () = stop.cancelled(), if !closing => {
                if conn.busy.load(Ordering::SeqCst) == 0 {
                    return;
                }
                closing = true;
                c.as_mut().graceful_shutdown();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_parse_with_defaults_and_refuse_nonsense() {
        assert_eq!(
            Limits::from_raw(None, None, None).unwrap(),
            Limits::default()
        );
        let l = Limits::from_raw(Some("2s"), Some("1m"), Some(64)).unwrap();
        assert_eq!(
            (l.header_timeout, l.request_timeout, l.max_connections),
            (Duration::from_secs(2), Duration::from_secs(60), 64)
        );
        let e = Limits::from_raw(Some("0s"), None, None).unwrap_err();
        assert_eq!(e.0, "http.header_timeout");
        let e = Limits::from_raw(None, Some("soon"), None).unwrap_err();
        assert_eq!(e.0, "http.request_timeout");
        let e = Limits::from_raw(None, None, Some(0)).unwrap_err();
        assert_eq!(e.0, "http.max_connections");
    }

    #[test]
    fn eviction_picks_the_oldest_connections_not_inside_a_request() {
        let r = Registry::default();
        let (_, a) = r.add();
        let (_, b) = r.add();
        let (_, c) = r.add();
        let _busy = Busy::new(&a);
        assert_eq!(r.evict_oldest_idle(1), 1);
        assert!(!a.evicted.load(Ordering::SeqCst), "a is inside a request");
        assert!(b.evicted.load(Ordering::SeqCst) && !c.evicted.load(Ordering::SeqCst));
        // Already told to close: not picked twice.
        assert_eq!(r.evict_oldest_idle(5), 1);
        assert!(c.evicted.load(Ordering::SeqCst));
        assert_eq!(r.evict_oldest_idle(5), 0);
    }
}
