//! Parser tests: names with control characters, and the property that parsing any bytes never
//! panics and accounts for every byte.

use proptest::prelude::*;

use super::*;

/// The JSON record of one line.
fn one(line: &str) -> serde_json::Value {
    let cat = Arc::new(Catalogue::embedded().unwrap_or_else(|e| panic!("{e}")));
    let mut p = Parser::new(cat, Zone::new(chrono_tz::Tz::UTC), None);
    let bytes = format!("{line}\n");
    let mut out = None;
    let mut r = reader::RecordReader::new(bytes.as_bytes(), 0, reader::ReaderConfig::default());
    let _ = r.run(reader::AtEof::Finish, |raw| {
        out = Some(p.parse(&raw, |rec| rec.to_json("h", "f", "fp")));
    });
    out.unwrap_or_default()
}

#[test]
fn names_with_control_characters_are_not_taken() {
    let prefix = "[I 2026-11-28 10:00:00.000 JupyterHub log:192] ";
    let v = one(&format!(
        "{prefix}200 GET /user/alice%0A/api/status (alice@10.0.0.1) 2.00ms"
    ));
    assert_eq!(v["user"], serde_json::Value::Null, "{v}");
    assert_eq!(v["actor"], serde_json::Value::Null, "{v}");
    assert_eq!(v["flags"], "bad_name", "{v}");
    assert_eq!(
        v["path"], "/user/alice%0A/api/status",
        "the record keeps its path"
    );
    let v = one(&format!(
        "{prefix}200 GET /user/a%40b/gpu%09x/api (@10.0.0.1) 2.00ms"
    ));
    assert_eq!(v["server_name"], serde_json::Value::Null, "{v}");
    // An encoded `@` is a name character, not a control one.
    let v = one(&format!(
        "{prefix}200 GET /user/a%40b/api/status (@10.0.0.1) 2.00ms"
    ));
    assert_eq!(v["user"], "a@b", "{v}");
    assert_eq!(v["flags"], serde_json::Value::Null, "{v}");
}

const PREFIXES: &[&str] = &[
    "[I 2026-11-28 15:30:10.250 JupyterHub log:192] ",
    "[W 2026-11-28 15:30:10.250 ServerApp] ",
    "[E 241111 16:38:10 __init__:251] ",
    "2026-11-28T15:30:10.250Z [ConfigProxy] info: ",
    "21:44:04.424 [ConfigProxy] info: ",
    "    ",
    "200 GET /hub/api/users/a@b@::1 (x@y@::ffff:1.2.3.4) 1.0ms",
    "Task exception was never retrieved\n",
    "\x1b[32m",
    "}\n",
    "\n",
];

fn chunks() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(PREFIXES).prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..40),
            "[ -~]{0,60}".prop_map(|s| s.into_bytes()),
        ],
        0..30,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]
    #[test]
    fn parser_never_panics_and_loses_no_byte(input in chunks()) {
        super::fuzz_one(&input);
    }

    #[test]
    fn parser_never_panics_on_raw_bytes(input in prop::collection::vec(any::<u8>(), 0..600)) {
        super::fuzz_one(&input);
    }
}
