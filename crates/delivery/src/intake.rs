//! Reports others send us. TLSRPT (RFC 8460 §5.3; TR-03108 RPT-2, RPT-3): the report mail is
//! accepted only with a valid DKIM signature of the reporting domain (`TLS-Report-Submitter`),
//! the `application/tlsrpt+gzip` or `+json` attachment is decompressed within a size cap (gzip
//! bombs end there), read leniently (`policy::tlsrpt::parse_report`) and stored. DMARC
//! aggregate reports (RFC 7489 §7.2.1.1; TR-03182): accepted only when the report mail itself
//! passed DMARC for its From domain (the reporter) and is about a domain hosted here; the
//! gzip, zip (its first file) or XML attachment is decompressed within a cap and read with a
//! real XML parser (`mailauth::aggregate`).

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
    /// A DMARC report was stored: the domain it is about, the reporter, the store id, the
    /// messages it counts and those of them that failed DMARC.
    StoredDmarc {
        domain: String,
        reporter: String,
        id: i64,
        messages: u64,
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

    /// Reads a report mail: TLSRPT if it names a `TLS-Report-Submitter`, else DMARC.
    /// `dmarc_passed`: the From domains for which the mail passed DMARC here.
    pub async fn take(&self, message: &[u8], dmarc_passed: &[String]) -> Intake {
        let outcome = match MessageParser::default().parse(message) {
            None => Err("not a mail message".to_string()),
            Some(parsed) => match parsed.header_raw("TLS-Report-Submitter") {
                Some(submitter) => self.try_take(message, &parsed, submitter).await,
                None => self.take_dmarc(&parsed, dmarc_passed).await,
            },
        };
        outcome.unwrap_or_else(Intake::Dropped)
    }

    async fn take_dmarc(
        &self,
        parsed: &mail_parser::Message<'_>,
        dmarc_passed: &[String],
    ) -> Result<Intake, String> {
        let reporter = dmarc_passed.first().ok_or(
            "no TLS-Report-Submitter, and the mail did not pass DMARC: not a report we trust",
        )?;
        let part = parsed
            .parts
            .iter()
            .find(|p| {
                p.content_type().is_some_and(|ct| {
                    let sub = ct.subtype().unwrap_or_default().to_ascii_lowercase();
                    match ct.ctype().to_ascii_lowercase().as_str() {
                        "application" => ["gzip", "x-gzip", "xml", "zip", "x-zip-compressed"]
                            .contains(&sub.as_str()),
                        "text" => sub == "xml",
                        _ => false,
                    }
                })
            })
            .ok_or("no application/gzip or XML part")?;
        let (raw, max) = (
            part.contents(),
            kurier_mailauth::aggregate::MAX_REPORT_BYTES,
        );
        let xml = if raw.starts_with(b"PK\x03\x04") {
            unzip_within(raw, max)?
        } else {
            gunzip_within(raw, max)?
        };
        let feedback =
            kurier_mailauth::aggregate::Feedback::parse(&xml).map_err(|e| e.to_string())?;
        let domain = feedback.policy.domain.clone();
        match self.store.domain_settings(&domain).await {
            Ok(_) => {}
            Err(kurier_store::StoreError::NotFound(_)) => {
                return Err(format!(
                    "the report is about {domain}, which is not hosted here"
                ));
            }
            Err(e) => return Ok(Intake::Later(format!("cannot look up {domain}: {e}"))),
        }
        let id = match self.store.store_dmarc_report(&domain, reporter, &xml).await {
            Ok(id) => id,
            Err(e) => return Ok(Intake::Later(format!("cannot store the report: {e}"))),
        };
        let (messages, passed) = feedback.totals();
        Ok(Intake::StoredDmarc {
            domain,
            reporter: reporter.clone(),
            id,
            messages,
            failed: messages - passed,
        })
    }

    async fn try_take(
        &self,
        message: &[u8],
        parsed: &mail_parser::Message<'_>,
        submitter: &str,
    ) -> Result<Intake, String> {
        let submitter = Some(submitter.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|s| !s.is_empty())
            .ok_or("an empty TLS-Report-Submitter header")?;
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
        let json = gunzip_within(part.contents(), MAX_REPORT_BYTES)?;
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

/// `raw` itself, or decompressed if it is gzip, within `max` bytes (a gzip bomb ends there).
fn gunzip_within(raw: &[u8], max: usize) -> Result<Vec<u8>, String> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("gzip: {e}"))?;
    if out.len() > max {
        return Err("the report decompresses to more than the limit".into());
    }
    Ok(out)
}

/// The first file of a zip archive (RFC 7489 §7.2.1.1 allows zip; one file is what reporters
/// send), inflated within `max` bytes.
fn unzip_within(raw: &[u8], max: usize) -> Result<Vec<u8>, String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(raw)).map_err(|e| format!("zip: {e}"))?;
    if archive.is_empty() {
        return Err("an empty zip archive".into());
    }
    let file = archive.by_index(0).map_err(|e| format!("zip: {e}"))?;
    let mut out = Vec::new();
    file.take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("zip: {e}"))?;
    if out.len() > max {
        return Err("the report decompresses to more than the limit".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hostile attachments: a gzip or zip bomb ends at the cap, broken archives are refused.
    #[test]
    fn bombs_end_at_the_cap() {
        use std::io::Write;
        let zeros = vec![0u8; 1 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 8192);
        assert!(
            gunzip_within(&gz, 4096)
                .unwrap_err()
                .contains("more than the limit")
        );
        assert_eq!(gunzip_within(&gz, 1 << 20).unwrap().len(), 1 << 20);
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        zip.start_file("r.xml", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(&zeros).unwrap();
        let zip = zip.finish().unwrap().into_inner();
        assert!(zip.len() < 8192);
        assert!(
            unzip_within(&zip, 4096)
                .unwrap_err()
                .contains("more than the limit")
        );
        assert_eq!(unzip_within(&zip, 1 << 20).unwrap().len(), 1 << 20);
        assert!(unzip_within(b"PK\x03\x04 not really a zip", 4096).is_err());
        assert!(gunzip_within(&[0x1f, 0x8b, 8, 0, 1, 2], 4096).is_err());
    }

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
            matches!(intake.take(&signed, &[]).await, Intake::Later(why) if why.contains("k._domainkey.a.test"))
        );
        assert!(
            matches!(intake.take(&mail, &[]).await, Intake::Dropped(why) if why.contains("no DKIM signature"))
        );
        let _ = std::fs::remove_file(&path);
    }
}
