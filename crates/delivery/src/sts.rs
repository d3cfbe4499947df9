//! MTA-STS discovery and fetching (RFC 8461 §3.3, §5.1; TR-03108 STS-4, STS-6): the `_mta-sts`
//! TXT record through the validating resolver, the policy over HTTPS from `mta-sts.<domain>`
//! with the TLS client profile, SNI and PKIX validation — wildcard certificates rejected, no
//! redirects, 200 and `text/plain` only, at most 64 KiB, within a time limit — and the cache in
//! the store: used while its id matches and it has not expired, refreshed about daily, and kept
//! applying when a live fetch fails.

use std::sync::Arc;
use std::time::Duration;

use kurier_dns::Resolver;
use kurier_policy::sts::{MAX_POLICY_BYTES, StsPolicy, parse_policy, parse_record};
use kurier_store::{CachedStsPolicy, Store, UnixTime};
use kurier_tls::{ClientTls, ResultType};

use crate::https;
use crate::revocation::RevocationChecker;

/// A cached policy younger than this is not fetched again while its id matches.
const REFRESH_SECS: i64 = 86_400;
/// After a failed fetch, the next one waits this long: retry runs of the queue in between use
/// what the failure left (a cached policy or none) and do not count the failure again.
const RETRY_FETCH_SECS: i64 = 300;
/// Domains whose failed fetch is remembered, at most.
const MAX_REMEMBERED_FAILURES: usize = 10_000;

/// What MTA-STS says for a domain right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StsLookup {
    /// The policy that applies (fresh or cached), if any.
    pub policy: Option<StsPolicy>,
    /// A fetch that failed, as an RFC 8460 result type and detail — reported even when the
    /// cached policy covers for it.
    pub failure: Option<(ResultType, String)>,
}

pub struct StsFetcher {
    resolver: Resolver,
    tls: ClientTls,
    store: Arc<dyn Store>,
    timeout: Duration,
    /// 443 but in labs.
    port: u16,
    revocation: Arc<RevocationChecker>,
    failed: RecentFailures,
}

/// Domain → when its last fetch failed, for `RETRY_FETCH_SECS`; bounded.
#[derive(Default)]
struct RecentFailures(std::sync::Mutex<std::collections::HashMap<String, UnixTime>>);

impl RecentFailures {
    fn is_recent(&self, domain: &str, now: UnixTime) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|f| f.get(domain).copied())
            .is_some_and(|at| now - at < RETRY_FETCH_SECS)
    }

    fn remember(&self, domain: &str, now: UnixTime) {
        if let Ok(mut f) = self.0.lock() {
            if f.len() >= MAX_REMEMBERED_FAILURES {
                f.retain(|_, at| now - *at < RETRY_FETCH_SECS);
            }
            if f.len() < MAX_REMEMBERED_FAILURES {
                f.insert(domain.to_string(), now);
            }
        }
    }
}

impl StsFetcher {
    pub fn new(
        resolver: Resolver,
        tls: ClientTls,
        store: Arc<dyn Store>,
        timeout: Duration,
        port: u16,
        revocation: Arc<RevocationChecker>,
    ) -> Self {
        StsFetcher {
            resolver,
            tls,
            store,
            timeout,
            port,
            revocation,
            failed: Default::default(),
        }
    }

