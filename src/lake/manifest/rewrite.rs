//! The commits that rewrite a hub's parts without reading a source: compaction (a merged part
//! replaces its inputs, swapped in atomically) and retention (old partitions dropped).

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    Backend, Commit, LakeError, Manifest, PartEntry, fsync_dir, io_err, key_dt, key_table,
    read_dir_opt,
};

impl Manifest {
    /// The next commit of a rewrite that reads no source: compaction (`parts` replace
    /// `replaces`) or retention (`replaces` go, nothing comes).
    fn rewrite_commit(&self, replaces: Vec<String>, parts: Vec<PartEntry>) -> Commit {
        Commit {
            version: 1,
            seq: self.next_seq,
            created: chrono::Utc::now().to_rfc3339(),
            table: crate::lake::tables::events::EVENTS.into(),
            source: None,
            sources: Vec::new(),
            streams: Vec::new(),
            replaces,
            parts,
            records: 0,
            unparsed: 0,
        }
    }

    /// Make a compaction durable, then swap the partition directory (see `lake::compact`).
    pub fn commit_compaction(
        &mut self,
        replaces: Vec<String>,
        entry: PartEntry,
    ) -> Result<u64, LakeError> {
        let c = self.rewrite_commit(replaces, vec![entry]);
        self.write_commit(&c)?;
        self.swap(&c)?;
        self.note(&c);
        self.unfolded += 1;
        self.maybe_fold()?;
        Ok(c.seq)
    }

    /// Retention of a side table (`decisions`, `pods`: parts without a manifest): delete this
    /// hub's partitions of `table` older than `cutoff`, in the lake the manifest was opened on.
    pub fn drop_side_before(&self, table: &str, cutoff: &str) -> Result<Vec<String>, LakeError> {
        let dir_rel = format!("{table}/hub={}", self.hub);
        let old = |name: &str| {
            name.strip_prefix("dt=")
                .filter(|dt| *dt < cutoff)
                .map(str::to_string)
        };
        let mut dropped = Vec::new();
        match &self.backend {
            Backend::Local { .. } => {
                let dir = self.root.join(&dir_rel);
                let Some(rd) = read_dir_opt(&dir)? else {
                    return Ok(dropped);
                };
                for e in rd {
                    let e = e.map_err(io_err(&dir))?;
                    if let Some(dt) = old(&e.file_name().to_string_lossy()) {
                        let p = e.path();
                        fs::remove_dir_all(&p).map_err(io_err(&p))?;
                        dropped.push(dt);
                    }
                }
            }
            Backend::Remote(r) => {
                for name in r.list_dirs(&dir_rel).map_err(self.store_err())? {
                    if let Some(dt) = old(&name) {
                        for (rel, _) in r
                            .list(&format!("{dir_rel}/{name}"))
                            .map_err(self.store_err())?
                        {
                            r.delete(&rel).map_err(self.store_err())?;
                        }
                        dropped.push(dt);
                    }
                }
            }
        }
        dropped.sort();
        Ok(dropped)
    }

    /// Retention: drop this hub's `events` partitions (and those of the tables derived from it,
    /// `lifecycle` and `activity`) older than `cutoff` (`YYYY-MM-DD`, exclusive). A commit records
    /// what goes (so a crash mid-delete is finished on the next open, and no later commit or
    /// compaction refers to a dropped part), then the parts are deleted. Returns the
    /// `(table, dt)` partitions dropped.
    pub fn drop_before(&mut self, cutoff: &str) -> Result<Vec<(String, String)>, LakeError> {
        let old: Vec<String> = self
            .live
            .keys()
            .filter(|k| key_dt(k) < cutoff)
            .cloned()
            .collect();
        if old.is_empty() {
            return Ok(Vec::new());
        }
        let replaces: Vec<String> = old
            .iter()
            .flat_map(|k| self.live[k].iter().cloned())
            .collect();
        let c = self.rewrite_commit(replaces, Vec::new());
        self.write_commit(&c)?;
        for r in &c.replaces {
            self.delete_rel(r)?;
        }
        let old: Vec<(String, String)> = old
            .iter()
            .map(|k| (key_table(k).to_string(), key_dt(k).to_string()))
            .collect();
        if let Backend::Local { .. } = self.backend {
            for (table, dt) in &old {
                let dir = self.root.join(self.part_rel(table, dt, "x"));
                if let Some(d) = dir.parent() {
                    // Gone already, or holding a file some other tool put there: leave it.
                    let _ = fs::remove_dir(d);
                }
            }
        }
        self.note(&c);
        self.unfolded += 1;
        self.maybe_fold()?;
        Ok(old)
    }

    /// Replace a partition's directory by one holding the compacted part instead of the parts
    /// it replaces (plus every other part, hard-linked), in one atomic exchange. Idempotent:
    /// recovery calls it again for a commit whose swap may not have happened.
    pub(super) fn swap(&self, c: &Commit) -> Result<(), LakeError> {
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
            let swap = self.root.join(&self.meta).join("swap").join(name);
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
