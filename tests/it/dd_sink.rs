//! The Datadog sender and sink against the local intake (real HTTP, real time: retries,
//! splits, timeouts, refusals) and against a flaky transport on virtual time (a 30-minute and
//! a 75-minute outage, with the spool spilling to disk and surviving a restart).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubpulse::sinks::datadog::config::ApiKey;
use hubpulse::sinks::datadog::derive::DeriveConfig;
use hubpulse::sinks::datadog::payload::{Codec, Endpoint, Payload, PayloadConfig, build};
use hubpulse::sinks::datadog::retry::RetryPolicy;
use hubpulse::sinks::datadog::sender::{
    Delivery, HttpTransport, RealTimer, Reply, Sender, SharedTimer, Timer, Transport,
};
use hubpulse::sinks::datadog::sink::{Sink, SinkOptions, SinkStats};
use hubpulse::sinks::datadog::spool::SpoolConfig;
use hubpulse::sinks::datadog::{Interval, Point, Tag, TagValue, Value, names};
use hubpulse::sinks::prometheus::PromState;
use serde_json::{Value as Json, json};
use tokio::sync::{mpsc, oneshot, watch};

use super::dd_common::{Intake, derive};
use crate::support::root;

const KEY: &str = "dd-test-key-0123456789abcdef";

fn fixture_series_payload() -> Payload {
    let ivs = derive(
        &root().join("fixtures/logs/real/hub-only"),
        DeriveConfig::default(),
    )
    .0;
    // Moved to the last minutes: Datadog (and the sender) refuse points over an hour old.
    let now = chrono::Utc::now().timestamp();
    let shift = (now - 120 - ivs[0].start_s).div_euclid(10) * 10;
    let ivs: Vec<Interval> = ivs
        .into_iter()
        .map(|mut iv| {
            iv.start_s += shift;
            iv
        })
        .collect();
    let mut c = PayloadConfig::new("hubpulse-test-host");
    c.tags = vec!["hubpulse_instance:test-1".into()];
    let b = build(&ivs, &c).unwrap();
    b.payloads
        .into_iter()
        .find(|p| p.endpoint == Endpoint::Series && p.series > 4)
        .unwrap()
}

/// Backoff short enough for real-time tests; the policy's shape is the default one.
fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(50),
        cap: Duration::from_millis(400),
        ..RetryPolicy::default()
    }
}

fn http_sender(intake: &Intake, timeout: Duration) -> (Sender<HttpTransport>, Arc<SinkStats>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let base = format!("http://127.0.0.1:{}", intake.port);
    let t = HttpTransport::new(&base, &ApiKey::new(KEY), timeout).unwrap();
    let stats = Arc::new(SinkStats::default());
    let s = Sender::new(t, fast_policy(), RealTimer::shared(), stats.clone(), 7);
    (s, stats)
}

fn deliver(s: &mut Sender<HttpTransport>, p: Payload) -> Delivery {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_keep, mut rx) = watch::channel(None);
    rt.block_on(s.deliver(p, &mut rx))
}

fn answered(rec: &[Json]) -> Vec<Json> {
    rec.iter().map(|r| r["answered"].clone()).collect()
}

#[test]
fn dd_sender_retries_500_and_429_then_succeeds_honouring_the_rate_limit_reset() {
    let intake = Intake::start();
    let (mut s, stats) = http_sender(&intake, Duration::from_secs(10));
    intake.script(json!([
        {"status": 500},
        {"status": 429, "headers": {"X-RateLimit-Reset": "1"}}
    ]));
    let p = fixture_series_payload();
    let t = Instant::now();
    assert_eq!(deliver(&mut s, p.clone()), Delivery::Finished);
    // The 429 said "reset in 1 s": the third attempt waited at least that (backoff alone
    // would have been < 400 ms).
    assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
    let rec = intake.recorded();
    assert_eq!(answered(&rec), [json!(500), json!(429), json!(202)]);
    for r in &rec {
        assert_eq!(r["valid"], json!(true), "{}", r["errors"]);
        assert_eq!(r["api_key"], json!(KEY));
        assert_eq!(r["content_encoding"], json!("deflate"));
        assert_eq!(r["body"], rec[0]["body"], "a retry resends the same body");
    }
    assert_eq!(stats.retries.load(Ordering::Relaxed), 2);
    assert_eq!(stats.payloads_sent.load(Ordering::Relaxed), 1);
    assert_eq!(stats.points_sent.load(Ordering::Relaxed), p.points as u64);
}

