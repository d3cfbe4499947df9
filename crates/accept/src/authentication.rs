//! The sender-authentication stage (BSI TR-03182): SPF, DKIM and DMARC (`kurier-mailauth`) on
//! mail from other servers, recorded in an Authentication-Results field (RFC 8601) with our
//! authserv-id, after such fields claiming to be ours are removed (§5). DMARC's policy is
//! applied unless the operator monitors only (`sender_auth.enforce = false`), the recipient's
//! domain does (`kurier domain dmarc DOMAIN monitor`), or the sender is exempt
//! (`sender_auth.dmarc_exempt`, e.g. a mailing list): reject → 550 5.7.1, quarantine → the
//! Junk folder, a policy that cannot be looked up now → 451 4.7.0 (RFC 7489 §6.6.4, §6.7).

use std::net::IpAddr;
use std::sync::Arc;

use kurier_config::SenderPattern;
use kurier_mailauth::dmarc::Policy;
use kurier_mailauth::{
    Disposition, DmarcOutcome, DmarcResult, Inbound, Verification, psl::SharedPsl,
};
use kurier_smtp::Message;
use kurier_smtp::command::RcptParams;
use kurier_smtp::headers::{addresses, fields, without_field_where};
use kurier_store::{DmarcEvent, Folder, Store};

/// The domain setting that turns DMARC enforcement off for mail to one domain.
pub const DMARC_SETTING: &str = "dmarc.policy";

/// What the stage found, for monitoring: the DMARC result of each message and what was done.
pub trait SenderAuthEvents: Send + Sync {
    fn checked(&self, dmarc: DmarcResult, action: Action);
}

/// What the stage did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Deliver,
    Quarantine,
    Reject,
    Defer,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Deliver,
        Action::Quarantine,
        Action::Reject,
        Action::Defer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Deliver => "deliver",
            Action::Quarantine => "quarantine",
            Action::Reject => "reject",
            Action::Defer => "defer",
        }
    }

    pub fn of(decision: &Decision) -> Action {
        match decision {
            Decision::Deliver {
                folder: Folder::Junk,
                ..
            } => Action::Quarantine,
            Decision::Deliver { .. } => Action::Deliver,
            Decision::Reject(_) => Action::Reject,
            Decision::Defer(_) => Action::Defer,
        }
    }
}

/// What the stage needs, made once by the binary.
pub struct SenderAuth {
    pub resolver: kurier_dns::Resolver,
    /// Replaced on SIGHUP when the list file changed.
    pub psl: SharedPsl,
    /// Our authserv-id: `server.hostname`.
    pub authserv_id: String,
    pub enforce: bool,
    pub exempt: Vec<SenderPattern>,
    pub events: Arc<dyn SenderAuthEvents>,
    /// Keep the evaluations of policies that ask for aggregate reports (`sender_auth.send_reports`).
    pub record_reports: bool,
}

/// What the stage came to: the decision, and the From domains that passed DMARC (a report
/// mail is trusted only from those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub decision: Decision,
    pub dmarc_passed: Vec<String>,
}

/// What the stage decided for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Store it (into `folder`), with these fields in front, from `body` if it changed.
    Deliver {
        fields: Vec<String>,
        folder: Folder,
        body: Option<Vec<u8>>,
    },
    /// 550 5.7.1 with this reason.
    Reject(String),
    /// 451 4.7.0 with this reason.
    Defer(String),
}

/// The domains of the From field(s) (RFC 7489 §6.6.1: every author counts).
pub fn from_domains(body: &[u8]) -> Vec<String> {
    fields(body)
        .iter()
        .filter(|(n, _)| n == "from")
        .flat_map(|(_, v)| addresses(v))
        .filter_map(|a| {
            a.rsplit_once('@')
                .map(|(_, d)| d.trim_end_matches('.').to_string())
        })
        .filter(|d| !d.is_empty())
        .collect()
}

/// `body` without Authentication-Results fields that claim `authserv_id` (RFC 8601 §5).
pub fn without_forged_results(body: &[u8], authserv_id: &str) -> Option<Vec<u8>> {
    without_field_where(body, "Authentication-Results", |v| {
        kurier_mailauth::results::authserv_id(v).eq_ignore_ascii_case(authserv_id)
    })
}

/// A number 0–99 drawn from the message (its queue id is random): DMARC's `pct` sample.
pub fn sample(id: &str) -> u8 {
    // FNV-1a: any stable, well-spread hash will do.
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h % 100) as u8
}

/// Why DMARC is not acted on for this message, if it is not: the pure part of the decision.
pub fn exemption(
    enforce: bool,
    exempt: &[SenderPattern],
    monitored_domain: Option<&str>,
    ip: IpAddr,
    mail_from: &str,
) -> Option<String> {
    if !enforce {
        return Some("sender_auth.enforce is off".into());
    }
    if let Some(d) = monitored_domain {
        return Some(format!("{d} monitors DMARC only"));
    }
    exempt
        .iter()
        .any(|p| p.matches(ip, mail_from))
        .then(|| "the sender is in sender_auth.dmarc_exempt".into())
}

