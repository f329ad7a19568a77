//! Records → Arrow `RecordBatch` for the `events` table, column by column.
//!
//! The builder copies what it needs out of each borrowed [`Record`], so the parser's buffers can
//! be reused as soon as a record is appended.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
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
    ts: TimestampMicrosecondBuilder,
    hub: StringBuilder,
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
    source_file: StringBuilder,
    source_fp: StringBuilder,
    source_offset: Int64Builder,
    rows: usize,
}

impl Default for EventsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventsBuilder {
    pub fn new() -> Self {
        EventsBuilder {
            ts: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            hub: StringBuilder::new(),
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
            source_file: StringBuilder::new(),
            source_fp: StringBuilder::new(),
            source_offset: Int64Builder::new(),
            rows: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    pub fn append(&mut self, r: &Record<'_>, src: &SourceInfo) {
        self.ts.append_option(r.ts);
        self.hub.append_value(&src.hub);
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
        self.source_file.append_value(&src.file);
        self.source_fp.append_value(&src.fp);
        self.source_offset.append_value(r.offset as i64);
        self.rows += 1;
    }

    /// Take the rows appended so far as a batch; the builder is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.ts.finish()),
            Arc::new(self.hub.finish()),
            Arc::new(self.source.finish()),
            Arc::new(self.level.finish()),
            Arc::new(self.logger.finish()),
            Arc::new(self.module.finish()),
            Arc::new(self.kind.finish()),
            Arc::new(self.user.finish()),
            Arc::new(self.actor.finish()),
            Arc::new(self.server_name.finish()),
            Arc::new(self.method.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.route.finish()),
            Arc::new(self.path.finish()),
            Arc::new(self.target.finish()),
            Arc::new(self.client_ip.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.duration_ms.finish()),
            Arc::new(self.exit_code.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.attrs.finish()),
            Arc::new(self.message.finish()),
            Arc::new(self.lines.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.source_file.finish()),
            Arc::new(self.source_fp.finish()),
            Arc::new(self.source_offset.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(schema::events(), cols)
    }
}
