//! Arbitrary mailbox names in modified UTF-7 (RFC 3501 §5.1.3) never panic the decoder, and
//! what decodes encodes back to a name that decodes to the same text.
#![no_main]

use kurier_imap::mutf7::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(name) = decode(&text) {
        assert_eq!(decode(&encode(&name)).as_deref(), Some(name.as_str()));
    }
    let _ = decode(&encode(&text));
});
