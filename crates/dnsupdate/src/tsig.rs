//! TSIG (RFC 8945): the MAC over a request (§4.3.1: the message, then the TSIG variables of
//! §4.3.3) and the check of the signed answer (§5.3: the request's MAC, the answer as sent
//! with its ID restored and the TSIG left out, then its TSIG variables).

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{
    TSIG, TsigAlgorithm as WireAlgorithm, make_tsig_record, message_tbs,
};
use hickory_proto::serialize::binary::BinEncoder;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::UpdateError;
use crate::key_file::{TsigAlgorithm, TsigKey};
use crate::record::name;

/// How far the clocks of server and client may be apart (RFC 8945 §10: 300 s recommended).
pub const FUDGE: u16 = 300;

fn wire_algorithm(a: TsigAlgorithm) -> WireAlgorithm {
    match a {
        TsigAlgorithm::HmacSha256 => WireAlgorithm::HmacSha256,
        TsigAlgorithm::HmacSha384 => WireAlgorithm::HmacSha384,
        TsigAlgorithm::HmacSha512 => WireAlgorithm::HmacSha512,
    }
}

fn hmac(key: &TsigKey, data: &[u8]) -> Result<Vec<u8>, UpdateError> {
    let digest = match key.algorithm {
        TsigAlgorithm::HmacSha256 => MessageDigest::sha256(),
        TsigAlgorithm::HmacSha384 => MessageDigest::sha384(),
        TsigAlgorithm::HmacSha512 => MessageDigest::sha512(),
    };
    let crypto = |e: openssl::error::ErrorStack| UpdateError::Input(format!("HMAC: {e}"));
    let pkey = PKey::hmac(&key.secret).map_err(crypto)?;
    let mut signer = Signer::new(digest, &pkey).map_err(crypto)?;
    signer.update(data).map_err(crypto)?;
    signer.sign_to_vec().map_err(crypto)
}

/// The signed request on the wire, and its MAC (which the answer's MAC covers).
pub fn sign(
    mut message: Message,
    key: &TsigKey,
    now: u64,
) -> Result<(Vec<u8>, Vec<u8>), UpdateError> {
    let key_name = name(&key.name)?;
    let encode = |e: hickory_proto::ProtoError| UpdateError::Input(format!("encode: {e}"));
    let pre = TSIG::new(
        wire_algorithm(key.algorithm),
        now,
        FUDGE,
        Vec::new(),
        message.metadata.id,
        None,
        Vec::new(),
    );
    let tbs = message_tbs(&message, &pre, &key_name).map_err(encode)?;
    let mac = hmac(key, &tbs)?;
    message.signature = Some(Box::new(make_tsig_record(
        key_name,
        pre.set_mac(mac.clone()),
    )));
    Ok((message.to_vec().map_err(encode)?, mac))
}

/// Checks the TSIG of `answer` (the bytes as received) against the request's MAC.
pub fn verify(
    answer: &[u8],
    request_mac: &[u8],
    key: &TsigKey,
    now: u64,
) -> Result<(), UpdateError> {
    let unsigned =
        || UpdateError::Transport("the answer carries no valid TSIG (RFC 8945 §5.3)".into());
    let decoded = Message::from_vec(answer).map_err(|_| unsigned())?;
    let (key_name, tsig) = tsig_of(&decoded).ok_or_else(unsigned)?;
    if key_name != name(&key.name)? || tsig.algorithm != wire_algorithm(key.algorithm) {
        return Err(unsigned());
    }
    let start = last_record_offset(answer).ok_or_else(unsigned)?;
    let mut tbs = Vec::with_capacity(answer.len() + request_mac.len() + 2);
    tbs.extend_from_slice(&u16::try_from(request_mac.len()).unwrap_or(0).to_be_bytes());
    tbs.extend_from_slice(request_mac);
    // The header with the original ID and ARCOUNT less the TSIG (§4.3.2).
    let mut header = answer.get(..12).ok_or_else(unsigned)?.to_vec();
    header[..2].copy_from_slice(&tsig.oid.to_be_bytes());
    let arcount = u16::from_be_bytes([header[10], header[11]]).saturating_sub(1);
    header[10..12].copy_from_slice(&arcount.to_be_bytes());
    tbs.extend_from_slice(&header);
    tbs.extend_from_slice(answer.get(12..start).ok_or_else(unsigned)?);
    // A fresh buffer: BinEncoder writes from offset 0 of the one it is given.
    let mut variables = Vec::new();
    tsig.emit_tsig_for_mac(&mut BinEncoder::new(&mut variables), &key_name)
        .map_err(|_| unsigned())?;
    tbs.extend_from_slice(&variables);
    let expected = hmac(key, &tbs)?;
    if expected.len() != tsig.mac.len() || !openssl::memcmp::eq(&expected, &tsig.mac) {
        return Err(UpdateError::Transport(
            "the answer's TSIG does not verify with our key: it did not come from the server"
                .into(),
        ));
    }
    if now.abs_diff(tsig.time) > u64::from(tsig.fudge) {
        return Err(UpdateError::Transport(format!(
            "the answer's TSIG is {} s off our clock (fudge {} s)",
            now.abs_diff(tsig.time),
            tsig.fudge
        )));
    }
    Ok(())
}

