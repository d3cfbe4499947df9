//! Self-test of the world's Postfix peers: delivery into the maildir, STARTTLS verified by DANE
//! (`openssl s_client -dane_tlsa_rrdata`), and a Postfix DANE sender that verifies the receiver
//! through the world's signed DNS.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use kurier_testworld::{PostfixSpec, World, Zone};

#[test]
fn postfix_receives_into_its_maildir() {
    let world = World::builder()
        .postfix(PostfixSpec::receiver("mx.peer.test", &["peer.test"]))
        .build()
        .unwrap();
    let p = &world.postfix[0];
    let out = kurier_testworld::swaks(&[
        "--server",
        &p.addr.to_string(),
        "--from",
        "a@sender.test",
        "--to",
        "bob@peer.test",
        "--tls",
        "--body",
        "hello from the world",
    ])
    .unwrap();
    assert!(out.contains("STARTTLS"), "{out}");
    let m = p.wait_for_messages(1, Duration::from_secs(20)).unwrap();
    let text = String::from_utf8_lossy(&m[0]);
    assert!(
        text.contains("hello from the world") && text.contains("bob@peer.test"),
        "{text}"
    );
}

#[test]
fn postfix_starttls_verifies_with_dane_and_a_postfix_dane_sender_says_verified() {
    let world = World::builder()
        .zone(
            Zone::signed("peer.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", "{postfix:1}")
                .record("_25._tcp.mx", "TLSA", "{tlsa-postfix:1}")
                .record("_25._tcp.mx", "TLSA", "{tlsa-ca}"),
        )
        .postfix(PostfixSpec::dane_sender("mx.sender.test"))
        .postfix(PostfixSpec::receiver("mx.peer.test", &["peer.test"]))
        .build()
        .unwrap();
    let (sender, receiver) = (&world.postfix[0], &world.postfix[1]);

    // openssl's own DANE check against the receiver, with the record from the world's DNS.
    let tlsa = receiver.tlsa_3_1_1.clone().unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-brief",
            "-starttls",
            "smtp",
            "-connect",
            &receiver.addr.to_string(),
        ])
        .args([
            "-dane_tlsa_domain",
            "mx.peer.test",
            "-dane_tlsa_rrdata",
            &tlsa,
            "-verify_return_error",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("Verification: OK") && text.contains("DANE TLSA 3 1 1"),
        "{text}"
    );
    let dig = world.dns().dig("_25._tcp.mx.peer.test", "TLSA").unwrap();
    let flat = dig.replace(' ', "").to_ascii_lowercase();
    assert!(
        flat.contains(&tlsa[6..]),
        "the world publishes the receiver's TLSA:\n{dig}"
    );

    // Postfix as a DANE sender: MX and TLSA through the world's validating resolver.
    sender
        .submit("alice@sender.test", "bob@peer.test", "verified by DANE")
        .unwrap();
    let m = receiver
        .wait_for_messages(1, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\nsender log:\n{}", sender.maillog()));
    assert!(String::from_utf8_lossy(&m[0]).contains("verified by DANE"));
    let log = sender
        .wait_for_log(
            "Verified TLS connection established to mx.peer.test",
            Duration::from_secs(5),
        )
        .unwrap();
    assert!(!log.contains("Untrusted"), "{log}");
}
