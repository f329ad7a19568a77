//! The lake's manifest: the record of what each source contributed, and the commit protocol
//! that makes a batch of Parquet parts visible exactly once.
//!
//! Layout under the lake root (a directory, or `s3://bucket/prefix`, see [`super::store`]). Each
//! hub's writer owns its own partitions and its own manifest, so several agents (one per hub)
//! share one lake with no coordination beyond the store itself:
//!
//! ```text
//! events/hub=<hub>/dt=YYYY-MM-DD/part-<seq>-<n>.parquet   published parts (what readers see)
//! _hubpulse/hubs/<hub>/manifest/<seq, 20 digits>.json    one file per commit (local: tmp → fsync
//!                                                        → rename; S3: conditional create)
//! _hubpulse/hubs/<hub>/snapshot.json                     every 512 commits: their folded state
//!                                                        (progress, stream positions, live parts)
//! _hubpulse/hubs/<hub>/swap/                             compaction's next partition directory
//! _hubpulse/hubs/<hub>/staging/<seq>-<n>[.<nonce>].parquet  parts written, not yet published
//! _hubpulse/hubs/<hub>/lock                              local: held by the hub's writer for life
//! ```
//!
//! On S3 a part is uploaded to staging, the commit is created with `If-None-Match: *` (a second
//! writer of the same hub loses that race and stops with [`LakeError::Conflict`]), then the part
//! is copied server-side to its published key and its staging object deleted. Opening the hub
//! for writing finishes copies that a crash interrupted and deletes staging objects no commit
//! names: the same roll-forward/roll-back as on a file system.
//!
//! # Guarantees
//! * A commit file is the single point of truth: parts are written to staging first, then the
//!   commit file is made durable, then the parts are renamed into `events/`. Opening the lake
//!   for writing finishes interrupted commits (rolls forward renames) and deletes staging files
//!   no commit names (rolls back), so a crash at any point leaves every batch either fully
//!   committed or absent.
//! * A source is named by a content fingerprint: xxh3 of its first `min(size, 4096)` bytes when
//!   first seen (suffixed when another source has that name). Its progress is the end offset of
//!   its last commit, guarded by xxh3 of all bytes before that offset (and kept at earlier commit
//!   ends as marks): a file continues a source only if it holds exactly those bytes, so a file
//!   truncated and rewritten, or a new file with the same head, is never mistaken for the old
//!   one grown, and a copy still being written is known as a copy ([`lineage`]).
//!
//! # Assumptions
//! One writer per hub at a time (local: the lock file; S3: the conditional commit create);
//! readers never need either.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod identity;
pub mod lineage;
mod rewrite;

pub use identity::identify_in;

pub const FP_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt manifest: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("{path}: another hubpulse process is writing to this lake for this hub")]
    Locked { path: PathBuf },
    #[error(
        "{url}: commit {seq} was made by another writer for hub {hub:?}: only one agent may write a hub's partitions"
    )]
    Conflict { url: String, hub: String, seq: u64 },
    #[error("{0}")]
    Config(String),
    #[error(
        "{path}: this lake has the single-hub layout of hubpulse before 0.2 (events/dt=…, _hubpulse/manifest/); ingest into a new lake, which is partitioned hub=…/dt=…"
    )]
    Legacy { path: PathBuf },
    #[error("{url}: {source}")]
    Store {
        url: String,
        source: super::store::StoreError,
    },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("the Parquet writer thread stopped unexpectedly; nothing was committed")]
    WriterGone,
    #[error("a parser thread stopped unexpectedly; nothing more was committed")]
    ParserGone,
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
    pub pos: crate::agent::kube::StreamPos,
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

enum Backend {
    /// A directory: the lock file stays held while the manifest is open.
    Local { _lock: File },
    /// An object store; `root` is then a local scratch directory where parts are written
    /// before they are uploaded.
    Remote(super::store::Remote),
}

