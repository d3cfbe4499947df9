//! Submission end to end (TR-03108 MUA-1, MUA-2): Python's smtplib and curl on 465 (implicit
//! TLS) and 587 (STARTTLS) with PLAIN and LOGIN; local recipients land in the mailbox, remote
//! ones in the queue; and what must be refused.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kurier_store::Recipient;
use support::{Client, Server, plain};

async fn store(data: &Path) -> std::sync::Arc<dyn kurier_store::Store> {
    kurier_store::open(&format!("sqlite:{}", data.join("kurier.db").display()))
        .await
        .unwrap()
}

async fn inbox(data: &Path, address: &str) -> Vec<String> {
    let s = store(data).await;
    let Recipient::Local(a) = s.resolve(address).await.unwrap() else {
        panic!("{address}")
    };
    let mb = s.mailbox(a[0].id, "INBOX").await.unwrap().unwrap();
    let mut out = Vec::new();
    for m in s.messages(mb.id).await.unwrap() {
        out.push(
            String::from_utf8_lossy(&s.message_body(mb.id, m.uid).await.unwrap().unwrap())
                .into_owned(),
        );
    }
    out
}

const SMTPLIB: &str = r#"
import smtplib, socket, ssl, sys
ip, ca, password = sys.argv[1], sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)

class SubmissionsToIp(smtplib.SMTP_SSL):
    """SMTP_SSL that connects to the test address but checks the certificate's name."""
    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((ip, port), timeout)
        return self.context.wrap_socket(sock, server_hostname=host)

msg = "From: Demo <demo@example.test>\r\nTo: demo@example.test, far@remote.test\r\nSubject: {}\r\n\r\nbody {}\r\n"
# 465, implicit TLS, AUTH PLAIN (smtplib's choice).
with SubmissionsToIp("mail.example.test", 2465, context=ctx) as s:
    s.login("demo@example.test", password)
    s.sendmail("demo@example.test", ["demo@example.test", "far@remote.test"], msg.format("via 465", "one"))
# 587, STARTTLS, AUTH LOGIN.
with smtplib.SMTP(ip, 2587) as s:
    s._host = "mail.example.test"
    s.ehlo()
    assert "auth" not in s.esmtp_features, "no AUTH before STARTTLS"
    s.starttls(context=ctx)
    s.ehlo()
    s.user, s.password = "demo@example.test", password
    s.auth("LOGIN", s.auth_login, initial_response_ok=False)
    s.sendmail("demo@example.test", ["demo@example.test"], msg.format("via 587", "two"))
