//! DKIM verification (RFC 6376 §6; RFC 8463 for Ed25519; RFC 8301 for key sizes and hashes):
//! the `DKIM-Signature` fields of a message and, for each, a result against the key record its
//! signer published (the caller looks that up, through the validating resolver).
//!
//! Stricter than RFC 6376 where it protects the reader: a signature must cover From (§5.4: a
//! signature without it says nothing about the author), body length limits (`l=`) are refused
//! (anyone could append to the signed part), RSA keys below 1024 bits and SHA-1 are refused (RFC
//! 8301 §3.1, §3.2), and keys below 2048 bits verify but are reported as weak.
//! `SignedMessage` parses the header once and hashes each body canonicalization once, however
//! many signatures there are.

use std::sync::OnceLock;

use openssl::base64;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;

use crate::{DkimError, header_fields, relaxed_body, relaxed_header, split};

/// RSA keys below this many bits are refused (RFC 8301 §3.2).
pub const MIN_RSA_BITS: u32 = 1024;
/// RSA keys below this many bits verify but are weak (RFC 8301 §3.2: signers use 2048).
pub const WEAK_RSA_BITS: u32 = 2048;

/// A verification result (RFC 8601 §2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimResult {
    Pass,
    /// The signature or body hash does not verify.
    Fail,
    /// Verifiable in principle, but not acceptable to us (`l=`, SHA-1, a too small key).
    Policy,
    /// The signature is malformed, its key missing or revoked: a retry will not help.
    PermError,
    /// The key could not be looked up now.
    TempError,
}

impl DkimResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DkimResult::Pass => "pass",
            DkimResult::Fail => "fail",
            DkimResult::Policy => "policy",
            DkimResult::PermError => "permerror",
            DkimResult::TempError => "temperror",
        }
    }
}

/// What one signature came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub result: DkimResult,
    /// Why, when it is not a plain pass (e.g. "RSA key of 1024 bits is weak").
    pub reason: Option<String>,
    /// The RSA key size, or 256 for Ed25519.
    pub key_bits: Option<u32>,
}

impl Checked {
    fn no(result: DkimResult, reason: impl Into<String>) -> Checked {
        Checked {
            result,
            reason: Some(reason.into()),
            key_bits: None,
        }
    }
}

/// One `DKIM-Signature` field, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The signing domain (`d=`), lower case.
    pub domain: String,
    pub selector: String,
    /// `a=`, lower case.
    pub algorithm: String,
    /// The first characters of `b=` (RFC 6008 `header.b`), to tell signatures apart.
    pub b_prefix: String,
    /// The agent or user identifier (`i=`), lower case; `@d` when absent.
    pub identity: String,
    relaxed_header: bool,
    relaxed_body: bool,
    headers: Vec<String>,
    body_hash: Vec<u8>,
    signature: Vec<u8>,
    expires: Option<i64>,
    /// The field's raw value, to rebuild it with an empty `b=`.
    raw: String,
}

impl Signature {
    /// Where the key record is: `<selector>._domainkey.<domain>`.
    pub fn key_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }
}

/// A `DKIM-Signature` field that cannot be checked, and why (result and reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unusable {
    /// `d=` if the field names one (for Authentication-Results).
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub result: DkimResult,
    pub reason: String,
}

