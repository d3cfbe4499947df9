//! The thin async driver: one connection to one filter per message (TCP, or a Unix socket as
//! Postfix's `unix:` milters), the conversation of `conversation` over it, every read under the
//! filter's time limit, then Quit.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::conversation::{Changes, Conversation, Envelope, Next, Verdict};
use crate::protocol::{Command, packet_len, parse_response};

/// Where a filter listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MilterAddress {
    Tcp(std::net::SocketAddr),
    Unix(std::path::PathBuf),
}

impl MilterAddress {
    /// "127.0.0.1:8891", "inet:8891@127.0.0.1" (Postfix's form) or "unix:/run/x.sock".
    pub fn parse(s: &str) -> Option<MilterAddress> {
        if let Some(path) = s.strip_prefix("unix:") {
            return (!path.is_empty()).then(|| MilterAddress::Unix(path.into()));
        }
        if let Some(rest) = s.strip_prefix("inet:") {
            let (port, host) = rest.split_once('@')?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let ip: std::net::IpAddr = host.parse().ok()?;
            return Some(MilterAddress::Tcp((ip, port.parse().ok()?).into()));
        }
        s.parse().ok().map(MilterAddress::Tcp)
    }
}

impl std::fmt::Display for MilterAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MilterAddress::Tcp(a) => write!(f, "{a}"),
            MilterAddress::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Talks to the filter at `address` about one message: its verdict and changes, or why it
/// could not be had (the caller applies the filter's default action).
pub async fn check(
    address: &MilterAddress,
    timeout: Duration,
    envelope: &Envelope<'_>,
    message: &[u8],
) -> Result<(Verdict, Changes), String> {
    let conversation = Conversation::new(envelope, message);
    let connect = async {
        match address {
            MilterAddress::Tcp(a) => tokio::net::TcpStream::connect(a)
                .await
                .map(|s| Box::new(s) as Box<dyn Stream>),
            MilterAddress::Unix(p) => tokio::net::UnixStream::connect(p)
                .await
                .map(|s| Box::new(s) as Box<dyn Stream>),
        }
    };
    let mut io = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| format!("no connection within {} ms", timeout.as_millis()))?
        .map_err(|e| format!("cannot connect: {e}"))?;
    let result = converse(&mut *io, conversation, timeout).await;
    // Quit is a courtesy; the connection closes either way.
    let _ = tokio::time::timeout(
        Duration::from_millis(500),
        io.write_all(&Command::Quit.encode()),
    )
    .await;
    result
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn converse(
    io: &mut dyn Stream,
    mut c: Conversation,
    timeout: Duration,
) -> Result<(Verdict, Changes), String> {
    loop {
        match c.step() {
            Next::Done(v) => return Ok((v, c.changes)),
            Next::Send { packet, wait } => {
                tokio::time::timeout(timeout, io.write_all(&packet))
                    .await
                    .map_err(|_| "the filter does not read".to_string())?
                    .map_err(|e| format!("writing: {e}"))?;
                if !wait {
                    continue;
                }
                io.flush().await.map_err(|e| format!("writing: {e}"))?;
                // Answers until the awaited one (changes and progress come before it).
                while c.waiting() {
                    let packet = tokio::time::timeout(timeout, read_packet(io))
                        .await
                        .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))??;
                    let r = parse_response(&packet).map_err(|e| e.to_string())?;
                    c.answer(r)?;
                }
            }
        }
    }
}

async fn read_packet(io: &mut dyn Stream) -> Result<Vec<u8>, String> {
    let mut head = [0u8; 4];
    io.read_exact(&mut head)
        .await
        .map_err(|e| format!("the filter closed the connection or failed: {e}"))?;
    let n = packet_len(head).map_err(|e| e.to_string())?;
    let mut packet = vec![0u8; n];
    io.read_exact(&mut packet)
        .await
        .map_err(|e| format!("the filter closed the connection mid-answer: {e}"))?;
    Ok(packet)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn addresses_in_both_spellings() {
        assert_eq!(
            MilterAddress::parse("127.0.0.1:8891"),
            Some(MilterAddress::Tcp("127.0.0.1:8891".parse().unwrap()))
        );
        assert_eq!(
            MilterAddress::parse("inet:8891@127.0.0.1"),
            Some(MilterAddress::Tcp("127.0.0.1:8891".parse().unwrap()))
        );
        assert_eq!(
            MilterAddress::parse("inet:8891@[::1]"),
            Some(MilterAddress::Tcp("[::1]:8891".parse().unwrap()))
        );
        assert_eq!(
            MilterAddress::parse("unix:/run/clamav/clamav-milter.ctl"),
            Some(MilterAddress::Unix("/run/clamav/clamav-milter.ctl".into()))
        );
        for bad in [
            "",
            "unix:",
            "inet:x@127.0.0.1",
            "inet:8891@host.example",
            "localhost",
        ] {
            assert_eq!(MilterAddress::parse(bad), None, "{bad}");
        }
    }
}
