//! The placeholder loop's Prometheus metrics, in the agent's registry (`/metrics`). Labels are
//! bounded vocabularies (`action`, `reason`, `kind`), and with a set per profile the
//! `statefulset` the operator configured (a handful; never a user or pod name). One set renders
//! without the `statefulset` label, as before sets per profile.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::control::capacity::placeholder::Decision;
use crate::telemetry::{self, Value};

#[derive(Debug, Default)]
pub struct CapacityStats {
    /// The set's name, as the `statefulset` label (`None`: no label).
    set: Option<String>,
    current: AtomicI64,
    target: AtomicI64,
    /// f64 bits.
    peak: AtomicU64,
    running: AtomicU64,
    pending: AtomicU64,
    last_cycle_unix: AtomicI64,
    decisions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl CapacityStats {
    /// The counters of one set among several (labelled `statefulset="NAME"`).
    pub fn for_set(name: &str) -> Self {
        CapacityStats {
            set: Some(name.to_string()),
            ..CapacityStats::default()
        }
    }

    /// A cycle's decision at `unix` seconds.
    pub fn decided(&self, d: &Decision, unix: i64) {
        self.current.store(d.current.into(), Relaxed);
        self.target.store(d.target.into(), Relaxed);
        self.peak.store(d.peak.to_bits(), Relaxed);
        self.running.store(d.observed.running.into(), Relaxed);
        self.pending.store(d.observed.pending.into(), Relaxed);
        self.last_cycle_unix.store(unix, Relaxed);
        if let Ok(mut m) = self.decisions.lock() {
            *m.entry((d.action.label(), d.reason.label())).or_default() += 1;
        }
    }

    pub fn error(&self, kind: &'static str) {
        if let Ok(mut m) = self.errors.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    /// Appends the Prometheus text of this set's families alone.
    pub fn render(self: &Arc<Self>, o: &mut String) {
        o.push_str(&telemetry::encode_one(CapacitySets(vec![self.clone()])));
    }

    /// The `statefulset` label, if any, then `more`.
    fn labels(&self, more: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
        let set = self.set.iter().map(|n| ("statefulset", n.clone()));
        set.chain(more.iter().map(|(k, v)| (*k, v.to_string())))
            .collect()
    }
}

/// How a gauge is read from a set's counters.
type Read = fn(&CapacityStats) -> Value;

/// Several sets' counters: each family once, then a series per set.
#[derive(Debug)]
pub struct CapacitySets(pub Vec<Arc<CapacityStats>>);

impl telemetry::Collector for CapacitySets {
    fn encode(&self, e: telemetry::DescriptorEncoder) -> std::fmt::Result {
        let gauges: [(&str, &str, Read); 6] = [
            (
                "hubpulse_capacity_replicas",
                "The placeholder StatefulSet's spec.replicas as last read.",
                |s| s.current.load(Relaxed).into(),
            ),
            (
                "hubpulse_capacity_target_replicas",
                "The replicas the last decision asked for.",
                |s| s.target.load(Relaxed).into(),
            ),
            (
                "hubpulse_capacity_forecast_peak_servers",
                "The forecast's peak of concurrent servers within the look-ahead.",
                |s| f64::from_bits(s.peak.load(Relaxed)).into(),
            ),
            (
                "hubpulse_capacity_user_pods_running",
                "Single-user pods running at the last cycle.",
                |s| s.running.load(Relaxed).into(),
            ),
            (
                "hubpulse_capacity_user_pods_pending",
                "Single-user pods pending at the last cycle.",
                |s| s.pending.load(Relaxed).into(),
            ),
            (
                "hubpulse_capacity_last_cycle_timestamp_seconds",
                "When the last successful cycle decided (unix seconds; 0: none yet).",
                |s| s.last_cycle_unix.load(Relaxed).into(),
            ),
        ];
        let mut f = telemetry::Families::new(e);
        for (name, help, read) in gauges {
            f.gauges(name, help, self.0.iter().map(|s| (s.labels(&[]), read(s))))?;
        }
        let mut decisions = Vec::new();
        let mut errors = Vec::new();
        for s in &self.0 {
            if let Ok(m) = s.decisions.lock() {
                for ((a, r), v) in m.iter() {
                    decisions.push((s.labels(&[("action", a), ("reason", r)]), (*v).into()));
                }
            }
            if let Ok(m) = s.errors.lock() {
                for (k, v) in m.iter() {
                    let kind = k.replace(' ', "_");
                    errors.push((s.labels(&[("kind", &kind)]), (*v).into()));
                }
            }
        }
        f.counters(
            "hubpulse_capacity_decisions_total",
            "Placeholder decisions by action and reason (one per cycle).",
            decisions,
        )?;
        f.counters(
            "hubpulse_capacity_errors_total",
            "Failed cycles by the call that failed.",
            errors,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sets_share_one_help_line_per_family_and_carry_their_name() {
        let (a, b) = (
            CapacityStats::for_set("user-placeholder"),
            CapacityStats::for_set("user-placeholder-gpu"),
        );
        a.error("get statefulset scale");
        let o = telemetry::encode_one(CapacitySets(vec![Arc::new(a), Arc::new(b)]));
        assert_eq!(
            o.matches("# TYPE hubpulse_capacity_replicas gauge").count(),
            1
        );
        assert!(o.contains("\nhubpulse_capacity_replicas{statefulset=\"user-placeholder\"} 0\n"));
        assert!(
            o.contains("\nhubpulse_capacity_replicas{statefulset=\"user-placeholder-gpu\"} 0\n")
        );
        assert!(o.contains(
            "hubpulse_capacity_errors_total{statefulset=\"user-placeholder\",kind=\"get_statefulset_scale\"} 1"
        ));
        let one = Arc::new(CapacityStats::default());
        one.error("lake");
        let mut o = String::new();
        one.render(&mut o);
        assert!(o.contains("\nhubpulse_capacity_replicas 0\n"));
        assert!(o.contains("\nhubpulse_capacity_errors_total{kind=\"lake\"} 1\n"));
    }

    /// A set name is the operator's text: a quote, a backslash or a newline in it is escaped and
    /// the sample stays on one line (the hand-written renderer left the newline raw).
    #[test]
    fn a_set_name_is_escaped() {
        let s = Arc::new(CapacityStats::for_set("odd\"set\\\nnext"));
        s.error("lake");
        let mut o = String::new();
        s.render(&mut o);
        assert!(
            o.lines().any(|l| l
                == "hubpulse_capacity_errors_total{statefulset=\"odd\\\"set\\\\\\nnext\",kind=\"lake\"} 1"),
            "{o}"
        );
        assert!(
            o.lines()
                .all(|l| l.starts_with("# ") || l.starts_with("hubpulse_capacity_")),
            "a sample broken over two lines:\n{o}"
        );
    }
}
