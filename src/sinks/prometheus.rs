//! The derived JupyterHub metrics in the Prometheus text format, for `/metrics` (teams without
//! Datadog get the same numbers).
//!
//! Fed with the same closed [`Interval`]s the Datadog payloads are built from, so both agree.
//! Names: the Datadog name with `.` → `_`, plus `_total` for counts and `_seconds` for
//! second-valued metrics (`jupyterhub.requests` → `jupyterhub_requests_total`,
//! `jupyterhub.spawn.duration` → `jupyterhub_spawn_duration_seconds`, a histogram). Labels are
//! the Datadog tags, so they are bounded the same way (never a user name, IP or path).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::sinks::datadog::{
    Interval, METRICS, MetricDef, MetricType, Tag, Value as DdValue, metric_def,
};
use crate::telemetry::{Collector, DescriptorEncoder, Families, Histogram, Value};

/// Histogram bucket bounds, seconds: request latencies up to spawn and stop times.
pub const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

#[derive(Debug, Default, Clone)]
struct Hist {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

type Key = (&'static str, Vec<Tag>);

/// Cumulative counters, last gauges and histograms of every derived series.
#[derive(Debug, Default)]
pub struct PromState {
    counters: BTreeMap<Key, f64>,
    gauges: BTreeMap<Key, f64>,
    hists: BTreeMap<Key, Hist>,
}

/// The Prometheus name of a metric.
pub fn prom_name(def: &MetricDef) -> String {
    let mut n = def.name.replace('.', "_");
    if def.unit == "second" {
        n.push_str("_seconds");
    }
    if def.kind == MetricType::Count {
        n.push_str("_total");
    }
    n
}

impl PromState {
    pub fn observe(&mut self, iv: &Interval) {
        for p in &iv.points {
            let key = (p.metric, p.tags.clone());
            match &p.value {
                DdValue::Count(v) => *self.counters.entry(key).or_insert(0.0) += v,
                DdValue::Gauge(v) => {
                    self.gauges.insert(key, *v);
                }
                DdValue::Distribution(vs) => {
                    let h = self.hists.entry(key).or_default();
                    for v in vs.iter().filter(|v| v.is_finite()) {
                        h.count += 1;
                        h.sum += v;
                        if let Some(i) = BUCKETS.iter().position(|b| v <= b) {
                            h.buckets[i] += 1;
                        }
                    }
                }
            }
        }
    }

    /// Writes every metric seen so far (a metric with no series yet is left out).
    fn encode(&self, f: &mut Families) -> std::fmt::Result {
        for def in METRICS {
            let name = prom_name(def);
            match def.kind {
                MetricType::Count | MetricType::Rate => {
                    let rows = rows(&self.counters, def.name, |v| Value::from(*v));
                    if !rows.is_empty() {
                        f.counters(&name, def.description, rows)?;
                    }
                }
                MetricType::Gauge => {
                    let rows = rows(&self.gauges, def.name, |v| Value::from(*v));
                    if !rows.is_empty() {
                        f.gauges(&name, def.description, rows)?;
                    }
                }
                MetricType::Distribution => {
                    let rows = rows(&self.hists, def.name, |h| Histogram {
                        buckets: BUCKETS.iter().copied().zip(h.buckets).collect(),
                        sum: h.sum,
                        count: h.count,
                    });
                    if !rows.is_empty() {
                        f.histograms(&name, def.description, rows)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The derived metrics in the agent's registry: what the sink's collector has observed.
#[derive(Debug, Default, Clone)]
pub struct PromFamilies(pub Arc<Mutex<PromState>>);

impl Collector for PromFamilies {
    fn encode(&self, e: DescriptorEncoder) -> std::fmt::Result {
        match self.0.lock() {
            Ok(s) => s.encode(&mut Families::new(e)),
            Err(_) => Ok(()),
        }
    }
}

/// One metric's series: its tags as labels, and the value made from what was kept.
fn rows<'a, V, T>(
    m: &'a BTreeMap<Key, V>,
    metric: &'a str,
    value: impl Fn(&V) -> T,
) -> Vec<(Vec<(&'static str, &'a str)>, T)> {
    m.iter()
        .filter(|((n, _), _)| *n == metric && metric_def(n).is_some())
        .map(|((_, tags), v)| {
            let labels = tags.iter().map(|t| (t.key, t.value.as_str())).collect();
            (labels, value(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sinks::datadog::{Point, TagValue, names};

    fn tag(k: &'static str, v: &'static str) -> Tag {
        Tag {
            key: k,
            value: TagValue::Static(v),
        }
    }

    #[test]
    fn counts_accumulate_gauges_keep_the_last_and_distributions_are_histograms() {
        let mut s = PromState::default();
        for (start, n, running) in [(0, 2.0, 3.0), (10, 5.0, 1.0)] {
            s.observe(&Interval {
                start_s: start,
                len_s: 10,
                points: vec![
                    Point {
                        metric: names::REQUESTS,
                        tags: vec![tag("hub", "h"), tag("status_class", "2xx")],
                        value: DdValue::Count(n),
                    },
                    Point {
                        metric: names::SERVERS_RUNNING,
                        tags: vec![tag("hub", "h")],
                        value: DdValue::Gauge(running),
                    },
                    Point {
                        metric: names::SPAWN_DURATION,
                        tags: vec![tag("hub", "h")],
                        value: DdValue::Distribution(vec![0.2, 7.0]),
                    },
                ],
            });
        }
        let o = crate::telemetry::encode_one(PromFamilies(Arc::new(Mutex::new(s))));
        assert!(
            o.contains("# TYPE jupyterhub_requests_total counter\n"),
            "{o}"
        );
        assert!(o.contains("jupyterhub_requests_total{hub=\"h\",status_class=\"2xx\"} 7\n"));
        assert!(o.contains("jupyterhub_servers_running{hub=\"h\"} 1\n"));
        assert!(o.contains("jupyterhub_spawn_duration_seconds_bucket{hub=\"h\",le=\"0.25\"} 2\n"));
        assert!(o.contains("jupyterhub_spawn_duration_seconds_bucket{hub=\"h\",le=\"5\"} 2\n"));
        assert!(o.contains("jupyterhub_spawn_duration_seconds_bucket{hub=\"h\",le=\"+Inf\"} 4\n"));
        assert!(o.contains("jupyterhub_spawn_duration_seconds_count{hub=\"h\"} 4\n"));
    }
}
