//! Parse-only throughput on the generator's output: bytes → records → typed `Record`s,
//! no lake. Run: `cargo bench --bench parse --no-default-features` (figures go to BENCHMARKS.md).
//! The headline is `generated_hub_log_lines`; `real_fixture_lines` parses the real hub output
//! under `fixtures/logs/real` (small, and mostly not heartbeats: a second view, not the figure).

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hubpulse::generate::{GenConfig, generate};
use hubpulse::parse::Parser;
use hubpulse::parse::catalogue::Catalogue;
use hubpulse::parse::reader::{AtEof, ReaderConfig, RecordReader};
use hubpulse::parse::time::Zone;

fn input() -> (Vec<u8>, u64) {
    let cfg = GenConfig {
        users: 400,
        days: 2,
        start: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).expect("date"),
        seed: 1,
        activity_interval_secs: 60,
    };
    let mut buf = Vec::new();
    let truth = generate(&cfg, &mut buf).expect("generate");
    (buf, truth.lines)
}

fn parse_all(cat: &Arc<Catalogue>, data: &[u8]) -> u64 {
    let mut parser = Parser::new(cat.clone(), Zone::parse("UTC").expect("zone"), None);
    let mut reader = RecordReader::new(data, 0, ReaderConfig::default());
    let mut n = 0u64;
    reader
        .run(AtEof::Finish, |raw| {
            n += parser.parse(&raw, |rec| {
                rec.status.is_some() as u64 + rec.user.is_some() as u64
            });
        })
        .expect("read");
    n
}

/// Every `.log` under `fixtures/logs/real`, each parsed on its own as `ingest` would.
fn real_fixtures() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/logs/real");
    hubpulse::parse::differential::fixture_logs(&dir)
        .iter()
        .map(|p| std::fs::read(p).expect("read"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let (data, lines) = input();
    let cat = Arc::new(Catalogue::embedded().expect("catalogue"));
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(lines));
    g.sample_size(10);
    g.bench_function("generated_hub_log_lines", |b| {
        b.iter(|| parse_all(&cat, &data))
    });
    let real = real_fixtures();
    let lines = real
        .iter()
        .map(|f| f.iter().filter(|&&b| b == b'\n').count() as u64)
        .sum();
    g.throughput(Throughput::Elements(lines));
    g.bench_function("real_fixture_lines", |b| {
        b.iter(|| real.iter().map(|f| parse_all(&cat, f)).sum::<u64>())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
