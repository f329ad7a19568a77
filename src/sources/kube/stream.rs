//! One followed stream (one container of one pod): connect to the log endpoint, read to the
//! end, send batches with back-pressure, reconnect while the pod lives.
//!
//! # Guarantees
//! * A line is sent at most once per run: every connection after the first asks for
//!   `sinceTime` = the last position *sent* truncated to the second, and skips lines at or
//!   before that position (the same filter serves the committed position at start).
//! * Nothing is dropped: a slow pipeline makes this task wait on `tx.send`, which stops the
//!   reading, and TCP flow control then slows the API server.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use futures::FutureExt;
use futures::io::{AsyncBufRead, AsyncBufReadExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::LogParams;
use tokio::sync::{mpsc, watch};

use crate::sources::kube::lines::{LineAssembler, since_second};
use crate::sources::kube::pods::{BACKOFF, Next, PodInfo, StreamEnd, after_stream_end};
use crate::sources::kube::{KubeError, KubeStats, PodLines, StreamPos, api_code};

/// Send a batch once it holds this many bytes, even if more could be read without waiting.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Pods by name, as last seen by the watch of one selector.
pub type PodMap = std::collections::HashMap<String, PodInfo>;

pub struct StreamTask {
    pub api: Api<Pod>,
    pub namespace: String,
    pub pod: PodInfo,
    pub container: String,
    pub key: String,
    /// Committed (resume) or last sent position: lines at or before it are not sent.
    pub floor: Option<StreamPos>,
    pub pods: watch::Receiver<PodMap>,
    pub tx: mpsc::Sender<PodLines>,
    pub stats: Arc<KubeStats>,
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// How a [`StreamTask`] finished.
#[derive(Debug)]
pub struct TaskEnd {
    pub key: String,
    pub uid: String,
    /// The last position sent (or the floor it started from).
    pub last: Option<StreamPos>,
    /// `Ok(true)`: the stream is complete; `Ok(false)`: shutdown; `Err`: fatal.
    pub result: Result<bool, KubeError>,
}

/// What one connection did.
enum Read {
    Ended { end: StreamEnd, progressed: bool },
    Shutdown,
}

impl StreamTask {
    pub async fn run(mut self) -> TaskEnd {
        let result = self.follow().await;
        if let Ok(true) = result {
            self.stats.detaches.fetch_add(1, Relaxed);
        }
        TaskEnd {
            key: self.key,
            uid: self.pod.uid,
            last: self.floor,
            result,
        }
    }

    async fn follow(&mut self) -> Result<bool, KubeError> {
        let mut attempt: u32 = 0;
        let mut connected_once = false;
        loop {
            let end = match self.connect().await {
                Connect::Shutdown => return Ok(false),
                Connect::Gone => return Ok(true),
                Connect::Fatal(e) => return Err(e),
                Connect::Failed => StreamEnd::Failed,
                Connect::Open(reader) => {
                    if !connected_once {
                        connected_once = true;
                        self.stats.attaches.fetch_add(1, Relaxed);
                    }
                    match self.read(reader).await? {
                        Read::Shutdown => return Ok(false),
                        Read::Ended { end, progressed } => {
                            if progressed {
                                attempt = 0;
                            }
                            end
                        }
                    }
                }
            };
            let now = self
                .pods
                .borrow()
                .get(&self.pod.name)
                .filter(|p| p.uid == self.pod.uid)
                .cloned();
            if after_stream_end(end, now.as_ref()) == Next::Done {
                tracing::info!(stream = %self.key, "pod log complete");
                return Ok(true);
            }
            let delay = BACKOFF.delay(attempt);
            attempt = attempt.saturating_add(1);
            tracing::debug!(stream = %self.key, ?end, ?delay, "log stream ended; reconnecting");
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(false),
                _ = tokio::time::sleep(delay) => {}
            }
            self.stats.reconnects.fetch_add(1, Relaxed);
        }
    }

    async fn connect(&mut self) -> Connect {
        // Out of jiff's range (no real kubelet time is): no `sinceTime`; the filter still skips.
        let since_time = self
            .floor
            .map(since_second)
            .and_then(|s| k8s_openapi::jiff::Timestamp::from_second(s).ok());
        let params = LogParams {
            container: Some(self.container.clone()),
            follow: true,
            timestamps: true,
            since_time,
            ..LogParams::default()
        };
        let opened = tokio::select! {
            () = self.shutdown.cancelled() => return Connect::Shutdown,
            r = self.api.log_stream(&self.pod.name, &params) => r,
        };
        match opened {
            Ok(reader) => Connect::Open(Box::pin(reader)),
            Err(e) => match api_code(&e) {
                Some(404) => Connect::Gone,
                Some(code @ (401 | 403)) => Connect::Fatal(KubeError::Forbidden {
                    action: "read pods/log",
                    namespace: self.namespace.clone(),
                    code,
                    message: e.to_string(),
                }),
                _ => {
                    // 400 "container is waiting to start" lands here too: retried.
                    self.stats.errors.fetch_add(1, Relaxed);
                    tracing::warn!(stream = %self.key, error = %e, "pod log request failed");
                    Connect::Failed
                }
            },
        }
    }

    /// Reads one connection to its end, sending batches as it goes.
    async fn read(&mut self, mut reader: impl AsyncBufRead + Unpin) -> Result<Read, KubeError> {
        let mut lines = LineAssembler::new(self.key.clone(), self.floor);
        let mut progressed = false;
        let end = loop {
            // Wait for data only with nothing to send; otherwise take what is already there.
            let step = if lines.batch_len() == 0 {
                tokio::select! {
                    () = self.shutdown.cancelled() => return Ok(Read::Shutdown),
                    r = read_some(&mut reader, &mut lines, &self.stats) => Some(r),
                }
            } else if lines.batch_len() >= MAX_BATCH_BYTES {
                None
            } else {
                read_some(&mut reader, &mut lines, &self.stats).now_or_never()
            };
            match step {
                Some(Ok(0)) => {
                    lines.finish(&self.stats);
                    break StreamEnd::Clean;
                }
                Some(Ok(_)) => progressed = true,
                Some(Err(e)) => {
                    self.stats.errors.fetch_add(1, Relaxed);
                    tracing::warn!(stream = %self.key, error = %e, "pod log stream failed");
                    lines.abandon_partial();
                    break StreamEnd::Failed;
                }
                None => {
                    if !self.send(&mut lines).await? {
                        return Ok(Read::Shutdown);
                    }
                }
            }
        };
        if !self.send(&mut lines).await? {
            return Ok(Read::Shutdown);
        }
        Ok(Read::Ended { end, progressed })
    }

    /// Sends the pending batch, if any. `Ok(false)` on shutdown.
    async fn send(&mut self, lines: &mut LineAssembler) -> Result<bool, KubeError> {
        let Some(batch) = lines.take_batch() else {
            return Ok(true);
        };
        let (n, bytes) = (batch.ends.len() as u64, batch.bytes.len() as u64);
        let last = batch.ends.last().map(|&(_, p)| p);
        tokio::select! {
            () = self.shutdown.cancelled() => return Ok(false),
            r = self.tx.send(batch) => r.map_err(|_| KubeError::PipelineClosed)?,
        }
        self.stats.lines.fetch_add(n, Relaxed);
        self.stats.bytes.fetch_add(bytes, Relaxed);
        if last.is_some() {
            self.floor = last;
        }
        Ok(true)
    }
}

/// A log body.
type Body = std::pin::Pin<Box<dyn AsyncBufRead + Send>>;

enum Connect {
    Open(Body),
    Failed,
    Gone,
    Fatal(KubeError),
    Shutdown,
}

/// Reads what the body has (waiting if it has nothing yet) into `lines`, no more than fills
/// the batch to [`MAX_BATCH_BYTES`] (plus the rest of a line begun); `Ok(0)` at its end.
async fn read_some(
    reader: &mut (impl AsyncBufRead + Unpin),
    lines: &mut LineAssembler,
    stats: &KubeStats,
) -> std::io::Result<usize> {
    let chunk = reader.fill_buf().await?;
    let room = MAX_BATCH_BYTES.saturating_sub(lines.batch_len()).max(1);
    let n = chunk.len().min(room);
    lines.push(&chunk[..n], stats);
    reader.consume_unpin(n);
    Ok(n)
}
