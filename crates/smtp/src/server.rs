//! The async SMTP server: accepts TCP connections, drives a `Session` per connection, runs
//! STARTTLS with the `tls` crate, and resolves and stores through the `Store` trait.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kurier_tls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::reply::Reply;
use kurier_access::{AuthThrottle, ConnectionLimit, LoginOutcome};

use crate::sasl::RateLimit;
use crate::session::{
    AuthOutcome, ConnectionFacts, Delivery, Event, Message, PeerInfo, Session, SessionConfig,
    TlsInfo, Verdict,
};
use crate::tls_info;

/// Where the MX looks recipients up and puts messages. The binary implements it over the store;
/// this crate never touches the store itself (docs/architecture.md).
pub trait MailDrop: Send + Sync + 'static {
    /// Who receives mail for `address` from `sender` (the MAIL FROM address, `""` for the
    /// null sender), asked by the session with what it knows of `client`.
    fn check_recipient(
        &self,
        client: &ConnectionFacts,
        sender: &str,
        address: &str,
    ) -> impl Future<Output = Verdict> + Send;
    /// Stores the message durably (local recipients into their mailboxes, `message.remote`
    /// into the outbound queue, all or nothing); `Delivery::Stored` only once it is.
    fn deliver(&self, message: &Message) -> impl Future<Output = Delivery> + Send;
    /// Checks submission credentials: `Ok(Some((account, senders)))` when valid, `Ok(None)` when
    /// not, `Err(())` when they cannot be checked now. The MX never calls it.
    fn authenticate(
        &self,
        user: &str,
        password: &str,
    ) -> impl Future<Output = Result<Option<(String, Vec<String>)>, ()>> + Send {
        let _ = (user, password);
        async { Ok(None) }
    }
}

/// What a submission listener adds (RFC 6409, RFC 8314).
pub struct SubmissionSettings {
    /// TLS from the first byte (port 465) instead of STARTTLS (port 587).
    pub implicit_tls: bool,
    /// Shared by all submission listeners, so that switching ports gains an attacker nothing.
    pub throttle: Arc<Mutex<AuthThrottle>>,
    pub rate: Arc<Mutex<RateLimit>>,
}

/// Everything a listener needs.
pub struct SmtpServer<D: MailDrop> {
    pub session: Arc<SessionConfig>,
    pub drop: D,
    /// `None`: no STARTTLS.
    pub tls: Option<Arc<TlsAcceptor>>,
    /// Waiting for a command (RFC 5321 §4.5.3.2: at least 5 minutes).
    pub command_timeout: Duration,
    /// Waiting for DATA/BDAT bytes (RFC 5321 §4.5.3.2: 3 minutes per block; we allow the whole).
    pub data_timeout: Duration,
    /// `Some` for a submission listener.
    pub submission: Option<SubmissionSettings>,
    connections: Arc<ConnectionLimit>,
    /// New connections per address and network (`None`: no limit).
    connection_rate: Option<Arc<kurier_access::RateLimit>>,
}

impl<D: MailDrop> SmtpServer<D> {
    pub fn new(
        session: SessionConfig,
        drop: D,
        tls: Option<Arc<TlsAcceptor>>,
        command_timeout: Duration,
        data_timeout: Duration,
        max_connections_per_ip: usize,
    ) -> Self {
        SmtpServer {
            session: Arc::new(session),
            drop,
            tls,
            command_timeout,
            data_timeout,
            submission: None,
            connections: ConnectionLimit::new(max_connections_per_ip),
            connection_rate: None,
        }
    }

    /// Limits the rate of new connections.
    pub fn with_connection_rate(mut self, rate: Arc<kurier_access::RateLimit>) -> Self {
        self.connection_rate = Some(rate);
        self
    }

    /// Makes this a submission listener.
    pub fn with_submission(mut self, settings: SubmissionSettings) -> Self {
        self.submission = Some(settings);
        self
    }
}

/// Serves SMTP on `listener` until `shutdown` completes; then stops accepting, tells idle
/// sessions 421, lets transactions in progress finish, and returns when all are closed.
pub async fn serve<D: MailDrop>(
    listener: TcpListener,
    server: Arc<SmtpServer<D>>,
    shutdown: impl Future<Output = ()>,
) {
    kurier_access::serve_connections(listener, "SMTP", shutdown, |tcp, peer, stop| {
        connection(tcp, peer, server.clone(), stop)
    })
    .await;
}

