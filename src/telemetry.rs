//! Self-monitoring's one mechanism: the registry behind `/metrics` and its encoding in the
//! Prometheus text format (version 0.0.4), built on `prometheus-client`.
//!
//! Every component keeps its own metric families next to its code: a [`Collector`] that reads
//! the component's counters at scrape time and writes them through [`Families`]. It registers
//! that collector once into the agent's [`Registry`], which `/metrics` encodes. The crate writes
//! the `HELP` and `TYPE` lines, the `_total` of counters and the escaping of label values
//! (backslash, double quote, newline): nothing formats exposition text by hand.
//!
//! Labels are bounded vocabularies or names the operator configured (files, StatefulSets):
//! never a user name, IP or request path.
//!
//! A bottom layer: it imports nothing else from the crate.

use std::fmt;
use std::sync::Mutex;

pub use prometheus_client::collector::Collector;
pub use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::{
    CounterValueEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, GaugeValueEncoder,
    NoLabelSet,
};
use prometheus_client::metrics::MetricType;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The agent's metrics registry: every component registers its families here, `/metrics`
/// encodes them all.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<prometheus_client::registry::Registry>,
}

impl Registry {
    /// Adds a component's families; they are read at every scrape from then on.
    pub fn register(&self, families: impl Collector) {
        if let Ok(mut r) = self.inner.lock() {
            r.register_collector(Box::new(families));
        }
    }

    /// Appends the exposition of every registered family to `out`.
    pub fn encode(&self, out: &mut String) {
        if let Ok(r) = self.inner.lock()
            && let Err(e) = prometheus_text::encode(out, &r)
        {
            tracing::warn!(error = %e, "metrics: a family failed to encode");
        }
    }
}

/// The exposition of one component's families alone (its own view; tests).
pub fn encode_one(families: impl Collector) -> String {
    let r = Registry::default();
    r.register(families);
    let mut out = String::new();
    r.encode(&mut out);
    out
}

/// A sample's value. A whole number is written without a fraction (`7`, not `7.0`) whatever
/// its type, as hubpulse always wrote them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
}

impl Value {
    /// Whole floats (within f64's exact integers) as integers.
    fn normal(self) -> Value {
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        match self {
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() <= EXACT => {
                Value::Int(f as i64)
            }
            v => v,
        }
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(v.into())
    }
}

impl EncodeGaugeValue for Value {
    fn encode(&self, e: &mut GaugeValueEncoder) -> fmt::Result {
        match self.normal() {
            Value::Int(i) => EncodeGaugeValue::encode(&i, e),
            Value::Float(f) => EncodeGaugeValue::encode(&f, e),
        }
    }
}

impl EncodeCounterValue for Value {
    fn encode(&self, e: &mut CounterValueEncoder) -> fmt::Result {
        match self.normal() {
            Value::Int(i) if i >= 0 => EncodeCounterValue::encode(&(i as u64), e),
            Value::Int(i) => EncodeCounterValue::encode(&(i as f64), e),
            Value::Float(f) => EncodeCounterValue::encode(&f, e),
        }
    }
}

/// One histogram series: its buckets as (upper bound, observations in that bucket only, not
/// cumulative), the sum and the count. The `+Inf` bucket is the count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

/// No labels (a family with one series).
pub const NO_LABELS: [(&str, &str); 0] = [];

/// Writes metric families into a scrape: what every component's [`Collector`] uses.
///
/// Names are the exposed names; a counter's ends in `_total` (the encoder writes that suffix
/// itself, so it is taken off here and comes back identical).
pub struct Families<'a>(DescriptorEncoder<'a>);

impl<'a> Families<'a> {
    pub fn new(e: DescriptorEncoder<'a>) -> Self {
        Families(e)
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, v: impl Into<Value>) -> fmt::Result {
        self.counters(name, help, [(NO_LABELS, v.into())])
    }

