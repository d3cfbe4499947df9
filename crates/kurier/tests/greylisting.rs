//! Greylisting (issue 24 item 4, ABUSE-4): a new (client /24, sender, recipient) triplet gets
//! 451 until the sender retries after the delay; an early retry waits on; a retry after the
//! delay is accepted, and so is later mail of that triplet and of its /24; mail whose From
//! domain passes DMARC (SPF aligned, in a signed test world) is never greylisted. On
//! PostgreSQL the triplets are shared: the first try at node A, the retry at node B.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use kurier_testworld::net::hosts;
use kurier_testworld::{World, Zone};
use support::Server;

/// Sends each message of the JSON list (after sleeping `sleep` seconds) and prints the reply
/// code and text after DATA as a JSON line.
const SENDER: &str = r#"
import json, smtplib, sys, time
spec = json.load(open(sys.argv[1]))
for m in spec["messages"]:
    time.sleep(m.get("sleep", 0))
    code, text = 250, ""
    source = (m["ip"], 0) if m.get("ip") else None
    body = ("From: %s\r\nTo: rcpt@kurier.test\r\nSubject: hi\r\n\r\nhello\r\n" % m.get("header_from", m["from"])).encode()
    try:
        with smtplib.SMTP(m["server"], 2525, source_address=source, timeout=60) as s:
            s.ehlo("client.test")
            s.sendmail(m["from"], ["rcpt@kurier.test"], body)
    except smtplib.SMTPResponseException as e:
        code, text = e.smtp_code, e.smtp_error.decode()
    print(json.dumps({"code": code, "text": text}), flush=True)
"#;

fn send(dir: &std::path::Path, messages: Vec<serde_json::Value>) -> Vec<(u64, String)> {
    let spec = serde_json::json!({ "messages": messages });
    let out = support::python(SENDER, &dir.join("send.json"), &spec);
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["code"].as_u64().unwrap(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn metrics(ip: &str) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sk", &format!("https://{ip}:8443/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn abuse_4_greylisting_defers_strangers_and_lets_dmarc_senders_through() {
    let world = World::builder()
        .zone(
            Zone::signed("bank.test")
                .record("@", "TXT", &support::txt("v=spf1 ip4:{ip:60} -all"))
                .record("_dmarc", "TXT", &support::txt("v=DMARC1; p=none")),
        )
        // SPF passes, but no DMARC: greylisted like anyone.
        .zone(Zone::signed("plain.test").record(
            "@",
            "TXT",
            &support::txt("v=spf1 ip4:{ip:61} ip4:{ip:62} -all"),
        ))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let kurier = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        &kurier,
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
             [delivery]\nenabled = true\n[tlsrpt]\nenabled = false\n\
             [greylisting]\nenabled = true\ndelay_secs = 2\nretry_window_secs = 60\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display()
        ),
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("greylisting on");
    let m = |ip: u8, from: &str, sleep: f64| serde_json::json!({"server": kurier, "ip": world.net.ip(ip).to_string(), "from": from, "sleep": sleep});
    let r = send(
        dir.path(),
        vec![
            m(61, "a@plain.test", 0.0),
            m(61, "a@plain.test", 0.0),
            m(61, "a@plain.test", 2.5),
            m(61, "a@plain.test", 0.0),
            // Another address of the same /24: the same triplet.
            m(62, "a@plain.test", 0.0),
            // DMARC passes (SPF aligned): not greylisted at all.
            m(60, "a@bank.test", 0.0),
            // A new sender from the known network: a new triplet.
            m(61, "b@plain.test", 0.0),
        ],
    );
    let codes: Vec<u64> = r.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, [451, 451, 250, 250, 250, 250, 451], "{r:?}");
    assert!(
        r[0].1.contains("Greylisted, please try again in 2 seconds"),
        "{r:?}"
    );
    assert!(r[1].1.contains("Greylisted"), "{r:?}");
    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    assert_eq!(inbox.len(), 4);
    let m = metrics(&kurier);
    for line in [
        "kurier_greylist_total{outcome=\"deferred\"} 3\n",
        "kurier_greylist_total{outcome=\"passed\"} 1\n",
        "kurier_greylist_total{outcome=\"known\"} 2\n",
        "kurier_greylist_total{outcome=\"exempt\"} 1\n",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }
    assert!(server.stderr().contains("greylisted"));
}

#[test]
fn abuse_4_greylisting_is_shared_by_nodes_on_postgresql() {
    let url = support::postgres_database("greylist");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_ip, b_ip) = ("127.0.61.1", "127.0.61.2");
    let extra = format!(
        "[store]\nurl = \"{url}\"\n[greylisting]\nenabled = true\ndelay_secs = 2\nretry_window_secs = 60\n"
    );
    let a_config = support::configured(a_dir.path(), a_ip, "", &extra);
    let b_config = support::second_node(a_dir.path(), &a_config, a_ip, b_dir.path(), b_ip);
    let a = Server::configured(a_dir.path(), &a_config);
    let b = Server::configured(b_dir.path(), &b_config);
    a.wait_for_log("greylisting on");
    b.wait_for_log("greylisting on");
    let m = |server: &str, sleep: f64| serde_json::json!({"server": server, "from": "a@sender.test", "sleep": sleep});
    let r = send(a_dir.path(), vec![m(a_ip, 0.0), m(b_ip, 0.0), m(b_ip, 2.5)]);
    let codes: Vec<u64> = r.iter().map(|(c, _)| *c).collect();
    // Node B knows what node A saw: too early, then passed.
    assert_eq!(codes, [451, 451, 250], "{r:?}");
    assert!(
        r[1].1.contains("try again in 1 second") || r[1].1.contains("try again in 2 seconds"),
        "{r:?}"
    );
    assert!(metrics(b_ip).contains("kurier_greylist_total{outcome=\"passed\"} 1\n"));
}
