//! Signatures checked by an independent verifier: Python's dkimpy (PyPI; scripts/test.sh
//! installs it), with the public key handed over as the DNS TXT record would carry it.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use kurier_dkim::{Algorithm, DkimKey};

const VERIFY: &str = r#"
import sys, dkim
msg = open(sys.argv[1], 'rb').read()
txt = open(sys.argv[2], 'rb').read()
ok = dkim.verify(msg, dnsfunc=lambda name, timeout=5: txt)
print("VALID" if ok else "INVALID")
"#;

fn verify(message: &[u8], txt: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (m, t) = (dir.path().join("m.eml"), dir.path().join("txt"));
    std::fs::write(&m, message).unwrap();
    std::fs::write(&t, txt).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", VERIFY, m.to_str().unwrap(), t.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !text.is_empty(),
        "dkimpy did not answer (pip install dkimpy pynacl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

const MESSAGE: &[u8] = b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject:  a   folded\r\n\tsubject line  \r\nDate: Sat, 28 Nov 2026 22:00:00 +0000\r\nMessage-ID: <1@example.test>\r\nX-Not-Signed: yes\r\n\r\nHello  Bob,\t \r\n\r\nsee you.\r\n\r\n\r\n";

#[test]
fn rsa_and_ed25519_signatures_verify_with_dkimpy_and_tampering_breaks_them() {
    for algorithm in [Algorithm::Rsa, Algorithm::Ed25519] {
        let (key, _) = DkimKey::generate("example.test", "kurier", algorithm).unwrap();
        let header = key.sign(MESSAGE, 1_795_900_000).unwrap();
        let mut signed = header.clone().into_bytes();
        signed.extend_from_slice(MESSAGE);
        let (_, txt) = key.dns_record().unwrap();
        assert_eq!(verify(&signed, &txt), "VALID", "{algorithm:?}: {header}");
        // Changing the body or a signed header breaks it; an unsigned header does not.
        let body_changed = [
            header.as_bytes(),
            &MESSAGE
                .to_vec()
                .iter()
                .map(|&b| if b == b'B' { b'R' } else { b })
                .collect::<Vec<_>>(),
        ]
        .concat();
        assert_eq!(verify(&body_changed, &txt), "INVALID", "{algorithm:?}");
        let subject_changed = String::from_utf8_lossy(&signed).replace("folded", "changed");
        assert_eq!(
            verify(subject_changed.as_bytes(), &txt),
            "INVALID",
            "{algorithm:?}"
        );
        let extra_unsigned =
            String::from_utf8_lossy(&signed).replace("X-Not-Signed: yes", "X-Not-Signed: no");
        assert_eq!(
            verify(extra_unsigned.as_bytes(), &txt),
            "VALID",
            "{algorithm:?}"
        );
    }
}

const SIGN: &str = r#"
import sys, dkim
msg = open(sys.argv[1], 'rb').read()
key = open(sys.argv[2], 'rb').read()
canon = tuple(c.encode() for c in sys.argv[3].split('/'))
sig = dkim.sign(msg, b'sel', b'signer.test', key, canonicalize=canon,
                include_headers=[b'from', b'to', b'subject', b'date'])
sys.stdout.buffer.write(sig + msg)
"#;

/// The other direction: what dkimpy signs, our verifier (TLSRPT intake) accepts — for each
/// canonicalization — and a changed message it refuses.
#[test]
fn signatures_made_by_dkimpy_verify_with_ours() {
    let (key, pem) = DkimKey::generate("signer.test", "sel", Algorithm::Rsa).unwrap();
    let (_, record) = key.dns_record().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (m, k) = (dir.path().join("m.eml"), dir.path().join("k.pem"));
    std::fs::write(&m, MESSAGE).unwrap();
    std::fs::write(&k, &pem).unwrap();
    for canon in ["relaxed/relaxed", "simple/simple", "relaxed/simple"] {
        let out = std::process::Command::new("python3")
            .args(["-c", SIGN, m.to_str().unwrap(), k.to_str().unwrap(), canon])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let signed = out.stdout;
        let sigs = kurier_dkim::verify::signatures(&signed);
        assert_eq!(sigs.len(), 1, "{canon}");
        assert_eq!(sigs[0].domain, "signer.test");
        kurier_dkim::verify::verify(&signed, &sigs[0], &record)
            .unwrap_or_else(|e| panic!("{canon}: {e}"));
        let changed = String::from_utf8_lossy(&signed).replace("see you", "see them");
        assert!(kurier_dkim::verify::verify(changed.as_bytes(), &sigs[0], &record).is_err());
    }
}
