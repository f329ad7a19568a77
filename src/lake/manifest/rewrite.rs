//! The commits that rewrite a hub's parts without reading a source: compaction (a merged part
//! replaces its inputs, swapped in atomically), `hubpulse migrate` (a day's parts of every
//! table rewritten in one commit) and retention (old partitions dropped).

use std::collections::{BTreeMap, HashSet};
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
        self.commit_replace(replaces, vec![entry])
    }

    /// Make durable a commit whose `parts` (in staging, synced) replace the published parts
    /// `replaces`, in any partitions of any tables, then swap each partition directory it
    /// touches ([`Manifest::swap`]; in an object store: publish the parts, delete the
    /// replaced). Once the commit is written a crash is rolled forward by the next open.
    pub fn commit_replace(
        &mut self,
        replaces: Vec<String>,
        parts: Vec<PartEntry>,
    ) -> Result<u64, LakeError> {
        let c = self.rewrite_commit(replaces, parts);
        if let Backend::Remote(r) = &self.backend {
            for p in &c.parts {
                r.upload(&p.staging, &self.root.join(&p.staging))
                    .map_err(self.store_err())?;
            }
            self.write_commit(&c)?;
            for p in &c.parts {
                self.publish_part(p)?;
            }
            for gone in &c.replaces {
                self.delete_rel(gone)?;
            }
        } else {
            self.write_commit(&c)?;
            self.swap(&c)?;
        }
        self.note(&c);
        self.unfolded += 1;
        self.maybe_fold()?;
        Ok(c.seq)
    }

    /// A published part as a local file: the part itself, or (object store) a copy fetched
    /// into the scratch directory, which the caller removes when done.
    pub fn part_file(&self, rel: &str) -> Result<PathBuf, LakeError> {
        let Backend::Remote(r) = &self.backend else {
            return Ok(self.root.join(rel));
        };
        let body = r
            .read_opt(rel)
            .map_err(self.store_err())?
            .ok_or_else(|| LakeError::Io {
                path: PathBuf::from(rel),
                source: std::io::ErrorKind::NotFound.into(),
            })?;
        let dir = self.root.join(&self.meta).join("fetched");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let local = dir.join(rel.replace('/', "_"));
        fs::write(&local, body).map_err(io_err(&local))?;
        Ok(local)
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

    /// Put a rewrite commit's parts in place of those it replaces, one partition directory at
    /// a time ([`Manifest::swap_dir`]). Idempotent: recovery calls it again for a commit whose
    /// swaps may not all have happened.
    pub(super) fn swap(&self, c: &Commit) -> Result<(), LakeError> {
        type Dir<'a> = (Vec<&'a PartEntry>, HashSet<PathBuf>);
        let mut dirs: BTreeMap<PathBuf, Dir> = BTreeMap::new();
        let dir_of = |rel: &str| {
            let p = self.root.join(rel);
            p.parent().map(Path::to_path_buf).map(|d| (d, p))
        };
        for p in &c.parts {
            if let Some((d, _)) = dir_of(&p.path) {
                dirs.entry(d).or_default().0.push(p);
            }
        }
        for r in &c.replaces {
            if let Some((d, p)) = dir_of(r) {
                dirs.entry(d).or_default().1.insert(p);
            }
        }
        for (dir, (parts, replaced)) in &dirs {
            self.swap_dir(dir, parts, replaced)?;
        }
        Ok(())
    }

    /// Replace a partition's directory by one holding the new `parts` instead of the
    /// `replaced` ones (plus every other part, hard-linked), in one atomic exchange; a
    /// directory with nothing replaced has its parts published, one with nothing new its
    /// replaced parts deleted. Idempotent.
    fn swap_dir(
        &self,
        part_dir: &Path,
        parts: &[&PartEntry],
        replaced: &HashSet<PathBuf>,
    ) -> Result<(), LakeError> {
        if parts.is_empty() {
            for r in replaced {
                if let Ok(rel) = r.strip_prefix(&self.root) {
                    self.delete_rel(&rel.to_string_lossy())?;
                }
            }
            // Gone already, or holding a file some other tool put there: leave it.
            let _ = fs::remove_dir(part_dir);
            return Ok(());
        }
        let pending = replaced.iter().any(|r| r.exists());
        let staged = parts.iter().all(|p| self.root.join(&p.staging).exists());
        if pending && staged {
            let name = part_dir.file_name().unwrap_or_default();
            let swap = self.root.join(&self.meta).join("swap").join(name);
            if swap.exists() {
                fs::remove_dir_all(&swap).map_err(io_err(&swap))?;
            }
            fs::create_dir_all(&swap).map_err(io_err(&swap))?;
            let mut new_names = HashSet::new();
            for p in parts {
                let new_name = Path::new(&p.path).file_name().unwrap_or_default();
                let staging = self.root.join(&p.staging);
                fs::hard_link(&staging, swap.join(new_name)).map_err(io_err(&swap))?;
                new_names.insert(new_name.to_os_string());
            }
            for e in fs::read_dir(part_dir).map_err(io_err(part_dir))? {
                let p = e.map_err(io_err(part_dir))?.path();
                let file = p.file_name().unwrap_or_default();
                if !replaced.contains(&p) && !new_names.contains(file) {
                    let to = swap.join(file);
                    fs::hard_link(&p, &to).map_err(io_err(&to))?;
                }
            }
            fsync_dir(&swap)?;
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &swap,
                rustix::fs::CWD,
                part_dir,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .map_err(|e| LakeError::Io {
                path: part_dir.to_path_buf(),
                source: e.into(),
            })?;
            if let Some(events) = part_dir.parent() {
                fsync_dir(events)?;
            }
            fs::remove_dir_all(&swap).map_err(io_err(&swap))?;
        }
        for p in parts {
            let staging = self.root.join(&p.staging);
            if self.root.join(&p.path).exists() {
                if staging.exists() {
                    fs::remove_file(&staging).map_err(io_err(&staging))?;
                }
            } else if !pending {
                // Nothing of this directory replaced (a partition new to the table), or the
                // replaced parts gone already: the part is published like any other.
                self.publish_part(p)?;
            }
        }
        Ok(())
    }
}
