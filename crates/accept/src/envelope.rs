//! The envelope stage (RFC 5321 §4.1.1.2, §4.1.1.3): who a recipient is, whether the mailbox
//! can take mail, which addresses take TLSRPT and DMARC reports without an account (RFC 8460
//! §3, RFC 7489 §7.2), and what an authenticated account may send as.

use kurier_smtp::Verdict;
use kurier_store::{Account, Recipient};

/// `user+tag@domain` without its tag (RFC 5233 sub-addressing with `delimiter`), if it has
/// one: the address delivery tries when the whole one is nobody.
pub fn without_detail(address: &str, delimiter: &str) -> Option<String> {
    if delimiter.is_empty() {
        return None;
    }
    let (local, domain) = address.rsplit_once('@')?;
    let (user, _) = local.split_once(delimiter)?;
    (!user.is_empty()).then(|| format!("{user}@{domain}"))
}

/// Who `address` is, in Postfix's order for `user+tag@domain`: an account or alias spelt with
/// the tag, then `user@domain`'s account or alias, then the domain's catch-all.
pub async fn resolve(
    store: &dyn kurier_store::Store,
    address: &str,
    delimiter: &str,
) -> kurier_store::Result<Recipient> {
    let Some(base) = without_detail(address, delimiter) else {
        return store.resolve(address).await;
    };
    let whole = store.resolve_address(address, false).await?;
    if !matches!(whole, Recipient::Unknown) {
        return Ok(whole);
    }
    store.resolve(&base).await
}

/// Where one kind of report is received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportAddress {
    /// Not received.
    Off,
    /// At this one configured address (an account or alias).
    Only(String),
    /// At this local part of every hosted domain, without an account behind it.
    EveryDomain(&'static str),
}

impl ReportAddress {
    fn matches(&self, address: &str) -> bool {
        match self {
            ReportAddress::Off => false,
            ReportAddress::Only(a) => address.eq_ignore_ascii_case(a),
            ReportAddress::EveryDomain(local) => address
                .rsplit_once('@')
                .is_some_and(|(l, _)| l.eq_ignore_ascii_case(local)),
        }
    }
}

/// Which addresses take reports: TLSRPT (RFC 8460 §3: `tlsrpt.reporting_address`, else
/// `tlsrpt@` every hosted domain) and DMARC aggregate reports (RFC 7489 §7.2:
/// `sender_auth.reporting_address`, else `dmarc-reports@` every hosted domain). The
/// per-domain ones need no account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportAddresses {
    pub tlsrpt: ReportAddress,
    pub dmarc: ReportAddress,
}

impl ReportAddresses {
    /// Whether mail to `address` (a hosted one) is a report for us.
    pub fn matches(&self, address: &str) -> bool {
        self.tlsrpt.matches(address) || self.dmarc.matches(address)
    }

    /// A per-domain address without an account or alias behind it: reports only.
    pub fn implicit(&self, address: &str) -> bool {
        [&self.tlsrpt, &self.dmarc]
            .iter()
            .any(|a| matches!(a, ReportAddress::EveryDomain(_)) && a.matches(address))
    }
}

/// The RCPT verdict for what the store said about a recipient. `full` tells whether one of
/// its accounts is at its quota (refused at RCPT time, 452 4.2.2, not after DATA);
/// `reports_only` whether an unknown address takes reports anyway.
pub fn recipient_verdict(resolved: &Recipient, full: bool, reports_only: bool) -> Verdict {
    match resolved {
        Recipient::Local(_) if full => Verdict::OverQuota,
        Recipient::Local(accounts) => Verdict::Accept(accounts.iter().map(|a| a.id).collect()),
        Recipient::Unknown if reports_only => Verdict::Accept(Vec::new()),
        Recipient::Unknown => Verdict::Unknown,
        Recipient::NotHosted => Verdict::NotHosted,
    }
}

/// What `account` may send as (RFC 6409 §6.1): its own address, then its aliases — never a
/// catch-all, which would let it send as anyone in the domain (the store leaves those out).
pub fn senders(account: &Account, aliases: Vec<String>) -> Vec<String> {
    let mut out = vec![account.address.clone()];
    out.extend(aliases.into_iter().filter(|a| !a.starts_with('@')));
    out
}

#[cfg(test)]
mod detail_tests {
    use super::*;

    #[test]
    fn tags_come_off_at_the_first_delimiter() {
        assert_eq!(
            without_detail("bob+lists@example.org", "+").as_deref(),
            Some("bob@example.org")
        );
        assert_eq!(
            without_detail("bob+a+b@example.org", "+").as_deref(),
            Some("bob@example.org")
        );
        assert_eq!(without_detail("bob@example.org", "+"), None);
        assert_eq!(without_detail("+x@example.org", "+"), None);
        assert_eq!(without_detail("bob+x@example.org", ""), None);
        assert_eq!(
            without_detail("bob-x@example.org", "-").as_deref(),
            Some("bob@example.org")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_addresses_explicit_or_at_every_domain() {
        let every = ReportAddresses {
            tlsrpt: ReportAddress::EveryDomain("tlsrpt"),
            dmarc: ReportAddress::EveryDomain("dmarc-reports"),
        };
        assert!(every.matches("TLSRPT@a.test") && every.implicit("tlsrpt@b.test"));
        assert!(every.matches("dmarc-reports@a.test") && every.implicit("DMARC-reports@b.test"));
        assert!(!every.matches("postmaster@a.test"));
        let one = ReportAddresses {
            tlsrpt: ReportAddress::Only("Reports@a.test".into()),
            dmarc: ReportAddress::Off,
        };
        assert!(one.matches("reports@A.test") && !one.matches("tlsrpt@a.test"));
        assert!(!one.matches("dmarc-reports@a.test"));
        assert!(
            !one.implicit("reports@a.test"),
            "an explicit address is a real one"
        );
    }

    #[test]
    fn verdicts_for_what_the_store_said() {
        assert_eq!(
            recipient_verdict(&Recipient::Unknown, false, false),
            Verdict::Unknown
        );
        assert_eq!(
            recipient_verdict(&Recipient::Unknown, false, true),
            Verdict::Accept(Vec::new())
        );
        assert_eq!(
            recipient_verdict(&Recipient::NotHosted, false, true),
            Verdict::NotHosted
        );
        assert_eq!(
            recipient_verdict(&Recipient::Local(Vec::new()), true, false),
            Verdict::OverQuota
        );
    }
}
