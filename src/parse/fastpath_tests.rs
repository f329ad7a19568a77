//! The fast path against the general path: every record, its JSON, the parser's counters and
//! stream state after it, and the enrichment it defers, must be the same with the fast path on
//! as with it off, on the fixtures (real hub output among them), the generator's output, and
//! random near misses of the request line's shape.

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::parse::reader;

use crate::parse::differential::{fixture_logs, parser, same};

#[test]
fn fixtures_parse_the_same_on_both_paths() {
    let files = fixture_logs(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/logs"));
    assert!(files.len() >= 15, "fixtures found: {files:?}");
    let (mut taken, mut requests) = (0, 0);
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let (t, r) = same(&data, 1 << 20);
        if f.components().any(|c| c.as_os_str() == "real") {
            (taken, requests) = (taken + t, requests + r);
        }
    }
    // The comparison means something only if the fast path took the real request lines.
    assert!(
        taken * 10 > requests * 9 && requests > 300,
        "fast path took {taken} of {requests} real requests"
    );
}

#[test]
fn printable_ascii_is_exact() {
    for len in 0..40 {
        for bad in [0u8, 0x1f, 0x7f, 0x80, 0xff, b'\n', b'\r', 0x1b] {
            for at in 0..len {
                let mut v = vec![b'a'; len];
                v[at] = bad;
                assert!(!printable_ascii(&v), "{v:?}");
            }
        }
        let v: Vec<u8> = (0..len).map(|i| 0x20 + (i * 7 % 95) as u8).collect();
        assert!(printable_ascii(&v), "{v:?}");
    }
}

const PREFIXES: &[&str] = &[
    "[I 2026-11-02 00:00:01.234 JupyterHub log:191] ",
    "[W 2026-11-02 00:00:01.234 JupyterHub log:191] ",
    "[I 2026-11-02 00:00:01.2 JupyterHub log:191] ",
    "[I 2026-11-02 00:00:01.234567891 JupyterHub log:191] ",
    "[I 2026-11-02 23:59:59,999 JupyterHub log:191] ",
    "[I 2026-11-02 00:00:01.234 JupyterHub log:191]  ",
    "[I 2026-11-02  00:00:01.234 JupyterHub log:191] ",
    "[I 2026-11-02 00:00:01.234 JupyterHub log:191]",
    "[I 2026-11-03 00:00:01.234 SingleUserNotebookApp log:191] ",
    "[I 2026-11-02 00:00:01.234 ServerApp] ",
    "[I 2026-11-02 00:00:01.234 IdleCuller log:191] ",
    "[I 2026-11-02 00:00:01.234 a=b log:191] ",
    "[I 2026-11-02 00:00:01.234 JupyterHub l/og:191] ",
    "[I 2026-11-02 00:00:01.234 JupyterHub l\u{e9}g:191] ",
    "[I 2030-11-02 00:00:01.234 JupyterHub log:191] ",
    "[I 2020-11-02 00:00:01.234 JupyterHub log:191] ",
    "[I 2026-02-30 00:00:01.234 JupyterHub log:191] ",
    "[I 261102 00:00:01 log:191] ",
    "00:00:01.234 [ConfigProxy] info: ",
    "2026-11-02T00:00:01.234Z [ConfigProxy] info: ",
    "\u{1b}[32m[I 2026-11-02 00:00:01.234 JupyterHub log:191]\u{1b}(B\u{1b}[m ",
    "",
];

const PATHS: &[&str] = &[
    "/hub/api/users/{u}/activity",
    "/user/{u}/api/kernels/5d7c/channels",
    "/user/{u}/gpu/lab/tree/a.ipynb",
    "/hub/api/users/{u}/server/progress",
    "/hub/api/users?state=[secret]",
    "/hub/api/users?token=abc123",
    "/hub/oauth_callback?code=8a54&state=eyJ",
    "/user/{u}%0A/api/status",
    "/user/{u}/srv%09x/api",
    "/hub/api/authorizations/token/abc",
    "/hub/",
    "//hub//api/users/{u}/activity/",
    "/hub/spawn-pending/{u}",
    "",
];

