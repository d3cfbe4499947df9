//! ManageSieve (RFC 5804, issue 25 item 2) judged by a real client, Debian's `sieve-connect`
//! (upload over STARTTLS, activate, list, download, check), and by a raw session for every
//! command and error path: no credentials before TLS, capabilities again after it, a syntax
//! error answered with its line and column, quotas, the active script protected. The uploaded
//! script then files delivered mail.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::Server;

/// A ManageSieve session step by step; prints one JSON object of the answers.
const RAW: &str = r#"
import json, socket, ssl, sys, base64
ip, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((ip, port), timeout=10)
f = s.makefile("rb")
def response():
    lines = []
    while True:
        line = f.readline().decode()
        if not line:
            return lines
        lines.append(line.rstrip("\r\n"))
        # A literal {n}: its octets follow.
        if line.rstrip().endswith("}") and "{" in line:
            n = int(line.rstrip()[line.rindex("{") + 1:-1].rstrip("+"))
            lines.append(f.read(n).decode())
        if line.startswith(("OK", "NO", "BYE")):
            return lines
def cmd(text):
    s.sendall(text.encode())
    return response()
out = {}
out["greeting"] = response()
out["auth_before_tls"] = cmd('AUTHENTICATE "PLAIN" "%s"\r\n' % base64.b64encode(b"\0rcpt@kurier.test\0pw").decode())
out["starttls"] = cmd("STARTTLS\r\n")
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(s, server_hostname="mx.kurier.test")
f = s.makefile("rb")
out["after_tls"] = response()
out["list_before_login"] = cmd("LISTSCRIPTS\r\n")
out["wrong_password"] = cmd('AUTHENTICATE "PLAIN" "%s"\r\n' % base64.b64encode(b"\0rcpt@kurier.test\0nope").decode())
out["login"] = cmd('AUTHENTICATE "PLAIN" "%s"\r\n' % base64.b64encode(b"\0rcpt@kurier.test\0pw").decode())
bad = "keep;\r\nif header :bogus \"a\" \"b\" { }\r\n"
out["put_bad"] = cmd('PUTSCRIPT "bad" {%d+}\r\n%s\r\n' % (len(bad), bad))
good = 'require "fileinto";\r\nif header :contains "subject" "report" { fileinto "Reports"; }\r\n'
out["check_good"] = cmd("CHECKSCRIPT {%d+}\r\n%s\r\n" % (len(good), good))
out["put_good"] = cmd('PUTSCRIPT "main" {%d+}\r\n%s\r\n' % (len(good), good))
out["havespace_big"] = cmd('HAVESPACE "other" 5000000\r\n')
out["havespace_ok"] = cmd('HAVESPACE "other" 100\r\n')
out["setactive_missing"] = cmd('SETACTIVE "nope"\r\n')
out["setactive"] = cmd('SETACTIVE "main"\r\n')
out["list"] = cmd("LISTSCRIPTS\r\n")
out["get"] = cmd('GETSCRIPT "main"\r\n')
out["delete_active"] = cmd('DELETESCRIPT "main"\r\n')
out["put_second"] = cmd('PUTSCRIPT "second" "keep;"\r\n')
out["rename_taken"] = cmd('RENAMESCRIPT "second" "main"\r\n')
out["rename"] = cmd('RENAMESCRIPT "second" "third"\r\n')
out["garbage"] = cmd("FROBNICATE now\r\n")
out["noop"] = cmd('NOOP "tag1"\r\n')
out["logout"] = cmd("LOGOUT\r\n")
print(json.dumps(out))
"#;

