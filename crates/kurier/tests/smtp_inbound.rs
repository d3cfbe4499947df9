//! The inbound MX end to end, with real clients: Python's smtplib, swaks, and Postfix relaying
//! to Kurier; and the attacks and limits an MX must survive (TR-03108 SMTP-1, MUA-3).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kurier_store::Recipient;
use support::{Client, Server};

const SMTP_PORT: u16 = 2525;

fn smtp_addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), SMTP_PORT)
}

/// The demo account's INBOX bodies, oldest first.
async fn inbox(dir: &Path) -> Vec<Vec<u8>> {
    let store = kurier_store::open(&format!("sqlite:{}", dir.join("data/kurier.db").display()))
        .await
        .unwrap();
    let Recipient::Local(a) = store.resolve("demo@example.test").await.unwrap() else {
        panic!()
    };
    let mb = store.mailbox(a[0].id, "INBOX").await.unwrap().unwrap();
    let mut out = Vec::new();
    for m in store.messages(mb.id).await.unwrap() {
        out.push(store.message_body(mb.id, m.uid).await.unwrap().unwrap());
    }
    out
}

const SMTPLIB: &str = r#"
import smtplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
plain = b"From: a@remote.test\r\nTo: demo@example.test\r\nSubject: plain\r\n\r\nplain body\r\n"
with smtplib.SMTP(host, port, local_hostname="client.test") as s:
    s.sendmail("a@remote.test", ["demo@example.test"], plain)
ctx = ssl.create_default_context(cafile=ca)
tls = b"From: a@remote.test\r\nTo: demo@example.test\r\nSubject: tls\r\n\r\n..dot-stuffed line\r\ntls body\r\n"
utf8 = "From: j\u00fcrgen@remote.test\r\nSubject: \u00fcmlaut\r\n\r\nGr\u00fc\u00dfe\r\n".encode()
with smtplib.SMTP(host, port, local_hostname="client.test") as s:
    s._host = "mail.example.test"  # SNI and name check against the dev certificate
    s.ehlo(); s.starttls(context=ctx); s.ehlo()
    s.sendmail("a@remote.test", ["demo@example.test"], tls)
    s.sendmail("j\u00fcrgen@remote.test", ["demo@example.test"], utf8, mail_options=["SMTPUTF8"])
print("SENT")
"#;

