//! From the bytes of one log connection to positioned lines: split at `\n`, strip the kubelet
//! timestamp, number the lines ([`StreamPos`]) and drop the ones a resume or a reconnect has
//! already delivered.
//!
//! The log endpoint with `timestamps=true` prefixes every line with the kubelet's receive time
//! in Go's RFC 3339 "nano" layout, UTC, trailing zeros of the fraction trimmed (so the fraction
//! has 0 to 9 digits), then one space:
//!
//! ```text
//! 2026-11-28T19:00:01.12345Z [I 2026-11-28 19:00:01.123 JupyterHub app:3320] Running JupyterHub version 5.3.0
//! ```
//!
//! Invariant: within one connection the positions of the lines strictly increase, because the
//! kubelet's timestamps never go backwards and `same_ts` counts the lines sharing one.

use crate::sources::kube::{KubeStats, PodLines, StreamPos};
use std::sync::atomic::Ordering::Relaxed;

/// Splits one kubelet log line (without its `\n`) into its timestamp, in nanoseconds since the
/// epoch, and the text after the separating space. `None` if the line does not start with an
/// RFC 3339 timestamp followed by a space or the end of the line (an empty log line).
pub fn parse_kubelet_line(line: &[u8]) -> Option<(i64, &[u8])> {
    let (ts, text) = match memchr::memchr(b' ', line) {
        Some(sp) => (&line[..sp], &line[sp + 1..]),
        None => (line, &line[line.len()..]),
    };
    // Shortest valid form: `2026-11-28T19:00:01Z`.
    if ts.len() < 20 || !ts[0].is_ascii_digit() {
        return None;
    }
    let ts = std::str::from_utf8(ts).ok()?;
    let nanos = chrono::DateTime::parse_from_rfc3339(ts)
        .ok()?
        .timestamp_nanos_opt()?;
    Some((nanos, text))
}

/// The position of the line after `prev` (the previous line of the same connection, if any)
/// that carries timestamp `ts_nanos`.
pub fn next_pos(prev: Option<StreamPos>, ts_nanos: i64) -> StreamPos {
    match prev {
        Some(p) if p.ts_nanos == ts_nanos => StreamPos {
            ts_nanos,
            same_ts: p.same_ts.saturating_add(1),
        },
        _ => StreamPos {
            ts_nanos,
            same_ts: 1,
        },
    }
}

/// Whether a line at `pos` was already delivered: it is at or before `floor`, the committed
/// position (resume) or the last position sent in this run (reconnect).
pub fn already_delivered(pos: StreamPos, floor: Option<StreamPos>) -> bool {
    floor.is_some_and(|f| pos <= f)
}

/// The `sinceTime` to request to resume after `pos`: its timestamp truncated to whole seconds,
/// the API's precision (so the reply starts at or before `pos`, never after it).
pub fn since_second(pos: StreamPos) -> i64 {
    pos.ts_nanos.div_euclid(1_000_000_000)
}

/// Line assembly for one connection of one stream.
///
/// Bytes go in as they arrive; complete, not yet delivered lines accumulate in a [`PodLines`]
/// batch that the caller takes when it wants to send. A line whose timestamp does not parse
/// is kept whole (nothing is dropped) at the previous line's timestamp (0 if it is the first
/// of the connection), and counted in [`KubeStats::malformed_ts`].
#[derive(Debug)]
pub struct LineAssembler {
    stream: String,
    /// Bytes after the last `\n` seen.
    partial: Vec<u8>,
    prev: Option<StreamPos>,
    floor: Option<StreamPos>,
    batch: PodLines,
}

impl LineAssembler {
    /// `floor`: lines at or before it are skipped (see [`already_delivered`]).
    pub fn new(stream: String, floor: Option<StreamPos>) -> Self {
        LineAssembler {
            batch: PodLines {
                stream: stream.clone(),
                bytes: Vec::new(),
                ends: Vec::new(),
            },
            stream,
            partial: Vec::new(),
            prev: None,
            floor,
        }
    }

