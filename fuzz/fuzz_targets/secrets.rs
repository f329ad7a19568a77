//! Fuzz target: a secret planted in a random syntax (query, form, JSON, Python repr, keyword
//! argument, env, `key: value`, header, cookie, URL userinfo, secret-bearing path, xsrf cookie
//! message, OAuth grant), under a random secret key name and case, between arbitrary text, must
//! not survive the scrubber nor any column of the parsed record. The planting is
//! `hubpulse::parse::scrub::fuzz::check_planted` (shared with the property test).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = hubpulse::parse::scrub::fuzz::check_planted(data);
});
