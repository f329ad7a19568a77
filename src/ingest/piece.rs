//! Parsing a file on several threads: pieces of whole records, parsed apart, merged in order.
//!
//! The reader frames records on one thread, exactly as it does for a sequential parse, and cuts
//! the stream into [`Piece`]s between records. Each piece is parsed into Arrow batches on a
//! worker thread. The merge, in stream order, then makes the result equal to a sequential parse:
//!
//! * **Time.** A parser carries the last date (for time-only CHP 3.x/4.x stamps) and the last
//!   time (for records without one) from record to record. Pieces are cut, where possible, just
//!   before a record with a full hub stamp, so that the first record of a piece sets both and
//!   nothing in the piece depends on the records before it. A piece parsed without that state
//!   reports whether any record needed it ([`Parser::needed_state`]); such a piece, and a piece
//!   that could not be cut before a dated record, is parsed again during the merge, with the
//!   state the pieces before it left.
//! * **Enrichment** (server names that some lifecycle messages leave out, recovered from records
//!   seen earlier, possibly many pieces earlier) is deferred: workers note what each such record
//!   needs, and the merge applies the rules in stream order and patches `server_name`.
//!
//! Invariant: the rows a file gives are the same, value for value, whatever the number of
//! workers and wherever the pieces are cut (`tests/it/lake.rs` checks this against a sequential
//! ingest on fixtures built to hit every case above).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use arrow::error::ArrowError;
use chrono::NaiveDate;

use crate::lake::batch::{EventsBuilder, Rows, SourceInfo};
use crate::parse::catalogue::Catalogue;
use crate::parse::reader::RawRecord;
use crate::parse::time::Zone;
use crate::parse::{EnrichOp, Enrichment, KIND_UNPARSED, Parser, StreamState};

/// One record of a piece: where its bytes are in the piece's buffer, and its stream position.
struct Meta {
    at: usize,
    len: usize,
    offset: u64,
    end: u64,
    lines: u32,
    truncated: bool,
    split: bool,
}

/// Consecutive whole records of one file, with their bytes.
pub(super) struct Piece {
    pub seq: u64,
    buf: Vec<u8>,
    recs: Vec<Meta>,
    /// The first record carries a full hub stamp: parsing can start here without the state
    /// of the records before.
    pub anchored: bool,
    /// Stream offset just past the last record.
    pub end: u64,
}

impl Piece {
    /// An empty piece sized like `like`, with an eighth more room (pieces are alike but not
    /// equal: growing one past its capacity copies its bytes again, which sizing each exactly
    /// like the one before did for about every other piece).
    fn new(seq: u64, like: Option<&Piece>) -> Self {
        let room = |n: usize| n + n / 8;
        Piece {
            seq,
            buf: Vec::with_capacity(like.map_or(0, |p| room(p.buf.len()))),
            recs: Vec::with_capacity(like.map_or(0, |p| room(p.recs.len()))),
            anchored: false,
            end: 0,
        }
    }

    fn push(&mut self, raw: &RawRecord<'_>) {
        if self.recs.is_empty() {
            self.anchored = is_anchor(raw.bytes);
        }
        self.recs.push(Meta {
            at: self.buf.len(),
            len: raw.bytes.len(),
            offset: raw.offset,
            end: raw.end,
            lines: raw.lines,
            truncated: raw.truncated,
            split: raw.split,
        });
        self.buf.extend_from_slice(raw.bytes);
        self.end = raw.end;
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// Drop the records' bytes once parsed for good (the piece then parses as empty).
    pub fn release(&mut self) {
        self.buf = Vec::new();
        self.recs = Vec::new();
    }
}

/// A record that starts with a dated hub, single-user or culler stamp (`[I 2026-…`,
/// `[I 241111 …`): parsing it sets the date and time a parser carries.
fn is_anchor(bytes: &[u8]) -> bool {
    bytes.len() > 4
        && bytes[0] == b'['
        && matches!(bytes[1], b'D' | b'I' | b'W' | b'E' | b'C')
        && bytes[2] == b' '
        && bytes[3].is_ascii_digit()
}

/// Cuts the records the reader emits into pieces.
pub(super) struct Splitter {
    cur: Piece,
    /// Records a piece aims at; it is cut before the next anchored record after that.
    records: usize,
    /// Bytes at which a piece is cut even without an anchor (huge records, or a stream with
    /// no dated hub line at all, such as a CHP 4.x log on its own).
    bytes: usize,
}

impl Splitter {
    pub fn new(records: usize, bytes: usize) -> Self {
        Splitter {
            cur: Piece::new(0, None),
            records: records.max(1),
            bytes: bytes.max(1),
        }
    }

