//! Sending TLSRPT reports (RFC 8460 §3, §5; TR-03108 RPT-4..RPT-10): for one UTC day, per
//! policy domain that publishes exactly one valid `_smtp._tls` record (looked up through the
//! validating resolver), the aggregate report of our sessions to it, gzip-compressed, to each
//! `rua`: by mail as `multipart/report; report-type="tlsrpt"`, DKIM-signed by our reporting
//! domain without `l=` and marked `TLS-Required: No` so that the receiver's own DANE or MTA-STS
//! trouble cannot hold it (RFC 8460 §3, RFC 8689 §5) — it goes through our queue, which retries
//! — or by HTTPS POST.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;

use kurier_dkim::DkimKey;
use kurier_dns::Resolver;
use kurier_policy::tlsrpt::{ReportMeta, Rua, build_report, parse_record};
use kurier_smtp::received::{UtcTime, rfc5322_date, unique_stamp};
use kurier_store::{NewQueueEntry, ReportKind, Store};
use kurier_tls::ClientTls;
use tokio::sync::Notify;

use crate::https;

/// How long TLS and DMARC events are kept after their day (a late run, `kurier reports send
/// --day`, can still report them; then they go, so inbound mail cannot grow the store without
/// bound).
pub const EVENT_RETENTION_DAYS: i64 = 14;

/// Who we are in reports (config `[tlsrpt]`).
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    pub organization: String,
    /// `contact-info`, e.g. `mailto:postmaster@example.org`.
    pub contact: String,
    /// Our reporting domain: `TLS-Report-Submitter`, the file name, the DKIM `d=`.
    pub submitter: String,
    /// The From address of TLSRPT report mail.
    pub from: String,
    /// The From address of DMARC report mail.
    pub dmarc_from: String,
    /// Our host name (report ids).
    pub hostname: String,
}

/// What one day's run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DayRun {
    /// `domain → rua` for each report handed on.
    pub sent: Vec<String>,
    /// `(domain, why)` for each domain without a report.
    pub skipped: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct Reporter {
    store: Arc<dyn Store>,
    resolver: Resolver,
    tls: ClientTls,
    dkim: Option<DkimKey>,
    cfg: ReporterConfig,
    wake: Arc<Notify>,
    /// Retry failed HTTPS uploads in the background (the server; not a one-shot CLI run).
    retry_https: bool,
}

impl Reporter {
    pub fn new(
        store: Arc<dyn Store>,
        resolver: Resolver,
        tls: ClientTls,
        dkim: Option<DkimKey>,
        cfg: ReporterConfig,
        wake: Arc<Notify>,
        retry_https: bool,
    ) -> Self {
        Reporter {
            store,
            resolver,
            tls,
            dkim,
            cfg,
            wake,
            retry_https,
        }
    }

