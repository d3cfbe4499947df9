//! # kurier-mailauth — who really sent an inbound message (BSI TR-03182)
//!
//! Owns sender authentication of mail from other servers: SPF for MAIL FROM and HELO (`spf`),
//! DKIM verification of every signature with its key from DNS (`kurier_dkim::verify` does the
//! cryptography), DMARC alignment and policy (`dmarc`) on the organizational domain of the
//! Public Suffix List (`psl`), and the Authentication-Results field that records it all
//! (`results`). `verify` runs them for one message; what to do with the result (deliver, Junk,
//! 550, 451) is `dmarc::disposition`, a pure function the caller applies. `aggregate` is the
//! DMARC aggregate report document (RFC 7489 §7.2, Appendix C): written here, read with
//! `roxmltree` (a small, dependency-free XML parser that refuses DTDs and counts nodes) rather
//! than by hand, since reports come from anyone.
//!
//! Every DNS question goes through `AuthLookup`, which `kurier_dns::Resolver` implements: the
//! validating resolver, so each answer carries its DNSSEC state. Why not the `mail-auth`
//! crate: it brings its own resolver (hickory's, without our DNSSEC verdicts and bypassing
//! the validator the rest of Kurier trusts) and its own cryptography (ring, RSA in Rust) next
//! to OpenSSL; SPF and DMARC evaluation are small, exactly specified and tested here against
//! independent implementations (pyspf, dkimpy, authheaders) in the test world.
//!
//! RFCs: 7208 (SPF), 6376, 8301, 8463 (DKIM), 7489 and draft-ietf-dmarc-dmarcbis (DMARC),
//! 8601 (Authentication-Results).
//!
//! Must not: decide delivery itself, trust an answer the validator calls bogus (that is a
//! temperror), or do unbounded work for what a sender controls (signature count, lookups).

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod dmarc;
pub mod psl;
pub mod results;
pub mod spf;

use std::net::IpAddr;
use std::time::Duration;

use kurier_dkim::verify::{DkimResult, SignedMessage};
use kurier_dns::{Answer, DnsError, DnssecState, MxRecord, Resolver};

pub use dmarc::{Disposition, DmarcOutcome, DmarcResult};
pub use psl::PublicSuffixList;
pub use spf::{SpfOutcome, SpfResult};

/// The DNS questions of sender authentication.
pub trait AuthLookup: Send + Sync {
    fn txt(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Answer<String>, DnsError>> + Send;
    /// A (`v6` false) or AAAA records.
    fn ips(
        &self,
        name: &str,
        v6: bool,
    ) -> impl std::future::Future<Output = Result<Answer<IpAddr>, DnsError>> + Send;
    fn mx(
        &self,
        name: &str,
    ) -> impl std::future::Future<Output = Result<Answer<MxRecord>, DnsError>> + Send;
    fn ptr(
        &self,
        ip: IpAddr,
    ) -> impl std::future::Future<Output = Result<Answer<String>, DnsError>> + Send;
}

impl AuthLookup for Resolver {
    async fn txt(&self, name: &str) -> Result<Answer<String>, DnsError> {
        Resolver::txt(self, name).await
    }
    async fn ips(&self, name: &str, v6: bool) -> Result<Answer<IpAddr>, DnsError> {
        self.addresses_of_family(name, v6).await
    }
    async fn mx(&self, name: &str) -> Result<Answer<MxRecord>, DnsError> {
        Resolver::mx(self, name).await
    }
    async fn ptr(&self, ip: IpAddr) -> Result<Answer<String>, DnsError> {
        Resolver::ptr(self, ip).await
    }
}

/// Signatures verified per message; the rest are not looked at (RFC 6376 §6.1 lets a
/// verifier limit them, and each costs a DNS lookup and a public-key operation).
pub const MAX_SIGNATURES: usize = 10;

/// How long one message's checks may take in all: RFC 7208 §4.6.4 asks for at least 20
/// seconds for SPF; DKIM keys and the DMARC policy share the rest, so a sender whose DNS does
/// not answer costs 30 seconds at most (the SMTP client waits 10 minutes, RFC 5321
/// §4.5.3.2.6). What is not done by then is a temperror.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// The part of it SPF may use (for MAIL FROM and HELO together).
pub const SPF_TIMEOUT: Duration = Duration::from_secs(20);

/// One inbound message, as SMTP saw it.
#[derive(Debug, Clone)]
pub struct Inbound<'a> {
    pub ip: IpAddr,
    /// The HELO/EHLO name, when it is a domain name.
    pub helo: Option<&'a str>,
    /// The MAIL FROM address, empty for a null sender.
    pub mail_from: &'a str,
    /// The domains of the From field's addresses (RFC 7489 §6.6.1).
    pub from_domains: Vec<String>,
    pub message: &'a [u8],
    /// Our own name (`%{r}`, and the authserv-id).
    pub receiver: &'a str,
    pub now: i64,
}

