//! Outbound delivery against a real DNSSEC world (NSD + validating unbound, private root) and
//! real Postfix receivers: the cases of TR-03108-P modules B and C (DNS-1, DANE-7..DANE-12,
//! SMTP-2, SMTP-5, MUA-9). Mail is submitted to Kurier on 465 and must arrive — or, where DANE
//! or DNSSEC forbids it, must never arrive and come back to the sender with a readable reason.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use kurier_testworld::ca::{Ca, KeyKind, LeafSpec};
use kurier_testworld::net::hosts;
use kurier_testworld::{Breakage, PostfixSpec, World, Zone};
use support::{Client, Server, plain};

/// Domains whose mail P0 (mx.good.test) receives.
const AT_P0: &[&str] = &[
    "good.test",
    "ee.test",
    "sha512.test",
    "full.test",
    "multi.test",
    "unusable.test",
    "plain.test",
    "implicit.test",
    "cname.test",
    "otherca.test",
    "wrongee.test",
    "badsel.test",
    "agility.test",
    "tawrong.test",
    "badtlsa.test",
    "expiredsig.test",
    "baddnskey.test",
];

fn signed_to(domain: &str, target_ip: &str, tlsa: &[&str]) -> Zone {
    let mut z = Zone::signed(domain)
        .record("@", "MX", "10 mx")
        .record("mx", "A", target_ip);
    for t in tlsa {
        z = z.record("_25._tcp.mx", "TLSA", t);
    }
    z
}

/// Submits one message per domain to `user@<domain>` as `rcpt@kurier.test` on 465.
fn submit(ip: &str, domains: &[&str]) {
    submit_with(ip, domains, "user", "", "");
}

/// `submit` with a local part and MAIL FROM / RCPT TO parameters.
fn submit_with(ip: &str, domains: &[&str], local: &str, mail_params: &str, rcpt_params: &str) {
    let mut c = Client::connect_tls(format!("{ip}:2465").parse().unwrap(), "mx.kurier.test");
    c.cmd("EHLO client.test");
    let auth = c.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw")));
    assert!(auth.starts_with("235"), "{auth}");
    for d in domains {
        assert!(
            c.cmd(&format!("MAIL FROM:<rcpt@kurier.test>{mail_params}"))
                .starts_with("250")
        );
        let r = c.cmd(&format!("RCPT TO:<{local}@{d}>{rcpt_params}"));
        assert!(r.starts_with("250"), "{d}: {r}");
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd(&format!(
            "From: rcpt@kurier.test\r\nTo: {local}@{d}\r\nSubject: case {d}\r\n\r\nhello {d}\r\n."
        ));
        assert!(r.starts_with("250"), "{d}: {r}");
    }
    c.cmd("QUIT");
}

fn subject_of(m: &[u8]) -> String {
    let s = String::from_utf8_lossy(m);
    s.lines()
        .find_map(|l| l.strip_prefix("Subject: case "))
        .unwrap_or("")
        .to_string()
}

