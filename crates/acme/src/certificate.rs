//! The certificate side of an order: the key (ECDSA P-256 or P-384, kept across renewals so
//! that a `3 1 1` TLSA record never changes, RFC 7671 §8.1), the CSR (RFC 2986, RFC 8555
//! §7.4), the check of what the CA sent back, and the self-signed bootstrap certificate that
//! serves until the first order is done (DANE-EE peers accept it already: same key).

use openssl::asn1::Asn1Time;
use openssl::pkey::{PKey, PKeyRef, Private};
use openssl::stack::Stack;
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509, X509NameBuilder, X509ReqBuilder};

use crate::AcmeError;
use crate::renewal::Served;

fn ssl(what: &'static str) -> impl Fn(openssl::error::ErrorStack) -> AcmeError {
    move |e| AcmeError::Crypto(format!("{what}: {e}"))
}

/// The CSR (RFC 8555 §7.4, RFC 2986): every name as a SAN, the first also as CN.
pub fn csr(names: &[String], key: &PKeyRef<Private>) -> Result<Vec<u8>, AcmeError> {
    let e = ssl;
    let mut b = X509ReqBuilder::new().map_err(e("CSR"))?;
    b.set_pubkey(key).map_err(e("CSR key"))?;
    if let Some(first) = names.first().filter(|n| n.len() <= 64) {
        let mut subject = X509NameBuilder::new().map_err(e("CSR subject"))?;
        subject
            .append_entry_by_text("CN", first)
            .map_err(e("CSR subject"))?;
        b.set_subject_name(&subject.build())
            .map_err(e("CSR subject"))?;
    }
    let mut san = SubjectAlternativeName::new();
    for n in names {
        san.dns(n);
    }
    let ext = san.build(&b.x509v3_context(None)).map_err(e("CSR names"))?;
    let mut exts = Stack::new().map_err(e("CSR"))?;
    exts.push(ext).map_err(e("CSR"))?;
    b.add_extensions(&exts).map_err(e("CSR"))?;
    b.sign(key, openssl::hash::MessageDigest::sha256())
        .map_err(e("sign the CSR"))?;
    b.build().to_der().map_err(e("encode the CSR"))
}

/// The downloaded chain (`application/pem-certificate-chain`, §9.1), checked: our key, all
/// names we asked for.
pub fn chain(pem: &[u8], names: &[String], key: &PKeyRef<Private>) -> Result<Vec<X509>, AcmeError> {
    let chain = X509::stack_from_pem(pem)
        .map_err(|e| AcmeError::Protocol(format!("the certificate is no PEM chain: {e}")))?;
    let leaf = chain
        .first()
        .ok_or_else(|| AcmeError::Protocol("the certificate chain is empty".into()))?;
    let ours = leaf.public_key().map(|k| k.public_eq(key)).unwrap_or(false);
    if !ours {
        return Err(AcmeError::Protocol(
            "the issued certificate is not for our key".into(),
        ));
    }
    let have = kurier_tls::certificate::dns_names(leaf);
    if let Some(missing) = names
        .iter()
        .find(|n| !have.contains(&n.to_ascii_lowercase()))
    {
        return Err(AcmeError::Protocol(format!(
            "the issued certificate does not name {missing}"
        )));
    }
    Ok(chain)
}

/// A new certificate key: ECDSA P-256, or P-384 (`acme.key = "p384"`).
pub fn certificate_key(p384: bool) -> Result<PKey<Private>, AcmeError> {
    let nid = if p384 {
        openssl::nid::Nid::SECP384R1
    } else {
        openssl::nid::Nid::X9_62_PRIME256V1
    };
    openssl::ec::EcGroup::from_curve_name(nid)
        .and_then(|g| openssl::ec::EcKey::generate(&g))
        .and_then(PKey::from_ec_key)
        .map_err(|e| AcmeError::Crypto(format!("generate the certificate key: {e}")))
}

/// A self-signed certificate for `names` over `key`, valid 90 days: what serves until the CA
/// has issued one.
pub fn bootstrap(names: &[String], key: &PKeyRef<Private>) -> Result<X509, AcmeError> {
    self_signed(names, key, 90, None)
}

/// `id-pe-acmeIdentifier` (RFC 8737 §6.1).
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

/// The TLS-ALPN-01 certificate for `name` (RFC 8737 §3): self-signed over a fresh P-256 key,
/// the name as its only SAN, and the critical acmeIdentifier extension holding the SHA-256 of
/// the key authorization.
pub fn tls_alpn01(name: &str, key_authorization: &str) -> Result<(X509, PKey<Private>), AcmeError> {
    let key = certificate_key(false)?;
    let digest = openssl::sha::sha256(key_authorization.as_bytes());
    let cert = self_signed(&[name.to_string()], &key, 7, Some(&digest))?;
    Ok((cert, key))
}

