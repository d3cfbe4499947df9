//! Where mail for a domain goes and what each hop must prove (RFC 5321 §5.1, RFC 7505, RFC 7672
//! §2.1, §2.2): MX hosts in preference order (random among equals, never reordered by security,
//! DANE-11), the implicit MX when there is none, null MX as a permanent failure, and per host
//! its addresses and DANE policy. Bogus or indeterminate DNS never becomes "no record" or
//! cleartext (DNS-1, DANE-7): the host is skipped, or the domain deferred.

use std::net::IpAddr;

use kurier_dns::{DnsError, DnssecState, MxRecord, Resolver};
use kurier_policy::dane::{self, DanePolicy, Tlsa, TlsaAnswer};

/// A host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The MX host name as published.
    pub host: String,
    /// The TLSA base domain and reference name (the expanded CNAME if the chain is secure,
    /// RFC 7672 §2.2.2), which is also the SNI name.
    pub base: String,
    pub addresses: Vec<IpAddr>,
    pub dane: DanePolicy,
    /// Set when the host cannot be used before any DANE question arises: its address lookup
    /// failed, or it has no address (RFC 3463 status, reason). A routing failure, not a TLSA
    /// one — unless the address answer was bogus (4.7.5).
    pub unreachable: Option<(&'static str, String)>,
}

/// The plan for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Try these, in order. A hop with `DanePolicy::Skip` is tried by nobody but reported.
    Hops(Vec<Hop>),
    /// Permanent: the domain publishes null MX (RFC 7505 §3: 5.1.10).
    NullMx,
    /// Permanent: the domain does not exist (NXDOMAIN, RFC 3463 5.1.2).
    NoSuchDomain,
    /// Not now: the MX answer could not be trusted (DANE-7) or DNS failed; `status` is the
    /// RFC 3463 code (4.7.5 for bogus DNSSEC, 4.4.3 otherwise).
    Defer {
        status: &'static str,
        reason: String,
    },
}

/// MX records in the order to try (RFC 5321 §5.1): lowest preference first, equal preferences
/// shuffled by `shuffle_seed` so that load spreads; duplicates removed.
pub fn order_mx(mut records: Vec<MxRecord>, shuffle_seed: u64) -> Vec<String> {
    records.sort_by_key(|r| r.preference);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    let mut seed = shuffle_seed;
    while i < records.len() {
        let pref = records[i].preference;
        let mut group: Vec<String> = records[i..]
            .iter()
            .take_while(|r| r.preference == pref)
            .map(|r| r.exchange.clone())
            .collect();
        i += group.len();
        // Fisher–Yates with a small xorshift: spreading load needs no cryptography.
        for j in (1..group.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            group.swap(j, (seed % (j as u64 + 1)) as usize);
        }
        for h in group {
            if !out.contains(&h) {
                out.push(h);
            }
        }
    }
    out
}

/// Whether the MX answer is a null MX (RFC 7505 §3: exactly one record, preference 0, ".").
pub fn is_null_mx(records: &[MxRecord]) -> bool {
    records.len() == 1 && records[0].exchange == "."
}

/// Looks up the route for `domain` to SMTP servers on `port` (25 but in labs). `seed` shuffles
/// equal preferences.
pub async fn plan(resolver: &Resolver, domain: &str, port: u16, seed: u64) -> Route {
    let mx = match resolver.mx(domain).await {
        Ok(a) => a,
        Err(e) => {
            return Route::Defer {
                status: dns_status(&e),
                reason: dns_reason(domain, &e),
            };
        }
    };
    if mx.nxdomain {
        return Route::NoSuchDomain;
    }
    if is_null_mx(&mx.records) {
        return Route::NullMx;
    }
    let mx_secure = mx.state == DnssecState::Secure;
    // RFC 5321 §5.1: no MX records, the domain itself is the implicit MX. Null entries among
    // real ones are ignored.
    let hosts: Vec<String> = if mx.records.is_empty() {
        vec![domain.trim_end_matches('.').to_ascii_lowercase()]
    } else {
        order_mx(
            mx.records
                .into_iter()
                .filter(|r| r.exchange != ".")
                .collect(),
            seed,
        )
    };
    let mut hops = Vec::with_capacity(hosts.len());
    for host in hosts {
        hops.push(hop(resolver, domain, &host, port, mx_secure).await);
    }
    Route::Hops(hops)
}

