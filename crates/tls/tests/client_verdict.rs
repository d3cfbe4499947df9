//! The client's verdict on handshakes that fail (RFC 8460 §4.3; issue 18 item 3): a handshake
//! that ends before the server sent a certificate is a negotiation failure
//! (`validation-failure`), never `tlsa-invalid` — there was nothing to match yet.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::Read;
use std::pin::Pin;

use kurier_tls::client::{DaneRecord, PeerCheck, PeerVerdict, verdict};
use kurier_tls::{ClientTls, ResultType};

/// A "server" that reads the ClientHello and answers with a fatal handshake_failure alert.
fn refusing_server() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.41.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            // TLS record: alert (21), TLS 1.2, length 2: fatal (2), handshake_failure (40).
            let _ = std::io::Write::write_all(&mut s, &[21, 3, 3, 0, 2, 2, 40]);
        }
    });
    addr
}

#[tokio::test]
async fn a_handshake_that_fails_before_the_certificate_is_no_tlsa_verdict() {
    let tls = ClientTls::new(None).unwrap();
    for check in [
        PeerCheck::Dane {
            base: "mx.peer.test".into(),
            names: vec![],
            records: vec![DaneRecord {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![0; 32],
            }],
        },
        PeerCheck::Pkix {
            names: vec!["mx.peer.test".into()],
        },
    ] {
        let addr = refusing_server();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let ssl = tls.ssl("mx.peer.test", &check).unwrap();
        let mut stream = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
        assert!(Pin::new(&mut stream).connect().await.is_err());
        match verdict(stream.ssl(), &check) {
            v @ PeerVerdict::NotNegotiated { .. } => {
                let detail = v.detail().unwrap_or_default();
                assert_eq!(
                    v.result_type(),
                    Some(ResultType::ValidationFailure),
                    "{detail}"
                );
                assert!(!v.certificate_failed());
                assert!(
                    detail.contains("before the server sent a certificate"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