#[test]
fn dd_sender_never_retries_400_or_403_and_counts_the_points_dropped() {
    let intake = Intake::start();
    let (mut s, stats) = http_sender(&intake, Duration::from_secs(10));
    let p = fixture_series_payload();
    intake.script(json!([{"status": 400}, {"status": 403}]));
    assert_eq!(deliver(&mut s, p.clone()), Delivery::Finished);
    assert_eq!(deliver(&mut s, p.clone()), Delivery::Finished);
    assert_eq!(answered(&intake.recorded()), [json!(400), json!(403)]);
    assert_eq!(stats.dropped("bad_request"), p.points as u64);
    assert_eq!(stats.dropped("forbidden"), p.points as u64);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 0);
    assert_eq!(stats.payloads_sent.load(Ordering::Relaxed), 0);
    // A 202 carrying errors: counted as a partial failure, not resent.
    intake.reset();
    intake.script(json!([{"status": 202, "body": {"errors": ["bad point"]}}]));
    assert_eq!(deliver(&mut s, p), Delivery::Finished);
    assert_eq!(intake.recorded().len(), 1);
    assert_eq!(stats.partial_failures.load(Ordering::Relaxed), 1);
}

#[test]
fn dd_sender_splits_a_payload_the_intake_finds_too_large() {
    let intake = Intake::start();
    let (mut s, stats) = http_sender(&intake, Duration::from_secs(10));
    let p = fixture_series_payload();
    // The first answer is 413, and so is the first half's first answer: three splits.
    intake.script(json!([{"status": 413}, {"status": 413}]));
    assert_eq!(deliver(&mut s, p.clone()), Delivery::Finished);
    let rec = intake.recorded();
    assert_eq!(
        answered(&rec),
        [json!(413), json!(413), json!(202), json!(202), json!(202)]
    );
    assert_eq!(stats.splits.load(Ordering::Relaxed), 2);
    // The accepted parts hold exactly the series of the original, once each.
    let series = |r: &Json| -> Vec<String> {
        r["body"]["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let mut accepted: Vec<String> = rec[2..].iter().flat_map(series).collect();
    let mut original = series(&rec[0]);
    accepted.sort();
    original.sort();
    assert_eq!(accepted, original);
    assert!(rec.iter().all(|r| r["valid"] == json!(true)));
    assert_eq!(stats.points_sent.load(Ordering::Relaxed), p.points as u64);
}

#[test]
fn dd_sender_times_out_on_a_hanging_intake_and_retries() {
    let intake = Intake::start();
    let (mut s, stats) = http_sender(&intake, Duration::from_millis(700));
    intake.script(json!([{"hang": true}]));
    let t = Instant::now();
    assert_eq!(
        deliver(&mut s, fixture_series_payload()),
        Delivery::Finished
    );
    assert!(t.elapsed() >= Duration::from_millis(700));
    // The hang timed out and was retried until a 202 was read. On a loaded machine a 202 can
    // itself arrive after the 700 ms timeout and be retried: each attempt is one retry.
    let a = answered(&intake.recorded());
    assert_eq!(a[0], json!("hang"));
    assert!(
        a.len() >= 2 && a[1..].iter().all(|x| *x == json!(202)),
        "{a:?}"
    );
    assert_eq!(stats.retries.load(Ordering::Relaxed), a.len() as u64 - 1);
    assert_eq!(stats.payloads_sent.load(Ordering::Relaxed), 1);
}

#[test]
fn dd_sender_waits_for_the_reset_when_a_2xx_says_the_rate_limit_is_spent() {
    let intake = Intake::start();
    let (mut s, stats) = http_sender(&intake, Duration::from_secs(10));
    intake.script(json!([
        {"status": 202, "headers": {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1"}}
    ]));
    let p = fixture_series_payload();
    assert_eq!(deliver(&mut s, p.clone()), Delivery::Finished);
    let t = Instant::now();
    assert_eq!(deliver(&mut s, p), Delivery::Finished);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(answered(&intake.recorded()), [json!(202), json!(202)]);
    assert_eq!(stats.payloads_sent.load(Ordering::Relaxed), 2);
}

#[test]
fn dd_spawn_failure_and_cull_events_are_valid_event_create_requests() {
    let intake = Intake::start();
    let (mut s, stats) = http_sender(&intake, Duration::from_secs(10));
    let now = chrono::Utc::now().timestamp() / 10 * 10 - 60;
    let t = |k: &'static str, v: &'static str| Tag {
        key: k,
        value: TagValue::Static(v),
    };
    let iv = Interval {
        start_s: now,
        len_s: 10,
        points: vec![
            Point {
                metric: names::SPAWNS_FAILED,
                tags: vec![t("hub", "prod"), t("reason", "start_timeout")],
                value: Value::Count(2.0),
            },
            Point {
                metric: names::CULLS,
                tags: vec![t("hub", "prod"), t("reason", "server_idle")],
                value: Value::Count(5.0),
            },
        ],
    };
    let events = hubpulse::sinks::datadog::events::from_interval(
        &iv,
        "host-1",
        &["hubpulse_instance:x".into()],
    );
    assert_eq!(events.len(), 2);
    for e in events {
        assert_eq!(deliver(&mut s, e), Delivery::Finished);
    }
    let rec = intake.recorded();
    assert_eq!(rec.len(), 2);
    for r in &rec {
        assert_eq!(r["path"], json!("/api/v1/events"));
        assert_eq!(
            r["content_encoding"],
            Json::Null,
            "the spec allows no encoding"
        );
        assert_eq!(r["valid"], json!(true), "{}", r["errors"]);
        assert_eq!(r["unknown_fields"], json!([]));
    }
    assert_eq!(
        rec[0]["body"]["title"],
        json!("JupyterHub prod: 2 spawns failed (start_timeout)")
    );
    assert_eq!(rec[1]["body"]["alert_type"], json!("info"));
    assert_eq!(stats.payloads_sent.load(Ordering::Relaxed), 2);
}

// ---------------------------------------------------------------------------------------------
// Virtual time.

/// A discrete-event clock: `sleep` registers a wake-up; [`VirtualTimer::drive`] lets every task
/// run until all wait, then jumps to the earliest wake-up. No real time passes.
#[derive(Clone)]
struct VirtualTimer(Arc<Mutex<VState>>);

struct VState {
    unix0: i64,
    now_ms: u64,
    seq: u64,
    wakes: BinaryHeap<Reverse<(u64, u64)>>,
    senders: BTreeMap<u64, oneshot::Sender<()>>,
}

impl VirtualTimer {
    fn new(unix0: i64) -> Self {
        VirtualTimer(Arc::new(Mutex::new(VState {
            unix0,
            now_ms: 0,
            seq: 0,
            wakes: BinaryHeap::new(),
            senders: BTreeMap::new(),
        })))
    }

    /// Advance to the next live wake-up once every task has had its turn; `false` if none.
    async fn step(&self) -> bool {
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
        let mut s = self.0.lock().unwrap();
        while let Some(Reverse((at, id))) = s.wakes.pop() {
            let Some(tx) = s.senders.remove(&id) else {
                continue;
            };
            if tx.is_closed() {
                continue;
            }
            s.now_ms = s.now_ms.max(at);
            let _ = tx.send(());
            return true;
        }
        false
    }

    /// Drive time until `done` is set.
    async fn drive(&self, done: Arc<AtomicBool>) {
        while !done.load(Ordering::SeqCst) {
            if !self.step().await {
                tokio::task::yield_now().await;
            }
        }
    }
}

impl Timer for VirtualTimer {
    fn unix_s(&self) -> i64 {
        let s = self.0.lock().unwrap();
        s.unix0 + (s.now_ms / 1000) as i64
    }
    fn mono_ms(&self) -> u64 {
        self.0.lock().unwrap().now_ms
    }
    fn sleep(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let (tx, rx) = oneshot::channel();
        let mut s = self.0.lock().unwrap();
        let (at, id) = (s.now_ms + d.as_millis() as u64, s.seq);
        s.seq += 1;
        s.wakes.push(Reverse((at, id)));
        s.senders.insert(id, tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Down (503) until `up_at` (unix s), then accepts and records (unix s of delivery, payload).
struct Flaky {
    timer: VirtualTimer,
    up_at: i64,
    got: Arc<Mutex<Vec<(i64, Payload)>>>,
}

impl Transport for Flaky {
    async fn send(&self, p: &Payload) -> Reply {
        let now = self.timer.unix_s();
        if now < self.up_at {
            return Reply::Http {
                status: 503,
                body: b"{\"errors\":[\"down\"]}".to_vec(),
                rate_limit_reset: None,
                rate_limit_remaining: None,
                retry_after: None,
            };
        }
        self.got.lock().unwrap().push((now, p.clone()));
        Reply::Http {
            status: 202,
            body: b"{\"errors\":[]}".to_vec(),
            rate_limit_reset: None,
            rate_limit_remaining: None,
            retry_after: None,
        }
    }
}

const UNIX0: i64 = 1_795_000_000;

/// Interval `i` of the feed: closes at UNIX0 + 10·(i+1); a count of `i + 1`, a gauge and three
/// distribution values, all with values telling the interval apart.
fn interval(i: i64) -> Interval {
    let tag = |k: &'static str, v: &'static str| Tag {
        key: k,
        value: TagValue::Static(v),
    };
    let hub = tag("hub", "outage-hub");
    Interval {
        start_s: UNIX0 + 10 * i,
        len_s: 10,
        points: vec![
            Point {
                metric: names::REQUESTS,
                tags: vec![
                    hub.clone(),
                    tag("route_group", "api"),
                    tag("status_class", "2xx"),
                ],
                value: Value::Count((i + 1) as f64),
            },
            Point {
                metric: names::REQUEST_DURATION,
                tags: vec![hub.clone(), tag("route_group", "api")],
                value: Value::Distribution(vec![i as f64, i as f64 + 0.5, i as f64 + 0.25]),
            },
            Point {
                metric: names::SERVERS_RUNNING,
                tags: vec![hub, tag("server_type", "default")],
                value: Value::Gauge(i as f64),
            },
        ],
    }
}

struct Outage {
    delivered: Vec<(i64, Payload)>,
    stats: Arc<SinkStats>,
    max_disk: u64,
    spool_files_left: usize,
}

/// Feed `n` intervals, one every 10 s of virtual time, through a sink whose intake is down
/// until `down_s` after the start; then close the input and let the sink drain.
fn outage(n: i64, down_s: i64, memory_limit: usize) -> Outage {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let vt = VirtualTimer::new(UNIX0 + 10);
        let timer: SharedTimer = Arc::new(vt.clone());
        let got = Arc::new(Mutex::new(Vec::new()));
        let t = Flaky {
            timer: vt.clone(),
            up_at: UNIX0 + 10 + down_s,
            got: got.clone(),
        };
        let stats = Arc::new(SinkStats::default());
        let sender = Sender::new(t, RetryPolicy::default(), timer.clone(), stats.clone(), 42);
        let mut pc = PayloadConfig::new("outage-host");
        pc.tags = vec!["hubpulse_instance:outage-1".into()];
        pc.series_codec = Codec::Zstd1;
        let opts = SinkOptions {
            payload: pc,
            spool: SpoolConfig {
                dir: Some(dir.path().to_path_buf()),
                memory_limit,
                disk_limit: 1 << 30,
            },
            flush_interval: Duration::from_secs(10),
            events: false,
        };
        let prom = Arc::new(Mutex::new(PromState::default()));
        let sink = Sink::new(opts, Some(sender), stats.clone(), prom, timer.clone()).unwrap();
        let (tx, rx) = mpsc::channel(16);
        let (_deadline_tx, drx) = watch::channel(None);
        let done = Arc::new(AtomicBool::new(false));
        let driver = tokio::spawn({
            let (vt, done) = (vt.clone(), done.clone());
            async move { vt.drive(done).await }
        });
        let run = tokio::spawn(sink.run(rx, drx));
        let mut max_disk = 0;
        for i in 0..n {
            tx.send(interval(i)).await.unwrap();
            max_disk = max_disk.max(stats.spool_disk_bytes.load(Ordering::Relaxed));
            timer.sleep(Duration::from_secs(10)).await;
        }
        drop(tx);
        run.await.unwrap();
        done.store(true, Ordering::SeqCst);
        driver.await.unwrap();
        let delivered = std::mem::take(&mut *got.lock().unwrap());
        Outage {
            delivered,
            stats,
            max_disk,
            spool_files_left: std::fs::read_dir(dir.path()).unwrap().count() - 1,
        }
    })
}

/// (metric, timestamp) → values, over every delivered body; asserts no (series, second) twice.
fn delivered_points(d: &[(i64, Payload)]) -> BTreeMap<(String, i64), Vec<f64>> {
    let mut out: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for (_, p) in d {
        let v: Json = serde_json::from_slice(&p.codec.decompress(&p.body).unwrap()).unwrap();
        for s in v["series"].as_array().unwrap() {
            let m = s["metric"].as_str().unwrap().to_string();
            for pt in s["points"].as_array().unwrap() {
                let (ts, vals) = match pt.get("timestamp") {
                    Some(ts) => (ts.as_i64().unwrap(), vec![pt["value"].as_f64().unwrap()]),
                    None => (
                        pt[0].as_i64().unwrap(),
                        pt[1]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|x| x.as_f64().unwrap())
                            .collect(),
                    ),
                };
                assert!(
                    out.insert((m.clone(), ts), vals).is_none(),
                    "{m} at {ts} twice"
                );
            }
        }
    }
    out
}

#[test]
fn dd_a_30_minute_outage_loses_nothing_and_memory_stays_bounded_by_spilling_to_disk() {
    // 40 minutes of intervals; the intake is down for the first 30.
    let n = 240;
    let limit = 16 * 1024;
    let o = outage(n, 1800, limit);
    let pts = delivered_points(&o.delivered);
    for i in 0..n {
        let ts = UNIX0 + 10 * i;
        let count = &pts[&(names::REQUESTS.to_string(), ts)];
        assert_eq!(count, &vec![(i + 1) as f64], "interval {i}");
        let mut d = pts[&(names::REQUEST_DURATION.to_string(), ts)].clone();
        d.sort_by(f64::total_cmp);
        assert_eq!(d, vec![i as f64, i as f64 + 0.25, i as f64 + 0.5]);
        assert_eq!(
            pts[&(names::SERVERS_RUNNING.to_string(), ts)],
            vec![i as f64]
        );
    }
    assert_eq!(pts.len() as i64, 3 * n, "nothing else, nothing twice");
    let dropped = o.stats.dropped.lock().unwrap().clone();
    assert!(dropped.values().all(|v| *v == 0), "{dropped:?}");
    // Bounded memory: the spool spilled to disk and never held more than its limit.
    assert!(o.stats.spool_mem_peak.load(Ordering::Relaxed) <= limit as u64);
    assert!(o.max_disk > 0, "the outage spilled to disk");
    assert_eq!(o.spool_files_left, 0, "every spooled payload was delivered");
    // Delivery resumed within one capped backoff (64 s) of the intake's return.
    let first = o.delivered.iter().map(|(t, _)| *t).min().unwrap();
    assert!(
        (UNIX0 + 10 + 1800..=UNIX0 + 10 + 1800 + 64).contains(&first),
        "{first}"
    );
    // What was delivered after the outage is what Datadog's spec accepts.
    let intake = Intake::start();
    for (_, p) in &o.delivered {
        assert_eq!(intake.send(p), 202);
    }
    assert!(intake.recorded().iter().all(|r| r["valid"] == json!(true)));
}

#[test]
fn dd_a_75_minute_outage_drops_and_counts_only_what_is_older_than_an_hour() {
    let n = 540; // 90 minutes, down for 75
    let o = outage(n, 4500, 1 << 20);
    let pts = delivered_points(&o.delivered);
    let resumed = o.delivered.iter().map(|(t, _)| *t).min().unwrap();
    let mut lost = 0u64;
    for i in 0..n {
        let ts = UNIX0 + 10 * i;
        let key = (names::REQUESTS.to_string(), ts);
        match pts.get(&key) {
            Some(v) => assert_eq!(v, &vec![(i + 1) as f64]),
            None => {
                // Only what was older than an hour when sending resumed (one flush interval
                // of slack: a payload expires with its oldest point) may be missing.
                assert!(
                    ts < resumed - 3600 + 10,
                    "interval {i} ({ts}) lost but acceptable"
                );
                lost += 3; // the count, the distribution point, the gauge
            }
        }
    }
    assert!(lost > 0, "the outage was long enough to expire something");
    // Every delivered payload was within Datadog's hour when it was sent.
    for (at, p) in &o.delivered {
        assert!(p.oldest_s >= at - 3600, "sent {} s old", at - p.oldest_s);
    }
    assert_eq!(o.stats.dropped("expired"), lost, "every lost point counted");
    let others: u64 = o
        .stats
        .dropped
        .lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| **k != "expired")
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(others, 0);
}

/// A backlog of two hours in one batch of payloads (as `hubpulse run` builds it when it reads
/// an old log at once): Datadog's limits are applied point by point, so the last hour is
/// delivered whole and only the older points are dropped, counted as `expired`. Events are
/// held to Datadog's 18 h, not to the metrics' hour.
#[test]
fn dd_a_backlog_older_than_an_hour_keeps_its_last_hour_and_its_events() {
    let n = 720; // 2 h of intervals, the newest ending now
    let now = UNIX0 + 10 * n;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (got, stats) = rt.block_on(async {
        let vt = VirtualTimer::new(now);
        let timer: SharedTimer = Arc::new(vt.clone());
        let got = Arc::new(Mutex::new(Vec::new()));
        let t = Flaky {
            timer: vt.clone(),
            up_at: 0,
            got: got.clone(),
        };
        let stats = Arc::new(SinkStats::default());
        let mut sender = Sender::new(t, RetryPolicy::default(), timer, stats.clone(), 7);
        let ivs: Vec<Interval> = (0..n).map(interval).collect();
        let mut pc = PayloadConfig::new("backlog-host");
        pc.series_codec = Codec::Gzip;
        let mut payloads = build(&ivs, &pc).unwrap().payloads;
        assert!(
            payloads.iter().all(|p| p.oldest_s < now - 3600),
            "each straddles the hour"
        );
        let event = |age: i64| {
            let mut iv = interval(0);
            iv.start_s = now - age;
            iv.points[0] = Point {
                metric: names::SPAWNS_FAILED,
                tags: vec![Tag {
                    key: "reason",
                    value: TagValue::Static("error"),
                }],
                value: Value::Count(2.0),
            };
            hubpulse::sinks::datadog::events::from_interval(&iv, "backlog-host", &[])
        };
        payloads.extend(event(5 * 3600));
        payloads.extend(event(19 * 3600));
        let (_tx, mut drx) = watch::channel(None);
        for p in payloads {
            assert_eq!(sender.deliver(p, &mut drx).await, Delivery::Finished);
        }
        let got = std::mem::take(&mut *got.lock().unwrap());
        (got, stats)
    });
    let (events, metrics): (Vec<_>, Vec<_>) = got
        .into_iter()
        .partition(|(_, p)| p.endpoint == Endpoint::Events);
    let pts = delivered_points(&metrics);
    let mut lost = 0u64;
    for i in 0..n {
        let ts = UNIX0 + 10 * i;
        let count = pts.get(&(names::REQUESTS.to_string(), ts));
        if ts >= now - 3600 {
            assert_eq!(
                count,
                Some(&vec![(i + 1) as f64]),
                "interval {i} of the last hour"
            );
            assert!(pts.contains_key(&(names::REQUEST_DURATION.to_string(), ts)));
            assert_eq!(
                pts.get(&(names::SERVERS_RUNNING.to_string(), ts)),
                Some(&vec![i as f64])
            );
        } else {
            assert_eq!(count, None, "interval {i} is older than an hour");
            lost += 3;
        }
    }
    // The expired metric points and the 19-hour-old event, nothing else.
    assert_eq!(stats.dropped("expired"), lost + 1);
    assert_eq!(events.len(), 1);
    let e: Json = serde_json::from_slice(&events[0].1.body).unwrap();
    assert_eq!(e["date_happened"], json!(now - 5 * 3600));
    // What was sent is what the spec accepts.
    let intake = Intake::start();
    for (_, p) in &metrics {
        assert_eq!(intake.send(p), 202);
    }
    // Events go without a Content-Encoding (the spec has none for them), as the sender does.
    let headers = [("DD-API-KEY", KEY), ("Content-Type", "application/json")];
    let (status, _) = intake.request("POST", "/api/v1/events", &headers, &events[0].1.body);
    assert_eq!(status, 202);
}
