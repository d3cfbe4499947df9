//! An in-process IMAP server on implicit TLS over a fresh SQLite store, and a client for it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kurier_imap::{ImapListener, ImapServer};
use kurier_store::Store;
use openssl::ssl::{SslConnector, SslMethod};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The server, with `a@example.test` (password `pw-pw-pw`); literals take from `body_memory`.
pub async fn server(
    dir: &std::path::Path,
    ip: &str,
    body_memory: Arc<kurier_access::ByteBudget>,
) -> std::net::SocketAddr {
    let certs = kurier_tls::dev_ca::ensure(dir, &["localhost"]).unwrap();
    let tls = kurier_tls::TlsAcceptor::new(
        kurier_tls::ServerProfile::Strict,
        vec![kurier_tls::CertificateSource {
            cert: certs.server_cert,
            key: certs.server_key,
            roots: None,
        }],
    )
    .unwrap();
    let store = kurier_store::SqliteStore::open(&dir.join("kurier.db"))
        .await
        .unwrap();
    store.add_domain("example.test").await.unwrap();
    store
        .add_account("a@example.test", "pw-pw-pw", None)
        .await
        .unwrap();
    let server = Arc::new(ImapServer {
        store: Arc::new(store),
        tls: Arc::new(tls),
        throttle: Arc::new(Mutex::new(kurier_access::AuthThrottle::new(
            Duration::from_secs(60),
            10,
        ))),
        connections: kurier_access::ConnectionLimit::new(10),
        max_message_size: 1 << 20,
        login_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(1800),
        keepalive: Duration::from_secs(300),
        headers: kurier_imap::cache::HeaderCache::new(1 << 20),
        body_memory,
        training: None,
    });
    let listener = TcpListener::bind(format!("{ip}:0")).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(kurier_imap::serve(
        listener,
        ImapListener::ImplicitTls,
        server,
        std::future::pending(),
    ));
    addr
}

pub type Tls = BufReader<tokio_openssl::SslStream<TcpStream>>;

pub async fn connect(addr: std::net::SocketAddr, ca: &std::path::Path) -> Tls {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(ca).unwrap();
    let ssl = b
        .build()
        .configure()
        .unwrap()
        .into_ssl("localhost")
        .unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = tokio_openssl::SslStream::new(ssl, tcp).unwrap();
    std::pin::Pin::new(&mut s).connect().await.unwrap();
    let mut r = BufReader::new(s);
    assert!(line(&mut r).await.starts_with("* OK"));
    r
}

pub async fn line(r: &mut Tls) -> String {
    let mut l = String::new();
    r.read_line(&mut l).await.unwrap();
    l
}

pub async fn command(r: &mut Tls, tag: &str, text: &str) -> String {
    r.get_mut()
        .write_all(format!("{tag} {text}\r\n").as_bytes())
        .await
        .unwrap();
    let mut all = String::new();
    loop {
        let l = line(r).await;
        assert!(!l.is_empty(), "closed after {all}");
        all.push_str(&l);
        if l.starts_with(&format!("{tag} ")) {
            return all;
        }
    }
}