/// What one DKIM signature came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimVerdict {
    pub result: DkimResult,
    pub domain: Option<String>,
    pub selector: Option<String>,
    pub b_prefix: String,
    pub reason: Option<String>,
    /// The DNSSEC state of the key record (when it was found).
    pub dnssec: Option<DnssecState>,
}

/// Everything sender authentication found out about one message.
#[derive(Debug, Clone)]
pub struct Verification {
    /// (identity, outcome) of the MAIL FROM check (`postmaster@helo` for a null sender).
    pub spf_mail_from: Option<(String, SpfOutcome)>,
    /// (HELO name, outcome).
    pub spf_helo: Option<(String, SpfOutcome)>,
    pub dkim: Vec<DkimVerdict>,
    /// Signatures beyond `MAX_SIGNATURES`, not verified.
    pub dkim_unchecked: usize,
    /// One outcome per From domain (normally exactly one).
    pub dmarc: Vec<DmarcOutcome>,
}

impl Verification {
    /// The disposition of the strictest DMARC outcome (`sample`: see `dmarc::disposition`).
    pub fn disposition(&self, sample: u8) -> (Disposition, Option<&DmarcOutcome>) {
        let rank = |d: Disposition| match d {
            Disposition::Deliver => 0,
            Disposition::Quarantine => 1,
            Disposition::TempFail => 2,
            Disposition::Reject => 3,
        };
        self.dmarc
            .iter()
            .map(|o| (dmarc::disposition(o, sample), Some(o)))
            .max_by_key(|(d, _)| rank(*d))
            .unwrap_or((Disposition::Deliver, None))
    }
}

async fn spf_check<L: AuthLookup>(
    lookup: &L,
    input: &Inbound<'_>,
    domain: &str,
    sender: &str,
    deadline: tokio::time::Instant,
) -> SpfOutcome {
    let query = spf::SpfQuery {
        ip: input.ip,
        domain,
        sender,
        helo: input.helo.unwrap_or("unknown"),
        receiver: input.receiver,
        now: input.now,
    };
    match tokio::time::timeout_at(deadline, spf::check_host(lookup, &query)).await {
        Ok(o) => o,
        Err(_) => SpfOutcome {
            result: SpfResult::TempError,
            domain: domain.to_string(),
            reason: "the SPF check took too long (RFC 7208 section 4.6.4)".into(),
            explanation: None,
            dnssec: DnssecState::Insecure,
        },
    }
}

/// DKIM: every signature (up to `MAX_SIGNATURES`) against its key record.
async fn dkim_check<L: AuthLookup>(
    lookup: &L,
    message: &[u8],
    now: i64,
    deadline: tokio::time::Instant,
) -> (Vec<DkimVerdict>, usize) {
    let signed = SignedMessage::new(message);
    let (signatures, found) = signed.signatures(MAX_SIGNATURES);
    let mut out = Vec::new();
    for s in signatures {
        let sig = match s {
            Ok(sig) => sig,
            Err(u) => {
                out.push(DkimVerdict {
                    result: u.result,
                    domain: u.domain,
                    selector: u.selector,
                    b_prefix: String::new(),
                    reason: Some(u.reason),
                    dnssec: None,
                });
                continue;
            }
        };
        let mut verdict = DkimVerdict {
            result: DkimResult::PermError,
            domain: Some(sig.domain.clone()),
            selector: Some(sig.selector.clone()),
            b_prefix: sig.b_prefix.clone(),
            reason: None,
            dnssec: None,
        };
        let name = sig.key_name();
        match tokio::time::timeout_at(deadline, lookup.txt(&name)).await {
            Ok(Ok(a)) => {
                verdict.dnssec = Some(a.state);
                match a.records.first() {
                    // §3.6.2.2: several records: use the first.
                    Some(record) => {
                        let c = signed.check(&sig, record, now);
                        verdict.result = c.result;
                        verdict.reason = c.reason;
                    }
                    None => verdict.reason = Some(format!("no key at {name}")),
                }
            }
            Ok(Err(DnsError::Invalid(e))) => verdict.reason = Some(e),
            Ok(Err(e)) => {
                verdict.result = DkimResult::TempError;
                verdict.reason = Some(e.to_string());
            }
            Err(_) => {
                verdict.result = DkimResult::TempError;
                verdict.reason = Some(format!("{name}: no answer in time"));
            }
        }
        out.push(verdict);
    }
    let unchecked = found.saturating_sub(MAX_SIGNATURES);
    (out, unchecked)
}

