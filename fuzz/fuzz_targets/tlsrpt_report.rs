//! Arbitrary TLSRPT reports (RFC 8460 §4.4; they arrive by mail from anyone) and `_smtp._tls`
//! records never panic the parsers.
#![no_main]

use kurier_policy::tlsrpt::{parse_record, parse_report};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_report(data);
    let text = String::from_utf8_lossy(data);
    let _ = parse_record(&text.split('\n').map(String::from).collect::<Vec<_>>());
});
