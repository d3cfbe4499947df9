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
    /// The groups of the TLS 1.3 key shares (RFC 8446 §4.2.8), in order.
    pub key_shares: Vec<u16>,
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
        key_shares: ffi::client_hello_extension(ssl, 51)
            .map(|v| key_share_groups(&v))
            .unwrap_or_default(),
        server_name: ffi::client_hello_extension(ssl, 0).and_then(|v| server_name(&v)),
    }
}

/// The groups of a key_share extension payload: a list length (2), then per entry the group
/// (2), the key's length (2) and the key. A malformed tail ends the list.
fn key_share_groups(v: &[u8]) -> Vec<u16> {
    let mut out = Vec::new();
    let mut rest = v.get(2..).unwrap_or(&[]);
    while rest.len() >= 4 {
        out.push(u16::from_be_bytes([rest[0], rest[1]]));
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        rest = rest.get(4 + len..).unwrap_or(&[]);
    }
    out
}

/// The host name in a server_name extension payload (RFC 6066 §3).
pub(crate) fn server_name(v: &[u8]) -> Option<String> {
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

    #[test]
    fn key_share_payloads() {
        let v = [0, 12, 0, 0x1f, 0, 2, 9, 9, 0, 0x17, 0, 1, 7];
        assert_eq!(key_share_groups(&v), [0x1f, 0x17]);
        assert_eq!(key_share_groups(&[0, 4, 0, 0x1f, 0xff, 0xff]), [0x1f]);
        assert!(key_share_groups(&[0]).is_empty());
    }
}
