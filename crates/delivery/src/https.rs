//! One HTTPS exchange as outbound policy work needs it (MTA-STS fetches, TLSRPT uploads): the
//! TLS client profile with SNI and PKIX validation, optionally refusing wildcard certificates
//! (TR-03108 STS-6), HTTP/1.1 without redirects, a cap on the response size. Errors come as an
//! RFC 8460 result type (`sts-webpki-invalid` for certificate problems, `sts-policy-fetch-error`
//! otherwise) and a detail.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use kurier_dns::Resolver;
use kurier_tls::{ClientTls, PeerCheck, ResultType};

use crate::revocation::RevocationChecker;
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

/// What to send.
pub struct Request<'a> {
    pub host: &'a str,
    pub port: u16,
    pub method: &'a str,
    pub path: &'a str,
    pub content_type: Option<&'a str>,
    pub body: Vec<u8>,
    pub reject_wildcard: bool,
    pub max_response: usize,
    /// Check the server's chain for revocation (CERT-4).
    pub revocation: Option<&'a RevocationChecker>,
}

pub type HttpsError = (ResultType, String);

pub async fn exchange(
    resolver: &Resolver,
    tls: &ClientTls,
    req: Request<'_>,
) -> Result<Response, HttpsError> {
    let host = req.host;
    let fetch_error = |d: String| (ResultType::StsPolicyFetchError, d);
    let webpki = |d: String| (ResultType::StsWebpkiInvalid, d);
    let addrs = resolver
        .addresses(host)
        .await
        .map_err(|e| fetch_error(e.to_string()))?;
    let ip = *addrs
        .records
        .first()
        .ok_or_else(|| fetch_error(format!("{host} has no address")))?;
    let tcp = TcpStream::connect(SocketAddr::new(ip, req.port))
        .await
        .map_err(|e| fetch_error(format!("cannot connect to {host}: {e}")))?;
    let check = PeerCheck::Pkix {
        names: vec![host.to_string()],
    };
    let ssl = tls.ssl(host, &check).map_err(|e| webpki(e.to_string()))?;
    let mut stream = SslStream::new(ssl, tcp).map_err(|e| webpki(e.to_string()))?;
    if let Err(e) = std::pin::Pin::new(&mut stream).connect().await {
        let why = match kurier_tls::client::verdict(stream.ssl(), &check) {
            kurier_tls::PeerVerdict::Failed { detail, .. } => detail,
            _ => e.to_string(),
        };
        return Err(webpki(format!("{host}: {why}")));
    }
    if req.reject_wildcard && kurier_tls::client::peer_has_wildcard_name(stream.ssl()) {
        return Err(webpki(format!(
            "{host} presents a wildcard certificate (TR-03108 rejects those here)"
        )));
    }
    if let Some(r) = req.revocation {
        let chain: Vec<openssl::x509::X509> = stream
            .ssl()
            .peer_cert_chain()
            .map(|c| c.iter().map(|x| x.to_owned()).collect())
            .unwrap_or_default();
        r.check(&chain).await.map_err(webpki)?;
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fetch_error(e.to_string()))?;
    tokio::spawn(conn);
    let mut builder = hyper::Request::builder()
        .method(req.method)
        .uri(req.path)
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "Kurier");
    if let Some(ct) = req.content_type {
        builder = builder.header(hyper::header::CONTENT_TYPE, ct);
    }
    let request = builder
        .body(Full::new(Bytes::from(req.body)))
        .map_err(|e| fetch_error(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| fetch_error(e.to_string()))?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = Limited::new(response.into_body(), req.max_response)
        .collect()
        .await
        .map_err(|e| fetch_error(format!("reading the response: {e}")))?
        .to_bytes();
    Ok(Response {
        status,
        content_type,
        body,
    })
}
