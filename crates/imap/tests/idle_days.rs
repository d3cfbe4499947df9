//! TR-03108 TLS-8: no cap on a TLS session's lifetime. An IMAP IDLE session over implicit TLS
//! stays open across 49 hours of (paused, auto-advancing) tokio time, hears its keepalives, and
//! ends only when the client says DONE — while the 30-minute autologout still applies outside
//! IDLE.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kurier_imap::{ImapListener, ImapServer};
use kurier_store::Store;
use openssl::ssl::{SslConnector, SslMethod};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

async fn server(dir: &std::path::Path, ip: &str) -> std::net::SocketAddr {
    let certs = kurier_tls::dev_ca::ensure(dir, &["localhost"]).unwrap();
    let tls = kurier_tls::TlsAcceptor::new(
        kurier_tls::ServerProfile::Strict,
        vec![kurier_tls::CertificateSource {
            cert: certs.server_cert,
            key: certs.server_key,
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

type Tls = BufReader<tokio_openssl::SslStream<TcpStream>>;

async fn connect(addr: std::net::SocketAddr, ca: &std::path::Path) -> Tls {
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

async fn line(r: &mut Tls) -> String {
    let mut l = String::new();
    r.read_line(&mut l).await.unwrap();
    l
}

async fn command(r: &mut Tls, tag: &str, text: &str) -> String {
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

#[tokio::test(start_paused = true)]
async fn tls8_an_idle_session_outlives_48_hours() {
    let dir = tempfile::tempdir().unwrap();
    let addr = server(dir.path(), "127.0.40.20").await;
    let ca = dir.path().join(kurier_tls::dev_ca::CA_CERT_FILE);
    let mut c = connect(addr, &ca).await;
    assert!(
        command(&mut c, "a", "LOGIN a@example.test pw-pw-pw")
            .await
            .contains("a OK")
    );
    assert!(command(&mut c, "b", "SELECT INBOX").await.contains("b OK"));
    c.get_mut().write_all(b"c IDLE\r\n").await.unwrap();
    assert!(line(&mut c).await.starts_with("+ "));
    tokio::time::sleep(Duration::from_secs(49 * 3600)).await;
    c.get_mut().write_all(b"DONE\r\n").await.unwrap();
    let mut keepalives = 0;
    loop {
        let l = line(&mut c).await;
        if l.starts_with("* OK Still here") {
            keepalives += 1;
            continue;
        }
        assert!(l.starts_with("c OK IDLE terminated"), "{l}");
        break;
    }
    assert!(keepalives >= 49 * 12 - 1, "{keepalives} keepalives in 49 h");
    assert!(command(&mut c, "d", "NOOP").await.contains("d OK"));

    // Outside IDLE the RFC 9051 §5.4 autologout (here 30 minutes) applies.
    tokio::time::sleep(Duration::from_secs(1801)).await;
    assert!(line(&mut c).await.starts_with("* BYE Autologout"));
}
