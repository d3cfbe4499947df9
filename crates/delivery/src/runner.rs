//! The queue runner: leases due entries (so that several nodes share one PostgreSQL queue and a
//! crashed worker loses nothing), splits their recipients by destination domain, delivers each
//! domain's messages over a few reused connections within per-domain and global limits, then
//! records every recipient's result in one `finish_attempt` per entry and sends the DSNs that
//! are due (failure, delay warning, "relayed").

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kurier_dns::{Resolver, ValidatorState};
use kurier_policy::tlsrpt::{PolicyType, TlsOutcome};
use kurier_smtp::client::Envelope;
use kurier_store::{QueueEntry, RecipientStatus, Store, StoreError};
use kurier_tls::ClientTls;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

use crate::attempt::{self, Connector, Item, SourceAddresses};
use crate::dsn::{self, Action, RecipientNotice};
use crate::revocation::RevocationChecker;
use crate::schedule::Schedule;
use crate::sts::{StsFetcher, StsLookup};
use crate::{Outcome, domain_of, route};

/// How the runner works (config section `[delivery]`).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Our name in EHLO and in DSNs.
    pub hostname: String,
    pub schedule: Schedule,
    /// The port of receiving servers: 25 (other values only for labs).
    pub port: u16,
    /// Connect and per-command timeout.
    pub timeout: Duration,
    /// Timeout for the reply to the message data.
    pub data_timeout: Duration,
    /// Connections at once, in all.
    pub max_connections: usize,
    /// Connections at once to one destination domain.
    pub max_per_domain: usize,
    /// Queue entries in flight at once.
    pub max_in_flight: usize,
    /// How long a lease lasts; an attempt must finish within it.
    pub lease_secs: u32,
    /// How often the queue is looked at without a wake-up (other nodes' mail, retries).
    pub poll: Duration,
    /// Time limit of an MTA-STS policy fetch (RFC 8461 §3.3 suggests a minute).
    pub sts_timeout: Duration,
    /// The HTTPS port of MTA-STS policy hosts: 443 but in labs.
    pub sts_port: u16,
    pub source: SourceAddresses,
}

impl DeliveryConfig {
    pub fn new(hostname: &str) -> DeliveryConfig {
        DeliveryConfig {
            hostname: hostname.to_string(),
            schedule: Schedule::default(),
            port: 25,
            timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            max_connections: 100,
            max_per_domain: 10,
            max_in_flight: 2000,
            lease_secs: 1800,
            poll: Duration::from_secs(1),
            sts_timeout: Duration::from_secs(60),
            sts_port: 443,
            source: SourceAddresses::default(),
        }
    }
}

pub struct QueueRunner {
    store: Arc<dyn Store>,
    resolver: Resolver,
    sts: StsFetcher,
    connector: Connector,
    cfg: DeliveryConfig,
    /// Our lease holder name: host and process, unique among nodes.
    holder: String,
    wake: Arc<Notify>,
    /// The DNSSEC probe's verdict: while it fails, nothing is leased (DNS-1, DANE-7).
    validator: watch::Receiver<ValidatorState>,
    in_flight: Arc<Semaphore>,
    connections: Arc<Semaphore>,
    domains: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Recipients with their RFC 3461 parameters.
type Recipients = Vec<(String, Option<String>)>;
/// A domain's share of the leased entries.
type DomainWork = Vec<(Arc<Job>, Recipients)>;
/// Destination domain, and how TLS failures treat its messages.
type Destination = (String, TlsHandling);

/// How TLS failures treat a message (RFC 8689 §5, RFC 8460 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TlsHandling {
    /// DANE and MTA-STS hold the message; its sessions count for TLSRPT.
    Policy,
    /// `TLS-Required: No` from a sender: delivered best effort (a DANE or MTA-STS failure does
    /// not hold it), and its sessions still count for TLSRPT.
    Optional,
    /// Our own TLSRPT report (`TLS-Required: No` and `TLS-Report-Domain`): best effort, and
    /// not counted, lest a report about failures cause more (RFC 8460 §3).
    Report,
}

impl TlsHandling {
    /// From the message's header `fields`. RFC 8689 §5: `TLS-Required: No` is ignored when
    /// the message also asks for REQUIRETLS.
    fn of(fields: &[(String, String)], require_tls: bool) -> TlsHandling {
        let optional = !require_tls
            && fields
                .iter()
                .any(|(n, v)| n == "tls-required" && v.trim().eq_ignore_ascii_case("no"));
        match (optional, is_report(fields)) {
            (false, _) => TlsHandling::Policy,
            (true, false) => TlsHandling::Optional,
            (true, true) => TlsHandling::Report,
        }
    }
}

