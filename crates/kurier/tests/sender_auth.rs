//! Inbound sender authentication (issue 22, BSI TR-03182) judged by independent implementations:
//! for a corpus of messages and DNS setups in a signed test world, Python's pyspf, dkimpy and
//! authheaders (PyPI; scripts/test.sh installs them) compute SPF, DKIM and DMARC through the
//! same validating resolver, and Kurier's Authentication-Results must say the same. DMARC's
//! policy is then applied: reject → 550 5.7.1, quarantine (and pct sampling) → Junk, a policy
//! that cannot be looked up → 451, an exempt sender or a monitoring domain → delivered.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kurier_testworld::net::hosts;
use kurier_testworld::{Breakage, World, Zone};
use openssl::base64;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use support::Server;

/// Sends every case from its client address to Kurier and asks the judges about it; prints
/// one JSON line per case: its name, Kurier's SMTP reply code and the judges' A-R field.
const JUDGE: &str = r#"
import json, smtplib, sys, base64
import dns.resolver
import dkim, spf, authheaders

cfg = json.load(open(sys.argv[1]))
r = dns.resolver.Resolver(configure=False)
r.nameservers = [cfg["resolver_ip"]]
r.port = cfg["resolver_port"]
r.lifetime = 10
dns.resolver.default_resolver = r
# authheaders' own list lacks the implicit rule "*" for unlisted TLDs such as .test: give it
# Debian's list (the one Kurier reads) with "test" spelt out.
import authheaders.dmarc_lookup as lookup
org = lambda d: lookup.get_org_domain_from_suffix_list(cfg["psl"], d)
lookup.get_org_domain = org
authheaders.get_org_domain = org

for c in cfg["cases"]:
    headers = c.get("extra", "") + (
        "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Thu, 03 Dec 2026 12:00:00 +0000\r\n"
        "Message-ID: <%s@judge.test>\r\n" % (c["from"], c["rcpt"], c["name"], c["name"]))
    msg = (headers + "\r\nHello,\r\nthis is case %s.\r\n" % c["name"]).encode()
    for s in c.get("sign", []):
        if s["alg"] == "ed25519":
            sig = dkim.sign(msg, s["selector"].encode(), s["domain"].encode(), s["key"].encode(),
                            signature_algorithm=b"ed25519-sha256",
                            include_headers=[b"from", b"to", b"subject", b"date"])
        else:
            sig = dkim.sign(msg, s["selector"].encode(), s["domain"].encode(), s["key"].encode(),
                            include_headers=[b"from", b"to", b"subject", b"date"])
        msg = sig + msg
    if c.get("change") == "body":
        msg = msg + b"P.S. added later\r\n"
    elif c.get("change") == "header":
        msg = msg.replace(b"Date: Thu, 03 Dec", b"Date: Fri, 04 Dec")
    judged = authheaders.authenticate_message(msg, "judge.test", spf=True, dkim=True, dmarc=True,
                                              ip=c["ip"], mail_from=c["mail_from"], helo=c["helo"])
    code = 250
    try:
        with smtplib.SMTP(cfg["kurier_ip"], cfg["kurier_port"], source_address=(c["ip"], 0), timeout=60) as s:
            s.ehlo(c["helo"])
            s.sendmail(c["mail_from"], [c["rcpt"]], msg)
    except smtplib.SMTPDataError as e:
        code = e.smtp_code
    except smtplib.SMTPResponseException as e:
        code = e.smtp_code
    print(json.dumps({"name": c["name"], "code": code, "judged": str(judged)}), flush=True)
"#;

/// `method=result` of each resinfo in an A-R value (the first per method and property).
fn results(field: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for part in field.split(';').skip(1) {
        let part = part.trim();
        let Some((method, rest)) = part.split_once('=') else {
            continue;
        };
        let result: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let key = if method == "spf" && !part.contains("smtp.mailfrom=") {
            "spf-helo".to_string()
        } else {
            method.trim().to_string()
        };
        out.entry(key).or_insert(result);
    }
    out
}

/// The unfolded value of the first Authentication-Results field of `message`.
fn our_results(message: &str) -> String {
    let head = message.split("\r\n\r\n").next().unwrap();
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded
        .lines()
        .find_map(|l| l.strip_prefix("Authentication-Results: "))
        .unwrap_or("")
        .to_string()
}

