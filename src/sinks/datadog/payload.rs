//! Points → compressed request bodies for Datadog's metric intake, split by measured size.
//!
//! * Gauges and counts go to `POST /api/v2/series` (`MetricPayload`: `type` 3 gauge / 1 count /
//!   2 rate as integers, a `host` resource, `interval` on counts and rates), `Content-Encoding`
//!   one of the spec's `deflate`, `zstd1`, `gzip`.
//! * Distributions go to `POST /api/v1/distribution_points` (`DistributionPointsPayload`:
//!   `[timestamp, [values…]]` tuples), whose spec allows only `deflate`.
//!
//! # Guarantees
//! * Every body is at most [`Limits::max_compressed`] bytes as sent and
//!   [`Limits::max_uncompressed`] once decoded (512,000 and 5,242,880: Datadog's v2 series
//!   limits; distribution_points states none and is held to the same). Sizes are measured on
//!   the compressed bytes, not estimated: a batch that compresses too big is halved and retried.
//! * One series appears once per batch of intervals, with one point per timestamp: counts with
//!   the same timestamp are summed, gauges keep the last (Datadog would keep only the last
//!   write per second). A distribution point with more than `max_values_per_point` values is
//!   spread over the following seconds of its interval (never into the next interval's second);
//!   values beyond that are dropped and counted.
//! * Series are sorted by name and tags (Vector measured 2-3x better compression sorted).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Value as Json, json};

use crate::sinks::datadog::{Interval, MetricType, Value, metric_def};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zlib-wrapped deflate, as Datadog's clients send it.
    Deflate,
    Gzip,
    /// zstd; the spec's token is `zstd1`.
    Zstd1,
    /// Not compressed, no `Content-Encoding` header (events: the spec allows none).
    Identity,
}

impl Codec {
    pub fn content_encoding(self) -> &'static str {
        match self {
            Codec::Deflate => "deflate",
            Codec::Gzip => "gzip",
            Codec::Zstd1 => "zstd1",
            Codec::Identity => "identity",
        }
    }

    pub fn compress(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Codec::Deflate => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data)?;
                e.finish()
            }
            Codec::Gzip => {
                let mut e =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(data)?;
                e.finish()
            }
            Codec::Zstd1 => zstd::encode_all(data, 3),
            Codec::Identity => Ok(data.to_vec()),
        }
    }

    pub fn decompress(self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Read;
        let mut out = Vec::new();
        match self {
            Codec::Deflate => flate2::read::ZlibDecoder::new(data).read_to_end(&mut out)?,
            Codec::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out)?,
            Codec::Zstd1 => return zstd::decode_all(data),
            Codec::Identity => return Ok(data.to_vec()),
        };
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Series,
    DistributionPoints,
    /// `POST /api/v1/events` (see [`crate::sinks::datadog::events`]).
    Events,
    /// `POST /api/v2/logs`, on the logs intake host (see [`crate::sinks::datadog::logs`]).
    Logs,
}

