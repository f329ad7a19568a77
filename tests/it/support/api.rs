//! The scripted HTTP API server: an axum server on a free loopback port that plays an API the
//! code under test talks to (the Kubernetes API server, the hub's REST API). The test gives the
//! routes (handlers answering from state the test edits and from real objects such as
//! `fixtures/kube/`); the server records every request as it arrives, lets the test wait until
//! requests have been answered ([`RequestLog::wait`]: their effect is then visible), and hands
//! out streamed bodies the test writes to and ends ([`stream`]: kube watches, followed pod logs).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc as body_channel;
use serde_json::{Value, json};

/// Generous: a failure, not a pace.
pub const WAIT: Duration = Duration::from_secs(10);

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Set once the handler has answered (for a stream: once its head is on its way).
    answered: Arc<AtomicBool>,
    pub method: String,
    /// `path?query`, as sent.
    pub uri: String,
    pub content_type: String,
    pub body: String,
}

impl Recorded {
    /// `METHOD path?query`, and for a request with a body ` content-type body`.
    pub fn line(&self) -> String {
        let mut line = format!("{} {}", self.method, self.uri);
        if !self.body.is_empty() {
            line = format!("{line} {} {}", self.content_type, self.body);
        }
        line
    }
}

/// The requests a scripted server answered, in order; handlers may read it too.
#[derive(Clone)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<Recorded>>>,
    /// Bumped after each request is recorded, so a test can wait for one.
    seen: Arc<tokio::sync::watch::Sender<usize>>,
}

impl Default for RequestLog {
    fn default() -> Self {
        RequestLog {
            entries: Arc::default(),
            seen: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }
}

impl RequestLog {
    fn push(&self, r: Recorded) {
        self.entries.lock().unwrap().push(r);
        self.seen.send_modify(|n| *n += 1);
    }

    fn answered(&self, r: &Recorded) {
        r.answered.store(true, Ordering::SeqCst);
        self.seen.send_modify(|n| *n += 1);
    }

    pub fn all(&self) -> Vec<Recorded> {
        self.entries.lock().unwrap().clone()
    }

    /// Every request as `path?query`.
    pub fn uris(&self) -> Vec<String> {
        self.all().into_iter().map(|r| r.uri).collect()
    }

    /// Every request as [`Recorded::line`].
    pub fn lines(&self) -> Vec<String> {
        self.all().iter().map(Recorded::line).collect()
    }

    /// The lines so far, emptying the log.
    pub fn take(&self) -> Vec<String> {
        let all = std::mem::take(&mut *self.entries.lock().unwrap());
        all.iter().map(Recorded::line).collect()
    }

    /// Waits (on requests being answered, [`WAIT`] at most) until `n` answered requests satisfy
    /// `matches` (given the request's [`Recorded::line`]).
    pub async fn wait(&self, what: &str, n: usize, matches: impl Fn(&str) -> bool) {
        let mut seen = self.seen.subscribe();
        let count = || {
            self.all()
                .iter()
                .filter(|r| r.answered.load(Ordering::SeqCst) && matches(&r.line()))
                .count()
        };
        let found = async {
            while count() < n {
                seen.changed().await.unwrap();
            }
        };
        tokio::time::timeout(WAIT, found)
            .await
            .unwrap_or_else(|_| panic!("no {n} x {what}: {:?}", self.lines()));
    }

    /// Waits until any request (answered or not) satisfies `matches`; for handlers that answer only after
    /// another request (without a deadline: the test's own waits bound it).
    pub async fn until(&self, matches: impl Fn(&str) -> bool) {
        let mut seen = self.seen.subscribe();
        while !self.lines().iter().any(|l| matches(l)) {
            if seen.changed().await.is_err() {
                break;
            }
        }
    }
}

/// A scripted API server, serving until the test's runtime ends.
pub struct ScriptedApi {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub log: RequestLog,
}

impl ScriptedApi {
    /// Serves `routes` (already given their state), recording every request into `log`.
    pub async fn start(log: RequestLog, routes: Router) -> ScriptedApi {
        let recorder = log.clone();
        let app = routes.layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let log = recorder.clone();
                async move { record(log, req, next).await }
            },
        ));
        let url = format!("http://{}", serve(app).await);
        ScriptedApi { url, log }
    }

    /// A kube client pointed at this server.
    pub fn kube_client(&self) -> kube::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        kube::Client::try_from(kube::Config::new(self.url.parse().unwrap())).unwrap()
    }

    pub fn uris(&self) -> Vec<String> {
        self.log.uris()
    }

    /// Waits until `n` requests whose line contains `part` have been recorded.
    pub async fn wait_request(&self, part: &str, n: usize) {
        self.log.wait(part, n, |l| l.contains(part)).await;
    }
}

/// Records the request (with its body) as it arrives, and marks it answered once its handler
/// has answered (so a test that waited for a request sees its effect).
async fn record(log: RequestLog, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let r = Recorded {
        answered: Arc::default(),
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        content_type: parts
            .headers
            .get("content-type")
            .map_or(String::new(), |v| v.to_str().unwrap().to_string()),
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    log.push(r.clone());
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    log.answered(&r);
    response
}

/// Serves `app` on a free loopback port (a scripted API, or the server under test); its address.
pub async fn serve(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The writing end of a streamed response body (a watch, a followed log).
#[derive(Clone)]
pub struct StreamTx(body_channel::UnboundedSender<Result<Bytes, std::io::Error>>);

impl StreamTx {
    pub fn send(&self, data: &str) {
        self.0
            .unbounded_send(Ok(Bytes::from(data.to_owned())))
            .expect("the client still reads this response");
    }

    /// One JSON document and a newline, as the API server writes watch events.
    pub fn line(&self, v: &Value) {
        self.send(&format!("{v}\n"));
    }

    /// A watch event.
    pub fn event(&self, kind: &str, object: &Value) {
        self.line(&json!({ "type": kind, "object": object }));
    }

    /// Ends the body cleanly (the terminating chunk), for every clone.
    pub fn close(&self) {
        self.0.close_channel();
    }

    /// Breaks the connection mid-body (no terminating chunk): the client sees an error.
    pub fn cut(self) {
        let _ = self
            .0
            .unbounded_send(Err(std::io::Error::other("scripted connection cut")));
    }
}

/// A streamed response and the sender that writes (and, dropped, ends) its body.
pub fn stream() -> (StreamTx, Response) {
    let (tx, rx) = body_channel::unbounded();
    (StreamTx(tx), Body::from_stream(rx).into_response())
}

/// A Kubernetes `Status` failure, as the API server answers an error.
pub fn kube_status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    });
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}