/// (name, client host, MAIL FROM, From, signatures, change after signing)
type Case<'a> = (
    &'a str,
    u8,
    &'a str,
    &'a str,
    Vec<serde_json::Value>,
    &'a str,
);

/// A Kurier MX on `ip` that resolves through the world (so sender authentication runs).
fn mx_config(
    dir: &std::path::Path,
    ip: &str,
    dns: &kurier_testworld::Dns,
    extra: &str,
) -> std::path::PathBuf {
    support::configured(
        dir,
        ip,
        "",
        &format!(
            "\n[dns]\nupstream = [\"{}\"]\ntrust_anchor = \"{}\"\ntimeout_secs = 3\n\
             [delivery]\nenabled = true\n[tlsrpt]\nenabled = false\n{extra}",
            dns.resolver,
            dns.trust_anchor_dnskey.display()
        ),
    )
}

struct Keys {
    rsa_pem: String,
    rsa_record: String,
    ed_seed: String,
    ed_record: String,
}

fn keys() -> Keys {
    let rsa = Rsa::generate(2048).unwrap();
    let rsa_pem = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
    let public = PKey::from_rsa(rsa).unwrap().public_key_to_der().unwrap();
    let ed = PKey::generate_ed25519().unwrap();
    Keys {
        rsa_pem,
        rsa_record: format!("v=DKIM1; k=rsa; p={}", base64::encode_block(&public)),
        ed_seed: base64::encode_block(&ed.raw_private_key().unwrap()),
        ed_record: format!(
            "v=DKIM1; k=ed25519; p={}",
            base64::encode_block(&ed.raw_public_key().unwrap())
        ),
    }
}

fn world(k: &Keys) -> World {
    let spf = Zone::signed("spf.test")
        .record("pass", "TXT", &support::txt("v=spf1 ip4:{ip:50} -all"))
        .record("fail", "TXT", &support::txt("v=spf1 ip4:{ip:51} -all"))
        .record("soft", "TXT", &support::txt("v=spf1 ~all"))
        .record("neutral", "TXT", &support::txt("v=spf1 ?all"))
        .record("syntax", "TXT", &support::txt("v=spf1 ip4:300.1.2.3 -all"))
        .record(
            "loop",
            "TXT",
            &support::txt("v=spf1 include:loop.spf.test -all"),
        )
        .record(
            "void",
            "TXT",
            &support::txt("v=spf1 a:nx1.spf.test a:nx2.spf.test a:nx3.spf.test ip4:{ip:50} -all"),
        )
        .record("mx", "TXT", &support::txt("v=spf1 mx/24 -all"))
        .record("mx", "MX", "10 host.spf.test.")
        .record("host", "A", "{ip:77}")
        .record(
            "inc",
            "TXT",
            &support::txt("v=spf1 include:pass.spf.test -all"),
        )
        .record("red", "TXT", &support::txt("v=spf1 redirect=pass.spf.test"))
        .record(
            "exists",
            "TXT",
            &support::txt("v=spf1 exists:%{l}._x.%{d} -all"),
        )
        .record("alice._x.exists", "A", "127.0.0.2")
        .record("two", "TXT", &support::txt("v=spf1 -all"))
        .record("two", "TXT", &support::txt("v=spf1 +all"));
    let bank = Zone::signed("bank.test")
        .record("@", "TXT", &support::txt("v=spf1 ip4:{ip:60} -all"))
        .record(
            "_dmarc",
            "TXT",
            &support::txt("v=DMARC1; p=reject; sp=quarantine"),
        )
        .record("_dmarc.odd", "TXT", &support::txt("v=DMARC1; p=bogus"))
        .record("rsa._domainkey", "TXT", &support::txt(&k.rsa_record))
        .record("ed._domainkey", "TXT", &support::txt(&k.ed_record))
        .record(
            "revoked._domainkey",
            "TXT",
            &support::txt("v=DKIM1; k=rsa; p="),
        )
        .record("mail", "A", "{ip:60}");
    let shop = Zone::signed("shop.test")
        .record("_dmarc", "TXT", &support::txt("v=DMARC1; p=quarantine"))
        .record("rsa._domainkey", "TXT", &support::txt(&k.rsa_record));
    let news = Zone::signed("news.test").record(
        "_dmarc",
        "TXT",
        &support::txt("v=DMARC1; p=reject; pct=0"),
    );
    let lists =
        Zone::signed("lists.test").record("@", "TXT", &support::txt("v=spf1 ip4:{ip:70} -all"));
    let evil = Zone::signed("evil.test")
        .record("@", "TXT", &support::txt("v=spf1 ip4:{ip:66} -all"))
        .record("rsa._domainkey", "TXT", &support::txt(&k.rsa_record));
    let broken = Zone::signed("broken.test")
        .record("@", "TXT", &support::txt("v=spf1 -all"))
        .record("_dmarc", "TXT", &support::txt("v=DMARC1; p=reject"))
        .broken(Breakage::ExpiredRrsig);
    World::builder()
        .zone(spf)
        .zone(bank)
        .zone(shop)
        .zone(news)
        .zone(lists)
        .zone(evil)
        .zone(broken)
        .build()
        .unwrap()
}

