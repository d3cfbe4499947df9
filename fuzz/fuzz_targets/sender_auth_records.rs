//! What senders publish and write, for SPF, DMARC and Authentication-Results (RFC 7208 §4.6,
//! §7; RFC 7489 §6.3, §7.2; RFC 8601 §2.2): arbitrary records, macro strings, public suffix
//! lists, header values and aggregate reports never panic the parsers, the macro expander or
//! the organizational-domain walk; a report that reads writes out and reads back the same.
#![no_main]

use kurier_mailauth::aggregate::Feedback;
use kurier_mailauth::dmarc::DmarcRecord;
use kurier_mailauth::psl::PublicSuffixList;
use kurier_mailauth::results::authserv_id;
use kurier_mailauth::spf::{MacroValues, Record, expand};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Record::parse(&text);
    let _ = Record::parse(&format!("v=spf1 {text}"));
    let values = MacroValues {
        sender: "a.b-c@Example.COM",
        ip: "2001:db8::1".parse().expect("an address"),
        helo: "mail.example.net",
        receiver: "mx.kurier.test",
        validated: Some("host.example.com"),
        now: 0,
    };
    for exp in [false, true] {
        if let Ok(out) = expand(&text, &values, "example.com", exp) {
            assert!(exp || out.len() <= 253 || !out.contains('.'));
        }
    }
    if let Ok(report) = Feedback::parse(data) {
        let _ = report.totals();
        let again = Feedback::parse(report.to_xml().as_bytes()).expect("our own XML reads");
        assert_eq!(again.records.len(), report.records.len());
    }
    let _ = DmarcRecord::parse(&text);
    let _ = DmarcRecord::parse(&format!("v=DMARC1; {text}"));
    let _ = authserv_id(&text);
    if let Ok(psl) = PublicSuffixList::parse(&text) {
        let _ = psl.organizational_domain("a.b.c.example.co.uk");
        let _ = psl.organizational_domain(&text);
    }
});
