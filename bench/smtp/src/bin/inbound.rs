//! Inbound SMTP benchmark: the same load against Kurier (`serve --dev`, SQLite) and against a
//! Postfix smtpd delivering into a maildir, in one run on this machine; prints messages per
//! second and the ratio. Plain SMTP uses Postfix's own `smtp-source`; STARTTLS (which
//! smtp-source cannot speak) uses the small generator below, for both servers alike.
//!
//! Both are measured as the sender sees them: until the last 250 after DATA. Kurier's 250 means
//! "in the mailbox, fsynced"; Postfix's means "in its queue, fsynced" (delivery follows).
//!
//! Usage: kurier-bench-inbound PATH/TO/kurier [MESSAGES] [SESSIONS]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kurier_testworld::{PostfixSpec, World};

use kurier_bench_smtp::{Res, expect, message, transactions};

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let kurier = args
        .get(1)
        .ok_or("usage: kurier-bench-inbound PATH/TO/kurier [MESSAGES] [SESSIONS]")?;
    let messages: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(5000);
    let sessions: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let size = 4096;

    let world = World::builder()
        .postfix(PostfixSpec::receiver("mx.bench.test", &["example.test"]))
        .build()?;
    let postfix = world.postfix[0].addr;
    let ip = world.net.ip(kurier_testworld::net::hosts::FREE).to_string();
    let data = world.path("kurier-data");
    let mut server = KurierProcess::start(kurier, &data, &ip)?;
    let kurier_addr: SocketAddr = format!("{ip}:2525").parse()?;

    println!("{messages} messages of {size} bytes over {sessions} sessions, 2 cores, one run");
    println!(
        "{:<34} {:>12} {:>12} {:>8}",
        "", "Kurier", "Postfix", "ratio"
    );
    let k = smtp_source(kurier_addr, messages, sessions, size)?;
    let p = smtp_source(postfix, messages, sessions, size)?;
    row("plain SMTP (smtp-source)", k, p);
    let k = starttls_load(kurier_addr, "mail.example.test", messages, sessions, size)?;
    let p = starttls_load(postfix, "mx.bench.test", messages, sessions, size)?;
    row("STARTTLS, one TLS session each", k, p);
    server.stop();
    Ok(())
}

fn row(what: &str, kurier: f64, postfix: f64) {
    println!(
        "{what:<34} {kurier:>10.0}/s {postfix:>10.0}/s {:>7.2}×",
        kurier / postfix
    );
}

struct KurierProcess(Child);

impl KurierProcess {
    fn start(bin: &str, data: &std::path::Path, ip: &str) -> Res<Self> {
        let mut child = Command::new(bin)
            .args([
                "serve",
                "--dev",
                "--data",
                data.to_str().ok_or("path")?,
                "--listen-ip",
                ip,
            ])
            .env("KURIER_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = child.stdout.take().ok_or("no stdout")?;
        for line in BufReader::new(out).lines() {
            if line?.starts_with("ready.") {
                return Ok(KurierProcess(child));
            }
        }
        Err("kurier did not start".into())
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs Postfix's smtp-source; returns messages per second.
fn smtp_source(addr: SocketAddr, messages: usize, sessions: usize, size: usize) -> Res<f64> {
    let t = Instant::now();
    let out = Command::new("smtp-source")
        .args([
            "-s",
            &sessions.to_string(),
            "-m",
            &messages.to_string(),
            "-l",
            &size.to_string(),
        ])
        .args([
            "-f",
            "bench@remote.test",
            "-t",
            "demo@example.test",
            &addr.to_string(),
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "smtp-source failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(messages as f64 / t.elapsed().as_secs_f64())
}

/// `sessions` threads, each one STARTTLS session sending its share of messages.
fn starttls_load(
    addr: SocketAddr,
    name: &str,
    messages: usize,
    sessions: usize,
    size: usize,
) -> Res<f64> {
    let t = Instant::now();
    let threads: Vec<_> = (0..sessions)
        .map(|s| {
            let n = messages / sessions + usize::from(s < messages % sessions);
            let name = name.to_string();
            std::thread::spawn(move || one_session(addr, &name, n, size).map_err(|e| e.to_string()))
        })
        .collect();
    for th in threads {
        th.join().map_err(|_| "a load thread panicked")??;
    }
    Ok(messages as f64 / t.elapsed().as_secs_f64())
}

fn one_session(addr: SocketAddr, name: &str, n: usize, size: usize) -> Res<()> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut r = BufReader::new(tcp);
    expect(&mut r, "220")?;
    r.get_mut().write_all(b"EHLO load.test\r\n")?;
    expect(&mut r, "250")?;
    r.get_mut().write_all(b"STARTTLS\r\n")?;
    expect(&mut r, "220")?;
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())?;
    b.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let tls = b.build().connect(name, r.into_inner())?;
    let mut r = BufReader::new(tls);
    r.get_mut().write_all(b"EHLO load.test\r\n")?;
    expect(&mut r, "250")?;
    let body = message(
        "From: bench@remote.test\r\nTo: demo@example.test\r\nSubject: load\r\n",
        size,
    );
    transactions(&mut r, "bench@remote.test", "demo@example.test", &body, n)
}
