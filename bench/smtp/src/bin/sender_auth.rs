//! Inbound sender authentication benchmark (issue 22): the same load against two Kurier
//! servers in one run, one with `[sender_auth]` (SPF, DKIM, DMARC through the validating
//! resolver of a signed test world) and one without; prints messages per second and the ratio.
//!
//! Each message is DKIM-signed (RSA-3072) by a domain whose SPF names the sender and whose
//! DMARC policy is `p=reject`: every message costs an SPF check for MAIL FROM and HELO, a key
//! lookup and an RSA verification, a DMARC tree walk, and an Authentication-Results field.
//! The resolver's cache is warm after the first messages, as on a busy MX.
//!
//! Usage: kurier-bench-sender-auth PATH/TO/kurier [MESSAGES] [SESSIONS]

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kurier_testworld::{World, Zone};

use kurier_bench_smtp::{Res, expect, start_logged, transactions};

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let kurier = args
        .get(1)
        .ok_or("usage: kurier-bench-sender-auth PATH/TO/kurier [MESSAGES] [SESSIONS]")?;
    let messages: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3000);
    let sessions: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(20);

    let (key, _) =
        kurier_dkim::DkimKey::generate("sender.test", "b1", kurier_dkim::Algorithm::Rsa)?;
    let (_, record) = key.dns_record()?;
    let txt = |v: &str| {
        v.as_bytes()
            .chunks(200)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let world = World::builder()
        .zone(
            Zone::signed("sender.test")
                .record("@", "TXT", &txt("v=spf1 ip4:127.0.0.1 -all"))
                .record("_dmarc", "TXT", &txt("v=DMARC1; p=reject"))
                .record("b1._domainkey", "TXT", &txt(&record)),
        )
        .build()?;
    let mut servers = Vec::new();
    for (n, on) in [(100u8, true), (101u8, false)] {
        let ip = world.net.ip(n).to_string();
        let dir = world.path(&format!("kurier-{n}"));
        servers.push((KurierProcess::start(kurier, &world, &dir, &ip, on)?, ip));
    }
    let headers = "From: bench@sender.test\r\nTo: demo@example.test\r\nSubject: load\r\n\
                   Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@sender.test>\r\n";
    let mut body = format!("{headers}\r\n").into_bytes();
    while body.len() < 4096 {
        body.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
        );
    }
    let signature = key.sign(&body, 1_800_000_000)?;
    let mut message = signature.into_bytes();
    message.extend_from_slice(&body);
    message.extend_from_slice(b".\r\n");

    println!("{messages} DKIM-signed messages of 4 KiB over {sessions} sessions, one run");
    let mut rates = Vec::new();
    for (_, ip) in &servers {
        let addr: SocketAddr = format!("{ip}:2525").parse()?;
        load(addr, &message, 50.min(messages), sessions.min(5))?; // warm the caches
        rates.push(load(addr, &message, messages, sessions)?);
    }
    println!(
        "verification on {:.0} msg/s, off {:.0} msg/s: on/off = {:.2}",
        rates[0],
        rates[1],
        rates[0] / rates[1]
    );
    for (mut s, _) in servers {
        s.stop();
    }
    Ok(())
}

fn load(addr: SocketAddr, message: &[u8], messages: usize, sessions: usize) -> Res<f64> {
    let t = Instant::now();
    let threads: Vec<_> = (0..sessions)
        .map(|s| {
            let n = messages / sessions + usize::from(s < messages % sessions);
            let message = message.to_vec();
            std::thread::spawn(move || -> Result<(), String> {
                let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                tcp.set_read_timeout(Some(Duration::from_secs(60)))
                    .map_err(|e| e.to_string())?;
                let mut r = BufReader::new(tcp);
                expect(&mut r, "220").map_err(|e| e.to_string())?;
                r.get_mut()
                    .write_all(b"EHLO bench.sender.test\r\n")
                    .map_err(|e| e.to_string())?;
                expect(&mut r, "250").map_err(|e| e.to_string())?;
                transactions(
                    &mut r,
                    "bench@sender.test",
                    "demo@example.test",
                    &message,
                    n,
                )
                .map_err(|e| e.to_string())
            })
        })
        .collect();
    for th in threads {
        th.join().map_err(|_| "a load thread panicked")??;
    }
    Ok(messages as f64 / t.elapsed().as_secs_f64())
}

struct KurierProcess(Child);

impl KurierProcess {
    /// A configured Kurier on `ip` (SMTP on 2525) resolving through the world, with or
    /// without sender authentication.
    fn start(bin: &str, world: &World, dir: &Path, ip: &str, sender_auth: bool) -> Res<Self> {
        let dns = world.dns();
        let (cert, key) = world.ca.leaf(&["mx.kurier.test"])?.write(dir, "mx")?;
        std::fs::create_dir_all(dir.join("data"))?;
        let config = dir.join("kurier.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nhostname = \"mx.kurier.test\"\ndata_dir = \"{data}\"\n\
                 [[tls.certificate]]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
                 [web]\nlisten = [\"{ip}:8443\"]\nlisten_http = []\n\
                 [smtp]\nlisten = [\"{ip}:2525\"]\n\
                 [submission]\nlisten_implicit = []\nlisten_starttls = []\n\
                 [imap]\nlisten_implicit = []\nlisten_starttls = []\n\
                 [pop3]\nlisten_implicit = []\nlisten_starttls = []\n\
                 [dns]\nupstream = [\"{resolver}\"]\ntrust_anchor = \"{anchor}\"\n\
                 [delivery]\nenabled = true\n[tlsrpt]\nenabled = false\n\
                 [sender_auth]\nenabled = {sender_auth}\n",
                data = dir.join("data").display(),
                cert = cert.display(),
                key = key.display(),
                resolver = dns.resolver,
                anchor = dns.trust_anchor_dnskey.display(),
            ),
        )?;
        let c = config.to_str().ok_or("path")?;
        let admin = |args: &[&str], input: &str| -> Res<()> {
            let mut child = Command::new(bin)
                .args(args)
                .args(["--config", c])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()?;
            child
                .stdin
                .take()
                .ok_or("stdin")?
                .write_all(input.as_bytes())?;
            if !child.wait()?.success() {
                return Err(format!("kurier {args:?} failed").into());
            }
            Ok(())
        };
        admin(&["domain", "add", "example.test"], "")?;
        admin(&["user", "add", "demo@example.test"], "pw\n")?;
        let mut cmd = Command::new(bin);
        cmd.args(["serve", "--config", c]);
        Ok(KurierProcess(start_logged(cmd, "Kurier started")?))
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
