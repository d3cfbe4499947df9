//! Milters (issue 24 item 5, ABUSE-5): Kurier speaks the Sendmail milter protocol v6 to the
//! filters Postfix users run. Real engines: Debian's clamav-milter (with clamd loading a test
//! signature for the EICAR string, shipped here: no signature download) rejects EICAR and marks
//! clean mail, and OpenDKIM after it signs what it sees — two filters in a chain, each seeing
//! the other's change. A scripted filter shows every action honoured (added and changed header
//! fields, a new body, quarantine into Junk, discard, a 5xx reply) and every failure met with
//! the default action: a filter that disconnects mid-message, answers garbage or hangs gets 451
//! (tempfail) or, configured so, lets the mail through.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::process::Command;
use std::time::Duration;

use support::Server;

/// A scripted milter: negotiates header changes, body replacement and quarantine, answers
/// continue, and at end of message acts as the Subject of the message says.
const FAKE_MILTER: &str = r#"
import socket, struct, sys, threading, time
ip, port = sys.argv[1], int(sys.argv[2])
def pkt(code, data=b""):
    return struct.pack(">I", len(data) + 1) + code + data
def recvn(c, n):
    b = b""
    while len(b) < n:
        x = c.recv(n - len(b))
        if not x:
            raise EOFError
        b += x
    return b
def serve(c):
    mode = ""
    try:
        while True:
            n = struct.unpack(">I", recvn(c, 4))[0]
            d = recvn(c, n)
            cmd, data = d[:1], d[1:]
            if cmd == b"O":
                c.sendall(pkt(b"O", struct.pack(">III", 6, 0x33, 0)))
            elif cmd == b"D":
                continue
            elif cmd == b"L":
                name, value = data.split(b"\0")[:2]
                if name.lower() == b"subject":
                    mode = value.decode().strip()
                if mode == "disconnect":
                    c.close()
                    return
                if mode == "garbage":
                    c.sendall(b"\xff\xff\xff\xffjunk")
                    continue
                c.sendall(pkt(b"c"))
            elif cmd == b"E":
                if mode == "modify":
                    c.sendall(pkt(b"h", b"X-Scripted\0yes\0"))
                    c.sendall(pkt(b"m", struct.pack(">I", 1) + b"Subject\0modified by the filter\0"))
                    c.sendall(pkt(b"p"))
                    c.sendall(pkt(b"b", b"replaced body\n"))
                    c.sendall(pkt(b"q", b"looks odd\0"))
                    c.sendall(pkt(b"c"))
                elif mode == "discard":
                    c.sendall(pkt(b"d"))
                elif mode == "reject":
                    c.sendall(pkt(b"y", b"550 5.7.1 Not today\0"))
                elif mode == "hang":
                    time.sleep(600)
                else:
                    c.sendall(pkt(b"c"))
            elif cmd == b"Q":
                c.close()
                return
            else:
                c.sendall(pkt(b"c"))
    except (EOFError, OSError):
        pass
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((ip, port))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Sends each message (From, Subject, body) to the MX and prints the reply code and text
/// after DATA and the seconds it took, as JSON lines.
const SENDER: &str = r#"
import json, smtplib, sys, time
spec = json.load(open(sys.argv[1]))
for m in spec["messages"]:
    start = time.time()
    code, text = 250, ""
    body = ("From: %s\r\nTo: rcpt@kurier.test\r\nSubject: %s\r\nMessage-ID: <%s@kurier.test>\r\n\r\n%s\r\n"
            % (m["from"], m["subject"], m["subject"].replace(" ", "-"), m["body"])).encode()
    try:
        with smtplib.SMTP(spec["server"], 2525, timeout=60) as s:
            s.ehlo("client.test")
            s.sendmail(m["from"], ["rcpt@kurier.test"], body)
    except smtplib.SMTPResponseException as e:
        code, text = e.smtp_code, e.smtp_error.decode()
    print(json.dumps({"code": code, "text": text, "secs": time.time() - start}), flush=True)
"#;