    /// Reports the UTC day starting at `day_start` (a multiple of 86400).
    pub async fn send_day(&self, day_start: i64) -> DayRun {
        let mut run = DayRun::default();
        let end = day_start + 86_400;
        let events = match self.store.tls_events(day_start, end).await {
            Ok(e) => e,
            Err(e) => {
                run.skipped
                    .push(("*".into(), format!("cannot read the TLS events: {e}")));
                return run;
            }
        };
        let domains: BTreeSet<String> = events.iter().map(|e| e.policy_domain.clone()).collect();
        let (start, stop) = (
            UtcTime::from_unix(day_start).rfc3339(),
            UtcTime::from_unix(end).rfc3339(),
        );
        for domain in domains {
            // RPT-7: exactly one valid record, through the validating resolver.
            let record = match self.resolver.txt(&format!("_smtp._tls.{domain}")).await {
                Ok(a) => parse_record(&a.records),
                Err(e) => {
                    run.skipped.push((domain, e.to_string()));
                    continue;
                }
            };
            let record = match record {
                Ok(Some(r)) => r,
                Ok(None) => {
                    run.skipped.push((domain, "no _smtp._tls record".into()));
                    continue;
                }
                Err(e) => {
                    run.skipped.push((domain, format!("_smtp._tls: {e}")));
                    continue;
                }
            };
            let day = &start[..10];
            let meta = ReportMeta {
                organization_name: self.cfg.organization.clone(),
                contact_info: self.cfg.contact.clone(),
                // Stable per domain and day: a second run is recognisably the same report.
                report_id: format!("{day}.{domain}@{}", self.cfg.hostname),
                start: start.clone(),
                end: stop.clone(),
            };
            let json = build_report(&meta, &domain, &events).to_string();
            let gz = match gzip(json.as_bytes()) {
                Ok(g) => g,
                Err(e) => {
                    run.skipped.push((domain, format!("gzip: {e}")));
                    continue;
                }
            };
            // RFC 8460 §5.3: submitter!policy-domain!begin!end.json.gz
            let filename = format!("{}!{domain}!{day_start}!{end}.json.gz", self.cfg.submitter);
            // One report per domain and day, from whichever run or node claims it first.
            match self
                .store
                .claim_report(
                    ReportKind::Tlsrpt,
                    &domain,
                    day_start,
                    &meta.report_id,
                    kurier_store::now(),
                )
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    run.skipped.push((domain, "already sent".into()));
                    continue;
                }
                Err(e) => {
                    run.skipped
                        .push((domain, format!("cannot claim the report: {e}")));
                    continue;
                }
            }
            let mut handed_on = false;
            for rua in &record.rua {
                let mut retrying = false;
                let outcome = match rua {
                    Rua::Mailto(to) => {
                        self.mail(to, &domain, &meta.report_id, &filename, &gz)
                            .await
                    }
                    Rua::Https(url) => match self.post(url, &gz).await {
                        Err(e) if self.retry_https => {
                            self.retry_post(url.clone(), gz.clone());
                            retrying = true;
                            Err(format!("{e}; retrying for up to a day"))
                        }
                        other => other,
                    },
                };
                let target = match rua {
                    Rua::Mailto(a) => format!("mailto:{a}"),
                    Rua::Https(u) => u.clone(),
                };
                handed_on |= outcome.is_ok() || retrying;
                match outcome {
                    Ok(()) => {
                        tracing::info!(domain = %domain, rua = %target, "TLSRPT report sent");
                        run.sent.push(format!("{domain} → {target}"));
                    }
                    Err(e) => {
                        tracing::warn!(domain = %domain, rua = %target, error = %e, "TLSRPT report not sent");
                        run.skipped.push((domain.clone(), format!("{target}: {e}")));
                    }
                }
            }
            // Nothing left: a later run (or node) may try again.
            if !handed_on
                && let Err(e) = self
                    .store
                    .release_report(ReportKind::Tlsrpt, &domain, day_start)
                    .await
            {
                tracing::warn!(domain = %domain, error = %e, "cannot release a TLSRPT report claim");
            }
        }
        run
    }

    async fn mail(
        &self,
        to: &str,
        domain: &str,
        report_id: &str,
        filename: &str,
        gz: &[u8],
    ) -> Result<(), String> {
        let key = self.dkim.as_ref().ok_or_else(|| {
            format!(
                "no DKIM key for {} (RPT-8 requires signed reports; kurier dkim generate {})",
                self.cfg.submitter, self.cfg.submitter
            )
        })?;
        let message = report_message(&self.cfg, to, domain, report_id, filename, gz);
        queue_signed(&*self.store, key, &self.wake, to, &message).await
    }

    /// RPT-10: a failed upload is tried again with growing pauses (5 min … 10 h, about a day
    /// in all). The retries live in this process: a restart forgets them.
    fn retry_post(&self, url: String, gz: Vec<u8>) {
        let me = Reporter {
            retry_https: false,
            ..self.clone()
        };
        tokio::spawn(async move {
            for pause in crate::schedule::report_upload_pauses() {
                tokio::time::sleep(pause).await;
                match me.post(&url, &gz).await {
                    Ok(()) => {
                        tracing::info!(rua = %url, "TLSRPT report uploaded on a retry");
                        return;
                    }
                    Err(e) => tracing::info!(rua = %url, error = %e, "TLSRPT upload failed again"),
                }
            }
            tracing::warn!(rua = %url, "TLSRPT report given up after a day of retries");
        });
    }

    /// RFC 8460 §5.4: POST, `application/tlsrpt+gzip`; any 2xx counts.
    async fn post(&self, url: &str, gz: &[u8]) -> Result<(), String> {
        let rest = url.strip_prefix("https://").ok_or("not an https URL")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("bad port in {url}"))?),
            None => (authority, 443),
        };
        let r = https::exchange(
            &self.resolver,
            &self.tls,
            https::Request {
                host,
                port,
                method: "POST",
                path,
                content_type: Some("application/tlsrpt+gzip"),
                body: gz.to_vec(),
                reject_wildcard: false,
                max_response: 64 * 1024,
                revocation: None,
            },
        )
        .await
        .map_err(|(_, d)| d)?;
        if (200..300).contains(&r.status) {
            Ok(())
        } else {
            Err(format!("{url} answered {}", r.status))
        }
    }
}

