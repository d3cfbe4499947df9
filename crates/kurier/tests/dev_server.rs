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

/// What one listener accepts, offer by offer (issue 19: the ICS as a scan sees it).
#[derive(Debug, Default, PartialEq, Eq)]
struct Accepted {
    versions: std::collections::BTreeSet<String>,
    tls12: std::collections::BTreeSet<String>,
    tls12_without_etm: std::collections::BTreeSet<String>,
    tls13: std::collections::BTreeSet<String>,
    tls13_groups: std::collections::BTreeSet<String>,
    tls13_sigalgs: std::collections::BTreeSet<String>,
    /// TLS 1.2: group offered together with the certificate's curve P-256 (RFC 8422 §5.1 ties
    /// the certificate to supported_groups) → the group the server chose.
    tls12_groups: std::collections::BTreeMap<String, String>,
    tls12_sigalgs: std::collections::BTreeSet<String>,
}

/// Candidates for group and signature enumeration: everything the profiles know and more.
fn candidate_groups() -> Vec<&'static str> {
    use kurier_tls::profile;
    profile::GROUPS
        .iter()
        .chain(profile::LEGACY_GROUPS)
        .chain(profile::HYBRID_GROUPS)
        .chain(&["X25519MLKEM768", "ffdhe2048", "ffdhe8192"])
        .copied()
        .collect()
}

fn candidate_sigalgs() -> Vec<&'static str> {
    use kurier_tls::profile;
    profile::SIGALGS
        .iter()
        .chain(profile::LEGACY_SIGALGS)
        .chain(&["ed25519", "ed448"])
        .copied()
        .collect()
}

/// OpenSSL's name of a negotiated group in the profile's spelling.
fn group_name(g: &str) -> String {
    match g {
        "secp256r1" | "prime256v1" => "P-256".into(),
        "secp384r1" => "P-384".into(),
        "secp521r1" => "P-521".into(),
        "x25519" => "X25519".into(),
        "x448" => "X448".into(),
        other => other.into(),
    }
}

/// Offers every candidate alone (a version, a suite with and without Encrypt-then-MAC, a group,
/// a signature algorithm in TLS 1.3 and in TLS 1.2) and records what the listener accepted.
fn enumerate(ep: &kurier_audit::tls_scan::Endpoint) -> Accepted {
    use kurier_audit::tls_scan::{handshake, only_version as only};
    use kurier_tls::profile;
    let mut a = Accepted::default();
    for (v, name) in [
        (SslVersion::TLS1_3, "TLSv1.3"),
        (SslVersion::TLS1_2, "TLSv1.2"),
        (SslVersion::TLS1_1, "TLSv1.1"),
        (SslVersion::TLS1, "TLSv1"),
    ] {
        if handshake(ep, only(v)).is_ok() {
            a.versions.insert(name.into());
        }
    }
    let others = [
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "ECDHE-ECDSA-AES128-CCM8",
        "DHE-RSA-AES128-GCM-SHA256",
        "DES-CBC3-SHA",
    ];
    let tls12 = profile::TLS12_SUITES
        .iter()
        .chain(profile::LEGACY_TLS12_SUITES)
        .chain(&others);
    for name in tls12 {
        for etm in [true, false] {
            let offer = ClientOffer {
                tls12_ciphers: Some(format!("{name}:@SECLEVEL=0")),
                no_encrypt_then_mac: !etm,
                ..only(SslVersion::TLS1_2)
            };
            if let Ok(f) = handshake(ep, offer) {
                let set = if etm {
                    &mut a.tls12
                } else {
                    &mut a.tls12_without_etm
                };
                set.insert(f.cipher);
            }
        }
    }
    for name in [
        "TLS_AES_128_GCM_SHA256",
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_128_CCM_SHA256",
        "TLS_AES_128_CCM_8_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ] {
        let offer = ClientOffer {
            tls13_suites: Some(name.into()),
            ..only(SslVersion::TLS1_3)
        };
        if handshake(ep, offer).is_ok() {
            a.tls13.insert(name.into());
        }
    }
    for g in candidate_groups() {
        let offer = ClientOffer {
            groups: Some(g.to_string()),
            ..only(SslVersion::TLS1_3)
        };
        if handshake(ep, offer).is_ok() {
            a.tls13_groups.insert(g.to_string());
        }
        let offer = ClientOffer {
            groups: Some(format!("{g}:P-256")),
            ..only(SslVersion::TLS1_2)
        };
        if let Ok(f) = handshake(ep, offer) {
            a.tls12_groups
                .insert(g.to_string(), group_name(&f.group.unwrap_or_default()));
        }
    }
    for s in candidate_sigalgs() {
        for (v, set) in [
            (SslVersion::TLS1_3, &mut a.tls13_sigalgs),
            (SslVersion::TLS1_2, &mut a.tls12_sigalgs),
        ] {
            let offer = ClientOffer {
                sigalgs: Some(s.to_string()),
                ..only(v)
            };
            if handshake(ep, offer).is_ok() {
                set.insert(s.to_string());
            }
        }
    }
    a
}

