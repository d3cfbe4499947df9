//! # kurier-accept — how a message that SMTP received becomes mail
//!
//! Owns the step between the SMTP session and the store, as named stages: the connection
//! (`connection`: client address, HELO, TLS and origin, typed once), the envelope
//! (`envelope`: who a recipient is, what an account may send as, which addresses take TLSRPT
//! reports), the message (`message`: the account's `TLS-Required` rule, the DKIM signing
//! domain, the verdict fields later checks add), and the final routing (`routing`: report
//! store, mailboxes, outbound queue). The stages are plain functions with unit tests;
//! `Acceptance` runs them over the store for the `smtp` crate's `MailDrop`. A new check —
//! SPF, DKIM/DMARC verification, a spam score, Sieve — is one more stage here
//! (docs/architecture.md, "Where a new check plugs in").
//!
//! RFCs: 5321 §4.1.1 (MAIL, RCPT), 6409 §6.1 (submission senders), 6376 (DKIM signing), 8689 §5
//! (TLS-Required), 8460 §3 (reports to us), 3461 (DSN requests), 8601 (Authentication-Results).
//!
//! Must not: speak SMTP (the `smtp` crate does), acknowledge anything before the store has
//! committed it (durable before 250), or sign mail that did not come from our own users.

#![forbid(unsafe_code)]

pub mod authentication;
pub mod blocklist;
pub mod connection;
pub mod envelope;
pub mod greylist;
pub mod message;
pub mod milter;
pub mod routing;
pub mod sieve;
pub mod spam;

use std::path::PathBuf;
use std::sync::Arc;

use kurier_delivery::intake::{Intake, ReportIntake};
use kurier_dkim::DkimKeyring;
use kurier_smtp::headers::TlsRequiredHeader;
use kurier_smtp::{ConnectionFacts, Delivery, MailDrop, Message, Verdict};
use kurier_store::{Recipient, Store, StoreError};

pub use authentication::{Action, Checked, Decision, SenderAuth, SenderAuthEvents};
pub use blocklist::{Blocklists, Listing};
pub use connection::{Connection, Helo, Origin};
pub use envelope::{ReportAddress, ReportAddresses};
pub use greylist::{GreylistEvents, Greylisting};
pub use message::Verdicts;
pub use routing::Routing;
pub use spam::{OnFailure, SpamEvents, SpamFilter, SpamVerdict};

/// What happens to reports sent to us, for monitoring (RPT-3).
pub trait ReportEvents: Send + Sync {
    /// A report with a valid signature was stored; it counts `failed` sessions.
    fn received(&self, failed: u64);
    /// A DMARC aggregate report from a DMARC-passing reporter was stored: it counts
    /// `messages`, of which `failed` failed DMARC.
    fn dmarc_received(&self, messages: u64, failed: u64);
    /// A message to a report address was no valid report.
    fn dropped(&self);
}

/// What the DNS list stage refused, for monitoring.
pub trait BlocklistEvents: Send + Sync {
    fn refused(&self);
}

/// Message acceptance over the store (see the crate comment).
pub struct Acceptance {
    pub store: Arc<dyn Store>,
    /// Where DKIM keys live (`dkim/<domain>.<selector>.pem` below it).
    pub data_dir: PathBuf,
    /// Parses each DKIM key file once per version (cleared on SIGHUP by the owner).
    pub dkim_keys: Arc<DkimKeyring>,
    /// Wakes the outbound queue runner after mail for other domains was queued.
    pub outbound: Arc<tokio::sync::Notify>,
    /// Our TLSRPT addresses and the reader of reports sent to them.
    pub reports: Option<(ReportAddresses, Arc<ReportIntake>)>,
    pub report_events: Arc<dyn ReportEvents>,
    /// SPF, DKIM and DMARC on mail from other servers (`None`: off).
    pub sender_auth: Option<Arc<SenderAuth>>,
    /// DNS block- and allowlists for mail from other servers (`None`: none configured).
    pub blocklists: Option<Arc<Blocklists>>,
    pub blocklist_events: Arc<dyn BlocklistEvents>,
    /// rspamd scanning (`None`: off).
    pub spam: Option<Arc<SpamFilter>>,
    /// Greylisting of mail from other servers (`None`: off).
    pub greylisting: Option<Arc<Greylisting>>,
    /// Recipients per client address and network, for mail from other servers.
    pub recipient_rate: Option<Arc<kurier_access::RateLimit>>,
    /// The least time an answer to RCPT from another server takes, known address or not
    /// (`None`: answers go out when ready, as on submission).
    pub recipient_floor: Option<Arc<kurier_access::ReplyFloor>>,
    /// The content filters of this listener, in order (empty: none).
    pub milters: Arc<Vec<milter::Milter>>,
    /// Our host name, as filters are told it.
    pub hostname: String,
    /// Sub-addressing (RFC 5233): `user+tag@domain` reaches `user@domain` ("" turns it off).
    pub recipient_delimiter: String,
    /// Bounds on one Sieve run.
    pub sieve_limits: kurier_sieve::Limits,
    /// Vacation replies one account sends in 24 hours at most.
    pub vacation_replies_per_day: u32,
}

