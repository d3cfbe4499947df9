//! A local test CA and server certificate for `kurier serve --dev`, kept across restarts.
//!
//! Both use ECDSA P-256 and follow the same rules we check on load (TR-03116-4 §6.1.2): CA with
//! critical basicConstraints (pathlen 0) and KeyUsage, leaf with critical KeyUsage, serverAuth,
//! SAN names only, no wildcards, 397 days. The leaf is renewed when it nears expiry or when the
//! asked-for names change; the CA is kept, so a client that trusts it once keeps trusting it.

use std::path::{Path, PathBuf};

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
    SubjectKeyIdentifier,
};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

use crate::TlsError;
use crate::certificate::dns_names;

/// File names inside the data folder.
pub const CA_CERT_FILE: &str = "dev-ca.pem";
pub const CA_KEY_FILE: &str = "dev-ca.key";
pub const SERVER_CERT_FILE: &str = "dev-server.pem";
pub const SERVER_KEY_FILE: &str = "dev-server.key";

const CA_DAYS: u32 = 5 * 365;
const SERVER_DAYS: u32 = 397;
/// Renew the leaf when fewer days than this remain.
const RENEW_BEFORE_DAYS: i32 = 30;

/// The files `ensure` wrote or found.
#[derive(Debug, Clone)]
pub struct DevCertificates {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Whether this call created or renewed anything.
    pub created: bool,
}

/// Makes sure `dir` holds a dev CA and a server certificate (chain file: leaf, then CA) for `names`.
pub fn ensure(dir: &Path, names: &[&str]) -> Result<DevCertificates, TlsError> {
    let io = |what: &'static str| move |e: std::io::Error| TlsError::Io(what, e);
    std::fs::create_dir_all(dir).map_err(io("create the data folder"))?;
    let paths = DevCertificates {
        ca_cert: dir.join(CA_CERT_FILE),
        server_cert: dir.join(SERVER_CERT_FILE),
        server_key: dir.join(SERVER_KEY_FILE),
        created: false,
    };
    let ca_key_path = dir.join(CA_KEY_FILE);
    let mut created = false;
    let (ca_cert, ca_key) = match load_pair(&paths.ca_cert, &ca_key_path) {
        Some(pair) => pair,
        None => {
            let key = new_key()?;
            let cert = build_ca(&key)?;
            write_pair(&paths.ca_cert, &ca_key_path, &cert, &key)?;
            created = true;
            (cert, key)
        }
    };
    let current = load_pair(&paths.server_cert, &paths.server_key);
    if created || !server_is_current(current.as_ref(), &ca_cert, names) {
        let key = new_key()?;
        let cert = build_server(&key, &ca_cert, &ca_key, names)?;
        let mut chain = cert
            .to_pem()
            .map_err(TlsError::openssl("encode certificate"))?;
        chain.extend(
            ca_cert
                .to_pem()
                .map_err(TlsError::openssl("encode certificate"))?,
        );
        write_file(&paths.server_key, &key_pem(&key)?, true)?;
        write_file(&paths.server_cert, &chain, false)?;
        created = true;
    }
    Ok(DevCertificates { created, ..paths })
}

fn server_is_current(current: Option<&(X509, PKey<Private>)>, ca: &X509, names: &[&str]) -> bool {
    let Some((cert, _)) = current else {
        return false;
    };
    let fresh = Asn1Time::days_from_now(0)
        .ok()
        .and_then(|now| now.diff(cert.not_after()).ok())
        .is_some_and(|d| d.days >= RENEW_BEFORE_DAYS);
    let issued = ca.issued(cert) == openssl::x509::X509VerifyResult::OK;
    let mut have = dns_names(cert);
    let mut want: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    have.sort();
    want.sort();
    fresh && issued && have == want
}

fn load_pair(cert: &Path, key: &Path) -> Option<(X509, PKey<Private>)> {
    let cert = X509::from_pem(&std::fs::read(cert).ok()?).ok()?;
    let key = PKey::private_key_from_pem(&std::fs::read(key).ok()?).ok()?;
    cert.public_key()
        .ok()?
        .public_eq(&key)
        .then_some((cert, key))
}

fn new_key() -> Result<PKey<Private>, TlsError> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)
        .map_err(TlsError::openssl("select P-256"))?;
    let ec = EcKey::generate(&group).map_err(TlsError::openssl("generate an ECDSA key"))?;
    PKey::from_ec_key(ec).map_err(TlsError::openssl("wrap an ECDSA key"))
}

fn key_pem(key: &PKey<Private>) -> Result<Vec<u8>, TlsError> {
    key.private_key_to_pem_pkcs8()
        .map_err(TlsError::openssl("encode a private key"))
}

fn write_pair(
    cert_path: &Path,
    key_path: &Path,
    cert: &X509,
    key: &PKey<Private>,
) -> Result<(), TlsError> {
    write_file(key_path, &key_pem(key)?, true)?;
    write_file(
        cert_path,
        &cert
            .to_pem()
            .map_err(TlsError::openssl("encode certificate"))?,
        false,
    )
}

fn write_file(path: &Path, data: &[u8], secret: bool) -> Result<(), TlsError> {
    write_atomic(path, data, secret).map_err(|e| TlsError::Io("write a dev certificate file", e))
}

/// Writes via a temporary file, fsync and a rename, so a crash never leaves half a PEM behind;
/// `secret`: readable by the owner only (0600), else 0644.
pub fn write_atomic(path: &Path, data: &[u8], secret: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        // A full disk must not keep half a file (and its space) behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn builder(subject_cn: &str, days: u32) -> Result<X509Builder, openssl::error::ErrorStack> {
    let mut b = X509Builder::new()?;
    b.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    b.set_serial_number(Asn1Integer::from_bn(&serial)?.as_ref())?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::ORGANIZATIONNAME, "Kurier development")?;
    name.append_entry_by_nid(Nid::COMMONNAME, subject_cn)?;
    let name = name.build();
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    // A minute of slack for clocks that are slightly behind.
    b.set_not_before(Asn1Time::from_unix(unix_now() - 60)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(days)?.as_ref())?;
    Ok(b)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn build_ca(key: &PKey<Private>) -> Result<X509, TlsError> {
    let build = || -> Result<X509, openssl::error::ErrorStack> {
        let mut b = builder("Kurier development CA", CA_DAYS)?;
        b.set_pubkey(key)?;
        b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .key_cert_sign()
                .crl_sign()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        b.sign(key, MessageDigest::sha256())?;
        Ok(b.build())
    };
    build().map_err(TlsError::openssl("create the dev CA"))
}

fn build_server(
    key: &PKey<Private>,
    ca: &X509,
    ca_key: &PKey<Private>,
    names: &[&str],
) -> Result<X509, TlsError> {
    let build = || -> Result<X509, openssl::error::ErrorStack> {
        let mut b = builder(names.first().copied().unwrap_or("localhost"), SERVER_DAYS)?;
        b.set_issuer_name(ca.subject_name())?;
        b.set_pubkey(key)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(KeyUsage::new().critical().digital_signature().build()?)?;
        b.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        let mut san = SubjectAlternativeName::new();
        for n in names {
            san.dns(n);
        }
        let san = san.build(&b.x509v3_context(Some(ca), None))?;
        b.append_extension(san)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(ca), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(ca), None))?;
        b.append_extension(aki)?;
        b.sign(ca_key, MessageDigest::sha256())?;
        Ok(b.build())
    };
    build().map_err(TlsError::openssl("create the dev server certificate"))
}
