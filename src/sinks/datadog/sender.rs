//! Delivering payloads: the HTTP transport, the dry-run transport, and the retry loop that acts
//! on [`retry::decide`] for one payload at a time.
//!
//! # Guarantees
//! * The API key travels only in the `DD-API-KEY` header, marked sensitive; nothing here logs it.
//! * Nothing is sent older than Datadog accepts, decided point by point: metric points (series,
//!   distributions) more than 1 h old are taken out of the payload and counted (`expired`), the
//!   rest is sent ([`crate::sinks::datadog::payload::keep_since`]); events and logs are accepted up to
//!   18 h old (v1 `EventCreateRequest.date_happened`: "Limited to events no older than 18
//!   hours"; logs: "up to 18 hours in the past").
//! * 408/429/5xx/no response: retried with capped exponential backoff and full jitter (a 429's
//!   `X-RateLimit-Reset`, a `Retry-After` honoured when longer); 413: split in two and both sent;
//!   400/403/other 4xx: dropped and counted, never retried; 202 with `errors`: counted as a
//!   partial failure, not resent. A 2xx saying `X-RateLimit-Remaining: 0` pauses the next send
//!   until `X-RateLimit-Reset`.
//! * Time is injected ([`Timer`]): every wait goes through it (tests run a 30-minute outage on
//!   virtual time), and every wait ends early when the shutdown deadline passes: the payload
//!   then stays in the spool for the next run.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};
use tokio::sync::watch;

use crate::backoff;
use crate::sinks::SinkError;
use crate::sinks::datadog::config::ApiKey;
use crate::sinks::datadog::payload::{Codec, Endpoint, Payload, keep_since, split_in_two};
use crate::sinks::datadog::retry::{self, Action, Answer, RetryPolicy};
use crate::sinks::datadog::stats::SinkStats;

/// How old an event or a log item Datadog accepts (18 h), seconds.
pub const EVENT_MAX_AGE_SECS: i64 = 18 * 3600;

/// What came back from one attempt.
#[derive(Debug, Clone)]
pub enum Reply {
    Http {
        status: u16,
        body: Vec<u8>,
        rate_limit_reset: Option<String>,
        rate_limit_remaining: Option<String>,
        retry_after: Option<String>,
    },
    /// No answer; a bounded label (`timeout`, `connect`, `transport`).
    NoResponse(&'static str),
}

/// Something that delivers one payload and says what happened.
pub trait Transport: Send + Sync + 'static {
    fn send(&self, p: &Payload) -> impl Future<Output = Reply> + Send;
}

/// `POST {base}{endpoint path}` with the key, the media type and the encoding of the payload.
pub struct HttpTransport {
    client: reqwest::Client,
    base: String,
    /// The logs intake (`http-intake.logs.{site}`); `base` when not set.
    logs_base: Option<String>,
    key: reqwest::header::HeaderValue,
}

impl HttpTransport {
    /// # Errors
    /// A key that is not a header value; a client that cannot be built (no TLS provider).
    pub fn new(base: &str, key: &ApiKey, timeout: Duration) -> Result<HttpTransport, SinkError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("hubpulse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(SinkError::Client)?;
        Ok(HttpTransport {
            client,
            base: base.trim_end_matches('/').to_string(),
            logs_base: None,
            key: key.header("DD_API_KEY")?,
        })
    }

    /// Send `/api/v2/logs` to this base instead (Datadog's logs intake is its own host).
    #[must_use]
    pub fn with_logs_base(mut self, base: &str) -> Self {
        self.logs_base = Some(base.trim_end_matches('/').to_string());
        self
    }
}

fn header(h: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    h.get(name)?.to_str().ok().map(str::to_string)
}

fn no_response(e: &reqwest::Error) -> Reply {
    Reply::NoResponse(if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    })
}

impl Transport for HttpTransport {
    async fn send(&self, p: &Payload) -> Reply {
        let base = match (&self.logs_base, p.endpoint) {
            (Some(l), Endpoint::Logs) => l,
            _ => &self.base,
        };
        let url = format!("{base}{}", p.endpoint.path());
        let mut rq = self
            .client
            .post(url)
            .header("DD-API-KEY", self.key.clone())
            .header(CONTENT_TYPE, p.endpoint.content_type());
        if p.codec != Codec::Identity {
            rq = rq.header(CONTENT_ENCODING, p.codec.content_encoding());
        }
        let r = rq.body(p.body.clone()).send().await;
        let resp = match r {
            Ok(r) => r,
            Err(e) => return no_response(&e),
        };
        let status = resp.status().as_u16();
        let h = resp.headers();
        let (rate_limit_reset, rate_limit_remaining, retry_after) = (
            header(h, "x-ratelimit-reset"),
            header(h, "x-ratelimit-remaining"),
            header(h, "retry-after"),
        );
        match resp.bytes().await {
            Ok(b) => Reply::Http {
                status,
                body: b.to_vec(),
                rate_limit_reset,
                rate_limit_remaining,
                retry_after,
            },
            Err(e) => no_response(&e),
        }
    }
}