/// Where `domain`'s DKIM key with `selector` is kept below `data_dir`.
pub fn dkim_key_path(data_dir: &std::path::Path, domain: &str, selector: &str) -> PathBuf {
    data_dir
        .join("dkim")
        .join(format!("{domain}.{selector}.pem"))
}

/// Why a domain's DKIM key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum DkimKeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] kurier_dkim::KeyringError),
}

/// The domain setting naming the DKIM selectors of a domain: one, or an RSA and an Ed25519
/// one separated by a space (RFC 8463 §5: sign with both while verifiers learn Ed25519).
pub const DKIM_SELECTOR_SETTING: &str = "dkim.selector";

/// The DKIM keys of `domain` (its `dkim.selector` setting and the files below `data_dir`),
/// through `ring`, in the order of the setting; empty if the domain is not hosted or has no key
/// (`kurier dkim generate`).
pub async fn dkim_keys(
    ring: &DkimKeyring,
    store: &dyn Store,
    data_dir: &std::path::Path,
    domain: &str,
) -> Result<Vec<Arc<kurier_dkim::DkimKey>>, DkimKeyError> {
    let settings = match store.domain_settings(domain).await {
        Ok(s) => s,
        Err(StoreError::NotFound(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let Some(selectors) = settings.get(DKIM_SELECTOR_SETTING) else {
        return Ok(Vec::new());
    };
    let mut keys = Vec::new();
    for selector in selectors.split_whitespace() {
        let path = dkim_key_path(data_dir, domain, selector);
        keys.push(ring.key(domain, selector, &path)?);
    }
    Ok(keys)
}

/// The first DKIM key of `domain` (what signs TLSRPT reports), if it has one.
pub async fn dkim_key(
    ring: &DkimKeyring,
    store: &dyn Store,
    data_dir: &std::path::Path,
    domain: &str,
) -> Result<Option<Arc<kurier_dkim::DkimKey>>, DkimKeyError> {
    Ok(dkim_keys(ring, store, data_dir, domain)
        .await?
        .into_iter()
        .next())
}

impl Acceptance {
    /// The DKIM-Signature fields for a submitted message, one per key of the domain of its
    /// From address (`kurier dkim generate`). A key that cannot be used is logged and the
    /// message goes out with the other signatures, or unsigned, rather than not at all.
    async fn dkim_signature(&self, body: &[u8]) -> Option<String> {
        let domain = message::signing_domain(body)?;
        let keys = match dkim_keys(&self.dkim_keys, &*self.store, &self.data_dir, &domain).await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(%domain, error = %e, "DKIM key unusable; sent unsigned");
                return None;
            }
        };
        let mut fields = String::new();
        for key in keys {
            match key.sign(body, kurier_store::now()) {
                Ok(header) => fields.push_str(&header),
                Err(e) => {
                    tracing::error!(%domain, selector = %key.selector, error = %e, "DKIM signing failed; this signature is left out")
                }
            }
        }
        (!fields.is_empty()).then_some(fields)
    }

    /// The submitting account's `TLS-Required` rule applied (mail from other servers is never
    /// changed).
    async fn tls_required_rule(
        &self,
        connection: &Connection,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, Delivery> {
        let Some(account) = connection.account() else {
            return Ok(None);
        };
        if !message::has_tls_required(body) {
            return Ok(None);
        }
        let rule = match self.store.account_settings(account).await {
            Ok(s) => s
                .get(TlsRequiredHeader::SETTING)
                .and_then(|v| TlsRequiredHeader::parse(v))
                .unwrap_or_default(),
            Err(e) => {
                tracing::warn!(%account, error = %e, "cannot read the account's settings");
                return Err(Delivery::TempFail);
            }
        };
        message::tls_required(rule, body).map_err(Delivery::Refused)
    }

    /// The sender-authentication stage for mail from other servers: the verdict fields, the
    /// folder, the body without forged results; or the refusal (550) or deferral (451).
    async fn authenticate(
        &self,
        connection: &Connection,
        m: &Message,
    ) -> Result<Authenticated, Delivery> {
        let (Some(auth), Origin::Inbound) = (&self.sender_auth, &connection.origin) else {
            return Ok(Authenticated::default());
        };
        let checked = auth.check(&*self.store, connection, m).await;
        match checked.decision {
            Decision::Deliver {
                fields,
                folder,
                body,
            } => Ok(Authenticated {
                verdicts: Verdicts { fields },
                folder,
                cleaned: body,
                dmarc_passed: checked.dmarc_passed,
            }),
            Decision::Reject(why) => Err(Delivery::Refused(why)),
            Decision::Defer(why) => Err(Delivery::Deferred(why)),
        }
    }

    /// The milter stage: the message as the filters left it (`None`: unchanged) and whether a
    /// filter quarantined it; or the refusal (554), deferral (451), or `Ok(None)` with
    /// `discarded` for a discard.
    async fn filter(
        &self,
        connection: &Connection,
        m: &Message,
        body: &[u8],
    ) -> Result<(Option<Vec<u8>>, bool), Delivery> {
        if self.milters.is_empty() {
            return Ok((None, false));
        }
        let client_name = format!("[{}]", connection.ip);
        let envelope = kurier_milter::Envelope {
            client_ip: connection.ip,
            client_name: &client_name,
            helo: m.connection.helo.as_deref().unwrap_or(""),
            from: &m.from,
            recipients: all_recipients(m),
            queue_id: &m.id,
            hostname: &self.hostname,
            auth_user: connection.account(),
            tls: connection.tls_version_and_cipher(),
        };
        match milter::run(&self.milters, &envelope, body).await {
            milter::Filtered::Deliver {
                message,
                quarantine,
            } => Ok((message, quarantine.is_some())),
            milter::Filtered::Reject(why) => Err(Delivery::Rejected(why)),
            milter::Filtered::Defer(why) => Err(Delivery::Deferred(why)),
            milter::Filtered::Discard(why) => {
                // The operator's filter decided; the sender hears 250 (as with Postfix).
                tracing::warn!(id = %m.id, from = %m.from, reason = %why, "message discarded by a milter; not stored");
                Err(Delivery::Stored)
            }
        }
    }

    /// The greylisting stage, for mail from other servers: `Err(451)` while it must wait.
    async fn greylist(
        &self,
        g: &Greylisting,
        connection: &Connection,
        m: &Message,
        dmarc_passed: &[String],
    ) -> Result<(), Delivery> {
        if !matches!(connection.origin, Origin::Inbound) {
            return Ok(());
        }
        let recipients: Vec<&str> = m.recipients.iter().map(|(r, _)| r.as_str()).collect();
        g.check(
            &*self.store,
            connection.ip,
            &m.from,
            &recipients,
            !dmarc_passed.is_empty(),
        )
        .await
        .map_err(|wait| {
            tracing::info!(id = %m.id, client = %connection.ip, from = %m.from,
                recipients = recipients.len(), "greylisted");
            Delivery::Deferred(wait)
        })
    }

    /// The spam stage: the changes rspamd's verdict makes (`None`: not scanned), or the
    /// refusal (554) or deferral (451).
    async fn scan(
        &self,
        connection: &Connection,
        m: &Message,
        body: &[u8],
    ) -> Result<Option<spam::Changes>, Delivery> {
        let Some(filter) = &self.spam else {
            return Ok(None);
        };
        let inbound = matches!(connection.origin, Origin::Inbound);
        if !inbound && !filter.scan_submission {
            return Ok(None);
        }
        if body.len() > filter.max_bytes {
            tracing::info!(id = %m.id, bytes = body.len(), "not scanned for spam: larger than spam.max_bytes");
            return Ok(None);
        }
        let request = kurier_spam::ScanRequest {
            ip: connection.ip,
            helo: m.connection.helo.as_deref(),
            from: &m.from,
            recipients: all_recipients(m),
            queue_id: &m.id,
            user: connection.account(),
            tls: connection.tls_version_and_cipher(),
            mta_name: &filter.hostname,
        };
        let reply = match filter.rspamd.scan(&request, body).await {
            Ok(r) => r,
            Err(e) => {
                filter.events.failed();
                return match filter.on_failure {
                    OnFailure::Accept => {
                        tracing::warn!(id = %m.id, error = %e, "spam scan failed; delivered unscanned (spam.on_failure = \"accept\")");
                        Ok(None)
                    }
                    OnFailure::TempFail => {
                        tracing::warn!(id = %m.id, error = %e, "spam scan failed; deferred (spam.on_failure = \"tempfail\")");
                        Err(Delivery::Deferred(
                            "Spam filter unavailable, try again later".into(),
                        ))
                    }
                };
            }
        };
        filter.events.scanned(&reply.action);
        let symbols: Vec<&str> = reply
            .symbols
            .iter()
            .filter(|s| s.score != 0.0)
            .take(10)
            .map(|s| s.name.as_str())
            .collect();
        if spam::has_own_fields(body) {
            tracing::info!(id = %m.id, "the message brought its own X-Spam fields; they are replaced");
        }
        let decided = spam::verdict(&reply, inbound);
        tracing::info!(id = %m.id, client = %connection.ip, from = %m.from,
            account = connection.account(), action = reply.action.as_str(), score = reply.score,
            symbols = %symbols.join(","), "spam scan");
        match decided {
            SpamVerdict::Deliver(c) => {
                if !inbound && reply.action != kurier_spam::Action::NoAction {
                    // Outbound mail that rspamd finds spammy but does not refuse: worth a look
                    // (a stolen password sends like this first).
                    tracing::warn!(id = %m.id, account = connection.account(), action = reply.action.as_str(),
                        score = reply.score, "submitted message scored as spam; sent");
                }
                Ok(Some(c))
            }
            SpamVerdict::Reject(why) => Err(Delivery::Rejected(why)),
            SpamVerdict::Defer(why) => Err(Delivery::Deferred(why)),
        }
    }

    /// The DNS list stage, for mail from other servers: `Some` refusal when the lists say so.
    async fn listed(&self, connection: &Connection, sender: &str, to: &str) -> Option<Verdict> {
        let (Some(lists), Origin::Inbound) = (&self.blocklists, &connection.origin) else {
            return None;
        };
        match lists.check(connection.ip, sender).await {
            Listing::Listed {
                hits,
                score,
                refuse,
            } => {
                let zones: Vec<String> = hits.iter().map(|(z, c, _)| format!("{z}={c}")).collect();
                let zones = zones.join(" ");
                if refuse {
                    tracing::info!(client = %connection.ip, helo = %connection.helo, from = sender,
                        to, lists = %zones, score, "refused: listed in DNS blocklists");
                    self.blocklist_events.refused();
                    return Some(Verdict::Refused(blocklist::refusal(
                        connection.ip,
                        sender,
                        &hits,
                    )));
                }
                tracing::info!(client = %connection.ip, from = sender, to, lists = %zones, score,
                    "listed in DNS blocklists below blocklists.reject_score; accepted");
            }
            Listing::Allowed(zone) => {
                tracing::debug!(client = %connection.ip, %zone, "on a DNS allowlist");
            }
            Listing::Clean => {}
        }
        None
    }

    /// RCPT's verdict: the recipient rate, the blocklists, then the store.
    async fn recipient_checked(
        &self,
        connection: &Connection,
        sender: &str,
        address: &str,
    ) -> Verdict {
        if let (Some(rate), Origin::Inbound) = (&self.recipient_rate, &connection.origin) {
            let verdict = rate.hit(connection.ip, std::time::Instant::now());
            if verdict != kurier_access::RateVerdict::Allowed {
                tracing::info!(client = %connection.ip, helo = %connection.helo, from = sender,
                    to = address, limit = ?verdict, "recipient refused: recipient rate");
                return Verdict::RateLimited;
            }
        }
        if let Some(refused) = self.listed(connection, sender, address).await {
            return refused;
        }
        let verdict = self.recipient(address).await;
        if !matches!(verdict, Verdict::Accept(_)) {
            // What an operator greps for (and fail2ban reads): who tried which address.
            tracing::info!(client = %connection.ip, helo = %connection.helo,
                account = connection.account(), to = address, verdict = ?verdict,
                "recipient refused");
        }
        verdict
    }

    /// The envelope stage's verdict for one recipient, from the store.
    async fn recipient(&self, address: &str) -> Verdict {
        let resolved =
            match envelope::resolve(&*self.store, address, &self.recipient_delimiter).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "recipient look-up failed");
                    return Verdict::TempFail;
                }
            };
        let mut full = false;
        if let Recipient::Local(accounts) = &resolved {
            for a in accounts {
                if let (Some(q), Ok(used)) = (a.quota, self.store.usage(a.id).await) {
                    full |= used >= q;
                }
            }
        }
        let reports_only = self
            .reports
            .as_ref()
            .is_some_and(|(a, _)| a.implicit(address));
        envelope::recipient_verdict(&resolved, full, reports_only)
    }

    /// A message to one of our report addresses is also read as a report, after it is stored
    /// (the 250 does not wait for the DKIM key look-up).
    fn read_report(&self, m: &Message, dmarc_passed: Vec<String>) {
        let Some((addresses, intake)) = &self.reports else {
            return;
        };
        if !m.recipients.iter().any(|(r, _)| addresses.matches(r)) {
            return;
        }
        let (intake, body, id) = (intake.clone(), m.body.clone(), m.id.clone());
        let events = self.report_events.clone();
        tokio::spawn(
            async move { take_report(&intake, &body, &dmarc_passed, &id, &*events).await },
        );
    }
}

