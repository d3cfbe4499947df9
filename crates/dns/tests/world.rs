//! Every answer's DNSSEC state, against a real signed world (NSD + validating unbound, private
//! root; see tests/world/README.md) — TR-03108 DNS-1: bogus is an error, never "no record".
//! The `b0x_` tests are the DNSSEC cases of TR-03108-P module B, each asked through the three
//! kinds of upstream: NSD answering directly, a recursive unbound that does not validate, and
//! one that does. The verdict must not depend on which.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::Duration;

use kurier_dns::{
    DnsConfig, DnsError, DnssecMode, DnssecState, Resolver, ValidatorState, watch_validator,
};
use kurier_testworld::net::hosts;
use kurier_testworld::relay::DnsRelay;
use kurier_testworld::{Breakage, World, Zone};

fn resolver(world: &World) -> Resolver {
    resolver_via(world, world.dns().resolver)
}

/// A resolver asking `upstream`, trusting the world's root.
fn resolver_via(world: &World, upstream: std::net::SocketAddr) -> Resolver {
    Resolver::new(&DnsConfig {
        mode: DnssecMode::Validate,
        upstream: vec![upstream],
        trust_anchor: Some(world.dns().trust_anchor_dnskey.clone()),
        timeout: Duration::from_secs(3),
        ..DnsConfig::default()
    })
    .unwrap()
}

fn zone(base: Zone) -> Zone {
    base.record("@", "MX", "10 mx")
        .record("@", "MX", "20 MX2")
        .record("mx", "A", "{ip:25}")
        .record("mx", "AAAA", "::1")
        .record(
            "_25._tcp.mx",
            "TLSA",
            "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        .record("_mta-sts", "TXT", "\"v=STSv1; \" \"id=1\"")
}

#[tokio::test]
async fn dns1_secure_insecure_and_bogus_answers() {
    let world = World::builder()
        .zone(zone(Zone::signed("good.test")))
        .zone(zone(Zone::signed_rsa("rsa.test")))
        .zone(zone(Zone::unsigned("plain.test")))
        .zone(zone(Zone::signed("nods.test").broken(Breakage::MissingDs)))
        .zone(zone(
            Zone::signed("badtlsa.test").broken(Breakage::BadTlsaRrsig),
        ))
        .zone(zone(
            Zone::signed("expired.test").broken(Breakage::ExpiredRrsig),
        ))
        .zone(zone(
            Zone::signed("baddnskey.test").broken(Breakage::BadDnskeySig),
        ))
        .zone(Zone::signed("nullmx.test").record("@", "MX", "0 ."))
        .build()
        .unwrap();
    let r = resolver(&world);
    r.probe().await.unwrap();

    for domain in ["good.test", "rsa.test"] {
        let mx = r.mx(domain).await.unwrap();
        assert_eq!(mx.state, DnssecState::Secure, "{domain}");
        let mut prefs: Vec<_> = mx
            .records
            .iter()
            .map(|m| (m.preference, m.exchange.clone()))
            .collect();
        prefs.sort();
        assert_eq!(
            prefs,
            [(10, format!("mx.{domain}")), (20, format!("mx2.{domain}"))]
        );
        let tlsa = r.tlsa(&format!("_25._tcp.mx.{domain}")).await.unwrap();
        assert_eq!(
            (
                tlsa.state,
                tlsa.records[0].usage,
                tlsa.records[0].selector,
                tlsa.records[0].matching
            ),
            (DnssecState::Secure, 3, 1, 1)
        );
        assert_eq!(tlsa.records[0].data.len(), 32);
        let ips = r.addresses(&format!("mx.{domain}")).await.unwrap();
        assert_eq!(ips.state, DnssecState::Secure);
        assert!(
            ips.records.contains(&world.net.ip(25).into())
                && ips.records.contains(&"::1".parse().unwrap())
        );
        assert_eq!(
            r.txt(&format!("_mta-sts.{domain}")).await.unwrap().records,
            ["v=STSv1; id=1"]
        );
    }
    for domain in ["plain.test", "nods.test"] {
        assert_eq!(
            r.mx(domain).await.unwrap().state,
            DnssecState::Insecure,
            "{domain}"
        );
        assert_eq!(
            r.tlsa(&format!("_25._tcp.mx.{domain}"))
                .await
                .unwrap()
                .state,
            DnssecState::Insecure
        );
    }
    // Bogus data never looks like "no record".
    assert!(r.tlsa("_25._tcp.mx.badtlsa.test").await.is_err());
    assert_eq!(
        r.mx("badtlsa.test").await.unwrap().state,
        DnssecState::Secure,
        "only the TLSA is broken"
    );
    for domain in ["expired.test", "baddnskey.test"] {
        let e = r.mx(domain).await.unwrap_err();
        assert!(
            matches!(e, DnsError::Bogus(_) | DnsError::Indeterminate(..)),
            "{domain}: {e}"
        );
    }
    // Proven non-existence.
    let none = r.tlsa("_25._tcp.nothere.good.test").await.unwrap();
    assert!(none.records.is_empty() && none.nxdomain && none.state == DnssecState::Secure);
    let nodata = r.tlsa("_25._tcp.mx2.good.test").await.unwrap();
    assert!(nodata.records.is_empty() && nodata.state == DnssecState::Secure);
    // Null MX (RFC 7505).
    let null = r.mx("nullmx.test").await.unwrap();
    assert_eq!(
        null.records,
        [kurier_dns::MxRecord {
            preference: 0,
            exchange: ".".into()
        }]
    );
}

