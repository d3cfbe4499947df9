//! `kurier serve --dev` end to end: the built binary in a temp folder, real TLS clients.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use kurier_tls::probe::{ClientOffer, probe};
use openssl::ssl::SslVersion;
use support::{Server, addr, data_file, https_get, tls_connect};

#[test]
fn serve_dev_creates_its_data_and_serves_verified_https() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.1";
    let mut server = Server::dev(dir.path(), ip);
    let ca = data_file(dir.path(), "dev-ca.pem");
    assert!(ca.exists(), "the banner's CA file exists");
    let resp = https_get(addr(ip), &ca, "/");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("Kurier ") && resp.contains("mail.example.test"),
        "{resp}"
    );
    let resp = https_get(addr(ip), &ca, "/healthz");
    assert!(resp.ends_with("ok\n"), "{resp}");

    // The dev certificate carries both dev names and verifies against the dev CA.
    let offer = ClientOffer {
        server_name: Some("mail.example.test".into()),
        ca_file: Some(ca.clone()),
        ..Default::default()
    };
    let facts = probe(addr(ip), &offer).unwrap();
    assert_eq!(facts.version, "TLSv1.3");

    // Issue 18 item 5: TLSRPT both ways, in --dev too: the domain takes reports at tlsrpt@.
    let data = dir.path().join("data");
    let (code, records, err) = support::run(&[
        "dns",
        "example.test",
        "--dev",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        records.contains(
            "_smtp._tls.example.test. IN TXT ( \"v=TLSRPTv1; rua=mailto:tlsrpt@example.test\" )"
        ),
        "{records}"
    );

    server.signal(libc::SIGTERM);
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[test]
fn serve_dev_keeps_its_certificate_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.2";
    let pem = || std::fs::read(data_file(dir.path(), "dev-server.pem")).unwrap();
    let mut first = Server::dev(dir.path(), ip);
    let before = pem();
    first.signal(libc::SIGINT);
    assert!(first.wait_exit(Duration::from_secs(20)).unwrap().success());
    let _second = Server::dev(dir.path(), ip);
    assert_eq!(pem(), before, "a restart reuses the dev CA and certificate");
    let ca = data_file(dir.path(), "dev-ca.pem");
    assert!(https_get(addr(ip), &ca, "/").starts_with("HTTP/1.1 200"));
}

/// The strict profile rules, checked on the running binary's HTTPS port (the full set runs
/// against the listener in the tls crate's tests).
#[test]
fn tls_rules_hold_on_the_dev_https_listener() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.3";
    let _server = Server::dev(dir.path(), ip);
    let a = addr(ip);
    let legacy = ClientOffer {
        min_version: Some(SslVersion::TLS1_1),
        max_version: Some(SslVersion::TLS1_1),
        tls12_ciphers: Some("ALL:@SECLEVEL=0".into()),
        security_level: Some(0),
        ..Default::default()
    };
    assert!(probe(a, &legacy).is_err(), "TLS-1: TLS 1.1 refused");
    let x25519 = ClientOffer {
        groups: Some("X25519".into()),
        ..Default::default()
    };
    assert!(probe(a, &x25519).is_err(), "TLS-2: X25519-only refused");
    let chacha = ClientOffer {
        min_version: Some(SslVersion::TLS1_3),
        tls13_suites: Some("TLS_CHACHA20_POLY1305_SHA256".into()),
        ..Default::default()
    };
    assert!(probe(a, &chacha).is_err(), "TLS-2: ChaCha20-only refused");
    let bp = ClientOffer {
        min_version: Some(SslVersion::TLS1_3),
        groups: Some("brainpoolP256r1tls13".into()),
        ..Default::default()
    };
    assert_eq!(
        probe(a, &bp).unwrap().group.as_deref(),
        Some("brainpoolP256r1tls13"),
        "TLS-5"
    );
    let bp12 = ClientOffer {
        max_version: Some(SslVersion::TLS1_2),
        groups: Some("P-256:brainpoolP256r1".into()),
        ..Default::default()
    };
    let f = probe(a, &bp12).unwrap();
    assert_eq!(
        f.group.as_deref(),
        Some("brainpoolP256r1"),
        "TLS-5: brainpool preferred in TLS 1.2"
    );
    assert!(
        !f.server_messages
            .contains(&kurier_tls::probe::HS_CERTIFICATE_REQUEST),
        "TLS-10"
    );
}

#[test]
fn graceful_shutdown_finishes_an_open_request_and_refuses_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.4";
    let mut server = Server::dev(dir.path(), ip);
    let ca = data_file(dir.path(), "dev-ca.pem");
    // A request whose headers are half sent when the signal comes.
    let mut open = tls_connect(addr(ip), "localhost", &ca);
    open.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    open.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGTERM);
    server.wait_for_log("shutting down");
    // New connections are refused at once.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect_timeout(&addr(ip), Duration::from_secs(1)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "waits for the open request"
    );
    // The open request completes and gets its answer.
    open.write_all(b"\r\n").unwrap();
    let mut resp = String::new();
    let _ = open.read_to_string(&mut resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp:?}");
    let status = server
        .wait_exit(Duration::from_secs(20))
        .expect("exits once the session is done");
    assert!(status.success());
}

#[test]
fn graceful_shutdown_closes_stalled_sessions_at_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.5";
    let mut server = Server::dev(dir.path(), ip);
    let ca = data_file(dir.path(), "dev-ca.pem");
    let mut stalled = tls_connect(addr(ip), "localhost", &ca);
    stalled.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t0 = std::time::Instant::now();
    server.signal(libc::SIGTERM);
    // --dev sets shutdown_grace_secs = 5; the process must not hang on the stalled client.
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("exits at the deadline");
    assert!(status.success());
    assert!(
        t0.elapsed() >= Duration::from_secs(4),
        "it waited for the session first"
    );
    assert!(server.stderr().contains("closed"), "{}", server.stderr());
}

#[test]
fn json_log_format_prints_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(
        &[
            "--log-format",
            "json",
            "serve",
            "--dev",
            "--data",
            data.to_str().unwrap(),
            "--listen-ip",
            "127.0.10.6",
        ],
        dir.path(),
    );
    server.wait_for_stdout("ready.");
    server.wait_for_log("Kurier started");
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(20)).unwrap();
    let log = server.stderr();
    let mut n = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v.get("level").is_some() && v.get("message").is_some(),
            "{line}"
        );
        n += 1;
    }
    assert!(n >= 3, "{log}");
}
