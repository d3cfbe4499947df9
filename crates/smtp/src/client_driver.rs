//! The async outbound SMTP client: connects, greets (EHLO, HELO as fallback), upgrades with
//! STARTTLS (RFC 3207) through the `tls` crate's client profile and the peer check the caller's
//! policy chose, and runs transactions — pipelined when the server allows it (RFC 2920), with
//! BDAT when it offers CHUNKING (RFC 3030) — over one connection until `quit`.
//!
//! Timeouts follow RFC 5321 §4.5.3.2 in spirit: one for each command, a longer one for the end
//! of data.

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use kurier_tls::{ClientTls, PeerCheck, PeerVerdict, ResultType};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::client::{
    BodyNeeds, Envelope, Extensions, Refusal, ReplyParser, ServerReply, dot_stuff, mail_command,
    rcpt_command,
};
use crate::session::TlsInfo;
use crate::tls_info;

/// Longest reply line we read (RFC 5321 §4.5.3.1.5 says 512; servers exceed it).
const MAX_LINE: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, String),
    #[error("connection to {0} lost: {1}")]
    Io(SocketAddr, String),
    #[error("{0} did not answer within {1:?}")]
    Timeout(SocketAddr, Duration),
    #[error("{0}: {1}")]
    Protocol(SocketAddr, String),
    /// The server refused at a point where nothing else can go on (greeting, EHLO, MAIL FROM).
    #[error("{addr} answered {command}: {reply}")]
    Rejected {
        addr: SocketAddr,
        command: &'static str,
        reply: ServerReply,
    },
    /// The TLS handshake failed, or the peer's certificate failed the check asked for.
    #[error("TLS with {addr} failed: {detail}")]
    Tls {
        addr: SocketAddr,
        verdict: PeerVerdict,
        detail: String,
    },
    /// This server cannot take the message at all (no SMTPUTF8, too large, no REQUIRETLS).
    #[error("{}", .0.reason)]
    Refused(Refusal),
}

impl ClientError {
    /// Worth trying again later (or at another MX): everything but a permanent refusal.
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Rejected { reply, .. } => reply.is_permanent(),
            ClientError::Refused(_) => true,
            _ => false,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One connection to an SMTP server.
pub struct SmtpClient {
    io: BufReader<Box<dyn Io>>,
    addr: SocketAddr,
    helo: String,
    timeout: Duration,
    data_timeout: Duration,
    ext: Extensions,
    tls: Option<(TlsInfo, PeerVerdict)>,
    /// A transaction has run on this connection; the next one starts with RSET.
    used: bool,
    /// Our end of the connection.
    local: Option<SocketAddr>,
    /// The first word of the server's greeting: its name (RFC 5321 §4.3.1).
    greeting_name: String,
    /// The certificate chain the server sent, leaf first (after STARTTLS).
    peer_chain: Vec<openssl::x509::X509>,
}

pub use crate::client::TransactionResult;

impl SmtpClient {
    /// Connects, reads the greeting and sends EHLO `helo` (HELO if EHLO is refused).
    pub async fn connect(
        addr: SocketAddr,
        helo: &str,
        timeout: Duration,
        data_timeout: Duration,
    ) -> Result<SmtpClient, ClientError> {
        SmtpClient::connect_from(addr, None, helo, timeout, data_timeout).await
    }

