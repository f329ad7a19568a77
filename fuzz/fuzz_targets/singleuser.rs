//! Fuzz target: records of the `singleuser` family (a valid prefix, then arbitrary bytes,
//! continuation lines included) must parse without panicking, and every byte must be accounted for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = b"[I 2026-11-28 15:30:10.250 ServerApp] ".to_vec();
    input.extend_from_slice(data);
    hubpulse::parse::fuzz_one(&input);
});
