//! # kurier-dkim — DKIM signatures for mail our users send
//!
//! Owns DKIM signing (RFC 6376) with RSA-SHA256 (RSA ≥ 3072 bits, TR-02102 key sizes) or
//! Ed25519-SHA256 (RFC 8463), relaxed/relaxed canonicalization, no `l=` (a body-length limit
//! would let anyone append to a signed message), and key generation with the DNS TXT record to
//! publish. Signing uses OpenSSL, like all of Kurier's cryptography.
//!
//! Why not the `mail-auth` crate: its current releases need a newer Rust than ours and pull in a
//! second DNS resolver for verification, which Kurier does not do here; signing is small
//! enough to own, and it is checked against an independent verifier (dkimpy) in the tests.
//!
//! Verification (`verify`) serves TLSRPT intake (RFC 8460 §5.3: reports must be signed); the
//! key record is looked up by the caller.
//!
//! Must not: look anything up in DNS.

#![forbid(unsafe_code)]

pub mod keyring;
pub mod verify;

pub use keyring::{DkimKeyring, KeyringError};

use openssl::base64;
use openssl::hash::{MessageDigest, hash};
use openssl::pkey::{Id, PKey, Private};
use openssl::rsa::Rsa;
use openssl::sign::Signer;

/// The header fields we sign when present (RFC 6376 §5.4.1's recommendations).
pub const SIGNED_HEADERS: &[&str] = &[
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "tls-report-domain",
    "tls-report-submitter",
];

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("DKIM key: {0}")]
    Key(String),
    #[error("DKIM signing failed: {0}")]
    Crypto(#[from] openssl::error::ErrorStack),
}

/// A signing key for one domain and selector.
#[derive(Clone)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    key: PKey<Private>,
}

/// Key types `kurier dkim generate` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA with 3072 bits (TR-02102-2 minimum), `a=rsa-sha256`.
    Rsa,
    /// `a=ed25519-sha256` (RFC 8463); publish an RSA key too, not every verifier knows it.
    Ed25519,
}

impl DkimKey {
    /// Reads a PEM private key; refuses RSA below 3072 bits and other key types.
    pub fn from_pem(domain: &str, selector: &str, pem: &[u8]) -> Result<Self, DkimError> {
        let key = PKey::private_key_from_pem(pem)
            .map_err(|e| DkimError::Key(format!("not a PEM private key: {e}")))?;
        match key.id() {
            Id::RSA if key.bits() >= 3072 => {}
            Id::RSA => {
                return Err(DkimError::Key(format!(
                    "RSA key of {} bits; use at least 3072",
                    key.bits()
                )));
            }
            Id::ED25519 => {}
            _ => return Err(DkimError::Key("use an RSA (3072+) or Ed25519 key".into())),
        }
        Ok(DkimKey {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_string(),
            key,
        })
    }

    /// A new key; returns it and its PEM.
    pub fn generate(
        domain: &str,
        selector: &str,
        algorithm: Algorithm,
    ) -> Result<(Self, Vec<u8>), DkimError> {
        let key = match algorithm {
            Algorithm::Rsa => PKey::from_rsa(Rsa::generate(3072)?)?,
            Algorithm::Ed25519 => PKey::generate_ed25519()?,
        };
        let pem = key.private_key_to_pem_pkcs8()?;
        Ok((
            DkimKey {
                domain: domain.to_ascii_lowercase(),
                selector: selector.to_string(),
                key,
            },
            pem,
        ))
    }

