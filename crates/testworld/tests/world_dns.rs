//! Self-test of the world's DNS: signed zones validate (AD), broken ones are bogus (SERVFAIL),
//! unsigned ones are insecure (no AD) — through the world's unbound, checked with `dig`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use kurier_testworld::{Breakage, World, Zone};

fn flags(out: &str) -> String {
    out.lines()
        .find(|l| l.contains(";; flags:"))
        .unwrap_or("")
        .to_string()
}

fn status(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_default()
}

fn zone(name: &str, base: Zone) -> Zone {
    let _ = name;
    base.record("@", "MX", "10 mx")
        .record("mx", "A", "127.0.0.25")
        .record(
            "_25._tcp.mx",
            "TLSA",
            "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .record("@", "TXT", "\"v=spf1 -all\"")
}

#[test]
fn signed_broken_and_unsigned_zones_validate_as_they_should() {
    let world = World::builder()
        .zone(zone("good", Zone::signed("good.test")))
        .zone(zone("rsa", Zone::signed_rsa("rsa.test")))
        .zone(zone("plain", Zone::unsigned("plain.test")))
        .zone(zone(
            "badtlsa",
            Zone::signed("badtlsa.test").broken(Breakage::BadTlsaRrsig),
        ))
        .zone(zone(
            "expired",
            Zone::signed("expired.test").broken(Breakage::ExpiredRrsig),
        ))
        .zone(zone(
            "baddnskey",
            Zone::signed("baddnskey.test").broken(Breakage::BadDnskeySig),
        ))
        .zone(zone(
            "nods",
            Zone::signed("nods.test").broken(Breakage::MissingDs),
        ))
        .build()
        .unwrap();
    let dns = world.dns();
    let secure = |name: &str, t: &str| {
        let out = dns.dig(name, t).unwrap();
        assert_eq!(status(&out), "NOERROR", "{name} {t}:\n{out}");
        assert!(
            flags(&out).contains(" ad"),
            "{name} {t} must be secure (AD):\n{out}"
        );
    };
    let insecure = |name: &str, t: &str| {
        let out = dns.dig(name, t).unwrap();
        assert_eq!(status(&out), "NOERROR", "{name} {t}:\n{out}");
        assert!(
            !flags(&out).contains(" ad"),
            "{name} {t} must be insecure (no AD):\n{out}"
        );
    };
    let bogus = |name: &str, t: &str| {
        let out = dns.dig(name, t).unwrap();
        assert_eq!(status(&out), "SERVFAIL", "{name} {t} must be bogus:\n{out}");
    };
    secure("good.test", "MX");
    secure("mx.good.test", "A");
    secure("_25._tcp.mx.good.test", "TLSA");
    secure("rsa.test", "MX");
    secure("_25._tcp.mx.rsa.test", "TLSA");
    insecure("plain.test", "MX");
    insecure("_25._tcp.mx.plain.test", "TLSA");
    insecure("nods.test", "MX");
    bogus("_25._tcp.mx.badtlsa.test", "TLSA");
    secure("badtlsa.test", "MX");
    bogus("expired.test", "MX");
    bogus("baddnskey.test", "MX");
    // The authoritative server itself does no recursion and no validation.
    let auth = std::process::Command::new("dig")
        .args([
            &format!("@{}", dns.authoritative.ip()),
            "+norec",
            "+dnssec",
            "good.test",
            "MX",
        ])
        .output()
        .unwrap();
    let auth = String::from_utf8_lossy(&auth.stdout);
    assert!(
        flags(&auth).contains(" aa") && auth.contains("RRSIG"),
        "{auth}"
    );
}

#[test]
fn null_mx_policy_records_srv_and_cname_are_served_signed() {
    let world = World::builder()
        .zone(
            Zone::signed("records.test")
                .record("@", "MX", "0 .")
                .record("_mta-sts", "TXT", "\"v=STSv1; id=20261128\"")
                .record(
                    "_smtp._tls",
                    "TXT",
                    "\"v=TLSRPTv1; rua=mailto:tlsrpt@records.test\"",
                )
                .record("sel._domainkey", "TXT", "\"v=DKIM1; k=rsa; p=MIIB\"")
                .record("_submissions._tcp", "SRV", "0 1 465 mail.records.test.")
                .record("mail", "A", "{ip:25}")
                .record("autoconfig", "CNAME", "mail"),
        )
        .build()
        .unwrap();
    let dns = world.dns();
    let check = |name: &str, t: &str, want: &str| {
        let out = dns.dig(name, t).unwrap();
        assert!(
            flags(&out).contains(" ad") && out.contains(want),
            "{name} {t}:\n{out}"
        );
    };
    check("records.test", "MX", "MX\t0 .");
    check("_mta-sts.records.test", "TXT", "v=STSv1; id=20261128");
    check("_smtp._tls.records.test", "TXT", "v=TLSRPTv1");
    check("sel._domainkey.records.test", "TXT", "v=DKIM1");
    check(
        "_submissions._tcp.records.test",
        "SRV",
        "0 1 465 mail.records.test.",
    );
    check(
        "autoconfig.records.test",
        "A",
        &world.net.ip(25).to_string(),
    );
    check("autoconfig.records.test", "CNAME", "mail.records.test.");
}

#[test]
fn two_worlds_side_by_side_do_not_interfere() {
    let a = World::builder()
        .zone(Zone::signed("same.test").record("@", "A", "127.0.0.1"))
        .build()
        .unwrap();
    let b = World::builder()
        .zone(Zone::signed("same.test").record("@", "A", "127.0.0.2"))
        .build()
        .unwrap();
    assert_ne!(a.dns().resolver, b.dns().resolver);
    assert!(a.dns().dig("same.test", "A").unwrap().contains("127.0.0.1"));
    assert!(b.dns().dig("same.test", "A").unwrap().contains("127.0.0.2"));
    let (ta, tb) = (
        std::fs::read(&a.dns().trust_anchor_ds).unwrap(),
        std::fs::read(&b.dns().trust_anchor_ds).unwrap(),
    );
    assert_ne!(ta, tb, "each world has its own root key");
}