/// The TSIG of a decoded message: the last additional record (hickory leaves it there when
/// it does not verify TSIG itself).
pub(crate) fn tsig_of(m: &Message) -> Option<(hickory_proto::rr::Name, TSIG)> {
    if let Some(s) = &m.signature {
        return Some((s.name.clone(), s.data.clone()));
    }
    match m.additionals.last() {
        Some(r) => match &r.data {
            hickory_proto::rr::RData::TSIG(t) => Some((r.name.clone(), t.clone())),
            _ => None,
        },
        None => None,
    }
}

/// Where the message's last record (the TSIG, RFC 8945 §5.1: always last) starts. Walks the
/// question and records without trusting any count or length; compression pointers are
/// stepped over, never followed.
pub(crate) fn last_record_offset(wire: &[u8]) -> Option<usize> {
    let count = |i: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *wire.get(i)?,
            *wire.get(i + 1)?,
        ])))
    };
    let (qd, an, ns, ar) = (count(4)?, count(6)?, count(8)?, count(10)?);
    let records = an + ns + ar;
    if ar == 0 {
        return None;
    }
    let mut pos = 12;
    for _ in 0..qd {
        pos = skip_name(wire, pos)? + 4;
    }
    for _ in 0..records - 1 {
        pos = skip_name(wire, pos)?;
        let rdlen = count(pos + 8)?;
        pos += 10 + rdlen;
    }
    (pos < wire.len()).then_some(pos)
}

fn skip_name(wire: &[u8], mut pos: usize) -> Option<usize> {
    // A name has at most 127 labels (RFC 1035 §2.3.4: 255 bytes).
    for _ in 0..128 {
        let len = *wire.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xc0 == 0xc0 => {
                wire.get(pos + 1)?;
                return Some(pos + 2);
            }
            l if l & 0xc0 == 0 => pos += 1 + usize::from(l),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;
    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::{Record, RecordType};

    fn key() -> TsigKey {
        TsigKey {
            name: "kurier-update".into(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: b"0123456789abcdef0123456789abcdef".to_vec(),
        }
    }

    /// An answer as a server signs it (§5.3), made with the same rules, so that the check can
    /// be seen to fail when anything is changed.
    fn signed_answer(id: u16, request_mac: &[u8], now: u64) -> Vec<u8> {
        let mut m = Message::new(4242, MessageType::Response, OpCode::Update);
        m.add_answer(Record::update0(
            name("a.example").unwrap(),
            0,
            RecordType::A,
        ));
        let key_name = name("kurier-update").unwrap();
        let pre = TSIG::new(
            WireAlgorithm::HmacSha256,
            now,
            FUDGE,
            Vec::new(),
            id,
            None,
            Vec::new(),
        );
        let mut tbs = (request_mac.len() as u16).to_be_bytes().to_vec();
        tbs.extend(request_mac);
        let mut unsigned = m.clone();
        unsigned.metadata.id = id;
        let body = message_tbs(&unsigned, &pre, &key_name).unwrap();
        tbs.extend(body);
        let mac = hmac(&key(), &tbs).unwrap();
        m.signature = Some(Box::new(make_tsig_record(key_name, pre.set_mac(mac))));
        m.to_vec().unwrap()
    }

    #[test]
    fn a_signed_answer_verifies_and_a_changed_one_does_not() {
        let answer = signed_answer(4242, b"request-mac", 1_000_000);
        verify(&answer, b"request-mac", &key(), 1_000_100).unwrap();
        // Another request's MAC, another key, a flipped byte, a stale clock, no TSIG.
        assert!(verify(&answer, b"other-mac", &key(), 1_000_100).is_err());
        let mut other = key();
        other.secret[0] ^= 1;
        assert!(verify(&answer, b"request-mac", &other, 1_000_100).is_err());
        let mut flipped = answer.clone();
        flipped[3] ^= 0x01;
        assert!(verify(&flipped, b"request-mac", &key(), 1_000_100).is_err());
        assert!(verify(&answer, b"request-mac", &key(), 1_000_400).is_err());
        let bare = Message::new(1, MessageType::Response, OpCode::Update)
            .to_vec()
            .unwrap();
        assert!(verify(&bare, b"request-mac", &key(), 1_000_000).is_err());
    }

    #[test]
    fn truncated_or_looping_messages_have_no_last_record() {
        let answer = signed_answer(7, b"m", 5);
        assert!(last_record_offset(&answer).is_some());
        for n in 0..answer.len() - 1 {
            let _ = last_record_offset(&answer[..n]);
        }
        // A name that is all pointer bytes, and one of 200 one-byte labels.
        let mut looping = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        looping.extend([0xc0, 0x0c, 0, 1, 0, 1]);
        assert_eq!(last_record_offset(&looping), None);
        let mut long = vec![0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1];
        for _ in 0..200 {
            long.extend([1, b'a']);
        }
        assert_eq!(last_record_offset(&long), None);
    }
}
