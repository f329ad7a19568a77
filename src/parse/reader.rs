//! Bytes → records: splits a stream into lines and groups lines into records.
//!
//! A record is one prefixed line plus its continuation lines:
//! * lines indented by whitespace, and blank lines (tornado indents every continuation line of a
//!   multi-line message or traceback by 4 spaces; Python `warnings` by 2);
//! * an unindented `}` closing a configurable-http-proxy error object;
//! * after an un-prefixed block opener (`Task exception was never retrieved`,
//!   `Traceback (most recent call last):`), every un-prefixed line up to the next prefixed one.
//!
//! Any other un-prefixed line is a record of its own (it will be classified `unparsed` if nothing
//! recognises it). Nothing is dropped: a line longer than `max_line_bytes` becomes a record of its
//! own holding its first `max_line_bytes` bytes, flagged truncated; a record that grows beyond
//! `max_record_bytes` is cut and the rest starts a new record flagged split.
//!
//! Invariants: records are emitted in file order; `offset`/`end` are byte positions in the
//! stream (`end` is just past the record's last newline); records tile the stream with no gap
//! and no overlap, so `end` of the last emitted record is a safe resume point. A partial last
//! line (no newline yet) is held back unless the caller says the input is finished.

use std::io::{self, Read};

use super::prefix::starts_record;

#[derive(Debug, Clone, Copy)]
pub struct ReaderConfig {
    pub max_line_bytes: usize,
    pub max_record_bytes: usize,
    pub chunk_bytes: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            max_line_bytes: 64 * 1024,
            max_record_bytes: 1024 * 1024,
            chunk_bytes: 1024 * 1024,
        }
    }
}

/// What to do with a record still open (and a partial last line) at end of input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtEof {
    /// The input is complete: close the open record, and treat a partial last line as a line.
    Finish,
    /// The input may grow: close the open record but hold back a partial last line.
    HoldPartialLine,
}

#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    pub offset: u64,
    pub end: u64,
    pub bytes: &'a [u8],
    pub lines: u32,
    pub truncated: bool,
    pub split: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Prefixed { chp: bool },
    Python,
    Plain,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    start: usize,
    end: usize,
    lines: u32,
    block: Block,
    split: bool,
}

pub struct RecordReader<R> {
    inner: R,
    cfg: ReaderConfig,
    /// Bytes read but not yet dropped are `buf[..filled]`; the rest of `buf` is room for the next
    /// read, zeroed once when it was first grown and not again (a refill reads over stale bytes).
    buf: Vec<u8>,
    filled: usize,
    /// Stream offset of `buf[0]`.
    base: u64,
    /// Next byte of `buf` not yet split into lines.
    scan: usize,
    open: Option<Open>,
    /// Stream offset just past the last emitted record.
    committed: u64,
    eof: bool,
}

const PYTHON_OPENERS: &[&[u8]] = &[
    b"Task exception was never retrieved",
    b"Future exception was never retrieved",
    b"Traceback (most recent call last):",
    b"Exception ignored in",
];

fn classify_line(line: &[u8]) -> Block {
    if starts_record(line) {
        let chp = line.first().is_some_and(u8::is_ascii_digit);
        Block::Prefixed { chp }
    } else if PYTHON_OPENERS.iter().any(|p| line.starts_with(p)) {
        Block::Python
    } else {
        Block::Plain
    }
}

fn is_continuation(line: &[u8], open: &Open) -> bool {
    match line.first() {
        None | Some(b' ' | b'\t' | b'\r') => true,
        Some(b'}') if open.block == (Block::Prefixed { chp: true }) => true,
        _ => open.block == Block::Python && !starts_record(line),
    }
}

impl<R: Read> RecordReader<R> {
    /// `offset` is the stream position the reader starts at (for offsets in records).
    pub fn new(inner: R, offset: u64, cfg: ReaderConfig) -> Self {
        RecordReader {
            inner,
            cfg,
            buf: Vec::with_capacity(cfg.chunk_bytes * 2),
            filled: 0,
            base: offset,
            scan: 0,
            open: None,
            committed: offset,
            eof: false,
        }
    }

    /// Stream offset just past the last record handed to the callback.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// Read one chunk and emit every record it completes. Returns `Ok(false)` once the input is
    /// exhausted and everything emittable under `at_eof` has been emitted.
    pub fn next_chunk(
        &mut self,
        at_eof: AtEof,
        f: &mut impl FnMut(RawRecord<'_>),
    ) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        self.compact();
        let n = self.fill()?;
        if n == 0 {
            self.eof = true;
            self.finish(at_eof, f);
            return Ok(false);
        }
        self.scan_lines(f);
        if self.filled - self.scan > self.cfg.max_line_bytes {
            self.close(f);
            self.long_line(at_eof, f)?;
        }
        Ok(true)
    }

