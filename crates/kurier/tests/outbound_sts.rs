//! MTA-STS outbound (RFC 8461; TR-03108 STS-4..STS-7, DANE-12, TR-03108-P module J) against
//! the test world: policy hosts behind TLS (Python's http.server with world certificates),
//! Postfix receivers with good, expired, foreign-CA and misnamed certificates.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use kurier_testworld::ca::{Ca, KeyKind, LeafSpec};
use kurier_testworld::net::hosts;
use kurier_testworld::{PostfixSpec, World, Zone};
use support::{Client, Server, plain};

const ENFORCE: &str = "version: STSv1\nmode: enforce\nmx: mx.{d}\nmax_age: 86400\n";

fn policy(domain: &str, text: &str) -> String {
    text.replace("{d}", domain)
}

/// An unsigned zone whose MX is `mx.<domain>` at `mx_ip`, with an `_mta-sts` record and, if
/// `policy_host` is given, `mta-sts.<domain>` at that address.
fn sts_zone(domain: &str, mx_ip: &str, policy_host: Option<u8>) -> Zone {
    let mut z = Zone::unsigned(domain)
        .record("@", "MX", "10 mx")
        .record("mx", "A", mx_ip)
        .record("_mta-sts", "TXT", "\"v=STSv1; id=1;\"");
    if let Some(h) = policy_host {
        z = z.record("mta-sts", "A", &format!("{{ip:{h}}}"));
    }
    z
}

