//! Lake writes that fail for lack of space, and how the lake sink waits them out (issue 18,
//! item 3).
//!
//! A full file system (`ENOSPC`) or an exhausted quota (`EDQUOT`) is not the lake's fault and
//! usually passes (a log rotated away, a volume grown, a retention pass). The pipeline keeps
//! every batch of the commit in progress ([`super::LakeSink`]'s `retained`), throws the
//! half-written staging parts of that commit away ([`discard_staging`]), waits ([`BACKOFF`]),
//! and writes the same batches again under the same commit number. Meanwhile it reads nothing
//! more (sources block on the bounded channel), `/healthz` answers 503 with the reason, and
//! `hubpulse_lake_write_retries_total` / `hubpulse_lake_write_stalled` say so on `/metrics`.
//!
//! The sink's side of it (keeping the batches, abandoning a failed commit's parts, the retry
//! loop around a flush) is the `impl LakeSink` block here.
//!
//! # Guarantees
//! - A failure is retried only while its commit is not durable (`Manifest::commit_written` is
//!   false):
//!   a commit file that made it to disk is never written twice, so nothing is duplicated; an
//!   error after that point stays fatal and the next start rolls the commit forward.
//! - Nothing is lost: the retained batches and the sources' checkpoints are the ones the
//!   commit would have had; they are committed together or not at all.
//! - A shutdown during the wait ends it within one wait step (50 ms).

use std::collections::HashSet;
use std::io;
use std::sync::atomic::Ordering;

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::backoff::{Backoff, Jitter, Policy};
use crate::lake::manifest::{LakeError, Manifest};
use crate::lake::writer::PartSet;
use crate::stream::SourceId;

/// The first wait after a failure; each further failure doubles it, up to [`MAX_DELAY`].
pub const FIRST_DELAY: Duration = Duration::from_millis(250);
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// The waits between attempts: doubling from [`FIRST_DELAY`] up to [`MAX_DELAY`], no jitter
/// (one writer per lake: nothing to spread).
pub const BACKOFF: Policy = Policy::doubling(FIRST_DELAY, MAX_DELAY, Jitter::None);

/// `ENOSPC` (28) and `EDQUOT` (122) on Linux.
fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122)) || e.kind() == io::ErrorKind::StorageFull
}

/// True when `e` (or an error it wraps) is a lack of space: worth waiting for.
pub fn no_space(e: &LakeError) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && is_no_space(io)
        {
            return true;
        }
        if let Some(arrow::error::ArrowError::IoError(_, io)) =
            err.downcast_ref::<arrow::error::ArrowError>()
            && is_no_space(io)
        {
            return true;
        }
        cur = err.source();
    }
    // Some writers keep only the message of an I/O error.
    let text = e.to_string();
    text.contains("(os error 28)") || text.contains("(os error 122)")
}

