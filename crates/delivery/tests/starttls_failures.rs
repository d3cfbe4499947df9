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

/// An MX whose TLS is broken for every profile: it answers STARTTLS with 220 and then garbage.
/// Its third connection, in clear text, takes the message. Returns the address and, at the end,
/// how many connections asked for STARTTLS.
fn broken_tls_mx(ip: &str) -> (SocketAddr, std::thread::JoinHandle<usize>) {
    let listener = TcpListener::bind(format!("{ip}:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let mut starttls = 0;
        for _ in 0..3 {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut r = BufReader::new(tcp.try_clone().unwrap());
            let mut w = tcp;
            w.write_all(b"220 mx.broken.test ESMTP\r\n").unwrap();
            let mut line = String::new();
            while {
                line.clear();
                r.read_line(&mut line).unwrap_or(0) > 0
            } {
                let cmd = line.trim_end().to_ascii_uppercase();
                let reply: &[u8] = match cmd.as_str() {
                    c if c.starts_with("EHLO") => b"250-mx.broken.test\r\n250 STARTTLS\r\n",
                    "STARTTLS" => {
                        starttls += 1;
                        w.write_all(b"220 go ahead\r\n").unwrap();
                        let mut hello = [0u8; 64];
                        let _ = std::io::Read::read(&mut r, &mut hello);
                        let _ = w.write_all(b"this is not TLS\r\n");
                        break;
                    }
                    "DATA" => {
                        w.write_all(b"354 go on\r\n").unwrap();
                        loop {
                            line.clear();
                            if r.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
                                break;
                            }
                        }
                        b"250 2.0.0 taken in clear\r\n"
                    }
                    "QUIT" => {
                        let _ = w.write_all(b"221 bye\r\n");
                        break;
                    }
                    _ => b"250 ok\r\n",
                };
                w.write_all(reply).unwrap();
            }
        }
        starttls
    });
    (addr, handle)
}

/// Issue 18 item 2: best effort is strict TLS, then the legacy profile on a new connection,
/// then clear text — each step recorded with its reason (TLSRPT counts both TLS sessions).
#[tokio::test]
async fn smtp2_best_effort_is_strict_then_legacy_then_clear_text_each_step_recorded() {
    let (addr, mx) = broken_tls_mx("127.0.42.3");
    let route = Route::Hops(vec![Hop {
        host: "mx.broken.test".into(),
        base: "mx.broken.test".into(),
        addresses: vec![addr.ip()],
        dane: DanePolicy::Opportunistic,
        unreachable: None,
    }]);
    let conn = common::connector(addr.port(), Duration::from_secs(5));
    let item = common::item("b@broken.test", b"Subject: hi\r\n\r\nhi\r\n");
    let report = attempt::deliver(&conn, "broken.test", &route, None, false, &[item]).await;
    assert!(
        matches!(report.outcomes[0][0].1, Outcome::Delivered { .. }),
        "{report:?}"
    );
    assert_eq!(mx.join().unwrap(), 2, "two handshakes, then clear text");
    let tls = &report.tls;
    assert_eq!(tls.len(), 2, "{tls:?}");
    assert!(
        tls.iter()
            .all(|t| t.failure == Some(ResultType::ValidationFailure)),
        "{tls:?}"
    );
    let detail = |i: usize| tls[i].detail.clone().unwrap_or_default();
    assert!(!detail(0).contains("legacy"), "{}", detail(0));
    assert!(detail(1).starts_with("legacy profile: "), "{}", detail(1));
}
