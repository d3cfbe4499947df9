//! IMAP benchmark: the same scripted load against Kurier (`serve --dev`, SQLite) and Dovecot
//! (Debian's 2.3, maildir, its "high-performance" login mode), in one run on this machine, both
//! over implicit TLS with the same certificate and the same TLS group (P-256):
//!
//! 1. APPEND: `sessions` clients fill a mailbox with `messages` messages (LITERAL+).
//! 2. Mixed load: `sessions` clients each SELECT the mailbox and run `rounds` rounds of
//!    UID FETCH (20 envelopes), FETCH BODY.PEEK[] (one message), STORE +FLAGS, SEARCH UNSEEN,
//!    UID SEARCH SUBJECT (a header search over the whole mailbox) and NOOP; operations/s.
//! 3. Memory: `idle` sessions log in, SELECT a small mailbox and IDLE; the growth of the
//!    servers' proportional set size (PSS, so shared pages of Dovecot's many processes count
//!    once) divided by the number of sessions.
//!
//! Usage: kurier-bench-imap PATH/TO/kurier [MESSAGES] [SESSIONS] [ROUNDS] [IDLE]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const PASSWORD: &str = "bench-pw-1";
const USER: &str = "demo@example.test";
const IDLER: &str = "idle@example.test";

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let kurier = args
        .get(1)
        .ok_or("usage: kurier-bench-imap PATH/TO/kurier [MESSAGES] [SESSIONS] [ROUNDS] [IDLE]")?;
    let num = |i: usize, default: usize| -> Res<usize> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let (messages, sessions, rounds, idle) =
        (num(2, 10_000)?, num(3, 50)?, num(4, 40)?, num(5, 1000)?);
    let work = std::env::temp_dir().join(format!("kurier-bench-imap-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;

    let kurier_data = work.join("kurier");
    let k = Server::kurier(kurier, &kurier_data, "127.0.50.1")?;
    let d = Server::dovecot(&work.join("dovecot"), &kurier_data, "127.0.50.2")?;
    let servers = [&k, &d];

    println!(
        "{messages} messages of 4 KiB, {sessions} sessions, {rounds} rounds of 6 commands each, {idle} idle sessions; 2 cores, one run"
    );
    println!(
        "{:<40} {:>14} {:>14} {:>8}",
        "", "Kurier", "Dovecot", "ratio"
    );
    let append: Vec<f64> = servers
        .iter()
        .map(|s| fill(s.addr, USER, messages, sessions))
        .collect::<Res<_>>()?;
    row("APPEND, messages/s", append[0], append[1]);
    let mixed: Vec<f64> = servers
        .iter()
        .map(|s| mixed_load(s.addr, sessions, rounds))
        .collect::<Res<_>>()?;
    row("mixed load, commands/s", mixed[0], mixed[1]);
    let mut per_session = Vec::new();
    for s in servers {
        fill(s.addr, IDLER, 20, 1)?;
        per_session.push(idle_memory(s, idle)?);
    }
    println!(
        "{:<40} {:>11.1} KiB {:>10.1} KiB {:>7.2}×",
        "memory per IDLE session (PSS)",
        per_session[0] / 1024.0,
        per_session[1] / 1024.0,
        per_session[0] / per_session[1]
    );
    drop((k, d));
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

fn row(what: &str, kurier: f64, dovecot: f64) {
    println!(
        "{what:<40} {kurier:>12.0}/s {dovecot:>12.0}/s {:>7.2}×",
        kurier / dovecot
    );
}

struct Server {
    addr: SocketAddr,
    child: Child,
    /// Processes whose memory counts: Kurier's one, or Dovecot's master and its children.
    dovecot: bool,
}

impl Server {
    /// `serve --dev` once (certificate, store, demo account), then the same data from a
    /// configuration file that lets one client address hold all the idle sessions.
    fn kurier(bin: &str, data: &Path, ip: &str) -> Res<Server> {
        let data_arg = data.to_str().ok_or("path")?;
        let mut dev = Command::new(bin)
            .args(["serve", "--dev", "--data", data_arg, "--listen-ip", ip])
            .env("KURIER_LOG", "warn")
            .env("KURIER_DEV_PASSWORD", PASSWORD)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let out = dev.stdout.take().ok_or("no stdout")?;
        let ready = BufReader::new(out)
            .lines()
            .any(|l| l.is_ok_and(|l| l.starts_with("ready.")));
        let _ = dev.kill();
        let _ = dev.wait();
        if !ready {
            return Err("kurier serve --dev did not start".into());
        }
        let config = data.join("bench.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nhostname = \"mail.example.test\"\ndata_dir = \"{d}\"\n\
                 [log]\nlevel = \"warn\"\n\
                 [[tls.certificate]]\ncert = \"{d}/dev-server.pem\"\nkey = \"{d}/dev-server.key\"\n\
                 [web]\nlisten = [\"{ip}:8443\"]\nlisten_http = []\n[smtp]\nlisten = [\"{ip}:2525\"]\n\
                 [submission]\nlisten_implicit = [\"{ip}:2465\"]\nlisten_starttls = [\"{ip}:2587\"]\n\
                 [imap]\nlisten_implicit = [\"{ip}:1993\"]\nlisten_starttls = [\"{ip}:1143\"]\n\
                 max_connections_per_ip = 5000\n\
                 [pop3]\nlisten_implicit = [\"{ip}:1995\"]\nlisten_starttls = [\"{ip}:1110\"]\n\
                 [delivery]\nenabled = false\n",
                d = data.display(),
            ),
        )?;
        let config_arg = config.to_str().ok_or("path")?;
        let mut add = Command::new(bin)
            .args(["user", "add", IDLER, "--config", config_arg])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        add.stdin
            .take()
            .ok_or("stdin")?
            .write_all(format!("{PASSWORD}\n").as_bytes())?;
        if !add.wait()?.success() {
            return Err("kurier user add failed".into());
        }
        let child = Command::new(bin)
            .args(["serve", "--config", config_arg])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr: SocketAddr = format!("{ip}:1993").parse()?;
        wait_for(addr, data)?;
        Ok(Server {
            addr,
            child,
            dovecot: false,
        })
    }

    /// Dovecot with the dev certificate Kurier made, users in a passwd-file, maildir.
    fn dovecot(dir: &Path, kurier_data: &Path, ip: &str) -> Res<Server> {
        std::fs::create_dir_all(dir.join("home"))?;
        let passwd: String = [USER, IDLER]
            .iter()
            .map(|u| format!("{u}:{{PLAIN}}{PASSWORD}\n"))
            .collect();
        std::fs::write(dir.join("passwd"), passwd)?;
        let status = Command::new("chown")
            .args(["-R", "mail:mail", dir.join("home").to_str().ok_or("path")?])
            .status()?;
        if !status.success() {
            return Err("chown mail: failed".into());
        }
        let conf = format!(
            r#"base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = {ip}
ssl = required
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={d}/home/%u
}}
mail_location = maildir:~/Maildir
first_valid_uid = 1
first_valid_gid = 1
default_process_limit = 3000
default_client_limit = 10000
default_vsz_limit = 0
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 993
  }}
  service_count = 0
  process_min_avail = 2
  client_limit = 5000
}}
service imap {{
  process_limit = 3000
}}
protocol imap {{
  mail_max_userip_connections = 5000
}}
"#,
            d = dir.display(),
            cert = kurier_data.join("dev-server.pem").display(),
            key = kurier_data.join("dev-server.key").display(),
        );
        let file = dir.join("dovecot.conf");
        std::fs::write(&file, conf)?;
        let child = Command::new("dovecot")
            .args(["-F", "-c", file.to_str().ok_or("path")?])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let addr: SocketAddr = format!("{ip}:993").parse()?;
        wait_for(addr, dir)?;
        Ok(Server {
            addr,
            child,
            dovecot: true,
        })
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        if self.dovecot {
            pids.extend(children(self.child.id()));
        }
        pids
    }

    /// Proportional set size of the server's processes, in bytes.
    fn pss(&self) -> u64 {
        self.pids().iter().map(|p| pss(*p)).sum()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `addr` accepts connections.
fn wait_for(addr: SocketAddr, logs: &Path) -> Res<()> {
    for _ in 0..100 {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "nothing listens on {addr}; see the logs in {}",
        logs.display()
    )
    .into())
}

