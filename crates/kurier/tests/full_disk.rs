//! Issue 16 item 8: `kurier serve --dev` starts on a full disk. The data folder is a small
//! tmpfs in a private mount namespace (`unshare -m`, so nothing outside sees it): set up once,
//! filled to the last byte, then the server starts read-only — mail is read over IMAP, new
//! mail gets 451 — and when space returns (the filler is removed inside the namespace with
//! `nsenter`) new mail is accepted again. Needs root, as scripts/test.sh and CI run.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::Server;

const PASSWORD: &str = "full-disk-s3cret";

/// Starts the server inside its own mount namespace on a full tmpfs.
fn start_on_full_disk(mount: &std::path::Path, ip: &str) -> Server {
    let script = r#"
set -e
m="$1"; k="$2"; ip="$3"
mount -t tmpfs -o size=24m tmpfs "$m"
"$k" serve --dev --data "$m/data" --listen-ip "$ip" > "$m/first.log" 2>&1 &
first=$!
for i in $(seq 1200); do grep -q "ready\." "$m/first.log" && break; sleep 0.1; done
grep -q "ready\." "$m/first.log" || { cat "$m/first.log" >&2; exit 1; }
"$k" user list --dev --data "$m/data" >/dev/null
kill "$first"; wait "$first" || true
# Every byte taken: a message body, a WAL index, a new file — nothing fits.
dd if=/dev/zero of="$m/fill" bs=64k 2>/dev/null || true
exec "$k" serve --dev --data "$m/data" --listen-ip "$ip"
"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-c", script, "sh"])
        .arg(mount)
        .arg(support::bin())
        .arg(ip)
        .env("KURIER_DEV_PASSWORD", PASSWORD);
    let server = Server::from_command(cmd, mount.parent().unwrap());
    server.wait_for_stdout("ready.");
    server
}

/// One SMTP transaction to the demo account; returns the reply to the end of DATA.
fn send(ip: &str, subject: &str) -> String {
    let mut c = support::Client::connect(format!("{ip}:2525").parse().unwrap());
    for line in [
        "EHLO c.test",
        "MAIL FROM:<a@remote.test>",
        "RCPT TO:<demo@example.test>",
    ] {
        let r = c.cmd(line);
        assert!(r.starts_with("250"), "{line}: {r}");
    }
    assert!(c.cmd("DATA").starts_with("354"));
    c.cmd(&format!("Subject: {subject}\r\n\r\nbody\r\n."))
}

fn imap_login_and_select(ip: &str) -> String {
    let tcp = TcpStream::connect(format!("{ip}:1993")).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(support::tls_unverified(tcp, "mail.example.test").unwrap());
    let mut all = String::new();
    r.get_mut()
        .write_all(
            format!("a LOGIN demo@example.test {PASSWORD}\r\nb SELECT INBOX\r\nc LOGOUT\r\n")
                .as_bytes(),
        )
        .unwrap();
    let _ = r.read_to_string(&mut all);
    all
}

#[test]
fn serve_dev_starts_read_only_on_a_full_disk_and_writes_again_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("disk");
    std::fs::create_dir(&mount).unwrap();
    let ip = "127.0.50.6";
    let server = start_on_full_disk(&mount, ip);
    server.wait_for_log("open read-only");
    // Reading works: login, SELECT.
    let imap = imap_login_and_select(ip);
    assert!(imap.contains("a OK") && imap.contains("b OK"), "{imap}");
    // Writing does not, and says so as a temporary failure: nothing is lost.
    let reply = send(ip, "while full");
    assert!(reply.starts_with("451"), "{reply}");
    // Space returns: the store becomes writable and mail is accepted.
    let pid = server.child.id().to_string();
    let fill = mount.join("fill");
    let status = Command::new("nsenter")
        .args(["-t", &pid, "-m", "rm", "-f"])
        .arg(&fill)
        .status()
        .unwrap();
    assert!(status.success());
    support::wait_until(Duration::from_secs(30), "mail accepted again", || {
        send(ip, "after").starts_with("250")
    });
    server.wait_for_log("the store can be written again");
}
