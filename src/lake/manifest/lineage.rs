//! Which known source a file continues: content lineage of file sources.
//!
//! A file source is known by what was read of it: the fingerprint of its head (xxh3 of its
//! first `head_len` bytes), the offset read to, xxh3 of every byte before that offset, and
//! *marks*: the same hash at earlier offsets (commit ends in the lake, deliveries in the agent).
//!
//! # Guarantees
//! * A file **continues** a known source only if its bytes `[0, offset)` hash to what was read
//!   of that source: it holds exactly those bytes, so resuming at `offset` neither skips nor
//!   repeats a byte. A same head is never enough (identical banners start many logs).
//! * A file shorter than a known source's offset whose content is the beginning of that source
//!   (a copy still being written, or a copy missing the last lines read from the original) is a
//!   **copy**: it holds nothing new, and it is looked at again when it grows (then it continues
//!   the source at its offset, never from 0). The evidence is a mark at or below its length, or
//!   a byte comparison with another file that holds the source; a file that only shares the
//!   head, with no mark to compare beyond it, is also taken as a copy until it grows past one.
//! * Anything else is a **new** source; its identity (the head fingerprint, suffixed when that
//!   name is taken) is fixed when it is first seen and never recomputed, so it stays the same
//!   as the file grows.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use super::{FP_BYTES, SourceProgress, hex};

/// Most recent marks kept per source (older ones are thinned to one per power of two).
const RECENT_MARKS: usize = 16;

/// What is known of one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub identity: String,
    pub head_fp: u64,
    pub head_len: u64,
    /// Read (committed, or delivered in this run) up to here.
    pub offset: u64,
    /// xxh3 of bytes `[0, offset)`.
    pub hash: u64,
    /// `(offset, xxh3 of [0, offset))` below `offset`, ascending.
    pub marks: Vec<(u64, u64)>,
    /// Where it was read last (a hint for a byte comparison, never its identity).
    pub path: PathBuf,
    /// (device, inode) of the file it was read from last, when known.
    pub file_id: Option<(u64, u64)>,
}

fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s, 16).ok()
}

impl Known {
    /// From the lake's committed progress (`None` for an entry that is not hex).
    pub fn from_progress(p: &SourceProgress) -> Option<Known> {
        let head_fp = parse_hex(p.fp.split('-').next()?)?;
        let marks = p
            .marks
            .iter()
            .filter_map(|(at, h)| Some((*at, parse_hex(h)?)))
            .collect();
        Some(Known {
            identity: p.fp.clone(),
            head_fp,
            head_len: p.head_len,
            offset: p.to,
            hash: parse_hex(&p.prefix_hash)?,
            marks,
            path: PathBuf::from(&p.path),
            file_id: p.file_id,
        })
    }

    /// The latest mark (or the offset itself) at or below `len`, above the head.
    fn mark_within(&self, len: u64) -> Option<(u64, u64)> {
        if self.offset <= len {
            return Some((self.offset, self.hash));
        }
        self.marks
            .iter()
            .rev()
            .find(|(at, _)| *at <= len && *at > self.head_len)
            .copied()
    }
}

/// Append a mark (ignored unless beyond the last) and keep the list bounded: the most recent
/// [`RECENT_MARKS`], and before them the first mark of each power-of-two range of offsets.
pub fn push_mark<T>(marks: &mut Vec<(u64, T)>, at: u64, hash: T) {
    if at == 0 || marks.last().is_some_and(|(last, _)| *last >= at) {
        return;
    }
    marks.push((at, hash));
    if marks.len() <= RECENT_MARKS * 2 {
        return;
    }
    let old = marks.len() - RECENT_MARKS;
    let mut bucket = u32::MAX;
    let mut keep = Vec::with_capacity(marks.len());
    for (i, (at, _)) in marks.iter().enumerate() {
        let b = 63 - at.leading_zeros();
        keep.push(i >= old || b != bucket);
        if i < old {
            bucket = b;
        }
    }
    let mut it = keep.into_iter();
    marks.retain(|_| it.next().unwrap_or(true));
}

/// A new commit's progress of a source inherits the marks of the last one, plus its end.
pub fn carry_marks(old: Option<&SourceProgress>, new: &mut SourceProgress) {
    let Some(old) = old else { return };
    new.marks = old.marks.clone();
    new.marks.retain(|(at, _)| *at < new.to);
    if old.to < new.to {
        push_mark(&mut new.marks, old.to, old.prefix_hash.clone());
    }
}

/// xxh3 of a file's bytes `[0, at)` for each offset (ascending, at most `len`), in one pass.
pub fn digests_at(file: &File, offsets: &[u64]) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::with_capacity(offsets.len());
    let mut h = Xxh3::new();
    let mut pos = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    for &at in offsets {
        while pos < at {
            let want = ((at - pos) as usize).min(buf.len());
            let n = file.read_at(&mut buf[..want], pos)?;
            if n == 0 {
                return Ok(out); // shorter than asked: the caller sees the missing offsets
            }
            h.update(&buf[..n]);
            pos += n as u64;
        }
        out.push((at, h.digest()));
    }
    Ok(out)
}