async fn connection<D: MailDrop>(
    mut tcp: TcpStream,
    peer: SocketAddr,
    server: Arc<SmtpServer<D>>,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(_slot) = server.connections.admit(peer.ip()) else {
        // On 465 a plain-text 421 would only break the client's TLS handshake: just close.
        if server.submission.as_ref().is_some_and(|s| s.implicit_tls) {
            tracing::info!(%peer, "SMTP connection refused: per-IP limit");
            return;
        }
        let _ = tcp
            .write_all(
                &Reply::new(
                    421,
                    "4.7.0",
                    "Too many connections from your address, try again later",
                )
                .to_bytes(),
            )
            .await;
        tracing::info!(%peer, "SMTP connection refused: per-IP limit");
        return;
    };
    if let Some(rate) = &server.connection_rate {
        let verdict = rate.hit(peer.ip(), std::time::Instant::now());
        if verdict != kurier_access::RateVerdict::Allowed {
            let ip = peer.ip().to_canonical();
            let _ = tcp
                .write_all(
                    &Reply::new(
                        421,
                        "4.7.0",
                        format!("Error: too many connections from [{ip}], try again later"),
                    )
                    .to_bytes(),
                )
                .await;
            tracing::info!(%peer, limit = ?verdict, "SMTP connection refused: connection rate");
            return;
        }
    }
    let mut session = Session::new(server.session.clone(), PeerInfo { ip: peer.ip() });
    let mut buf = Vec::with_capacity(4096);
    let mut conn = Conn {
        server: &server,
        stop,
        peer,
    };
    if server.submission.as_ref().is_some_and(|s| s.implicit_tls) {
        // RFC 8314 §3.3: TLS from the first byte, then the greeting.
        let Some((mut tls, info)) = handshake(&server, tcp, peer).await else {
            return;
        };
        session.tls_started(info);
        if tls.write_all(&session.greeting().to_bytes()).await.is_ok() {
            let _ = conn.drive(&mut tls, &mut session, &mut buf).await;
        }
        let _ = tls.shutdown().await;
        return;
    }
    if tcp.write_all(&session.greeting().to_bytes()).await.is_err() {
        return;
    }
    if let End::StartTls = conn.drive(&mut tcp, &mut session, &mut buf).await {
        // RFC 3207 §4.2 / CVE-2011-0411: nothing the client sent before the handshake counts.
        buf.clear();
        let Some((mut tls, info)) = handshake(&server, tcp, peer).await else {
            return;
        };
        session.tls_started(info);
        let _ = conn.drive(&mut tls, &mut session, &mut buf).await;
        let _ = tls.shutdown().await;
    }
}

/// The server side of a TLS handshake, with what it negotiated.
async fn handshake<D: MailDrop>(
    server: &SmtpServer<D>,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<(tokio_openssl::SslStream<TcpStream>, TlsInfo)> {
    let acceptor = server.tls.clone()?;
    let tls = match acceptor.accept_within(tcp, Duration::from_secs(30)).await {
        Ok(tls) => tls,
        Err(e) => {
            tracing::info!(%peer, error = %e, "SMTP TLS handshake failed");
            return None;
        }
    };
    let info = tls_info(tls.ssl());
    tracing::info!(%peer, version = %info.version, cipher = %info.cipher, group = ?info.group, "SMTP TLS established");
    Some((tls, info))
}

enum End {
    Closed,
    StartTls,
}

struct Conn<'a, D: MailDrop> {
    server: &'a Arc<SmtpServer<D>>,
    stop: watch::Receiver<bool>,
    peer: SocketAddr,
}

