//! # kurier-delivery — the outbound queue runner
//!
//! Owns getting queued mail to the recipients' servers: leasing due entries from the store,
//! grouping recipients by destination domain, planning the route (`route`: MX order, null MX,
//! DNSSEC state, DANE policy per host — RFC 5321 §5.1, RFC 7505, RFC 7672), connecting with the
//! security the policy demands (`attempt`: opportunistic STARTTLS, mandatory TLS, DANE-verified
//! TLS — TR-03108 SMTP-2, DANE-7..DANE-12), one connection for all messages to a domain,
//! MTA-STS policies of receiving domains (`sts`, RFC 8461: fetched, cached, enforced where DANE
//! does not apply), retries with exponential backoff (`schedule`), and DSNs in plain language
//! (`dsn`, RFC 3464, MUA-9), and the notice for a message a Sieve script refused after it was
//! accepted (`mdn`, RFC 8098); an operator's bounce of a queued message (`bounce`). TLSRPT
//! (RFC 8460): the daily reports of those outcomes to the receiving domains (`report`), and the
//! reports others send us (`intake`). Every TLS outcome is recorded as a TLSRPT event; every
//! attempt is one log line.
//!
//! Must not: parse SMTP (the `smtp` crate's client does), decide DANE itself (the `policy`
//! crate does), or send anything in clear where a policy requires TLS.

#![forbid(unsafe_code)]

pub mod attempt;
pub mod bounce;
pub mod dmarc_report;
pub mod dsn;
pub mod https;
pub mod intake;
pub mod mdn;
pub mod report;
pub mod revocation;
pub mod route;
pub mod runner;
pub mod schedule;
pub mod sts;

pub use runner::{DeliveryConfig, QueueRunner};
pub use schedule::Schedule;

/// Why a recipient was not delivered (this time, or for good).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// RFC 3463 code; class 4 = try again, class 5 = permanent.
    pub status: String,
    /// Plain language, for the sender's DSN and the log.
    pub reason: String,
    /// The server that was talked to, if any.
    pub remote_mta: Option<String>,
    /// That server's reply, if it gave one.
    pub diagnostic: Option<String>,
}

impl Failure {
    pub fn new(status: &str, reason: impl Into<String>) -> Failure {
        Failure {
            status: status.to_string(),
            reason: reason.into(),
            remote_mta: None,
            diagnostic: None,
        }
    }

    pub fn is_permanent(&self) -> bool {
        self.status.starts_with('5')
    }

    /// The same failure, now final (queue lifetime over): class 4 becomes 5 (RFC 3463 §3.1).
    pub fn made_permanent(mut self) -> Failure {
        if let Some(rest) = self.status.strip_prefix('4') {
            self.status = format!("5{rest}");
        }
        self
    }

    /// One line for the queue listing and logs.
    pub fn summary(&self) -> String {
        let mut s = format!("{} {}", self.status, self.reason);
        if let Some(d) = &self.diagnostic {
            match &self.remote_mta {
                Some(m) => s.push_str(&format!(" [{m} said: {d}]")),
                None => s.push_str(&format!(" [{d}]")),
            }
        }
        s
    }
}

/// What happened to one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by `mx`. `dsn_passed_on`: the server took our DSN parameters (RFC 3461), so
    /// any success notice is its job.
    Delivered { mx: String, dsn_passed_on: bool },
    /// Try again later.
    Deferred(Failure),
    /// Permanent.
    Failed(Failure),
}

impl Outcome {
    /// A failure as the kind its status says.
    pub fn from_failure(f: Failure) -> Outcome {
        if f.is_permanent() {
            Outcome::Failed(f)
        } else {
            Outcome::Deferred(f)
        }
    }
}

/// The domain part of an address, lower case (`a@B.example` → `b.example`).
pub fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or("")
        .trim_end_matches('.')
        .to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_become_permanent_at_expiry() {
        let f = Failure::new("4.7.5", "no match");
        assert!(!f.is_permanent());
        let p = f.made_permanent();
        assert_eq!(p.status, "5.7.5");
        assert!(p.is_permanent());
        assert_eq!(Failure::new("5.1.1", "x").made_permanent().status, "5.1.1");
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("a@B.Example."), "b.example");
        assert_eq!(domain_of("\"a@b\"@c.test"), "c.test");
        assert_eq!(domain_of("nodomain"), "");
    }
}
