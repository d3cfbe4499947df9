//! `kurier dns DOMAIN`: every record a hosted domain should publish (TR-03108 DANE-1/2, STS-1,
//! RPT-1, MUA-4, and the usual MX, SPF, DMARC, DKIM), computed from the live configuration and
//! certificates, as zone-file lines or JSON.

use anyhow::Context;
use kurier_tls::tlsa::{Matching, Selector, TlsaRecord, Usage};

use crate::ConfigArgs;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DnsFormat {
    Zone,
    Json,
}

/// One record (or a comment for the operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Record {
        name: String,
        ttl: Option<u32>,
        rtype: &'static str,
        value: String,
    },
    Note(String),
}

fn rec(name: String, rtype: &'static str, value: impl Into<String>) -> Line {
    Line::Record {
        name,
        ttl: None,
        rtype,
        value: value.into(),
    }
}

/// What `kurier dns DOMAIN --update` does instead of printing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Update {
    No,
    Send,
    DryRun,
}

pub async fn run(
    args: ConfigArgs,
    domain: String,
    format: DnsFormat,
    update: Update,
) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let store = crate::admin::open(&args).await?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    store.domain_settings(&domain).await.map_err(|_| {
        anyhow::anyhow!("{domain} is not hosted here (add it with: kurier domain add {domain})")
    })?;
    let out = lines(&cfg, &*store, &domain).await?;
    if update != Update::No {
        let publisher = crate::dns_update::Publisher::from_config(&cfg)?.ok_or_else(|| {
            anyhow::anyhow!("[dns_update] is not enabled: set its server, zones and key_file (see kurier.example.toml)")
        })?;
        let dry_run = update == Update::DryRun || cfg.dns_update.dry_run;
        print!("{}", publisher.publish(&out, dry_run).await?);
        return Ok(());
    }
    match format {
        DnsFormat::Zone => println!("{}", zone(&out)),
        DnsFormat::Json => println!("{}", serde_json::to_string_pretty(&json(&out))?),
    }
    Ok(())
}