/// What the ICS entry `ics` (from `kurier tls-profile --json`) declares, in the same shape:
/// suites that the configured certificates can authenticate, TLS 1.3's groups (TLS 1.2-only
/// brainpool curves are not TLS 1.3 groups, RFC 8734), the certificates' TLS 1.3 signatures.
fn declared(ics: &serde_json::Value) -> Accepted {
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| x["name"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let keys: Vec<String> = ics["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap().to_string())
        .collect();
    let authenticated = |suite: &String| {
        keys.iter().any(|k| {
            if k.starts_with("ECDSA") {
                suite.contains("_ECDSA_")
            } else {
                suite.contains("_RSA_")
            }
        })
    };
    let versions = names(&ics["versions"]);
    let tls12_only_groups = ["brainpoolP256r1", "brainpoolP384r1", "brainpoolP512r1"];
    Accepted {
        versions: versions.into_iter().collect(),
        tls12: names(&ics["tls12_suites"])
            .into_iter()
            .filter(authenticated)
            .collect(),
        tls12_without_etm: names(&ics["tls12_suites_without_etm"])
            .into_iter()
            .filter(authenticated)
            .collect(),
        tls13: names(&ics["tls13_suites"]).into_iter().collect(),
        tls13_groups: names(&ics["groups"])
            .into_iter()
            .filter(|g| !tls12_only_groups.contains(&g.as_str()))
            .collect(),
        tls13_sigalgs: ics["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| names(&c["tls13_signature_algorithms"]))
            .collect(),
        tls12_sigalgs: ics["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| names(&c["tls12_signature_algorithms"]))
            .collect(),
        // Server preference: the group chosen is whichever of the two comes first in the
        // declared order, among the groups TLS 1.2 can use for ECDHE (not the TLS 1.3-only
        // brainpool code points, hybrids or, without DHE suites, ffdhe).
        tls12_groups: {
            let order = names(&ics["groups"]);
            let ecdhe_in_tls12 = |g: &str| {
                order.iter().any(|o| o == g)
                    && !g.ends_with("tls13")
                    && !g.starts_with("ffdhe")
                    && !g.contains("MLKEM")
            };
            let rank = |g: &str| order.iter().position(|o| o == g).unwrap_or(usize::MAX);
            candidate_groups()
                .into_iter()
                .map(|g| {
                    let chosen = if ecdhe_in_tls12(g) && rank(g) < rank("P-256") {
                        g
                    } else {
                        "P-256"
                    };
                    (g.to_string(), chosen.to_string())
                })
                .collect()
        },
    }
}

/// The listeners of an ICS entry's channels, e.g. `IMAP (STARTTLS) 127.0.10.9:1143`.
fn endpoints(ics: &serde_json::Value) -> Vec<kurier_audit::tls_scan::Endpoint> {
    use kurier_audit::tls_scan::{Endpoint, Start};
    ics["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let c = c.as_str().unwrap();
            let start = match c {
                c if c.contains("STARTTLS")
                    && (c.starts_with("SMTP") || c.starts_with("submission")) =>
                {
                    Start::Smtp
                }
                c if c.contains("STARTTLS") && c.starts_with("IMAP") => Start::Imap,
                c if c.contains("STARTTLS") && c.starts_with("POP3") => Start::Pop3,
                _ => Start::Implicit,
            };
            Endpoint {
                host: "mail.example.test".into(),
                addr: c.rsplit(' ').next().unwrap().parse().unwrap(),
                start,
                legacy_allowed: true,
            }
        })
        .collect()
}

fn ics_of(args: &[&str]) -> serde_json::Value {
    let (code, out, err) = support::run(args);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Issue 19 (TR-03108-P §4.5, DNS-5): on every listener, what a scan finds offer by offer —
/// versions, TLS 1.2 suites with and without Encrypt-then-MAC, TLS 1.3 suites, groups and
/// signature algorithms — is exactly what `kurier tls-profile --json` declares for it: the strict
/// profile on the eight dev listeners, and the mta-legacy profile (with hybrid groups) on an MX.
#[test]
fn dns5_a_scan_of_every_listener_finds_exactly_the_ics() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.9";
    let _server = Server::dev(dir.path(), ip);
    let data = dir.path().join("data");
    let v = ics_of(&[
        "tls-profile",
        "--dev",
        "--data",
        data.to_str().unwrap(),
        "--listen-ip",
        ip,
        "--json",
    ]);
    let strict = &v["tls"][0];
    assert_eq!(strict["profile"], "strict");
    let eps = endpoints(strict);
    assert_eq!(eps.len(), 8, "{strict}");
    let want = declared(strict);
    assert!(
        !want.tls12_without_etm.is_empty() && want.tls12_without_etm.len() < want.tls12.len(),
        "{want:?}"
    );
    assert_eq!(want.tls13_sigalgs.len(), 1, "{want:?}");
    for ep in &eps {
        assert_eq!(enumerate(ep), want, "{:?}", ep.addr);
    }

    // Port 25 on the opt-in legacy profile, with hybrid groups on every listener.
    let legacy_dir = tempfile::tempdir().unwrap();
    let legacy_ip = "127.0.10.10";
    let config = support::configured(legacy_dir.path(), legacy_ip, "", "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[web]",
        "[tls]\nmta_legacy = true\nhybrid_groups = true\n[web]",
    );
    std::fs::write(&config, text).unwrap();
    let _legacy = Server::configured(legacy_dir.path(), &config);
    let v = ics_of(&[
        "tls-profile",
        "--config",
        config.to_str().unwrap(),
        "--json",
    ]);
    for ics in v["tls"].as_array().unwrap().iter().take(2) {
        let want = declared(ics);
        assert!(want.tls13_groups.contains("SecP256r1MLKEM768"), "{want:?}");
        if ics["profile"] == "mta-legacy" {
            assert!(want.versions.contains("TLSv1") && want.tls12 == want.tls12_without_etm);
        }
        let eps = endpoints(ics);
        assert!(!eps.is_empty(), "{ics}");
        // One listener of each entry is enough here; the strict ones were all scanned above.
        assert_eq!(enumerate(&eps[eps.len() - 1]), want, "{}", ics["profile"]);
    }
}

/// Issue 21 item 5 (STS-2, MUA-5, MUA-6): the dev certificate names what `kurier dns` tells an
/// operator to serve, so curl, trusting only the dev CA, fetches the MTA-STS policy, both
/// Thunderbird autoconfig URLs and Outlook's Autodiscover — verified, by name.
#[test]
fn sts2_mua5_dev_certificate_serves_mta_sts_autoconfig_and_autodiscover() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.86";
    let _server = Server::dev(dir.path(), ip);
    let ca = data_file(dir.path(), "dev-ca.pem");
    let curl =
        |host: &str, path: &str, post: Option<&str>| support::curl(&ca, host, 8443, ip, path, post);
    let policy = curl("mta-sts.example.test", "/.well-known/mta-sts.txt", None);
    assert!(
        policy.starts_with("version: STSv1\r\n") && policy.contains("mx: mail.example.test"),
        "{policy}"
    );
    for (host, path) in [
        (
            "autoconfig.example.test",
            "/mail/config-v1.1.xml?emailaddress=demo@example.test",
        ),
        (
            "example.test",
            "/.well-known/autoconfig/mail/config-v1.1.xml",
        ),
    ] {
        let xml = curl(host, path, None);
        assert!(
            xml.contains("<incomingServer type=\"imap\">") && xml.contains("mail.example.test"),
            "{host}: {xml}"
        );
    }
    let request = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>demo@example.test</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>";
    let xml = curl(
        "autodiscover.example.test",
        "/autodiscover/autodiscover.xml",
        Some(request),
    );
    assert!(
        xml.contains("<Type>IMAP</Type>") && xml.contains("mail.example.test"),
        "{xml}"
    );
}