#[test]
fn auth1_auth2_auth3_auth4_spf_dkim_dmarc_agree_with_pyspf_dkimpy_and_authheaders() {
    let k = keys();
    let world = world(&k);
    let dns = world.dns().clone();
    let ip = |n: u8| world.net.ip(n).to_string();
    let kurier = ip(hosts::FREE);
    let dir = tempfile::tempdir().unwrap();
    let config = mx_config(
        dir.path(),
        &kurier,
        &dns,
        "[sender_auth]\ndmarc_exempt = [\"lists.test\"]\n",
    );
    support::admin(&config, &["domain", "add", "monitor.test"], "");
    support::admin(&config, &["domain", "dmarc", "monitor.test", "monitor"], "");
    support::admin(
        &config,
        &["alias", "add", "all@monitor.test", "rcpt@kurier.test"],
        "",
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("inbound SPF, DKIM and DMARC on");

    let rsa = |d: &str| serde_json::json!({"domain": d, "selector": "rsa", "alg": "rsa", "key": k.rsa_pem});
    let ed = |d: &str| serde_json::json!({"domain": d, "selector": "ed", "alg": "ed25519", "key": k.ed_seed});
    let missing = serde_json::json!({"domain": "bank.test", "selector": "nokey", "alg": "rsa", "key": k.rsa_pem});
    let revoked = serde_json::json!({"domain": "bank.test", "selector": "revoked", "alg": "rsa", "key": k.rsa_pem});
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("spf-pass", 50, "a@pass.spf.test", "a@pass.spf.test", vec![], ""),
        ("spf-fail", 50, "a@fail.spf.test", "a@fail.spf.test", vec![], ""),
        ("spf-softfail", 50, "a@soft.spf.test", "a@soft.spf.test", vec![], ""),
        ("spf-neutral", 50, "a@neutral.spf.test", "a@neutral.spf.test", vec![], ""),
        ("spf-none", 50, "a@nothing.spf.test", "a@nothing.spf.test", vec![], ""),
        ("spf-permerror-syntax", 50, "a@syntax.spf.test", "a@syntax.spf.test", vec![], ""),
        ("spf-permerror-two-records", 50, "a@two.spf.test", "a@two.spf.test", vec![], ""),
        ("spf-include-loop", 50, "a@loop.spf.test", "a@loop.spf.test", vec![], ""),
        ("spf-void-lookups", 50, "a@void.spf.test", "a@void.spf.test", vec![], ""),
        ("spf-mx-cidr", 51, "a@mx.spf.test", "a@mx.spf.test", vec![], ""),
        ("spf-include", 50, "a@inc.spf.test", "a@inc.spf.test", vec![], ""),
        ("spf-redirect", 50, "a@red.spf.test", "a@red.spf.test", vec![], ""),
        ("spf-exists-macro", 50, "alice@exists.spf.test", "alice@exists.spf.test", vec![], ""),
        ("spf-exists-macro-miss", 50, "bob@exists.spf.test", "bob@exists.spf.test", vec![], ""),
        ("spf-temperror", 50, "a@broken.test", "a@spf.test", vec![], ""),
        ("dkim-rsa-good", 66, "x@evil.test", "boss@bank.test", vec![rsa("bank.test")], ""),
        ("dkim-ed25519-good", 66, "x@evil.test", "boss@bank.test", vec![ed("bank.test")], ""),
        ("dkim-body-changed", 66, "x@evil.test", "boss@bank.test", vec![rsa("bank.test")], "body"),
        ("dkim-header-changed", 66, "x@evil.test", "boss@bank.test", vec![rsa("bank.test")], "header"),
        ("dkim-missing-key", 66, "x@evil.test", "boss@bank.test", vec![missing], ""),
        ("dkim-revoked-key", 66, "x@evil.test", "boss@bank.test", vec![revoked], ""),
        ("dmarc-spf-aligned", 60, "boss@bank.test", "boss@bank.test", vec![], ""),
        ("dmarc-unaligned-reject", 66, "x@evil.test", "boss@bank.test", vec![rsa("evil.test")], ""),
        ("dmarc-subdomain-quarantine", 66, "x@evil.test", "news@mail.bank.test", vec![], ""),
        ("dmarc-quarantine", 66, "x@evil.test", "sales@shop.test", vec![], ""),
        ("dmarc-relaxed-dkim", 66, "x@evil.test", "sales@shop.test", vec![rsa("shop.test")], ""),
        ("dmarc-malformed-record", 66, "x@evil.test", "boss@odd.bank.test", vec![], ""),
        ("dmarc-pct-zero", 66, "x@evil.test", "editor@news.test", vec![], ""),
        ("dmarc-exempt-list", 70, "l-bounces@lists.test", "boss@bank.test", vec![], ""),
        ("dmarc-temperror", 66, "x@evil.test", "boss@broken.test", vec![], ""),
        ("dmarc-monitoring-domain", 66, "x@evil.test", "boss@bank.test", vec![], ""),
        ("forged-results-removed", 66, "x@evil.test", "sales@shop.test", vec![], ""),
    ];
    let psl = dir.path().join("psl.dat");
    let debian = std::fs::read_to_string("/usr/share/publicsuffix/public_suffix_list.dat").unwrap();
    std::fs::write(&psl, format!("{debian}\ntest\n")).unwrap();
    let spec = serde_json::json!({
        "psl": psl,
        "resolver_ip": dns.resolver.ip().to_string(),
        "resolver_port": dns.resolver.port(),
        "kurier_ip": kurier,
        "kurier_port": 2525,
        "cases": cases.iter().map(|(name, host, mail_from, from, sign, change)| serde_json::json!({
            "name": name, "ip": ip(*host), "helo": "client.judge.test", "mail_from": mail_from,
            "from": from, "sign": sign, "change": change,
            // DKIM cases go to a domain that only monitors DMARC, so that every result is stored.
            "rcpt": if *name == "dmarc-monitoring-domain" || name.starts_with("dkim-") {
                "all@monitor.test"
            } else {
                "rcpt@kurier.test"
            },
            "extra": if *name == "forged-results-removed" {
                "Authentication-Results: mx.kurier.test; dmarc=pass header.from=shop.test\r\n"
            } else { "" },
        })).collect::<Vec<_>>(),
    });
    let spec_file = dir.path().join("cases.json");
    std::fs::write(&spec_file, spec.to_string()).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", JUDGE, spec_file.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the judges failed (pip install pyspf authheaders dkimpy dnspython pynacl): {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let judged: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(judged.len(), cases.len(), "{stdout}");

    // Everything that got a 250 is in INBOX or Junk, with our results on top.
    let delivered = |name: &str| -> Option<(String, String)> {
        for folder in ["INBOX", "Junk"] {
            if let Some(m) = support::folder(dir.path(), "rcpt@kurier.test", folder)
                .into_iter()
                .find(|m| m.contains(&format!("Subject: {name}\r\n")))
            {
                return Some((folder.to_string(), m));
            }
        }
        None
    };
    let mut report = Vec::new();
    for j in &judged {
        let name = j["name"].as_str().unwrap();
        let code = j["code"].as_u64().unwrap();
        let theirs = results(
            j["judged"]
                .as_str()
                .unwrap()
                .trim_start_matches("Authentication-Results: "),
        );
        let (folder, ours, raw) = match code {
            250 => {
                let (folder, m) =
                    delivered(name).unwrap_or_else(|| panic!("{name}: accepted but not stored"));
                assert!(
                    m.starts_with("Authentication-Results: mx.kurier.test;"),
                    "{name}: {m}"
                );
                (folder, results(&our_results(&m)), our_results(&m))
            }
            _ => (code.to_string(), BTreeMap::new(), String::new()),
        };
        report.push(format!(
            "{name}: {code} {folder} ours={ours:?} judges={theirs:?}\n    {raw}"
        ));
        if code != 250 {
            continue;
        }
        assert_eq!(
            ours.get("spf"),
            theirs.get("spf"),
            "{name}: SPF\n{}",
            report.join("\n")
        );
        // dkimpy says pass or fail; ours says why it is no pass (fail, permerror, policy).
        let pass = |m: &BTreeMap<String, String>| m.get("dkim").map(|r| r == "pass");
        assert_eq!(
            pass(&ours),
            pass(&theirs),
            "{name}: DKIM\n{}",
            report.join("\n")
        );
        assert_eq!(
            ours.get("dmarc"),
            theirs.get("dmarc"),
            "{name}: DMARC\n{}",
            report.join("\n")
        );
    }
    let outcome = |name: &str| {
        let j = judged.iter().find(|j| j["name"] == name).unwrap();
        let code = j["code"].as_u64().unwrap();
        match code {
            250 => delivered(name).unwrap().0,
            c => c.to_string(),
        }
    };
    let all = report.join("\n");
    // The policies, applied.
    assert_eq!(outcome("dmarc-unaligned-reject"), "550", "{all}");
    assert_eq!(outcome("spf-pass"), "INBOX", "{all}");
    assert_eq!(outcome("dkim-rsa-good"), "INBOX", "{all}");
    assert_eq!(outcome("dkim-body-changed"), "INBOX", "{all}");
    assert_eq!(outcome("dmarc-subdomain-quarantine"), "Junk", "{all}");
    assert_eq!(outcome("dmarc-quarantine"), "Junk", "{all}");
    assert_eq!(outcome("dmarc-relaxed-dkim"), "INBOX", "{all}");
    assert_eq!(outcome("dmarc-pct-zero"), "Junk", "{all}");
    // A malformed record is none; bank.test's sp= applies.
    assert_eq!(outcome("dmarc-malformed-record"), "Junk", "{all}");
    assert_eq!(outcome("dmarc-exempt-list"), "INBOX", "{all}");
    assert_eq!(outcome("dmarc-temperror"), "451", "{all}");
    assert_eq!(outcome("dmarc-monitoring-domain"), "INBOX", "{all}");
    // RFC 8601 §5: the forged field claiming our authserv-id is gone; ours says fail.
    assert_eq!(outcome("forged-results-removed"), "Junk", "{all}");
    let forged = delivered("forged-results-removed").unwrap().1;
    assert_eq!(
        forged
            .matches("Authentication-Results: mx.kurier.test;")
            .count(),
        1,
        "{forged}"
    );
    assert!(!forged.contains("dmarc=pass"), "{forged}");
    assert!(
        server.stderr().contains("action=\"reject\"") || server.stderr().contains("action=reject"),
        "{}",
        server.stderr()
    );
    // The judges agree on what Kurier refused, too. (On the bogus policy of broken.test they
    // say "none": authheaders takes a failed lookup for a missing record; Kurier does not.)
    let refused = judged
        .iter()
        .find(|j| j["name"] == "dmarc-unaligned-reject")
        .unwrap();
    let theirs = results(
        refused["judged"]
            .as_str()
            .unwrap()
            .trim_start_matches("Authentication-Results: "),
    );
    assert_eq!(
        theirs.get("dmarc").map(String::as_str),
        Some("fail"),
        "{all}"
    );
    println!("{all}");

    // Bad input: 100 signatures and a 1 MB header cost 10 verifications and a log line; the
    // message is delivered, nothing is lost.
    let mut c = support::Client::connect(format!("{kurier}:2525").parse().unwrap());
    assert!(c.cmd("EHLO hostile.judge.test").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<x@evil.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<all@monitor.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let mut m = String::new();
    for i in 0..100 {
        m.push_str(&format!(
            "DKIM-Signature: v=1; a=rsa-sha256; d=bank.test; s=rsa; h=from; bh=AA==; b=AA{i:02}\r\n"
        ));
    }
    let filler = format!("X-Filler: {}\r\n", "a".repeat(980));
    m.push_str(&filler.repeat((1 << 20) / filler.len() + 1));
    m.push_str("From: boss@bank.test\r\nSubject: hostile\r\n\r\nhi\r\n.\r\n");
    c.send(m.as_bytes());
    let reply = c.reply();
    assert!(reply.starts_with("250"), "{reply}");
    let (_, stored) = delivered("hostile").unwrap();
    let ours = our_results(&stored);
    assert_eq!(ours.matches("dkim=").count(), 10, "{ours}");
    assert!(
        server
            .stderr()
            .contains("more DKIM signatures than are verified"),
        "{}",
        server.stderr()
    );

    // /metrics counts what was done with each message (the hostile one was delivered).
    let count = |want: &str| {
        judged
            .iter()
            .filter(|j| outcome(j["name"].as_str().unwrap()) == want)
            .count()
    };
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "-k",
            "--resolve",
            &format!("mx.kurier.test:8443:{kurier}"),
        ])
        .arg("https://mx.kurier.test:8443/metrics")
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&out.stdout);
    for (action, n) in [
        ("reject", count("550")),
        ("defer", count("451")),
        ("quarantine", count("Junk")),
        ("deliver", count("INBOX") + 1),
    ] {
        let line = format!("kurier_inbound_sender_auth_total{{action=\"{action}\"}} {n}\n");
        assert!(metrics.contains(&line), "{line}{metrics}");
    }
    assert!(
        metrics.contains("kurier_inbound_dmarc_total{result=\"temperror\"} 1\n"),
        "{metrics}"
    );
}

