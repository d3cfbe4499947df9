//! One HTTPS request to the ACME server (RFC 8555 §6.1: HTTPS only), with the TLS client
//! profile and PKIX validation against Debian's CAs plus an optional bundle (a test or company
//! CA); the response headers ACME needs (Location, Replay-Nonce, Retry-After) and a capped body.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kurier_tls::{ClientTls, PeerCheck};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::AcmeError;

/// Directory objects, orders and certificate chains are small; anything bigger is not ACME.
const MAX_RESPONSE: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(30);

/// An `https://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, AcmeError> {
        let bad = || AcmeError::Protocol(format!("not an https URL: {url:?}"));
        let rest = url.strip_prefix("https://").ok_or_else(bad)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad());
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (h, rest) = v6.split_once(']').ok_or_else(bad)?;
                (h, rest.strip_prefix(':'))
            }
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => 443,
        };
        if host.is_empty() || path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(bad());
        }
        Ok(Url {
            host: host.to_ascii_lowercase(),
            port,
            path: path.to_string(),
        })
    }
}

pub struct HttpResponse {
    pub status: u16,
    pub location: Option<String>,
    pub nonce: Option<String>,
    /// Seconds (RFC 8555 §8.2 / RFC 7231 §7.1.3, the delay form only).
    pub retry_after: Option<u64>,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The HTTPS client of one ACME server.
#[derive(Clone)]
pub struct Https {
    tls: Arc<ClientTls>,
}

impl Https {
    pub fn new(tls: Arc<ClientTls>) -> Https {
        Https { tls }
    }

    /// `body: Some` is a POST with `application/jose+json` (RFC 8555 §6.2).
    pub async fn request(
        &self,
        method: &str,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, AcmeError> {
        tokio::time::timeout(TIMEOUT, self.exchange(method, url, body))
            .await
            .unwrap_or_else(|_| Err(AcmeError::Http(format!("{url}: no answer within 30 s"))))
    }

    async fn exchange(
        &self,
        method: &str,
        url: &str,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, AcmeError> {
        let u = Url::parse(url)?;
        let http = |e: &dyn std::fmt::Display| AcmeError::Http(format!("{url}: {e}"));
        let tcp = TcpStream::connect((u.host.as_str(), u.port))
            .await
            .map_err(|e| http(&e))?;
        let check = PeerCheck::Pkix {
            names: vec![u.host.clone()],
        };
        let ssl = self.tls.ssl(&u.host, &check).map_err(|e| http(&e))?;
        let mut stream = SslStream::new(ssl, tcp).map_err(|e| http(&e))?;
        if let Err(e) = std::pin::Pin::new(&mut stream).connect().await {
            let why = match kurier_tls::client::verdict(stream.ssl(), &check) {
                kurier_tls::PeerVerdict::Failed { detail, .. } => detail,
                _ => e.to_string(),
            };
            return Err(http(&why));
        }
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(&e))?;
        tokio::spawn(conn);
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(&u.path)
            .header(hyper::header::HOST, host_header(&u))
            .header(hyper::header::USER_AGENT, "Kurier");
        if body.is_some() {
            b = b.header(hyper::header::CONTENT_TYPE, "application/jose+json");
        }
        let request = b
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| http(&e))?;
        let response = sender.send_request(request).await.map_err(|e| http(&e))?;
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = response.status().as_u16();
        let location = header("location");
        let nonce = header("replay-nonce");
        let retry_after = header("retry-after").and_then(|v| v.trim().parse().ok());
        let content_type = header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let body = Limited::new(response.into_body(), MAX_RESPONSE)
            .collect()
            .await
            .map_err(|e| http(&format!("reading the response: {e}")))?
            .to_bytes()
            .to_vec();
        Ok(HttpResponse {
            status,
            location,
            nonce,
            retry_after,
            content_type,
            body,
        })
    }
}

fn host_header(u: &Url) -> String {
    let host = if u.host.contains(':') {
        format!("[{}]", u.host)
    } else {
        u.host.clone()
    };
    if u.port == 443 {
        host
    } else {
        format!("{host}:{}", u.port)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn https_urls_only() {
        let u = Url::parse("https://acme-v02.api.letsencrypt.org/directory").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("acme-v02.api.letsencrypt.org", 443, "/directory")
        );
        let u = Url::parse("https://Localhost:14000").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("localhost", 14000, "/")
        );
        let u = Url::parse("https://[::1]:14000/dir").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 14000));
        assert_eq!(host_header(&u), "[::1]:14000");
        for bad in [
            "http://ca.test/dir",
            "https://",
            "https://user@ca.test/",
            "https://ca.test:99999/",
            "https://ca.test/a b",
            "https://ca.test:/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }
}