#[tokio::test]
async fn a_wrong_trust_anchor_fails_the_probe_and_an_unreachable_upstream_is_indeterminate() {
    let a = World::builder()
        .zone(Zone::signed("a.test").record("@", "MX", "10 mx"))
        .build()
        .unwrap();
    let b = World::builder()
        .zone(Zone::signed("b.test").record("@", "MX", "10 mx"))
        .build()
        .unwrap();
    let wrong = Resolver::new(&DnsConfig {
        mode: DnssecMode::Validate,
        upstream: vec![a.dns().resolver],
        trust_anchor: Some(b.dns().trust_anchor_dnskey.clone()),
        timeout: Duration::from_secs(3),
        ..DnsConfig::default()
    })
    .unwrap();
    assert!(
        wrong.probe().await.is_err(),
        "another root's key must not validate this root"
    );
    assert!(
        wrong.mx("a.test").await.is_err(),
        "and nothing below it is trusted"
    );
    let nowhere = Resolver::new(&DnsConfig {
        mode: DnssecMode::Validate,
        upstream: vec!["127.0.0.1:9".parse().unwrap()],
        trust_anchor: Some(a.dns().trust_anchor_dnskey.clone()),
        timeout: Duration::from_millis(300),
        ..DnsConfig::default()
    })
    .unwrap();
    let e = nowhere.mx("a.test").await.unwrap_err();
    assert!(matches!(e, DnsError::Indeterminate(..)), "{e}");
    let bad = Resolver::new(&DnsConfig {
        mode: DnssecMode::Validate,
        upstream: vec![],
        trust_anchor: None,
        timeout: Duration::from_secs(1),
        ..DnsConfig::default()
    });
    assert!(bad.is_err());
}

/// A signed and an unsigned zone, one with a bad TLSA RRSIG and one with a bad DNSKEY RRSIG.
fn good_plain_and_broken() -> kurier_testworld::WorldBuilder {
    World::builder()
        .zone(zone(Zone::signed("good.test")))
        .zone(zone(Zone::unsigned("plain.test")))
        .zone(zone(
            Zone::signed("badtlsa.test").broken(Breakage::BadTlsaRrsig),
        ))
        .zone(zone(
            Zone::signed("baddnskey.test").broken(Breakage::BadDnskeySig),
        ))
}

/// Behind a non-validating upstream the bogus data reaches us: our own validator must call it
/// bogus (not "no record", not insecure).
#[tokio::test]
async fn dns1_the_in_process_validator_itself_rejects_bogus_data() {
    let world = good_plain_and_broken()
        .zone(zone(
            Zone::signed("expired.test").broken(Breakage::ExpiredRrsig),
        ))
        .build()
        .unwrap();
    let dns = world.dns();
    let r = resolver_via(&world, dns.plain_resolver);
    r.probe().await.unwrap();
    assert_eq!(r.mx("good.test").await.unwrap().state, DnssecState::Secure);
    assert_eq!(
        r.tlsa("_25._tcp.mx.good.test").await.unwrap().state,
        DnssecState::Secure
    );
    assert_eq!(
        r.mx("plain.test").await.unwrap().state,
        DnssecState::Insecure
    );
    let e = r.tlsa("_25._tcp.mx.badtlsa.test").await.unwrap_err();
    assert!(matches!(e, DnsError::Bogus(_)), "{e}");
    let e = r.mx("expired.test").await.unwrap_err();
    assert!(matches!(e, DnsError::Bogus(_)), "{e}");
}