impl<D: MailDrop> Conn<'_, D> {
    /// Runs the session over `io` until it closes or asks for STARTTLS.
    async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        session: &mut Session,
        buf: &mut Vec<u8>,
    ) -> End {
        let mut out: Vec<u8> = Vec::new();
        loop {
            // Work through everything buffered; replies are collected and sent together when
            // the input runs dry (RFC 2920 pipelining).
            let (used, event) = session.input(buf);
            buf.drain(..used);
            match event {
                reply @ (Event::Reply(_) | Event::Close(_)) => {
                    if let Some(end) = Self::answer(io, &mut out, reply).await {
                        return end;
                    }
                }
                Event::StartTls(r) => {
                    out.extend(r.to_bytes());
                    if io.write_all(&out).await.is_err() || io.flush().await.is_err() {
                        return End::Closed;
                    }
                    return End::StartTls;
                }
                Event::CheckRecipient(addr) => {
                    let sender = session.sender().unwrap_or_default().to_string();
                    let verdict = self.check(&session.connection(), &sender, &addr).await;
                    let next = session.recipient_verdict(verdict);
                    if let Some(end) = Self::answer(io, &mut out, next).await {
                        return end;
                    }
                }
                Event::Authenticate { user, password } => {
                    let outcome = self.authenticate(&user, &password).await;
                    let next = session.auth_result(outcome);
                    if let Some(end) = Self::answer(io, &mut out, next).await {
                        return end;
                    }
                }
                Event::Deliver(message) => {
                    let (outcome, id) = self.deliver(&message).await;
                    let next = session.delivered(outcome, &id);
                    if let Some(end) = Self::answer(io, &mut out, next).await {
                        return end;
                    }
                }
                Event::NeedInput if session.is_closed() => {
                    // A closed session reads nothing more (RFC 5321 §3.8: 421 closes).
                    let _ = io.write_all(&out).await;
                    return End::Closed;
                }
                Event::NeedInput if used > 0 && !buf.is_empty() => continue,
                Event::NeedInput => {
                    if !out.is_empty() {
                        if io.write_all(&out).await.is_err() {
                            return End::Closed;
                        }
                        out.clear();
                    }
                    let limit = if session.in_message() {
                        self.server.data_timeout
                    } else {
                        self.server.command_timeout
                    };
                    let mut chunk = [0u8; 16 * 1024];
                    let stopping = *self.stop.borrow() && !session.in_message();
                    if stopping {
                        let _ = io.write_all(&session.shutdown_reply().to_bytes()).await;
                        return End::Closed;
                    }
                    tokio::select! {
                        read = tokio::time::timeout(limit, io.read(&mut chunk)) => match read {
                            Ok(Ok(0)) | Ok(Err(_)) => return End::Closed,
                            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                            Err(_) => {
                                let _ = io.write_all(&session.timeout_reply().to_bytes()).await;
                                tracing::info!(peer = %self.peer, "SMTP session timed out");
                                return End::Closed;
                            }
                        },
                        _ = self.stop.changed(), if !session.in_message() => {
                            let _ = io.write_all(&session.shutdown_reply().to_bytes()).await;
                            return End::Closed;
                        }
                    }
                }
            }
        }
    }

    /// Queues a reply; a `Close` (421 after too many errors, say — also from a driver
    /// callback) is sent at once and ends the connection: nothing the client sends after it
    /// is read.
    async fn answer<S: AsyncWrite + Unpin>(
        io: &mut S,
        out: &mut Vec<u8>,
        event: Event,
    ) -> Option<End> {
        match event {
            Event::Reply(r) => {
                out.extend(r.to_bytes());
                None
            }
            Event::Close(r) => {
                out.extend(r.to_bytes());
                let _ = io.write_all(out).await;
                let _ = io.flush().await;
                Some(End::Closed)
            }
            _ => None,
        }
    }

    async fn check(&self, client: &ConnectionFacts, sender: &str, addr: &str) -> Verdict {
        self.server.drop.check_recipient(client, sender, addr).await
    }

    /// Checks credentials with the failure throttle: growing delays, then a temporary block.
    /// Logs the outcome and the user name, never the password.
    async fn authenticate(&self, user: &str, password: &str) -> AuthOutcome {
        let Some(sub) = &self.server.submission else {
            return AuthOutcome::Invalid;
        };
        let check = self.server.drop.authenticate(user, password);
        match kurier_access::throttled_login(&sub.throttle, self.peer.ip(), user, check).await {
            LoginOutcome::Ok((account, senders)) => {
                tracing::info!(peer = %self.peer, account = %account, "authenticated");
                AuthOutcome::Ok { account, senders }
            }
            LoginOutcome::Invalid => {
                tracing::warn!(peer = %self.peer, user, "authentication failed");
                AuthOutcome::Invalid
            }
            LoginOutcome::Blocked => {
                tracing::warn!(peer = %self.peer, user, "authentication blocked after repeated failures");
                AuthOutcome::Throttled
            }
            LoginOutcome::Unavailable => AuthOutcome::Throttled,
        }
    }

    async fn deliver(&self, m: &Message) -> (Delivery, String) {
        if let (Some(sub), Some(account)) = (&self.server.submission, &m.connection.account)
            && !sub
                .rate
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .try_send(account, Instant::now())
        {
            tracing::warn!(peer = %self.peer, account = %account, "sending rate limit reached");
            return (Delivery::RateLimited, m.id.clone());
        }
        let outcome = self.server.drop.deliver(m).await;
        match &outcome {
            // Local mailboxes have it now; other domains' recipients wait in the outbound queue.
            Delivery::Stored if m.recipients.is_empty() => tracing::info!(
                peer = %self.peer, id = %m.id, from = %m.from, remote = m.remote.len(),
                size = m.body.len(), "message queued"
            ),
            Delivery::Stored => tracing::info!(
                peer = %self.peer, id = %m.id, from = %m.from, recipients = m.recipients.len(),
                remote = m.remote.len(), size = m.body.len(), "message delivered"
            ),
            other => {
                tracing::warn!(peer = %self.peer, id = %m.id, outcome = ?other, "message not stored; the sender was told")
            }
        }
        (outcome, m.id.clone())
    }
}
