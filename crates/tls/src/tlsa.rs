//! TLSA record data for a certificate (RFC 6698 §2.1, RFC 7671 §5): what `kurier dns` publishes
//! and what DANE tests compare against.

use openssl::hash::{MessageDigest, hash};
use openssl::x509::{X509, X509Ref};

use crate::TlsError;

/// RFC 6698 §2.1.1 certificate usages that SMTP uses (RFC 7672 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// 2: the trust anchor (an issuing CA) of the chain.
    DaneTa = 2,
    /// 3: the server certificate itself.
    DaneEe = 3,
}

/// RFC 6698 §2.1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    /// 0: the whole certificate (DER).
    Cert = 0,
    /// 1: the SubjectPublicKeyInfo (DER); survives renewals with the same key.
    Spki = 1,
}

/// RFC 6698 §2.1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matching {
    Full = 0,
    Sha256 = 1,
    Sha512 = 2,
}

/// One TLSA record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsaRecord {
    pub usage: Usage,
    pub selector: Selector,
    pub matching: Matching,
    pub data: Vec<u8>,
}

impl TlsaRecord {
    /// The record for `cert` (the leaf for `DaneEe`, the issuing CA for `DaneTa`).
    pub fn for_certificate(
        cert: &X509Ref,
        usage: Usage,
        selector: Selector,
        matching: Matching,
    ) -> Result<Self, TlsError> {
        let selected = match selector {
            Selector::Cert => cert.to_der(),
            Selector::Spki => cert.public_key().and_then(|k| k.public_key_to_der()),
        }
        .map_err(TlsError::openssl("encode the certificate for TLSA"))?;
        let data = match matching {
            Matching::Full => selected,
            Matching::Sha256 => hash(MessageDigest::sha256(), &selected)
                .map_err(TlsError::openssl("hash for TLSA"))?
                .to_vec(),
            Matching::Sha512 => hash(MessageDigest::sha512(), &selected)
                .map_err(TlsError::openssl("hash for TLSA"))?
                .to_vec(),
        };
        Ok(TlsaRecord {
            usage,
            selector,
            matching,
            data,
        })
    }

    /// `3 1 1` for a key that has no certificate yet (a staged next key, RFC 7671 §8.1).
    pub fn dane_ee_for_key(
        key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
    ) -> Result<Self, TlsError> {
        let spki = key
            .public_key_to_der()
            .map_err(TlsError::openssl("encode the public key for TLSA"))?;
        Ok(TlsaRecord {
            usage: Usage::DaneEe,
            selector: Selector::Spki,
            matching: Matching::Sha256,
            data: hash(MessageDigest::sha256(), &spki)
                .map_err(TlsError::openssl("hash for TLSA"))?
                .to_vec(),
        })
    }

    /// Presentation format of the RDATA, e.g. `3 1 1 ab12…`.
    pub fn rdata(&self) -> String {
        let hex: String = self.data.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{} {} {} {hex}",
            self.usage as u8, self.selector as u8, self.matching as u8
        )
    }
}

/// Whether `record`, as DNS delivered it, authenticates `chain` (leaf first) the way a DANE
/// sender checks it (RFC 7672 §3.1): usage 3 against the leaf, usage 2 against a CA
/// certificate of the chain; other usages and unknown parameters never match.
pub fn matches_chain(record: &kurier_policy::dane::Tlsa, chain: &[X509]) -> bool {
    let (usage, candidates) = match record.usage {
        3 => (Usage::DaneEe, chain.get(..1).unwrap_or(&[])),
        2 => (Usage::DaneTa, chain.get(1..).unwrap_or(&[])),
        _ => return false,
    };
    let selector = match record.selector {
        0 => Selector::Cert,
        1 => Selector::Spki,
        _ => return false,
    };
    let matching = match record.matching {
        0 => Matching::Full,
        1 => Matching::Sha256,
        2 => Matching::Sha512,
        _ => return false,
    };
    candidates.iter().any(|c| {
        TlsaRecord::for_certificate(c, usage, selector, matching)
            .is_ok_and(|t| t.data == record.data)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdata_of_a_known_certificate() {
        // A fixed self-signed certificate; digests computed independently with
        // `openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum`.
        let pem = include_bytes!("../tests/fixtures/tlsa-cert.pem");
        let expected = include_str!("../tests/fixtures/tlsa-cert.expected");
        let cert = openssl::x509::X509::from_pem(pem).unwrap_or_else(|e| panic!("{e}"));
        let mut lines = expected.lines();
        for (u, s, m) in [
            (Usage::DaneEe, Selector::Spki, Matching::Sha256),
            (Usage::DaneEe, Selector::Cert, Matching::Sha256),
            (Usage::DaneEe, Selector::Spki, Matching::Sha512),
        ] {
            let r = TlsaRecord::for_certificate(&cert, u, s, m).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(Some(r.rdata().as_str()), lines.next());
            let dns = kurier_policy::dane::Tlsa {
                usage: u as u8,
                selector: s as u8,
                matching: m as u8,
                data: r.data.clone(),
            };
            assert!(matches_chain(&dns, std::slice::from_ref(&cert)));
            // As a trust anchor it would have to be a CA of the chain: it is the leaf.
            let ta = kurier_policy::dane::Tlsa {
                usage: 2,
                ..dns.clone()
            };
            assert!(!matches_chain(&ta, std::slice::from_ref(&cert)));
            let other = kurier_policy::dane::Tlsa {
                data: vec![0; dns.data.len()],
                ..dns
            };
            assert!(!matches_chain(&other, std::slice::from_ref(&cert)));
        }
    }
}
