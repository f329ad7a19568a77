//! `pods`: one row per observed change of a single-user pod (README, "Table `pods`").

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const PODS: &str = "pods";

/// `pods`: one row per observed change of a single-user pod.
pub fn schema() -> SchemaRef {
    let s = |n: &str, null: bool| Field::new(n, DataType::Utf8, null);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        s("hub", false),
        s("change", false),
        s("namespace", false),
        s("pod", false),
        s("user", true),
        s("server_name", true),
        s("node", true),
        s("phase", true),
        f("cpu_request"),
        f("cpu_limit"),
        f("memory_request"),
        f("memory_limit"),
        f("gpus"),
        s("unschedulable", true),
        Field::new("oom_killed", DataType::Boolean, false),
        s("event", true),
        s("event_message", true),
        Field::new(
            "event_ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        s("instance_type", true),
        s("zone", true),
    ]))
}