/// The lake opened for writing one hub's partitions: lock held, recovery done, progress loaded.
pub struct Manifest {
    root: PathBuf,
    hub: String,
    /// `_hubpulse/hubs/<hub>`.
    meta: String,
    /// Suffix of staging names (`.<nonce>` on S3, where a crashed writer's staging objects may
    /// still exist when a new one starts; empty on a file system).
    nonce: String,
    backend: Backend,
    next_seq: u64,
    /// fp → latest progress of that source.
    progress: HashMap<String, SourceProgress>,
    /// stream → latest committed position.
    streams: HashMap<String, crate::agent::kube::StreamPos>,
    /// `dt` → published parts (relative paths), in commit order.
    live: std::collections::BTreeMap<String, Vec<String>>,
    /// Commit files not yet folded into the snapshot.
    unfolded: usize,
}

/// Commits folded into `_hubpulse/snapshot.json` at a time.
pub const FOLD_EVERY: usize = 512;
const SNAPSHOT: &str = "snapshot.json";

/// Everything the commits up to `seq` established (see `Manifest::maybe_fold`).
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    version: u32,
    seq: u64,
    progress: Vec<SourceProgress>,
    streams: Vec<StreamProgress>,
    live: std::collections::BTreeMap<String, Vec<String>>,
}

/// How one hub's writer names files (see the layout above).
#[derive(Debug, Clone)]
pub struct Names {
    meta: String,
    hub: String,
    nonce: String,
}

impl Names {
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// A part's staging file: `<meta>/staging/<stem><nonce>.parquet`.
    pub fn staging_rel(&self, stem: &str) -> String {
        format!("{}/staging/{stem}{}.parquet", self.meta, self.nonce)
    }

    /// Where a part of `table` in partition `dt` is published: `<table>/hub=<hub>/dt=<dt>/part-<name>`.
    pub fn part_rel(&self, table: &str, dt: &str, name: &str) -> String {
        format!(
            "{table}/hub={}/{}={dt}/part-{name}",
            self.hub,
            super::schema::PARTITION_COL
        )
    }
}

/// The commit number in a staging name (`…/staging/<seq>-<n>[.<nonce>].parquet`).
fn staged_seq(rel: &str) -> Option<u64> {
    let name = rel.rsplit('/').next()?;
    name.split('-').next()?.parse().ok()
}

fn commit_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// `_hubpulse/hubs/<hub>`: a hub's manifest, snapshot, staging and lock.
pub fn meta_rel(hub: &str) -> String {
    format!("_hubpulse/hubs/{hub}")
}

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

/// xxh3-64 of the first `len` bytes of a file (fewer if the file is shorter).
pub fn hash_prefix(path: &Path, len: u64) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?.take(len);
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        n_total += n as u64;
    }
    Ok((hex(h.digest()), n_total))
}

pub fn fsync_dir(dir: &Path) -> Result<(), LakeError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

