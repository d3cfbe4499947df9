//! The DNS list stage (RFC 5782): is the client address, or the envelope sender's domain, on
//! a blocklist the operator named (`[blocklists]`), or on an allowlist that overrides them?
//! Asked when a recipient is given, like Postfix's `reject_rbl_client` with its default
//! `smtpd_delay_reject`. Every list of one question is asked at once, under one time budget:
//! a list that is slow, answers SERVFAIL or cannot be validated counts as "not listed" — a
//! broken list must never stop mail, nor stall the session. Answers are cached by the resolver
//! for their TTL.
//!
//! `query_name` and `counts` are the pure parts; `Blocklists::check` asks DNS.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use kurier_config::{BlocklistConfig, DnsListKind};

/// One list, ready to ask.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsList {
    pub zone: String,
    pub kind: DnsListKind,
    /// The answers that count as listed (inclusive ranges).
    pub codes: Vec<(Ipv4Addr, Ipv4Addr)>,
    pub weight: f64,
}

/// What the lists said about one client and sender.
#[derive(Debug, Clone, PartialEq)]
pub enum Listing {
    /// On no list (or every lookup failed or timed out).
    Clean,
    /// On this allowlist: the blocklists are not asked.
    Allowed(String),
    /// On these lists (zone, answer) with these weights in sum; `refuse` when the sum reached
    /// `reject_score`.
    Listed {
        hits: Vec<(String, Ipv4Addr, DnsListKind)>,
        score: f64,
        refuse: bool,
    },
}

/// The name to ask `zone` about: the client address reversed (IPv4 octets, IPv6 nibbles,
/// RFC 5782 §2.1, §2.4), or the sender's domain (§2.3); `None` when there is nothing to ask
/// (a null sender for a domain list).
pub fn query_name(kind: DnsListKind, zone: &str, ip: IpAddr, sender: &str) -> Option<String> {
    match kind {
        DnsListKind::Ip => Some(match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.{}.{zone}", o[3], o[2], o[1], o[0])
            }
            IpAddr::V6(v6) => {
                let mut name = String::new();
                for b in v6.octets().iter().rev() {
                    name.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
                }
                format!("{name}{zone}")
            }
        }),
        DnsListKind::Domain => {
            let domain = sender.rsplit_once('@')?.1.trim_end_matches('.');
            (!domain.is_empty() && domain.len() <= 200)
                .then(|| format!("{}.{zone}", domain.to_ascii_lowercase()))
        }
    }
}

/// The first answer in `codes`, if any (§2.1: listed entries answer with 127.0.0.x A records;
/// others — 127.255.255.x error codes by default — do not count).
pub fn counts(codes: &[(Ipv4Addr, Ipv4Addr)], answers: &[IpAddr]) -> Option<Ipv4Addr> {
    answers.iter().find_map(|a| match a {
        IpAddr::V4(v4) if codes.iter().any(|(from, to)| from <= v4 && v4 <= to) => Some(*v4),
        _ => None,
    })
}

/// Configured lists, ready to ask (validated by the config crate).
pub fn lists(lists: &[kurier_config::DnsList]) -> Vec<DnsList> {
    lists
        .iter()
        .map(|l| DnsList {
            zone: l.zone.trim_end_matches('.').to_ascii_lowercase(),
            kind: l.kind,
            codes: l.code_ranges().unwrap_or_default(),
            weight: l.weight,
        })
        .collect()
}

/// The configured lists over the validating resolver.
pub struct Blocklists {
    pub resolver: kurier_dns::Resolver,
    pub lists: Vec<DnsList>,
    pub allow: Vec<DnsList>,
    pub reject_score: f64,
    pub budget: Duration,
}

impl Blocklists {
    /// From `[blocklists]` (validated by the config crate); `None` when no list is named.
    pub fn from_config(cfg: &BlocklistConfig, resolver: &kurier_dns::Resolver) -> Option<Self> {
        if cfg.lists.is_empty() {
            return None;
        }
        Some(Blocklists {
            resolver: resolver.clone(),
            lists: lists(&cfg.lists),
            allow: lists(&cfg.allow),
            reject_score: cfg.reject_score,
            budget: Duration::from_millis(cfg.timeout_ms),
        })
    }

