//! The pod-log source inside the agent: `sources::kube::follow` as a task on the runtime, and
//! a thread that bridges its batches into the pipeline's channel.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::{AgentError, CHANNEL_DEPTH};
use crate::sources::kube::{self, PodLines, StreamPos};
use crate::stream::metrics::Metrics;
use crate::stream::{self as source, SourceId, SourceKind, SourceMsg};

/// Starts following the pods of `cfg` until `stop` (the cluster client is made here: a bad
/// cluster configuration is a configuration error).
pub(super) fn start(
    rt: &Handle,
    cfg: kube::KubeSourceConfig,
    resume: HashMap<String, StreamPos>,
    tx: SyncSender<SourceMsg>,
    stop: CancellationToken,
    metrics: Arc<Metrics>,
) -> Result<(), AgentError> {
    // In-cluster service account, or KUBECONFIG / ~/.kube/config.
    let client = rt
        .block_on(::kube::Client::try_default())
        .map_err(|source| AgentError::Cluster {
            what: "kubernetes",
            source,
        })?;
    let stats = Arc::new(kube::KubeStats::default());
    metrics.registry.register(stats.clone());
    let (ptx, prx) = tokio::sync::mpsc::channel::<PodLines>(CHANNEL_DEPTH);
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("hubpulse-kube".into())
        .spawn(move || bridge_pod_lines(prx, tx, m))
        .map_err(AgentError::Thread)?;
    let (ns, m) = (cfg.namespace.clone(), metrics.clone());
    let st = stats.clone();
    rt.spawn(async move {
        // Ready once the first stream is attached (or the source stops).
        let ready = {
            let (st, m) = (st.clone(), m.clone());
            tokio::spawn(async move {
                while st.attaches.load(Ordering::Relaxed) == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                m.starting.fetch_sub(1, Ordering::Relaxed);
            })
        };
        let r = kube::follow(client, cfg, resume, ptx, stop, st).await;
        if !ready.is_finished() {
            ready.abort();
            m.starting.fetch_sub(1, Ordering::Relaxed);
        }
        if let Err(e) = r {
            tracing::error!(namespace = %ns, error = %e, "kubernetes pod-log source stopped");
            m.error("kube_source");
        }
    });
    Ok(())
}

/// Turns pod-log batches into pipeline messages: one source per stream, with byte offsets
/// counted from the stream's first line in this run (positions travel in `stamps`).
pub fn bridge_pod_lines(
    mut rx: tokio::sync::mpsc::Receiver<PodLines>,
    tx: SyncSender<SourceMsg>,
    metrics: Arc<Metrics>,
) {
    let mut streams: HashMap<String, (SourceId, u64)> = HashMap::new();
    while let Some(batch) = rx.blocking_recv() {
        let entry = match streams.get_mut(&batch.stream) {
            Some(e) => e,
            None => {
                let id = source::next_id();
                let msg = SourceMsg::Attach {
                    id,
                    kind: SourceKind::Stream {
                        key: batch.stream.clone(),
                    },
                    start: 0,
                    prefix: None,
                };
                if tx.send(msg).is_err() {
                    return;
                }
                metrics.sources_attached.fetch_add(1, Ordering::Relaxed);
                streams.entry(batch.stream.clone()).or_insert((id, 0))
            }
        };
        let (id, offset) = *entry;
        let n = batch.bytes.len() as u64;
        entry.1 += n;
        metrics.bytes_read.fetch_add(n, Ordering::Relaxed);
        let msg = SourceMsg::Lines {
            id,
            start: offset,
            bytes: batch.bytes,
            stamps: batch.ends,
            read_at: Instant::now(),
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}