fn send(
    dir: &std::path::Path,
    server: &str,
    messages: &[(&str, &str, &str)],
) -> Vec<serde_json::Value> {
    let list: Vec<serde_json::Value> = messages
        .iter()
        .map(|(from, subject, body)| serde_json::json!({"from": from, "subject": subject, "body": body}))
        .collect();
    let spec = serde_json::json!({"server": server, "messages": list});
    let out = support::python(SENDER, &dir.join("send.json"), &spec);
    String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Starts a filter daemon of Debian's `package`, logging to `dir/NAME.log`, and waits until
/// `ready`.
fn daemon(
    dir: &std::path::Path,
    name: &str,
    package: &str,
    cmd: Command,
    ready: impl FnMut() -> bool,
) -> kurier_testworld::Daemon {
    let mut d =
        kurier_testworld::Daemon::spawn(name, cmd, dir.join(format!("{name}.log")), package)
            .unwrap();
    d.wait_until_for(&format!("{name} listening"), Duration::from_secs(60), ready)
        .unwrap();
    d
}

fn listening(addr: &str) -> bool {
    std::net::TcpStream::connect(addr).is_ok()
}

fn milter_config(address: &str, extra: &str) -> String {
    format!(
        "\n[[milter]]\nname = \"scripted\"\naddress = \"{address}\"\ntimeout_ms = 1500\n{extra}\n"
    )
}

const EICAR: &str = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

#[test]
fn abuse_5_clamav_milter_rejects_eicar_and_opendkim_signs_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (kurier, filters) = ("127.0.65.1", "127.0.65.2");
    // clamd with only the shipped test signature (ClamAV's own database needs a download).
    std::fs::create_dir_all(d.join("db")).unwrap();
    std::fs::write(
        d.join("db/kurier-test.ndb"),
        format!(
            "Kurier.Test.EICAR:0:*:{}\n",
            EICAR
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
    )
    .unwrap();
    let clamd_socket = d.join("clamd.sock");
    std::fs::write(
        d.join("clamd.conf"),
        format!(
            "LocalSocket {sock}\nDatabaseDirectory {db}\nForeground yes\nTemporaryDirectory {tmp}\nPidFile {tmp}/clamd.pid\n",
            sock = clamd_socket.display(),
            db = d.join("db").display(),
            tmp = d.display()
        ),
    )
    .unwrap();
    let mut clamd = Command::new("clamd");
    clamd.arg("-c").arg(d.join("clamd.conf"));
    let _clamd = daemon(d, "clamd", "clamav-daemon", clamd, || clamd_socket.exists());
    std::fs::write(
        d.join("clamav-milter.conf"),
        format!(
            "MilterSocket inet:7357@{filters}\nClamdSocket unix:{sock}\nForeground yes\nOnInfected Reject\n\
             AddHeader Replace\nPidFile {tmp}/milter.pid\nTemporaryDirectory {tmp}\n",
            sock = clamd_socket.display(),
            tmp = d.display()
        ),
    )
    .unwrap();
    let mut milter = Command::new("clamav-milter");
    milter.arg("-c").arg(d.join("clamav-milter.conf"));
    let _clamav_milter = daemon(d, "clamav-milter", "clamav-milter", milter, || {
        listening(&format!("{filters}:7357"))
    });
    let key = openssl::rsa::Rsa::generate(2048).unwrap();
    let key_file = d.join("dkim.key");
    std::fs::write(&key_file, key.private_key_to_pem().unwrap()).unwrap();
    std::fs::write(
        d.join("opendkim.conf"),
        format!(
            "Mode s\nDomain kurier.test\nSelector mil\nKeyFile {key}\nSocket inet:8891@{filters}\n\
             Canonicalization relaxed/relaxed\nInternalHosts 127.0.0.0/8\nSyslog no\nBackground no\n\
             PidFile {tmp}/opendkim.pid\nRequireSafeKeys no\n",
            key = key_file.display(),
            tmp = d.display()
        ),
    )
    .unwrap();
    let mut opendkim = Command::new("opendkim");
    opendkim.args(["-f", "-x"]).arg(d.join("opendkim.conf"));
    let _opendkim = daemon(d, "opendkim", "opendkim", opendkim, || {
        listening(&format!("{filters}:8891"))
    });

    let config = support::configured(
        d,
        kurier,
        "",
        &format!(
            "\n[[milter]]\nname = \"clamav\"\naddress = \"inet:7357@{filters}\"\n\
             [[milter]]\nname = \"opendkim\"\naddress = \"{filters}:8891\"\n"
        ),
    );
    let server = Server::configured(d, &config);
    server.wait_for_log("milter on");
    let r = send(
        d,
        kurier,
        &[
            ("a@kurier.test", "virus", EICAR),
            ("a@kurier.test", "clean", "Hello, nothing to see here."),
        ],
    );
    assert_eq!(r[0]["code"], 554, "{r:?}");
    assert!(r[0]["text"].as_str().unwrap().contains("5.7.1"), "{r:?}");
    assert_eq!(r[1]["code"], 250, "{r:?}");
    let inbox = support::inbox(d, "rcpt@kurier.test");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let m = &inbox[0];
    assert!(m.contains("X-Virus-Status: Clean"), "{m}");
    assert!(m.contains("X-Virus-Scanned: clamav-milter"), "{m}");
    // OpenDKIM ran second and signed, over clamav-milter's field too (it saw the change).
    assert!(m.contains("DKIM-Signature:"), "{m}");
    assert!(m.contains("d=kurier.test"), "{m}");
    assert!(m.contains("s=mil"), "{m}");
    assert!(server.stderr().contains("milter verdict"));
}

fn fake(ip: &str, port: u16) -> support::Reap {
    support::helper(FAKE_MILTER, &[ip, &port.to_string()])
}

#[test]
fn abuse_5_every_milter_action_and_failure_is_honoured() {
    let _milter = fake("127.0.64.2", 7000);
    let kurier = "127.0.64.1";
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        kurier,
        "",
        &milter_config("inet:7000@127.0.64.2", ""),
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("milter on");
    let r = send(
        dir.path(),
        kurier,
        &[
            ("a@sender.test", "plain", "Nothing to change."),
            ("a@sender.test", "modify", "Original body."),
            ("a@sender.test", "discard", "Gone."),
            ("a@sender.test", "reject", "Refused."),
            ("a@sender.test", "disconnect", "Cut off."),
            ("a@sender.test", "garbage", "Nonsense."),
            ("a@sender.test", "hang", "Waiting."),
        ],
    );
    let codes: Vec<u64> = r.iter().map(|x| x["code"].as_u64().unwrap()).collect();
    // The failures meet the default action, tempfail.
    assert_eq!(codes, [250, 250, 250, 554, 451, 451, 451], "{r:?}");
    assert!(
        r[3]["text"].as_str().unwrap().contains("5.7.1 Not today"),
        "{r:?}"
    );
    for i in 4..7 {
        assert!(
            r[i]["text"]
                .as_str()
                .unwrap()
                .contains("Content filter unavailable"),
            "{r:?}"
        );
    }
    // The hanging filter cost its time limit, no more.
    assert!(r[6]["secs"].as_f64().unwrap() < 10.0, "{r:?}");
    let inbox = support::inbox(dir.path(), "rcpt@kurier.test");
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].contains("Nothing to change."), "{}", inbox[0]);
    // Quarantined into Junk, with the filter's header changes and its body.
    let junk = support::folder(dir.path(), "rcpt@kurier.test", "Junk");
    assert_eq!(junk.len(), 1, "{junk:?}");
    let m = &junk[0];
    assert!(m.contains("X-Scripted: yes\r\n"), "{m}");
    assert!(m.contains("Subject: modified by the filter\r\n"), "{m}");
    assert!(!m.contains("Subject: modify"), "{m}");
    assert!(m.ends_with("\r\n\r\nreplaced body\r\n"), "{m:?}");
    assert!(!m.contains("Original body"), "{m}");
    let log = server.stderr();
    assert!(log.contains("message discarded by a milter"), "{log}");
    assert!(log.contains("milter failed; deferred"), "{log}");
    drop(server);

    // default_action = "accept": the filter's failure lets the mail through.
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        "127.0.64.3",
        "",
        &milter_config("127.0.64.2:7000", "default_action = \"accept\"\n"),
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("milter on");
    let r = send(
        dir.path(),
        "127.0.64.3",
        &[("a@sender.test", "disconnect", "Cut off.")],
    );
    assert_eq!(r[0]["code"], 250, "{r:?}");
    assert_eq!(support::inbox(dir.path(), "rcpt@kurier.test").len(), 1);
    server.wait_for_log("milter failed; accepted as if it had");
}
