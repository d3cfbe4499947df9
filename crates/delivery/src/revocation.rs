//! Revocation of PKIX-checked certificates (TR-03108 CERT-4, TR-03116-4 §6.1.3; RFC 5280 §6.3):
//! for each certificate of a verified chain that names an `http:` CRL distribution point, the
//! CRL is fetched (size- and time-capped, cached until its nextUpdate, at most a day), its
//! signature checked against the issuer, and the certificate looked up in it. A revoked
//! certificate fails the check. A CRL that cannot be had is logged and not held against the
//! peer (soft fail, as browsers and MTAs do): otherwise one unreachable CA server would stop
//! mail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kurier_dns::Resolver;
use openssl::x509::{CrlStatus, X509, X509Crl};
use tokio::net::TcpStream;

const MAX_CRL_BYTES: usize = 4 * 1024 * 1024;
const MAX_CACHE: Duration = Duration::from_secs(86_400);

pub struct RevocationChecker {
    resolver: Resolver,
    timeout: Duration,
    /// URL → (until when, DER).
    cache: Mutex<HashMap<String, (Instant, Vec<u8>)>>,
}

impl RevocationChecker {
    pub fn new(resolver: Resolver, timeout: Duration) -> Self {
        RevocationChecker {
            resolver,
            timeout,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// `chain`: the peer's chain, leaf first, each followed by its issuer. `Err` names the
    /// revoked certificate.
    pub async fn check(&self, chain: &[X509]) -> Result<(), String> {
        for pair in chain.windows(2) {
            let (cert, issuer) = (&pair[0], &pair[1]);
            for url in crl_urls(cert) {
                let crl = match self.crl(&url).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::info!(%url, error = %e, "no CRL; revocation not checked for this certificate");
                        continue;
                    }
                };
                let Ok(key) = issuer.public_key() else {
                    continue;
                };
                if !crl.verify(&key).unwrap_or(false) {
                    tracing::warn!(%url, "a CRL with a bad signature was ignored");
                    continue;
                }
                if let CrlStatus::Revoked(_) = crl.get_by_cert(cert) {
                    let subject = cert
                        .subject_name()
                        .entries()
                        .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(format!(
                        "the certificate of {subject} has been revoked ({url})"
                    ));
                }
            }
        }
        Ok(())
    }

    async fn crl(&self, url: &str) -> Result<X509Crl, String> {
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(url).cloned())
            .filter(|(until, _)| *until > Instant::now());
        let der = match cached {
            Some((_, der)) => der,
            None => {
                let der = tokio::time::timeout(self.timeout, self.fetch(url))
                    .await
                    .map_err(|_| format!("no answer within {:?}", self.timeout))??;
                let crl = parse(&der)?;
                let lifetime = crl
                    .next_update()
                    .and_then(|n| openssl::asn1::Asn1Time::days_from_now(0).ok()?.diff(n).ok())
                    .map(|d| {
                        Duration::from_secs((d.days.max(0) as u64) * 86_400 + d.secs.max(0) as u64)
                    })
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_CACHE);
                if let Ok(mut c) = self.cache.lock() {
                    if c.len() > 1000 {
                        c.clear();
                    }
                    c.insert(url.to_string(), (Instant::now() + lifetime, der.clone()));
                }
                der
            }
        };
        parse(&der)
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http: CRLs are fetched")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "bad port")?),
            None => (authority, 80),
        };
        let ip = match host.parse() {
            Ok(ip) => ip,
            Err(_) => *self
                .resolver
                .addresses(host)
                .await
                .map_err(|e| e.to_string())?
                .records
                .first()
                .ok_or_else(|| format!("{host} has no address"))?,
        };
        let tcp = TcpStream::connect(SocketAddr::new(ip, port))
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, host)
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        if response.status() != hyper::StatusCode::OK {
            return Err(format!("{url} answered {}", response.status()));
        }
        Ok(Limited::new(response.into_body(), MAX_CRL_BYTES)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec())
    }
}

fn parse(bytes: &[u8]) -> Result<X509Crl, String> {
    X509Crl::from_der(bytes)
        .or_else(|_| X509Crl::from_pem(bytes))
        .map_err(|_| "not a CRL".to_string())
}

/// The `http:` URIs of the certificate's CRL distribution points.
fn crl_urls(cert: &X509) -> Vec<String> {
    let Some(points) = cert.crl_distribution_points() else {
        return Vec::new();
    };
    points
        .iter()
        .filter_map(|p| p.distpoint())
        .filter_map(|d| d.fullname())
        .flat_map(|names| {
            names
                .iter()
                .filter_map(|n| n.uri().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .filter(|u| u.starts_with("http://"))
        .collect()
}
