//! `[dns_update]` (issue 21 item 3): Kurier publishes its own records on the operator's
//! primary server — Knot DNS here — by RFC 2136 updates signed with TSIG: the TLSA records, the
//! `_mta-sts`/`_smtp._tls`/DKIM TXT records and the SRV records of `kurier dns`, never MX, A,
//! CNAME, SPF or DMARC. A dry run only prints the update; a wrong key is a clear error.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use kurier_testworld::knot::Knot;
use support::Server;

fn config_with_knot(dir: &std::path::Path, ip: &str, knot: &Knot) -> std::path::PathBuf {
    support::configured(
        dir,
        ip,
        "",
        &format!(
            "\n[dns_update]\nenabled = true\nserver = \"{}\"\nzones = [\"kurier.test\"]\nkey_file = \"{}\"\ncheck_secs = 1\n",
            knot.addr,
            knot.key_file.display()
        ),
    )
}

/// The records of one type that `kurier dns --format json` lists, as `owner rdata` (TXT
/// strings joined), comparable with what Knot serves.
fn printed(json: &serde_json::Value, rtype: &str) -> Vec<String> {
    let mut out: Vec<String> = json["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == rtype)
        .map(|r| {
            let value = r["value"].as_str().unwrap();
            let value = if rtype == "TXT" {
                format!("\"{value}\"")
            } else {
                value.to_string()
            };
            format!("{} {}", r["name"].as_str().unwrap(), squash(rtype, &value))
        })
        .collect();
    out.sort();
    out
}

fn squash(rtype: &str, rdata: &str) -> String {
    match rtype {
        // dig writes each character-string quoted; joined, they are the record's text.
        "TXT" => format!("\"{}\"", rdata.trim_matches('"').replace("\" \"", "")),
        _ => rdata.to_string(),
    }
}

fn served(knot: &Knot, owners: &[String], rtype: &str) -> Vec<String> {
    let mut v = Vec::new();
    for o in owners {
        let records = if rtype == "TLSA" {
            knot.tlsa(o)
        } else {
            knot.records(o, rtype)
        };
        for r in records.unwrap() {
            v.push(format!("{o} {}", squash(rtype, &r)));
        }
    }
    v.sort();
    v
}

fn owners(records: &[String]) -> Vec<String> {
    let mut o: Vec<String> = records
        .iter()
        .map(|r| r.split(' ').next().unwrap().to_string())
        .collect();
    o.dedup();
    o
}

#[test]
fn dane3_kurier_dns_update_publishes_our_records_on_knot_and_a_dry_run_only_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.96";
    let addr: SocketAddr = format!("{ip}:5353").parse().unwrap();
    let knot = Knot::start(
        &dir.path().join("knot"),
        addr,
        "kurier.test",
        "mx IN A 127.0.10.96",
        false,
    )
    .unwrap();
    let config = config_with_knot(dir.path(), ip, &knot);
    support::admin(&config, &["dkim", "generate", "kurier.test"], "");
    let kurier = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", config.to_str().unwrap()]);
        support::run(&all)
    };
    let zone = support::dns_json(&config, "kurier.test");
    let tlsa = printed(&zone, "TLSA");
    let srv = printed(&zone, "SRV");
    let txt: Vec<String> = printed(&zone, "TXT")
        .into_iter()
        .filter(|r| {
            r.starts_with("_mta-sts.") || r.starts_with("_smtp._tls.") || r.contains("._domainkey.")
        })
        .collect();
    assert!(tlsa.len() >= 2 && !srv.is_empty(), "{zone}");
    assert!(txt.iter().any(|r| r.contains("._domainkey.")), "{zone}");

    // The dry run prints the update and sends nothing.
    let (code, out, err) = kurier(&["dns", "kurier.test", "--update", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(&format!("server {ip} 5353\nzone kurier.test.\n")),
        "{out}"
    );
    assert!(
        out.contains("update add _25._tcp.mx.kurier.test. 600 IN TLSA 3 1 1 "),
        "{out}"
    );
    assert!(
        out.contains("update delete _imaps._tcp.kurier.test. SRV"),
        "{out}"
    );
    assert!(
        !out.contains(" MX ") && !out.contains("v=spf1") && !out.contains("DMARC1"),
        "{out}"
    );
    assert!(served(&knot, &owners(&tlsa), "TLSA").is_empty());

    // Sent: Knot serves exactly what `kurier dns` prints, and again after a second run.
    for _ in 0..2 {
        let (code, out, err) = kurier(&["dns", "kurier.test", "--update"]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains("kurier.test: ") && out.contains(&format!("changes sent to {addr}")),
            "{out}"
        );
        assert_eq!(served(&knot, &owners(&tlsa), "TLSA"), tlsa);
        assert_eq!(served(&knot, &owners(&srv), "SRV"), srv);
        assert_eq!(served(&knot, &owners(&txt), "TXT"), txt);
    }
    assert!(
        knot.records("kurier.test", "MX").unwrap().is_empty(),
        "MX stays the operator's"
    );

    // A key the server does not accept: a clear error, nothing changes.
    let wrong = dir.path().join("wrong.key");
    std::fs::write(
        &wrong,
        "key \"kurier-update\" { algorithm hmac-sha256; secret \"d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=\"; };\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            &knot.key_file.display().to_string(),
            &wrong.display().to_string(),
        ),
    )
    .unwrap();
    let (code, _, err) = kurier(&["dns", "kurier.test", "--update"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("the DNS update of kurier.test failed")
            && err.contains("secret does not match"),
        "{err}"
    );
    assert_eq!(served(&knot, &owners(&tlsa), "TLSA"), tlsa);
}

/// `kurier serve` publishes them by itself at the start and when a domain is added, takes back
/// those of a domain deleted, and names for the operator the records of a domain outside
/// every zone it may update.
#[test]
fn dane3_serve_keeps_our_records_published() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.98";
    let addr: SocketAddr = format!("{ip}:5353").parse().unwrap();
    let knot = Knot::start(
        &dir.path().join("knot"),
        addr,
        "kurier.test",
        "mx IN A 127.0.10.98",
        false,
    )
    .unwrap();
    let config = config_with_knot(dir.path(), ip, &knot);
    let tlsa = printed(&support::dns_json(&config, "kurier.test"), "TLSA");
    let server = Server::configured(dir.path(), &config);
    support::wait_until(Duration::from_secs(20), "the TLSA records on Knot", || {
        served(&knot, &owners(&tlsa), "TLSA") == tlsa
    });
    server.log_line("DNS records published (RFC 2136)");
    // A domain inside the zone: published while hosted, taken back when deleted.
    support::admin(&config, &["domain", "add", "sub.kurier.test"], "");
    let sts = || knot.records("_mta-sts.sub.kurier.test", "TXT").unwrap();
    support::wait_until(
        Duration::from_secs(20),
        "sub.kurier.test's MTA-STS record",
        || sts().len() == 1,
    );
    support::admin(&config, &["domain", "del", "sub.kurier.test"], "");
    support::wait_until(Duration::from_secs(20), "the record taken back", || {
        sts().is_empty()
    });
    assert!(
        served(&knot, &owners(&tlsa), "TLSA") == tlsa,
        "the TLSA records stay"
    );
    support::admin(&config, &["domain", "add", "other.test"], "");
    let line = server.log_line("records in none of dns_update.zones");
    assert!(
        line.contains("_mta-sts.other.test") || line.contains("_imaps._tcp.other.test"),
        "{line}"
    );
}
