//! The MX's view of the store: recipient look-ups and durable delivery, as the `smtp` crate's
//! `MailDrop` asks for them. Wiring only: what a verdict means is the session's business.

use std::sync::Arc;

use kurier_smtp::{Delivery, MailDrop, Message, Verdict};
use kurier_store::{NewQueueEntry, Recipient, Store, StoreError};

pub struct StoreMailDrop {
    pub store: Arc<dyn Store>,
    /// Where DKIM keys live (`dkim/` below it).
    pub data_dir: std::path::PathBuf,
    /// Wakes the outbound queue runner after mail for other domains was queued.
    pub outbound: Arc<tokio::sync::Notify>,
    /// Our TLSRPT addresses and the reader of reports sent to them.
    pub reports: Option<(ReportAddresses, Arc<kurier_delivery::intake::ReportIntake>)>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// DKIM keys, each file parsed once per version (cleared on SIGHUP).
    pub dkim_keys: Arc<kurier_dkim::DkimKeyring>,
}

impl StoreMailDrop {
    /// Submitted mail is DKIM-signed for the domain of its From address, when that domain has
    /// a key (RFC 6376; `kurier dkim generate`). A key that cannot be read is logged and the
    /// message goes out unsigned rather than not at all.
    async fn dkim_sign(&self, body: &[u8]) -> Option<String> {
        let fields = kurier_smtp::headers::fields(body);
        let from = fields
            .iter()
            .find(|(n, _)| n == "from")
            .map(|(_, v)| kurier_smtp::headers::addresses(v))?;
        let domain = from.first()?.rsplit_once('@')?.1.to_string();
        match crate::admin::dkim_key_from(&self.dkim_keys, &*self.store, &self.data_dir, &domain)
            .await
        {
            Ok(Some(key)) => match key.sign(body, kurier_store::now()) {
                Ok(header) => Some(header),
                Err(e) => {
                    tracing::error!(%domain, error = %e, "DKIM signing failed; sent unsigned");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::error!(%domain, error = %e, "DKIM key unusable; sent unsigned");
                None
            }
        }
    }
}

/// Which addresses take TLSRPT reports (RFC 8460 §3): `tlsrpt.reporting_address`, or else
/// (`tlsrpt.receive_reports`) `tlsrpt@` of every hosted domain — those need no account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportAddresses {
    explicit: Option<String>,
}

impl ReportAddresses {
    pub fn of(cfg: &kurier_config::TlsRptConfig) -> Option<ReportAddresses> {
        match &cfg.reporting_address {
            Some(a) => Some(ReportAddresses {
                explicit: Some(a.to_ascii_lowercase()),
            }),
            None if cfg.receive_reports => Some(ReportAddresses { explicit: None }),
            None => None,
        }
    }

    /// Whether mail to `address` (a hosted one) is a report for us.
    pub fn matches(&self, address: &str) -> bool {
        match &self.explicit {
            Some(a) => address.eq_ignore_ascii_case(a),
            None => address
                .rsplit_once('@')
                .is_some_and(|(local, _)| local.eq_ignore_ascii_case("tlsrpt")),
        }
    }

    /// A per-domain address without an account or alias behind it: reports only.
    fn implicit(&self, address: &str) -> bool {
        self.explicit.is_none() && self.matches(address)
    }
}