print("SENT")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn mua1_mua2_smtplib_on_465_and_587_local_and_remote_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.80";
    let data = dir.path().join("data");
    let server = Server::dev_with_password(dir.path(), ip, Some("s3cret"));
    let ca = data.join("dev-ca.pem");
    let out = Command::new("python3")
        .args(["-c", SMTPLIB, ip, ca.to_str().unwrap(), "s3cret"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SENT"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let got = inbox(&data, "demo@example.test").await;
    assert_eq!(got.len(), 2);
    assert!(
        got[0].contains("Subject: via 465") && got[0].contains("with ESMTPSA id"),
        "{}",
        got[0]
    );
    assert!(
        got[0].contains("Message-ID: <") && got[0].contains("\r\nDate: "),
        "added headers: {}",
        got[0]
    );
    assert!(
        !got[0].contains(ip),
        "no client address in Received by default: {}",
        got[0]
    );
    assert!(got[1].contains("Subject: via 587"));
    let queue = store(&data).await.queue().await.unwrap();
    assert_eq!(queue.len(), 1, "the remote recipient waits in the queue");
    assert_eq!(queue[0].recipients[0].address, "far@remote.test");
    let (code, listing, _) =
        support::run(&["queue", "list", "--dev", "--data", data.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        listing.contains("far@remote.test  pending") && listing.contains("from demo@example.test"),
        "{listing}"
    );
    assert!(
        server.stderr().contains("authenticated") && !server.stderr().contains("s3cret"),
        "no secrets in the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_sends_over_smtps_and_smtp_with_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.81";
    let data = dir.path().join("data");
    let _server = Server::dev_with_password(dir.path(), ip, Some("pw"));
    let msg = dir.path().join("m.txt");
    std::fs::write(&msg, "From: demo@example.test\r\nTo: demo@example.test\r\nSubject: curl\r\n\r\nhello via curl\r\n").unwrap();
    for (url, extra) in [
        ("smtps://mail.example.test:2465", vec![]),
        (
            "smtp://mail.example.test:2587",
            vec!["--ssl-reqd", "--login-options", "AUTH=LOGIN"],
        ),
    ] {
        let port = &url[url.len() - 4..];
        let out = Command::new("curl")
            .args(["-sS", "--cacert", data.join("dev-ca.pem").to_str().unwrap()])
            .args([
                "--connect-to",
                &format!("mail.example.test:{port}:{ip}:{port}"),
            ])
            .args([
                "--url",
                url,
                "--user",
                "demo@example.test:pw",
                "--mail-from",
                "demo@example.test",
            ])
            .args([
                "--mail-rcpt",
                "demo@example.test",
                "-T",
                msg.to_str().unwrap(),
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(inbox(&data, "demo@example.test").await.len(), 2);

    // MUA-1 on 465: the strict profile, from the first byte.
    use kurier_tls::probe::{ClientOffer, probe};
    use openssl::ssl::SslVersion;
    let a: SocketAddr = format!("{ip}:2465").parse().unwrap();
    let tls11 = ClientOffer {
        min_version: Some(SslVersion::TLS1_1),
        max_version: Some(SslVersion::TLS1_1),
        tls12_ciphers: Some("ALL:@SECLEVEL=0".into()),
        security_level: Some(0),
        ..Default::default()
    };
    assert!(probe(a, &tls11).is_err(), "TLS 1.1 refused on 465");
    let chacha = ClientOffer {
        min_version: Some(SslVersion::TLS1_3),
        tls13_suites: Some("TLS_CHACHA20_POLY1305_SHA256".into()),
        ..Default::default()
    };
    assert!(probe(a, &chacha).is_err(), "ChaCha20 refused on 465");
    assert_eq!(
        probe(a, &ClientOffer::default()).unwrap().version,
        "TLSv1.3"
    );
}

#[test]
fn mua2_no_auth_in_the_clear_none_on_port_25_and_failures_are_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.82";
    let config = support::configured(
        dir.path(),
        ip,
        "",
        "auth_block_after = 3\nmax_messages_per_hour = 1",
    );
    let _server = Server::configured(dir.path(), &config);
    let sub587: SocketAddr = format!("{ip}:2587").parse().unwrap();

    // 587 before STARTTLS: no AUTH offered, none accepted, no MAIL.
    let mut c = Client::connect(sub587);
    assert!(!c.cmd("EHLO client.test").contains("AUTH"));
    assert!(
        c.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw")))
            .starts_with("530")
    );
    assert!(c.cmd("MAIL FROM:<rcpt@kurier.test>").starts_with("530"));

    // Port 25 never offers AUTH.
    let mut mx = Client::connect(format!("{ip}:2525").parse().unwrap());
    let ehlo = mx.cmd("EHLO client.test");
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    assert!(
        mx.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw")))
            .starts_with("502")
    );

    // Over TLS (465): wrong password and unknown user get the same answer, slower each time,
    // then a temporary block.
    let mut s = Client::connect_tls(format!("{ip}:2465").parse().unwrap(), "mx.kurier.test");
    assert!(s.cmd("EHLO client.test").contains("AUTH PLAIN LOGIN"));
    let wrong_pw = s.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "nope")));
    let t = Instant::now();
    let no_user = s.cmd(&format!(
        "AUTH PLAIN {}",
        plain("ghost@kurier.test", "nope")
    ));
    assert!(
        t.elapsed() >= Duration::from_millis(240),
        "the second failure is delayed"
    );
    assert!(
        wrong_pw.starts_with("535 5.7.8") && wrong_pw == no_user,
        "{wrong_pw} / {no_user}"
    );
    let _third = s.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "nope")));
    let blocked = s.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw")));
    assert!(
        blocked.starts_with("454 4.7.0"),
        "blocked even with the right password: {blocked}"
    );
}

