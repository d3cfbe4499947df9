//! # kurier-acme — certificates from an ACME CA, without a human
//!
//! Owns the ACME client (RFC 8555): the account key and the JWS every request is signed with
//! (`jws`, RFC 7515/7518/7638), the protocol objects and what a client does next with each
//! (`messages`, pure), when to order (`renewal`, pure), the certificate key, CSR, chain check
//! and bootstrap certificate (`certificate`), the HTTPS exchange with the CA (`https`), the
//! driver of one account and one order (`client`), and the HTTP-01 responses the port-80 listener serves (`Http01Tokens`,
//! RFC 8555 §8.3).
//!
//! RFCs: 8555 (ACME), 7515 (JWS), 7518 §3.4 (ES256/ES384), 7638 (JWK thumbprint), 2986 (CSR),
//! 8737 (TLS-ALPN-01).
//!
//! Must not: decide when to renew or which key to use (the binary does, with DANE in mind:
//! `kurier_policy::rollover`), write files, or trust anything the CA sends without checking it
//! (a token becomes a URL path; a chain must be for our key and names).

#![forbid(unsafe_code)]

pub mod certificate;
pub mod client;
pub mod https;
pub mod jws;
pub mod messages;
pub mod renewal;

use std::collections::HashMap;
use std::sync::Mutex;

pub use client::{AcmeClient, ChallengeResponder};
pub use jws::{AccountKey, Curve};
pub use messages::ChallengeType;

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// The CA could not be reached or answered no HTTP.
    #[error("{0}")]
    Http(String),
    /// The CA answered, but not as RFC 8555 says.
    #[error("{0}")]
    Protocol(String),
    /// The CA refused a request, with its reason (RFC 8555 §6.7).
    #[error("{url} answered HTTP {status}: {problem}")]
    Problem {
        url: String,
        status: u16,
        problem: messages::Problem,
    },
    /// An order or authorization failed.
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Crypto(String),
}

/// The HTTP-01 key authorizations being served (RFC 8555 §8.3): token → key authorization.
/// The port-80 listener answers `/.well-known/acme-challenge/<token>` from it.
#[derive(Debug, Default)]
pub struct Http01Tokens {
    tokens: Mutex<HashMap<String, String>>,
}

/// At most this many challenges at once: one order's worth for many domains.
const MAX_TOKENS: usize = 1000;

impl Http01Tokens {
    /// The key authorization for `token`, if one is being served.
    pub fn get(&self, token: &str) -> Option<String> {
        self.lock().get(token).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ChallengeResponder for Http01Tokens {
    fn provision(&self, kind: ChallengeType, _name: &str, token: &str, key_authorization: &str) {
        let mut t = self.lock();
        if kind == ChallengeType::Http01 && t.len() < MAX_TOKENS {
            t.insert(token.to_string(), key_authorization.to_string());
        }
    }

    fn clean(&self, kind: ChallengeType, _name: &str, token: &str) {
        if kind == ChallengeType::Http01 {
            self.lock().remove(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http01_tokens_are_served_until_cleaned() {
        let t = Http01Tokens::default();
        t.provision(ChallengeType::Http01, "a.test", "tok", "tok.thumb");
        t.provision(ChallengeType::TlsAlpn01, "a.test", "other", "x");
        assert_eq!(t.get("tok").as_deref(), Some("tok.thumb"));
        assert_eq!(t.get("other"), None, "TLS-ALPN-01 is not served over HTTP");
        t.clean(ChallengeType::Http01, "a.test", "tok");
        assert_eq!(t.get("tok"), None);
    }
}
