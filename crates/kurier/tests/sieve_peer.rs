//! Sieve's mail to other servers, end to end (issue 25 items 1 and 4; RFC 5228 §4.2, RFC 5429):
//! a redirect leaves through the outbound queue and reaches a Postfix peer with our account
//! as the envelope sender, so SPF passes at the next hop where the original sender's would
//! fail; a `reject` for one of several recipients becomes an RFC 8098 MDN and an `ereject` an
//! RFC 3464 DSN to the sender — both from the null return path, DKIM-signed, verified by
//! dkimpy at the peer — while the other recipient gets the message. A refused list message
//! gets no notice.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use kurier_dkim::{Algorithm, DkimKey};
use kurier_testworld::net::hosts;
use kurier_testworld::{PostfixSpec, World, Zone};
use support::Server;

/// Sends each message from the sender's host to the listed recipients; prints the codes.
const SENDER: &str = r#"
import json, smtplib, sys
spec = json.load(open(sys.argv[1]))
for m in spec["messages"]:
    body = ("From: a@sender.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@sender.test>\r\n%s\r\nHello.\r\n"
            % (", ".join(m["to"]), m["subject"], m["id"], m.get("extra", ""))).encode()
    code = 250
    try:
        with smtplib.SMTP(spec["server"], 2525, source_address=(spec["client"], 0), timeout=60) as s:
            s.ehlo("client.sender.test")
            s.sendmail("a@sender.test", m["to"], body)
    except smtplib.SMTPResponseException as e:
        code = e.smtp_code
    print(code, flush=True)
"#;

/// What the peer received, message by message: envelope sender, recipient, subject, report
/// type and the report's fields, dkimpy's verdict, and SPF (pyspf) for the envelope sender and
/// for the original sender from Kurier's address.
const PEER: &str = r#"
import email, json, sys
import dkim, dns.resolver, spf
cfg = json.load(open(sys.argv[1]))
r = dns.resolver.Resolver(configure=False)
r.nameservers = [cfg["resolver_ip"]]
r.port = cfg["resolver_port"]
dns.resolver.default_resolver = r
out = []
for path in cfg["messages"]:
    raw = open(path, "rb").read()
    msg = email.message_from_bytes(raw)
    report = next((p for p in msg.walk() if p.get_content_type() in
                   ("message/disposition-notification", "message/delivery-status")), None)
    fields = ""
    if report is not None:
        payload = report.get_payload()
        fields = "".join(str(p) for p in payload) if isinstance(payload, list) else str(payload)
    sender = msg["Return-Path"].strip("<>")
    out.append({
        "return_path": sender,
        "to": msg["Delivered-To"],
        "subject": msg["Subject"],
        "report_type": msg.get_param("report-type"),
        "fields": fields,
        "delivered_to": msg.get_all("Delivered-To"),
        "dkim": dkim.verify(raw),
        "spf": spf.check2(i=cfg["kurier_ip"], s=sender or "postmaster@mx.kurier.test", h="mx.kurier.test")[0],
        "spf_original": spf.check2(i=cfg["kurier_ip"], s="a@sender.test", h="mx.kurier.test")[0],
    })
print(json.dumps(out))
"#;

const SCRIPT: &str = r#"require ["reject", "ereject"];
if header :contains "subject" "forward" { redirect "friend@remote.test"; }
if header :contains "subject" "not wanted" { reject "Not wanted here."; }
if header :contains "subject" "refuse hard" { ereject "Refused outright."; }
"#;

