//! File sources: follow glob patterns through rotation, delivering complete lines.
//!
//! # Identity
//! A file is identified by content ([`crate::lake::manifest::lineage`]), not by path: it
//! continues a known source (committed in the lake, or read in this run) only if it holds
//! exactly the bytes read of that source (xxh3 of everything before the resume offset), so files
//! that start with identical banners are told apart, and a new file never resumes at another
//! file's offset by its head alone. A file that is the beginning of a known source (a
//! copy-truncate copy still being written, a copy of a followed file) is a copy: nothing new is
//! read from it until it grows past what was read of the source, and then it continues there,
//! never from 0. The device and inode tell a followed file from its copies (a path with a
//! followed inode is that file, renamed). A file is not identified until it holds one complete
//! line (or 4 KiB). Whenever a resume offset is taken from another file (a copy, or a path other
//! than the one the source was read through last), a warning is logged and
//! `hubpulse_resumed_from_other_file_total` counts it.
//!
//! # Rotation
//! * **rename-and-create** (`hub.log` → `hub.log.1`, new `hub.log`): the open handle keeps
//!   reading the old file to its end; the new file is found by the next glob scan.
//! * **copy-truncate**: truncation is noticed (size below the read position, or a different head
//!   behind the same inode, checked before every delivery); the source then continues at the same
//!   offset in the copy (once the copy holds every byte delivered) if the globs include it.
//!   Bytes the file was seen to hold that were neither read before the truncation nor found in
//!   a copy are counted (`hubpulse_rotation_lost_bytes_total`) and logged, never silent.
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
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::lake::manifest::lineage::{
    Known, Lineage, compare_with, digests_at, push_mark, reference_by_path, resolve,
};
use crate::lake::manifest::{FP_BYTES, SourceProgress};
use crate::stream::metrics::Metrics;
use crate::stream::{SourceId, SourceMsg};
use config::{FileSourceConfig, StartAt};

/// Bytes read from one file per turn before the next file gets its turn.
const TURN_BYTES: usize = 4 << 20;
const READ_CHUNK: usize = 1 << 20;
/// A non-rotated file idle this long with no partial line is closed (reopened when it grows).
const DORMANT: std::time::Duration = std::time::Duration::from_secs(300);
/// Last delivered bytes re-read in place before each delivery (see [`Watcher::head_ok`]).
const TAIL_BYTES: usize = 64;

pub mod config;
mod discover;

/// A file as last seen: (device, inode, size).
type Stamp = (u64, u64, u64);

struct Watcher {
    id: SourceId,
    identity: String,
    head_fp: u64,
    head_len: u64,
    /// xxh3 of bytes `[0, sent)`, and earlier such hashes (by delivery): how a copy is known.
    hasher: Xxh3,
    marks: Vec<(u64, u64)>,
    /// The largest length the file was seen to have (for the bytes a truncation lost).
    seen_len: u64,
    /// Set when the file was truncated under us: its length then (as far as we saw it).
    truncated_at: Option<u64>,
    /// The last bytes delivered (up to [`TAIL_BYTES`]), checked in place before each delivery.
    tail: Vec<u8>,
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

    /// Record bytes delivered from `sent` on.
    fn delivered(&mut self, bytes: &[u8]) {
        let keep = TAIL_BYTES.min(bytes.len());
        if keep == TAIL_BYTES {
            self.tail.clear();
        } else {
            let drop = (self.tail.len() + keep).saturating_sub(TAIL_BYTES);
            self.tail.drain(..drop);
        }
        self.tail.extend_from_slice(&bytes[bytes.len() - keep..]);
        self.sent += bytes.len() as u64;
        self.hasher.update(bytes);
        push_mark(&mut self.marks, self.sent, self.hasher.digest());
    }

    /// What this run knows of the source once the watcher lets go.
    fn known(&self) -> Known {
        Known {
            identity: self.identity.clone(),
            head_fp: self.head_fp,
            head_len: self.head_len,
            offset: self.sent,
            hash: self.hasher.digest(),
            marks: self.marks.clone(),
            path: self.path.clone(),
            file_id: Some(self.dev_ino),
        }
    }

    /// Does the file behind the handle still start with the bytes it was identified by, and
    /// still hold the last bytes delivered where they were? (A file truncated and rewritten
    /// with the same banners past our position fails the second test.)
    fn head_ok(&self, file: &File) -> bool {
        let mut head = vec![0u8; self.head_len as usize];
        if file.read_exact_at(&mut head, 0).is_err() || xxh3_64(&head) != self.head_fp {
            return false;
        }
        let mut tail = vec![0u8; self.tail.len()];
        let at = self.sent - self.tail.len() as u64;
        file.read_exact_at(&mut tail, at).is_ok() && tail == self.tail
    }
}