    /// A counter family: one series per label set (in the order given).
    pub fn counters<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (L, Value)>,
    ) -> fmt::Result {
        debug_assert!(name.ends_with("_total"), "counter {name} without _total");
        let base = name.strip_suffix("_total").unwrap_or(name);
        let mut m = self
            .0
            .encode_descriptor(base, help, None, MetricType::Counter)?;
        for (labels, v) in rows {
            m.encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
        Ok(())
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, v: impl Into<Value>) -> fmt::Result {
        self.gauges(name, help, [(NO_LABELS, v.into())])
    }

    /// A gauge family: one series per label set (in the order given).
    pub fn gauges<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (L, Value)>,
    ) -> fmt::Result {
        let mut m = self
            .0
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, v) in rows {
            m.encode_family(&labels)?.encode_gauge(&v)?;
        }
        Ok(())
    }

    /// A histogram family: one series per label set (in the order given).
    pub fn histograms<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        rows: impl IntoIterator<Item = (L, Histogram)>,
    ) -> fmt::Result {
        let mut m = self
            .0
            .encode_descriptor(name, help, None, MetricType::Histogram)?;
        for (labels, h) in rows {
            m.encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug)]
    struct Sample(String);

    impl Collector for Sample {
        fn encode(&self, e: DescriptorEncoder) -> fmt::Result {
            let mut f = Families::new(e);
            f.counter("t_requests_total", "Requests.", 7u64)?;
            f.counters(
                "t_errors_total",
                "Errors, by kind.",
                [
                    ([("kind", "a")], Value::from(2.0)),
                    ([("kind", "b")], 0u64.into()),
                ],
            )?;
            f.gauge("t_age_seconds", "Age.", f64::NAN)?;
            f.gauge("t_ratio", "Ratio.", 0.25)?;
            f.gauges(
                "t_lag_seconds",
                "Lag.",
                [([("source", self.0.as_str())], 2.0.into())],
            )?;
            f.histograms(
                "t_wait_seconds",
                "Waits.",
                [(
                    [("reason", "x")],
                    Histogram {
                        buckets: vec![(0.5, 1), (5.0, 2)],
                        sum: 7.5,
                        count: 4,
                    },
                )],
            )
        }
    }

    #[test]
    fn families_keep_their_names_types_and_whole_values() {
        let t = encode_one(Sample("plain".into()));
        for line in [
            "# HELP t_requests_total Requests.",
            "# TYPE t_requests_total counter",
            "t_requests_total 7",
            "# TYPE t_errors_total counter",
            "t_errors_total{kind=\"a\"} 2",
            "t_errors_total{kind=\"b\"} 0",
            "# TYPE t_age_seconds gauge",
            "t_age_seconds NaN",
            "t_ratio 0.25",
            "t_lag_seconds{source=\"plain\"} 2",
            "# TYPE t_wait_seconds histogram",
            "t_wait_seconds_bucket{reason=\"x\",le=\"0.5\"} 1",
            "t_wait_seconds_bucket{reason=\"x\",le=\"5\"} 3",
            "t_wait_seconds_bucket{reason=\"x\",le=\"+Inf\"} 4",
            "t_wait_seconds_sum{reason=\"x\"} 7.5",
            "t_wait_seconds_count{reason=\"x\"} 4",
        ] {
            assert!(t.lines().any(|l| l == line), "{line:?} not in\n{t}");
        }
        assert!(
            !t.contains("# EOF"),
            "the Prometheus text format has no EOF marker"
        );
    }

    /// A label value with a backslash, a double quote and a newline stays on its sample's line,
    /// escaped (the capacity metrics' hand-written escaping left the newline raw, which broke
    /// the line in two and the scrape with it).
    #[test]
    fn label_values_are_escaped() {
        let t = encode_one(Sample("a\\b \"c\"\nd".into()));
        assert!(
            t.lines()
                .any(|l| l == "t_lag_seconds{source=\"a\\\\b \\\"c\\\"\\nd\"} 2"),
            "{t}"
        );
        // every line is a comment or a whole sample: name, labels, value
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            assert!(l.starts_with("t_"), "a broken line: {l:?} in\n{t}");
        }
    }

    #[test]
    fn one_registry_encodes_every_component() {
        let r = Registry::default();
        r.register(Sample("one".into()));
        r.register(Sample("two".into()));
        let mut t = String::new();
        r.encode(&mut t);
        assert!(t.contains("t_lag_seconds{source=\"one\"} 2\n"), "{t}");
        assert!(t.contains("t_lag_seconds{source=\"two\"} 2\n"), "{t}");
    }
}
