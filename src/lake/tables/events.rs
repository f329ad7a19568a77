//! The lake's tables and their Arrow schemas: one function per table, used by the writer and
//! passed explicitly to DataFusion (a fresh, empty lake has nothing to infer a schema from).
//!
//! Column documentation lives in README.md ("The lake"); keep the two in step.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const EVENTS: &str = "events";
/// The Hive partition key: the record's UTC day, `dt=YYYY-MM-DD`. Not stored inside the files.
pub const PARTITION_COL: &str = "dt";
/// The outer Hive partition key, `hub=<name>`: each hub's writer owns its partitions. Since
/// format 2 the files carry no `hub` column: the value is the same on every row, and readers
/// take it from the path (Hive partitioning, as Spark, Trino and Athena do).
pub const HUB_COL: &str = "hub";

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// The lake's format: since 2 each fact is stored once (no `message` copy where the columns
/// rebuild it, activity heartbeats only in `activity`, no `hub` column in the files); 3 lists
/// `activity`'s times in ms and durations in hundredths of a ms. See [`crate::lake::format`].
pub const FORMAT_VERSION: u32 = 3;

/// The column of the stored rows holding a record's message when its columns cannot rebuild it
/// (null otherwise; see [`crate::lake::rebuild`]).
pub const TEXT_COL: &str = "text";

/// `events` as readers see it (the `events` view, `hubpulse parse`): one row per log record,
/// with its `message`. The batches the parser threads build have this schema too.
pub fn events() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        utf8("hub", false),
        utf8("source", false),
        utf8("level", true),
        utf8("logger", true),
        utf8("module", true),
        utf8("kind", false),
        utf8("user", true),
        utf8("actor", true),
        utf8("server_name", true),
        utf8("method", true),
        Field::new("status", DataType::Int32, true),
        utf8("route", true),
        utf8("path", true),
        utf8("target", true),
        utf8("client_ip", true),
        utf8("service", true),
        Field::new("duration_ms", DataType::Float64, true),
        Field::new("exit_code", DataType::Int32, true),
        Field::new("count", DataType::Int64, true),
        utf8("attrs", true),
        utf8("message", false),
        Field::new("lines", DataType::Int32, false),
        utf8("flags", true),
        utf8("source_file", false),
        utf8("source_fp", false),
        Field::new("source_offset", DataType::Int64, false),
    ]))
}

/// The rows of `events` and `lifecycle` as stored in their Parquet files: [`events`] without
/// `hub` (a partition value) and with `text` in place of `message`.
pub fn stored() -> SchemaRef {
    let full = events();
    let fields: Vec<Field> = full
        .fields()
        .iter()
        .filter(|f| f.name() != HUB_COL)
        .map(|f| {
            if f.name() == "message" {
                utf8(TEXT_COL, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Columns with chunk min/max statistics: those whose values cluster enough to prune a row
/// group (`ts` has page statistics on top). Per-user and free-text columns have none: with
/// thousands of users interleaved in every row group their min/max would prune nothing, and
/// computing them costs a comparison per value.
pub const STATISTICS_COLUMNS: &[&str] = &[
    "source",
    "level",
    "kind",
    "method",
    "status",
    "route",
    "source_offset",
];

/// Columns whose values repeat a lot and compress best with a Parquet dictionary. The others
/// (text, path, offsets, times) are written plain: a dictionary would only overflow.
pub const DICTIONARY_COLUMNS: &[&str] = &[
    "source",
    "level",
    "logger",
    "module",
    "kind",
    "user",
    "actor",
    "server_name",
    "method",
    "route",
    "client_ip",
    "service",
    "flags",
    "source_file",
    "source_fp",
    "target",
];