/// The decision once the DMARC disposition (and the outcome it came from) and the exemptions
/// are known.
pub fn decide(
    disposition: Disposition,
    outcome: Option<&DmarcOutcome>,
    exempt: Option<&str>,
    fields: Vec<String>,
    body: Option<Vec<u8>>,
) -> Decision {
    let reason = outcome.map(|o| o.reason.as_str()).unwrap_or_default();
    let folder = match (exempt, disposition) {
        (None, Disposition::Reject) => {
            return Decision::Reject(format!(
                "DMARC policy of {} rejects this message: {reason}",
                outcome.map_or("", |o| o.from_domain.as_str())
            ));
        }
        (None, Disposition::TempFail) => {
            return Decision::Defer(format!("DMARC: {reason}; try again later"));
        }
        (None, Disposition::Quarantine) => Folder::Junk,
        _ => Folder::Inbox,
    };
    Decision::Deliver {
        fields,
        folder,
        body,
    }
}

/// The DMARC events of one message for the aggregate reports of the policies that ask for
/// them (RFC 7489 §7.2): one per From domain whose policy names `rua`, with what was done
/// (`action`; a deferred message comes again and is counted then) and why the published
/// policy was not applied as asked (`exempt`: local policy; `pct`: sampled out).
pub fn dmarc_events(
    v: &Verification,
    ip: IpAddr,
    mail_from: &str,
    recipients: &[(String, RcptParams)],
    action: Action,
    exempt: Option<&str>,
    sample: u8,
) -> Vec<DmarcEvent> {
    let disposition = match action {
        Action::Deliver => "none",
        Action::Quarantine => "quarantine",
        Action::Reject => "reject",
        Action::Defer => return Vec::new(),
    };
    let envelope_from = mail_from
        .rsplit_once('@')
        .map(|(_, d)| d)
        .or_else(|| v.spf_helo.as_ref().map(|(h, _)| h.as_str()))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let envelope_to = recipients
        .first()
        .and_then(|(r, _)| r.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    let dkim: Vec<(String, String, String)> = v
        .dkim
        .iter()
        .filter_map(|d| {
            Some((
                d.domain.clone()?.to_ascii_lowercase(),
                d.selector.clone().unwrap_or_default(),
                d.result.as_str().to_string(),
            ))
        })
        .collect();
    let spf: Vec<(String, String, String)> = [("mfrom", &v.spf_mail_from), ("helo", &v.spf_helo)]
        .into_iter()
        .filter_map(|(scope, s)| {
            let (_, o) = s.as_ref()?;
            Some((
                o.domain.clone(),
                scope.to_string(),
                o.result.as_str().to_string(),
            ))
        })
        .collect();
    v.dmarc
        .iter()
        .filter_map(|o| {
            let found = o.policy.as_ref().filter(|f| !f.record.rua.is_empty())?;
            let failed = o.result == DmarcResult::Fail && found.policy != Policy::None;
            let overrides = match exempt {
                Some(why) if failed => vec![("local_policy".to_string(), why.to_string())],
                None if failed && sample >= found.record.pct => {
                    vec![("sampled_out".to_string(), String::new())]
                }
                _ => Vec::new(),
            };
            Some(DmarcEvent {
                policy_domain: found.domain.clone(),
                record: found.record.to_string(),
                source_ip: ip.to_string(),
                header_from: o.from_domain.clone(),
                envelope_from: envelope_from.clone(),
                envelope_to: envelope_to.clone(),
                disposition: disposition.to_string(),
                dkim_aligned: o.dkim_aligned,
                spf_aligned: o.spf_aligned,
                overrides,
                dkim: dkim.clone(),
                spf: spf.clone(),
            })
        })
        .collect()
}

impl SenderAuth {
    /// Runs the stage for a message from another server.
    pub async fn check(
        &self,
        store: &dyn Store,
        connection: &crate::Connection,
        m: &Message,
    ) -> Checked {
        let cleaned = without_forged_results(&m.body, &self.authserv_id);
        let psl = kurier_mailauth::psl::current(&self.psl);
        let verification = {
            let message = cleaned.as_deref().unwrap_or(&m.body);
            let input = Inbound {
                ip: connection.ip,
                helo: connection.helo.spf_domain(),
                mail_from: &m.from,
                from_domains: from_domains(message),
                message,
                receiver: &self.authserv_id,
                now: kurier_store::now(),
            };
            kurier_mailauth::verify(&self.resolver, &psl, &input).await
        };
        let field = kurier_mailauth::results::header(&self.authserv_id, &verification);
        let monitored = self.monitored_domain(store, &m.recipients).await;
        let exempt = exemption(
            self.enforce,
            &self.exempt,
            monitored.as_deref(),
            connection.ip,
            &m.from,
        );
        let drawn = sample(&m.id);
        let (disposition, outcome) = verification.disposition(drawn);
        let decision = decide(
            disposition,
            outcome,
            exempt.as_deref(),
            vec![field],
            cleaned,
        );
        let action = Action::of(&decision);
        log(
            &m.id,
            connection,
            &m.from,
            &verification,
            action,
            exempt.as_deref(),
        );
        self.events
            .checked(outcome.map_or(DmarcResult::None, |o| o.result), action);
        if self.record_reports {
            let events = dmarc_events(
                &verification,
                connection.ip,
                &m.from,
                &m.recipients,
                action,
                exempt.as_deref(),
                drawn,
            );
            for e in events {
                // The report is a courtesy to the domain owner: losing one event is no reason
                // to refuse the message.
                if let Err(err) = store.record_dmarc_event(&e, kurier_store::now()).await {
                    tracing::warn!(id = %m.id, domain = %e.policy_domain, error = %err, "a DMARC event for the aggregate report was not kept");
                }
            }
        }
        let dmarc_passed = verification
            .dmarc
            .iter()
            .filter(|o| o.result == DmarcResult::Pass)
            .map(|o| o.from_domain.clone())
            .collect();
        Checked {
            decision,
            dmarc_passed,
        }
    }

    /// A recipient domain that monitors DMARC only (the most lenient recipient wins: one reply
    /// at the end of DATA serves them all).
    async fn monitored_domain(
        &self,
        store: &dyn Store,
        recipients: &[(String, RcptParams)],
    ) -> Option<String> {
        let mut domains: Vec<&str> = recipients
            .iter()
            .filter_map(|(r, _)| r.rsplit_once('@').map(|(_, d)| d))
            .collect();
        domains.sort();
        domains.dedup();
        for d in domains {
            if let Ok(settings) = store.domain_settings(d).await
                && settings.get(DMARC_SETTING).is_some_and(|v| v == "monitor")
            {
                return Some(d.to_string());
            }
        }
        None
    }
}

fn log(
    id: &str,
    connection: &crate::Connection,
    mail_from: &str,
    v: &Verification,
    action: Action,
    exempt: Option<&str>,
) {
    let spf = v
        .spf_mail_from
        .as_ref()
        .map_or("none", |(_, o)| o.result.as_str());
    let dkim: Vec<String> = v
        .dkim
        .iter()
        .map(|d| {
            format!(
                "{}:{}",
                d.domain.as_deref().unwrap_or("?"),
                d.result.as_str()
            )
        })
        .collect();
    let dmarc: Vec<String> = v
        .dmarc
        .iter()
        .map(|o| format!("{}:{}", o.from_domain, o.result.as_str()))
        .collect();
    let action = action.as_str();
    if v.dkim_unchecked > 0 {
        tracing::warn!(%id, unchecked = v.dkim_unchecked, "more DKIM signatures than are verified; the rest were ignored");
    }
    tracing::info!(%id, client = %connection.ip, from = mail_from, spf, dkim = dkim.join(" "),
        dmarc = dmarc.join(" "), action, exempt, "sender authentication");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn forged_results_claiming_our_id_are_removed() {
        let body = b"Received: x\r\nAuthentication-Results: mx.kurier.test;\r\n\tdmarc=pass\r\nAuthentication-Results: other.example; spf=pass\r\nSubject: s\r\n\r\nAuthentication-Results: mx.kurier.test; in the body\r\n";
        let out = without_forged_results(body, "MX.kurier.test").unwrap();
        assert_eq!(
            out,
            b"Received: x\r\nAuthentication-Results: other.example; spf=pass\r\nSubject: s\r\n\r\nAuthentication-Results: mx.kurier.test; in the body\r\n"
        );
        assert!(without_forged_results(&out, "mx.kurier.test").is_none());
    }

    #[test]
    fn from_domains_and_exemptions() {
        assert_eq!(
            from_domains(b"From: A <a@Bank.TEST>, b@x.test\r\nFrom: c@y.test\r\n\r\n"),
            ["bank.test", "x.test", "y.test"]
        );
        assert_eq!(
            from_domains(b"From: \"Doe, J\" <j@a.test>, (x, y) k@b.test (c)\r\n\r\n"),
            ["a.test", "b.test"]
        );
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let list = [
            SenderPattern::parse("lists.example.org").unwrap(),
            SenderPattern::parse("198.51.100.0/24").unwrap(),
        ];
        assert!(exemption(true, &list, None, ip, "x-bounces@lists.example.org").is_some());
        assert!(exemption(true, &list, None, ip, "x@example.org").is_none());
        assert!(exemption(true, &list, None, "198.51.100.9".parse().unwrap(), "").is_some());
        assert!(exemption(false, &[], None, ip, "").is_some());
        assert!(exemption(true, &[], Some("kurier.test"), ip, "").is_some());
        assert!(sample("a") < 100 && sample("") < 100);
    }
}
