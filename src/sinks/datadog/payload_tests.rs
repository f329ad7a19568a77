#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::HashSet;

use super::*;
use crate::sinks::datadog::{Point, Tag, TagValue, names};

fn tag(k: &'static str, v: &'static str) -> Tag {
    Tag {
        key: k,
        value: TagValue::Static(v),
    }
}

fn iv(start_s: i64, points: Vec<Point>) -> Interval {
    Interval {
        start_s,
        len_s: 10,
        points,
    }
}

fn decode(p: &Payload) -> serde_json::Value {
    let raw = p.codec.decompress(&p.body).unwrap();
    assert_eq!(raw.len(), p.uncompressed_len);
    serde_json::from_slice(&raw).unwrap()
}

fn many_counts(n: usize, start_s: i64) -> Interval {
    let points = (0..n)
        .map(|i| Point {
            metric: names::REQUESTS,
            tags: vec![Tag {
                key: "route_group",
                value: TagValue::Shared(format!("g{i:07}").into()),
            }],
            value: Value::Count(i as f64),
        })
        .collect();
    iv(start_s, points)
}

#[test]
fn series_shape_follows_the_spec() {
    let ivs = [iv(
        1_000,
        vec![
            Point {
                metric: names::REQUESTS,
                tags: vec![tag("status_class", "2xx")],
                value: Value::Count(3.0),
            },
            Point {
                metric: names::SPAWNS_PENDING,
                tags: vec![],
                value: Value::Gauge(2.0),
            },
        ],
    )];
    let mut cfg = PayloadConfig::new("hub-1");
    cfg.tags = vec!["hubpulse_instance:a".into()];
    let b = build(&ivs, &cfg).unwrap();
    assert_eq!(b.payloads.len(), 1);
    let body = decode(&b.payloads[0]);
    let s = &body["series"];
    assert_eq!(s[0]["metric"], "jupyterhub.requests");
    assert_eq!(s[0]["type"], 1);
    assert_eq!(s[0]["interval"], 10);
    assert_eq!(s[0]["points"][0]["timestamp"], 1000);
    assert_eq!(s[0]["resources"][0]["name"], "hub-1");
    assert_eq!(
        s[0]["tags"],
        serde_json::json!(["hubpulse_instance:a", "status_class:2xx"])
    );
    assert_eq!(s[1]["type"], 3);
    assert!(s[1].get("interval").is_none(), "gauges carry no interval");
}

#[test]
fn same_series_same_second_is_merged_not_sent_twice() {
    let p = |v| Point {
        metric: names::REQUESTS,
        tags: vec![],
        value: Value::Count(v),
    };
    let g = |v| Point {
        metric: names::SPAWNS_PENDING,
        tags: vec![],
        value: Value::Gauge(v),
    };
    let ivs = [
        iv(10, vec![p(1.0), g(1.0)]),
        iv(10, vec![p(2.0), g(5.0)]),
        iv(20, vec![p(4.0)]),
    ];
    let b = build(&ivs, &PayloadConfig::new("h")).unwrap();
    let body = decode(&b.payloads[0]);
    let req = &body["series"][0];
    assert_eq!(
        req["points"],
        serde_json::json!([{"timestamp":10,"value":3.0},{"timestamp":20,"value":4.0}])
    );
    assert_eq!(
        body["series"][1]["points"],
        serde_json::json!([{"timestamp":10,"value":5.0}])
    );
}

#[test]
fn only_the_specs_encodings_are_accepted() {
    let mut cfg = PayloadConfig::new("h");
    cfg.distribution_codec = Codec::Zstd1;
    assert!(matches!(build(&[], &cfg), Err(PayloadError::Codec { .. })));
    for c in [Codec::Deflate, Codec::Gzip, Codec::Zstd1] {
        let data = b"{\"series\":[]}".repeat(100);
        assert_eq!(c.decompress(&c.compress(&data).unwrap()).unwrap(), data);
    }
}

