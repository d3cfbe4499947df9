//! TSIG keys as operators keep them (RFC 8945 §6): BIND's format, as `tsig-keygen` writes it
//!
//! ```text
//! key "kurier-update" { algorithm hmac-sha256; secret "base64…"; };
//! ```
//!
//! and Knot's, as `keymgr -t kurier-update hmac-sha256` writes it
//!
//! ```text
//! key:
//!   - id: kurier-update
//!     algorithm: hmac-sha256
//!     secret: base64…
//! ```
//!
//! One key per file. HMAC-SHA256/384/512 only: MD5 and SHA-1 are not acceptable any more
//! (RFC 8945 §6: SHA-256 is mandatory to implement).

use crate::UpdateError;

/// The algorithms we sign with, by their TSIG names (RFC 8945 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TsigAlgorithm {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl TsigAlgorithm {
    fn from_name(name: &str) -> Option<TsigAlgorithm> {
        match name.trim_end_matches('.').to_ascii_lowercase().as_str() {
            "hmac-sha256" => Some(TsigAlgorithm::HmacSha256),
            "hmac-sha384" => Some(TsigAlgorithm::HmacSha384),
            "hmac-sha512" => Some(TsigAlgorithm::HmacSha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TsigAlgorithm::HmacSha256 => "hmac-sha256",
            TsigAlgorithm::HmacSha384 => "hmac-sha384",
            TsigAlgorithm::HmacSha512 => "hmac-sha512",
        }
    }
}

/// A shared TSIG key.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// The key's name, as both sides know it (lower case, no trailing dot).
    pub name: String,
    pub algorithm: TsigAlgorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    // Never the secret, in logs or panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Key files are small; anything longer is not one.
const MAX_FILE: usize = 16 * 1024;

impl TsigKey {
    /// Reads a key file in BIND's or Knot's format.
    pub fn parse(text: &str) -> Result<TsigKey, UpdateError> {
        let bad = |why: &str| UpdateError::Input(format!("not a TSIG key file: {why}"));
        if text.len() > MAX_FILE {
            return Err(bad("too long"));
        }
        // Both formats reduce to the same three settings once the punctuation is gone.
        let words: Vec<&str> = text
            .lines()
            .map(|l| l.split('#').next().unwrap_or(""))
            .flat_map(|l| l.split(|c: char| c.is_whitespace() || "{};:\"".contains(c)))
            .filter(|w| !w.is_empty() && *w != "-")
            .collect();
        let after = |key: &str| {
            let mut found = words
                .windows(2)
                .filter(|w| w[0].eq_ignore_ascii_case(key))
                .map(|w| w[1]);
            match (found.next(), found.next()) {
                (Some(v), None) => Ok(v),
                (None, _) => Err(bad(&format!("no {key}"))),
                (Some(_), Some(_)) => Err(bad(&format!("more than one {key}: one key per file"))),
            }
        };
        // BIND writes `key "name"`; Knot writes `key:` followed by `id: name`.
        let name = match after("key") {
            Ok(n) if n.eq_ignore_ascii_case("id") => after("id")?,
            Ok(n) => n,
            Err(e) if words.iter().any(|w| w.eq_ignore_ascii_case("key")) => return Err(e),
            Err(_) => after("id").map_err(|_| bad("no key name (`key \"name\"` or `id: name`)"))?,
        };
        let algorithm = after("algorithm")?;
        let algorithm = TsigAlgorithm::from_name(algorithm).ok_or_else(|| {
            bad(&format!(
                "algorithm {algorithm} (use hmac-sha256, hmac-sha384 or hmac-sha512)"
            ))
        })?;
        let secret = openssl::base64::decode_block(after("secret")?)
            .map_err(|_| bad("the secret is not base64"))?;
        if secret.len() < 16 {
            return Err(bad("the secret is shorter than 128 bits"));
        }
        if super::record::name(name).is_err() {
            return Err(bad(&format!("{name:?} is no key name")));
        }
        Ok(TsigKey {
            name: name.trim_end_matches('.').to_ascii_lowercase(),
            algorithm,
            secret,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==";

    #[test]
    fn bind_and_knot_key_files_are_read() {
        let bind = format!(
            "key \"kurier-update\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{SECRET}\";\n}};\n"
        );
        let knot = format!(
            "# hmac-sha512:kurier-update:...\nkey:\n  - id: kurier-update\n    algorithm: hmac-sha512\n    secret: {SECRET}\n"
        );
        let a = TsigKey::parse(&bind).unwrap();
        let b = TsigKey::parse(&knot).unwrap();
        assert_eq!(a.name, "kurier-update");
        assert_eq!(b.name, "kurier-update");
        assert_eq!(a.algorithm, TsigAlgorithm::HmacSha256);
        assert_eq!(b.algorithm, TsigAlgorithm::HmacSha512);
        assert_eq!(a.secret, b"secret-secret-secret-secret!");
        assert_eq!(a.secret, b.secret);
        assert!(!format!("{a:?}").contains(SECRET) && !format!("{a:?}").contains("secret-"));
    }

    #[test]
    fn bad_key_files_say_what_is_wrong() {
        for (text, why) in [
            ("", "no key"),
            (
                &*format!("key \"k\" {{ algorithm hmac-md5; secret \"{SECRET}\"; }};"),
                "hmac-md5",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"!!!\"; };",
                "base64",
            ),
            (
                "key \"k\" { algorithm hmac-sha256; secret \"c2hvcnQ=\"; };",
                "128 bits",
            ),
            (
                &*format!(
                    "key \"a\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};\nkey \"b\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};"
                ),
                "one key per file",
            ),
        ] {
            let e = TsigKey::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}