    /// Asks every list about `ip` and `sender` at once, within the budget.
    pub async fn check(&self, ip: IpAddr, sender: &str) -> Listing {
        let mut set = tokio::task::JoinSet::new();
        let mut pending: Vec<String> = Vec::new();
        for (allow, list) in self
            .allow
            .iter()
            .map(|l| (true, l))
            .chain(self.lists.iter().map(|l| (false, l)))
        {
            let Some(name) = query_name(list.kind, &list.zone, ip, sender) else {
                continue;
            };
            let (resolver, list) = (self.resolver.clone(), list.clone());
            pending.push(list.zone.clone());
            set.spawn(async move {
                let answer = match resolver.addresses_of_family(&name, false).await {
                    Ok(a) => counts(&list.codes, &a.records),
                    // SERVFAIL, bogus, unreachable: a broken list never stops mail.
                    Err(e) => {
                        tracing::info!(zone = %list.zone, %name, error = %e, "DNS list lookup failed; counted as not listed");
                        None
                    }
                };
                (allow, list, answer)
            });
        }
        let deadline = tokio::time::Instant::now() + self.budget;
        let (mut allowed, mut hits, mut score) = (None, Vec::new(), 0.0);
        loop {
            let done = tokio::time::timeout_at(deadline, set.join_next()).await;
            if let Ok(Some(Ok((_, list, _)))) = &done {
                pending.retain(|z| *z != list.zone);
            }
            match done {
                Ok(Some(Ok((allow, list, Some(code))))) => {
                    if allow {
                        allowed = Some(list.zone.clone());
                    } else {
                        score += list.weight;
                        hits.push((list.zone.clone(), code, list.kind));
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    tracing::warn!(client = %ip, budget_ms = self.budget.as_millis() as u64,
                        lists = %pending.join(" "),
                        "DNS lists did not all answer in time; the rest count as not listed");
                    set.abort_all();
                    break;
                }
            }
        }
        if let Some(zone) = allowed {
            return Listing::Allowed(zone);
        }
        if hits.is_empty() {
            return Listing::Clean;
        }
        hits.sort_by(|a, b| a.0.cmp(&b.0));
        Listing::Listed {
            refuse: score >= self.reject_score,
            hits,
            score,
        }
    }
}

/// The reason a refused client is given (Postfix's wording, which operators and their users
/// search for).
pub fn refusal(ip: IpAddr, sender: &str, hits: &[(String, Ipv4Addr, DnsListKind)]) -> String {
    let by_ip: Vec<&str> = hits
        .iter()
        .filter(|h| h.2 == DnsListKind::Ip)
        .map(|h| h.0.as_str())
        .collect();
    let by_domain: Vec<&str> = hits
        .iter()
        .filter(|h| h.2 == DnsListKind::Domain)
        .map(|h| h.0.as_str())
        .collect();
    let mut parts = Vec::new();
    if !by_ip.is_empty() {
        parts.push(format!(
            "Service unavailable; Client host [{ip}] blocked using {}",
            by_ip.join(", ")
        ));
    }
    if !by_domain.is_empty() {
        let domain = sender.rsplit_once('@').map_or("", |(_, d)| d);
        parts.push(format!(
            "Sender address rejected: domain {domain} blocked using {}",
            by_domain.join(", ")
        ));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn rfc5782_query_names() {
        let v4: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(
            query_name(DnsListKind::Ip, "bl.test", v4, "").unwrap(),
            "99.2.0.192.bl.test"
        );
        // §2.4: 2001:db8:1:2:3:4:567:89ab, nibbles reversed.
        let v6: IpAddr = "2001:db8:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(
            query_name(DnsListKind::Ip, "bl.test", v6, "").unwrap(),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test"
        );
        assert_eq!(
            query_name(DnsListKind::Domain, "dbl.test", v4, "x@Evil.TEST").unwrap(),
            "evil.test.dbl.test"
        );
        assert_eq!(query_name(DnsListKind::Domain, "dbl.test", v4, ""), None);
    }

    #[test]
    fn only_listed_codes_count() {
        let default = kurier_config::DnsList {
            zone: "bl.test".into(),
            kind: DnsListKind::Ip,
            codes: Vec::new(),
            weight: 1.0,
        }
        .code_ranges()
        .unwrap();
        let a = |s: &str| -> IpAddr { s.parse().unwrap() };
        assert!(counts(&default, &[a("127.0.0.2")]).is_some());
        // Spamhaus's "query refused" is no listing.
        assert!(counts(&default, &[a("127.255.255.254")]).is_none());
        assert!(counts(&default, &[a("10.0.0.1")]).is_none());
        let narrow = [("127.0.0.2".parse().unwrap(), "127.0.0.11".parse().unwrap())];
        assert!(counts(&narrow, &[a("127.0.0.10")]).is_some());
        assert!(counts(&narrow, &[a("127.0.0.20")]).is_none());
        assert_eq!(
            refusal(
                a("192.0.2.1"),
                "x@evil.test",
                &[
                    (
                        "bl.test".into(),
                        "127.0.0.2".parse().unwrap(),
                        DnsListKind::Ip
                    ),
                    (
                        "dbl.test".into(),
                        "127.0.1.2".parse().unwrap(),
                        DnsListKind::Domain
                    ),
                ]
            ),
            "Service unavailable; Client host [192.0.2.1] blocked using bl.test; Sender address rejected: domain evil.test blocked using dbl.test"
        );
    }
}
