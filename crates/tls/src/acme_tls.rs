//! The server side of ACME's TLS-ALPN-01 challenge (RFC 8737): while the CA validates a name,
//! a client that offers the `acme-tls/1` protocol (§6.2) and names that host in SNI gets the
//! challenge certificate and that protocol; nothing else happens on such a connection (§3: the
//! CA closes it after the handshake, and `is_acme_tls` tells the caller to do the same). Every
//! other client, for that name too, gets the certificate it always gets.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use openssl::ex_data::Index;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{AlpnError, Ssl, SslContext, SslRef};
use openssl::x509::X509;

use crate::TlsError;
use crate::ffi;
use crate::profile::{ServerOptions, ServerProfile};

/// The protocol name of RFC 8737 §6.2.
pub const ACME_TLS_1: &[u8] = b"acme-tls/1";
/// The same, as the wire's ALPN list (RFC 7301 §3.1): length, then the name.
const ACME_TLS_1_LIST: &[u8] = b"\x0aacme-tls/1";
/// ClientHello extension `application_layer_protocol_negotiation` (RFC 7301 §3.1).
const EXT_ALPN: u32 = 16;
/// ClientHello extension `server_name` (RFC 6066 §3).
const EXT_SERVER_NAME: u32 = 0;
/// One order's worth of names, as for HTTP-01 tokens.
const MAX_CHALLENGES: usize = 1000;

/// Challenge certificates being served, by host name (lower case, no trailing dot).
#[derive(Default)]
pub struct TlsAlpn01Certificates {
    by_name: Mutex<HashMap<String, (X509, PKey<Private>)>>,
}

impl TlsAlpn01Certificates {
    /// Serves `cert` for `name` until `remove`; false when too many are being served.
    pub fn insert(&self, name: &str, cert: X509, key: PKey<Private>) -> bool {
        let mut m = self.lock();
        let name = normal(name);
        if m.len() >= MAX_CHALLENGES && !m.contains_key(&name) {
            return false;
        }
        m.insert(name, (cert, key));
        true
    }

    pub fn remove(&self, name: &str) {
        self.lock().remove(&normal(name));
    }

    /// In the client-hello callback (the only place where OpenSSL still has the raw
    /// extensions): if the client asks for `acme-tls/1` and names a host whose challenge is
    /// being served, switch the handshake to the challenge certificate, and remember that so
    /// the SNI callback leaves it (`answering`).
    pub(crate) fn answer(&self, ssl: &mut SslRef, profile: ServerProfile, options: ServerOptions) {
        if self.lock().is_empty() || !offers_acme_tls(ssl) {
            return;
        }
        let Some(name) = ffi::client_hello_extension(ssl, EXT_SERVER_NAME)
            .and_then(|v| crate::client_hello::server_name(&v))
        else {
            return;
        };
        let Some((cert, key)) = self.lock().get(&normal(&name)).cloned() else {
            return;
        };
        let switched = challenge_context(profile, options, &cert, &key).and_then(|ctx| {
            ssl.set_ssl_context(&ctx)
                .map_err(TlsError::openssl("switch to the TLS-ALPN-01 certificate"))
        });
        match (switched, answering_index()) {
            (Ok(()), Ok(index)) => ssl.set_ex_data(index, ()),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(name, error = %e, "cannot answer the TLS-ALPN-01 challenge");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (X509, PKey<Private>)>> {
        self.by_name.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether `answer` switched this handshake to a challenge certificate.
pub(crate) fn answering(ssl: &SslRef) -> bool {
    answering_index().is_ok_and(|i| ssl.ex_data(i).is_some())
}

fn answering_index() -> Result<Index<Ssl, ()>, TlsError> {
    static INDEX: OnceLock<Result<Index<Ssl, ()>, openssl::error::ErrorStack>> = OnceLock::new();
    INDEX
        .get_or_init(Ssl::new_ex_index)
        .clone()
        .map_err(TlsError::openssl("make an ex_data index"))
}

/// Whether a finished handshake negotiated `acme-tls/1`: the connection was a validation and
/// carries no application data (RFC 8737 §3).
pub fn is_acme_tls(ssl: &SslRef) -> bool {
    ssl.selected_alpn_protocol() == Some(ACME_TLS_1)
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn offers_acme_tls(ssl: &SslRef) -> bool {
    ffi::client_hello_extension(ssl, EXT_ALPN).is_some_and(|v| alpn_offers(&v, ACME_TLS_1))
}

/// Whether an ALPN extension payload (a 2-byte list length, then names each with a 1-byte
/// length) lists `protocol`. A malformed list lists nothing.
fn alpn_offers(payload: &[u8], protocol: &[u8]) -> bool {
    let Some((len, mut rest)) = payload.split_first_chunk::<2>() else {
        return false;
    };
    if usize::from(u16::from_be_bytes(*len)) != rest.len() {
        return false;
    }
    while let Some((&n, tail)) = rest.split_first() {
        let Some((name, tail)) = tail.split_at_checked(usize::from(n)) else {
            return false;
        };
        if name == protocol {
            return true;
        }
        rest = tail;
    }
    false
}

/// The profile's context with the challenge certificate, negotiating `acme-tls/1` only.
fn challenge_context(
    profile: ServerProfile,
    options: ServerOptions,
    cert: &X509,
    key: &PKey<Private>,
) -> Result<SslContext, TlsError> {
    let mut b = profile.context_builder(options)?;
    b.set_certificate(cert)
        .map_err(TlsError::openssl("use the TLS-ALPN-01 certificate"))?;
    b.set_private_key(key)
        .map_err(TlsError::openssl("use the TLS-ALPN-01 key"))?;
    b.set_alpn_select_callback(|_, client| {
        openssl::ssl::select_next_proto(ACME_TLS_1_LIST, client).ok_or(AlpnError::ALERT_FATAL)
    });
    Ok(b.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpn_lists_are_read_and_malformed_ones_list_nothing() {
        let list = b"\x00\x0e\x02h2\x0aacme-tls/1";
        assert!(alpn_offers(list, ACME_TLS_1));
        assert!(alpn_offers(list, b"h2"));
        assert!(!alpn_offers(b"\x00\x03\x02h2", ACME_TLS_1));
        // Lengths that run past the end, or a list length that does not match.
        assert!(!alpn_offers(b"\x00\x0b\x0bacme-tls/1", ACME_TLS_1));
        assert!(!alpn_offers(b"\x00\x0c\x0aacme-tls/1", ACME_TLS_1));
        assert!(!alpn_offers(b"\x00", ACME_TLS_1));
        assert!(!alpn_offers(b"", ACME_TLS_1));
    }
}