fn bad(msg: impl Into<String>) -> DkimError {
    DkimError::Key(msg.into())
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

fn parse(raw: &str) -> Result<Signature, Unusable> {
    let tags = tags(raw);
    let get = |k: &str| tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let domain = get("d").map(|d| d.to_ascii_lowercase());
    let selector = get("s").map(str::to_string);
    let refuse = |result: DkimResult, reason: &str| Unusable {
        domain: domain.clone(),
        selector: selector.clone(),
        result,
        reason: reason.to_string(),
    };
    let perm = |reason: &str| refuse(DkimResult::PermError, reason);
    if get("v") != Some("1") {
        return Err(perm("not a v=1 signature"));
    }
    // §3.2: a tag twice makes the signature invalid.
    for (i, (k, _)) in tags.iter().enumerate() {
        if tags[..i].iter().any(|(n, _)| n == k) {
            return Err(perm(&format!("tag {k}= appears twice")));
        }
    }
    if get("l").is_some() {
        return Err(refuse(
            DkimResult::Policy,
            "body length limits (l=) are not accepted",
        ));
    }
    let algorithm = get("a").ok_or_else(|| perm("no a="))?.to_ascii_lowercase();
    match algorithm.as_str() {
        "rsa-sha256" | "ed25519-sha256" => {}
        "rsa-sha1" => {
            return Err(refuse(
                DkimResult::Policy,
                "SHA-1 is not accepted (RFC 8301)",
            ));
        }
        _ => return Err(perm("unknown algorithm")),
    }
    let c = get("c").unwrap_or("simple/simple");
    let (ch, cb) = c.split_once('/').unwrap_or((c, "simple"));
    let canon = |c: &str| match c {
        "relaxed" => Ok(true),
        "simple" => Ok(false),
        _ => Err(perm("unknown canonicalization")),
    };
    let b64 = |k: &str| {
        base64::decode_block(get(k).ok_or_else(|| perm(&format!("no {k}=")))?)
            .map_err(|_| perm(&format!("{k}= is not base64")))
    };
    let domain = domain.clone().ok_or_else(|| perm("no d="))?;
    let headers: Vec<String> = get("h")
        .ok_or_else(|| perm("no h="))?
        .split(':')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    // §5.4: From MUST be signed; without it the signature vouches for nobody's authorship.
    if !headers.iter().any(|h| h == "from") {
        return Err(perm("h= does not cover From"));
    }
    let identity = get("i").map_or_else(|| format!("@{domain}"), |i| i.to_ascii_lowercase());
    // §3.5 i=: the same domain as d= or a subdomain of it.
    let i_domain = identity.rsplit_once('@').map_or("", |(_, d)| d);
    if !(i_domain == domain || i_domain.ends_with(&format!(".{domain}"))) {
        return Err(perm("i= is not within d="));
    }
    let signature = b64("b")?;
    let b_prefix: String = get("b").unwrap_or_default().chars().take(8).collect();
    Ok(Signature {
        selector: selector.clone().ok_or_else(|| perm("no s="))?,
        domain,
        algorithm,
        b_prefix,
        identity,
        relaxed_header: canon(ch)?,
        relaxed_body: canon(cb)?,
        headers,
        body_hash: b64("bh")?,
        signature,
        expires: get("x").and_then(|x| x.parse().ok()),
        raw: raw.to_string(),
    })
}

/// A message to verify: its header parsed once, each body canonicalization hashed once.
pub struct SignedMessage<'a> {
    fields: Vec<(String, String)>,
    body: &'a [u8],
    relaxed: OnceLock<Vec<u8>>,
    simple: OnceLock<Vec<u8>>,
}

impl<'a> SignedMessage<'a> {
    pub fn new(message: &'a [u8]) -> Self {
        let (head, body) = split(message);
        SignedMessage {
            fields: header_fields(head),
            body,
            relaxed: OnceLock::new(),
            simple: OnceLock::new(),
        }
    }