async fn hop(resolver: &Resolver, domain: &str, host: &str, port: u16, mx_secure: bool) -> Hop {
    let unreachable = |status: &'static str, why: String| Hop {
        host: host.to_string(),
        base: host.to_string(),
        addresses: Vec::new(),
        dane: DanePolicy::Opportunistic,
        unreachable: Some((status, why)),
    };
    // One address family failing leaves the other (kurier-dns `addresses`).
    let addrs = match resolver.addresses(host).await {
        Ok(a) => a,
        Err(e) => return unreachable(dns_status(&e), dns_reason(host, &e)),
    };
    if addrs.records.is_empty() {
        // RFC 3463 X.4.4: unable to route.
        return unreachable("4.4.4", format!("{host} has no IPv4 or IPv6 address"));
    }
    let secure = mx_secure && addrs.state == DnssecState::Secure;
    let mut base = host.to_string();
    let mut tlsa = TlsaAnswer::Insecure;
    if secure {
        // RFC 7672 §2.2.2: a secure alias's expanded name first, then the name as published.
        let mut candidates = vec![host.to_string()];
        if let Ok(c) = resolver.canonical_name(host).await
            && c.state == DnssecState::Secure
            && let Some(target) = c.records.first()
        {
            candidates.insert(0, target.clone());
        }
        for name in candidates {
            tlsa = tlsa_answer(resolver, &name, port).await;
            base = name;
            if !matches!(&tlsa, TlsaAnswer::Secure(r) if r.is_empty()) {
                break;
            }
        }
    }
    let dane = dane::decide(secure, &base, domain, &tlsa);
    Hop {
        host: host.to_string(),
        base,
        addresses: addrs.records,
        dane,
        unreachable: None,
    }
}

async fn tlsa_answer(resolver: &Resolver, host: &str, port: u16) -> TlsaAnswer {
    match resolver.tlsa(&dane::tlsa_name(host, port)).await {
        Ok(a) if a.state == DnssecState::Secure => TlsaAnswer::Secure(
            a.records
                .into_iter()
                .map(|t| Tlsa {
                    usage: t.usage,
                    selector: t.selector,
                    matching: t.matching,
                    data: t.data,
                })
                .collect(),
        ),
        Ok(_) => TlsaAnswer::Insecure,
        Err(e @ DnsError::Bogus(_)) => TlsaAnswer::Bogus(e.to_string()),
        Err(e) => TlsaAnswer::Unavailable(e.to_string()),
    }
}

/// RFC 3463: a DNSSEC failure is a security failure (X.7.5), anything else a directory failure.
pub fn dns_status(e: &DnsError) -> &'static str {
    match e {
        DnsError::Bogus(_) => "4.7.5",
        _ => "4.4.3",
    }
}

fn dns_reason(name: &str, e: &DnsError) -> String {
    match e {
        DnsError::Bogus(_) => format!(
            "the DNS answers for {name} failed their DNSSEC check (bogus), so the real receiving server cannot be told from a forged one"
        ),
        DnsError::Indeterminate(_, why) => {
            format!("the DNS answers for {name} could not be obtained or validated ({why})")
        }
        DnsError::Invalid(why) => format!("{name}: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(p: u16, h: &str) -> MxRecord {
        MxRecord {
            preference: p,
            exchange: h.into(),
        }
    }

    #[test]
    fn preference_order_with_equal_ones_shuffled() {
        let recs = vec![
            mx(20, "c"),
            mx(10, "a"),
            mx(10, "b"),
            mx(30, "d"),
            mx(10, "a"),
        ];
        let mut seen = std::collections::HashSet::new();
        for seed in 1..50u64 {
            let o = order_mx(recs.clone(), seed);
            assert_eq!(o.len(), 4);
            assert_eq!(&o[2..], ["c", "d"], "preference wins over everything");
            seen.insert(o[0].clone());
        }
        assert_eq!(seen.len(), 2, "equal preferences are spread");
    }

    #[test]
    fn null_mx() {
        assert!(is_null_mx(&[mx(0, ".")]));
        assert!(!is_null_mx(&[mx(0, "."), mx(10, "a")]));
        assert!(!is_null_mx(&[]));
    }
}