impl StoreMailDrop {
    /// What the submitting account's `submission.tls-required-header` setting makes of a
    /// message with a `TLS-Required` field: `Ok(None)` unchanged, `Ok(Some(body))` without it,
    /// `Err(reply)` refused. Mail from other servers is never changed.
    async fn tls_required_rule(&self, m: &Message) -> Result<Option<Vec<u8>>, Delivery> {
        use kurier_smtp::headers::{TlsRequiredHeader, fields, without_field};
        let Some(account) = &m.account else {
            return Ok(None);
        };
        if !fields(&m.body).iter().any(|(n, _)| n == "tls-required") {
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
        match rule {
            TlsRequiredHeader::Keep => Ok(None),
            TlsRequiredHeader::Strip => Ok(without_field(&m.body, "TLS-Required")),
            TlsRequiredHeader::Refuse => Err(Delivery::Refused(
                "TLS-Required: No is not allowed for this account: send the message without that header field (RFC 8689 section 5)".into(),
            )),
        }
    }

    /// A message to our TLSRPT address is also read as a report, after it is stored (the 250
    /// does not wait for the DKIM key look-up).
    fn read_report(&self, m: &Message) {
        let Some((addresses, intake)) = &self.reports else {
            return;
        };
        if !m.recipients.iter().any(|(r, _)| addresses.matches(r)) {
            return;
        }
        let (intake, body, id) = (intake.clone(), m.body.clone(), m.id.clone());
        let metrics = self.metrics.clone();
        tokio::spawn(async move { take_report(&intake, &body, &id, &metrics).await });
    }
}

/// Reads one report and counts it for `/metrics`; false if it should be offered again later.
async fn take_report(
    intake: &kurier_delivery::intake::ReportIntake,
    body: &[u8],
    id: &str,
    metrics: &crate::metrics::Metrics,
) -> bool {
    use crate::metrics::Metrics;
    match intake.take(body).await {
        kurier_delivery::intake::Intake::Stored {
            domain,
            submitter,
            failed,
            ..
        } => {
            tracing::info!(%id, %domain, %submitter, failed, "TLSRPT report received");
            Metrics::add(&metrics.tlsrpt_reports_received, 1);
            Metrics::add(&metrics.tlsrpt_failed_sessions_reported, failed);
            if failed > 0 {
                Metrics::add(&metrics.tlsrpt_reports_with_failures, 1);
                // RPT-3: failures others saw on their way to us need attention.
                tracing::warn!(%domain, %submitter, failed, "a TLSRPT report shows failed TLS sessions to us; see: kurier reports list");
            }
            true
        }
        kurier_delivery::intake::Intake::Dropped(why) => {
            Metrics::add(&metrics.tlsrpt_reports_dropped, 1);
            tracing::warn!(%id, reason = %why, "TLSRPT report dropped");
            true
        }
        kurier_delivery::intake::Intake::Later(why) => {
            tracing::warn!(%id, reason = %why, "TLSRPT report not read now");
            false
        }
    }
}

impl MailDrop for StoreMailDrop {
    async fn check_recipient(&self, address: &str) -> Verdict {
        match self.store.resolve(address).await {
            Ok(Recipient::Local(accounts)) => {
                for a in &accounts {
                    // A full mailbox is refused at RCPT time (452 4.2.2), not after DATA.
                    if let (Some(q), Ok(used)) = (a.quota, self.store.usage(a.id).await)
                        && used >= q
                    {
                        return Verdict::OverQuota;
                    }
                }
                Verdict::Accept(accounts.iter().map(|a| a.id).collect())
            }
            // `tlsrpt@` a hosted domain takes reports without an account (RFC 8460 §3).
            Ok(Recipient::Unknown)
                if self
                    .reports
                    .as_ref()
                    .is_some_and(|(a, _)| a.implicit(address)) =>
            {
                Verdict::Accept(Vec::new())
            }
            Ok(Recipient::Unknown) => Verdict::Unknown,
            Ok(Recipient::NotHosted) => Verdict::NotHosted,
            Err(e) => {
                tracing::warn!(error = %e, "recipient look-up failed");
                Verdict::TempFail
            }
        }
    }

    async fn deliver(&self, m: &Message) -> Delivery {
        // Only reports-only recipients: the report store is the durable place (before the
        // 250); a message that is no valid report is dropped, never bounced (RFC 8460 §3); one
        // we cannot check now (key lookup, store) gets a 451 and comes again.
        if m.accounts.is_empty()
            && m.remote.is_empty()
            && let Some((_, intake)) = &self.reports
        {
            return if take_report(intake, &m.body, &m.id, &self.metrics).await {
                Delivery::Stored
            } else {
                Delivery::TempFail
            };
        }
        // Remote recipients (submission only) go into the queue in the same transaction.
        let remote = (!m.remote.is_empty()).then(|| NewQueueEntry {
            sender: m.from.clone(),
            recipients: m
                .remote
                .iter()
                .map(|(to, p)| {
                    let dsn = kurier_store::RecipientDsn {
                        notify: p.notify.as_deref().map(kurier_store::Notify::from_rfc3461),
                        orcpt: p.orcpt.clone(),
                    };
                    (to.clone(), dsn)
                })
                .collect(),
            require_tls: m.params.require_tls,
            dsn: kurier_store::MessageDsn {
                ret: m.params.ret.as_deref().map(|r| {
                    if r == "HDRS" {
                        kurier_store::DsnReturn::Headers
                    } else {
                        kurier_store::DsnReturn::Full
                    }
                }),
                envid: m.params.envid.clone(),
            },
        });
        // RFC 8689 §5 at submission: the account's operator decides about TLS-Required: No.
        let stripped = match self.tls_required_rule(m).await {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let unsigned: &[u8] = stripped.as_deref().unwrap_or(&m.body);
        // Only what our own users submit is signed; inbound mail never is.
        let header = if m.account.is_some() {
            self.dkim_sign(unsigned).await
        } else {
            None
        };
        let signed;
        let body = match header {
            Some(h) => {
                signed = [h.as_bytes(), unsigned].concat();
                &signed
            }
            None => unsigned,
        };
        match self
            .store
            .deliver_and_enqueue(&m.accounts, body, remote.as_ref())
            .await
        {
            Ok(_) => {
                if remote.is_some() {
                    self.outbound.notify_one();
                }
                self.read_report(m);
                Delivery::Stored
            }
            Err(StoreError::QuotaExceeded { address, .. }) => Delivery::OverQuota(address),
            Err(e) => {
                tracing::error!(id = %m.id, error = %e, "storing a message failed");
                Delivery::TempFail
            }
        }
    }

    /// The account, and what it may send as: its own address and the aliases that deliver to
    /// it (not catch-alls, which would let it send as anyone in the domain).
    async fn authenticate(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Option<(String, Vec<String>)>, ()> {
        let account = match self.store.authenticate(user, password).await {
            Ok(Some(a)) => a,
            Ok(None) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "credential check failed");
                return Err(());
            }
        };
        let mut senders = vec![account.address.clone()];
        match self.store.sender_aliases(&account.address).await {
            Ok(aliases) => senders.extend(aliases),
            Err(e) => {
                tracing::warn!(error = %e, "alias look-up failed; only the account's own address may send")
            }
        }
        Ok(Some((account.address, senders)))
    }
}
