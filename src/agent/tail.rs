//! File sources: follow glob patterns through rotation, delivering complete lines.
//!
//! # Identity
//! A file is identified by content, as the lake's manifest keys it (xxh3 of its first
//! `min(size, 4096)` bytes when first seen, guarded by a hash of everything before the resume
//! offset): not by path, not by inode. A file is not identified until it holds one complete
//! line (or 4 KiB), so two new files that both start with `[I 2026` are never confused.
//!
//! # Rotation
//! * **rename-and-create** (`hub.log` → `hub.log.1`, new `hub.log`): the open handle keeps
//!   reading the old file to its end; the new file is found by the next glob scan.
//! * **copy-truncate**: truncation is noticed (size below the read position, or a different head
//!   behind the same inode, checked before every delivery); the source then continues at the same
//!   offset in the copy (same head, so same identity) if the globs include it. Bytes truncated
//!   before they were read and found in no copy are counted (`rotation_lost_bytes`), not silent.
//! * A rotated or deleted file is read to its end and let go once quiet for `rotate_wait`; a
//!   partial last line it still holds is then delivered as a line.
//!
//! # Partial lines
//! A line without its newline yet is held back (never delivered half); it is delivered whole
//! when the newline arrives. A partial line longer than `max(max_line_bytes, 1 MiB)` is delivered
//! as is so memory stays bounded (the pipeline keeps it truncated and flagged).
//!
//! Latency: an idle file is polled every `poll_interval` (default 20 ms): no inotify, so it works
//! the same on every filesystem (NFS, overlay, hostPath volumes).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::agent::config::{FileSourceConfig, StartAt};
use crate::agent::metrics::Metrics;
use crate::agent::source::{SourceId, SourceKind, SourceMsg, next_id};
use crate::lake::manifest::{FP_BYTES, LakeError, SourceProgress, identify_in};

/// Bytes read from one file per turn before the next file gets its turn.
const TURN_BYTES: usize = 4 << 20;
const READ_CHUNK: usize = 1 << 20;
/// A non-rotated file idle this long with no partial line is closed (reopened when it grows).
const DORMANT: std::time::Duration = std::time::Duration::from_secs(300);

struct Watcher {
    id: SourceId,
    head_fp: u64,
    head_len: u64,
    path: PathBuf,
    /// `None`: the file was truncated under us; waiting for its copy to appear.
    file: Option<File>,
    dev_ino: (u64, u64),
    /// Offset just past the bytes delivered.
    sent: u64,
    /// Bytes read after `sent` (a line without its newline yet).
    partial: Vec<u8>,
    /// When the file left its path (renamed, deleted) or was found as a rotated copy.
    rotated: Option<Instant>,
    /// When the file was truncated away (copy-truncate), if it was.
    orphaned: Option<Instant>,
    last_growth: Instant,
}

impl Watcher {
    fn read_pos(&self) -> u64 {
        self.sent + self.partial.len() as u64
    }

    /// Does the file behind the handle still start with the bytes it was identified by?
    fn head_ok(&self, file: &File) -> bool {
        let mut head = vec![0u8; self.head_len as usize];
        match file.read_exact_at(&mut head, 0) {
            Ok(()) => xxh3_64(&head) == self.head_fp,
            Err(_) => false,
        }
    }
}

/// Files let go in this run: identity by head, and how far they were read.
struct Done {
    head_fp: u64,
    head_len: u64,
    offset: u64,
}

pub struct Tailer {
    cfg: FileSourceConfig,
    tx: SyncSender<SourceMsg>,
    shutdown: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    /// The lake's committed progress at startup (identity → progress).
    progress: HashMap<String, SourceProgress>,
    watchers: Vec<Watcher>,
    done: Vec<Done>,
    /// Paths last found with nothing to read, by (dev, ino, size): not re-hashed until they change.
    idle: HashMap<PathBuf, (u64, u64, u64)>,
    first_scan: bool,
    buf: Vec<u8>,
}

fn dev_ino(m: &Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(FP_BYTES as usize);
    File::open(path)?.take(FP_BYTES).read_to_end(&mut head)?;
    Ok(head)
}

impl Tailer {
    pub fn new(
        cfg: FileSourceConfig,
        progress: HashMap<String, SourceProgress>,
        tx: SyncSender<SourceMsg>,
        shutdown: Arc<AtomicBool>,
        metrics: Arc<Metrics>,
    ) -> Tailer {
        Tailer {
            cfg,
            tx,
            shutdown,
            metrics,
            progress,
            watchers: Vec::new(),
            done: Vec::new(),
            idle: HashMap::new(),
            first_scan: true,
            buf: vec![0u8; READ_CHUNK],
        }
    }

