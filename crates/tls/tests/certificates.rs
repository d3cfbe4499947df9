//! Certificate checks on load (TR-03108 CERT-1, CERT-3), hot reload, the ICS, and the client
//! profile's mandatory suites (TLS-4).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::sync::Arc;

use kurier_tls::probe::{ClientOffer, probe};
use kurier_tls::{
    CertificateError, LoadedCertificate, ServerProfile, Severity, TlsAcceptor, TlsError,
};
use openssl::nid::Nid;
use support::{CertSpec, KeyKind, TempDir, TestCa, key, write};

const P256: KeyKind = KeyKind::Ec(Nid::X9_62_PRIME256V1);

fn rejected(r: Result<LoadedCertificate, CertificateError>) -> (String, &'static str) {
    match r {
        Err(CertificateError::Rejected { finding, .. }) => (finding.message, finding.requirement),
        Err(other) => panic!("expected a rejection, got {other}"),
        Ok(c) => panic!("expected a rejection, loaded {c:?}"),
    }
}

fn load_leaf(
    dir: &TempDir,
    ca: &TestCa,
    spec: CertSpec,
    kind: KeyKind,
) -> Result<LoadedCertificate, CertificateError> {
    let k = key(kind);
    let leaf = ca.issue(&spec, &k);
    let (c, kp) = write(&dir.0, "leaf", &[&leaf, &ca.cert], &k);
    LoadedCertificate::load(&c, &kp)
}

#[test]
fn cert1_rsa_2048_is_rejected_rsa_3072_accepted() {
    let dir = TempDir::new("rsa");
    let ca = TestCa::new();
    let (msg, req) = rejected(load_leaf(
        &dir,
        &ca,
        CertSpec::default(),
        KeyKind::Rsa(2048),
    ));
    assert_eq!(req, "CERT-1");
    assert!(msg.contains("2048 bits") && msg.contains("3072"), "{msg}");
    load_leaf(&dir, &ca, CertSpec::default(), KeyKind::Rsa(3072)).unwrap();
}

#[test]
fn cert1_disallowed_curves_and_ed25519_are_rejected() {
    let dir = TempDir::new("curves");
    let ca = TestCa::new();
    let (msg, _) = rejected(load_leaf(
        &dir,
        &ca,
        CertSpec::default(),
        KeyKind::Ec(Nid::SECP256K1),
    ));
    assert!(msg.contains("secp256k1"), "{msg}");
    let (msg, _) = rejected(load_leaf(&dir, &ca, CertSpec::default(), KeyKind::Ed25519));
    assert!(msg.contains("Ed25519"), "{msg}");
    for ok in [Nid::BRAINPOOL_P256R1, Nid::BRAINPOOL_P384R1, Nid::SECP384R1] {
        load_leaf(&dir, &ca, CertSpec::default(), KeyKind::Ec(ok)).unwrap();
    }
}

#[test]
fn cert1_wildcard_names_are_rejected() {
    let dir = TempDir::new("wild");
    let ca = TestCa::new();
    let spec = CertSpec {
        names: &["mail.example.test", "*.example.test"],
        ..Default::default()
    };
    let (msg, req) = rejected(load_leaf(&dir, &ca, spec, P256));
    assert_eq!(req, "CERT-1");
    assert!(msg.contains("*.example.test"), "{msg}");
}

#[test]
fn cert3_expired_and_not_yet_valid_are_rejected() {
    let dir = TempDir::new("dates");
    let ca = TestCa::new();
    let spec = CertSpec {
        not_before: -90 * 86400,
        not_after: -86400,
        ..Default::default()
    };
    let (msg, req) = rejected(load_leaf(&dir, &ca, spec, P256));
    assert_eq!(req, "CERT-3");
    assert!(msg.contains("expired"), "{msg}");
    let spec = CertSpec {
        not_before: 86400,
        not_after: 90 * 86400,
        ..Default::default()
    };
    let (msg, _) = rejected(load_leaf(&dir, &ca, spec, P256));
    assert!(msg.contains("not valid before"), "{msg}");
}

#[test]
fn cert1_validity_over_three_years_is_a_warning() {
    let dir = TempDir::new("long");
    let ca = TestCa::new();
    let spec = CertSpec {
        not_after: 4 * 365 * 86400,
        ..Default::default()
    };
    let c = load_leaf(&dir, &ca, spec, P256).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.severity == Severity::Warning && w.message.contains("3 years")),
        "{:?}",
        c.warnings
    );
    let c = load_leaf(&dir, &ca, CertSpec::default(), P256).unwrap();
    assert!(!c.warnings.iter().any(|w| w.message.contains("3 years")));
}

