//! Append-to-record latency of the live agent, as an in-process consumer sees it.
//!
//! A writer appends hub log lines at a steady rate, each carrying the instant it was written;
//! an observer inside the agent's pipeline notes when each record reaches it. Prints p50, p99
//! and max, plus the agent's throughput. Figures go to BENCHMARKS.md; nothing here is a test.
//!
//! ```sh
//! cargo run --release --example agent_latency -- [LINES_PER_SEC] [SECONDS]
//! ```

#![allow(clippy::unwrap_used)] // a benchmark program: a panic is its error report

use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hubpulse::agent::config::AgentConfig;
use hubpulse::lake::batch::SourceInfo;
use hubpulse::parse::record::Record;
use hubpulse::stream::Observer;
use hubpulse::stream::metrics::Metrics;

static BASE: OnceLock<Instant> = OnceLock::new();

struct Latency(Arc<Mutex<Vec<u64>>>);

impl Observer for Latency {
    fn on_record(&mut self, rec: &Record<'_>, _src: &SourceInfo, _read_at: Instant) {
        let now = BASE.get().map_or(0, |b| b.elapsed().as_micros() as u64);
        let digits = |s: &str| -> Option<u64> {
            let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            s[..end].parse().ok()
        };
        if let Some(t) = rec.message.split_once("t=").and_then(|(_, s)| digits(s))
            && let Ok(mut v) = self.0.lock()
        {
            v.push(now.saturating_sub(t));
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rate: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let base = *BASE.get_or_init(Instant::now);
    let dir = std::env::temp_dir().join(format!("hubpulse-latency-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("hub.log");
    std::fs::write(
        &log,
        "[I 2026-11-28 12:00:00.000 JupyterHub app:1] start t=0\n",
    )
    .unwrap();
    let mut cfg = AgentConfig::zero(
        hubpulse::lake::LakeLocation::local(dir.join("lake")),
        &[log.display().to_string()],
    )
    .unwrap();
    cfg.http = None;
    cfg.lake.flush_interval = Duration::from_secs(1);
    let samples = Arc::new(Mutex::new(Vec::with_capacity((rate * secs) as usize)));
    let metrics = Arc::new(Metrics::default());
    // The process's one runtime and shutdown token, as `hubpulse run` makes them.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let (obs, m, sd, h) = (
        Latency(samples.clone()),
        metrics.clone(),
        stop.clone(),
        rt.handle().clone(),
    );
    let agent =
        std::thread::spawn(move || hubpulse::agent::run_with(&h, cfg, vec![Box::new(obs)], m, sd));
    while !metrics.ready() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    let n = rate * secs;
    let gap = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now();
    for i in 0..n {
        let due = start + gap * i as u32;
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let t = base.elapsed().as_micros();
        writeln!(
            f,
            "[I 2026-11-28 12:00:00.000 JupyterHub log:191] 200 GET /hub/health?t={t} (@127.0.0.1) 1.00ms"
        )
        .unwrap();
    }
    let t0 = Instant::now();
    while samples.lock().unwrap().len() < n as usize && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    stop.cancel();
    agent.join().unwrap().unwrap();
    let mut v = samples.lock().unwrap().clone();
    v.sort_unstable();
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p) as usize] as f64 / 1000.0;
    println!(
        "records={} rate={rate}/s p50={:.1}ms p99={:.1}ms max={:.1}ms rows_committed={}",
        v.len(),
        q(0.5),
        q(0.99),
        q(1.0),
        metrics.rows_published.load(Ordering::Relaxed)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
