//! Handshakes against a running loopback listener that prove each rule of the strict server
//! profile (TR-03108 TLS-1 … TLS-10) and the opt-in mta-legacy profile (TLS-9).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::net::SocketAddr;

use kurier_tls::ServerProfile;
use kurier_tls::probe::{
    ClientOffer, EXT_ENCRYPT_THEN_MAC, EXT_EXTENDED_MASTER_SECRET, HS_CERTIFICATE_REQUEST,
    HS_NEW_SESSION_TICKET, HandshakeFacts, Renegotiation, probe,
};
use openssl::ssl::SslVersion;
use support::TempDir;

async fn run(addr: SocketAddr, offer: ClientOffer) -> Result<HandshakeFacts, kurier_tls::TlsError> {
    tokio::task::spawn_blocking(move || probe(addr, &offer))
        .await
        .unwrap()
}

fn tls12(ciphers: &str) -> ClientOffer {
    ClientOffer {
        max_version: Some(SslVersion::TLS1_2),
        tls12_ciphers: Some(ciphers.into()),
        ..Default::default()
    }
}

fn tls13(suites: &str) -> ClientOffer {
    ClientOffer {
        min_version: Some(SslVersion::TLS1_3),
        tls13_suites: Some(suites.into()),
        ..Default::default()
    }
}

async fn strict() -> (SocketAddr, TempDir) {
    let dir = TempDir::new("strict");
    let (addr, _, _) = support::strict_server(&dir.0, ServerProfile::Strict).await;
    (addr, dir)
}

#[tokio::test]
async fn tls1_rule_tls_1_1_and_1_0_are_refused_tls_1_2_and_1_3_work() {
    let (addr, _dir) = strict().await;
    for v in [SslVersion::TLS1_1, SslVersion::TLS1] {
        let offer = ClientOffer {
            min_version: Some(v),
            max_version: Some(v),
            tls12_ciphers: Some("ALL:@SECLEVEL=0".into()),
            security_level: Some(0),
            ..Default::default()
        };
        assert!(run(addr, offer).await.is_err(), "{v:?} must be refused");
    }
    let f = run(addr, tls12("ALL")).await.unwrap();
    assert_eq!(f.version, "TLSv1.2");
    let f = run(addr, ClientOffer::default()).await.unwrap();
    assert_eq!(f.version, "TLSv1.3", "TLS 1.3 is preferred");
}

#[tokio::test]
async fn tls2_rule_x25519_only_client_gets_no_handshake() {
    let (addr, _dir) = strict().await;
    for max in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
        let offer = ClientOffer {
            max_version: Some(max),
            groups: Some("X25519".into()),
            ..Default::default()
        };
        assert!(
            run(addr, offer).await.is_err(),
            "X25519 only must be refused ({max:?})"
        );
        let offer = ClientOffer {
            max_version: Some(max),
            groups: Some("X448".into()),
            ..Default::default()
        };
        assert!(
            run(addr, offer).await.is_err(),
            "X448 only must be refused ({max:?})"
        );
    }
}

