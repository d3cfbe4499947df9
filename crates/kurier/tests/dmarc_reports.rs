//! DMARC aggregate reports both ways (issue 22 item 5; RFC 7489 §7.2; BSI TR-03182 — AUTH-5).
//!
//! Out: Kurier receives mail in the name of sender.test from the server its SPF names (twice)
//! and from a forger; `kurier reports send --dmarc` (the daily run, by hand) mails sender.test's
//! report to the destinations its record names: to collector.test, which agrees to take it
//! (`sender.test._report._dmarc.collector.test`), through the queue to a Postfix peer — where
//! dkimpy verifies our signature against the signed test zone and xmllint validates the XML
//! against the RFC 7489 schema — but not to stranger.test, which does not agree, nor to a
//! destination whose size limit the report exceeds. A second run sends nothing.
//!
//! In: reports from reporter.test that pass DMARC, gzip and zip (as Google sends them), are
//! stored and summed by `kurier reports list --dmarc` (the failing source first) and on
//! /metrics; the same report from a forger (DMARC fails) and a report about a domain not
//! hosted here are dropped.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use kurier_dkim::{Algorithm, DkimKey};
use kurier_testworld::net::hosts;
use kurier_testworld::{PostfixSpec, World, Zone};
use support::Server;

/// Sends each message from its client address; prints one SMTP reply code per line.
const SENDER: &str = r#"
import json, smtplib, sys
for m in json.load(open(sys.argv[1])):
    code = 250
    try:
        with smtplib.SMTP(m["server"], 2525, source_address=(m["ip"], 0), timeout=60) as s:
            s.ehlo(m["helo"])
            s.sendmail(m["mail_from"], [m["rcpt"]], open(m["file"], "rb").read())
    except smtplib.SMTPResponseException as e:
        code = e.smtp_code
    print(code, flush=True)
"#;

/// The test peer's view of a report mail: dkimpy's verdict on its signature (keys through the
/// world's resolver), the attachment gunzipped into a file, and the rows as read by Python's
/// own XML parser.
const PEER: &str = r#"
import email, gzip, json, sys
import dkim, dns.resolver
import xml.etree.ElementTree as ET
cfg = json.load(open(sys.argv[1]))
r = dns.resolver.Resolver(configure=False)
r.nameservers = [cfg["resolver_ip"]]
r.port = cfg["resolver_port"]
dns.resolver.default_resolver = r
raw = open(cfg["message"], "rb").read()
verified = dkim.verify(raw)
msg = email.message_from_bytes(raw)
part = next(p for p in msg.walk() if p.get_content_type() == "application/gzip")
xml = gzip.decompress(part.get_payload(decode=True))
open(cfg["xml"], "wb").write(xml)
rows = []
for rec in ET.fromstring(xml).iter("record"):
    rows.append({
        "ip": rec.findtext("row/source_ip"),
        "count": int(rec.findtext("row/count")),
        "disposition": rec.findtext("row/policy_evaluated/disposition"),
        "dkim": rec.findtext("row/policy_evaluated/dkim"),
        "spf": rec.findtext("row/policy_evaluated/spf"),
        "header_from": rec.findtext("identifiers/header_from"),
        "spf_results": [(s.findtext("domain"), s.findtext("scope"), s.findtext("result"))
                        for s in rec.findall("auth_results/spf")],
    })
print(json.dumps({"dkim": verified, "subject": msg["Subject"], "filename": part.get_filename(),
                  "rows": rows}))
"#;

fn mx_config(dir: &std::path::Path, ip: &str, dns: &kurier_testworld::Dns) -> std::path::PathBuf {
    support::configured(
        dir,
        ip,
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
             [delivery]\nenabled = true\n[tlsrpt]\nenabled = false\norganization = \"Kurier Test\"\n",
            dns.resolver,
            dns.trust_anchor_dnskey.display()
        ),
    )
}

/// Sends `(client host, MAIL FROM, message)` to the Kurier on `server`; the reply codes.
fn send(
    world: &World,
    dir: &std::path::Path,
    server: &str,
    mails: &[(u8, &str, String)],
) -> Vec<u16> {
    let list: Vec<serde_json::Value> = mails
        .iter()
        .enumerate()
        .map(|(i, (host, mail_from, message))| {
            let file = dir.join(format!("mail-{i}.eml"));
            std::fs::write(&file, message).unwrap();
            serde_json::json!({"server": server, "ip": world.net.ip(*host).to_string(),
                "helo": "client.sender.test", "mail_from": mail_from,
                "rcpt": message.lines().find_map(|l| l.strip_prefix("To: ")).unwrap(),
                "file": file})
        })
        .collect();
    String::from_utf8_lossy(&support::python(
        SENDER,
        &dir.join("send.json"),
        &list.into(),
    ))
    .lines()
    .map(|l| l.trim().parse().unwrap())
    .collect()
}