fn resolver_mode(mode: DnssecMode, upstream: std::net::SocketAddr) -> Resolver {
    Resolver::new(&DnsConfig {
        mode,
        upstream: vec![upstream],
        trust_anchor: None,
        timeout: Duration::from_secs(3),
        ..DnsConfig::default()
    })
    .unwrap()
}

/// `trust_ad`: the state is the AD bit of the world's validating unbound; bogus data arrives as
/// SERVFAIL and is indeterminate, never "no record" (DNS-1). Pointed at a resolver that does not
/// validate, the start-up probe fails instead of silently making everything insecure.
#[tokio::test]
async fn dns1_trust_ad_mode_takes_the_state_from_a_local_validating_resolver() {
    let world = good_plain_and_broken()
        .zone(
            Zone::signed("alias.test")
                .record("@", "MX", "10 mail")
                .record("mail", "CNAME", "mx.good.test."),
        )
        .build()
        .unwrap();
    let dns = world.dns();
    let r = resolver_mode(DnssecMode::TrustAd, dns.resolver);
    r.probe().await.unwrap();
    let mx = r.mx("good.test").await.unwrap();
    assert_eq!((mx.state, mx.records.len()), (DnssecState::Secure, 2));
    let tlsa = r.tlsa("_25._tcp.mx.good.test").await.unwrap();
    assert_eq!(
        (tlsa.state, tlsa.records[0].usage),
        (DnssecState::Secure, 3)
    );
    assert_eq!(
        r.mx("plain.test").await.unwrap().state,
        DnssecState::Insecure
    );
    let none = r.tlsa("_25._tcp.nothere.good.test").await.unwrap();
    assert!(none.nxdomain && none.records.is_empty() && none.state == DnssecState::Secure);
    assert!(r.tlsa("_25._tcp.mx.badtlsa.test").await.is_err());
    assert!(r.mx("baddnskey.test").await.is_err());
    // Cached answers keep their state.
    assert_eq!(r.mx("good.test").await.unwrap().state, DnssecState::Secure);
    // RFC 7672 §2.2.1: the expanded name of an alias, with the chain's state.
    let c = r.canonical_name("mail.alias.test").await.unwrap();
    assert_eq!(
        (c.records, c.state),
        (vec!["mx.good.test".to_string()], DnssecState::Secure)
    );
    let c = r.canonical_name("mx.good.test").await.unwrap();
    assert!(c.records.is_empty());

    let not_validating = resolver_mode(DnssecMode::TrustAd, dns.plain_resolver);
    assert!(not_validating.probe().await.is_err());
    let remote = Resolver::new(&DnsConfig {
        mode: DnssecMode::TrustAd,
        upstream: vec!["192.0.2.53:53".parse().unwrap()],
        trust_anchor: None,
        timeout: Duration::from_secs(1),
        ..DnsConfig::default()
    });
    assert!(remote.is_err(), "the AD bit is trusted only over loopback");
    // `off`: everything insecure, nothing to probe.
    let off = resolver_mode(DnssecMode::Off, dns.resolver);
    off.probe().await.unwrap();
    assert_eq!(
        off.mx("good.test").await.unwrap().state,
        DnssecState::Insecure
    );
}

/// An MX host given as an alias whose target has an A but no AAAA record: the AAAA answer is a
/// CNAME plus a NODATA proof from another zone. Secure, not bogus (hickory 0.26, the judge
/// before libunbound, called it bogus). A tampered alias stays bogus.
#[tokio::test]
async fn dns1_an_alias_to_a_host_without_aaaa_is_secure() {
    let world = World::builder()
        .zone(Zone::signed("good.test").record("mx", "A", "{ip:25}"))
        .zone(
            Zone::signed("alias.test")
                .record("@", "MX", "10 mail")
                .record("mail", "CNAME", "mx.good.test."),
        )
        .zone(
            Zone::signed("badalias.test")
                .record("mail", "CNAME", "mx.good.test.")
                .broken(Breakage::ExpiredRrsig),
        )
        .build()
        .unwrap();
    for r in [
        resolver(&world),
        resolver_via(&world, world.dns().plain_resolver),
    ] {
        let c = r.canonical_name("mail.alias.test").await.unwrap();
        assert_eq!(c.records, ["mx.good.test"]);
        let a = r.addresses("mail.alias.test").await.unwrap();
        assert_eq!(
            (a.records, a.state),
            (vec![world.net.ip(25).into()], DnssecState::Secure)
        );
        assert!(r.addresses("mail.badalias.test").await.is_err());
    }
}

