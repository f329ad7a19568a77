//! What a path found by the glob scan is, and attaching it: a followed file under a new name,
//! a copy of a followed file, the copy of a file truncated under us, a known source (continued
//! where it was read to), a copy of a known source (nothing new yet) or a new source.
//!
//! Every verdict rests on content ([`crate::lake::manifest::lineage`]): a resume offset is
//! only ever taken from a source whose bytes before it the file holds exactly.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::sources::files::{
    FP_BYTES, Known, Lineage, ScanError, StartAt, Tailer, Watcher, changed, compare_with, dev_ino,
    digests_at, last_line_end, push_mark, reference_by_path, resolve,
};
use crate::stream::{SourceKind, SourceMsg, next_id};

fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(FP_BYTES as usize);
    File::open(path)?.take(FP_BYTES).read_to_end(&mut head)?;
    Ok(head)
}

/// Do two files begin with the same `len` bytes? (Heads compared first: cheap.)
fn same_prefix(a: &File, b: &File, len: u64) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let n = len.min(FP_BYTES) as usize;
    let (mut ha, mut hb) = (vec![0u8; n], vec![0u8; n]);
    if a.read_exact_at(&mut ha, 0).is_err() || b.read_exact_at(&mut hb, 0).is_err() || ha != hb {
        return Ok(false);
    }
    if len <= FP_BYTES {
        return Ok(true);
    }
    let (da, db) = (digests_at(a, &[len])?, digests_at(b, &[len])?);
    Ok(da.len() == 1 && da == db)
}