    /// Run until shutdown (or until the pipeline is gone).
    pub fn run(mut self) {
        let mut next_scan = Instant::now();
        while !self.shutdown.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_scan {
                if self.scan().is_err() {
                    return;
                }
                next_scan = now + self.cfg.glob_interval;
            }
            let mut any = false;
            for i in 0..self.watchers.len() {
                match self.pump(i) {
                    Ok(n) => any |= n > 0,
                    Err(Gone) => return,
                }
            }
            if self.retire().is_err() {
                return;
            }
            if !any {
                std::thread::sleep(self.cfg.poll_interval);
            }
        }
    }

    fn send(&self, msg: SourceMsg) -> Result<(), Gone> {
        self.tx.send(msg).map_err(|_| Gone)
    }

    fn matching_paths(&self) -> Vec<PathBuf> {
        let excludes: Vec<glob::Pattern> = self
            .cfg
            .exclude
            .iter()
            .filter_map(|p| glob::Pattern::new(p).ok())
            .collect();
        let mut out = Vec::new();
        for pat in &self.cfg.include {
            let Ok(paths) = glob::glob(pat) else { continue };
            for p in paths.flatten() {
                if p.is_file() && !excludes.iter().any(|e| e.matches_path(&p)) {
                    out.push(p);
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Notice rotations of followed files, then discover new and rotated files.
    fn scan(&mut self) -> Result<(), Gone> {
        let now = Instant::now();
        for i in 0..self.watchers.len() {
            self.check_rotation(i, now);
        }
        for path in self.matching_paths() {
            if let Err(e) = self.consider(&path, now) {
                match e {
                    ScanError::Gone => return Err(Gone),
                    ScanError::Retry(why) => tracing::debug!("{why}"),
                    ScanError::Io(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "cannot read file; will retry");
                        self.metrics.error("file_read");
                    }
                }
            }
        }
        if self.first_scan {
            self.first_scan = false;
            self.metrics.starting.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn check_rotation(&mut self, i: usize, now: Instant) {
        let w = &mut self.watchers[i];
        let Some(file) = &w.file else { return };
        // Truncation first, on the open handle: a file truncated and then renamed away before
        // this scan (copy-truncate, then a rename rotation) is not a plain rename. Its held
        // partial line belongs to the copy, and must not be flushed as a line at rotate_wait.
        if truncated(w, file) {
            orphan(w, &self.metrics, now);
            return;
        }
        if w.rotated.is_some() {
            return;
        }
        match std::fs::metadata(&w.path) {
            Ok(m) if dev_ino(&m) == w.dev_ino => {}
            _ => {
                tracing::info!(file = %w.path.display(), "followed file was rotated or removed; reading it to its end");
                self.metrics.files_rotated.fetch_add(1, Ordering::Relaxed);
                w.rotated = Some(now);
                w.last_growth = now;
            }
        }
    }

    fn consider(&mut self, path: &Path, now: Instant) -> Result<(), ScanError> {
        let meta = std::fs::metadata(path)?;
        let key = dev_ino(&meta);
        if let Some(w) = self
            .watchers
            .iter_mut()
            .find(|w| w.file.is_some() && w.dev_ino == key)
        {
            if w.path != path {
                w.path = path.to_path_buf();
                let msg = SourceMsg::Moved {
                    id: w.id,
                    path: path.to_path_buf(),
                };
                self.tx.send(msg).map_err(|_| ScanError::Gone)?;
            }
            return Ok(());
        }
        if self.idle.get(path) == Some(&(key.0, key.1, meta.len())) {
            return Ok(());
        }
        let head = read_head(path)?;
        if memchr::memchr(b'\n', &head).is_none() && (head.len() as u64) < FP_BYTES {
            return Ok(()); // not identifiable yet
        }
        let matches =
            |fp: u64, len: u64| len <= head.len() as u64 && xxh3_64(&head[..len as usize]) == fp;
        if let Some(w) = self
            .watchers
            .iter_mut()
            .find(|w| matches(w.head_fp, w.head_len))
        {
            if w.file.is_none() && meta.len() >= w.sent {
                // The copy of a file truncated under us: continue there.
                let mut f = File::open(path)?;
                f.seek(SeekFrom::Start(w.sent))?;
                tracing::info!(file = %path.display(), offset = w.sent, "continuing a truncated file in its copy");
                w.file = Some(f);
                w.dev_ino = key;
                w.path = path.to_path_buf();
                w.partial.clear();
                w.orphaned = None;
                w.rotated = Some(now);
                w.last_growth = now;
                let msg = SourceMsg::Moved {
                    id: w.id,
                    path: path.to_path_buf(),
                };
                self.tx.send(msg).map_err(|_| ScanError::Gone)?;
            }
            // Otherwise a second path with the content of a followed file (a copy, or a hard
            // link): the followed handle is authoritative.
            return Ok(());
        }
        let (identity, head_len, mut resume) =
            identify_in(&self.progress, path).map_err(|e| match e {
                LakeError::Io { source, .. } => ScanError::from(source),
                other => ScanError::Io(std::io::Error::other(other.to_string())),
            })?;
        if let Some(d) = self.done.iter().find(|d| matches(d.head_fp, d.head_len)) {
            resume = resume.max(d.offset);
        }
        let known = resume > 0 || self.progress.contains_key(&identity);
        if !known && self.first_scan && self.cfg.start_at == StartAt::End {
            resume = last_line_end(path, meta.len())?;
        }
        if resume >= meta.len() {
            self.idle
                .insert(path.to_path_buf(), (key.0, key.1, meta.len()));
            return Ok(());
        }
        self.idle.remove(path);
        self.attach(path, identity, head_len, resume, key, now)
    }

    fn attach(
        &mut self,
        path: &Path,
        identity: String,
        head_len: u64,
        resume: u64,
        key: (u64, u64),
        now: Instant,
    ) -> Result<(), ScanError> {
        let mut file = File::open(path)?;
        let key = file.metadata().map(|m| dev_ino(&m)).unwrap_or(key);
        // The prefix hash over [0, resume): the manifest's guard for the next resume.
        let mut prefix = Xxh3::new();
        let mut left = resume;
        while left > 0 {
            let want = (left as usize).min(self.buf.len());
            let n = file.read(&mut self.buf[..want])?;
            if n == 0 {
                return Err(changed(path, "shrank while its prefix was hashed"));
            }
            prefix.update(&self.buf[..n]);
            left -= n as u64;
        }
        file.seek(SeekFrom::Start(resume))?;
        let head_fp = {
            let mut head = vec![0u8; head_len as usize];
            file.read_exact_at(&mut head, 0)?;
            // An identity must cover at least one whole line: a file caught mid-rotation with a
            // few bytes would otherwise get an identity that prefixes every later file.
            if head_len < FP_BYTES && memchr::memchr(b'\n', &head).is_none() {
                return Err(changed(path, "has no complete first line yet"));
            }
            xxh3_64(&head)
        };
        // The file may have been rotated between identification and here (copy-truncate racing
        // a restart): everything must describe the same content, or we try again next scan.
        // Reading new content at an old offset would deliver the middle of a line, and a
        // checkpoint with a wrong prefix hash would make the next restart re-read the file.
        let head_hex = format!("{head_fp:016x}");
        if identity.split('-').next() != Some(head_hex.as_str()) {
            return Err(changed(
                path,
                &format!(
                    "changed while it was identified ({identity} vs head {head_hex}, {head_len} bytes)"
                ),
            ));
        }
        if let Some(p) = self.progress.get(&identity)
            && p.to == resume
            && format!("{:016x}", prefix.digest()) != p.prefix_hash
        {
            return Err(changed(path, "changed while its prefix was hashed"));
        }
        let id = next_id();
        tracing::info!(file = %path.display(), %identity, offset = resume, "following file");
        self.tx
            .send(SourceMsg::Attach {
                id,
                kind: SourceKind::File {
                    identity,
                    head_len,
                    path: path.to_path_buf(),
                },
                start: resume,
                prefix: Some(Box::new(prefix)),
            })
            .map_err(|_| ScanError::Gone)?;
        self.metrics
            .sources_attached
            .fetch_add(1, Ordering::Relaxed);
        self.watchers.push(Watcher {
            id,
            head_fp,
            head_len,
            path: path.to_path_buf(),
            file: Some(file),
            dev_ino: key,
            sent: resume,
            partial: Vec::new(),
            rotated: None,
            orphaned: None,
            last_growth: now,
        });
        Ok(())
    }

    /// Read what is available from watcher `i` (up to one turn), delivering complete lines.
    fn pump(&mut self, i: usize) -> Result<usize, Gone> {
        let limit = self.cfg.max_line_bytes.max(1 << 20);
        let mut total = 0;
        while total < TURN_BYTES {
            let w = &mut self.watchers[i];
            let Some(file) = &mut w.file else { break };
            let n = match file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(file = %w.path.display(), error = %e, "read failed; will retry");
                    self.metrics.error("file_read");
                    break;
                }
            };
            // Verify before delivering: a file truncated and rewritten between our last look
            // and this read would otherwise hand us the middle of other content.
            let still_same = w.file.as_ref().is_some_and(|f| w.head_ok(f));
            if !still_same {
                orphan(w, &self.metrics, Instant::now());
                break;
            }
            total += n;
            self.metrics
                .bytes_read
                .fetch_add(n as u64, Ordering::Relaxed);
            w.last_growth = Instant::now();
            w.partial.extend_from_slice(&self.buf[..n]);
            let cut = match memchr::memrchr(b'\n', &w.partial) {
                Some(j) => j + 1,
                None if w.partial.len() > limit => w.partial.len(),
                None => continue,
            };
            let rest = w.partial.split_off(cut);
            let bytes = std::mem::replace(&mut w.partial, rest);
            let start = w.sent;
            w.sent += bytes.len() as u64;
            let id = w.id;
            self.send(SourceMsg::Lines {
                id,
                start,
                bytes,
                stamps: Vec::new(),
                read_at: Instant::now(),
            })?;
        }
        Ok(total)
    }

    /// Let go of rotated files that have been quiet for `rotate_wait` (delivering a held partial
    /// last line), and of truncated files whose copy never appeared.
    fn retire(&mut self) -> Result<(), Gone> {
        let now = Instant::now();
        let wait = self.cfg.rotate_wait;
        let mut i = 0;
        while i < self.watchers.len() {
            let w = &mut self.watchers[i];
            if w.rotated.is_some()
                && !w.partial.is_empty()
                && w.file.as_ref().is_some_and(|f| truncated(w, f))
            {
                orphan(w, &self.metrics, now);
            }
            let w = &self.watchers[i];
            let idle_for = now.duration_since(w.last_growth);
            let quiet = w.rotated.is_some() && idle_for >= wait;
            // A file that stopped growing long ago (an old rotated file matched by the globs)
            // is closed to bound open descriptors; if it grows again the next scan reopens it.
            let dormant = w.rotated.is_none()
                && w.orphaned.is_none()
                && w.partial.is_empty()
                && idle_for >= DORMANT;
            let abandoned = w.orphaned.is_some_and(|t| now.duration_since(t) >= wait);
            if dormant {
                let w = self.watchers.swap_remove(i);
                self.send(SourceMsg::End { id: w.id })?;
                self.done.push(Done {
                    head_fp: w.head_fp,
                    head_len: w.head_len,
                    offset: w.sent,
                });
                continue;
            }
            if !(quiet || abandoned) {
                i += 1;
                continue;
            }
            let mut w = self.watchers.swap_remove(i);
            if abandoned {
                tracing::warn!(file = %w.path.display(), offset = w.sent, "file was truncated before it was read to its end, and no copy of it is followed");
                self.metrics.error("truncated_without_copy");
            }
            if quiet && !w.partial.is_empty() {
                let bytes = std::mem::take(&mut w.partial);
                let start = w.sent;
                w.sent += bytes.len() as u64;
                self.send(SourceMsg::Lines {
                    id: w.id,
                    start,
                    bytes,
                    stamps: Vec::new(),
                    read_at: now,
                })?;
            }
            self.send(SourceMsg::End { id: w.id })?;
            tracing::info!(file = %w.path.display(), offset = w.sent, "let go of rotated file");
            self.done.push(Done {
                head_fp: w.head_fp,
                head_len: w.head_len,
                offset: w.sent,
            });
            if self.done.len() > 4096 {
                self.done.remove(0);
            }
        }
        Ok(())
    }
}

/// Was the file behind the handle truncated (shorter than what was read, or a different head)?
fn truncated(w: &Watcher, file: &File) -> bool {
    file.metadata().map_or(true, |m| m.len() < w.read_pos()) || !w.head_ok(file)
}

fn orphan(w: &mut Watcher, metrics: &Metrics, now: Instant) {
    tracing::info!(file = %w.path.display(), offset = w.sent, "followed file was truncated (copy-truncate rotation); looking for its copy");
    metrics.files_rotated.fetch_add(1, Ordering::Relaxed);
    w.file = None;
    w.partial.clear();
    w.orphaned = Some(now);
}

/// Offset just past the last newline at or before `len` (where `start_at = "end"` begins).
fn last_line_end(path: &Path, len: u64) -> std::io::Result<u64> {
    let f = File::open(path)?;
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let from = end.saturating_sub(buf.len() as u64);
        let n = (end - from) as usize;
        f.read_exact_at(&mut buf[..n], from)?;
        if let Some(j) = memchr::memrchr(b'\n', &buf[..n]) {
            return Ok(from + j as u64 + 1);
        }
        end = from;
    }
    Ok(0)
}

struct Gone;

fn changed(path: &Path, what: &str) -> ScanError {
    ScanError::Retry(format!("{}: {what}; will retry", path.display()))
}

enum ScanError {
    Gone,
    Io(std::io::Error),
    /// A benign race (the file rotated under us): look again at the next scan.
    Retry(String),
}

impl From<std::io::Error> for ScanError {
    fn from(e: std::io::Error) -> Self {
        match e.kind() {
            // Renamed or removed between the glob and here: a rotation, not an error.
            std::io::ErrorKind::NotFound | std::io::ErrorKind::UnexpectedEof => {
                ScanError::Retry(e.to_string())
            }
            _ => ScanError::Io(e),
        }
    }
}
