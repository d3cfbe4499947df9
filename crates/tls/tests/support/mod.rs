//! Test certificates and a loopback TLS server for the profile tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kurier_tls::{CertificateSource, ServerProfile, TlsAcceptor};
use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509, X509Builder, X509NameBuilder};

pub enum KeyKind {
    Ec(Nid),
    Rsa(u32),
    /// An RSA-PSS key (RFC 4055), which signs only with PSS.
    RsaPss(u32),
    Ed25519,
}

pub fn key(kind: KeyKind) -> PKey<Private> {
    match kind {
        KeyKind::Ec(nid) => {
            let g = EcGroup::from_curve_name(nid).unwrap();
            PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
        }
        KeyKind::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap(),
        KeyKind::RsaPss(bits) => {
            let mut ctx = openssl::pkey_ctx::PkeyCtx::new_id(openssl::pkey::Id::RSA_PSS).unwrap();
            ctx.keygen_init().unwrap();
            ctx.set_rsa_keygen_bits(bits).unwrap();
            ctx.keygen().unwrap()
        }
        KeyKind::Ed25519 => PKey::generate_ed25519().unwrap(),
    }
}

/// What a test certificate looks like; `issuer` None makes it self-signed.
pub struct CertSpec<'a> {
    pub names: &'a [&'a str],
    pub ca: bool,
    /// Seconds relative to now.
    pub not_before: i64,
    pub not_after: i64,
    /// Signed with SHA-1 instead of SHA-256.
    pub sha1: bool,
}

impl Default for CertSpec<'_> {
    fn default() -> Self {
        CertSpec {
            names: &["localhost"],
            ca: false,
            not_before: -60,
            not_after: 90 * 86400,
            sha1: false,
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub fn cert(spec: &CertSpec, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(Asn1Integer::from_bn(&serial).unwrap().as_ref())
        .unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(
        Nid::COMMONNAME,
        spec.names.first().copied().unwrap_or("test CA"),
    )
    .unwrap();
    let name = name.build();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map(|(c, _)| c.subject_name()).unwrap_or(&name))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(
        Asn1Time::from_unix(now() + spec.not_before)
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    b.set_not_after(
        Asn1Time::from_unix(now() + spec.not_after)
            .unwrap()
            .as_ref(),
    )
    .unwrap();
    if spec.ca {
        b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
            .unwrap();
        b.append_extension(KeyUsage::new().critical().key_cert_sign().build().unwrap())
            .unwrap();
    } else {
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .build()
                .unwrap(),
        )
        .unwrap();
        let mut san = SubjectAlternativeName::new();
        for n in spec.names {
            san.dns(n);
        }
        let san = san
            .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))
            .unwrap();
        b.append_extension(san).unwrap();
    }
    let digest = if spec.sha1 {
        MessageDigest::sha1()
    } else {
        MessageDigest::sha256()
    };
    let (signer, md) = match issuer {
        Some((_, k)) => (k, digest),
        None => (key, digest),
    };
    let md = if signer.id() == openssl::pkey::Id::ED25519 {
        MessageDigest::null()
    } else {
        md
    };
    b.sign(signer, md).unwrap();
    b.build()
}

/// A CA (P-256) that issues leaves.
pub struct TestCa {
    pub cert: X509,
    pub key: PKey<Private>,
}

impl TestCa {
    pub fn new() -> Self {
        let key = key(KeyKind::Ec(Nid::X9_62_PRIME256V1));
        let cert = cert(
            &CertSpec {
                names: &["Test CA"],
                ca: true,
                ..Default::default()
            },
            &key,
            None,
        );
        TestCa { cert, key }
    }

    pub fn issue(&self, spec: &CertSpec, key: &PKey<Private>) -> X509 {
        cert(spec, key, Some((&self.cert, &self.key)))
    }
}

/// Writes `chain` and `key` as PEM into `dir` under `stem`, returns (cert path, key path).
pub fn write(dir: &Path, stem: &str, chain: &[&X509], key: &PKey<Private>) -> (PathBuf, PathBuf) {
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    let mut pem = Vec::new();
    for c in chain {
        pem.extend(c.to_pem().unwrap());
    }
    std::fs::write(&cert_path, pem).unwrap();
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    (cert_path, key_path)
}

/// A temporary folder removed on drop; `.0` is its path.
pub struct TempDir(pub PathBuf, tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let t = tempfile::Builder::new()
            .prefix(&format!("kurier-tls-{tag}-"))
            .tempdir()
            .unwrap();
        TempDir(t.path().to_owned(), t)
    }
}

/// A CA, and a leaf for `names` issued by it, written to `dir`; returns the source and CA path.
pub fn issued_source(
    dir: &Path,
    ca: &TestCa,
    stem: &str,
    names: &[&str],
    kind: KeyKind,
) -> CertificateSource {
    let k = key(kind);
    let leaf = ca.issue(
        &CertSpec {
            names,
            ..Default::default()
        },
        &k,
    );
    let (cert, key) = write(dir, stem, &[&leaf, &ca.cert], &k);
    CertificateSource {
        cert,
        key,
        roots: None,
    }
}

/// Starts a loopback server with `acceptor` that completes handshakes and then reads until EOF.
pub async fn serve(acceptor: Arc<TlsAcceptor>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 1024];
                    while matches!(tls.read(&mut buf).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    addr
}

/// A strict server with one P-256 certificate for `localhost`; returns its address and the CA file.
pub async fn strict_server(
    dir: &Path,
    profile: ServerProfile,
) -> (SocketAddr, PathBuf, Arc<TlsAcceptor>) {
    server_with(dir, profile, kurier_tls::ServerOptions::default()).await
}

/// `strict_server` with per-listener `options`.
pub async fn server_with(
    dir: &Path,
    profile: ServerProfile,
    options: kurier_tls::ServerOptions,
) -> (SocketAddr, PathBuf, Arc<TlsAcceptor>) {
    let ca = TestCa::new();
    let source = issued_source(
        dir,
        &ca,
        "server",
        &["localhost", "mail.example.test"],
        KeyKind::Ec(Nid::X9_62_PRIME256V1),
    );
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.cert.to_pem().unwrap()).unwrap();
    let acceptor = Arc::new(TlsAcceptor::with_options(profile, options, vec![source]).unwrap());
    (serve(acceptor.clone()).await, ca_path, acceptor)
}
