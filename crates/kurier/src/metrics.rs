//! Counters for `/metrics` (Prometheus text format, loopback clients only): what monitoring needs
//! to alert on, starting with TLSRPT reports that show failed TLS sessions to us (TR-03108 RPT-3).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use kurier_config::DnssecMode;
use kurier_dns::ValidatorState;
use tokio::sync::watch;

pub struct Metrics {
    pub tlsrpt_reports_received: AtomicU64,
    pub tlsrpt_reports_dropped: AtomicU64,
    pub tlsrpt_reports_with_failures: AtomicU64,
    pub tlsrpt_failed_sessions_reported: AtomicU64,
    pub dmarc_reports_received: AtomicU64,
    pub dnsbl_refused: AtomicU64,
    pub dmarc_reported_messages: AtomicU64,
    pub dmarc_reported_failures: AtomicU64,
    /// The DNSSEC probe's verdict (set when outbound delivery starts).
    validator: OnceLock<(DnssecMode, watch::Receiver<ValidatorState>)>,
    /// 1: the served chain matches the published TLSA records (or none are published); 0: it
    /// does not (DANE senders cannot deliver); -1: not checked yet.
    pub tlsa_match: AtomicI64,
    /// 1 while the last TLSA check had no validated answer.
    pub tlsa_check_failed: AtomicU64,
    /// ACME orders failed in a row (0 after a success).
    pub acme_failures: AtomicU64,
    /// Where a key change stands: 0 none under way, 1 waiting for the next key's TLSA records
    /// (or their confirmation), 2 published and waiting two TTLs (RFC 7671 §8.1).
    pub acme_key_change: AtomicU64,
    /// When the next key was made (Unix seconds; 0: there is none).
    pub acme_next_key_since: AtomicU64,
    /// The certificates in use, for their expiry dates.
    certificates: OnceLock<Arc<kurier_tls::TlsAcceptor>>,
    /// Inbound messages by DMARC result (none, pass, fail, temperror).
    dmarc_results: [AtomicU64; 4],
    /// Inbound messages by what sender authentication did (`Action::ALL` order).
    sender_auth_actions: [AtomicU64; 4],
    /// Scanned messages by rspamd's action (`SPAM_ACTIONS` order, the last for custom ones).
    spam_actions: [AtomicU64; 9],
    /// Scans without a usable answer.
    pub spam_scan_failures: AtomicU64,
    /// Messages taught to rspamd: spam, ham, failed.
    spam_learned: [AtomicU64; 3],
    /// Greylisting outcomes (`greylist::Outcome::ALL` order).
    greylist: [AtomicU64; 4],
    /// The MX's connection and recipient rate limits.
    rates: OnceLock<(
        [Arc<kurier_access::RateLimit>; 2],
        Arc<kurier_access::ReplyFloor>,
    )>,
}

/// rspamd's actions in `Metrics::spam_actions` order.
const SPAM_ACTIONS: [&str; 9] = [
    "no action",
    "greylist",
    "add header",
    "rewrite subject",
    "soft reject",
    "reject",
    "discard",
    "quarantine",
    "other",
];

/// The DMARC results in `Metrics::dmarc_results` order.
const DMARC_RESULTS: [kurier_mailauth::DmarcResult; 4] = [
    kurier_mailauth::DmarcResult::None,
    kurier_mailauth::DmarcResult::Pass,
    kurier_mailauth::DmarcResult::Fail,
    kurier_mailauth::DmarcResult::TempError,
];

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            tlsrpt_reports_received: AtomicU64::new(0),
            tlsrpt_reports_dropped: AtomicU64::new(0),
            tlsrpt_reports_with_failures: AtomicU64::new(0),
            tlsrpt_failed_sessions_reported: AtomicU64::new(0),
            dmarc_reports_received: AtomicU64::new(0),
            dnsbl_refused: AtomicU64::new(0),
            dmarc_reported_messages: AtomicU64::new(0),
            dmarc_reported_failures: AtomicU64::new(0),
            validator: OnceLock::new(),
            tlsa_match: AtomicI64::new(-1),
            tlsa_check_failed: AtomicU64::new(0),
            acme_failures: AtomicU64::new(0),
            acme_key_change: AtomicU64::new(0),
            acme_next_key_since: AtomicU64::new(0),
            certificates: OnceLock::new(),
            dmarc_results: Default::default(),
            sender_auth_actions: Default::default(),
            spam_actions: Default::default(),
            spam_scan_failures: AtomicU64::new(0),
            spam_learned: Default::default(),
            greylist: Default::default(),
            rates: OnceLock::new(),
        }
    }
}

