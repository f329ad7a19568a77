//! Records forwarded as Datadog logs (`POST /api/v2/logs` on `http-intake.logs.{site}`),
//! opt-in with `[datadog] logs = true`.
//!
//! Each record becomes one `HTTPLogItem`: the lake's columns as attributes (null ones left out),
//! `message`, `ddsource`/`service` `jupyterhub`, `hostname`, `ddtags` (the sink's tags plus `hub`
//! and `kind`). Datadog reserves `status` for the log level and `service` for the service name,
//! so the record's HTTP status is `http_status` and its JupyterHub service `jupyterhub_service`.
//!
//! # Guarantees
//! * Batches hold at most 1,000 items and 4,500,000 uncompressed bytes (the API's limits are
//!   1,000 and 5 MB); a message is cut at 256 KiB (Datadog truncates at 1 MB anyway).
//! * Unlike metrics, logs carry user names and paths: that is what they are for (per-user detail
//!   in Datadog, when a team wants it). Secrets were scrubbed by the parser before any of this.

use serde_json::{Map, Value};

use crate::lake::batch::SourceInfo;
use crate::parse::record::Record;
use crate::sinks::datadog::payload::{Codec, Endpoint, Payload};

pub const MAX_ITEMS: usize = 1000;
pub const MAX_BYTES: usize = 4_500_000;
const MAX_MESSAGE: usize = 256 * 1024;

/// One serialized log item and its time (POSIX s).
#[derive(Debug, Clone)]
pub struct LogItem {
    pub ts_s: i64,
    pub json: Vec<u8>,
}

/// The log item of one record.
pub fn item(rec: &Record<'_>, src: &SourceInfo, host: &str, tags: &[String]) -> LogItem {
    let mut v = rec.to_json(&src.hub, &src.file, &src.fp);
    let mut out = Map::new();
    if let Value::Object(m) = &mut v {
        for (k, x) in std::mem::take(m) {
            if x.is_null() {
                continue;
            }
            let k = match k.as_str() {
                "status" => "http_status".to_string(),
                "service" => "jupyterhub_service".to_string(),
                _ => k,
            };
            out.insert(k, x);
        }
    }
    if let Some(Value::String(m)) = out.get_mut("message")
        && m.len() > MAX_MESSAGE
    {
        let mut cut = MAX_MESSAGE;
        while !m.is_char_boundary(cut) {
            cut -= 1;
        }
        m.truncate(cut);
    }
    let ts_s = rec.ts.map_or_else(
        || chrono::Utc::now().timestamp(),
        |t| t.div_euclid(1_000_000),
    );
    if let Some(t) = rec.ts {
        out.insert("timestamp".into(), Value::from(t / 1000));
    }
    if let Some(l) = rec.level {
        out.insert(
            "status".into(),
            Value::from(l.as_str().to_ascii_lowercase()),
        );
    }
    let mut ddtags: Vec<String> = tags.to_vec();
    ddtags.push(format!(
        "hub:{}",
        crate::sinks::datadog::classify::sanitize(&src.hub)
    ));
    ddtags.push(format!("kind:{}", rec.kind));
    out.insert("ddsource".into(), Value::from("jupyterhub"));
    out.insert("service".into(), Value::from("jupyterhub"));
    out.insert("hostname".into(), Value::from(host));
    out.insert("ddtags".into(), Value::from(ddtags.join(",")));
    LogItem {
        ts_s,
        json: Value::Object(out).to_string().into_bytes(),
    }
}

/// Items → gzip `HTTPLog` payloads within the limits.
///
/// # Errors
/// A compressor's I/O error.
pub fn build(items: Vec<LogItem>, codec: Codec) -> std::io::Result<Vec<Payload>> {
    let mut out = Vec::new();
    let mut body: Vec<u8> = Vec::new();
    let (mut n, mut oldest) = (0usize, i64::MAX);
    let mut flush = |body: &mut Vec<u8>, n: &mut usize, oldest: &mut i64| -> std::io::Result<()> {
        if *n == 0 {
            return Ok(());
        }
        body.push(b']');
        out.push(Payload {
            endpoint: Endpoint::Logs,
            codec,
            uncompressed_len: body.len(),
            body: codec.compress(body)?,
            series: *n,
            points: *n,
            oldest_s: *oldest,
        });
        body.clear();
        (*n, *oldest) = (0, i64::MAX);
        Ok(())
    };
    for it in items {
        if n > 0 && (n == MAX_ITEMS || body.len() + it.json.len() + 2 > MAX_BYTES) {
            flush(&mut body, &mut n, &mut oldest)?;
        }
        body.push(if n == 0 { b'[' } else { b',' });
        body.extend_from_slice(&it.json);
        n += 1;
        oldest = oldest.min(it.ts_s);
    }
    flush(&mut body, &mut n, &mut oldest)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_the_item_and_byte_limits() {
        let items: Vec<LogItem> = (0..2500)
            .map(|i| LogItem {
                ts_s: 100 + i,
                json: format!("{{\"message\":\"m{i}\"}}").into_bytes(),
            })
            .collect();
        let p = build(items, Codec::Gzip).unwrap();
        assert_eq!(
            p.iter().map(|p| p.points).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        assert_eq!(p[1].oldest_s, 1100);
        let raw = Codec::Gzip.decompress(&p[2].body).unwrap();
        let v: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 500);
        let big: Vec<LogItem> = (0..30)
            .map(|_| LogItem {
                ts_s: 1,
                json: format!("{{\"message\":\"{}\"}}", "x".repeat(200_000)).into_bytes(),
            })
            .collect();
        let p = build(big, Codec::Gzip).unwrap();
        assert!(p.len() >= 2);
        assert!(p.iter().all(|p| p.uncompressed_len <= MAX_BYTES));
    }
}
