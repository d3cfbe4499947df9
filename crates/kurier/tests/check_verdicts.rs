//! `kurier check` gives no false verdicts (issue 23): a compliant domain passes completely —
//! every finding and the seven criteria of the BSI e-mail checker — and each deliberately
//! broken domain fails exactly the requirement it breaks, nothing else. The MX judgements are
//! the delivery engine's own (`delivery::route::hop`, the DANE and MTA-STS peer checks): a CNAME
//! MX has its TLSA at the target (RFC 7672 §2.2.2), a DANE-TA record needs a certificate that
//! names the MX (§3.2.3; MTA-STS then fails too), every MX and every record is checked, and under an MTA-STS policy a
//! self-signed MX certificate fails STS-3 even though DANE-EE authenticates it. SPF, DMARC and
//! DKIM records (TR-03182) are judged: no SPF, `~all`, `p=none`, a 1024-bit key. Client ports
//! (an `openssl s_server` of OpenSSL ≥ 3.5 with TR-03116-4's lists) that serve CBC without
//! Encrypt-then-MAC fail TLS-7 alone, and without brainpool TLS-5 alone. A domain that offers
//! no client services is "not applicable" for MUA-4..6, not failing.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeSet;

use kurier_dkim::{Algorithm, DkimKey};
use kurier_testworld::ca::{Ca, KeyKind, LeafSpec};
use kurier_testworld::net::hosts;
use kurier_testworld::{World, Zone};
use support::Server;

/// The domains served by Kurier A (besides good.test), each broken in one way.
const VARIANTS: &[&str] = &[
    "nospf.test",
    "softall.test",
    "dmarcnone.test",
    "shortdkim.test",
    "cname.test",
    "tanames.test",
    "twomx.test",
    "selfsigned.test",
    "cbc.test",
    "nobp.test",
    "twoaddr.test",
];

/// What every compliant domain publishes besides its MX: MTA-STS (served by Kurier A),
/// TLSRPT, SPF (`spf`; none if empty), DMARC (`dmarc`) and a DKIM key at `k1`.
fn compliant(name: &str, a: u8, spf: &str, dmarc: &str, dkim: &str) -> Zone {
    let z = Zone::signed(name)
        .record("_mta-sts", "TXT", "\"v=STSv1; id=1\"")
        .record("mta-sts", "A", &format!("{{ip:{a}}}"))
        .record(
            "_smtp._tls",
            "TXT",
            "\"v=TLSRPTv1; rua=mailto:tlsrpt@good.test\"",
        )
        .record("_dmarc", "TXT", &support::txt(dmarc))
        .record("k1._domainkey", "TXT", &support::txt(dkim));
    if spf.is_empty() {
        z
    } else {
        z.record("@", "TXT", &support::txt(spf))
    }
}

const SPF: &str = "v=spf1 mx -all";
const DMARC: &str = "v=DMARC1; p=reject; rua=mailto:dmarc-reports@good.test";

/// A compliant domain whose MX is mx.good.test and whose submissions service (SRV) is
/// `smtp.<name>` on host `smtp`, with autoconfig and Autodiscover on Kurier A.
fn client_domain(name: &str, a: u8, smtp: u8, dkim: &str) -> Zone {
    compliant(name, a, SPF, DMARC, dkim)
        .record("@", "MX", "10 mx.good.test.")
        .record("smtp", "A", &format!("{{ip:{smtp}}}"))
        .record("_submissions._tcp", "SRV", &format!("0 1 465 smtp.{name}."))
        .record("autoconfig", "A", &format!("{{ip:{a}}}"))
        .record("autodiscover", "A", &format!("{{ip:{a}}}"))
}

