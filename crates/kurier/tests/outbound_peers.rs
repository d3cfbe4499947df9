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

/// Issue 18 item 2 (SMTP-2; TR-03116-4 allows legacy parameters at the lowest priority): a
/// destination without DANE or MTA-STS whose server the strict profile cannot reach — TLS 1.0
/// only, RSA with PKCS#1 signatures only, X25519 only (real Postfix peers) — gets its mail over
/// TLS with the legacy client profile, not in clear text. A TLS-1.0-only server behind DANE or an
/// enforced MTA-STS policy gets no downgrade step: the mail stays queued. The TLSRPT reports
/// count each step: the failed strict session and the legacy one.
#[test]
fn smtp2_legacy_tls_before_clear_text_only_without_dane_or_mta_sts() {
    use kurier_testworld::ServerTls;
    let collector = hosts::FREE + 10;
    let sts_host = hosts::FREE + 11;
    let rua = "\"v=TLSRPTv1; rua=https://collector.reports.test/v1/tlsrpt\"";
    let unsigned_to = |domain: &str, peer: usize| {
        Zone::unsigned(domain)
            .record("@", "MX", "10 mx")
            .record("mx", "A", &format!("{{postfix:{peer}}}"))
            .record("_smtp._tls", "TXT", rua)
    };
    let mut world = World::builder()
        .zone(unsigned_to("tls10.test", 0))
        .zone(unsigned_to("rsa.test", 1))
        .zone(unsigned_to("x25519.test", 2))
        .zone(
            Zone::signed("danetls10.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", "{postfix:3}")
                .record("_25._tcp.mx", "TLSA", "{tlsa-postfix:3}")
                .record("_smtp._tls", "TXT", rua),
        )
        .zone(
            unsigned_to("ststls10.test", 3)
                .record("_mta-sts", "TXT", "\"v=STSv1; id=1;\"")
                .record("mta-sts", "A", &format!("{{ip:{sts_host}}}")),
        )
        .zone(Zone::unsigned("reports.test").record(
            "collector",
            "A",
            &format!("{{ip:{collector}}}"),
        ))
        .postfix(
            PostfixSpec::receiver("mx.tls10.test", &["tls10.test"])
                .server_tls(ServerTls::Tls10Only),
        )
        .postfix(
            PostfixSpec::receiver("mx.rsa.test", &["rsa.test"]).server_tls(ServerTls::RsaPkcs1Only),
        )
        .postfix(
            PostfixSpec::receiver("mx.x25519.test", &["x25519.test"])
                .server_tls(ServerTls::X25519Only),
        )
        .postfix(
            PostfixSpec::receiver("mx.danetls10.test", &["danetls10.test", "ststls10.test"])
                .server_tls(ServerTls::Tls10Only),
        )
        .build()
        .unwrap();
    world
        .start_https(
            sts_host,
            &["mta-sts.ststls10.test"],
            &[(
                ".well-known/mta-sts.txt",
                "version: STSv1\nmode: enforce\nmx: mx.ststls10.test\nmax_age: 86400\n",
            )],
        )
        .unwrap();
    world
        .start_https(collector, &["collector.reports.test"], &[])
        .unwrap();
    let dns = world.dns().clone();
    let ip = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        &ip,
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\n\
             [delivery]\nretry_min_secs = 3600\nextra_ca_file = \"{}\"\n",
            dns.resolver,
            dns.trust_anchor_ds.display(),
            world.ca_file().unwrap().display()
        ),
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("DNSSEC validation works");
    let domains = [
        "tls10.test",
        "rsa.test",
        "x25519.test",
        "danetls10.test",
        "ststls10.test",
    ];
    for d in domains {
        let r = send(&ip, &format!("user@{d}"), &format!("legacy {d}"), false);
        assert!(r.starts_with("250"), "{d}: {r}");
    }
    for d in domains {
        support::wait_until(Duration::from_secs(60), d, || {
            server.stderr().contains(&format!("domain={d} "))
        });
    }

    // What arrived, and how (Postfix's Received header names the protocol and the exchange).
    let received = |peer: usize| -> String {
        let got = world.postfix[peer]
            .wait_for_messages(1, Duration::from_secs(30))
            .unwrap();
        assert_eq!(got.len(), 1, "peer {peer}");
        let m = String::from_utf8_lossy(&got[0]).into_owned();
        m.split("\r\n\r\n")
            .next()
            .unwrap_or_default()
            .replace("\n\t", " ")
            .to_string()
    };
    let tls10 = received(0);
    assert!(tls10.contains("using TLSv1 with cipher"), "{tls10}");
    let rsa = received(1);
    assert!(rsa.contains("using TLSv1.2 with cipher ECDHE-RSA"), "{rsa}");
    let x25519 = received(2);
    assert!(x25519.contains("using TLSv1.2"), "{x25519}");
    // Kurier logs what the legacy handshake negotiated.
    let log = server.stderr();
    assert!(
        log.lines().any(|l| l.contains("with the legacy profile")
            && l.contains("mx.x25519.test")
            && l.to_lowercase().contains("group=\"x25519\"")),
        "{log}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        world.postfix[3].messages().is_empty(),
        "DANE and MTA-STS destinations get no downgrade"
    );
    let (_, queue, _) = support::run(&["queue", "list", "--config", config.to_str().unwrap()]);
    assert!(
        queue.contains("user@danetls10.test") && queue.contains("user@ststls10.test"),
        "{queue}"
    );
    // No certificate came, so none failed to match (issue 18 item 3): the reason says that
    // no encrypted connection could be made.
    assert!(
        queue
            .matches("no encrypted connection could be made")
            .count()
            == 2
            && !queue.contains("does not match")
            && !queue.contains("certificate failed"),
        "{queue}"
    );
    let log = server.stderr();
    assert_eq!(
        log.matches("STARTTLS succeeded with the legacy profile")
            .count(),
        3,
        "{log}"
    );
    for protected in ["mx.danetls10.test", "mx.ststls10.test"] {
        assert!(
            !log.lines()
                .any(|l| l.contains("trying the legacy profile") && l.contains(protected)),
            "{log}"
        );
    }

    // TLSRPT: the failed strict session and the legacy one, each counted once.
    let events = support::tls_events(dir.path());
    let of = |d: &str| -> Vec<_> { events.iter().filter(|e| e.policy_domain == d).collect() };
    for d in ["tls10.test", "rsa.test", "x25519.test"] {
        let e = of(d);
        assert_eq!(e.len(), 2, "{d}: {e:?}");
        assert!(
            e.iter()
                .any(|e| e.failure.map(|f| f.as_str()) == Some("validation-failure"))
                && e.iter().any(|e| e.failure.is_none()),
            "{d}: {e:?}"
        );
    }
    for d in ["danetls10.test", "ststls10.test"] {
        let e = of(d);
        assert!(
            !e.is_empty() && e.iter().all(|e| e.failure.is_some()),
            "{d}: {e:?}"
        );
        assert!(
            e.iter()
                .all(|e| !e.detail.as_deref().unwrap_or_default().contains("legacy")),
            "{d}: {e:?}"
        );
    }
    let out = support::send_todays_reports(&config);
    let posted = world.posted(collector);
    assert_eq!(posted.len(), domains.len(), "{out}");
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../policy/tests/fixtures/tlsrpt-schema.json");
    for (_, body) in &posted {
        let json = support::gunzip(body);
        let file = dir.path().join("report.json");
        std::fs::write(&file, &json).unwrap();
        support::python_ok(
            "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('OK-DONE')",
            &[file.to_str().unwrap(), schema.to_str().unwrap()],
        );
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        let policy = &report["policies"][0];
        let domain = policy["policy"]["policy-domain"]
            .as_str()
            .unwrap()
            .to_string();
        let summary = &policy["summary"];
        let (ok, failed) = (
            summary["total-successful-session-count"].as_u64().unwrap(),
            summary["total-failure-session-count"].as_u64().unwrap(),
        );
        let kind = policy["policy"]["policy-type"].as_str().unwrap();
        match domain.as_str() {
            "tls10.test" | "rsa.test" | "x25519.test" => {
                assert_eq!((kind, ok, failed), ("no-policy-found", 1, 1), "{json}");
                assert_eq!(
                    policy["failure-details"][0]["result-type"], "validation-failure",
                    "{json}"
                );
            }
            "danetls10.test" => assert_eq!((kind, ok, failed), ("tlsa", 0, 1), "{json}"),
            "ststls10.test" => assert_eq!((kind, ok, failed), ("sts", 0, 1), "{json}"),
            other => panic!("a report for {other}: {json}"),
        }
    }
}
