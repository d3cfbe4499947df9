//! The async POP3 server: 995 with implicit TLS, 110 with STLS; one session per connection.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kurier_access::{
    AuthThrottle, ConnectionLimit, LoginOutcome, base64_decode, plain, throttled_login,
};
use kurier_store::{Account, Store};
use kurier_tls::TlsAcceptor;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::command::{self, Command};
use crate::maildrop::{Maildrop, multiline};

/// What every POP3 listener shares.
pub struct Pop3Server {
    pub store: Arc<dyn Store>,
    pub tls: Arc<TlsAcceptor>,
    /// Shared with submission and IMAP.
    pub throttle: Arc<Mutex<AuthThrottle>>,
    pub connections: Arc<ConnectionLimit>,
    /// RFC 1939 §3: an inactivity autologout timer of at least 10 minutes.
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pop3Listener {
    /// Port 995.
    ImplicitTls,
    /// Port 110: STLS, no credentials before it.
    StartTls,
}

/// Serves POP3 on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    kind: Pop3Listener,
    server: Arc<Pop3Server>,
    shutdown: impl Future<Output = ()>,
) {
    kurier_access::serve_connections(listener, "POP3", shutdown, |tcp, peer, stop| {
        connection(tcp, peer, kind, server.clone(), stop)
    })
    .await;
}

async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    kind: Pop3Listener,
    server: Arc<Pop3Server>,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(_slot) = server.connections.admit(peer.ip()) else {
        // On 995 a plain-text answer would only break the client's TLS handshake: just close.
        if kind == Pop3Listener::StartTls {
            let _ = tcp
                .write_all(b"-ERR [SYS/TEMP] Too many connections from your address\r\n")
                .await;
        }
        tracing::info!(%peer, "POP3 connection refused: per-IP limit");
        return;
    };
    let mut session = Session {
        server: server.clone(),
        peer,
        tls: false,
        stls_offered: kind == Pop3Listener::StartTls,
        user: None,
        account: None,
        maildrop: None,
        errors: 0,
    };
    if kind == Pop3Listener::ImplicitTls {
        let Some(tls) = handshake(&server, tcp, peer).await else {
            return;
        };
        session.tls = true;
        let mut io = BufReader::new(tls);
        let _ = session.run(&mut io, stop).await;
        let _ = io.into_inner().shutdown().await;
        return;
    }
    let mut io = BufReader::new(tcp);
    if let End::StartTls = session.run(&mut io, stop.clone()).await {
        // RFC 2595 §4: what the client sent before the handshake is discarded.
        let Some(tls) = handshake(&server, io.into_inner(), peer).await else {
            return;
        };
        session.tls = true;
        let mut io = BufReader::new(tls);
        let _ = session.run_after_stls(&mut io, stop).await;
        let _ = io.into_inner().shutdown().await;
    }
}

