//! Which file is this, and how much of it is in the lake: resolved by content against the
//! committed progress ([`super::lineage`]), not by path, so a renamed, rotated or copied file
//! resumes where it stopped and a file that merely starts like another one is a source of its own.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::lineage::{Known, Lineage, reference_by_path, resolve};
use super::{LakeError, SourceProgress, io_err};

/// [`super::Manifest::identify`] over a snapshot of the committed progress: (identity, head
/// length, offset to resume from). A file that is a copy of the beginning of a committed source
/// resumes at its own length (nothing in it is new).
pub fn identify_in(
    progress: &HashMap<String, SourceProgress>,
    path: &Path,
) -> Result<(String, u64, u64), LakeError> {
    let known: Vec<Known> = progress.values().filter_map(Known::from_progress).collect();
    let file = File::open(path).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    let (len, id) = (meta.len(), (meta.dev(), meta.ino()));
    let mut by_path = |k: &Known, n: u64, d: u64| reference_by_path(k, path, id, n, d);
    Ok(
        match resolve(&file, len, &known, id, &mut by_path).map_err(io_err(path))? {
            Lineage::Continues(i) => {
                let k = &known[i];
                (k.identity.clone(), k.head_len, k.offset)
            }
            Lineage::CopyOf(i) => (known[i].identity.clone(), known[i].head_len, len),
            Lineage::New { identity, head_len } => (identity, head_len, 0),
        },
    )
}