/// Signs a report mail with `key` and queues it for `to` from the null reverse path (a report
/// that cannot be delivered bounces to nobody), then wakes the queue runner.
pub(crate) async fn queue_signed(
    store: &dyn Store,
    key: &DkimKey,
    wake: &Notify,
    to: &str,
    message: &[u8],
) -> Result<(), String> {
    let signature = key
        .sign(message, kurier_store::now())
        .map_err(|e| e.to_string())?;
    let signed = [signature.as_bytes(), message].concat();
    let entry = NewQueueEntry {
        sender: String::new(),
        recipients: vec![(to.to_string(), Default::default())],
        dsn: Default::default(),
        require_tls: false,
    };
    store
        .enqueue(&entry, &signed)
        .await
        .map_err(|e| e.to_string())?;
    wake.notify_one();
    Ok(())
}

/// Base64 in lines of 76 characters, each ended by CRLF (RFC 2045 §6.8).
pub(crate) fn base64_lines(data: &[u8]) -> String {
    let b64 = openssl::base64::encode_block(data);
    let mut wrapped = String::new();
    for chunk in b64.as_bytes().chunks(76) {
        wrapped.push_str(&String::from_utf8_lossy(chunk));
        wrapped.push_str("\r\n");
    }
    wrapped
}

pub(crate) fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data)?;
    e.finish()
}

/// The report mail (RFC 8460 §5.3), unsigned.
pub fn report_message(
    cfg: &ReporterConfig,
    to: &str,
    domain: &str,
    report_id: &str,
    filename: &str,
    gz: &[u8],
) -> Vec<u8> {
    let boundary = format!("kurier-tlsrpt-{:016x}", unique_stamp());
    let now = kurier_store::now();
    let wrapped = base64_lines(gz);
    format!(
        "From: <{from}>\r\n\
         To: <{to}>\r\n\
         Subject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>\r\n\
         Date: {date}\r\n\
         Message-ID: <tlsrpt.{stamp:x}@{host}>\r\n\
         TLS-Report-Domain: {domain}\r\n\
         TLS-Report-Submitter: {submitter}\r\n\
         TLS-Required: No\r\n\
         Auto-Submitted: auto-generated\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n\tboundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         This is an aggregate TLS report (RFC 8460) from {org} for {domain}.\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: application/tlsrpt+gzip\r\n\
         Content-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment;\r\n\tfilename=\"{filename}\"\r\n\
         \r\n\
         {wrapped}\
         --{boundary}--\r\n",
        from = cfg.from,
        submitter = cfg.submitter,
        date = rfc5322_date(now),
        stamp = unique_stamp(),
        host = cfg.hostname,
        org = cfg.organization,
    )
    .into_bytes()
}