#[test]
fn bursts_are_split_within_both_limits_and_nothing_is_lost() {
    let limits = Limits {
        max_compressed: 20_000,
        max_uncompressed: 60_000,
    };
    for codec in [Codec::Deflate, Codec::Zstd1, Codec::Gzip] {
        let mut cfg = PayloadConfig::new("h");
        cfg.series_codec = codec;
        cfg.limits = limits;
        let b = build(&[many_counts(5_000, 100)], &cfg).unwrap();
        assert!(
            b.payloads.len() > 3,
            "{codec:?}: {} payloads",
            b.payloads.len()
        );
        let mut names = HashSet::new();
        for p in &b.payloads {
            assert!(
                p.body.len() <= limits.max_compressed,
                "{codec:?} {}",
                p.body.len()
            );
            assert!(p.uncompressed_len <= limits.max_uncompressed);
            for s in decode(p)["series"].as_array().unwrap() {
                assert!(
                    names.insert(s["tags"][0].as_str().unwrap().to_string()),
                    "series twice"
                );
            }
        }
        assert_eq!(names.len(), 5_000);
        assert_eq!((b.dropped_series, b.dropped_values), (0, 0));
    }
}

#[test]
fn incompressible_batches_are_halved_by_measured_size() {
    // Random-looking tags compress badly: the compressed limit binds before the uncompressed one.
    let limits = Limits {
        max_compressed: 8_000,
        max_uncompressed: 1_000_000,
    };
    let mut cfg = PayloadConfig::new("h");
    cfg.limits = limits;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let points = (0..3_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Point {
                metric: names::REQUESTS,
                tags: vec![Tag {
                    key: "route_group",
                    value: TagValue::Shared(format!("{x:016x}").into()),
                }],
                value: Value::Count((x % 1000) as f64),
            }
        })
        .collect();
    let b = build(&[iv(0, points)], &cfg).unwrap();
    let n: usize = b.payloads.iter().map(|p| p.series).sum();
    assert_eq!(n, 3_000);
    assert!(
        b.payloads
            .iter()
            .all(|p| p.body.len() <= limits.max_compressed)
    );
}

#[test]
fn a_huge_distribution_spreads_over_distinct_seconds_of_its_interval() {
    let mut cfg = PayloadConfig::new("h");
    cfg.max_values_per_point = 1_000;
    let values: Vec<f64> = (0..12_345).map(|i| f64::from(i) / 100.0).collect();
    let d = |vs: Vec<f64>| Point {
        metric: names::REQUEST_DURATION,
        tags: vec![],
        value: Value::Distribution(vs),
    };
    let ivs = [
        iv(100, vec![d(values)]),
        iv(110, vec![d(vec![1.0, f64::NAN])]),
    ];
    let b = build(&ivs, &cfg).unwrap();
    // 12,345 values in chunks of 1,000 need 13 seconds; the interval has 10: 2,345 dropped.
    assert_eq!(b.dropped_values, 2_345 + 1);
    let mut seconds = Vec::new();
    let mut total = 0;
    for p in &b.payloads {
        assert_eq!(p.endpoint, Endpoint::DistributionPoints);
        for s in decode(p)["series"].as_array().unwrap() {
            assert_eq!(s["type"], "distribution");
            for pt in s["points"].as_array().unwrap() {
                seconds.push(pt[0].as_i64().unwrap());
                total += pt[1].as_array().unwrap().len();
            }
        }
    }
    assert_eq!(total, 10_000 + 1);
    let expect: Vec<i64> = (100..110).chain([110]).collect();
    assert_eq!(seconds, expect);
}

#[test]
fn a_refused_payload_splits_in_two_halves_that_hold_everything() {
    let b = build(
        &[many_counts(101, 50), many_counts(101, 60)],
        &PayloadConfig::new("h"),
    )
    .unwrap();
    let p = &b.payloads[0];
    assert_eq!((p.series, p.points, p.oldest_s), (101, 202, 50));
    let (a, c) = split_in_two(p).unwrap().unwrap();
    assert_eq!((a.series + c.series, a.points + c.points), (101, 202));
    assert_eq!((a.oldest_s, c.oldest_s), (50, 50));
    let mut all = decode(&a)["series"].as_array().unwrap().clone();
    all.extend(decode(&c)["series"].as_array().unwrap().iter().cloned());
    assert_eq!(serde_json::json!({ "series": all }), decode(p));
    let single = build(&[many_counts(1, 0)], &PayloadConfig::new("h")).unwrap();
    assert!(split_in_two(&single.payloads[0]).unwrap().is_none());
}
