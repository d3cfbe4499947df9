//! The TLS client of outbound connections (TR-03108 TLS-4, SMTP-2, SMTP-3): one context with the
//! TR-03116-4 client profile and OpenSSL's DANE verifier enabled, and per connection the check
//! the caller's policy asks for — none (opportunistic), DANE (RFC 7671 §5, RFC 7672 §3: OpenSSL
//! matches the TLSA records, DANE-EE ignores names and expiry, DANE-TA checks names), or PKIX
//! against trusted CAs (MTA-STS, RFC 8461 §4.2).
//!
//! The verdict of a handshake is a value (`PeerVerdict`) with the RFC 8460 §4.3 result type of a
//! failure, so that logs, bounces and TLSRPT report the same thing.

use std::path::Path;

use openssl::ssl::{Ssl, SslContext, SslRef, SslVerifyMode};
use openssl::x509::X509VerifyResult;
use openssl::x509::verify::X509CheckFlags;

use crate::profile::{ClientProfile, SYSTEM_CA_BUNDLE};
use crate::{ResultType, TlsError, ffi};

/// One TLSA record handed to the verifier (RFC 6698 §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaneRecord {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// What the peer's certificate must prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCheck {
    /// Nothing: encryption only (opportunistic TLS, or DANE with no usable record).
    None,
    /// DANE (RFC 7672 §3): `base` is the TLSA base domain; DANE-TA(2) matches must also name
    /// `base` or one of `names`.
    Dane {
        base: String,
        names: Vec<String>,
        records: Vec<DaneRecord>,
    },
    /// A chain to a trusted CA naming one of `names` (MTA-STS).
    Pkix { names: Vec<String> },
}

/// The outcome of the peer check of one handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerVerdict {
    /// Nothing was asked.
    NotChecked,
    /// DANE matched: the record's usage/selector/matching type and the chain depth.
    Dane {
        usage: u8,
        selector: u8,
        matching: u8,
        depth: i32,
    },
    /// A trusted CA chain with a matching name.
    Pkix,
    /// The handshake failed before a certificate could be judged: no common version, suite,
    /// group or signature algorithm, or a closed connection (RFC 8460 §4.3.2.1
    /// `validation-failure` — a negotiation failure, not a verdict on a certificate).
    NotNegotiated { detail: String },
    /// The check failed: `result_type` says how (RFC 8460 §4.3), `detail` OpenSSL's reason.
    Failed {
        result_type: ResultType,
        detail: String,
    },
}

impl PeerVerdict {
    pub fn is_failure(&self) -> bool {
        self.result_type().is_some()
    }

    /// The RFC 8460 §4.3 result type of a failure.
    pub fn result_type(&self) -> Option<ResultType> {
        match self {
            PeerVerdict::Failed { result_type, .. } => Some(*result_type),
            PeerVerdict::NotNegotiated { .. } => Some(ResultType::ValidationFailure),
            _ => None,
        }
    }

    /// A certificate arrived and failed the check (not a failure to negotiate, or no STARTTLS).
    pub fn certificate_failed(&self) -> bool {
        matches!(self, PeerVerdict::Failed { result_type, .. } if *result_type != ResultType::StarttlsNotSupported)
    }

    /// The reason of a failure, in words.
    pub fn detail(&self) -> Option<&str> {
        match self {
            PeerVerdict::Failed { detail, .. } | PeerVerdict::NotNegotiated { detail } => {
                Some(detail)
            }
            _ => None,
        }
    }
}

/// The outbound client contexts: the strict profile with DANE and PKIX checks, and the legacy
/// profile for best effort only. Cheap to share (`SslContext` is reference counted).
#[derive(Clone)]
pub struct ClientTls {
    ctx: SslContext,
    legacy: SslContext,
}

