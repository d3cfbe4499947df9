//! Sending DMARC aggregate reports (RFC 7489 §7.2; BSI TR-03182): for one UTC day, per policy
//! domain whose record (looked up again now, through the validating resolver) still asks for
//! them, the day's evaluations summed into rows, as `<feedback>` XML, gzip-compressed, by mail
//! to each `mailto:` in `rua`, DKIM-signed by our reporting domain and through our queue. A
//! destination outside the policy domain's organizational domain must agree to take its
//! reports (§7.1: a `v=DMARC1` record at `<policy-domain>._report._dmarc.<destination>`), and
//! a size limit written in the URI (`!10m`) is kept. Each domain's report is claimed in the
//! store, so it leaves once per day and cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kurier_dkim::DkimKey;
use kurier_dns::Resolver;
use kurier_mailauth::aggregate::{Feedback, PolicyPublished, Row};
use kurier_mailauth::dmarc::{DmarcRecord, Policy, is_dmarc};
use kurier_mailauth::psl::{SharedPsl, current};
use kurier_smtp::received::{UtcTime, rfc5322_date, unique_stamp};
use kurier_store::{DmarcEvent, ReportKind, Store};
use tokio::sync::Notify;

use crate::report::{DayRun, ReporterConfig, base64_lines, gzip, queue_signed};

#[derive(Clone)]
pub struct DmarcReporter {
    store: Arc<dyn Store>,
    resolver: Resolver,
    psl: SharedPsl,
    dkim: Option<DkimKey>,
    cfg: ReporterConfig,
    wake: Arc<Notify>,
}

/// One `rua` destination (§6.2 `dmarc-uri`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub address: String,
    /// The largest report it takes, in bytes (`!` size suffix).
    pub max_bytes: Option<u64>,
}

