//! # kurier-tls — TR-03116-4 as code
//!
//! Owns every TLS decision Kurier makes: the server profiles (`strict` for MUA ports, HTTPS and by
//! default port 25; the opt-in `mta-legacy` for port 25, TR-03108 TLS-9), the client profiles for
//! outbound SMTP (strict, and legacy for best effort only) and HTTPS fetches (TLS-4), certificate loading with the TR-03116-4 §6.1 checks
//! (CERT-1, CERT-3), SNI and hot reload, the TLS-ALPN-01 challenge (RFC 8737), the ICS description of a live profile (DNS-5), a TLS
//! probe for tests and audits, and the local dev CA.
//!
//! Sources: TR-03108 §4.1 and §4.3, TR-03116-4 §2 and §6, TR-02102-2 §3 (the rows TLS-1..TLS-10
//! and CERT-1..CERT-4 of docs/requirements.md), RFC 8446, RFC 7627 (EMS), RFC 7366 (EtM),
//! RFC 8461 §7.1 (SNI).
//!
//! Must not: know about SMTP, IMAP or HTTP. Callers hand it sockets and get TLS streams back.
//! OpenSSL is the vendored 3.6 build; the few calls the `openssl` crate lacks live in `ffi`.

pub mod acceptor;
pub mod acme_tls;
pub mod certificate;
pub mod client;
pub mod client_hello;
pub mod dev_ca;
mod ffi;
pub mod ics;
pub mod probe;
pub mod profile;
pub mod tlsa;

pub use acceptor::{CertificateSource, PendingCertificates, TlsAcceptor};
pub use acme_tls::{TlsAlpn01Certificates, is_acme_tls};
pub use certificate::{CertificateError, CertificateFinding, LoadedCertificate, Severity};
pub use client::{ClientTls, DaneRecord, PeerCheck, PeerVerdict};
/// The RFC 8460 §4.3 result types, from the handshake to the report.
pub use kurier_policy::tlsrpt::ResultType;
pub use profile::{ClientProfile, ServerOptions, ServerProfile, client_connector};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("OpenSSL failed to {0}: {1}")]
    OpenSsl(&'static str, openssl::error::ErrorStack),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
    #[error("no certificate configured: a TLS endpoint needs at least one [[tls.certificate]]")]
    NoCertificate,
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    #[error("cannot {0}: {1}")]
    Io(&'static str, std::io::Error),
}

impl TlsError {
    /// `map_err` adapter: `.map_err(TlsError::openssl("set groups"))`.
    pub(crate) fn openssl(
        what: &'static str,
    ) -> impl FnOnce(openssl::error::ErrorStack) -> TlsError {
        move |e| TlsError::OpenSsl(what, e)
    }
}

/// The key-exchange group a finished handshake used, e.g. `brainpoolP256r1tls13` (for logs and
/// TLSRPT events).
pub fn negotiated_group(ssl: &openssl::ssl::SslRef) -> Option<String> {
    ffi::negotiated_group(ssl)
}
