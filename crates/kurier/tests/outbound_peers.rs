//! Kurier between real peers over a DNSSEC world: Kurier → Kurier with DANE both ways (A in
//! `trust_ad` mode behind the world's validating unbound, B validating in-process), REQUIRETLS
//! end to end (RFC 8689),
//! queued mail going out over one reused connection after a restart, and Postfix as a DANE
//! sender (`smtp_tls_security_level = dane`) delivering to Kurier by its TLSA record (DANE-8).
//! All SMTP here is on port 2525 of each host (`delivery.port`, TLSA at `_2525._tcp`).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use kurier_testworld::ca::{Ca, KeyKind};
use kurier_testworld::net::hosts;
use kurier_testworld::{PostfixSpec, World, Zone};
use support::{Client, Server, plain};

fn send(ip: &str, to: &str, subject: &str, require_tls: bool) -> String {
    send_as(ip, "rcpt@kurier.test", to, subject, require_tls)
}

fn send_as(ip: &str, from: &str, to: &str, subject: &str, require_tls: bool) -> String {
    let mut c = Client::connect_tls(format!("{ip}:2465").parse().unwrap(), "mx.kurier.test");
    c.cmd("EHLO client.test");
    let auth = c.cmd(&format!("AUTH PLAIN {}", plain(from, "pw")));
    assert!(auth.starts_with("235"), "{auth}");
    let extra = if require_tls { " REQUIRETLS" } else { "" };
    let r = c.cmd(&format!("MAIL FROM:<{from}>{extra}"));
    assert!(r.starts_with("250"), "{r}");
    assert!(c.cmd(&format!("RCPT TO:<{to}>")).starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd(&format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nhello\r\n."
    ));
    c.cmd("QUIT");
    r
}

#[test]
fn dane_between_kurier_instances_and_from_postfix() {
    let b_ca = Ca::new("B", KeyKind::P256).unwrap();
    let b_leaf = b_ca.leaf(&["mx.kurier-b.test"]).unwrap();
    let a_leaf = b_ca.leaf(&["mx.kurier.test"]).unwrap();
    let tlsa = b_leaf.tlsa_3_1_1().unwrap();
    let world = World::builder()
        .zone(
            Zone::signed("kurier-b.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{}}}", hosts::FREE + 1))
                .record("_2525._tcp.mx", "TLSA", &tlsa),
        )
        .zone(
            Zone::signed("kurier.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{}}}", hosts::FREE))
                .record("_2525._tcp.mx", "TLSA", &a_leaf.tlsa_3_1_1().unwrap()),
        )
        .postfix(PostfixSpec::dane_sender("postfix.test").relayhost("kurier-b.test:2525"))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let a_ip = world.net.ip(hosts::FREE).to_string();
    let b_ip = world.net.ip(hosts::FREE + 1).to_string();

    // B: the receiver, with the certificate its TLSA record names; it validates in-process.
    let b_dir = tempfile::tempdir().unwrap();
    let b_config = support::configured(
        b_dir.path(),
        &b_ip,
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\n[delivery]\nport = 2525\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display()
        ),
    );
    b_leaf.write(b_dir.path(), "mx").unwrap();
    // kurier.test is A's domain: B only knows it as a remote one.
    support::admin(&b_config, &["user", "del", "rcpt@kurier.test"], "");
    support::admin(&b_config, &["domain", "del", "kurier.test"], "");
    support::admin(&b_config, &["domain", "add", "kurier-b.test"], "");
    support::admin(&b_config, &["user", "add", "bob@kurier-b.test"], "pw\n");
    let b = Server::configured(b_dir.path(), &b_config);

    // A: the sender. First with delivery off, so that mail piles up in its queue.
    let a_dir = tempfile::tempdir().unwrap();
    let dns_section = format!(
        "\n[dns]\ndnssec = \"trust_ad\"\nupstream = [\"{}\"]\ntimeout_secs = 3\n",
        dns.resolver
    );
    let a_config = support::configured(
        a_dir.path(),
        &a_ip,
        "",
        &format!("{dns_section}[delivery]\nenabled = false\n"),
    );
    a_leaf.write(a_dir.path(), "mx").unwrap();
    let mut a = Server::configured(a_dir.path(), &a_config);
    for i in 0..4 {
        let r = send(&a_ip, "bob@kurier-b.test", &format!("queued {i}"), false);
        assert!(r.starts_with("250"), "{r}");
    }
    let r = send(&a_ip, "bob@kurier-b.test", "requiretls", true);
    assert!(r.starts_with("250"), "{r}");
    a.signal(libc::SIGTERM);
    a.wait_exit(Duration::from_secs(10)).unwrap();

    std::fs::write(
        &a_config,
        std::fs::read_to_string(&a_config).unwrap().replace(
            "[delivery]\nenabled = false\n",
            "[delivery]\nport = 2525\nretry_min_secs = 1\n",
        ),
    )
    .unwrap();
    let a = Server::configured(a_dir.path(), &a_config);
    support::wait_until(Duration::from_secs(30), "B's inbox", || {
        support::inbox(b_dir.path(), "bob@kurier-b.test").len() >= 5
    });
    let log = a.stderr();
    let attempts: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("delivery attempt") && l.contains("kurier-b.test"))
        .collect();
    assert!(
        !attempts.is_empty()
            && attempts
                .iter()
                .all(|l| l.contains("verified=\"dane-ee\"") && l.contains("tls=TLSv1.3")),
        "{log}"
    );
    // All five went over one connection (the queue was leased in one go).
    assert!(
        log.lines()
            .any(|l| l.contains("connection closed") && l.contains("messages=5")),
        "{log}"
    );
    // B's Received header shows the TR-03116-4 TLS 1.3 session, with a brainpool or NIST group.
    let inbox = support::inbox(b_dir.path(), "bob@kurier-b.test");
    assert!(inbox.iter().any(|m| m.contains("Subject: requiretls")));
    for m in &inbox {
        assert!(m.contains("version=TLSv1.3"), "{m}");
    }

    // And back: B → A, DANE-verified the other way.
    let r = send_as(
        &b_ip,
        "bob@kurier-b.test",
        "rcpt@kurier.test",
        "reply",
        true,
    );
    assert!(r.starts_with("250"), "{r}");
    support::wait_until(Duration::from_secs(30), "A's inbox", || {
        support::inbox(a_dir.path(), "rcpt@kurier.test")
            .iter()
            .any(|m| m.contains("Subject: reply"))
    });
    assert!(
        b.stderr()
            .lines()
            .any(|l| l.contains("domain=kurier.test ") && l.contains("verified=\"dane-ee\"")),
        "{}",
        b.stderr()
    );

    // Postfix, a DANE sender, verifies B by its TLSA record and delivers.
    world.postfix[0]
        .submit(
            "someone@postfix.test",
            "bob@kurier-b.test",
            "Subject: from postfix\r\n\r\nhi\r\n",
        )
        .unwrap();
    support::wait_until(Duration::from_secs(30), "Postfix's message", || {
        support::inbox(b_dir.path(), "bob@kurier-b.test")
            .iter()
            .any(|m| m.contains("Subject: from postfix"))
    });
    let pf = world.postfix[0]
        .wait_for_log(
            "Verified TLS connection established",
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(pf.contains("status=sent"), "{pf}");
    drop(b);
}
