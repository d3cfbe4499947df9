//! # kurier-audit — `kurier check <domain>`: TR-03108 v2.0 checked over the network
//!
//! Owns the audit of any domain, ours or someone else's: the DNS (DNSSEC of the domain and MX
//! zones, DNS-2; of every policy record found, DNS-3), each MX on port 25 (STARTTLS offered,
//! SMTP-1; the certificate, CERT-1 and CERT-3; TLSA published, usable and matching the chain
//! actually served, DANE-1/3/5),
//! MTA-STS (record, policy, policy host certificate, MX coverage; STS-1..STS-3), the TLSRPT
//! record (RPT-1) and the client SRV records (MUA-4); the sender-authentication records of BSI
//! TR-03182 (`records`: SPF-1, DMARC-1, DKIM-1). Each finding names its requirement, says
//! pass, fail, warn or not applicable, shows what was seen and how to fix it; the seven criteria
//! of the BSI e-mail checker sum them up (`CRITERIA`).
//!
//! The TLS configuration of the MX (port 25) and of the client services the SRV records name is
//! probed actively (`tls_scan`: versions, forbidden groups and suites, brainpool; TLS-1, TLS-2,
//! TLS-5; `tls_scan::enumerate` offers every version, suite, group and signature algorithm
//! alone — the ICS as scanned, DNS-5), and what autoconfig and Autodiscover tell clients
//! (MUA-5, MUA-6). Output as text, JSON or one HTML page.
//!
//! Must not: trust what it checks — every lookup goes through the validating resolver, every
//! certificate is looked at as sent.

#![forbid(unsafe_code)]

pub mod evidence;
pub mod records;
pub mod tls_scan;

use std::net::SocketAddr;
use std::time::Duration;

use kurier_delivery::attempt::sts_check as route_sts_check;
use kurier_delivery::{https, route};
use kurier_dns::{DnsError, DnssecState, Resolver};
use kurier_policy::{sts, tlsrpt};
use kurier_smtp::SmtpClient;
use kurier_tls::{ClientTls, PeerCheck};
use openssl::x509::X509;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Warn,
    NotApplicable,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "FAIL",
            Status::Warn => "warn",
            Status::NotApplicable => "n/a",
        }
    }
}

/// One checked requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// A requirement ID of docs/requirements.md such as `DANE-1`.
    pub id: &'static str,
    pub status: Status,
    /// What was checked, e.g. "TLSA for mx.example.org".
    pub subject: String,
    /// What was seen.
    pub evidence: String,
    /// What to do (empty when it passed).
    pub fix: String,
}

/// The seven criteria of the BSI e-mail checker (SPF, DKIM, DMARC, DNSSEC, DANE, TLS,
/// MTA-STS) and the requirement IDs each one sums up.
pub const CRITERIA: [(&str, &[&str]); 7] = [
    ("SPF", &["SPF-1"]),
    ("DKIM", &["DKIM-1"]),
    ("DMARC", &["DMARC-1"]),
    ("DNSSEC", &["DNS-2", "DNS-3", "DNS-4"]),
    ("DANE", &["DANE-1", "DANE-3", "DANE-5"]),
    (
        "TLS",
        &["SMTP-1", "CERT-1", "TLS-1", "TLS-2", "TLS-5", "TLS-7"],
    ),
    ("MTA-STS", &["STS-1", "STS-2", "STS-3"]),
];

/// The version of the `--json` document (docs/check-json.md); raised when a field changes
/// meaning or goes away, not when one is added.
pub const JSON_VERSION: u32 = 1;

/// The result for one domain.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub domain: String,
    pub findings: Vec<Finding>,
    /// What each TLS endpoint accepted (the ICS tables of DNS-5).
    pub ics: Vec<tls_scan::Enumeration>,
    /// When and through what the check ran (the evidence an auditor needs).
    pub context: Context,
    /// What each MX handshake showed, raw.
    pub probes: Vec<evidence::Probe>,
}

/// The circumstances of a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// UTC, RFC 3339.
    pub checked_at: String,
    /// How lookups were validated, e.g. "libunbound with trust anchor …, upstream …".
    pub resolver: String,
}

impl Audit {
    fn add(
        &mut self,
        id: &'static str,
        status: Status,
        subject: String,
        evidence: String,
        fix: &str,
    ) {
        self.findings.push(Finding {
            id,
            status,
            subject,
            evidence,
            fix: if status == Status::Pass {
                String::new()
            } else {
                fix.to_string()
            },
        });
    }

    /// Pass with `pass_evidence` when nothing is wrong, else Fail naming every problem.
    fn verdict(
        &mut self,
        id: &'static str,
        subject: String,
        problems: Vec<String>,
        pass_evidence: String,
        fix: &str,
    ) {
        if problems.is_empty() {
            self.add(id, Status::Pass, subject, pass_evidence, fix);
        } else {
            self.add(id, Status::Fail, subject, problems.join("; "), fix);
        }
    }

