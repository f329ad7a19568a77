//! Records → what the lake stores of them ([`Rows`]), column by column, on the parser threads.
//!
//! The builder copies what it needs out of each borrowed [`Record`], so the parser's buffers can
//! be reused as soon as a record is appended. It applies the format 3 rules as it goes (the same
//! as [`super::derived::split`] applies to a whole batch): an activity heartbeat becomes a few
//! numbers in its user's group ([`super::heartbeat`]), never a row; a row keeps its message in
//! `text` only when its columns do not rebuild it ([`super::rebuild`]).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, ArrowPrimitiveType, PrimitiveArray, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow::error::ArrowError;

use super::activity::{Beat, Beats, MetaRef};
use super::heartbeat;
use super::rebuild::RequestFields;
use super::tables::events as schema;
use crate::parse::record::Record;

/// Bytes of messages at which a batch is cut whatever its rows (see [`EventsBuilder::full`]).
pub const BATCH_BYTES: usize = 64 << 20;

/// Per-source constants written on every row.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub hub: String,
    pub file: String,
    pub fp: String,
}

/// Validity of a column being built, as Arrow's bitmap (bit `i % 8` of byte `i / 8`).
#[derive(Default)]
struct Validity {
    bytes: Vec<u8>,
    len: usize,
    nulls: usize,
}

impl Validity {
    #[inline(always)]
    fn push(&mut self, valid: bool) {
        let bit = self.len % 8;
        if bit == 0 {
            self.bytes.push(0);
        }
        if let Some(last) = self.bytes.last_mut() {
            *last |= (valid as u8) << bit;
        }
        self.nulls += !valid as usize;
        self.len += 1;
    }

    /// The bitmap so far (`None` when nothing is null); restarts empty at the same capacity.
    fn take(&mut self) -> Option<NullBuffer> {
        let next = Vec::with_capacity(self.bytes.len());
        let bytes = std::mem::replace(&mut self.bytes, next);
        let (len, nulls) = (
            std::mem::take(&mut self.len),
            std::mem::take(&mut self.nulls),
        );
        (nulls > 0).then(|| {
            let bits = BooleanBuffer::new(Buffer::from_vec(bytes), 0, len);
            NullBuffer::new(bits)
        })
    }
}

/// A `Utf8` column: what Arrow's `StringBuilder` does, with the per-value work of the hot path
/// cut to two `Vec` pushes (its `append_value` was a tenth of the parsing thread's time).
/// Values are `&str`, so the bytes are UTF-8; Arrow checks them once per batch at `finish`.
struct Str {
    values: Vec<u8>,
    offsets: Vec<i32>,
    validity: Validity,
}

impl Str {
    fn new() -> Self {
        Str::with_capacity(0, 0)
    }

    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Str {
            values: Vec::with_capacity(bytes),
            offsets,
            validity: Validity::default(),
        }
    }

    #[inline]
    fn value(&mut self, v: &str) {
        self.values.extend_from_slice(v.as_bytes());
        // Batches are cut by bytes well below 2 GiB (`EventsBuilder::full`); `take` checks.
        self.offsets.push(self.values.len() as i32);
    }

    #[inline]
    fn option(&mut self, v: Option<&str>) {
        self.validity.push(v.is_some());
        if let Some(v) = v {
            self.values.extend_from_slice(v.as_bytes());
        }
        self.offsets.push(self.values.len() as i32);
    }

    /// The column so far as an array; the builder restarts at the size this one reached.
    fn take(&mut self) -> Result<ArrayRef, ArrowError> {
        let next = Str::with_capacity(self.offsets.len() - 1, self.values.len());
        let mut done = std::mem::replace(self, next);
        if i32::try_from(done.values.len()).is_err() {
            return Err(ArrowError::OffsetOverflowError(done.values.len()));
        }
        let nulls = done.validity.take();
        let offsets = OffsetBuffer::new(ScalarBuffer::from(done.offsets));
        let array = StringArray::try_new(offsets, Buffer::from_vec(done.values), nulls)?;
        Ok(Arc::new(array))
    }
}

/// A primitive column (the same idea as [`Str`]).
struct Prim<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    validity: Validity,
}

impl<T: ArrowPrimitiveType> Prim<T> {
    fn new() -> Self {
        Prim {
            values: Vec::new(),
            validity: Validity::default(),
        }
    }

    #[inline]
    fn value(&mut self, v: T::Native) {
        self.values.push(v);
    }

    #[inline]
    fn option(&mut self, v: Option<T::Native>) {
        self.validity.push(v.is_some());
        self.values.push(v.unwrap_or_default());
    }

    fn take_array(&mut self) -> PrimitiveArray<T> {
        let next = Vec::with_capacity(self.values.len());
        let values = std::mem::replace(&mut self.values, next);
        PrimitiveArray::new(ScalarBuffer::from(values), self.validity.take())
    }

    fn take(&mut self) -> ArrayRef {
        Arc::new(self.take_array())
    }
}