impl Tailer {
    pub(super) fn consider(&mut self, path: &Path, now: Instant) -> Result<(), ScanError> {
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
                    file_id: key,
                };
                self.tx.send(msg).map_err(|_| ScanError::Gone)?;
            }
            return Ok(());
        }
        let stamp = (key.0, key.1, meta.len());
        if let Some((s, until)) = self.idle.get(path)
            && *s == stamp
            && until.is_none_or(|t| now < t)
        {
            return Ok(());
        }
        let head = read_head(path)?;
        if memchr::memchr(b'\n', &head).is_none() && (head.len() as u64) < FP_BYTES {
            return Ok(()); // not identifiable yet
        }
        let file = File::open(path)?;
        let fmeta = file.metadata()?;
        let (len, fkey) = (fmeta.len(), dev_ino(&fmeta));
        if let Some(i) = self.copy_of_followed(&file, len, fkey)? {
            let w = &self.watchers[i];
            tracing::debug!(file = %path.display(), of = %w.path.display(), "a copy of a followed file");
            self.defer(path, stamp, now);
            return Ok(());
        }
        if self.continue_truncated(&file, path, len, fkey, now)? {
            return Ok(());
        }
        let followed: std::collections::HashSet<&str> =
            self.watchers.iter().map(|w| w.identity.as_str()).collect();
        let known: Vec<Known> = self
            .known
            .values()
            .filter(|k| !followed.contains(k.identity.as_str()))
            .cloned()
            .collect();
        let mut by_path = |k: &Known, n: u64, d: u64| reference_by_path(k, path, fkey, n, d);
        let lineage = resolve(&file, len, &known, fkey, &mut by_path)?;
        let lineage = match lineage {
            Lineage::Continues(i) if known[i].file_id != Some(fkey) => {
                match self.continues_elsewhere(&file, path, len, fkey, &known, i)? {
                    Some(l) => l,
                    None => {
                        self.defer(path, stamp, now);
                        return Ok(());
                    }
                }
            }
            other => other,
        };
        let (identity, head_len, resume, from) = match lineage {
            Lineage::Continues(i) => {
                let k = &known[i];
                let from = (k.path != path).then(|| k.path.clone());
                (k.identity.clone(), k.head_len, k.offset, from)
            }
            Lineage::CopyOf(i) => {
                tracing::debug!(file = %path.display(), of = %known[i].path.display(), "the beginning of a known source; nothing new in it yet");
                self.defer(path, stamp, now);
                return Ok(());
            }
            Lineage::New { identity, head_len } => {
                let resume = if self.first_scan && self.cfg.start_at == StartAt::End {
                    last_line_end(path, len)?
                } else {
                    0
                };
                (identity, head_len, resume, None)
            }
        };
        if resume >= len {
            self.idle.insert(path.to_path_buf(), (stamp, None));
            return Ok(());
        }
        self.idle.remove(path);
        if let Some(other) = from
            && resume > 0
        {
            tracing::warn!(file = %path.display(), last_read_as = %other.display(), offset = resume, "resuming a source at an offset read from another file (its bytes before it match)");
            self.metrics
                .resumed_other_file
                .fetch_add(1, Ordering::Relaxed);
        }
        self.attach(path, identity, head_len, resume, fkey, now)
    }

    /// `file` continues `known[i]` by content but is not the file it was read from: is it?
    /// `None`: a copy of that file, still there (look again later); else what it is.
    fn continues_elsewhere(
        &self,
        file: &File,
        path: &Path,
        len: u64,
        fkey: (u64, u64),
        known: &[Known],
        i: usize,
    ) -> Result<Option<Lineage>, ScanError> {
        Ok(Some(match self.holder(&known[i], fkey) {
            // The file the source was read from is still there and holds it: this is
            // a copy of it (the original is followed: it may hold lines the copy will
            // never get), or another file that only shares the bytes read (a banner).
            Some(h) if same_prefix(file, &h, len)? => {
                tracing::debug!(file = %path.display(), of = %known[i].path.display(), "a copy of a known file that is still there");
                return Ok(None);
            }
            // Read elsewhere, and that file is still there: another source.
            Some(_) if known[i].file_id.is_some() => {
                let others: Vec<Known> = known
                    .iter()
                    .filter(|k| k.identity != known[i].identity)
                    .cloned()
                    .collect();
                let mut by_path =
                    |k: &Known, n: u64, d: u64| reference_by_path(k, path, fkey, n, d);
                match resolve(file, len, &others, fkey, &mut by_path)? {
                    Lineage::New { identity, head_len } => {
                        let identity = if identity == known[i].identity {
                            format!("{identity}-{:016x}", fkey.0 ^ fkey.1.rotate_left(32))
                        } else {
                            identity
                        };
                        Lineage::New { identity, head_len }
                    }
                    Lineage::Continues(j) => {
                        let id = &others[j].identity;
                        let at = known.iter().position(|k| &k.identity == id);
                        Lineage::Continues(at.unwrap_or(i))
                    }
                    Lineage::CopyOf(_) => return Ok(None),
                }
            }
            _ => Lineage::Continues(i),
        }))
    }

    /// Look at `path` again once it changes, or after `rotate_wait` (its verdict depends on
    /// other files).
    fn defer(&mut self, path: &Path, stamp: crate::sources::files::Stamp, now: Instant) {
        let until = now + self.cfg.rotate_wait.max(self.cfg.glob_interval);
        self.idle.insert(path.to_path_buf(), (stamp, Some(until)));
    }

    /// A followed file (another inode) whose first `len` bytes are this file's whole content.
    fn copy_of_followed(
        &self,
        file: &File,
        len: u64,
        fkey: (u64, u64),
    ) -> std::io::Result<Option<usize>> {
        for (i, w) in self.watchers.iter().enumerate() {
            let Some(wf) = &w.file else { continue };
            if w.dev_ino == fkey || wf.metadata().map_or(true, |m| m.len() < len) {
                continue;
            }
            if same_prefix(file, wf, len)? {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Is this the copy of a file truncated under us? It continues that file where it was
    /// read to once it holds every byte delivered; a copy that holds less (the original was
    /// read past what the copy got) is a copy with nothing new. Returns whether it was one.
    fn continue_truncated(
        &mut self,
        file: &File,
        path: &Path,
        len: u64,
        fkey: (u64, u64),
        now: Instant,
    ) -> Result<bool, ScanError> {
        use std::os::unix::fs::FileExt;
        let mut head = vec![0u8; len.min(FP_BYTES) as usize];
        file.read_exact_at(&mut head, 0)?;
        for i in 0..self.watchers.len() {
            let w = &self.watchers[i];
            if w.file.is_some()
                || w.head_len > head.len() as u64
                || xxh3_64(&head[..w.head_len as usize]) != w.head_fp
            {
                continue;
            }
            let known = w.known();
            let Some((at, want)) = (if len >= w.sent {
                Some((w.sent, known.hash))
            } else {
                known
                    .marks
                    .iter()
                    .rev()
                    .find(|(at, _)| *at <= len && *at > w.head_len)
                    .copied()
            }) else {
                // Nothing to compare beyond the head: wait for it to grow.
                self.defer(path, (fkey.0, fkey.1, len), now);
                return Ok(true);
            };
            if digests_at(file, &[at])?.first().map(|d| d.1) != Some(want) {
                continue;
            }
            if at < w.sent {
                tracing::debug!(file = %path.display(), "the copy of a truncated file, without its last lines (they were read from the original)");
                self.defer(path, (fkey.0, fkey.1, len), now);
                return Ok(true);
            }
            let mut f = File::open(path)?;
            f.seek(SeekFrom::Start(w.sent))?;
            let w = &mut self.watchers[i];
            tracing::warn!(file = %path.display(), last_read_as = %w.path.display(), offset = w.sent, "continuing a truncated file in its copy (its bytes before the offset match)");
            self.metrics
                .resumed_other_file
                .fetch_add(1, Ordering::Relaxed);
            w.file = Some(f);
            w.dev_ino = fkey;
            w.path = path.to_path_buf();
            w.partial.clear();
            w.orphaned = None;
            w.rotated = Some(now);
            w.last_growth = now;
            w.seen_len = w.seen_len.max(len);
            let msg = SourceMsg::Moved {
                id: w.id,
                path: path.to_path_buf(),
                file_id: fkey,
            };
            self.tx.send(msg).map_err(|_| ScanError::Gone)?;
            return Ok(true);
        }
        Ok(false)
    }

    pub(super) fn attach(
        &mut self,
        path: &Path,
        identity: String,
        head_len: u64,
        resume: u64,
        key: (u64, u64),
        now: Instant,
    ) -> Result<(), ScanError> {
        use std::os::unix::fs::FileExt;
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
        let mut marks = Vec::new();
        if let Some(k) = self.known.get(&identity) {
            if k.offset == resume && prefix.digest() != k.hash {
                return Err(changed(path, "changed while its prefix was hashed"));
            }
            marks = k.marks.clone();
        }
        marks.retain(|(at, _)| *at < resume);
        push_mark(&mut marks, resume, prefix.digest());
        let mut tail = vec![0u8; (resume as usize).min(crate::sources::files::TAIL_BYTES)];
        let tail_at = resume - tail.len() as u64;
        file.read_exact_at(&mut tail, tail_at)?;
        let id = next_id();
        tracing::info!(file = %path.display(), %identity, offset = resume, "following file");
        self.tx
            .send(SourceMsg::Attach {
                id,
                kind: SourceKind::File {
                    identity: identity.clone(),
                    head_len,
                    path: path.to_path_buf(),
                    file_id: key,
                },
                start: resume,
                prefix: Some(Box::new(prefix.clone())),
            })
            .map_err(|_| ScanError::Gone)?;
        self.metrics
            .sources_attached
            .fetch_add(1, Ordering::Relaxed);
        let seen_len = file.metadata().map_or(resume, |m| m.len());
        self.watchers.push(Watcher {
            id,
            identity,
            head_fp,
            head_len,
            hasher: prefix,
            marks,
            seen_len,
            truncated_at: None,
            tail,
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
}

impl Tailer {
    /// The file `k` was read from, if it is still there (by its inode among the scanned paths,
    /// else at its last path) with another inode than `fkey`, and still holds `k`'s bytes.
    fn holder(&self, k: &Known, fkey: (u64, u64)) -> Option<File> {
        let by_id = k.file_id.and_then(|id| self.scan_ids.get(&id));
        for p in by_id.into_iter().chain(std::iter::once(&k.path)) {
            let Ok(f) = File::open(p) else { continue };
            let Ok(m) = f.metadata() else { continue };
            if dev_ino(&m) != fkey && compare_with(&f, k, k.offset, k.hash).is_some() {
                return Some(f);
            }
        }
        None
    }
}
