//! DNS block- and allowlists on the MX (issue 24 item 1; RFC 5782), served by the test world's
//! NSD: a listed client is refused with `554 5.7.1` naming the list, an unlisted one accepted;
//! an answer outside the list's codes (127.255.255.254, "query refused") is no listing; an
//! allowlist overrides the blocklist; a sender domain on a domain list is refused; a list whose
//! name server never answers costs the time budget, not the session, and one whose name
//! server answers SERVFAIL counts as not listed: the mail is accepted, and both are logged by
//! name.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use kurier_testworld::net::hosts;
use kurier_testworld::{World, Zone};
use support::Server;

/// Sends one message per entry from its client address; prints the RCPT outcome as JSON:
/// the reply code, its text, and how long the whole transaction took.
const SENDER: &str = r#"
import json, smtplib, sys, time
for m in json.load(open(sys.argv[1])):
    start = time.time()
    code, text = 250, ""
    try:
        with smtplib.SMTP(m["server"], 2525, source_address=(m["ip"], 0), timeout=60) as s:
            s.ehlo("client.test")
            s.sendmail(m["from"], ["rcpt@kurier.test"], b"Subject: hi\r\n\r\nhello\r\n")
    except smtplib.SMTPRecipientsRefused as e:
        code, text = list(e.recipients.values())[0]
        text = text.decode()
    except smtplib.SMTPResponseException as e:
        code, text = e.smtp_code, e.smtp_error.decode()
    print(json.dumps({"code": code, "text": text, "secs": time.time() - start}), flush=True)
"#;

/// A name server that takes queries and never answers (UDP and TCP on port 53).
const BLACK_HOLE: &str = r#"
import socket, sys, time
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((sys.argv[1], 53))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind((sys.argv[1], 53))
t.listen(16)
print("ready", flush=True)
time.sleep(600)
"#;

/// A name server that answers every UDP query SERVFAIL.
const SERVFAIL: &str = r#"
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((sys.argv[1], 53))
print("ready", flush=True)
while True:
    q, peer = u.recvfrom(4096)
    if len(q) < 12:
        continue
    # The query's ID and question back, with QR, RD, RA and RCODE 2 (SERVFAIL).
    u.sendto(q[:2] + bytes([0x81, 0x82]) + q[4:6] + b"\0\0\0\0\0\0" + q[12:], peer)
"#;