/// Every recipient of `m`, local and remote, as filters are told them.
fn all_recipients(m: &Message) -> Vec<&str> {
    m.recipients
        .iter()
        .chain(&m.remote)
        .map(|(r, _)| r.as_str())
        .collect()
}

/// What the sender-authentication stage leaves for the rest of delivery.
#[derive(Default)]
struct Authenticated {
    verdicts: Verdicts,
    folder: kurier_store::Folder,
    /// The body without forged Authentication-Results, if it had any.
    cleaned: Option<Vec<u8>>,
    dmarc_passed: Vec<String>,
}

/// Reads one report; false if it should be offered again later.
async fn take_report(
    intake: &ReportIntake,
    body: &[u8],
    dmarc_passed: &[String],
    id: &str,
    events: &dyn ReportEvents,
) -> bool {
    match intake.take(body, dmarc_passed).await {
        Intake::StoredDmarc {
            domain,
            reporter,
            messages,
            failed,
            ..
        } => {
            tracing::info!(%id, %domain, %reporter, messages, failed, "DMARC report received");
            events.dmarc_received(messages, failed);
            if failed > 0 {
                // What a domain owner wants to see first: who sends in its name and fails.
                tracing::warn!(%domain, %reporter, failed, "a DMARC report shows mail in our name that failed DMARC; see: kurier reports list --dmarc");
            }
            true
        }
        Intake::Stored {
            domain,
            submitter,
            failed,
            ..
        } => {
            tracing::info!(%id, %domain, %submitter, failed, "TLSRPT report received");
            events.received(failed);
            if failed > 0 {
                // RPT-3: failures others saw on their way to us need attention.
                tracing::warn!(%domain, %submitter, failed, "a TLSRPT report shows failed TLS sessions to us; see: kurier reports list");
            }
            true
        }
        Intake::Dropped(why) => {
            events.dropped();
            tracing::warn!(%id, reason = %why, "TLSRPT report dropped");
            true
        }
        Intake::Later(why) => {
            tracing::warn!(%id, reason = %why, "TLSRPT report not read now");
            false
        }
    }
}