    /// DNS-3: a policy record found must come from a signed zone.
    fn signed(&mut self, name: String, state: DnssecState, found: bool) {
        if found {
            self.add(
                "DNS-3",
                if state == DnssecState::Secure {
                    Status::Pass
                } else {
                    Status::Fail
                },
                name,
                state_word(state).to_string(),
                "publish the record in a DNSSEC-signed zone",
            );
        }
    }

    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.status == Status::Fail)
    }

    /// Each of the seven criteria: fail if a finding behind it fails, warn if one warns,
    /// pass if some pass, n/a when nothing behind it was checked.
    pub fn criteria(&self) -> Vec<(&'static str, &'static [&'static str], Status)> {
        CRITERIA
            .iter()
            .map(|(name, ids)| {
                let of: Vec<Status> = self
                    .findings
                    .iter()
                    .filter(|f| ids.contains(&f.id))
                    .map(|f| f.status)
                    .collect();
                let status = [Status::Fail, Status::Warn, Status::Pass]
                    .into_iter()
                    .find(|s| of.contains(s))
                    .unwrap_or(Status::NotApplicable);
                (*name, *ids, status)
            })
            .collect()
    }

    /// For a terminal: one line per finding, then a summary.
    pub fn text(&self) -> String {
        let mut out = format!(
            "TR-03108 / TR-03182 check of {} at {}\nresolver: {}\n\n",
            self.domain, self.context.checked_at, self.context.resolver
        );
        for (name, ids, status) in self.criteria() {
            out.push_str(&format!(
                "{:<5} {name:<8} ({})\n",
                status.word(),
                ids.join(", ")
            ));
        }
        out.push('\n');
        for f in &self.findings {
            out.push_str(&format!(
                "{:<5} {:<7} {}: {}\n",
                f.status.word(),
                f.id,
                f.subject,
                f.evidence
            ));
            if !f.fix.is_empty() {
                out.push_str(&format!("              fix: {}\n", f.fix));
            }
        }
        let count = |s: Status| self.findings.iter().filter(|f| f.status == s).count();
        out.push_str(&format!(
            "\n{} passed, {} failed, {} warnings, {} not applicable\n",
            count(Status::Pass),
            count(Status::Fail),
            count(Status::Warn),
            count(Status::NotApplicable)
        ));
        out
    }

    /// One self-contained page to hand to an auditor.
    pub fn html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut rows = String::new();
        for f in &self.findings {
            let class = match f.status {
                Status::Pass => "pass",
                Status::Fail => "fail",
                Status::Warn => "warn",
                Status::NotApplicable => "na",
            };
            rows.push_str(&format!(
                "<tr class=\"{class}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                f.status.word(),
                f.id,
                esc(&f.subject),
                esc(&f.evidence),
                esc(&f.fix)
            ));
        }
        // DNS-5: per channel what it accepted, with TR-03116-4's verdict on each entry.
        let mut ics = String::new();
        for e in &self.ics {
            let cell = |items: &[String]| {
                items
                    .iter()
                    .map(|i| {
                        let bad = e.not_allowed().contains(i);
                        let mark = if bad { " class=\"fail\"" } else { "" };
                        format!("<span{mark}>{}</span>", esc(i))
                    })
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            ics.push_str(&format!(
                "<h3>{} port {}</h3>\n<table class=\"ics\"><tr><th>TLS versions</th><th>cipher suites</th><th>groups</th><th>signature algorithms</th></tr>\n<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>\n",
                esc(&e.host),
                e.port,
                cell(&e.versions),
                cell(&e.suites),
                cell(&e.groups),
                cell(&e.sigalgs)
            ));
        }
        let mut probes = String::new();
        for p in &self.probes {
            probes.push_str(&p.html(&esc));
        }
        if !probes.is_empty() {
            probes = format!("<h2>What each MX showed</h2>\n{probes}");
        }
        let mut criteria = String::new();
        for (name, ids, status) in self.criteria() {
            let class = match status {
                Status::Pass => "pass",
                Status::Fail => "fail",
                Status::Warn => "warn",
                Status::NotApplicable => "na",
            };
            criteria.push_str(&format!(
                "<tr class=\"{class}\"><td>{}</td><td>{name}</td><td>{}</td></tr>\n",
                status.word(),
                ids.join(", ")
            ));
        }
        if !ics.is_empty() {
            ics = format!(
                "<h2>Implementation conformance (ICS) as scanned</h2>\n<p>Each offer was made alone; listed is what the server accepted. Entries outside TR-03116-4 are marked.</p>\n{ics}"
            );
        }
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>TR-03108 check of {d}</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;vertical-align:top}}.pass td:first-child{{color:#070}}.fail td:first-child{{color:#b00;font-weight:bold}}.warn td:first-child{{color:#a60}}span.fail{{color:#b00;font-weight:bold}}</style></head>\n<body><h1>TR-03108 v2.0 / TR-03182 check of {d}</h1>\n<p>{verdict}</p>\n<p>Checked at {at} through {resolver}.</p>\n<h2>The seven criteria</h2>\n<table><tr><th>result</th><th>criterion</th><th>requirements</th></tr>\n{criteria}</table>\n<h2>Findings</h2>\n<table><tr><th>result</th><th>requirement</th><th>checked</th><th>seen</th><th>fix</th></tr>\n{rows}</table>\n{probes}{ics}<p>Made by Kurier {v}.</p></body></html>\n",
            d = esc(&self.domain),
            at = esc(&self.context.checked_at),
            resolver = esc(&self.context.resolver),
            verdict = if self.failed() {
                "Requirements fail: see the rows marked FAIL."
            } else {
                "No requirement fails."
            },
            v = env!("CARGO_PKG_VERSION"),
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "version": JSON_VERSION,
            "domain": self.domain,
            "checked_at": self.context.checked_at,
            "resolver": self.context.resolver,
            "passed": !self.failed(),
            "criteria": self.criteria().iter().map(|(name, ids, status)| serde_json::json!({
                "name": name, "status": status.word().to_ascii_lowercase(), "requirements": ids,
            })).collect::<Vec<_>>(),
            "findings": self.findings.iter().map(|f| serde_json::json!({
                "id": f.id, "status": f.status.word().to_ascii_lowercase(), "subject": f.subject,
                "evidence": f.evidence, "fix": f.fix,
            })).collect::<Vec<_>>(),
            "probes": self.probes.iter().map(evidence::Probe::json).collect::<Vec<_>>(),
            "ics": self.ics.iter().map(|e| serde_json::json!({
                "host": e.host, "port": e.port, "versions": e.versions, "suites": e.suites,
                "groups": e.groups, "signature_algorithms": e.sigalgs,
            })).collect::<Vec<_>>(),
        })
    }
}

const NO_CLIENT_SERVICE: &str = "the domain offers no client services (no SRV record with a target, no autoconfig or autodiscover host)";

/// TLS scans of MX endpoints per check, and per MX host.
const MAX_SCANNED_MX_ENDPOINTS: usize = 8;
const MAX_SCANNED_ADDRESSES: usize = 4;

/// How to reach what is checked (ports are 25 and 443 but in labs).
pub struct Checker {
    pub resolver: Resolver,
    pub tls: ClientTls,
    pub smtp_port: u16,
    pub https_port: u16,
    pub timeout: Duration,
    /// The DKIM selectors the domain's mail is signed with (DKIM-1 checks their keys).
    pub dkim_selectors: Vec<String>,
    /// CAs trusted besides Debian's bundle (`delivery.extra_ca_file`), as delivery trusts them.
    pub extra_roots: Vec<X509>,
    pub context: Context,
    /// The address lists of `[blocklists]`: the MX hosts' addresses and `own_addresses` are
    /// looked up in them (ABUSE-1), since a listed sending address loses mail elsewhere.
    pub blocklists: Vec<kurier_accept::blocklist::DnsList>,
    /// Our sending addresses besides the MX hosts' (`delivery.source_ipv4`, `source_ipv6`).
    pub own_addresses: Vec<std::net::IpAddr>,
}