#[test]
fn blocklists_refuse_listed_clients_and_never_stall_the_session() {
    let (silent, failing) = (98, 97);
    let world = World::builder()
        .zone(
            Zone::unsigned("bl.test")
                .record("{rev:66}", "A", "127.0.0.2")
                .record("{rev:67}", "A", "127.255.255.254")
                .record("{rev:68}", "A", "127.0.0.3")
                // A sub-list whose name server never answers.
                .record("slow", "NS", "ns.slow.bl.test.")
                .record("ns.slow", "A", &format!("{{ip:{silent}}}"))
                // And one whose name server answers SERVFAIL.
                .record("servfail", "NS", "ns.servfail.bl.test.")
                .record("ns.servfail", "A", &format!("{{ip:{failing}}}")),
        )
        .zone(Zone::unsigned("wl.test").record("{rev:68}", "A", "127.0.0.2"))
        .zone(Zone::unsigned("dbl.test").record("spam.test", "A", "127.0.1.2"))
        .build()
        .unwrap();
    let _hole = support::helper(BLACK_HOLE, &[&world.net.ip(silent).to_string()]);
    let _servfail = support::helper(SERVFAIL, &[&world.net.ip(failing).to_string()]);

    let dns = world.dns().clone();
    let kurier = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        &kurier,
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 10\n\
             [blocklists]\ntimeout_ms = 1500\n\
             lists = [{{ zone = \"bl.test\" }}, {{ zone = \"slow.bl.test\" }}, {{ zone = \"servfail.bl.test\" }}, {{ zone = \"dbl.test\", kind = \"domain\" }}]\n\
             allow = [{{ zone = \"wl.test\" }}]\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display()
        ),
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("DNS blocklists on");

    let mails = [
        (66, "a@client.test"),
        (50, "a@client.test"),
        (67, "a@client.test"),
        (68, "a@client.test"),
        (50, "x@spam.test"),
    ];
    let list: Vec<serde_json::Value> = mails
        .iter()
        .map(|(host, from)| {
            serde_json::json!({"server": kurier, "ip": world.net.ip(*host).to_string(), "from": from})
        })
        .collect();
    let out = support::python(SENDER, &dir.path().join("send.json"), &list.into());
    let results: Vec<serde_json::Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let code = |i: usize| results[i]["code"].as_u64().unwrap();
    let text = |i: usize| results[i]["text"].as_str().unwrap().to_string();

    // Listed: refused, naming the list (Postfix's words).
    assert_eq!(code(0), 554, "{results:?}");
    assert!(
        text(0).contains(&format!(
            "Client host [{}] blocked using bl.test",
            world.net.ip(66)
        )),
        "{results:?}"
    );
    // Unlisted, an error code, and an allowlisted client: accepted.
    assert_eq!((code(1), code(2), code(3)), (250, 250, 250), "{results:?}");
    // The sender's domain on a domain list.
    assert_eq!(code(4), 554, "{results:?}");
    assert!(
        text(4).contains("domain spam.test blocked using dbl.test"),
        "{results:?}"
    );
    // The silent list's name server never answered, yet every answer came within the budget
    // (1.5 s for the lists, far below the resolver's 10 s timeout).
    for r in &results {
        assert!(r["secs"].as_f64().unwrap() < 8.0, "{results:?}");
    }
    let log = server.stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("DNS lists did not all answer in time")
                && l.contains("slow.bl.test")),
        "{log}"
    );
    // The SERVFAIL list: a failed lookup, or (while unbound retries it) one that did not
    // answer in time; named either way.
    assert!(
        log.lines().any(|l| l.contains("servfail.bl.test")
            && (l.contains("DNS list lookup failed") || l.contains("did not all answer in time"))),
        "{log}"
    );
    support::wait_until(Duration::from_secs(10), "the three messages", || {
        support::inbox(dir.path(), "rcpt@kurier.test").len() == 3
    });
    let log = server.stderr();
    assert!(log.contains("refused: listed in DNS blocklists"), "{log}");

    let metrics = std::process::Command::new("curl")
        .args(["-sk", &format!("https://{kurier}:8443/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        metrics.contains("kurier_inbound_dnsbl_refused_total 2\n"),
        "{metrics}"
    );
}

/// ABUSE-1 in `kurier check`: the addresses of the domain's MX hosts and our own sending
/// address (`delivery.source_ipv4`) are looked up in the configured lists; a listed one is a
/// warning naming the list and the answer, an unlisted one passes.
#[test]
fn abuse_1_check_looks_up_our_own_addresses_in_the_lists() {
    let world = World::builder()
        .zone(
            Zone::signed("listed.test")
                .record("@", "MX", "10 mx.listed.test.")
                .record("mx", "A", "{ip:66}"),
        )
        .zone(Zone::unsigned("bl.test").record("{rev:66}", "A", "127.0.0.2"))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        &world.net.ip(hosts::FREE).to_string(),
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 5\n\
             [delivery]\nenabled = false\ntimeout_secs = 3\nsource_ipv4 = \"{}\"\n\
             [blocklists]\nlists = [{{ zone = \"bl.test\" }}]\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display(),
            world.net.ip(67),
        ),
    );
    let (_, out, err) = support::run(&[
        "check",
        "listed.test",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let findings: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == "ABUSE-1")
        .collect();
    assert_eq!(findings.len(), 2, "{findings:?}");
    let of = |ip: u8| {
        findings
            .iter()
            .find(|f| {
                f["subject"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{} ", world.net.ip(ip)))
            })
            .unwrap()
    };
    assert_eq!(of(66)["status"], "warn", "{findings:?}");
    assert!(
        of(66)["evidence"]
            .as_str()
            .unwrap()
            .contains("listed in bl.test (127.0.0.2)"),
        "{findings:?}"
    );
    assert_eq!(of(67)["status"], "pass", "{findings:?}");
}