async fn handshake(
    server: &Pop3Server,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_openssl::SslStream<TcpStream>> {
    server
        .tls
        .accept_within(tcp, Duration::from_secs(30))
        .await
        .map_err(|e| tracing::info!(%peer, error = %e, "POP3 TLS handshake failed"))
        .ok()
}

enum End {
    Closed,
    StartTls,
}

struct Session {
    server: Arc<Pop3Server>,
    peer: SocketAddr,
    tls: bool,
    stls_offered: bool,
    /// USER given, PASS awaited.
    user: Option<String>,
    account: Option<Account>,
    maildrop: Option<Maildrop>,
    errors: u32,
}

const MAX_LINE: u64 = 1024;

impl Session {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
        stop: watch::Receiver<bool>,
    ) -> End {
        if io
            .get_mut()
            .write_all(b"+OK Kurier POP3 ready\r\n")
            .await
            .is_err()
        {
            return End::Closed;
        }
        self.run_after_stls(io, stop).await
    }

    async fn run_after_stls<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut BufReader<S>,
        mut stop: watch::Receiver<bool>,
    ) -> End {
        let mut line = Vec::new();
        loop {
            line.clear();
            let mut limited = (&mut *io).take(MAX_LINE);
            let read = limited.read_until(b'\n', &mut line);
            let n = tokio::select! {
                r = tokio::time::timeout(self.server.timeout, read) => match r {
                    Ok(Ok(n)) => n,
                    Ok(Err(_)) => return End::Closed,
                    Err(_) => {
                        let _ = io.get_mut().write_all(b"-ERR Autologout; idle for too long\r\n").await;
                        return End::Closed;
                    }
                },
                _ = stop.changed() => {
                    let _ = io.get_mut().write_all(b"-ERR [SYS/TEMP] Server shutting down\r\n").await;
                    return End::Closed;
                }
            };
            if n == 0 {
                return End::Closed;
            }
            if !line.ends_with(b"\n") {
                let _ = io.get_mut().write_all(b"-ERR Line too long\r\n").await;
                return End::Closed;
            }
            let text = line
                .strip_suffix(b"\n")
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .unwrap_or(&line)
                .to_vec();
            let mut out = Vec::new();
            let end = match command::parse(&text) {
                Ok(cmd) => self.execute(cmd, io, &mut out).await,
                Err(e) => {
                    self.errors += 1;
                    out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes());
                    (self.errors >= 20).then_some(End::Closed)
                }
            };
            if io.get_mut().write_all(&out).await.is_err() || io.get_mut().flush().await.is_err() {
                return End::Closed;
            }
            if let Some(end) = end {
                return end;
            }
        }
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from(
            "+OK Capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n",
        );
        if self.account.is_none() {
            if self.tls {
                caps.push_str("USER\r\nSASL PLAIN\r\n");
            } else if self.stls_offered {
                caps.push_str("STLS\r\n");
            }
        }
        caps.push_str("IMPLEMENTATION Kurier\r\n.\r\n");
        caps
    }

    async fn execute<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: Command,
        io: &mut BufReader<S>,
        out: &mut Vec<u8>,
    ) -> Option<End> {
        let reply = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        match cmd {
            Command::Capa => out.extend_from_slice(self.capabilities().as_bytes()),
            Command::Noop if self.maildrop.is_some() => reply(out, "+OK"),
            Command::Quit => {
                if let (Some(drop), Some(account)) = (&self.maildrop, &self.account) {
                    // RFC 1939 §6: the UPDATE state removes what DELE marked.
                    let marked = drop.marked();
                    if !marked.is_empty() {
                        let removed = match self.inbox(account.id).await {
                            Ok(inbox) => self.server.store.expunge(inbox, &marked).await,
                            Err(e) => Err(e),
                        };
                        match removed {
                            Ok(r) => {
                                tracing::info!(peer = %self.peer, account = %account.address, removed = r.len(), "POP3 messages deleted")
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "POP3: cannot delete at QUIT");
                                reply(
                                    out,
                                    "-ERR [SYS/TEMP] Some deleted messages not removed; try again",
                                );
                                return Some(End::Closed);
                            }
                        }
                    }
                }
                reply(out, "+OK Bye");
                return Some(End::Closed);
            }
            Command::Stls => {
                if self.tls || !self.stls_offered || self.account.is_some() {
                    reply(out, "-ERR STLS is not available now");
                } else {
                    reply(out, "+OK Begin TLS negotiation");
                    return Some(End::StartTls);
                }
            }
            Command::User(user) if self.account.is_none() => {
                if !self.tls {
                    reply(out, "-ERR [AUTH] Use STLS first: no credentials before TLS");
                } else {
                    self.user = Some(user);
                    reply(out, "+OK Send PASS");
                }
            }
            Command::Pass(password) if self.account.is_none() => match self.user.take() {
                Some(user) if self.tls => {
                    let r = self.login(&user, &password).await;
                    reply(out, &r);
                }
                _ => reply(out, "-ERR Send USER first"),
            },
            Command::Auth {
                mechanism: None, ..
            } if self.account.is_none() => {
                out.extend_from_slice(b"+OK Methods follow\r\nPLAIN\r\n.\r\n");
            }
            Command::Auth {
                mechanism: Some(m),
                initial,
            } if self.account.is_none() => {
                if !self.tls {
                    reply(out, "-ERR [AUTH] Use STLS first: no credentials before TLS");
                } else if m != "PLAIN" {
                    reply(out, "-ERR Mechanism not supported; use PLAIN");
                } else {
                    let response = match initial {
                        Some(i) if i == "=" => Some(Vec::new()),
                        Some(i) => base64_decode(&i),
                        None => {
                            // RFC 5034 §4: an empty challenge, then the client's response.
                            if io.get_mut().write_all(b"+ \r\n").await.is_err() {
                                return Some(End::Closed);
                            }
                            let mut line = Vec::new();
                            let mut limited = (&mut *io).take(MAX_LINE * 4);
                            let read = limited.read_until(b'\n', &mut line);
                            match tokio::time::timeout(self.server.timeout, read).await {
                                Ok(Ok(n)) if n > 0 => {}
                                _ => return Some(End::Closed),
                            }
                            let text = String::from_utf8_lossy(&line).trim_end().to_string();
                            if text == "*" {
                                reply(out, "-ERR AUTH cancelled");
                                return None;
                            }
                            base64_decode(&text)
                        }
                    };
                    match response.as_deref().and_then(plain) {
                        Some((user, password)) => {
                            let r = self.login(&user, &password).await;
                            reply(out, &r);
                        }
                        None => reply(out, "-ERR [AUTH] Invalid credentials"),
                    }
                }
            }
            cmd => match &mut self.maildrop {
                None => reply(out, "-ERR Log in first"),
                Some(drop) => {
                    let r = transaction(cmd, drop, &*self.server.store, out).await;
                    if let Err(e) = r {
                        reply(out, &format!("-ERR {e}"));
                    }
                }
            },
        }
        None
    }

    async fn inbox(&self, account: i64) -> kurier_store::Result<i64> {
        self.server
            .store
            .mailbox(account, "INBOX")
            .await?
            .map(|m| m.id)
            .ok_or_else(|| kurier_store::StoreError::NotFound("INBOX".into()))
    }

    async fn login(&mut self, user: &str, password: &str) -> String {
        let store = self.server.store.clone();
        let check = async {
            store
                .authenticate_client(user, password)
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "POP3: cannot check credentials");
                })
        };
        match throttled_login(&self.server.throttle, self.peer.ip(), user, check).await {
            LoginOutcome::Ok(account) => {
                let inbox = match self.server.store.mailbox(account.id, "INBOX").await {
                    Ok(Some(m)) => m,
                    _ => return "-ERR [SYS/TEMP] Cannot open the INBOX".into(),
                };
                let messages = match self.server.store.messages(inbox.id).await {
                    Ok(m) => m,
                    Err(_) => return "-ERR [SYS/TEMP] Cannot open the INBOX".into(),
                };
                let drop = Maildrop::new(inbox.uid_validity, messages);
                let (n, size) = drop.stat();
                tracing::info!(peer = %self.peer, account = %account.address, "POP3 login");
                self.account = Some(account);
                self.maildrop = Some(drop);
                format!("+OK Maildrop has {n} messages ({size} octets)")
            }
            LoginOutcome::Invalid => {
                tracing::warn!(peer = %self.peer, user, "POP3 authentication failed");
                "-ERR [AUTH] Invalid credentials".into()
            }
            LoginOutcome::Blocked => {
                tracing::warn!(peer = %self.peer, user, "POP3 authentication blocked after repeated failures");
                "-ERR [SYS/TEMP] Too many failed logins; try again later".into()
            }
            LoginOutcome::Unavailable => "-ERR [SYS/TEMP] Cannot check credentials now".into(),
        }
    }
}

