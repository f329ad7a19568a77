//! The derived JupyterHub metrics in the Prometheus text format, for `/metrics` (teams without
//! Datadog get the same numbers).
//!
//! Fed with the same closed [`Interval`]s the Datadog payloads are built from, so both agree.
//! Names: the Datadog name with `.` → `_`, plus `_total` for counts and `_seconds` for
//! second-valued metrics (`jupyterhub.requests` → `jupyterhub_requests_total`,
//! `jupyterhub.spawn.duration` → `jupyterhub_spawn_duration_seconds`, a histogram). Labels are
//! the Datadog tags, so they are bounded the same way (never a user name, IP or path).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::sinks::datadog::{Interval, METRICS, MetricDef, MetricType, Tag, Value, metric_def};

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
                Value::Count(v) => *self.counters.entry(key).or_insert(0.0) += v,
                Value::Gauge(v) => {
                    self.gauges.insert(key, *v);
                }
                Value::Distribution(vs) => {
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

    /// Append the exposition of every metric seen so far.
    pub fn render(&self, o: &mut String) {
        for def in METRICS {
            let name = prom_name(def);
            let rows: Vec<(&Vec<Tag>, Row<'_>)> = match def.kind {
                MetricType::Count | MetricType::Rate => select(&self.counters, def.name)
                    .map(|(t, v)| (t, Row::Value(*v)))
                    .collect(),
                MetricType::Gauge => select(&self.gauges, def.name)
                    .map(|(t, v)| (t, Row::Value(*v)))
                    .collect(),
                MetricType::Distribution => select(&self.hists, def.name)
                    .map(|(t, h)| (t, Row::Hist(h)))
                    .collect(),
            };
            if rows.is_empty() {
                continue;
            }
            let ty = match def.kind {
                MetricType::Count | MetricType::Rate => "counter",
                MetricType::Gauge => "gauge",
                MetricType::Distribution => "histogram",
            };
            let _ = writeln!(o, "# HELP {name} {}", def.description);
            let _ = writeln!(o, "# TYPE {name} {ty}");
            for (tags, row) in rows {
                let labels = labels(tags, None);
                match row {
                    Row::Value(v) => {
                        let _ = writeln!(o, "{name}{labels} {v}");
                    }
                    Row::Hist(h) => {
                        let mut cum = 0;
                        for (b, n) in BUCKETS.iter().zip(h.buckets) {
                            cum += n;
                            let l = labels_le(tags, &b.to_string());
                            let _ = writeln!(o, "{name}_bucket{l} {cum}");
                        }
                        let l = labels_le(tags, "+Inf");
                        let _ = writeln!(o, "{name}_bucket{l} {}", h.count);
                        let _ = writeln!(o, "{name}_sum{labels} {}", h.sum);
                        let _ = writeln!(o, "{name}_count{labels} {}", h.count);
                    }
                }
            }
        }
    }
}

enum Row<'a> {
    Value(f64),
    Hist(&'a Hist),
}

fn select<'a, V>(
    m: &'a BTreeMap<Key, V>,
    metric: &'a str,
) -> impl Iterator<Item = (&'a Vec<Tag>, &'a V)> + 'a {
    m.iter()
        .filter(move |((n, _), _)| *n == metric && metric_def(n).is_some())
        .map(|((_, t), v)| (t, v))
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(tags: &[Tag], le: Option<&str>) -> String {
    let mut parts: Vec<String> = tags
        .iter()
        .map(|t| format!("{}=\"{}\"", t.key, escape(t.value.as_str())))
        .collect();
    if let Some(le) = le {
        parts.push(format!("le=\"{le}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

fn labels_le(tags: &[Tag], le: &str) -> String {
    labels(tags, Some(le))
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
                        value: Value::Count(n),
                    },
                    Point {
                        metric: names::SERVERS_RUNNING,
                        tags: vec![tag("hub", "h")],
                        value: Value::Gauge(running),
                    },
                    Point {
                        metric: names::SPAWN_DURATION,
                        tags: vec![tag("hub", "h")],
                        value: Value::Distribution(vec![0.2, 7.0]),
                    },
                ],
            });
        }
        let mut o = String::new();
        s.render(&mut o);
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
