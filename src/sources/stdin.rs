//! The stdin source: complete lines from standard input until EOF (not replayable, so it has no
//! checkpoint).

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::sync::mpsc::SyncSender;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::stream::metrics::Metrics;
use crate::stream::{SourceKind, SourceMsg, next_id};

/// Read stdin until EOF (or shutdown), delivering complete lines; a last line without newline
/// is delivered at EOF.
pub fn stdin_thread(
    tx: SyncSender<SourceMsg>,
    shutdown: CancellationToken,
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
        if shutdown.is_cancelled() {
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
