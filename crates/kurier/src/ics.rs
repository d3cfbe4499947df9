//! `kurier tls-profile`: the Implementation Conformance Statement of this installation
//! (TR-03108 DNS-5, TR-03108-P §4.5). Every channel of the live configuration is listed with
//! the OpenSSL context that serves it (`kurier_tls::ics` reads suites back from the context),
//! then the outbound clients, DNSSEC, DANE and TLSRPT — so that a scan of any port finds
//! exactly what this statement declares.

use std::fmt::Write as _;

use kurier_config::{Config, ListenAddr};
use kurier_tls::ics::Ics;
use kurier_tls::{ClientProfile, TlsAcceptor};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Statement {
    /// One entry per TLS context: its channels, versions, suites, groups, signatures,
    /// certificates and features.
    pub tls: Vec<Ics>,
    /// Listeners without TLS (HTTP that only redirects to HTTPS).
    pub plain: Vec<String>,
    pub dnssec: DnssecStatement,
    /// The DANE parameters the outbound client accepts (RFC 7672 §3.1).
    pub dane: Vec<String>,
    /// TLSRPT's `organization-name` (RPT-11).
    pub tlsrpt_organization: String,
}

#[derive(Debug, Serialize)]
pub struct DnssecStatement {
    pub validator: String,
    pub algorithms_validated: Vec<String>,
    /// Zones signed only with these are insecure (RFC 6840 §5.2).
    pub algorithms_not_supported: Vec<String>,
    /// How long one DNS question may take (`dns.timeout_secs`).
    pub timeout_secs: u64,
}

/// The statement for `cfg`: `strict` serves HTTPS, submission, IMAP, POP3 and — unless it has
/// its own endpoint `mx` — port 25.
pub fn collect(
    cfg: &Config,
    strict: &TlsAcceptor,
    mx: Option<&TlsAcceptor>,
) -> anyhow::Result<Statement> {
    let list = |addrs: &[ListenAddr], what: &str| -> Vec<String> {
        addrs.iter().map(|a| format!("{what} {a}")).collect()
    };
    let mut strict_channels = list(&cfg.web.listen, "HTTPS");
    for (addrs, what) in [
        (&cfg.submission.listen_implicit, "submission (implicit TLS)"),
        (&cfg.submission.listen_starttls, "submission (STARTTLS)"),
        (&cfg.imap.listen_implicit, "IMAP (implicit TLS)"),
        (&cfg.imap.listen_starttls, "IMAP (STARTTLS)"),
        (&cfg.pop3.listen_implicit, "POP3 (implicit TLS)"),
        (&cfg.pop3.listen_starttls, "POP3 (STARTTLS)"),
    ] {
        strict_channels.extend(list(addrs, what));
    }
    let mx_channels = list(&cfg.smtp.listen, "SMTP MX (STARTTLS)");
    let mut tls = Vec::new();
    match mx {
        Some(mx) => {
            tls.push(kurier_tls::ics::describe(strict, strict_channels));
            tls.push(kurier_tls::ics::describe(mx, mx_channels));
        }
        None => {
            strict_channels.extend(mx_channels);
            tls.push(kurier_tls::ics::describe(strict, strict_channels));
        }
    }
    for profile in [ClientProfile::Strict, ClientProfile::Legacy] {
        tls.push(kurier_tls::ics::describe_client(profile)?);
    }
    let names = |validated: bool| {
        kurier_dns::DNSSEC_ALGORITHMS
            .iter()
            .filter(|a| a.2 == validated)
            .map(|(n, name, _)| format!("{n} {name}"))
            .collect()
    };
    let validator = match cfg.dns.dnssec {
        kurier_config::DnssecMode::Validate => "libunbound, in-process",
        kurier_config::DnssecMode::TrustAd => "the AD bit of the local resolver (dns.upstream)",
        kurier_config::DnssecMode::Off => "none: dns.dnssec = \"off\" (not TR-03108 compliant)",
    };
    Ok(Statement {
        tls,
        plain: list(&cfg.web.listen_http, "HTTP (redirects to HTTPS, serves nothing)"),
        dnssec: DnssecStatement {
            validator: validator.into(),
            algorithms_validated: names(true),
            algorithms_not_supported: names(false),
            timeout_secs: cfg.dns.timeout_secs,
        },
        dane: vec![
            "usages: DANE-TA(2), DANE-EE(3); PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (RFC 7672 §3.1.3)".into(),
            "selectors: Cert(0), SPKI(1)".into(),
            "matching types: Full(0), SHA2-256(1), SHA2-512(2); the strongest present wins (RFC 7671 §9)".into(),
        ],
        tlsrpt_organization: crate::outbound::report_organization(cfg),
    })
}

