//! Parse-only throughput on the generator's output: bytes → records → typed `Record`s,
//! no lake. Run: `cargo bench --bench parse` (figures go to BENCHMARKS.md).

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

fn bench(c: &mut Criterion) {
    let (data, lines) = input();
    let cat = Arc::new(Catalogue::embedded().expect("catalogue"));
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(lines));
    g.sample_size(10);
    g.bench_function("generated_hub_log_lines", |b| {
        b.iter(|| parse_all(&cat, &data))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