#[test]
fn sieve_redirects_and_refusal_notices_reach_a_postfix_peer() {
    let (key, pem) = DkimKey::generate("kurier.test", "kurier", Algorithm::Rsa).unwrap();
    let (_, key_txt) = key.dns_record().unwrap();
    let to_postfix = |z: Zone| {
        z.record("@", "MX", "10 mx")
            .record("mx", "A", "{postfix:0}")
    };
    let world = World::builder()
        .zone(to_postfix(Zone::signed("sender.test")).record(
            "@",
            "TXT",
            &support::txt("v=spf1 ip4:{ip:50} -all"),
        ))
        .zone(to_postfix(Zone::signed("remote.test")))
        .zone(
            Zone::signed("kurier.test")
                .record("@", "TXT", &support::txt("v=spf1 ip4:{ip:100} -all"))
                .record("kurier._domainkey", "TXT", &support::txt(&key_txt)),
        )
        .postfix(PostfixSpec::receiver(
            "mx.remote.test",
            &["remote.test", "sender.test"],
        ))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let kurier = world.net.ip(hosts::FREE).to_string();
    let client = world.net.ip(50).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        &kurier,
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
             [delivery]\nenabled = true\nsource_ipv4 = \"{kurier}\"\n[tlsrpt]\nenabled = false\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display()
        ),
    );
    let keys = dir.path().join("data/dkim");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("kurier.test.kurier.pem"), &pem).unwrap();
    {
        let (rt, store) = support::store_at(dir.path());
        rt.block_on(store.set_domain_setting("kurier.test", "dkim.selector", Some("kurier")))
            .unwrap();
    }
    support::admin(&config, &["user", "add", "other@kurier.test"], "pw\n");
    support::admin(
        &config,
        &["sieve", "put", "rcpt@kurier.test", "main", "--activate"],
        SCRIPT,
    );
    let _server = Server::configured(dir.path(), &config);

    let both = ["rcpt@kurier.test", "other@kurier.test"];
    let spec = serde_json::json!({"server": kurier, "client": client, "messages": [
        {"to": ["rcpt@kurier.test"], "subject": "please forward", "id": "fwd"},
        {"to": both, "subject": "not wanted", "id": "mdn"},
        {"to": both, "subject": "refuse hard", "id": "dsn"},
        {"to": both, "subject": "not wanted either", "id": "list", "extra": "List-Id: <l.sender.test>\r\n"},
    ]});
    let out = support::python(SENDER, &dir.path().join("send.json"), &spec);
    assert_eq!(
        String::from_utf8_lossy(&out)
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["250", "250", "250", "250"]
    );
    // The other recipient has all three refused messages; rcpt has none of them.
    assert_eq!(support::inbox(dir.path(), "other@kurier.test").len(), 3);
    assert!(support::inbox(dir.path(), "rcpt@kurier.test").is_empty());

    let received = world.postfix[0]
        .wait_for_messages(3, Duration::from_secs(60))
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        world.postfix[0].messages().len(),
        3,
        "no notice for the list message"
    );
    let files: Vec<std::path::PathBuf> = received
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let f = dir.path().join(format!("peer-{i}.eml"));
            std::fs::write(&f, m).unwrap();
            f
        })
        .collect();
    let spec = serde_json::json!({
        "resolver_ip": dns.resolver.ip().to_string(),
        "resolver_port": dns.resolver.port(),
        "kurier_ip": kurier,
        "messages": files,
    });
    let peer = support::python(PEER, &dir.path().join("peer.json"), &spec);
    let peer: Vec<serde_json::Value> = serde_json::from_slice(&peer).unwrap();
    let find = |what: &str| {
        peer.iter()
            .find(|m| m["subject"].as_str().unwrap().contains(what) || m["report_type"] == what)
            .unwrap_or_else(|| panic!("no {what} at the peer: {peer:#?}"))
    };

    // The redirect: our account as the envelope sender, so SPF passes; with the original
    // sender's it would fail from our address.
    let fwd = find("please forward");
    assert_eq!(fwd["return_path"], "rcpt@kurier.test", "{fwd:#}");
    assert_eq!(fwd["to"], "friend@remote.test");
    assert!(
        fwd["delivered_to"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "rcpt@kurier.test"),
        "{fwd:#}"
    );
    assert_eq!(fwd["spf"], "pass", "{fwd:#}");
    assert_eq!(fwd["spf_original"], "fail", "{fwd:#}");

    // reject → MDN (RFC 8098), from the refusing recipient, null return path, signed.
    let mdn = find("disposition-notification");
    assert_eq!(mdn["return_path"], "", "{mdn:#}");
    assert_eq!(mdn["to"], "a@sender.test");
    assert_eq!(mdn["subject"], "Rejected: not wanted");
    assert_eq!(mdn["dkim"], true, "{mdn:#}");
    let fields = mdn["fields"].as_str().unwrap();
    for want in [
        "Final-Recipient: rfc822; rcpt@kurier.test",
        "Original-Message-ID: <mdn@sender.test>",
        "Disposition: automatic-action/MDN-sent-automatically; deleted",
    ] {
        assert!(fields.contains(want), "{want} in {fields}");
    }

    // ereject → DSN (RFC 3464): failed, 5.7.1, with the script's words.
    let dsn = find("delivery-status");
    assert_eq!(dsn["return_path"], "", "{dsn:#}");
    assert_eq!(dsn["to"], "a@sender.test");
    let fields = dsn["fields"].as_str().unwrap();
    for want in [
        "Final-Recipient: rfc822; rcpt@kurier.test",
        "Action: failed",
        "Status: 5.7.1",
        "Refused outright.",
    ] {
        assert!(fields.contains(want), "{want} in {fields}");
    }
}