/// Every record `domain` should publish, with notes for the operator.
pub async fn lines(
    cfg: &kurier_config::Config,
    store: &dyn kurier_store::Store,
    domain: &str,
) -> anyhow::Result<Vec<Line>> {
    let host = cfg.server.hostname.to_ascii_lowercase();
    let clients = crate::hosting::client_services(cfg);
    let mut out = vec![
        Line::Note(format!(
            "DNS records for {domain}. Sign the zones with DNSSEC: DANE needs it (TR-03108 DANE-1)."
        )),
        rec(format!("{domain}."), "MX", format!("10 {host}.")),
    ];
    // The MX host's addresses: those the MX listens on, when they are specific.
    let mut specific = Vec::new();
    for a in &cfg.smtp.listen {
        let ip = a.0.ip();
        if !ip.is_unspecified() && !specific.contains(&ip) {
            specific.push(ip);
        }
    }
    if specific.is_empty() {
        out.push(Line::Note(format!(
            "{host} needs A (and AAAA) records with this machine's public addresses (smtp.listen names none)"
        )));
    }
    for ip in specific {
        let rtype = if ip.is_ipv4() { "A" } else { "AAAA" };
        out.push(rec(format!("{host}."), rtype, ip.to_string()));
    }

    // DANE (TR-03108 DANE-1, DANE-2; RFC 7671 §8.1): 3 1 1 of our key and 2 1 1 of its issuer,
    // so that a renewal by the same CA never breaks delivery; a short TTL for rollovers. The
    // same set for port 25 and the client ports (RFC 7673).
    let mut tlsa = Vec::new();
    if cfg.acme.enabled {
        let acme = crate::acme::tlsa_records(cfg)?;
        if acme.is_empty() {
            out.push(Line::Note(
                "the ACME key is made at the first `kurier serve`; run this again then for its TLSA record".into(),
            ));
        }
        if acme.len() > 1 {
            out.push(Line::Note(
                "a key change is under way: publish both 3 1 1 records; Kurier switches once the second is seen, and tells you when the first can go".into(),
            ));
        }
        out.push(Line::Note(
            "no 2 1 1 for the ACME CA: it may sign with another intermediate at any renewal (RFC 7671 §8)".into(),
        ));
        tlsa.extend(acme);
    }
    for c in &cfg.tls.certificates {
        let pem = std::fs::read(&c.cert)
            .with_context(|| format!("cannot read the certificate {}", c.cert.display()))?;
        let chain = openssl::x509::X509::stack_from_pem(&pem)
            .with_context(|| format!("{} holds no PEM certificate", c.cert.display()))?;
        if let Some(leaf) = chain.first() {
            tlsa.push(
                TlsaRecord::for_certificate(leaf, Usage::DaneEe, Selector::Spki, Matching::Sha256)?
                    .rdata(),
            );
        }
        if let Some(next) = &c.next_key {
            let pem = std::fs::read(next).with_context(|| {
                format!("cannot read tls.certificate.next_key {}", next.display())
            })?;
            let key = openssl::pkey::PKey::private_key_from_pem(&pem).with_context(|| {
                format!(
                    "tls.certificate.next_key {} holds no PEM private key",
                    next.display()
                )
            })?;
            tlsa.push(TlsaRecord::dane_ee_for_key(&key)?.rdata());
        }
        if let Some(issuer) = chain.get(1) {
            tlsa.push(
                TlsaRecord::for_certificate(
                    issuer,
                    Usage::DaneTa,
                    Selector::Spki,
                    Matching::Sha256,
                )?
                .rdata(),
            );
        }
    }
    let ports = crate::hosting::dane_ports(cfg);
    for port in ports {
        for r in &tlsa {
            out.push(Line::Record {
                name: format!("{}.", kurier_policy::dane::tlsa_name(&host, port)),
                ttl: Some(cfg.dns_update.tlsa_ttl),
                rtype: "TLSA",
                value: r.clone(),
            });
        }
    }

    if let Some(policy) = crate::hosting::sts_policy(cfg) {
        let hosting = kurier_web::StsHosting::new(&policy);
        out.push(Line::Note(format!("MTA-STS (RFC 8461): the policy is served at https://mta-sts.{domain}/.well-known/mta-sts.txt; the certificate must name mta-sts.{domain}")));
        out.push(rec(
            format!("_mta-sts.{domain}."),
            "TXT",
            format!("v=STSv1; id={}", hosting.id),
        ));
        out.push(rec(
            format!("mta-sts.{domain}."),
            "CNAME",
            format!("{host}."),
        ));
    }
    if let Some(rua) = cfg.tlsrpt.reporting_address_for(domain) {
        out.push(rec(
            format!("_smtp._tls.{domain}."),
            "TXT",
            format!("v=TLSRPTv1; rua=mailto:{rua}"),
        ));
    }
    if let Some(c) = &clients {
        // RFC 6186 / RFC 8314 §5.1: implicit TLS first (priority 0), STARTTLS after (10);
        // a service not offered points at ".".
        out.push(Line::Note(format!("mail clients (RFC 6186, RFC 8314), autoconfig and Autodiscover; the certificate must name autoconfig.{domain} and autodiscover.{domain}")));
        let target = c.hostname.trim_end_matches('.');
        for (service, prio, port) in [
            ("_submissions._tcp", 0, c.submissions),
            ("_imaps._tcp", 0, c.imaps),
            ("_pop3s._tcp", 0, c.pop3s),
            ("_submission._tcp", 10, c.submission_starttls),
            ("_imap._tcp", 10, c.imap_starttls),
            ("_pop3._tcp", 10, c.pop3_starttls),
        ] {
            let value = match port {
                Some(p) => format!("{prio} 1 {p} {target}."),
                None => "0 0 0 .".to_string(),
            };
            out.push(rec(format!("{service}.{domain}."), "SRV", value));
        }
        // RFC 5804 §1.8: where clients find ManageSieve, when it listens.
        if let Some(l) = cfg.managesieve.listen.first() {
            out.push(rec(
                format!("_sieve._tcp.{domain}."),
                "SRV",
                format!("0 1 {} {target}.", l.0.port()),
            ));
        }
        out.push(rec(
            format!("autoconfig.{domain}."),
            "CNAME",
            format!("{host}."),
        ));
        out.push(rec(
            format!("autodiscover.{domain}."),
            "CNAME",
            format!("{host}."),
        ));
    }
    out.push(Line::Note("suggestions: SPF and DMARC".into()));
    out.push(rec(format!("{domain}."), "TXT", "v=spf1 mx -all"));
    // AUTH-5: with reports received here, the record asks for them (RFC 7489 §7.2); an
    // address in another domain must say it takes them (§7.1).
    let rua = cfg.sender_auth.reporting_address_for(domain);
    let dmarc = match &rua {
        Some(a) => format!("v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:{a}"),
        None => "v=DMARC1; p=reject; adkim=s; aspf=s".to_string(),
    };
    out.push(rec(format!("_dmarc.{domain}."), "TXT", dmarc));
    if let Some((_, rua_domain)) = rua.as_deref().and_then(|a| a.rsplit_once('@'))
        && !rua_domain.eq_ignore_ascii_case(domain)
    {
        out.push(rec(
            format!(
                "{domain}._report._dmarc.{}.",
                rua_domain.to_ascii_lowercase()
            ),
            "TXT",
            "v=DMARC1",
        ));
    }
    let keys = crate::admin::dkim_keys(store, &cfg.server.data_dir, domain).await?;
    if keys.is_empty() {
        out.push(Line::Note(format!(
            "no DKIM key yet: kurier dkim generate {domain}"
        )));
    }
    for key in keys {
        let (name, value) = key.dns_record()?;
        out.push(rec(name, "TXT", value));
    }
    Ok(out)
}

fn zone(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| match l {
            Line::Note(n) => format!("; {n}"),
            Line::Record {
                name,
                ttl,
                rtype: "TXT",
                value,
            } => {
                let txt = crate::admin::txt_record(name, value);
                match ttl {
                    Some(t) => txt.replacen(" IN ", &format!(" {t} IN "), 1),
                    None => txt,
                }
            }
            Line::Record {
                name,
                ttl,
                rtype,
                value,
            } => match ttl {
                Some(t) => format!("{name} {t} IN {rtype} {value}"),
                None => format!("{name} IN {rtype} {value}"),
            },
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn json(lines: &[Line]) -> serde_json::Value {
    let records: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Record {
                name,
                ttl,
                rtype,
                value,
            } => {
                Some(serde_json::json!({ "name": name, "ttl": ttl, "type": rtype, "value": value }))
            }
            Line::Note(_) => None,
        })
        .collect();
    let notes: Vec<&String> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Note(n) => Some(n),
            _ => None,
        })
        .collect();
    serde_json::json!({ "records": records, "notes": notes })
}
