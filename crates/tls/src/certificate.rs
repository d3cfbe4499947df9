//! Loading a server certificate (PEM chain + key) and checking it against TR-03116-4 §6.1 and
//! TR-03108 CERT-1/CERT-3 before it is ever served.
//!
//! MUST rules (key size, curve, wildcards, validity now, key/cert match, complete chain) are
//! errors; SHOULD rules (≤ 3 years, CRLDP or OCSP, critical KeyUsage, no PKCS#1 v1.5) are warnings.

use std::fmt;
use std::path::{Path, PathBuf};

use openssl::asn1::Asn1Time;
use openssl::nid::Nid;
use openssl::pkey::{Id, PKey, Private};
use openssl::x509::{X509, X509VerifyResult};

use crate::ffi;
use crate::profile::SYSTEM_CA_BUNDLE;

/// How bad a finding is: an error stops the certificate from being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One rule a certificate breaks, with the requirement ID it comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertificateFinding {
    pub severity: Severity,
    /// A requirement ID of docs/requirements.md such as `CERT-1`.
    pub requirement: &'static str,
    pub message: String,
}

impl fmt::Display for CertificateFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (TR-03108 {})", self.message, self.requirement)
    }
}

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} is not a valid PEM {what}: {reason}")]
    Pem {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("certificate {path} rejected: {finding}")]
    Rejected {
        path: PathBuf,
        finding: CertificateFinding,
        warnings: Vec<CertificateFinding>,
    },
}

/// A certificate chain and its key that passed every MUST rule.
#[derive(Clone)]
pub struct LoadedCertificate {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// Leaf first, then the intermediates as found in the file.
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
    /// DNS names of the leaf (SAN, else CN), lower case; SNI selects by these.
    pub names: Vec<String>,
    /// SHOULD rules that are not met; logged at load.
    pub warnings: Vec<CertificateFinding>,
}

impl fmt::Debug for LoadedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCertificate")
            .field("cert_path", &self.cert_path)
            .field("names", &self.names)
            .field("key", &key_description(&self.key))
            .finish()
    }
}