/// A run that fails half-way leaves no server behind.
impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| {
                    let after = s.rsplit_once(')')?.1.to_string();
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

fn pss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// One logged-in IMAP session over TLS.
struct Session {
    io: BufReader<SslStream<TcpStream>>,
    tag: u64,
}

impl Session {
    fn open(addr: SocketAddr, user: &str) -> Res<Session> {
        let mut b = SslConnector::builder(SslMethod::tls_client())?;
        // The test certificate is not what is measured; both servers get the same group.
        b.set_verify(SslVerifyMode::NONE);
        b.set_groups_list("P-256")?;
        let tcp = TcpStream::connect(addr)?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
        let tls = b.build().connect("mail.example.test", tcp)?;
        let mut s = Session {
            io: BufReader::new(tls),
            tag: 0,
        };
        s.line()?;
        s.run(&format!("LOGIN {user} {PASSWORD}"))?;
        Ok(s)
    }

    fn line(&mut self) -> Res<String> {
        let mut l = String::new();
        if self.io.read_line(&mut l)? == 0 {
            return Err("connection closed".into());
        }
        Ok(l)
    }

    fn send(&mut self, bytes: &[u8]) -> Res<String> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let mut out = format!("{tag} ").into_bytes();
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
        self.io.get_mut().write_all(&out)?;
        Ok(tag)
    }

    /// Sends a command and reads to its tagged answer, skipping literals; the answer must be OK.
    fn run(&mut self, command: &str) -> Res<usize> {
        let tag = self.send(command.as_bytes())?;
        self.finish(&tag, command)
    }

    fn finish(&mut self, tag: &str, what: &str) -> Res<usize> {
        let mut untagged = 0;
        loop {
            let l = self.line()?;
            if let Some(rest) = l.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                if !rest.starts_with("OK") {
                    return Err(format!("{what}: {l}").into());
                }
                return Ok(untagged);
            }
            untagged += 1;
            if let Some(n) = literal_size(&l) {
                let mut skip = vec![0u8; n];
                self.io.read_exact(&mut skip)?;
            }
        }
    }
}