impl ClientTls {
    /// PKIX checks trust Debian's CA bundle plus the CAs in `extra_ca` (labs, tests).
    pub fn new(extra_ca: Option<&Path>) -> Result<Self, TlsError> {
        let mut b = ClientProfile::Strict.context_builder()?;
        if !ffi::enable_dane(&mut b) {
            return Err(TlsError::Handshake(
                "OpenSSL refused to enable DANE on the client context".into(),
            ));
        }
        if Path::new(SYSTEM_CA_BUNDLE).exists() {
            b.set_ca_file(SYSTEM_CA_BUNDLE)
                .map_err(TlsError::openssl("load the system CA bundle"))?;
        }
        if let Some(extra) = extra_ca {
            let pem =
                std::fs::read(extra).map_err(|e| TlsError::Io("read the extra CA file", e))?;
            let certs = openssl::x509::X509::stack_from_pem(&pem)
                .map_err(TlsError::openssl("parse the extra CA file"))?;
            for c in certs {
                b.cert_store_mut()
                    .add_cert(c)
                    .map_err(TlsError::openssl("trust an extra CA"))?;
            }
        }
        let mut legacy = ClientProfile::Legacy.context_builder()?;
        legacy.set_verify(SslVerifyMode::NONE);
        Ok(ClientTls {
            ctx: b.build(),
            legacy: legacy.build(),
        })
    }

    /// A connection object with the legacy profile (`ClientProfile::Legacy`): SNI `sni`, no
    /// peer check at all — encryption against passive listeners, for destinations without
    /// DANE or MTA-STS whose server the strict profile could not reach.
    pub fn legacy_ssl(&self, sni: &str) -> Result<Ssl, TlsError> {
        let mut ssl = Ssl::new(&self.legacy).map_err(TlsError::openssl("create a connection"))?;
        if !sni.is_empty() {
            ssl.set_hostname(sni)
                .map_err(TlsError::openssl("set the SNI name"))?;
        }
        Ok(ssl)
    }

    /// A connection object for one handshake: SNI `sni` (RFC 7672 §8.1, RFC 8461 §7.1) and the
    /// verification `check` asks for. With a check, OpenSSL aborts the handshake when it fails;
    /// `verdict` then tells why.
    pub fn ssl(&self, sni: &str, check: &PeerCheck) -> Result<Ssl, TlsError> {
        let mut ssl = Ssl::new(&self.ctx).map_err(TlsError::openssl("create a connection"))?;
        if !sni.is_empty() {
            ssl.set_hostname(sni)
                .map_err(TlsError::openssl("set the SNI name"))?;
        }
        match check {
            PeerCheck::None => ssl.set_verify(SslVerifyMode::NONE),
            PeerCheck::Dane {
                base,
                names,
                records,
            } => {
                ssl.set_verify(SslVerifyMode::PEER);
                if !ffi::dane_enable(&mut ssl, base) {
                    return Err(TlsError::Handshake(format!(
                        "OpenSSL refused DANE for {base}"
                    )));
                }
                ssl.param_mut()
                    .set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
                for n in names.iter().filter(|n| *n != base) {
                    ffi::add_host(&mut ssl, n);
                }
                let added = records
                    .iter()
                    .filter(|r| {
                        ffi::dane_tlsa_add(&mut ssl, r.usage, r.selector, r.matching, &r.data)
                    })
                    .count();
                if added == 0 {
                    return Err(TlsError::Handshake(format!(
                        "none of the TLSA records for {base} is usable by OpenSSL"
                    )));
                }
            }
            PeerCheck::Pkix { names } => {
                ssl.set_verify(SslVerifyMode::PEER);
                ssl.param_mut()
                    .set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
                let mut it = names.iter();
                if let Some(first) = it.next() {
                    ssl.param_mut()
                        .set_host(first)
                        .map_err(TlsError::openssl("set the expected name"))?;
                }
                for n in it {
                    ffi::add_host(&mut ssl, n);
                }
            }
        }
        Ok(ssl)
    }
}