    /// The policy for mail to `domain` (never a parent's: STS-7).
    pub async fn lookup(&self, domain: &str, now: UnixTime) -> StsLookup {
        let cached = match self.store.sts_policy(domain).await {
            Ok(Some(c)) if c.expires > now => parse_policy(&c.policy).ok().map(|p| (p, c)),
            _ => None,
        };
        let keep = |failure| StsLookup {
            policy: cached.as_ref().map(|(p, _)| p.clone()),
            failure,
        };
        // No (usable) record, or DNS trouble: a cached policy keeps applying until it expires
        // (§5.1); without one there is no policy.
        let record = match self.resolver.txt(&format!("_mta-sts.{domain}")).await {
            Ok(a) => match parse_record(&a.records) {
                Ok(Some(r)) => r,
                Ok(None) => return keep(None),
                Err(e) => return keep(Some((ResultType::StsPolicyInvalid, e.to_string()))),
            },
            // Never silently "no policy" (RFC 8460 §4.3.2.2): a bogus record is reported as
            // such, one that could not be had at all as a failed fetch.
            Err(e @ kurier_dns::DnsError::Bogus(_)) => {
                return keep(Some((
                    ResultType::DnssecInvalid,
                    format!("_mta-sts.{domain}: {e}"),
                )));
            }
            Err(e) => {
                return keep(Some((
                    ResultType::StsPolicyFetchError,
                    format!("_mta-sts.{domain}: {e}"),
                )));
            }
        };
        if let Some((p, c)) = &cached
            && c.record_id == record.id
            && now - c.fetched < REFRESH_SECS
        {
            return StsLookup {
                policy: Some(p.clone()),
                failure: None,
            };
        }
        // One failure counts once (RFC 8460 §4.3.2.2 is about fetches, not queue runs).
        if self.failed.is_recent(domain, now) {
            return keep(None);
        }
        let fetched = match tokio::time::timeout(self.timeout, self.fetch(domain)).await {
            Ok(r) => r,
            Err(_) => Err((
                ResultType::StsPolicyFetchError,
                format!("no answer within {:?}", self.timeout),
            )),
        };
        let (text, policy) = match fetched.and_then(|text| {
            parse_policy(&text)
                .map(|p| (text, p))
                .map_err(|e| (ResultType::StsPolicyInvalid, e.to_string()))
        }) {
            Ok(x) => x,
            Err((kind, detail)) => {
                tracing::warn!(domain, result = %kind, %detail, cached = cached.is_some(), "MTA-STS policy fetch failed");
                self.failed.remember(domain, now);
                return keep(Some((kind, detail)));
            }
        };
        let entry = CachedStsPolicy {
            domain: domain.to_string(),
            record_id: record.id,
            policy: text,
            fetched: now,
            expires: now + i64::try_from(policy.max_age).unwrap_or(0),
        };
        if let Err(e) = self.store.put_sts_policy(&entry).await {
            tracing::warn!(domain, error = %e, "cannot cache the MTA-STS policy");
        }
        tracing::info!(domain, mode = policy.mode.as_str(), id = %entry.record_id, "MTA-STS policy fetched");
        StsLookup {
            policy: Some(policy),
            failure: None,
        }
    }

    /// GET https://mta-sts.<domain>/.well-known/mta-sts.txt, as §3.3 and STS-6 demand.
    async fn fetch(&self, domain: &str) -> Result<String, (ResultType, String)> {
        let host = format!("mta-sts.{domain}");
        let r = https::exchange(
            &self.resolver,
            &self.tls,
            https::Request {
                host: &host,
                port: self.port,
                method: "GET",
                path: "/.well-known/mta-sts.txt",
                content_type: None,
                body: Vec::new(),
                reject_wildcard: true,
                max_response: MAX_POLICY_BYTES,
                revocation: Some(&self.revocation),
            },
        )
        .await?;
        // §3.3: no redirects, only 200, text/plain.
        if r.status != 200 {
            return Err((
                ResultType::StsPolicyFetchError,
                format!(
                    "{host} answered {} (only 200 counts; redirects are not followed)",
                    r.status
                ),
            ));
        }
        if !r.content_type.starts_with("text/plain") {
            return Err((
                ResultType::StsPolicyInvalid,
                format!("{host} served {:?}, not text/plain", r.content_type),
            ));
        }
        String::from_utf8(r.body.to_vec()).map_err(|_| {
            (
                ResultType::StsPolicyInvalid,
                "the policy is not UTF-8".to_string(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18 item 4: a failed fetch is not repeated (nor counted again) by every queue run,
    /// only after `RETRY_FETCH_SECS`; the memory of failures stays bounded.
    #[test]
    fn rpt_a_failed_fetch_waits_before_the_next_one() {
        let f = RecentFailures::default();
        assert!(!f.is_recent("a.test", 1000));
        f.remember("a.test", 1000);
        assert!(f.is_recent("a.test", 1000 + RETRY_FETCH_SECS - 1));
        assert!(!f.is_recent("a.test", 1000 + RETRY_FETCH_SECS));
        assert!(!f.is_recent("b.test", 1001));
        for i in 0..MAX_REMEMBERED_FAILURES + 10 {
            f.remember(&format!("d{i}.test"), 5000);
        }
        assert!(f.0.lock().unwrap().len() <= MAX_REMEMBERED_FAILURES);
        // Old entries make room.
        f.remember("late.test", 5000 + RETRY_FETCH_SECS);
        assert!(f.is_recent("late.test", 5000 + RETRY_FETCH_SECS));
    }
}