/// The TRANSACTION state's commands (RFC 1939 §5).
async fn transaction(
    cmd: Command,
    drop: &mut Maildrop,
    store: &dyn Store,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut line = |s: String| {
        out.extend_from_slice(s.as_bytes());
        out.extend_from_slice(b"\r\n");
    };
    match cmd {
        Command::Stat => {
            let (n, size) = drop.stat();
            line(format!("+OK {n} {size}"));
        }
        Command::List(None) => {
            let (n, size) = drop.stat();
            line(format!("+OK {n} messages ({size} octets)"));
            let entries: Vec<String> = drop
                .live()
                .map(|(i, m)| format!("{i} {}", m.size))
                .collect();
            entries.into_iter().for_each(&mut line);
            line(".".into());
        }
        Command::List(Some(n)) => {
            let m = drop.get(n).map_err(|e| e.text())?;
            line(format!("+OK {n} {}", m.size));
        }
        Command::Uidl(None) => {
            line("+OK Unique-ID listing follows".into());
            let entries: Vec<String> = drop
                .live()
                .map(|(i, m)| format!("{i} {}", drop.unique_id(m)))
                .collect();
            entries.into_iter().for_each(&mut line);
            line(".".into());
        }
        Command::Uidl(Some(n)) => {
            let m = drop.get(n).map_err(|e| e.text())?;
            line(format!("+OK {n} {}", drop.unique_id(m)));
        }
        Command::Retr(n) | Command::Top(n, _) => {
            let m = drop.get(n).map_err(|e| e.text())?;
            let body = store
                .message_body(m.mailbox, m.uid)
                .await
                .map_err(|e| format!("[SYS/TEMP] {e}"))?
                .ok_or("message was removed by another session")?;
            let limit = match cmd {
                Command::Top(_, lines) => Some(lines),
                _ => None,
            };
            line(format!("+OK {} octets", m.size));
            multiline(out, &body, limit);
        }
        Command::Dele(n) => {
            drop.delete(n).map_err(|e| e.text())?;
            line(format!("+OK Message {n} marked as deleted"));
        }
        Command::Rset => {
            drop.reset();
            let (n, size) = drop.stat();
            line(format!("+OK Maildrop has {n} messages ({size} octets)"));
        }
        Command::Noop => line("+OK".into()),
        _ => return Err("command not valid after login".into()),
    }
    Ok(())
}
