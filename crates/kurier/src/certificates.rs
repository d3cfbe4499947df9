//! Our certificates and DANE (RFC 7671 §8, TR-03108 DANE-3): a reload (SIGHUP, changed files,
//! an ACME issuance) loads the new chains, looks up the TLSA RRsets of our name at every DANE
//! port through the validating resolver, and goes live only if `kurier_policy::rollover` says
//! so; `monitor` compares the chain in use with DNS on a schedule. Wiring only: the decision is
//! the policy crate's.

use std::sync::Arc;
use std::time::Duration;

use kurier_dns::Resolver;
use kurier_policy::dane::TlsaAnswer;
use kurier_policy::rollover::{Rollover, judge};
use kurier_tls::TlsAcceptor;
use kurier_tls::tlsa::{Matching, Selector, TlsaRecord, Usage, matches_chain};
use tokio::sync::watch;

/// Our TLSA owner names, and the resolver that looks at them.
pub struct DaneGuard {
    pub resolver: Resolver,
    /// The name the MX and the client services are reached at (`server.hostname`).
    pub host: String,
    /// The ports `kurier dns` publishes TLSA records for.
    pub ports: Vec<u16>,
}

/// Loads every endpoint's certificates; puts them in use only if the DANE check passes (when
/// there is a guard). All endpoints switch together or none does.
pub async fn reload(endpoints: &[Arc<TlsAcceptor>], guard: Option<&DaneGuard>) {
    match load_checked(endpoints, guard).await {
        Ok(()) => {
            endpoints.iter().for_each(|a| log_certificates(a));
            tracing::info!("certificates reloaded");
        }
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "certificate reload failed; the previous certificates stay in use")
        }
    }
}

async fn load_checked(
    endpoints: &[Arc<TlsAcceptor>],
    guard: Option<&DaneGuard>,
) -> anyhow::Result<()> {
    let pending = endpoints
        .iter()
        .map(|a| a.load())
        .collect::<Result<Vec<_>, _>>()?;
    if let (Some(guard), Some(first)) = (guard, pending.first()) {
        approve(guard, first.chain_for(&guard.host), endpoints).await?;
    }
    for (a, p) in endpoints.iter().zip(pending) {
        a.install(p);
    }
    Ok(())
}

/// Whether `chain` may replace what `endpoints` serve: the rollover verdict at our TLSA owner
/// names (an error says what to publish, or why it cannot be known).
pub async fn approve(
    guard: &DaneGuard,
    chain: &[openssl::x509::X509],
    endpoints: &[Arc<TlsAcceptor>],
) -> anyhow::Result<()> {
    let old_expiring = endpoints.first().is_some_and(|a| expiring(a));
    let (answers, _) = answers(guard).await;
    match judge(&answers, |r| matches_chain(r, chain), old_expiring) {
        Rollover::Switch => Ok(()),
        Rollover::SwitchUnchecked { owners } => {
            tracing::warn!(
                names = %owners.len(),
                "the new certificate could not be compared with the published TLSA records ({}); in use anyway: a bogus TLSA RRset stops DANE senders whatever is served, and an expiring certificate must go",
                first_reason(&owners)
            );
            Ok(())
        }
        Rollover::Refuse { owners } => {
            let publish = publish_hint(&owners, chain);
            anyhow::bail!(
                "the new certificate for {} matches none of the TLSA records published at {}: DANE senders would stop delivering. Publish {publish} beside the current records, wait two TTLs, then reload again",
                guard.host,
                owners.join(", ")
            )
        }
        Rollover::Wait { owners } => {
            let why = first_reason(&owners);
            anyhow::bail!(
                "cannot confirm that the new certificate matches the published TLSA records ({why}); checked again at the next reload"
            )
        }
    }
}

/// The TLSA RRsets at our owner names, with what DNSSEC proved, and the longest TTL among them.
pub async fn answers(guard: &DaneGuard) -> (Vec<(String, TlsaAnswer)>, u32) {
    let mut answers = Vec::new();
    let mut ttl = 0;
    for port in &guard.ports {
        let owner = kurier_policy::dane::tlsa_name(&guard.host, *port);
        let result = guard.resolver.tlsa(&owner).await;
        if let Ok(a) = &result {
            ttl = a.records.iter().map(|r| r.ttl).fold(ttl, u32::max);
        }
        answers.push((owner, kurier_delivery::route::tlsa_verdict(result)));
    }
    (answers, ttl)
}