impl LoadedCertificate {
    /// Reads and checks `cert_path` (PEM chain, leaf first) and `key_path` (PEM private key).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CertificateError> {
        Self::load_trusting(cert_path, key_path, None)
    }

    /// `load`, where the chain may also end at a CA of `roots` (a PEM file: a company or lab
    /// CA) instead of one of Debian's bundle.
    pub fn load_trusting(
        cert_path: &Path,
        key_path: &Path,
        roots: Option<&Path>,
    ) -> Result<Self, CertificateError> {
        let roots = match roots {
            Some(path) => {
                X509::stack_from_pem(&read(path)?).map_err(|e| CertificateError::Pem {
                    path: path.to_owned(),
                    what: "trusted CA certificates",
                    reason: e.to_string(),
                })?
            }
            None => Vec::new(),
        };
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let chain = X509::stack_from_pem(&cert_pem).map_err(|e| CertificateError::Pem {
            path: cert_path.to_owned(),
            what: "certificate chain",
            reason: e.to_string(),
        })?;
        if chain.is_empty() {
            return Err(CertificateError::NoCertificate {
                path: cert_path.to_owned(),
            });
        }
        let key = PKey::private_key_from_pem(&key_pem).map_err(|e| CertificateError::Pem {
            path: key_path.to_owned(),
            what: "private key",
            reason: e.to_string(),
        })?;
        let now = Asn1Time::days_from_now(0).map_err(|e| CertificateError::Pem {
            path: cert_path.to_owned(),
            what: "certificate chain",
            reason: e.to_string(),
        })?;
        let findings = check_trusting(&chain, &key, &now, &roots);
        let (errors, warnings): (Vec<_>, Vec<_>) = findings
            .into_iter()
            .partition(|f| f.severity == Severity::Error);
        if let Some(finding) = errors.into_iter().next() {
            return Err(CertificateError::Rejected {
                path: cert_path.to_owned(),
                finding,
                warnings,
            });
        }
        Ok(LoadedCertificate {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            names: dns_names(&chain[0]),
            chain,
            key,
            warnings,
        })
    }

    pub fn leaf(&self) -> &X509 {
        &self.chain[0]
    }

    /// e.g. `ECDSA P-256` or `RSA 3072`.
    pub fn key_description(&self) -> String {
        key_description(&self.key)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|source| CertificateError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Allowed certificate curves, TR-03116-4 §6.1.2 / TR-02102-2 §3.6.1.
const ALLOWED_CURVES: &[Nid] = &[
    Nid::X9_62_PRIME256V1,
    Nid::SECP384R1,
    Nid::SECP521R1,
    Nid::BRAINPOOL_P256R1,
    Nid::BRAINPOOL_P384R1,
    Nid::BRAINPOOL_P512R1,
];

/// The minimum RSA modulus, TR-02102-2 Table 13 as TR-03108 CERT-1 states it.
pub const MIN_RSA_BITS: u32 = 3072;
/// The longest end-entity validity TR-03116-4 §6.1.2 allows (3 years, leap day included).
pub const MAX_VALIDITY_DAYS: i32 = 3 * 365 + 1;

/// Every rule, as pure checks over parsed values; `now` is injected for tests.
pub fn check(chain: &[X509], key: &PKey<Private>, now: &Asn1Time) -> Vec<CertificateFinding> {
    check_trusting(chain, key, now, &[])
}

/// `check`, with `roots` trusted besides Debian's bundle as the end of the chain.
pub fn check_trusting(
    chain: &[X509],
    key: &PKey<Private>,
    now: &Asn1Time,
    roots: &[X509],
) -> Vec<CertificateFinding> {
    let mut out = Vec::new();
    let Some(leaf) = chain.first() else {
        out.push(error("CERT-3", "the file holds no certificate".into()));
        return out;
    };
    check_key(key, "", &mut out);
    match leaf.public_key() {
        Ok(pubkey) if pubkey.public_eq(key) => {}
        _ => out.push(error(
            "CERT-3",
            "the private key does not belong to the certificate (key/cert mismatch)".into(),
        )),
    }
    check_names(leaf, &mut out);
    check_validity(leaf, now, &mut out);
    check_chain(chain, now, roots, Source::File, &mut out);
    check_extensions(leaf, &mut out);
    out
}

/// The same rules for a chain someone else serves (no private key to compare): `kurier check`.
/// `roots`: CAs trusted besides Debian's bundle (`delivery.extra_ca_file`), as delivery trusts
/// them. The findings speak about what the server sent, not about a file of ours.
pub fn check_peer(chain: &[X509], now: &Asn1Time, roots: &[X509]) -> Vec<CertificateFinding> {
    let mut out = Vec::new();
    let Some(leaf) = chain.first() else {
        out.push(error("CERT-3", "the server sent no certificate".into()));
        return out;
    };
    match leaf.public_key() {
        Ok(k) => check_key(&k, "", &mut out),
        Err(_) => out.push(error("CERT-1", "the public key cannot be read".into())),
    }
    check_names(leaf, &mut out);
    check_validity(leaf, now, &mut out);
    check_chain(chain, now, roots, Source::Peer, &mut out);
    check_extensions(leaf, &mut out);
    out
}

fn error(requirement: &'static str, message: String) -> CertificateFinding {
    CertificateFinding {
        severity: Severity::Error,
        requirement,
        message,
    }
}

fn warning(requirement: &'static str, message: String) -> CertificateFinding {
    CertificateFinding {
        severity: Severity::Warning,
        requirement,
        message,
    }
}

/// CERT-1 on one key; `whose` names a certificate other than the leaf (`"the intermediate
/// certificate CN=…: "`), empty for the leaf.
fn check_key<T: openssl::pkey::HasPublic>(
    key: &PKey<T>,
    whose: &str,
    out: &mut Vec<CertificateFinding>,
) {
    let mut problem = |message: String| out.push(error("CERT-1", format!("{whose}{message}")));
    match key.id() {
        // RSA-PSS keys (RFC 4055) serve the rsa_pss_pss_* signatures the profile declares.
        Id::RSA | Id::RSA_PSS => {
            if key.bits() < MIN_RSA_BITS {
                problem(format!(
                    "{} key has {} bits, at least {MIN_RSA_BITS} are required; use an ECDSA P-256 key or RSA-3072",
                    key_description(key).split(' ').next().unwrap_or("RSA"),
                    key.bits()
                ));
            }
        }
        Id::EC => {
            let curve = key.ec_key().ok().and_then(|k| k.group().curve_name());
            if !curve.is_some_and(|c| ALLOWED_CURVES.contains(&c)) {
                problem(format!(
                    "ECDSA key on curve {} is not allowed; use P-256, P-384, P-521 or brainpoolP256r1/384r1/512r1",
                    curve
                        .and_then(|c| c.short_name().ok())
                        .unwrap_or("(unnamed)")
                ));
            }
        }
        _ => problem(format!(
            "{} keys are not allowed for TLS servers; use ECDSA (P-256 or brainpoolP256r1) or RSA ≥ 3072",
            key_description(key)
        )),
    }
}

fn check_names(leaf: &X509, out: &mut Vec<CertificateFinding>) {
    let mut all = dns_names(leaf);
    all.extend(common_names(leaf));
    if let Some(w) = all.iter().find(|n| n.contains('*')) {
        out.push(error(
            "CERT-1",
            format!("wildcard name {w:?} is not allowed; list every host name in the SAN"),
        ));
    }
    if leaf.subject_alt_names().is_none() {
        out.push(warning(
            "CERT-3",
            "the certificate has no subjectAltName; clients match host names only against the SAN"
                .into(),
        ));
    }
}

fn check_validity(leaf: &X509, now: &Asn1Time, out: &mut Vec<CertificateFinding>) {
    if leaf.not_before() > now {
        out.push(error(
            "CERT-3",
            format!("the certificate is not valid before {}", leaf.not_before()),
        ));
    }
    if leaf.not_after() < now {
        out.push(error(
            "CERT-3",
            format!("the certificate expired on {}", leaf.not_after()),
        ));
    }
    if let Ok(diff) = leaf.not_before().diff(leaf.not_after())
        && diff.days > MAX_VALIDITY_DAYS
    {
        out.push(warning(
            "CERT-1",
            format!(
                "the certificate is valid for {} days, more than the 3 years TR-03116-4 §6.1.2 allows",
                diff.days
            ),
        ));
    }
}

/// Order and completeness of the chain (CERT-3), and CERT-1 on every certificate above the
/// leaf: key, signature, validity. A self-signed root's own signature does not count (nobody
/// verifies it), its key does.
/// Whose chain is checked: ours from a file, or one a server sent.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    File,
    Peer,
}

