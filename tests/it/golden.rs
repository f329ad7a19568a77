//! Golden files: every `fixtures/logs/**/<case>.log` parses to `<case>.expected.jsonl`.
//! Every parser bug becomes a new case here.

use std::path::Path;
use std::sync::Arc;

use hubpulse::parse::Parser;
use hubpulse::parse::catalogue::Catalogue;
use hubpulse::parse::reader::{AtEof, ReaderConfig, RecordReader};
use hubpulse::parse::time::Zone;

use crate::support::{check_golden, fixture_logs, root};

/// Parse a fixture the way `hubpulse parse` does, with a fixed default date for time-only lines.
pub fn parse_jsonl(path: &Path) -> String {
    let rel = path.strip_prefix(root()).unwrap().display().to_string();
    let cat = Arc::new(Catalogue::embedded().unwrap());
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 28);
    let mut parser = Parser::new(cat, Zone::parse("UTC").unwrap(), date);
    let file = std::fs::File::open(path).unwrap();
    let mut reader = RecordReader::new(file, 0, ReaderConfig::default());
    let mut out = String::new();
    reader
        .run(AtEof::Finish, |raw| {
            let v = parser.parse(&raw, |rec| rec.to_json("golden", &rel, "fp"));
            out.push_str(&v.to_string());
            out.push('\n');
        })
        .unwrap();
    out
}

#[test]
fn every_fixture_log_matches_its_expected_records() {
    let files = fixture_logs();
    assert!(files.len() >= 8, "fixtures missing: {files:?}");
    for f in files {
        let expected = f.with_extension("expected.jsonl");
        check_golden(&expected, &parse_jsonl(&f));
    }
}

#[test]
fn nothing_is_lost_lines_and_bytes_add_up() {
    for f in fixture_logs() {
        let bytes = std::fs::read(&f).unwrap();
        let lines = bytes.split(|b| *b == b'\n').count() - usize::from(bytes.ends_with(b"\n"));
        let parsed = parse_jsonl(&f);
        let (mut sum_lines, mut last_offset) = (0u64, -1i64);
        for l in parsed.lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            sum_lines += v["lines"].as_u64().unwrap();
            let off = v["source_offset"].as_i64().unwrap();
            assert!(off > last_offset, "{}: offsets must increase", f.display());
            last_offset = off;
        }
        assert_eq!(
            sum_lines,
            lines as u64,
            "{}: every line belongs to exactly one record",
            f.display()
        );
    }
}
