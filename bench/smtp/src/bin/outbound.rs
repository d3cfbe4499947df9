//! Outbound delivery benchmark: N queued messages leave Kurier's queue and Postfix's queue for
//! the same receiver, in one run on this machine; prints messages per second and the ratio.
//!
//! Two receivers: Postfix's `smtp-sink` behind an unsigned MX (plain SMTP: the sink offers no
//! STARTTLS), and a Postfix receiver behind a DNSSEC-signed MX with a `3 1 1` TLSA record
//! (STARTTLS, DANE-verified by both senders). Each sender first gets all N messages into its
//! queue with delivery held (Kurier: `delivery.enabled = false`; Postfix: `defer_transports =
//! smtp`); the clock runs from releasing delivery until the sender's queue is empty.
//!
//! Usage: kurier-bench-outbound PATH/TO/kurier [MESSAGES] [SESSIONS]

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kurier_testworld::net::hosts;
use kurier_testworld::{PostfixSpec, World, Zone};

use kurier_bench_smtp::{Res, expect, message, transactions};

const SIZE: usize = 4096;

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let kurier = args
        .get(1)
        .ok_or("usage: kurier-bench-outbound PATH/TO/kurier [MESSAGES] [SESSIONS]")?
        .clone();
    let messages: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(2000);
    let sessions: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(10);

    let mut world = World::builder()
        .zone(
            Zone::signed("dane.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", "{postfix:0}")
                .record("_25._tcp.mx", "TLSA", "{tlsa-postfix:0}"),
        )
        .zone(
            Zone::unsigned("sink.test")
                .record("@", "MX", "10 mx")
                .record("mx", "A", &format!("{{ip:{}}}", hosts::FREE + 5)),
        )
        .postfix(PostfixSpec::receiver("mx.dane.test", &["dane.test"]))
        .postfix(PostfixSpec::dane_sender("sender.test"))
        .build()?;
    world.start_smtp_sink(hosts::FREE + 5)?;
    let ip = world.net.ip(hosts::FREE).to_string();
    let kurier = KurierSender::prepare(&kurier, &world, &ip)?;
    let postfix = PostfixSender::new(&world.postfix[1]);

    println!("{messages} queued messages of {SIZE} bytes, 2 cores, one run");
    println!(
        "{:<40} {:>12} {:>12} {:>8}",
        "", "Kurier", "Postfix", "ratio"
    );
    for (what, domain) in [
        ("plain SMTP to smtp-sink", "sink.test"),
        ("STARTTLS + DANE to a Postfix receiver", "dane.test"),
    ] {
        let k = kurier.run(domain, messages, sessions)?;
        let p = postfix.run(domain, messages, sessions)?;
        println!("{what:<40} {k:>10.0}/s {p:>10.0}/s {:>7.2}×", k / p);
    }
    Ok(())
}

/// Kurier with a config file: submission on 465 to fill the queue, the MX world for delivery.
struct KurierSender {
    bin: String,
    config: PathBuf,
    dir: PathBuf,
    ip: String,
}

impl KurierSender {
    fn prepare(bin: &str, world: &World, ip: &str) -> Res<Self> {
        let dir = world.path("kurier");
        std::fs::create_dir_all(&dir)?;
        let (cert, key) = world.ca.leaf(&["mx.kurier.test"])?.write(&dir, "mx")?;
        let config = dir.join("kurier.toml");
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(
            &config,
            format!(
                "[server]\nhostname = \"mx.kurier.test\"\ndata_dir = \"{data}\"\n\
                 [log]\nlevel = \"info\"\n\
                 [[tls.certificate]]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
                 [web]\nlisten = [\"{ip}:8443\"]\nlisten_http = [\"{ip}:8080\"]\n[smtp]\nlisten = [\"{ip}:2525\"]\n\
                 [submission]\nlisten_implicit = [\"{ip}:2465\"]\nlisten_starttls = [\"{ip}:2587\"]\n\
                 max_messages_per_hour = 1000000\n\
                 [imap]\nlisten_implicit = [\"{ip}:1993\"]\nlisten_starttls = [\"{ip}:1143\"]\n\
                 [pop3]\nlisten_implicit = [\"{ip}:1995\"]\nlisten_starttls = [\"{ip}:1110\"]\n\
                 [dns]\ndnssec = \"trust_ad\"\nupstream = [\"{resolver}\"]\n\
                 [delivery]\nenabled = false\n",
                data = dir.join("data").display(),
                cert = cert.display(),
                key = key.display(),
                resolver = world.dns().resolver,
            ),
        )?;
        let k = KurierSender {
            bin: std::fs::canonicalize(bin)?.display().to_string(),
            config,
            dir,
            ip: ip.to_string(),
        };
        k.admin(&["domain", "add", "kurier.test"], "")?;
        k.admin(&["user", "add", "bench@kurier.test"], "pw\n")?;
        Ok(k)
    }

    fn admin(&self, args: &[&str], stdin: &str) -> Res<()> {
        let mut c = Command::new(&self.bin)
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        c.stdin.take().ok_or("stdin")?.write_all(stdin.as_bytes())?;
        if !c.wait()?.success() {
            return Err(format!("kurier {args:?} failed").into());
        }
        Ok(())
    }

    fn set_delivery(&self, on: bool) -> Res<()> {
        let text = std::fs::read_to_string(&self.config)?;
        let (from, to) = if on {
            ("enabled = false", "enabled = true")
        } else {
            ("enabled = true", "enabled = false")
        };
        std::fs::write(&self.config, text.replace(from, to))?;
        Ok(())
    }

    /// Starts the server and waits for `needle` on its log (stderr).
    fn start(&self, needle: &str) -> Res<Child> {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["serve", "--config"])
            .arg(&self.config)
            .current_dir(&self.dir);
        kurier_bench_smtp::start_logged(cmd, needle)
    }

