//! The HTTP side: one exchange per scan or lesson, over a fresh TCP connection (rspamd runs
//! next to the MTA; a connection costs less than a stale pooled one that fails mid-message),
//! the whole exchange under one time limit, the reply read up to `MAX_REPLY_BYTES`.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::protocol::{self, Learned, MAX_REPLY_BYTES, Reply, ReplyError, ScanRequest};

/// Why rspamd gave no usable answer.
#[derive(Debug, thiserror::Error)]
pub enum RspamdError {
    #[error("no answer from rspamd at {0} within {1} ms")]
    Timeout(SocketAddr, u128),
    #[error("rspamd at {0}: {1}")]
    Http(SocketAddr, String),
    #[error("rspamd at {0} answered HTTP {1}: {2}")]
    Status(SocketAddr, u16, String),
    #[error("rspamd at {0}: {1}")]
    Reply(SocketAddr, ReplyError),
}

/// Which lesson to teach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnKind {
    Spam,
    Ham,
}

impl LearnKind {
    pub fn path(self) -> &'static str {
        match self {
            LearnKind::Spam => "/learnspam",
            LearnKind::Ham => "/learnham",
        }
    }
}

/// One rspamd: its normal worker (scans) and its controller (learning).
#[derive(Debug, Clone)]
pub struct Rspamd {
    pub scanner: SocketAddr,
    pub controller: Option<SocketAddr>,
    /// The controller's password (rspamd's `password`; not needed from its `secure_ip`).
    pub password: Option<String>,
    pub timeout: Duration,
}

impl Rspamd {
    /// Scans one message.
    pub async fn scan(&self, request: &ScanRequest<'_>, body: &[u8]) -> Result<Reply, RspamdError> {
        let addr = self.scanner;
        let (status, _, reply) = self
            .exchange(addr, "/checkv2", request.headers(), body)
            .await?;
        if status != 200 {
            return Err(RspamdError::Status(addr, status, snippet(&reply)));
        }
        protocol::parse_reply(&reply).map_err(|e| RspamdError::Reply(addr, e))
    }

    /// Teaches the controller one message as spam or ham.
    pub async fn learn(&self, kind: LearnKind, body: &[u8]) -> Result<Learned, RspamdError> {
        let Some(addr) = self.controller else {
            return Err(RspamdError::Http(
                self.scanner,
                "no controller configured".into(),
            ));
        };
        let mut headers = Vec::new();
        if let Some(p) = &self.password {
            headers.push(("Password", p.clone()));
        }
        let (status, reason, reply) = self.exchange(addr, kind.path(), headers, body).await?;
        protocol::parse_learned(status, &reason, &reply).map_err(|e| RspamdError::Reply(addr, e))
    }

    async fn exchange(
        &self,
        addr: SocketAddr,
        path: &str,
        headers: Vec<(&'static str, String)>,
        body: &[u8],
    ) -> Result<(u16, String, Bytes), RspamdError> {
        let http = |e: String| RspamdError::Http(addr, e);
        let work = async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|e| http(format!("cannot connect: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .map_err(|e| http(e.to_string()))?;
            let driver = tokio::spawn(conn);
            let mut builder = hyper::Request::builder()
                .method("POST")
                .uri(path)
                .header(hyper::header::HOST, addr.to_string())
                .header(hyper::header::USER_AGENT, "Kurier");
            for (name, value) in headers {
                // Values were cleaned of control characters; one that is still no header value
                // is left out.
                if let Ok(v) = hyper::header::HeaderValue::from_bytes(value.as_bytes()) {
                    builder = builder.header(name, v);
                }
            }
            let request = builder
                .body(Full::new(Bytes::copy_from_slice(body)))
                .map_err(|e| http(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| http(e.to_string()))?;
            let status = response.status().as_u16();
            // rspamd says why it skipped a lesson in the status line (HTTP 204 has no body).
            let reason = response
                .extensions()
                .get::<hyper::ext::ReasonPhrase>()
                .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
                .unwrap_or_default();
            let reply = Limited::new(response.into_body(), MAX_REPLY_BYTES)
                .collect()
                .await
                .map_err(|e| http(format!("reading the reply: {e}")))?
                .to_bytes();
            driver.abort();
            Ok((status, reason, reply))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| RspamdError::Timeout(addr, self.timeout.as_millis()))?
    }
}

/// The start of a reply, for a log line.
fn snippet(b: &[u8]) -> String {
    protocol::clean(&String::from_utf8_lossy(&b[..b.len().min(200)]), 200)
}
