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
    submit_with(ip, domains, "user", "", "", "");
}

/// `submit` with a local part, MAIL FROM / RCPT TO parameters and extra header fields (each
/// ending in CRLF).
fn submit_with(
    ip: &str,
    domains: &[&str],
    local: &str,
    mail_params: &str,
    rcpt_params: &str,
    headers: &str,
) {
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
            "From: rcpt@kurier.test\r\nTo: {local}@{d}\r\n{headers}Subject: case {d}\r\n\r\nhello {d}\r\n."
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
    submit_with(
        &ip,
        &["ee.test", "plain.test"],
        "strict",
        " REQUIRETLS",
        "",
        "",
    );
    // RFC 3461: NOTIFY=NEVER, no bounce even for null MX.
    submit_with(&ip, &["nullmx.test"], "never", "", " NOTIFY=NEVER", "");

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
        stripped.contains("Status: 5.7.4") && stripped.contains("did not offer encryption"),
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
    // Both null MX messages failed at their first attempt, without any retry. The second was
    // submitted last: on a loaded machine its attempt may come after the log above was read.
    support::wait_until(Duration::from_secs(30), "both null MX attempts", || {
        server
            .stderr()
            .lines()
            .filter(|l| l.contains("domain=nullmx.test ") && l.contains("delivery attempt"))
            .count()
            >= 2
    });
    let log = server.stderr();
    let null_attempts: String = log
        .lines()
        .filter(|l| l.contains("domain=nullmx.test ") && l.contains("delivery attempt"))
        .collect::<Vec<_>>()
        .join("\n");
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

/// TR-03108-P module B at the level that matters — does mail go out? — with the upstreams a
/// real installation has: a recursive resolver that does not validate (an ISP's or systemd's),
/// and, as in a lab, the authoritative server answering directly. Kurier's own validator
/// decides: every positive case (algorithms 8, 13, 14, 15, KSK/ZSK, NSEC3) is delivered with
/// DANE, the insecure ones (algorithm 16, an unsupported DS algorithm, a signed alias to an
/// unsigned host) with opportunistic TLS, and every broken zone's mail stays queued, never
/// sent; no MTA-STS policy is fetched from a zone whose keys are broken.
fn module_b_delivery(upstream: fn(&kurier_testworld::Dns) -> std::net::SocketAddr) {
    use kurier_testworld::Signing;
    let p0 = "{postfix:0}";
    let with_dane = |z: Zone| {
        z.record("@", "MX", "10 mx").record("mx", "A", p0).record(
            "_25._tcp.mx",
            "TLSA",
            "{tlsa-postfix:0}",
        )
    };
    // Zones whose every answer is bogus also publish MTA-STS and TLSRPT (HTTPS), pointing at
    // a listener that counts connections: nobody may fetch a policy from them or send them a
    // report.
    let sts_ip = "{ip:120}";
    let all_bogus = |z: Zone| {
        let rua = format!("\"v=TLSRPTv1; rua=https://mta-sts.{}/tlsrpt\"", z.name);
        with_dane(z)
            .record("_mta-sts", "TXT", "\"v=STSv1; id=1\"")
            .record("_smtp._tls", "TXT", &rua)
            .record("mta-sts", "A", sts_ip)
    };
    let dane = [
        ("alg8.test", Zone::signed_rsa("alg8.test")),
        ("alg13.test", Zone::signed("alg13.test")),
        (
            "alg14.test",
            Zone::signed_with("alg14.test", Signing::Ecdsa384),
        ),
        (
            "alg15.test",
            Zone::signed_with("alg15.test", Signing::Ed25519),
        ),
        ("kskzsk.test", Zone::signed("kskzsk.test").ksk_zsk()),
        ("nsec3.test", Zone::signed("nsec3.test").nsec3(0)),
    ];
    let opportunistic = [
        (
            "alg16.test",
            Zone::signed_with("alg16.test", Signing::Ed448),
        ),
        (
            "alg100.test",
            Zone::signed("alg100.test").broken(Breakage::UnsupportedDsAlgorithm),
        ),
    ];
    let bogus = [
        ("csk.test", Breakage::BadDnskeySig, false),
        ("split.test", Breakage::BadDnskeySig, true),
        ("exp-dnskey.test", Breakage::ExpiredRrsigOn("DNSKEY"), false),
        ("fut-dnskey.test", Breakage::FutureRrsigOn("DNSKEY"), false),
        ("strangerds.test", Breakage::DsWithoutKey, false),
        ("nokey.test", Breakage::MissingDnskey, false),
    ];
    let partly_bogus = [
        ("exp-mx.test", Breakage::ExpiredRrsigOn("MX")),
        ("exp-a.test", Breakage::ExpiredRrsigOn("A")),
        ("fut-tlsa.test", Breakage::FutureRrsigOn("TLSA")),
        ("stripped.test", Breakage::StrippedTlsa),
    ];
    let mut delivered: Vec<&str> = dane.iter().chain(&opportunistic).map(|(d, _)| *d).collect();
    // Only its TXT records are bogus: the mail goes with DANE, but neither its MTA-STS policy
    // nor a TLSRPT report may be trusted to their bogus pointers.
    delivered.extend(["viaplain.test", "exp-txt.test"]);
    // A host without any address is a routing failure (4.4.4), not a DNSSEC one.
    let held: Vec<&str> = bogus
        .iter()
        .map(|(d, ..)| *d)
        .chain(partly_bogus.iter().map(|(d, _)| *d))
        .chain(["noaddr.test"])
        .collect();
    let mut builder = World::builder()
        .zone(
            Zone::signed("viaplain.test")
                .record("@", "MX", "10 mail")
                .record("mail", "CNAME", "mx.plainhost.test."),
        )
        .zone(Zone::unsigned("plainhost.test").record("mx", "A", p0))
        .zone(
            Zone::signed("noaddr.test")
                .record("@", "MX", "10 mx")
                .record("mx", "TXT", "\"no address here\""),
        );
    for (_, z) in dane {
        builder = builder.zone(with_dane(z));
    }
    for (_, z) in opportunistic {
        builder = builder.zone(with_dane(z));
    }
    for (d, b, split) in bogus {
        let z = Zone::signed(d).broken(b);
        builder = builder.zone(all_bogus(if split { z.ksk_zsk() } else { z }));
    }
    for (d, b) in partly_bogus {
        // exp-mx.test's reports come to us: its bogus MX RRset must be in them.
        let rua = "\"v=TLSRPTv1; rua=mailto:rcpt@kurier.test\"";
        builder =
            builder.zone(with_dane(Zone::signed(d).broken(b)).record("_smtp._tls", "TXT", rua));
    }
    builder = builder.zone(all_bogus(
        Zone::signed("exp-txt.test").broken(Breakage::ExpiredRrsigOn("TXT")),
    ));
    let all: Vec<&str> = delivered.iter().chain(&held).copied().collect();
    let world = builder
        .postfix(PostfixSpec::receiver("mx.good.test", &all))
        .build()
        .unwrap();
    let sts = std::net::TcpListener::bind((world.net.ip(120), 443)).unwrap();
    sts.set_nonblocking(true).unwrap();

    let dns = world.dns().clone();
    let ip = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
         [delivery]\nretry_min_secs = 1\nretry_max_secs = 2\ntimeout_secs = 5\n",
        upstream(&dns),
        dns.trust_anchor_ds.display()
    );
    let config = support::configured(dir.path(), &ip, "", &extra);
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("DNSSEC validation works");
    let start = server.stderr();
    let start = start
        .lines()
        .find(|l| l.contains("DNSSEC validation works"))
        .unwrap();
    assert!(
        start.contains("libunbound") && start.contains("from the trust anchor"),
        "which validator, from which anchor: {start}"
    );
    submit(&ip, &all);

    let p0 = &world.postfix[0];
    p0.wait_for_messages(delivered.len(), Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{}\n{}", e.0, server.stderr()));
    for d in &held {
        support::wait_until(Duration::from_secs(30), d, || {
            server.stderr().matches(&format!("domain={d} ")).count() >= 2
        });
    }
    let got: Vec<String> = p0.messages().iter().map(|m| subject_of(m)).collect();
    let log = server.stderr();
    for d in &delivered {
        assert!(
            got.contains(&d.to_string()),
            "{d} not delivered: {got:?}\n{log}"
        );
    }
    for d in &held {
        assert!(!got.contains(&d.to_string()), "{d} must never be sent");
    }
    for (d, want) in [
        ("alg8.test", "dane-ee"),
        ("alg15.test", "dane-ee"),
        ("kskzsk.test", "dane-ee"),
        ("alg16.test", "dane=\"none\""),
        ("alg100.test", "dane=\"none\""),
        ("viaplain.test", "dane=\"none\""),
    ] {
        assert!(
            log.lines().any(|l| l.contains(&format!("domain={d} "))
                && l.contains(want)
                && l.contains("tls=TLSv1.3")),
            "{d}: {want}\n{log}"
        );
    }
    let noaddr: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("domain=noaddr.test "))
        .collect();
    assert!(
        noaddr
            .iter()
            .all(|l| l.contains("has no IPv4 or IPv6 address") && !l.contains("bogus")),
        "{noaddr:?}"
    );
    // Held, not bounced: still in the queue.
    let (code, out, _) = support::run(&["queue", "list", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0);
    for d in &held {
        assert!(out.contains(&format!("user@{d}")), "{d} not queued:\n{out}");
    }
    // The day's TLSRPT run reports to nobody whose records are bogus. (Reports are signed.)
    support::admin(&config, &["dkim", "generate", "kurier.test"], "");
    let reports = support::send_todays_reports(&config);
    for d in bogus.iter().map(|(d, ..)| *d).chain(["exp-txt.test"]) {
        assert!(!reports.contains(&format!("sent      {d}")), "{reports}");
    }
    // Its bogus _mta-sts record is a reported failure, not "no policy" (issue 18 item 4).
    let events = support::tls_events(dir.path());
    assert!(
        events.iter().any(|e| e.policy_domain == "exp-txt.test"
            && e.policy_type.as_str() == "sts"
            && e.failure.map(|f| f.as_str()) == Some("dnssec-invalid")),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| e.policy_domain == "exp-mx.test"
            && e.policy_type.as_str() == "tlsa"
            && e.failure.map(|f| f.as_str()) == Some("dnssec-invalid")),
        "a bogus MX RRset is reported: {events:?}"
    );
    assert!(
        reports.contains("sent      exp-mx.test → mailto:rcpt@kurier.test"),
        "{reports}"
    );
    let txt = reports
        .lines()
        .find(|l| l.contains("exp-txt.test"))
        .unwrap_or_else(|| panic!("{reports}"));
    assert!(txt.contains("no report") && txt.contains("bogus"), "{txt}");
    assert!(
        sts.accept().is_err(),
        "an MTA-STS policy was fetched from, or a report sent to, a bogus zone"
    );
}