fn mail(from: &str, to: &str, subject: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n\
         Message-ID: <{subject}@sender.test>\r\n\r\nHello.\r\n"
    )
}

#[test]
fn auth5_reports_out_validate_arrive_dkim_verified_and_leave_once() {
    let (key, pem) = DkimKey::generate("kurier.test", "kurier", Algorithm::Rsa).unwrap();
    let (_, key_txt) = key.dns_record().unwrap();
    let rua = "v=DMARC1; p=quarantine; rua=mailto:dmarc@collector.test,mailto:agg@stranger.test,mailto:small@collector.test!10";
    let to_postfix = |z: Zone| {
        z.record("@", "MX", "10 mx")
            .record("mx", "A", "{postfix:0}")
    };
    let world = World::builder()
        .zone(
            to_postfix(Zone::signed("sender.test"))
                .record("@", "TXT", &support::txt("v=spf1 ip4:{ip:50} -all"))
                .record("_dmarc", "TXT", &support::txt(rua)),
        )
        .zone(to_postfix(Zone::signed("collector.test")).record(
            "sender.test._report._dmarc",
            "TXT",
            "\"v=DMARC1\"",
        ))
        .zone(to_postfix(Zone::signed("stranger.test")))
        .zone(Zone::signed("kurier.test").record(
            "kurier._domainkey",
            "TXT",
            &support::txt(&key_txt),
        ))
        .postfix(PostfixSpec::receiver(
            "mx.collector.test",
            &["collector.test", "stranger.test", "sender.test"],
        ))
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let kurier = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = mx_config(dir.path(), &kurier, &dns);
    let keys = dir.path().join("data/dkim");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(keys.join("kurier.test.kurier.pem"), &pem).unwrap();
    {
        let (rt, store) = support::store_at(dir.path());
        rt.block_on(store.set_domain_setting("kurier.test", "dkim.selector", Some("kurier")))
            .unwrap();
    }
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("inbound SPF, DKIM and DMARC on");

    let codes = send(
        &world,
        dir.path(),
        &kurier,
        &[
            (
                50,
                "bounce@sender.test",
                mail("news@sender.test", "rcpt@kurier.test", "one"),
            ),
            (
                50,
                "bounce@sender.test",
                mail("news@sender.test", "rcpt@kurier.test", "two"),
            ),
            (
                66,
                "x@forger.test",
                mail("ceo@sender.test", "rcpt@kurier.test", "forged"),
            ),
        ],
    );
    assert_eq!(codes, [250, 250, 250]);
    // The forgery went to Junk (p=quarantine); both others to the inbox.
    assert_eq!(support::inbox(dir.path(), "rcpt@kurier.test").len(), 2);
    assert_eq!(
        support::folder(dir.path(), "rcpt@kurier.test", "Junk").len(),
        1
    );

    let today = support::utc_day();
    let report = || {
        let (code, out, err) = support::run(&[
            "reports",
            "send",
            "--dmarc",
            "--day",
            &today,
            "--config",
            config.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{err}");
        out
    };
    let out = report();
    assert!(
        out.contains("sent      sender.test → mailto:dmarc@collector.test"),
        "{out}"
    );
    // §7.1: a destination outside sender.test's organizational domain that did not agree.
    assert!(
        out.contains("stranger.test does not take reports for sender.test"),
        "{out}"
    );
    // §6.2: the size limit of a destination is kept.
    assert!(
        out.contains("mailto:small@collector.test: the report has"),
        "{out}"
    );
    assert_eq!(out.matches("sent  ").count(), 1, "{out}");
    // Once per domain and day.
    let again = report();
    assert!(
        again.contains("no report sender.test: already sent") && !again.contains("sent  "),
        "{again}"
    );

    // The peer: one report mail, DKIM-verified by dkimpy, valid by the RFC 7489 schema.
    let messages = world.postfix[0]
        .wait_for_messages(1, Duration::from_secs(60))
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(world.postfix[0].messages().len(), 1, "exactly one report");
    let message = dir.path().join("report.eml");
    std::fs::write(&message, &messages[0]).unwrap();
    let xml = dir.path().join("report.xml");
    let spec = serde_json::json!({
        "resolver_ip": dns.resolver.ip().to_string(),
        "resolver_port": dns.resolver.port(),
        "message": message, "xml": xml,
    });
    let peer = support::python(PEER, &dir.path().join("peer.json"), &spec);
    let peer: serde_json::Value = serde_json::from_slice(&peer).unwrap();
    assert_eq!(
        peer["dkim"], true,
        "dkimpy verifies the report's signature: {peer}"
    );
    assert!(
        peer["subject"]
            .as_str()
            .unwrap()
            .starts_with("Report Domain: sender.test Submitter: kurier.test Report-ID: <"),
        "{peer}"
    );
    let filename = peer["filename"].as_str().unwrap();
    assert!(
        filename.starts_with("kurier.test!sender.test!") && filename.ends_with(".xml.gz"),
        "{filename}"
    );
    let lint = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/dmarc-rfc7489.xsd"
        ))
        .arg(&xml)
        .output()
        .expect("xmllint (Debian package libxml2-utils)");
    assert!(
        lint.status.success(),
        "the report does not validate: {}\n{}",
        String::from_utf8_lossy(&lint.stderr),
        std::fs::read_to_string(&xml).unwrap()
    );
    // Exactly what happened: two aligned SPF passes from .50, one forgery from .66.
    let rows = peer["rows"].as_array().unwrap();
    let row = |ip: u8| {
        rows.iter()
            .find(|r| r["ip"] == world.net.ip(ip).to_string())
            .unwrap_or_else(|| panic!("no row for host {ip}: {peer}"))
    };
    let good = row(50);
    assert_eq!(
        (
            &good["count"],
            &good["disposition"],
            &good["spf"],
            &good["dkim"]
        ),
        (&2.into(), &"none".into(), &"pass".into(), &"fail".into()),
        "{peer}"
    );
    assert_eq!(
        good["spf_results"][0],
        serde_json::json!(["sender.test", "mfrom", "pass"])
    );
    let forged = row(66);
    assert_eq!(
        (&forged["count"], &forged["disposition"], &forged["spf"]),
        (&1.into(), &"quarantine".into(), &"fail".into()),
        "{peer}"
    );
    assert_eq!(forged["header_from"], "sender.test");
    assert_eq!(rows.len(), 2, "{peer}");
}

