//! `observations`: what the hub's own REST API listed, the truth the reports are checked
//! against (README, "Table `observations`").

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

pub const OBSERVATIONS: &str = "observations";

/// `observations` (see README, "Table `observations`").
pub fn schema() -> SchemaRef {
    let ts = super::decisions::utc_field;
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    Arc::new(Schema::new(vec![
        ts("ts"),
        s("hub", false),
        s("kind", false),
        s("via", false),
        s("user", true),
        s("server_name", true),
        ts("started"),
        ts("last_activity"),
        ts("user_last_activity"),
        s("pending", true),
        Field::new("ready", DataType::Boolean, true),
        s("profile", true),
        Field::new("servers", DataType::Int64, true),
    ]))
}