/// DNS-4: what a zone is signed with, as `kurier check` reads it.
#[tokio::test]
async fn dns4_the_signing_algorithm_and_rsa_key_size_of_a_zone() {
    let world = World::builder()
        .zone(Zone::signed("ec.test").record("@", "MX", "10 mx"))
        .zone(Zone::signed_rsa("rsa.test").record("@", "MX", "10 mx"))
        .zone(Zone::unsigned("plain.test").record("@", "MX", "10 mx"))
        .build()
        .unwrap();
    let r = resolver(&world);
    let ec = r.dnskeys("ec.test").await.unwrap();
    assert_eq!(ec.state, DnssecState::Secure);
    assert!(
        !ec.records.is_empty()
            && ec
                .records
                .iter()
                .all(|k| k.algorithm == 13 && k.rsa_bits.is_none())
    );
    let rsa = r.dnskeys("rsa.test").await.unwrap();
    assert!(!rsa.records.is_empty(), "{rsa:?}");
    assert!(
        rsa.records
            .iter()
            .all(|k| k.algorithm == 8 && k.rsa_bits == Some(3072)),
        "{rsa:?}"
    );
    assert!(r.dnskeys("plain.test").await.unwrap().records.is_empty());
}

/// The three kinds of upstream of module B.
fn upstreams(world: &World) -> Vec<(&'static str, Resolver)> {
    let d = world.dns();
    [
        ("authoritative (NSD)", d.authoritative),
        ("non-validating unbound", d.plain_resolver),
        ("validating unbound", d.resolver),
    ]
    .into_iter()
    .map(|(what, addr)| (what, resolver_via(world, addr)))
    .collect()
}

