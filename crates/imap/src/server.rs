//! The async IMAP server: accepts connections on 993 (implicit TLS, RFC 8314) and 143
//! (STARTTLS, RFC 9051 §6.2.1), frames commands with `reader`, and runs a `Session` per
//! connection against the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kurier_access::{AuthThrottle, ByteBudget, ConnectionLimit, Reservation};
use kurier_store::Store;
use kurier_tls::TlsAcceptor;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::reader::{CommandReader, Step};
use crate::session::{Flow, Session};

/// What every IMAP listener of one Kurier shares.
pub struct ImapServer {
    pub store: Arc<dyn Store>,
    pub tls: Arc<TlsAcceptor>,
    /// Shared with submission and POP3 (TR-03108 MUA-2: one throttle for every login).
    pub throttle: Arc<Mutex<AuthThrottle>>,
    pub connections: Arc<ConnectionLimit>,
    /// Announced as APPENDLIMIT; larger APPENDs get `NO [TOOBIG]`.
    pub max_message_size: u64,
    /// Before login (RFC 9051 §5.4 asks at least 30 minutes only after it).
    pub login_timeout: Duration,
    /// After login, outside IDLE (RFC 9051 §5.4: at least 30 minutes).
    pub idle_timeout: Duration,
    /// How often an IDLE session hears `* OK Still here` (keeps NAT state alive; no session
    /// is ever cut for its age, TR-03108 TLS-8).
    pub keepalive: Duration,
    /// Headers already read, shared by all sessions.
    pub headers: crate::cache::HeaderCache,
    /// RAM for literals (APPEND bodies), shared with SMTP's message bodies: a literal that
    /// does not fit now gets `NO [UNAVAILABLE]` instead of `+`.
    pub body_memory: Arc<ByteBudget>,
    /// Told of every COPY and MOVE (a spam filter learns from Junk moves); `None`: nobody.
    pub training: Option<Arc<dyn JunkTraining>>,
}

/// Who hears of messages copied between mailboxes. Called after the copy is committed, before
/// the reply; it must only queue work, never wait.
pub trait JunkTraining: Send + Sync {
    /// `uids` are the copies' UIDs in `to`.
    fn copied(&self, from: &kurier_store::Mailbox, to: &kurier_store::Mailbox, uids: &[u32]);
}

/// One listening socket's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapListener {
    /// Port 993.
    ImplicitTls,
    /// Port 143: STARTTLS, no login before it.
    StartTls,
}

/// Serves IMAP on `listener` until `shutdown` completes; open sessions are then told BYE.
pub async fn serve(
    listener: TcpListener,
    kind: ImapListener,
    server: Arc<ImapServer>,
    shutdown: impl Future<Output = ()>,
) {
    kurier_access::serve_connections(listener, "IMAP", shutdown, |tcp, peer, stop| {
        connection(tcp, peer, kind, server.clone(), stop)
    })
    .await;
}

async fn connection(
    mut tcp: TcpStream,
    peer: SocketAddr,
    kind: ImapListener,
    server: Arc<ImapServer>,
    stop: watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let Some(_slot) = server.connections.admit(peer.ip()) else {
        // On 993 a plain-text BYE would only break the client's TLS handshake: just close.
        if kind == ImapListener::StartTls {
            let _ = tcp
                .write_all(b"* BYE [UNAVAILABLE] Too many connections from your address\r\n")
                .await;
        }
        tracing::info!(%peer, "IMAP connection refused: per-IP limit");
        return;
    };
    let mut session = Session::new(server.clone(), peer, kind == ImapListener::StartTls);
    // Small limits until login; `drive` widens them to the APPEND limit after it.
    let (line, literal, command) = session.reader_limits();
    let reader = CommandReader::new(line, literal, command);
    if kind == ImapListener::ImplicitTls {
        let Some(tls) = handshake(&server, tcp, peer).await else {
            return;
        };
        session.tls_started();
        let mut io = Io::new(tls, reader, stop, &server.body_memory);
        io.out.extend_from_slice(&session.greeting());
        let _ = drive(&mut io, &mut session).await;
        let _ = io.stream.shutdown().await;
        return;
    }
    let mut io = Io::new(tcp, reader, stop.clone(), &server.body_memory);
    io.out.extend_from_slice(&session.greeting());
    if let Flow::StartTls = drive(&mut io, &mut session).await {
        // RFC 9051 §6.2.1 / CVE-2011-0411: nothing sent before the handshake counts.
        let Io {
            stream, mut reader, ..
        } = io;
        reader.clear();
        let Some(tls) = handshake(&server, stream, peer).await else {
            return;
        };
        session.tls_started();
        let mut io = Io::new(tls, reader, stop, &server.body_memory);
        let _ = drive(&mut io, &mut session).await;
        let _ = io.stream.shutdown().await;
    }
}

