//! `kurier dns` and `kurier check` agree (TR-03108 DANE-1/2, STS-1, RPT-1, MUA-4..6, DNS-2..5;
//! TR-03182 SPF-1, DMARC-1, DKIM-1 — all seven criteria of the BSI checker):
//! the records `kurier dns kurier.test` prints become the world's signed zone `kurier.test`,
//! Kurier serves the domain (MX on 25, HTTPS on 443, submission, IMAP, POP3), and
//! `kurier check kurier.test` finds nothing failing.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use kurier_testworld::ca::{Ca, KeyKind};
use kurier_testworld::net::hosts;
use kurier_testworld::{World, Zone};
use support::Server;

/// Stands for the world's address until the world exists (`kurier dns` runs before it).
const PROVISIONAL_IP: &str = "127.0.40.99";

/// The JSON records of `kurier dns` as records of the zone `kurier.test.`; the MX host's
/// address becomes the world's address for Kurier.
fn zone_records(json: &serde_json::Value, kurier_host: u8) -> Vec<(String, String, String)> {
    json["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap().trim_end_matches('.');
            let owner = match name.strip_suffix(".kurier.test") {
                Some(o) => o.to_string(),
                None if name == "kurier.test" => "@".to_string(),
                None => panic!("{name} is outside kurier.test"),
            };
            let rtype = r["type"].as_str().unwrap().to_string();
            let value = r["value"].as_str().unwrap();
            let rdata = match rtype.as_str() {
                "A" => {
                    assert_eq!(value, PROVISIONAL_IP);
                    format!("{{ip:{kurier_host}}}")
                }
                // Zone-file strings of at most 255 octets each (RFC 1035 §3.3.14).
                "TXT" => value
                    .as_bytes()
                    .chunks(255)
                    .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => value.to_string(),
            };
            (owner, rtype, rdata)
        })
        .collect()
}

#[test]
fn records_from_kurier_dns_make_kurier_check_pass() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("DnsCheck", KeyKind::P256).unwrap();
    let leaf = ca
        .leaf(&[
            "mx.kurier.test",
            "mta-sts.kurier.test",
            "autoconfig.kurier.test",
            "autodiscover.kurier.test",
        ])
        .unwrap();
    let ip = PROVISIONAL_IP;
    let config = support::configured(
        dir.path(),
        ip,
        &format!("listen = [\"{ip}:25\"]\n"),
        "\n[tlsrpt]\nreporting_address = \"tlsrpt@kurier.test\"\n\
         [autoconfig]\nimaps_port = 1993\npop3s_port = 1995\nimap_starttls_port = 1143\npop3_starttls_port = 1110\n",
    );
    // The certificate for every name the records point at (configured() made one for mx only).
    leaf.write(dir.path(), "mx").unwrap();
    // A DKIM key, so that `kurier dns` prints it and `kurier check` finds its selector in
    // the store (DKIM-1 without --dkim-selector).
    support::dkim_generate(&config, "rsa", "k1");
    let json = support::dns_json(&config, "kurier.test");

    let kurier = hosts::FREE;
    let mut zone = Zone::signed("kurier.test");
    for (owner, rtype, rdata) in zone_records(&json, kurier) {
        zone = zone.record(&owner, &rtype, &rdata);
    }
    let world = World::builder().zone(zone).build().unwrap();
    let dns = world.dns().clone();
    let world_ip = world.net.ip(kurier).to_string();
    let cas = dir.path().join("cas.pem");
    std::fs::write(&cas, [world.ca.root_pem(), ca.root_pem()].concat()).unwrap();
    // Now the real address, the world's resolver, HTTPS on 443 where clients look.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(ip, &world_ip)
        .replace(&format!("{world_ip}:8443"), &format!("{world_ip}:443"));
    let text = format!(
        "{text}\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\n",
        dns.resolver,
        dns.trust_anchor_dnskey.display()
    );
    let text = text.replace(
        "[delivery]\nenabled = false\n",
        &format!(
            "[delivery]\nenabled = false\nextra_ca_file = \"{}\"\n",
            cas.display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let _server = Server::configured(dir.path(), &config);

    let (code, out, err) = support::run(&[
        "check",
        "kurier.test",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ]);
    let audit: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let failed: Vec<&serde_json::Value> = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "fail")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(code, 0, "{audit:#}");
    // And it looked at all of it: DANE on 25 and on the client ports, the policy, the report
    // address, the clients.
    let dane6 = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "DANE-6" && f["status"] == "pass")
        .count();
    assert_eq!(
        dane6, 6,
        "TLSA on 2465, 2587, 1993, 1995, 1143, 1110: {audit:#}"
    );
    // The seven criteria of the BSI checker all pass, TR-03182's records included.
    let criteria = audit["criteria"].as_array().unwrap();
    assert_eq!(criteria.len(), 7);
    assert!(
        criteria.iter().all(|c| c["status"] == "pass"),
        "{criteria:#?}"
    );
    for id in [
        "DANE-1", "DANE-3", "DANE-6", "STS-2", "RPT-1", "MUA-4", "MUA-5", "MUA-6", "TLS-2",
        "DNS-3", "SPF-1", "DMARC-1", "DKIM-1",
    ] {
        assert!(
            audit["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["id"] == id && f["status"] == "pass"),
            "{id}: {audit:#}"
        );
    }
}
