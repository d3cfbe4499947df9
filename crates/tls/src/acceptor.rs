//! A server-side TLS endpoint: one profile, several certificates chosen by SNI, hot reload.
//!
//! RFC 8461 §7.1 / TR-03108 §2.7: a client without SNI gets the first (default) certificate.
//! Reload (SIGHUP or a changed file) builds a complete new set of contexts first and swaps it in
//! only if every certificate passes its checks, so a bad file never takes the endpoint down. A
//! caller that must look at the new chains first (DANE rollover, RFC 7671 §8) loads them with
//! `load`, decides, and then `install`s them — or not.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use openssl::ssl::{ClientHelloResponse, NameType, Ssl, SslContext, SslRef};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use crate::TlsError;
use crate::acme_tls::TlsAlpn01Certificates;
use crate::certificate::{CertificateError, LoadedCertificate};
use crate::profile::{ServerOptions, ServerProfile};

/// Where one certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSource {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CAs (PEM) that count as trusted roots for the chain check besides Debian's bundle.
    pub roots: Option<PathBuf>,
}

/// The contexts built from one load of all certificates.
struct ContextSet {
    default: SslContext,
    certificates: Vec<LoadedCertificate>,
    stamps: Vec<FileStamp>,
}

/// Certificates read and checked, not yet in use (`TlsAcceptor::install` puts them in place).
pub struct PendingCertificates(ContextSet);

impl PendingCertificates {
    /// What was loaded, default first.
    pub fn certificates(&self) -> &[LoadedCertificate] {
        &self.0.certificates
    }

    /// The chain a client asking for `host` (SNI) gets: the first certificate naming it,
    /// else the default.
    pub fn chain_for(&self, host: &str) -> &[openssl::x509::X509] {
        chain_for(&self.0.certificates, host)
    }
}

/// The first certificate naming `host` (as SNI selects), else the default.
fn chain_for<'a>(certs: &'a [LoadedCertificate], host: &str) -> &'a [openssl::x509::X509] {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let chosen = certs
        .iter()
        .find(|c| c.names.contains(&host))
        .or(certs.first());
    chosen.map(|c| c.chain.as_slice()).unwrap_or(&[])
}

/// What identifies a file version without reading it: length and modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp(Option<(u64, SystemTime)>);

impl FileStamp {
    fn of(path: &std::path::Path) -> Self {
        FileStamp(
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?))),
        )
    }
}

/// A TLS server endpoint for one profile.
pub struct TlsAcceptor {
    profile: ServerProfile,
    options: ServerOptions,
    sources: Vec<CertificateSource>,
    current: RwLock<Arc<ContextSet>>,
    challenges: Arc<TlsAlpn01Certificates>,
}

impl TlsAcceptor {
    /// Loads and checks every certificate; the first one is the default (no SNI or no match).
    pub fn new(profile: ServerProfile, sources: Vec<CertificateSource>) -> Result<Self, TlsError> {
        Self::with_options(profile, ServerOptions::default(), sources)
    }

    /// `new` with per-listener switches.
    pub fn with_options(
        profile: ServerProfile,
        options: ServerOptions,
        sources: Vec<CertificateSource>,
    ) -> Result<Self, TlsError> {
        let challenges = Arc::new(TlsAlpn01Certificates::default());
        let set = build_set(profile, options, &sources, &challenges)?;
        Ok(TlsAcceptor {
            profile,
            options,
            sources,
            current: RwLock::new(Arc::new(set)),
            challenges,
        })
    }

    /// The TLS-ALPN-01 challenge certificates this endpoint answers with (RFC 8737).
    pub fn acme_challenges(&self) -> Arc<TlsAlpn01Certificates> {
        self.challenges.clone()
    }

    pub fn profile(&self) -> ServerProfile {
        self.profile
    }

    pub fn options(&self) -> ServerOptions {
        self.options
    }

    /// The certificates in use now, default first.
    pub fn certificates(&self) -> Vec<LoadedCertificate> {
        self.snapshot().certificates.clone()
    }

    /// The chain served now to a client asking for `host` (SNI).
    pub fn served_chain(&self, host: &str) -> Vec<openssl::x509::X509> {
        chain_for(&self.snapshot().certificates, host).to_vec()
    }

    /// The default context, e.g. to describe the live profile.
    pub fn default_context(&self) -> SslContext {
        self.snapshot().default.clone()
    }