/// What the handshake on `ssl` proved, given the `check` it was made with. Call after the
/// handshake, also after a failed one.
pub fn verdict(ssl: &SslRef, check: &PeerCheck) -> PeerVerdict {
    let result = ssl.verify_result();
    match check {
        PeerCheck::None => PeerVerdict::NotChecked,
        // A certificate arrived and failed verification (it need not be kept after a failed
        // handshake, the verify result is).
        _ if result != X509VerifyResult::OK => PeerVerdict::Failed {
            result_type: result_type(result.as_raw()),
            detail: result.error_string().to_string(),
        },
        // Nothing to match yet: the handshake ended before a certificate (RFC 8460 §4.3.1,
        // a negotiation failure — not a TLSA or certificate verdict).
        _ if ssl.peer_certificate().is_none() => PeerVerdict::NotNegotiated {
            detail: "the handshake ended before the server sent a certificate".into(),
        },
        PeerCheck::Dane { .. } => match ffi::dane_match(ssl) {
            Some((depth, usage, selector, matching)) => PeerVerdict::Dane {
                usage,
                selector,
                matching,
                depth,
            },
            None => PeerVerdict::Failed {
                result_type: ResultType::TlsaInvalid,
                detail: "no TLSA record matched the certificate chain".into(),
            },
        },
        PeerCheck::Pkix { .. } => PeerVerdict::Pkix,
    }
}

/// Whether the peer's certificate names anything with a wildcard (TR-03108 STS-6 rejects such
/// certificates on MTA-STS policy hosts).
pub fn peer_has_wildcard_name(ssl: &SslRef) -> bool {
    let Some(cert) = ssl.peer_certificate() else {
        return false;
    };
    let in_san = cert.subject_alt_names().is_some_and(|names| {
        names
            .iter()
            .any(|n| n.dnsname().is_some_and(|d| d.contains('*')))
    });
    let in_cn = cert
        .subject_name()
        .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        .any(|e| e.data().as_slice().contains(&b'*'));
    in_san || in_cn
}

/// RFC 8460 §4.3 result type for an OpenSSL verification error (x509_vfy.h codes).
pub fn result_type(code: i32) -> ResultType {
    match code {
        // CERT_HAS_EXPIRED, CERT_NOT_YET_VALID
        10 | 9 => ResultType::CertificateExpired,
        // HOSTNAME_MISMATCH
        62 => ResultType::CertificateHostMismatch,
        // DANE_NO_MATCH
        65 => ResultType::TlsaInvalid,
        // UNABLE_TO_GET_ISSUER_CERT(_LOCALLY), DEPTH_ZERO_SELF_SIGNED, SELF_SIGNED_IN_CHAIN,
        // UNABLE_TO_VERIFY_LEAF_SIGNATURE, CERT_UNTRUSTED
        2 | 20 | 18 | 19 | 21 | 27 => ResultType::CertificateNotTrusted,
        _ => ResultType::ValidationFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_errors_map_to_rfc8460_result_types() {
        assert_eq!(result_type(10).as_str(), "certificate-expired");
        assert_eq!(result_type(62).as_str(), "certificate-host-mismatch");
        assert_eq!(result_type(65).as_str(), "tlsa-invalid");
        assert_eq!(result_type(20).as_str(), "certificate-not-trusted");
        assert_eq!(result_type(7).as_str(), "validation-failure");
    }

    #[test]
    fn dane_needs_at_least_one_record_openssl_accepts() {
        let tls = ClientTls::new(None).unwrap();
        let bad = PeerCheck::Dane {
            base: "mx.example".into(),
            names: vec![],
            records: vec![DaneRecord {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![1, 2, 3], // wrong length for SHA2-256
            }],
        };
        assert!(tls.ssl("mx.example", &bad).is_err());
        let good = PeerCheck::Dane {
            base: "mx.example".into(),
            names: vec!["example".into()],
            records: vec![DaneRecord {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![7; 32],
            }],
        };
        assert!(tls.ssl("mx.example", &good).is_ok());
    }
}
