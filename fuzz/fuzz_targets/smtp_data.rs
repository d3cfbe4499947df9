//! The DATA and BDAT decoders: whatever comes in, a body they accept has only CRLF line
//! endings (so no stored message can carry a smuggling sequence onward), and only CRLF.CRLF
//! ends DATA. BDAT is fed in pieces split where the input says.
#![no_main]

use kurier_smtp::data::{BareLineEnding, BdatDecoder, DataDecoder, DataProgress};
use kurier_smtp::spool::{Body, InFlight};
use libfuzzer_sys::fuzz_target;

fn assert_crlf_only(body: &[u8]) {
    for (i, &b) in body.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && body[i - 1] == b'\r', "bare LF in an accepted body");
        }
        if b == b'\r' {
            assert!(body.get(i + 1) == Some(&b'\n'), "bare CR in an accepted body");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for mode in [BareLineEnding::Reject, BareLineEnding::Normalize] {
        let mut d = DataDecoder::new(mode, 1 << 16, 998);
        let end = match d.feed(data) {
            DataProgress::Done { consumed } => {
                assert!(consumed >= 3 && data[..consumed].ends_with(b".\r\n"));
                Some(consumed)
            }
            DataProgress::More => None,
        };
        if let (Some(_), Ok(body)) = (end, d.finish()) {
            assert_crlf_only(&body.into_bytes(0).expect("in memory").0);
        }
        // BDAT: the first byte picks the chunk size.
        let step = usize::from(data.first().copied().unwrap_or(1)).max(1);
        let mut b = BdatDecoder::new(mode, 1 << 16, 998, Body::new(InFlight::unlimited()));
        for chunk in data.chunks(step) {
            b.feed(chunk);
        }
        if let Ok(body) = b.finish() {
            assert_crlf_only(&body.into_bytes(0).expect("in memory").0);
        }
    }
});
