//! The placeholder loop's Prometheus metrics, appended to the agent's `/metrics`. Labels are
//! bounded vocabularies (`action`, `reason`, `kind`), and with a set per profile the
//! `statefulset` the operator configured (a handful; never a user or pod name). One set renders
//! without the `statefulset` label, as before sets per profile.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::control::capacity::placeholder::Decision;

#[derive(Default)]
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

    /// Appends the Prometheus text.
    pub fn render(&self, o: &mut String) {
        render_all(&[self], o);
    }

    fn gauges(&self) -> [String; 6] {
        [
            self.current.load(Relaxed).to_string(),
            self.target.load(Relaxed).to_string(),
            f64::from_bits(self.peak.load(Relaxed)).to_string(),
            self.running.load(Relaxed).to_string(),
            self.pending.load(Relaxed).to_string(),
            self.last_cycle_unix.load(Relaxed).to_string(),
        ]
    }

    /// `{statefulset="…"}` or `{statefulset="…",` (with `more`), or nothing.
    fn labels(&self, more: bool) -> String {
        match (&self.set, more) {
            (Some(n), false) => format!("{{statefulset=\"{}\"}}", esc(n)),
            (Some(n), true) => format!("{{statefulset=\"{}\",", esc(n)),
            (None, false) => String::new(),
            (None, true) => "{".to_string(),
        }
    }
}

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The Prometheus text of several sets' counters: each family's HELP and TYPE once, then a line
/// per set.
pub fn render_all(all: &[&CapacityStats], o: &mut String) {
    let families: [(&str, &str); 6] = [
        (
            "hubpulse_capacity_replicas",
            "The placeholder StatefulSet's spec.replicas as last read.",
        ),
        (
            "hubpulse_capacity_target_replicas",
            "The replicas the last decision asked for.",
        ),
        (
            "hubpulse_capacity_forecast_peak_servers",
            "The forecast's peak of concurrent servers within the look-ahead.",
        ),
        (
            "hubpulse_capacity_user_pods_running",
            "Single-user pods running at the last cycle.",
        ),
        (
            "hubpulse_capacity_user_pods_pending",
            "Single-user pods pending at the last cycle.",
        ),
        (
            "hubpulse_capacity_last_cycle_timestamp_seconds",
            "When the last successful cycle decided (unix seconds; 0: none yet).",
        ),
    ];
    let values: Vec<[String; 6]> = all.iter().map(|s| s.gauges()).collect();
    for (i, (name, help)) in families.iter().enumerate() {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (s, v) in all.iter().zip(&values) {
            let _ = writeln!(o, "{name}{} {}", s.labels(false), v[i]);
        }
    }
    let name = "hubpulse_capacity_decisions_total";
    let _ = writeln!(
        o,
        "# HELP {name} Placeholder decisions by action and reason (one per cycle).\n# TYPE {name} counter"
    );
    for s in all {
        let l = s.labels(true);
        if let Ok(m) = s.decisions.lock() {
            for ((a, r), v) in m.iter() {
                let _ = writeln!(o, "{name}{l}action=\"{a}\",reason=\"{r}\"}} {v}");
            }
        }
    }
    let name = "hubpulse_capacity_errors_total";
    let _ = writeln!(
        o,
        "# HELP {name} Failed cycles by the call that failed.\n# TYPE {name} counter"
    );
    for s in all {
        let l = s.labels(true);
        if let Ok(m) = s.errors.lock() {
            for (k, v) in m.iter() {
                let _ = writeln!(o, "{name}{l}kind=\"{}\"}} {v}", k.replace(' ', "_"));
            }
        }
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
        let mut o = String::new();
        render_all(&[&a, &b], &mut o);
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
        let one = CapacityStats::default();
        one.error("lake");
        let mut o = String::new();
        one.render(&mut o);
        assert!(o.contains("\nhubpulse_capacity_replicas 0\n"));
        assert!(o.contains("\nhubpulse_capacity_errors_total{kind=\"lake\"} 1\n"));
    }
}