/// SPF, DKIM and DMARC for one inbound message.
pub async fn verify<L: AuthLookup>(
    lookup: &L,
    psl: &PublicSuffixList,
    input: &Inbound<'_>,
) -> Verification {
    let start = tokio::time::Instant::now();
    let (spf_deadline, deadline) = (start + SPF_TIMEOUT, start + CHECK_TIMEOUT);
    // RFC 7208 §2.4: a null sender is checked as postmaster@<HELO>.
    let helo = input
        .helo
        .map(|h| h.trim_end_matches('.').to_ascii_lowercase());
    let mail_from = match (input.mail_from.rsplit_once('@'), &helo) {
        (Some((_, domain)), _) => Some((input.mail_from.to_string(), domain.to_string())),
        (None, Some(h)) => Some((format!("postmaster@{h}"), h.clone())),
        (None, None) => None,
    };
    let spf_mail_from = match &mail_from {
        Some((sender, domain)) => Some((
            sender.clone(),
            spf_check(lookup, input, domain, sender, spf_deadline).await,
        )),
        None => None,
    };
    let spf_helo = match &helo {
        Some(h) => {
            let sender = format!("postmaster@{h}");
            Some((
                h.clone(),
                spf_check(lookup, input, h, &sender, spf_deadline).await,
            ))
        }
        None => None,
    };
    let (dkim, dkim_unchecked) = dkim_check(lookup, input.message, input.now, deadline).await;
    // §4.2: SPF's authenticated identifier is the MAIL FROM domain (HELO's for a null sender).
    let spf_identity: Option<(&str, dmarc::Check)> = spf_mail_from.as_ref().map(|(_, o)| {
        let check = match o.result {
            SpfResult::Pass => dmarc::Check::Pass,
            SpfResult::TempError => dmarc::Check::TempError,
            _ => dmarc::Check::Fail,
        };
        (o.domain.as_str(), check)
    });
    let dkim_identities: Vec<(&str, dmarc::Check)> = dkim
        .iter()
        .filter_map(|d| {
            let check = match d.result {
                DkimResult::Pass => dmarc::Check::Pass,
                DkimResult::TempError => dmarc::Check::TempError,
                _ => dmarc::Check::Fail,
            };
            Some((d.domain.as_deref()?, check))
        })
        .collect();
    let mut from_domains = input.from_domains.clone();
    from_domains.sort();
    from_domains.dedup();
    let mut outcomes = Vec::new();
    for from in from_domains.iter().take(4) {
        let discovered =
            match tokio::time::timeout_at(deadline, dmarc::discover(lookup, from)).await {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    outcomes.push(unknown_policy(from, e.to_string()));
                    continue;
                }
                Err(_) => {
                    outcomes.push(unknown_policy(from, "no answer in time".into()));
                    continue;
                }
            };
        outcomes.push(dmarc::evaluate(
            psl,
            from,
            discovered,
            spf_identity,
            &dkim_identities,
        ));
    }
    Verification {
        spf_mail_from,
        spf_helo,
        dkim,
        dkim_unchecked,
        dmarc: outcomes,
    }
}

/// The policy of `from` could not be looked up: temperror, to be retried (a 451 where the
/// operator enforces DMARC) — never taken for "no policy".
fn unknown_policy(from: &str, why: String) -> DmarcOutcome {
    DmarcOutcome {
        result: DmarcResult::TempError,
        from_domain: from.to_string(),
        policy: None,
        spf_aligned: false,
        dkim_aligned: false,
        reason: format!("the DMARC policy of {from} cannot be looked up now: {why}"),
    }
}
