//! Fuzz target: records of the `culler` family (a valid prefix, then arbitrary bytes,
//! continuation lines included) must parse without panicking, and every byte must be accounted for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = b"[I 241111 16:38:10 __init__:251] ".to_vec();
    input.extend_from_slice(data);
    hubpulse::parse::fuzz_one(&input);
});
