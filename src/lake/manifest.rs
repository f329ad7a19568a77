//! The lake's manifest: the record of what each source contributed, and the commit protocol
//! that makes a batch of Parquet parts visible exactly once.
//!
//! Layout under the lake root:
//!
//! ```text
//! events/dt=YYYY-MM-DD/part-<seq>-<n>.parquet   published parts (what readers see)
//! _hubpulse/manifest/<seq, 20 digits>.json     one file per commit, written tmp → fsync → rename
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
    pub source: Option<SourceProgress>,
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
        };
        let commits = read_commits(root)?;
        m.recover(&commits)?;
        for c in commits {
            m.next_seq = m.next_seq.max(c.seq + 1);
            if let Some(s) = c.source {
                m.progress.insert(s.fp.clone(), s);
            }
        }
        Ok(m)
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
                self.publish_part(p)?;
            }
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
        let (fp, head_len) = hash_prefix(path, FP_BYTES).map_err(io_err(path))?;
        let known = self
            .progress
            .get(&fp)
            .or_else(|| self.short_head_match(path, head_len));
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
        let resume = match self.progress.get(&derived) {
            Some(d)
                if hash_prefix(path, d.to).map_err(io_err(path))?
                    == (d.prefix_hash.clone(), d.to) =>
            {
                d.to
            }
            _ => 0,
        };
        Ok((derived, head_len, resume))
    }

    fn short_head_match(&self, path: &Path, size_head: u64) -> Option<&SourceProgress> {
        let mut head = Vec::new();
        File::open(path)
            .ok()?
            .take(FP_BYTES)
            .read_to_end(&mut head)
            .ok()?;
        self.progress.values().find(|p| {
            p.head_len < FP_BYTES
                && p.head_len <= size_head
                && hex(xxhash_rust::xxh3::xxh3_64(&head[..p.head_len as usize])) == p.fp
        })
    }

    /// Make a commit durable, then publish its parts. Parts must already be in staging, synced.
    pub fn commit(&mut self, c: &Commit) -> Result<(), LakeError> {
        let dir = self.root.join("_hubpulse").join("manifest");
        let name = format!("{:020}.json", c.seq);
        let tmp = dir.join(format!(".{name}.tmp"));
        let body = serde_json::to_vec_pretty(c).map_err(|e| LakeError::Corrupt {
            path: tmp.clone(),
            msg: e.to_string(),
        })?;
        {
            let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
            f.write_all(&body).map_err(io_err(&tmp))?;
            f.sync_all().map_err(io_err(&tmp))?;
        }
        let dst = dir.join(&name);
        fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
        fsync_dir(&dir)?;
        for p in &c.parts {
            self.publish_part(p)?;
        }
        self.next_seq = self.next_seq.max(c.seq + 1);
        if let Some(s) = &c.source {
            self.progress.insert(s.fp.clone(), s.clone());
        }
        Ok(())
    }
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
