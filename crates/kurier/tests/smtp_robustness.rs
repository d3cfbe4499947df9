//! The MX under stress: stalled clients time out, a thousand idle connections do not stop it
//! from serving others, and a SIGKILL in the middle of a load loses no acknowledged message.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kurier_store::Recipient;
use support::Server;

fn setup(dir: &Path, ip: &str, smtp_extra: &str) -> PathBuf {
    support::configured(dir, ip, smtp_extra, "")
}

fn start(dir: &Path, config: &Path) -> Server {
    Server::configured(dir, config)
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    let _ = r.read_line(&mut l);
    l
}

#[test]
fn a_stalled_client_gets_421_after_the_command_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.70";
    let config = setup(dir.path(), ip, "command_timeout_secs = 1");
    let _server = start(dir.path(), &config);
    let tcp = TcpStream::connect((ip, 2525)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(tcp);
    assert!(line(&mut r).starts_with("220"));
    let t = Instant::now();
    let reply = line(&mut r);
    assert!(reply.starts_with("421 4.4.2"), "{reply:?}");
    assert!(t.elapsed() >= Duration::from_millis(900));
    assert_eq!(line(&mut r), "", "then the connection is closed");
}

/// The test process holds a thousand sockets too.
fn raise_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls on an owned struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
}

#[test]
fn a_thousand_idle_connections_do_not_block_the_next_client() {
    raise_file_limit();
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.71";
    let config = setup(dir.path(), ip, "max_connections_per_ip = 2000");
    let server = start(dir.path(), &config);
    let mut idle = Vec::new();
    for i in 0..1000 {
        let tcp = TcpStream::connect((ip, 2525))
            .unwrap_or_else(|e| panic!("connection {i}: {e}\n{}", server.stderr()));
        idle.push(tcp);
    }
    // Every idle connection got its greeting, so the server really holds them all.
    for (i, tcp) in idle.iter().enumerate() {
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = BufReader::new(tcp.try_clone().unwrap());
        assert!(line(&mut r).starts_with("220"), "greeting {i}");
    }
    let out = kurier_testworld::swaks(&[
        "--server",
        &format!("{ip}:2525"),
        "--from",
        "a@remote.test",
        "--to",
        "rcpt@kurier.test",
        "--tls",
    ])
    .unwrap();
    assert!(out.contains("250 2.0.0 Ok: queued as"), "{out}");
    drop(idle);
}

#[test]
fn the_per_ip_limit_answers_421() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.72";
    let config = setup(dir.path(), ip, "max_connections_per_ip = 2");
    let _server = start(dir.path(), &config);
    let a = TcpStream::connect((ip, 2525)).unwrap();
    let b = TcpStream::connect((ip, 2525)).unwrap();
    let mut first = BufReader::new(a.try_clone().unwrap());
    assert!(line(&mut first).starts_with("220"));
    let mut second = BufReader::new(b.try_clone().unwrap());
    assert!(line(&mut second).starts_with("220"));
    let c = TcpStream::connect((ip, 2525)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut third = BufReader::new(c);
    assert!(line(&mut third).starts_with("421 4.7.0"));
}

/// Sends message `i` on an open session; true when the server said 250 to its DATA.
fn send_one(r: &mut BufReader<TcpStream>, i: u64) -> bool {
    let body = format!(
        "Message-ID: <{i}@load.test>\r\nSubject: {i}\r\n\r\n{}\r\n",
        "x".repeat(2000)
    );
    let cmds = format!(
        "MAIL FROM:<load@remote.test>\r\nRCPT TO:<rcpt@kurier.test>\r\nDATA\r\n{body}.\r\n"
    );
    if r.get_mut().write_all(cmds.as_bytes()).is_err() {
        return false;
    }
    let replies: Vec<String> = (0..4).map(|_| line(r)).collect();
    replies[3].starts_with("250")
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_load_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.10.73";
    let config = setup(dir.path(), ip, "");
    let mut acked = Vec::new();
    let mut next = 0u64;
    for round in 0..3 {
        let server = start(dir.path(), &config);
        let stop_at = Instant::now() + Duration::from_millis(300 + round * 150);
        let killer = std::thread::spawn({
            let pid = server.child.id() as i32;
            move || {
                while Instant::now() < stop_at {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // SAFETY: kill(2) on the server we started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        let addr: SocketAddr = format!("{ip}:2525").parse().unwrap();
        'sessions: while let Ok(tcp) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut r = BufReader::new(tcp);
            if !line(&mut r).starts_with("220") {
                break;
            }
            let _ = r.get_mut().write_all(b"EHLO load.test\r\n");
            while line(&mut r).starts_with("250-") {}
            for _ in 0..20 {
                let i = next;
                next += 1;
                if send_one(&mut r, i) {
                    acked.push(i);
                } else {
                    break 'sessions;
                }
            }
        }
        killer.join().unwrap();
        drop(server);
    }
    assert!(
        acked.len() >= 10,
        "too few messages to prove anything: {}",
        acked.len()
    );
    let store = kurier_store::open(&format!(
        "sqlite:{}",
        dir.path().join("data/kurier.db").display()
    ))
    .await
    .unwrap();
    let Recipient::Local(a) = store.resolve("rcpt@kurier.test").await.unwrap() else {
        panic!()
    };
    let mb = store.mailbox(a[0].id, "INBOX").await.unwrap().unwrap();
    let mut found = std::collections::HashSet::new();
    for m in store.messages(mb.id).await.unwrap() {
        let b = store.message_body(mb.id, m.uid).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&b);
        let id = text
            .split("Message-ID: <")
            .nth(1)
            .and_then(|s| s.split('@').next())
            .unwrap();
        assert!(
            text.ends_with(&format!("{}\r\n", "x".repeat(2000))),
            "message {id} is whole"
        );
        found.insert(id.parse::<u64>().unwrap());
    }
    let lost: Vec<_> = acked.iter().filter(|i| !found.contains(i)).collect();
    assert!(
        lost.is_empty(),
        "250 was said for these, but they are gone: {lost:?}"
    );
}

/// Issue 19 item 5: `smtp.tls_session_tickets = false` sends no session ticket after STARTTLS
/// on the MX, while the other listeners keep theirs — checked with Python's ssl module (Debian's
/// OpenSSL, an independent client).
#[test]
fn tls8_no_session_tickets_on_port_25_when_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.53.1";
    let config = setup(dir.path(), ip, "tls_session_tickets = false\n");
    let _server = start(dir.path(), &config);
    let out = support::python_ok(
        r#"
import imaplib, smtplib, ssl, sys
ip = sys.argv[1]
ctx = ssl._create_unverified_context()
s = smtplib.SMTP(ip, 2525, timeout=10)
s.starttls(context=ctx)
s.ehlo()
smtp_ticket = s.sock.session is not None and s.sock.session.has_ticket
version = s.sock.version()
s.quit()
m = imaplib.IMAP4_SSL(ip, 1993, ssl_context=ctx)
m.noop()
imap_ticket = m.sock.session is not None and m.sock.session.has_ticket
m.logout()
print(f"smtp={smtp_ticket} imap={imap_ticket} version={version} OK-DONE")
"#,
        &[ip],
    );
    assert!(
        out.contains("smtp=False imap=True version=TLSv1.3"),
        "{out}"
    );
}