#[test]
fn sender_spoofing_is_refused_and_the_rate_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.83";
    let config = support::configured(dir.path(), ip, "", "max_messages_per_hour = 1");
    let _server = Server::configured(dir.path(), &config);
    let mut c = Client::connect_tls(format!("{ip}:2465").parse().unwrap(), "mx.kurier.test");
    let mut cmd = |line: &str| c.cmd(line);
    cmd("EHLO client.test");
    assert!(cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw"))).starts_with("235"));
    let spoof = cmd("MAIL FROM:<ceo@kurier.test>");
    assert!(spoof.starts_with("553 5.7.1"), "{spoof}");
    assert!(cmd("MAIL FROM:<rcpt@kurier.test>").starts_with("250"));
    assert!(cmd("RCPT TO:<someone@remote.test>").starts_with("250"));
    assert!(cmd("DATA").starts_with("354"));
    let forged = cmd("From: CEO <ceo@kurier.test>\r\n\r\npay now\r\n.");
    assert!(
        forged.starts_with("553 5.7.1") && forged.contains("From <ceo@kurier.test>"),
        "{forged}"
    );
    let send = |cmd: &mut dyn FnMut(&str) -> String| {
        cmd("MAIL FROM:<rcpt@kurier.test>");
        cmd("RCPT TO:<someone@remote.test>");
        cmd("DATA");
        cmd("From: rcpt@kurier.test\r\n\r\nhello\r\n.")
    };
    assert!(send(&mut cmd).starts_with("250"));
    let limited = send(&mut cmd);
    assert!(limited.starts_with("450 4.7.1"), "{limited}");
}

