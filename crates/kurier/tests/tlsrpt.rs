//! TLSRPT end to end (RFC 8460; TR-03108 RPT-1..RPT-10, TR-03108-P module H): Kurier A
//! delivers to domains with a good TLSA, a broken TLSA, an MTA-STS policy whose MX certificate
//! does not match, and no policy; `kurier reports send` (the day's run, triggered by hand) mails
//! the reports, DKIM-signed, to Kurier B's reporting address — although B's own TLSA record is
//! broken (TLS-Required: No). B checks the signature against A's key in the signed test zone,
//! stores the reports, and `kurier reports list` shows exactly A's counts. Domains with no, two,
//! or rua-less `_smtp._tls` records get nothing; unsigned and badly signed reports are dropped.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kurier_dkim::{Algorithm, DkimKey};
use kurier_testworld::net::hosts;
use kurier_testworld::{PostfixSpec, World, Zone};
use support::{Client, Server, plain};

/// The domains A sends to, all served by the Postfix peer.
const DOMAINS: &[&str] = &[
    "good.test",
    "broken.test",
    "stsbad.test",
    "none.test",
    "norpt.test",
    "tworpt.test",
    "norua.test",
    "httpsrpt.test",
];

const RUA: &str = "\"v=TLSRPTv1; rua=mailto:tlsrpt@kurier-b.test\"";

fn to_p0(z: Zone) -> Zone {
    z.record("@", "MX", "10 mx")
        .record("mx", "A", "{postfix:0}")
}