fn check_chain(
    chain: &[X509],
    now: &Asn1Time,
    roots: &[X509],
    source: Source,
    out: &mut Vec<CertificateFinding>,
) {
    for cert in chain.iter().skip(1) {
        let whose = format!("the chain certificate {}: ", subject(cert));
        match cert.public_key() {
            Ok(k) => check_key(&k, &whose, out),
            Err(_) => out.push(error(
                "CERT-1",
                format!("{whose}its public key cannot be read"),
            )),
        }
        if !is_self_signed(cert) && weak_signature(cert) {
            out.push(error(
                "CERT-1",
                format!("{whose}it is signed with SHA-1 or MD5; use a chain signed with SHA-256 or better"),
            ));
        }
        if cert.not_after() < now {
            out.push(error(
                "CERT-3",
                format!("{whose}it expired on {}", cert.not_after()),
            ));
        } else if cert.not_before() > now {
            out.push(error(
                "CERT-3",
                format!("{whose}it is valid only from {}", cert.not_before()),
            ));
        }
    }
    for pair in chain.windows(2) {
        let (child, parent) = (&pair[0], &pair[1]);
        let signed = parent
            .public_key()
            .is_ok_and(|k| child.verify(&k).unwrap_or(false));
        if parent.issued(child) != X509VerifyResult::OK || !signed {
            out.push(error(
                "CERT-3",
                format!(
                    "chain out of order: {} is not issued by the next certificate {}, {}",
                    subject(child),
                    match source {
                        Source::File => "in the file",
                        Source::Peer => "the server sent",
                    },
                    subject(parent)
                ),
            ));
            return;
        }
    }
    let Some(last) = chain.last() else { return };
    if is_self_signed(last) {
        if chain.len() == 1 {
            out.push(warning(
                "CERT-2",
                "the certificate is self-signed; only DANE-EE (3 1 1) peers can authenticate it"
                    .into(),
            ));
        }
        return;
    }
    if !issued_by_any(last, roots) && !issuer_in_system_bundle(last) {
        let message = match source {
            Source::File => format!(
                "missing chain: the issuer of {} ({}) is neither in the file nor a trusted root; use the full chain (e.g. fullchain.pem), or name a private CA in tls.trusted_roots",
                subject(last),
                issuer(last)
            ),
            Source::Peer => format!(
                "missing chain: the server sent {} without its issuer ({}), which is no trusted root; the server's operator must configure the full chain",
                subject(last),
                issuer(last)
            ),
        };
        out.push(error("CERT-3", message));
    }
}

/// Issuer name equals subject name and the certificate's own key verifies its signature. (Not
/// `X509_check_issued`: that also wants keyCertSign, which a self-signed leaf rightly lacks.)
/// Whether `cert` issued itself: same subject and issuer, and its own key verifies it.
pub fn is_self_signed(cert: &X509) -> bool {
    matches!(
        cert.subject_name().try_cmp(cert.issuer_name()),
        Ok(std::cmp::Ordering::Equal)
    ) && cert
        .public_key()
        .is_ok_and(|k| cert.verify(&k).unwrap_or(false))
}

fn issuer_in_system_bundle(cert: &X509) -> bool {
    let Ok(pem) = std::fs::read(SYSTEM_CA_BUNDLE) else {
        return false;
    };
    let Ok(roots) = X509::stack_from_pem(&pem) else {
        return false;
    };
    issued_by_any(cert, &roots)
}