/// A TLSRPT report of ours (it has `TLS-Report-Domain`, RFC 8460 §5.3).
fn is_report(fields: &[(String, String)]) -> bool {
    fields.iter().any(|(n, _)| n == "tls-report-domain")
}

/// One leased entry while its domains are being worked on.
struct Job {
    entry: QueueEntry,
    body: Arc<Vec<u8>>,
    /// A TLSRPT report (it has `TLS-Report-Domain`): retried for a day only (RFC 8460 §5.3).
    report: bool,
    remaining: AtomicUsize,
    results: Mutex<Vec<(String, Outcome)>>,
    _permit: OwnedSemaphorePermit,
}

impl QueueRunner {
    pub fn new(
        store: Arc<dyn Store>,
        resolver: Resolver,
        tls: ClientTls,
        cfg: DeliveryConfig,
        wake: Arc<Notify>,
        validator: watch::Receiver<ValidatorState>,
    ) -> Arc<QueueRunner> {
        let revocation = Arc::new(RevocationChecker::new(resolver.clone(), cfg.sts_timeout));
        let sts = StsFetcher::new(
            resolver.clone(),
            tls.clone(),
            store.clone(),
            cfg.sts_timeout,
            cfg.sts_port,
            revocation.clone(),
        );
        let connector = Connector {
            tls,
            helo: cfg.hostname.clone(),
            port: cfg.port,
            timeout: cfg.timeout,
            data_timeout: cfg.data_timeout,
            revocation: Some(revocation),
            source: cfg.source,
        };
        Arc::new(QueueRunner {
            store,
            resolver,
            sts,
            connector,
            holder: format!("{}:{}", cfg.hostname, std::process::id()),
            wake,
            validator,
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            connections: Arc::new(Semaphore::new(cfg.max_connections.max(1))),
            domains: Mutex::new(HashMap::new()),
            cfg,
        })
    }