/// A report about kurier.test as reporter.test would send it: `failing` messages from
/// 203.0.113.5 that failed DMARC, 10 from 192.0.2.1 that passed.
fn outside_report(from: &str, about: &str, failing: u64, zip: bool) -> String {
    let xml = format!(
        "<?xml version=\"1.0\"?>\n<feedback><report_metadata><org_name>Reporter Inc.</org_name>\
         <email>noreply@reporter.test</email><report_id>r-{failing}</report_id><date_range>\
         <begin>1796083200</begin><end>1796169599</end></date_range></report_metadata>\
         <policy_published><domain>{about}</domain><adkim>r</adkim><aspf>r</aspf><p>reject</p>\
         <sp>reject</sp><pct>100</pct></policy_published>\
         <record><row><source_ip>192.0.2.1</source_ip><count>10</count><policy_evaluated>\
         <disposition>none</disposition><dkim>pass</dkim><spf>pass</spf></policy_evaluated></row>\
         <identifiers><header_from>{about}</header_from></identifiers><auth_results><dkim>\
         <domain>{about}</domain><result>pass</result></dkim><spf><domain>{about}</domain>\
         <result>pass</result></spf></auth_results></record>\
         <record><row><source_ip>203.0.113.5</source_ip><count>{failing}</count><policy_evaluated>\
         <disposition>reject</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>\
         <identifiers><header_from>{about}</header_from></identifiers><auth_results><spf>\
         <domain>spam.test</domain><result>fail</result></spf></auth_results></record></feedback>\n"
    );
    let name = format!("reporter.test!{about}!1796083200!1796169599");
    let (packed, kind, file) = if zip {
        // As Google sends them: one XML file in a zip archive (made by Python's zipfile).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.zip");
        let script = "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z: z.writestr(sys.argv[2], sys.stdin.read())";
        let mut child = std::process::Command::new("python3")
            .args(["-c", script, path.to_str().unwrap(), &format!("{name}.xml")])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), xml.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
        (
            std::fs::read(&path).unwrap(),
            "application/zip",
            format!("{name}.zip"),
        )
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, xml.as_bytes()).unwrap();
        (
            gz.finish().unwrap(),
            "application/gzip",
            format!("{name}.xml.gz"),
        )
    };
    let b64 = openssl::base64::encode_block(&packed);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: {from}\r\nTo: dmarc-reports@kurier.test\r\nSubject: Report Domain: {about} Submitter: reporter.test\r\n\
         Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <r-{failing}@reporter.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nreport\r\n\
         --b1\r\nContent-Type: {kind}\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{file}\"\r\n\r\n\
         {}\r\n--b1--\r\n",
        lines.join("\r\n")
    )
}

