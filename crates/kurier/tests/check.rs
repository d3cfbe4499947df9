//! `kurier check` against the test world (TR-03108 DNS-2..5, SMTP-1, CERT-1, DANE-1/3/5/6,
//! STS-1..3, RPT-1, MUA-4..6, TLS-1/2/5/7): a domain served by Kurier with the records
//! `kurier dns` names passes; broken ones fail each item with its ID — an unsigned zone, no
//! TLSA, RSA-2048, a wildcard policy host, two `_smtp._tls` records with an https rua,
//! X25519 and ChaCha20 accepted, no brainpool (a Postfix peer and a Python HTTPS server on
//! Debian's OpenSSL); wrong TLSA on port 25 and on a client port, NSEC3 with 10 iterations, and
//! an `openssl s_server` that takes TLS 1.0 and X25519 only and CBC without Encrypt-then-MAC.
//! The TLS of port 25, of the policy host's 443 and of the client ports the SRV records name is
//! enumerated actively: submission, IMAP and POP3, each with implicit TLS and with STARTTLS.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use kurier_testworld::ca::{Ca, KeyKind, LeafSpec};
use kurier_testworld::net::hosts;
use kurier_testworld::{PostfixSpec, World, Zone};
use support::Server;

#[test]
fn check_tells_a_compliant_domain_from_a_broken_one() {
    let ca = Ca::new("Check", KeyKind::P256).unwrap();
    let leaf = ca
        .leaf(&[
            "mx.good.test",
            "mta-sts.good.test",
            "autoconfig.good.test",
            "autodiscover.good.test",
        ])
        .unwrap();
    let weak = ca
        .issue(&LeafSpec::new(&["mx.bad.test"]).key(KeyKind::Rsa2048))
        .unwrap();
    let (dkim_key, _) =
        kurier_dkim::DkimKey::generate("good.test", "k1", kurier_dkim::Algorithm::Rsa).unwrap();
    let (_, dkim) = dkim_key.dns_record().unwrap();
    let kurier = hosts::FREE;
    let (bad_policy, legacy) = (hosts::FREE + 11, hosts::FREE + 12);
    let mut world = World::builder()
        .zone(
            Zone::signed("good.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{kurier}}}"))
                .record("_25._tcp.mx", "TLSA", &leaf.tlsa_3_1_1().unwrap())
                .record("_25._tcp.mx", "TLSA", &ca.tlsa_2_1_1().unwrap())
                .record("_mta-sts", "TXT", "\"v=STSv1; id=1\"")
                // Kurier serves the policy of its hosted domain itself.
                .record("mta-sts", "A", &format!("{{ip:{kurier}}}"))
                .record(
                    "_smtp._tls",
                    "TXT",
                    "\"v=TLSRPTv1; rua=mailto:tlsrpt@good.test\"",
                )
                .record("autoconfig", "A", &format!("{{ip:{kurier}}}"))
                .record("autodiscover", "A", &format!("{{ip:{kurier}}}"))
                .record("_submissions._tcp", "SRV", "0 1 2465 mx.good.test.")
                .record("_submission._tcp", "SRV", "10 1 2587 mx.good.test.")
                .record("_imaps._tcp", "SRV", "0 1 1993 mx.good.test.")
                .record("_pop3s._tcp", "SRV", "0 1 1995 mx.good.test.")
                .record("_imap._tcp", "SRV", "10 1 1143 mx.good.test.")
                .record("_pop3._tcp", "SRV", "10 1 1110 mx.good.test.")
                // TR-03182: SPF, DMARC and the DKIM key (checked with --dkim-selector k1).
                .record("@", "TXT", "\"v=spf1 mx -all\"")
                .record(
                    "_dmarc",
                    "TXT",
                    "\"v=DMARC1; p=reject; rua=mailto:dmarc-reports@good.test\"",
                )
                .record("k1._domainkey", "TXT", &support::txt(&dkim)),
        )
        .zone(
            // DANE-6: a client port whose TLSA does not match what it serves.
            Zone::signed("mixed.test")
                .nsec3(10)
                // DANE-3: port 25's TLSA does not match the chain served there.
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{kurier}}}"))
                .record(
                    "_25._tcp.mx",
                    "TLSA",
                    "3 1 1 1111111111111111111111111111111111111111111111111111111111111111",
                )
                // TLS-1/TLS-2: a submissions port that takes TLS 1.0 and X25519 only.
                .record("legacy", "A", &format!("{{ip:{legacy}}}"))
                .record("_submissions._tcp", "SRV", "0 1 465 legacy.mixed.test.")
                .record("imap", "A", &format!("{{ip:{kurier}}}"))
                .record("_imaps._tcp", "SRV", "0 1 1993 imap.mixed.test.")
                .record(
                    "_1993._tcp.imap",
                    "TLSA",
                    "3 1 1 0000000000000000000000000000000000000000000000000000000000000000",
                ),
        )
        .zone(
            Zone::unsigned("bad.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", "{postfix:0}")
                .record("_mta-sts", "TXT", "\"v=STSv1; id=1\"")
                .record("mta-sts", "A", &format!("{{ip:{bad_policy}}}"))
                .record("_smtp._tls", "TXT", "\"v=TLSRPTv1; rua=mailto:a@bad.test\"")
                .record(
                    "_smtp._tls",
                    "TXT",
                    "\"v=TLSRPTv1; rua=https://x.bad.test/\"",
                ),
        )
        .postfix(PostfixSpec::receiver("mx.bad.test", &["bad.test"]).certificate(weak))
        .build()
        .unwrap();
    let policy = |d: &str| format!("version: STSv1\nmode: enforce\nmx: mx.{d}\nmax_age: 604800\n");
    world
        .start_https(
            bad_policy,
            &["*.bad.test"],
            &[(".well-known/mta-sts.txt", &policy("bad.test"))],
        )
        .unwrap();
    // openssl s_server (Debian's OpenSSL 3.0) with TLS 1.0 allowed and X25519 as its only group.
    let (legacy_cert, legacy_key) = ca
        .leaf(&["legacy.mixed.test"])
        .unwrap()
        .write(world.dir(), "legacy")
        .unwrap();
    let legacy_addr = world.net.addr(legacy, 465);
    let s_server = support::Reap(
        std::process::Command::new("openssl")
            .args(["s_server", "-www", "-accept", &legacy_addr.to_string()])
            .arg("-cert")
            .arg(&legacy_cert)
            .arg("-key")
            .arg(&legacy_key)
            .args([
                "-min_protocol",
                "TLSv1",
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
                "-groups",
                "X25519",
                // TLS-7: CBC with MAC-then-encrypt even for clients that offer EtM.
                "-no_etm",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    support::wait_until(
        std::time::Duration::from_secs(10),
        "openssl s_server",
        || std::net::TcpStream::connect(legacy_addr).is_ok(),
    );
    let dns = world.dns().clone();
    let ip = world.net.ip(kurier).to_string();
    let dir = tempfile::tempdir().unwrap();
    let cas = dir.path().join("cas.pem");
    std::fs::write(&cas, [world.ca.root_pem(), ca.root_pem()].concat()).unwrap();
    let config = support::configured(
        dir.path(),
        &ip,
        &format!("listen = [\"{ip}:25\"]\n"),
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\n[delivery]\nenabled = false\nextra_ca_file = \"{}\"\n[mta_sts]\nmx = [\"mx.good.test\"]\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display(),
            cas.display()
        ),
    );
    leaf.write(dir.path(), "mx").unwrap();
    // Kurier serves autoconfig and Autodiscover for good.test on 443, where clients look.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(&format!("{ip}:8443"), &format!("{ip}:443")),
    )
    .unwrap();
    support::admin(&config, &["domain", "add", "good.test"], "");
    let _server = Server::configured(dir.path(), &config);

    let run = |domain: &str| {
        let (code, out, err) = support::run(&[
            "check",
            domain,
            "--json",
            "--dkim-selector",
            "k1",
            "--config",
            config.to_str().unwrap(),
        ]);
        let v: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
        (code, v)
    };
    let statuses = support::finding_statuses;

    let of = |v: &serde_json::Value, id: &str, subject: &str| -> String {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["id"] == id && f["subject"] == subject)
            .map(|f| f["status"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {id} for {subject}: {v:#}"))
    };

    let (code, good) = run("good.test");
    assert_eq!(code, 0, "{good:#}");
    for id in [
        "DNS-2", "SMTP-1", "CERT-1", "DANE-1", "DANE-3", "DANE-5", "STS-1", "STS-2", "STS-3",
        "RPT-1", "MUA-4", "MUA-5", "MUA-6", "TLS-1", "TLS-2", "TLS-5", "DNS-3", "DNS-4",
    ] {
        let s = statuses(&good, id);
        assert!(
            !s.is_empty() && s.iter().all(|s| s == "pass"),
            "{id}: {s:?}\n{good:#}"
        );
    }

    // Kurier's own IMAP and POP3 ports, both with implicit TLS and STARTTLS, were probed too.
    for port in [2465, 2587, 1993, 1995, 1143, 1110] {
        let subject = format!("TLS on mx.good.test port {port}");
        let probed: Vec<&serde_json::Value> = good["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["subject"] == subject.as_str())
            .collect();
        assert!(
            !probed.is_empty() && probed.iter().all(|f| f["status"] == "pass"),
            "{subject}: {probed:#?}"
        );
    }

    // CERT-3: every client port serves a certificate that names the SRV target.
    let cert3 = statuses(&good, "CERT-3");
    assert!(
        cert3.len() >= 6 && cert3.iter().all(|s| s == "pass"),
        "{good:#}"
    );

    let (code, mixed) = run("mixed.test");
    assert_eq!(code, 1);
    // The SRV target imap.mixed.test is not a name of Kurier's certificate.
    assert_eq!(
        of(&mixed, "CERT-3", "certificate of imap.mixed.test port 1993"),
        "fail"
    );
    drop(s_server);
    assert_eq!(
        of(&mixed, "DANE-6", "TLSA for imap.mixed.test port 1993"),
        "fail"
    );
    assert_eq!(statuses(&mixed, "DANE-3"), ["fail"], "{mixed:#}");
    let legacy_port = "TLS on legacy.mixed.test port 465";
    assert_eq!(of(&mixed, "TLS-1", legacy_port), "fail", "{mixed:#}");
    assert_eq!(of(&mixed, "TLS-2", legacy_port), "fail", "{mixed:#}");
    // TLS-7: it serves CBC to a client without Encrypt-then-MAC; Kurier never does.
    assert_eq!(of(&mixed, "TLS-7", legacy_port), "fail", "{mixed:#}");
    let etm = mixed["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "TLS-7" && f["subject"] == legacy_port)
        .unwrap();
    assert!(
        etm["evidence"]
            .as_str()
            .unwrap()
            .contains("without Encrypt-then-MAC although the client offered it"),
        "{etm:#}"
    );
    assert_eq!(
        of(&good, "TLS-7", "TLS on mx.good.test port 2465"),
        "pass",
        "{good:#}"
    );
    let ics = mixed["ics"].as_array().unwrap();
    let scanned = ics.iter().find(|e| e["port"] == 465).unwrap();
    assert_eq!(
        scanned["groups"],
        serde_json::json!(["X25519"]),
        "{scanned:#}"
    );
    assert!(
        scanned["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v == "TLSv1.0"),
        "{scanned:#}"
    );
    // DNS-4 (RFC 9276): NSEC3 with 10 extra iterations fails; good.test uses NSEC.
    let denial = |v: &serde_json::Value, zone: &str| -> (String, String) {
        let f = v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["subject"] == format!("denial of existence in {zone}").as_str())
            .unwrap_or_else(|| panic!("no denial finding for {zone}: {v:#}"));
        (
            f["status"].as_str().unwrap().into(),
            f["evidence"].as_str().unwrap().into(),
        )
    };
    assert_eq!(
        denial(&mixed, "mixed.test"),
        ("fail".into(), "NSEC3 with 10 iterations".into())
    );
    assert_eq!(
        denial(&good, "good.test"),
        ("pass".into(), "NSEC (no NSEC3PARAM)".into())
    );
    // Without TLSA on the client ports (good.test): recommended only, not applicable.
    let dane6 = statuses(&good, "DANE-6");
    assert!(
        !dane6.is_empty() && dane6.iter().all(|s| s == "n/a"),
        "{good:#}"
    );

    let (code, bad) = run("bad.test");
    assert_eq!(code, 1, "{bad:#}");
    for id in ["DNS-2", "DNS-3", "CERT-1", "DANE-1", "STS-2", "RPT-1"] {
        assert!(
            statuses(&bad, id).contains(&"fail".to_string()),
            "{id}\n{bad:#}"
        );
    }
    // DNS-4 says so when a zone is not signed (never a silent skip).
    assert!(
        statuses(&bad, "DNS-4").contains(&"n/a".to_string()),
        "{bad:#}"
    );
    // bad.test offers no client services: MUA-4..6 do not apply (not a failure of a domain
    // that only receives mail).
    for id in ["MUA-4", "MUA-5", "MUA-6"] {
        assert_eq!(statuses(&bad, id), ["n/a"], "{id}\n{bad:#}");
    }
    // Port 25 of an MX may accept legacy clients (TLS-9): a warning; the policy host's HTTPS
    // (a server on Debian's OpenSSL, X25519 and ChaCha20 on) may not; no brainpool: failures.
    assert_eq!(of(&bad, "TLS-2", "TLS on mx.bad.test port 25"), "warn");
    assert_eq!(
        of(&bad, "TLS-2", "TLS on mta-sts.bad.test port 443"),
        "fail"
    );
    assert_eq!(statuses(&bad, "TLS-5"), ["fail", "fail"], "{bad:#}");
    // The policy host of good.test is Kurier's own HTTPS: scanned, and clean.
    assert_eq!(
        of(&good, "TLS-2", "TLS on mta-sts.good.test port 443"),
        "pass"
    );
    // STARTTLS is there, though: SMTP-1 passes.
    assert_eq!(statuses(&bad, "SMTP-1"), ["pass"]);

    // The text form names the requirement, what was seen and the fix.
    let (_, text, _) = support::run(&["check", "bad.test", "--config", config.to_str().unwrap()]);
    assert!(
        text.contains("FAIL  CERT-1  certificate of mx.bad.test: RSA key has 2048 bits"),
        "{text}"
    );
    assert!(text.contains("fix: "), "{text}");
    // And as a page for an auditor.
    let (_, html, _) = support::run(&[
        "check",
        "bad.test",
        "--html",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        html.starts_with("<!DOCTYPE html>") && html.contains("<td>CERT-1</td>"),
        "{html}"
    );
    assert!(html.contains("Requirements fail"));
    // DNS-5: the ICS tables of what each port accepted, entries outside TR-03116-4 marked.
    assert!(
        html.contains("Implementation conformance (ICS) as scanned"),
        "{html}"
    );
    assert!(
        html.contains("<span class=\"fail\">X25519</span>"),
        "{html}"
    );
    let ics = good["ics"].as_array().unwrap();
    let imaps = ics
        .iter()
        .find(|e| e["port"] == 1993)
        .expect("port 1993 in the ICS");
    assert!(
        imaps["suites"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{imaps:#}"
    );
    // Groups and signature algorithms of TLS 1.2 are listed too: brainpoolP256r1, and ECDSA
    // with SHA-384/512 on the P-256 key (TLS 1.3 binds the hash to the curve).
    for (kind, name) in [
        ("groups", "brainpoolP256r1tls13"),
        ("groups", "brainpoolP256r1"),
        ("sigalgs", "ecdsa_secp384r1_sha384"),
        ("sigalgs", "ecdsa_secp521r1_sha512"),
    ] {
        let list = if kind == "groups" {
            &imaps["groups"]
        } else {
            &imaps["signature_algorithms"]
        };
        assert!(
            list.as_array().unwrap().iter().any(|g| g == name),
            "{name}: {imaps:#}"
        );
    }
}