#[derive(Clone, Copy, Debug)]
enum Ask<'a> {
    Mx(&'a str),
    A(&'a str),
    Tlsa(&'a str),
    Addresses(&'a str),
}

/// (state, number of records) or the error.
async fn ask(r: &Resolver, q: Ask<'_>) -> Result<(DnssecState, usize), DnsError> {
    match q {
        Ask::Mx(n) => r.mx(n).await.map(|a| (a.state, a.records.len())),
        Ask::A(n) | Ask::Addresses(n) => r.addresses(n).await.map(|a| (a.state, a.records.len())),
        Ask::Tlsa(n) => r.tlsa(n).await.map(|a| (a.state, a.records.len())),
    }
}

/// Bogus through every upstream; where bogus data reaches us, our validator says so itself
/// (`Bogus`, with its reason), and a validating upstream's SERVFAIL is indeterminate.
async fn assert_bogus(world: &World, questions: &[Ask<'_>]) {
    for (what, r) in upstreams(world) {
        for q in questions {
            match ask(&r, *q).await {
                Err(DnsError::Bogus(why)) => assert!(!why.is_empty() && !why.contains('\n')),
                Err(DnsError::Indeterminate(..)) if what.starts_with("validating") => {}
                other => panic!("{q:?} via {what}: must be bogus, is {other:?}"),
            }
        }
    }
}

async fn assert_state(world: &World, questions: &[(Ask<'_>, DnssecState)]) {
    for (what, r) in upstreams(world) {
        for (q, want) in questions {
            let got = ask(&r, *q).await;
            assert!(
                matches!(&got, Ok((s, n)) if s == want && *n > 0),
                "{q:?} via {what}: want {want:?} with records, got {got:?}"
            );
        }
    }
}

/// A zone with an MX, the host's A and AAAA, and its TLSA record.
fn mail_zone(base: Zone) -> Zone {
    zone(base)
}

/// P B-01-T: the positive case, for every algorithm the ICS declares (8, 13, 14, 15), with
/// one key or a KSK/ZSK pair, NSEC or NSEC3: secure through every upstream. Algorithm 16
/// (Ed448) is not implemented by the validator (Debian's libunbound): declared unsupported
/// in the ICS, and a zone signed only with it is insecure (RFC 6840 §5.2) — DANE does not
/// apply, mail goes with opportunistic TLS.
#[tokio::test]
async fn b01_t_every_declared_algorithm_and_key_layout_validates() {
    use kurier_testworld::Signing;
    // The ICS's table, entry by entry.
    let by_algorithm = |n: u8| match n {
        8 => Signing::Rsa,
        13 => Signing::Ecdsa,
        14 => Signing::Ecdsa384,
        15 => Signing::Ed25519,
        16 => Signing::Ed448,
        other => panic!("no test zone for algorithm {other}"),
    };
    let mut b = World::builder()
        .zone(mail_zone(Zone::signed("kskzsk.test").ksk_zsk()))
        .zone(mail_zone(Zone::signed("nsec3.test").nsec3(0)));
    for (n, _, _) in kurier_dns::DNSSEC_ALGORITHMS {
        b = b.zone(mail_zone(Zone::signed_with(
            &format!("alg{n}.test"),
            by_algorithm(n),
        )));
    }
    let world = b.build().unwrap();
    let mut cases: Vec<(String, DnssecState)> = kurier_dns::DNSSEC_ALGORITHMS
        .iter()
        .map(|(n, _, validated)| {
            let state = if *validated {
                DnssecState::Secure
            } else {
                DnssecState::Insecure
            };
            (format!("alg{n}.test"), state)
        })
        .collect();
    cases.push(("kskzsk.test".into(), DnssecState::Secure));
    cases.push(("nsec3.test".into(), DnssecState::Secure));
    for (d, want) in &cases {
        let (host, tlsa) = (format!("mx.{d}"), format!("_25._tcp.mx.{d}"));
        assert_state(
            &world,
            &[
                (Ask::Mx(d), *want),
                (Ask::Addresses(&host), *want),
                (Ask::Tlsa(&tlsa), *want),
            ],
        )
        .await;
    }
    let r = resolver_via(&world, world.dns().authoritative);
    let keys = r.dnskeys("kskzsk.test").await.unwrap();
    let mut flags: Vec<u16> = keys.records.iter().map(|k| k.flags).collect();
    flags.sort();
    assert_eq!(flags, [256, 257], "a ZSK and a KSK");
}

/// P B-02: the RRSIG over the DNSKEY RRset does not verify — with one combined key (the
/// layout BIND and Knot make by default, where hickory 0.26 let it pass) and with a KSK/ZSK
/// pair. Everything in the zone is bogus.
#[tokio::test]
async fn b02_a_broken_dnskey_rrsig_is_bogus_with_one_key_and_with_ksk_zsk() {
    let world = World::builder()
        .zone(mail_zone(
            Zone::signed("csk.test").broken(Breakage::BadDnskeySig),
        ))
        .zone(mail_zone(
            Zone::signed("split.test")
                .ksk_zsk()
                .broken(Breakage::BadDnskeySig),
        ))
        .build()
        .unwrap();
    for d in ["csk.test", "split.test"] {
        let (host, tlsa) = (format!("mx.{d}"), format!("_25._tcp.mx.{d}"));
        assert_bogus(&world, &[Ask::Mx(d), Ask::A(&host), Ask::Tlsa(&tlsa)]).await;
    }
}

/// P B-03: expired signatures — on the DNSKEY RRset (the whole zone fails), or only on the MX,
/// the A or the TLSA RRset (that answer fails, the others stay secure).
#[tokio::test]
async fn b03_expired_rrsigs_on_dnskey_mx_a_and_tlsa_are_bogus() {
    b03_case(Breakage::ExpiredRrsigOn, "exp").await;
}

/// P B-03, the other side of the validity window: signatures valid only from tomorrow.
#[tokio::test]
async fn b03_not_yet_valid_rrsigs_on_dnskey_mx_a_and_tlsa_are_bogus() {
    b03_case(Breakage::FutureRrsigOn, "fut").await;
}

async fn b03_case(broken: fn(&'static str) -> Breakage, prefix: &str) {
    let types = ["DNSKEY", "MX", "A", "TLSA"];
    let mut b = World::builder();
    for t in types {
        let d = format!("{prefix}-{}.test", t.to_ascii_lowercase());
        b = b.zone(mail_zone(Zone::signed(&d).broken(broken(t))));
    }
    let world = b.build().unwrap();
    for t in types {
        let d = format!("{prefix}-{}.test", t.to_ascii_lowercase());
        let (host, tlsa) = (format!("mx.{d}"), format!("_25._tcp.mx.{d}"));
        let (mx, a, tl) = (Ask::Mx(&d), Ask::A(&host), Ask::Tlsa(&tlsa));
        match t {
            "DNSKEY" => assert_bogus(&world, &[mx, a, tl]).await,
            "MX" => {
                assert_bogus(&world, &[mx]).await;
                assert_state(
                    &world,
                    &[(a, DnssecState::Secure), (tl, DnssecState::Secure)],
                )
                .await;
            }
            "A" => {
                assert_bogus(&world, &[a]).await;
                assert_state(
                    &world,
                    &[(mx, DnssecState::Secure), (tl, DnssecState::Secure)],
                )
                .await;
            }
            _ => {
                assert_bogus(&world, &[tl]).await;
                assert_state(
                    &world,
                    &[(mx, DnssecState::Secure), (a, DnssecState::Secure)],
                )
                .await;
            }
        }
    }
}

/// P B-02 variants of a broken chain: the parent's DS names a key the zone does not have, or
/// the zone serves no DNSKEY at all. Bogus, not insecure: the DS says the zone is signed.
#[tokio::test]
async fn b02_a_ds_without_its_key_and_a_missing_dnskey_are_bogus() {
    let world = World::builder()
        .zone(mail_zone(
            Zone::signed("strangerds.test").broken(Breakage::DsWithoutKey),
        ))
        .zone(mail_zone(
            Zone::signed("nokey.test").broken(Breakage::MissingDnskey),
        ))
        .build()
        .unwrap();
    for d in ["strangerds.test", "nokey.test"] {
        let tlsa = format!("_25._tcp.mx.{d}");
        assert_bogus(&world, &[Ask::Mx(d), Ask::Tlsa(&tlsa)]).await;
    }
}

/// RFC 4035 §5.2, RFC 6840 §5.2: a DS whose algorithm no validator implements makes the zone
/// insecure — usable without DANE, not bogus (which would hold its mail forever).
#[tokio::test]
async fn b02_an_unsupported_ds_algorithm_is_insecure_not_bogus() {
    let world = World::builder()
        .zone(mail_zone(
            Zone::signed("alg100.test").broken(Breakage::UnsupportedDsAlgorithm),
        ))
        .build()
        .unwrap();
    assert_state(
        &world,
        &[
            (Ask::Mx("alg100.test"), DnssecState::Insecure),
            (Ask::Tlsa("_25._tcp.mx.alg100.test"), DnssecState::Insecure),
        ],
    )
    .await;
}

/// Denial of existence forged (bad RRSIG over NSEC/NSEC3) or missing, and a TLSA RRset
/// stripped while the NSEC bitmap still lists it: never "no TLSA", never "no such name".
#[tokio::test]
async fn b02_forged_missing_or_stripped_denial_is_bogus_never_no_record() {
    let world = World::builder()
        .zone(mail_zone(
            Zone::signed("forged.test").broken(Breakage::ForgedDenial),
        ))
        .zone(mail_zone(
            Zone::signed("forged3.test")
                .nsec3(0)
                .broken(Breakage::ForgedDenial),
        ))
        .zone(mail_zone(
            Zone::signed("nodenial.test").broken(Breakage::MissingDenial),
        ))
        .zone(mail_zone(
            Zone::signed("nodenial3.test")
                .nsec3(0)
                .broken(Breakage::MissingDenial),
        ))
        .zone(mail_zone(
            Zone::signed("stripped.test").broken(Breakage::StrippedTlsa),
        ))
        .zone(mail_zone(
            Zone::signed("stripped3.test")
                .nsec3(0)
                .broken(Breakage::StrippedTlsa),
        ))
        .build()
        .unwrap();
    for d in [
        "forged.test",
        "forged3.test",
        "nodenial.test",
        "nodenial3.test",
    ] {
        // NXDOMAIN and NODATA both need the denial records.
        let (none, nodata) = (format!("_25._tcp.nothere.{d}"), format!("_25._tcp.mx2.{d}"));
        assert_bogus(&world, &[Ask::Tlsa(&none), Ask::Tlsa(&nodata)]).await;
    }
    assert_bogus(&world, &[Ask::Tlsa("_25._tcp.mx.stripped.test")]).await;
    // With NSEC3, NSD itself fails on the now empty name (SERVFAIL): an error all the same.
    for (what, r) in upstreams(&world) {
        let got = ask(&r, Ask::Tlsa("_25._tcp.mx.stripped3.test")).await;
        assert!(got.is_err(), "via {what}: {got:?}");
    }
    for d in ["stripped.test", "stripped3.test"] {
        assert_state(&world, &[(Ask::Mx(d), DnssecState::Secure)]).await;
    }
}

/// A chain's state is that of its weakest link (RFC 4035 §5; RFC 7672 §2.2.1): a signed alias
/// to a host in an unsigned zone is insecure — opportunistic TLS, no DANE — not bogus (which
/// would hold its mail forever); an unsigned alias to a signed host is insecure too; a signed
/// alias into a bogus zone is bogus.
#[tokio::test]
async fn dns1_a_cname_chain_is_as_secure_as_its_weakest_link() {
    let world = World::builder()
        .zone(Zone::signed("good.test").record("mx", "A", "{ip:25}"))
        .zone(
            Zone::unsigned("plain.test")
                .record("mx", "A", "{ip:25}")
                .record("alias", "CNAME", "mx.good.test."),
        )
        .zone(
            Zone::signed("alias.test")
                .record("@", "MX", "10 mail")
                .record("mail", "CNAME", "mx.plain.test.")
                .record("bad", "CNAME", "mx.bogus.test."),
        )
        .zone(
            Zone::signed("bogus.test")
                .record("mx", "A", "{ip:25}")
                .broken(Breakage::BadDnskeySig),
        )
        .build()
        .unwrap();
    for (what, r) in upstreams(&world) {
        let a = r.addresses("mail.alias.test").await.unwrap();
        assert_eq!(
            (a.state, a.records),
            (DnssecState::Insecure, vec![world.net.ip(25).into()]),
            "secure alias, insecure target, via {what}"
        );
        let c = r.canonical_name("mail.alias.test").await.unwrap();
        assert_eq!(
            (c.state, c.records),
            (DnssecState::Insecure, vec!["mx.plain.test".to_string()])
        );
        let a = r.addresses("alias.plain.test").await.unwrap();
        assert_eq!(
            a.state,
            DnssecState::Insecure,
            "insecure alias, secure target, via {what}"
        );
        let c = r.canonical_name("alias.plain.test").await.unwrap();
        assert_eq!(
            (c.state, c.records),
            (DnssecState::Insecure, vec!["mx.good.test".to_string()])
        );
        assert!(
            r.addresses("bad.alias.test").await.is_err(),
            "into a bogus zone, via {what}"
        );
    }
}

/// DNS-1 partial answers: an MX host whose AAAA question times out but whose A is secure is
/// usable over IPv4, and securely; with no address at all it is an error, not "no record".
#[tokio::test]
async fn dns1_an_aaaa_timeout_leaves_a_secure_ipv4_address_usable() {
    let world = World::builder()
        .zone(mail_zone(Zone::signed("half.test")))
        .build()
        .unwrap();
    let relay =
        DnsRelay::start(world.net.addr(hosts::FREE, 53), world.dns().authoritative).unwrap();
    relay.drop_type(28); // AAAA
    let r = Resolver::new(&DnsConfig {
        upstream: vec![relay.addr],
        trust_anchor: Some(world.dns().trust_anchor_dnskey.clone()),
        timeout: Duration::from_secs(2),
        ..DnsConfig::default()
    })
    .unwrap();
    let a = r.addresses("mx.half.test").await.unwrap();
    assert_eq!(
        (a.state, a.records),
        (DnssecState::Secure, vec![world.net.ip(25).into()])
    );
    relay.drop_type(1); // and A
    let e = r.addresses("mx2.half.test").await.unwrap_err();
    assert!(matches!(e, DnsError::Indeterminate(..)), "{e}");
}

/// DNS-1 in `trust_ad` mode: a local resolver that stops validating is noticed by the next
/// probe (the state turns `Failing`, with the cause), and one that starts again by the one
/// after — the AD bit is never silently taken as "insecure everywhere".
#[tokio::test]
async fn dns1_trust_ad_is_reprobed_and_a_resolver_that_stops_validating_is_noticed() {
    let world = World::builder()
        .zone(mail_zone(Zone::signed("good.test")))
        .build()
        .unwrap();
    let dns = world.dns();
    let relay = DnsRelay::start(world.net.addr(hosts::FREE, 53), dns.resolver).unwrap();
    let r = resolver_mode(DnssecMode::TrustAd, relay.addr);
    let (tx, mut rx) = tokio::sync::watch::channel(ValidatorState::Unknown);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(watch_validator(r, Duration::from_millis(300), tx, stop));
    let wait_for = |rx: &mut tokio::sync::watch::Receiver<ValidatorState>, working: bool| {
        let mut rx = rx.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(20),
                rx.wait_for(|s| s.is_working() == working && *s != ValidatorState::Unknown),
            )
            .await
            .unwrap()
            .unwrap()
            .clone()
        }
    };
    let first = resolver_mode(DnssecMode::TrustAd, relay.addr).probe().await;
    assert!(first.is_ok(), "{first:?}");
    assert!(wait_for(&mut rx, true).await.is_working());
    relay.switch_to(dns.plain_resolver);
    let ValidatorState::Failing(why) = wait_for(&mut rx, false).await else {
        unreachable!()
    };
    assert!(
        why.contains("does not validate") && !why.contains('\n'),
        "{why}"
    );
    relay.switch_to(dns.resolver);
    assert!(wait_for(&mut rx, true).await.is_working());
    rx.borrow_and_update();
}

/// Clear errors, one line each, naming cause and fix: a resolver that answers REFUSED, one
/// that is not there, a validator that does not validate (`trust_ad`), a wrong or garbage
/// trust anchor. The validate-mode probe says which validator works from which anchor.
#[tokio::test]
async fn dns1_probe_failures_are_one_line_with_cause_and_fix() {
    let world = World::builder()
        .zone(mail_zone(Zone::signed("good.test")))
        .build()
        .unwrap();
    let dns = world.dns();
    let proof = resolver_via(&world, dns.plain_resolver)
        .probe()
        .await
        .unwrap();
    assert!(
        proof.contains("libunbound") && proof.contains("root.dnskey"),
        "{proof}"
    );

    let relay = DnsRelay::start(world.net.addr(hosts::FREE, 53), dns.resolver).unwrap();
    relay.refuse(true);
    let refused = resolver_via(&world, relay.addr).probe().await.unwrap_err();
    let nowhere = Resolver::new(&DnsConfig {
        upstream: vec![world.net.addr(hosts::FREE + 1, 53)],
        trust_anchor: Some(dns.trust_anchor_dnskey.clone()),
        timeout: Duration::from_millis(500),
        ..DnsConfig::default()
    })
    .unwrap()
    .probe()
    .await
    .unwrap_err();
    let not_validating = resolver_mode(DnssecMode::TrustAd, dns.plain_resolver)
        .probe()
        .await
        .unwrap_err();
    for (e, says) in [
        (&refused, "REFUSED"),
        (&nowhere, "does not answer"),
        (&not_validating, "does not validate"),
    ] {
        let e = e.to_string();
        assert!(
            e.contains(says) && e.contains("fix:") && !e.contains('\n') && e.len() < 600,
            "{e}"
        );
    }
    // A garbage anchor file is refused when the resolver is made, by line.
    let garbage = world.dir().join("garbage.key");
    std::fs::write(&garbage, "this is not a key\n").unwrap();
    let e = Resolver::new(&DnsConfig {
        upstream: vec![dns.resolver],
        trust_anchor: Some(garbage),
        ..DnsConfig::default()
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("line 1") && e.contains("fix:") && !e.contains('\n'),
        "{e}"
    );
}

/// RFC 5011 where the operator allows it: with `trust_anchor_updates`, libunbound keeps the
/// anchor file itself (it rewrites it with its own state) and validation works from it.
#[tokio::test]
async fn dns1_rfc5011_anchor_updates_keep_a_writable_anchor_file() {
    let world = World::builder()
        .zone(mail_zone(Zone::signed("good.test")))
        .build()
        .unwrap();
    let dns = world.dns();
    let anchor = world.dir().join("root.autotrust");
    std::fs::copy(&dns.trust_anchor_ds, &anchor).unwrap();
    let before = std::fs::read_to_string(&anchor).unwrap();
    let r = Resolver::new(&DnsConfig {
        upstream: vec![dns.plain_resolver],
        trust_anchor: Some(anchor.clone()),
        trust_anchor_updates: true,
        timeout: Duration::from_secs(3),
        ..DnsConfig::default()
    })
    .unwrap();
    r.probe().await.unwrap();
    assert_eq!(r.mx("good.test").await.unwrap().state, DnssecState::Secure);
    let after = std::fs::read_to_string(&anchor).unwrap();
    assert!(
        after != before && after.contains("DNSKEY") && after.contains("state="),
        "the anchor file is kept by RFC 5011 now:\n{after}"
    );
}