#[test]
fn cert3_key_mismatch_missing_chain_and_wrong_order_are_rejected() {
    let dir = TempDir::new("chain");
    let ca = TestCa::new();
    let k = key(P256);
    let leaf = ca.issue(&CertSpec::default(), &k);
    let (c, _) = write(&dir.0, "mismatch", &[&leaf, &ca.cert], &k);
    let other = key(P256);
    let (_, other_key) = write(&dir.0, "other", &[&leaf], &other);
    let (msg, _) = rejected(LoadedCertificate::load(&c, &other_key));
    assert!(msg.contains("mismatch"), "{msg}");

    let (c, kp) = write(&dir.0, "leafonly", &[&leaf], &k);
    let (msg, req) = rejected(LoadedCertificate::load(&c, &kp));
    assert_eq!(req, "CERT-3");
    assert!(msg.contains("missing chain"), "{msg}");

    let stranger = TestCa::new();
    let (c, kp) = write(&dir.0, "order", &[&leaf, &stranger.cert], &k);
    let (msg, _) = rejected(LoadedCertificate::load(&c, &kp));
    assert!(msg.contains("out of order"), "{msg}");
}

/// `kurier check` (issue 23): a chain someone else serves is judged in words about that
/// server, and the CAs delivery trusts (`delivery.extra_ca_file`) end a chain as Debian's do.
#[test]
fn cert3_a_peer_chain_is_worded_for_the_server_and_trusts_the_extra_roots() {
    let ca = TestCa::new();
    let k = key(P256);
    let leaf = ca.issue(&CertSpec::default(), &k);
    let now = openssl::asn1::Asn1Time::days_from_now(0).unwrap();
    let findings = kurier_tls::certificate::check_peer(std::slice::from_ref(&leaf), &now, &[]);
    let missing = findings
        .iter()
        .find(|f| f.message.contains("missing chain"))
        .expect("the leaf alone misses its chain");
    assert!(
        missing.message.contains("the server sent") && !missing.message.contains("file"),
        "{}",
        missing.message
    );
    let trusted = kurier_tls::certificate::check_peer(
        std::slice::from_ref(&leaf),
        &now,
        std::slice::from_ref(&ca.cert),
    );
    assert!(
        !trusted.iter().any(|f| f.message.contains("missing chain")),
        "{trusted:?}"
    );
}

#[test]
fn bad_files_give_clear_errors() {
    let dir = TempDir::new("files");
    let missing = dir.0.join("nope.pem");
    let e = LoadedCertificate::load(&missing, &missing).unwrap_err();
    assert!(matches!(e, CertificateError::Read { .. }));
    assert!(e.to_string().contains("nope.pem"), "{e}");
    let junk = dir.0.join("junk.pem");
    std::fs::write(&junk, "hello").unwrap();
    let e = LoadedCertificate::load(&junk, &junk).unwrap_err();
    assert!(
        matches!(
            e,
            CertificateError::NoCertificate { .. } | CertificateError::Pem { .. }
        ),
        "{e}"
    );
}

#[test]
fn dev_ca_certificate_passes_every_must_rule_and_is_kept_across_restarts() {
    let dir = TempDir::new("dev");
    let names = ["localhost", "mail.example.test"];
    let first = kurier_tls::dev_ca::ensure(&dir.0, &names).unwrap();
    assert!(first.created);
    let c = LoadedCertificate::load(&first.server_cert, &first.server_key).unwrap();
    assert_eq!(c.names, names);
    assert_eq!(c.key_description(), "ECDSA P-256");
    let pem = std::fs::read(&first.server_cert).unwrap();
    let again = kurier_tls::dev_ca::ensure(&dir.0, &names).unwrap();
    assert!(!again.created, "an existing, valid dev certificate is kept");
    assert_eq!(std::fs::read(&again.server_cert).unwrap(), pem);
    let renamed = kurier_tls::dev_ca::ensure(&dir.0, &["localhost"]).unwrap();
    assert!(renamed.created, "new names renew the leaf");
}