impl kurier_accept::SenderAuthEvents for Metrics {
    fn checked(&self, dmarc: kurier_mailauth::DmarcResult, action: kurier_accept::Action) {
        if let Some(i) = DMARC_RESULTS.iter().position(|r| *r == dmarc) {
            Metrics::add(&self.dmarc_results[i], 1);
        }
        if let Some(i) = kurier_accept::Action::ALL.iter().position(|a| *a == action) {
            Metrics::add(&self.sender_auth_actions[i], 1);
        }
    }
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn watch_certificates(&self, acceptor: Arc<kurier_tls::TlsAcceptor>) {
        let _ = self.certificates.set(acceptor);
    }

    pub fn watch_validator(&self, mode: DnssecMode, state: watch::Receiver<ValidatorState>) {
        let _ = self.validator.set((mode, state));
    }

    /// The certificates in use: their names and expiry (Unix time).
    pub fn certificate_expiries(&self) -> Vec<(String, i64)> {
        let Some(acceptor) = self.certificates.get() else {
            return Vec::new();
        };
        acceptor
            .certificates()
            .iter()
            .filter_map(|c| {
                let at = kurier_tls::certificate::unix_time(c.leaf().not_after())?;
                Some((c.names.join(" "), at))
            })
            .collect()
    }

    /// The validator's last verdict, if outbound delivery watches it.
    pub fn validator_state(&self) -> Option<ValidatorState> {
        self.validator.get().map(|(_, s)| s.borrow().clone())
    }
}

impl kurier_accept::SpamEvents for Metrics {
    fn scanned(&self, action: &kurier_spam::Action) {
        let i = SPAM_ACTIONS
            .iter()
            .position(|a| *a == action.as_str())
            .unwrap_or(SPAM_ACTIONS.len() - 1);
        Metrics::add(&self.spam_actions[i], 1);
    }

    fn failed(&self) {
        Metrics::add(&self.spam_scan_failures, 1);
    }
}

impl kurier_spam::LearnEvents for Metrics {
    fn learned(&self, kind: kurier_spam::LearnKind, ok: bool) {
        let i = match (ok, kind) {
            (true, kurier_spam::LearnKind::Spam) => 0,
            (true, kurier_spam::LearnKind::Ham) => 1,
            (false, _) => 2,
        };
        Metrics::add(&self.spam_learned[i], 1);
    }
}

impl Metrics {
    /// Shows the refusals of these rate limits.
    pub fn watch_rates(
        &self,
        connections: Arc<kurier_access::RateLimit>,
        recipients: Arc<kurier_access::RateLimit>,
        answers: Arc<kurier_access::ReplyFloor>,
    ) {
        let _ = self.rates.set(([connections, recipients], answers));
    }
}

impl kurier_accept::GreylistEvents for Metrics {
    fn counted(&self, outcome: kurier_accept::greylist::Outcome) {
        let i = kurier_accept::greylist::Outcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        Metrics::add(&self.greylist[i], 1);
    }
}

impl kurier_accept::BlocklistEvents for Metrics {
    fn refused(&self) {
        Metrics::add(&self.dnsbl_refused, 1);
    }
}

impl kurier_accept::ReportEvents for Metrics {
    fn received(&self, failed: u64) {
        Metrics::add(&self.tlsrpt_reports_received, 1);
        Metrics::add(&self.tlsrpt_failed_sessions_reported, failed);
        if failed > 0 {
            Metrics::add(&self.tlsrpt_reports_with_failures, 1);
        }
    }