    fn algorithm(&self) -> &'static str {
        if self.key.id() == Id::ED25519 {
            "ed25519-sha256"
        } else {
            "rsa-sha256"
        }
    }

    /// The key's kind.
    pub fn kind(&self) -> Algorithm {
        if self.key.id() == Id::ED25519 {
            Algorithm::Ed25519
        } else {
            Algorithm::Rsa
        }
    }

    /// The DNS record to publish: (`selector._domainkey.domain.`, TXT value).
    pub fn dns_record(&self) -> Result<(String, String), DkimError> {
        let (k, p) = if self.key.id() == Id::ED25519 {
            // RFC 8463 §4: the raw 32-byte public key.
            ("ed25519", base64::encode_block(&self.key.raw_public_key()?))
        } else {
            ("rsa", base64::encode_block(&self.key.public_key_to_der()?))
        };
        Ok((
            format!("{}._domainkey.{}.", self.selector, self.domain),
            format!("v=DKIM1; k={k}; p={p}"),
        ))
    }

    /// The `DKIM-Signature:` header (with CRLF) to put on top of `message`, signed at `time`.
    pub fn sign(&self, message: &[u8], time: i64) -> Result<String, DkimError> {
        let (head, body) = split(message);
        let bh = base64::encode_block(&hash(MessageDigest::sha256(), &relaxed_body(body))?);
        let fields = header_fields(head);
        // The bottom-most instance of each field is signed (RFC 6376 §5.4.2).
        let mut signed = Vec::new();
        let mut names = Vec::new();
        for name in SIGNED_HEADERS {
            if let Some((n, v)) = fields
                .iter()
                .rev()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                signed.extend_from_slice(relaxed_header(n, v).as_bytes());
                names.push(*name);
            }
        }
        let value = format!(
            "v=1; a={}; c=relaxed/relaxed; d={}; s={}; t={time}; h={}; bh={bh}; b=",
            self.algorithm(),
            self.domain,
            self.selector,
            names.join(":")
        );
        // The signature header itself, without b= and without its CRLF (RFC 6376 §3.7).
        let own = relaxed_header("DKIM-Signature", &value);
        signed.extend_from_slice(own.trim_end_matches("\r\n").as_bytes());
        let signature = if self.key.id() == Id::ED25519 {
            // RFC 8463 §3: Ed25519 over the SHA-256 hash of the signing input.
            let digest = hash(MessageDigest::sha256(), &signed)?;
            let mut s = Signer::new_without_digest(&self.key)?;
            s.sign_oneshot_to_vec(&digest)?
        } else {
            let mut s = Signer::new(MessageDigest::sha256(), &self.key)?;
            s.update(&signed)?;
            s.sign_to_vec()?
        };
        Ok(format!(
            "DKIM-Signature: {}{}\r\n",
            fold(&value),
            base64::encode_block(&signature)
        ))
    }
}

/// Folds a long header value at its `; ` separators (what we sign is the unfolded form, and
/// relaxed canonicalization makes both equal).
fn fold(value: &str) -> String {
    value.replace("; ", ";\r\n\t")
}

/// Header block (with its final CRLF) and body.
fn split(message: &[u8]) -> (&[u8], &[u8]) {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (&message[..i + 2], &message[i + 4..]),
        None => (message, b""),
    }
}

/// (name, raw value with folds) of every field.
fn header_fields(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push_str("\r\n");
                last.1.push_str(line);
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.to_string(), v.to_string()));
        }
    }
    out
}

/// RFC 6376 §3.4.2: lower-case name, unfolded value, whitespace runs as one space, trimmed.
fn relaxed_header(name: &str, value: &str) -> String {
    let unfolded = value.replace("\r\n", "");
    let squeezed = unfolded
        .split([' ', '\t'])
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format!("{}:{}\r\n", name.trim().to_ascii_lowercase(), squeezed)
}

/// RFC 6376 §3.4.4: whitespace runs as one space, none at line ends, no empty lines at the end.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut lines: Vec<String> = text
        .split("\r\n")
        .map(|l| {
            let mut s = String::new();
            let mut space = false;
            for c in l.chars() {
                if c == ' ' || c == '\t' {
                    space = true;
                } else {
                    if space {
                        s.push(' ');
                        space = false;
                    }
                    s.push(c);
                }
            }
            s
        })
        .collect();
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut out = String::new();
    for l in lines {
        out.push_str(&l);
        out.push_str("\r\n");
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6376_relaxed_examples() {
        // RFC 6376 §3.4.5: "A: <SP> X <CRLF>" / "B <SP> : <SP> Y <HTAB><CRLF> <HTAB> Z <SP><SP><CRLF>"
        assert_eq!(relaxed_header("A", " X"), "a:X\r\n");
        assert_eq!(relaxed_header("B ", " Y\t\r\n\tZ  "), "b:Y Z\r\n");
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"\r\n\r\n"), b"");
    }

    #[test]
    fn refuses_weak_and_odd_keys() {
        let weak = PKey::from_rsa(Rsa::generate(2048).unwrap())
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        assert!(
            DkimKey::from_pem("x.test", "s", &weak)
                .err()
                .unwrap()
                .to_string()
                .contains("2048")
        );
        assert!(DkimKey::from_pem("x.test", "s", b"junk").is_err());
    }

    #[test]
    fn signature_header_shape() {
        let (k, pem) = DkimKey::generate("Example.TEST", "k1", Algorithm::Ed25519).unwrap();
        assert!(DkimKey::from_pem("example.test", "k1", &pem).is_ok());
        let h = k
            .sign(
                b"From: a@example.test\r\nSubject: x\r\n\r\nbody\r\n",
                1_800_000_000,
            )
            .unwrap();
        assert!(h.starts_with("DKIM-Signature: v=1;\r\n\ta=ed25519-sha256;\r\n\tc=relaxed/relaxed;\r\n\td=example.test;"), "{h}");
        assert!(h.contains("h=from:subject;") && !h.contains("l="), "{h}");
        let (name, txt) = k.dns_record().unwrap();
        assert_eq!(name, "k1._domainkey.example.test.");
        assert!(txt.starts_with("v=DKIM1; k=ed25519; p="));
    }
}