#[tokio::test]
async fn reload_swaps_in_new_certificates_and_keeps_the_old_on_a_bad_file() {
    let dir = TempDir::new("reload");
    let ca = TestCa::new();
    let src = support::issued_source(&dir.0, &ca, "srv", &["one.test"], P256);
    let acceptor = Arc::new(TlsAcceptor::new(ServerProfile::Strict, vec![src.clone()]).unwrap());
    let addr = support::serve(acceptor.clone()).await;
    let served = || async move {
        let f = tokio::task::spawn_blocking(move || probe(addr, &ClientOffer::default()))
            .await
            .unwrap()
            .unwrap();
        kurier_tls::certificate::dns_names(&f.peer_chain[0])
    };
    assert_eq!(served().await, ["one.test"]);
    assert!(!acceptor.files_changed());

    std::thread::sleep(std::time::Duration::from_millis(20));
    let fresh = support::issued_source(&dir.0, &ca, "srv", &["two.test", "more.two.test"], P256);
    assert_eq!(fresh, src);
    assert!(acceptor.files_changed());
    acceptor.reload().unwrap();
    assert!(!acceptor.files_changed());
    assert_eq!(served().await, ["two.test", "more.two.test"]);

    let weak = key(KeyKind::Rsa(2048));
    let leaf = ca.issue(&CertSpec::default(), &weak);
    write(&dir.0, "srv", &[&leaf, &ca.cert], &weak);
    let e = acceptor.reload().unwrap_err();
    assert!(
        matches!(e, TlsError::Certificate(CertificateError::Rejected { .. })),
        "{e}"
    );
    assert_eq!(
        served().await,
        ["two.test", "more.two.test"],
        "a bad file keeps the old certificate"
    );
}

#[test]
fn dns5_ics_lists_exactly_the_configured_suites_and_no_forbidden_ones() {
    let dir = TempDir::new("ics");
    let ca = TestCa::new();
    let src = support::issued_source(&dir.0, &ca, "srv", &["ics.test"], P256);
    let acceptor = TlsAcceptor::new(ServerProfile::Strict, vec![src]).unwrap();
    let ics = kurier_tls::ics::describe(&acceptor, vec![]);
    let codes: Vec<&str> = ics.tls12_suites.iter().map(|s| s.iana.as_str()).collect();
    assert_eq!(
        codes,
        [
            "0xC02B", "0xC02C", "0xC0AC", "0xC0AD", "0xC02F", "0xC030", "0xC023", "0xC024",
            "0xC027", "0xC028"
        ]
    );
    let names: Vec<&str> = ics.tls13_suites.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, kurier_tls::profile::TLS13_SUITES);
    assert!(
        !ics.groups
            .iter()
            .any(|g| g.contains("25519") || g.contains("448"))
    );
    assert!(
        !ics.signature_algorithms
            .iter()
            .any(|s| s.contains("ed25519") || s.contains("pkcs1"))
    );
    assert_eq!(ics.certificates[0].key, "ECDSA P-256");
    let text = ics.to_text();
    assert!(
        text.contains("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256")
            && text.contains("brainpoolP256r1"),
        "{text}"
    );
}

/// TLS-4: the client profile offers each of the four suites clients must support: a server
/// that accepts only that one suite still completes the handshake.
#[tokio::test]
async fn tls4_client_profile_offers_the_four_mandatory_suites() {
    let dir = TempDir::new("client");
    let ca = TestCa::new();
    let ec = support::issued_source(&dir.0, &ca, "ec", &["ec.test"], P256);
    let rsa = support::issued_source(&dir.0, &ca, "rsa", &["rsa.test"], KeyKind::Rsa(3072));
    let connector = kurier_tls::client_connector(false).unwrap();
    for (suite, src, rfc) in [
        (
            "ECDHE-ECDSA-AES128-SHA256",
            &ec,
            "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        ),
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            &ec,
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ),
        (
            "ECDHE-RSA-AES128-SHA256",
            &rsa,
            "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        ),
        (
            "ECDHE-RSA-AES128-GCM-SHA256",
            &rsa,
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ),
    ] {
        let cert = LoadedCertificate::load(&src.cert, &src.key).unwrap();
        let mut b = openssl::ssl::SslAcceptor::mozilla_intermediate_v5(
            openssl::ssl::SslMethod::tls_server(),
        )
        .unwrap();
        b.set_max_proto_version(Some(openssl::ssl::SslVersion::TLS1_2))
            .unwrap();
        b.set_cipher_list(suite).unwrap();
        b.set_certificate(cert.leaf()).unwrap();
        b.set_private_key(&cert.key).unwrap();
        let server = b.build();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (tcp, _) = listener.accept().unwrap();
            server.accept(tcp).map(|s| {
                s.ssl()
                    .current_cipher()
                    .unwrap()
                    .standard_name()
                    .unwrap()
                    .to_string()
            })
        });
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        let client = connector
            .configure()
            .unwrap()
            .verify_hostname(false)
            .connect("peer.test", tcp);
        assert!(client.is_ok(), "{suite}: {:?}", client.err());
        assert_eq!(t.join().unwrap().unwrap(), rfc);
    }
}