#[test]
fn sts5_module_j_outbound_enforcement_testing_mode_cache_and_fetch_failures() {
    let lab = Ca::new("Lab", KeyKind::P256).unwrap();
    let other = Ca::new("Other", KeyKind::P256).unwrap();
    let expired = lab
        .issue(&LeafSpec::new(&["mx.sts-exp.test"]).expired())
        .unwrap();
    let untrusted = other.leaf(&["mx.sts-ca.test"]).unwrap();
    // CERT-4: two lab certificates naming a CRL; the CRL revokes one of them.
    let crl_url = "http://crl.lab.test/lab.crl";
    let revoked = lab
        .issue(&LeafSpec::new(&["mx.sts-revoked.test"]).crl_url(crl_url))
        .unwrap();
    let not_revoked = lab
        .issue(&LeafSpec::new(&["mx.sts-crlok.test"]).crl_url(crl_url))
        .unwrap();
    let crl = lab.crl(&[&revoked]).unwrap();
    let (p0, p1, p2) = ("{postfix:0}", "{postfix:1}", "{postfix:2}");
    let h = |n: u8| hosts::FREE + 10 + n;
    let mut world = World::builder()
        .zone(sts_zone("sts-good.test", p0, Some(h(0))))
        .zone(sts_zone("sts-san.test", p0, Some(h(1))))
        .zone(sts_zone("sts-notlisted.test", p0, Some(h(2))))
        .zone(sts_zone("sts-testing.test", p2, Some(h(3))))
        .zone(sts_zone("sts-wild.test", p2, Some(h(4))))
        .zone(sts_zone("sts-redir.test", p2, Some(h(5))))
        .zone(sts_zone("sts-exp.test", p1, Some(h(6))))
        .zone(sts_zone("sts-ca.test", p2, Some(h(7))))
        .zone(sts_zone("sts-revoked.test", "{postfix:3}", Some(h(9))))
        .zone(sts_zone("sts-crlok.test", "{postfix:4}", Some(h(10))))
        .zone(Zone::unsigned("lab.test").record("crl", "A", &format!("{{ip:{}}}", h(11))))
        // The policy host of sts-cache.test is gone; only the cached policy is left.
        .zone(sts_zone("sts-cache.test", p2, None))
        // DANE-12: a broken TLSA record is not rescued by a valid MTA-STS policy.
        .zone(
            Zone::signed("sts-dane.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", p0)
                .record(
                    "_25._tcp.mx",
                    "TLSA",
                    "3 1 1 0000000000000000000000000000000000000000000000000000000000000000",
                )
                .record("_mta-sts", "TXT", "\"v=STSv1; id=1;\"")
                .record("mta-sts", "A", &format!("{{ip:{}}}", h(8))),
        )
        .postfix(PostfixSpec::receiver(
            "mx.sts-good.test",
            &[
                "sts-good.test",
                "sts-san.test",
                "sts-notlisted.test",
                "sts-dane.test",
            ],
        ))
        .postfix(PostfixSpec::receiver("mx.sts-exp.test", &["sts-exp.test"]).certificate(expired))
        .postfix(
            PostfixSpec::receiver(
                "mx.sts-ca.test",
                &[
                    "sts-ca.test",
                    "sts-testing.test",
                    "sts-wild.test",
                    "sts-redir.test",
                    "sts-cache.test",
                ],
            )
            .certificate(untrusted),
        )
        .postfix(
            PostfixSpec::receiver("mx.sts-revoked.test", &["sts-revoked.test"])
                .certificate(revoked),
        )
        .postfix(
            PostfixSpec::receiver("mx.sts-crlok.test", &["sts-crlok.test"])
                .certificate(not_revoked),
        )
        .build()
        .unwrap();
    let file = ".well-known/mta-sts.txt";
    for (n, d, text) in [
        (0, "sts-good.test", ENFORCE),
        (1, "sts-san.test", ENFORCE),
        (
            2,
            "sts-notlisted.test",
            "version: STSv1\nmode: enforce\nmx: mail.{d}\nmax_age: 86400\n",
        ),
        (
            3,
            "sts-testing.test",
            "version: STSv1\nmode: testing\nmx: mx.{d}\nmax_age: 86400\n",
        ),
        (6, "sts-exp.test", ENFORCE),
        (9, "sts-revoked.test", ENFORCE),
        (10, "sts-crlok.test", ENFORCE),
        (7, "sts-ca.test", ENFORCE),
        (
            8,
            "sts-dane.test",
            "version: STSv1\nmode: enforce\nmx: mx.sts-dane.test\nmax_age: 86400\n",
        ),
    ] {
        let host = format!("mta-sts.{d}");
        world
            .start_https(h(n), &[host.as_str()], &[(file, &policy(d, text))])
            .unwrap();
    }
    // STS-6: a wildcard certificate on the policy host.
    world
        .start_https(
            h(4),
            &["*.sts-wild.test"],
            &[(file, &policy("sts-wild.test", ENFORCE))],
        )
        .unwrap();
    // A redirect (Python answers a folder without "/" with 301): not followed.
    world
        .start_https(
            h(5),
            &["mta-sts.sts-redir.test"],
            &[(
                ".well-known/mta-sts.txt/index.html",
                &policy("sts-redir.test", ENFORCE),
            )],
        )
        .unwrap();

    world.start_http(h(11), &[("lab.crl", &crl)]).unwrap();
    let dns = world.dns().clone();
    let ip = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    // Trusted: the world CA (policy hosts, mx.sts-good.test) and the lab CA (the expired one).
    let cas = dir.path().join("cas.pem");
    std::fs::write(&cas, [world.ca.root_pem(), lab.root_pem()].concat()).unwrap();
    let extra = format!(
        "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\n\
         [delivery]\nretry_min_secs = 1\nretry_max_secs = 2\nextra_ca_file = \"{}\"\n",
        dns.resolver,
        dns.trust_anchor_dnskey.display(),
        cas.display()
    );
    let config = support::configured(dir.path(), &ip, "", &extra);
    seed_cached_policy(
        dir.path(),
        "sts-cache.test",
        &policy("sts-cache.test", ENFORCE),
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("outbound delivery started");

    let all = [
        "sts-good.test",
        "sts-san.test",
        "sts-notlisted.test",
        "sts-testing.test",
        "sts-wild.test",
        "sts-redir.test",
        "sts-exp.test",
        "sts-ca.test",
        "sts-cache.test",
        "sts-dane.test",
        "sts-revoked.test",
        "sts-crlok.test",
    ];
    let mut c = Client::connect_tls(format!("{ip}:2465").parse().unwrap(), "mx.kurier.test");
    c.cmd("EHLO client.test");
    assert!(
        c.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw")))
            .starts_with("235")
    );
    for d in all {
        assert!(c.cmd("MAIL FROM:<rcpt@kurier.test>").starts_with("250"));
        assert!(c.cmd(&format!("RCPT TO:<user@{d}>")).starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        let r = c.cmd(&format!(
            "From: rcpt@kurier.test\r\nTo: user@{d}\r\nSubject: case {d}\r\n\r\nhi\r\n."
        ));
        assert!(r.starts_with("250"), "{r}");
    }
    c.cmd("QUIT");

    let subjects = |i: usize| -> Vec<String> {
        world.postfix[i]
            .messages()
            .iter()
            .map(|m| {
                String::from_utf8_lossy(m)
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: case ").map(str::to_string))
                    .unwrap_or_default()
            })
            .collect()
    };
    let log = || server.stderr();
    support::wait_until(Duration::from_secs(60), "deliveries", || {
        subjects(0).contains(&"sts-good.test".to_string()) && subjects(2).len() >= 3
    });
    for d in [
        "sts-san.test",
        "sts-notlisted.test",
        "sts-exp.test",
        "sts-ca.test",
        "sts-cache.test",
        "sts-dane.test",
        "sts-revoked.test",
    ] {
        support::wait_until(Duration::from_secs(30), d, || {
            log().matches(&format!("domain={d} ")).count() >= 2
        });
    }
    support::wait_until(Duration::from_secs(30), "sts-crlok.test", || {
        !subjects(4).is_empty()
    });
    assert!(
        subjects(3).is_empty(),
        "CERT-4: a revoked certificate gets nothing"
    );
    assert_eq!(subjects(4), ["sts-crlok.test"]);
    let (got0, got1, got2) = (subjects(0), subjects(1), subjects(2));
    let log = log();
    assert_eq!(got0, ["sts-good.test"], "{log}");
    assert!(got1.is_empty(), "J-02: expired certificate: {got1:?}");
    let mut got2 = got2;
    got2.sort();
    assert_eq!(
        got2,
        ["sts-redir.test", "sts-testing.test", "sts-wild.test"],
        "J-03 and the cached policy block; testing mode and failed fetches do not"
    );
    let line = |d: &str| {
        log.lines()
            .filter(|l| l.contains(&format!("domain={d} ")) && l.contains("delivery attempt"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        line("sts-good.test").contains("sts=\"enforce\"")
            && line("sts-good.test").contains("verified=\"pkix\""),
        "{}",
        line("sts-good.test")
    );
    assert!(
        line("sts-dane.test").contains("dane=\"required\""),
        "DANE wins: {}",
        line("sts-dane.test")
    );
    assert!(line("sts-notlisted.test").contains("MX not in the MTA-STS policy"));

    // What TLSRPT will report.
    let events = support::tls_events(dir.path());
    let has = |domain: &str, kind: &str, failure: Option<&str>| {
        events.iter().any(|e| {
            e.policy_domain == domain
                && e.policy_type.as_str() == kind
                && e.failure.map(|f| f.as_str()) == failure
        })
    };
    assert!(has("sts-good.test", "sts", None), "{events:#?}");
    assert!(has(
        "sts-testing.test",
        "sts",
        Some("certificate-not-trusted")
    ));
    assert!(has("sts-ca.test", "sts", Some("certificate-not-trusted")));
    assert!(has("sts-exp.test", "sts", Some("certificate-expired")));
    assert!(has(
        "sts-san.test",
        "sts",
        Some("certificate-host-mismatch")
    ));
    assert!(has("sts-notlisted.test", "sts", Some("validation-failure")));
    assert!(has("sts-wild.test", "sts", Some("sts-webpki-invalid")));
    assert!(has("sts-redir.test", "sts", Some("sts-policy-fetch-error")));
    assert!(has("sts-dane.test", "tlsa", Some("tlsa-invalid")));
    assert!(has("sts-revoked.test", "sts", Some("validation-failure")));
    assert!(has("sts-crlok.test", "sts", None));
    assert!(
        events.iter().any(|e| e.policy_domain == "sts-revoked.test"
            && e.detail.as_deref().is_some_and(|d| d.contains("revoked"))),
        "{events:#?}"
    );
    let policy_strings = &events
        .iter()
        .find(|e| e.policy_domain == "sts-good.test")
        .unwrap()
        .policy_strings;
    assert!(
        policy_strings.contains(&"mode: enforce".to_string()),
        "{policy_strings:?}"
    );
}

fn seed_cached_policy(dir: &std::path::Path, domain: &str, text: &str) {
    let (rt, store) = support::store_at(dir);
    let now = kurier_store::now();
    rt.block_on(store.put_sts_policy(&kurier_store::CachedStsPolicy {
        domain: domain.into(),
        record_id: "1".into(),
        policy: text.into(),
        fetched: now,
        expires: now + 86400,
    }))
    .unwrap();
}