    /// The resolver, for the start-up probe.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Runs until `stop` turns true, then waits for the attempts in flight (the caller bounds
    /// that wait by its shutdown grace). If the process ends first, their leases expire and
    /// another run takes the entries up again.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        tracing::info!(holder = %self.holder, "outbound delivery started");
        let mut validator = self.validator.clone();
        loop {
            if *stop.borrow() {
                break;
            }
            // Without a working validator every lookup is suspect: mail stays queued (its
            // entries untouched, no attempt counted) until the probe passes again.
            if !validator.borrow_and_update().is_working() {
                tokio::select! {
                    r = validator.changed() => if r.is_err() {
                        tokio::time::sleep(self.cfg.poll).await;
                    },
                    _ = stop.changed() => {}
                }
                continue;
            }
            let started = match self.clone().lease_and_start().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbound queue");
                    0
                }
            };
            if started == 0 {
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.cfg.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        let all = u32::try_from(self.cfg.max_in_flight.max(1)).unwrap_or(u32::MAX);
        let _ = self.in_flight.acquire_many(all).await;
        tracing::info!("outbound delivery stopped");
    }

    /// Leases what is due (as far as capacity allows) and starts working on it; returns how
    /// many entries were taken.
    async fn lease_and_start(self: Arc<Self>) -> Result<usize, StoreError> {
        let free = self.in_flight.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let limit = u32::try_from(free.min(500)).unwrap_or(500);
        let entries = self
            .store
            .lease(
                &self.holder,
                kurier_store::now(),
                self.cfg.lease_secs,
                limit,
            )
            .await?;
        let n = entries.len();
        let mut by_domain: HashMap<Destination, DomainWork> = HashMap::new();
        for entry in entries {
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                break;
            };
            let body = match self.store.queue_body(entry.id).await {
                Ok(Some(b)) => Arc::new(b),
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(queue_id = entry.id, error = %e, "cannot read a queued message");
                    continue;
                }
            };
            let mut groups: HashMap<String, Recipients> = HashMap::new();
            for r in entry
                .recipients
                .iter()
                .filter(|r| r.status == RecipientStatus::Pending)
            {
                groups
                    .entry(domain_of(&r.address))
                    .or_default()
                    .push((r.address.clone(), r.dsn.rfc3461_parameters()));
            }
            let fields = kurier_smtp::headers::fields(&body);
            let handling = TlsHandling::of(&fields, entry.require_tls);
            let report = is_report(&fields);
            let job = Arc::new(Job {
                report,
                remaining: AtomicUsize::new(groups.len()),
                results: Mutex::new(Vec::new()),
                entry,
                body,
                _permit: permit,
            });
            if groups.is_empty() {
                self.clone().finish(job).await;
                continue;
            }
            for (domain, rcpts) in groups {
                by_domain
                    .entry((domain, handling))
                    .or_default()
                    .push((job.clone(), rcpts));
            }
        }
        for ((domain, handling), work) in by_domain {
            // One connection per ten messages for a domain, up to its limit: few handshakes,
            // but much mail is not held up behind one connection.
            let lanes = self.cfg.max_per_domain.max(1).min(work.len().div_ceil(10));
            let per_lane = work.len().div_ceil(lanes);
            let mut work = work;
            while !work.is_empty() {
                let rest = work.split_off(per_lane.min(work.len()));
                let lane = std::mem::replace(&mut work, rest);
                let me = self.clone();
                let domain = domain.clone();
                tokio::spawn(async move { me.deliver_domain(domain, handling, lane).await });
            }
        }
        Ok(n)
    }

    fn domain_limit(&self, domain: &str) -> Arc<Semaphore> {
        let mut map = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            map.retain(|_, s| s.available_permits() < self.cfg.max_per_domain.max(1));
        }
        map.entry(domain.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.cfg.max_per_domain.max(1))))
            .clone()
    }

    /// One batch of messages for `domain` that TLS failures treat alike (`handling`).
    async fn deliver_domain(
        self: Arc<Self>,
        domain: String,
        handling: TlsHandling,
        work: DomainWork,
    ) {
        let relaxed = handling != TlsHandling::Policy;
        let per_domain = self.domain_limit(&domain);
        let _d = per_domain.acquire_owned().await;
        let _c = self.connections.clone().acquire_owned().await;
        let route = route::plan(&self.resolver, &domain, self.cfg.port, seed()).await;
        let items: Vec<Item> = work
            .iter()
            .map(|(job, rcpts)| Item {
                envelope: Envelope {
                    from: job.entry.sender.clone(),
                    recipients: rcpts.clone(),
                    require_tls: job.entry.require_tls,
                    dsn: job.entry.dsn.rfc3461_parameters(),
                },
                body: job.body.clone(),
            })
            .collect();
        // MTA-STS is looked up only where there are hosts to try (and DNS could be trusted).
        let sts = match &route {
            route::Route::Hops(_) if !relaxed => {
                self.sts.lookup(&domain, kurier_store::now()).await
            }
            _ => StsLookup::default(),
        };
        let mut report = attempt::deliver(
            &self.connector,
            &domain,
            &route,
            sts.policy.as_ref(),
            relaxed,
            &items,
        )
        .await;
        if handling == TlsHandling::Report {
            report.tls.clear();
        }
        if let Some((result_type, detail)) = &sts.failure {
            report.tls.push(TlsOutcome::before_session(
                &domain,
                "",
                (PolicyType::Sts, Vec::new()),
                *result_type,
                detail.clone(),
            ));
        }
        let now = kurier_store::now();
        for t in &report.tls {
            if let Err(e) = self.store.record_tls_event(t, now).await {
                tracing::warn!(error = %e, "cannot record a TLS outcome for TLSRPT");
            }
        }
        for ((job, _), outcomes) in work.into_iter().zip(report.outcomes) {
            if let Ok(mut r) = job.results.lock() {
                r.extend(outcomes);
            }
            if job.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.clone().finish(job).await;
            }
        }
    }

    /// Records the results of an entry's attempt and sends the notices that are due.
    async fn finish(self: Arc<Self>, job: Arc<Job>) {
        let entry = &job.entry;
        let now = kurier_store::now();
        let schedule = &self.cfg.schedule;
        let age = Duration::from_secs(u64::try_from(now - entry.created).unwrap_or(0));
        let expired = if job.report {
            schedule.report_expired(age)
        } else {
            schedule.expired(age)
        };
        let warn = schedule.warn_at(entry.attempts);
        let results = job.results.lock().map(|r| r.clone()).unwrap_or_default();
        let dsn_of = |a: &str| {
            entry
                .recipients
                .iter()
                .find(|r| r.address == a)
                .map(|r| r.dsn.clone())
                .unwrap_or_default()
        };
        let mut rows = Vec::with_capacity(results.len());
        let mut notices: HashMap<Action, Vec<RecipientNotice>> = HashMap::new();
        for (address, outcome) in results {
            let params = dsn_of(&address);
            let notice = |f: &crate::Failure| RecipientNotice {
                address: address.clone(),
                original: params.orcpt.clone(),
                status: f.status.clone(),
                reason: f.reason.clone(),
                remote_mta: f.remote_mta.clone(),
                diagnostic: f.diagnostic.clone(),
            };
            match outcome {
                Outcome::Delivered { mx, dsn_passed_on } => {
                    if !dsn_passed_on && dsn::wants(&params, Action::Relayed) {
                        let f = crate::Failure {
                            remote_mta: Some(mx),
                            ..crate::Failure::new(
                                "2.0.0",
                                "Handed over to the recipient's mail server.",
                            )
                        };
                        notices.entry(Action::Relayed).or_default().push(notice(&f));
                    }
                    rows.push((address.clone(), RecipientStatus::Delivered, None));
                }
                Outcome::Deferred(f) if !expired => {
                    if warn && dsn::wants(&params, Action::Delayed) {
                        notices.entry(Action::Delayed).or_default().push(notice(&f));
                    }
                    rows.push((address.clone(), RecipientStatus::Pending, Some(f.summary())));
                }
                Outcome::Deferred(f) | Outcome::Failed(f) => {
                    let f = if f.is_permanent() {
                        f
                    } else {
                        let days = schedule.lifetime.as_secs_f64() / 86400.0;
                        crate::Failure {
                            reason: format!(
                                "{} Delivery was tried for {days:.1} days and has now been given up.",
                                f.reason
                            ),
                            ..f.made_permanent()
                        }
                    };
                    tracing::info!(queue_id = entry.id, recipient = %address, reason = %f.summary(), "delivery failed for good");
                    if dsn::wants(&params, Action::Failed) {
                        notices.entry(Action::Failed).or_default().push(notice(&f));
                    }
                    rows.push((address.clone(), RecipientStatus::Failed, Some(f.summary())));
                }
            }
        }
        let next =
            now + i64::try_from(schedule.backoff(entry.attempts).as_secs()).unwrap_or(i64::MAX / 2);
        match self
            .store
            .finish_attempt(entry.id, &self.holder, &rows, next)
            .await
        {
            Ok(()) => {}
            Err(e) => {
                // Someone else holds it now (our lease ran out): their attempt counts.
                tracing::warn!(queue_id = entry.id, error = %e, "cannot record the delivery results");
                return;
            }
        }
        // RFC 5321 §6.1 / RFC 3461 §6.2: never a notice about a notice.
        if entry.sender.is_empty() {
            return;
        }
        let retry_until =
            entry.created + i64::try_from(schedule.lifetime.as_secs()).unwrap_or(i64::MAX / 2);
        for (action, recipients) in notices {
            let message = dsn::build(&dsn::Notice {
                action,
                reporting_mta: &self.cfg.hostname,
                to: &entry.sender,
                arrival: entry.created,
                now,
                retry_until: Some(retry_until),
                recipients: &recipients,
                original: &job.body,
                request: &job.entry.dsn,
            });
            self.send_notice(&entry.sender, &message).await;
        }
    }

    /// Delivers a notice to the original sender (`bounce::send_notice`).
    async fn send_notice(&self, to: &str, message: &[u8]) {
        match crate::bounce::send_notice(&*self.store, to, message).await {
            Ok(true) => self.wake.notify_one(),
            Ok(false) => {}
            Err(e) => tracing::error!(sender = %to, error = %e, "cannot send a delivery notice"),
        }
    }
}