impl Checker {
    pub async fn check(&self, domain: &str) -> Audit {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let mut a = Audit {
            domain: domain.clone(),
            context: self.context.clone(),
            ..Audit::default()
        };
        let (mx_hosts, mx_secure) = self.check_mx(&domain, &mut a).await;
        self.check_records(&domain, &mut a).await;
        let mut zones = vec![domain.clone()];
        for h in &mx_hosts {
            if let Some((_, parent)) = h.split_once('.')
                && !zones.iter().any(|z| z == parent)
            {
                zones.push(parent.to_string());
            }
        }
        for zone in zones {
            self.check_algorithm(&zone, &mut a).await;
        }
        let sts_mode = self.check_sts(&domain, &mx_hosts, &mut a).await;
        let mut endpoints = Vec::new();
        for host in &mx_hosts {
            let working = self
                .check_mx_host(&domain, host, mx_secure, sts_mode, &mut a)
                .await;
            // Every address of every MX is probed above; the full TLS scans (hundreds of
            // handshakes each) are capped.
            for addr in working.into_iter().take(MAX_SCANNED_ADDRESSES) {
                if endpoints.len() < MAX_SCANNED_MX_ENDPOINTS {
                    endpoints.push(tls_scan::Endpoint {
                        host: host.clone(),
                        addr,
                        start: tls_scan::Start::Smtp,
                        legacy_allowed: true,
                    });
                }
            }
        }
        self.check_blocklists(&mx_hosts, &mut a).await;
        self.check_tlsrpt(&domain, &mut a).await;
        let (services, offers_clients) = self.check_srv(&domain, &mut a).await;
        if offers_clients {
            self.check_autoconfig(&domain, &mut a).await;
        } else {
            for id in ["MUA-5", "MUA-6"] {
                a.add(
                    id,
                    Status::NotApplicable,
                    format!("client configuration of {domain}"),
                    NO_CLIENT_SERVICE.into(),
                    "",
                );
            }
        }
        // The HTTPS of the policy host (443): scanned like the mail ports.
        let policy_host = format!("mta-sts.{domain}");
        if let Ok(addrs) = self.resolver.addresses(&policy_host).await
            && let Some(ip) = addrs.records.first()
        {
            endpoints.push(tls_scan::Endpoint {
                host: policy_host,
                addr: SocketAddr::new(*ip, self.https_port),
                start: tls_scan::Start::Implicit,
                legacy_allowed: false,
            });
        }
        for ep in &services {
            self.check_service(ep, &mut a).await;
        }
        endpoints.extend(services);
        for ep in endpoints {
            let (findings, ics) = tokio::task::spawn_blocking(move || tls_scan::scan(&ep))
                .await
                .unwrap_or_default();
            a.findings.extend(findings);
            a.ics.extend(ics);
        }
        a
    }

    /// ABUSE-1: the MX hosts' addresses (where mail for the domain is received, and usually
    /// sent from) and our own sending addresses on no configured address list. A listing is a
    /// warning: it is no TR-03108 requirement, but other servers refuse such mail.
    async fn check_blocklists(&self, mx_hosts: &[String], a: &mut Audit) {
        let lists: Vec<&kurier_accept::blocklist::DnsList> = self
            .blocklists
            .iter()
            .filter(|l| l.kind == kurier_config::DnsListKind::Ip)
            .collect();
        if lists.is_empty() {
            return;
        }
        let mut addresses: Vec<std::net::IpAddr> = self.own_addresses.clone();
        for host in mx_hosts {
            if let Ok(found) = self.resolver.addresses(host).await {
                addresses.extend(found.records);
            }
        }
        addresses.sort();
        addresses.dedup();
        for ip in addresses.into_iter().take(MAX_SCANNED_MX_ENDPOINTS * 2) {
            let (mut listed, mut unknown) = (Vec::new(), Vec::new());
            for list in &lists {
                let Some(name) =
                    kurier_accept::blocklist::query_name(list.kind, &list.zone, ip, "")
                else {
                    continue;
                };
                let lookup = tokio::time::timeout(
                    self.timeout,
                    self.resolver.addresses_of_family(&name, false),
                )
                .await;
                match lookup {
                    Ok(Ok(answer)) => {
                        if let Some(code) =
                            kurier_accept::blocklist::counts(&list.codes, &answer.records)
                        {
                            listed.push(format!("{} ({code})", list.zone));
                        }
                    }
                    Ok(Err(e)) => unknown.push(format!("{}: {e}", list.zone)),
                    Err(_) => unknown.push(format!("{}: no answer in time", list.zone)),
                }
            }
            let subject = format!("{ip} on DNS blocklists");
            if !listed.is_empty() {
                a.add(
                    "ABUSE-1",
                    Status::Warn,
                    subject,
                    format!("listed in {}", listed.join(", ")),
                    "find out why at the list's web site (a compromised account, an open relay), fix it, then ask for delisting",
                );
            } else if !unknown.is_empty() {
                a.add(
                    "ABUSE-1",
                    Status::Warn,
                    subject,
                    format!("not all lists answered: {}", unknown.join("; ")),
                    "check again later",
                );
            } else {
                a.add(
                    "ABUSE-1",
                    Status::Pass,
                    subject,
                    format!("on none of {} list(s)", lists.len()),
                    "",
                );
            }
        }
    }

    /// DNS-2: the MX RRset and the hosts' addresses are DNSSEC-secure.
    async fn check_mx(&self, domain: &str, a: &mut Audit) -> (Vec<String>, bool) {
        let mx = match self.resolver.mx(domain).await {
            Ok(mx) => mx,
            Err(e) => {
                a.add(
                    "DNS-2",
                    Status::Fail,
                    format!("MX of {domain}"),
                    dns_error(&e),
                    "fix the zone's DNSSEC signatures and DS record",
                );
                return (Vec::new(), false);
            }
        };
        let secure = mx.state == DnssecState::Secure;
        a.add(
            "DNS-2",
            if secure { Status::Pass } else { Status::Fail },
            format!("MX of {domain}"),
            format!("{} record(s), {}", mx.records.len(), state_word(mx.state)),
            "sign the zone with DNSSEC (ECDSA P-256) and publish the DS record at the parent",
        );
        let mut hosts: Vec<(u16, String)> = mx
            .records
            .iter()
            .filter(|r| r.exchange != ".")
            .map(|r| (r.preference, r.exchange.clone()))
            .collect();
        hosts.sort();
        if hosts.is_empty() {
            a.add(
                "SMTP-5",
                Status::NotApplicable,
                format!("MX of {domain}"),
                "null MX or no MX: the domain receives no mail".into(),
                "",
            );
        }
        (hosts.into_iter().map(|(_, h)| h).take(10).collect(), secure)
    }

