//! Runs the real `kurier` binary for the end-to-end tests.
//!
//! Every test uses its own loopback address (127.0.10.N) so that tests run in parallel on the
//! fixed dev ports.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const HTTPS_PORT: u16 = 8443;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kurier")
}

/// Output and exit code of a short `kurier` command.
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `kurier serve`, killed on drop.
pub struct Server {
    pub child: Child,
    pub stdout: mpsc::Receiver<String>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    pub fn start(args: &[&str], cwd: &Path) -> Server {
        let mut cmd = Command::new(bin());
        cmd.args(args);
        Server::from_command(cmd, cwd)
    }

    /// Starts a prepared `kurier` command (e.g. with extra environment).
    pub fn from_command(mut cmd: Command, cwd: &Path) -> Server {
        let mut child = cmd
            .current_dir(cwd)
            .env("KURIER_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Server {
            child,
            stdout: rx,
            stderr,
        }
    }

    /// `kurier serve --dev` with its data in `dir/data`, listening on `ip`.
    pub fn dev(dir: &Path, ip: &str) -> Server {
        Server::dev_with_password(dir, ip, None)
    }

    /// `serve --dev` whose demo account has `password` (KURIER_DEV_PASSWORD), if given.
    pub fn dev_with_password(dir: &Path, ip: &str, password: Option<&str>) -> Server {
        let data = dir.join("data");
        let mut cmd = Command::new(bin());
        cmd.args([
            "serve",
            "--dev",
            "--data",
            data.to_str().unwrap(),
            "--listen-ip",
            ip,
        ]);
        if let Some(p) = password {
            cmd.env("KURIER_DEV_PASSWORD", p);
        }
        let s = Server::from_command(cmd, dir);
        s.wait_for_stdout("ready.");
        s
    }

    /// Waits until stdout printed a line containing `needle`; returns everything printed so far.
    pub fn wait_for_stdout(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = String::new();
        while Instant::now() < deadline {
            match self.stdout.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.contains(needle) {
                        return seen;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "kurier never printed {needle:?}; stdout:\n{seen}\nstderr:\n{}",
            self.stderr()
        );
    }

    /// Waits until stderr (the log) contains `needle`.
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.stderr().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("log never contained {needle:?}:\n{}", self.stderr());
    }

    /// Waits until the log has a line containing `needle`; returns the first such line.
    pub fn log_line(&self, needle: &str) -> String {
        self.wait_for_log(needle);
        let log = self.stderr();
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default()
            .to_string()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // A failed test shows what the server said last.
            let log = self.stderr();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(60)..].join("\n");
            eprintln!("--- the last lines kurier logged ---\n{tail}");
        }
    }
}

pub fn addr(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse::<IpAddr>().unwrap(), HTTPS_PORT)
}

/// A verified TLS connection to `addr` for host name `name`, trusting only `ca`.
pub fn tls_connect(
    addr: SocketAddr,
    name: &str,
    ca: &Path,
) -> openssl::ssl::SslStream<std::net::TcpStream> {
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
    b.set_ca_file(ca).unwrap();
    let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    b.build().connect(name, tcp).unwrap()
}

