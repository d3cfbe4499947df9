//! Arbitrary MTA-STS policies (RFC 8461 §3.2, fetched from the Internet) and `_mta-sts`
//! records never panic the parsers, and a parsed policy's MX patterns match without panicking.
#![no_main]

use kurier_policy::sts::{mx_matches, parse_policy, parse_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(policy) = parse_policy(&text) {
        let _ = policy.requirement("mx.example.org");
    }
    let lines: Vec<String> = text.split('\n').map(String::from).collect();
    let _ = parse_record(&lines);
    if let Some((pattern, host)) = text.split_once(' ') {
        let _ = mx_matches(pattern, host);
    }
});