impl Endpoint {
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Series => "/api/v2/series",
            Endpoint::DistributionPoints => "/api/v1/distribution_points",
            Endpoint::Events => "/api/v1/events",
            Endpoint::Logs => "/api/v2/logs",
        }
    }

    /// The request body's media type in the spec.
    pub fn content_type(self) -> &'static str {
        match self {
            Endpoint::Series => "application/json",
            Endpoint::DistributionPoints => "text/json",
            Endpoint::Events | Endpoint::Logs => "application/json",
        }
    }

    /// The spec's `Content-Encoding` enum for the endpoint.
    pub fn codecs(self) -> &'static [Codec] {
        match self {
            Endpoint::Series => &[Codec::Deflate, Codec::Zstd1, Codec::Gzip],
            Endpoint::DistributionPoints => &[Codec::Deflate],
            Endpoint::Events => &[Codec::Identity],
            Endpoint::Logs => &[Codec::Gzip, Codec::Deflate, Codec::Identity],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_compressed: usize,
    pub max_uncompressed: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_compressed: 512_000,
            max_uncompressed: 5_242_880,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PayloadConfig {
    /// The `host` resource (series) and `host` field (distributions).
    pub host: String,
    /// Tags on every series, e.g. the agent instance (`hubpulse_instance:…`).
    pub tags: Vec<String>,
    pub series_codec: Codec,
    pub distribution_codec: Codec,
    pub limits: Limits,
    /// Values per distribution point before the rest moves to the next second. Default 50,000.
    pub max_values_per_point: usize,
}

impl PayloadConfig {
    pub fn new(host: impl Into<String>) -> Self {
        PayloadConfig {
            host: host.into(),
            tags: Vec::new(),
            series_codec: Codec::Deflate,
            distribution_codec: Codec::Deflate,
            limits: Limits::default(),
            max_values_per_point: 50_000,
        }
    }
}

/// One request body, compressed, ready to send.
#[derive(Debug, Clone)]
pub struct Payload {
    pub endpoint: Endpoint,
    pub codec: Codec,
    pub body: Vec<u8>,
    pub uncompressed_len: usize,
    pub series: usize,
    pub points: usize,
    /// The oldest point's timestamp (POSIX s): Datadog refuses metric points more than 1 h old
    /// and events more than 18 h old ([`keep_since`] drops only the points past the limit).
    pub oldest_s: i64,
}

#[derive(Debug, Default)]
pub struct Built {
    pub payloads: Vec<Payload>,
    /// Distribution values that did not fit in their interval's seconds, or were not finite.
    pub dropped_values: u64,
    /// Series whose single entry exceeded a limit on its own (not expected with sane tags).
    pub dropped_series: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("{codec:?} is not an encoding the spec allows for {}", endpoint.path())]
    Codec { endpoint: Endpoint, codec: Codec },
    #[error("compressing a payload: {0}")]
    Io(#[from] std::io::Error),
}

type SeriesKey = (&'static str, Vec<String>);

/// Build every payload for `intervals`.
///
/// # Errors
/// A codec the endpoint's spec does not allow; an I/O error from a compressor.
pub fn build(intervals: &[Interval], cfg: &PayloadConfig) -> Result<Built, PayloadError> {
    for (ep, codec) in [
        (Endpoint::Series, cfg.series_codec),
        (Endpoint::DistributionPoints, cfg.distribution_codec),
    ] {
        if !ep.codecs().contains(&codec) {
            return Err(PayloadError::Codec {
                endpoint: ep,
                codec,
            });
        }
    }
    let mut built = Built::default();
    let mut series: BTreeMap<SeriesKey, (MetricType, u32, BTreeMap<i64, f64>)> = BTreeMap::new();
    let mut dists: BTreeMap<SeriesKey, BTreeMap<i64, (u32, Vec<f64>)>> = BTreeMap::new();
    for iv in intervals {
        for p in &iv.points {
            let mut tags: Vec<String> = cfg.tags.clone();
            tags.extend(p.tags.iter().map(ToString::to_string));
            let key = (p.metric, tags);
            match &p.value {
                Value::Count(v) | Value::Gauge(v) => {
                    let ty = if matches!(p.value, Value::Count(_)) {
                        MetricType::Count
                    } else {
                        MetricType::Gauge
                    };
                    let e = series.entry(key).or_insert((ty, iv.len_s, BTreeMap::new()));
                    let slot = e.2.entry(iv.start_s).or_insert(0.0);
                    *slot = if ty == MetricType::Count {
                        *slot + v
                    } else {
                        *v
                    };
                }
                Value::Distribution(vs) => {
                    let e = dists.entry(key).or_default();
                    let slot = e.entry(iv.start_s).or_insert((iv.len_s, Vec::new()));
                    let before = vs.len();
                    slot.1.extend(vs.iter().copied().filter(|v| v.is_finite()));
                    built.dropped_values +=
                        (before - vs.iter().filter(|v| v.is_finite()).count()) as u64;
                }
            }
        }
    }
    let frags: Vec<Frag> = series
        .into_iter()
        .map(|((metric, tags), (ty, len, pts))| series_frag(metric, &tags, ty, len, &pts, cfg))
        .collect();
    pack(
        frags,
        Endpoint::Series,
        cfg.series_codec,
        cfg.limits,
        &mut built,
    )?;
    let mut dfrags = Vec::new();
    for ((metric, tags), pts) in dists {
        dist_frags(
            metric,
            &tags,
            &pts,
            cfg,
            &mut dfrags,
            &mut built.dropped_values,
        );
    }
    pack(
        dfrags,
        Endpoint::DistributionPoints,
        cfg.distribution_codec,
        cfg.limits,
        &mut built,
    )?;
    Ok(built)
}

/// One series entry, already JSON.
struct Frag {
    json: Vec<u8>,
    points: usize,
    oldest_s: i64,
}

fn series_frag(
    metric: &'static str,
    tags: &[String],
    ty: MetricType,
    len: u32,
    pts: &BTreeMap<i64, f64>,
    cfg: &PayloadConfig,
) -> Frag {
    let points: Vec<Json> = pts
        .iter()
        .map(|(t, v)| json!({"timestamp": t, "value": v}))
        .collect();
    let mut o = json!({
        "metric": metric,
        "type": match ty { MetricType::Count => 1, MetricType::Rate => 2, _ => 3 },
        "points": points,
        "resources": [{"name": cfg.host, "type": "host"}],
        "tags": tags,
    });
    if matches!(ty, MetricType::Count | MetricType::Rate) {
        o["interval"] = json!(len);
    }
    if let Some(def) = metric_def(metric) {
        o["unit"] = json!(def.unit);
    }
    let oldest_s = pts.keys().next().copied().unwrap_or(i64::MAX);
    Frag {
        json: o.to_string().into_bytes(),
        points: pts.len(),
        oldest_s,
    }
}

/// A distribution series as one or more entries of at most `max_values_per_point` values each.
fn dist_frags(
    metric: &'static str,
    tags: &[String],
    pts: &BTreeMap<i64, (u32, Vec<f64>)>,
    cfg: &PayloadConfig,
    out: &mut Vec<Frag>,
    dropped: &mut u64,
) {
    let cap = cfg.max_values_per_point.max(1);
    let mut cur: Vec<Json> = Vec::new();
    let mut cur_values = 0usize;
    let mut flush = |cur: &mut Vec<Json>, cur_values: &mut usize| {
        if cur.is_empty() {
            return;
        }
        let o = json!({
            "metric": metric,
            "points": std::mem::take(cur),
            "tags": tags,
            "host": cfg.host,
            "type": "distribution",
        });
        let pts = o["points"].as_array();
        let points = pts.map_or(0, Vec::len);
        let oldest_s = pts
            .and_then(|a| a.iter().filter_map(|p| p[0].as_i64()).min())
            .unwrap_or(i64::MAX);
        out.push(Frag {
            json: o.to_string().into_bytes(),
            points,
            oldest_s,
        });
        *cur_values = 0;
    };
    for (start, (len, values)) in pts {
        for (k, chunk) in values.chunks(cap).enumerate() {
            if k as u64 >= u64::from(*len) {
                *dropped += values[k * cap..].len() as u64;
                break;
            }
            if cur_values + chunk.len() > cap {
                flush(&mut cur, &mut cur_values);
            }
            cur.push(json!([start + k as i64, chunk]));
            cur_values += chunk.len();
        }
    }
    flush(&mut cur, &mut cur_values);
}

const HEAD: &[u8] = b"{\"series\":[";
const TAIL: &[u8] = b"]}";

/// Pack fragments greedily under the uncompressed limit, compress, and halve any batch whose
/// compressed size is over the limit.
fn pack(
    frags: Vec<Frag>,
    endpoint: Endpoint,
    codec: Codec,
    limits: Limits,
    built: &mut Built,
) -> Result<(), PayloadError> {
    let envelope = HEAD.len() + TAIL.len();
    // Learnt from each compression: how many uncompressed bytes fit the compressed limit.
    let mut budget = limits.max_uncompressed;
    let mut batch: Vec<Frag> = Vec::new();
    let mut size = envelope;
    for f in frags {
        if envelope + f.json.len() > limits.max_uncompressed {
            built.dropped_series += 1;
            continue;
        }
        if !batch.is_empty() && size + 1 + f.json.len() > budget {
            budget =
                emit(std::mem::take(&mut batch), endpoint, codec, limits, built)?.max(envelope);
            size = envelope;
        }
        size += f.json.len() + usize::from(!batch.is_empty());
        batch.push(f);
    }
    if !batch.is_empty() {
        emit(batch, endpoint, codec, limits, built)?;
    }
    Ok(())
}

/// Compress one batch (halving it until each half fits); returns the uncompressed size the
/// observed compression ratio allows for the next batch.
fn emit(
    batch: Vec<Frag>,
    endpoint: Endpoint,
    codec: Codec,
    limits: Limits,
    built: &mut Built,
) -> Result<usize, PayloadError> {
    let mut raw = Vec::with_capacity(batch.iter().map(|f| f.json.len() + 1).sum::<usize>() + 16);
    raw.extend_from_slice(HEAD);
    for (i, f) in batch.iter().enumerate() {
        if i > 0 {
            raw.push(b',');
        }
        raw.extend_from_slice(&f.json);
    }
    raw.extend_from_slice(TAIL);
    let body = codec.compress(&raw)?;
    if body.len() > limits.max_compressed {
        if batch.len() == 1 {
            built.dropped_series += 1;
            return Ok(limits.max_uncompressed);
        }
        let mut a = batch;
        let b = a.split_off(a.len() / 2);
        emit(a, endpoint, codec, limits, built)?;
        return emit(b, endpoint, codec, limits, built);
    }
    // 90% of what this ratio would allow, so the next batch rarely needs halving.
    let ratio = body.len().max(1) as f64 / raw.len() as f64;
    let next = ((limits.max_compressed as f64 / ratio) * 0.9) as usize;
    built.payloads.push(Payload {
        endpoint,
        codec,
        uncompressed_len: raw.len(),
        series: batch.len(),
        points: batch.iter().map(|f| f.points).sum(),
        oldest_s: batch.iter().map(|f| f.oldest_s).min().unwrap_or(i64::MAX),
        body,
    });
    Ok(next.min(limits.max_uncompressed))
}

/// Split a payload the intake refused as too large (413) into two, by series; `None` when it
/// holds a single series (nothing left to split: the sender drops it and counts it).
///
/// # Errors
/// A body that does not decode as this module's own output.
pub fn split_in_two(p: &Payload) -> Result<Option<(Payload, Payload)>, PayloadError> {
    let raw = p.codec.decompress(&p.body)?;
    let mut v: Json = serde_json::from_slice(&raw).map_err(std::io::Error::from)?;
    let Some(series) = v["series"].as_array_mut().filter(|s| s.len() > 1) else {
        return Ok(None);
    };
    let second = series.split_off(series.len() / 2);
    let first = std::mem::take(series);
    let half = |s: Vec<Json>| -> Result<Payload, PayloadError> {
        let points = |x: &Json| x["points"].as_array().map_or(0, Vec::len);
        let ts = |x: &Json| -> Option<i64> {
            let pts = x["points"].as_array()?;
            pts.iter()
                .filter_map(|pt| pt.get("timestamp").unwrap_or(&pt[0]).as_i64())
                .min()
        };
        let body = json!({ "series": s }).to_string().into_bytes();
        Ok(Payload {
            endpoint: p.endpoint,
            codec: p.codec,
            uncompressed_len: body.len(),
            series: s.len(),
            points: s.iter().map(points).sum(),
            oldest_s: s.iter().filter_map(ts).min().unwrap_or(i64::MAX),
            body: p.codec.compress(&body)?,
        })
    };
    Ok(Some((half(first)?, half(second)?)))
}

/// The payload without its points older than `cutoff_s` (POSIX s): Datadog refuses metric
/// points more than 1 h old (v2 `MetricPoint`/`MetricSeries`, v1 `Point`), point by point, so
/// a payload that straddles the limit still sends its fresh points. Returns what is left
/// (`None` when nothing is) and how many points were removed. Series and distribution
/// payloads only; any other payload is returned as is.
///
/// # Errors
/// A body that does not decode as this module's own output.
pub fn keep_since(p: &Payload, cutoff_s: i64) -> Result<(Option<Payload>, u64), PayloadError> {
    if !matches!(p.endpoint, Endpoint::Series | Endpoint::DistributionPoints) {
        return Ok((Some(p.clone()), 0));
    }
    let raw = p.codec.decompress(&p.body)?;
    let mut v: Json = serde_json::from_slice(&raw).map_err(std::io::Error::from)?;
    let ts = |pt: &Json| pt.get("timestamp").unwrap_or(&pt[0]).as_i64();
    let (mut removed, mut points, mut oldest) = (0u64, 0usize, i64::MAX);
    if let Some(series) = v["series"].as_array_mut() {
        for s in series.iter_mut() {
            if let Some(pts) = s["points"].as_array_mut() {
                let before = pts.len();
                pts.retain(|pt| ts(pt).is_some_and(|t| t >= cutoff_s));
                removed += (before - pts.len()) as u64;
                points += pts.len();
                oldest = pts.iter().filter_map(ts).fold(oldest, i64::min);
            }
        }
        series.retain(|s| s["points"].as_array().is_some_and(|a| !a.is_empty()));
    }
    let n_series = v["series"].as_array().map_or(0, Vec::len);
    if n_series == 0 {
        return Ok((None, removed));
    }
    let body = v.to_string().into_bytes();
    let kept = Payload {
        endpoint: p.endpoint,
        codec: p.codec,
        uncompressed_len: body.len(),
        series: n_series,
        points,
        oldest_s: oldest,
        body: p.codec.compress(&body)?,
    };
    Ok((Some(kept), removed))
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