    fn snapshot(&self) -> Arc<ContextSet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads every certificate. On any error the old set stays in use and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.install(self.load()?);
        Ok(())
    }

    /// Reads and checks every certificate without using them yet.
    pub fn load(&self) -> Result<PendingCertificates, TlsError> {
        build_set(self.profile, self.options, &self.sources, &self.challenges)
            .map(PendingCertificates)
    }

    /// Puts loaded certificates in use; handshakes from now on get them.
    pub fn install(&self, pending: PendingCertificates) {
        let mut g = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *g = Arc::new(pending.0);
    }

    /// Whether any certificate or key file changed since the last (re)load.
    pub fn files_changed(&self) -> bool {
        let set = self.snapshot();
        stamps(&self.sources) != set.stamps
    }

    /// A connection object for one accepted socket, not yet handshaken.
    pub fn ssl(&self) -> Result<Ssl, TlsError> {
        Ssl::new(&self.snapshot().default).map_err(TlsError::openssl("create connection"))
    }

    /// `accept`, given up after `limit` (a client that opens a connection and says nothing
    /// must not hold it).
    pub async fn accept_within<S>(
        &self,
        stream: S,
        limit: std::time::Duration,
    ) -> Result<SslStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        tokio::time::timeout(limit, self.accept(stream))
            .await
            .unwrap_or_else(|_| {
                Err(TlsError::Handshake(format!(
                    "timed out after {} s",
                    limit.as_secs()
                )))
            })
    }

    /// Runs the server handshake on `stream`.
    pub async fn accept<S>(&self, stream: S) -> Result<SslStream<S>, TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut tls =
            SslStream::new(self.ssl()?, stream).map_err(TlsError::openssl("create stream"))?;
        std::pin::Pin::new(&mut tls)
            .accept()
            .await
            .map_err(|e| TlsError::Handshake(e.to_string()))?;
        Ok(tls)
    }
}

fn stamps(sources: &[CertificateSource]) -> Vec<FileStamp> {
    sources
        .iter()
        .flat_map(|s| [FileStamp::of(&s.cert), FileStamp::of(&s.key)])
        .collect()
}

fn build_set(
    profile: ServerProfile,
    options: ServerOptions,
    sources: &[CertificateSource],
    challenges: &Arc<TlsAlpn01Certificates>,
) -> Result<ContextSet, TlsError> {
    if sources.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    // Stamps first: a file that changes while we read it is read again at the next check.
    let stamps = stamps(sources);
    let certificates = sources
        .iter()
        .map(|s| LoadedCertificate::load_trusting(&s.cert, &s.key, s.roots.as_deref()))
        .collect::<Result<Vec<_>, CertificateError>>()?;
    let contexts = certificates
        .iter()
        .map(|c| context_for(profile, options, c))
        .collect::<Result<Vec<_>, _>>()?;
    // Name → context; the first certificate that names a host wins.
    let mut by_name: HashMap<String, SslContext> = HashMap::new();
    for (cert, ctx) in certificates.iter().zip(&contexts) {
        for name in &cert.names {
            by_name.entry(name.clone()).or_insert_with(|| ctx.clone());
        }
    }
    let mut builder = profile.context_builder(options)?;
    install(&mut builder, &certificates[0])?;
    let by_name = Arc::new(by_name);
    // The profile's own client-hello rule first (one callback per context), then TLS-ALPN-01.
    let rule = profile.client_hello_rule();
    let challenges = challenges.clone();
    builder.set_client_hello_callback(move |ssl, _alert| {
        rule(ssl)?;
        challenges.answer(ssl, profile, options);
        Ok(ClientHelloResponse::SUCCESS)
    });
    builder.set_servername_callback(move |ssl: &mut SslRef, _alert| {
        if let Some(name) = ssl
            .servername(NameType::HOST_NAME)
            .map(str::to_ascii_lowercase)
            && let Some(ctx) = by_name.get(&name)
            && !crate::acme_tls::answering(ssl)
        {
            // An unknown name is not an error: the default certificate answers (RFC 8461 §7.1).
            let _ = ssl.set_ssl_context(ctx);
        }
        Ok(())
    });
    Ok(ContextSet {
        default: builder.build(),
        certificates,
        stamps,
    })
}

fn context_for(
    profile: ServerProfile,
    options: ServerOptions,
    cert: &LoadedCertificate,
) -> Result<SslContext, TlsError> {
    let mut b = profile.context_builder(options)?;
    install(&mut b, cert)?;
    Ok(b.build())
}

fn install(
    b: &mut openssl::ssl::SslContextBuilder,
    cert: &LoadedCertificate,
) -> Result<(), TlsError> {
    b.set_certificate(cert.leaf())
        .map_err(TlsError::openssl("use certificate"))?;
    for extra in &cert.chain[1..] {
        b.add_extra_chain_cert(extra.clone())
            .map_err(TlsError::openssl("add chain certificate"))?;
    }
    b.set_private_key(&cert.key)
        .map_err(TlsError::openssl("use private key"))?;
    b.check_private_key()
        .map_err(TlsError::openssl("match private key and certificate"))?;
    Ok(())
}