fn sieve_connect(ip: &str, args: &[&str], password: &str) -> (bool, String) {
    let mut child = Command::new("sieve-connect")
        .args([
            "-s",
            ip,
            "-p",
            "4190",
            "-u",
            "rcpt@kurier.test",
            "--passwordfd",
            "0",
        ])
        .args(["--notlsverify", "--tlshostname", "mx.kurier.test"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sieve-connect (scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn managesieve_server(ip: &str) -> (tempfile::TempDir, std::path::PathBuf, Server) {
    let dir = tempfile::tempdir().unwrap();
    let config = support::configured(
        dir.path(),
        ip,
        "",
        &format!("\n[managesieve]\nlisten = [\"{ip}:4190\"]\nmax_script_size = 4096\n"),
    );
    let server = Server::configured(dir.path(), &config);
    server.wait_for_log("ManageSieve listening");
    (dir, config, server)
}

#[test]
fn sieve_connect_uploads_activates_lists_and_downloads() {
    let ip = "127.0.67.1";
    let (dir, config, _server) = managesieve_server(ip);
    // Where clients find it (RFC 5804 §1.8).
    let (code, dns, err) =
        support::run(&["dns", "kurier.test", "--config", config.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        dns.contains("_sieve._tcp.kurier.test. IN SRV 0 1 4190 mx.kurier.test."),
        "{dns}"
    );
    // And in the autoconfig answer, as the Mail Autoconfig draft's setupServer.
    let out = std::process::Command::new("curl")
        .args(["-sSk", "--fail", "--resolve"])
        .arg(format!("autoconfig.kurier.test:8443:{ip}"))
        .arg("https://autoconfig.kurier.test:8443/mail/config-v1.1.xml?emailaddress=rcpt@kurier.test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = dir.path().join("config-v1.1.xml");
    std::fs::write(&xml, &out.stdout).unwrap();
    let found = support::python_ok(
        "import sys, xml.etree.ElementTree as E\n\
         r = E.parse(sys.argv[1]).getroot()\n\
         s = r.find(\"setupServer[@type='managesieve']\")\n\
         print(s.find('hostname').text, s.find('port').text, s.find('socketType').text)\n\
         print('OK-DONE')\n",
        &[xml.to_str().unwrap()],
    );
    assert!(
        found.starts_with("mx.kurier.test 4190 STARTTLS\n"),
        "{found}"
    );
    let script = dir.path().join("reports.sieve");
    std::fs::write(
        &script,
        "require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"report\" { fileinto :create \"Reports\"; }\n",
    )
    .unwrap();
    let local = script.to_str().unwrap();
    let (ok, out) = sieve_connect(
        ip,
        &[
            "--upload",
            "--localsieve",
            local,
            "--remotesieve",
            "reports",
        ],
        "pw",
    );
    assert!(ok, "{out}");
    let (ok, out) = sieve_connect(ip, &["--activate", "--remotesieve", "reports"], "pw");
    assert!(ok, "{out}");
    let (ok, out) = sieve_connect(ip, &["--list"], "pw");
    assert!(ok, "{out}");
    assert!(out.contains("reports"), "{out}");
    let back = dir.path().join("back.sieve");
    let (ok, out) = sieve_connect(
        ip,
        &[
            "--download",
            "--remotesieve",
            "reports",
            "--localsieve",
            back.to_str().unwrap(),
        ],
        "pw",
    );
    assert!(ok, "{out}");
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        std::fs::read_to_string(&script).unwrap()
    );
    // A broken script is refused with its place.
    let bad = dir.path().join("bad.sieve");
    std::fs::write(&bad, "keep;\nfileinto \"x\";\n").unwrap();
    let (ok, out) = sieve_connect(
        ip,
        &[
            "--upload",
            "--localsieve",
            bad.to_str().unwrap(),
            "--remotesieve",
            "bad",
        ],
        "pw",
    );
    assert!(!ok, "{out}");
    assert!(out.contains("line 2"), "{out}");
    // A wrong password gets nowhere.
    let (ok, out) = sieve_connect(ip, &["--list"], "wrong");
    assert!(!ok, "{out}");
    // The uploaded script files delivered mail.
    let spec = serde_json::json!({"server": ip});
    support::python(
        r#"
import json, smtplib, sys
spec = json.load(open(sys.argv[1]))
with smtplib.SMTP(spec["server"], 2525, timeout=30) as s:
    s.sendmail("a@sender.test", ["rcpt@kurier.test"], b"Subject: monthly report\r\n\r\nNumbers.\r\n")
"#,
        &dir.path().join("send.json"),
        &spec,
    );
    assert_eq!(
        support::folder(dir.path(), "rcpt@kurier.test", "Reports").len(),
        1
    );
}

#[test]
fn every_command_and_error_path() {
    let ip = "127.0.67.2";
    let (dir, _config, _server) = managesieve_server(ip);
    let out = Command::new("python3")
        .args(["-c", RAW, ip, "4190"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = |k: &str| {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let last = |k: &str| {
        v[k].as_array()
            .unwrap()
            .last()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    // Before TLS: STARTTLS offered, no SASL mechanism, credentials refused.
    assert!(text("greeting").contains("\"STARTTLS\""), "{v}");
    assert!(text("greeting").contains("\"SASL\" \"\""), "{v}");
    assert!(text("greeting").contains("\"SIEVE\" \"fileinto"), "{v}");
    assert!(
        last("auth_before_tls").starts_with("NO (ENCRYPT-NEEDED)"),
        "{v}"
    );
    assert!(last("starttls").starts_with("OK"), "{v}");
    // After TLS: capabilities again, PLAIN offered, STARTTLS no longer.
    assert!(text("after_tls").contains("\"SASL\" \"PLAIN\""), "{v}");
    assert!(!text("after_tls").contains("\"STARTTLS\""), "{v}");
    assert!(last("list_before_login").starts_with("NO"), "{v}");
    assert!(last("wrong_password").starts_with("NO"), "{v}");
    assert!(last("login").starts_with("OK"), "{v}");
    assert!(last("put_bad").starts_with("NO"), "{v}");
    assert!(last("put_bad").contains("line 2, column 11"), "{v}");
    assert!(last("check_good").starts_with("OK"), "{v}");
    assert!(last("put_good").starts_with("OK"), "{v}");
    assert!(
        last("havespace_big").starts_with("NO (QUOTA/MAXSIZE)"),
        "{v}"
    );
    assert!(last("havespace_ok").starts_with("OK"), "{v}");
    assert!(
        last("setactive_missing").starts_with("NO (NONEXISTENT)"),
        "{v}"
    );
    assert!(last("setactive").starts_with("OK"), "{v}");
    assert!(text("list").contains("\"main\" ACTIVE"), "{v}");
    assert!(!text("list").contains("\"bad\""), "{v}");
    assert!(text("get").contains("fileinto \"Reports\""), "{v}");
    assert!(last("delete_active").starts_with("NO (ACTIVE)"), "{v}");
    assert!(last("put_second").starts_with("OK"), "{v}");
    assert!(
        last("rename_taken").starts_with("NO (ALREADYEXISTS)"),
        "{v}"
    );
    assert!(last("rename").starts_with("OK"), "{v}");
    assert!(last("garbage").starts_with("NO"), "{v}");
    assert!(last("noop").starts_with("OK (TAG \"tag1\")"), "{v}");
    assert!(last("logout").starts_with("OK"), "{v}");
    // What the store has: the two good scripts, the first active.
    let (rt, store) = support::store_at(dir.path());
    rt.block_on(async {
        let kurier_store::Recipient::Local(a) = store.resolve("rcpt@kurier.test").await.unwrap()
        else {
            panic!()
        };
        let names: Vec<(String, bool)> = store
            .sieve_scripts(a[0].id)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.active))
            .collect();
        assert_eq!(names, [("main".into(), true), ("third".into(), false)]);
    });
}

/// An oversized literal before login ends the session at once, without reading it.
#[test]
fn a_huge_command_before_login_is_refused() {
    let ip = "127.0.67.3";
    let (_dir, _config, _server) = managesieve_server(ip);
    let mut s = std::net::TcpStream::connect((ip, 4190)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    s.write_all(b"PUTSCRIPT \"x\" {100000000+}\r\n").unwrap();
    let mut all = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut all);
    assert!(all.contains("BYE"), "{all}");
    assert!(all.contains("larger than"), "{all}");
}