impl Destination {
    /// `mailto:addr[!size[kmgt]]`; other schemes are not ours to use.
    pub fn parse(uri: &str) -> Result<Destination, String> {
        let rest = uri
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("mailto:"))
            .map(|_| &uri[7..])
            .ok_or_else(|| format!("{uri}: only mailto: destinations are supported"))?;
        let (address, size) = match rest.rsplit_once('!') {
            Some((a, s)) => (a, Some(s)),
            None => (rest, None),
        };
        let address = percent_decoded(address);
        let Some((local, domain)) = address.rsplit_once('@') else {
            return Err(format!("{uri}: not a mail address"));
        };
        if local.is_empty()
            || domain.is_empty()
            || address
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
        {
            return Err(format!("{uri}: not a mail address"));
        }
        let max_bytes = size
            .map(|s| parse_size(s).ok_or_else(|| format!("{uri}: bad size limit {s:?}")))
            .transpose()?;
        Ok(Destination {
            address: address.to_string(),
            max_bytes,
        })
    }

    pub fn domain(&self) -> &str {
        self.address.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// §6.2: digits and an optional unit k, m, g, t (powers of two).
fn parse_size(s: &str) -> Option<u64> {
    let (digits, unit) = match s.char_indices().last()? {
        (i, c) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
        _ => (s, 'b'),
    };
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        't' => 40,
        _ => return None,
    };
    let n: u64 = digits.parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// `%2C` and friends in a URI (RFC 3986 §2.1); what does not decode stays as written.
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rows of one policy domain's events: alike messages counted together.
pub fn rows(events: &[&DmarcEvent]) -> Vec<Row> {
    let mut counted: BTreeMap<Row, u64> = BTreeMap::new();
    for e in events {
        let Ok(source_ip) = e.source_ip.parse() else {
            continue;
        };
        let row = Row {
            source_ip,
            count: 0,
            disposition: match e.disposition.as_str() {
                "reject" => Policy::Reject,
                "quarantine" => Policy::Quarantine,
                _ => Policy::None,
            },
            dkim_pass: e.dkim_aligned,
            spf_pass: e.spf_aligned,
            overrides: e.overrides.clone(),
            envelope_to: (!e.envelope_to.is_empty()).then(|| e.envelope_to.clone()),
            envelope_from: e.envelope_from.clone(),
            header_from: e.header_from.clone(),
            dkim: e.dkim.clone(),
            spf: e.spf.clone(),
        };
        *counted.entry(row).or_default() += 1;
    }
    counted
        .into_iter()
        .map(|(row, count)| Row { count, ..row })
        .collect()
}

impl DmarcReporter {
    pub fn new(
        store: Arc<dyn Store>,
        resolver: Resolver,
        psl: SharedPsl,
        dkim: Option<DkimKey>,
        cfg: ReporterConfig,
        wake: Arc<Notify>,
    ) -> Self {
        DmarcReporter {
            store,
            resolver,
            psl,
            dkim,
            cfg,
            wake,
        }
    }

    /// Reports the UTC day starting at `day_start` (a multiple of 86400).
    pub async fn send_day(&self, day_start: i64) -> DayRun {
        let mut run = DayRun::default();
        let end = day_start + 86_400;
        let events = match self.store.dmarc_events(day_start, end).await {
            Ok(e) => e,
            Err(e) => {
                run.skipped
                    .push(("*".into(), format!("cannot read the DMARC events: {e}")));
                return run;
            }
        };
        let domains: BTreeSet<&str> = events.iter().map(|e| e.policy_domain.as_str()).collect();
        for domain in domains {
            let mine: Vec<&DmarcEvent> = events
                .iter()
                .filter(|e| e.policy_domain == domain)
                .collect();
            if let Err(why) = self.send_domain(domain, day_start, &mine, &mut run).await {
                tracing::warn!(domain, reason = %why, "DMARC report not sent");
                run.skipped.push((domain.to_string(), why));
            }
        }
        run
    }

    async fn send_domain(
        &self,
        domain: &str,
        day_start: i64,
        events: &[&DmarcEvent],
        run: &mut DayRun,
    ) -> Result<(), String> {
        // The policy as published when the mail came (the last one of the day)…
        let published = events
            .last()
            .and_then(|e| DmarcRecord::parse(&e.record).ok())
            .ok_or("no readable policy among the events")?;
        // …and where the domain wants reports now.
        let current = self.current_record(domain).await?;
        let destinations: Vec<Destination> = current
            .rua
            .iter()
            .filter_map(|uri| match Destination::parse(uri) {
                Ok(d) => Some(d),
                Err(why) => {
                    run.skipped.push((domain.to_string(), why));
                    None
                }
            })
            .collect();
        if destinations.is_empty() {
            return Err("the DMARC record names no mailto: report destination".into());
        }
        let day = UtcTime::from_unix(day_start).rfc3339();
        let report_id = format!("{}.{domain}@{}", &day[..10], self.cfg.hostname);
        let feedback = Feedback {
            org_name: self.cfg.organization.clone(),
            email: self.cfg.contact.trim_start_matches("mailto:").to_string(),
            extra_contact_info: None,
            report_id: report_id.clone(),
            begin: day_start,
            end: day_start + 86_399,
            policy: PolicyPublished {
                domain: domain.to_string(),
                strict_dkim: published.strict_dkim,
                strict_spf: published.strict_spf,
                p: published.p,
                sp: published.sp.unwrap_or(published.p),
                pct: published.pct,
                fo: published.fo.clone(),
            },
            records: rows(events),
        };
        let gz = gzip(feedback.to_xml().as_bytes()).map_err(|e| format!("gzip: {e}"))?;
        // §7.2.1.1: receiver!policy-domain!begin!end.xml.gz
        let filename = format!(
            "{}!{domain}!{day_start}!{}.xml.gz",
            self.cfg.submitter,
            day_start + 86_399
        );
        let claimed = self
            .store
            .claim_report(
                ReportKind::Dmarc,
                domain,
                day_start,
                &report_id,
                kurier_store::now(),
            )
            .await
            .map_err(|e| format!("cannot claim the report: {e}"))?;
        if !claimed {
            run.skipped
                .push((domain.to_string(), "already sent".into()));
            return Ok(());
        }
        let mut handed_on = false;
        for d in &destinations {
            let outcome = self.deliver(domain, d, &report_id, &filename, &gz).await;
            handed_on |= outcome.is_ok();
            match outcome {
                Ok(()) => {
                    tracing::info!(domain, rua = %d.address, "DMARC report sent");
                    run.sent.push(format!("{domain} → mailto:{}", d.address));
                }
                Err(why) => {
                    tracing::warn!(domain, rua = %d.address, reason = %why, "DMARC report not sent");
                    run.skipped
                        .push((domain.to_string(), format!("mailto:{}: {why}", d.address)));
                }
            }
        }
        if !handed_on
            && let Err(e) = self
                .store
                .release_report(ReportKind::Dmarc, domain, day_start)
                .await
        {
            tracing::warn!(domain, error = %e, "cannot release a DMARC report claim");
        }
        Ok(())
    }

    /// The domain's DMARC record now: exactly one, valid.
    async fn current_record(&self, domain: &str) -> Result<DmarcRecord, String> {
        let answer = self
            .resolver
            .txt(&format!("_dmarc.{domain}"))
            .await
            .map_err(|e| format!("_dmarc.{domain}: {e}"))?;
        let claims: Vec<&String> = answer.records.iter().filter(|t| is_dmarc(t)).collect();
        match claims.as_slice() {
            [one] => DmarcRecord::parse(one).map_err(|e| format!("_dmarc.{domain}: {e}")),
            [] => Err(format!("_dmarc.{domain} publishes no DMARC record now")),
            _ => Err(format!(
                "_dmarc.{domain} publishes more than one DMARC record"
            )),
        }
    }

    async fn deliver(
        &self,
        domain: &str,
        to: &Destination,
        report_id: &str,
        filename: &str,
        gz: &[u8],
    ) -> Result<(), String> {
        if let Some(max) = to.max_bytes
            && gz.len() as u64 > max
        {
            return Err(format!(
                "the report has {} bytes, the destination takes {max}",
                gz.len()
            ));
        }
        self.verify_external(domain, to.domain()).await?;
        let key = self.dkim.as_ref().ok_or_else(|| {
            format!(
                "no DKIM key for {} (reports are signed; kurier dkim generate {})",
                self.cfg.submitter, self.cfg.submitter
            )
        })?;
        let message = report_message(&self.cfg, &to.address, domain, report_id, filename, gz);
        queue_signed(&*self.store, key, &self.wake, &to.address, &message).await
    }

    /// §7.1: a destination in another organizational domain must say it takes our reports.
    async fn verify_external(&self, domain: &str, destination: &str) -> Result<(), String> {
        let psl = current(&self.psl);
        if psl.organizational_domain(domain) == psl.organizational_domain(destination) {
            return Ok(());
        }
        let name = format!("{domain}._report._dmarc.{destination}");
        let answer = self
            .resolver
            .txt(&name)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        if answer.records.iter().any(|t| is_dmarc(t)) {
            Ok(())
        } else {
            Err(format!(
                "{destination} does not take reports for {domain} (no v=DMARC1 record at {name})"
            ))
        }
    }
}

/// The report mail (§7.2.1.1), unsigned.
pub fn report_message(
    cfg: &ReporterConfig,
    to: &str,
    domain: &str,
    report_id: &str,
    filename: &str,
    gz: &[u8],
) -> Vec<u8> {
    let boundary = format!("kurier-dmarc-{:016x}", unique_stamp());
    format!(
        "From: <{from}>\r\n\
         To: <{to}>\r\n\
         Subject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>\r\n\
         Date: {date}\r\n\
         Message-ID: <dmarc.{stamp:x}@{host}>\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed;\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         This is a DMARC aggregate report (RFC 7489) from {org} for {domain}.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: application/gzip\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment;\r\n\tfilename=\"{filename}\"\r\n\
         \r\n\
         {wrapped}\
         --{boundary}--\r\n",
        from = cfg.dmarc_from,
        submitter = cfg.submitter,
        date = rfc5322_date(kurier_store::now()),
        stamp = unique_stamp(),
        host = cfg.hostname,
        org = cfg.organization,
        wrapped = base64_lines(gz),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn destinations_by_rfc7489_section_6_2() {
        assert_eq!(
            Destination::parse("mailto:d@a.test!10m").unwrap(),
            Destination {
                address: "d@a.test".into(),
                max_bytes: Some(10 << 20)
            }
        );
        assert_eq!(
            Destination::parse("MAILTO:d%2Bx@a.test").unwrap().address,
            "d+x@a.test"
        );
        assert_eq!(
            Destination::parse("mailto:d@a.test!500").unwrap().max_bytes,
            Some(500)
        );
        for bad in [
            "https://a.test/r",
            "mailto:nobody",
            "mailto:d@a.test!9x",
            "mailto:<x>@a.test",
            "mailto:d@a.test!99999999999999t",
        ] {
            assert!(Destination::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn alike_events_make_one_row() {
        let e = DmarcEvent {
            policy_domain: "b.test".into(),
            record: "v=DMARC1; p=none".into(),
            source_ip: "192.0.2.1".into(),
            header_from: "b.test".into(),
            envelope_from: "b.test".into(),
            envelope_to: "a.test".into(),
            disposition: "none".into(),
            dkim_aligned: true,
            spf_aligned: false,
            overrides: Vec::new(),
            dkim: vec![("b.test".into(), "s".into(), "pass".into())],
            spf: Vec::new(),
        };
        let other = DmarcEvent {
            source_ip: "192.0.2.2".into(),
            ..e.clone()
        };
        let bad = DmarcEvent {
            source_ip: "nonsense".into(),
            ..e.clone()
        };
        let r = rows(&[&e, &other, &e, &bad]);
        assert_eq!(r.iter().map(|r| r.count).collect::<Vec<_>>(), [2, 1]);
    }
}
