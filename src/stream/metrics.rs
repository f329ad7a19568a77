//! Self-monitoring: the pipeline's counters and gauges (every stage updates them), and the registry the other components'
//! families join, encoded in the Prometheus text format (version 0.0.4) for `/metrics`
//! ([`crate::telemetry`]).
//!
//! Hot counters are atomics; per-kind and per-source maps are published by the pipeline at each
//! tick (never per record). Labels are bounded: record kinds come from the catalogue, sources
//! are the configured files/streams, error kinds are a fixed vocabulary. No user name, IP or
//! request path ever becomes a label.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::telemetry::{self, Value};

pub struct Metrics {
    pub bytes_read: AtomicU64,
    pub lines: AtomicU64,
    pub records: AtomicU64,
    pub unparsed: AtomicU64,
    pub truncated: AtomicU64,
    pub commits: AtomicU64,
    pub parts_published: AtomicU64,
    pub rows_published: AtomicU64,
    pub compactions: AtomicU64,
    pub retention_dropped: AtomicU64,
    pub sources_attached: AtomicU64,
    pub files_rotated: AtomicU64,
    /// Bytes a source could not read because the file was truncated or removed before they
    /// were read (copy-truncate without the copy in the globs): counted, never silent.
    pub bytes_lost_rotation: AtomicU64,
    /// Sources resumed at an offset read through another file (a copy-truncate copy, a file
    /// renamed while the agent was down): their bytes before it matched, but it is worth seeing.
    pub resumed_other_file: AtomicU64,
    /// Unix seconds of the last successful commit (0: none yet).
    pub last_commit_unix: AtomicU64,
    /// Records parsed but not yet committed.
    pub pending_records: AtomicU64,
    /// Set once the lake is open for writing.
    pub lake_open: AtomicBool,
    /// Sources still starting (first glob scan, first pod attach).
    pub starting: AtomicU64,
    pub kinds: Mutex<BTreeMap<&'static str, u64>>,
    /// Source label → newest record timestamp (µs since the epoch).
    pub newest: Mutex<BTreeMap<String, i64>>,
    pub errors: Mutex<BTreeMap<&'static str, u64>>,
    /// The families of the other components (the HTTP server, the Datadog sink's counters and
    /// the derived `jupyterhub_*` metrics, the control loops, the pods watch, the placeholder
    /// loop): each registers its own here when it starts, `/metrics` encodes them.
    pub registry: telemetry::Registry,
    /// What the hub's API last said of its users' activity (the observations), shared by the
    /// control loops that read the hub and the metrics that count active users.
    pub hub_activity: std::sync::Arc<crate::hub::activity::ActivityView>,
    /// Lake writes that failed for lack of space (ENOSPC, EDQUOT) and were tried again.
    pub lake_write_retries: AtomicU64,
    /// While lake writes fail and are being retried: why, in one line (`/healthz` shows it).
    pub lake_stalled: Mutex<Option<String>>,
}

