//! The placeholder loop's Prometheus metrics, appended to the agent's `/metrics`. Labels are
//! bounded vocabularies (`action`, `reason`, `kind`): never a StatefulSet or profile name (one
//! loop per agent).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use super::placeholder::Decision;

#[derive(Default)]
pub struct CapacityStats {
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

    /// Appends the Prometheus text.
    pub fn render(&self, o: &mut String) {
        let gauges: [(&str, &str, String); 6] = [
            (
                "hubpulse_capacity_replicas",
                "The placeholder StatefulSet's spec.replicas as last read.",
                self.current.load(Relaxed).to_string(),
            ),
            (
                "hubpulse_capacity_target_replicas",
                "The replicas the last decision asked for.",
                self.target.load(Relaxed).to_string(),
            ),
            (
                "hubpulse_capacity_forecast_peak_servers",
                "The forecast's peak of concurrent servers within the look-ahead.",
                f64::from_bits(self.peak.load(Relaxed)).to_string(),
            ),
            (
                "hubpulse_capacity_user_pods_running",
                "Single-user pods running at the last cycle.",
                self.running.load(Relaxed).to_string(),
            ),
            (
                "hubpulse_capacity_user_pods_pending",
                "Single-user pods pending at the last cycle.",
                self.pending.load(Relaxed).to_string(),
            ),
            (
                "hubpulse_capacity_last_cycle_timestamp_seconds",
                "When the last successful cycle decided (unix seconds; 0: none yet).",
                self.last_cycle_unix.load(Relaxed).to_string(),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let name = "hubpulse_capacity_decisions_total";
        let _ = writeln!(
            o,
            "# HELP {name} Placeholder decisions by action and reason (one per cycle).\n# TYPE {name} counter"
        );
        if let Ok(m) = self.decisions.lock() {
            for ((a, r), v) in m.iter() {
                let _ = writeln!(o, "{name}{{action=\"{a}\",reason=\"{r}\"}} {v}");
            }
        }
        let name = "hubpulse_capacity_errors_total";
        let _ = writeln!(
            o,
            "# HELP {name} Failed cycles by the call that failed.\n# TYPE {name} counter"
        );
        if let Ok(m) = self.errors.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(o, "{name}{{kind=\"{}\"}} {v}", k.replace(' ', "_"));
            }
        }
    }
}