    /// Add a record; returns the piece it completed, if any.
    pub fn push(&mut self, raw: &RawRecord<'_>) -> Option<Piece> {
        let n = self.cur.recs.len();
        let cut = n > 0
            && ((n >= self.records && is_anchor(raw.bytes))
                || n >= self.records * 2
                || self.cur.buf.len() >= self.bytes);
        let done = cut.then(|| {
            let next = Piece::new(self.cur.seq + 1, Some(&self.cur));
            std::mem::replace(&mut self.cur, next)
        });
        self.cur.push(raw);
        done
    }

    /// The records pushed since the last piece, as a piece (possibly empty).
    pub fn finish(&mut self) -> Piece {
        let next = Piece::new(self.cur.seq + 1, None);
        std::mem::replace(&mut self.cur, next)
    }
}

/// What a piece and its file have in common.
pub(super) struct Ctx {
    pub catalogue: Arc<Catalogue>,
    pub zone: Zone,
    pub default_date: Option<NaiveDate>,
    pub default_ts: i64,
    pub src: Arc<SourceInfo>,
    pub batch_rows: usize,
    pub batch_bytes: usize,
}

/// A piece parsed into batches (one or more per UTC day it covers).
pub(super) struct Parsed {
    pub batches: Vec<(i64, Rows)>,
    /// Deferred enrichment: batch index, row, what the record needs.
    ops: Vec<(usize, usize, EnrichOp)>,
    /// Parsed without the state before it, and a record needed it.
    pub needed_state: bool,
    /// The state the piece leaves (its own: see [`StreamState::then`]).
    pub state: StreamState,
    pub records: u64,
    pub unparsed: u64,
}

/// Empty builders a worker keeps between pieces (one per day a piece covers, rarely two).
const SPARE: usize = 2;

struct DayBuilder {
    day: i64,
    rows: EventsBuilder,
    /// Deferred enrichment of rows of the batch in progress: row, what it needs.
    ops: Vec<(usize, EnrichOp)>,
}

/// Parse `piece`, from `start` when the state before it is known. `spare` holds empty
/// builders of earlier pieces, already sized for a batch, and gets this piece's back.
pub(super) fn parse(
    piece: &Piece,
    ctx: &Ctx,
    start: Option<StreamState>,
    spare: &mut Vec<EventsBuilder>,
) -> Result<Parsed, ArrowError> {
    let mut parser = Parser::for_piece(
        ctx.catalogue.clone(),
        ctx.zone.clone(),
        ctx.default_date,
        start,
    );
    let mut days: Vec<DayBuilder> = Vec::new();
    let mut out = Parsed {
        batches: Vec::new(),
        ops: Vec::new(),
        needed_state: false,
        state: StreamState::default(),
        records: 0,
        unparsed: 0,
    };
    for m in &piece.recs {
        let raw = RawRecord {
            offset: m.offset,
            end: m.end,
            bytes: &piece.buf[m.at..m.at + m.len],
            lines: m.lines,
            truncated: m.truncated,
            split: m.split,
        };
        let (i, row) = parser.parse(&raw, |rec| {
            let ts = rec.ts.or(rec.ts_hint).unwrap_or(ctx.default_ts);
            let day = ts.div_euclid(86_400_000_000);
            // A handful of days at most: a scan from the newest beats hashing the day.
            let i = match days.iter().rposition(|d| d.day == day) {
                Some(i) => i,
                None => {
                    let rows = spare
                        .pop()
                        .unwrap_or_else(|| EventsBuilder::new(ctx.src.clone()));
                    days.push(DayBuilder {
                        day,
                        rows,
                        ops: Vec::new(),
                    });
                    days.len() - 1
                }
            };
            let row = days[i].rows.len();
            days[i].rows.append(rec);
            out.unparsed += (rec.kind == KIND_UNPARSED) as u64;
            (i, row)
        });
        out.records += 1;
        let d = &mut days[i];
        if let Some(op) = parser.take_deferred() {
            d.ops.push((row, op));
        }
        if d.rows.full(ctx.batch_rows, ctx.batch_bytes) {
            close(d, &mut out)?;
        }
    }
    for d in &mut days {
        if !d.rows.is_empty() {
            close(d, &mut out)?;
        }
    }
    spare.extend(days.into_iter().map(|d| d.rows).take(SPARE));
    out.needed_state = parser.needed_state();
    out.state = parser.state();
    Ok(out)
}

fn close(d: &mut DayBuilder, out: &mut Parsed) -> Result<(), ArrowError> {
    let batch = d.rows.finish()?;
    let at = out.batches.len();
    out.ops
        .extend(d.ops.drain(..).map(|(row, op)| (at, row, op)));
    out.batches.push((d.day, batch));
    Ok(())
}

impl Parsed {
    /// Apply the deferred enrichment in stream order, and return the batches with the server
    /// names it recovered.
    pub fn enrich(self, enrichment: &mut Enrichment) -> Result<Vec<(i64, Rows)>, ArrowError> {
        let mut batches = self.batches;
        let mut patches: Vec<(usize, usize, String)> = self
            .ops
            .iter()
            .filter_map(|(b, row, op)| enrichment.apply(op).map(|s| (*b, *row, s)))
            .collect();
        if patches.is_empty() {
            return Ok(batches);
        }
        patches.sort_by_key(|(b, row, _)| (*b, *row));
        for (b, (_, rows)) in batches.iter_mut().enumerate() {
            let mine: Vec<(usize, &str)> = patches
                .iter()
                .filter(|(pb, _, _)| *pb == b)
                .map(|(_, row, s)| (*row, s.as_str()))
                .collect();
            if !mine.is_empty() {
                rows.stored = set_server_names(&rows.stored, &mine)?;
            }
        }
        Ok(batches)
    }
}

/// `batch` with `server_name` set at the given rows (sorted by row).
fn set_server_names(
    batch: &RecordBatch,
    rows: &[(usize, &str)],
) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    let i = schema.index_of("server_name")?;
    let old = batch
        .column(i)
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("events.server_name: not Utf8".into()))?;
    let mut b = StringBuilder::with_capacity(old.len(), old.value_data().len());
    let mut next = rows.iter().peekable();
    for r in 0..old.len() {
        match next.peek() {
            Some((row, s)) if *row == r => {
                b.append_value(s);
                next.next();
            }
            _ if old.is_null(r) => b.append_null(),
            _ => b.append_value(old.value(r)),
        }
    }
    let mut cols: Vec<ArrayRef> = batch.columns().to_vec();
    cols[i] = Arc::new(b.finish());
    RecordBatch::try_new(schema, cols)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::reader::{AtEof, RecordReader};
    use arrow::datatypes::TimestampMicrosecondType;

    fn pieces(text: &str, records: usize) -> Vec<Piece> {
        let mut s = Splitter::new(records, 1 << 20);
        let mut out = Vec::new();
        RecordReader::new(text.as_bytes(), 0, Default::default())
            .run(AtEof::Finish, |raw| out.extend(s.push(&raw)))
            .unwrap();
        out.push(s.finish());
        out
    }

    fn ctx() -> Ctx {
        Ctx {
            catalogue: Arc::new(Catalogue::embedded().unwrap()),
            zone: Zone::parse("UTC").unwrap(),
            default_date: None,
            default_ts: 0,
            src: Arc::new(SourceInfo {
                hub: "h".into(),
                file: "f".into(),
                fp: "0".into(),
            }),
            batch_rows: 100,
            batch_bytes: 1 << 20,
        }
    }

    const HUB: &str = "[I 2026-11-28 23:59:59.000 JupyterHub app:1] hello\n";
    const CHP4: &str =
        "00:00:01.000 - info: [ConfigProxy] Proxying http://*:8000 to http://hub:8081\n";

    #[test]
    fn pieces_are_cut_before_a_dated_record_once_full() {
        let text = format!("{HUB}{CHP4}{CHP4}{HUB}{CHP4}{HUB}");
        let p = pieces(&text, 2);
        let sizes: Vec<usize> = p.iter().map(|p| p.recs.len()).collect();
        // Cut before the first dated record once a piece holds two: [hub chp chp] [hub chp] [hub].
        assert_eq!(sizes, [3, 2, 1]);
        assert!(p.iter().all(|p| p.anchored));
        let p = pieces(&format!("{CHP4}{CHP4}{CHP4}{CHP4}{CHP4}"), 2);
        assert_eq!(p.iter().map(|p| p.recs.len()).collect::<Vec<_>>(), [4, 1]);
        assert!(!p[1].anchored);
    }

    #[test]
    fn a_piece_that_needs_the_state_before_it_says_so_and_parses_with_it() {
        let ctx = ctx();
        let mut spare = Vec::new();
        // [hub chp] [chp]: the second piece starts with a time-only stamp.
        let p = pieces(&format!("{HUB}{CHP4}{CHP4}"), 1);
        assert_eq!(p[1].recs.len(), 1);
        assert!(!p[1].anchored);
        assert!(parse(&p[1], &ctx, None, &mut spare).unwrap().needed_state);
        // The state the first piece leaves dates it: the next day, after midnight.
        let first = parse(&p[0], &ctx, Some(StreamState::default()), &mut spare).unwrap();
        let known = parse(&p[1], &ctx, Some(first.state.clone()), &mut spare).unwrap();
        assert!(!known.needed_state);
        let ts = known.batches[0]
            .1
            .stored
            .column(0)
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(
            crate::parse::time::rfc3339(ts.value(0)),
            "2026-11-29T00:00:01.000000Z"
        );
        // A piece that starts dated needs nothing from before.
        assert!(!parse(&p[0], &ctx, None, &mut spare).unwrap().needed_state);
    }
}
