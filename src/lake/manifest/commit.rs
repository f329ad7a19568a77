//! Making a commit durable and publishing its parts; reading a hub's commits back.

use super::*;

impl Manifest {
    /// Whether commit `seq`'s file is on disk (the commit is then durable, whatever failed
    /// after). In an object store the commit is a conditional create there; a lack of space can
    /// only come from the local scratch directory before it, so it is never written.
    pub fn commit_written(&self, seq: u64) -> bool {
        !self.is_remote()
            && self
                .root()
                .join(&self.meta)
                .join("manifest")
                .join(commit_name(seq))
                .exists()
    }

    /// Make a commit durable, then publish its parts. Parts must already be in staging, synced.
    pub fn commit(&mut self, c: &Commit) -> Result<(), LakeError> {
        if let Backend::Remote(r) = &self.backend {
            // Durable in the store before the commit names them.
            for p in &c.parts {
                r.upload(&p.staging, &self.root.join(&p.staging))
                    .map_err(self.store_err())?;
            }
        }
        if let Err(e) = self.write_commit(c) {
            if let (LakeError::Conflict { .. }, Backend::Remote(r)) = (&e, &self.backend) {
                for p in &c.parts {
                    let _ = r.delete(&p.staging);
                }
            }
            return Err(e);
        }
        for p in &c.parts {
            self.publish_part(p)?;
        }
        self.note(c);
        self.unfolded += 1;
        self.maybe_fold()
    }

    pub(super) fn write_commit(&self, c: &Commit) -> Result<(), LakeError> {
        let rel = format!("{}/manifest/{}", self.meta, commit_name(c.seq));
        let body = serde_json::to_vec_pretty(c).map_err(|e| LakeError::Corrupt {
            path: PathBuf::from(&rel),
            source: e,
        })?;
        match &self.backend {
            Backend::Local { .. } => write_durable(
                &self.root.join(&self.meta).join("manifest"),
                &commit_name(c.seq),
                &body,
            ),
            Backend::Remote(r) => {
                if r.create(&rel, body).map_err(self.store_err())? {
                    Ok(())
                } else {
                    Err(LakeError::Conflict {
                        url: r.url.clone(),
                        hub: self.hub.clone(),
                        seq: c.seq,
                    })
                }
            }
        }
    }
}

/// All of a hub's commits in a local lake, in sequence order. Leftover `*.tmp` files are
/// ignored (never committed).
pub fn read_commits(root: &Path, hub: &str) -> Result<Vec<Commit>, LakeError> {
    let dir = root.join(meta_rel(hub)).join("manifest");
    let mut out = Vec::new();
    let Some(rd) = read_dir_opt(&dir)? else {
        return Ok(out);
    };
    for e in rd {
        let p = e.map_err(io_err(&dir))?.path();
        if p.extension().is_none_or(|x| x != "json")
            || p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let text = fs::read(&p).map_err(io_err(&p))?;
        let c: Commit = serde_json::from_slice(&text).map_err(|e| LakeError::Corrupt {
            path: p.clone(),
            source: e,
        })?;
        out.push(c);
    }
    out.sort_by_key(|c| c.seq);
    Ok(out)
}