impl Manifest {
    /// Open `lake` (a directory or `s3://bucket/prefix`) for writing `hub`'s partitions.
    pub fn open(lake: &super::LakeLocation, hub: &str) -> Result<Manifest, LakeError> {
        super::store::check_hub(hub).map_err(LakeError::Config)?;
        let meta = meta_rel(hub);
        let (root, backend, nonce) = match lake {
            super::LakeLocation::Local(root) => {
                let root = root.clone();
                if root.join("_hubpulse").join("manifest").is_dir() {
                    return Err(LakeError::Legacy { path: root });
                }
                let m = root.join(&meta);
                for d in [
                    m.join("manifest"),
                    m.join("staging"),
                    root.join(super::schema::EVENTS),
                ] {
                    fs::create_dir_all(&d).map_err(io_err(&d))?;
                }
                let lock_path = m.join("lock");
                let lock = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(io_err(&lock_path))?;
                match lock.try_lock() {
                    Ok(()) => {}
                    Err(fs::TryLockError::WouldBlock) => {
                        return Err(LakeError::Locked { path: root });
                    }
                    Err(fs::TryLockError::Error(e)) => {
                        return Err(LakeError::Io {
                            path: lock_path,
                            source: e,
                        });
                    }
                }
                (root, Backend::Local { _lock: lock }, String::new())
            }
            super::LakeLocation::S3(url) => {
                let remote = super::store::Remote::open(url).map_err(LakeError::Config)?;
                let nonce = format!(
                    ".{:016x}",
                    xxhash_rust::xxh3::xxh3_64(
                        format!("{}-{:?}", std::process::id(), std::time::SystemTime::now())
                            .as_bytes()
                    )
                );
                // Parts are written here first, then uploaded; nothing in it is ever the only copy
                // of committed data, so a new writer starts it empty.
                let scratch = std::env::temp_dir()
                    .join("hubpulse-scratch")
                    .join(format!("{hub}{nonce}"));
                let staging = scratch.join(&meta).join("staging");
                fs::create_dir_all(&staging).map_err(io_err(&staging))?;
                (scratch, Backend::Remote(remote), nonce)
            }
        };
        let mut m = Manifest {
            root,
            hub: hub.to_string(),
            meta,
            nonce,
            backend,
            next_seq: 1,
            progress: HashMap::new(),
            streams: HashMap::new(),
            live: Default::default(),
            unfolded: 0,
        };
        let folded = m.load_snapshot()?;
        let mut commits = m.read_commits()?;
        // Commits already folded into the snapshot (left by an interrupted fold) go.
        for c in commits.iter().filter(|c| c.seq <= folded) {
            m.delete_meta(&format!("manifest/{}", commit_name(c.seq)))?;
        }
        commits.retain(|c| c.seq > folded);
        m.recover(&commits)?;
        for c in &commits {
            m.note(c);
        }
        m.unfolded = commits.len();
        Ok(m)
    }

