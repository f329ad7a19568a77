//! Opening a hub for writing after a crash: interrupted commits are rolled forward, staging
//! files no commit names are rolled back (directory and object store).

use super::*;

impl Manifest {
    /// Roll interrupted commits forward and uncommitted staging files back.
    pub(super) fn recover(&self, commits: &[Commit]) -> Result<(), LakeError> {
        if let Backend::Remote(r) = &self.backend {
            return self.recover_remote(r, commits);
        }
        let mut named = std::collections::HashSet::new();
        for c in commits {
            for p in &c.parts {
                named.insert(self.root.join(&p.staging));
            }
            if c.replaces.is_empty() {
                for p in &c.parts {
                    self.publish_part(p)?;
                }
            } else if c.parts.is_empty() {
                for r in &c.replaces {
                    self.delete_rel(r)?;
                }
            } else {
                self.swap(c)?;
            }
        }
        let swap = self.root.join(&self.meta).join("swap");
        if swap.exists() {
            fs::remove_dir_all(&swap).map_err(io_err(&swap))?;
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

    /// S3: finish the copies of committed parts still in staging, delete what retention commits
    /// dropped, and delete staging objects no commit names whose commit number is already
    /// taken (uploads of a commit that never happened: that number can never be committed now).
    /// Unnamed uploads for a number not yet taken are left alone: they may be a live writer's
    /// next commit (two writers of one hub is a misconfiguration, but it must end in a commit
    /// conflict, not in a commit whose parts were deleted under it).
    fn recover_remote(
        &self,
        r: &crate::lake::store::Remote,
        commits: &[Commit],
    ) -> Result<(), LakeError> {
        let staging = format!("{}/staging", self.meta);
        let mut staged: std::collections::HashSet<String> = r
            .list(&staging)
            .map_err(self.store_err())?
            .into_iter()
            .map(|(rel, _)| rel)
            .collect();
        for c in commits {
            for p in &c.parts {
                if staged.remove(&p.staging) {
                    r.copy(&p.staging, &p.path).map_err(self.store_err())?;
                    r.delete(&p.staging).map_err(self.store_err())?;
                }
            }
            for gone in &c.replaces {
                r.delete(gone).map_err(self.store_err())?;
            }
        }
        let next = commits.last().map_or(self.next_seq, |c| c.seq + 1);
        for orphan in staged {
            if staged_seq(&orphan).is_none_or(|s| s < next) {
                tracing::warn!(object = %orphan, "removing uncommitted staging object left by an interrupted writer");
                r.delete(&orphan).map_err(self.store_err())?;
            }
        }
        Ok(())
    }

    pub(super) fn publish_part(&self, p: &PartEntry) -> Result<(), LakeError> {
        if let Backend::Remote(r) = &self.backend {
            r.copy(&p.staging, &p.path).map_err(self.store_err())?;
            r.delete(&p.staging).map_err(self.store_err())?;
            let local = self.root.join(&p.staging);
            return fs::remove_file(&local).map_err(io_err(&local));
        }
        let (src, dst) = (self.root.join(&p.staging), self.root.join(&p.path));
        if dst.exists() || !src.exists() {
            return Ok(());
        }
        let dir = dst.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        fs::rename(&src, &dst).map_err(io_err(&dst))?;
        fsync_dir(&dir)
    }
}