impl MailDrop for Acceptance {
    async fn check_recipient(
        &self,
        client: &ConnectionFacts,
        sender: &str,
        address: &str,
    ) -> Verdict {
        let started = std::time::Instant::now();
        let connection = Connection::new(client);
        let verdict = self.recipient_checked(&connection, sender, address).await;
        // Against address harvesting: a known and an unknown address answer alike in time.
        if let (Some(floor), Origin::Inbound) = (&self.recipient_floor, &connection.origin)
            && let Some(wait) = floor.wait(connection.ip, started.elapsed())
        {
            tokio::time::sleep(wait).await;
        }
        verdict
    }

    async fn deliver(&self, m: &Message) -> Delivery {
        let connection = Connection::new(&m.connection);
        // First: a DMARC report is trusted only from a DMARC-passing reporter.
        let Authenticated {
            mut verdicts,
            mut folder,
            cleaned,
            dmarc_passed,
        } = match self.authenticate(&connection, m).await {
            Ok(a) => a,
            Err(refused) => return refused,
        };
        let (local, queue) = match routing::route(m, self.reports.is_some()) {
            // The report store is the durable place (before the 250); a message that is no
            // valid report is dropped, never bounced (RFC 8460 §3); one we cannot check now
            // (key lookup, store) gets a 451 and comes again.
            Routing::ReportsOnly => {
                let Some((_, intake)) = &self.reports else {
                    return Delivery::TempFail;
                };
                return if take_report(intake, &m.body, &dmarc_passed, &m.id, &*self.report_events)
                    .await
                {
                    Delivery::Stored
                } else {
                    Delivery::TempFail
                };
            }
            Routing::Store { local, queue } => (local, queue),
        };
        if let Some(g) = &self.greylisting
            && !g.only_suspicious
            && let Err(deferred) = self.greylist(g, &connection, m, &dmarc_passed).await
        {
            return deferred;
        }
        // What the later stages see: the message without forged results, as the filters left it.
        let (filtered, quarantined) = match self
            .filter(&connection, m, cleaned.as_deref().unwrap_or(&m.body))
            .await
        {
            Ok(f) => f,
            Err(outcome) => return outcome,
        };
        if quarantined {
            folder = kurier_store::Folder::Junk;
        }
        let base: &[u8] = filtered
            .as_deref()
            .or(cleaned.as_deref())
            .unwrap_or(&m.body);
        let scanned = match self.scan(&connection, m, base).await {
            Ok(changes) => changes.unwrap_or_default(),
            Err(refused) => return refused,
        };
        if scanned.junk {
            folder = kurier_store::Folder::Junk;
        }
        if let Some(g) = &self.greylisting
            && g.only_suspicious
            && scanned.greylist
            && let Err(deferred) = self.greylist(g, &connection, m, &dmarc_passed).await
        {
            return deferred;
        }
        verdicts.fields.extend(scanned.fields.iter().cloned());
        // RFC 8689 §5 at submission: the account's operator decides about TLS-Required: No.
        let stripped = match self.tls_required_rule(&connection, base).await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let unsigned: &[u8] = stripped.as_deref().unwrap_or(base);
        let rewritten = spam::rewrite(unsigned, &scanned);
        let unsigned: &[u8] = rewritten.as_deref().unwrap_or(unsigned);
        // Only what our own users submit is signed, last, over what goes out; inbound mail
        // never is.
        let signature = match connection.origin {
            Origin::Submission { .. } => self.dkim_signature(unsigned).await,
            Origin::Inbound => None,
        };
        let completed = verdicts.apply(signature.as_deref(), unsigned);
        let body = completed.as_deref().unwrap_or(unsigned);
        // The last stage: each local recipient's Sieve script, on the message as it is stored
        // (with the verdict fields, so that scripts can sort on them).
        let filed = sieve::file(
            &*self.store,
            &sieve::Delivery {
                accounts: &local,
                recipients: m.recipients.iter().map(|(r, _)| r.as_str()).collect(),
                from: &m.from,
                auth: connection.account(),
                body,
                folder,
                hostname: &self.hostname,
                delimiter: &self.recipient_delimiter,
                single: m.recipients.len() == 1 && m.remote.is_empty(),
                now: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
                limits: &self.sieve_limits,
                vacation_per_day: self.vacation_replies_per_day,
            },
        )
        .await;
        if let Some(reason) = filed.refuse {
            tracing::info!(id = %m.id, from = %m.from, "refused by the recipient's Sieve script");
            return Delivery::Refused(reason);
        }
        let mut entries: Vec<(kurier_store::NewQueueEntry, Option<Vec<u8>>)> =
            queue.into_iter().map(|e| (e, None)).collect();
        entries.extend(filed.redirects.into_iter().map(|(e, b)| (e, Some(b))));
        for (e, reply) in filed.replies {
            let signed = match self.dkim_signature(&reply).await {
                Some(sig) => [sig.into_bytes(), reply].concat(),
                None => reply,
            };
            entries.push((e, Some(signed)));
        }
        match self
            .store
            .deliver_placed(&filed.placements, body, &entries)
            .await
        {
            Ok(_) => {
                if !entries.is_empty() {
                    self.outbound.notify_one();
                }
                self.read_report(m, dmarc_passed);
                Delivery::Stored
            }
            Err(StoreError::QuotaExceeded { address, .. }) => Delivery::OverQuota(address),
            Err(e) => {
                tracing::error!(id = %m.id, error = %e, "storing a message failed");
                Delivery::TempFail
            }
        }
    }

    async fn authenticate(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<(String, Vec<String>)>, ()> {
        let account = match self.store.authenticate_client(user, password).await {
            Ok(Some(a)) => a,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "credential check failed");
                return Err(());
            }
        };
        let aliases = match self.store.sender_aliases(&account.address).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "alias look-up failed; only the account's own address may send");
                Vec::new()
            }
        };
        let senders = envelope::senders(&account, aliases);
        Ok(Some((account.address, senders)))
    }
}