    /// `connect` from the local address `source` (of `addr`'s family), or the system's choice.
    pub async fn connect_from(
        addr: SocketAddr,
        source: Option<std::net::IpAddr>,
        helo: &str,
        timeout: Duration,
        data_timeout: Duration,
    ) -> Result<SmtpClient, ClientError> {
        let connect = async {
            match source {
                None => TcpStream::connect(addr).await,
                Some(ip) => {
                    let socket = if ip.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()?
                    } else {
                        tokio::net::TcpSocket::new_v6()?
                    };
                    socket.bind(SocketAddr::new(ip, 0)).map_err(|e| {
                        std::io::Error::new(
                            e.kind(),
                            format!(
                                "cannot send from {ip} (delivery.source_ipv4/source_ipv6): {e}"
                            ),
                        )
                    })?;
                    socket.connect(addr).await
                }
            }
        };
        let tcp = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout(addr, timeout))?
            .map_err(|e| ClientError::Connect(addr, e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().ok();
        let mut c = SmtpClient {
            io: BufReader::new(Box::new(tcp)),
            addr,
            helo: helo.to_string(),
            timeout,
            data_timeout,
            ext: Extensions::default(),
            tls: None,
            used: false,
            local,
            greeting_name: String::new(),
            peer_chain: Vec::new(),
        };
        let greeting = c.read_reply(timeout).await?;
        c.greeting_name = greeting
            .lines
            .first()
            .and_then(|l| l.split_ascii_whitespace().next())
            .unwrap_or("")
            .chars()
            .filter(|ch| ch.is_ascii_graphic())
            .take(255)
            .collect();
        if greeting.code != 220 {
            return Err(ClientError::Rejected {
                addr,
                command: "the connection",
                reply: greeting,
            });
        }
        c.hello().await?;
        Ok(c)
    }

    async fn hello(&mut self) -> Result<(), ClientError> {
        let r = self.command(&format!("EHLO {}", self.helo)).await?;
        if r.code == 250 {
            self.ext = Extensions::from_ehlo(&r);
            return Ok(());
        }
        let r = self.command(&format!("HELO {}", self.helo)).await?;
        if r.code != 250 {
            return Err(ClientError::Rejected {
                addr: self.addr,
                command: "HELO",
                reply: r,
            });
        }
        self.ext = Extensions::default();
        Ok(())
    }

    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    pub fn peer(&self) -> SocketAddr {
        self.addr
    }

    /// The server's certificate chain, leaf first (empty before STARTTLS).
    pub fn peer_chain(&self) -> &[openssl::x509::X509] {
        &self.peer_chain
    }

    /// Our address on this connection.
    pub fn local(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The name the server greeted with.
    pub fn greeting_name(&self) -> &str {
        &self.greeting_name
    }

    /// The TLS session and what the peer check proved, once STARTTLS succeeded.
    pub fn tls(&self) -> Option<&(TlsInfo, PeerVerdict)> {
        self.tls.as_ref()
    }

    /// STARTTLS, the handshake with SNI `sni` and `check`, and EHLO again (RFC 3207 §4.2: the
    /// extensions of before no longer count). A failed check ends the connection: nothing is
    /// sent over a connection whose peer did not prove what was required.
    pub async fn starttls(
        self,
        tls: &ClientTls,
        sni: &str,
        check: &PeerCheck,
    ) -> Result<SmtpClient, ClientError> {
        self.starttls_with(|| tls.ssl(sni, check), check).await
    }

    /// STARTTLS with the legacy client profile and no peer check (`ClientTls::legacy_ssl`):
    /// best effort only, for a destination no DANE or MTA-STS policy protects.
    pub async fn starttls_legacy(
        self,
        tls: &ClientTls,
        sni: &str,
    ) -> Result<SmtpClient, ClientError> {
        self.starttls_with(|| tls.legacy_ssl(sni), &PeerCheck::None)
            .await
    }

    async fn starttls_with(
        mut self,
        ssl: impl FnOnce() -> Result<openssl::ssl::Ssl, kurier_tls::TlsError>,
        check: &PeerCheck,
    ) -> Result<SmtpClient, ClientError> {
        let r = self.command("STARTTLS").await?;
        if r.code != 220 {
            return Err(ClientError::Tls {
                addr: self.addr,
                verdict: PeerVerdict::Failed {
                    result_type: ResultType::StarttlsNotSupported,
                    detail: r.to_string(),
                },
                detail: format!("STARTTLS was answered {r}"),
            });
        }
        if !self.io.buffer().is_empty() {
            // RFC 3207 §5 / CVE-2011-0411 on the client side: data before the handshake.
            return Err(ClientError::Protocol(
                self.addr,
                "the server sent data after its STARTTLS reply".into(),
            ));
        }
        let addr = self.addr;
        let tls_failed = |detail: String, verdict: PeerVerdict| ClientError::Tls {
            addr,
            verdict,
            detail,
        };
        let ssl = ssl().map_err(|e| tls_failed(e.to_string(), PeerVerdict::NotChecked))?;
        let inner = self.io.into_inner();
        let mut stream = SslStream::new(ssl, inner)
            .map_err(|e| tls_failed(e.to_string(), PeerVerdict::NotChecked))?;
        let handshake = tokio::time::timeout(self.timeout, Pin::new(&mut stream).connect()).await;
        let verdict = kurier_tls::client::verdict(stream.ssl(), check);
        match handshake {
            Err(_) => return Err(ClientError::Timeout(addr, self.timeout)),
            Ok(Err(e)) => {
                // Without a check, a failed handshake is always a failure to negotiate.
                let verdict = match verdict {
                    v if v.is_failure() => v,
                    _ => PeerVerdict::NotNegotiated {
                        detail: e.to_string(),
                    },
                };
                return Err(tls_failed(failure_words(&verdict), verdict));
            }
            Ok(Ok(())) => {}
        }
        if verdict.is_failure() {
            return Err(tls_failed(failure_words(&verdict), verdict));
        }
        let info = tls_info(stream.ssl());
        self.peer_chain = stream
            .ssl()
            .peer_cert_chain()
            .map(|c| c.iter().map(|x| x.to_owned()).collect())
            .unwrap_or_default();
        self.io = BufReader::new(Box::new(stream));
        self.tls = Some((info, verdict));
        self.hello().await?;
        Ok(self)
    }

    /// One transaction. Fails as a whole only when the connection breaks or MAIL FROM is
    /// refused; refused recipients are in the result. The decisions are
    /// `transaction::Transaction`'s; this writes and reads what it asks for.
    pub async fn send(
        &mut self,
        env: &Envelope,
        body: &[u8],
    ) -> Result<TransactionResult, ClientError> {
        use crate::transaction::{BodyFraming, Finished, Step, Transaction};
        let mail =
            mail_command(env, BodyNeeds::of(body), &self.ext).map_err(ClientError::Refused)?;
        let rcpts = env
            .recipients
            .iter()
            .map(|(a, dsn)| (a.clone(), rcpt_command(a, dsn.as_deref(), &self.ext)))
            .collect();
        let mut t = Transaction::new(mail, rcpts, &self.ext, self.used);
        self.used = true;
        let mut step = t.start();
        loop {
            step = match step {
                Step::Send(lines) => {
                    self.write(lines.as_bytes()).await?;
                    t.sent()
                }
                Step::SendBody(BodyFraming::Data) => {
                    self.write(&dot_stuff(body)).await?;
                    t.sent()
                }
                Step::SendBody(BodyFraming::BdatLast) => {
                    // BDAT has no framing to protect, but the next receiver might relay with
                    // DATA.
                    let body = crate::client::canonical_line_ends(body);
                    let mut chunk = format!("BDAT {} LAST\r\n", body.len()).into_bytes();
                    chunk.extend_from_slice(&body);
                    self.write(&chunk).await?;
                    t.sent()
                }
                Step::Read { data } => {
                    let limit = if data {
                        self.data_timeout
                    } else {
                        self.timeout
                    };
                    t.reply(self.read_reply(limit).await?)
                }
                Step::Done(Finished::Result(r)) => return Ok(r),
                Step::Done(Finished::Rejected { command, reply }) => {
                    return Err(ClientError::Rejected {
                        addr: self.addr,
                        command,
                        reply,
                    });
                }
            };
        }
    }

    /// QUIT, and close (errors ignored: the work is done).
    pub async fn quit(mut self) {
        let _ = self.command("QUIT").await;
        let _ = self.io.get_mut().shutdown().await;
    }

    async fn command(&mut self, line: &str) -> Result<ServerReply, ClientError> {
        self.write(format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(self.timeout).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let addr = self.addr;
        let io = self.io.get_mut();
        let w = async {
            io.write_all(bytes).await?;
            io.flush().await
        };
        tokio::time::timeout(self.data_timeout, w)
            .await
            .map_err(|_| ClientError::Timeout(addr, self.data_timeout))?
            .map_err(|e| ClientError::Io(addr, e.to_string()))
    }

    async fn read_reply(&mut self, limit: Duration) -> Result<ServerReply, ClientError> {
        let addr = self.addr;
        let mut parser = ReplyParser::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = async {
                let mut total = 0usize;
                loop {
                    let buf = self.io.fill_buf().await?;
                    if buf.is_empty() {
                        return Ok::<_, std::io::Error>(total);
                    }
                    let (n, done) = match buf.iter().position(|b| *b == b'\n') {
                        Some(i) => (i + 1, true),
                        None => (buf.len(), false),
                    };
                    if line.len() + n <= MAX_LINE {
                        line.extend_from_slice(&buf[..n]);
                    }
                    self.io.consume(n);
                    total += n;
                    if done {
                        return Ok(total);
                    }
                }
            };
            let n = tokio::time::timeout(limit, read)
                .await
                .map_err(|_| ClientError::Timeout(addr, limit))?
                .map_err(|e| ClientError::Io(addr, e.to_string()))?;
            if n == 0 {
                return Err(ClientError::Io(
                    addr,
                    "the server closed the connection".into(),
                ));
            }
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            if let Some(r) = parser
                .push_line(&line)
                .map_err(|e| ClientError::Protocol(addr, e.to_string()))?
            {
                return Ok(r);
            }
        }
    }
}

/// `validation-failure: the handshake ended before …`: the result type and the reason.
fn failure_words(verdict: &PeerVerdict) -> String {
    match (verdict.result_type(), verdict.detail()) {
        (Some(t), Some(d)) => format!("{t}: {d}"),
        _ => String::new(),
    }
}
