//! Datadog metric derivation: CPU cost per million records and payload bytes per flush, over a
//! generated hub log (BENCHMARKS.md, "Datadog metric derivation").
//!
//! ```text
//! hubpulse generate --users 1000 --days 20 --out /tmp/hpdd/gen.log
//! cargo run --release --example dd_derive -- /tmp/hpdd/gen.log
//! ```
//!
//! Records are split once and kept in memory; then, best of three, (a) parsing alone and (b)
//! parsing plus [`Deriver::record`] run over them on one thread: derivation costs (b) − (a).
//! (b) runs with 10 s intervals (the real flush interval: per-record work plus the gauges of
//! every interval) and with 1 h intervals (almost only the per-record work).
//! Each record is "read" 250 ms after its timestamp. Every closed 10 s interval is then built
//! into its payloads (series + distribution points, deflate) to measure bytes per flush.
#![allow(clippy::unwrap_used)] // a measurement tool: a panic is the report

use std::sync::Arc;
use std::time::Instant;

use hubpulse::parse::Parser;
use hubpulse::parse::catalogue::Catalogue;
use hubpulse::parse::reader::{AtEof, RawRecord, ReaderConfig, RecordReader};
use hubpulse::parse::time::Zone;
use hubpulse::sinks::datadog::derive::{DeriveConfig, Deriver};
use hubpulse::sinks::datadog::payload::{Endpoint, PayloadConfig, build};

struct Raw {
    offset: u64,
    end: u64,
    lines: u32,
    truncated: bool,
    split: bool,
    at: usize,
    len: usize,
}

fn parser() -> Parser {
    Parser::new(
        Arc::new(Catalogue::embedded().unwrap()),
        Zone::parse("UTC").unwrap(),
        None,
    )
}

fn pct(v: &[usize], p: f64) -> usize {
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: dd_derive LOG");
    let data = std::fs::read(&path).unwrap();
    let mut raws = Vec::new();
    let mut reader = RecordReader::new(&data[..], 0, ReaderConfig::default());
    reader
        .run(AtEof::Finish, |r| {
            raws.push(Raw {
                offset: r.offset,
                end: r.end,
                lines: r.lines,
                truncated: r.truncated,
                split: r.split,
                at: r.offset as usize,
                len: r.bytes.len(),
            })
        })
        .unwrap();
    let raw = |r: &Raw| RawRecord {
        offset: r.offset,
        end: r.end,
        bytes: &data[r.at..r.at + r.len],
        lines: r.lines,
        truncated: r.truncated,
        split: r.split,
    };
    let n = raws.len();
    println!("records {n}, bytes {}", data.len());
    let mut best_parse = f64::MAX;
    for _ in 0..3 {
        let mut p = parser();
        let t = Instant::now();
        let mut sink = 0i64;
        for r in &raws {
            p.parse(&raw(r), |rec| sink ^= rec.ts.unwrap_or(0));
        }
        best_parse = best_parse.min(t.elapsed().as_secs_f64());
        std::hint::black_box(sink);
    }
    println!("parse only {best_parse:.3} s (best of 3)");
    // 10 s is the real flush interval; 3600 s shows the per-record part alone (few intervals).
    let mut intervals = Vec::new();
    for secs in [10u32, 3600] {
        let mut best_both = f64::MAX;
        let mut closed = 0;
        for _ in 0..3 {
            let mut p = parser();
            let mut d = Deriver::new(DeriveConfig {
                interval_secs: secs,
                ..DeriveConfig::default()
            });
            let mut last = 0;
            let t = Instant::now();
            for r in &raws {
                p.parse(&raw(r), |rec| {
                    last = rec.ts.or(rec.ts_hint).unwrap_or(last);
                    d.record(rec, "bench", last + 250_000);
                });
            }
            d.flush_all();
            best_both = best_both.min(t.elapsed().as_secs_f64());
            let ivs = d.take_ready();
            closed = ivs.len();
            if secs == 10 {
                intervals = ivs;
            }
        }
        let derive_s = (best_both - best_parse).max(0.0);
        println!(
            "interval {secs} s ({closed} intervals): parse + derive {best_both:.3} s; derivation {derive_s:.3} s = {:.3} s per million records ({:.0} ns/record)",
            derive_s * 1e6 / n as f64,
            derive_s * 1e9 / n as f64
        );
    }

    let mut cfg = PayloadConfig::new("hub-1.example.org");
    cfg.tags = vec!["hubpulse_instance:hub-1".into(), "env:prod".into()];
    let (mut wire, mut raw_b, mut series, mut payloads) = (Vec::new(), Vec::new(), Vec::new(), 0);
    let t = Instant::now();
    for iv in &intervals {
        let b = build(std::slice::from_ref(iv), &cfg).unwrap();
        payloads += b.payloads.len();
        wire.push(b.payloads.iter().map(|p| p.body.len()).sum::<usize>());
        raw_b.push(b.payloads.iter().map(|p| p.uncompressed_len).sum::<usize>());
        series.push(
            b.payloads
                .iter()
                .filter(|p| p.endpoint == Endpoint::Series)
                .map(|p| p.series)
                .sum::<usize>(),
        );
    }
    let build_s = t.elapsed().as_secs_f64();
    for v in [&mut wire, &mut raw_b, &mut series] {
        v.sort_unstable();
    }
    let mean = |v: &[usize]| v.iter().sum::<usize>() as f64 / v.len() as f64;
    println!(
        "flushes (10 s intervals) {}, payloads {payloads}, building them {build_s:.3} s",
        intervals.len()
    );
    println!(
        "bytes per flush on the wire (deflate): mean {:.0}, p50 {}, p95 {}, max {}",
        mean(&wire),
        pct(&wire, 0.5),
        pct(&wire, 0.95),
        wire[wire.len() - 1]
    );
    println!(
        "bytes per flush uncompressed: mean {:.0}, p50 {}, p95 {}, max {}",
        mean(&raw_b),
        pct(&raw_b, 0.5),
        pct(&raw_b, 0.95),
        raw_b[raw_b.len() - 1]
    );
    println!(
        "series per flush (v2 series): mean {:.1}, max {}",
        mean(&series),
        series[series.len() - 1]
    );
}
