//! TLSRPT without holes (RFC 8460 §4.3.1; issue 18 item 4): a STARTTLS handshake that stalls,
//! and a server that sends data after its 220 reply to STARTTLS (RFC 3207 §5), are recorded
//! as TLS outcomes, and the message is deferred, not sent.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use kurier_delivery::Outcome;
use kurier_delivery::attempt;
use kurier_delivery::route::{Hop, Route};
use kurier_policy::dane::DanePolicy;
use kurier_tls::ResultType;

/// An MX that offers STARTTLS, answers it with `after_starttls`, then holds the connection.
fn fake_mx(ip: &str, after_starttls: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind(format!("{ip}:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(tcp.try_clone().unwrap());
        let mut w = tcp;
        let mut line = String::new();
        w.write_all(b"220 mx.stall.test ESMTP\r\n").unwrap();
        r.read_line(&mut line).unwrap();
        w.write_all(b"250-mx.stall.test\r\n250 STARTTLS\r\n")
            .unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        w.write_all(after_starttls).unwrap();
        // Never answer the ClientHello.
        std::thread::sleep(Duration::from_secs(8));
    });
    addr
}

async fn attempt_at(addr: SocketAddr) -> attempt::AttemptReport {
    let route = Route::Hops(vec![Hop {
        host: "mx.stall.test".into(),
        base: "mx.stall.test".into(),
        addresses: vec![addr.ip()],
        dane: DanePolicy::TlsRequired,
        unreachable: None,
    }]);
    let conn = common::connector(addr.port(), Duration::from_secs(2));
    let item = common::item("b@stall.test", b"Subject: hi\r\n\r\nhi\r\n");
    attempt::deliver(&conn, "stall.test", &route, None, false, &[item]).await
}

#[tokio::test]
async fn rpt_a_stalled_handshake_and_data_after_the_220_are_reported() {
    for (ip, after, says) in [
        (
            "127.0.42.1",
            &b"220 go ahead\r\n"[..],
            "did not answer within",
        ),
        (
            "127.0.42.2",
            &b"220 go ahead\r\n250 injected\r\n"[..],
            "after its STARTTLS reply",
        ),
    ] {
        let report = attempt_at(fake_mx(ip, after)).await;
        assert!(
            !matches!(report.outcomes[0][0].1, Outcome::Delivered { .. }),
            "{report:?}"
        );
        let tls = &report.tls;
        assert_eq!(tls.len(), 1, "{tls:?}");
        assert_eq!(tls[0].failure, Some(ResultType::ValidationFailure));
        let detail = tls[0].detail.clone().unwrap_or_default();
        assert!(detail.contains(says), "{detail}");
    }
}