/// `<owner>. IN TLSA 3 1 1 <hash>` for `chain`'s key at each owner name.
pub fn publish_hint(owners: &[String], chain: &[openssl::x509::X509]) -> String {
    let record = chain
        .first()
        .and_then(|leaf| {
            TlsaRecord::for_certificate(leaf, Usage::DaneEe, Selector::Spki, Matching::Sha256).ok()
        })
        .map(|r| r.rdata())
        .unwrap_or_default();
    owners
        .iter()
        .map(|o| format!("{o}. IN TLSA {record}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// TR-03108 DANE-3 monitoring: every `every`, the chain served for our name is compared with
/// the published TLSA records (an outside change — a zone edit, a lost record — breaks DANE
/// senders as surely as a bad reload). A mismatch is an error in the log and 0 on the
/// `kurier_dane_tlsa_match` gauge.
pub async fn monitor(
    acceptor: Arc<TlsAcceptor>,
    guard: Arc<DaneGuard>,
    metrics: Arc<crate::metrics::Metrics>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering;
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let chain = acceptor.served_chain(&guard.host);
        let (answers, _) = answers(&guard).await;
        let before = metrics.tlsa_match.load(Ordering::Relaxed);
        match judge(&answers, |r| matches_chain(r, &chain), false) {
            Rollover::Switch => {
                metrics.tlsa_match.store(1, Ordering::Relaxed);
                metrics.tlsa_check_failed.store(0, Ordering::Relaxed);
                if before == 0 {
                    tracing::info!(host = %guard.host, "the served certificate matches the published TLSA records again");
                }
            }
            Rollover::Refuse { owners } => {
                metrics.tlsa_match.store(0, Ordering::Relaxed);
                metrics.tlsa_check_failed.store(0, Ordering::Relaxed);
                tracing::error!(host = %guard.host,
                    "the served certificate matches none of the TLSA records published at {}: DANE senders cannot deliver to us. Publish {} (or serve the certificate the records name)",
                    owners.join(", "), publish_hint(&owners, &chain));
            }
            Rollover::Wait { owners } | Rollover::SwitchUnchecked { owners } => {
                metrics.tlsa_check_failed.store(1, Ordering::Relaxed);
                tracing::warn!(host = %guard.host, "cannot compare the served certificate with the TLSA records: {}", first_reason(&owners));
            }
        }
    }
}

/// The first owner's reason, and how many more there are (one failing resolver fails them all).
pub fn first_reason(owners: &[(String, String)]) -> String {
    match owners {
        [] => String::new(),
        [(o, why)] => format!("{o}: {why}"),
        [(o, why), rest @ ..] => format!("{o}: {why}; and {} more names", rest.len()),
    }
}

/// Whether the default certificate in use expires within a week (or has).
fn expiring(acceptor: &TlsAcceptor) -> bool {
    let Ok(soon) = openssl::asn1::Asn1Time::days_from_now(7) else {
        return false;
    };
    acceptor
        .certificates()
        .first()
        .is_some_and(|c| c.leaf().not_after() <= soon)
}

/// Checks the certificate files every `every` and reloads when one changed. A refused set is
/// tried again at each check, so publishing the missing TLSA record is all it takes.
pub async fn poll(
    endpoints: Vec<Arc<TlsAcceptor>>,
    guard: Option<Arc<DaneGuard>>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if endpoints.iter().any(|a| a.files_changed()) {
            tracing::info!("certificate files changed: reloading");
            reload(&endpoints, guard.as_deref()).await;
        }
    }
}

/// One log line per certificate in use, with the SHOULD rules it misses.
pub fn log_certificates(acceptor: &TlsAcceptor) {
    for c in acceptor.certificates() {
        tracing::info!(
            cert = %c.cert_path.display(),
            names = %c.names.join(" "),
            key = %c.key_description(),
            not_after = %c.leaf().not_after(),
            "certificate loaded"
        );
        for w in &c.warnings {
            tracing::warn!(cert = %c.cert_path.display(), requirement = w.requirement, "{}", w.message);
        }
    }
}
