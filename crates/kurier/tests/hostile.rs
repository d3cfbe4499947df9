//! The hostile client (issue 16), against the real `kurier serve --dev` on loopback: deep
//! nesting before and after login, huge literals and lines per state, commands after 421,
//! 100 parallel wrong logins, and 100 stalled large transfers with the server's RSS measured.
//! Every loop is bounded in count and time; every test has its own address.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::Server;

const PASSWORD: &str = "hostile-s3cret";

fn connect(ip: &str, port: u16) -> TcpStream {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp
}

fn tls(ip: &str, port: u16) -> openssl::ssl::SslStream<TcpStream> {
    support::tls_unverified(connect(ip, port), "mail.example.test").unwrap()
}

/// Reads lines until one starts with `tag ` (or the connection ends); returns them all.
fn until_tagged<S: Read>(r: &mut BufReader<S>, tag: &str) -> String {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return all;
        }
        all.push_str(&line);
        if line.starts_with(&format!("{tag} ")) {
            return all;
        }
    }
}

fn line<S: Read>(r: &mut BufReader<S>) -> String {
    let mut l = String::new();
    let _ = r.read_line(&mut l);
    l
}

/// Implicit TLS from a chosen client address.
fn tls_from(from: &str, ip: &str, port: u16) -> openssl::ssl::SslStream<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tcp = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
        socket
            .connect(format!("{ip}:{port}").parse().unwrap())
            .await
            .unwrap()
    });
    let tcp = tcp.into_std().unwrap();
    tcp.set_nonblocking(false).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    support::tls_unverified(tcp, "mail.example.test").unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn nestings() -> Vec<String> {
    let n = 5000;
    vec![
        format!("{}ALL{}", "(".repeat(n), ")".repeat(n)),
        format!("{}ALL", "NOT ".repeat(n)),
        format!("{}ALL ALL", "OR ALL ".repeat(n)),
    ]
}