pub struct EventsBuilder {
    /// `hub`, `source_file`, `source_fp`: the same on every row, so built once per batch.
    src: Arc<SourceInfo>,
    ts: Prim<TimestampMicrosecondType>,
    source: Str,
    level: Str,
    logger: Str,
    module: Str,
    kind: Str,
    user: Str,
    actor: Str,
    server_name: Str,
    method: Str,
    status: Prim<Int32Type>,
    route: Str,
    path: Str,
    target: Str,
    client_ip: Str,
    service: Str,
    duration_ms: Prim<Float64Type>,
    exit_code: Prim<Int32Type>,
    count: Prim<Int64Type>,
    attrs: Str,
    text: Str,
    lines: Prim<Int32Type>,
    flags: Str,
    source_offset: Prim<Int64Type>,
    rows: usize,
    /// Bytes of the messages appended (rows and heartbeats), for [`EventsBuilder::full`].
    message_bytes: usize,
    /// The heartbeats appended, by user.
    beats: Beats,
    /// `source_file`, `source_fp` columns of `consts_rows` rows, sliced for each batch.
    consts: Option<[ArrayRef; 2]>,
    consts_rows: usize,
}

/// What a batch of records becomes: the `events` rows kept (the stored schema,
/// [`schema::stored`]) and the heartbeats folded by user.
#[derive(Debug, Clone)]
pub struct Rows {
    pub stored: RecordBatch,
    pub beats: Beats,
}

impl EventsBuilder {
    /// A builder for rows of one source.
    pub fn new(src: Arc<SourceInfo>) -> Self {
        EventsBuilder {
            src,
            ts: Prim::new(),
            source: Str::new(),
            level: Str::new(),
            logger: Str::new(),
            module: Str::new(),
            kind: Str::new(),
            user: Str::new(),
            actor: Str::new(),
            server_name: Str::new(),
            method: Str::new(),
            status: Prim::new(),
            route: Str::new(),
            path: Str::new(),
            target: Str::new(),
            client_ip: Str::new(),
            service: Str::new(),
            duration_ms: Prim::new(),
            exit_code: Prim::new(),
            count: Prim::new(),
            attrs: Str::new(),
            text: Str::new(),
            lines: Prim::new(),
            flags: Str::new(),
            source_offset: Prim::new(),
            rows: 0,
            message_bytes: 0,
            beats: Beats::default(),
            consts: None,
            consts_rows: 0,
        }
    }

    /// The rows appended so far (heartbeats are not rows: see [`Rows`]).
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0 && self.beats.is_empty()
    }

    /// Whether a batch should be cut now: at `max_rows` rows, or at `max_bytes` bytes of
    /// messages (every other string column of a row is at most its message's size, give or take
    /// a percent-decoding), so that a run of huge records (up to `max_record_bytes` each) can
    /// neither overflow Arrow's 32-bit offsets nor hold more than that bound in memory.
    pub fn full(&self, max_rows: usize, max_bytes: usize) -> bool {
        self.rows + self.beats.len() >= max_rows || self.message_bytes >= max_bytes
    }

    pub fn append(&mut self, r: &Record<'_>) {
        self.message_bytes += r.message.len();
        if let Some(cs) = heartbeat::fold_record(r) {
            self.beat(r, cs);
            return;
        }
        self.ts.option(r.ts);
        self.source.value(r.source.as_str());
        self.level.option(r.level.map(|l| l.as_str()));
        self.logger.option(r.logger);
        self.module.option(r.module);
        self.kind.value(r.kind);
        self.user.option(r.user.as_deref());
        self.actor.option(r.actor);
        self.server_name.option(r.server_name.as_deref());
        self.method.option(r.method);
        self.status.option(r.status.map(i32::from));
        self.route.option(r.route);
        self.path.option(r.path);
        self.target.option(r.target);
        self.client_ip.option(r.client_ip);
        self.service.option(r.service);
        self.duration_ms.option(r.duration_ms);
        self.exit_code.option(r.exit_code);
        self.count.option(r.count);
        self.attrs.option(r.attrs_json().as_deref());
        self.text.option((!rebuilds(r)).then_some(r.message));
        self.lines.value(r.lines as i32);
        self.flags.option(r.flags.names());
        self.source_offset.value(r.offset as i64);
        self.rows += 1;
    }

    /// A heartbeat ([`heartbeat::fold_record`] said so: every field below is set).
    fn beat(&mut self, r: &Record<'_>, duration_cs: i32) {
        let meta = MetaRef {
            logger: r.logger.unwrap_or_default(),
            module: r.module.unwrap_or_default(),
            source_file: &self.src.file,
            source_fp: &self.src.fp,
        };
        let beat = Beat {
            ts: r.ts.unwrap_or_default(),
            status: r.status.map_or(0, i32::from),
            duration_cs,
            client_ip: r.client_ip.unwrap_or_default(),
            offset: r.offset as i64,
        };
        self.beats
            .push(r.user.as_deref().unwrap_or_default(), meta, beat);
    }

    /// Take what was appended so far; the builder is empty afterwards.
    ///
    /// Each column's next buffers are allocated at the size this batch reached (regrowing by
    /// doubling would copy every batch once more). Untouched capacity is only reserved address
    /// space, not resident memory.
    pub fn finish(&mut self) -> Result<Rows, ArrowError> {
        let rows = self.rows;
        let [file, fp] = self.consts(rows);
        let ts: TimestampMicrosecondArray = self.ts.take_array().with_timezone("UTC");
        let cols: Vec<ArrayRef> = vec![
            Arc::new(ts),
            self.source.take()?,
            self.level.take()?,
            self.logger.take()?,
            self.module.take()?,
            self.kind.take()?,
            self.user.take()?,
            self.actor.take()?,
            self.server_name.take()?,
            self.method.take()?,
            self.status.take(),
            self.route.take()?,
            self.path.take()?,
            self.target.take()?,
            self.client_ip.take()?,
            self.service.take()?,
            self.duration_ms.take(),
            self.exit_code.take(),
            self.count.take(),
            self.attrs.take()?,
            self.text.take()?,
            self.lines.take(),
            self.flags.take()?,
            file,
            fp,
            self.source_offset.take(),
        ];
        self.rows = 0;
        self.message_bytes = 0;
        let stored = RecordBatch::try_new(schema::stored(), cols)?;
        Ok(Rows {
            stored,
            beats: std::mem::take(&mut self.beats),
        })
    }

    /// The per-source constant columns for a batch of `rows` rows: slices of arrays built once
    /// (zero-copy), so batches in flight share one copy instead of repeating the values per row.
    fn consts(&mut self, rows: usize) -> [ArrayRef; 2] {
        let cached = match &self.consts {
            Some(c) if self.consts_rows >= rows => c,
            _ => {
                self.consts_rows = rows;
                self.consts.insert([
                    repeat_str(&self.src.file, rows),
                    repeat_str(&self.src.fp, rows),
                ])
            }
        };
        cached.clone().map(|a| a.slice(0, rows))
    }
}