/// GET `path` over verified TLS; returns the whole response.
pub fn https_get(addr: SocketAddr, ca: &Path, path: &str) -> String {
    let mut s = tls_connect(addr, "localhost", ca);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

pub fn data_file(dir: &Path, name: &str) -> PathBuf {
    dir.join("data").join(name)
}

/// A configuration file for a server on `ip` (HTTPS 8443, SMTP 2525, submission 2465/2587,
/// IMAP 1993/1143, POP3 1995/1110)
/// with a certificate from a test CA for `mx.kurier.test`, the domain `kurier.test` and the
/// account `rcpt@kurier.test` (password `pw`). `smtp` and `submission` are extra keys for
/// those tables.
/// `submission` may carry further tables; without a `[delivery]` table, outbound delivery is
/// off (its DNS probe must not leave loopback).
pub fn configured(dir: &Path, ip: &str, smtp: &str, submission: &str) -> PathBuf {
    let no_outbound;
    let submission = if submission.contains("[delivery]") {
        submission
    } else {
        no_outbound = format!("{submission}\n[delivery]\nenabled = false\n");
        &no_outbound
    };
    let ca = kurier_testworld::ca::Ca::new("T", kurier_testworld::ca::KeyKind::P256).unwrap();
    let (cert, key) = ca
        .leaf(&["mx.kurier.test"])
        .unwrap()
        .write(dir, "mx")
        .unwrap();
    let f = dir.join("kurier.toml");
    // What `kurier init` does on a first start: serve refuses a missing data folder.
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(
        &f,
        format!(
            "[server]\nhostname = \"mx.kurier.test\"\ndata_dir = \"{data}\"\nshutdown_grace_secs = 2\n\
             [[tls.certificate]]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
             [web]\nlisten = [\"{ip}:8443\"]\nlisten_http = [\"{ip}:8080\"]\n[smtp]\n{smtp_listen}{smtp}\n\
             [submission]\nlisten_implicit = [\"{ip}:2465\"]\nlisten_starttls = [\"{ip}:2587\"]\n{submission}\n{access}",
            data = dir.join("data").display(),
            cert = cert.display(),
            key = key.display(),
            // IMAP and POP3 on the test address (dev ports) unless the test names its own.
            access = if submission.contains("[imap]") {
                String::new()
            } else {
                format!(
                    "[imap]\nlisten_implicit = [\"{ip}:1993\"]\nlisten_starttls = [\"{ip}:1143\"]\n\
                     [pop3]\nlisten_implicit = [\"{ip}:1995\"]\nlisten_starttls = [\"{ip}:1110\"]\n"
                )
            },
            // `smtp` may name its own listeners.
            smtp_listen = if smtp.contains("listen") {
                String::new()
            } else {
                format!("listen = [\"{ip}:2525\"]\n")
            },
        ),
    )
    .unwrap();
    admin(&f, &["domain", "add", "kurier.test"], "");
    admin(&f, &["user", "add", "rcpt@kurier.test"], "pw\n");
    f
}

/// `kurier dkim generate kurier.test --algorithm ALG --selector S` for the server of `config`.
#[allow(dead_code)] // not every test binary makes keys
pub fn dkim_generate(config: &Path, algorithm: &str, selector: &str) {
    admin(
        config,
        &[
            "dkim",
            "generate",
            "kurier.test",
            "--algorithm",
            algorithm,
            "--selector",
            selector,
        ],
        "",
    );
}

/// Mail from a DANE-validating Postfix (RFC 7672) to rcpt@kurier.test of the server in `dir`:
/// each `deliver` must arrive, over one more verified TLS connection.
pub struct DaneDeliveries<'a> {
    postfix: &'a kurier_testworld::Postfix,
    dir: &'a Path,
    sent: usize,
}

impl<'a> DaneDeliveries<'a> {
    pub fn new(postfix: &'a kurier_testworld::Postfix, dir: &'a Path) -> Self {
        DaneDeliveries {
            postfix,
            dir,
            sent: 0,
        }
    }

    /// Sends a message with subject `step` and waits for it in the inbox.
    pub fn deliver(&mut self, step: &str) {
        self.sent += 1;
        self.postfix
            .submit(
                "someone@postfix.test",
                "rcpt@kurier.test",
                &format!("Subject: {step}\r\n\r\nhi\r\n"),
            )
            .unwrap();
        wait_until(Duration::from_secs(30), step, || {
            inbox(self.dir, "rcpt@kurier.test")
                .iter()
                .any(|m| m.contains(&format!("Subject: {step}")))
        });
        let log = self.postfix.maillog();
        assert_eq!(
            log.matches("Verified TLS connection established").count(),
            self.sent,
            "{step}: {log}"
        );
    }
}

/// `kurier dns DOMAIN --format json` for `config`, parsed; it must succeed.
pub fn dns_json(config: &Path, domain: &str) -> serde_json::Value {
    let (code, out, err) = run(&[
        "dns",
        domain,
        "--format",
        "json",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// Runs `kurier ARGS --config CONFIG` with `stdin`; it must succeed.
pub fn admin(config: &Path, args: &[&str], stdin: &str) {
    let mut c = Command::new(bin())
        .args(args)
        .args(["--config", config.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Server {
    /// `kurier serve --config FILE`, waited for until it has started.
    pub fn configured(dir: &Path, config: &Path) -> Server {
        let s = Server::start(
            &["serve", "--create", "--config", config.to_str().unwrap()],
            dir,
        );
        s.wait_for_log("Kurier started");
        s
    }
}

/// A line-oriented SMTP client for the negative tests.
pub struct Client<S = TcpStream> {
    pub r: BufReader<S>,
}

fn connect_tcp(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp
}

impl Client {
    /// Plain TCP; waits for the 220 greeting.
    pub fn connect(addr: SocketAddr) -> Client {
        Client::greeted(connect_tcp(addr))
    }
}

/// A TLS handshake on `tcp` for `name` without certificate checks (the negative tests look at
/// protocol behaviour, not at the chain).
pub fn tls_unverified(
    tcp: TcpStream,
    name: &str,
) -> Result<openssl::ssl::SslStream<TcpStream>, openssl::ssl::HandshakeError<TcpStream>> {
    let mut b = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client()).unwrap();
    b.set_verify(openssl::ssl::SslVerifyMode::NONE);
    b.build().connect(name, tcp)
}

impl Client<openssl::ssl::SslStream<TcpStream>> {
    /// Implicit TLS (port 465) without certificate checks; waits for the 220 greeting.
    pub fn connect_tls(addr: SocketAddr, name: &str) -> Self {
        Client::greeted(tls_unverified(connect_tcp(addr), name).unwrap())
    }
}

impl<S: Read + Write> Client<S> {
    fn greeted(stream: S) -> Self {
        let mut c = Client {
            r: BufReader::new(stream),
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220"), "{greeting:?}");
        c
    }

    /// One complete reply (all continuation lines).
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).unwrap();
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }
}

/// `user\0pass` in base64, as AUTH PLAIN sends it.
pub fn plain(user: &str, pass: &str) -> String {
    let raw = format!("\0{user}\0{pass}");
    let mut out = String::new();
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in raw.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The messages in `address`'s INBOX, read from the SQLite store while the server runs.
pub fn inbox(dir: &Path, address: &str) -> Vec<String> {
    folder(dir, address, "INBOX")
}

/// The messages in one mailbox of `address`'s account (none if it has no such mailbox).
#[allow(dead_code)] // not every test binary reads other folders
pub fn folder(dir: &Path, address: &str, name: &str) -> Vec<String> {
    let (rt, store) = store_at(dir);
    rt.block_on(async {
        let kurier_store::Recipient::Local(accounts) = store.resolve(address).await.unwrap() else {
            panic!("no account")
        };
        let Some(mb) = store.mailbox(accounts[0].id, name).await.unwrap() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for m in store.messages(mb.id).await.unwrap() {
            let body = store.message_body(mb.id, m.uid).await.unwrap().unwrap();
            out.push(String::from_utf8_lossy(&body).into_owned());
        }
        out
    })
}

pub fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The SQLite store of a test server's data folder, opened beside the running server.
pub fn store_at(
    dir: &Path,
) -> (
    tokio::runtime::Runtime,
    std::sync::Arc<dyn kurier_store::Store>,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("sqlite:{}", dir.join("data/kurier.db").display());
    let store = rt.block_on(kurier_store::open(&url)).unwrap();
    (rt, store)
}

/// Every TLSRPT event the server in `dir` recorded.
pub fn tls_events(dir: &Path) -> Vec<kurier_store::TlsOutcome> {
    let (rt, store) = store_at(dir);
    rt.block_on(store.tls_events(0, i64::MAX)).unwrap()
}

/// Runs `python3 -c SCRIPT ARGS…`, which must succeed and print `OK-DONE`; returns its output.
#[allow(dead_code)] // not every test binary runs Python
pub fn python_ok(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("OK-DONE"),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Today (UTC) as `YYYY-MM-DD`, the day `kurier reports send --day` takes.
pub fn utc_day() -> String {
    let t = kurier_store::now();
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%d"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A fresh database named `<prefix>_<random>` on the test cluster of scripts/test.sh, as a
/// store URL. Fails, never skips, without that cluster.
#[allow(dead_code)] // not every test binary runs several nodes
pub fn postgres_database(prefix: &str) -> String {
    let admin = std::env::var("KURIER_TEST_POSTGRES").expect(
        "KURIER_TEST_POSTGRES is not set: run scripts/test.sh, which starts a PostgreSQL cluster for the tests",
    );
    let mut id = [0u8; 8];
    openssl::rand::rand_bytes(&mut id).unwrap();
    let name = format!(
        "{prefix}_{}",
        id.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let out = Command::new("psql")
        .args([admin.as_str(), "-c", &format!("CREATE DATABASE {name}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("postgres:{admin} dbname={name}")
}

/// Node B of a two-node test: node A's configuration (`a_config`, for address `a_ip` and data
/// folder `a_dir/data`) with B's own address and data folder in `b_dir`.
#[allow(dead_code)] // not every test binary runs several nodes
pub fn second_node(a_dir: &Path, a_config: &Path, a_ip: &str, b_dir: &Path, b_ip: &str) -> PathBuf {
    let b_config = b_dir.join("kurier.toml");
    let text = std::fs::read_to_string(a_config)
        .unwrap()
        .replace(a_ip, b_ip)
        .replace(
            &a_dir.join("data").display().to_string(),
            &b_dir.join("data").display().to_string(),
        );
    std::fs::create_dir_all(b_dir.join("data")).unwrap();
    std::fs::write(&b_config, text).unwrap();
    b_config
}

/// Submits one message as rcpt@kurier.test (password `pw`) on `ip`:2465: `to`, `headers` (each
/// ending in CRLF) and a short body. Returns the reply to the message data.
#[allow(dead_code)] // not every test binary submits
pub fn submit_message(ip: &str, to: &str, headers: &str) -> String {
    let mut c = Client::connect_tls(format!("{ip}:2465").parse().unwrap(), "mx.kurier.test");
    c.cmd("EHLO client.test");
    let auth = c.cmd(&format!("AUTH PLAIN {}", plain("rcpt@kurier.test", "pw")));
    assert!(auth.starts_with("235"), "{auth}");
    assert!(c.cmd("MAIL FROM:<rcpt@kurier.test>").starts_with("250"));
    let r = c.cmd(&format!("RCPT TO:<{to}>"));
    assert!(r.starts_with("250"), "{to}: {r}");
    assert!(c.cmd("DATA").starts_with("354"));
    let r = c.cmd(&format!(
        "From: rcpt@kurier.test\r\nTo: {to}\r\n{headers}\r\nhi\r\n."
    ));
    c.cmd("QUIT");
    r
}

/// `kurier reports send --day <today>` with `config`; must succeed. Returns what it printed.
#[allow(dead_code)] // not every test binary sends reports
pub fn send_todays_reports(config: &Path) -> String {
    let (code, out, err) = run(&[
        "reports",
        "send",
        "--day",
        &utc_day(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    out
}

/// The text of a gzip body (a TLSRPT report as collectors receive it).
#[allow(dead_code)] // not every test binary reads reports
pub fn gunzip(body: &[u8]) -> String {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(body), &mut text).unwrap();
    text
}

/// curl's GET (or POST of `post` as XML) of `https://{host}:{port}{path}`, with `host` resolved
/// to `ip` and only `ca` trusted; the body. curl must succeed.
pub fn curl(ca: &Path, host: &str, port: u16, ip: &str, path: &str, post: Option<&str>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["--resolve", &format!("{host}:{port}:{ip}")]);
    if let Some(body) = post {
        cmd.args(["-H", "Content-Type: text/xml", "--data-binary", body]);
    }
    let url = format!("https://{host}:{port}{path}");
    let out = cmd.arg(&url).output().unwrap();
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A TXT rdata for a test zone, in strings of at most 255 bytes (RFC 1035 §3.3.14).
pub fn txt(value: &str) -> String {
    value
        .as_bytes()
        .chunks(200)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Ends a helper process however the test ends.
pub struct Reap(pub std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The statuses of the findings with requirement `id` in a `kurier check --json` document.
pub fn finding_statuses(v: &serde_json::Value, id: &str) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id)
        .map(|f| f["status"].as_str().unwrap().to_string())
        .collect()
}

/// Runs a Python `script` with its JSON `spec` (written to `file`) as its argument; its output.
pub fn python(script: &str, file: &Path, spec: &serde_json::Value) -> Vec<u8> {
    std::fs::write(file, serde_json::to_vec(spec).unwrap()).unwrap();
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} (scripts/test.sh installs the Python packages the tests use)",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Starts a helper server written in Python (`python3 -c SCRIPT ARGS…`) that prints `ready`
/// once it listens; returns it then, to be ended when the test ends.
#[allow(dead_code)] // not every test binary runs helper servers
pub fn helper(script: &str, args: &[&str]) -> Reap {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "the helper server did not start");
    Reap(child)
}
