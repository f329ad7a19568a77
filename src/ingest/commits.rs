//! The commits of `hubpulse ingest`: one commit covers every file read since the last one.
//!
//! The writer's part set stays open from one file to the next, so a directory of small logs
//! lands as one part per table and day rather than one per file. A commit is made when the bytes
//! read since the last one reach `commit_bytes` (in the middle of a file if need be) and when
//! every file is read; it lists the progress of each file that advanced (a file read twice, or a
//! copy that continues one, twice: in order, as two commits would).
//!
//! A file is identified against the committed progress and the progress read since the last
//! commit, so it resumes exactly where it would have, had each file been committed on its own.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::mpsc::{SyncSender, sync_channel};

use super::{FileCounts, IngestOptions, IngestSummary, ToWriter};
use crate::lake::manifest::{
    Commit, LakeError, Manifest, SourceProgress, identify_in, io_err, lineage,
};

/// Hashes a file's bytes `[0, to)` incrementally, for the manifest's prefix guard.
/// It is fed as pieces are merged, so that a commit does not stop to read the whole stretch
/// since the last one.
struct PrefixHasher {
    file: File,
    state: xxhash_rust::xxh3::Xxh3,
    pos: u64,
    buf: Vec<u8>,
}

impl PrefixHasher {
    fn new(path: &Path) -> std::io::Result<Self> {
        Ok(PrefixHasher {
            file: File::open(path)?,
            state: xxhash_rust::xxh3::Xxh3::new(),
            pos: 0,
            buf: vec![0u8; 1 << 20],
        })
    }

    /// Hash up to `to`; returns the hash of `[0, to)`.
    fn advance(&mut self, to: u64) -> std::io::Result<String> {
        let buf = &mut self.buf;
        self.file.seek(SeekFrom::Start(self.pos))?;
        while self.pos < to {
            let want = ((to - self.pos) as usize).min(buf.len());
            let n = self.file.read(&mut buf[..want])?;
            if n == 0 {
                break;
            }
            self.state.update(&buf[..n]);
            self.pos += n as u64;
        }
        Ok(format!("{:016x}", self.state.digest()))
    }
}

/// The file being read: where its uncommitted records start, and what it added.
pub(super) struct Reading<'p> {
    /// Opened when the first piece is merged.
    hasher: Option<PrefixHasher>,
    pub path: &'p Path,
    fp: String,
    head_len: u64,
    /// Start of this file's records not committed yet.
    pub from: u64,
    /// Records and unparsed records read from this file in this run.
    pub records: u64,
    pub unparsed: u64,
}

impl<'p> Reading<'p> {
    pub fn new(path: &'p Path, fp: String, head_len: u64, from: u64) -> Self {
        Reading {
            hasher: None,
            path,
            fp,
            head_len,
            from,
            records: 0,
            unparsed: 0,
        }
    }

    pub fn fp(&self) -> &str {
        &self.fp
    }

    /// What this file added.
    pub fn counts(&self) -> FileCounts {
        FileCounts {
            path: self.path.to_path_buf(),
            records: self.records,
            unparsed: self.unparsed,
        }
    }

    /// The hash of bytes `[0, to)` (fed as pieces are merged).
    pub fn hash_to(&mut self, to: u64) -> Result<String, LakeError> {
        let path = self.path;
        let hasher = match &mut self.hasher {
            Some(h) => h,
            none => none.insert(PrefixHasher::new(path).map_err(io_err(path))?),
        };
        hasher.advance(to).map_err(io_err(path))
    }

    /// This file's progress from `from` to `to`.
    fn progress(&mut self, to: u64) -> Result<SourceProgress, LakeError> {
        let prefix_hash = self.hash_to(to)?;
        Ok(SourceProgress {
            fp: self.fp.clone(),
            head_len: self.head_len,
            path: self.path.display().to_string(),
            from: self.from,
            to,
            prefix_hash,
            marks: Vec::new(),
            file_id: None,
        })
    }
}

/// What was read since the last commit, across files, on the merging thread.
pub(super) struct Commits<'a> {
    pub opts: &'a IngestOptions,
    manifest: &'a mut Manifest,
    pub tx: &'a SyncSender<ToWriter>,
    /// The manifest's progress with `done` noted as a commit would note it.
    known: HashMap<String, SourceProgress>,
    /// Progress of the files read since the last commit, up to where they were read.
    done: Vec<SourceProgress>,
    /// Bytes of `done`.
    done_bytes: u64,
    /// Records and unparsed records since the last commit.
    pub records: u64,
    pub unparsed: u64,
    /// The writer's part set holds rows whose progress is not known (a commit failed, or a
    /// file's progress could not be taken): it must never be committed.
    broken: bool,
    /// Committed by this run.
    pub out: IngestSummary,
}

