//! Issue 21 item 2 (TR-03108 DANE-3, DANE-4; RFC 7671 §8): a certificate reload cannot break
//! inbound DANE. In a signed test world whose TLSA RRset names the current key and a prepared
//! next one, a real Postfix DANE sender delivers to Kurier throughout: a new certificate with a
//! key no TLSA record names is refused on SIGHUP (the old one keeps serving, the error names the
//! record to publish); the prepared key switches; a certificate from a CA whose `2 1 1` record
//! is published switches too. (Whether a check can fail: the refused step serves the old key.)

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::net::TcpStream;
use std::time::Duration;

use kurier_testworld::ca::{Ca, KeyKind, Leaf};
use kurier_testworld::net::hosts;
use kurier_testworld::{PostfixSpec, World, Zone};
use kurier_tls::tlsa::{Matching, Selector, TlsaRecord, Usage};
use support::Server;

/// The `3 1 1` of the certificate Kurier serves now on its submission port.
fn served(ip: &str) -> String {
    let tcp = TcpStream::connect(format!("{ip}:2465")).unwrap();
    let tls = support::tls_unverified(tcp, "mx.kurier.test").unwrap();
    let leaf = tls.ssl().peer_certificate().unwrap();
    TlsaRecord::for_certificate(&leaf, Usage::DaneEe, Selector::Spki, Matching::Sha256)
        .unwrap()
        .rdata()
}

#[test]
fn dane3_a_reload_that_would_break_the_published_tlsa_is_refused_and_postfix_keeps_delivering() {
    let ca = Ca::new("Rollover", KeyKind::P256).unwrap();
    let other_ca = Ca::new("Next CA", KeyKind::P256).unwrap();
    let current = ca.leaf(&["mx.kurier.test"]).unwrap();
    let next = ca.leaf(&["mx.kurier.test"]).unwrap();
    let unpublished = ca.leaf(&["mx.kurier.test"]).unwrap();
    let from_other_ca = other_ca.leaf(&["mx.kurier.test"]).unwrap();
    let mut zone = Zone::signed("kurier.test")
        .record("@", "MX", "10 mx")
        .record("mx", "A", &format!("{{ip:{}}}", hosts::FREE));
    // Port 25 as `kurier dns` publishes it, and 2525, where this test's MX listens.
    for port in [25, 2525] {
        zone = zone
            .record(
                &format!("_{port}._tcp.mx"),
                "TLSA",
                &current.tlsa_3_1_1().unwrap(),
            )
            .record(
                &format!("_{port}._tcp.mx"),
                "TLSA",
                &next.tlsa_3_1_1().unwrap(),
            )
            .record(
                &format!("_{port}._tcp.mx"),
                "TLSA",
                &other_ca.tlsa_2_1_1().unwrap(),
            );
    }
    let world = World::builder()
        .zone(zone)
        .postfix(PostfixSpec::dane_sender("postfix.test").relayhost("kurier.test:2525"))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let ip = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        &ip,
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
             [tls]\ntlsa_check_secs = 1\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display()
        ),
    );
    let install = |leaf: &Leaf| {
        leaf.write(dir.path(), "mx").unwrap();
    };
    install(&current);
    let mut server = Server::configured(dir.path(), &config);
    server.wait_for_log("Kurier started");
    assert_eq!(served(&ip), current.tlsa_3_1_1().unwrap());
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, [ca.root_pem(), other_ca.root_pem()].concat()).unwrap();
    let metrics = || support::curl(&roots, "mx.kurier.test", 8443, &ip, "/metrics", None);
    // Item 4: the hourly (here: every second) comparison of the served chain with DNS.
    support::wait_until(Duration::from_secs(20), "the first TLSA check", || {
        metrics().contains("\nkurier_dane_tlsa_match 1\n")
    });
    assert!(
        metrics().contains("kurier_certificate_expiry_timestamp_seconds{name=\"mx.kurier.test\""),
        "{}",
        metrics()
    );

    let mut dane = support::DaneDeliveries::new(&world.postfix[0], dir.path());
    let mut postfix_delivers = |step: &str| dane.deliver(step);
    postfix_delivers("before");

    // A key no TLSA record names: refused, the old chain keeps serving, the fix is named.
    install(&unpublished);
    let failures = |s: &Server| s.stderr().matches("certificate reload failed").count();
    server.signal(libc::SIGHUP);
    support::wait_until(Duration::from_secs(20), "the refusal", || {
        failures(&server) == 1
    });
    let refusal = server.log_line("certificate reload failed");
    for owner in ["_25._tcp.mx.kurier.test", "_2525._tcp.mx.kurier.test"] {
        assert!(
            refusal.contains(&format!(
                "{owner}. IN TLSA {}",
                unpublished.tlsa_3_1_1().unwrap()
            )),
            "{refusal}"
        );
    }
    assert_eq!(served(&ip), current.tlsa_3_1_1().unwrap());
    postfix_delivers("after the refused reload");

    // The prepared next key is published: the switch happens.
    install(&next);
    let reloads = |s: &Server| s.stderr().matches("certificates reloaded").count();
    server.signal(libc::SIGHUP);
    support::wait_until(Duration::from_secs(20), "the switch", || {
        reloads(&server) == 1
    });
    assert_eq!(served(&ip), next.tlsa_3_1_1().unwrap());
    postfix_delivers("after the switch");

    // A certificate of the CA whose `2 1 1` is published (DANE-TA, RFC 7672 §3.2.2; the chain
    // file carries that CA): it matches, the switch happens.
    install(&from_other_ca);
    server.signal(libc::SIGHUP);
    support::wait_until(Duration::from_secs(20), "the DANE-TA switch", || {
        reloads(&server) == 2
    });
    assert_eq!(failures(&server), 1);
    assert_eq!(served(&ip), from_other_ca.tlsa_3_1_1().unwrap());
    postfix_delivers("after the DANE-TA switch");

    // Item 4: a start with a key DNS does not name (no reload, so no guard) is caught by the
    // monitor: an error that names the record, and 0 on the gauge.
    server.signal(libc::SIGTERM);
    server.wait_exit(Duration::from_secs(20)).unwrap();
    install(&unpublished);
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("the served certificate matches none of the TLSA records");
    assert!(
        server.stderr().contains(&format!(
            "_25._tcp.mx.kurier.test. IN TLSA {}",
            unpublished.tlsa_3_1_1().unwrap()
        )),
        "{}",
        server.stderr()
    );
    assert!(
        metrics().contains("\nkurier_dane_tlsa_match 0\n"),
        "{}",
        metrics()
    );
}