/// A file's content compared with another file (`reference`) that holds a known source.
/// `Some(true)`: `reference` holds that source (its bytes to `offset`) and begins with the same
/// `len` bytes as the file (`digest`: xxh3 of the file's `[0, len)`); `Some(false)`: it holds the
/// source and differs; `None`: it does not hold the source (or cannot be read).
pub fn compare_with(reference: &File, k: &Known, len: u64, digest: u64) -> Option<bool> {
    let mut at = vec![len, k.offset];
    at.sort_unstable();
    at.dedup();
    let d = digests_at(reference, &at).ok()?;
    let of = |o: u64| d.iter().find(|(a, _)| *a == o).map(|(_, h)| *h);
    (of(k.offset)? == k.hash).then(|| of(len) == Some(digest))
}

/// What a file is, given what is known.
#[derive(Debug, Clone, PartialEq)]
pub enum Lineage {
    /// It holds the bytes read of `known[i]`: continue that source at its offset.
    Continues(usize),
    /// Everything it holds is the beginning of `known[i]`: nothing new yet.
    CopyOf(usize),
    /// A new source, read from 0 under this identity and head length.
    New { identity: String, head_len: u64 },
}

/// The file at `path` (open as `file`, `len` bytes): which known source it continues or
/// copies, or a new source. `reference` compares the file with another file holding a known
/// source (see [`compare_with`]); `file_id` (device, inode) makes a new identity unique.
pub fn resolve(
    file: &File,
    len: u64,
    known: &[Known],
    file_id: (u64, u64),
    reference: &mut dyn FnMut(&Known, u64, u64) -> Option<bool>,
) -> io::Result<Lineage> {
    let mut head = vec![0u8; len.min(FP_BYTES) as usize];
    file.read_exact_at(&mut head, 0)?;
    let cands: Vec<usize> = (0..known.len())
        .filter(|&i| {
            let k = &known[i];
            k.offset > 0
                && k.head_len <= head.len() as u64
                && xxh3_64(&head[..k.head_len as usize]) == k.head_fp
        })
        .collect();
    let mut offsets: Vec<u64> = vec![len];
    offsets.extend(
        cands
            .iter()
            .filter_map(|&i| known[i].mark_within(len).map(|m| m.0)),
    );
    offsets.sort_unstable();
    offsets.dedup();
    let digests = digests_at(file, &offsets)?;
    let digest = |o: u64| digests.iter().find(|(a, _)| *a == o).map(|(_, h)| *h);
    let Some(whole) = digest(len) else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shrank while it was identified",
        ));
    };
    // Continues: the longest known read it holds exactly.
    let continues = cands
        .iter()
        .copied()
        .filter(|&i| known[i].offset <= len && digest(known[i].offset) == Some(known[i].hash))
        .max_by_key(|&i| known[i].offset);
    if let Some(i) = continues {
        return Ok(Lineage::Continues(i));
    }
    // A copy: shorter than a known read, and nothing says it differs from it.
    let mut weak = None;
    for &i in cands.iter().filter(|&&i| known[i].offset > len) {
        let k = &known[i];
        let by_mark = k.mark_within(len).map(|(at, h)| digest(at) == Some(h));
        let by_file = reference(k, len, whole);
        match (by_mark, by_file) {
            (Some(false), _) | (_, Some(false)) => {}
            (Some(true), _) | (_, Some(true)) => return Ok(Lineage::CopyOf(i)),
            (None, None) => weak = weak.or(Some(i)),
        }
    }
    // A file shorter than a known head can only be compared byte for byte.
    for (i, k) in known.iter().enumerate() {
        if k.offset > 0 && k.head_len > len && reference(k, len, whole) == Some(true) {
            return Ok(Lineage::CopyOf(i));
        }
    }
    if let Some(i) = weak {
        return Ok(Lineage::CopyOf(i));
    }
    let head_len = head.len() as u64;
    Ok(Lineage::New {
        identity: new_identity(xxh3_64(&head), known, file_id, whole),
        head_len,
    })
}

/// The head fingerprint, or when a known source has that name, the fingerprint suffixed with
/// a hash of where and what the file is now (unique, and fixed from here on).
fn new_identity(head_fp: u64, known: &[Known], file_id: (u64, u64), whole: u64) -> String {
    let base = hex(head_fp);
    let taken: HashSet<&str> = known.iter().map(|k| k.identity.as_str()).collect();
    if !taken.contains(base.as_str()) {
        return base;
    }
    let mut salt = 0u64;
    loop {
        let mut h = Xxh3::new();
        for v in [file_id.0, file_id.1, whole, salt] {
            h.update(&v.to_le_bytes());
        }
        let id = format!("{base}-{}", hex(h.digest()));
        if !taken.contains(id.as_str()) {
            return id;
        }
        salt += 1;
    }
}

/// A file that is another path's content: compared through that path (`None` when it is the
/// same file, absent, or does not hold the source).
pub fn reference_by_path(
    k: &Known,
    this: &Path,
    this_id: (u64, u64),
    len: u64,
    digest: u64,
) -> Option<bool> {
    use std::os::unix::fs::MetadataExt;
    if k.path.as_os_str().is_empty() || k.path == this {
        return None;
    }
    let f = File::open(&k.path).ok()?;
    let m = f.metadata().ok()?;
    if (m.dev(), m.ino()) == this_id {
        return None;
    }
    compare_with(&f, k, len, digest)
}

#[cfg(test)]
#[path = "lineage_tests.rs"]
mod tests;