/// Item 1: `a SEARCH ((((…` before login aborted the whole process. Now: BAD before login
/// (the command is refused by name) and after it (the nesting limit), and the server lives.
#[test]
fn deep_nesting_gets_bad_before_and_after_login() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.50.1";
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    // Before login lines are at most 8 KiB: 8000 opening parentheses fit (the old parser
    // recursed once per parenthesis before looking at the state).
    let before_login = [
        "(".repeat(8000),
        "NOT ".repeat(1900) + "ALL",
        "OR ALL ".repeat(1100) + "ALL",
    ];
    for (i, key) in before_login.iter().enumerate() {
        let mut r = BufReader::new(connect(ip, 1143));
        assert!(line(&mut r).starts_with("* OK"));
        r.get_mut()
            .write_all(format!("a{i} SEARCH {key}\r\n").as_bytes())
            .unwrap();
        let answer = until_tagged(&mut r, &format!("a{i}"));
        assert!(answer.starts_with(&format!("a{i} BAD")), "{answer}");
    }
    let mut r = BufReader::new(tls(ip, 1993));
    assert!(line(&mut r).starts_with("* OK"));
    r.get_mut()
        .write_all(format!("l LOGIN demo@example.test {PASSWORD}\r\ns SELECT INBOX\r\n").as_bytes())
        .unwrap();
    assert!(until_tagged(&mut r, "l").contains("l OK"));
    assert!(until_tagged(&mut r, "s").contains("s OK"));
    for (i, key) in nestings().iter().enumerate() {
        r.get_mut()
            .write_all(format!("n{i} SEARCH {key}\r\n").as_bytes())
            .unwrap();
        let answer = until_tagged(&mut r, &format!("n{i}"));
        assert!(
            answer.contains(&format!("n{i} BAD")) && answer.contains("nested"),
            "{answer}"
        );
    }
    // A message of 3000 nested multiparts: BODYSTRUCTURE (our MIME parser, 16 levels, deeper
    // is opaque), SEARCH TEXT and ENVELOPE (mail-parser) answer and the server lives.
    let depth = 3000;
    let mut message = String::from("Subject: deep\r\n");
    for i in 0..depth {
        message.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    message.push_str("Content-Type: text/plain\r\n\r\nneedle\r\n");
    for i in (0..depth).rev() {
        message.push_str(&format!("--b{i}--\r\n"));
    }
    r.get_mut()
        .write_all(format!("m APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes())
        .unwrap();
    assert!(until_tagged(&mut r, "m").contains("m OK"));
    for (tag, cmd) in [
        ("f", "FETCH * (BODYSTRUCTURE ENVELOPE BODY.PEEK[1.1.1.1])"),
        ("t", "SEARCH TEXT needle"),
    ] {
        r.get_mut()
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .unwrap();
        let answer = until_tagged(&mut r, tag);
        assert!(answer.contains(&format!("{tag} OK")), "{cmd}: {answer}");
    }
    // Hostile LIST patterns cost no recursion either.
    let pattern = format!("{}x", "*a".repeat(3000));
    r.get_mut()
        .write_all(format!("p LIST \"\" \"{pattern}\"\r\n").as_bytes())
        .unwrap();
    assert!(until_tagged(&mut r, "p").contains("p OK"));
    r.get_mut().write_all(b"z NOOP\r\n").unwrap();
    assert!(until_tagged(&mut r, "z").contains("z OK"), "still serving");
}

/// Item 3: before login a literal is at most 8 KiB (enough for any credential); after it,
/// APPEND keeps the message size limit. Lines are short before login too.
#[test]
fn literals_and_lines_are_small_before_login() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.50.2";
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    let mut plain = BufReader::new(connect(ip, 1143));
    assert!(line(&mut plain).starts_with("* OK"));
    plain
        .get_mut()
        .write_all(b"a LOGIN {40000000}\r\n")
        .unwrap();
    let answer = line(&mut plain);
    assert!(answer.starts_with("a NO [TOOBIG]"), "{answer}");
    let mut implicit = BufReader::new(tls(ip, 1993));
    assert!(line(&mut implicit).starts_with("* OK"));
    implicit.get_mut().write_all(b"b LOGIN {9000}\r\n").unwrap();
    let answer = line(&mut implicit);
    assert!(answer.starts_with("b NO [TOOBIG]"), "{answer}");
    implicit.get_mut().write_all(b"c LOGIN {8}\r\n").unwrap();
    assert!(
        line(&mut implicit).starts_with('+'),
        "a credential-sized literal is fine"
    );
    implicit
        .get_mut()
        .write_all(format!("demo@exa {PASSWORD}\r\n").as_bytes())
        .unwrap();
    assert!(until_tagged(&mut implicit, "c").starts_with("c NO"));
    // A long line before login: BYE, not buffered.
    let mut long = BufReader::new(connect(ip, 1143));
    assert!(line(&mut long).starts_with("* OK"));
    let _ = long.get_mut().write_all(&vec![b'x'; 9 * 1024]);
    let answer = line(&mut long);
    assert!(answer.starts_with("* BYE"), "{answer}");
    // After login APPEND may announce a message-sized literal.
    implicit
        .get_mut()
        .write_all(format!("d LOGIN demo@example.test {PASSWORD}\r\n").as_bytes())
        .unwrap();
    assert!(until_tagged(&mut implicit, "d").contains("d OK"));
    implicit
        .get_mut()
        .write_all(b"e APPEND INBOX {40000}\r\n")
        .unwrap();
    assert!(line(&mut implicit).starts_with('+'));
}

/// Item 2: after 421 the connection is closed — whatever the client keeps sending is not read.
#[test]
fn after_421_the_connection_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.50.3";
    let server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    let pid = server.child.id();
    // Too many errors, and too many refused recipients.
    for script in [
        "BOGUS\r\n".repeat(10),
        format!(
            "EHLO c.test\r\nMAIL FROM:<a@b.test>\r\n{}",
            (0..12)
                .map(|i| format!("RCPT TO:<nobody{i}@example.test>\r\n"))
                .collect::<String>()
        ),
    ] {
        let mut r = BufReader::new(connect(ip, 2525));
        assert!(line(&mut r).starts_with("220"));
        r.get_mut().write_all(script.as_bytes()).unwrap();
        let mut seen = String::new();
        loop {
            let l = line(&mut r);
            if l.is_empty() {
                break;
            }
            seen.push_str(&l);
        }
        assert!(seen.contains("421 4.7.0"), "{seen}");
        // The server closed: more input goes nowhere (a write may still be buffered by the
        // kernel once, then the peer resets).
        let before = rss_kib(pid);
        let chunk = vec![b'A'; 1 << 20];
        let mut written = 0usize;
        for _ in 0..64 {
            match r.get_mut().write(&chunk) {
                Ok(n) => written += n,
                Err(_) => break,
            }
        }
        assert!(
            written < 16 << 20,
            "the closed connection took {written} bytes"
        );
        assert!(rss_kib(pid) < before + 16 * 1024, "nothing was buffered");
    }
}

