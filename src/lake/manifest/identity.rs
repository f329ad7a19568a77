//! Which file is this, and how much of it is in the lake: a content fingerprint of its head,
//! not its path, so a renamed or rotated file resumes where it stopped.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::{FP_BYTES, LakeError, SourceProgress, hash_prefix, hex, io_err};

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