    fn queued(&self) -> Res<usize> {
        let out = Command::new(&self.bin)
            .args(["queue", "list", "--config"])
            .arg(&self.config)
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains('@'))
            .count())
    }

    fn run(&self, domain: &str, messages: usize, sessions: usize) -> Res<f64> {
        self.set_delivery(false)?;
        let mut server = self.start("Kurier started")?;
        let addr: SocketAddr = format!("{}:2465", self.ip).parse()?;
        parallel(messages, sessions, move |n| submit(addr, domain, n))?;
        stop(&mut server);
        self.set_delivery(true)?;
        let mut server = self.start("outbound delivery started")?;
        let t = Instant::now();
        while self.queued()? > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        let rate = messages as f64 / t.elapsed().as_secs_f64();
        stop(&mut server);
        Ok(rate)
    }
}

fn stop(child: &mut Child) {
    // SIGTERM, for a graceful stop.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
}

/// Runs `job(share)` on `sessions` threads that split `messages` between them.
fn parallel(messages: usize, sessions: usize, job: impl Fn(usize) -> Res<()> + Sync) -> Res<()> {
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..sessions)
            .map(|s| {
                let n = messages / sessions + usize::from(s < messages % sessions);
                let job = &job;
                scope.spawn(move || job(n).map_err(|e| e.to_string()))
            })
            .collect();
        for th in threads {
            th.join().map_err(|_| "a load thread panicked")??;
        }
        Ok(())
    })
}

/// One submission session (implicit TLS, AUTH PLAIN) queueing `n` messages for `domain`.
fn submit(addr: SocketAddr, domain: &str, n: usize) -> Res<()> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    tcp.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())?;
    b.set_verify(openssl::ssl::SslVerifyMode::NONE);
    let tls = b.build().connect("mx.kurier.test", tcp)?;
    let mut r = BufReader::new(tls);
    expect(&mut r, "220")?;
    r.get_mut().write_all(b"EHLO load.test\r\n")?;
    expect(&mut r, "250")?;
    // "\0bench@kurier.test\0pw"
    r.get_mut()
        .write_all(b"AUTH PLAIN AGJlbmNoQGt1cmllci50ZXN0AHB3\r\n")?;
    expect(&mut r, "235")?;
    let body = message(
        &format!("From: bench@kurier.test\r\nTo: user@{domain}\r\nSubject: load\r\n"),
        SIZE,
    );
    transactions(
        &mut r,
        "bench@kurier.test",
        &format!("user@{domain}"),
        &body,
        n,
    )
}

/// The world's DANE-sending Postfix, its queue filled through its smtpd with `smtp-source`.
struct PostfixSender {
    addr: SocketAddr,
    conf: PathBuf,
    queue: PathBuf,
}

impl PostfixSender {
    fn new(p: &kurier_testworld::postfix::Postfix) -> Self {
        PostfixSender {
            addr: p.addr,
            conf: p.conf_dir().join("conf"),
            queue: p.conf_dir().join("queue"),
        }
    }

    fn postfix(&self, args: &[&str]) -> Res<()> {
        let (cmd, rest) = args.split_first().ok_or("no command")?;
        let out = Command::new(cmd)
            .arg("-c")
            .arg(&self.conf)
            .args(rest)
            .output()?;
        if !out.status.success() {
            return Err(format!("{args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(())
    }

    fn queued(&self) -> usize {
        ["incoming", "active", "deferred", "maildrop"]
            .iter()
            .map(|q| count_files(&self.queue.join(q)))
            .sum()
    }

    fn run(&self, domain: &str, messages: usize, sessions: usize) -> Res<f64> {
        self.postfix(&["postconf", "-e", "defer_transports = smtp"])?;
        self.postfix(&["postfix", "reload"])?;
        std::thread::sleep(Duration::from_secs(1));
        let out = Command::new("smtp-source")
            .args(["-s", &sessions.to_string(), "-m", &messages.to_string()])
            .args(["-l", &SIZE.to_string(), "-f", "bench@sender.test"])
            .args(["-t", &format!("user@{domain}"), &self.addr.to_string()])
            .output()?;
        if !out.status.success() {
            return Err(format!("smtp-source: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        // All of them deferred, none in flight.
        let deadline = Instant::now() + Duration::from_secs(120);
        while count_files(&self.queue.join("deferred")) < messages {
            if Instant::now() > deadline {
                return Err("Postfix did not defer the load".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.postfix(&["postconf", "-e", "defer_transports ="])?;
        self.postfix(&["postfix", "reload"])?;
        let t = Instant::now();
        self.postfix(&["postqueue", "-f"])?;
        while self.queued() > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(messages as f64 / t.elapsed().as_secs_f64())
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}