    /// SPF-1, DMARC-1, DKIM-1 (TR-03182): the records others check our mail against.
    async fn check_records(&self, domain: &str, a: &mut Audit) {
        let txt = |name: String| async move { self.resolver.txt(&name).await };
        let (status, seen, fix) = match txt(domain.to_string()).await {
            Ok(t) => {
                let redirect = t
                    .records
                    .iter()
                    .filter(|r| kurier_mailauth::spf::is_spf(r))
                    .find_map(|r| kurier_mailauth::spf::Record::parse(r).ok())
                    .and_then(|r| r.redirect().map(str::to_string));
                let redirected = match redirect {
                    Some(target) => txt(target).await.ok().map(|a| a.records),
                    None => None,
                };
                records::judge_spf(&t.records, redirected.as_deref())
            }
            Err(e) => (Status::Fail, dns_error(&e), "fix the domain's DNS"),
        };
        a.add("SPF-1", status, format!("SPF of {domain}"), seen, fix);
        let (status, seen, fix) = match txt(format!("_dmarc.{domain}")).await {
            Ok(t) => records::judge_dmarc(&t.records),
            Err(e) => (Status::Fail, dns_error(&e), "fix the DNS of _dmarc"),
        };
        a.add("DMARC-1", status, format!("DMARC of {domain}"), seen, fix);
        if self.dkim_selectors.is_empty() {
            a.add(
                "DKIM-1",
                Status::Warn,
                format!("DKIM of {domain}"),
                "not checked: no selector known (DKIM keys cannot be listed)".into(),
                "name the selectors your mail is signed with: --dkim-selector",
            );
        }
        for selector in &self.dkim_selectors {
            let name = format!("{selector}._domainkey.{domain}");
            let (status, seen, fix) = match txt(name.clone()).await {
                Ok(t) => records::judge_dkim(&t.records),
                Err(e) => (Status::Fail, dns_error(&e), "fix the DNS of the key record"),
            };
            a.add("DKIM-1", status, format!("DKIM key {name}"), seen, fix);
        }
    }

    /// DNS-4: what the zone is signed with.
    async fn check_algorithm(&self, zone: &str, a: &mut Audit) {
        let subject = format!("DNSSEC keys of {zone}");
        let keys = match self.resolver.dnskeys(zone).await {
            Ok(k) => k,
            Err(e) => {
                a.add(
                    "DNS-4",
                    Status::Fail,
                    subject,
                    format!("the DNSKEY records could not be read: {}", dns_error(&e)),
                    "make the zone's DNSKEY RRset answer and validate",
                );
                return;
            }
        };
        if keys.records.is_empty() {
            // Unsigned, or not a zone apex: DNS-2/DNS-3 judge the signing itself.
            a.add(
                "DNS-4",
                Status::NotApplicable,
                subject,
                "no DNSKEY records here (not signed, or not a zone apex)".into(),
                "",
            );
            return;
        }
        let bad: Vec<String> = keys
            .records
            .iter()
            .filter(|k| !algorithm_ok(k.algorithm, k.rsa_bits))
            .map(|k| match k.rsa_bits {
                Some(b) => format!("algorithm {} with {b}-bit RSA", k.algorithm),
                None => format!("algorithm {}", k.algorithm),
            })
            .collect();
        let algs: Vec<String> = keys
            .records
            .iter()
            .map(|k| k.algorithm.to_string())
            .collect();
        a.verdict(
            "DNS-4",
            subject,
            bad,
            format!("algorithms {}", algs.join(", ")),
            "sign with ECDSA P-256 (13) or P-384 (14); RSA (8, 10) only with 3072 bits or more",
        );
        // RFC 9276 §3.1: NSEC3 with 0 additional iterations (extra ones cost resolvers and
        // protect nothing); NSEC is fine.
        {
            let (status, evidence) = match self.resolver.nsec3_iterations(zone).await {
                Ok(n) => match n.records.first() {
                    None => (Status::Pass, "NSEC (no NSEC3PARAM)".to_string()),
                    Some(0) => (Status::Pass, "NSEC3 with 0 iterations".to_string()),
                    Some(i) => (Status::Fail, format!("NSEC3 with {i} iterations")),
                },
                Err(e) => (
                    Status::Fail,
                    format!("NSEC3PARAM could not be read: {}", dns_error(&e)),
                ),
            };
            a.add(
                "DNS-4",
                status,
                format!("denial of existence in {zone}"),
                evidence,
                "re-sign with NSEC3 iterations 0 and no salt (RFC 9276), or with NSEC",
            );
        }
    }

    /// Connects to an MX and runs STARTTLS (without a peer check: the chain is looked at
    /// afterwards). `Err`: what was seen and the fix.
    async fn starttls(
        &self,
        addr: SocketAddr,
        host: &str,
        check: &PeerCheck,
    ) -> Result<SmtpClient, (String, &'static str)> {
        let client = SmtpClient::connect(addr, "kurier-check.invalid", self.timeout, self.timeout)
            .await
            .map_err(|e| (e.to_string(), "make the MX reachable on port 25"))?;
        if !client.extensions().starttls {
            client.quit().await;
            return Err((
                "no STARTTLS offered".into(),
                "offer STARTTLS with a TR-03116-4 profile",
            ));
        }
        client
            .starttls(&self.tls, host, check)
            .await
            .map_err(|e| (e.to_string(), "fix the server's TLS configuration"))
    }