/// Issue 20 item 2: submitted mail is DKIM-signed with the domain's current key — the key is
/// read once and kept, and a new key (`kurier dkim generate` with another selector) is used from
/// the next message on, without a restart (a rewritten key file: `dkim::keyring` unit test).
#[test]
fn submitted_mail_is_signed_with_the_current_dkim_key_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.84";
    let config = support::configured(dir.path(), ip, "", "");
    let _server = Server::configured(dir.path(), &config);
    let generate = |selector: &str| support::dkim_generate(&config, "ed25519", selector);
    let selectors = || -> Vec<String> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(inbox(&dir.path().join("data"), "rcpt@kurier.test"))
            .iter()
            .map(|m| {
                // The field, unfolded (RFC 5322 §2.2.3).
                let start = m
                    .find("DKIM-Signature:")
                    .unwrap_or_else(|| panic!("unsigned:\n{m}"));
                let sig = m[start..]
                    .split("\r\n")
                    .enumerate()
                    .take_while(|(i, l)| *i == 0 || l.starts_with([' ', '\t']))
                    .map(|(_, l)| l)
                    .collect::<String>();
                sig.split(';')
                    .map(str::trim)
                    .find_map(|t| t.strip_prefix("s="))
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    for (n, selector) in ["first", "first", "second", "second"].iter().enumerate() {
        if n == 2 {
            generate("second");
        } else if n == 0 {
            generate("first");
        }
        let r = support::submit_message(ip, "rcpt@kurier.test", &format!("Subject: {n}\r\n"));
        assert!(r.starts_with("250"), "{r}");
        assert_eq!(selectors().last().map(String::as_str), Some(*selector));
    }
}

/// Issue 22 item 4: a domain with an RSA and an Ed25519 key signs with both, side by side (RFC
/// 8463 §5), `kurier dkim show` and `kurier dns` print both records, and dkimpy verifies each
/// signature with its record. A new key replaces only the old one of its kind.
#[test]
fn auth4_rsa_and_ed25519_keys_sign_side_by_side_and_verify_with_dkimpy() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.99";
    let config = support::configured(dir.path(), ip, "", "");
    let _server = Server::configured(dir.path(), &config);
    let generate = |alg: &str, selector: &str| support::dkim_generate(&config, alg, selector);
    generate("rsa", "r1");
    generate("ed25519", "e1");
    generate("rsa", "r2"); // replaces r1, keeps e1
    let (_, shown, _) = support::run(&[
        "dkim",
        "show",
        "kurier.test",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        shown.contains("r2._domainkey.kurier.test.")
            && shown.contains("e1._domainkey.kurier.test."),
        "{shown}"
    );
    assert!(!shown.contains("r1._domainkey"), "{shown}");
    let dns = support::dns_json(&config, "kurier.test");
    let records = dns.to_string();
    assert!(
        records.contains("r2._domainkey") && records.contains("e1._domainkey"),
        "{records}"
    );

    let r = support::submit_message(ip, "rcpt@kurier.test", "Subject: twice signed\r\n");
    assert!(r.starts_with("250"), "{r}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let message = rt
        .block_on(inbox(&dir.path().join("data"), "rcpt@kurier.test"))
        .remove(0);
    assert_eq!(message.matches("DKIM-Signature:").count(), 2, "{message}");
    // The TXT values as `kurier dkim show` prints them (zone-file strings, joined).
    let mut txt = std::collections::BTreeMap::new();
    for record in shown.split(" )") {
        let Some((name, rest)) = record.trim().split_once(" IN TXT ( ") else {
            continue;
        };
        let value: String = rest.split('"').skip(1).step_by(2).collect();
        txt.insert(name.trim_end_matches('.').to_string(), value);
    }
    let msg = dir.path().join("m.eml");
    std::fs::write(&msg, &message).unwrap();
    let keys = dir.path().join("keys.json");
    std::fs::write(&keys, serde_json::to_string(&txt).unwrap()).unwrap();
    let verify = r#"
import sys, json, dkim
msg = open(sys.argv[1], 'rb').read()
keys = json.load(open(sys.argv[2]))
dns = lambda name, timeout=5: keys.get(name.decode().rstrip('.'), '').encode()
d = dkim.DKIM(msg)
print(" ".join("ok" if d.verify(idx=i, dnsfunc=dns) else "bad" for i in range(2)))
"#;
    let out = Command::new("python3")
        .args(["-c", verify, msg.to_str().unwrap(), keys.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ok ok",
        "{}{txt:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 20, the connection stage: what decides is where a message comes from, not what it
/// says. Mail from another server is never DKIM-signed, even with our own domain in From and a
/// key on disk (only submission signs); a recipient the MX refuses is logged with the client's
/// address and HELO name, as an operator (or fail2ban) looks for it.
#[test]
fn inbound_mail_is_never_signed_and_refused_recipients_are_logged_with_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.85";
    let config = support::configured(dir.path(), ip, "", "");
    let server = Server::configured(dir.path(), &config);
    support::admin(
        &config,
        &["dkim", "generate", "kurier.test", "--algorithm", "ed25519"],
        "",
    );
    let r = support::submit_message(ip, "rcpt@kurier.test", "Subject: submitted\r\n");
    assert!(r.starts_with("250"), "{r}");

    let mut c = Client::connect(format!("{ip}:2525").parse().unwrap());
    assert!(c.cmd("EHLO Relay.Example.NET.").starts_with("250"));
    assert!(c.cmd("MAIL FROM:<someone@example.net>").starts_with("250"));
    let refused = c.cmd("RCPT TO:<nobody@kurier.test>");
    assert!(refused.starts_with("550"), "{refused}");
    assert!(c.cmd("RCPT TO:<rcpt@kurier.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd("From: rcpt@kurier.test\r\nSubject: from outside\r\n\r\nhello\r\n.");
    assert!(r.starts_with("250"), "{r}");

    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    let signed = |subject: &str| {
        let m = inbox
            .iter()
            .find(|m| m.contains(subject))
            .unwrap_or_else(|| panic!("no message {subject:?} in {inbox:?}"));
        m.contains("DKIM-Signature:")
    };
    assert!(signed("Subject: submitted"), "submission signs");
    assert!(
        !signed("Subject: from outside"),
        "inbound mail must not be signed"
    );
    let line = server.log_line("recipient refused");
    assert!(
        // The test's client connects from 127.0.0.1 (no source address bound).
        line.contains("client=127.0.0.1") && line.contains("helo=relay.example.net"),
        "{line}"
    );
    assert!(line.contains("nobody@kurier.test"), "{line}");
}