fn self_signed(
    names: &[String],
    key: &PKeyRef<Private>,
    days: u32,
    acme_identifier: Option<&[u8; 32]>,
) -> Result<X509, AcmeError> {
    let mut b = X509::builder().map_err(ssl("self-signed certificate"))?;
    b.set_version(2).map_err(ssl("self-signed certificate"))?;
    let mut serial = openssl::bn::BigNum::new().map_err(ssl("serial"))?;
    serial
        .rand(127, openssl::bn::MsbOption::MAYBE_ZERO, false)
        .map_err(ssl("serial"))?;
    let serial = serial.to_asn1_integer().map_err(ssl("serial"))?;
    b.set_serial_number(&serial).map_err(ssl("serial"))?;
    let mut subject = X509NameBuilder::new().map_err(ssl("subject"))?;
    let cn = names.first().map(String::as_str).unwrap_or("kurier");
    subject
        .append_entry_by_text("CN", cn.get(..64).unwrap_or(cn))
        .map_err(ssl("subject"))?;
    let subject = subject.build();
    b.set_subject_name(&subject).map_err(ssl("subject"))?;
    b.set_issuer_name(&subject).map_err(ssl("issuer"))?;
    b.set_pubkey(key).map_err(ssl("key"))?;
    let (from, until) = (
        Asn1Time::days_from_now(0).map_err(ssl("time"))?,
        Asn1Time::days_from_now(days).map_err(ssl("time"))?,
    );
    b.set_not_before(&from).map_err(ssl("time"))?;
    b.set_not_after(&until).map_err(ssl("time"))?;
    let mut san = SubjectAlternativeName::new();
    for n in names {
        san.dns(n);
    }
    let ext = san
        .build(&b.x509v3_context(None, None))
        .map_err(ssl("names"))?;
    b.append_extension(ext).map_err(ssl("names"))?;
    if let Some(digest) = acme_identifier {
        // Authorization ::= OCTET STRING (SIZE (32)), DER-encoded as the extension's value.
        let mut der = vec![0x04, 0x20];
        der.extend_from_slice(digest);
        let oid = openssl::asn1::Asn1Object::from_str(ACME_IDENTIFIER_OID)
            .map_err(ssl("acmeIdentifier"))?;
        let value =
            openssl::asn1::Asn1OctetString::new_from_bytes(&der).map_err(ssl("acmeIdentifier"))?;
        let ext = openssl::x509::X509Extension::new_from_der(&oid, true, &value)
            .map_err(ssl("acmeIdentifier"))?;
        b.append_extension(ext).map_err(ssl("acmeIdentifier"))?;
    }
    b.sign(key, openssl::hash::MessageDigest::sha256())
        .map_err(ssl("sign"))?;
    Ok(b.build())
}

/// What renewal needs to know about a served chain; `None` for an empty one.
pub fn served(chain: &[X509]) -> Option<Served> {
    use kurier_tls::certificate::{dns_names, is_self_signed, unix_time};
    let leaf = chain.first()?;
    Some(Served {
        names: dns_names(leaf),
        not_before: unix_time(leaf.not_before())?,
        not_after: unix_time(leaf.not_after())?,
        from_ca: !is_self_signed(leaf),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn the_csr_names_every_identifier_and_is_signed_by_the_key() {
        let key = certificate_key(false).unwrap();
        let names = vec![
            "mx.example.org".to_string(),
            "mta-sts.example.org".to_string(),
        ];
        let der = csr(&names, &key).unwrap();
        let req = openssl::x509::X509Req::from_der(&der).unwrap();
        assert!(req.verify(&req.public_key().unwrap()).unwrap());
        assert!(req.public_key().unwrap().public_eq(&key));
        let text = String::from_utf8(req.to_text().unwrap()).unwrap();
        assert!(
            text.contains("DNS:mx.example.org") && text.contains("DNS:mta-sts.example.org"),
            "{text}"
        );
    }

    #[test]
    fn a_chain_for_another_key_or_fewer_names_is_refused() {
        let key = certificate_key(false).unwrap();
        let other = certificate_key(false).unwrap();
        let self_signed = |k: &PKey<Private>, names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            bootstrap(&names, k).unwrap().to_pem().unwrap()
        };
        let names = vec!["a.test".to_string(), "b.test".to_string()];
        assert!(chain(&self_signed(&key, &["a.test", "B.test"]), &names, &key).is_ok());
        assert!(chain(&self_signed(&other, &["a.test", "b.test"]), &names, &key).is_err());
        assert!(chain(&self_signed(&key, &["a.test"]), &names, &key).is_err());
        assert!(chain(b"not pem", &names, &key).is_err());
    }

    #[test]
    fn the_bootstrap_certificate_is_ours_and_counts_as_not_from_the_ca() {
        let key = certificate_key(true).unwrap();
        let names = vec![
            "mx.example.org".to_string(),
            "mta-sts.example.org".to_string(),
        ];
        let cert = bootstrap(&names, &key).unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
        let s = served(&[cert]).unwrap();
        assert_eq!(s.names, names);
        assert!(!s.from_ca);
        assert!((s.not_after - s.not_before - 90 * 86_400).abs() < 5);
        assert_eq!(served(&[]), None);
    }

    /// RFC 8737 §3: one dNSName, and a critical acmeIdentifier whose value is the DER OCTET
    /// STRING of SHA-256(key authorization).
    #[test]
    fn the_tls_alpn_01_certificate_carries_the_digest_of_the_key_authorization() {
        let (cert, key) = tls_alpn01("mx.example.org", "token.thumbprint").unwrap();
        assert!(cert.public_key().unwrap().public_eq(&key));
        assert!(cert.verify(&key).unwrap(), "self-signed");
        assert_eq!(
            kurier_tls::certificate::dns_names(&cert),
            ["mx.example.org"]
        );
        let mut want = vec![0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        want.extend([0x01, 0x01, 0xff, 0x04, 0x22, 0x04, 0x20]);
        want.extend(openssl::sha::sha256(b"token.thumbprint"));
        let der = cert.to_der().unwrap();
        assert!(
            der.windows(want.len()).any(|w| w == want),
            "extension: OID, critical TRUE, OCTET STRING {{ OCTET STRING (32) }}"
        );
    }
}
