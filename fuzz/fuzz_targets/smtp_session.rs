//! Arbitrary bytes from a client never panic the SMTP session, and it always makes progress.
#![no_main]

use std::sync::Arc;

use kurier_smtp::BareLineEnding;
use kurier_smtp::session::{
    AuthOutcome, Delivery, Event, PeerInfo, Session, SessionConfig, Verdict,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cfg = Arc::new(SessionConfig {
        hostname: "mx.fuzz.test".into(),
        postmaster: "postmaster@fuzz.test".into(),
        max_message_size: 4096,
        max_recipients: 5,
        max_errors: 50,
        max_line_length: 998,
        bare_line_ending: if data.first().is_some_and(|b| b & 1 == 1) {
            BareLineEnding::Normalize
        } else {
            BareLineEnding::Reject
        },
        starttls: true,
        submission: data.get(1).is_some_and(|b| b & 1 == 1),
        received_client_ip: true,
        in_flight: kurier_smtp::spool::InFlight::unlimited(),
        clock: kurier_smtp::received::Clock::Fixed(1_795_906_104),
    });
    let mut s = Session::new(
        cfg,
        PeerInfo {
            ip: "192.0.2.1".parse().unwrap(),
        },
    );
    // Feed in pieces whose sizes come from the data itself, to exercise split reads.
    let mut buf = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let take = (rest[0] as usize % 64 + 1).min(rest.len());
        buf.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 100_000, "no progress");
            let (used, ev) = s.input(&buf);
            assert!(used <= buf.len());
            buf.drain(..used);
            match ev {
                Event::NeedInput if used > 0 && !buf.is_empty() => continue,
                Event::NeedInput => break,
                Event::Close(_) => return,
                Event::StartTls(_) => {
                    buf.clear();
                    s.tls_started(kurier_smtp::TlsInfo {
                        version: "TLSv1.3".into(),
                        cipher: "x".into(),
                        group: None,
                    });
                }
                Event::CheckRecipient(_) => {
                    let _ = s.recipient_verdict(Verdict::Accept(vec![1]));
                }
                Event::Authenticate { .. } => {
                    let _ = s.auth_result(AuthOutcome::Ok {
                        account: "a@fuzz.test".into(),
                        senders: vec!["a@fuzz.test".into()],
                    });
                }
                Event::Deliver(m) => {
                    assert!(m.body.starts_with(b"Received: "));
                    let _ = s.delivered(Delivery::Stored, &m.id);
                }
                Event::Reply(r) => {
                    let wire = r.to_bytes();
                    assert!(wire.ends_with(b"\r\n"));
                }
            }
        }
    }
});
