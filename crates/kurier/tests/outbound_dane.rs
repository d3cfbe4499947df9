//! Outbound delivery against a real DNSSEC world (NSD + validating unbound, private root) and
//! real Postfix receivers: the cases of TR-03108-P modules B and C (DNS-1, DANE-7..DANE-12,
//! SMTP-2, SMTP-5, MUA-9). Mail is submitted to Kurier on 465 and must arrive — or, where DANE
//! or DNSSEC forbids it, must never arrive and come back to the sender with a readable reason.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

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

/// Submits one message per domain to `rcpt@kurier.test`'s submission port (465).
fn submit(ip: &str, domains: &[&str]) {
    let mut c = Client::connect_tls(format!("{ip}:2465").parse().unwrap(), "mx.kurier.test");
    c.cmd("EHLO client.test");
    let auth = c.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw")));
    assert!(auth.starts_with("235"), "{auth}");
    for d in domains {
        assert!(c.cmd("MAIL FROM:<rcpt@kurier.test>").starts_with("250"));
        let r = c.cmd(&format!("RCPT TO:<user@{d}>"));
        assert!(r.starts_with("250"), "{d}: {r}");
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd(&format!(
            "From: rcpt@kurier.test\r\nTo: user@{d}\r\nSubject: case {d}\r\n\r\nhello {d}\r\n."
        ));
        assert!(r.starts_with("250"), "{d}: {r}");
    }
    c.cmd("QUIT");
}

/// The sender's INBOX (where DSNs land), read from the store while the server runs.
fn inbox(dir: &Path) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite:{}", dir.join("data/kurier.db").display());
        let store = kurier_store::open(&url).await.unwrap();
        let kurier_store::Recipient::Local(accounts) =
            store.resolve("rcpt@kurier.test").await.unwrap()
        else {
            panic!("no account")
        };
        let mb = store
            .mailbox(accounts[0].id, "INBOX")
            .await
            .unwrap()
            .unwrap();
        let mut out = Vec::new();
        for m in store.messages(mb.id).await.unwrap() {
            let body = store.message_body(mb.id, m.uid).await.unwrap().unwrap();
            out.push(String::from_utf8_lossy(&body).into_owned());
        }
        out
    })
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
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
        wait_until(Duration::from_secs(30), d, || {
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
    wait_until(Duration::from_secs(60), "all DSNs", || {
        let inbox = inbox(dir.path());
        inbox
            .iter()
            .filter(|m| m.contains("Action: failed"))
            .count()
            >= deferred.len() + 2
    });
    let inbox = inbox(dir.path());
    let failed = |d: &str| {
        inbox
            .iter()
            .find(|m| m.contains("Action: failed") && m.contains(&format!("user@{d}")))
            .cloned()
            .unwrap_or_else(|| panic!("no DSN for {d}"))
    };
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
    // The null MX bounce came without any retry.
    assert_eq!(line("nullmx.test").matches("delivery attempt").count(), 1);
    // Nothing is left in the queue.
    let (code, out, _) = support::run(&["queue", "list", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(!out.contains("@"), "queue not empty:\n{out}");
}