#[test]
fn tr03108_p_modules_b_and_c_outbound_dane_and_dnssec() {
    let other = Ca::new("Other", KeyKind::P256).unwrap();
    let expired = other
        .issue(&LeafSpec::new(&["mx.expiredcert.test"]).expired())
        .unwrap();
    let wrong = "3 1 1 0000000000000000000000000000000000000000000000000000000000000000";
    let p0 = "{postfix:0}";
    let world = World::builder()
        // Authenticated and delivered (DANE-8, DANE-10, DANE-11).
        .zone(signed_to("good.test", p0, &["{tlsa-ca}"]))
        .zone(signed_to("ee.test", p0, &["{tlsa-postfix:0}"]))
        .zone(signed_to("sha512.test", p0, &["{tlsa-postfix:0:1:2}"]))
        .zone(signed_to("full.test", p0, &["{tlsa-postfix:0:0:0}"]))
        .zone(signed_to("multi.test", p0, &[wrong, "{tlsa-postfix:0}"]))
        .zone(
            Zone::signed("cname.test")
                .record("@", "MX", "10 mail")
                .record("mail", "CNAME", "mx.good.test."),
        )
        .zone(signed_to("expiredcert.test", "{postfix:1}", &["{tlsa-postfix:1}"]))
        // Secure but unusable: TLS required, unauthenticated (DANE-9).
        .zone(signed_to("unusable.test", p0, &["1 1 1 {hash-postfix:0}"]))
        // Not authenticated: deferred, never sent (DANE-8, DANE-10).
        .zone(signed_to("otherca.test", p0, &[&other.tlsa_2_1_1().unwrap()]))
        .zone(signed_to("wrongee.test", p0, &[wrong]))
        .zone(signed_to("badsel.test", p0, &["3 0 1 {hash-postfix:0}"]))
        // RFC 7671 §9: the SHA2-512 record (wrong) outranks the matching SHA2-256 one.
        .zone(signed_to(
            "agility.test",
            p0,
            &["{tlsa-postfix:0}", "3 1 2 00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"],
        ))
        .zone(signed_to("tawrong.test", p0, &["{tlsa-ca}"]))
        .zone(signed_to("stripped.test", "{postfix:2}", &[wrong]))
        // Bogus DNSSEC: deferred (DNS-1, DANE-7).
        .zone(signed_to("badtlsa.test", p0, &["{tlsa-postfix:0}"]).broken(Breakage::BadTlsaRrsig))
        .zone(signed_to("expiredsig.test", p0, &["{tlsa-postfix:0}"]).broken(Breakage::ExpiredRrsig))
        .zone(signed_to("baddnskey.test", p0, &["{tlsa-postfix:0}"]).broken(Breakage::BadDnskeySig))
        // No DANE: opportunistic TLS, or clear text if the peer has no STARTTLS (SMTP-2).
        .zone(Zone::unsigned("plain.test").record("@", "MX", "10 mx").record("mx", "A", p0))
        // No MX at all: the domain itself is the implicit MX (RFC 5321 §5.1).
        .zone(Zone::unsigned("implicit.test").record("@", "A", p0))
        .zone(Zone::unsigned("clear.test").record("@", "MX", "10 mx").record("mx", "A", "{postfix:2}"))
        // Null MX (SMTP-5) and an MX nobody answers at.
        .zone(Zone::signed("nullmx.test").record("@", "MX", "0 ."))
        .zone(Zone::unsigned("unreach.test").record("@", "MX", "10 mx").record("mx", "A", "{ip:99}"))
        .postfix(PostfixSpec::receiver("mx.good.test", AT_P0))
        .postfix(PostfixSpec::receiver("mx.expiredcert.test", &["expiredcert.test"]).certificate(expired))
        .postfix(PostfixSpec::receiver("mx.clear.test", &["clear.test", "stripped.test"]).starttls(false))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let ip = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[dns]\ndnssec = \"validate\"\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
         [delivery]\nretry_min_secs = 1\nretry_max_secs = 2\nlifetime_secs = 20\ndelay_warning_secs = 3\ntimeout_secs = 5\n",
        dns.resolver,
        dns.trust_anchor_dnskey.display()
    );
    let config = support::configured(dir.path(), &ip, "", &extra);
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("outbound delivery started");

    let delivered_p0 = [
        "good.test",
        "ee.test",
        "sha512.test",
        "full.test",
        "multi.test",
        "cname.test",
        "unusable.test",
        "plain.test",
        "implicit.test",
    ];
    let deferred = [
        "otherca.test",
        "wrongee.test",
        "badsel.test",
        "agility.test",
        "tawrong.test",
        "stripped.test",
        "badtlsa.test",
        "expiredsig.test",
        "baddnskey.test",
    ];
    let mut all: Vec<&str> = delivered_p0.to_vec();
    all.extend([
        "expiredcert.test",
        "clear.test",
        "nullmx.test",
        "unreach.test",
    ]);
    all.extend(deferred);
    submit(&ip, &all);
    // RFC 8689: REQUIRETLS needs a verified peer that supports it — Postfix does not, and
    // plain.test has no DANE: both come back at once (5.7.30).
    submit_with(&ip, &["ee.test", "plain.test"], "strict", " REQUIRETLS", "");
    // RFC 3461: NOTIFY=NEVER, no bounce even for null MX.
    submit_with(&ip, &["nullmx.test"], "never", "", " NOTIFY=NEVER");

    let p0 = &world.postfix[0];
    if let Err(e) = p0.wait_for_messages(delivered_p0.len(), Duration::from_secs(60)) {
        let attempts: Vec<String> = server
            .stderr()
            .lines()
            .filter(|l| l.contains("delivery"))
            .map(str::to_string)
            .collect();
        panic!(
            "{}\nKurier:\n{}",
            &e.0[..e.0.len().min(300)],
            attempts.join("\n")
        );
    }
    world.postfix[1]
        .wait_for_messages(1, Duration::from_secs(30))
        .unwrap();
    world.postfix[2]
        .wait_for_messages(1, Duration::from_secs(30))
        .unwrap();
    // Every deferred case has been tried at least twice before we look at the mailboxes.
    for d in deferred {
        support::wait_until(Duration::from_secs(30), d, || {
            server.stderr().matches(&format!("domain={d}")).count() >= 2
        });
    }
    let log = server.stderr();
    let got: Vec<String> = p0.messages().iter().map(|m| subject_of(m)).collect();
    for d in delivered_p0 {
        assert!(
            got.contains(&d.to_string()),
            "{d} not delivered: {got:?}\n{log}"
        );
    }
    for d in deferred {
        assert!(
            !got.contains(&d.to_string()),
            "{d} must never be sent: {got:?}"
        );
    }
    for m in p0.messages() {
        assert!(
            !String::from_utf8_lossy(&m).contains("To: strict@"),
            "REQUIRETLS ignored"
        );
    }
    assert!(
        world.postfix[2]
            .messages()
            .iter()
            .all(|m| subject_of(m) == "clear.test"),
        "stripped.test must not go to a server without STARTTLS"
    );
    // How each went, from the log line of the attempt.
    let line = |d: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("domain={d} ")) && l.contains("delivery attempt"))
            .map(str::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (d, want) in [
        ("good.test", "verified=\"dane-ta\""),
        ("cname.test", "verified=\"dane-ta\""),
        ("ee.test", "verified=\"dane-ee\""),
        ("sha512.test", "verified=\"dane-ee\""),
        ("full.test", "verified=\"dane-ee\""),
        ("multi.test", "verified=\"dane-ee\""),
        ("expiredcert.test", "verified=\"dane-ee\""),
        ("unusable.test", "dane=\"tls-required\""),
        ("plain.test", "dane=\"none\""),
    ] {
        let l = line(d);
        assert!(l.contains(want) && l.contains("tls=TLSv1.3"), "{d}: {l}");
    }
    assert!(
        line("clear.test").contains("tls=none"),
        "{}",
        line("clear.test")
    );
    // Postfix saw TLS where it should ("ESMTPS" in its Received header), and not where the
    // peer offered none.
    for m in p0.messages() {
        let s = String::from_utf8_lossy(&m);
        assert!(s.contains("with ESMTPS id"), "{s}");
    }
    let clear = String::from_utf8_lossy(&world.postfix[2].messages()[0]).into_owned();
    assert!(clear.contains("with ESMTP id"), "{clear}");

    // Bounces: null MX at once (5.1.10); the others when the lifetime (20 s) is over, each
    // with its reason in plain words and the crypto code 5.7.5 (MUA-9).
    support::wait_until(Duration::from_secs(60), "all DSNs", || {
        let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
        inbox
            .iter()
            .filter(|m| m.contains("Action: failed"))
            .count()
            >= deferred.len() + 4
    });
    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    let failed_to = |a: &str| {
        inbox
            .iter()
            .find(|m| m.contains("Action: failed") && m.contains(&format!("rfc822; {a}")))
            .cloned()
            .unwrap_or_else(|| panic!("no DSN for {a}"))
    };
    let failed = |d: &str| failed_to(&format!("user@{d}"));
    for d in ["ee.test", "plain.test"] {
        let m = failed_to(&format!("strict@{d}"));
        assert!(
            m.contains("Status: 5.7.30") && m.contains("REQUIRETLS"),
            "{m}"
        );
    }
    assert!(
        !inbox.iter().any(|m| m.contains("never@nullmx.test")),
        "NOTIFY=NEVER means no notice"
    );
    assert!(server.stderr().contains("recipient=never@nullmx.test"));
    let null = failed("nullmx.test");
    assert!(
        null.contains("Status: 5.1.10") && null.contains("accepts no e-mail"),
        "{null}"
    );
    let dane = failed("wrongee.test");
    assert!(dane.contains("Status: 5.7.5"), "{dane}");
    assert!(dane.contains("does not match the DANE record"), "{dane}");
    assert!(dane.contains("Content-Type: message/rfc822") && dane.contains("hello wrongee.test"));
    let stripped = failed("stripped.test");
    assert!(
        stripped.contains("Status: 5.7.5") && stripped.contains("did not offer encryption"),
        "{stripped}"
    );
    let bogus = failed("expiredsig.test");
    assert!(
        bogus.contains("Status: 5.7.5") || bogus.contains("Status: 5.4.3"),
        "{bogus}"
    );
    assert!(
        bogus.contains("DNSSEC") || bogus.contains("validated"),
        "{bogus}"
    );
    let unreach = failed("unreach.test");
    assert!(unreach.contains("could not be reached"), "{unreach}");
    assert!(
        inbox
            .iter()
            .any(|m| m.contains("Action: delayed") && m.contains("user@unreach.test")),
        "a delay warning came first"
    );
    // Both null MX messages failed at their first attempt, without any retry.
    let null_attempts = line("nullmx.test");
    assert_eq!(
        null_attempts.matches("delivery attempt").count(),
        2,
        "{null_attempts}"
    );
    assert!(!null_attempts.contains("deferred"));
    // Nothing is left in the queue.
    let (code, out, _) = support::run(&["queue", "list", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!out.contains("@"), "queue not empty:\n{out}");
}