const USERS: &[&str] = &[
    "alice",
    "Bob_2",
    "a.b-c",
    "user1234",
    "ana.lopez@example.org",
    "j\u{fc}rgen",
    "a%40b",
    "user(1)",
    "k8s-x",
    "xsrf",
    "cookie",
    "",
];

const IPS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.1.",
    "10..1",
    "1",
    "::ffff:10.0.0.1",
    "::1",
    "",
    "1.2.3.4) (x",
];

const DURATIONS: &[&str] = &[
    "3.21ms", "3.2ms", "3.210ms", "1e3ms", "3.21 ms", "3.21", "NaNms", ".5ms", "12ms", "1.2.3ms",
    "ms",
];

const TAILS: &[&str] = &[
    "",
    "\r",
    "\u{1b}[0m",
    "\0",
    " ",
    "\n    continued",
    "\u{e9}",
];

fn pick(v: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(v)
}

/// A near miss of the fast path's shape (or the shape itself).
fn line() -> impl Strategy<Value = String> {
    (
        (
            pick(PREFIXES),
            pick(&["200", "302", "404", "503", "20", "2000"]),
            pick(&["POST", "GET", "DELETE", "get", ""]),
            (pick(&[" ", "  "]), pick(&[" ", "  ", "", "x", " ("])),
        ),
        (
            pick(PATHS),
            pick(&[
                "",
                " -> /hub/spawn",
                " -> /hub/login?next=%2Fhub%2F",
                " - > x",
            ]),
            pick(USERS),
            pick(IPS),
        ),
        (pick(DURATIONS), pick(TAILS), 0..3usize, any::<u8>()),
    )
        .prop_map(
            |((pre, status, method, (sp, sp2)), (path, to, user, ip), (dur, tail, pad, byte))| {
                let path = path.replace("{u}", user);
                let mut s =
                    format!("{pre}{status}{sp}{method} {path}{to} ({user}@{ip}){sp2}{dur}{tail}");
                if pad == 2 {
                    s.push_str(&"x".repeat(500));
                }
                let mut at = (byte as usize) % s.len().max(1);
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                if pad == 1 && byte.is_ascii() {
                    s.insert(at, byte as char);
                } else if pad == 0
                    && byte > 200
                    && let Some((prev, _)) = s[..at].char_indices().last()
                {
                    s.remove(prev);
                }
                s
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]
    /// Streams of near misses parse the same on both paths.
    #[test]
    fn near_misses_parse_the_same_on_both_paths(lines in prop::collection::vec(line(), 1..12)) {
        // Each line again, and with another duration or none, after the others: the text
        // before the duration is then one seen before (see `fastmemo`).
        let mut again = lines.clone();
        for l in &lines {
            if let Some(i) = l.rfind("ms") {
                for c in ['7', 'e', ' '] {
                    let mut v = l.clone();
                    v.insert(i, c);
                    again.push(v);
                }
            }
        }
        let mut input = [lines, again].concat().join("\n");
        input.push('\n');
        same(input.as_bytes(), 64);
    }

    /// The fast request parser answers only where `request::parse` gives that answer.
    #[test]
    fn fast_request_agrees_with_request_parse(s in line()) {
        let msg = s.split_once("] ").map_or(s.as_str(), |(_, m)| m);
        if printable_ascii(msg.as_bytes()) && let Some(r) = request(msg) {
            prop_assert_eq!(Some(r), request::parse(msg));
        }
    }

    /// The one-scan duration gives what `duration_at` and `request::duration` give, to the bit.
    #[test]
    fn duration_back_is_duration_at_then_duration(
        head in "[ -~]{0,6}",
        close in prop_oneof![4 => Just(") "), 1 => Just(")"), 1 => Just(" "), 1 => Just("x ")],
        num in prop_oneof![
            4 => "[0-9]{0,16}\\.[0-9]{2}",
            1 => "[0-9]{0,18}",
            1 => "[0-9]{0,9}\\.[0-9]{0,9}",
            1 => "[0-9.]{0,8}",
            1 => "[0-9.e+-]{0,6}",
        ],
        tail in prop_oneof![4 => Just("ms"), 1 => Just("m"), 1 => Just("s"), 1 => Just("")],
    ) {
        let m = format!("{head}{close}{num}{tail}");
        let want = duration_at(m.as_bytes())
            .and_then(|(d, end)| Some((d, request::duration(&m[d..end])?.to_bits())));
        prop_assert_eq!(duration_back(&m).map(|(d, v)| (d, v.to_bits())), want, "{:?}", m);
    }
}

/// A hub or single-user prefix, or a near miss of one, with a message.
fn prefixed() -> impl Strategy<Value = String> {
    (
        (
            pick(&["I", "W", "X"]),
            pick(&["2026-11-02", "2026-11-03", "2026-02-30", "2026-1-02"]),
            pick(&["00:00:01", "23:59:60", "24:00:00", "0:00:01", "12:3a:00"]),
            pick(&[".", ",", ":"]),
        ),
        (
            pick(&["2", "234", "234567", "234567891", "2345678901", ""]),
            pick(&[
                "JupyterHub",
                "SingleUserNotebookApp",
                "IdleCuller",
                "Jupyter]Hub",
                "",
            ]),
            pick(&[
                " log:191",
                " log:19a",
                "",
                " l-o.g_:1",
                " log:191 ",
                " log:",
            ]),
            pick(&["] ", "]", "]  ", " ]", ""]),
        ),
    )
        .prop_map(|((l, d, t, sep), (frac, logger, module, close))| {
            format!("[{l} {d} {t}{sep}{frac} {logger}{module}{close}200 GET /x (a@b) 1.00ms")
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    /// After any line, the remembered prefix reads the next line as `bracketed_fast` does.
    #[test]
    fn memo_reads_prefixes_as_bracketed_fast(lines in prop::collection::vec(prefixed(), 1..8)) {
        let mut memo = Memo::default();
        for line in &lines {
            let got = memo.header(line).map(|(h, p)| {
                assert_eq!(p, plain(&h), "{line:?}");
                h
            });
            let want = crate::parse::prefix::bracketed_fast(line);
            prop_assert!(got.is_none() || got == want, "{line:?}: {got:?} != {want:?}");
            prop_assert_eq!(got.is_some(), want.is_some(), "{}", line);
        }
    }
}

proptest! {
    /// The prescan says no to any text without `=`, `%`, `:`, `k`, `x` and `z` (the fast path
    /// skips it there).
    #[test]
    fn prescan_needs_one_of_the_gate_bytes(s in "[ -~]{0,120}", word in pick(&scrub::KEY_WORDS)) {
        for text in [s.clone(), format!("{s} {word}"), format!("{word}{s}")] {
            let gate = text.bytes().any(gate_byte);
            prop_assert!(gate || !scrub::may_hold_secret(&text), "{}", text);
        }
    }
}

#[test]
fn the_request_memo_keeps_texts_only_while_they_repeat() {
    let line = |i: usize| {
        format!(
            "[I 2026-11-02 00:00:01.234 JupyterHub log:191] 200 GET /user/u{i}/api/contents/f{i} (u{i}@10.0.0.1) 1.{:02}ms\n",
            i % 100
        )
    };
    let kept = |input: String| {
        let mut p = parser(true, false, "UTC");
        let mut r = reader::RecordReader::new(input.as_bytes(), 0, reader::ReaderConfig::default());
        r.run(reader::AtEof::Finish, |raw| p.parse(&raw, |_| ()))
            .unwrap_or_else(|e| panic!("{e}"));
        p.requests.kept()
    };
    // Texts that never repeat: the memo stops after its trial.
    let once: String = (0..1000).map(line).collect();
    assert_eq!(kept(once), crate::parse::fastmemo::TRIAL);
    // Each text three times: the memo pays, and keeps them all.
    let thrice: String = (0..1000)
        .flat_map(|i| [line(i), line(i), line(i)])
        .collect();
    assert_eq!(kept(thrice), 1000);
}

#[test]
fn the_request_memo_keeps_the_texts_in_use_and_forgets_the_others() {
    use crate::parse::fastmemo::GENERATION;
    // Not heartbeats (`heartbeat` reads those without the memo).
    let text = |i: usize| format!("200 GET /user/u{i}/api/status (u{i}@10.0.0.1)");
    let line = |i: usize, ms: usize| {
        format!(
            "[I 2026-11-02 00:00:01.234 JupyterHub log:191] {} 1.{:02}ms\n",
            text(i),
            ms % 100
        )
    };
    // Server 0 reports every 100 lines; servers 1.. report twice each, then stop (three
    // generations' worth of them).
    let cold = 3 * GENERATION;
    let mut input = String::new();
    for i in 1..=cold {
        input += &line(i, i);
        input += &line(i, i + 1);
        if i % 50 == 0 {
            input += &line(0, i);
        }
    }
    let mut p = parser(true, false, "UTC");
    let mut r = reader::RecordReader::new(input.as_bytes(), 0, reader::ReaderConfig::default());
    r.run(reader::AtEof::Finish, |raw| p.parse(&raw, |_| ()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.requests.holds(&text(0)), "the text in use is kept");
    assert!(p.requests.holds(&text(cold)), "the newest text is kept");
    assert!(
        !p.requests.holds(&text(1)),
        "a text unused for two generations is gone"
    );
    assert!(p.requests.kept() <= 2 * GENERATION);
    assert!(p.requests.kept() > GENERATION);
    same(input.as_bytes(), 4096);
}

#[test]
fn a_text_longer_than_the_memo_keeps_is_parsed_every_time() {
    let user = "u".repeat(60);
    let text = format!("200 GET /user/{user}/api/status ({user}@10.0.0.1)");
    let line =
        |ms: usize| format!("[I 2026-11-02 00:00:01.234 JupyterHub log:191] {text} 1.{ms:02}ms\n");
    let input: String = (0..10).map(line).collect();
    let mut p = parser(true, false, "UTC");
    let mut r = reader::RecordReader::new(input.as_bytes(), 0, reader::ReaderConfig::default());
    let mut users = Vec::new();
    r.run(reader::AtEof::Finish, |raw| {
        p.parse(&raw, |rec| {
            users.push(rec.user.as_deref().map(str::to_owned))
        })
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!p.requests.holds(&text));
    assert_eq!(users, vec![Some(user.clone()); 10]);
    same(input.as_bytes(), 4096);
}

/// A line that both memos know but for one byte is taken only if that byte is printable ASCII
/// (the memos answer without scanning the line for it).
#[test]
fn a_line_both_memos_know_is_taken_only_in_printable_ascii() {
    let good = "[I 2026-11-02 00:00:01.234 JupyterHub log:191] 200 POST /hub/api/users/alice/activity (alice@10.0.0.1) 3.21ms\n";
    fn raw(s: &[u8]) -> reader::RawRecord<'_> {
        reader::RawRecord {
            offset: 0,
            end: s.len() as u64,
            bytes: s,
            lines: 1,
            truncated: false,
            split: false,
        }
    }
    let (mut memo, mut requests) = (Memo::default(), Requests::default());
    assert!(take(&raw(good.as_bytes()), &mut memo, &mut requests).is_some());
    let again = good.replace("01.234", "02.345").replace("3.21ms", "4.56ms");
    assert!(take(&raw(again.as_bytes()), &mut memo, &mut requests).is_some());
    assert!(memo.hit(&again[..again.len() - 1]).is_some());
    for i in 0..good.len() - 1 {
        for bad in [&[0x01][..], &[0x7f], "é".as_bytes(), &[0xff]] {
            let mut line = good.as_bytes()[..i].to_vec();
            line.extend_from_slice(bad);
            line.extend_from_slice(&good.as_bytes()[i + 1..]);
            let got = take(&raw(&line), &mut memo, &mut requests);
            assert!(got.is_none(), "{:?}", String::from_utf8_lossy(&line));
            let mut input = good.as_bytes().to_vec();
            input.extend_from_slice(&line);
            same(&input, 4096);
        }
    }
}
