//! The async ManageSieve server (RFC 5804) on port 4190: STARTTLS with the strict TLS profile,
//! SASL PLAIN only after TLS (§2.1) through the login throttle every listener shares, then
//! the script commands over the store, each script checked by kurier-sieve before it is
//! stored (a syntax error answers `NO` with its line and column).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kurier_access::{
    AuthThrottle, ConnectionLimit, LoginOutcome, base64_decode, plain, throttled_login,
};
use kurier_store::{Account, Store, StoreError};
use kurier_tls::TlsAcceptor;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::command::{Command, Need, Reader, parse, string};

/// Before login a command is small (AUTHENTICATE with its response).
const MAX_COMMAND_BEFORE_LOGIN: usize = 8 * 1024;

/// What every ManageSieve listener shares.
pub struct ManageSieveServer {
    pub store: Arc<dyn Store>,
    pub tls: Arc<TlsAcceptor>,
    /// Shared with submission, IMAP and POP3 (TR-03108 MUA-2).
    pub throttle: Arc<Mutex<AuthThrottle>>,
    pub connections: Arc<ConnectionLimit>,
    pub timeout: Duration,
    /// Largest script in bytes (`QUOTA/MAXSIZE`).
    pub max_script_size: usize,
    /// Scripts per account at most (`QUOTA/MAXSCRIPTS`).
    pub max_scripts: usize,
}

/// Serves ManageSieve on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    server: Arc<ManageSieveServer>,
    shutdown: impl Future<Output = ()>,
) {
    kurier_access::serve_connections(listener, "ManageSieve", shutdown, |tcp, peer, stop| {
        connection(tcp, peer, server.clone(), stop)
    })
    .await;
}

async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    server: Arc<ManageSieveServer>,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(_slot) = server.connections.admit(peer.ip()) else {
        let _ = tcp
            .write_all(b"BYE (TRYLATER) \"Too many connections from your address\"\r\n")
            .await;
        return;
    };
    let mut session = Session {
        server: server.clone(),
        peer,
        tls: false,
        account: None,
        errors: 0,
    };
    let mut io = BufReader::new(tcp);
    if let End::StartTls = session.run(&mut io, stop.clone(), true).await {
        // What the client sent before the handshake is discarded (CVE-2011-0411).
        let tls = match server
            .tls
            .accept_within(io.into_inner(), Duration::from_secs(30))
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(%peer, error = %e, "ManageSieve TLS handshake failed");
                return;
            }
        };
        session.tls = true;
        let mut io = BufReader::new(tls);
        // RFC 5804 §2.2: after TLS the capabilities again, as a greeting.
        let _ = session.run(&mut io, stop, true).await;
        let _ = io.into_inner().shutdown().await;
    }
}

enum End {
    Closed,
    StartTls,
}

struct Session {
    server: Arc<ManageSieveServer>,
    peer: SocketAddr,
    tls: bool,
    account: Option<Account>,
    errors: u32,
}

fn ok(text: &str) -> String {
    format!("OK {}\r\n", string(text))
}

fn no(code: Option<&str>, text: &str) -> String {
    match code {
        Some(c) => format!("NO ({c}) {}\r\n", string(text)),
        None => format!("NO {}\r\n", string(text)),
    }
}

