//! The control loops' Prometheus metrics. Labels are bounded vocabularies (`action`, `reason`,
//! `outcome`, `kind`): never a user, server or profile name.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::telemetry::{self, Value};

#[derive(Debug, Default)]
pub struct ControlStats {
    pub decisions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    pub outcomes: Mutex<BTreeMap<&'static str, u64>>,
    pub passes: Mutex<BTreeMap<&'static str, u64>>,
    pub api_errors: Mutex<BTreeMap<&'static str, u64>>,
    pub admissions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    pub stream_stale: AtomicBool,
    pub running_servers: AtomicU64,
    pub last_reconcile_unix: AtomicU64,
    /// Sum (ms) and count of how late culls came after their deadline.
    pub lateness_ms_sum: AtomicU64,
    pub lateness_count: AtomicU64,
    /// Requests the control loops sent to the hub's API (shared with their clients).
    pub hub_requests: std::sync::Arc<AtomicU64>,
    /// Observation rows recorded, by kind (`server`, `gone`, `listing`).
    pub observations: Mutex<BTreeMap<&'static str, u64>>,
    /// Reads of the admission view (`admission_view`), by outcome (`ok`, `error`).
    pub view_reads: Mutex<BTreeMap<&'static str, u64>>,
    /// Milliseconds the last admission view read took.
    pub view_read_ms: AtomicU64,
    /// Admission requests waiting for a slot under `[admission] max_concurrent`.
    pub admission_waiting: AtomicU64,
}

fn inc<K: Ord>(m: &Mutex<BTreeMap<K, u64>>, k: K) {
    if let Ok(mut m) = m.lock() {
        *m.entry(k).or_default() += 1;
    }
}

impl ControlStats {
    pub fn decision(&self, action: &'static str, reason: &'static str) {
        inc(&self.decisions, (action, reason));
    }
    pub fn outcome(&self, o: &'static str) {
        inc(&self.outcomes, o);
    }
    pub fn pass(&self, kind: &'static str) {
        inc(&self.passes, kind);
    }
    pub fn api_error(&self, kind: &'static str) {
        inc(&self.api_errors, kind);
    }
    pub fn admission(&self, answer: &'static str, reason: &'static str) {
        inc(&self.admissions, (answer, reason));
    }
    pub fn admission_view_read(&self, took: std::time::Duration, ok: bool) {
        inc(&self.view_reads, if ok { "ok" } else { "error" });
        self.view_read_ms
            .store(took.as_millis() as u64, Ordering::Relaxed);
    }
    pub fn observation(&self, kind: &'static str) {
        inc(&self.observations, kind);
    }
    pub fn lateness(&self, seconds: f64) {
        self.lateness_ms_sum
            .fetch_add((seconds.max(0.0) * 1000.0) as u64, Ordering::Relaxed);
        self.lateness_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Appends the Prometheus text of these families alone.
    pub fn render(self: &std::sync::Arc<Self>, o: &mut String) {
        o.push_str(&telemetry::encode_one(self.clone()));
    }
}

/// The rows of a counter family keyed by one label.
fn singles(
    l: &'static str,
    m: &Mutex<BTreeMap<&'static str, u64>>,
) -> Vec<([(&'static str, &'static str); 1], Value)> {
    m.lock()
        .map(|m| m.iter().map(|(a, v)| ([(l, *a)], (*v).into())).collect())
        .unwrap_or_default()
}

/// The rows of a counter family keyed by two labels.
fn pairs(
    l: (&'static str, &'static str),
    m: &Mutex<BTreeMap<(&'static str, &'static str), u64>>,
) -> Vec<([(&'static str, &'static str); 2], Value)> {
    m.lock()
        .map(|m| {
            m.iter()
                .map(|((a, b), v)| ([(l.0, *a), (l.1, *b)], (*v).into()))
                .collect()
        })
        .unwrap_or_default()
}

impl telemetry::Collector for ControlStats {
    fn encode(&self, e: telemetry::DescriptorEncoder) -> std::fmt::Result {
        let mut f = telemetry::Families::new(e);
        f.counters(
            "hubpulse_cull_decisions_total",
            "Culler decisions recorded, by action and reason.",
            pairs(("action", "reason"), &self.decisions),
        )?;
        f.counters(
            "hubpulse_cull_stops_total",
            "Stop or delete requests the culler and quota loop made, by outcome.",
            singles("outcome", &self.outcomes),
        )?;
        f.counters(
            "hubpulse_cull_passes_total",
            "Culler passes, by kind (reconcile, deadline, once; cached: a wake-up rescheduled from the cached user without an API request).",
            singles("kind", &self.passes),
        )?;
        f.counters(
            "hubpulse_hub_api_errors_total",
            "Errors seen by the control loops, by kind (hub API error kinds; lake_write).",
            singles("kind", &self.api_errors),
        )?;
        f.counters(
            "hubpulse_hub_observations_total",
            "Hub observations recorded, by kind (server: a server's state changed; gone: a server stopped; listing: a complete listing).",
            singles("kind", &self.observations),
        )?;
        f.counters(
            "hubpulse_admission_decisions_total",
            "Admission answers, by answer and reason.",
            pairs(("answer", "reason"), &self.admissions),
        )?;
        f.counters(
            "hubpulse_admission_view_reads_total",
            "Reads of the hub's running servers and the month's usage behind admission answers, by outcome.",
            singles("outcome", &self.view_reads),
        )?;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        f.gauge(
            "hubpulse_admission_view_read_seconds",
            "How long the last admission view read took.",
            g(&self.view_read_ms) as f64 / 1000.0,
        )?;
        f.gauge(
            "hubpulse_admission_waiting",
            "Admission requests waiting for a slot (max_concurrent).",
            g(&self.admission_waiting),
        )?;
        f.gauge(
            "hubpulse_cull_stream_stale",
            "1 while the log stream is too stale to cull on.",
            self.stream_stale.load(Ordering::Relaxed),
        )?;
        f.gauge(
            "hubpulse_cull_running_servers",
            "Running servers at the last reconcile.",
            g(&self.running_servers),
        )?;
        f.gauge(
            "hubpulse_cull_last_reconcile_timestamp_seconds",
            "Unix time of the last successful reconcile.",
            g(&self.last_reconcile_unix),
        )?;
        // A sum and a count: a histogram with the +Inf bucket only (the encoder has no summary).
        f.histograms(
            "hubpulse_cull_lateness_seconds",
            "How late culls came after their deadline.",
            [(
                telemetry::NO_LABELS,
                telemetry::Histogram {
                    buckets: Vec::new(),
                    sum: g(&self.lateness_ms_sum) as f64 / 1000.0,
                    count: g(&self.lateness_count),
                },
            )],
        )?;
        f.counter(
            "hubpulse_hub_api_requests_total",
            "Requests the control loops and observations sent to the hub's API.",
            g(&self.hub_requests),
        )
    }
}