#[tokio::test(flavor = "multi_thread")]
async fn smtp1_python_smtplib_plain_starttls_and_smtputf8() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.50";
    let _server = Server::dev(dir.path(), ip);
    let ca = dir.path().join("data/dev-ca.pem");
    let out = Command::new("python3")
        .args([
            "-c",
            SMTPLIB,
            ip,
            &SMTP_PORT.to_string(),
            ca.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SENT"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = inbox(dir.path()).await;
    assert_eq!(got.len(), 3);
    let text: Vec<String> = got
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    // Plain SMTP is accepted (SMTP-1: STARTTLS is offered, never required on port 25).
    assert!(
        text[0].contains("with ESMTP id") && text[0].ends_with("\r\n\r\nplain body\r\n"),
        "{}",
        text[0]
    );
    // Byte-identical to what the client handed smtplib (which dot-stuffed it on the wire).
    assert!(got[1].ends_with(b"From: a@remote.test\r\nTo: demo@example.test\r\nSubject: tls\r\n\r\n..dot-stuffed line\r\ntls body\r\n"));
    assert!(
        text[1].contains("with ESMTPS id") && text[1].contains("version=TLSv1.3"),
        "{}",
        text[1]
    );
    assert!(
        text[2].contains("with UTF8SMTPS id") && text[2].contains("Grüße"),
        "{}",
        text[2]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn swaks_pipelining_with_starttls_and_relay_denied() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.51";
    let _server = Server::dev(dir.path(), ip);
    let server = smtp_addr(ip).to_string();
    let out = kurier_testworld::swaks(&[
        "--server",
        &server,
        "--from",
        "a@remote.test",
        "--to",
        "demo@example.test",
        "--tls",
        "--pipeline",
        "--body",
        "pipelined over TLS",
    ])
    .unwrap();
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    let denied = kurier_testworld::swaks(&[
        "--server",
        &server,
        "--from",
        "a@remote.test",
        "--to",
        "victim@elsewhere.test",
    ]);
    let msg = denied.unwrap_err().to_string();
    assert!(
        msg.contains("554 5.7.1") && msg.contains("Relay access denied"),
        "{msg}"
    );
    let unknown = kurier_testworld::swaks(&[
        "--server",
        &server,
        "--from",
        "a@remote.test",
        "--to",
        "nobody@example.test",
    ]);
    assert!(unknown.unwrap_err().to_string().contains("550 5.1.1"));
    let got = inbox(dir.path()).await;
    assert_eq!(got.len(), 1);
    assert!(String::from_utf8_lossy(&got[0]).contains("pipelined over TLS"));
}

#[tokio::test(flavor = "multi_thread")]
async fn postfix_relays_to_kurier_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.52";
    let _server = Server::dev(dir.path(), ip);
    let world = kurier_testworld::World::builder()
        .postfix(
            kurier_testworld::PostfixSpec::receiver("relay.sender.test", &[])
                .relayhost(&format!("[{ip}]:{SMTP_PORT}"))
                .tls_security_level("encrypt"),
        )
        .build()
        .unwrap();
    let postfix = &world.postfix[0];
    postfix
        .submit(
            "alice@sender.test",
            "demo@example.test",
            "relayed by Postfix",
        )
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = inbox(dir.path()).await;
        if !got.is_empty() || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(got.len(), 1, "Postfix log:\n{}", postfix.maillog());
    let text = String::from_utf8_lossy(&got[0]);
    assert!(
        text.contains("relayed by Postfix")
            && text.contains("by mail.example.test (Kurier) with ESMTPS"),
        "{text}"
    );
    assert!(text.contains("version=TLSv1.3 cipher=TLS_AES_"), "{text}");
    let log = postfix
        .wait_for_log("status=sent", Duration::from_secs(5))
        .unwrap();
    assert!(log.contains("TLS connection established to"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mua3_starttls_injection_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.53";
    let _server = Server::dev(dir.path(), ip);
    let mut c = Client::connect(smtp_addr(ip));
    assert!(c.cmd("EHLO attacker.test").contains("STARTTLS"));
    // The injected RSET travels in the same packet as STARTTLS (CVE-2011-0411).
    c.send(b"STARTTLS\r\nRSET\r\n");
    assert!(c.reply().starts_with("220 2.0.0"));
    let tcp = c.r.into_inner();
    let mut tls = support::tls_unverified(tcp, "mail.example.test").unwrap();
    tls.get_ref()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 256];
    match tls.read(&mut buf) {
        Ok(n) => panic!(
            "the injected command was answered: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
    }
    tls.get_ref()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    tls.write_all(b"EHLO attacker.test\r\n").unwrap();
    let n = tls.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("250-"),
        "fresh session after TLS"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smuggling_long_lines_size_recipients_and_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.54";
    let _server = Server::dev(dir.path(), ip);
    let mut c = Client::connect(smtp_addr(ip));
    c.cmd("EHLO attacker.test");
    assert!(c.cmd("MAIL FROM:<a@remote.test>").starts_with("250"));
    assert!(c.cmd("RCPT TO:<demo@example.test>").starts_with("250"));
    assert!(c.cmd("DATA").starts_with("354"));
    for fake in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n"] {
        c.send(b"Subject: innocent\r\n\r\nhello");
        c.send(fake);
        c.send(b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nSubject: forged\r\n\r\nforged\r\n");
    }
    c.send(b".\r\n");
    let r = c.reply();
    assert!(r.starts_with("550 5.6.0") && r.contains("smuggling"), "{r}");
    assert!(
        c.cmd("NOOP").starts_with("250"),
        "exactly one reply to all of it"
    );
    // Limits.
    assert!(
        c.cmd(&format!("NOOP {}", "x".repeat(3000)))
            .starts_with("500 5.5.2")
    );
    assert!(
        c.cmd("MAIL FROM:<a@remote.test> SIZE=999999999999")
            .starts_with("552 5.3.4")
    );
    assert!(c.cmd("MAIL FROM:<a@remote.test>").starts_with("250"));
    for _ in 0..100 {
        assert!(c.cmd("RCPT TO:<demo@example.test>").starts_with("250"));
    }
    assert!(
        c.cmd("RCPT TO:<demo@example.test>")
            .starts_with("452 4.5.3")
    );
    assert!(inbox(dir.path()).await.is_empty(), "nothing was delivered");
    // Garbage ends in 421 after max_errors; the server goes on serving others.
    let mut g = Client::connect(smtp_addr(ip));
    let mut last = String::new();
    for _ in 0..20 {
        g.send(b"\x00\xff\xfe garbage \x01\r\n");
        last = g.reply();
        if last.starts_with("421") || last.is_empty() {
            break;
        }
    }
    assert!(last.starts_with("421 4.7.0"), "{last}");
    let mut ok = Client::connect(smtp_addr(ip));
    assert!(ok.cmd("EHLO fine.test").starts_with("250"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bdat_chunks_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.55";
    let _server = Server::dev(dir.path(), ip);
    let mut c = Client::connect(smtp_addr(ip));
    assert!(c.cmd("EHLO chunky.test").contains("CHUNKING"));
    c.send(b"MAIL FROM:<a@remote.test> BODY=8BITMIME\r\nRCPT TO:<demo@example.test>\r\n");
    assert!(c.reply().starts_with("250") && c.reply().starts_with("250"));
    let part1 = b"Subject: chunks\r\n\r\nfirst ";
    let part2 = "zweiter Teil \u{2713}\r\n".as_bytes();
    c.send(format!("BDAT {}\r\n", part1.len()).as_bytes());
    c.send(part1);
    assert!(c.reply().starts_with("250 2.0.0"));
    c.send(format!("BDAT {} LAST\r\n", part2.len()).as_bytes());
    c.send(part2);
    assert!(c.reply().starts_with("250 2.0.0 Ok: queued as"));
    let got = inbox(dir.path()).await;
    let mut want = part1.to_vec();
    want.extend_from_slice(part2);
    assert!(
        got[0].ends_with(&want),
        "{:?}",
        String::from_utf8_lossy(&got[0])
    );
}
