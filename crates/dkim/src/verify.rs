//! DKIM verification (RFC 6376 §6; RFC 8463 for Ed25519): the `DKIM-Signature` fields of a
//! message, and whether one of them verifies with the key record its signer published. The
//! caller looks the record up (through the validating resolver). Signatures with `l=` are
//! refused: a body-length limit lets anyone append to a signed message.

use openssl::base64;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;

use crate::{DkimError, header_fields, relaxed_body, relaxed_header, split};

/// One `DKIM-Signature` field, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The signing domain (`d=`), lower case.
    pub domain: String,
    pub selector: String,
    algorithm: String,
    relaxed_header: bool,
    relaxed_body: bool,
    headers: Vec<String>,
    body_hash: Vec<u8>,
    signature: Vec<u8>,
    /// The field's raw value, to rebuild it with an empty `b=`.
    raw: String,
}

impl Signature {
    /// Where the key record is: `<selector>._domainkey.<domain>`.
    pub fn key_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

fn bad(msg: impl Into<String>) -> DkimError {
    DkimError::Key(msg.into())
}

/// Every `DKIM-Signature` of `message` that parses; malformed ones are skipped.
pub fn signatures(message: &[u8]) -> Vec<Signature> {
    let (head, _) = split(message);
    header_fields(head)
        .into_iter()
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case("dkim-signature"))
        .filter_map(|(_, v)| parse(&v).ok())
        .collect()
}

fn tags(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            Some((k.trim().to_string(), v))
        })
        .collect()
}

fn parse(raw: &str) -> Result<Signature, DkimError> {
    let tags = tags(raw);
    let get = |k: &str| tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("v") != Some("1") {
        return Err(bad("not a v=1 signature"));
    }
    if get("l").is_some() {
        return Err(bad(
            "signatures with a body length limit (l=) are not accepted",
        ));
    }
    let (ch, cb) = match get("c").unwrap_or("simple/simple").split_once('/') {
        Some((h, b)) => (h.to_string(), b.to_string()),
        None => (
            get("c").unwrap_or("simple").to_string(),
            "simple".to_string(),
        ),
    };
    let canon = |c: &str| match c {
        "relaxed" => Ok(true),
        "simple" => Ok(false),
        other => Err(bad(format!("canonicalization {other:?}"))),
    };
    let b64 = |k: &str| {
        base64::decode_block(get(k).ok_or_else(|| bad(format!("no {k}=")))?)
            .map_err(|_| bad(format!("{k}= is not base64")))
    };
    Ok(Signature {
        domain: get("d").ok_or_else(|| bad("no d="))?.to_ascii_lowercase(),
        selector: get("s").ok_or_else(|| bad("no s="))?.to_string(),
        algorithm: get("a").ok_or_else(|| bad("no a="))?.to_string(),
        relaxed_header: canon(&ch)?,
        relaxed_body: canon(&cb)?,
        headers: get("h")
            .ok_or_else(|| bad("no h="))?
            .split(':')
            .map(|h| h.trim().to_ascii_lowercase())
            .collect(),
        body_hash: b64("bh")?,
        signature: b64("b")?,
        raw: raw.to_string(),
    })
}

/// The public key in a `v=DKIM1; k=…; p=…` record.
fn public_key(record: &str) -> Result<PKey<Public>, DkimError> {
    let tags = tags(record);
    let get = |k: &str| tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let p = get("p").ok_or_else(|| bad("the key record has no p="))?;
    if p.is_empty() {
        return Err(bad("the key has been revoked (empty p=)"));
    }
    let der = base64::decode_block(p).map_err(|_| bad("p= is not base64"))?;
    match get("k").unwrap_or("rsa") {
        "rsa" => Ok(PKey::public_key_from_der(&der)?),
        "ed25519" => Ok(PKey::public_key_from_raw_bytes(&der, Id::ED25519)?),
        other => Err(bad(format!("key type {other:?}"))),
    }
}

