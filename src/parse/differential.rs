//! The fast path against the general path, as a check the parser's tests and the integration
//! tests share (like [`super::fuzz_one`]): every record, its JSON, the parser's counters and
//! stream state after it, and the enrichment it defers, must be the same with the fast path on
//! as with it off. Panics at the first difference.

use std::sync::{Arc, LazyLock};

use chrono::NaiveDate;

use super::Parser;
use super::catalogue::Catalogue;
use super::fastmemo::Requests;
use super::fastpath::take;
use super::fastprefix::Memo;
use super::reader;
use super::scrub;
use super::time::Zone;

static CATALOGUE: LazyLock<Arc<Catalogue>> =
    LazyLock::new(|| Arc::new(Catalogue::embedded().unwrap_or_else(|e| panic!("{e}"))));

/// Every `.log` file under `dir` (in the repository, `fixtures/logs`), sorted by path: the
/// inputs of the differential test and of the parse benchmark's real-log case.
pub fn fixture_logs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap_or_else(|e| panic!("{e}")).path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "log") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

/// A parser with the fast path on or off; `piece` parses as a piece of a stream (deferred
/// enrichment, no state before it).
pub(crate) fn parser(fast: bool, piece: bool, zone: &str) -> Parser {
    let zone = Zone::parse(zone).unwrap_or_else(|e| panic!("{e}"));
    let date = NaiveDate::from_ymd_opt(2026, 11, 2);
    let mut p = if piece {
        Parser::for_piece(CATALOGUE.clone(), zone, date, None)
    } else {
        Parser::new(CATALOGUE.clone(), zone, date)
    };
    p.set_fast_path(fast);
    p
}

/// Everything observable about one parsed record and the parser after it.
fn observe(p: &mut Parser, raw: &reader::RawRecord<'_>) -> String {
    let rec = p.parse(raw, |rec| {
        format!("{rec:?}\n{}", rec.to_json("h", "f", "fp"))
    });
    let deferred = p.take_deferred();
    format!(
        "{rec}\n{:?}\n{:?}\n{deferred:?}\n{}",
        p.stats,
        p.state(),
        p.needed_state()
    )
}

/// Parse `input` with the fast path on and off, in each mode; panics at the first difference.
/// Returns how many records the fast path took, and how many were requests (in stream mode).
pub fn same(input: &[u8], chunk_bytes: usize) -> (u64, u64) {
    let (mut taken, mut requests) = (0, 0);
    for (piece, zone) in [(false, "UTC"), (true, "Europe/Paris")] {
        let (mut fast, mut general) = (parser(true, piece, zone), parser(false, piece, zone));
        let cfg = reader::ReaderConfig {
            max_line_bytes: 400,
            max_record_bytes: 4000,
            chunk_bytes,
        };
        let mut r = reader::RecordReader::new(input, 0, cfg);
        r.run(reader::AtEof::Finish, |raw| {
            if let Some((h, ..)) = take(&raw, &mut Memo::default(), &mut Requests::default()) {
                taken += u64::from(!piece);
                // Nothing the fast path takes holds what the scrubber removes.
                let line = std::str::from_utf8(raw.bytes).unwrap_or_default();
                assert_eq!(scrub::scrub(line), None, "{line:?}");
                assert_eq!(scrub::scrub(h.message), None, "{line:?}");
            }
            let (a, b) = (observe(&mut fast, &raw), observe(&mut general, &raw));
            requests += u64::from(!piece && b.contains("kind: \"request\""));
            assert_eq!(
                a,
                b,
                "record at {} differs: {:?}",
                raw.offset,
                String::from_utf8_lossy(raw.bytes)
            );
        })
        .unwrap_or_else(|e| panic!("{e}"));
    }
    (taken, requests)
}