    fn dmarc_received(&self, messages: u64, failed: u64) {
        Metrics::add(&self.dmarc_reports_received, 1);
        Metrics::add(&self.dmarc_reported_messages, messages);
        Metrics::add(&self.dmarc_reported_failures, failed);
    }

    fn dropped(&self) {
        Metrics::add(&self.tlsrpt_reports_dropped, 1);
    }
}

/// One labelled counter family in the Prometheus text format.
fn labelled<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl Iterator<Item = (&'a str, &'a AtomicU64)>,
) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n"));
    for (l, v) in values {
        out.push_str(&format!(
            "{name}{{{label}=\"{l}\"}} {}\n",
            v.load(Ordering::Relaxed)
        ));
    }
}

impl kurier_web::MetricsSource for Metrics {
    fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, v) in [
            (
                "kurier_tlsrpt_reports_received_total",
                "TLSRPT reports about our domains, accepted (valid DKIM).",
                &self.tlsrpt_reports_received,
            ),
            (
                "kurier_tlsrpt_reports_dropped_total",
                "Mail to a report address (TLSRPT or DMARC) that was not a valid, authenticated report.",
                &self.tlsrpt_reports_dropped,
            ),
            (
                "kurier_tlsrpt_reports_with_failures_total",
                "Accepted reports that show failed TLS sessions to us.",
                &self.tlsrpt_reports_with_failures,
            ),
            (
                "kurier_tlsrpt_failed_sessions_reported_total",
                "Failed TLS sessions to us, summed over accepted reports.",
                &self.tlsrpt_failed_sessions_reported,
            ),
            (
                "kurier_inbound_dnsbl_refused_total",
                "Recipients refused because the client or its sender domain is on DNS blocklists.",
                &self.dnsbl_refused,
            ),
            (
                "kurier_dmarc_reports_received_total",
                "DMARC aggregate reports about our domains, accepted (the reporter passed DMARC).",
                &self.dmarc_reports_received,
            ),
            (
                "kurier_dmarc_reported_messages_total",
                "Messages in our domains' names that accepted DMARC reports count.",
                &self.dmarc_reported_messages,
            ),
            (
                "kurier_dmarc_reported_failures_total",
                "Of those, messages that failed DMARC: someone sends in our name without SPF or DKIM alignment.",
                &self.dmarc_reported_failures,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        labelled(
            &mut out,
            "kurier_inbound_dmarc_total",
            "Messages from other servers by DMARC result (RFC 7489; the strictest of their From domains).",
            "result",
            DMARC_RESULTS
                .iter()
                .map(|r| r.as_str())
                .zip(&self.dmarc_results),
        );
        labelled(
            &mut out,
            "kurier_inbound_sender_auth_total",
            "Messages from other servers by what sender authentication did: deliver, quarantine (Junk), reject (550), defer (451).",
            "action",
            kurier_accept::Action::ALL
                .iter()
                .map(|a| a.as_str())
                .zip(&self.sender_auth_actions),
        );
        labelled(
            &mut out,
            "kurier_spam_scans_total",
            "Messages scanned by rspamd, by its action.",
            "action",
            SPAM_ACTIONS.iter().copied().zip(&self.spam_actions),
        );
        out.push_str(&format!(
            "# HELP kurier_spam_scan_failures_total Scans rspamd did not answer in time or answered unusably (spam.on_failure applied).\n# TYPE kurier_spam_scan_failures_total counter\nkurier_spam_scan_failures_total {}\n",
            self.spam_scan_failures.load(Ordering::Relaxed)
        ));
        labelled(
            &mut out,
            "kurier_spam_learned_total",
            "Messages users moved into or out of Junk, taught to rspamd (result: spam, ham, failed).",
            "result",
            ["spam", "ham", "failed"]
                .into_iter()
                .zip(&self.spam_learned),
        );
        if let Some(([c, r], answers)) = self.rates.get() {
            out.push_str(&format!(
                "# HELP kurier_smtp_rate_limited_total MX connections (421) and recipients (450) refused by smtp.*_rate_* limits.\n# TYPE kurier_smtp_rate_limited_total counter\nkurier_smtp_rate_limited_total{{what=\"connection\"}} {}\nkurier_smtp_rate_limited_total{{what=\"recipient\"}} {}\n",
                c.refused(),
                r.refused()
            ));
            out.push_str(&format!(
                "# HELP kurier_smtp_recipient_answers_late_total RCPT answers to other servers that took longer than smtp.recipient_answer_ms (their timing may tell known from unknown addresses; raise the floor).\n# TYPE kurier_smtp_recipient_answers_late_total counter\nkurier_smtp_recipient_answers_late_total {}\n",
                answers.late()
            ));
        }
        labelled(
            &mut out,
            "kurier_greylist_total",
            "Messages from other servers by greylisting outcome: deferred (451), passed (back after the delay), known, exempt (DMARC passed or greylisting.exempt).",
            "outcome",
            kurier_accept::greylist::Outcome::ALL
                .iter()
                .map(|o| o.as_str())
                .zip(&self.greylist),
        );
        out.push_str(&format!(
            "# HELP kurier_acme_order_failures ACME orders failed in a row (the current certificate keeps serving).\n# TYPE kurier_acme_order_failures gauge\nkurier_acme_order_failures {}\n",
            self.acme_failures.load(Ordering::Relaxed)
        ));
        out.push_str(&format!(
            "# HELP kurier_acme_key_change 0: no key change under way; 1: it waits for the next key's TLSA record at every DANE port; 2: published, waiting two TTLs before the switch.\n# TYPE kurier_acme_key_change gauge\nkurier_acme_key_change {}\n\
             # HELP kurier_acme_next_key_created_timestamp_seconds When the next key was made (Unix time; 0: none). A key change that waits for days needs its TLSA record published.\n# TYPE kurier_acme_next_key_created_timestamp_seconds gauge\nkurier_acme_next_key_created_timestamp_seconds {}\n",
            self.acme_key_change.load(Ordering::Relaxed),
            self.acme_next_key_since.load(Ordering::Relaxed)
        ));
        let m = self.tlsa_match.load(Ordering::Relaxed);
        if m >= 0 {
            out.push_str(&format!(
                "# HELP kurier_dane_tlsa_match 1 if the served certificate matches the published TLSA records (or none are published), 0 if DANE senders cannot deliver to us (TR-03108 DANE-3).\n# TYPE kurier_dane_tlsa_match gauge\nkurier_dane_tlsa_match {m}\n# HELP kurier_dane_tlsa_check_failed 1 while the TLSA records could not be looked up with a validated answer.\n# TYPE kurier_dane_tlsa_check_failed gauge\nkurier_dane_tlsa_check_failed {}\n",
                self.tlsa_check_failed.load(Ordering::Relaxed)
            ));
        }
        if let Some(acceptor) = self.certificates.get() {
            out.push_str("# HELP kurier_certificate_expiry_timestamp_seconds When each certificate in use expires (Unix time).\n# TYPE kurier_certificate_expiry_timestamp_seconds gauge\n");
            for c in acceptor.certificates() {
                let Some(at) = kurier_tls::certificate::unix_time(c.leaf().not_after()) else {
                    continue;
                };
                let name = c.names.first().map(String::as_str).unwrap_or("");
                out.push_str(&format!(
                    "kurier_certificate_expiry_timestamp_seconds{{name=\"{name}\",file=\"{}\"}} {at}\n",
                    c.cert_path.display().to_string().replace('\\', "\\\\").replace('"', "\\\"")
                ));
            }
        }
        if let Some((mode, state)) = self.validator.get() {
            let mode = match mode {
                DnssecMode::Validate => "validate",
                DnssecMode::TrustAd => "trust_ad",
                DnssecMode::Off => "off",
            };
            let working = u8::from(state.borrow().is_working());
            out.push_str(&format!(
                "# HELP kurier_dnssec_validator_working 1 while the DNSSEC probe passes; 0 while it fails or has not run (outbound delivery holds mail then).\n# TYPE kurier_dnssec_validator_working gauge\nkurier_dnssec_validator_working{{mode=\"{mode}\"}} {working}\n"
            ));
        }
        out
    }
}
