//! `decisions`: one row per culler, quota, capacity or admission decision worth keeping
//! (README, "Table `decisions`"). Written by [`super::SideRoot`], outside the manifest.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const DECISIONS: &str = "decisions";

/// A nullable UTC timestamp column (µs), as every side table stores times.
pub fn utc_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )
}

/// `decisions`: one row per decision (see README, "Table `decisions`").
pub fn schema() -> SchemaRef {
    let ts = utc_field;
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        ts("ts"),
        s("hub", false),
        s("component", false),
        s("pass", false),
        s("action", false),
        s("reason", false),
        s("user", false),
        s("server_name", true),
        s("profile", true),
        ts("last_activity"),
        s("activity_source", true),
        ts("started"),
        f("limit_s"),
        f("idle_s"),
        ts("deadline"),
        f("lateness_s"),
        Field::new("dry_run", DataType::Boolean, false),
        s("outcome", true),
        s("message", true),
    ]))
}
