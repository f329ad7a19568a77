//! The parser's fast path for request lines against its general path on the generator's
//! output (`hubpulse::parse::differential`; the parser's own tests run the same check on every
//! fixture and on random near misses). The generator is one witness among those, for scale:
//! the real hub output under fixtures/logs/real is the other.

use hubpulse::generate::{GenConfig, generate};
use hubpulse::parse::differential::same;

#[test]
fn generator_output_parses_the_same_on_both_paths() {
    let cfg = GenConfig {
        users: 40,
        days: 1,
        start: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
        seed: 7,
        activity_interval_secs: 120,
    };
    let mut buf = Vec::new();
    let truth = generate(&cfg, &mut buf).unwrap();
    let (taken, requests) = same(&buf, 4096);
    assert!(
        taken * 10 > requests * 9 && requests * 2 > truth.lines,
        "fast path took {taken} of {requests} requests ({} lines)",
        truth.lines
    );
}
