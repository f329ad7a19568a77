//! The contract between the pipeline's stages: what sources hand to the pipeline
//! ([`SourceMsg`]), what the pipeline hands to every observer ([`Observer`]), and the counters
//! every stage updates ([`metrics`]).
//!
//! Every source delivers *complete lines*, contiguous, in order, tagged with the byte offset of
//! their first byte in the source; the pipeline groups them into records and owns the
//! checkpoint rule (a source's progress advances only with the lake commit that holds it).

pub mod metrics;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::lake::batch::SourceInfo;
use crate::lake::manifest::StreamPos;
use crate::parse::record::Record;

/// Something in the process that wants every record as it is parsed (Datadog metrics, the
/// idle culler). Called on the pipeline thread: keep it cheap, never block.
pub trait Observer: Send {
    fn on_record(&mut self, rec: &Record<'_>, src: &SourceInfo, read_at: Instant);
    /// Called about every 10 ms, and once more at shutdown.
    fn on_tick(&mut self, _now: Instant) {}
    /// Called once when the pipeline stops, after the last `on_tick` (final flush).
    fn on_shutdown(&mut self) {}
}

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
