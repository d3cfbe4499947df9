//! What a finished TLS handshake negotiated, read the same way by server and client (for the
//! Received header, logs and TLSRPT).

use crate::session::TlsInfo;

pub fn tls_info(ssl: &openssl::ssl::SslRef) -> TlsInfo {
    TlsInfo {
        version: ssl.version_str().to_string(),
        cipher: ssl
            .current_cipher()
            .and_then(|c| c.standard_name())
            .unwrap_or("unknown")
            .to_string(),
        group: kurier_tls::negotiated_group(ssl),
    }
}
