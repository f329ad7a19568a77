//! Where a hub's files live (the layout in the module doc above), and the durable file
//! operations the protocol is built of.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use super::{LakeError, io_err};

/// How one hub's writer names files (see the layout above).
#[derive(Debug, Clone)]
pub struct Names {
    pub(super) meta: String,
    pub(super) hub: String,
    pub(super) nonce: String,
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
            crate::lake::tables::events::PARTITION_COL
        )
    }
}

/// The commit number in a staging name (`…/staging/<seq>-<n>[.<nonce>].parquet`).
pub(super) fn staged_seq(rel: &str) -> Option<u64> {
    let name = rel.rsplit('/').next()?;
    name.split('-').next()?.parse().ok()
}

pub(super) fn commit_name(seq: u64) -> String {
    format!("{seq:020}.json")
}

/// `_hubpulse/hubs/<hub>`: a hub's manifest, snapshot, staging and lock.
pub fn meta_rel(hub: &str) -> String {
    format!("_hubpulse/hubs/{hub}")
}

pub(super) fn hex(h: u64) -> String {
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

/// Write `dir/name` atomically and durably: a hidden tmp file, fsync, rename, fsync the directory.
pub(crate) fn write_durable(dir: &Path, name: &str, body: &[u8]) -> Result<(), LakeError> {
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

pub(super) fn dt_of(rel: &str) -> Option<&str> {
    rel.split('/').find_map(|seg| seg.strip_prefix("dt="))
}

/// A part's partition in [`Manifest::live_parts`]: `<table>/<dt>` (`events/2026-11-02`).
pub(super) fn live_key(rel: &str) -> Option<String> {
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
pub(super) fn read_dir_opt(dir: &Path) -> Result<Option<fs::ReadDir>, LakeError> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(Some(rd)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LakeError::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}