    fn store_err(&self) -> impl FnOnce(super::store::StoreError) -> LakeError + '_ {
        move |source| LakeError::Store {
            url: match &self.backend {
                Backend::Remote(r) => r.url.clone(),
                Backend::Local { .. } => self.root.display().to_string(),
            },
            source,
        }
    }

    /// Read `<meta>/<rel>`, `None` if absent.
    fn read_meta(&self, rel: &str) -> Result<Option<Vec<u8>>, LakeError> {
        let full = format!("{}/{rel}", self.meta);
        match &self.backend {
            Backend::Local { .. } => {
                let p = self.root.join(&full);
                match fs::read(&p) {
                    Ok(t) => Ok(Some(t)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(LakeError::Io { path: p, source: e }),
                }
            }
            Backend::Remote(r) => r.read_opt(&full).map_err(self.store_err()),
        }
    }

    fn delete_meta(&self, rel: &str) -> Result<(), LakeError> {
        let full = format!("{}/{rel}", self.meta);
        self.delete_rel(&full)
    }

    /// Delete a lake-relative file; one already gone is not an error.
    fn delete_rel(&self, rel: &str) -> Result<(), LakeError> {
        match &self.backend {
            Backend::Local { .. } => {
                let p = self.root.join(rel);
                match fs::remove_file(&p) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(LakeError::Io { path: p, source: e }),
                }
            }
            Backend::Remote(r) => r.delete(rel).map_err(self.store_err()),
        }
    }

    /// Load the snapshot, if any; returns the last commit seq it folds (0: none).
    fn load_snapshot(&mut self) -> Result<u64, LakeError> {
        let Some(text) = self.read_meta(SNAPSHOT)? else {
            return Ok(0);
        };
        let snap: Snapshot = serde_json::from_slice(&text).map_err(|e| LakeError::Corrupt {
            path: PathBuf::from(format!("{}/{SNAPSHOT}", self.meta)),
            msg: e.to_string(),
        })?;
        self.next_seq = snap.seq + 1;
        for s in snap.progress {
            self.progress.insert(s.fp.clone(), s);
        }
        for s in snap.streams {
            self.streams.insert(s.stream, s.pos);
        }
        self.live = snap.live;
        Ok(snap.seq)
    }

    /// This hub's commits, in sequence order. Leftover `.*.tmp` files are ignored.
    fn read_commits(&self) -> Result<Vec<Commit>, LakeError> {
        match &self.backend {
            Backend::Local { .. } => read_commits(&self.root, &self.hub),
            Backend::Remote(r) => {
                let dir = format!("{}/manifest", self.meta);
                let mut out = Vec::new();
                for (rel, _) in r.list(&dir).map_err(self.store_err())? {
                    if !rel.ends_with(".json") {
                        continue;
                    }
                    let Some(text) = r.read_opt(&rel).map_err(self.store_err())? else {
                        continue;
                    };
                    let c: Commit =
                        serde_json::from_slice(&text).map_err(|e| LakeError::Corrupt {
                            path: PathBuf::from(&rel),
                            msg: e.to_string(),
                        })?;
                    out.push(c);
                }
                out.sort_by_key(|c| c.seq);
                Ok(out)
            }
        }
    }

    /// Fold every commit so far into the snapshot and delete their files, once there are
    /// `FOLD_EVERY` of them: opening the lake then reads one snapshot and a bounded number of
    /// commits, however long the agent has run (one commit per `flush_interval`).
    fn maybe_fold(&mut self) -> Result<(), LakeError> {
        if self.unfolded < FOLD_EVERY {
            return Ok(());
        }
        let seq = self.next_seq - 1;
        let mut progress: Vec<SourceProgress> = self.progress.values().cloned().collect();
        progress.sort_by(|a, b| a.fp.cmp(&b.fp));
        let mut streams: Vec<StreamProgress> = self
            .streams
            .iter()
            .map(|(k, v)| StreamProgress {
                stream: k.clone(),
                pos: *v,
            })
            .collect();
        streams.sort_by(|a, b| a.stream.cmp(&b.stream));
        let snap = Snapshot {
            version: 1,
            seq,
            progress,
            streams,
            live: self.live.clone(),
        };
        let body = serde_json::to_vec(&snap).map_err(|e| LakeError::Corrupt {
            path: PathBuf::from(format!("{}/{SNAPSHOT}", self.meta)),
            msg: e.to_string(),
        })?;
        match &self.backend {
            Backend::Local { .. } => write_durable(&self.root.join(&self.meta), SNAPSHOT, &body)?,
            Backend::Remote(r) => r
                .put(&format!("{}/{SNAPSHOT}", self.meta), body)
                .map_err(self.store_err())?,
        }
        for c in self.read_commits()? {
            if c.seq <= seq {
                self.delete_meta(&format!("manifest/{}", commit_name(c.seq)))?;
            }
        }
        self.unfolded = 0;
        Ok(())
    }

    fn note(&mut self, c: &Commit) {
        self.next_seq = self.next_seq.max(c.seq + 1);
        for s in c.source.iter().chain(&c.sources) {
            let mut s = s.clone();
            lineage::carry_marks(self.progress.get(&s.fp), &mut s);
            self.progress.insert(s.fp.clone(), s);
        }
        for s in &c.streams {
            self.streams.insert(s.stream.clone(), s.pos);
        }
        for r in &c.replaces {
            if let Some(k) = live_key(r)
                && let Some(v) = self.live.get_mut(&k)
            {
                v.retain(|p| p != r);
                if v.is_empty() {
                    self.live.remove(&k);
                }
            }
        }
        for p in &c.parts {
            if let Some(k) = live_key(&p.path) {
                self.live.entry(k).or_default().push(p.path.clone());
            }
        }
    }

    /// Published parts per partition (`<table>/<dt>`, see [`key_table`], [`key_dt`]), in commit order.
    pub fn live_parts(&self) -> &std::collections::BTreeMap<String, Vec<String>> {
        &self.live
    }

    /// Committed progress of every file source, by identity.
    pub fn progress(&self) -> &HashMap<String, SourceProgress> {
        &self.progress
    }

    /// Committed position of every pod-log stream.
    pub fn stream_positions(&self) -> &HashMap<String, crate::agent::kube::StreamPos> {
        &self.streams
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The hub this manifest writes.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// `true` when the lake is in an object store (parts are then written to a local scratch
    /// directory, [`Manifest::root`], before being uploaded).
    pub fn is_remote(&self) -> bool {
        matches!(self.backend, Backend::Remote(_))
    }

    /// How this writer names its staging files and published parts.
    pub fn names(&self) -> Names {
        Names {
            meta: self.meta.clone(),
            hub: self.hub.clone(),
            nonce: self.nonce.clone(),
        }
    }

    fn part_rel(&self, table: &str, dt: &str, name: &str) -> String {
        self.names().part_rel(table, dt, name)
    }

    pub fn staging_dir(&self) -> PathBuf {
        self.root.join(&self.meta).join("staging")
    }

    /// Roll interrupted commits forward and uncommitted staging files back.
    fn recover(&self, commits: &[Commit]) -> Result<(), LakeError> {
        if let Backend::Remote(r) = &self.backend {
            return self.recover_remote(r, commits);
        }
        let mut named = std::collections::HashSet::new();
        for c in commits {
            for p in &c.parts {
                named.insert(self.root.join(&p.staging));
            }
            if c.replaces.is_empty() {
                for p in &c.parts {
                    self.publish_part(p)?;
                }
            } else if c.parts.is_empty() {
                for r in &c.replaces {
                    self.delete_rel(r)?;
                }
            } else {
                self.swap(c)?;
            }
        }
        let swap = self.root.join(&self.meta).join("swap");
        if swap.exists() {
            fs::remove_dir_all(&swap).map_err(io_err(&swap))?;
        }
        let staging = self.staging_dir();
        for e in fs::read_dir(&staging).map_err(io_err(&staging))? {
            let p = e.map_err(io_err(&staging))?.path();
            if !named.contains(&p) {
                tracing::warn!(file = %p.display(), "removing uncommitted staging file left by an interrupted writer");
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        Ok(())
    }

    /// S3: finish the copies of committed parts still in staging, delete what retention commits
    /// dropped, and delete staging objects no commit names whose commit number is already
    /// taken (uploads of a commit that never happened: that number can never be committed now).
    /// Unnamed uploads for a number not yet taken are left alone: they may be a live writer's
    /// next commit (two writers of one hub is a misconfiguration, but it must end in a commit
    /// conflict, not in a commit whose parts were deleted under it).
    fn recover_remote(
        &self,
        r: &super::store::Remote,
        commits: &[Commit],
    ) -> Result<(), LakeError> {
        let staging = format!("{}/staging", self.meta);
        let mut staged: std::collections::HashSet<String> = r
            .list(&staging)
            .map_err(self.store_err())?
            .into_iter()
            .map(|(rel, _)| rel)
            .collect();
        for c in commits {
            for p in &c.parts {
                if staged.remove(&p.staging) {
                    r.copy(&p.staging, &p.path).map_err(self.store_err())?;
                    r.delete(&p.staging).map_err(self.store_err())?;
                }
            }
            for gone in &c.replaces {
                r.delete(gone).map_err(self.store_err())?;
            }
        }
        let next = commits.last().map_or(self.next_seq, |c| c.seq + 1);
        for orphan in staged {
            if staged_seq(&orphan).is_none_or(|s| s < next) {
                tracing::warn!(object = %orphan, "removing uncommitted staging object left by an interrupted writer");
                r.delete(&orphan).map_err(self.store_err())?;
            }
        }
        Ok(())
    }

    fn publish_part(&self, p: &PartEntry) -> Result<(), LakeError> {
        if let Backend::Remote(r) = &self.backend {
            r.copy(&p.staging, &p.path).map_err(self.store_err())?;
            r.delete(&p.staging).map_err(self.store_err())?;
            let local = self.root.join(&p.staging);
            return fs::remove_file(&local).map_err(io_err(&local));
        }
        let (src, dst) = (self.root.join(&p.staging), self.root.join(&p.path));
        if dst.exists() || !src.exists() {
            return Ok(());
        }
        let dir = dst.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        fs::rename(&src, &dst).map_err(io_err(&dst))?;
        fsync_dir(&dir)
    }

    /// Identify a file by content and return (identity, head length, offset to resume from).
    ///
    /// A file first seen shorter than `FP_BYTES` was fingerprinted on its whole (short) content;
    /// once grown, it is recognised by hashing the same number of leading bytes.
    pub fn identify(&self, path: &Path) -> Result<(String, u64, u64), LakeError> {
        identify_in(&self.progress, path)
    }
}

impl Manifest {
    /// Make a commit durable, then publish its parts. Parts must already be in staging, synced.
    pub fn commit(&mut self, c: &Commit) -> Result<(), LakeError> {
        if let Backend::Remote(r) = &self.backend {
            // Durable in the store before the commit names them.
            for p in &c.parts {
                r.upload(&p.staging, &self.root.join(&p.staging))
                    .map_err(self.store_err())?;
            }
        }
        if let Err(e) = self.write_commit(c) {
            if let (LakeError::Conflict { .. }, Backend::Remote(r)) = (&e, &self.backend) {
                for p in &c.parts {
                    let _ = r.delete(&p.staging);
                }
            }
            return Err(e);
        }
        for p in &c.parts {
            self.publish_part(p)?;
        }
        self.note(c);
        self.unfolded += 1;
        self.maybe_fold()
    }

    fn write_commit(&self, c: &Commit) -> Result<(), LakeError> {
        let rel = format!("{}/manifest/{}", self.meta, commit_name(c.seq));
        let body = serde_json::to_vec_pretty(c).map_err(|e| LakeError::Corrupt {
            path: PathBuf::from(&rel),
            msg: e.to_string(),
        })?;
        match &self.backend {
            Backend::Local { .. } => write_durable(
                &self.root.join(&self.meta).join("manifest"),
                &commit_name(c.seq),
                &body,
            ),
            Backend::Remote(r) => {
                if r.create(&rel, body).map_err(self.store_err())? {
                    Ok(())
                } else {
                    Err(LakeError::Conflict {
                        url: r.url.clone(),
                        hub: self.hub.clone(),
                        seq: c.seq,
                    })
                }
            }
        }
    }
}

/// Write `dir/name` atomically and durably: a hidden tmp file, fsync, rename, fsync the directory.
fn write_durable(dir: &Path, name: &str, body: &[u8]) -> Result<(), LakeError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(body).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    let dst = dir.join(name);
    fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
    fsync_dir(dir)
}

fn dt_of(rel: &str) -> Option<&str> {
    rel.split('/').find_map(|seg| seg.strip_prefix("dt="))
}

/// A part's partition in [`Manifest::live_parts`]: `<table>/<dt>` (`events/2026-11-02`).
fn live_key(rel: &str) -> Option<String> {
    let table = rel.split('/').next()?;
    Some(format!("{table}/{}", dt_of(rel)?))
}

/// The table of a [`live_key`].
pub fn key_table(key: &str) -> &str {
    key.split_once('/').map_or("", |(t, _)| t)
}

/// The `dt` of a [`live_key`].
pub fn key_dt(key: &str) -> &str {
    key.split_once('/').map_or(key, |(_, d)| d)
}

/// A directory's entries, or `None` if it does not exist.
fn read_dir_opt(dir: &Path) -> Result<Option<fs::ReadDir>, LakeError> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(Some(rd)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LakeError::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

/// All of a hub's commits in a local lake, in sequence order. Leftover `*.tmp` files are
/// ignored (never committed).
pub fn read_commits(root: &Path, hub: &str) -> Result<Vec<Commit>, LakeError> {
    let dir = root.join(meta_rel(hub)).join("manifest");
    let mut out = Vec::new();
    let Some(rd) = read_dir_opt(&dir)? else {
        return Ok(out);
    };
    for e in rd {
        let p = e.map_err(io_err(&dir))?.path();
        if p.extension().is_none_or(|x| x != "json")
            || p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let text = fs::read(&p).map_err(io_err(&p))?;
        let c: Commit = serde_json::from_slice(&text).map_err(|e| LakeError::Corrupt {
            path: p.clone(),
            msg: e.to_string(),
        })?;
        out.push(c);
    }
    out.sort_by_key(|c| c.seq);
    Ok(out)
}

#[cfg(test)]
mod tests;