fn issued_by_any(cert: &X509, roots: &[X509]) -> bool {
    roots.iter().any(|root| {
        root.issued(cert) == X509VerifyResult::OK
            && root
                .public_key()
                .is_ok_and(|k| cert.verify(&k).unwrap_or(false))
    })
}

/// Signed with SHA-1 or MD5 (RSA, ECDSA or DSA).
fn weak_signature(cert: &X509) -> bool {
    matches!(
        cert.signature_algorithm().object().nid(),
        Nid::SHA1WITHRSAENCRYPTION
            | Nid::SHA1WITHRSA
            | Nid::ECDSA_WITH_SHA1
            | Nid::DSAWITHSHA1
            | Nid::MD5WITHRSAENCRYPTION
    )
}

fn check_extensions(leaf: &X509, out: &mut Vec<CertificateFinding>) {
    if ffi::extension_criticality(leaf, Nid::KEY_USAGE) != Some(true) {
        out.push(warning(
            "CERT-1",
            "KeyUsage is missing or not marked critical".into(),
        ));
    }
    let has_crldp = leaf.crl_distribution_points().is_some();
    let has_ocsp = leaf.ocsp_responders().is_ok_and(|r| !r.is_empty());
    if !has_crldp && !has_ocsp {
        out.push(warning(
            "CERT-1",
            "neither a CRL distribution point nor an OCSP responder (AIA) is named".into(),
        ));
    }
    let sig = leaf.signature_algorithm().object().nid();
    if matches!(
        sig,
        Nid::SHA256WITHRSAENCRYPTION | Nid::SHA384WITHRSAENCRYPTION | Nid::SHA512WITHRSAENCRYPTION
    ) {
        out.push(warning(
            "CERT-1",
            "the certificate is signed with RSA PKCS#1 v1.5, allowed only until 2025; prefer an ECDSA or RSA-PSS issuer".into(),
        ));
    } else if weak_signature(leaf) {
        out.push(error(
            "CERT-1",
            "the certificate is signed with SHA-1 or MD5; get one signed with SHA-256 or better"
                .into(),
        ));
    }
}

/// A certificate time (notBefore, notAfter) as Unix seconds; `None` if OpenSSL cannot say.
pub fn unix_time(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let d = Asn1Time::from_unix(0).ok()?.diff(t).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// DNS names in the SAN, or the CN where there is no SAN; lower case.
pub fn dns_names(cert: &X509) -> Vec<String> {
    match cert.subject_alt_names() {
        Some(sans) => sans
            .iter()
            .filter_map(|n| n.dnsname().map(str::to_ascii_lowercase))
            .collect(),
        None => common_names(cert)
            .into_iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
    }
}

fn common_names(cert: &X509) -> Vec<String> {
    cert.subject_name()
        .entries_by_nid(Nid::COMMONNAME)
        .filter_map(|e| e.data().to_string().ok())
        .collect()
}

/// The subject name as `CN=…, O=…`.
pub fn subject(cert: &X509) -> String {
    name_text(cert.subject_name())
}

/// The issuer name as `CN=…, O=…`.
pub fn issuer(cert: &X509) -> String {
    name_text(cert.issuer_name())
}

fn name_text(name: &openssl::x509::X509NameRef) -> String {
    let parts: Vec<String> = name
        .entries()
        .filter_map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            e.data().to_string().ok().map(|v| format!("{key}={v}"))
        })
        .collect();
    if parts.is_empty() {
        "(empty name)".into()
    } else {
        parts.join(", ")
    }
}

/// e.g. `ECDSA P-256`, `RSA 3072`, `ED25519`.
pub fn key_description<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> String {
    match key.id() {
        Id::RSA => format!("RSA {}", key.bits()),
        Id::RSA_PSS => format!("RSA-PSS {}", key.bits()),
        Id::EC => {
            let curve = key
                .ec_key()
                .ok()
                .and_then(|k| k.group().curve_name())
                .map(curve_label)
                .unwrap_or_else(|| "(unnamed curve)".into());
            format!("ECDSA {curve}")
        }
        Id::ED25519 => "Ed25519".into(),
        Id::ED448 => "Ed448".into(),
        Id::DSA => format!("DSA {}", key.bits()),
        other => format!("key type {}", other.as_raw()),
    }
}

fn curve_label(nid: Nid) -> String {
    match nid {
        Nid::X9_62_PRIME256V1 => "P-256".into(),
        Nid::SECP384R1 => "P-384".into(),
        Nid::SECP521R1 => "P-521".into(),
        other => other.short_name().unwrap_or("(unknown)").to_string(),
    }
}
