//! The world's certificate authorities and certificates on demand, good and deliberately bad.

use std::path::{Path, PathBuf};

use kurier_tls::tlsa::{Matching, Selector, TlsaRecord, Usage};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

use crate::WorldError;

/// Key types the world can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    P256,
    BrainpoolP256,
    Rsa3072,
    /// Too small for TR-03108 CERT-1: for negative tests.
    Rsa2048,
}

pub fn new_key(kind: KeyKind) -> Result<PKey<Private>, WorldError> {
    let ec = |nid| -> Result<PKey<Private>, openssl::error::ErrorStack> {
        let group = EcGroup::from_curve_name(nid)?;
        PKey::from_ec_key(EcKey::generate(&group)?)
    };
    Ok(match kind {
        KeyKind::P256 => ec(Nid::X9_62_PRIME256V1)?,
        KeyKind::BrainpoolP256 => ec(Nid::BRAINPOOL_P256R1)?,
        KeyKind::Rsa3072 => PKey::from_rsa(Rsa::generate(3072)?)?,
        KeyKind::Rsa2048 => PKey::from_rsa(Rsa::generate(2048)?)?,
    })
}

/// A root CA and an intermediate that issues the leaves, both of one key kind.
pub struct Ca {
    pub root: X509,
    root_key: PKey<Private>,
    pub intermediate: X509,
    intermediate_key: PKey<Private>,
}

/// What a leaf certificate looks like. `Default` is a good one: 90 days, P-256.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    pub names: Vec<String>,
    pub key: KeyKind,
    /// Validity relative to now, in seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Signed by its own key instead of the intermediate.
    pub self_signed: bool,
    /// A CRL distribution point (`http://…`), for revocation tests.
    pub crl_url: Option<String>,
    /// Signed with SHA-1 (a CERT-1 error).
    pub sha1: bool,
}

impl LeafSpec {
    pub fn new(names: &[&str]) -> Self {
        LeafSpec {
            names: names.iter().map(|n| n.to_string()).collect(),
            key: KeyKind::P256,
            not_before: -3600,
            not_after: 90 * 86400,
            self_signed: false,
            crl_url: None,
            sha1: false,
        }
    }

    pub fn expired(mut self) -> Self {
        self.not_before = -90 * 86400;
        self.not_after = -86400;
        self
    }

    pub fn key(mut self, key: KeyKind) -> Self {
        self.key = key;
        self
    }

    pub fn crl_url(mut self, url: &str) -> Self {
        self.crl_url = Some(url.to_string());
        self
    }

    pub fn self_signed(mut self) -> Self {
        self.self_signed = true;
        self
    }

    pub fn sha1(mut self) -> Self {
        self.sha1 = true;
        self
    }
}

/// A leaf certificate with its key and chain (leaf, intermediate, root).
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: X509,
    pub key: PKey<Private>,
    pub chain: Vec<X509>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn builder(
    cn: &str,
    not_before: i64,
    not_after: i64,
) -> Result<X509Builder, openssl::error::ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(120, MsbOption::MAYBE_ZERO, false)?;
    b.set_serial_number(Asn1Integer::from_bn(&serial)?.as_ref())?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Kurier test world")?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    let name = name.build();
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_not_before(Asn1Time::from_unix(unix_now() + not_before)?.as_ref())?;
    b.set_not_after(Asn1Time::from_unix(unix_now() + not_after)?.as_ref())?;
    Ok(b)
}

/// How a CA certificate is made: validity (seconds relative to now) and digest.
struct CaCertSpec {
    not_before: i64,
    not_after: i64,
    digest: MessageDigest,
}

fn good_ca() -> CaCertSpec {
    CaCertSpec {
        not_before: -86400,
        not_after: 5 * 365 * 86400,
        digest: MessageDigest::sha256(),
    }
}

fn ca_cert(
    cn: &str,
    key: &PKey<Private>,
    pathlen: u32,
    issuer: Option<(&X509, &PKey<Private>)>,
) -> Result<X509, openssl::error::ErrorStack> {
    ca_cert_as(cn, key, pathlen, issuer, &good_ca())
}

