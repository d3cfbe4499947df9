//! What the SMTP benchmarks share: reading replies, building the test message, the pipelined
//! load, and a configured Kurier to load.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Reads one reply (all its lines) and checks its code.
pub fn expect<R: Read>(r: &mut BufReader<R>, code: &str) -> Res<()> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err("connection closed".into());
        }
        if !line.starts_with(code) {
            return Err(format!("expected {code}, got {line:?}").into());
        }
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(());
        }
    }
}

/// A message of at least `size` bytes with these headers, ending in `.CRLF` for DATA.
pub fn message(headers: &str, size: usize) -> Vec<u8> {
    let mut body = format!("{headers}\r\n").into_bytes();
    while body.len() < size {
        body.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
        );
    }
    body.extend_from_slice(b".\r\n");
    body
}

/// `n` transactions from `from` to `to`, each pipelined like a real MTA (envelope and DATA in
/// one write, then the message), then QUIT.
pub fn transactions<S: Read + Write>(
    r: &mut BufReader<S>,
    from: &str,
    to: &str,
    message: &[u8],
    n: usize,
) -> Res<()> {
    let envelope = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n");
    for _ in 0..n {
        r.get_mut().write_all(envelope.as_bytes())?;
        expect(r, "250")?;
        expect(r, "250")?;
        expect(r, "354")?;
        r.get_mut().write_all(message)?;
        expect(r, "250")?;
    }
    r.get_mut().write_all(b"QUIT\r\n")?;
    Ok(())
}

/// Starts `cmd` (a `kurier serve`) and waits for `needle` on its log (stderr), which is then
/// drained so that the server never blocks on a full pipe.
pub fn start_logged(mut cmd: Command, needle: &str) -> Res<Child> {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let err = child.stderr.take().ok_or("no stderr")?;
    let mut lines = BufReader::new(err).lines();
    for line in lines.by_ref() {
        if line?.contains(needle) {
            std::thread::spawn(move || for _ in lines {});
            return Ok(child);
        }
    }
    Err(format!("kurier did not log {needle:?}").into())
}

/// `messages` transactions of `message` from `from` to `demo@example.test` over `sessions`
/// parallel sessions (EHLO `helo`); messages per second, as the sender sees them.
pub fn load(
    addr: SocketAddr,
    helo: &str,
    from: &str,
    message: &[u8],
    messages: usize,
    sessions: usize,
) -> Res<f64> {
    let t = Instant::now();
    let threads: Vec<_> = (0..sessions)
        .map(|s| {
            let n = messages / sessions + usize::from(s < messages % sessions);
            let (message, helo, from) = (message.to_vec(), helo.to_string(), from.to_string());
            std::thread::spawn(move || -> Result<(), String> {
                let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
                    .map_err(|e| e.to_string())?;
                tcp.set_read_timeout(Some(Duration::from_secs(60)))
                    .map_err(|e| e.to_string())?;
                let mut r = BufReader::new(tcp);
                expect(&mut r, "220").map_err(|e| e.to_string())?;
                r.get_mut()
                    .write_all(format!("EHLO {helo}\r\n").as_bytes())
                    .map_err(|e| e.to_string())?;
                expect(&mut r, "250").map_err(|e| e.to_string())?;
                transactions(&mut r, &from, "demo@example.test", &message, n)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    for th in threads {
        th.join().map_err(|_| "a load thread panicked")??;
    }
    Ok(messages as f64 / t.elapsed().as_secs_f64())
}

/// The rate of each server in `addrs` under the same load, one after the other, each after a
/// short warm-up (caches, compiled rules).
pub fn on_and_off(
    addrs: &[SocketAddr],
    helo: &str,
    from: &str,
    message: &[u8],
    messages: usize,
    sessions: usize,
) -> Res<Vec<f64>> {
    let mut rates = Vec::new();
    for addr in addrs {
        load(
            *addr,
            helo,
            from,
            message,
            50.min(messages),
            sessions.min(5),
        )?;
        rates.push(load(*addr, helo, from, message, messages, sessions)?);
    }
    Ok(rates)
}

/// A configured Kurier (SMTP on `ip`:2525 only, account demo@example.test) with `extra`
/// configuration tables.
pub struct KurierProcess(Child);

impl KurierProcess {
    pub fn start(
        bin: &str,
        world: &kurier_testworld::World,
        dir: &Path,
        ip: &str,
        extra: &str,
    ) -> Res<Self> {
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
                 [pop3]\nlisten_implicit = []\nlisten_starttls = []\n{extra}",
                data = dir.join("data").display(),
                cert = cert.display(),
                key = key.display(),
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

    pub fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