    /// Feeds bytes of the response body.
    pub fn push(&mut self, mut data: &[u8], stats: &KubeStats) {
        while let Some(nl) = memchr::memchr(b'\n', data) {
            if self.partial.is_empty() {
                self.line(&data[..nl], stats);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&data[..nl]);
                self.line(&line, stats);
                line.clear();
                self.partial = line; // keep the allocation
            }
            data = &data[nl + 1..];
        }
        self.partial.extend_from_slice(data);
    }

    /// The body ended cleanly: a last line without `\n` is complete (it gets one).
    pub fn finish(&mut self, stats: &KubeStats) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(&line, stats);
        }
    }

    /// The body failed: a last line without `\n` may be cut short. It is dropped here; the
    /// reconnect, which starts after the last complete line sent, fetches it whole.
    pub fn abandon_partial(&mut self) {
        self.partial.clear();
    }

    /// Bytes of complete lines waiting in the batch.
    pub fn batch_len(&self) -> usize {
        self.batch.bytes.len()
    }

    /// Takes the batch of complete lines (`None` if there are none).
    pub fn take_batch(&mut self) -> Option<PodLines> {
        if self.batch.ends.is_empty() {
            return None;
        }
        let empty = PodLines {
            stream: self.stream.clone(),
            bytes: Vec::new(),
            ends: Vec::new(),
        };
        Some(std::mem::replace(&mut self.batch, empty))
    }

    fn line(&mut self, line: &[u8], stats: &KubeStats) {
        let (ts, text, malformed) = match parse_kubelet_line(line) {
            Some((ts, text)) => (ts, text, false),
            None => (self.prev.map_or(0, |p| p.ts_nanos), line, true),
        };
        let pos = next_pos(self.prev, ts);
        self.prev = Some(pos);
        if already_delivered(pos, self.floor) {
            stats.skipped_on_resume.fetch_add(1, Relaxed);
            return;
        }
        if malformed {
            stats.malformed_ts.fetch_add(1, Relaxed);
        }
        self.batch.bytes.extend_from_slice(text);
        self.batch.bytes.push(b'\n');
        self.batch.ends.push((self.batch.bytes.len(), pos));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const T0: i64 = 1_795_892_400 * 1_000_000_000; // 2026-11-28T19:00:00Z

    fn pos(ts_nanos: i64, same_ts: u32) -> StreamPos {
        StreamPos { ts_nanos, same_ts }
    }

    #[test]
    fn kubelet_prefix_is_stripped_with_any_fraction_length() {
        let cases: [(&[u8], i64, &[u8]); 5] = [
            (b"2026-11-28T19:00:00Z hello", T0, b"hello"),
            (b"2026-11-28T19:00:00.5Z a b", T0 + 500_000_000, b"a b"),
            (b"2026-11-28T19:00:00.123456789Z x", T0 + 123_456_789, b"x"),
            (
                b"2026-11-28T19:00:00.000000001Z  indented",
                T0 + 1,
                b" indented",
            ),
            (b"2026-11-28T20:00:00+01:00 offset", T0, b"offset"),
        ];
        for (line, ts, text) in cases {
            assert_eq!(parse_kubelet_line(line), Some((ts, text)), "{line:?}");
        }
    }

    #[test]
    fn empty_log_line_has_only_the_timestamp() {
        assert_eq!(
            parse_kubelet_line(b"2026-11-28T19:00:00.25Z"),
            Some((T0 + 250_000_000, &b""[..]))
        );
        assert_eq!(
            parse_kubelet_line(b"2026-11-28T19:00:00.25Z "),
            Some((T0 + 250_000_000, &b""[..]))
        );
    }

    #[test]
    fn lines_without_a_timestamp_are_not_split() {
        for line in [
            &b""[..],
            b"hello world",
            b"2026-11-28 19:00:00.123 JupyterHub",
            b"2026-13-28T19:00:00Z month 13",
            b"\xff\xfe2026-11-28T19:00:00Z binary",
            b"[I 2026-11-28 19:00:00.123 JupyterHub app:1] x",
        ] {
            assert_eq!(parse_kubelet_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn same_ts_counts_lines_sharing_a_timestamp() {
        let a = next_pos(None, T0);
        let b = next_pos(Some(a), T0);
        let c = next_pos(Some(b), T0 + 1);
        assert_eq!((a, b, c), (pos(T0, 1), pos(T0, 2), pos(T0 + 1, 1)));
        assert!(a < b && b < c);
    }

    #[test]
    fn resume_filter_skips_at_and_before_the_floor() {
        let floor = Some(pos(T0, 2));
        assert!(already_delivered(pos(T0 - 1, 9), floor));
        assert!(already_delivered(pos(T0, 1), floor));
        assert!(already_delivered(pos(T0, 2), floor));
        assert!(!already_delivered(pos(T0, 3), floor));
        assert!(!already_delivered(pos(T0 + 1, 1), floor));
        assert!(!already_delivered(pos(i64::MIN, 1), None));
    }

    #[test]
    fn since_second_truncates_never_rounds_up() {
        assert_eq!(since_second(pos(T0 + 999_999_999, 1)), 1_795_892_400);
        assert_eq!(since_second(pos(T0, 1)), 1_795_892_400);
        assert_eq!(since_second(pos(-1, 1)), -1);
    }

    fn lines(batch: &PodLines) -> Vec<(&str, StreamPos)> {
        let mut start = 0;
        batch
            .ends
            .iter()
            .map(|&(end, p)| {
                let s = std::str::from_utf8(&batch.bytes[start..end]).unwrap();
                start = end;
                (s, p)
            })
            .collect()
    }

    #[test]
    fn assembler_joins_split_chunks_and_positions_lines() {
        let stats = KubeStats::default();
        let mut a = LineAssembler::new("k8s/ns/p/c".into(), None);
        a.push(b"2026-11-28T19:00:00Z one\n2026-11-28T19:00", &stats);
        assert_eq!(a.batch_len(), 4);
        a.push(b":00Z two\n2026-11-28T19:00:00.5Z thr", &stats);
        a.push(b"ee\n", &stats);
        let b = a.take_batch().unwrap();
        assert_eq!(b.stream, "k8s/ns/p/c");
        assert_eq!(
            lines(&b),
            [
                ("one\n", pos(T0, 1)),
                ("two\n", pos(T0, 2)),
                ("three\n", pos(T0 + 500_000_000, 1)),
            ]
        );
        assert!(a.take_batch().is_none());
    }

    #[test]
    fn clean_end_completes_the_last_line_a_failure_drops_it() {
        let stats = KubeStats::default();
        let mut a = LineAssembler::new("s".into(), None);
        a.push(b"2026-11-28T19:00:00Z last", &stats);
        assert!(a.take_batch().is_none());
        a.finish(&stats);
        assert_eq!(lines(&a.take_batch().unwrap()), [("last\n", pos(T0, 1))]);

        let mut a = LineAssembler::new("s".into(), None);
        a.push(b"2026-11-28T19:00:00Z cut sh", &stats);
        a.abandon_partial();
        a.finish(&stats);
        assert!(a.take_batch().is_none());
    }

    #[test]
    fn malformed_lines_pass_through_at_the_previous_timestamp() {
        let stats = KubeStats::default();
        let mut a = LineAssembler::new("s".into(), None);
        a.push(b"no timestamp\n2026-11-28T19:00:00Z a\ncontinued\n", &stats);
        let b = a.take_batch().unwrap();
        assert_eq!(
            lines(&b),
            [
                ("no timestamp\n", pos(0, 1)),
                ("a\n", pos(T0, 1)),
                ("continued\n", pos(T0, 2)),
            ]
        );
        assert_eq!(stats.snapshot().malformed_ts, 2);
    }

    #[test]
    fn assembler_skips_what_the_floor_covers_and_counts_it() {
        let stats = KubeStats::default();
        let mut a = LineAssembler::new("s".into(), Some(pos(T0 + 1, 2)));
        a.push(
            b"2026-11-28T19:00:00Z old\n\
              2026-11-28T19:00:00.000000001Z x1\n\
              2026-11-28T19:00:00.000000001Z x2\n\
              2026-11-28T19:00:00.000000001Z x3\n\
              2026-11-28T19:00:01Z new\n",
            &stats,
        );
        assert_eq!(
            lines(&a.take_batch().unwrap()),
            [
                ("x3\n", pos(T0 + 1, 3)),
                ("new\n", pos(T0 + 1_000_000_000, 1))
            ]
        );
        assert_eq!(stats.snapshot().skipped_on_resume, 3);
    }
}