async fn handshake(
    server: &ImapServer,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<tokio_openssl::SslStream<TcpStream>> {
    match server.tls.accept_within(tcp, Duration::from_secs(30)).await {
        Ok(tls) => {
            let ssl = tls.ssl();
            tracing::debug!(%peer, version = ssl.version_str(),
                cipher = ssl.current_cipher().map(|c| c.name()).unwrap_or("?"), "IMAP TLS established");
            Some(tls)
        }
        Err(e) => {
            tracing::info!(%peer, error = %e, "IMAP TLS handshake failed");
            None
        }
    }
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadEnd {
    Closed,
    TimedOut,
    Stopping,
    TooLong,
}

/// A connection's stream with its command reader and output buffer.
pub(crate) struct Io<S> {
    pub(crate) stream: S,
    pub(crate) reader: CommandReader,
    pub(crate) out: Vec<u8>,
    pub(crate) stop: watch::Receiver<bool>,
    /// The budget's bytes the literals of the command being read hold.
    held: Reservation,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    fn new(
        stream: S,
        reader: CommandReader,
        stop: watch::Receiver<bool>,
        budget: &Arc<ByteBudget>,
    ) -> Self {
        Io {
            stream,
            reader,
            out: Vec::new(),
            stop,
            held: Reservation::empty(budget),
        }
    }

    pub(crate) async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
            if self.out.capacity() > 64 * 1024 {
                self.out = Vec::new();
            }
        }
        self.stream.flush().await
    }

    /// Reads more bytes into the reader (flushing first); `limit` `None` waits forever.
    pub(crate) async fn fill(&mut self, limit: Option<Duration>) -> Result<(), ReadEnd> {
        self.flush().await.map_err(|_| ReadEnd::Closed)?;
        self.reader.shrink();
        if *self.stop.borrow() {
            return Err(ReadEnd::Stopping);
        }
        let mut chunk = [0u8; 8192];
        let read = self.stream.read(&mut chunk);
        let timed = async {
            match limit {
                Some(l) => tokio::time::timeout(l, read).await.ok(),
                None => Some(read.await),
            }
        };
        tokio::select! {
            r = timed => match r {
                Some(Ok(0)) | Some(Err(_)) => Err(ReadEnd::Closed),
                Some(Ok(n)) => {
                    self.reader.feed(&chunk[..n]);
                    Ok(())
                }
                None => Err(ReadEnd::TimedOut),
            },
            _ = self.stop.changed() => Err(ReadEnd::Stopping),
        }
    }

    /// One line (SASL response), waiting at most `limit`.
    pub(crate) async fn line(&mut self, limit: Duration) -> Result<Vec<u8>, ReadEnd> {
        loop {
            match self.reader.take_line() {
                Some(Ok(line)) => return Ok(line),
                Some(Err(())) => return Err(ReadEnd::TooLong),
                None => self.fill(Some(limit)).await?,
            }
        }
    }
}

/// Runs the session until it ends or asks for STARTTLS.
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(io: &mut Io<S>, session: &mut Session) -> Flow {
    loop {
        let (line, literal, command) = session.reader_limits();
        io.reader.set_limits(line, literal, command);
        match io.reader.next_step() {
            Step::Command(bytes) => {
                let flow = session.execute(&bytes, io).await;
                // The command's literals are done with.
                io.held.clear();
                if flow != Flow::Continue {
                    let _ = io.flush().await;
                    return flow;
                }
            }
            Step::NeedMore => {
                if let Err(end) = io.fill(Some(session.timeout())).await {
                    let bye: &[u8] = match end {
                        ReadEnd::TimedOut => b"* BYE Autologout; idle for too long\r\n",
                        ReadEnd::Stopping => b"* BYE [UNAVAILABLE] Server shutting down\r\n",
                        ReadEnd::TooLong => b"* BYE Line too long\r\n",
                        ReadEnd::Closed => b"",
                    };
                    io.out.extend_from_slice(bye);
                    let _ = io.flush().await;
                    return Flow::Close;
                }
            }
            Step::Literal { size, sync } => {
                if io.held.grow(size) {
                    if sync {
                        io.out.extend_from_slice(b"+ Ready for literal data\r\n");
                    }
                } else if sync {
                    // Too many large literals in flight (all sessions): this one later.
                    let tag = io.reader.refuse_literal();
                    io.held.clear();
                    io.out.extend_from_slice(&tag);
                    io.out.extend_from_slice(
                        b" NO [UNAVAILABLE] The server is busy with other messages; try again later\r\n",
                    );
                } else {
                    // A non-synchronizing literal is already on its way: it cannot be refused.
                    io.out.extend_from_slice(
                        b"* BYE [UNAVAILABLE] The server is busy with other messages; try again later\r\n",
                    );
                    let _ = io.flush().await;
                    return Flow::Close;
                }
            }
            Step::LiteralTooBig { tag, size } => {
                io.out.extend_from_slice(&tag);
                io.out.extend_from_slice(
                    format!(
                        " NO [TOOBIG] Literal of {size} octets is larger than the limit of {}\r\n",
                        session.max_literal()
                    )
                    .as_bytes(),
                );
            }
            Step::TooLong => {
                io.out
                    .extend_from_slice(b"* BYE [TOOBIG] Command or literal too long\r\n");
                let _ = io.flush().await;
                return Flow::Close;
            }
        }
    }
}
