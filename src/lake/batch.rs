//! Records → Arrow `RecordBatch` for the `events` table, column by column.
//!
//! The builder copies what it needs out of each borrowed [`Record`], so the parser's buffers can
//! be reused as soon as a record is appended.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, ArrowPrimitiveType, Float64Builder, Int32Builder, Int64Builder, PrimitiveBuilder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::error::ArrowError;

use super::schema;
use crate::record::Record;

/// Per-source constants written on every row.
#[derive(Debug, Clone)]
pub struct SourceInfo {
    pub hub: String,
    pub file: String,
    pub fp: String,
}

pub struct EventsBuilder {
    /// `hub`, `source_file`, `source_fp`: the same on every row, so built once per batch.
    src: Arc<SourceInfo>,
    ts: TimestampMicrosecondBuilder,
    source: StringBuilder,
    level: StringBuilder,
    logger: StringBuilder,
    module: StringBuilder,
    kind: StringBuilder,
    user: StringBuilder,
    actor: StringBuilder,
    server_name: StringBuilder,
    method: StringBuilder,
    status: Int32Builder,
    route: StringBuilder,
    path: StringBuilder,
    target: StringBuilder,
    client_ip: StringBuilder,
    service: StringBuilder,
    duration_ms: Float64Builder,
    exit_code: Int32Builder,
    count: Int64Builder,
    attrs: StringBuilder,
    message: StringBuilder,
    lines: Int32Builder,
    flags: StringBuilder,
    source_offset: Int64Builder,
    rows: usize,
    /// `hub`, `source_file`, `source_fp` columns of `consts_rows` rows, sliced for each batch.
    consts: Option<[ArrayRef; 3]>,
    consts_rows: usize,
}

impl EventsBuilder {
    /// A builder for rows of one source.
    pub fn new(src: Arc<SourceInfo>) -> Self {
        EventsBuilder {
            src,
            ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            source: StringBuilder::new(),
            level: StringBuilder::new(),
            logger: StringBuilder::new(),
            module: StringBuilder::new(),
            kind: StringBuilder::new(),
            user: StringBuilder::new(),
            actor: StringBuilder::new(),
            server_name: StringBuilder::new(),
            method: StringBuilder::new(),
            status: Int32Builder::new(),
            route: StringBuilder::new(),
            path: StringBuilder::new(),
            target: StringBuilder::new(),
            client_ip: StringBuilder::new(),
            service: StringBuilder::new(),
            duration_ms: Float64Builder::new(),
            exit_code: Int32Builder::new(),
            count: Int64Builder::new(),
            attrs: StringBuilder::new(),
            message: StringBuilder::new(),
            lines: Int32Builder::new(),
            flags: StringBuilder::new(),
            source_offset: Int64Builder::new(),
            rows: 0,
            consts: None,
            consts_rows: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn append(&mut self, r: &Record<'_>) {
        self.ts.append_option(r.ts);
        self.source.append_value(r.source.as_str());
        self.level.append_option(r.level.map(|l| l.as_str()));
        self.logger.append_option(r.logger);
        self.module.append_option(r.module);
        self.kind.append_value(r.kind);
        self.user.append_option(r.user.as_deref());
        self.actor.append_option(r.actor);
        self.server_name.append_option(r.server_name.as_deref());
        self.method.append_option(r.method);
        self.status.append_option(r.status.map(i32::from));
        self.route.append_option(r.route);
        self.path.append_option(r.path);
        self.target.append_option(r.target);
        self.client_ip.append_option(r.client_ip);
        self.service.append_option(r.service);
        self.duration_ms.append_option(r.duration_ms);
        self.exit_code.append_option(r.exit_code);
        self.count.append_option(r.count);
        self.attrs.append_option(r.attrs_json());
        self.message.append_value(r.message);
        self.lines.append_value(r.lines as i32);
        self.flags.append_option(r.flags.names());
        self.source_offset.append_value(r.offset as i64);
        self.rows += 1;
    }

    /// Take the rows appended so far as a batch; the builder is empty afterwards.
    ///
    /// Each column's next builder is allocated at the size this batch reached (Arrow's own
    /// `finish` starts again from nothing, and regrowing by doubling copies every batch once
    /// more). Untouched capacity is only reserved address space, not resident memory.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = self.rows;
        let [hub, file, fp] = self.consts(rows);
        let cols: Vec<ArrayRef> = vec![
            take_ts(&mut self.ts, rows),
            hub,
            take_str(&mut self.source, rows),
            take_str(&mut self.level, rows),
            take_str(&mut self.logger, rows),
            take_str(&mut self.module, rows),
            take_str(&mut self.kind, rows),
            take_str(&mut self.user, rows),
            take_str(&mut self.actor, rows),
            take_str(&mut self.server_name, rows),
            take_str(&mut self.method, rows),
            take_prim(&mut self.status, rows),
            take_str(&mut self.route, rows),
            take_str(&mut self.path, rows),
            take_str(&mut self.target, rows),
            take_str(&mut self.client_ip, rows),
            take_str(&mut self.service, rows),
            take_prim(&mut self.duration_ms, rows),
            take_prim(&mut self.exit_code, rows),
            take_prim(&mut self.count, rows),
            take_str(&mut self.attrs, rows),
            take_str(&mut self.message, rows),
            take_prim(&mut self.lines, rows),
            take_str(&mut self.flags, rows),
            file,
            fp,
            take_prim(&mut self.source_offset, rows),
        ];
        self.rows = 0;
        RecordBatch::try_new(schema::events(), cols)
    }

    /// The per-source constant columns for a batch of `rows` rows: slices of arrays built once
    /// (zero-copy), so batches in flight share one copy instead of repeating the values per row.
    fn consts(&mut self, rows: usize) -> [ArrayRef; 3] {
        let cached = match &self.consts {
            Some(c) if self.consts_rows >= rows => c,
            _ => {
                self.consts_rows = rows;
                self.consts.insert([
                    repeat_str(&self.src.hub, rows),
                    repeat_str(&self.src.file, rows),
                    repeat_str(&self.src.fp, rows),
                ])
            }
        };
        cached.clone().map(|a| a.slice(0, rows))
    }
}

fn repeat_str(value: &str, rows: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        value, rows,
    )))
}

fn take_str(b: &mut StringBuilder, rows: usize) -> ArrayRef {
    let next = StringBuilder::with_capacity(rows, b.values_slice().len());
    Arc::new(std::mem::replace(b, next).finish())
}

fn take_prim<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>, rows: usize) -> ArrayRef {
    Arc::new(std::mem::replace(b, PrimitiveBuilder::with_capacity(rows)).finish())
}

fn take_ts(b: &mut TimestampMicrosecondBuilder, rows: usize) -> ArrayRef {
    let next = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
    Arc::new(std::mem::replace(b, next).finish())
}
