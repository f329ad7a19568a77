//! A planted-secret check for the fuzz target `fuzz/fuzz_targets/secrets.rs` and the property
//! test in `tests.rs`: arbitrary bytes choose a syntax, a secret key name (in a random case),
//! a secret value and the text around it; the secret must not survive the scrubber, nor any
//! column of the parsed record.
//!
//! The value is drawn from bytes no syntax treats as a delimiter (`A-Z a-z 0-9 _ . ~ -`, at least
//! 8 of them), since a value ends at its syntax's delimiter by design (see the module docs of
//! [`super`]). The surrounding text is arbitrary except that a space separates it from the
//! planted part, and control bytes in it (which ANSI stripping may consume together with the
//! byte after them) become `?`; an input whose surrounding text itself contains the secret is
//! skipped.

use std::sync::{Arc, LazyLock};

use super::{MARKER, REDACTED};
use crate::parse::Parser;
use crate::parse::catalogue::Catalogue;
use crate::parse::reader::{AtEof, ReaderConfig, RecordReader};
use crate::parse::time::Zone;

/// Key names that hold a secret in every syntax below (the rule set of `docs/SCRUBBING.md`).
const KEYS: [&str; 22] = [
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_token",
    "auth_token",
    "JUPYTERHUB_API_TOKEN",
    "X-Jupyterhub-Api-Token",
    "client_secret",
    "cookie_secret",
    "secret",
    "password",
    "passwd",
    "db_password",
    "api_key",
    "apikey",
    "jwt",
    "xsrf",
    "_xsrf",
    "xsrf_token",
    "session_id",
    "private_key",
];

/// Syntaxes, `{k}` the key and `{v}` the value.
const SYNTAXES: [&str; 30] = [
    "GET /hub/api/users?{k}={v}&limit=10",
    "GET /hub/login?next=%2Fhub%2F&{k}={v}",
    "GET /user/alice/lab;{k}={v};x=1",
    "302 GET /hub/login?next=%2Fuser%2Fa%2Flab%3F{k}%3D{v}%26x%3D1 -> /hub/",
    "302 GET /hub/login?next=%2Fhub%2Flogin%3Fnext%3D%252Flab%253F{k}%253D{v}%2526y%253D2",
    "body=\"a=1&{k}={v}\"",
    "{'{k}': '{v}', 'n': 1}",
    "{\"{k}\": \"{v}\", \"n\": 1}",
    "{\"{k}\":\"{v}\"}",
    "{'{k}': b'{v}'}",
    "body=\"{\\\"{k}\\\": \\\"{v}\\\"}\"",
    "HubAuth(url='http://hub:8081', {k}='{v}', n=3)",
    "f({k}=\"{v}\")",
    "env {k}={v} HOME=/home/jovyan",
    "c.Hub.{k} = '{v}'",
    "{k}: {v}",
    "    {k}: {v}, next: 1",
    "> {k}: {v}",
    "[{'name': '{k}', 'value': '{v}', 'value_from': None}]",
    "--ServerApp.{k}={v} --ip=0.0.0.0",
    "Authorization: token {v}",
    "> Authorization: Bearer {v}",
    "{'Authorization': 'token {v}'}",
    "Cookie: jupyterhub-session-id={v}; _xsrf=x",
    "< Set-Cookie: jupyterhub-hub-login={v}; Path=/hub/; HttpOnly",
    "Connecting to db: postgresql://hub:{v}@db:5432/jupyterhub",
    "200 GET /hub/api/authorizations/token/{v} (@::1) 1.00ms",
    "200 GET /hub/api/authorizations/cookie/jupyterhub-services/{v} (@::1) 1.00ms",
    "Setting new xsrf cookie for b'{v}' {'path': '/hub/'}",
    "oauth2:120] Created grant {'code': '{v}', 'state': 'x'} for request",
];

fn catalogue() -> Arc<Catalogue> {
    static CATALOGUE: LazyLock<Arc<Catalogue>> = LazyLock::new(|| {
        Arc::new(Catalogue::embedded().unwrap_or_else(|e| panic!("embedded catalogue: {e}")))
    });
    CATALOGUE.clone()
}

/// Plant a secret as `data` says and check that it does not survive; panics if it does.
/// Returns whether a secret was planted (`false`: too few bytes, or a skipped input).
pub fn check_planted(data: &[u8]) -> bool {
    let [syntax, key, case, vlen, rest @ ..] = data else {
        return false;
    };
    let vlen = 8 + usize::from(*vlen % 24);
    if rest.len() < vlen {
        return false;
    }
    const VALUE_BYTES: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-";
    let value: String = rest[..vlen]
        .iter()
        .map(|b| VALUE_BYTES[usize::from(*b) % VALUE_BYTES.len()] as char)
        .collect();
    if REDACTED.contains(&value.as_str()) {
        return false;
    }
    // Control bytes that ANSI stripping consumes with their neighbours are not planted.
    let noise: String = String::from_utf8_lossy(&rest[vlen..])
        .chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect();
    let (before, after) = noise.split_at(noise.floor_char_boundary(noise.len() / 2));
    let key = KEYS[usize::from(*key) % KEYS.len()];
    let key: String = match case % 3 {
        0 => key.to_string(),
        1 => key.to_ascii_uppercase(),
        _ => key
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
    };
    let planted = SYNTAXES[usize::from(*syntax) % SYNTAXES.len()]
        .replace("{k}", &key)
        .replace("{v}", &value);
    if noise.contains(&value) || planted.replace(&value, "").contains(&value) {
        return false;
    }
    let text = format!("{before} {planted} {after}");
    let scrubbed = super::scrub(&text).unwrap_or_else(|| text.clone());
    assert!(
        !scrubbed.contains(&value),
        "secret {value:?} survived in {scrubbed:?} (planted as {planted:?})"
    );
    assert!(scrubbed.contains(MARKER));
    // The same record through the parser: no column holds it.
    let line = format!("[I 2026-11-28 10:00:00.000 JupyterHub log:192] {text}\n");
    let mut parser = Parser::new(catalogue(), Zone::new(chrono_tz::Tz::UTC), None);
    let cfg = ReaderConfig::default();
    let _ = RecordReader::new(line.as_bytes(), 0, cfg).run(AtEof::Finish, |raw| {
        let json = parser.parse(&raw, |rec| rec.to_json("h", "f", "fp").to_string());
        assert!(!json.contains(&value), "secret {value:?} in record {json}");
    });
    true
}