    /// Every `DKIM-Signature` field, top first, parsed or refused; `max` at most (the rest are
    /// not looked at: work must not grow with what a sender adds). Also the number found.
    pub fn signatures(&self, max: usize) -> (Vec<Result<Signature, Unusable>>, usize) {
        let all: Vec<&(String, String)> = self
            .fields
            .iter()
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case("dkim-signature"))
            .collect();
        let parsed = all.iter().take(max).map(|(_, v)| parse(v)).collect();
        (parsed, all.len())
    }

    fn body_hash(&self, relaxed: bool) -> &[u8] {
        let cell = if relaxed { &self.relaxed } else { &self.simple };
        cell.get_or_init(|| {
            let canon = if relaxed {
                relaxed_body(self.body)
            } else {
                simple_body(self.body)
            };
            hash(MessageDigest::sha256(), &canon)
                .map(|d| d.to_vec())
                .unwrap_or_default()
        })
    }

    /// The data the signature covers (§3.7): the signed fields, then the signature field
    /// with an empty `b=` and without its final CRLF.
    fn signed_data(&self, sig: &Signature) -> Vec<u8> {
        let canon = |n: &str, v: &str| {
            if sig.relaxed_header {
                relaxed_header(n, v)
            } else {
                format!("{n}:{v}\r\n")
            }
        };
        // §5.4.2: each name in h= takes the next instance from the bottom.
        let mut used = vec![false; self.fields.len()];
        let mut signed = Vec::new();
        for name in &sig.headers {
            if let Some(i) = (0..self.fields.len())
                .rev()
                .find(|&i| !used[i] && self.fields[i].0.trim().eq_ignore_ascii_case(name))
            {
                used[i] = true;
                signed.extend_from_slice(canon(&self.fields[i].0, &self.fields[i].1).as_bytes());
            }
        }
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
        signed
    }

    /// Checks `sig` against its key `record` (the TXT value) at time `now`.
    pub fn check(&self, sig: &Signature, record: &str, now: i64) -> Checked {
        if sig.expires.is_some_and(|x| x < now) {
            return Checked::no(DkimResult::Fail, "the signature has expired (x=)");
        }
        let key = match KeyRecord::parse(record) {
            Ok(k) => k,
            Err(e) => return Checked::no(DkimResult::PermError, e),
        };
        if key.strict && !sig.identity.ends_with(&format!("@{}", sig.domain)) {
            return Checked::no(
                DkimResult::PermError,
                "the key requires i= to equal d= (t=s)",
            );
        }
        let bits = match (sig.algorithm.as_str(), key.key.id()) {
            ("rsa-sha256", Id::RSA) => key.key.bits(),
            ("ed25519-sha256", Id::ED25519) => 256,
            _ => return Checked::no(DkimResult::PermError, "the key does not fit a="),
        };
        if key.key.id() == Id::RSA && bits < MIN_RSA_BITS {
            return Checked::no(
                DkimResult::Policy,
                format!("RSA key of {bits} bits (RFC 8301: at least {MIN_RSA_BITS})"),
            );
        }
        if self.body_hash(sig.relaxed_body) != sig.body_hash.as_slice() {
            return Checked::no(
                DkimResult::Fail,
                "body hash mismatch (the body was changed)",
            );
        }
        let signed = self.signed_data(sig);
        let ok = if key.key.id() == Id::ED25519 {
            // RFC 8463 §3: Ed25519 over the SHA-256 hash of the signing input.
            hash(MessageDigest::sha256(), &signed)
                .ok()
                .and_then(|digest| {
                    let mut v = Verifier::new_without_digest(&key.key).ok()?;
                    v.verify_oneshot(&sig.signature, &digest).ok()
                })
        } else {
            Verifier::new(MessageDigest::sha256(), &key.key)
                .ok()
                .and_then(|mut v| {
                    v.update(&signed).ok()?;
                    v.verify(&sig.signature).ok()
                })
        };
        if ok != Some(true) {
            return Checked {
                result: DkimResult::Fail,
                reason: Some(
                    "signature does not verify (a signed header field was changed)".into(),
                ),
                key_bits: Some(bits),
            };
        }
        Checked {
            result: DkimResult::Pass,
            reason: (key.key.id() == Id::RSA && bits < WEAK_RSA_BITS)
                .then(|| format!("weak RSA key of {bits} bits")),
            key_bits: Some(bits),
        }
    }
}

/// A `v=DKIM1` key record (§3.6.1).
struct KeyRecord {
    key: PKey<Public>,
    /// `t=s`: the `i=` domain must be `d=` itself.
    strict: bool,
}