impl Session {
    fn capabilities(&self) -> String {
        let mut c = String::from("\"IMPLEMENTATION\" \"Kurier\"\r\n");
        // PLAIN only once the connection is encrypted (§2.1, TR-03108 MUA-2).
        c.push_str(if self.tls {
            "\"SASL\" \"PLAIN\"\r\n"
        } else {
            "\"SASL\" \"\"\r\n"
        });
        c.push_str(&format!(
            "\"SIEVE\" \"{}\"\r\n",
            kurier_sieve::script::EXTENSIONS.join(" ")
        ));
        if !self.tls {
            c.push_str("\"STARTTLS\"\r\n");
        }
        c.push_str("\"MAXREDIRECTS\" \"4\"\r\n\"VERSION\" \"1.0\"\r\n");
        if let Some(a) = &self.account {
            c.push_str(&format!("\"OWNER\" {}\r\n", string(&a.address)));
        }
        c
    }

    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
        mut stop: watch::Receiver<bool>,
        greet: bool,
    ) -> End {
        if greet {
            let hello = format!("{}{}", self.capabilities(), ok("Kurier ManageSieve ready"));
            if io.get_mut().write_all(hello.as_bytes()).await.is_err() {
                return End::Closed;
            }
        }
        loop {
            let limit = if self.account.is_some() {
                self.server.max_script_size + 4096
            } else {
                MAX_COMMAND_BEFORE_LOGIN
            };
            let words = tokio::select! {
                r = tokio::time::timeout(self.server.timeout, read_command(io, limit)) => match r {
                    Ok(Ok(Some(w))) => w,
                    Ok(Ok(None)) => return End::Closed,
                    Ok(Err(e)) => {
                        // A broken or oversized command: the connection cannot be resynchronized.
                        let _ = io.get_mut().write_all(format!("BYE {}\r\n", string(&e)).as_bytes()).await;
                        return End::Closed;
                    }
                    Err(_) => {
                        let _ = io.get_mut().write_all(b"BYE \"Idle for too long\"\r\n").await;
                        return End::Closed;
                    }
                },
                _ = stop.changed() => {
                    let _ = io.get_mut().write_all(b"BYE (TRYLATER) \"Server shutting down\"\r\n").await;
                    return End::Closed;
                }
            };
            let reply = match parse(words) {
                Ok(cmd) => match self.execute(cmd, io).await {
                    Ok(reply) => reply,
                    Err(end) => return end,
                },
                Err(e) => {
                    self.errors += 1;
                    if self.errors >= 20 {
                        let _ = io.get_mut().write_all(b"BYE \"Too many errors\"\r\n").await;
                        return End::Closed;
                    }
                    no(None, &e.to_string())
                }
            };
            if io.get_mut().write_all(reply.as_bytes()).await.is_err()
                || io.get_mut().flush().await.is_err()
            {
                return End::Closed;
            }
        }
    }

    /// The reply to `cmd`, or how the connection ends.
    async fn execute<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: Command,
        io: &mut BufReader<S>,
    ) -> Result<String, End> {
        match cmd {
            Command::Capability => Ok(format!(
                "{}{}",
                self.capabilities(),
                ok("Capability completed")
            )),
            Command::Noop(tag) => Ok(match tag {
                Some(t) => format!("OK (TAG {}) \"Done\"\r\n", string(&t)),
                None => ok("Done"),
            }),
            Command::Logout => {
                let _ = io
                    .get_mut()
                    .write_all(ok("Logout completed").as_bytes())
                    .await;
                Err(End::Closed)
            }
            Command::StartTls => {
                if self.tls || self.account.is_some() {
                    return Ok(no(None, "STARTTLS is not available now"));
                }
                let _ = io
                    .get_mut()
                    .write_all(ok("Begin TLS negotiation now").as_bytes())
                    .await;
                let _ = io.get_mut().flush().await;
                Err(End::StartTls)
            }
            Command::Authenticate { mechanism, initial } => {
                if self.account.is_some() {
                    return Ok(no(None, "Already authenticated"));
                }
                if !self.tls {
                    return Ok(no(
                        Some("ENCRYPT-NEEDED"),
                        "Use STARTTLS first: no credentials before TLS",
                    ));
                }
                if mechanism != "PLAIN" {
                    return Ok(no(None, "Mechanism not supported; use PLAIN"));
                }
                let response = match initial {
                    Some(r) => r,
                    None => {
                        // An empty challenge; the client answers with a string (§2.1).
                        if io.get_mut().write_all(b"\"\"\r\n").await.is_err() {
                            return Err(End::Closed);
                        }
                        let _ = io.get_mut().flush().await;
                        match tokio::time::timeout(
                            self.server.timeout,
                            read_command(io, MAX_COMMAND_BEFORE_LOGIN),
                        )
                        .await
                        {
                            Ok(Ok(Some(words))) => match words.into_iter().next() {
                                Some(crate::command::Word::Text(t)) if t != b"*" => t,
                                _ => return Ok(no(None, "Authentication cancelled")),
                            },
                            _ => return Err(End::Closed),
                        }
                    }
                };
                let decoded = base64_decode(&String::from_utf8_lossy(&response));
                let Some((user, password)) = decoded.as_deref().and_then(plain) else {
                    return Ok(no(None, "Authentication failed"));
                };
                Ok(self.login(&user, &password).await)
            }
            other => {
                let Some(account) = self.account.clone() else {
                    return Ok(no(None, "Authenticate first"));
                };
                Ok(self.script_command(other, &account).await)
            }
        }
    }

    async fn login(&mut self, user: &str, password: &str) -> String {
        let store = self.server.store.clone();
        let check = async {
            store
                .authenticate_client(user, password)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "ManageSieve: cannot check credentials");
                })
        };
        match throttled_login(&self.server.throttle, self.peer.ip(), user, check).await {
            LoginOutcome::Ok(account) => {
                tracing::info!(peer = %self.peer, account = %account.address, "ManageSieve login");
                self.account = Some(account);
                ok("Logged in")
            }
            LoginOutcome::Invalid => {
                tracing::warn!(peer = %self.peer, user, "ManageSieve authentication failed");
                no(None, "Authentication failed")
            }
            LoginOutcome::Blocked => {
                tracing::warn!(peer = %self.peer, user, "ManageSieve authentication blocked after repeated failures");
                no(Some("TRYLATER"), "Too many failed logins; try again later")
            }
            LoginOutcome::Unavailable => no(Some("TRYLATER"), "Cannot check credentials now"),
        }
    }

    async fn script_command(&self, cmd: Command, account: &Account) -> String {
        let store = &*self.server.store;
        let id = account.id;
        let stored = |e: StoreError| match e {
            StoreError::NotFound(_) => no(Some("NONEXISTENT"), "There is no script of that name"),
            StoreError::Exists(_) => no(Some("ALREADYEXISTS"), "A script of that name exists"),
            StoreError::Invalid(why) if why.contains("is active") => no(
                Some("ACTIVE"),
                "The script is active: activate another or none first",
            ),
            StoreError::Invalid(why) => no(None, &why),
            other => {
                tracing::warn!(error = %other, "ManageSieve: store error");
                no(Some("TRYLATER"), "Cannot reach the store now")
            }
        };
        let scripts = match store.sieve_scripts(id).await {
            Ok(s) => s,
            Err(e) => return stored(e),
        };
        match cmd {
            Command::ListScripts => {
                let mut out = String::new();
                for s in &scripts {
                    out.push_str(&string(&s.name));
                    if s.active {
                        out.push_str(" ACTIVE");
                    }
                    out.push_str("\r\n");
                }
                out.push_str(&ok("Listscripts completed"));
                out
            }
            Command::GetScript(name) => match scripts.iter().find(|s| s.name == name) {
                Some(s) => format!(
                    "{{{}}}\r\n{}\r\n{}",
                    s.content.len(),
                    s.content,
                    ok("Getscript completed")
                ),
                None => no(Some("NONEXISTENT"), "There is no script of that name"),
            },
            Command::HaveSpace { name, size } => self
                .space(&scripts, &name, usize::try_from(size).unwrap_or(usize::MAX))
                .unwrap_or_else(|| ok("Putscript would succeed")),
            Command::CheckScript(script) => match check(&script) {
                Ok(_) => ok("Script is valid"),
                Err(e) => no(None, &e),
            },
            Command::PutScript { name, script } => {
                if let Some(refused) = self.space(&scripts, &name, script.len()) {
                    return refused;
                }
                let text = match check(&script) {
                    Ok(t) => t,
                    Err(e) => return no(None, &e),
                };
                match store.put_sieve_script(id, &name, &text).await {
                    Ok(()) => {
                        tracing::info!(account = %account.address, script = %name, "Sieve script stored");
                        ok("Putscript completed")
                    }
                    Err(e) => stored(e),
                }
            }
            Command::SetActive(name) => {
                let target = (!name.is_empty()).then_some(name.as_str());
                match store.activate_sieve_script(id, target).await {
                    Ok(()) => ok("Setactive completed"),
                    Err(e) => stored(e),
                }
            }
            Command::DeleteScript(name) => match store.delete_sieve_script(id, &name).await {
                Ok(()) => ok("Deletescript completed"),
                Err(e) => stored(e),
            },
            Command::RenameScript { from, to } => {
                match store.rename_sieve_script(id, &from, &to).await {
                    Ok(()) => ok("Renamescript completed"),
                    Err(e) => stored(e),
                }
            }
            _ => no(None, "Not valid now"),
        }
    }

    /// The refusal when a script of `size` bytes named `name` would not fit.
    fn space(
        &self,
        scripts: &[kurier_store::SieveScript],
        name: &str,
        size: usize,
    ) -> Option<String> {
        if size > self.server.max_script_size {
            return Some(no(
                Some("QUOTA/MAXSIZE"),
                &format!("Scripts are {} bytes at most", self.server.max_script_size),
            ));
        }
        if !scripts.iter().any(|s| s.name == name) && scripts.len() >= self.server.max_scripts {
            return Some(no(
                Some("QUOTA/MAXSCRIPTS"),
                &format!("{} scripts at most", self.server.max_scripts),
            ));
        }
        None
    }
}

/// A script's text if kurier-sieve accepts it, else the error with its place.
fn check(script: &[u8]) -> Result<String, String> {
    let text = String::from_utf8(script.to_vec())
        .map_err(|_| "a Sieve script is UTF-8 text (RFC 5228 §2.2)".to_string())?;
    kurier_sieve::compile(&text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// Reads one command (lines and literals) within `limit` bytes; `None` at the end of input.
async fn read_command<S: AsyncRead + Unpin>(
    io: &mut BufReader<S>,
    limit: usize,
) -> Result<Option<Vec<crate::command::Word>>, String> {
    let mut reader = Reader::new(limit);
    loop {
        let mut line = Vec::new();
        let n = (&mut *io)
            .take(limit as u64 + 2)
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(None);
        }
        if !line.ends_with(b"\n") {
            return Err(format!("the command is larger than {limit} bytes"));
        }
        let text = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(&line);
        match reader.line(text).map_err(|e| e.to_string())? {
            Need::Done(words) => return Ok(Some(words)),
            Need::Octets(count) => {
                let mut data = vec![0u8; count];
                io.read_exact(&mut data).await.map_err(|e| e.to_string())?;
                reader.octets(&data);
            }
        }
    }
}