/// Item 6: 100 parallel wrong logins from one address — at most `auth_block_after` (10) are
/// checked; the rest are refused before the password check.
#[test]
fn one_hundred_parallel_wrong_logins_check_at_most_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.50.4";
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let ip = ip.to_string();
            std::thread::spawn(move || {
                let Ok(tcp) = TcpStream::connect(format!("{ip}:1993")) else {
                    return String::from("refused");
                };
                tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                let Ok(s) = support::tls_unverified(tcp, "mail.example.test") else {
                    return String::from("refused");
                };
                let mut r = BufReader::new(s);
                if !line(&mut r).starts_with("* OK") {
                    return String::from("refused");
                }
                r.get_mut()
                    .write_all(format!("a LOGIN user{}@example.test wrong\r\n", i % 5).as_bytes())
                    .unwrap();
                until_tagged(&mut r, "a")
            })
        })
        .collect();
    let answers: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let checked = answers
        .iter()
        .filter(|a| a.contains("[AUTHENTICATIONFAILED]"))
        .count();
    let blocked = answers
        .iter()
        .filter(|a| a.contains("[UNAVAILABLE]"))
        .count();
    assert!(
        checked <= 10,
        "{checked} wrong passwords were checked: {answers:?}"
    );
    assert!(
        checked >= 1 && blocked >= 50,
        "checked {checked}, blocked {blocked}"
    );
}

/// Item 4: 100 clients each start a 40 MB message and stall after 2 MiB. Bodies past 256 KiB
/// go to the spool, so the server's RSS grows by far less than the 200 MiB they sent.
#[test]
fn stalled_large_transfers_keep_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.50.5";
    let server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    let pid = server.child.id();
    let before = rss_kib(pid);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let streams = rt.block_on(async {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut open = Vec::new();
        for i in 0..100u32 {
            // The MX admits 50 connections per address: two client addresses.
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            let from: SocketAddr = format!("127.0.51.{}:0", 1 + i % 2).parse().unwrap();
            socket.bind(from).unwrap();
            let tcp = socket
                .connect(format!("{ip}:2525").parse().unwrap())
                .await
                .unwrap();
            let mut r = tokio::io::BufReader::new(tcp);
            let mut l = String::new();
            r.read_line(&mut l).await.unwrap();
            assert!(l.starts_with("220"), "{l}");
            r.get_mut()
                .write_all(
                    format!(
                        "EHLO c{i}.test\r\nMAIL FROM:<s{i}@remote.test> SIZE=40000000\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n"
                    )
                    .as_bytes(),
                )
                .await
                .unwrap();
            loop {
                l.clear();
                r.read_line(&mut l).await.unwrap();
                if l.starts_with("354") {
                    break;
                }
                assert!(!l.is_empty() && !l.starts_with('4') && !l.starts_with('5'), "{l}");
            }
            let line = format!("{}\r\n", "x".repeat(998));
            let block = line.repeat((2 << 20) / 1000);
            r.get_mut().write_all(block.as_bytes()).await.unwrap();
            open.push(r);
        }
        open
    });
    assert!(started.elapsed() < Duration::from_secs(240));
    // The server has read past 256 KiB of every body when each has its (unlinked) spool file.
    let spooled = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|t| t.to_string_lossy().contains("/spool/body-"))
            .count()
    };
    support::wait_until(Duration::from_secs(60), "100 bodies in the spool", || {
        spooled() == 100
    });
    let during = rss_kib(pid);
    let grown_mib = during.saturating_sub(before) / 1024;
    eprintln!("RSS before {before} KiB, with 100 stalled transfers {during} KiB");
    assert!(
        grown_mib < 100,
        "RSS grew by {grown_mib} MiB for 100 stalled transfers of 2 MiB each"
    );
    let spool = Path::new(dir.path()).join("data/spool");
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool files are unlinked: nothing to clean up after a crash"
    );
    drop(streams);
    support::wait_until(Duration::from_secs(30), "spool files closed", || {
        spooled() == 0
    });
}

