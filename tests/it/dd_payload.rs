//! Datadog payloads, checked by a local intake against Datadog's own published request schemas
//! (`fixtures/datadog/spec/openapi-v{1,2}.yaml`, vendored from `../shared/datadog`): built from a real fixture log, a large burst, and
//! nothing personal in any of them.

use std::collections::{BTreeSet, HashSet};

use hubpulse::sinks::datadog::derive::DeriveConfig;
use hubpulse::sinks::datadog::payload::{
    Codec, Endpoint, Limits, Payload, PayloadConfig, build, split_in_two,
};
use hubpulse::sinks::datadog::retry::{Action, Answer, RetryPolicy, decide};
use hubpulse::sinks::datadog::{Interval, Point, Tag, TagValue, Value, names};
use serde_json::{Value as Json, json};

use super::dd_common::{Intake, derive, expected};
use crate::support::root;

fn fixture_intervals() -> Vec<Interval> {
    derive(
        &root().join("fixtures/logs/real/hub-only"),
        DeriveConfig::default(),
    )
    .0
}

fn cfg(codec: Codec) -> PayloadConfig {
    let mut c = PayloadConfig::new("hubpulse-test-host");
    c.tags = vec!["hubpulse_instance:test-1".into()];
    c.series_codec = codec;
    c
}

/// Send every payload; every body must be accepted, valid, free of unknown fields and within
/// the limits. Returns the decoded bodies the intake recorded.
fn send_all(intake: &Intake, payloads: &[Payload]) -> Vec<Json> {
    intake.reset();
    for p in payloads {
        assert_eq!(intake.send(p), 202, "{:?} payload refused", p.endpoint);
    }
    let rec = intake.recorded();
    assert_eq!(rec.len(), payloads.len());
    let limits = Limits::default();
    for r in &rec {
        assert_eq!(r["valid"], json!(true), "{}: {}", r["path"], r["errors"]);
        assert_eq!(r["unknown_fields"], json!([]), "{}", r["path"]);
        assert_eq!(r["answered"], json!(202));
        assert!(r["wire_bytes"].as_u64().unwrap() <= limits.max_compressed as u64);
        assert!(r["decoded_bytes"].as_u64().unwrap() <= limits.max_uncompressed as u64);
    }
    rec.into_iter().map(|r| r["body"].clone()).collect()
}

/// (metric, tags, second) of every point: no two may be equal.
fn assert_one_point_per_series_second(bodies: &[Json]) -> usize {
    let mut seen = HashSet::new();
    for b in bodies {
        for s in b["series"].as_array().unwrap() {
            let id = (s["metric"].to_string(), s["tags"].to_string());
            for p in s["points"].as_array().unwrap() {
                let ts = p.get("timestamp").unwrap_or(&p[0]).as_i64().unwrap();
                assert!(
                    seen.insert((id.clone(), ts)),
                    "two points of {id:?} at {ts}"
                );
            }
        }
    }
    seen.len()
}