impl KeyRecord {
    fn parse(record: &str) -> Result<KeyRecord, String> {
        let tags = tags(record);
        let get = |k: &str| tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if let Some(v) = get("v")
            && (v != "DKIM1" || tags.first().is_some_and(|(n, _)| n != "v"))
        {
            return Err("not a DKIM1 key record".into());
        }
        if let Some(h) = get("h")
            && !h.split(':').any(|h| h.eq_ignore_ascii_case("sha256"))
        {
            return Err("the key is not for SHA-256 (h=)".into());
        }
        if let Some(s) = get("s")
            && !s
                .split(':')
                .any(|s| s == "*" || s.eq_ignore_ascii_case("email"))
        {
            return Err("the key is not for e-mail (s=)".into());
        }
        let p = get("p").ok_or("the key record has no p=")?;
        if p.is_empty() {
            return Err("the key has been revoked (empty p=)".into());
        }
        let der = base64::decode_block(p).map_err(|_| "p= is not base64")?;
        let key = match get("k").unwrap_or("rsa") {
            "rsa" => PKey::public_key_from_der(&der)
                .ok()
                .filter(|k| k.id() == Id::RSA)
                .ok_or("p= is not an RSA public key")?,
            "ed25519" => PKey::public_key_from_raw_bytes(&der, Id::ED25519)
                .map_err(|_| "p= is not an Ed25519 public key")?,
            other => return Err(format!("key type {other:?}")),
        };
        let strict = get("t").is_some_and(|t| t.split(':').any(|f| f == "s"));
        Ok(KeyRecord { key, strict })
    }
}

/// What a published key record offers verifiers (for audits: `kurier check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    /// `rsa` or `ed25519`.
    pub kind: &'static str,
    /// The key size (RSA modulus bits; 256 for Ed25519).
    pub bits: u32,
}

/// Reads a `v=DKIM1` key record as a verifier would: `Err` says why it cannot verify
/// anything (revoked, not for e-mail or SHA-256, no key).
pub fn published_key(record: &str) -> Result<PublishedKey, String> {
    let key = KeyRecord::parse(record)?;
    Ok(PublishedKey {
        kind: if key.key.id() == Id::RSA {
            "rsa"
        } else {
            "ed25519"
        },
        bits: key.key.bits(),
    })
}

/// Every `DKIM-Signature` of `message` that parses (at most 16); the others are skipped.
pub fn signatures(message: &[u8]) -> Vec<Signature> {
    SignedMessage::new(message)
        .signatures(16)
        .0
        .into_iter()
        .filter_map(Result::ok)
        .collect()
}

/// Checks `sig` of `message` against the key `record` (the TXT value): `Ok` only for a pass.
pub fn verify(message: &[u8], sig: &Signature, record: &str) -> Result<(), DkimError> {
    let checked = SignedMessage::new(message).check(sig, record, i64::MIN);
    match checked.result {
        DkimResult::Pass => Ok(()),
        _ => Err(bad(checked
            .reason
            .unwrap_or_else(|| "does not verify".into()))),
    }
}

