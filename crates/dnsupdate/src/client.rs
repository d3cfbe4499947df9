//! The exchange: one signed UPDATE over TCP (RFC 1035 §4.2.2 framing; TCP, so that no answer
//! is truncated), the answer matched by ID, its TSIG checked, its RCODE explained.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::key_file::TsigKey;
use crate::message::Update;
use crate::{UpdateError, tsig};

/// Sends `update` to `server`, signed with `key`; done when the server answered NOERROR with a
/// valid TSIG. Everything, the connection included, within `timeout`.
pub async fn send(
    server: SocketAddr,
    update: &Update,
    key: &TsigKey,
    timeout: Duration,
) -> Result<(), UpdateError> {
    tokio::time::timeout(timeout, exchange(server, update, key))
        .await
        .unwrap_or_else(|_| {
            Err(UpdateError::Transport(format!(
                "{server} did not answer the update of {} within {} s",
                update.zone,
                timeout.as_secs()
            )))
        })
}

async fn exchange(server: SocketAddr, update: &Update, key: &TsigKey) -> Result<(), UpdateError> {
    let mut id = [0u8; 2];
    openssl::rand::rand_bytes(&mut id)
        .map_err(|e| UpdateError::Transport(format!("no random message ID: {e}")))?;
    let id = u16::from_be_bytes(id);
    let (wire, mac) = tsig::sign(update.message(id)?, key, unix_now())?;
    let len = u16::try_from(wire.len())
        .map_err(|_| UpdateError::Input(format!("the update of {} is too large", update.zone)))?;
    let io = |e: std::io::Error| UpdateError::Transport(format!("{server}: {e}"));
    let mut tcp = tokio::net::TcpStream::connect(server).await.map_err(io)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&wire);
    tcp.write_all(&framed).await.map_err(io)?;
    let n = tcp.read_u16().await.map_err(io)?;
    let mut answer = vec![0u8; usize::from(n)];
    tcp.read_exact(&mut answer).await.map_err(io)?;
    judge(&answer, id, &mac, key, &update.zone, server)
}

fn judge(
    answer: &[u8],
    id: u16,
    mac: &[u8],
    key: &TsigKey,
    zone: &str,
    server: SocketAddr,
) -> Result<(), UpdateError> {
    let m = Message::from_vec(answer)
        .map_err(|e| UpdateError::Transport(format!("{server} sent no DNS message: {e}")))?;
    if m.metadata.id != id {
        return Err(UpdateError::Transport(format!(
            "{server} answered another message (ID {} instead of {id})",
            m.metadata.id
        )));
    }
    if let Some(error) = tsig::tsig_of(&m).and_then(|(_, t)| t.error) {
        return Err(UpdateError::Refused(format!(
            "{server} refused the update of {zone}: TSIG error {error:?} (RFC 8945 §5.2: {})",
            match error {
                hickory_proto::rr::rdata::tsig::TsigError::BadKey =>
                    format!("the server knows no key {:?} with this algorithm", key.name),
                hickory_proto::rr::rdata::tsig::TsigError::BadSig =>
                    "the secret does not match the server's".into(),
                hickory_proto::rr::rdata::tsig::TsigError::BadTime =>
                    "the clocks are too far apart".into(),
                _ => "see the server's log".into(),
            }
        )));
    }
    let rcode = m.metadata.response_code;
    if rcode != ResponseCode::NoError {
        let hint = match rcode {
            ResponseCode::NotAuth => {
                "the key is not allowed to update this zone, or the server is not its primary"
            }
            ResponseCode::Refused => {
                "the server does not take updates for this zone from us (its ACL)"
            }
            ResponseCode::NotZone => "a record is outside the zone",
            ResponseCode::ServFail => "the server could not apply it (see its log)",
            ResponseCode::FormErr => "the server could not read the update",
            _ => "see the server's log",
        };
        return Err(UpdateError::Refused(format!(
            "{server} refused the update of {zone}: {rcode} ({hint})"
        )));
    }
    tsig::verify(answer, mac, key, unix_now())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
