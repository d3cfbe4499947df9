//! # kurier-acme — certificates from an ACME CA, without a human
//!
//! Owns the ACME client (RFC 8555): the account key and the JWS every request is signed with
//! (`jws`, RFC 7515/7518/7638), the protocol objects and what a client does next with each
//! (`messages`, pure), when to order (`renewal`, pure), the certificate key, CSR, chain check
//! and bootstrap certificate (`certificate`), the HTTPS exchange with the CA (`https`), the
//! driver of one account and one order (`client`), and the challenge responses: HTTP-01 for the
//! port-80 listener (`Http01Tokens`, RFC 8555 §8.3) and TLS-ALPN-01 for the TLS endpoints
//! (`ChallengeResponses`, RFC 8737).
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
use std::sync::{Arc, Mutex};

use kurier_tls::TlsAlpn01Certificates;

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

    /// Serves `key_authorization` for `token`; false when too many are being served.
    pub fn insert(&self, token: &str, key_authorization: &str) -> bool {
        let mut t = self.lock();
        if t.len() >= MAX_TOKENS && !t.contains_key(token) {
            return false;
        }
        t.insert(token.to_string(), key_authorization.to_string());
        true
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(token);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Where both kinds of challenge are answered: HTTP-01 tokens for the port-80 listener, and
/// TLS-ALPN-01 certificates for every TLS endpoint that may get the CA's connection on 443.
pub struct ChallengeResponses {
    pub http01: Arc<Http01Tokens>,
    pub tls_alpn01: Vec<Arc<TlsAlpn01Certificates>>,
}

impl ChallengeResponder for ChallengeResponses {
    fn provision(
        &self,
        kind: ChallengeType,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), AcmeError> {
        let full = || AcmeError::Failed(format!("too many challenges at once; {name} waits"));
        match kind {
            ChallengeType::Http01 => {
                if !self.http01.insert(token, key_authorization) {
                    return Err(full());
                }
            }
            ChallengeType::TlsAlpn01 => {
                let (cert, key) = certificate::tls_alpn01(name, key_authorization)?;
                for endpoint in &self.tls_alpn01 {
                    if !endpoint.insert(name, cert.clone(), key.clone()) {
                        return Err(full());
                    }
                }
            }
        }
        Ok(())
    }

    fn clean(&self, kind: ChallengeType, name: &str, token: &str) {
        match kind {
            ChallengeType::Http01 => self.http01.remove(token),
            ChallengeType::TlsAlpn01 => {
                for endpoint in &self.tls_alpn01 {
                    endpoint.remove(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn http01_tokens_are_served_until_cleaned_and_tls_alpn01_is_not_served_over_http() {
        let responses = ChallengeResponses {
            http01: Arc::new(Http01Tokens::default()),
            tls_alpn01: vec![Arc::new(TlsAlpn01Certificates::default())],
        };
        let r: &dyn ChallengeResponder = &responses;
        r.provision(ChallengeType::Http01, "a.test", "tok", "tok.thumb")
            .unwrap();
        r.provision(ChallengeType::TlsAlpn01, "a.test", "other", "x")
            .unwrap();
        assert_eq!(responses.http01.get("tok").as_deref(), Some("tok.thumb"));
        assert_eq!(responses.http01.get("other"), None);
        r.clean(ChallengeType::Http01, "a.test", "tok");
        assert_eq!(responses.http01.get("tok"), None);
    }

    #[test]
    fn a_full_token_table_is_an_error_not_a_silent_drop() {
        let t = Http01Tokens::default();
        for i in 0..MAX_TOKENS {
            assert!(t.insert(&i.to_string(), "ka"));
        }
        assert!(!t.insert("one more", "ka"));
        assert!(
            t.insert("0", "again"),
            "a token already served may be replaced"
        );
    }
}
