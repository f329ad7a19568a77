//! Shared by the Datadog tests: fixture logs fed through the deriver in record-time order, the
//! expected records read back independently, and the local Datadog intake
//! (`tests/support/dd_intake.py`, validating against Datadog's published OpenAPI spec).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use hubpulse::parse::Parser;
use hubpulse::parse::catalogue::Catalogue;
use hubpulse::parse::reader::{AtEof, RawRecord, ReaderConfig, RecordReader};
use hubpulse::parse::time::Zone;
use hubpulse::sinks::datadog::Interval;
use hubpulse::sinks::datadog::derive::{DeriveConfig, DeriveStats, Deriver};
use hubpulse::sinks::datadog::payload::Payload;
use serde_json::Value;

use crate::support::prereq::dd_intake_python;
use crate::support::root;

/// Agent lag the tests pretend: every record is read this long after its timestamp.
pub const LAG_US: i64 = 250_000;

struct OwnedRaw {
    offset: u64,
    end: u64,
    bytes: Vec<u8>,
    lines: u32,
    truncated: bool,
    split: bool,
}

impl OwnedRaw {
    fn raw(&self) -> RawRecord<'_> {
        RawRecord {
            offset: self.offset,
            end: self.end,
            bytes: &self.bytes,
            lines: self.lines,
            truncated: self.truncated,
            split: self.split,
        }
    }
}

fn parser() -> Parser {
    let cat = Arc::new(Catalogue::embedded().unwrap());
    Parser::new(
        cat,
        Zone::parse("UTC").unwrap(),
        chrono::NaiveDate::from_ymd_opt(2026, 11, 28),
    )
}

/// The `.log` files of a fixture directory (or one file), sorted.
pub fn logs(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut v: Vec<PathBuf> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

/// Feed every record of the fixture's logs to a deriver, files merged by record time (each
/// file's own order kept, as the agent reads them), each read `LAG_US` after its timestamp.
pub fn derive(path: &Path, cfg: DeriveConfig) -> (Vec<Interval>, DeriveStats) {
    let mut files: Vec<(Vec<OwnedRaw>, Vec<i64>)> = Vec::new();
    for f in logs(path) {
        let mut raws = Vec::new();
        let mut reader =
            RecordReader::new(std::fs::File::open(&f).unwrap(), 0, ReaderConfig::default());
        reader
            .run(AtEof::Finish, |r| {
                raws.push(OwnedRaw {
                    offset: r.offset,
                    end: r.end,
                    bytes: r.bytes.to_vec(),
                    lines: r.lines,
                    truncated: r.truncated,
                    split: r.split,
                })
            })
            .unwrap();
        let mut p = parser();
        let times = raws
            .iter()
            .map(|r| p.parse(&r.raw(), |rec| rec.ts.or(rec.ts_hint).unwrap_or(0)))
            .collect();
        files.push((raws, times));
    }
    let mut parsers: Vec<Parser> = files.iter().map(|_| parser()).collect();
    let mut next = vec![0usize; files.len()];
    let mut d = Deriver::new(cfg);
    loop {
        let pick = (0..files.len())
            .filter(|&i| next[i] < files[i].0.len())
            .min_by_key(|&i| (files[i].1[next[i]], i));
        let Some(i) = pick else { break };
        let t = files[i].1[next[i]];
        let raw = files[i].0[next[i]].raw();
        parsers[i].parse(&raw, |rec| d.record(rec, "golden", t + LAG_US));
        next[i] += 1;
    }
    d.flush_all();
    let ivs = d.take_ready();
    (ivs, d.stats().clone())
}

/// One expected record, with the time the deriver uses (`ts`, else the file's last `ts`), µs.
pub struct Expected {
    pub t: i64,
    pub v: Value,
}

pub fn expected(path: &Path) -> Vec<Expected> {
    let mut out = Vec::new();
    for f in logs(path) {
        let text = std::fs::read_to_string(f.with_extension("expected.jsonl")).unwrap();
        let mut last = 0;
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            if let Some(ts) = v["ts"].as_str() {
                last = chrono::DateTime::parse_from_rfc3339(ts)
                    .unwrap()
                    .timestamp_micros();
            }
            out.push(Expected { t: last, v });
        }
    }
    out
}