    /// Checks one MX as delivery sees it (`delivery::route::hop`: addresses, the TLSA base
    /// after a secure CNAME, RFC 7672 §2.2.2, the DANE policy), every address of it; returns the
    /// SMTP addresses where STARTTLS works. `sts`: the domain's MTA-STS mode, if it has a
    /// policy (STS-3 then asks each MX for a trusted certificate naming it, RFC 8461 §4.2).
    async fn check_mx_host(
        &self,
        domain: &str,
        host: &str,
        mx_secure: bool,
        sts: Option<sts::StsMode>,
        a: &mut Audit,
    ) -> Vec<SocketAddr> {
        let addrs = match self.resolver.addresses(host).await {
            Ok(x) => x,
            Err(e) => {
                a.add(
                    "DNS-2",
                    Status::Fail,
                    format!("addresses of {host}"),
                    dns_error(&e),
                    "fix the DNSSEC signatures of the MX host's zone",
                );
                return Vec::new();
            }
        };
        a.add(
            "DNS-2",
            if addrs.state == DnssecState::Secure {
                Status::Pass
            } else {
                Status::Fail
            },
            format!("addresses of {host}"),
            format!(
                "{} address(es), {}",
                addrs.records.len(),
                state_word(addrs.state)
            ),
            "sign the MX host's zone with DNSSEC",
        );
        let hop = route::hop(&self.resolver, domain, host, self.smtp_port, mx_secure).await;
        let records = self.check_mx_tlsa(host, &hop.base, a).await;
        let mut working = Vec::new();
        for ip in &hop.addresses {
            let addr = SocketAddr::new(*ip, self.smtp_port);
            let at = if hop.addresses.len() > 1 {
                format!("{host} [{ip}]")
            } else {
                host.to_string()
            };
            let client = match self.starttls(addr, &hop.base, &PeerCheck::None).await {
                Ok(c) => c,
                Err((evidence, fix)) => {
                    let subject = format!("{at} port {}", self.smtp_port);
                    a.add("SMTP-1", Status::Fail, subject, evidence, fix);
                    continue;
                }
            };
            let (version, cipher, group) = client
                .tls()
                .map(|(i, _)| (i.version.clone(), i.cipher.clone(), i.group.clone()))
                .unwrap_or_default();
            a.add(
                "SMTP-1",
                Status::Pass,
                format!("{at} port {}", self.smtp_port),
                format!("STARTTLS: {version} {cipher}"),
                "",
            );
            let chain = client.peer_chain().to_vec();
            a.probes.push(evidence::Probe {
                host: host.to_string(),
                addr,
                version,
                cipher,
                group,
                chain: chain.iter().map(evidence::CertificateFacts::of).collect(),
                tlsa_name: format!("_{}._tcp.{}", self.smtp_port, hop.base),
                tlsa: records
                    .iter()
                    .map(|r| {
                        let hex: String = r.data.iter().map(|b| format!("{b:02x}")).collect();
                        format!("{} {} {} {hex}", r.usage, r.selector, r.matching)
                    })
                    .collect(),
            });
            client.quit().await;
            working.push(addr);
            if let Some(errors) = self.chain_errors(&chain) {
                a.verdict(
                    "CERT-1",
                    format!("certificate of {at}"),
                    errors,
                    key_of(&chain),
                    "the server must serve an ECDSA P-256 or RSA-3072 certificate without wildcard names, currently valid, with its full chain",
                );
            }
            if !records.is_empty() {
                self.check_dane_match(addr, &hop, &records, &at, a).await;
            }
            if let Some(mode) = sts {
                let verdict = self
                    .handshake(addr, &hop.base, &route_sts_check(&hop))
                    .await;
                let (status, evidence) = match verdict {
                    Ok(()) => (
                        Status::Pass,
                        format!("a trusted chain naming {host}, as MTA-STS senders verify it"),
                    ),
                    Err(e) if mode == sts::StsMode::Enforce => (Status::Fail, e),
                    Err(e) => (Status::Warn, format!("{e} (the policy is in testing mode)")),
                };
                a.add(
                    "STS-3",
                    status,
                    format!("certificate of {at} under MTA-STS"),
                    evidence,
                    "serve a certificate from a publicly trusted CA that names the MX host (not self-signed, not only DANE-EE)",
                );
            }
        }
        working
    }

    /// DANE-1 and DANE-5 for the TLSA records at `base` (the MX host, or its secure CNAME
    /// target); returns the records found.
    async fn check_mx_tlsa(
        &self,
        host: &str,
        base: &str,
        a: &mut Audit,
    ) -> Vec<kurier_dns::TlsaData> {
        let at = if base == host {
            String::new()
        } else {
            format!(" (at the CNAME target {base}, RFC 7672 §2.2.2)")
        };
        let subject = format!("TLSA for {host}");
        let records = match self
            .resolver
            .tlsa(&format!("_{}._tcp.{base}", self.smtp_port))
            .await
        {
            Ok(t) if t.state == DnssecState::Secure && !t.records.is_empty() => {
                a.add(
                    "DANE-1",
                    Status::Pass,
                    subject.clone(),
                    format!("{} record(s), secure{at}", t.records.len()),
                    "",
                );
                t.records
            }
            Ok(t) if t.records.is_empty() => {
                a.add("DANE-1", Status::Fail, subject, format!("no TLSA record{at}"), "publish `3 1 1` and `2 1 1` records (kurier dns prints them) in the signed zone");
                return Vec::new();
            }
            Ok(_) => {
                a.add(
                    "DANE-1",
                    Status::Fail,
                    subject,
                    format!("TLSA records in an unsigned zone{at}"),
                    "sign the zone with DNSSEC",
                );
                return Vec::new();
            }
            Err(e) => {
                a.add(
                    "DANE-1",
                    Status::Fail,
                    subject,
                    dns_error(&e),
                    "fix the DNSSEC signatures of the TLSA records",
                );
                return Vec::new();
            }
        };
        if records.iter().any(|r| r.usage < 2) {
            a.add(
                "DANE-5",
                Status::Fail,
                subject,
                "PKIX-TA(0) or PKIX-EE(1) records published".into(),
                "publish only usages 2 and 3 for SMTP (RFC 7672 §3.1.3)",
            );
        } else {
            a.add(
                "DANE-5",
                Status::Pass,
                subject,
                "only DANE-TA(2)/DANE-EE(3) records".into(),
                "",
            );
        }
        records
    }