#[test]
fn auth5_reports_in_only_from_a_dmarc_passing_reporter() {
    let world = World::builder()
        .zone(
            Zone::signed("reporter.test")
                .record("@", "TXT", &support::txt("v=spf1 ip4:{ip:51} -all"))
                // p=none: a forgery is delivered, so the intake itself must drop it.
                .record("_dmarc", "TXT", &support::txt("v=DMARC1; p=none")),
        )
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let kurier = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = mx_config(dir.path(), &kurier, &dns);
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("inbound SPF, DKIM and DMARC on");
    let codes = send(
        &world,
        dir.path(),
        &kurier,
        &[
            (
                51,
                "dmarc@reporter.test",
                outside_report("dmarc@reporter.test", "kurier.test", 4, false),
            ),
            (
                66,
                "x@forger.test",
                outside_report("dmarc@reporter.test", "kurier.test", 99, false),
            ),
            (
                51,
                "dmarc@reporter.test",
                outside_report("dmarc@reporter.test", "elsewhere.test", 7, false),
            ),
            (
                51,
                "dmarc@reporter.test",
                outside_report("dmarc@reporter.test", "kurier.test", 2, true),
            ),
        ],
    );
    // Reports are never bounced (the address has no account behind it).
    assert_eq!(codes, [250, 250, 250, 250]);
    support::wait_until(Duration::from_secs(20), "two kept, two dropped", || {
        let log = server.stderr();
        log.matches("DMARC report received").count() >= 2
            && log.matches("report dropped").count() >= 2
    });
    let log = server.stderr();
    assert!(log.contains("the mail did not pass DMARC"), "{log}");
    assert!(
        log.contains("about elsewhere.test, which is not hosted here"),
        "{log}"
    );
    assert!(
        log.contains("a DMARC report shows mail in our name that failed DMARC"),
        "{log}"
    );

    let (code, listed, err) = support::run(&[
        "reports",
        "list",
        "--dmarc",
        "--json",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let d = &listed[0];
    assert_eq!(
        (
            &d["policy-domain"],
            &d["reports"],
            &d["messages"],
            &d["failed"]
        ),
        (&"kurier.test".into(), &2.into(), &26.into(), &6.into()),
        "{d}"
    );
    // The failing source comes first.
    assert_eq!(d["sources"][0]["source-ip"], "203.0.113.5");
    assert_eq!(d["sources"][0]["failed"], 6);
    assert_eq!(d["sources"][1]["source-ip"], "192.0.2.1");
    assert_eq!(d["sources"][1]["failed"], 0);
    let (_, text, _) = support::run(&[
        "reports",
        "list",
        "--dmarc",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        text.contains("kurier.test: 2 report(s), 26 messages, 6 failed DMARC  FAILURES"),
        "{text}"
    );
    assert!(
        text.contains("FAILING 203.0.113.5: 6 of 6 messages failed (reported by Reporter Inc.)"),
        "{text}"
    );

    let metrics = std::process::Command::new("curl")
        .args(["-sk", &format!("https://{kurier}:8443/metrics")])
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    for line in [
        "kurier_dmarc_reports_received_total 2\n",
        "kurier_dmarc_reported_messages_total 26\n",
        "kurier_dmarc_reported_failures_total 6\n",
        "kurier_tlsrpt_reports_dropped_total 2\n",
    ] {
        assert!(metrics.contains(line), "{line}{metrics}");
    }

    // `kurier dns` asks for reports at the address that takes them.
    let (_, dns_out, _) =
        support::run(&["dns", "kurier.test", "--config", config.to_str().unwrap()]);
    assert!(
        dns_out.contains("rua=mailto:dmarc-reports@kurier.test"),
        "{dns_out}"
    );
}