/// Whether a record's message is the request line its columns rebuild (its `text` stays null).
fn rebuilds(r: &Record<'_>) -> bool {
    let (Some(status), Some(method), Some(path), Some(ip), Some(ms)) =
        (r.status, r.method, r.path, r.client_ip, r.duration_ms)
    else {
        return false;
    };
    r.kind == crate::parse::KIND_REQUEST
        && RequestFields {
            status: i32::from(status),
            method,
            path,
            target: r.target,
            actor: r.actor,
            client_ip: ip,
            duration_ms: ms,
        }
        .rebuilds(r.message)
}

fn repeat_str(value: &str, rows: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        value, rows,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Builder, StringBuilder};

    /// The hand-rolled columns give the arrays Arrow's own builders give, nulls included,
    /// over several batches (the validity restarts with each one).
    #[test]
    fn columns_equal_arrows_builders() {
        let batches: [&[Option<&str>]; 5] = [
            &[Some("a"), None, Some(""), Some("ünï"), None],
            &[None, None, Some("x")],
            &[Some("only"), Some("values")],
            &[None],
            &[],
        ];
        let (mut ours, mut nums) = (Str::new(), Prim::<Int64Type>::new());
        for values in batches {
            let (mut theirs, mut their_nums) = (StringBuilder::new(), Int64Builder::new());
            for (i, v) in values.iter().enumerate() {
                ours.option(*v);
                theirs.append_option(*v);
                let n = v.map(|_| i as i64 * 7 - 3);
                nums.option(n);
                their_nums.append_option(n);
            }
            let (a, b) = (ours.take().unwrap(), theirs.finish());
            assert_eq!(a.to_data(), b.to_data(), "{values:?}");
            assert_eq!(a.null_count(), b.null_count());
            assert_eq!(nums.take().to_data(), their_nums.finish().to_data());
        }
        let mut plain = Str::new();
        plain.value("p");
        plain.value("q");
        assert_eq!(
            plain.take().unwrap().to_data(),
            StringArray::from(vec!["p", "q"]).to_data()
        );
    }

    #[test]
    fn a_batch_is_full_at_its_rows_or_its_message_bytes() {
        let src = Arc::new(SourceInfo {
            hub: "h".into(),
            file: "f".into(),
            fp: "0".into(),
        });
        let mut b = EventsBuilder::new(src);
        let long = "x".repeat(1000);
        let rec = Record::new("message", crate::parse::prefix::Family::Hub, &long);
        b.append(&rec);
        assert!(!b.full(2, 2000));
        assert!(b.full(1, 2000));
        b.append(&rec);
        assert!(b.full(10, 2000));
        let batch = b.finish().unwrap().stored;
        assert_eq!(batch.num_rows(), 2);
        assert!(b.is_empty() && !b.full(1, 1));
    }
}