    /// DANE-3: each published record, one handshake each with OpenSSL's DANE engine as
    /// delivery uses it (DANE-TA records must also name the MX or the domain, RFC 7672 §3.2.3);
    /// every (usage, selector, matching type) combination needs a record that matches (RFC
    /// 7671 §8: a pre-published next key beside a matching one is fine).
    async fn check_dane_match(
        &self,
        addr: SocketAddr,
        hop: &route::Hop,
        records: &[kurier_dns::TlsaData],
        at: &str,
        a: &mut Audit,
    ) {
        let mut seen = Vec::new();
        // (usage, selector, matching) → whether one record of it matched
        let mut combinations: Vec<((u8, u8, u8), bool)> = Vec::new();
        for r in records.iter().filter(|r| r.usage >= 2) {
            let tlsa = kurier_policy::dane::Tlsa {
                usage: r.usage,
                selector: r.selector,
                matching: r.matching,
                data: r.data.clone(),
            };
            let check = kurier_delivery::attempt::dane_check(hop, Some(&tlsa));
            let verdict = match check {
                PeerCheck::Dane { ref records, .. } if !records.is_empty() => {
                    self.handshake(addr, &hop.base, &check).await
                }
                _ => Err("not usable (unknown selector or matching type)".into()),
            };
            let hex: String = r.data.iter().take(4).map(|b| format!("{b:02x}")).collect();
            let combination = (r.usage, r.selector, r.matching);
            seen.push(match &verdict {
                Ok(()) => format!("{} {} {} {hex}…: matches", r.usage, r.selector, r.matching),
                Err(e) => format!("{} {} {} {hex}…: {e}", r.usage, r.selector, r.matching),
            });
            match combinations.iter_mut().find(|(c, _)| *c == combination) {
                Some((_, ok)) => *ok |= verdict.is_ok(),
                None => combinations.push((combination, verdict.is_ok())),
            }
        }
        let status = if combinations.iter().all(|(_, ok)| *ok) && !combinations.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        };
        a.add(
            "DANE-3",
            status,
            format!("TLSA for {at}"),
            seen.join("; "),
            "publish the records of the certificate the server actually uses (kurier dns), each kind of record matching, and keep them current through rollovers",
        );
    }

    /// One STARTTLS handshake with `check`; `Err` says why it failed.
    async fn handshake(
        &self,
        addr: SocketAddr,
        sni: &str,
        check: &PeerCheck,
    ) -> Result<(), String> {
        match self.starttls(addr, sni, check).await {
            Ok(c) => {
                c.quit().await;
                Ok(())
            }
            Err((e, _)) => Err(e),
        }
    }

    /// The errors `check_peer` finds in a served chain (CERT-1, CERT-3), trusting the CAs
    /// delivery trusts; `None` if the clock cannot be read.
    fn chain_errors(&self, chain: &[X509]) -> Option<Vec<String>> {
        let now = openssl::asn1::Asn1Time::days_from_now(0).ok()?;
        Some(
            kurier_tls::certificate::check_peer(chain, &now, &self.extra_roots)
                .into_iter()
                .filter(|f| f.severity == kurier_tls::Severity::Error)
                .map(|f| f.message)
                .collect(),
        )
    }

    /// A client port's certificate (CERT-3) and TLSA (DANE-6), from one handshake.
    async fn check_service(&self, ep: &tls_scan::Endpoint, a: &mut Audit) {
        let probe = ep.clone();
        let chain = match tokio::task::spawn_blocking(move || tls_scan::served_chain(&probe)).await
        {
            Ok(chain) => chain,
            Err(_) => return,
        };
        let chain = chain
            .as_deref()
            .map_err(|e| format!("no TLS handshake: {e}"));
        self.check_service_certificate(ep, chain.clone(), a);
        self.check_service_tlsa(ep, chain, a).await;
    }

    /// CERT-3 for a client port: the chain it serves is complete and valid, and names the
    /// host clients connect to (RFC 8314 §4.4; mail clients verify it, no DANE needed).
    fn check_service_certificate(
        &self,
        ep: &tls_scan::Endpoint,
        chain: Result<&[X509], String>,
        a: &mut Audit,
    ) {
        let port = ep.addr.port();
        let subject = format!("certificate of {} port {port}", ep.host);
        let chain = match chain {
            Ok(chain) => chain,
            Err(e) => {
                a.add(
                    "CERT-3",
                    Status::Fail,
                    subject,
                    e,
                    "serve TLS on the port the SRV record names",
                );
                return;
            }
        };
        let Some(mut errors) = self.chain_errors(chain) else {
            return;
        };
        let host = ep.host.to_ascii_lowercase();
        let names = chain
            .first()
            .map(kurier_tls::certificate::dns_names)
            .unwrap_or_default();
        if !names.contains(&host) {
            errors.push(format!(
                "does not name {host} (names: {})",
                names.join(", ")
            ));
        }
        a.verdict(
            "CERT-3",
            subject,
            errors,
            key_of(chain),
            "serve a valid certificate for the host name the SRV record names, with its full chain",
        );
    }

    /// DANE-6 (optional): TLSA for a client port; where published, it must match the chain
    /// served there like port 25's (DANE-3, RFC 7673).
    async fn check_service_tlsa(
        &self,
        ep: &tls_scan::Endpoint,
        chain: Result<&[X509], String>,
        a: &mut Audit,
    ) {
        let port = ep.addr.port();
        let name = format!("_{port}._tcp.{}", ep.host);
        let subject = format!("TLSA for {} port {port}", ep.host);
        let records = match self.resolver.tlsa(&name).await {
            Ok(t) if t.records.is_empty() => {
                a.add(
                    "DANE-6",
                    Status::NotApplicable,
                    subject,
                    "no TLSA record (recommended, not required)".into(),
                    "",
                );
                return;
            }
            Ok(t) if t.state != DnssecState::Secure => {
                a.add(
                    "DANE-6",
                    Status::Fail,
                    subject,
                    "TLSA records in an unsigned zone".into(),
                    "sign the zone with DNSSEC",
                );
                return;
            }
            Ok(t) => t.records,
            Err(e) => {
                a.add(
                    "DANE-6",
                    Status::Fail,
                    subject,
                    dns_error(&e),
                    "fix the DNSSEC signatures of the TLSA records",
                );
                return;
            }
        };
        let chain = match chain {
            Ok(chain) => chain,
            Err(e) => {
                a.add(
                    "DANE-6",
                    Status::Fail,
                    subject,
                    e,
                    "serve TLS on the port the SRV record names",
                );
                return;
            }
        };
        let matching = records.iter().filter(|r| matches_chain(r, chain)).count();
        let (status, evidence) = if matching == 0 {
            (
                Status::Fail,
                format!("none of {} records matches the chain served", records.len()),
            )
        } else if matching < records.len() {
            (
                Status::Warn,
                format!(
                    "{matching} of {} records match the chain served",
                    records.len()
                ),
            )
        } else {
            (
                Status::Pass,
                format!("all {matching} records match the chain served"),
            )
        };
        a.add(
            "DANE-6",
            status,
            subject,
            evidence,
            "publish the records of the certificate the port serves (kurier dns)",
        );
    }

    /// STS-1..STS-3 (STS-3's certificates are asked of each MX in `check_mx_host`); the
    /// policy's mode when one is published.
    async fn check_sts(
        &self,
        domain: &str,
        mx_hosts: &[String],
        a: &mut Audit,
    ) -> Option<sts::StsMode> {
        let subject = format!("MTA-STS of {domain}");
        let txt = match self.resolver.txt(&format!("_mta-sts.{domain}")).await {
            Ok(t) => {
                a.signed(format!("_mta-sts.{domain}"), t.state, !t.records.is_empty());
                t
            }
            Err(e) => {
                a.add(
                    "STS-1",
                    Status::Fail,
                    subject,
                    dns_error(&e),
                    "fix the DNS of _mta-sts",
                );
                return None;
            }
        };
        let record = match sts::parse_record(&txt.records) {
            Ok(Some(r)) => r,
            Ok(None) => {
                a.add(
                    "STS-1",
                    Status::Fail,
                    subject,
                    "no _mta-sts record".into(),
                    "publish `v=STSv1; id=…` and the policy (kurier dns)",
                );
                return None;
            }
            Err(e) => {
                a.add(
                    "STS-1",
                    Status::Fail,
                    subject,
                    e.to_string(),
                    "publish exactly one valid `v=STSv1; id=…` record",
                );
                return None;
            }
        };
        let host = format!("mta-sts.{domain}");
        let fetched = https::exchange(
            &self.resolver,
            &self.tls,
            https::Request {
                host: &host,
                port: self.https_port,
                method: "GET",
                path: "/.well-known/mta-sts.txt",
                content_type: None,
                body: Vec::new(),
                reject_wildcard: true,
                max_response: sts::MAX_POLICY_BYTES,
                revocation: None,
            },
        )
        .await;
        let response = match fetched {
            Ok(r) => r,
            Err((kurier_tls::ResultType::StsWebpkiInvalid, detail)) => {
                a.add("STS-2", Status::Fail, format!("certificate of {host}"), detail, "serve the policy with a publicly trusted certificate naming mta-sts.<domain>, without wildcard");
                return None;
            }
            Err((_, detail)) => {
                a.add(
                    "STS-1",
                    Status::Fail,
                    subject,
                    detail,
                    "serve the policy at https://mta-sts.<domain>/.well-known/mta-sts.txt",
                );
                return None;
            }
        };
        a.add(
            "STS-2",
            Status::Pass,
            format!("certificate of {host}"),
            "valid, names the host, no wildcard".into(),
            "",
        );
        if response.status != 200 || !response.content_type.starts_with("text/plain") {
            a.add(
                "STS-1",
                Status::Fail,
                subject,
                format!("HTTP {} with {:?}", response.status, response.content_type),
                "answer 200 with text/plain, without redirects",
            );
            return None;
        }
        let policy = match sts::parse_policy(&String::from_utf8_lossy(&response.body)) {
            Ok(p) => p,
            Err(e) => {
                a.add(
                    "STS-1",
                    Status::Fail,
                    subject,
                    e.to_string(),
                    "fix the policy syntax (RFC 8461 §3.2)",
                );
                return None;
            }
        };
        a.add(
            "STS-1",
            if policy.mode == sts::StsMode::Enforce {
                Status::Pass
            } else {
                Status::Warn
            },
            subject.clone(),
            format!(
                "id {}, mode {}, max_age {}",
                record.id,
                policy.mode.as_str(),
                policy.max_age
            ),
            "use mode enforce",
        );
        let uncovered: Vec<&String> = mx_hosts
            .iter()
            .filter(|h| !policy.mx.iter().any(|p| sts::mx_matches(p, h)))
            .collect();
        a.add(
            "STS-3",
            if uncovered.is_empty() {
                Status::Pass
            } else {
                Status::Fail
            },
            subject,
            if uncovered.is_empty() {
                "every MX matches an mx: pattern".into()
            } else {
                format!("not in the policy: {uncovered:?}")
            },
            "list every MX host in the policy",
        );
        Some(policy.mode)
    }

    /// One HTTPS request to a host of the domain (the strict profile is its own check).
    async fn fetch(
        &self,
        host: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<https::Response, String> {
        https::exchange(
            &self.resolver,
            &self.tls,
            https::Request {
                host,
                port: self.https_port,
                method,
                path,
                content_type: (!body.is_empty()).then_some("text/xml"),
                body: body.as_bytes().to_vec(),
                reject_wildcard: false,
                max_response: 256 * 1024,
                revocation: None,
            },
        )
        .await
        .map_err(|(_, d)| d)
    }

    /// MUA-5, MUA-6: what clients are told — implicit TLS first, never plain text.
    async fn check_autoconfig(&self, domain: &str, a: &mut Audit) {
        let host = format!("autoconfig.{domain}");
        match self.fetch(&host, "GET", "/mail/config-v1.1.xml", "").await {
            Ok(r) if r.status == 200 => {
                let xml = String::from_utf8_lossy(&r.body);
                let first_socket = |tag: &str| {
                    xml.split(&format!("<{tag} "))
                        .nth(1)
                        .and_then(|e| e.split("<socketType>").nth(1))
                        .and_then(|e| e.split('<').next())
                        .unwrap_or("")
                        .to_string()
                };
                let plain = xml.contains("<socketType>plain</socketType>");
                let (incoming, outgoing) = (first_socket("incomingServer"), first_socket("outgoingServer"));
                let ok = !plain && incoming == "SSL" && outgoing == "SSL";
                a.add(
                    "MUA-5",
                    if ok { Status::Pass } else { Status::Fail },
                    format!("autoconfig of {domain}"),
                    format!("first incoming {incoming:?}, first outgoing {outgoing:?}, plain entries: {plain}"),
                    "list the implicit-TLS (SSL) servers first, STARTTLS after, no plain entries",
                );
            }
            Ok(r) => a.add("MUA-5", Status::Fail, format!("autoconfig of {domain}"), format!("HTTP {}", r.status), "serve config-v1.1.xml at https://autoconfig.<domain>/mail/"),
            Err(e) => a.add("MUA-5", Status::Fail, format!("autoconfig of {domain}"), e, "serve config-v1.1.xml at https://autoconfig.<domain>/mail/ with a valid certificate"),
        }
        let host = format!("autodiscover.{domain}");
        let request = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>postmaster@{domain}</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover>"
        );
        match self
            .fetch(&host, "POST", "/autodiscover/autodiscover.xml", &request)
            .await
        {
            Ok(r) if r.status == 200 => {
                let xml = String::from_utf8_lossy(&r.body);
                let on = xml.matches("<SSL>on</SSL>").count();
                let ok = on > 0 && !xml.contains("<SSL>off</SSL>");
                a.add(
                    "MUA-6",
                    if ok { Status::Pass } else { Status::Fail },
                    format!("Autodiscover of {domain}"),
                    format!("{on} protocol(s) with SSL on"),
                    "answer with IMAP/POP3/SMTP entries on 993/995/465 with SSL on",
                );
            }
            Ok(r) => a.add(
                "MUA-6",
                Status::Fail,
                format!("Autodiscover of {domain}"),
                format!("HTTP {}", r.status),
                "answer POSTs at https://autodiscover.<domain>/autodiscover/autodiscover.xml",
            ),
            Err(e) => a.add(
                "MUA-6",
                Status::Fail,
                format!("Autodiscover of {domain}"),
                e,
                "serve Autodiscover over HTTPS with a valid certificate",
            ),
        }
    }

    /// RPT-1: exactly one `_smtp._tls` record, mailto only.
    async fn check_tlsrpt(&self, domain: &str, a: &mut Audit) {
        let subject = format!("TLSRPT record of {domain}");
        let txt = match self.resolver.txt(&format!("_smtp._tls.{domain}")).await {
            Ok(t) => {
                a.signed(
                    format!("_smtp._tls.{domain}"),
                    t.state,
                    !t.records.is_empty(),
                );
                t
            }
            Err(e) => {
                a.add(
                    "RPT-1",
                    Status::Fail,
                    subject,
                    dns_error(&e),
                    "fix the DNS of _smtp._tls",
                );
                return;
            }
        };
        match tlsrpt::parse_record(&txt.records) {
            Ok(Some(r)) if r.rua.iter().all(|u| matches!(u, tlsrpt::Rua::Mailto(_))) => a.add(
                "RPT-1",
                Status::Pass,
                subject,
                format!("{} mailto rua", r.rua.len()),
                "",
            ),
            Ok(Some(_)) => a.add(
                "RPT-1",
                Status::Fail,
                subject,
                "an https rua".into(),
                "use mailto: only (TR-03108 4.1.10)",
            ),
            Ok(None) => a.add(
                "RPT-1",
                Status::Fail,
                subject,
                "no _smtp._tls record".into(),
                "publish `v=TLSRPTv1; rua=mailto:…` (kurier dns)",
            ),
            Err(e) => a.add(
                "RPT-1",
                Status::Fail,
                subject,
                e.to_string(),
                "publish exactly one valid record",
            ),
        }
    }

    /// Whether `name` has an address (a client configuration host is published).
    async fn exists(&self, name: &str) -> bool {
        self.resolver
            .addresses(name)
            .await
            .is_ok_and(|a| !a.records.is_empty())
    }

    /// MUA-4: SRV records, implicit TLS preferred; returns the services to scan, and whether
    /// the domain offers client services at all (an SRV record with a target, or an
    /// autoconfig or autodiscover host). A domain that offers none — a third party's MX
    /// domain, say — is not applicable, not failing.
    async fn check_srv(&self, domain: &str, a: &mut Audit) -> (Vec<tls_scan::Endpoint>, bool) {
        use tls_scan::Start;
        let subject = format!("client SRV records of {domain}");
        let mut seen = Vec::new();
        let mut any = false;
        let mut endpoints = Vec::new();
        for (name, start) in [
            ("_submissions._tcp", Start::Implicit),
            ("_imaps._tcp", Start::Implicit),
            ("_pop3s._tcp", Start::Implicit),
            ("_submission._tcp", Start::Smtp),
            ("_imap._tcp", Start::Imap),
            ("_pop3._tcp", Start::Pop3),
        ] {
            let Ok(ans) = self.resolver.srv(&format!("{name}.{domain}")).await else {
                continue;
            };
            a.signed(
                format!("{name}.{domain}"),
                ans.state,
                !ans.records.is_empty(),
            );
            for r in ans.records.iter().filter(|r| r.target != ".") {
                any = true;
                if start == Start::Implicit {
                    seen.push(name);
                }
                if let Ok(addrs) = self.resolver.addresses(&r.target).await
                    && let Some(ip) = addrs.records.first()
                {
                    endpoints.push(tls_scan::Endpoint {
                        host: r.target.clone(),
                        addr: SocketAddr::new(*ip, r.port),
                        start,
                        legacy_allowed: false,
                    });
                }
            }
        }
        if !any
            && !self.exists(&format!("autoconfig.{domain}")).await
            && !self.exists(&format!("autodiscover.{domain}")).await
        {
            a.add(
                "MUA-4",
                Status::NotApplicable,
                subject,
                NO_CLIENT_SERVICE.into(),
                "",
            );
            return (endpoints, false);
        }
        a.add(
            "MUA-4",
            if seen.contains(&"_submissions._tcp") {
                Status::Pass
            } else {
                Status::Fail
            },
            subject,
            if seen.is_empty() {
                "none".into()
            } else {
                seen.join(", ")
            },
            "publish _submissions._tcp, _imaps._tcp and _pop3s._tcp SRV records (kurier dns)",
        );
        (endpoints, true)
    }
}

