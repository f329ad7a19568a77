//! No planted secret survives: the corpus of real log-line shapes (`fixtures/secrets/corpus.txt`,
//! each group citing the upstream code that writes it) through the scrubber, the parser (every
//! column), Datadog log items, `hubpulse parse`, the lake (`hubpulse ingest` + `query`), and
//! hubpulse's own logs of those commands.

use std::sync::Arc;

use hubpulse::lake::batch::SourceInfo;
use hubpulse::parse::Parser;
use hubpulse::parse::catalogue::Catalogue;
use hubpulse::parse::reader::{AtEof, ReaderConfig, RecordReader};
use hubpulse::parse::scrub::{MARKER, scrub};
use hubpulse::parse::time::Zone;

use crate::support::{bin, root};

/// One corpus record: the line as logged, what it must become, and its planted secrets.
struct Case {
    line: String,
    expected: String,
    secrets: Vec<String>,
}

fn corpus() -> Vec<Case> {
    let text = std::fs::read_to_string(root().join("fixtures/secrets/corpus.txt")).unwrap();
    let mut cases = Vec::new();
    for raw in text.lines() {
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let raw = raw.replace("\\n", "\n");
        let (mut line, mut expected, mut secrets) = (String::new(), String::new(), Vec::new());
        let mut rest = raw.as_str();
        while let Some((before, after)) = rest.split_once('«') {
            let (secret, tail) = after.split_once('»').expect("unclosed «");
            line.push_str(before);
            line.push_str(secret);
            expected.push_str(before);
            expected.push_str(MARKER);
            secrets.push(secret.to_string());
            rest = tail;
        }
        line.push_str(rest);
        expected.push_str(rest);
        cases.push(Case {
            line,
            expected,
            secrets,
        });
    }
    cases
}

/// The parser's JSON record (every lake column) and its Datadog log item, for one record.
fn parsed(line: &str) -> Vec<(String, String)> {
    let cat = Arc::new(Catalogue::embedded().unwrap());
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 28);
    let mut parser = Parser::new(cat, Zone::parse("UTC").unwrap(), date);
    let bytes = format!("{line}\n");
    let src = SourceInfo {
        hub: "h".into(),
        file: "f".into(),
        fp: "fp".into(),
    };
    let mut out = Vec::new();
    RecordReader::new(bytes.as_bytes(), 0, ReaderConfig::default())
        .run(AtEof::Finish, |raw| {
            out.push(parser.parse(&raw, |rec| {
                let json = rec.to_json("h", "f", "fp").to_string();
                let item = hubpulse::sinks::datadog::logs::item(rec, &src, "host", &[]);
                (json, String::from_utf8(item.json).unwrap())
            }));
        })
        .unwrap();
    out
}

#[test]
fn corpus_has_enough_real_secret_shapes() {
    let cases = corpus();
    let with_secrets = cases.iter().filter(|c| !c.secrets.is_empty()).count();
    assert!(
        with_secrets >= 100,
        "{with_secrets} corpus entries with a secret"
    );
    for c in &cases {
        for s in &c.secrets {
            // A secret found in any scrubbed line could not prove that it was removed.
            for other in &cases {
                assert!(
                    !other.expected.contains(s.as_str()),
                    "secret {s:?} of {:?} is not distinctive: it is in {:?}",
                    c.line,
                    other.expected
                );
            }
        }
    }
}

#[test]
fn every_corpus_secret_is_replaced_and_nothing_else_changes() {
    let mut failures = Vec::new();
    for c in corpus() {
        let got = scrub(&c.line).unwrap_or_else(|| c.line.clone());
        if got != c.expected {
            failures.push(format!(
                "line:     {}\nexpected: {}\ngot:      {got}",
                c.line, c.expected
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn no_corpus_secret_reaches_a_column_or_a_datadog_log_item() {
    for c in corpus() {
        // One record, or more when the reader splits it (a hub record's unindented closing
        // `}` is a record of its own).
        let records = parsed(&c.line);
        assert!(!records.is_empty(), "{:?}", c.line);
        let mut scrubbed = false;
        for (json, item) in &records {
            for s in &c.secrets {
                assert!(!json.contains(s.as_str()), "{s:?} in record {json}");
                assert!(!item.contains(s.as_str()), "{s:?} in Datadog item {item}");
            }
            // The message column keeps the (scrubbed) text: the non-secret parts are all there.
            let v: serde_json::Value = serde_json::from_str(json).unwrap();
            let message = v["message"].as_str().unwrap();
            assert!(
                c.expected.contains(message.trim_end()) && !message.is_empty(),
                "message {message:?} is not part of {:?}",
                c.expected
            );
            scrubbed |= v["flags"].as_str().unwrap_or("").contains("scrubbed");
        }
        assert_eq!(scrubbed, !c.secrets.is_empty(), "{:?}", c.line);
    }
}

#[test]
fn hubpulse_parse_the_lake_and_hubpulse_logs_hold_no_corpus_secret() {
    let cases = corpus();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hub.log");
    let body: Vec<&str> = cases.iter().map(|c| c.line.as_str()).collect();
    std::fs::write(&log, body.join("\n") + "\n").unwrap();
    let secrets: Vec<&String> = cases.iter().flat_map(|c| &c.secrets).collect();
    let check = |what: &str, out: &[u8]| {
        let out = String::from_utf8_lossy(out);
        for s in &secrets {
            assert!(!out.contains(s.as_str()), "{s:?} in {what}");
        }
    };

    let out = bin()
        .arg("parse")
        .arg(&log)
        .env("HUBPULSE_LOG", "trace")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(MARKER));
    check("hubpulse parse output", &out.stdout);
    check("hubpulse parse logs", &out.stderr);

    let lake = dir.path().join("lake");
    let out = bin()
        .args(["ingest", "--no-progress", "--lake"])
        .arg(&lake)
        .arg(&log)
        .env("HUBPULSE_LOG", "trace")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check("hubpulse ingest logs", &out.stdout);
    check("hubpulse ingest logs", &out.stderr);

    let out = bin()
        .args(["query", "--format", "json", "--lake"])
        .arg(&lake)
        .arg("SELECT * FROM events")
        .env("HUBPULSE_LOG", "trace")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(MARKER),
        "the lake holds the scrubbed records"
    );
    check("the lake (every column of events)", &out.stdout);
    check("hubpulse query logs", &out.stderr);
}
