//! TLSRPT reports others send us (RFC 8460 §5.3; TR-03108 RPT-2, RPT-3): the report mail is
//! accepted only with a valid DKIM signature of the reporting domain (`TLS-Report-Submitter`),
//! the `application/tlsrpt+gzip` or `+json` attachment is decompressed within a size cap (gzip
//! bombs end there), read leniently (`policy::tlsrpt::parse_report`) and stored.

use std::io::Read;
use std::sync::Arc;

use kurier_dns::Resolver;
use kurier_policy::tlsrpt::{MAX_REPORT_BYTES, parse_report};
use kurier_store::Store;
use mail_parser::{MessageParser, MimeHeaders};

/// What became of a report mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// Stored: report domain, submitter, store id, and the failed sessions it reports.
    Stored {
        domain: String,
        submitter: String,
        id: i64,
        failed: u64,
    },
    /// Dropped, with the reason: not a valid, signed report (retrying would not help).
    Dropped(String),
    /// Not now: the signing key could not be looked up, or the store failed. The sender
    /// should try again (451), as for any mail we cannot take right now.
    Later(String),
}

pub struct ReportIntake {
    store: Arc<dyn Store>,
    resolver: Resolver,
}

impl ReportIntake {
    pub fn new(store: Arc<dyn Store>, resolver: Resolver) -> Self {
        ReportIntake { store, resolver }
    }

    pub async fn take(&self, message: &[u8]) -> Intake {
        match self.try_take(message).await {
            Ok(i) => i,
            Err(why) => Intake::Dropped(why),
        }
    }

    async fn try_take(&self, message: &[u8]) -> Result<Intake, String> {
        let parsed = MessageParser::default()
            .parse(message)
            .ok_or("not a mail message")?;
        let submitter = parsed
            .header_raw("TLS-Report-Submitter")
            .map(|s| s.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .ok_or("no TLS-Report-Submitter header")?;
        // RPT-2: a valid signature by the reporting domain (or a domain above it).
        let mut why = String::from("no DKIM signature");
        let mut verified = false;
        let mut temporary = None;
        for sig in kurier_dkim::verify::signatures(message) {
            if !(submitter == sig.domain || submitter.ends_with(&format!(".{}", sig.domain))) {
                why = format!("signed by {}, not by {submitter}", sig.domain);
                continue;
            }
            let record = match self.resolver.txt(&sig.key_name()).await {
                Ok(a) if !a.records.is_empty() => a.records.join(""),
                Ok(_) => {
                    why = format!("no key record at {}", sig.key_name());
                    continue;
                }
                Err(e) => {
                    why = format!("{}: {e}", sig.key_name());
                    // No answer now is not "no key": ask again later (bogus stays bogus).
                    if matches!(e, kurier_dns::DnsError::Indeterminate(..)) {
                        temporary = Some(why.clone());
                    }
                    continue;
                }
            };
            match kurier_dkim::verify::verify(message, &sig, &record) {
                Ok(()) => {
                    verified = true;
                    break;
                }
                Err(e) => why = e.to_string(),
            }
        }
        if !verified {
            if let Some(why) = temporary {
                return Ok(Intake::Later(format!("DKIM: {why}")));
            }
            return Err(format!("DKIM: {why}"));
        }
        let part = parsed
            .parts
            .iter()
            .find(|p| {
                p.content_type().is_some_and(|ct| {
                    ct.ctype().eq_ignore_ascii_case("application")
                        && ct.subtype().is_some_and(|s| {
                            let s = s.to_ascii_lowercase();
                            s == "tlsrpt+gzip" || s == "tlsrpt+json" || s == "gzip"
                        })
                })
            })
            .ok_or("no application/tlsrpt+gzip or +json part")?;
        let raw = part.contents();
        let json = if raw.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(raw)
                .take(MAX_REPORT_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("gzip: {e}"))?;
            if out.len() > MAX_REPORT_BYTES {
                return Err("the report decompresses to more than the limit".into());
            }
            out
        } else {
            raw.to_vec()
        };
        let report = parse_report(&json).map_err(|e| e.to_string())?;
        let domain = report
            .policies
            .first()
            .map(|p| p.policy_domain.clone())
            .filter(|d| !d.is_empty())
            .ok_or("the report names no policy domain")?;
        let id = match self.store.store_report(&domain, &submitter, &json).await {
            Ok(id) => id,
            Err(e) => return Ok(Intake::Later(format!("cannot store the report: {e}"))),
        };
        Ok(Intake::Stored {
            failed: report.policies.iter().map(|p| p.failed).sum(),
            domain,
            submitter,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signed report whose key cannot be looked up now is not dropped: it comes back later.
    #[tokio::test]
    async fn a_key_lookup_that_fails_now_is_later_not_dropped() {
        let path = std::env::temp_dir().join(format!("kurier-intake-{}.db", std::process::id()));
        let store = kurier_store::open(&format!("sqlite:{}", path.display()))
            .await
            .unwrap();
        // Nobody answers there: every lookup is indeterminate.
        let resolver = Resolver::new(&kurier_dns::DnsConfig {
            mode: kurier_dns::DnssecMode::Off,
            upstream: vec!["127.0.0.1:9".parse().unwrap()],
            timeout: std::time::Duration::from_millis(300),
            ..kurier_dns::DnsConfig::default()
        })
        .unwrap();
        let intake = ReportIntake::new(store, resolver);
        let mail = b"From: <tlsrpt@a.test>\r\nTLS-Report-Domain: b.test\r\nTLS-Report-Submitter: a.test\r\n\
            Subject: Report Domain: b.test\r\nMIME-Version: 1.0\r\n\
            Content-Type: application/tlsrpt+json\r\n\r\n{}\r\n"
            .to_vec();
        let (key, _) =
            kurier_dkim::DkimKey::generate("a.test", "k", kurier_dkim::Algorithm::Ed25519).unwrap();
        let signed = [
            key.sign(&mail, 1_800_000_000).unwrap().as_bytes(),
            &mail[..],
        ]
        .concat();
        assert!(
            matches!(intake.take(&signed).await, Intake::Later(why) if why.contains("k._domainkey.a.test"))
        );
        assert!(
            matches!(intake.take(&mail).await, Intake::Dropped(why) if why.contains("no DKIM signature"))
        );
        let _ = std::fs::remove_file(&path);
    }
}
