//! Arbitrary replies from a remote MX (RFC 5321 §4.2, multi-line, RFC 2034 enhanced codes)
//! never panic the outbound client's reply parser, and a reply's lines stay bounded.
#![no_main]

use kurier_smtp::client::{Extensions, ReplyParser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parser = ReplyParser::default();
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match parser.push_line(line) {
            Ok(Some(reply)) => {
                // Every reply may be an EHLO answer; the extension parser reads it.
                let _ = Extensions::from_ehlo(&reply);
                let _ = reply.status();
                let _ = reply.to_string();
            }
            Ok(None) => {}
            Err(_) => parser = ReplyParser::default(),
        }
    }
});