/// AUTH-2 with a real sending MTA: Debian's Postfix signs with OpenDKIM (a milter) and relays
/// to Kurier, whose SPF, DKIM and DMARC all pass; the same From from another host, unsigned,
/// gets the domain's `p=reject` (550 5.7.1) and is not stored.
#[test]
fn auth2_postfix_signing_with_opendkim_passes_and_a_forgery_is_refused() {
    let rsa = Rsa::generate(2048).unwrap();
    let pem = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
    let public = PKey::from_rsa(rsa).unwrap().public_key_to_der().unwrap();
    let record = format!("v=DKIM1; k=rsa; p={}", base64::encode_block(&public));
    let world = World::builder()
        .zone(
            Zone::signed("postfix.test")
                // The world's Postfix connects out from 127.0.0.1.
                .record(
                    "@",
                    "TXT",
                    &support::txt("v=spf1 ip4:{postfix:0} ip4:127.0.0.1 -all"),
                )
                .record(
                    "_dmarc",
                    "TXT",
                    &support::txt("v=DMARC1; p=reject; adkim=s; aspf=s"),
                )
                .record("pf._domainkey", "TXT", &support::txt(&record)),
        )
        .zone(Zone::signed("kurier.test").record("mx", "A", &format!("{{ip:{}}}", hosts::FREE)))
        .postfix(
            kurier_testworld::PostfixSpec::dane_sender("postfix.test")
                .tls_security_level("may")
                .relayhost("[mx.kurier.test]:2525")
                .dkim("postfix.test", "pf", &pem),
        )
        .build()
        .unwrap();
    let dns = world.dns().clone();
    let kurier = world.net.ip(hosts::FREE).to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = mx_config(dir.path(), &kurier, &dns, "");
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("inbound SPF, DKIM and DMARC on");
    world.postfix[0]
        .submit(
            "someone@postfix.test",
            "rcpt@kurier.test",
            "signed by OpenDKIM",
        )
        .unwrap();
    support::wait_until(Duration::from_secs(30), "the signed message", || {
        support::inbox(dir.path(), "rcpt@kurier.test")
            .iter()
            .any(|m| m.contains("signed by OpenDKIM"))
    });
    let m = support::inbox(dir.path(), "rcpt@kurier.test").remove(0);
    assert!(m.contains("DKIM-Signature:"), "OpenDKIM did not sign: {m}");
    let ours = results(&our_results(&m));
    let want = |s: &str| Some(s.to_string());
    assert_eq!(ours.get("spf"), want("pass").as_ref(), "{m}");
    assert_eq!(ours.get("dkim"), want("pass").as_ref(), "{m}");
    assert_eq!(ours.get("dmarc"), want("pass").as_ref(), "{m}");
    assert!(
        our_results(&m).contains("header.d=postfix.test header.s=pf"),
        "{m}"
    );

    // The forgery: From postfix.test, from an address its SPF does not name, unsigned.
    let forged = kurier_testworld::swaks(&[
        "--server",
        &format!("{kurier}:2525"),
        "--local-interface",
        &world.net.ip(66).to_string(),
        "--from",
        "ceo@postfix.test",
        "--to",
        "rcpt@kurier.test",
        "--body",
        "forged",
    ]);
    let transcript = match forged {
        Ok(t) => t,
        Err(e) => e.to_string(),
    };
    assert!(transcript.contains("550 5.7.1"), "{transcript}");
    assert!(
        transcript.contains("DMARC policy of postfix.test"),
        "{transcript}"
    );
    assert_eq!(support::inbox(dir.path(), "rcpt@kurier.test").len(), 1);
}