/// An implicit-TLS server on `host`:465 with TR-03116-4's lists, by the OpenSSL ≥ 3.5 tool
/// (KURIER_TEST_OPENSSL): `cbc` serves CBC suites with MAC-then-encrypt (`-no_etm`) and
/// brainpool first; otherwise GCM only and no brainpool.
fn submission_server(
    world: &World,
    ca: &Ca,
    dir: &std::path::Path,
    host: u8,
    name: &str,
    cbc: bool,
) -> support::Reap {
    let openssl = std::env::var("KURIER_TEST_OPENSSL").expect(
        "KURIER_TEST_OPENSSL is not set: run scripts/test.sh, which builds an openssl tool from the vendored OpenSSL source (scripts/openssl-cli.sh)",
    );
    let leaf = ca.leaf(&[name]).unwrap();
    let (cert, key) = leaf.write(dir, name).unwrap();
    let pem = std::fs::read(&cert).unwrap();
    let certs = openssl::x509::X509::stack_from_pem(&pem).unwrap();
    let chain = dir.join(format!("{name}.chain.pem"));
    std::fs::write(
        &chain,
        // Without the root: the chain ends at a CA of extra_ca_file, which CERT-3 must trust
        // as delivery does.
        certs[1..certs.len() - 1]
            .iter()
            .flat_map(|c| c.to_pem().unwrap())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::write(&cert, certs[0].to_pem().unwrap()).unwrap();
    let addr = world.net.addr(host, 465);
    let (ciphers, groups) = if cbc {
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384",
            "brainpoolP256r1tls13:brainpoolP256r1:P-256:P-384",
        )
    } else {
        (
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
            "P-256:P-384",
        )
    };
    let mut cmd = std::process::Command::new(openssl);
    cmd.args(["s_server", "-www", "-accept", &addr.to_string()])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .arg("-cert_chain")
        .arg(&chain)
        .args([
            "-min_protocol",
            "TLSv1.2",
            "-serverpref",
            "-cipher",
            ciphers,
            "-ciphersuites",
            "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384",
            "-groups",
            groups,
            "-sigalgs",
            "ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384",
        ]);
    if cbc {
        cmd.arg("-no_etm");
    }
    let child = support::Reap(
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::wait_until(std::time::Duration::from_secs(10), "s_server", || {
        std::net::TcpStream::connect(addr).is_ok()
    });
    child
}

#[test]
fn check_fails_exactly_what_is_broken() {
    let ca = Ca::new("Verdicts", KeyKind::P256).unwrap();
    let mut names = vec![
        "mx.good.test".to_string(),
        "mx.cname.test".to_string(),
        "mx2.twomx.test".to_string(),
        "mx.twoaddr.test".to_string(),
        "mta-sts.good.test".to_string(),
    ];
    names.extend(VARIANTS.iter().map(|d| format!("mta-sts.{d}")));
    for d in ["cbc.test", "nobp.test"] {
        names.push(format!("autoconfig.{d}"));
        names.push(format!("autodiscover.{d}"));
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let leaf = ca.leaf(&names).unwrap();
    let own = ca
        .issue(&LeafSpec::new(&["mx.selfsigned.test"]).self_signed())
        .unwrap();
    let (key, _) = DkimKey::generate("good.test", "k1", Algorithm::Rsa).unwrap();
    let (_, dkim) = key.dns_record().unwrap();
    let short = {
        let rsa = openssl::rsa::Rsa::generate(1024).unwrap();
        let der = openssl::pkey::PKey::from_rsa(rsa)
            .unwrap()
            .public_key_to_der()
            .unwrap();
        format!("v=DKIM1; k=rsa; p={}", openssl::base64::encode_block(&der))
    };
    let (a, b) = (hosts::FREE, hosts::FREE + 1);
    // Submission servers of two domains that offer clients (openssl s_server, OpenSSL ≥ 3.5,
    // with TR-03116-4's lists): one serves CBC without Encrypt-then-MAC, one has no brainpool.
    let (cbc, nobp) = (hosts::FREE + 2, hosts::FREE + 3);
    let tlsa_a = leaf.tlsa_3_1_1().unwrap();
    let world = World::builder()
        .zone(
            compliant("good.test", a, SPF, DMARC, &dkim)
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{a}}}"))
                .record("_25._tcp.mx", "TLSA", &tlsa_a)
                .record("_25._tcp.mx", "TLSA", &ca.tlsa_2_1_1().unwrap()),
        )
        .zone(compliant("nospf.test", a, "", DMARC, &dkim).record("@", "MX", "10 mx.good.test."))
        .zone(
            compliant("softall.test", a, "v=spf1 mx ~all", DMARC, &dkim).record(
                "@",
                "MX",
                "10 mx.good.test.",
            ),
        )
        .zone(
            compliant(
                "dmarcnone.test",
                a,
                SPF,
                "v=DMARC1; p=none; rua=mailto:dmarc-reports@good.test",
                &dkim,
            )
            .record("@", "MX", "10 mx.good.test."),
        )
        .zone(compliant("shortdkim.test", a, SPF, DMARC, &short).record(
            "@",
            "MX",
            "10 mx.good.test.",
        ))
        // A CNAME MX: the TLSA is at the target (the certificate names both).
        .zone(
            compliant("cname.test", a, SPF, DMARC, &dkim)
                .record("@", "MX", "10 mx")
                .record("mx", "CNAME", "mx.good.test."),
        )
        // DANE-TA only, and the certificate does not name mx.tanames.test.
        .zone(
            compliant("tanames.test", a, SPF, DMARC, &dkim)
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{a}}}"))
                .record("_25._tcp.mx", "TLSA", &ca.tlsa_2_1_1().unwrap()),
        )
        // Two MXs: the first is fine, the second's TLSA matches nothing it serves.
        .zone(
            compliant("twomx.test", a, SPF, DMARC, &dkim)
                .record("@", "MX", "10 mx.good.test.")
                .record("@", "MX", "20 mx2")
                .record("mx2", "A", &format!("{{ip:{a}}}"))
                .record(
                    "_25._tcp.mx2",
                    "TLSA",
                    "3 1 1 2222222222222222222222222222222222222222222222222222222222222222",
                ),
        )
        // One MX with two addresses, the second of which takes no connection.
        .zone(
            compliant("twoaddr.test", a, SPF, DMARC, &dkim)
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{a}}}"))
                .record("mx", "A", &format!("{{ip:{}}}", hosts::FREE + 4))
                .record("_25._tcp.mx", "TLSA", &tlsa_a),
        )
        // Domains with a client service: submissions on an s_server; autoconfig and
        // Autodiscover by Kurier A.
        .zone(client_domain("cbc.test", a, cbc, &dkim))
        .zone(client_domain("nobp.test", a, nobp, &dkim))
        // Kurier B with a self-signed certificate that DANE-EE authenticates, under MTA-STS
        // enforce: STS-3 fails, nothing else.
        .zone(
            compliant("selfsigned.test", a, SPF, DMARC, &dkim)
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{b}}}"))
                .record("_25._tcp.mx", "TLSA", &own.tlsa_3_1_1().unwrap()),
        );
    let world = world.build().unwrap();
    let dns = world.dns().clone();
    let dir_a = tempfile::tempdir().unwrap();
    let cas = dir_a.path().join("cas.pem");
    std::fs::write(&cas, [world.ca.root_pem(), ca.root_pem()].concat()).unwrap();
    let dns_cfg = |ca_file: &std::path::Path| {
        format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\n[delivery]\nenabled = false\nextra_ca_file = \"{}\"\n\
             [mta_sts]\nmx = [\"mx.good.test\", \"mx.cname.test\", \"mx.tanames.test\", \"mx2.twomx.test\", \"mx.selfsigned.test\", \"mx.twoaddr.test\"]\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display(),
            ca_file.display()
        )
    };
    let start =
        |dir: &std::path::Path, host: u8, leaf: &kurier_testworld::ca::Leaf, domains: &[&str]| {
            let ip = world.net.ip(host).to_string();
            let config = support::configured(
                dir,
                &ip,
                &format!("listen = [\"{ip}:25\"]\n"),
                &dns_cfg(&cas),
            );
            leaf.write(dir, "mx").unwrap();
            let text = std::fs::read_to_string(&config).unwrap();
            std::fs::write(
                &config,
                text.replace(&format!("{ip}:8443"), &format!("{ip}:443")),
            )
            .unwrap();
            for d in domains {
                support::admin(&config, &["domain", "add", d], "");
            }
            (config.clone(), Server::configured(dir, &config))
        };
    let mut hosted = vec!["good.test"];
    hosted.extend(VARIANTS);
    let (config, _a) = start(dir_a.path(), a, &leaf, &hosted);
    let dir_b = tempfile::tempdir().unwrap();
    let (_, _b) = start(dir_b.path(), b, &own, &[]);
    let _cbc = submission_server(&world, &ca, dir_a.path(), cbc, "smtp.cbc.test", true);
    let _nobp = submission_server(&world, &ca, dir_a.path(), nobp, "smtp.nobp.test", false);

    let run = |domain: &str| -> serde_json::Value {
        let (_, out, err) = support::run(&[
            "check",
            domain,
            "--json",
            "--dkim-selector",
            "k1",
            "--config",
            config.to_str().unwrap(),
        ]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
    };
    let failing = |v: &serde_json::Value| -> BTreeSet<String> {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["status"] == "fail")
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    };
    let status_of = support::finding_statuses;

    // The compliant domain: every finding passes (or does not apply), all seven criteria pass.
    let good = run("good.test");
    assert_eq!(good["version"], 1);
    assert!(
        good["checked_at"].as_str().unwrap().starts_with("20"),
        "{good:#}"
    );
    assert!(
        good["resolver"].as_str().unwrap().contains("trust anchor"),
        "{good:#}"
    );
    assert_eq!(failing(&good), BTreeSet::new(), "{good:#}");
    let criteria: Vec<(String, String)> = good["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        criteria.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        ["SPF", "DKIM", "DMARC", "DNSSEC", "DANE", "TLS", "MTA-STS"]
    );
    assert!(criteria.iter().all(|(_, s)| s == "pass"), "{criteria:?}");
    assert_eq!(status_of(&good, "DANE-3"), ["pass"], "{good:#}");
    // The raw facts behind it: the chain as sent, its SPKI hash equal to the published 3 1 1.
    let probe = &good["probes"][0];
    assert_eq!(probe["host"], "mx.good.test", "{good:#}");
    let spki = probe["chain"][0]["spki_sha256"].as_str().unwrap();
    assert!(tlsa_a.ends_with(spki), "{tlsa_a} vs {spki}");
    assert!(
        probe["tlsa"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap() == tlsa_a.to_ascii_lowercase()),
        "{probe:#}"
    );
    assert_eq!(probe["tlsa_name"], "_25._tcp.mx.good.test");
    assert!(
        probe["version"].as_str().unwrap().starts_with("TLSv1."),
        "{probe:#}"
    );
    assert_eq!(
        status_of(&good, "STS-3"),
        ["pass", "pass"],
        "coverage and the certificate: {good:#}"
    );

    let expect = |domain: &str, ids: &[&str]| -> serde_json::Value {
        let v = run(domain);
        let want: BTreeSet<String> = ids.iter().map(|s| s.to_string()).collect();
        assert_eq!(failing(&v), want, "{domain}: {v:#}");
        v
    };
    let v = expect("nospf.test", &["SPF-1"]);
    assert_eq!(v["criteria"][0]["status"], "fail");
    expect("softall.test", &["SPF-1"]);
    expect("dmarcnone.test", &["DMARC-1"]);
    let v = expect("shortdkim.test", &["DKIM-1"]);
    assert!(v.to_string().contains("RSA key of 1024 bits"), "{v:#}");
    // RFC 7672 §2.2.2: TLSA at the CNAME target; without that, DANE-1 would fail.
    let v = expect("cname.test", &[]);
    assert!(
        v.to_string().contains("at the CNAME target mx.good.test"),
        "{v:#}"
    );
    // RFC 7672 §3.2.3: the CA matches, the name does not — and MTA-STS wants the name too.
    let v = expect("tanames.test", &["DANE-3", "STS-3"]);
    assert_eq!(status_of(&v, "DANE-1"), ["pass"]);
    // Both MXs probed; only the second fails.
    let v = expect("twomx.test", &["DANE-3"]);
    assert_eq!(status_of(&v, "DANE-3"), ["pass", "fail"], "{v:#}");
    assert_eq!(status_of(&v, "SMTP-1"), ["pass", "pass"], "{v:#}");
    // DANE-EE authenticates the self-signed MX, MTA-STS does not.
    let selfsigned = expect("selfsigned.test", &["STS-3"]);
    assert_eq!(status_of(&selfsigned, "DANE-3"), ["pass"], "{selfsigned:#}");
    // Every address of an MX is probed: the dead one fails SMTP-1, the other passes it all.
    let v = expect("twoaddr.test", &["SMTP-1"]);
    let dead = format!(
        "mx.twoaddr.test [{}] port 25",
        world.net.ip(hosts::FREE + 4)
    );
    assert!(
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "SMTP-1" && f["status"] == "fail" && f["subject"] == dead.as_str()),
        "{v:#}"
    );
    assert_eq!(status_of(&v, "SMTP-1").len(), 2, "{v:#}");
    // A client port that serves CBC with MAC-then-encrypt fails TLS-7 alone; one without
    // brainpool fails TLS-5 alone (TLS 1.2 clients get P-256).
    let v = expect("cbc.test", &["TLS-7"]);
    assert_eq!(status_of(&v, "MUA-4"), ["pass"], "{v:#}");
    assert_eq!(
        status_of(&v, "TLS-5").last().map(String::as_str),
        Some("pass")
    );
    let v = expect("nobp.test", &["TLS-5"]);
    assert!(
        v.to_string()
            .contains("offering P-256, then brainpoolP256r1: secp256r1"),
        "{v:#}"
    );
    // A domain without client services: MUA-4..6 do not apply.
    for id in ["MUA-4", "MUA-5", "MUA-6"] {
        assert_eq!(status_of(&selfsigned, id), ["n/a"], "{id}: {selfsigned:#}");
    }

    // The text form starts with the seven criteria; the page shows date, resolver, criteria.
    let (_, text, _) = support::run(&[
        "check",
        "nospf.test",
        "--dkim-selector",
        "k1",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(text.contains("FAIL  SPF      (SPF-1)"), "{text}");
    assert!(text.contains("pass  DMARC    (DMARC-1)"), "{text}");
    let (_, html, _) = support::run(&[
        "check",
        "good.test",
        "--html",
        "--dkim-selector",
        "k1",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(html.contains("<h2>The seven criteria</h2>"), "{html}");
    assert!(html.contains("Checked at 20"), "{html}");
    assert!(html.contains("<h2>What each MX showed</h2>"), "{html}");
}