/// TR-03108 DNS-4: ECDSA (13, 14) or EdDSA (15, 16); RSA-SHA256/512 (8, 10) from 3072 bits.
pub fn algorithm_ok(algorithm: u8, rsa_bits: Option<u32>) -> bool {
    match algorithm {
        13..=16 => true,
        8 | 10 => rsa_bits.is_some_and(|b| b >= 3072),
        _ => false,
    }
}

fn state_word(s: DnssecState) -> &'static str {
    match s {
        DnssecState::Secure => "DNSSEC-secure",
        DnssecState::Insecure => "not DNSSEC-signed",
    }
}

fn dns_error(e: &DnsError) -> String {
    match e {
        DnsError::Bogus(_) => format!("bogus DNSSEC: {e}"),
        _ => e.to_string(),
    }
}

fn key_of(chain: &[X509]) -> String {
    chain
        .first()
        .and_then(|c| c.public_key().ok())
        .map(|k| kurier_tls::certificate::key_description(&k))
        .unwrap_or_default()
}

/// Whether a TLSA record matches the chain (usage 3: the leaf; usage 2: a CA certificate of it).
fn matches_chain(r: &kurier_dns::TlsaData, chain: &[X509]) -> bool {
    let record = kurier_policy::dane::Tlsa {
        usage: r.usage,
        selector: r.selector,
        matching: r.matching,
        data: r.data.clone(),
    };
    kurier_tls::tlsa::matches_chain(&record, chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns4_signing_algorithms() {
        assert!(algorithm_ok(13, None) && algorithm_ok(14, None));
        assert!(algorithm_ok(8, Some(3072)));
        assert!(!algorithm_ok(8, Some(2048)));
        assert!(!algorithm_ok(5, Some(4096)), "RSA/SHA-1");
        assert!(!algorithm_ok(7, Some(4096)));
        assert!(!algorithm_ok(8, None));
    }
}
