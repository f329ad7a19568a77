//! Self-monitoring: the agent's counters and gauges, rendered in the Prometheus text format
//! (version 0.0.4) for `/metrics`.
//!
//! Hot counters are atomics; per-kind and per-source maps are published by the pipeline at each
//! tick (never per record). Labels are bounded: record kinds come from the catalogue, sources
//! are the configured files/streams, error kinds are a fixed vocabulary. No user name, IP or
//! request path ever becomes a label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[derive(Default)]
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
    /// The Kubernetes pod-log source's counters, when it runs.
    pub kube: Mutex<Option<std::sync::Arc<crate::sources::kube::KubeStats>>>,
    /// More sections appended to the exposition by other components (the Datadog sink's
    /// counters and the derived `jupyterhub_*` metrics); each writes whole metric families.
    pub extra: Mutex<Vec<Extra>>,
    /// The culler's and quotas' counters, when they run.
    pub control: Mutex<Option<std::sync::Arc<crate::control::metrics::ControlStats>>>,
    /// What the hub's API last said of its users' activity (the observations), shared by the
    /// control loops that read the hub and the metrics that count active users.
    pub hub_activity: std::sync::Arc<crate::hub::activity::ActivityView>,
    /// The HTTP server's connection counters.
    pub http: std::sync::Arc<crate::agent::http::limits::HttpStats>,
    /// Lake writes that failed for lack of space (ENOSPC, EDQUOT) and were tried again.
    pub lake_write_retries: AtomicU64,
    /// While lake writes fail and are being retried: why, in one line (`/healthz` shows it).
    pub lake_stalled: Mutex<Option<String>>,
}

/// A renderer of extra metric families for `/metrics`.
pub type Extra = std::sync::Arc<dyn Fn(&mut String) + Send + Sync>;

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

    /// The Prometheus text exposition.
    pub fn render(&self, now_unix_micros: i64) -> String {
        let mut o = String::with_capacity(4096);
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let counters: [(&str, &str, u64); 15] = [
            (
                "hubpulse_bytes_read_total",
                "Bytes read from all sources.",
                g(&self.bytes_read),
            ),
            ("hubpulse_lines_total", "Log lines parsed.", g(&self.lines)),
            (
                "hubpulse_records_total",
                "Log records parsed (a record is a line plus its continuation lines).",
                g(&self.records),
            ),
            (
                "hubpulse_unparsed_records_total",
                "Records no catalogue entry or prefix grammar recognised (kept as kind unparsed).",
                g(&self.unparsed),
            ),
            (
                "hubpulse_truncated_lines_total",
                "Lines longer than max_line_bytes (kept truncated and flagged).",
                g(&self.truncated),
            ),
            (
                "hubpulse_lake_commits_total",
                "Lake commits (each durable before its sources' checkpoints advance).",
                g(&self.commits),
            ),
            (
                "hubpulse_lake_parts_published_total",
                "Parquet parts published into the lake.",
                g(&self.parts_published),
            ),
            (
                "hubpulse_lake_rows_published_total",
                "Rows published into the lake.",
                g(&self.rows_published),
            ),
            (
                "hubpulse_lake_compactions_total",
                "Partitions whose small parts were merged.",
                g(&self.compactions),
            ),
            (
                "hubpulse_lake_retention_dropped_partitions_total",
                "Partitions dropped by [lake.retention] (per table and day).",
                g(&self.retention_dropped),
            ),
            (
                "hubpulse_sources_attached_total",
                "Sources attached (files, stdin, pod-log streams).",
                g(&self.sources_attached),
            ),
            (
                "hubpulse_files_rotated_total",
                "Rotations seen (rename, delete or truncate of a followed file).",
                g(&self.files_rotated),
            ),
            (
                "hubpulse_rotation_lost_bytes_total",
                "Bytes truncated away before they could be read and not found in any followed copy.",
                g(&self.bytes_lost_rotation),
            ),
            (
                "hubpulse_resumed_from_other_file_total",
                "Sources resumed at an offset read through another file (a copy, or another path), after their bytes before it matched.",
                g(&self.resumed_other_file),
            ),
            (
                "hubpulse_dropped_records_total",
                "Records dropped. Always 0: sources block instead of dropping.",
                0,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        let pending = g(&self.pending_records);
        let _ = writeln!(
            o,
            "# HELP hubpulse_pending_records Records parsed and not yet committed to the lake.\n# TYPE hubpulse_pending_records gauge\nhubpulse_pending_records {pending}"
        );
        let last = g(&self.last_commit_unix);
        let age = if last == 0 {
            f64::NAN
        } else {
            (now_unix_micros as f64 / 1e6 - last as f64).max(0.0)
        };
        let _ = writeln!(
            o,
            "# HELP hubpulse_checkpoint_age_seconds Seconds since the last lake commit (checkpoint).\n# TYPE hubpulse_checkpoint_age_seconds gauge\nhubpulse_checkpoint_age_seconds {age}"
        );
        let ready = self.ready() as u8;
        let _ = writeln!(
            o,
            "# HELP hubpulse_ready 1 once sources are attached and the lake is writable.\n# TYPE hubpulse_ready gauge\nhubpulse_ready {ready}"
        );
        let retries = g(&self.lake_write_retries);
        let stalled = self.lake_stall().is_some() as u8;
        let _ = writeln!(
            o,
            "# HELP hubpulse_lake_write_retries_total Lake writes that failed for lack of space (ENOSPC, EDQUOT) and were tried again with the same rows.\n# TYPE hubpulse_lake_write_retries_total counter\nhubpulse_lake_write_retries_total {retries}\n# HELP hubpulse_lake_write_stalled 1 while lake writes fail for lack of space and are being retried (sources wait).\n# TYPE hubpulse_lake_write_stalled gauge\nhubpulse_lake_write_stalled {stalled}"
        );
        self.http.render(&mut o);
        o.push_str("# HELP hubpulse_records_by_kind_total Records parsed, by message kind.\n# TYPE hubpulse_records_by_kind_total counter\n");
        if let Ok(k) = self.kinds.lock() {
            for (kind, v) in k.iter() {
                let _ = writeln!(o, "hubpulse_records_by_kind_total{{kind=\"{kind}\"}} {v}");
            }
        }
        o.push_str("# HELP hubpulse_source_lag_seconds Now minus the newest record's timestamp, per source.\n# TYPE hubpulse_source_lag_seconds gauge\n");
        if let Ok(n) = self.newest.lock() {
            for (src, ts) in n.iter() {
                let lag = ((now_unix_micros - ts) as f64 / 1e6).max(0.0);
                let _ = writeln!(
                    o,
                    "hubpulse_source_lag_seconds{{source=\"{}\"}} {lag}",
                    escape(src)
                );
            }
        }
        o.push_str(
            "# HELP hubpulse_errors_total Errors, by kind.\n# TYPE hubpulse_errors_total counter\n",
        );
        if let Ok(e) = self.errors.lock() {
            for (kind, v) in e.iter() {
                let _ = writeln!(o, "hubpulse_errors_total{{kind=\"{kind}\"}} {v}");
            }
        }
        if let Ok(extra) = self.extra.lock() {
            for f in extra.iter() {
                f(&mut o);
            }
        }
        if let Ok(c) = self.control.lock()
            && let Some(c) = c.as_ref()
        {
            c.render(&mut o);
        }
        o
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