    /// Drive the reader to the end of input.
    pub fn run(&mut self, at_eof: AtEof, mut f: impl FnMut(RawRecord<'_>)) -> io::Result<u64> {
        while self.next_chunk(at_eof, &mut f)? {}
        Ok(self.committed)
    }

    /// Make `buf` at least `len` long, zeroing only what is new.
    fn room(&mut self, len: usize) {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
    }

    fn fill(&mut self) -> io::Result<usize> {
        let len = self.filled;
        let end = len + self.cfg.chunk_bytes;
        self.room(end);
        let n = loop {
            match self.inner.read(&mut self.buf[len..end]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        self.filled = len + n;
        Ok(n)
    }

    /// Append `bytes` to what was read.
    fn append(&mut self, bytes: &[u8]) {
        let end = self.filled + bytes.len();
        self.room(end);
        self.buf[self.filled..end].copy_from_slice(bytes);
        self.filled = end;
    }

    /// Drop bytes that belong to emitted records.
    fn compact(&mut self) {
        let keep_from = self.open.map_or(self.scan, |o| o.start);
        if keep_from == 0 {
            return;
        }
        self.buf.copy_within(keep_from..self.filled, 0);
        self.filled -= keep_from;
        self.base += keep_from as u64;
        self.scan -= keep_from;
        if let Some(o) = self.open.as_mut() {
            o.start -= keep_from;
            o.end -= keep_from;
        }
    }

    fn scan_lines(&mut self, f: &mut impl FnMut(RawRecord<'_>)) {
        while let Some(nl) = memchr::memchr(b'\n', &self.buf[self.scan..self.filled]) {
            let (ls, le) = (self.scan, self.scan + nl + 1);
            if le - ls > self.cfg.max_line_bytes + 1 {
                // Complete but too long: close what is open, emit the line truncated.
                self.close(f);
                self.emit_truncated(ls, le, f);
                self.scan = le;
                continue;
            }
            self.push_line(ls, le, f);
            self.scan = le;
        }
        // An open record with nothing after it may still receive continuation lines; but it
        // must not grow the buffer forever.
        if let Some(o) = self.open
            && o.end - o.start > self.cfg.max_record_bytes
        {
            self.close(f);
        }
    }

    fn push_line(&mut self, ls: usize, le: usize, f: &mut impl FnMut(RawRecord<'_>)) {
        let line = &self.buf[ls..le - 1];
        if let Some(o) = self.open.as_mut()
            && is_continuation(line, o)
        {
            if le - o.start <= self.cfg.max_record_bytes {
                o.end = le;
                o.lines += 1;
                return;
            }
            let block = o.block;
            self.close(f);
            self.open = Some(Open {
                start: ls,
                end: le,
                lines: 1,
                block,
                split: true,
            });
            return;
        }
        let block = classify_line(line);
        self.close(f);
        self.open = Some(Open {
            start: ls,
            end: le,
            lines: 1,
            block,
            split: false,
        });
    }

    fn close(&mut self, f: &mut impl FnMut(RawRecord<'_>)) {
        if let Some(o) = self.open.take() {
            let rec = RawRecord {
                offset: self.base + o.start as u64,
                end: self.base + o.end as u64,
                bytes: &self.buf[o.start..o.end],
                lines: o.lines,
                truncated: false,
                split: o.split,
            };
            self.committed = rec.end;
            f(rec);
        }
    }

    fn emit_truncated(&mut self, ls: usize, le: usize, f: &mut impl FnMut(RawRecord<'_>)) {
        let rec = RawRecord {
            offset: self.base + ls as u64,
            end: self.base + le as u64,
            bytes: &self.buf[ls..ls + self.cfg.max_line_bytes],
            lines: 1,
            truncated: true,
            split: false,
        };
        self.committed = rec.end;
        f(rec);
    }

    /// The unscanned tail has no newline and is longer than the limit: keep its head, skip the
    /// rest of the line as it streams in, and emit it once its newline (or the end) arrives.
    fn long_line(&mut self, at_eof: AtEof, f: &mut impl FnMut(RawRecord<'_>)) -> io::Result<()> {
        let ls = self.scan;
        let offset = self.base + ls as u64;
        let head: Vec<u8> = self.buf[ls..ls + self.cfg.max_line_bytes].to_vec();
        let mut pos = offset + (self.filled - ls) as u64;
        self.filled = ls;
        let mut chunk = vec![0u8; self.cfg.chunk_bytes];
        loop {
            let n = match self.inner.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                self.eof = true;
                if at_eof == AtEof::Finish {
                    let rec = RawRecord {
                        offset,
                        end: pos,
                        bytes: &head,
                        lines: 1,
                        truncated: true,
                        split: false,
                    };
                    self.committed = pos;
                    f(rec);
                }
                return Ok(());
            }
            if let Some(nl) = memchr::memchr(b'\n', &chunk[..n]) {
                let end = pos + nl as u64 + 1;
                let rec = RawRecord {
                    offset,
                    end,
                    bytes: &head,
                    lines: 1,
                    truncated: true,
                    split: false,
                };
                self.committed = end;
                f(rec);
                // Resume normal scanning right after the newline.
                self.base = end - self.filled as u64;
                self.append(&chunk[nl + 1..n]);
                return Ok(());
            }
            pos += n as u64;
        }
    }

    fn finish(&mut self, at_eof: AtEof, f: &mut impl FnMut(RawRecord<'_>)) {
        let partial = self.filled > self.scan;
        if partial && at_eof == AtEof::Finish {
            let (ls, le) = (self.scan, self.filled);
            self.append(b"\n"); // a virtual newline; `end` below stays at the real length
            self.push_line(ls, le + 1, f);
            self.scan = self.filled;
            // The record's bytes and `end` must not include the virtual newline.
            if let Some(o) = self.open.as_mut() {
                o.end -= 1;
            }
        }
        self.close(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (offset, end, text, lines, truncated)
    type Rec = (u64, u64, String, u32, bool);

    fn records(input: &[u8], cfg: ReaderConfig, at_eof: AtEof) -> (Vec<Rec>, u64) {
        let mut out = Vec::new();
        let mut r = RecordReader::new(input, 0, cfg);
        let end = r
            .run(at_eof, |rec| {
                out.push((
                    rec.offset,
                    rec.end,
                    String::from_utf8_lossy(rec.bytes).into_owned(),
                    rec.lines,
                    rec.truncated,
                ))
            })
            .unwrap();
        (out, end)
    }

    const HUB: &str = "[I 2026-11-28 15:30:10.250 JupyterHub log:192] a\n";

    #[test]
    fn groups_tracebacks_and_blank_continuations() {
        let input = format!(
            "{HUB}[E 2026-11-28 15:30:11.000 JupyterHub user:1] boom\n    Traceback:\n      File x\n    \n{HUB}"
        );
        let (recs, end) = records(input.as_bytes(), ReaderConfig::default(), AtEof::Finish);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].3, 4);
        assert_eq!(end, input.len() as u64);
        assert_eq!(recs[1].0, recs[0].1);
    }

    #[test]
    fn python_block_and_chp_brace() {
        let input = "Task exception was never retrieved\nfuture: <Task>\nTraceback (most recent call last):\n  File \"x\"\nValueError: x\n\
                     2026-11-28T15:30:10.250Z [ConfigProxy] error: 503 GET /x {\n  code: 'E'\n}\nstray print\n";
        let (recs, _) = records(input.as_bytes(), ReaderConfig::default(), AtEof::Finish);
        let lines: Vec<u32> = recs.iter().map(|r| r.3).collect();
        assert_eq!(lines, vec![5, 3, 1]);
    }

    #[test]
    fn partial_last_line_is_held_back_or_finished() {
        let input = format!("{HUB}[I 2026-11-28 15:30:10.250 JupyterHub log:192] part");
        let (recs, end) = records(
            input.as_bytes(),
            ReaderConfig::default(),
            AtEof::HoldPartialLine,
        );
        assert_eq!((recs.len(), end), (1, HUB.len() as u64));
        let (recs, end) = records(input.as_bytes(), ReaderConfig::default(), AtEof::Finish);
        assert_eq!((recs.len(), end), (2, input.len() as u64));
        assert!(recs[1].2.ends_with("part"));
    }

    #[test]
    fn long_lines_are_kept_truncated_in_small_chunks() {
        let cfg = ReaderConfig {
            max_line_bytes: 16,
            max_record_bytes: 64,
            chunk_bytes: 8,
        };
        let long = format!("{}\n", "x".repeat(100));
        let input = format!("short\n{long}after\n");
        let (recs, end) = records(input.as_bytes(), cfg, AtEof::Finish);
        assert_eq!(recs.len(), 3, "{recs:?}");
        assert_eq!(recs[1].2.len(), 16);
        assert!(recs[1].4);
        assert_eq!((recs[1].0, recs[1].1), (6, 6 + long.len() as u64));
        assert_eq!(recs[2].2, "after\n");
        assert_eq!(end, input.len() as u64);
    }

    #[test]
    fn records_tile_the_stream_for_any_chunk_size() {
        let input = format!("{HUB}    cont\n{HUB}plain\n\n{HUB}");
        for chunk in 1..20 {
            let cfg = ReaderConfig {
                max_line_bytes: 1000,
                max_record_bytes: 10_000,
                chunk_bytes: chunk,
            };
            let (recs, end) = records(input.as_bytes(), cfg, AtEof::Finish);
            let mut pos = 0;
            let mut joined = String::new();
            for r in &recs {
                assert_eq!(r.0, pos);
                pos = r.1;
                joined.push_str(&r.2);
            }
            assert_eq!(joined, input);
            assert_eq!(end, input.len() as u64);
        }
    }
}
