//! # kurier-web — the HTTPS listener
//!
//! Owns Kurier's HTTPS side (port 443, `--dev`: 8443): TLS with the `strict` profile (TR-03108
//! TLS-1/TLS-2 apply to HTTPS as to the MUA ports), HTTP/1.1 via hyper, and the routing of
//! requests to handlers: a status page, `/healthz`, and our MTA-STS policy at
//! `mta-sts.<domain>/.well-known/mta-sts.txt` (RFC 8461 §3.3), the answers of Thunderbird's
//! autoconfig and Outlook's Autodiscover (`clientconfig`, MUA-5, MUA-6), and `/metrics` for
//! loopback clients; the web administration (`admin`: pages at `/admin/`, JSON at `/api/v1/`).
//! TLSRPT reports reach us by mail (RFC 8460 §3), not here. Plain HTTP (port 80) only redirects
//! to HTTPS (TR-03108 WEB-1), the administration included.
//!
//! Must not: hold business logic the CLI cannot reach; handlers call into the library crates.

#![forbid(unsafe_code)]

pub mod admin;
pub mod clientconfig;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use kurier_tls::TlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::watch;

use http_body_util::BodyExt;
pub use routes::{MetricsSource, Site, StsHosting, route};

/// How long a client may take for the TLS handshake and for the request headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest request body read (Autodiscover requests are a few hundred bytes).
const MAX_REQUEST_BODY: usize = 16 * 1024;

/// Serves HTTPS on `listener` until `shutdown` completes; then stops accepting, lets every open
/// connection finish its current request, and returns when all are closed. The caller bounds
/// that wait (dropping this future closes whatever is still open).
pub async fn serve(
    listener: TcpListener,
    acceptor: Arc<TlsAcceptor>,
    site: Arc<Site>,
    shutdown: impl Future<Output = ()>,
) {
    kurier_access::serve_connections(listener, "HTTPS", shutdown, move |tcp, peer, stop| {
        connection(tcp, peer, acceptor.clone(), site.clone(), stop)
    })
    .await;
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: Arc<TlsAcceptor>,
    site: Arc<Site>,
    mut stop: watch::Receiver<bool>,
) {
    let tls = match acceptor.accept_within(tcp, HANDSHAKE_TIMEOUT).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "HTTPS TLS handshake failed");
            return;
        }
    };
    if kurier_tls::is_acme_tls(tls.ssl()) {
        // A TLS-ALPN-01 validation: the handshake was all of it (RFC 8737 §3).
        tracing::info!(%peer, name = tls.ssl().servername(openssl::ssl::NameType::HOST_NAME).unwrap_or("-"),
            "answered a TLS-ALPN-01 challenge (ACME)");
        return;
    }
    tracing::debug!(
        %peer,
        version = tls.ssl().version_str(),
        cipher = tls.ssl().current_cipher().map(|c| c.name()).unwrap_or("-"),
        group = kurier_tls::negotiated_group(tls.ssl()).as_deref().unwrap_or("-"),
        "HTTPS TLS established"
    );
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let site = site.clone();
        async move {
            // Bodies are read for the methods that carry one, at most 16 KiB (Autodiscover
            // requests, the administration's forms and JSON).
            let (parts, body) = req.into_parts();
            let read = if matches!(
                parts.method,
                hyper::Method::POST
                    | hyper::Method::PUT
                    | hyper::Method::PATCH
                    | hyper::Method::DELETE
            ) {
                match http_body_util::Limited::new(body, MAX_REQUEST_BODY)
                    .collect()
                    .await
                {
                    Ok(b) => admin::Body::Read(b.to_bytes()),
                    Err(_) => admin::Body::TooLarge,
                }
            } else {
                admin::Body::Read(hyper::body::Bytes::new())
            };
            let req = hyper::Request::from_parts(parts, ());
            if let Some(a) = &site.admin
                && admin::is_admin_path(req.uri().path())
            {
                return Ok::<_, std::convert::Infallible>(a.handle(&req, &read, peer.ip()).await);
            }
            let bytes = match read {
                admin::Body::Read(b) => b,
                admin::Body::TooLarge => hyper::body::Bytes::new(),
            };
            Ok::<_, std::convert::Infallible>(route(&site, &req, &bytes, peer.ip().is_loopback()))
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTPS connection ended with an error");
    }
}

/// Plain HTTP: every request is answered with a permanent redirect to the same path over HTTPS
/// on `https_port` (TR-03108 WEB-1). Nothing else is served in clear.
pub async fn serve_redirect(
    listener: TcpListener,
    https_port: u16,
    site: Arc<Site>,
    shutdown: impl Future<Output = ()>,
) {
    // Redirects are quick; whatever is still open at shutdown is dropped with the set.
    kurier_access::accept_until(listener, shutdown, "HTTP", move |tcp, _| {
        let site = site.clone();
        async move {
            let service = service_fn(move |req| {
                let site = site.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(routes::redirect(&site, &req, https_port))
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        }
    })
    .await;
}