impl Metrics {
    pub fn error(&self, kind: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    /// Ready: the lake is writable and every configured source has made its first attach.
    pub fn ready(&self) -> bool {
        self.lake_open.load(Ordering::Relaxed) && self.starting.load(Ordering::Relaxed) == 0
    }

    /// Why lake writes are failing and being retried, if they are.
    pub fn lake_stall(&self) -> Option<String> {
        self.lake_stalled.lock().ok().and_then(|s| s.clone())
    }

    /// Notes (`Some`) or clears (`None`) a lake write stall.
    pub fn set_lake_stall(&self, why: Option<String>) {
        if let Ok(mut s) = self.lake_stalled.lock() {
            *s = why;
        }
    }

    pub fn error_count(&self, kind: &str) -> u64 {
        self.errors
            .lock()
            .map(|m| m.get(kind).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The Prometheus text exposition: the agent's own families as of `now_unix_micros`, then
    /// every family registered into [`Metrics::registry`].
    pub fn render(&self, now_unix_micros: i64) -> String {
        let mut o = telemetry::encode_one(Own::read(self, now_unix_micros));
        self.registry.encode(&mut o);
        o
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = telemetry::Registry::default();
        Metrics {
            bytes_read: AtomicU64::default(),
            lines: AtomicU64::default(),
            records: AtomicU64::default(),
            unparsed: AtomicU64::default(),
            truncated: AtomicU64::default(),
            commits: AtomicU64::default(),
            parts_published: AtomicU64::default(),
            rows_published: AtomicU64::default(),
            compactions: AtomicU64::default(),
            retention_dropped: AtomicU64::default(),
            sources_attached: AtomicU64::default(),
            files_rotated: AtomicU64::default(),
            bytes_lost_rotation: AtomicU64::default(),
            resumed_other_file: AtomicU64::default(),
            last_commit_unix: AtomicU64::default(),
            pending_records: AtomicU64::default(),
            lake_open: AtomicBool::default(),
            starting: AtomicU64::default(),
            kinds: Mutex::default(),
            newest: Mutex::default(),
            errors: Mutex::default(),
            registry,
            hub_activity: std::sync::Arc::default(),
            lake_write_retries: AtomicU64::default(),
            lake_stalled: Mutex::default(),
        }
    }
}

/// The agent's own families, read at one scrape (the lag needs the scrape's time).
#[derive(Debug)]
struct Own {
    counters: [(&'static str, &'static str, u64); 16],
    gauges: [(&'static str, &'static str, Value); 4],
    kinds: Vec<(&'static str, u64)>,
    /// Source label → seconds behind now.
    lag: Vec<(String, f64)>,
    errors: Vec<(&'static str, u64)>,
}

impl Own {
    /// The counters without labels.
    fn counters(m: &Metrics) -> [(&'static str, &'static str, u64); 16] {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            (
                "hubpulse_bytes_read_total",
                "Bytes read from all sources.",
                g(&m.bytes_read),
            ),
            ("hubpulse_lines_total", "Log lines parsed.", g(&m.lines)),
            (
                "hubpulse_records_total",
                "Log records parsed (a record is a line plus its continuation lines).",
                g(&m.records),
            ),
            (
                "hubpulse_unparsed_records_total",
                "Records no catalogue entry or prefix grammar recognised (kept as kind unparsed).",
                g(&m.unparsed),
            ),
            (
                "hubpulse_truncated_lines_total",
                "Lines longer than max_line_bytes (kept truncated and flagged).",
                g(&m.truncated),
            ),
            (
                "hubpulse_lake_commits_total",
                "Lake commits (each durable before its sources' checkpoints advance).",
                g(&m.commits),
            ),
            (
                "hubpulse_lake_parts_published_total",
                "Parquet parts published into the lake.",
                g(&m.parts_published),
            ),
            (
                "hubpulse_lake_rows_published_total",
                "Rows published into the lake.",
                g(&m.rows_published),
            ),
            (
                "hubpulse_lake_compactions_total",
                "Partitions whose small parts were merged.",
                g(&m.compactions),
            ),
            (
                "hubpulse_lake_retention_dropped_partitions_total",
                "Partitions dropped by [lake.retention] (per table and day).",
                g(&m.retention_dropped),
            ),
            (
                "hubpulse_sources_attached_total",
                "Sources attached (files, stdin, pod-log streams).",
                g(&m.sources_attached),
            ),
            (
                "hubpulse_files_rotated_total",
                "Rotations seen (rename, delete or truncate of a followed file).",
                g(&m.files_rotated),
            ),
            (
                "hubpulse_rotation_lost_bytes_total",
                "Bytes truncated away before they could be read and not found in any followed copy.",
                g(&m.bytes_lost_rotation),
            ),
            (
                "hubpulse_resumed_from_other_file_total",
                "Sources resumed at an offset read through another file (a copy, or another path), after their bytes before it matched.",
                g(&m.resumed_other_file),
            ),
            (
                "hubpulse_dropped_records_total",
                "Records dropped. Always 0: sources block instead of dropping.",
                0,
            ),
            (
                "hubpulse_lake_write_retries_total",
                "Lake writes that failed for lack of space (ENOSPC, EDQUOT) and were tried again with the same rows.",
                g(&m.lake_write_retries),
            ),
        ]
    }

    fn read(m: &Metrics, now_unix_micros: i64) -> Own {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let last = g(&m.last_commit_unix);
        let age = if last == 0 {
            f64::NAN
        } else {
            (now_unix_micros as f64 / 1e6 - last as f64).max(0.0)
        };
        let gauges = [
            (
                "hubpulse_pending_records",
                "Records parsed and not yet committed to the lake.",
                g(&m.pending_records).into(),
            ),
            (
                "hubpulse_checkpoint_age_seconds",
                "Seconds since the last lake commit (checkpoint).",
                age.into(),
            ),
            (
                "hubpulse_ready",
                "1 once sources are attached and the lake is writable.",
                m.ready().into(),
            ),
            (
                "hubpulse_lake_write_stalled",
                "1 while lake writes fail for lack of space and are being retried (sources wait).",
                m.lake_stall().is_some().into(),
            ),
        ];
        let copy = |x: &Mutex<BTreeMap<&'static str, u64>>| {
            x.lock()
                .map(|x| x.iter().map(|(k, v)| (*k, *v)).collect())
                .unwrap_or_default()
        };
        let lag = m
            .newest
            .lock()
            .map(|n| {
                n.iter()
                    .map(|(src, ts)| {
                        let lag = ((now_unix_micros - ts) as f64 / 1e6).max(0.0);
                        (src.clone(), lag)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Own {
            counters: Own::counters(m),
            gauges,
            kinds: copy(&m.kinds),
            lag,
            errors: copy(&m.errors),
        }
    }
}

impl telemetry::Collector for Own {
    fn encode(&self, e: telemetry::DescriptorEncoder) -> std::fmt::Result {
        let mut f = telemetry::Families::new(e);
        for (name, help, v) in self.counters {
            f.counter(name, help, v)?;
        }
        for (name, help, v) in self.gauges {
            f.gauge(name, help, v)?;
        }
        f.counters(
            "hubpulse_records_by_kind_total",
            "Records parsed, by message kind.",
            self.kinds
                .iter()
                .map(|(k, v)| ([("kind", *k)], Value::from(*v))),
        )?;
        f.gauges(
            "hubpulse_source_lag_seconds",
            "Now minus the newest record's timestamp, per source.",
            self.lag
                .iter()
                .map(|(s, v)| ([("source", s.as_str())], Value::from(*v))),
        )?;
        f.counters(
            "hubpulse_errors_total",
            "Errors, by kind.",
            self.errors
                .iter()
                .map(|(k, v)| ([("kind", *k)], Value::from(*v))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.records.store(7, Ordering::Relaxed);
        m.kinds.lock().unwrap().insert("request", 5);
        m.newest
            .lock()
            .unwrap()
            .insert("/var/log/a \"b\".log".into(), 1_000_000);
        m.error("lake_commit");
        let t = m.render(3_000_000);
        assert!(t.contains("\nhubpulse_records_total 7\n"), "{t}");
        assert!(t.contains("hubpulse_records_by_kind_total{kind=\"request\"} 5\n"));
        assert!(t.contains("hubpulse_source_lag_seconds{source=\"/var/log/a \\\"b\\\".log\"} 2\n"));
        assert!(t.contains("hubpulse_errors_total{kind=\"lake_commit\"} 1\n"));
        assert!(t.contains("hubpulse_checkpoint_age_seconds NaN\n"));
    }
}