#[test]
fn dd_payloads_from_a_fixture_log_validate_against_datadogs_spec() {
    let ivs = fixture_intervals();
    let intake = Intake::start();
    for codec in [Codec::Deflate, Codec::Zstd1, Codec::Gzip] {
        let b = build(&ivs, &cfg(codec)).unwrap();
        assert_eq!((b.dropped_series, b.dropped_values), (0, 0));
        let eps: BTreeSet<&str> = b.payloads.iter().map(|p| p.endpoint.path()).collect();
        assert_eq!(eps.len(), 2, "series and distributions: {eps:?}");
        let bodies = send_all(&intake, &b.payloads);
        let points = assert_one_point_per_series_second(&bodies);
        let want: usize = ivs.iter().map(|i| i.points.len()).sum();
        assert_eq!(points, want, "every derived point sent once");
        for body in &bodies {
            for s in body["series"].as_array().unwrap() {
                assert!(s["metric"].as_str().unwrap().starts_with("jupyterhub."));
            }
        }
    }
    // The intake is not a rubber stamp: a wrong type, a disallowed encoding and a missing key.
    intake.reset();
    let bad = br#"{"series":[{"metric":"jupyterhub.x","type":"count","points":[{"timestamp":1,"value":1}]}]}"#;
    let h = [("DD-API-KEY", "k"), ("Content-Type", "application/json")];
    assert_eq!(intake.request("POST", "/api/v2/series", &h, bad).0, 400);
    let body = Codec::Gzip.compress(br#"{"series":[]}"#).unwrap();
    let h = [
        ("DD-API-KEY", "k"),
        ("Content-Type", "text/json"),
        ("Content-Encoding", "gzip"),
    ];
    assert_eq!(
        intake
            .request("POST", Endpoint::DistributionPoints.path(), &h, &body)
            .0,
        400
    );
    assert_eq!(
        intake
            .request("POST", "/api/v2/series", &[], br#"{"series":[]}"#)
            .0,
        403
    );
    // …and answers what the test scripts, whatever the body.
    intake.script(json!([{"status": 429}, {"status": 413}, {"status": 500}]));
    let b = build(&ivs, &cfg(Codec::Deflate)).unwrap();
    let codes: Vec<u16> = (0..4).map(|_| intake.send(&b.payloads[0])).collect();
    assert_eq!(codes, [429, 413, 500, 202], "then back to validation");
}

#[test]
fn dd_a_large_burst_is_split_within_datadogs_size_limits() {
    // An hour of backlog for a busy hub: 360 intervals × 500 count series, and a distribution
    // with 250,000 request latencies in one interval.
    let mut ivs: Vec<Interval> = (0..360)
        .map(|k| Interval {
            start_s: 1_764_349_200 + 10 * k,
            len_s: 10,
            points: (0..500)
                .map(|i| Point {
                    metric: names::REQUESTS,
                    tags: vec![
                        Tag {
                            key: "route_group",
                            value: TagValue::Shared(format!("group-{i:03}").into()),
                        },
                        Tag {
                            key: "status_class",
                            value: TagValue::Static("2xx"),
                        },
                    ],
                    value: Value::Count(f64::from((i * 7 + k as u32) % 1000)),
                })
                .collect(),
        })
        .collect();
    let lat: Vec<f64> = (0..250_000u32)
        .map(|i| f64::from(i % 9973) / 1000.0 + 0.0001)
        .collect();
    ivs[0].points.push(Point {
        metric: names::REQUEST_DURATION,
        tags: vec![],
        value: Value::Distribution(lat),
    });

    let b = build(&ivs, &cfg(Codec::Deflate)).unwrap();
    let count = |ep| b.payloads.iter().filter(|p| p.endpoint == ep).count();
    assert!(
        count(Endpoint::Series) >= 2,
        "the series were split: {}",
        count(Endpoint::Series)
    );
    assert!(
        count(Endpoint::DistributionPoints) >= 2,
        "the distribution was split"
    );
    assert_eq!((b.dropped_series, b.dropped_values), (0, 0));
    let intake = Intake::start();
    let bodies = send_all(&intake, &b.payloads);
    let n = assert_one_point_per_series_second(&bodies);
    assert_eq!(n, 360 * 500 + 250_000 / 50_000, "every point arrived once");
    let values: usize = bodies
        .iter()
        .flat_map(|b| b["series"].as_array().unwrap())
        .filter(|s| s["type"] == "distribution")
        .flat_map(|s| s["points"].as_array().unwrap())
        .map(|p| p[1].as_array().unwrap().len())
        .sum();
    assert_eq!(values, 250_000);
}

/// Words (maximal runs of `[A-Za-z0-9@._%-]`) of a text.
fn words(s: &str) -> HashSet<&str> {
    s.split(|c: char| !(c.is_ascii_alphanumeric() || "@._%-".contains(c)))
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn dd_no_user_name_ip_or_path_from_the_fixture_appears_in_any_payload() {
    let dir = root().join("fixtures/logs/real/hub-only");
    let mut personal: BTreeSet<String> = BTreeSet::new();
    for e in expected(&dir) {
        for f in [
            "user",
            "actor",
            "client_ip",
            "path",
            "server_name",
            "target",
        ] {
            if let Some(v) = e.v[f].as_str().filter(|v| !v.is_empty()) {
                personal.insert(v.to_string());
            }
        }
    }
    let truth: Json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
    for u in truth["allowed_users"]
        .as_array()
        .unwrap()
        .iter()
        .chain(truth["users_created"].as_array().unwrap())
    {
        personal.insert(u.as_str().unwrap().to_string());
    }
    assert!(personal.contains("frank@example.org") && personal.contains("127.0.0.1"));
    let ivs = fixture_intervals();
    let intake = Intake::start();
    let b = build(&ivs, &cfg(Codec::Zstd1)).unwrap();
    let bodies = send_all(&intake, &b.payloads);
    let text: String = bodies.iter().map(Json::to_string).collect();
    let w = words(&text);
    for p in &personal {
        // A path is personal as a whole; a user or IP must not appear even inside a word.
        let hit = if p.starts_with('/') {
            text.contains(p.as_str())
        } else {
            w.contains(p.as_str())
        };
        assert!(!hit, "{p:?} appears in a payload");
    }
    // The check can fail: a user name in a tag is caught.
    let leak = Interval {
        start_s: 0,
        len_s: 10,
        points: vec![Point {
            metric: names::LOGINS,
            tags: vec![Tag {
                key: "outcome",
                value: TagValue::Shared("carol".into()),
            }],
            value: Value::Count(1.0),
        }],
    };
    let raw = build(&[leak], &cfg(Codec::Deflate)).unwrap();
    let p = &raw.payloads[0];
    let body = String::from_utf8(p.codec.decompress(&p.body).unwrap()).unwrap();
    assert!(words(&body).contains("carol"));
}

/// The retry policy acting on the intake's real answers: 413 splits (and both halves are
/// accepted), 429 waits as its rate-limit header says, a 202 with errors is a partial failure,
/// 403 is dropped without retry.
#[test]
fn dd_answers_of_the_intake_drive_the_retry_policy() {
    let b = build(&fixture_intervals(), &cfg(Codec::Deflate)).unwrap();
    let p = b
        .payloads
        .iter()
        .find(|p| p.endpoint == Endpoint::Series)
        .unwrap();
    let intake = Intake::start();
    let policy = RetryPolicy::default();
    let act = |p: &Payload| {
        let (status, h, body) = intake.send_full(p);
        let answer = Answer::Http {
            status,
            body: &body,
            rate_limit_reset: h.get("x-ratelimit-reset").map(String::as_str),
            retry_after: h.get("retry-after").map(String::as_str),
        };
        decide(&policy, answer, 0, 0.5)
    };
    intake.script(json!([{"status": 413}]));
    assert_eq!(act(p), Action::Split);
    let (a, c) = split_in_two(p).unwrap().unwrap();
    assert_eq!((act(&a), act(&c)), (Action::Done, Action::Done));
    intake.script(json!([
        {"status": 429, "headers": {"X-RateLimit-Reset": "12"}},
        {"status": 202, "body": {"errors": ["point too old"]}},
        {"status": 403},
        {"status": 500}
    ]));
    assert_eq!(
        act(p),
        Action::RetryAfter(std::time::Duration::from_secs(12))
    );
    assert_eq!(act(p), Action::PartialFailure(vec!["point too old".into()]));
    assert_eq!(act(p), Action::Drop("forbidden"));
    assert!(matches!(act(p), Action::RetryAfter(_)));
    let rec = intake.recorded();
    assert_eq!(rec.len(), 7);
    assert!(
        rec.iter().all(|r| r["valid"] == json!(true)),
        "the halves are valid bodies too"
    );
}