fn literal_size(line: &str) -> Option<usize> {
    let inner = line.trim_end().strip_suffix('}')?;
    inner[inner.rfind('{')? + 1..]
        .trim_end_matches('+')
        .parse()
        .ok()
}

/// A 4 KiB message; subjects cycle through a few words so that searches find some.
fn message(i: usize) -> Vec<u8> {
    let words = [
        "budget", "holiday", "invoice", "meeting", "report", "travel", "lunch",
    ];
    let mut m = format!(
        "From: Sender {i} <sender{i}@remote.example>\r\nTo: {USER}\r\nSubject: {} number {i}\r\n\
         Date: Sun, 29 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{i}@remote.example>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n",
        words[i % words.len()]
    )
    .into_bytes();
    while m.len() < 4096 {
        m.extend_from_slice(b"The quick brown fox jumps over the lazy dog, again and again.\r\n");
    }
    m
}

/// APPENDs `messages` messages to `user`'s INBOX over `sessions` sessions; messages/s.
fn fill(addr: SocketAddr, user: &'static str, messages: usize, sessions: usize) -> Res<f64> {
    let t = Instant::now();
    let threads: Vec<_> = (0..sessions)
        .map(|s| {
            std::thread::spawn(move || -> Res<()> {
                let mut c = Session::open(addr, user)?;
                for i in (s..messages).step_by(sessions) {
                    let m = message(i);
                    let mut cmd = format!("APPEND INBOX {{{}+}}\r\n", m.len()).into_bytes();
                    cmd.extend_from_slice(&m);
                    let tag = c.send(&cmd)?;
                    c.finish(&tag, "APPEND")?;
                }
                c.run("LOGOUT")?;
                Ok(())
            })
        })
        .collect();
    for th in threads {
        th.join().map_err(|_| "an APPEND thread panicked")??;
    }
    Ok(messages as f64 / t.elapsed().as_secs_f64())
}

/// Each session SELECTs the big mailbox and runs its rounds; commands/s over all sessions.
fn mixed_load(addr: SocketAddr, sessions: usize, rounds: usize) -> Res<f64> {
    let t = Instant::now();
    let threads: Vec<_> = (0..sessions)
        .map(|s| {
            std::thread::spawn(move || -> Res<usize> {
                let mut c = Session::open(addr, USER)?;
                c.run("SELECT INBOX")?;
                let mut commands = 1;
                let mut x = s as u64 * 7919 + 1;
                let mut next = |max: u64| {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    (x >> 33) % max + 1
                };
                let mut spent = [Duration::ZERO; 6];
                for _ in 0..rounds {
                    let uid = next(9_980);
                    let script = [
                        format!(
                            "UID FETCH {uid}:{} (UID FLAGS RFC822.SIZE ENVELOPE)",
                            uid + 19
                        ),
                        format!("UID FETCH {} BODY.PEEK[]", next(10_000)),
                        format!("UID STORE {} +FLAGS (\\Seen)", next(10_000)),
                        "SEARCH UNSEEN".to_string(),
                        "UID SEARCH SUBJECT invoice".to_string(),
                        "NOOP".to_string(),
                    ];
                    for (i, command) in script.iter().enumerate() {
                        let t = Instant::now();
                        c.run(command)?;
                        spent[i] += t.elapsed();
                    }
                    commands += script.len();
                }
                if s == 0 && std::env::var_os("KURIER_BENCH_DETAIL").is_some() {
                    eprintln!(
                        "{addr} session 0, ms per command: {:?}",
                        spent.map(|d| d.as_secs_f64() * 1000.0 / rounds as f64)
                    );
                }
                c.run("LOGOUT")?;
                Ok(commands)
            })
        })
        .collect();
    let mut total = 0;
    for th in threads {
        total += th.join().map_err(|_| "a load thread panicked")??;
    }
    Ok(total as f64 / t.elapsed().as_secs_f64())
}

/// Opens `n` sessions that IDLE on a small mailbox; bytes of PSS each.
fn idle_memory(server: &Server, n: usize) -> Res<f64> {
    std::thread::sleep(Duration::from_millis(500));
    let before = server.pss();
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let mut c = Session::open(server.addr, IDLER)?;
        c.run("SELECT INBOX")?;
        c.send(b"IDLE")?;
        let l = c.line()?;
        if !l.starts_with('+') {
            return Err(format!("IDLE: {l}").into());
        }
        open.push(c);
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = server.pss();
    for mut c in open {
        let _ = c.io.get_mut().write_all(b"DONE\r\n");
    }
    Ok(after.saturating_sub(before) as f64 / n as f64)
}