fn ca_cert_as(
    cn: &str,
    key: &PKey<Private>,
    pathlen: u32,
    issuer: Option<(&X509, &PKey<Private>)>,
    spec: &CaCertSpec,
) -> Result<X509, openssl::error::ErrorStack> {
    let mut b = builder(cn, spec.not_before, spec.not_after)?;
    if let Some((ic, _)) = issuer {
        b.set_issuer_name(ic.subject_name())?;
    }
    b.set_pubkey(key)?;
    b.append_extension(
        BasicConstraints::new()
            .critical()
            .ca()
            .pathlen(pathlen)
            .build()?,
    )?;
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_cert_sign()
            .crl_sign()
            .build()?,
    )?;
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))?;
    b.append_extension(ski)?;
    let signer = issuer.map(|(_, k)| k).unwrap_or(key);
    b.sign(signer, spec.digest)?;
    Ok(b.build())
}

/// What is wrong with the intermediate of a `Ca::flawed` CA (TR-03108 CERT-1/CERT-3 tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntermediateFlaw {
    /// An RSA-2048 key.
    WeakKey,
    /// Signed by the root with SHA-1.
    Sha1Signature,
    /// Expired yesterday.
    Expired,
}

impl Ca {
    /// A P-256 root whose intermediate has `flaw`; its leaves are otherwise good.
    pub fn flawed(name: &str, flaw: IntermediateFlaw) -> Result<Ca, WorldError> {
        let intermediate_kind = if flaw == IntermediateFlaw::WeakKey {
            KeyKind::Rsa2048
        } else {
            KeyKind::P256
        };
        let spec = match flaw {
            IntermediateFlaw::WeakKey => good_ca(),
            IntermediateFlaw::Sha1Signature => CaCertSpec {
                digest: MessageDigest::sha1(),
                ..good_ca()
            },
            IntermediateFlaw::Expired => CaCertSpec {
                not_before: -90 * 86400,
                not_after: -86400,
                ..good_ca()
            },
        };
        Ca::make(name, KeyKind::P256, intermediate_kind, &spec)
    }

    /// A root and an intermediate with keys of `kind` (P-256 or RSA-3072 in practice).
    pub fn new(name: &str, kind: KeyKind) -> Result<Ca, WorldError> {
        Ca::make(name, kind, kind, &good_ca())
    }

    fn make(
        name: &str,
        root_kind: KeyKind,
        intermediate_kind: KeyKind,
        intermediate: &CaCertSpec,
    ) -> Result<Ca, WorldError> {
        let root_key = new_key(root_kind)?;
        let root = ca_cert(&format!("{name} root"), &root_key, 1, None)?;
        let intermediate_key = new_key(intermediate_kind)?;
        let intermediate = ca_cert_as(
            &format!("{name} intermediate"),
            &intermediate_key,
            0,
            Some((&root, &root_key)),
            intermediate,
        )?;
        Ok(Ca {
            root,
            root_key,
            intermediate,
            intermediate_key,
        })
    }

    /// A good leaf for `names`.
    pub fn leaf(&self, names: &[&str]) -> Result<Leaf, WorldError> {
        self.issue(&LeafSpec::new(names))
    }