pub struct Tailer {
    cfg: FileSourceConfig,
    tx: SyncSender<SourceMsg>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    /// What is known of every source not followed now: the lake's committed progress at
    /// startup, updated with what this run read of the files it let go (identity → source).
    known: HashMap<String, Known>,
    watchers: Vec<Watcher>,
    /// Paths last found with nothing to read, by (dev, ino, size): not re-hashed until they
    /// change, or (copies, whose verdict depends on other files) until the instant given.
    idle: HashMap<PathBuf, (Stamp, Option<Instant>)>,
    first_scan: bool,
    /// (device, inode) → path of every file the last glob scan found.
    scan_ids: HashMap<(u64, u64), PathBuf>,
    buf: Vec<u8>,
}

fn dev_ino(m: &Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

impl Tailer {
    pub fn new(
        cfg: FileSourceConfig,
        progress: HashMap<String, SourceProgress>,
        tx: SyncSender<SourceMsg>,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> Tailer {
        Tailer {
            cfg,
            tx,
            shutdown,
            metrics,
            known: progress
                .values()
                .filter_map(Known::from_progress)
                .map(|k| (k.identity.clone(), k))
                .collect(),
            watchers: Vec::new(),
            idle: HashMap::new(),
            first_scan: true,
            scan_ids: HashMap::new(),
            buf: vec![0u8; READ_CHUNK],
        }
    }

    /// Run until shutdown (or until the pipeline is gone).
    pub fn run(mut self) {
        let mut next_scan = Instant::now();
        while !self.shutdown.is_cancelled() {
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
        // While a truncated file waits for its copy, copies set aside earlier are looked at
        // again at once (one of them may be that copy).
        if self.watchers.iter().any(|w| w.file.is_none()) {
            self.idle.retain(|_, (_, until)| until.is_none());
        }
        let paths = self.matching_paths();
        self.scan_ids = paths
            .iter()
            .filter_map(|p| Some((dev_ino(&std::fs::metadata(p).ok()?), p.clone())))
            .collect();
        for path in paths {
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
        if let Ok(m) = file.metadata() {
            w.seen_len = w.seen_len.max(m.len());
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
            w.delivered(&bytes);
            w.seen_len = w.seen_len.max(w.read_pos());
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
                self.known.insert(w.identity.clone(), w.known());
                continue;
            }
            if !(quiet || abandoned) {
                i += 1;
                continue;
            }
            let mut w = self.watchers.swap_remove(i);
            if quiet && !w.partial.is_empty() {
                let bytes = std::mem::take(&mut w.partial);
                let start = w.sent;
                w.delivered(&bytes);
                self.send(SourceMsg::Lines {
                    id: w.id,
                    start,
                    bytes,
                    stamps: Vec::new(),
                    read_at: now,
                })?;
            }
            self.send(SourceMsg::End { id: w.id })?;
            // Bytes the file was seen to hold before it was truncated, read neither from it nor
            // from a copy: lost, and counted.
            let lost = w.truncated_at.map_or(0, |t| t.saturating_sub(w.sent));
            if lost > 0 {
                tracing::warn!(file = %w.path.display(), offset = w.sent, lost_bytes = lost, "file was truncated before it was read to its end, and no copy of it holds the rest");
                self.metrics.error("truncated_without_copy");
                self.metrics
                    .bytes_lost_rotation
                    .fetch_add(lost, Ordering::Relaxed);
            } else if abandoned {
                tracing::info!(file = %w.path.display(), offset = w.sent, "truncated file was read to its end before the truncation; letting it go");
            }
            tracing::info!(file = %w.path.display(), offset = w.sent, "let go of rotated file");
            self.known.insert(w.identity.clone(), w.known());
            if self.known.len() > 4096 {
                self.forget_oldest();
            }
        }
        Ok(())
    }

    /// Bound what is kept of sources let go: drop the one read least far.
    fn forget_oldest(&mut self) {
        let followed: std::collections::HashSet<&str> =
            self.watchers.iter().map(|w| w.identity.as_str()).collect();
        if let Some(k) = self
            .known
            .values()
            .filter(|k| !followed.contains(k.identity.as_str()))
            .min_by_key(|k| k.offset)
            .map(|k| k.identity.clone())
        {
            self.known.remove(&k);
        }
    }
}

/// Was the file behind the handle truncated (shorter than what was read, or a different head)?
fn truncated(w: &Watcher, file: &File) -> bool {
    file.metadata().map_or(true, |m| m.len() < w.read_pos()) || !w.head_ok(file)
}

fn orphan(w: &mut Watcher, metrics: &Metrics, now: Instant) {
    tracing::info!(file = %w.path.display(), offset = w.sent, "followed file was truncated (copy-truncate rotation); looking for its copy");
    metrics.files_rotated.fetch_add(1, Ordering::Relaxed);
    let seen = w.seen_len.max(w.read_pos());
    w.truncated_at = Some(w.truncated_at.map_or(seen, |t| t.max(seen)));
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
