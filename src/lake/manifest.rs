//! The lake's manifest: the record of what each source contributed, and the commit protocol
//! that makes a batch of Parquet parts visible exactly once.
//!
//! Layout under the lake root:
//!
//! ```text
//! events/dt=YYYY-MM-DD/part-<seq>-<n>.parquet   published parts (what readers see)
//! _hubpulse/manifest/<seq, 20 digits>.json     one file per commit, written tmp → fsync → rename
//! _hubpulse/snapshot.json                      every 512 commits: their folded state (progress,
//!                                              stream positions, live parts); those files go
//! _hubpulse/swap/                              compaction's next partition directory
//! _hubpulse/staging/<seq>-<n>.parquet          parts written, not yet published
//! _hubpulse/lock                               held by a writer for its whole life
//! ```
//!
//! # Guarantees
//! * A commit file is the single point of truth: parts are written to staging first, then the
//!   commit file is made durable, then the parts are renamed into `events/`. Opening the lake
//!   for writing finishes interrupted commits (rolls forward renames) and deletes staging files
//!   no commit names (rolls back), so a crash at any point leaves every batch either fully
//!   committed or absent.
//! * A source is identified by a content fingerprint: xxh3 of its first `min(size, 4096)` bytes.
//!   Its progress is the end offset of its last commit, guarded by xxh3 of all bytes before that
//!   offset, so a file that was truncated and rewritten with the same head is not mistaken for
//!   the old one grown.
//!
//! # Assumptions
//! One writer per lake at a time (enforced with the lock file); readers never need the lock.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FP_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: corrupt manifest: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("{path}: another hubpulse process is writing to this lake")]
    Locked { path: PathBuf },
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("the Parquet writer thread stopped unexpectedly; nothing was committed")]
    WriterGone,
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

