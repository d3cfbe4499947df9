//! The DATA decoder: whatever comes in, a body it accepts has only CRLF line endings (so no
//! stored message can carry a smuggling sequence onward), and only CRLF.CRLF ends it.
#![no_main]

use kurier_smtp::data::{BareLineEnding, DataDecoder, DataProgress};
use libfuzzer_sys::fuzz_target;

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
            for (i, &b) in body.iter().enumerate() {
                if b == b'\n' {
                    assert!(i > 0 && body[i - 1] == b'\r', "bare LF in an accepted body");
                }
                if b == b'\r' {
                    assert!(
                        body.get(i + 1) == Some(&b'\n'),
                        "bare CR in an accepted body"
                    );
                }
            }
        }
    }
});
