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
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod commit;
mod identity;
mod layout;
pub mod lineage;
mod position;
mod recover;
mod rewrite;
mod types;

pub use commit::read_commits;
pub use identity::identify_in;
pub(crate) use layout::write_durable;
pub use layout::{Names, fsync_dir, hash_prefix, key_dt, key_table, meta_rel};
use layout::{commit_name, hex, live_key, read_dir_opt, staged_seq};
pub use position::StreamPos;
pub use types::{Commit, FP_BYTES, LakeError, PartEntry, SourceProgress, StreamProgress, io_err};

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
    streams: HashMap<String, StreamPos>,
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

impl Manifest {
    /// Open `lake` (a directory or `s3://bucket/prefix`) for writing `hub`'s partitions. A lake
    /// of another format is refused (see [`crate::lake::format`]); a new one is marked.
    pub fn open(lake: &super::LakeLocation, hub: &str) -> Result<Manifest, LakeError> {
        crate::lake::format::ensure(lake)?;
        Manifest::open_any_format(lake, hub)
    }

    /// [`Manifest::open`] whatever the lake's format (`hubpulse migrate`).
    pub fn open_any_format(lake: &super::LakeLocation, hub: &str) -> Result<Manifest, LakeError> {
        super::store::check_hub(hub)?;
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
                    root.join(super::tables::events::EVENTS),
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
                let remote = super::store::Remote::open(url)?;
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
            source: e,
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
                            source: e,
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
            source: e,
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
    pub fn stream_positions(&self) -> &HashMap<String, StreamPos> {
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

    /// Identify a file by content and return (identity, head length, offset to resume from).
    ///
    /// A file first seen shorter than `FP_BYTES` was fingerprinted on its whole (short) content;
    /// once grown, it is recognised by hashing the same number of leading bytes.
    pub fn identify(&self, path: &Path) -> Result<(String, u64, u64), LakeError> {
        identify_in(&self.progress, path)
    }
}

#[cfg(test)]
mod tests;