/// RFC 6376 §3.4.3: trailing empty lines removed, one CRLF at the end.
fn simple_body(body: &[u8]) -> Vec<u8> {
    let mut end = body.len();
    while body[..end].ends_with(b"\r\n\r\n") {
        end -= 2;
    }
    let mut b = body[..end].to_vec();
    if b.is_empty() || !b.ends_with(b"\r\n") {
        b.extend_from_slice(b"\r\n");
    }
    b
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;
    use crate::{Algorithm, DkimKey};
    use openssl::rsa::Rsa;

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
            let m = SignedMessage::new(&signed);
            let checked = m.check(&sigs[0], &record, 0);
            assert_eq!(checked.result, DkimResult::Pass);
            assert_eq!(checked.reason, None);
            let tampered = String::from_utf8_lossy(&signed).replace("body", "bodY");
            let c = SignedMessage::new(tampered.as_bytes()).check(&sigs[0], &record, 0);
            assert_eq!(c.result, DkimResult::Fail);
            assert!(c.reason.unwrap().contains("body hash"));
            let tampered = String::from_utf8_lossy(&signed).replace("Report", "Rep0rt");
            let c = SignedMessage::new(tampered.as_bytes()).check(&sigs[0], &record, 0);
            assert_eq!(c.result, DkimResult::Fail);
            let (other, _) = DkimKey::generate("a.test", "s1", alg).unwrap();
            let (_, other_record) = other.dns_record().unwrap();
            assert!(verify(&signed, &sigs[0], &other_record).is_err());
            let revoked = m.check(&sigs[0], "v=DKIM1; p=", 0);
            assert_eq!(revoked.result, DkimResult::PermError);
        }
    }

    /// A signature field with the given tags (the b= and bh= values are not checked here).
    fn field(tags: &str) -> Vec<u8> {
        format!("DKIM-Signature: v=1; {tags}\r\nFrom: x@a.test\r\n\r\nbody\r\n").into_bytes()
    }

    #[test]
    fn refusals_have_results_and_reasons() {
        let one = |tags: &str| {
            let m = field(tags);
            SignedMessage::new(&m)
                .signatures(10)
                .0
                .remove(0)
                .unwrap_err()
        };
        let base = "a=rsa-sha256; d=a.test; s=s; bh=AA==; b=AA==";
        let l = one(&format!("{base}; h=from; l=3"));
        assert_eq!(
            (l.result, l.domain.as_deref()),
            (DkimResult::Policy, Some("a.test"))
        );
        assert_eq!(
            one(&format!("{base}; h=subject")).reason,
            "h= does not cover From"
        );
        let sha1 = one("a=rsa-sha1; d=a.test; s=s; h=from; bh=AA==; b=AA==");
        assert_eq!(sha1.result, DkimResult::Policy);
        assert_eq!(
            one(&format!("{base}; h=from; i=@evil.test")).result,
            DkimResult::PermError
        );
        assert_eq!(
            one(&format!("{base}; h=from; d=b.test")).reason,
            "tag d= appears twice"
        );
        assert_eq!(one("garbage").result, DkimResult::PermError);
    }

    #[test]
    fn key_sizes_rfc8301() {
        for (bits, result, weak) in [
            (512, DkimResult::Policy, false),
            (1024, DkimResult::Pass, true),
            (2048, DkimResult::Pass, false),
        ] {
            let rsa = PKey::from_rsa(Rsa::generate(bits).unwrap()).unwrap();
            let key = DkimKey {
                domain: "a.test".into(),
                selector: "s".into(),
                key: rsa,
            };
            let signed = [key.sign(MESSAGE, 1).unwrap().as_bytes(), MESSAGE].concat();
            let (_, record) = key.dns_record().unwrap();
            let m = SignedMessage::new(&signed);
            let (sigs, _) = m.signatures(4);
            let c = m.check(sigs[0].as_ref().unwrap(), &record, 0);
            assert_eq!(c.result, result, "{bits}");
            assert_eq!(c.reason.is_some_and(|r| r.contains("weak")), weak, "{bits}");
        }
    }

    #[test]
    fn work_is_bounded_by_max() {
        let mut m = Vec::new();
        for _ in 0..100 {
            m.extend_from_slice(
                b"DKIM-Signature: v=1; a=rsa-sha256; d=a.test; s=s; h=from; bh=AA==; b=AA==\r\n",
            );
        }
        m.extend_from_slice(b"From: x@a.test\r\n\r\nbody\r\n");
        let (sigs, found) = SignedMessage::new(&m).signatures(10);
        assert_eq!((sigs.len(), found), (10, 100));
        assert_eq!(signatures(&m).len(), 16);
        assert_eq!(simple_body(b""), b"\r\n");
        assert_eq!(simple_body(b"a\r\n\r\n\r\n"), b"a\r\n");
        assert!(KeyRecord::parse("v=DKIM1; k=dsa; p=AAAA").is_err());
        assert!(KeyRecord::parse("v=DKIM1; s=tlsrpt; p=AAAA").is_err());
    }
}