/// The lake opened for writing: lock held, recovery done, source progress loaded.
pub struct Manifest {
    root: PathBuf,
    _lock: File,
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

fn commit_path(root: &Path, seq: u64) -> PathBuf {
    root.join("_hubpulse")
        .join("manifest")
        .join(format!("{seq:020}.json"))
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
    pub fn open(root: &Path) -> Result<Manifest, LakeError> {
        let meta = root.join("_hubpulse");
        for d in [
            meta.join("manifest"),
            meta.join("staging"),
            root.join(super::schema::EVENTS),
        ] {
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let lock_path = meta.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(LakeError::Locked {
                    path: root.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(LakeError::Io {
                    path: lock_path,
                    source: e,
                });
            }
        }
        let mut m = Manifest {
            root: root.to_path_buf(),
            _lock: lock,
            next_seq: 1,
            progress: HashMap::new(),
            streams: HashMap::new(),
            live: Default::default(),
            unfolded: 0,
        };
        let folded = m.load_snapshot()?;
        let mut commits = read_commits(root)?;
        // Commits already folded into the snapshot (left by an interrupted fold) go.
        for c in commits.iter().filter(|c| c.seq <= folded) {
            let p = commit_path(root, c.seq);
            fs::remove_file(&p).map_err(io_err(&p))?;
        }
        commits.retain(|c| c.seq > folded);
        m.recover(&commits)?;
        for c in &commits {
            m.note(c);
        }
        m.unfolded = commits.len();
        Ok(m)
    }

    /// Load `_hubpulse/snapshot.json`, if any; returns the last commit seq it folds (0: none).
    fn load_snapshot(&mut self) -> Result<u64, LakeError> {
        let p = self.root.join("_hubpulse").join(SNAPSHOT);
        let text = match fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(LakeError::Io { path: p, source: e }),
        };
        let snap: Snapshot = serde_json::from_slice(&text).map_err(|e| LakeError::Corrupt {
            path: p.clone(),
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
            path: self.root.join("_hubpulse").join(SNAPSHOT),
            msg: e.to_string(),
        })?;
        write_durable(&self.root.join("_hubpulse"), SNAPSHOT, &body)?;
        for c in read_commits(&self.root)? {
            if c.seq <= seq {
                let p = commit_path(&self.root, c.seq);
                fs::remove_file(&p).map_err(io_err(&p))?;
            }
        }
        self.unfolded = 0;
        Ok(())
    }

    fn note(&mut self, c: &Commit) {
        self.next_seq = self.next_seq.max(c.seq + 1);
        for s in c.source.iter().chain(&c.sources) {
            self.progress.insert(s.fp.clone(), s.clone());
        }
        for s in &c.streams {
            self.streams.insert(s.stream.clone(), s.pos);
        }
        for r in &c.replaces {
            if let Some(dt) = dt_of(r)
                && let Some(v) = self.live.get_mut(dt)
            {
                v.retain(|p| p != r);
            }
        }
        for p in &c.parts {
            if let Some(dt) = dt_of(&p.path) {
                self.live
                    .entry(dt.to_string())
                    .or_default()
                    .push(p.path.clone());
            }
        }
    }

    /// Published parts per partition value, in commit order.
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

    pub fn staging_dir(&self) -> PathBuf {
        self.root.join("_hubpulse").join("staging")
    }

    /// Roll interrupted commits forward and uncommitted staging files back.
    fn recover(&self, commits: &[Commit]) -> Result<(), LakeError> {
        let mut named = std::collections::HashSet::new();
        for c in commits {
            for p in &c.parts {
                named.insert(self.root.join(&p.staging));
            }
            if c.replaces.is_empty() {
                for p in &c.parts {
                    self.publish_part(p)?;
                }
            } else {
                self.swap(c)?;
            }
        }
        let swap = self.root.join("_hubpulse").join("swap");
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

    fn publish_part(&self, p: &PartEntry) -> Result<(), LakeError> {
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

/// [`Manifest::identify`] over a snapshot of the committed progress.
pub fn identify_in(
    progress: &HashMap<String, SourceProgress>,
    path: &Path,
) -> Result<(String, u64, u64), LakeError> {
    let (fp, head_len) = hash_prefix(path, FP_BYTES).map_err(io_err(path))?;
    let known = progress
        .get(&fp)
        .or_else(|| short_head_match(progress, path, head_len));
    let Some(p) = known else {
        return Ok((fp, head_len, 0));
    };
    let (prefix, n) = hash_prefix(path, p.to).map_err(io_err(path))?;
    if n == p.to && prefix == p.prefix_hash {
        return Ok((p.fp.clone(), p.head_len, p.to));
    }
    // Same head, different content (truncated and rewritten): a new source. Its identity
    // is derived from its own content so that re-ingesting it is idempotent too.
    let derived = format!("{}-{prefix}", p.fp);
    let resume = match progress.get(&derived) {
        Some(d)
            if hash_prefix(path, d.to).map_err(io_err(path))? == (d.prefix_hash.clone(), d.to) =>
        {
            d.to
        }
        _ => 0,
    };
    // The derived source is recognised by the same head as the source it was mistaken for.
    Ok((derived, p.head_len, resume))
}

fn short_head_match<'p>(
    progress: &'p HashMap<String, SourceProgress>,
    path: &Path,
    _size_head: u64,
) -> Option<&'p SourceProgress> {
    let mut head = Vec::new();
    File::open(path)
        .ok()?
        .take(FP_BYTES)
        .read_to_end(&mut head)
        .ok()?;
    progress.values().find(|p| {
        p.head_len > 0
            && p.head_len < FP_BYTES
            // The file may have changed since it was first hashed: go by what was read now.
            && p.head_len <= head.len() as u64
            && hex(xxhash_rust::xxh3::xxh3_64(&head[..p.head_len as usize])) == p.fp
    })
}

impl Manifest {
    /// Make a commit durable, then publish its parts. Parts must already be in staging, synced.
    pub fn commit(&mut self, c: &Commit) -> Result<(), LakeError> {
        self.write_commit(c)?;
        for p in &c.parts {
            self.publish_part(p)?;
        }
        self.note(c);
        self.unfolded += 1;
        self.maybe_fold()
    }

    fn write_commit(&self, c: &Commit) -> Result<(), LakeError> {
        let dir = self.root.join("_hubpulse").join("manifest");
        let name = format!("{:020}.json", c.seq);
        let body = serde_json::to_vec_pretty(c).map_err(|e| LakeError::Corrupt {
            path: dir.join(&name),
            msg: e.to_string(),
        })?;
        write_durable(&dir, &name, &body)
    }

    /// Make a compaction durable, then swap the partition directory (see `lake::compact`).
    pub fn commit_compaction(
        &mut self,
        replaces: Vec<String>,
        entry: PartEntry,
    ) -> Result<u64, LakeError> {
        let c = Commit {
            version: 1,
            seq: self.next_seq,
            created: chrono::Utc::now().to_rfc3339(),
            table: super::schema::EVENTS.into(),
            source: None,
            sources: Vec::new(),
            streams: Vec::new(),
            replaces,
            parts: vec![entry],
            records: 0,
            unparsed: 0,
        };
        self.write_commit(&c)?;
        self.swap(&c)?;
        self.note(&c);
        self.unfolded += 1;
        self.maybe_fold()?;
        Ok(c.seq)
    }

    /// Replace a partition's directory by one holding the compacted part instead of the parts
    /// it replaces (plus every other part, hard-linked), in one atomic exchange. Idempotent:
    /// recovery calls it again for a commit whose swap may not have happened.
    fn swap(&self, c: &Commit) -> Result<(), LakeError> {
        let Some(entry) = c.parts.first() else {
            return Ok(());
        };
        let dst = self.root.join(&entry.path);
        let Some(part_dir) = dst.parent().map(Path::to_path_buf) else {
            return Ok(());
        };
        let staging = self.root.join(&entry.staging);
        let pending = c.replaces.iter().any(|r| self.root.join(r).exists());
        if pending && staging.exists() {
            let name = part_dir.file_name().unwrap_or_default();
            let swap = self.root.join("_hubpulse").join("swap").join(name);
            if swap.exists() {
                fs::remove_dir_all(&swap).map_err(io_err(&swap))?;
            }
            fs::create_dir_all(&swap).map_err(io_err(&swap))?;
            let new_name = dst.file_name().unwrap_or_default();
            fs::hard_link(&staging, swap.join(new_name)).map_err(io_err(&swap))?;
            let replaced: std::collections::HashSet<PathBuf> =
                c.replaces.iter().map(|r| self.root.join(r)).collect();
            for e in fs::read_dir(&part_dir).map_err(io_err(&part_dir))? {
                let p = e.map_err(io_err(&part_dir))?.path();
                if !replaced.contains(&p) && p.file_name() != Some(new_name) {
                    let to = swap.join(p.file_name().unwrap_or_default());
                    fs::hard_link(&p, &to).map_err(io_err(&to))?;
                }
            }
            fsync_dir(&swap)?;
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &swap,
                rustix::fs::CWD,
                &part_dir,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .map_err(|e| LakeError::Io {
                path: part_dir.clone(),
                source: e.into(),
            })?;
            if let Some(events) = part_dir.parent() {
                fsync_dir(events)?;
            }
            fs::remove_dir_all(&swap).map_err(io_err(&swap))?;
        }
        if dst.exists() && staging.exists() {
            fs::remove_file(&staging).map_err(io_err(&staging))?;
        }
        Ok(())
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

/// All commits, in sequence order. Leftover `*.tmp` files are ignored (never committed).
pub fn read_commits(root: &Path) -> Result<Vec<Commit>, LakeError> {
    let dir = root.join("_hubpulse").join("manifest");
    let mut out = Vec::new();
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(LakeError::Io {
                path: dir,
                source: e,
            });
        }
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
mod tests {
    use super::*;

    fn commit(seq: u64, to: u64) -> Commit {
        Commit {
            version: 1,
            seq,
            created: String::new(),
            table: "events".into(),
            source: None,
            sources: vec![SourceProgress {
                fp: format!("f{}", seq % 3),
                head_len: 100,
                path: "x.log".into(),
                from: to - 1,
                to,
                prefix_hash: format!("{to:016x}"),
            }],
            streams: vec![StreamProgress {
                stream: "k8s/ns/hub/hub".into(),
                pos: crate::agent::kube::StreamPos {
                    ts_nanos: seq as i64,
                    same_ts: 1,
                },
            }],
            replaces: Vec::new(),
            parts: Vec::new(),
            records: 1,
            unparsed: 0,
        }
    }

    #[test]
    fn commits_fold_into_a_snapshot_and_reopen_to_the_same_state() {
        let dir = tempfile::tempdir().unwrap();
        let n = FOLD_EVERY as u64 * 2 + 7;
        let (progress, streams, next) = {
            let mut m = Manifest::open(dir.path()).unwrap();
            for i in 1..=n {
                let seq = m.next_seq();
                m.commit(&commit(seq, i + 10)).unwrap();
            }
            let files = fs::read_dir(dir.path().join("_hubpulse/manifest"))
                .unwrap()
                .count();
            assert!(files <= FOLD_EVERY, "{files} commit files left");
            (
                m.progress().clone(),
                m.stream_positions().clone(),
                m.next_seq(),
            )
        };
        assert_eq!(next, n + 1);
        assert_eq!(
            progress["f1"].to,
            (1..=n).filter(|s| s % 3 == 1).max().unwrap() + 10
        );
        let m = Manifest::open(dir.path()).unwrap();
        assert_eq!(m.progress(), &progress);
        assert_eq!(m.stream_positions(), &streams);
        assert_eq!(m.next_seq(), n + 1);
    }
}