    /// A leaf as `spec` says (possibly a bad one).
    pub fn issue(&self, spec: &LeafSpec) -> Result<Leaf, WorldError> {
        let key = new_key(spec.key)?;
        let cn = spec.names.first().map(String::as_str).unwrap_or("leaf");
        let mut b = builder(cn, spec.not_before, spec.not_after)?;
        let issuer = (!spec.self_signed).then_some((&self.intermediate, &self.intermediate_key));
        if let Some((ic, _)) = issuer {
            b.set_issuer_name(ic.subject_name())?;
        }
        b.set_pubkey(&key)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        )?;
        b.append_extension(
            ExtendedKeyUsage::new()
                .server_auth()
                .client_auth()
                .build()?,
        )?;
        let mut san = SubjectAlternativeName::new();
        for n in &spec.names {
            san.dns(n);
        }
        let ctx_issuer = issuer.map(|(c, _)| c.as_ref());
        let san = san.build(&b.x509v3_context(ctx_issuer, None))?;
        b.append_extension(san)?;
        if let Some(url) = &spec.crl_url {
            #[allow(deprecated)] // the openssl crate has no builder for this extension
            let cdp = openssl::x509::X509Extension::new(
                None,
                Some(&b.x509v3_context(ctx_issuer, None)),
                "crlDistributionPoints",
                &format!("URI:{url}"),
            )?;
            b.append_extension(cdp)?;
        }
        if let Some((ic, _)) = issuer {
            let aki = AuthorityKeyIdentifier::new()
                .keyid(true)
                .build(&b.x509v3_context(Some(ic), None))?;
            b.append_extension(aki)?;
        }
        let signer = issuer.map(|(_, k)| k).unwrap_or(&key);
        let digest = if spec.sha1 {
            MessageDigest::sha1()
        } else {
            MessageDigest::sha256()
        };
        b.sign(signer, digest)?;
        let cert = b.build();
        // The root goes along: a chain file that is complete without a system trust store.
        let chain = if spec.self_signed {
            vec![cert.clone()]
        } else {
            vec![cert.clone(), self.intermediate.clone(), self.root.clone()]
        };
        Ok(Leaf { cert, key, chain })
    }

    /// A CRL of the intermediate (the issuer of every leaf) revoking `revoked`, DER, valid for
    /// a day — made by Python's `cryptography` (Debian's python3-cryptography).
    pub fn crl(&self, revoked: &[&Leaf]) -> Result<Vec<u8>, WorldError> {
        let dir = tempfile::tempdir()?;
        let (cert, key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        std::fs::write(&cert, self.intermediate.to_pem()?)?;
        std::fs::write(&key, self.intermediate_key.private_key_to_pem_pkcs8()?)?;
        let serials: Vec<String> = revoked
            .iter()
            .map(|l| {
                l.cert
                    .serial_number()
                    .to_bn()
                    .and_then(|b| b.to_dec_str())
                    .map(|s| s.to_string())
            })
            .collect::<Result<_, _>>()?;
        let out = std::process::Command::new("python3")
            .args(["-c", CRL_SCRIPT])
            .arg(&cert)
            .arg(&key)
            .args(&serials)
            .output()
            .map_err(|e| WorldError(format!("python3: {e}")))?;
        if !out.status.success() {
            return Err(WorldError(format!(
                "making a CRL (needs python3-cryptography): {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(out.stdout)
    }

    /// The root as PEM, e.g. for a client's CA file.
    pub fn root_pem(&self) -> Vec<u8> {
        self.root.to_pem().unwrap_or_default()
    }

    /// Writes the root certificate to `path`.
    pub fn write_root(&self, path: &Path) -> Result<PathBuf, WorldError> {
        std::fs::write(path, self.root_pem())?;
        Ok(path.to_owned())
    }

    /// `2 1 1` for the intermediate: matches every leaf this CA issues.
    pub fn tlsa_2_1_1(&self) -> Result<String, WorldError> {
        Ok(TlsaRecord::for_certificate(
            &self.intermediate,
            Usage::DaneTa,
            Selector::Spki,
            Matching::Sha256,
        )?
        .rdata())
    }

    /// Keeps the root key reachable for tests that need to sign odd things themselves.
    pub fn root_key(&self) -> &PKey<Private> {
        &self.root_key
    }
}

impl Leaf {
    /// Writes `stem.pem` (leaf + chain) and `stem.key` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), WorldError> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        let mut pem = Vec::new();
        for c in &self.chain {
            pem.extend(c.to_pem()?);
        }
        std::fs::write(&cert, pem)?;
        std::fs::write(&key, self.key.private_key_to_pem_pkcs8()?)?;
        Ok((cert, key))
    }

    /// TLSA RDATA `u s m hex` for this leaf (`3 …`).
    pub fn tlsa(&self, selector: Selector, matching: Matching) -> Result<String, WorldError> {
        Ok(TlsaRecord::for_certificate(&self.cert, Usage::DaneEe, selector, matching)?.rdata())
    }

    pub fn tlsa_3_1_1(&self) -> Result<String, WorldError> {
        self.tlsa(Selector::Spki, Matching::Sha256)
    }
}

const CRL_SCRIPT: &str = r#"
import datetime, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
cert = x509.load_pem_x509_certificate(open(sys.argv[1], "rb").read())
key = serialization.load_pem_private_key(open(sys.argv[2], "rb").read(), None)
now = datetime.datetime.now(datetime.timezone.utc)
b = x509.CertificateRevocationListBuilder().issuer_name(cert.subject)
b = b.last_update(now - datetime.timedelta(hours=1)).next_update(now + datetime.timedelta(days=1))
for serial in sys.argv[3:]:
    b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(int(serial)).revocation_date(now - datetime.timedelta(minutes=5)).build())
crl = b.sign(key, hashes.SHA256())
sys.stdout.buffer.write(crl.public_bytes(serialization.Encoding.DER))
"#;
