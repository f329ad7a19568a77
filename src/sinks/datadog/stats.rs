//! The Datadog sink's own counters (`hubpulse_datadog_*` on `/metrics`): what was sent, retried,
//! split, and every point dropped, by a bounded reason.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sinks::datadog::payload;
use crate::sinks::datadog::spool::{Drop as SpoolDrop, Spool};

/// The sink's counters, on `/metrics`.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub intervals: AtomicU64,
    pub payloads_sent: AtomicU64,
    pub points_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub retries: AtomicU64,
    pub splits: AtomicU64,
    pub partial_failures: AtomicU64,
    pub spool_mem_bytes: AtomicU64,
    pub spool_mem_peak: AtomicU64,
    pub spool_disk_bytes: AtomicU64,
    pub spool_payloads: AtomicU64,
    pub dropped: Mutex<BTreeMap<&'static str, u64>>,
}

impl SinkStats {
    pub(crate) fn bump(&self, a: &AtomicU64) {
        a.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn sent(&self, p: &payload::Payload) {
        self.payloads_sent.fetch_add(1, Ordering::Relaxed);
        self.points_sent
            .fetch_add(p.points as u64, Ordering::Relaxed);
        self.bytes_sent
            .fetch_add(p.body.len() as u64, Ordering::Relaxed);
    }

    pub fn drop_points(&self, reason: &'static str, n: u64) {
        if let Ok(mut m) = self.dropped.lock() {
            *m.entry(reason).or_default() += n;
        }
    }

    /// Points dropped for `reason` so far.
    pub fn dropped(&self, reason: &str) -> u64 {
        self.dropped
            .lock()
            .map(|m| m.get(reason).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub(crate) fn spool(&self, s: &Spool) {
        let mem = s.mem_bytes() as u64;
        self.spool_mem_bytes.store(mem, Ordering::Relaxed);
        self.spool_mem_peak.fetch_max(mem, Ordering::Relaxed);
        self.spool_disk_bytes
            .store(s.disk_bytes(), Ordering::Relaxed);
        self.spool_payloads.store(s.len() as u64, Ordering::Relaxed);
    }

    pub(crate) fn drops(&self, d: Vec<SpoolDrop>) {
        for x in d {
            self.drop_points(x.reason, x.points);
        }
    }
}

/// `hubpulse_datadog_*`, in the agent's registry.
impl crate::telemetry::Collector for SinkStats {
    fn encode(&self, e: crate::telemetry::DescriptorEncoder) -> std::fmt::Result {
        use crate::telemetry::{Families, Value};
        let g = |a: &AtomicU64| Value::from(a.load(Ordering::Relaxed));
        let mut f = Families::new(e);
        let counters = [
            (
                "hubpulse_datadog_intervals_total",
                "Flush intervals derived from the records.",
                &self.intervals,
            ),
            (
                "hubpulse_datadog_payloads_sent_total",
                "Payloads Datadog accepted (202).",
                &self.payloads_sent,
            ),
            (
                "hubpulse_datadog_points_sent_total",
                "Points in the payloads Datadog accepted.",
                &self.points_sent,
            ),
            (
                "hubpulse_datadog_bytes_sent_total",
                "Compressed bytes of the payloads Datadog accepted.",
                &self.bytes_sent,
            ),
            (
                "hubpulse_datadog_retries_total",
                "Attempts answered 408, 429, 5xx or not at all, to be retried.",
                &self.retries,
            ),
            (
                "hubpulse_datadog_splits_total",
                "Payloads split in two after a 413.",
                &self.splits,
            ),
            (
                "hubpulse_datadog_partial_failures_total",
                "Payloads accepted with errors (202 carrying errors).",
                &self.partial_failures,
            ),
        ];
        for (name, help, v) in counters {
            f.counter(name, help, g(v))?;
        }
        f.gauge(
            "hubpulse_datadog_spool_memory_bytes",
            "Payload bytes waiting in memory.",
            g(&self.spool_mem_bytes),
        )?;
        f.gauge(
            "hubpulse_datadog_spool_disk_bytes",
            "Payload bytes waiting on disk.",
            g(&self.spool_disk_bytes),
        )?;
        let dropped: Vec<_> = self
            .dropped
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(reason, v)| ([("reason", *reason)], Value::from(*v)))
                    .collect()
            })
            .unwrap_or_default();
        f.counters(
            "hubpulse_datadog_dropped_points_total",
            "Points that will never reach Datadog, by reason.",
            dropped,
        )
    }
}