/// Sleeps `d` in 50 ms steps; `false` as soon as `shutdown` is cancelled.
pub fn wait(d: Duration, shutdown: &CancellationToken) -> bool {
    let step = Duration::from_millis(50);
    let mut left = d;
    while !left.is_zero() {
        if shutdown.is_cancelled() {
            return false;
        }
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
    !shutdown.is_cancelled()
}

/// Deletes the staging files of commit `seq` (`<seq:020>-<n><nonce>.parquet`): parts of a
/// write that failed, never named by any commit. Returns how many were removed.
pub fn discard_staging(manifest: &Manifest, seq: u64) -> usize {
    let prefix = format!("{seq:020}-");
    let Ok(dir) = std::fs::read_dir(manifest.staging_dir()) else {
        return 0;
    };
    let mut n = 0;
    for e in dir.flatten() {
        if e.file_name().to_string_lossy().starts_with(&prefix)
            && std::fs::remove_file(e.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// The sink's side: keeping the batches, abandoning a failed commit's parts, the retry loop.
impl super::LakeSink {
    /// [`Self::spill`]; a lack of space throws the commit's staging parts away and leaves the
    /// batches to be written again at the next flush.
    pub fn spill_or_defer(&mut self, key: (i64, SourceId)) -> Result<(), LakeError> {
        let seq = self.manifest.next_seq();
        match self.spill(key) {
            Err(e) if no_space(&e) => {
                self.abandon_parts(seq, &e);
                Ok(())
            }
            r => r,
        }
    }

    /// Drop the open parts of commit `seq` and their staging files; `retained` will be
    /// written again.
    fn abandon_parts(&mut self, seq: u64, e: &LakeError) {
        self.parts = None;
        let n = discard_staging(&self.manifest, seq);
        self.replay = true;
        self.metrics.error("lake_no_space");
        self.metrics.set_lake_stall(Some(format!(
            "lake writes failing, retrying with the same rows: {}",
            e.to_string().lines().next().unwrap_or("")
        )));
        tracing::debug!(
            seq,
            discarded = n,
            "staging parts of a failed write removed"
        );
    }

    /// Write `retained` into fresh parts for the next commit (after [`Self::abandon_parts`]).
    pub(super) fn rewrite_retained(&mut self) -> Result<(), LakeError> {
        let mut parts = PartSet::new(
            self.manifest.root().to_path_buf(),
            self.manifest.names(),
            self.manifest.next_seq(),
            &self.cfg.writer,
        );
        for (dt, b) in &self.retained {
            parts.write_rows(dt, b.clone())?;
        }
        self.parts = Some(parts);
        self.replay = false;
        Ok(())
    }

    /// Write buffered rows and commit them with the checkpoints `cp` (`live`: the sources still
    /// attached). A lack of space is waited out (see [`self`]) until `shutdown`; any other error
    /// is returned. True when a commit was written.
    pub fn flush(
        &mut self,
        cp: &super::Checkpoints,
        live: &HashSet<SourceId>,
        shutdown: &CancellationToken,
    ) -> Result<bool, LakeError> {
        let mut backoff = Backoff::new(BACKOFF);
        let committed = loop {
            let seq = self.manifest.next_seq();
            let e = match self.try_flush(cp, live) {
                Ok(c) => break c,
                Err(e) => e,
            };
            if !no_space(&e) || self.manifest.next_seq() != seq || self.manifest.commit_written(seq)
            {
                return Err(e);
            }
            self.abandon_parts(seq, &e);
            let delay = backoff.next_delay();
            tracing::warn!(error = %e, failures = backoff.failures(), retry_in_ms = delay.as_millis() as u64, "lake write failed for lack of space; keeping the rows and trying again");
            if !wait(delay, shutdown) {
                tracing::error!(error = %e, rows = self.buffered_records, "shut down while lake writes fail for lack of space: the uncommitted rows are not in the lake (files and pod logs are read again from the last commit)");
                return Err(e);
            }
            self.metrics
                .lake_write_retries
                .fetch_add(1, Ordering::Relaxed);
        };
        if self.metrics.lake_stall().is_some() && !self.replay {
            self.metrics.set_lake_stall(None);
            tracing::info!(retries = backoff.failures(), "lake writes go through again");
        }
        Ok(committed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lack_of_space_is_worth_waiting_for() {
        let full = LakeError::Io {
            path: "x".into(),
            source: io::Error::from_raw_os_error(28),
        };
        assert!(no_space(&full));
        let quota = LakeError::Parquet(parquet::errors::ParquetError::External(Box::new(
            io::Error::from_raw_os_error(122),
        )));
        assert!(no_space(&quota));
        let denied = LakeError::Io {
            path: "x".into(),
            source: io::Error::from_raw_os_error(13),
        };
        assert!(!no_space(&denied));
        assert!(!no_space(&LakeError::WriterGone));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(BACKOFF);
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(d[0], FIRST_DELAY);
        assert_eq!(d[1], FIRST_DELAY * 2);
        assert_eq!(d[7], MAX_DELAY);
        assert!(d.windows(2).all(|w| w[0] <= w[1]));
    }
}