/// One SMTP delivery to the demo account over plain port 2525; returns how long it took.
fn timed_delivery(ip: &str, i: usize) -> Duration {
    let start = Instant::now();
    let mut r = BufReader::new(connect(ip, 2525));
    assert!(line(&mut r).starts_with("220"));
    r.get_mut()
        .write_all(
            format!(
                "EHLO t.test\r\nMAIL FROM:<t@remote.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\nSubject: timed {i}\r\n\r\nhi\r\n.\r\nQUIT\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let mut codes = Vec::new();
    loop {
        let l = line(&mut r);
        if l.is_empty() {
            break;
        }
        if l.as_bytes().get(3) == Some(&b' ') {
            codes.push(l[..3].to_string());
        }
    }
    assert_eq!(
        codes,
        ["250", "250", "250", "354", "250", "221"],
        "delivery {i}"
    );
    start.elapsed()
}

fn slowest(ip: &str, n: usize) -> Duration {
    (0..n).map(|i| timed_delivery(ip, i)).max().unwrap()
}

/// Item 5: a storm of correct logins (each an Argon2id verification) does not stall mail:
/// the slowest delivery during two seconds of the storm stays within a small multiple
/// of the slowest of 20 in quiet (before, Argon2 ran under SQLite's lock and one delivery waited
/// 6.8 s behind 300 logins). Bounded: 80 clients from 8 addresses, at most five logins each.
#[test]
fn a_login_storm_does_not_stall_deliveries() {
    const ROUNDS: u32 = 5;
    let dir = tempfile::tempdir().unwrap();
    let ip = "127.0.50.7";
    let _server = Server::dev_with_password(dir.path(), ip, Some(PASSWORD));
    let quiet = slowest(ip, 20);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let logins = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    // From eight client addresses, so that the throttle's per-address limit on attempts under
    // way does not serialise the storm (that would hide a store that checks under its lock).
    let storm: Vec<_> = (0..80)
        .map(|i| {
            let (ip, stop, logins) = (ip.to_string(), stop.clone(), logins.clone());
            let from = format!("127.0.52.{}", 1 + i % 8);
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    if round > 0 && stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let mut r = BufReader::new(tls_from(&from, &ip, 1993));
                    assert!(line(&mut r).starts_with("* OK"));
                    r.get_mut()
                        .write_all(
                            format!("a LOGIN demo@example.test {PASSWORD}\r\nb LOGOUT\r\n")
                                .as_bytes(),
                        )
                        .unwrap();
                    if until_tagged(&mut r, "a").contains("a OK") {
                        logins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    // Deliveries while the logins are under way: from the fifth login on, for two seconds.
    let done = || logins.load(std::sync::atomic::Ordering::Relaxed);
    support::wait_until(Duration::from_secs(60), "the storm under way", || {
        done() >= 5
    });
    let (window, logins_before) = (Instant::now(), done());
    let mut during = Duration::ZERO;
    let mut n = 0;
    while window.elapsed() < Duration::from_secs(2) && n < 500 {
        during = during.max(timed_delivery(ip, n));
        n += 1;
    }
    let logins_during = done() - logins_before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in storm {
        t.join().unwrap();
    }
    let total = logins.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "slowest delivery: quiet {quiet:?}, during the storm {during:?} ({n} deliveries, {logins_during} of {total} logins in that window)"
    );
    assert!(
        logins_during >= 20,
        "the deliveries were measured while logins ran: {logins_during} in the window"
    );
    // Measured on 2 cores: about 50 ms during the storm with Argon2 off the store's lock,
    // about 1.3 s with it under the lock.
    let bound = (quiet * 10).max(Duration::from_millis(500));
    assert!(
        during <= bound,
        "a delivery took {during:?} during the storm (quiet: {quiet:?}, bound {bound:?})"
    );
}
