//! Arbitrary command lines from a POP3 client (before and after login) never panic the
//! parser (RFC 1939, RFC 2449, RFC 5034).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for line in data.split(|b| *b == b'\n') {
        let _ = kurier_pop3::command::parse(line);
    }
    let _ = kurier_pop3::command::parse(data);
});
