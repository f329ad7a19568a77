//! What sources hand to the pipeline, and the stdin source.
//!
//! Every source delivers *complete lines*, contiguous, in order, tagged with the byte offset of
//! their first byte in the source; the pipeline groups them into records and owns the
//! checkpoint rule (a source's progress advances only with the lake commit that holds it).

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use crate::sources::kube::StreamPos;
use crate::agent::metrics::Metrics;

/// Unique per source within one agent run.
pub type SourceId = u64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub fn next_id() -> SourceId {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// A file identified by content (`identity` as the lake's manifest keys it).
    File {
        identity: String,
        head_len: u64,
        path: PathBuf,
        /// (device, inode) of the file read now: tells it from same-content files.
        file_id: (u64, u64),
    },
    /// Standard input: not replayable, so it has no checkpoint.
    Stdin,
    /// A Kubernetes pod-log stream.
    Stream { key: String },
}

pub enum SourceMsg {
    /// A source starts delivering at `start`. For files, `prefix` is the xxh3 state over the
    /// file's bytes `[0, start)` (the manifest's guard against truncate-and-rewrite).
    Attach {
        id: SourceId,
        kind: SourceKind,
        start: u64,
        prefix: Option<Box<xxhash_rust::xxh3::Xxh3>>,
    },
    /// Complete lines (each ending in `\n`, except a final line a source gave up waiting for),
    /// contiguous from `start`. `stamps` (streams only) gives, per line, its end offset within
    /// `bytes` and the stream position after it.
    Lines {
        id: SourceId,
        start: u64,
        bytes: Vec<u8>,
        stamps: Vec<(usize, StreamPos)>,
        read_at: Instant,
    },
    /// The file moved (rotation by rename; or a copy-truncate copy, another `file_id`).
    Moved {
        id: SourceId,
        path: PathBuf,
        file_id: (u64, u64),
    },
    /// Nothing more will come from this source: close its open record.
    End { id: SourceId },
}

/// Read stdin until EOF (or shutdown), delivering complete lines; a last line without newline
/// is delivered at EOF.
pub fn stdin_thread(
    tx: SyncSender<SourceMsg>,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    chunk: usize,
) {
    let id = next_id();
    if tx
        .send(SourceMsg::Attach {
            id,
            kind: SourceKind::Stdin,
            start: 0,
            prefix: None,
        })
        .is_err()
    {
        return;
    }
    metrics.sources_attached.fetch_add(1, Ordering::Relaxed);
    metrics.starting.fetch_sub(1, Ordering::Relaxed);
    let mut stdin = std::io::stdin().lock();
    let mut held: Vec<u8> = Vec::new();
    let mut offset = 0u64;
    let mut buf = vec![0u8; chunk];
    loop {
        if shutdown.load(Ordering::Relaxed) {
            break;
        }
        let n = match stdin.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::error!(error = %e, "stdin: read failed; stopping this source");
                metrics.error("stdin_read");
                break;
            }
        };
        metrics.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        held.extend_from_slice(&buf[..n]);
        if let Some(cut) = memchr::memrchr(b'\n', &held).map(|i| i + 1) {
            let rest = held.split_off(cut);
            let bytes = std::mem::replace(&mut held, rest);
            let len = bytes.len() as u64;
            let msg = SourceMsg::Lines {
                id,
                start: offset,
                bytes,
                stamps: Vec::new(),
                read_at: Instant::now(),
            };
            if tx.send(msg).is_err() {
                return;
            }
            offset += len;
        }
    }
    if !held.is_empty() {
        let _ = tx.send(SourceMsg::Lines {
            id,
            start: offset,
            bytes: held,
            stamps: Vec::new(),
            read_at: Instant::now(),
        });
    }
    let _ = tx.send(SourceMsg::End { id });
}