#[tokio::test]
async fn tls2_rule_chacha20_only_client_gets_no_handshake() {
    let (addr, _dir) = strict().await;
    assert!(
        run(
            addr,
            tls12("ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305")
        )
        .await
        .is_err()
    );
    assert!(
        run(addr, tls13("TLS_CHACHA20_POLY1305_SHA256"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn tls2_rule_sha1_static_rsa_and_ccm8_suites_are_refused() {
    let (addr, _dir) = strict().await;
    for c in [
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES128-SHA256",
        "ECDHE-ECDSA-AES128-CCM8",
    ] {
        assert!(run(addr, tls12(c)).await.is_err(), "{c} must be refused");
    }
    assert!(run(addr, tls13("TLS_AES_128_CCM_8_SHA256")).await.is_err());
}

#[tokio::test]
async fn tls2_rule_every_listed_suite_works_and_ed25519_only_sigalgs_fail() {
    let (addr, _dir) = strict().await;
    // The server holds an ECDSA certificate: every ECDHE-ECDSA suite of the list must work.
    for c in kurier_tls::profile::TLS12_SUITES
        .iter()
        .filter(|c| c.contains("ECDSA"))
    {
        let f = run(addr, tls12(c))
            .await
            .unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(f.version, "TLSv1.2");
    }
    for s in kurier_tls::profile::TLS13_SUITES {
        let f = run(addr, tls13(s))
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(f.cipher, *s);
    }
    let offer = ClientOffer {
        sigalgs: Some("ed25519:ed448".into()),
        ..Default::default()
    };
    assert!(
        run(addr, offer).await.is_err(),
        "ed25519-only client must be refused"
    );
    let offer = ClientOffer {
        max_version: Some(SslVersion::TLS1_2),
        sigalgs: Some("ECDSA+SHA1".into()),
        security_level: Some(0),
        ..Default::default()
    };
    assert!(
        run(addr, offer).await.is_err(),
        "SHA-1 signatures must be refused"
    );
}

#[tokio::test]
async fn tls3_tls5_rule_brainpool_p256r1_in_tls_1_2_is_preferred() {
    let (addr, _dir) = strict().await;
    // The client must also offer P-256, the curve of the server's certificate (TLS 1.2).
    let offer = ClientOffer {
        max_version: Some(SslVersion::TLS1_2),
        groups: Some("P-256:brainpoolP256r1".into()),
        tls12_ciphers: Some("ECDHE-ECDSA-AES128-GCM-SHA256".into()),
        ..Default::default()
    };
    let f = run(addr, offer).await.unwrap();
    assert_eq!(f.version, "TLSv1.2");
    assert_eq!(f.cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    assert_eq!(
        f.group.as_deref(),
        Some("brainpoolP256r1"),
        "brainpool has the highest priority"
    );
}

#[tokio::test]
async fn tls5_rule_brainpool_p256r1tls13_in_tls_1_3_works() {
    let (addr, _dir) = strict().await;
    for g in [
        "brainpoolP256r1tls13",
        "brainpoolP384r1tls13",
        "brainpoolP512r1tls13",
        "P-256",
        "P-384",
        "P-521",
    ] {
        let offer = ClientOffer {
            min_version: Some(SslVersion::TLS1_3),
            groups: Some(g.into()),
            ..Default::default()
        };
        let f = run(addr, offer)
            .await
            .unwrap_or_else(|e| panic!("{g}: {e}"));
        assert_eq!(f.version, "TLSv1.3");
        let want = match g {
            "P-256" => "secp256r1",
            "P-384" => "secp384r1",
            "P-521" => "secp521r1",
            other => other,
        };
        assert_eq!(f.group.as_deref(), Some(want));
    }
}

#[tokio::test]
async fn tls7_rule_cbc_sha256_negotiates_encrypt_then_mac_and_ems() {
    let (addr, _dir) = strict().await;
    let f = run(addr, tls12("ECDHE-ECDSA-AES128-SHA256")).await.unwrap();
    assert_eq!(f.cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256");
    assert!(
        f.server_hello_extensions.contains(&EXT_ENCRYPT_THEN_MAC),
        "EtM missing: {:?}",
        f.server_hello_extensions
    );
    assert!(
        f.server_hello_extensions
            .contains(&EXT_EXTENDED_MASTER_SECRET),
        "EMS missing: {:?}",
        f.server_hello_extensions
    );
}

#[tokio::test]
async fn tls6_rule_client_initiated_renegotiation_is_refused() {
    let (addr, _dir) = strict().await;
    let offer = ClientOffer {
        try_renegotiation: true,
        ..tls12("ECDHE-ECDSA-AES128-GCM-SHA256")
    };
    let f = run(addr, offer).await.unwrap();
    assert_eq!(f.renegotiation, Renegotiation::Refused);
}

#[tokio::test]
async fn tls10_rule_no_certificate_request_in_tls_1_2_or_1_3() {
    let (addr, _dir) = strict().await;
    for offer in [
        tls12("ECDHE-ECDSA-AES128-GCM-SHA256"),
        ClientOffer::default(),
    ] {
        let f = run(addr, offer).await.unwrap();
        // 11 = Certificate: proves the recorder saw the (in TLS 1.3 encrypted) server flight.
        assert!(
            f.server_messages.contains(&11),
            "{}: {:?}",
            f.version,
            f.server_messages
        );
        assert!(
            !f.server_messages.contains(&HS_CERTIFICATE_REQUEST),
            "{}: {:?}",
            f.version,
            f.server_messages
        );
    }
}

#[tokio::test]
async fn sni_selects_the_certificate_and_no_sni_gets_the_default() {
    let dir = TempDir::new("sni");
    let ca = support::TestCa::new();
    let p256 = support::KeyKind::Ec(openssl::nid::Nid::X9_62_PRIME256V1);
    let a = support::issued_source(&dir.0, &ca, "a", &["mail.a.test"], p256);
    let b = support::issued_source(
        &dir.0,
        &ca,
        "b",
        &["mail.b.test"],
        support::KeyKind::Ec(openssl::nid::Nid::BRAINPOOL_P256R1),
    );
    let acceptor = std::sync::Arc::new(
        kurier_tls::TlsAcceptor::new(ServerProfile::Strict, vec![a, b]).unwrap(),
    );
    let addr = support::serve(acceptor).await;
    let leaf_name = |f: &HandshakeFacts| kurier_tls::certificate::dns_names(&f.peer_chain[0]);
    let f = run(addr, ClientOffer::default()).await.unwrap();
    assert_eq!(
        leaf_name(&f),
        ["mail.a.test"],
        "no SNI: default certificate"
    );
    let f = run(
        addr,
        ClientOffer {
            server_name: Some("MAIL.B.test".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(leaf_name(&f), ["mail.b.test"]);
    let f = run(
        addr,
        ClientOffer {
            server_name: Some("other.test".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        leaf_name(&f),
        ["mail.a.test"],
        "unknown SNI: default certificate"
    );
}

/// CERT-1 (issue 21), RFC 8737 §3: while a TLS-ALPN-01 challenge for a name is served, only
/// a client that offers `acme-tls/1` and names that host gets the challenge certificate and
/// the protocol; a client without the protocol, or for another name, gets the usual one.
#[tokio::test]
async fn cert1_tls_alpn_01_answers_only_acme_tls_clients_for_the_challenged_name() {
    let dir = TempDir::new("alpn01");
    let ca = support::TestCa::new();
    let p256 = support::KeyKind::Ec(openssl::nid::Nid::X9_62_PRIME256V1);
    let a = support::issued_source(&dir.0, &ca, "a", &["mail.a.test"], p256);
    let acceptor =
        std::sync::Arc::new(kurier_tls::TlsAcceptor::new(ServerProfile::Strict, vec![a]).unwrap());
    let challenge_key = support::key(support::KeyKind::Ec(openssl::nid::Nid::X9_62_PRIME256V1));
    let challenge = support::cert(
        &support::CertSpec {
            names: &["mail.a.test"],
            ..Default::default()
        },
        &challenge_key,
        None,
    );
    let challenges = acceptor.acme_challenges();
    assert!(challenges.insert("Mail.A.test.", challenge.clone(), challenge_key));
    let addr = support::serve(acceptor).await;
    let offer = |name: &str, alpn: Option<&[u8]>, tls12: bool| ClientOffer {
        server_name: Some(name.into()),
        alpn: alpn.map(<[u8]>::to_vec),
        max_version: tls12.then_some(SslVersion::TLS1_2),
        ..Default::default()
    };
    let acme = Some(&b"\x0aacme-tls/1"[..]);
    let is_challenge =
        |f: &HandshakeFacts| f.peer_chain[0].to_der().unwrap() == challenge.to_der().unwrap();
    // TLS 1.3 and 1.2: ALPN is chosen at different points of OpenSSL's handshake.
    for tls12 in [false, true] {
        let f = run(addr, offer("mail.a.test", acme, tls12)).await.unwrap();
        assert!(is_challenge(&f), "TLS 1.2 only: {tls12}");
        assert_eq!(f.alpn.as_deref(), Some(&b"acme-tls/1"[..]));
    }
    // Among other protocols, too (the CA SHOULD offer it alone, §6.2).
    let f = run(
        addr,
        offer("mail.a.test", Some(b"\x02h2\x0aacme-tls/1"), false),
    )
    .await
    .unwrap();
    assert!(is_challenge(&f));
    for (name, alpn) in [
        ("mail.a.test", None),
        ("mail.a.test", Some(&b"\x02h2"[..])),
        ("other.a.test", acme),
    ] {
        let f = run(addr, offer(name, alpn, false)).await.unwrap();
        assert!(!is_challenge(&f), "{name} {alpn:?}");
        assert_eq!(
            kurier_tls::certificate::dns_names(&f.peer_chain[0]),
            ["mail.a.test"]
        );
        assert_eq!(f.alpn, None);
    }
    challenges.remove("mail.a.test");
    let f = run(addr, offer("mail.a.test", acme, false)).await.unwrap();
    assert!(!is_challenge(&f), "withdrawn");
}

#[tokio::test]
async fn tls9_rule_mta_legacy_accepts_old_clients_but_modern_ones_get_strict_parameters() {
    let dir = TempDir::new("legacy");
    let (addr, _, _) = support::strict_server(&dir.0, ServerProfile::MtaLegacy).await;
    let old = ClientOffer {
        min_version: Some(SslVersion::TLS1),
        max_version: Some(SslVersion::TLS1),
        tls12_ciphers: Some("ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0".into()),
        security_level: Some(0),
        ..Default::default()
    };
    let f = run(addr, old).await.unwrap();
    assert_eq!(f.version, "TLSv1");
    let x25519 = ClientOffer {
        groups: Some("X25519".into()),
        ..Default::default()
    };
    assert!(
        run(addr, x25519).await.is_ok(),
        "legacy accepts X25519 as a last resort"
    );
    // A modern client offering everything still lands on the strict lists (lowest priority).
    let f = run(addr, tls12("ALL:@SECLEVEL=0")).await.unwrap();
    assert_eq!(f.cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    let f = run(
        addr,
        ClientOffer {
            groups: Some("X25519:P-256:brainpoolP256r1tls13".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_ne!(f.group.as_deref(), Some("X25519"));
}

#[tokio::test]
async fn verified_handshake_with_the_ca_and_host_name() {
    let dir = TempDir::new("verify");
    let (addr, ca, _) = support::strict_server(&dir.0, ServerProfile::Strict).await;
    let ok = ClientOffer {
        server_name: Some("mail.example.test".into()),
        ca_file: Some(ca.clone()),
        ..Default::default()
    };
    run(addr, ok).await.unwrap();
    let wrong = ClientOffer {
        server_name: Some("mail.other.test".into()),
        ca_file: Some(ca),
        ..Default::default()
    };
    assert!(
        run(addr, wrong).await.is_err(),
        "host name verification must fail for another name"
    );
}

/// TLS-7 (issue 19 item 1): CBC only with Encrypt-then-MAC. A client without EtM gets GCM/CCM
/// when it offers them, and no handshake when it offers CBC only; with EtM, CBC works. The
/// opt-in mta-legacy profile still lets old clients without EtM use CBC (TLS-9).
#[tokio::test]
async fn tls7_rule_a_client_without_encrypt_then_mac_never_gets_cbc() {
    let (addr, _dir) = strict().await;
    let no_etm = |ciphers: &str| ClientOffer {
        no_encrypt_then_mac: true,
        ..tls12(ciphers)
    };
    for cbc in [
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384",
    ] {
        assert!(
            run(addr, no_etm(cbc)).await.is_err(),
            "{cbc} without EtM must be refused"
        );
    }
    let f = run(
        addr,
        no_etm("ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256"),
    )
    .await
    .unwrap();
    assert_eq!(f.cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
    let f = run(addr, no_etm("ECDHE-ECDSA-AES256-CCM")).await.unwrap();
    assert_eq!(f.cipher, "TLS_ECDHE_ECDSA_WITH_AES_256_CCM");
    let f = run(addr, tls12("ECDHE-ECDSA-AES128-SHA256")).await.unwrap();
    assert!(f.server_hello_extensions.contains(&EXT_ENCRYPT_THEN_MAC));
    // TLS 1.3 is untouched.
    let offer = ClientOffer {
        no_encrypt_then_mac: true,
        ..Default::default()
    };
    assert_eq!(run(addr, offer).await.unwrap().version, "TLSv1.3");

    let dir = TempDir::new("legacy-etm");
    let (legacy, _, _) = support::strict_server(&dir.0, ServerProfile::MtaLegacy).await;
    let f = run(legacy, no_etm("ECDHE-ECDSA-AES128-SHA256"))
        .await
        .unwrap();
    assert_eq!(f.cipher, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256");
    assert!(!f.server_hello_extensions.contains(&EXT_ENCRYPT_THEN_MAC));
}

/// Issue 19 item 5: session tickets are a per-listener switch. On (the default), TLS 1.3 and
/// TLS 1.2 clients get a NewSessionTicket; off (port 25 with `smtp.tls_session_tickets =
/// false`), neither does.
#[tokio::test]
async fn tls8_session_tickets_can_be_switched_off_per_listener() {
    let dir = TempDir::new("tickets");
    let (on, _, _) = support::strict_server(&dir.0, ServerProfile::Strict).await;
    let off_options = kurier_tls::ServerOptions {
        session_tickets: false,
        ..Default::default()
    };
    let dir_off = TempDir::new("no-tickets");
    let (off, _, _) = support::server_with(&dir_off.0, ServerProfile::Strict, off_options).await;
    for max in [SslVersion::TLS1_3, SslVersion::TLS1_2] {
        let offer = || ClientOffer {
            max_version: Some(max),
            await_tickets: true,
            ..Default::default()
        };
        let with = run(on, offer()).await.unwrap();
        assert!(
            with.server_messages.contains(&HS_NEW_SESSION_TICKET),
            "{max:?}: {:?}",
            with.server_messages
        );
        let without = run(off, offer()).await.unwrap();
        assert!(
            !without.server_messages.contains(&HS_NEW_SESSION_TICKET),
            "{max:?}: {:?}",
            without.server_messages
        );
    }
}

/// Issue 19 item 6: hybrid post-quantum groups only when switched on, and then preferred; never
/// X25519MLKEM768.
#[tokio::test]
async fn tls5_hybrid_post_quantum_groups_are_opt_in() {
    let dir = TempDir::new("pq-off");
    let (strict, _, _) = support::strict_server(&dir.0, ServerProfile::Strict).await;
    let dir_on = TempDir::new("pq-on");
    let options = kurier_tls::ServerOptions {
        hybrid_groups: true,
        ..Default::default()
    };
    let (hybrid, _, _) = support::server_with(&dir_on.0, ServerProfile::Strict, options).await;
    let only = |g: &str| ClientOffer {
        min_version: Some(SslVersion::TLS1_3),
        groups: Some(g.into()),
        ..Default::default()
    };
    for g in ["SecP256r1MLKEM768", "SecP384r1MLKEM1024", "X25519MLKEM768"] {
        assert!(run(strict, only(g)).await.is_err(), "{g} on strict");
    }
    for g in ["SecP256r1MLKEM768", "SecP384r1MLKEM1024"] {
        let f = run(hybrid, only(g)).await.unwrap();
        assert_eq!(f.group.as_deref(), Some(g));
    }
    assert!(run(hybrid, only("X25519MLKEM768")).await.is_err());
    // Preferred when the client offers both kinds.
    let f = run(hybrid, only("P-256:SecP256r1MLKEM768")).await.unwrap();
    assert_eq!(f.group.as_deref(), Some("SecP256r1MLKEM768"));
}

/// Issue 19 item 3: the rsa_pss_pss_* signatures the ICS declares are served, by a certificate
/// with an RSA-PSS key.
#[tokio::test]
async fn tls2_rule_an_rsa_pss_certificate_serves_rsa_pss_pss_signatures() {
    let dir = TempDir::new("pss");
    let ca = support::TestCa::new();
    let source = support::issued_source(
        &dir.0,
        &ca,
        "pss",
        &["localhost"],
        support::KeyKind::RsaPss(3072),
    );
    let acceptor = std::sync::Arc::new(
        kurier_tls::TlsAcceptor::new(ServerProfile::Strict, vec![source]).unwrap(),
    );
    let addr = support::serve(acceptor).await;
    for max in [SslVersion::TLS1_2, SslVersion::TLS1_3] {
        let offer = ClientOffer {
            max_version: Some(max),
            sigalgs: Some("rsa_pss_pss_sha256".into()),
            ..Default::default()
        };
        let f = run(addr, offer).await.unwrap();
        assert!(
            f.cipher.contains("RSA") || max == SslVersion::TLS1_3,
            "{}",
            f.cipher
        );
    }
}