impl Statement {
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for ics in &self.tls {
            let _ = writeln!(s, "{}", ics.to_text());
        }
        for p in &self.plain {
            let _ = writeln!(s, "no TLS: {p}");
        }
        let d = &self.dnssec;
        let _ = writeln!(
            s,
            "\nDNSSEC validation: {}\n  algorithms validated: {}\n  not supported (zones signed only with these are insecure, RFC 6840 §5.2): {}\n  DNS timeout: {} s",
            d.validator,
            d.algorithms_validated.join(", "),
            d.algorithms_not_supported.join(", "),
            d.timeout_secs
        );
        let _ = writeln!(s, "DANE (outbound):");
        for line in &self.dane {
            let _ = writeln!(s, "  {line}");
        }
        let _ = writeln!(s, "TLSRPT organization-name: {}", self.tlsrpt_organization);
        s
    }

    /// A self-contained page for a test lab's records: the same facts as `to_text`.
    pub fn to_html(&self) -> String {
        let mut s = String::from(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Kurier ICS</title>\
             <style>body{font-family:sans-serif}table{border-collapse:collapse;margin-bottom:2em}\
             td,th{border:1px solid #999;padding:.2em .5em;text-align:left;vertical-align:top}</style>\
             </head><body>\n<h1>Implementation Conformance Statement (TR-03108 DNS-5)</h1>\n",
        );
        let row = |s: &mut String, k: &str, v: &str| {
            let _ = writeln!(s, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
        };
        for ics in &self.tls {
            let _ = writeln!(s, "<h2>TLS profile {}</h2>\n<table>", esc(ics.profile));
            row(&mut s, "channels", &ics.channels.join("\n"));
            row(&mut s, "versions", &ics.versions.join(", "));
            let suites = |list: &[kurier_tls::ics::IcsSuite]| {
                list.iter()
                    .map(|c| format!("{} {}", c.iana, c.name))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            row(&mut s, "TLS 1.2 suites", &suites(&ics.tls12_suites));
            row(&mut s, "TLS 1.3 suites", &suites(&ics.tls13_suites));
            row(&mut s, "groups", &ics.groups.join(", "));
            row(
                &mut s,
                "signature algorithms",
                &ics.signature_algorithms.join(", "),
            );
            for c in &ics.certificates {
                row(&mut s, "certificate", &c.summary());
            }
            for (k, v) in &ics.features {
                row(&mut s, k, v);
            }
            s.push_str("</table>\n");
        }
        s.push_str("<h2>Other</h2>\n<table>\n");
        for p in &self.plain {
            row(&mut s, "no TLS", p);
        }
        let d = &self.dnssec;
        row(&mut s, "DNSSEC validation", &d.validator);
        row(
            &mut s,
            "algorithms validated",
            &d.algorithms_validated.join(", "),
        );
        row(
            &mut s,
            "algorithms not supported",
            &d.algorithms_not_supported.join(", "),
        );
        row(&mut s, "DNS timeout", &format!("{} s", d.timeout_secs));
        row(&mut s, "DANE (outbound)", &self.dane.join("\n"));
        row(
            &mut s,
            "TLSRPT organization-name",
            &self.tlsrpt_organization,
        );
        s.push_str("</table>\n</body></html>\n");
        s
    }
}

/// HTML text escaping; line breaks become `<br>`.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\n', "<br>")
}
