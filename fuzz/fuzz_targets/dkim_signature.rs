//! Arbitrary messages with DKIM-Signature fields and arbitrary key records (RFC 6376 §3.5,
//! §3.6.1; both come from whoever sends us a TLSRPT report) never panic the signature parser
//! or the verifier.
#![no_main]

use kurier_dkim::verify::{signatures, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the key record, the rest the message.
    let (record, message) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (String::from_utf8_lossy(&data[..i]).into_owned(), &data[i + 1..]),
        None => (String::new(), data),
    };
    for sig in signatures(message).iter().take(4) {
        let _ = verify(message, sig, &record);
    }
});
