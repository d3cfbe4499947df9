//! The outbound client's ClientHello, captured at a test MX that speaks SMTP and STARTTLS on
//! loopback (TR-03108 TLS-4, SMTP-2, SMTP-3): SNI is the TLSA base domain, the four suites
//! mandatory for clients are offered and nothing TR-03116-4 forbids is, the groups and signature
//! algorithms extensions are sent (brainpool first, no X25519, no PKCS#1 v1.5 or SHA-1) — and
//! the message then goes through, DANE-EE authenticated.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use kurier_delivery::Outcome;
use kurier_delivery::attempt;
use kurier_delivery::route::{Hop, Route};
use kurier_policy::dane::{DanePolicy, Tlsa};
use kurier_testworld::ca::{Ca, KeyKind};
use openssl::ssl::{SslAcceptor, SslMethod};

/// A one-connection MX: greeting, EHLO with STARTTLS, the handshake, then a minimal
/// transaction. Returns what the message looked like.
fn fake_mx(listener: TcpListener, acceptor: SslAcceptor) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(tcp.try_clone().unwrap());
        let mut w = tcp;
        let mut line = String::new();
        w.write_all(b"220 mx.hello.test ESMTP\r\n").unwrap();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("EHLO "), "{line}");
        w.write_all(b"250-mx.hello.test\r\n250 STARTTLS\r\n")
            .unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        assert_eq!(line, "STARTTLS\r\n");
        w.write_all(b"220 go ahead\r\n").unwrap();
        let tls = acceptor.accept(w).unwrap();
        let mut r = BufReader::new(tls);
        let mut data = String::new();
        let mut in_data = false;
        loop {
            line.clear();
            if r.read_line(&mut line).unwrap() == 0 {
                return data;
            }
            let reply: &[u8] = if in_data {
                if line == ".\r\n" {
                    in_data = false;
                    b"250 2.0.0 queued\r\n"
                } else {
                    data.push_str(&line);
                    continue;
                }
            } else if line.starts_with("EHLO") {
                b"250 mx.hello.test\r\n"
            } else if line.starts_with("DATA") {
                in_data = true;
                b"354 go\r\n"
            } else if line.starts_with("QUIT") {
                r.get_mut().write_all(b"221 bye\r\n").unwrap();
                return data;
            } else {
                b"250 ok\r\n"
            };
            r.get_mut().write_all(reply).unwrap();
        }
    })
}

#[tokio::test]
async fn tls4_smtp3_the_client_hello_of_outbound_delivery() {
    let ca = Ca::new("Hello", KeyKind::P256).unwrap();
    let leaf = ca.leaf(&["mx.hello.test"]).unwrap();
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
    b.set_private_key(&leaf.key).unwrap();
    b.set_certificate(&leaf.cert).unwrap();
    let seen = kurier_tls::client_hello::record_client_hellos(&mut b);
    let listener = TcpListener::bind("127.0.20.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mx = fake_mx(listener, b.build());

    let hex = leaf.tlsa_3_1_1().unwrap();
    let data: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[6 + 2 * i..8 + 2 * i], 16).unwrap())
        .collect();
    let route = Route::Hops(vec![Hop {
        host: "mx.hello.test".into(),
        base: "mx.hello.test".into(),
        addresses: vec![addr.ip()],
        dane: DanePolicy::Authenticate {
            records: vec![Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data,
            }],
            names: vec!["mx.hello.test".into(), "hello.test".into()],
        },
        unreachable: None,
    }]);
    let conn = common::connector(addr.port(), Duration::from_secs(10));
    let item = common::item("b@hello.test", b"Subject: hi\r\n\r\n.leading dot\r\n");
    let report = attempt::deliver(&conn, "hello.test", &route, None, false, &[item]).await;
    assert!(
        matches!(report.outcomes[0][0].1, Outcome::Delivered { .. }),
        "{report:?}"
    );
    assert_eq!(report.tls[0].failure, None);
    assert_eq!(report.tls[0].policy_type.as_str(), "tlsa");
    let body = mx.join().unwrap();
    assert!(body.contains("..leading dot"), "dot-stuffed: {body}");

    let hello = seen.lock().unwrap().clone().unwrap();
    // SMTP-3 / RFC 7672 §8.1: SNI is the TLSA base domain.
    assert_eq!(hello.server_name.as_deref(), Some("mx.hello.test"));
    // TLS-4: the four suites mandatory for clients (TR-03116-4 §2.2.1.1).
    for s in [0xC02B, 0xC02F, 0xC023, 0xC027] {
        assert!(hello.cipher_suites.contains(&s), "{s:#06x}: {hello:x?}");
    }
    // TLS 1.3: AES-GCM and AES-CCM, never ChaCha20 (0x1303) or CCM_8 (0x1305).
    assert!(hello.cipher_suites.contains(&0x1301));
    for s in [
        0x1303, 0x1305, 0xC013, 0xC009, 0x002F, 0x009C, 0xCCA8, 0xCCA9,
    ] {
        assert!(
            !hello.cipher_suites.contains(&s),
            "{s:#06x} offered: {hello:x?}"
        );
    }
    // supported_groups: brainpoolP256r1tls13 first, NIST curves, no X25519/X448.
    assert_eq!(hello.groups.first(), Some(&0x001F), "{hello:x?}");
    assert!(hello.groups.contains(&0x0017));
    assert!(!hello.groups.contains(&0x001D) && !hello.groups.contains(&0x001E));
    // Issue 19 item 2: key shares for brainpoolP256r1tls13 and secp256r1, so that a server
    // without brainpool answers without a HelloRetryRequest.
    assert_eq!(hello.key_shares, [0x001F, 0x0017], "{hello:x?}");
    // OpenSSL sends no signature_algorithms_cert (the ICS says so); signature_algorithms
    // then governs certificates too (RFC 8446 §4.2.3).
    assert_eq!(hello.signature_algorithms_cert, None);
    // signature_algorithms: ECDSA and RSA-PSS, no PKCS#1 v1.5, no SHA-1.
    assert!(hello.signature_algorithms.contains(&0x0403));
    assert!(hello.signature_algorithms.contains(&0x0804));
    for s in [0x0201, 0x0203, 0x0401, 0x0501, 0x0601] {
        assert!(
            !hello.signature_algorithms.contains(&s),
            "{s:#06x}: {hello:x?}"
        );
    }
}
