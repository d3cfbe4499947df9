//! Spam scanning and training on a real rspamd (issue 24 items 2 and 3, ABUSE-2 and ABUSE-3),
//! started here on loopback with Debian's configuration and a few test rules (multimap on the
//! Subject), Redis for its statistics, and its DNS pointed at a closed port (nothing leaves the
//! machine). GTUBE is refused with 554, a ham message lands in INBOX, one rspamd wants a header
//! on lands in Junk with `X-Spam: Yes` and without the sender's forged `X-Spam: No`, a subject
//! rewrite is written, a soft reject is a 451; a MOVE into Junk reaches rspamd's statistics as
//! spam, a MOVE out of it as ham. And rspamd answering garbage, hanging, or not running: the
//! configured outcome (accepted unscanned, or 451), logged and counted, no session stuck.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Server;

/// Sends each message of the JSON list to Kurier's MX (port 2525) and prints the outcome of
/// each as a JSON line: the reply code and text after DATA, and how long it took.
const SENDER: &str = r#"
import json, smtplib, sys, time
spec = json.load(open(sys.argv[1]))
for m in spec["messages"]:
    start = time.time()
    code, text = 250, ""
    try:
        with smtplib.SMTP(spec["server"], 2525, timeout=60) as s:
            s.ehlo("client.test")
            s.sendmail(m["from"], ["rcpt@kurier.test"], m["body"].encode())
    except smtplib.SMTPDataError as e:
        code, text = e.smtp_code, e.smtp_error.decode()
    except smtplib.SMTPResponseException as e:
        code, text = e.smtp_code, e.smtp_error.decode()
    print(json.dumps({"code": code, "text": text, "secs": time.time() - start}), flush=True)
"#;

/// Logs in over IMAP and runs `UID MOVE` for the message with a given Subject from one mailbox
/// into another.
const MOVER: &str = r#"
import imaplib, json, ssl, sys
spec = json.load(open(sys.argv[1]))
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4_SSL(spec["server"], 1993, ssl_context=ctx)
m.login("rcpt@kurier.test", "pw")
typ, _ = m.select(spec["from"])
assert typ == "OK"
typ, data = m.uid("SEARCH", "SUBJECT", "\"%s\"" % spec["subject"])
uids = data[0].split()
assert len(uids) == 1, data
typ, data = m.uid("MOVE", uids[0], spec["to"])
assert typ == "OK", data
m.logout()
print("OK-DONE")
"#;

/// A fake rspamd: "garbage" answers HTTP 200 with HTML, "hang" takes the request and never
/// answers.
const FAKE: &str = r#"
import socket, sys, threading, time
ip, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port))
s.listen(16)
print("ready", flush=True)
def serve(c):
    c.recv(65536)
    if mode == "garbage":
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 17\r\n\r\n<html>oops</html>")
        c.close()
    else:
        time.sleep(600)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// rspamd with its Redis on `ip` and the test's rules: multimap on the Subject for "add
/// header" (score 8), "rewrite subject" (12, with `rewrite_subject = 10`), "greylist" (5) and a
/// pre-filter soft reject.
struct Rspamd {
    ip: String,
    _world: kurier_testworld::rspamd::Rspamd,
    _dir: tempfile::TempDir,
}