/// A fresh seed for spreading load over equal MX preferences.
fn seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now()) | 1
}

#[cfg(test)]
mod tests {
    use super::TlsHandling;
    use kurier_smtp::headers::fields;

    /// RFC 8689 §5 and RFC 8460 §3: who may go best effort, and whose sessions are not counted.
    #[test]
    fn smtp2_tls_required_no_is_ignored_with_requiretls_and_only_reports_go_uncounted() {
        let header = b"From: a@b.test\r\nTLS-Required: No\r\n\r\nhi\r\n";
        let report = b"From: a@b.test\r\nTLS-Report-Domain: b.test\r\nTLS-Required: no \r\n\r\n";
        let plain = b"From: a@b.test\r\nSubject: TLS-Required: No\r\n\r\n";
        assert_eq!(
            TlsHandling::of(&fields(header), false),
            TlsHandling::Optional
        );
        assert_eq!(TlsHandling::of(&fields(header), true), TlsHandling::Policy);
        assert_eq!(TlsHandling::of(&fields(report), false), TlsHandling::Report);
        assert_eq!(TlsHandling::of(&fields(report), true), TlsHandling::Policy);
        assert_eq!(TlsHandling::of(&fields(plain), false), TlsHandling::Policy);
        let yes = b"TLS-Required: Yes\r\n\r\n";
        assert_eq!(TlsHandling::of(&fields(yes), false), TlsHandling::Policy);
    }
}