/// `{metric -> {(interval start, tags without hub) -> value}}` of the derived points.
pub type Table = BTreeMap<String, BTreeMap<(i64, Vec<String>), Value>>;

pub fn table(ivs: &[Interval]) -> Table {
    let mut t = Table::new();
    for iv in ivs {
        for p in &iv.points {
            let tags: Vec<String> = p
                .tags
                .iter()
                .map(ToString::to_string)
                .filter(|s| !s.starts_with("hub:"))
                .collect();
            let v = match &p.value {
                hubpulse::sinks::datadog::Value::Count(c)
                | hubpulse::sinks::datadog::Value::Gauge(c) => {
                    serde_json::json!(c)
                }
                hubpulse::sinks::datadog::Value::Distribution(vs) => serde_json::json!(vs),
            };
            let prev = t
                .entry(p.metric.to_string())
                .or_default()
                .insert((iv.start_s, tags), v);
            assert!(
                prev.is_none(),
                "two points of one series in one interval: {}",
                p.metric
            );
        }
    }
    t
}

/// The local Datadog intake, killed (by its own pid) when dropped.
pub struct Intake {
    child: Child,
    pub port: u16,
}

impl Intake {
    pub fn start() -> Intake {
        let script = root().join("tests/support/dd_intake.py");
        let spec = std::env::var_os("HUBPULSE_DD_SPEC_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root().join("fixtures/datadog/spec"));
        let mut child = Command::new(dd_intake_python())
            .arg(&script)
            .arg("--spec-dir")
            .arg(&spec)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the Datadog test intake");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(port) = line.trim().strip_prefix("PORT ") else {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            let _ = child.wait();
            panic!(
                "the intake did not start ({}): {err}\n(run `bash tests/support/dd_intake_setup.sh` \
                 and set HUBPULSE_PYTHON to its venv's python)",
                dd_intake_python()
            );
        };
        Intake {
            port: port.parse().unwrap(),
            child,
        }
    }

    /// One HTTP/1.1 request; returns the status and the body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Vec<u8>) {
        let (status, _, body) = self.request_full(method, path, headers, body);
        (status, body)
    }

    /// One HTTP/1.1 request; returns the status, the headers (names lowercased) and the body.
    pub fn request_full(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, BTreeMap<String, String>, Vec<u8>) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let status = std::str::from_utf8(&resp[9..12]).unwrap().parse().unwrap();
        let at = memchr::memmem::find(&resp, b"\r\n\r\n").unwrap() + 4;
        let head = String::from_utf8_lossy(&resp[..at]);
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        (status, headers, resp[at..].to_vec())
    }

    /// Send a payload as the sink will: the endpoint's path, media type, encoding and an API key.
    pub fn send(&self, p: &Payload) -> u16 {
        self.send_full(p).0
    }

    pub fn send_full(&self, p: &Payload) -> (u16, BTreeMap<String, String>, Vec<u8>) {
        let headers = [
            ("DD-API-KEY", "test-key"),
            ("Content-Type", p.endpoint.content_type()),
            ("Content-Encoding", p.codec.content_encoding()),
        ];
        self.request_full("POST", p.endpoint.path(), &headers, &p.body)
    }

    pub fn recorded(&self) -> Vec<Value> {
        let (status, body) = self.request("GET", "/_recorded", &[], b"");
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    }

    pub fn reset(&self) {
        assert_eq!(self.request("POST", "/_reset", &[], b"").0, 200);
    }

    /// Answers for the next requests, in order (see the intake's doc).
    pub fn script(&self, answers: Value) {
        let body = answers.to_string();
        assert_eq!(
            self.request("POST", "/_script", &[], body.as_bytes()).0,
            200
        );
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        crate::support::kill(&mut self.child);
    }
}