impl<'a> Commits<'a> {
    pub fn new(
        opts: &'a IngestOptions,
        manifest: &'a mut Manifest,
        tx: &'a SyncSender<ToWriter>,
    ) -> Self {
        Commits {
            opts,
            known: manifest.progress().clone(),
            manifest,
            tx,
            done: Vec::new(),
            done_bytes: 0,
            records: 0,
            unparsed: 0,
            broken: false,
            out: IngestSummary::default(),
        }
    }

    /// (identity, head length, offset to resume from) of `path`, as if every file read since
    /// the last commit had been committed ([`Manifest::identify`]): a file read again, or a copy
    /// of one read before it, resumes where that one stopped.
    pub fn identify(&self, path: &Path) -> Result<(String, u64, u64), LakeError> {
        identify_in(&self.known, path)
    }

    /// Whether the bytes read since the last commit, with `reading` read up to `to`, call for
    /// a commit.
    pub fn due(&self, reading: &Reading<'_>, to: u64) -> bool {
        self.done_bytes + (to - reading.from) >= self.opts.commit_bytes
    }

    /// `reading` was read up to `to` (its rows are all with the writer): its progress goes
    /// with the next commit. When it cannot be taken, nothing more is committed.
    pub fn file_read(&mut self, reading: &mut Reading<'_>, to: u64) -> Result<(), LakeError> {
        if to <= reading.from {
            return Ok(());
        }
        match reading.progress(to) {
            Ok(p) => {
                self.done_bytes += to - reading.from;
                let mut noted = p.clone();
                lineage::carry_marks(self.known.get(&p.fp), &mut noted);
                self.known.insert(p.fp.clone(), noted);
                self.done.push(p);
                reading.from = to;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Whether a commit can be made of what was read (after an error too): something was
    /// read since the last commit and all of its rows are accounted for.
    pub fn can_commit(&self) -> bool {
        !self.done.is_empty() && !self.broken
    }

    /// Commit the files read since the last commit, and `reading` up to `to` (the end of the
    /// last piece merged): the writer closes the parts holding their rows, then the manifest
    /// records the parts and every file's new offset. `more`: a new part set follows.
    pub fn commit(
        &mut self,
        mut reading: Option<(&mut Reading<'_>, u64)>,
        more: bool,
    ) -> Result<(), LakeError> {
        // Until it is done: the part set is gone with the writer's reply.
        self.broken = true;
        let (rtx, rrx) = sync_channel(1);
        let _ = self.tx.send(ToWriter::Finish(rtx));
        // A writer that died must fail the commit: committing progress without its parts would
        // skip those records forever.
        let parts = rrx.recv().unwrap_or_else(|_| Err(LakeError::WriterGone))?;
        let mut sources = std::mem::take(&mut self.done);
        if let Some((r, to)) = &mut reading
            && *to > r.from
        {
            sources.push(r.progress(*to)?);
        }
        let bytes: u64 = sources.iter().map(|s| s.to - s.from).sum();
        // One file: as `hubpulse ingest` always wrote it; several: as `hubpulse run` does.
        let source = if sources.len() == 1 {
            sources.pop()
        } else {
            None
        };
        let parts_n = parts.len() as u64;
        let commit = Commit {
            version: 1,
            seq: self.manifest.next_seq(),
            created: chrono::Utc::now().to_rfc3339(),
            table: crate::lake::tables::events::EVENTS.into(),
            source,
            sources,
            streams: Vec::new(),
            replaces: Vec::new(),
            parts,
            records: self.records,
            unparsed: self.unparsed,
        };
        self.manifest.commit(&commit)?;
        self.out.parts += parts_n;
        self.out.records += self.records;
        self.out.unparsed += self.unparsed;
        self.out.bytes += bytes;
        (self.records, self.unparsed, self.done_bytes) = (0, 0, 0);
        self.known = self.manifest.progress().clone();
        if let Some((r, to)) = reading {
            r.from = to.max(r.from);
        }
        self.broken = false;
        if more {
            let _ = self.tx.send(ToWriter::Begin(self.manifest.next_seq()));
        }
        Ok(())
    }
}
