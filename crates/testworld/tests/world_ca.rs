//! Self-test of the world's CA: good certificates pass Kurier's own checks, bad ones fail them
//! for the reason their name says, and the TLSA data has the right shape.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use kurier_testworld::ca::{Ca, KeyKind, LeafSpec};
use kurier_tls::tlsa::{Matching, Selector};
use kurier_tls::{CertificateError, LoadedCertificate};

fn load(ca: &Ca, spec: &LeafSpec) -> Result<LoadedCertificate, CertificateError> {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = ca.issue(spec).unwrap().write(dir.path(), "leaf").unwrap();
    LoadedCertificate::load(&c, &k)
}

fn rejection(r: Result<LoadedCertificate, CertificateError>) -> String {
    match r {
        Err(CertificateError::Rejected { finding, .. }) => finding.to_string(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn good_and_bad_certificates_are_what_they_claim() {
    let ec = Ca::new("EC", KeyKind::P256).unwrap();
    let rsa = Ca::new("RSA", KeyKind::Rsa3072).unwrap();
    let good = load(&ec, &LeafSpec::new(&["mx.good.test"])).unwrap();
    assert_eq!(good.chain.len(), 3, "leaf, intermediate, root");
    let good_rsa = load(&rsa, &LeafSpec::new(&["mx.rsa.test"]).key(KeyKind::Rsa3072)).unwrap();
    assert_eq!(good_rsa.key_description(), "RSA 3072");
    assert!(rejection(load(&ec, &LeafSpec::new(&["mx.x.test"]).expired())).contains("expired"));
    assert!(rejection(load(&ec, &LeafSpec::new(&["*.x.test"]))).contains("wildcard"));
    assert!(
        rejection(load(
            &ec,
            &LeafSpec::new(&["mx.x.test"]).key(KeyKind::Rsa2048)
        ))
        .contains("2048")
    );
    let selfsigned = load(&ec, &LeafSpec::new(&["mx.x.test"]).self_signed()).unwrap();
    assert!(
        selfsigned
            .warnings
            .iter()
            .any(|w| w.requirement == "CERT-2")
    );

    // Other CA and wrong name, as a verifying client sees them.
    let dir = tempfile::tempdir().unwrap();
    let root = ec.write_root(&dir.path().join("root.pem")).unwrap();
    let verify = |leaf: &kurier_testworld::ca::Leaf, name: &str| {
        let (c, _) = leaf.write(dir.path(), "v").unwrap();
        std::process::Command::new("openssl")
            .args([
                "verify",
                "-CAfile",
                root.to_str().unwrap(),
                "-untrusted",
                c.to_str().unwrap(),
            ])
            .args(["-verify_hostname", name, c.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(verify(&ec.leaf(&["mx.good.test"]).unwrap(), "mx.good.test"));
    assert!(
        !verify(&ec.leaf(&["mx.good.test"]).unwrap(), "mx.other.test"),
        "wrong name"
    );
    let other = Ca::new("Other", KeyKind::P256).unwrap();
    assert!(
        !verify(&other.leaf(&["mx.good.test"]).unwrap(), "mx.good.test"),
        "other CA"
    );
}

#[test]
fn tlsa_records_of_the_usual_kinds() {
    let ca = Ca::new("T", KeyKind::P256).unwrap();
    let leaf = ca.leaf(&["mx.t.test"]).unwrap();
    let r311 = leaf.tlsa_3_1_1().unwrap();
    let r301 = leaf.tlsa(Selector::Cert, Matching::Sha256).unwrap();
    let r312 = leaf.tlsa(Selector::Spki, Matching::Sha512).unwrap();
    let r211 = ca.tlsa_2_1_1().unwrap();
    assert!(r311.starts_with("3 1 1 ") && r311.len() == 6 + 64);
    assert!(r301.starts_with("3 0 1 ") && r301.len() == 6 + 64 && r301[6..] != r311[6..]);
    assert!(r312.starts_with("3 1 2 ") && r312.len() == 6 + 128);
    assert!(r211.starts_with("2 1 1 ") && r211.len() == 6 + 64);
    // Same key, new certificate: 3 1 1 stays, 3 0 1 changes (why 3 1 1 suits renewals).
    assert_ne!(
        ca.leaf(&["mx.t.test"]).unwrap().tlsa_3_1_1().unwrap(),
        r311,
        "a new leaf has a new key"
    );
}
