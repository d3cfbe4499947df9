//! What a client offered, read on the server side while its ClientHello is processed: the
//! suites, groups and signature algorithms (RFC 8446 §4.1.2, §4.2.3, §4.2.7) and SNI (RFC 6066
//! §3). Tests use it to prove our outbound client's offer against TR-03108 TLS-4 and SMTP-3, as
//! a capture with `tshark` would.

use openssl::ssl::{ClientHelloResponse, SslContextBuilder, SslRef};
use std::sync::{Arc, Mutex};

use crate::ffi;

/// Code points as they appear on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloFacts {
    pub cipher_suites: Vec<u16>,
    pub groups: Vec<u16>,
    pub signature_algorithms: Vec<u16>,
    pub signature_algorithms_cert: Option<Vec<u16>>,
    pub server_name: Option<String>,
}

/// Records the facts of every ClientHello that reaches contexts built from `b`; the last one
/// is in the returned cell.
pub fn record_client_hellos(b: &mut SslContextBuilder) -> Arc<Mutex<Option<ClientHelloFacts>>> {
    let cell = Arc::new(Mutex::new(None));
    let out = cell.clone();
    b.set_client_hello_callback(move |ssl, _alert| {
        if let Ok(mut slot) = out.lock() {
            *slot = Some(facts(ssl));
        }
        Ok(ClientHelloResponse::SUCCESS)
    });
    cell
}

fn facts(ssl: &mut SslRef) -> ClientHelloFacts {
    let u16s = |b: &[u8]| -> Vec<u16> {
        b.chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect()
    };
    // Extension payloads carrying a list start with its length (2 bytes).
    let list =
        |ext: u32| ffi::client_hello_extension(ssl, ext).map(|v| u16s(v.get(2..).unwrap_or(&[])));
    ClientHelloFacts {
        cipher_suites: ssl.client_hello_ciphers().map(u16s).unwrap_or_default(),
        groups: list(10).unwrap_or_default(),
        signature_algorithms: list(13).unwrap_or_default(),
        signature_algorithms_cert: list(50),
        server_name: ffi::client_hello_extension(ssl, 0).and_then(|v| server_name(&v)),
    }
}

/// The host name in a server_name extension payload (RFC 6066 §3).
fn server_name(v: &[u8]) -> Option<String> {
    // list length (2), name type (1, 0 = host_name), name length (2), name
    if v.len() < 5 || v[2] != 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([v[3], v[4]]));
    v.get(5..5 + len)
        .map(|n| String::from_utf8_lossy(n).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_payloads() {
        let mut v = vec![0, 8, 0, 0, 5];
        v.extend_from_slice(b"mx.de");
        assert_eq!(server_name(&v).as_deref(), Some("mx.de"));
        assert_eq!(server_name(&[0, 1]), None);
        assert_eq!(server_name(&[0, 8, 0, 0, 50, b'a']), None);
    }
}