#[test]
fn rpt_reports_from_a_to_b_with_exact_counts() {
    let (a_key, a_pem) = DkimKey::generate("kurier.test", "kurier", Algorithm::Rsa).unwrap();
    let (_, a_txt) = a_key.dns_record().unwrap();
    let (impostor, _) = DkimKey::generate("kurier.test", "kurier", Algorithm::Rsa).unwrap();
    let b_ip_host = hosts::FREE + 1;
    let policy_host = hosts::FREE + 10;
    let mut world = World::builder()
        .zone(
            to_p0(Zone::signed("good.test"))
                .record("_25._tcp.mx", "TLSA", "{tlsa-postfix:0}")
                .record("_smtp._tls", "TXT", RUA),
        )
        .zone(
            to_p0(Zone::signed("broken.test"))
                .record(
                    "_25._tcp.mx",
                    "TLSA",
                    "3 1 1 0000000000000000000000000000000000000000000000000000000000000000",
                )
                .record("_smtp._tls", "TXT", RUA),
        )
        .zone(
            to_p0(Zone::unsigned("stsbad.test"))
                .record("_mta-sts", "TXT", "\"v=STSv1; id=1\"")
                .record("mta-sts", "A", &format!("{{ip:{policy_host}}}"))
                .record("_smtp._tls", "TXT", RUA),
        )
        .zone(to_p0(Zone::unsigned("none.test")).record("_smtp._tls", "TXT", RUA))
        // RPT-9: an https rua.
        .zone(
            to_p0(Zone::unsigned("httpsrpt.test"))
                .record(
                    "_smtp._tls",
                    "TXT",
                    "\"v=TLSRPTv1; rua=https://collector.httpsrpt.test/v1/tlsrpt\"",
                )
                .record("collector", "A", &format!("{{ip:{}}}", policy_host + 1)),
        )
        .zone(to_p0(Zone::unsigned("norpt.test")))
        .zone(
            to_p0(Zone::unsigned("tworpt.test"))
                .record("_smtp._tls", "TXT", RUA)
                .record(
                    "_smtp._tls",
                    "TXT",
                    "\"v=TLSRPTv1; rua=mailto:other@kurier-b.test\"",
                ),
        )
        .zone(to_p0(Zone::unsigned("norua.test")).record("_smtp._tls", "TXT", "\"v=TLSRPTv1;\""))
        // B: its TLSA matches nothing; reports must still arrive.
        .zone(
            Zone::signed("kurier-b.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{b_ip_host}}}"))
                .record(
                    "_25._tcp.mx",
                    "TLSA",
                    "3 1 1 1111111111111111111111111111111111111111111111111111111111111111",
                ),
        )
        // A's DKIM key, where B looks for it.
        .zone(Zone::signed("kurier.test").record("kurier._domainkey", "TXT", &support::txt(&a_txt)))
        .postfix(PostfixSpec::receiver("mx.good.test", DOMAINS))
        .build()
        .unwrap();
    world
        .start_https(
            policy_host,
            &["mta-sts.stsbad.test"],
            &[(
                ".well-known/mta-sts.txt",
                "version: STSv1\nmode: enforce\nmx: mx.stsbad.test\nmax_age: 86400\n",
            )],
        )
        .unwrap();
    world
        .start_https(policy_host + 1, &["collector.httpsrpt.test"], &[])
        .unwrap();
    let dns = world.dns().clone();
    let dns_cfg = format!(
        "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\n",
        dns.resolver,
        dns.trust_anchor_dnskey.display()
    );
    let ca = world.ca_file().unwrap();
    let (a_ip, b_ip) = (
        world.net.ip(hosts::FREE).to_string(),
        world.net.ip(b_ip_host).to_string(),
    );

    // B receives reports on port 25 at tlsrpt@kurier-b.test — by default (issue 18 item 5:
    // TLSRPT both ways), without any account or alias for it.
    let b_dir = tempfile::tempdir().unwrap();
    let b_config = support::configured(
        b_dir.path(),
        &b_ip,
        &format!("listen = [\"{b_ip}:25\"]\n"),
        &format!("{dns_cfg}[delivery]\nenabled = false\n[tlsrpt]\nenabled = false\n"),
    );
    support::admin(&b_config, &["domain", "add", "kurier-b.test"], "");
    let b = Server::configured(b_dir.path(), &b_config);

    // A sends, with its DKIM key installed for kurier.test.
    let a_dir = tempfile::tempdir().unwrap();
    let a_config = support::configured(
        a_dir.path(),
        &a_ip,
        "",
        &format!(
            "{dns_cfg}[delivery]\nretry_min_secs = 3600\nextra_ca_file = \"{}\"\n[tlsrpt]\norganization = \"Kurier A\"\n",
            ca.display()
        ),
    );
    install_dkim_key(a_dir.path(), &a_pem);
    let a = Server::configured(a_dir.path(), &a_config);
    let domains = DOMAINS;
    let mut c = Client::connect_tls(format!("{a_ip}:2465").parse().unwrap(), "mx.kurier.test");
    c.cmd("EHLO client.test");
    assert!(
        c.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw")))
            .starts_with("235")
    );
    for d in domains {
        assert!(c.cmd("MAIL FROM:<rcpt@kurier.test>").starts_with("250"));
        assert!(c.cmd(&format!("RCPT TO:<user@{d}>")).starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        assert!(
            c.cmd(&format!(
                "Subject: {d}\r\nFrom: rcpt@kurier.test\r\n\r\nhi\r\n."
            ))
            .starts_with("250")
        );
    }
    c.cmd("QUIT");
    for d in domains {
        support::wait_until(Duration::from_secs(30), d, || {
            a.stderr().contains(&format!("domain={d} "))
        });
    }
    // Every attempt has finished (retries are an hour away), so A's events are final.
    std::thread::sleep(Duration::from_secs(1));
    let a_counts = counts_from_events(a_dir.path());
    assert_eq!(a_counts["good.test"], (1, 0));
    assert_eq!(a_counts["none.test"], (1, 0));
    assert!(
        a_counts["broken.test"].1 >= 1 && a_counts["stsbad.test"].1 >= 1,
        "{a_counts:?}"
    );

    // RPT-4: each session with our address, the receiver's greeting name, and why it failed.
    let events = support::tls_events(a_dir.path());
    let broken = events
        .iter()
        .find(|e| e.policy_domain == "broken.test")
        .unwrap();
    assert!(broken.sending_ip.is_some(), "{broken:?}");
    assert_eq!(broken.receiving_helo.as_deref(), Some("mx.good.test"));
    assert!(broken.detail.is_some(), "{broken:?}");

    let today = support::utc_day();
    let send = || {
        let (code, out, err) = support::run(&[
            "reports",
            "send",
            "--day",
            &today,
            "--config",
            a_config.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let out = send();
    for d in ["good.test", "broken.test", "stsbad.test", "none.test"] {
        assert!(
            out.contains(&format!("sent      {d} → mailto:tlsrpt@kurier-b.test")),
            "{out}"
        );
    }
    assert!(
        out.contains("sent      httpsrpt.test → https://collector.httpsrpt.test/v1/tlsrpt"),
        "{out}"
    );
    // Run twice, sent once: the report of a domain and day is claimed in the store (and
    // keeps its report-id).
    let again = send();
    assert!(!again.contains("sent  "), "{again}");
    assert!(
        again.contains("no report good.test: already sent"),
        "{again}"
    );
    let posted = world.posted(policy_host + 1);
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].0, "application/tlsrpt+gzip");
    let json = support::gunzip(&posted[0].1);
    let posted_report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        posted_report["policies"][0]["policy"]["policy-domain"],
        "httpsrpt.test"
    );
    assert_eq!(posted_report["organization-name"], "Kurier A");
    assert!(
        out.contains("no report norpt.test: no _smtp._tls record"),
        "H-02: {out}"
    );
    assert!(
        out.contains("no report tworpt.test: _smtp._tls: more than one"),
        "H-03: {out}"
    );
    assert!(
        out.contains("no report norua.test: _smtp._tls: no rua"),
        "H-04: {out}"
    );

    support::wait_until(Duration::from_secs(30), "4 reports at B", || {
        b.stderr().matches("TLSRPT report received").count() >= 4
    });
    let (code, listed, err) = support::run(&[
        "reports",
        "list",
        "--json",
        "--config",
        b_config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    let mut b_counts = BTreeMap::new();
    for row in &listed {
        assert_eq!(row["reporter"], "Kurier A");
        b_counts.insert(
            row["policy-domain"].as_str().unwrap().to_string(),
            (
                row["successful"].as_u64().unwrap(),
                row["failed"].as_u64().unwrap(),
            ),
        );
    }
    let expected: BTreeMap<String, (u64, u64)> = a_counts
        .iter()
        .filter(|(d, _)| {
            ["good.test", "broken.test", "stsbad.test", "none.test"].contains(&d.as_str())
        })
        .map(|(d, c)| (d.clone(), *c))
        .collect();
    assert_eq!(b_counts, expected, "B's view equals A's sessions");
    let failures =
        |d: &str| listed.iter().find(|r| r["policy-domain"] == d).unwrap()["failures"].clone();
    assert!(
        failures("broken.test").get("tlsa-invalid").is_some(),
        "{listed:?}"
    );
    assert!(
        failures("stsbad.test")
            .get("certificate-host-mismatch")
            .is_some(),
        "{listed:?}"
    );
    // RPT-3: reports with failures raise a warning.
    assert!(
        b.stderr()
            .contains("a TLSRPT report shows failed TLS sessions")
    );
    // The report to B was not counted as a session itself, and went through B's broken TLSA.
    assert!(!a_counts.contains_key("kurier-b.test"), "{a_counts:?}");
    assert!(!counts_from_events(a_dir.path()).contains_key("kurier-b.test"));

    // Unsigned, and signed with a key that is not the published one: dropped.
    let report = br#"{"organization-name":"Forger","date-range":{"start-datetime":"2026-11-28T00:00:00Z","end-datetime":"2026-11-29T00:00:00Z"},"contact-info":"x","report-id":"forged","policies":[{"policy":{"policy-type":"sts","policy-domain":"good.test"},"summary":{"total-successful-session-count":999,"total-failure-session-count":0}}]}"#;
    let mail = forged_report(report);
    let signed = [
        impostor
            .sign(&mail, kurier_store::now())
            .unwrap()
            .as_bytes(),
        &mail,
    ]
    .concat();
    {
        // Only tlsrpt@ takes reports without an account: no catch-all.
        let mut s = Client::connect(format!("{b_ip}:25").parse().unwrap());
        s.cmd("EHLO forger.test");
        assert!(s.cmd("MAIL FROM:<x@kurier.test>").starts_with("250"));
        assert!(s.cmd("RCPT TO:<nobody@kurier-b.test>").starts_with("550"));
    }
    for m in [mail.clone(), signed] {
        let mut s = Client::connect(format!("{b_ip}:25").parse().unwrap());
        s.cmd("EHLO forger.test");
        assert!(s.cmd("MAIL FROM:<tlsrpt@kurier.test>").starts_with("250"));
        assert!(s.cmd("RCPT TO:<tlsrpt@kurier-b.test>").starts_with("250"));
        assert!(s.cmd("DATA").starts_with("354"));
        s.send(&m);
        assert!(s.cmd(".").starts_with("250"));
    }
    support::wait_until(Duration::from_secs(15), "two dropped reports", || {
        b.stderr().matches("TLSRPT report dropped").count() >= 2
    });
    let log = b.stderr();
    assert!(log.contains("no DKIM signature"), "{log}");
    assert!(
        log.contains("does not verify") || log.contains("body hash"),
        "{log}"
    );
    let (_, again, _) = support::run(&[
        "reports",
        "list",
        "--json",
        "--config",
        b_config.to_str().unwrap(),
    ]);
    assert!(!again.contains("Forger"), "{again}");

    // RPT-3: the counters monitoring alerts on (/metrics, loopback only).
    let metrics = std::process::Command::new("curl")
        .args(["-sk", &format!("https://{b_ip}:8443/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("kurier_tlsrpt_reports_received_total 4\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kurier_tlsrpt_reports_with_failures_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("kurier_tlsrpt_reports_dropped_total 2\n"),
        "{metrics}"
    );

    // `kurier dns` on B publishes its rua.
    let (_, dns_out, _) = support::run(&[
        "dns",
        "kurier-b.test",
        "--config",
        b_config.to_str().unwrap(),
    ]);
    assert!(
        dns_out.contains(
            "_smtp._tls.kurier-b.test. IN TXT ( \"v=TLSRPTv1; rua=mailto:tlsrpt@kurier-b.test\" )"
        ),
        "{dns_out}"
    );
}

fn install_dkim_key(dir: &std::path::Path, pem: &[u8]) {
    let keys = dir.join("data/dkim");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("kurier.test.kurier.pem"), pem).unwrap();
    let (rt, store) = support::store_at(dir);
    rt.block_on(store.set_domain_setting("kurier.test", "dkim.selector", Some("kurier")))
        .unwrap();
}

/// (successful, failed) sessions per policy domain, from A's own events.
fn counts_from_events(dir: &std::path::Path) -> BTreeMap<String, (u64, u64)> {
    let mut m: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for e in support::tls_events(dir) {
        let c = m.entry(e.policy_domain).or_default();
        if e.failure.is_some() {
            c.1 += 1;
        } else {
            c.0 += 1;
        }
    }
    m
}

fn forged_report(json: &[u8]) -> Vec<u8> {
    format!(
        "From: <tlsrpt@kurier.test>\r\nTo: <tlsrpt@kurier-b.test>\r\nSubject: Report Domain: good.test Submitter: kurier.test\r\n\
         TLS-Report-Domain: good.test\r\nTLS-Report-Submitter: kurier.test\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nreport\r\n\
         --b1\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n--b1--\r\n",
        String::from_utf8_lossy(json)
    )
    .into_bytes()
}

/// Issue 18 item 4 (RPT-6): two Kurier nodes on one PostgreSQL database share the queue and the
/// TLS outcomes; a day's report for a policy domain leaves exactly once, counting the sessions
/// of both nodes, even when both nodes send the day's reports at the same moment.
#[test]
fn rpt6_two_nodes_on_one_postgres_send_a_days_report_once() {
    let collector = hosts::FREE + 10;
    let mut world = World::builder()
        .zone(
            Zone::unsigned("shared.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", "{postfix:0}")
                .record(
                    "_smtp._tls",
                    "TXT",
                    "\"v=TLSRPTv1; rua=https://collector.reports.test/v1/tlsrpt\"",
                ),
        )
        .zone(Zone::unsigned("reports.test").record(
            "collector",
            "A",
            &format!("{{ip:{collector}}}"),
        ))
        .postfix(PostfixSpec::receiver("mx.shared.test", &["shared.test"]))
        .build()
        .unwrap();
    world
        .start_https(collector, &["collector.reports.test"], &[])
        .unwrap();
    let dns = world.dns().clone();
    let url = support::postgres_database("kurier_rpt");
    let (a_ip, b_ip) = (
        world.net.ip(hosts::FREE).to_string(),
        world.net.ip(hosts::FREE + 1).to_string(),
    );
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a_config = support::configured(
        a_dir.path(),
        &a_ip,
        "",
        &format!(
            "\n[store]\nurl = \"{url}\"\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\n\
             [delivery]\nretry_min_secs = 3600\nextra_ca_file = \"{}\"\n",
            dns.resolver,
            dns.trust_anchor_ds.display(),
            world.ca_file().unwrap().display()
        ),
    );
    // Node B: the same database and certificate, its own address and data folder.
    let b_config = support::second_node(a_dir.path(), &a_config, &a_ip, b_dir.path(), &b_ip);
    let a = Server::configured(a_dir.path(), &a_config);
    let b = Server::configured(b_dir.path(), &b_config);
    for (ip, n) in [(&a_ip, 1), (&b_ip, 2), (&a_ip, 3), (&b_ip, 4)] {
        let r = support::submit_message(ip, "user@shared.test", &format!("Subject: node {n}\r\n"));
        assert!(r.starts_with("250"), "{r}");
    }
    world.postfix[0]
        .wait_for_messages(4, Duration::from_secs(60))
        .unwrap();
    // Both nodes delivered: their outcomes are in one database.
    support::wait_until(Duration::from_secs(10), "both nodes' sessions", || {
        let tried = |s: &Server| s.stderr().matches("domain=shared.test ").count();
        tried(&a) + tried(&b) >= 4
    });
    std::thread::sleep(Duration::from_secs(1));

    // Both nodes send the day's reports at the same moment.
    let day = support::utc_day();
    let send = |config: &std::path::Path| {
        std::process::Command::new(support::bin())
            .args(["reports", "send", "--day", &day, "--config"])
            .arg(config)
            .output()
            .unwrap()
    };
    let (out_a, out_b) = std::thread::scope(|s| {
        let a = s.spawn(|| send(&a_config));
        let b = s.spawn(|| send(&b_config));
        (a.join().unwrap(), b.join().unwrap())
    });
    let text = |o: &std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let both = format!("{}{}", text(&out_a), text(&out_b));
    assert_eq!(
        both.matches("sent      shared.test").count(),
        1,
        "exactly one node sends it: {both}"
    );
    assert!(
        both.contains("no report shared.test: already sent"),
        "{both}"
    );
    let posted = world.posted(collector);
    assert_eq!(posted.len(), 1, "{both}");
    let json = support::gunzip(&posted[0].1);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        report["policies"][0]["summary"]["total-successful-session-count"], 4,
        "the sessions of both nodes: {json}"
    );
    // And a later run on either node sends nothing new.
    let again = support::send_todays_reports(&b_config);
    assert!(!again.contains("sent  "), "{again}");
    assert_eq!(world.posted(collector).len(), 1);
}
