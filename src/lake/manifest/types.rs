//! What the manifest records: commits, their parts, each source's progress; and its errors.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::StreamPos;

pub const FP_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt manifest: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: another hubpulse process is writing to this lake for this hub")]
    Locked { path: PathBuf },
    #[error(
        "{url}: commit {seq} was made by another writer for hub {hub:?}: only one agent may write a hub's partitions"
    )]
    Conflict { url: String, hub: String, seq: u64 },
    /// A lake refused before it is touched (its location, a store setting, the hub's name).
    #[error(transparent)]
    Config(#[from] crate::lake::LakeConfigError),
    #[error(
        "{path}: this lake has the single-hub layout of hubpulse before 0.2 (events/dt=…, _hubpulse/manifest/); ingest into a new lake, which is partitioned hub=…/dt=…"
    )]
    Legacy { path: PathBuf },
    /// A lake of another format (see [`crate::lake::format`]).
    #[error(
        "{lake}: lake format {found}; this hubpulse reads and writes format {}: convert it with `hubpulse migrate --lake {lake}`",
        crate::lake::tables::events::FORMAT_VERSION
    )]
    Format { lake: String, found: u32 },
    #[error("{url}: {source}")]
    Store {
        url: String,
        source: crate::lake::store::StoreError,
    },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("the Parquet writer thread stopped unexpectedly; nothing was committed")]
    WriterGone,
    #[error("a parser thread stopped unexpectedly; nothing more was committed")]
    ParserGone,
    /// A side-table part that could not be encoded or written, at its path or URL.
    #[error("{at}: {source}")]
    Encode {
        at: String,
        source: parquet::errors::ParquetError,
    },
    /// The same error again, from a cache of a first attempt (a side table's store client).
    #[error(transparent)]
    Shared(std::sync::Arc<LakeError>),
}

pub fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LakeError + '_ {
    move |source| LakeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceProgress {
    /// Identity: hex xxh3-64 of the first `head_len` bytes (possibly suffixed, see `identify`).
    pub fp: String,
    pub head_len: u64,
    /// The path it was read from last (informational, never used as identity).
    pub path: String,
    /// Byte range of this commit.
    pub from: u64,
    pub to: u64,
    /// hex xxh3-64 of bytes `[0, to)`.
    pub prefix_hash: String,
    /// Earlier `(offset, prefix hash)` pairs of this source (its previous commit ends, thinned):
    /// kept by the manifest, never written by a writer, so a copy shorter than `to` can be
    /// recognised by content ([`lineage`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marks: Vec<(u64, String)>,
    /// (device, inode) of the file it was read from last (agent only): a file with other
    /// content-equal bytes is not this source while this file still holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_id: Option<(u64, u64)>,
}

/// Progress of a Kubernetes pod-log stream (no byte offsets survive a reconnect there).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StreamProgress {
    /// `k8s/<namespace>/<pod>/<container>`.
    pub stream: String,
    pub pos: StreamPos,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartEntry {
    /// Relative to the lake root, e.g. `events/dt=2026-11-02/part-00000000000000000003-0.parquet`.
    pub path: String,
    /// Relative to the lake root, under `_hubpulse/staging/`.
    pub staging: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Commit {
    pub version: u32,
    pub seq: u64,
    pub created: String,
    pub table: String,
    /// `hubpulse ingest`: the one file this commit read.
    pub source: Option<SourceProgress>,
    /// `hubpulse run`: every file source that advanced in this commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceProgress>,
    /// `hubpulse run`: every pod-log stream that advanced in this commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub streams: Vec<StreamProgress>,
    /// Compaction: published parts this commit replaces (they are deleted after it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
    pub parts: Vec<PartEntry>,
    pub records: u64,
    pub unparsed: u64,
}