impl Rspamd {
    fn start(ip: &str) -> Rspamd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("junk.map"), "/cheap pills/i\n").unwrap();
        std::fs::write(d.join("worse.map"), "/limited offer/i\n").unwrap();
        std::fs::write(d.join("later.map"), "/try later/i\n").unwrap();
        std::fs::write(d.join("grey.map"), "/grey area/i\n").unwrap();
        let map = |name: &str| d.join(name).display().to_string();
        let multimap = format!(
            "KURIER_TEST_JUNK {{ type = \"header\"; header = \"Subject\"; regexp = true; map = \"{}\"; score = 8.0; }}\n\
             KURIER_TEST_WORSE {{ type = \"header\"; header = \"Subject\"; regexp = true; map = \"{}\"; score = 12.0; }}\n\
             KURIER_TEST_LATER {{ type = \"header\"; header = \"Subject\"; regexp = true; map = \"{}\"; prefilter = true; action = \"soft reject\"; message = \"Come back later\"; }}\n\
             KURIER_TEST_GREY {{ type = \"header\"; header = \"Subject\"; regexp = true; map = \"{}\"; score = 5.0; }}\n",
            map("junk.map"),
            map("worse.map"),
            map("later.map"),
            map("grey.map")
        );
        let world = kurier_testworld::rspamd::Rspamd::start(
            d,
            ip,
            &[
                ("multimap.conf", multimap),
                (
                    "actions.conf",
                    "rewrite_subject = 10;\nsubject = \"***SPAM*** %s\";\n".into(),
                ),
            ],
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        for port in [11333, 11334] {
            while !http(ip, port, "GET", "/ping", b"").contains("pong") {
                assert!(Instant::now() < deadline, "rspamd does not answer /ping");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Rspamd {
            ip: ip.to_string(),
            _world: world,
            _dir: dir,
        }
    }

    /// How many messages the controller says it has learned.
    fn learned(&self) -> u64 {
        let stat = http(&self.ip, 11334, "GET", "/stat", b"");
        serde_json::from_str::<serde_json::Value>(&stat)
            .ok()
            .and_then(|v| v["learned"].as_u64())
            .unwrap_or(0)
    }
}

/// One HTTP request with curl; the body, or "" on failure.
fn http(ip: &str, port: u16, method: &str, path: &str, body: &[u8]) -> String {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-m",
        "5",
        "-X",
        method,
        &format!("http://{ip}:{port}{path}"),
    ]);
    if !body.is_empty() {
        c.args(["--data-binary", "@-"]).stdin(Stdio::piped());
    }
    let mut child = c.stdout(Stdio::piped()).spawn().unwrap();
    if let Some(mut stdin) = child.stdin.take() {
        std::io::Write::write_all(&mut stdin, body).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn message(subject: &str, id: &str, extra: &str, text: &str) -> String {
    format!(
        "From: Alice <alice@sender.test>\r\nTo: rcpt@kurier.test\r\nSubject: {subject}\r\n\
         Message-ID: <{id}@sender.test>\r\nDate: Fri, 04 Dec 2026 01:00:00 +0000\r\n{extra}\r\n{text}\r\n"
    )
}

/// Sends `messages` (From, body) to the server on `ip`; the outcomes as JSON.
fn send(dir: &Path, ip: &str, messages: &[(&str, String)]) -> Vec<serde_json::Value> {
    let list: Vec<serde_json::Value> = messages
        .iter()
        .map(|(from, body)| serde_json::json!({"from": from, "body": body}))
        .collect();
    let spec = serde_json::json!({"server": ip, "messages": list});
    let out = support::python(SENDER, &dir.join("send.json"), &spec);
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn metrics(ip: &str) -> String {
    let out = Command::new("curl")
        .args(["-sk", &format!("https://{ip}:8443/metrics")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn spam_config(rspamd: &str, extra: &str) -> String {
    format!(
        "\n[spam]\nrspamd = \"{rspamd}:11333\"\nrspamd_controller = \"{rspamd}:11334\"\nrspamd_password = \"q1\"\n{extra}\n"
    )
}

const GTUBE: &str = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

#[test]
fn abuse_2_3_rspamd_scores_inbound_mail_and_learns_from_junk_moves() {
    let rspamd = Rspamd::start("127.0.60.1");
    let ip = "127.0.60.2";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        ip,
        "",
        &format!(
            "{}[greylisting]\nenabled = true\nscope = \"rspamd\"\ndelay_secs = 1\nretry_window_secs = 60\n",
            spam_config(&rspamd.ip, "scan_submission = true\n")
        ),
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("spam scanning with rspamd on");

    // A stolen account sending spam: refused at submission; ordinary mail goes out unchanged.
    let r = support::submit_message(
        ip,
        "x@elsewhere.test",
        &format!("Subject: t\r\n\r\n{GTUBE}\r\n"),
    );
    assert!(r.starts_with("554 5.7.1 Gtube pattern"), "{r}");
    let r = support::submit_message(ip, "x@elsewhere.test", "Subject: cheap pills\r\n");
    assert!(r.starts_with("250"), "{r}");
    server.wait_for_log("submitted message scored as spam; sent");

    let results = send(
        dir.path(),
        ip,
        &[
            ("alice@sender.test", message("test", "m1", "", GTUBE)),
            (
                "alice@sender.test",
                message(
                    "lunch",
                    "m2",
                    "",
                    "Shall we have lunch tomorrow at noon near the station, or would Friday suit you and your colleagues better this week?",
                ),
            ),
            (
                "alice@sender.test",
                message(
                    "cheap pills",
                    "m3",
                    "X-Spam: No\r\nX-Spam-Score: -100\r\n",
                    "Buy now while the stock lasts, discreet shipping worldwide, no prescription needed for any order today.",
                ),
            ),
            (
                "alice@sender.test",
                message("limited offer", "m4", "", "Only today."),
            ),
            (
                "alice@sender.test",
                message("please try later", "m5", "", "Again."),
            ),
        ],
    );
    let code = |i: usize| results[i]["code"].as_u64().unwrap();
    let text = |i: usize| results[i]["text"].as_str().unwrap().to_string();
    // GTUBE: refused with rspamd's own words.
    assert_eq!(code(0), 554, "{results:?}");
    assert!(text(0).contains("5.7.1 Gtube pattern"), "{results:?}");
    assert_eq!((code(1), code(2), code(3)), (250, 250, 250), "{results:?}");
    // rspamd's soft reject: the sender tries again.
    assert_eq!(code(4), 451, "{results:?}");
    assert!(text(4).contains("Come back later"), "{results:?}");

    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].contains("Subject: lunch"), "{}", inbox[0]);
    assert!(
        inbox[0].contains("X-Spam-Action: no action\r\n"),
        "{}",
        inbox[0]
    );
    assert!(!inbox[0].contains("X-Spam: Yes"), "{}", inbox[0]);
    let junk = support::folder(dir.path(), "rcpt@kurier.test", "Junk");
    assert_eq!(junk.len(), 2, "{junk:?}");
    let pills = junk.iter().find(|m| m.contains("cheap pills")).unwrap();
    assert!(pills.contains("X-Spam: Yes\r\n"), "{pills}");
    assert!(pills.contains("X-Spam-Action: add header\r\n"), "{pills}");
    assert!(pills.contains("KURIER_TEST_JUNK(8.00)"), "{pills}");
    // What the sender wrote about its own mail is gone.
    assert!(!pills.contains("X-Spam: No"), "{pills}");
    assert!(!pills.contains("-100"), "{pills}");
    let offer = junk.iter().find(|m| m.contains("limited offer")).unwrap();
    assert!(
        offer.contains("Subject: ***SPAM*** limited offer\r\n"),
        "{offer}"
    );
    assert_eq!(offer.matches("Subject:").count(), 1, "{offer}");

    // rspamd's greylist action with greylisting scope "rspamd": only this message waits (the
    // others above were new triplets too), and passes when retried after the delay.
    let grey = message(
        "grey area",
        "m6",
        "",
        "Somewhat suspicious text, but not quite spam yet.",
    );
    let r = send(dir.path(), ip, &[("alice@sender.test", grey.clone())]);
    assert_eq!(r[0]["code"], 451, "{r:?}");
    assert!(
        r[0]["text"].as_str().unwrap().contains("Greylisted"),
        "{r:?}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let r = send(dir.path(), ip, &[("alice@sender.test", grey)]);
    assert_eq!(r[0]["code"], 250, "{r:?}");
    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    let grey = inbox.iter().find(|m| m.contains("grey area")).unwrap();
    assert!(grey.contains("X-Spam-Action: greylist\r\n"), "{grey}");

    let m = metrics(ip);
    for line in [
        "kurier_spam_scans_total{action=\"greylist\"} 2\n",
        "kurier_greylist_total{outcome=\"deferred\"} 1\n",
        "kurier_greylist_total{outcome=\"passed\"} 1\n",
        "kurier_spam_scans_total{action=\"reject\"} 2\n",
        "kurier_spam_scans_total{action=\"no action\"} 1\n",
        "kurier_spam_scans_total{action=\"add header\"} 2\n",
        "kurier_spam_scans_total{action=\"rewrite subject\"} 1\n",
        "kurier_spam_scans_total{action=\"soft reject\"} 1\n",
        "kurier_spam_scan_failures_total 0\n",
    ] {
        assert!(m.contains(line), "{line} in\n{m}");
    }

    // ABUSE-3: the user calls the ham message spam, then the pills message ham.
    let before = rspamd.learned();
    let mover = |from: &str, to: &str, subject: &str| {
        let spec = serde_json::json!({"server": ip, "from": from, "to": to, "subject": subject});
        let out = support::python(MOVER, &dir.path().join("move.json"), &spec);
        assert!(String::from_utf8_lossy(&out).contains("OK-DONE"));
    };
    mover("INBOX", "Junk", "lunch");
    support::wait_until(Duration::from_secs(20), "rspamd to learn spam", || {
        rspamd.learned() > before
    });
    mover("Junk", "INBOX", "cheap pills");
    support::wait_until(Duration::from_secs(20), "rspamd to learn ham", || {
        rspamd.learned() > before + 1
    });
    // Into Trash teaches nothing.
    mover("Junk", "Trash", "limited offer");
    let m = metrics(ip);
    assert!(
        m.contains("kurier_spam_learned_total{result=\"spam\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("kurier_spam_learned_total{result=\"ham\"} 1\n"),
        "{m}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(rspamd.learned(), before + 2);
}

/// Starts a fake rspamd; returns it once it listens.
fn fake(ip: &str, port: u16, mode: &str) -> support::Reap {
    support::helper(FAKE, &[ip, &port.to_string(), mode])
}

#[test]
fn abuse_2_rspamd_garbage_hanging_or_down_is_the_configured_outcome() {
    // Fail open (the default): garbage, a hang past the time limit, and nothing listening all
    // deliver the message unscanned.
    let ip = "127.0.60.10";
    let _garbage = fake("127.0.60.11", 11333, "garbage");
    let _hang = fake("127.0.60.12", 11333, "hang");
    let mut outcomes = Vec::new();
    for (n, rspamd) in ["127.0.60.11", "127.0.60.12", "127.0.60.13"]
        .iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let config = support::configured(
            dir.path(),
            ip,
            "",
            &spam_config(rspamd, "timeout_ms = 1500\n"),
        );
        let server = Server::configured(dir.path(), &config);
        server.wait_for_log("spam scanning with rspamd on");
        let r = send(
            dir.path(),
            ip,
            &[(
                "alice@sender.test",
                message("hello", &format!("f{n}"), "", "Hi."),
            )],
        );
        outcomes.push((rspamd, r[0].clone()));
        assert_eq!(r[0]["code"], 250, "{rspamd}: {r:?}");
        assert!(r[0]["secs"].as_f64().unwrap() < 10.0, "{rspamd}: {r:?}");
        let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
        assert_eq!(inbox.len(), 1, "{rspamd}");
        assert!(!inbox[0].contains("X-Spam-Action"), "{}", inbox[0]);
        server.wait_for_log("spam scan failed; delivered unscanned");
        assert!(
            metrics(ip).contains("kurier_spam_scan_failures_total 1\n"),
            "{rspamd}"
        );
        drop(server);
    }
    let log = format!("{outcomes:?}");
    assert_eq!(outcomes.len(), 3, "{log}");

    // Fail closed: the sender hears 451 and nothing is stored.
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        ip,
        "",
        &spam_config(
            "127.0.60.12",
            "timeout_ms = 1500\non_failure = \"tempfail\"\n",
        ),
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("spam scanning with rspamd on");
    let r = send(
        dir.path(),
        ip,
        &[("alice@sender.test", message("hello", "t1", "", "Hi."))],
    );
    assert_eq!(r[0]["code"], 451, "{r:?}");
    assert!(
        r[0]["text"]
            .as_str()
            .unwrap()
            .contains("Spam filter unavailable"),
        "{r:?}"
    );
    assert!(support::inbox(dir.path(), "rcpt@kurier.test").is_empty());
    server.wait_for_log("spam scan failed; deferred");
}