#[test]
fn cert2_self_signed_leaf_is_accepted_with_a_warning() {
    let dir = TempDir::new("selfsigned");
    let k = key(P256);
    let leaf = support::cert(&CertSpec::default(), &k, None);
    let (c, kp) = write(&dir.0, "self", &[&leaf], &k);
    let loaded = LoadedCertificate::load(&c, &kp).unwrap();
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.requirement == "CERT-2" && w.message.contains("self-signed")),
        "{:?}",
        loaded.warnings
    );
}

/// Issue 19 item 3 (CERT-1, CERT-3): the whole served chain is checked like the leaf — key
/// sizes, signature digests, validity — each problem one clear line; a private CA can be named
/// as a trusted root; RSA-PSS keys, which the profile's rsa_pss_pss_* signatures need, load.
#[test]
fn cert1_every_certificate_of_the_chain_is_checked() {
    let dir = TempDir::new("whole-chain");
    let root = TestCa::new();
    let load = |name: &str, intermediate_key: KeyKind, spec: CertSpec| {
        let ik = key(intermediate_key);
        let intermediate = root.issue(
            &CertSpec {
                names: &["Test Intermediate"],
                ca: true,
                ..spec
            },
            &ik,
        );
        let k = key(P256);
        let leaf = support::cert(&CertSpec::default(), &k, Some((&intermediate, &ik)));
        let (c, kp) = write(&dir.0, name, &[&leaf, &intermediate, &root.cert], &k);
        LoadedCertificate::load(&c, &kp)
    };
    load("good", P256, CertSpec::default()).unwrap();
    let (msg, req) = rejected(load("weak", KeyKind::Rsa(2048), CertSpec::default()));
    assert_eq!(req, "CERT-1");
    assert!(
        msg.contains("CN=Test Intermediate") && msg.contains("2048 bits"),
        "{msg}"
    );
    let sha1 = CertSpec {
        sha1: true,
        ..CertSpec::default()
    };
    let (msg, _) = rejected(load("sha1", P256, sha1));
    assert!(
        msg.contains("CN=Test Intermediate") && msg.contains("SHA-1"),
        "{msg}"
    );
    let expired = CertSpec {
        not_before: -90 * 86400,
        not_after: -86400,
        ..CertSpec::default()
    };
    let (msg, req) = rejected(load("expired", P256, expired));
    assert_eq!(req, "CERT-3");
    assert!(
        msg.contains("CN=Test Intermediate") && msg.contains("expired"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");

    // A SHA-1-signed leaf is an error, not a warning.
    let k = key(P256);
    let leaf = root.issue(
        &CertSpec {
            sha1: true,
            ..CertSpec::default()
        },
        &k,
    );
    let (c, kp) = write(&dir.0, "sha1-leaf", &[&leaf, &root.cert], &k);
    let (msg, _) = rejected(LoadedCertificate::load(&c, &kp));
    assert!(msg.contains("SHA-1"), "{msg}");

    // A private CA as the end of the chain: not in the file, named as trusted.
    let leaf = root.issue(&CertSpec::default(), &k);
    let (c, kp) = write(&dir.0, "private-ca", &[&leaf], &k);
    let (msg, _) = rejected(LoadedCertificate::load(&c, &kp));
    assert!(msg.contains("tls.trusted_roots"), "{msg}");
    let roots = dir.0.join("company-ca.pem");
    std::fs::write(&roots, root.cert.to_pem().unwrap()).unwrap();
    LoadedCertificate::load_trusting(&c, &kp, Some(&roots)).unwrap();

    // RSA-PSS keys: accepted at 3072 bits, refused below, like RSA.
    let pss = key(KeyKind::RsaPss(3072));
    let leaf = root.issue(&CertSpec::default(), &pss);
    let (c, kp) = write(&dir.0, "pss", &[&leaf, &root.cert], &pss);
    let loaded = LoadedCertificate::load(&c, &kp).unwrap();
    assert_eq!(loaded.key_description(), "RSA-PSS 3072");
    let small = key(KeyKind::RsaPss(2048));
    let leaf = root.issue(&CertSpec::default(), &small);
    let (c, kp) = write(&dir.0, "pss-small", &[&leaf, &root.cert], &small);
    let (msg, _) = rejected(LoadedCertificate::load(&c, &kp));
    assert!(msg.contains("RSA-PSS key has 2048 bits"), "{msg}");
}