/// Checks `sig` of `message` against the key `record` (the TXT value).
pub fn verify(message: &[u8], sig: &Signature, record: &str) -> Result<(), DkimError> {
    let (head, body) = split(message);
    let canon_body = if sig.relaxed_body {
        relaxed_body(body)
    } else {
        simple_body(body)
    };
    if hash(MessageDigest::sha256(), &canon_body)?.as_ref() != sig.body_hash.as_slice() {
        return Err(bad("the body hash does not match (the body was changed)"));
    }
    let fields = header_fields(head);
    let canon = |n: &str, v: &str| {
        if sig.relaxed_header {
            relaxed_header(n, v)
        } else {
            format!("{n}:{v}\r\n")
        }
    };
    // §5.4.2: each name in h= takes the next instance from the bottom.
    let mut used = vec![false; fields.len()];
    let mut signed = Vec::new();
    for name in &sig.headers {
        if let Some(i) = (0..fields.len())
            .rev()
            .find(|&i| !used[i] && fields[i].0.trim().eq_ignore_ascii_case(name))
        {
            used[i] = true;
            signed.extend_from_slice(canon(&fields[i].0, &fields[i].1).as_bytes());
        }
    }
    // The signature field itself with an empty b= and no final CRLF (§3.7).
    let without_b: Vec<String> = sig
        .raw
        .split(';')
        .map(|t| match t.split_once('=') {
            Some((k, _)) if k.trim() == "b" => format!("{k}="),
            _ => t.to_string(),
        })
        .collect();
    let own = canon("DKIM-Signature", &without_b.join(";"));
    signed.extend_from_slice(own.trim_end_matches("\r\n").as_bytes());
    let key = public_key(record)?;
    let ok = match (sig.algorithm.as_str(), key.id()) {
        ("rsa-sha256", Id::RSA) => {
            if key.bits() < 1024 {
                return Err(bad("RSA key below 1024 bits (RFC 8301)"));
            }
            let mut v = Verifier::new(MessageDigest::sha256(), &key)?;
            v.update(&signed)?;
            v.verify(&sig.signature)?
        }
        ("ed25519-sha256", Id::ED25519) => {
            let digest = hash(MessageDigest::sha256(), &signed)?;
            let mut v = Verifier::new_without_digest(&key)?;
            v.verify_oneshot(&sig.signature, &digest)?
        }
        (a, _) => return Err(bad(format!("algorithm {a:?} with this key"))),
    };
    if ok {
        Ok(())
    } else {
        Err(bad("the signature does not verify"))
    }
}

/// RFC 6376 §3.4.3: trailing empty lines removed, one CRLF at the end.
fn simple_body(body: &[u8]) -> Vec<u8> {
    let mut b = body.to_vec();
    while b.ends_with(b"\r\n\r\n") {
        b.truncate(b.len() - 2);
    }
    if b.is_empty() || !b.ends_with(b"\r\n") {
        b.extend_from_slice(b"\r\n");
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, DkimKey};

    const MESSAGE: &[u8] =
        b"From: reports@a.test\r\nTo: tlsrpt@b.test\r\nSubject: Report  Domain\r\n\r\nbody\r\n";

    #[test]
    fn our_signatures_verify_and_tampering_is_caught() {
        for alg in [Algorithm::Rsa, Algorithm::Ed25519] {
            let (key, _) = DkimKey::generate("a.test", "s1", alg).unwrap();
            let signed = [key.sign(MESSAGE, 1).unwrap().as_bytes(), MESSAGE].concat();
            let (_, record) = key.dns_record().unwrap();
            let sigs = signatures(&signed);
            assert_eq!(sigs.len(), 1);
            assert_eq!(sigs[0].key_name(), "s1._domainkey.a.test");
            verify(&signed, &sigs[0], &record).unwrap();
            let tampered = String::from_utf8_lossy(&signed).replace("body", "bodY");
            assert!(verify(tampered.as_bytes(), &sigs[0], &record).is_err());
            let tampered = String::from_utf8_lossy(&signed).replace("Report", "Rep0rt");
            assert!(verify(tampered.as_bytes(), &sigs[0], &record).is_err());
            let (other, _) = DkimKey::generate("a.test", "s1", alg).unwrap();
            let (_, other_record) = other.dns_record().unwrap();
            assert!(verify(&signed, &sigs[0], &other_record).is_err());
        }
    }

    #[test]
    fn length_limits_and_garbage_are_refused() {
        let with_l = b"DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=s; h=from; bh=AA==; b=AA==; l=3\r\nFrom: x\r\n\r\nbody\r\n";
        assert!(signatures(with_l).is_empty());
        assert!(signatures(b"DKIM-Signature: garbage\r\n\r\n").is_empty());
        assert!(public_key("v=DKIM1; p=").is_err());
        assert!(public_key("v=DKIM1; k=dsa; p=AAAA").is_err());
        assert_eq!(simple_body(b""), b"\r\n");
        assert_eq!(simple_body(b"a\r\n\r\n\r\n"), b"a\r\n");
    }
}