/// `--datadog-dry-run FILE`: one JSON line per payload (endpoint, headers but the key, sizes,
/// and last, `body`: the uncompressed body byte for byte), answered as accepted.
pub struct DryRunTransport {
    out: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl DryRunTransport {
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path) -> std::io::Result<DryRunTransport> {
        let f = std::fs::File::create(path)?;
        Ok(DryRunTransport {
            out: Mutex::new(std::io::BufWriter::new(f)),
        })
    }

    fn write(&self, p: &Payload) -> std::io::Result<()> {
        let raw = p.codec.decompress(&p.body)?;
        // The body is spliced in byte for byte (it is JSON already): the file shows exactly
        // what would have been sent, before compression.
        serde_json::from_slice::<serde::de::IgnoredAny>(&raw).map_err(std::io::Error::from)?;
        let head = serde_json::json!({
            "method": "POST",
            "path": p.endpoint.path(),
            "content_type": p.endpoint.content_type(),
            "content_encoding": p.codec.content_encoding(),
            "wire_bytes": p.body.len(),
            "decoded_bytes": raw.len(),
            "series": p.series,
            "points": p.points,
        })
        .to_string();
        let mut out = self
            .out
            .lock()
            .map_err(|_| std::io::Error::other("dry-run writer poisoned"))?;
        out.write_all(&head.as_bytes()[..head.len() - 1])?;
        out.write_all(b",\"body\":")?;
        out.write_all(&raw)?;
        out.write_all(b"}\n")?;
        out.flush()
    }
}

impl Transport for DryRunTransport {
    async fn send(&self, p: &Payload) -> Reply {
        match self.write(p) {
            Ok(()) => Reply::Http {
                status: 202,
                body: br#"{"errors":[]}"#.to_vec(),
                rate_limit_reset: None,
                rate_limit_remaining: None,
                retry_after: None,
            },
            Err(e) => {
                tracing::error!(error = %e, "datadog dry run: cannot write the payload");
                Reply::NoResponse("transport")
            }
        }
    }
}

/// Time as the sink sees it: wall-clock seconds for Datadog's age limit, a monotonic clock and
/// sleeps for backoff, flush ticks and deadlines. Injected so tests can run on virtual time.
pub trait Timer: Send + Sync + 'static {
    /// POSIX seconds now.
    fn unix_s(&self) -> i64;
    /// Milliseconds on a monotonic clock.
    fn mono_ms(&self) -> u64;
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

pub type SharedTimer = Arc<dyn Timer>;

/// The system clock and `tokio::time::sleep`.
pub struct RealTimer {
    start: std::time::Instant,
}

impl RealTimer {
    pub fn shared() -> SharedTimer {
        Arc::new(RealTimer {
            start: std::time::Instant::now(),
        })
    }
}

impl Timer for RealTimer {
    fn unix_s(&self) -> i64 {
        chrono::Utc::now().timestamp()
    }
    fn mono_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// Sleep until `at_ms` on the timer's monotonic clock.
pub async fn sleep_until(timer: &SharedTimer, at_ms: u64) {
    let now = timer.mono_ms();
    if at_ms > now {
        timer.sleep(Duration::from_millis(at_ms - now)).await;
    }
}

/// How one spooled payload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Delivered or dropped (counted): take it off the spool.
    Finished,
    /// The shutdown deadline passed first: leave it spooled.
    Interrupted,
}

