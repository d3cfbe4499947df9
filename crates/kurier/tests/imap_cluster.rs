//! Two Kurier nodes on one PostgreSQL database (docs/architecture.md: IMAP IDLE across nodes uses
//! LISTEN/NOTIFY): a client IDLEs on node A, a message arrives by SMTP at node B, and A tells
//! the client within a second. Fails, never skips, without the test cluster of scripts/test.sh.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use support::Server;

const IDLE_ACROSS_NODES: &str = r#"
import imaplib, smtplib, ssl, sys, time
a_ip, b_ip = sys.argv[1], sys.argv[2]
m = imaplib.IMAP4_SSL(a_ip, 1993, ssl_context=ssl._create_unverified_context())
m.login("rcpt@kurier.test", "pw")
count = int(m.select("INBOX")[1][0])
tag = m._new_tag().decode()
m.send(f"{tag} IDLE\r\n".encode())
assert m.readline().startswith(b"+")
start = time.monotonic()
with smtplib.SMTP(b_ip, 2525) as s:
    s.sendmail("far@remote.example", ["rcpt@kurier.test"], "Subject: via node B\r\n\r\nhi\r\n")
line = m.readline()
elapsed = time.monotonic() - start
assert line.strip() == f"* {count + 1} EXISTS".encode(), line
assert elapsed < 1.0, elapsed
m.send(b"DONE\r\n")
print(f"OK-DONE {elapsed:.3f}")
"#;

#[test]
fn idle_on_one_node_hears_a_delivery_on_the_other() {
    let url = support::postgres_database("kurier_imap");
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_ip, b_ip) = ("127.0.40.8", "127.0.40.9");
    let store = format!("[store]\nurl = \"{url}\"\n");
    let a_config = support::configured(a_dir.path(), a_ip, "", &store);
    // Node B: the same database and certificate, its own address and data folder.
    let b_config = support::second_node(a_dir.path(), &a_config, a_ip, b_dir.path(), b_ip);
    let _a = Server::configured(a_dir.path(), &a_config);
    let _b = Server::configured(b_dir.path(), &b_config);
    support::python_ok(IDLE_ACROSS_NODES, &[a_ip, b_ip]);
}