#[test]
fn b02_b03_module_b_delivery_through_a_non_validating_resolver() {
    module_b_delivery(|dns| dns.plain_resolver);
}

#[test]
fn b02_b03_module_b_delivery_with_the_authoritative_server_answering_directly() {
    module_b_delivery(|dns| dns.authoritative);
}

/// DNS-1, DANE-7 in `trust_ad` mode: the local resolver stops validating while Kurier runs.
/// The next probe notices; outbound delivery holds mail (queued, not sent without DANE) and
/// `/metrics` shows it; when the resolver validates again, the mail goes, with DANE. Each
/// change is logged once, not at every probe.
#[test]
fn dns1_trust_ad_resolver_that_stops_validating_holds_mail_until_it_validates_again() {
    let world = World::builder()
        .zone(signed_to("good.test", "{postfix:0}", &["{tlsa-postfix:0}"]))
        .postfix(PostfixSpec::receiver("mx.good.test", &["good.test"]))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let relay =
        kurier_testworld::relay::DnsRelay::start(world.net.addr(121, 53), dns.resolver).unwrap();
    let ip = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[dns]\ndnssec = \"trust_ad\"\nupstream = [\"{}\"]\ntimeout_secs = 2\nprobe_interval_secs = 1\n\
         [delivery]\nretry_min_secs = 1\nretry_max_secs = 2\ntimeout_secs = 5\n",
        world.net.ip(121)
    );
    let config = support::configured(dir.path(), &ip, "", &extra);
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("DNSSEC validation works");
    let metrics = || {
        let out = std::process::Command::new("curl")
            .args(["-sk", &format!("https://{ip}:8443/metrics")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(metrics().contains("kurier_dnssec_validator_working{mode=\"trust_ad\"} 1\n"));

    relay.switch_to(dns.plain_resolver);
    server.wait_for_log("DNSSEC validation fails");
    assert!(metrics().contains("kurier_dnssec_validator_working{mode=\"trust_ad\"} 0\n"));
    submit(&ip, &["good.test"]);
    // Several probes fail meanwhile; the mail waits.
    std::thread::sleep(Duration::from_secs(4));
    let p0 = &world.postfix[0];
    assert!(
        p0.messages().is_empty(),
        "sent while DNSSEC could not be trusted"
    );
    let (_, queue, _) = support::run(&["queue", "list", "--config", config.to_str().unwrap()]);
    assert!(queue.contains("user@good.test"), "{queue}");

    relay.switch_to(dns.resolver);
    p0.wait_for_messages(1, Duration::from_secs(30)).unwrap();
    let log = server.stderr();
    assert_eq!(log.matches("DNSSEC validation fails").count(), 1, "{log}");
    assert_eq!(log.matches("DNSSEC validation works").count(), 2, "{log}");
    let fails = log
        .lines()
        .find(|l| l.contains("DNSSEC validation fails"))
        .unwrap();
    assert!(
        fails.contains("does not validate") && fails.contains("fix:"),
        "{fails}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("domain=good.test ") && l.contains("dane-ee")),
        "{log}"
    );
}

/// Bad DNS settings are one clear line each: a garbage trust anchor stops the start (like any
/// configuration error; queued mail stays in the store); an upstream that answers REFUSED or
/// is not there keeps the server running with delivery held, and says why once.
#[test]
fn dns1_a_garbage_anchor_a_refusing_and_a_missing_upstream_are_one_line_each() {
    let world = World::builder()
        .zone(signed_to("good.test", "{ip:25}", &[]))
        .build()
        .unwrap();
    let ip = world.net.ip(hosts::FREE).to_string();
    let garbage = world.dir().join("garbage.anchor");
    std::fs::write(&garbage, "this is no trust anchor\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\n[delivery]\nretry_min_secs = 1\n",
        world.dns().resolver,
        garbage.display()
    );
    let line = refused_start(dir.path(), &ip, &extra, "trust_anchor");
    assert!(line.contains("line 1") && line.contains("fix:"), "{line}");

    let relay =
        kurier_testworld::relay::DnsRelay::start(world.net.addr(122, 53), world.dns().resolver)
            .unwrap();
    relay.refuse(true);
    for (upstream, says) in [
        (world.net.ip(122).to_string(), "answered REFUSED"),
        (world.net.addr(123, 53).to_string(), "does not answer"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let extra = format!(
            "\n[dns]\nupstream = [\"{upstream}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 1\nprobe_interval_secs = 1\n\
             [delivery]\nretry_min_secs = 1\n",
            world.dns().trust_anchor_ds.display()
        );
        let config = support::configured(dir.path(), &ip, "", &extra);
        let server = Server::configured(dir.path(), &config);
        server.wait_for_log("DNSSEC validation fails");
        submit(&ip, &["good.test"]);
        std::thread::sleep(Duration::from_secs(3));
        let log = server.stderr();
        let fails: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("DNSSEC validation fails"))
            .collect();
        assert_eq!(fails.len(), 1, "{log}");
        assert!(
            fails[0].contains(says) && fails[0].contains("fix:"),
            "{}",
            fails[0]
        );
        assert!(log.lines().all(|l| l.len() < 2000), "no dumps");
        let (_, queue, _) = support::run(&["queue", "list", "--config", config.to_str().unwrap()]);
        assert!(queue.contains("user@good.test"), "{queue}");
        drop(server);
    }
}

/// SMTP-2, RFC 8689 §5: `TLS-Required: No` lets a message past a DANE failure — a message with
/// it and one without, for a domain whose TLSA is bogus: the first is delivered, the second
/// stays queued. Its sessions still count for TLSRPT (only Kurier's own reports are exempt,
/// RFC 8460 §3). With REQUIRETLS as well the header is ignored: the message is held like any
/// other, and where DANE verifies the server its notice names the real reason (the peer lacks
/// REQUIRETLS), not "neither DANE nor MTA-STS".
#[test]
fn smtp2_tls_required_no_passes_a_dane_failure_but_not_with_requiretls() {
    let p0 = "{postfix:0}";
    let world = World::builder()
        .zone(signed_to("badtlsa.test", p0, &["{tlsa-postfix:0}"]).broken(Breakage::BadTlsaRrsig))
        .zone(signed_to("optional.test", p0, &["{tlsa-postfix:0}"]).broken(Breakage::BadTlsaRrsig))
        .zone(signed_to("ee.test", p0, &["{tlsa-postfix:0}"]))
        .postfix(PostfixSpec::receiver(
            "mx.good.test",
            &["badtlsa.test", "optional.test", "ee.test"],
        ))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let ip = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    // Issue 18 item 7: sent from a chosen source address.
    let source = world.net.ip(hosts::FREE + 5);
    let extra = format!(
        "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
         [delivery]\nretry_min_secs = 1\nretry_max_secs = 2\ntimeout_secs = 5\nsource_ipv4 = \"{source}\"\n",
        dns.resolver,
        dns.trust_anchor_ds.display()
    );
    let config = support::configured(dir.path(), &ip, "", &extra);
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("DNSSEC validation works");
    let no = "TLS-Required: No\r\n";
    submit_with(&ip, &["badtlsa.test"], "relaxed", "", "", no);
    submit_with(&ip, &["badtlsa.test"], "held", "", "", "");
    // With RET=HDRS and an ENVID (RFC 3461 §4.3, §4.4), carried typed through the queue.
    submit_with(
        &ip,
        &["badtlsa.test", "ee.test"],
        "strict",
        " REQUIRETLS RET=HDRS ENVID=kurier-envid-7",
        "",
        no,
    );
    submit_with(&ip, &["optional.test"], "relaxed", "", "", no);

    let p0 = &world.postfix[0];
    p0.wait_for_messages(2, Duration::from_secs(60)).unwrap();
    support::wait_until(Duration::from_secs(30), "retries", || {
        server.stderr().matches("domain=badtlsa.test ").count() >= 4
    });
    let got: Vec<String> = p0
        .messages()
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect();
    let to = |a: &str| {
        got.iter()
            .filter(|m| m.contains(&format!("To: {a}")))
            .count()
    };
    assert_eq!(
        to("relaxed@badtlsa.test"),
        1,
        "TLS-Required: No passes the bogus TLSA"
    );
    assert_eq!(to("relaxed@optional.test"), 1);
    assert_eq!(to("held@badtlsa.test"), 0, "without the header it is held");
    assert_eq!(
        to("strict@badtlsa.test"),
        0,
        "REQUIRETLS overrides the header"
    );
    assert_eq!(to("strict@ee.test"), 0, "Postfix does not offer REQUIRETLS");
    let (_, queue, _) = support::run(&["queue", "list", "--config", config.to_str().unwrap()]);
    assert!(
        queue.contains("held@badtlsa.test") && queue.contains("strict@badtlsa.test"),
        "{queue}"
    );
    // The DANE-verified server got no message, and the notice says why.
    support::wait_until(Duration::from_secs(30), "the REQUIRETLS notice", || {
        support::inbox(dir.path(), "rcpt@kurier.test")
            .iter()
            .any(|m| m.contains("rfc822; strict@ee.test"))
    });
    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    let notice = inbox
        .iter()
        .find(|m| m.contains("rfc822; strict@ee.test"))
        .unwrap();
    assert!(notice.contains("Status: 5.7.30"), "{notice}");
    assert!(!notice.contains("neither DANE nor"), "{notice}");
    assert!(
        notice.contains("Original-Envelope-Id: kurier-envid-7")
            && notice.contains("text/rfc822-headers")
            && !notice.contains("hello ee.test"),
        "RET=HDRS and ENVID: {notice}"
    );
    // A sender's TLS-Required: No session is a TLS outcome like any other.
    let events = support::tls_events(dir.path());
    let optional: Vec<_> = events
        .iter()
        .filter(|e| e.policy_domain == "optional.test")
        .collect();
    assert!(
        optional
            .iter()
            .any(|e| e.failure.map(|f| f.as_str()) == Some("dnssec-invalid"))
            && optional.iter().any(|e| e.failure.is_none()),
        "the bogus TLSA and the best-effort session: {optional:?}"
    );

    // Issue 18 item 1: the operator decides per account — strip the header (the message is
    // then held like any other), or refuse the message.
    let rule = |r: &str| {
        support::admin(
            &config,
            &["user", "tls-required-header", "rcpt@kurier.test", r],
            "",
        )
    };
    rule("strip");
    let tries = || server.stderr().matches("domain=optional.test ").count();
    let before = tries();
    submit_with(&ip, &["optional.test"], "stripped", "", "", no);
    rule("refuse");
    let mut c = Client::connect_tls(format!("{ip}:2465").parse().unwrap(), "mx.kurier.test");
    c.cmd("EHLO client.test");
    assert!(
        c.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw")))
            .starts_with("235")
    );
    assert!(c.cmd("MAIL FROM:<rcpt@kurier.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<refused@optional.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("From: rcpt@kurier.test\r\nTo: refused@optional.test\r\nTLS-Required: No\r\nSubject: x\r\n\r\nhi\r\n.");
    assert!(
        r.starts_with("550 5.7.1") && r.contains("TLS-Required"),
        "{r}"
    );
    c.cmd("QUIT");
    support::wait_until(
        Duration::from_secs(30),
        "the stripped message tried twice",
        || tries() >= before + 2,
    );
    let to_stripped = p0
        .messages()
        .iter()
        .filter(|m| String::from_utf8_lossy(m).contains("To: stripped@optional.test"))
        .count();
    assert_eq!(
        to_stripped, 0,
        "without the header, the bogus TLSA holds it"
    );
    let (_, queue, _) = support::run(&["queue", "list", "--config", config.to_str().unwrap()]);
    assert!(
        queue.contains("stripped@optional.test") && !queue.contains("refused@optional.test"),
        "{queue}"
    );
}

/// Issue 18 item 7: a source address this machine does not have would fail every attempt;
/// the start says so in one line instead.
#[test]
fn a_source_address_not_on_this_machine_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "\n[dns]\nupstream = [\"127.0.0.1\"]\n[delivery]\nsource_ipv4 = \"192.0.2.25\"\n";
    let line = refused_start(dir.path(), "127.0.30.41", extra, "delivery.source_ipv4");
    assert!(
        line.contains("192.0.2.25") && line.contains("fix:"),
        "{line}"
    );
}

/// Starts `kurier serve` with `extra` configuration, which must refuse to start; returns the
/// error line that names `key`.
fn refused_start(dir: &std::path::Path, ip: &str, extra: &str, key: &str) -> String {
    let config = support::configured(dir, ip, "", extra);
    let mut server = Server::start(&["serve", "--config", config.to_str().unwrap()], dir);
    let status = server.wait_exit(Duration::from_secs(20)).expect("exits");
    assert!(!status.success());
    let err = server.stderr();
    err.lines()
        .find(|l| l.contains(key))
        .unwrap_or_else(|| panic!("{err}"))
        .to_string()
}

/// DANE-7 and issue 18 item 3: a TLSA lookup that gets no answer holds the mail like a bogus
/// one — never clear text — but says what happened: 4.4.3, "could not be looked up", not
/// "failed its DNSSEC check".
#[test]
fn dane7_a_tlsa_lookup_without_answer_defers_with_4_4_3_and_says_so() {
    let world = World::builder()
        .zone(signed_to(
            "slow.test",
            "{ip:25}",
            &["3 1 1 0000000000000000000000000000000000000000000000000000000000000000"],
        ))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let relay =
        kurier_testworld::relay::DnsRelay::start(world.net.addr(124, 53), dns.resolver).unwrap();
    relay.drop_type(52); // TLSA
    let ip = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 2\n\
         [delivery]\nretry_min_secs = 300\ntimeout_secs = 5\n",
        world.net.ip(124),
        dns.trust_anchor_ds.display()
    );
    let config = support::configured(dir.path(), &ip, "", &extra);
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("DNSSEC validation works");
    submit(&ip, &["slow.test"]);
    support::wait_until(Duration::from_secs(30), "the attempt", || {
        server.stderr().contains("domain=slow.test ")
    });
    let (_, queue, _) = support::run(&["queue", "list", "--config", config.to_str().unwrap()]);
    assert!(queue.contains("user@slow.test"), "{queue}");
    assert!(
        queue.contains("4.4.3") && queue.contains("could not be looked up"),
        "{queue}"
    );
    assert!(!queue.contains("failed their DNSSEC check"), "{queue}");
}
