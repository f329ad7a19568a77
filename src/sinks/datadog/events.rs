//! Spawn failures and culls as Datadog events (`POST /api/v1/events`), opt-in with
//! `[datadog] events = true`.
//!
//! Events are built from the same closed intervals as the metrics: one event per interval, hub
//! and reason with a non-zero `jupyterhub.spawns.failed` or `jupyterhub.culls` count ("3 spawns
//! failed (start_timeout)"), never one per record, so a failing hub cannot flood the event stream.
//!
//! # Invariants
//! * An event carries the same bounded tags as the metric it summarises, and its text names no
//!   user, server, IP or path: per-user detail stays in the lake (the text says which query).
//! * `EventCreateRequest` has no `Content-Encoding` in the spec: the body is sent as is.

use serde_json::json;

use crate::sinks::datadog::names as n;
use crate::sinks::datadog::payload::{Codec, Endpoint, Payload};
use crate::sinks::datadog::{Interval, Value};

/// The event payloads of one interval (each a single `EventCreateRequest`).
pub fn from_interval(iv: &Interval, host: &str, tags: &[String]) -> Vec<Payload> {
    let mut out = Vec::new();
    for p in &iv.points {
        let Value::Count(c) = p.value else { continue };
        if c <= 0.0 || !(p.metric == n::SPAWNS_FAILED || p.metric == n::CULLS) {
            continue;
        }
        let tag = |k: &str| {
            p.tags
                .iter()
                .find(|t| t.key == k)
                .map_or("unknown", |t| t.value.as_str())
        };
        let (hub, reason, count) = (tag("hub"), tag("reason"), c as u64);
        let from = chrono::DateTime::from_timestamp(iv.start_s, 0).unwrap_or_default();
        let span = format!(
            "{}–{} UTC",
            from.format("%Y-%m-%d %H:%M:%S"),
            (from + chrono::Duration::seconds(i64::from(iv.len_s))).format("%H:%M:%S")
        );
        let (title, text, alert, key) = if p.metric == n::SPAWNS_FAILED {
            let s = if count == 1 { "" } else { "s" };
            (
                format!("JupyterHub {hub}: {count} spawn{s} failed ({reason})"),
                format!(
                    "{count} server spawn{s} on hub {hub} failed with reason {reason} in {span}. \
                     Who and which servers: `hubpulse query --name failed_spawns` on the lake."
                ),
                "error",
                format!("hubpulse-spawn-failed-{hub}"),
            )
        } else {
            let s = if count == 1 { "" } else { "s" };
            (
                format!("JupyterHub {hub}: {count} idle cull{s} ({reason})"),
                format!(
                    "The idle culler stopped {count} server{s} on hub {hub} ({reason}) in {span}. \
                     Per-user detail is in the hubpulse lake."
                ),
                "info",
                format!("hubpulse-cull-{hub}"),
            )
        };
        let mut all: Vec<String> = tags.to_vec();
        all.extend(p.tags.iter().map(ToString::to_string));
        let body = json!({
            "title": title,
            "text": text,
            "date_happened": iv.start_s,
            "alert_type": alert,
            "priority": "normal",
            "host": host,
            "tags": all,
            "aggregation_key": key.chars().take(100).collect::<String>(),
            "source_type_name": "hubpulse",
        })
        .to_string()
        .into_bytes();
        out.push(Payload {
            endpoint: Endpoint::Events,
            codec: Codec::Identity,
            uncompressed_len: body.len(),
            body,
            series: 1,
            points: 1,
            oldest_s: iv.start_s,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::datadog::{Point, Tag, TagValue};

    #[test]
    fn one_event_per_reason_with_counts_and_no_personal_data() {
        let t = |k: &'static str, v: &'static str| Tag {
            key: k,
            value: TagValue::Static(v),
        };
        let iv = Interval {
            start_s: 1_795_000_000,
            len_s: 10,
            points: vec![
                Point {
                    metric: n::SPAWNS_FAILED,
                    tags: vec![t("hub", "prod"), t("reason", "start_timeout")],
                    value: Value::Count(3.0),
                },
                Point {
                    metric: n::CULLS,
                    tags: vec![t("hub", "prod"), t("reason", "server_idle")],
                    value: Value::Count(1.0),
                },
                Point {
                    metric: n::REQUESTS,
                    tags: vec![t("hub", "prod")],
                    value: Value::Count(9.0),
                },
            ],
        };
        let e = from_interval(&iv, "host-1", &["hubpulse_instance:a".into()]);
        assert_eq!(e.len(), 2);
        let v: serde_json::Value = serde_json::from_slice(&e[0].body).unwrap();
        assert_eq!(
            v["title"],
            "JupyterHub prod: 3 spawns failed (start_timeout)"
        );
        assert_eq!(v["alert_type"], "error");
        assert_eq!(v["date_happened"], 1_795_000_000);
        assert!(v["tags"].to_string().contains("reason:start_timeout"));
        let v: serde_json::Value = serde_json::from_slice(&e[1].body).unwrap();
        assert_eq!(v["title"], "JupyterHub prod: 1 idle cull (server_idle)");
    }
}