/// Wait until the shutdown deadline (set through the watch, in [`Timer::mono_ms`]) has passed.
pub async fn deadline_passed(timer: &SharedTimer, rx: &mut watch::Receiver<Option<u64>>) {
    loop {
        let d = *rx.borrow_and_update();
        match d {
            Some(d) => {
                sleep_until(timer, d).await;
                return;
            }
            None => {
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

/// The retry loop for one payload at a time.
pub struct Sender<T: Transport> {
    pub transport: T,
    pub policy: RetryPolicy,
    pub timer: SharedTimer,
    pub stats: Arc<SinkStats>,
    rng: backoff::Rng,
    /// No send before this (monotonic ms; a 2xx said the rate limit is spent).
    cooldown_until: Option<u64>,
}

impl<T: Transport> Sender<T> {
    pub fn new(
        transport: T,
        policy: RetryPolicy,
        timer: SharedTimer,
        stats: Arc<SinkStats>,
        seed: u64,
    ) -> Self {
        Sender {
            transport,
            policy,
            timer,
            stats,
            rng: backoff::Rng::seeded(seed),
            cooldown_until: None,
        }
    }

    /// A draw in [0, 1) for the full jitter of [`RetryPolicy::backoff`].
    fn jitter(&mut self) -> f64 {
        self.rng.draw()
    }

    /// Deliver `p` (splitting on 413), or drop it counted; `Interrupted` if the deadline passes.
    pub async fn deliver(
        &mut self,
        p: Payload,
        deadline: &mut watch::Receiver<Option<u64>>,
    ) -> Delivery {
        let timer = self.timer.clone();
        let mut work = vec![p];
        while let Some(mut p) = work.pop() {
            let mut attempt = 0u32;
            loop {
                if !self.drop_expired(&mut p, timer.unix_s()) {
                    break;
                }
                if let Some(until) = self.cooldown_until.take() {
                    tokio::select! {
                        () = sleep_until(&timer, until) => {}
                        () = deadline_passed(&timer, deadline) => return Delivery::Interrupted,
                    }
                }
                let reply = tokio::select! {
                    r = self.transport.send(&p) => r,
                    () = deadline_passed(&timer, deadline) => return Delivery::Interrupted,
                };
                let action = self.decide(&reply, attempt);
                match action {
                    Action::Done | Action::PartialFailure(_) => {
                        if let Action::PartialFailure(errors) = &action {
                            self.stats.bump(&self.stats.partial_failures);
                            tracing::warn!(
                                ?errors,
                                endpoint = p.endpoint.path(),
                                "datadog: payload accepted with errors (partial failure)"
                            );
                        }
                        self.stats.sent(&p);
                        self.note_rate_limit(&reply);
                        break;
                    }
                    Action::RetryAfter(wait) => {
                        self.stats.bump(&self.stats.retries);
                        tracing::warn!(answer = %describe(&reply), attempt, wait_s = wait.as_secs_f64(), endpoint = p.endpoint.path(), "datadog: will retry");
                        attempt = attempt.saturating_add(1);
                        tokio::select! {
                            () = timer.sleep(wait) => {}
                            () = deadline_passed(&timer, deadline) => return Delivery::Interrupted,
                        }
                    }
                    Action::Split => match split_in_two(&p) {
                        Ok(Some((a, b))) => {
                            self.stats.bump(&self.stats.splits);
                            work.push(b);
                            work.push(a);
                            break;
                        }
                        _ => {
                            self.stats.drop_points("too_large", p.points as u64);
                            tracing::error!(
                                points = p.points,
                                "datadog: a single series is too large for the intake; dropped"
                            );
                            break;
                        }
                    },
                    Action::Drop(reason) => {
                        self.stats.drop_points(reason, p.points as u64);
                        tracing::error!(answer = %describe(&reply), reason, points = p.points, endpoint = p.endpoint.path(), "datadog: payload refused; dropped, not retried");
                        break;
                    }
                }
            }
        }
        Delivery::Finished
    }

    /// Drops (and counts) the points of `p` older than Datadog accepts: logs and events are
    /// accepted up to 18 h old, metric points are held to 1 h. False when nothing is left.
    fn drop_expired(&mut self, p: &mut Payload, now: i64) -> bool {
        let policy = match p.endpoint {
            Endpoint::Logs | Endpoint::Events => RetryPolicy {
                max_age_secs: self.policy.max_age_secs.max(EVENT_MAX_AGE_SECS),
                ..self.policy
            },
            _ => self.policy,
        };
        if !retry::expired(&policy, p.oldest_s, now) {
            return true;
        }
        let cutoff = now.saturating_sub(policy.max_age_secs);
        let (rest, removed) = match keep_since(p, cutoff) {
            Ok(r) if matches!(p.endpoint, Endpoint::Series | Endpoint::DistributionPoints) => r,
            _ => (None, p.points as u64),
        };
        self.stats.drop_points("expired", removed);
        tracing::warn!(
            points = removed,
            endpoint = p.endpoint.path(),
            "datadog: points older than Datadog accepts; dropped"
        );
        match rest {
            Some(r) => {
                *p = r;
                true
            }
            None => false,
        }
    }

    /// What to do about the intake's `reply` to attempt number `attempt`.
    fn decide(&mut self, reply: &Reply, attempt: u32) -> Action {
        let jitter = self.jitter();
        match reply {
            Reply::NoResponse(_) => {
                retry::decide(&self.policy, Answer::NoResponse, attempt, jitter)
            }
            Reply::Http {
                status,
                body,
                rate_limit_reset,
                retry_after,
                ..
            } => retry::decide(
                &self.policy,
                Answer::Http {
                    status: *status,
                    body,
                    rate_limit_reset: rate_limit_reset.as_deref(),
                    retry_after: retry_after.as_deref(),
                },
                attempt,
                jitter,
            ),
        }
    }

    fn note_rate_limit(&mut self, reply: &Reply) {
        if let Reply::Http {
            rate_limit_remaining: Some(rem),
            rate_limit_reset: Some(reset),
            ..
        } = reply
            && rem.trim() == "0"
            && let Ok(s) = reset.trim().parse::<f64>()
            && s.is_finite()
            && s > 0.0
        {
            let ms = (s.min(3600.0) * 1000.0) as u64;
            self.cooldown_until = Some(self.timer.mono_ms() + ms);
        }
    }
}

/// A reply for a log line: the status and the intake's `errors`, never headers.
fn describe(r: &Reply) -> String {
    match r {
        Reply::NoResponse(why) => format!("no response ({why})"),
        Reply::Http { status, body, .. } => {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
            format!("{status} {text}")
        }
    }
}
