//! Where mail for a domain goes and what each hop must prove (RFC 5321 §5.1, RFC 7505, RFC 7672
//! §2.1, §2.2): MX hosts in preference order (random among equals, never reordered by security,
//! DANE-11), the implicit MX when there is none, null MX as a permanent failure, and per host
//! its addresses and DANE policy. Bogus or indeterminate DNS never becomes "no record" or
//! cleartext (DNS-1, DANE-7): the host is skipped, or the domain deferred.

use std::net::IpAddr;

use kurier_dns::{Answer, DnsError, DnssecState, MxRecord, RouteLookup, TlsaData};
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
pub async fn plan(resolver: &impl RouteLookup, domain: &str, port: u16, seed: u64) -> Route {
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

/// One MX host of `domain`: its addresses, TLSA base (after a secure CNAME) and DANE policy;
/// `mx_secure`: whether the MX answer was DNSSEC-secure.
pub async fn hop(
    resolver: &impl RouteLookup,
    domain: &str,
    host: &str,
    port: u16,
    mx_secure: bool,
) -> Hop {
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

/// The TLSA RRset at `_<port>._tcp.<host>` with what DNSSEC proved about it.
pub async fn tlsa_answer(resolver: &impl RouteLookup, host: &str, port: u16) -> TlsaAnswer {
    tlsa_verdict(resolver.tlsa(&dane::tlsa_name(host, port)).await)
}

/// What a TLSA lookup's result means for DANE.
pub fn tlsa_verdict(result: Result<Answer<TlsaData>, DnsError>) -> TlsaAnswer {
    match result {
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
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;
    use kurier_dns::{Answer, TlsaData};

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

    /// Made-up DNS: per (type, name) an answer or an error; anything else is NXDOMAIN-free
    /// NODATA, insecure.
    #[derive(Default)]
    struct Answers {
        mx: std::collections::HashMap<String, Result<Answer<MxRecord>, DnsError>>,
        addresses: std::collections::HashMap<String, Result<Answer<IpAddr>, DnsError>>,
        cname: std::collections::HashMap<String, Result<Answer<String>, DnsError>>,
        tlsa: std::collections::HashMap<String, Result<Answer<TlsaData>, DnsError>>,
    }

    fn answer<T>(records: Vec<T>, state: DnssecState) -> Answer<T> {
        Answer {
            records,
            state,
            nxdomain: false,
        }
    }

    fn nodata<T>() -> Result<Answer<T>, DnsError> {
        Ok(answer(Vec::new(), DnssecState::Insecure))
    }

    impl RouteLookup for Answers {
        async fn mx(&self, domain: &str) -> Result<Answer<MxRecord>, DnsError> {
            self.mx.get(domain).cloned().unwrap_or_else(nodata)
        }
        async fn addresses(&self, host: &str) -> Result<Answer<IpAddr>, DnsError> {
            self.addresses.get(host).cloned().unwrap_or_else(nodata)
        }
        async fn canonical_name(&self, name: &str) -> Result<Answer<String>, DnsError> {
            self.cname.get(name).cloned().unwrap_or_else(nodata)
        }
        async fn tlsa(&self, name: &str) -> Result<Answer<TlsaData>, DnsError> {
            self.tlsa.get(name).cloned().unwrap_or_else(nodata)
        }
    }

    const SECURE: DnssecState = DnssecState::Secure;

    fn world() -> Answers {
        let mut a = Answers::default();
        let ip = |s: &str| vec![s.parse::<IpAddr>().unwrap()];
        a.mx.insert(
            "d.test".into(),
            Ok(answer(vec![mx(10, "mx.d.test")], SECURE)),
        );
        a.addresses
            .insert("mx.d.test".into(), Ok(answer(ip("192.0.2.1"), SECURE)));
        a.tlsa.insert(
            "_25._tcp.mx.d.test".into(),
            Ok(answer(
                vec![TlsaData {
                    usage: 3,
                    selector: 1,
                    matching: 1,
                    data: vec![7; 32],
                    ttl: 60,
                }],
                SECURE,
            )),
        );
        a
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn hops(route: Route) -> Vec<Hop> {
        match route {
            Route::Hops(h) => h,
            other => panic!("{other:?}"),
        }
    }

    /// DANE-8: a secure MX, address and TLSA make the hop authenticate.
    #[test]
    fn dane8_a_secure_chain_with_a_tlsa_record_authenticates() {
        let h = hops(block_on(plan(&world(), "d.test", 25, 1)));
        assert_eq!(h.len(), 1);
        assert!(
            matches!(&h[0].dane, DanePolicy::Authenticate { records, .. } if records.len() == 1),
            "{h:?}"
        );
        assert_eq!(h[0].addresses.len(), 1);
    }

    /// DANE-7, DNS-1: a bogus MX answer defers with 4.7.5; a bogus TLSA skips the host
    /// (never clear text); a TLSA lookup that fails otherwise skips it as unavailable.
    #[test]
    fn dane7_bogus_and_missing_answers_never_become_no_record() {
        let mut w = world();
        w.mx.insert("d.test".into(), Err(DnsError::Bogus("sig".into())));
        assert!(matches!(
            block_on(plan(&w, "d.test", 25, 1)),
            Route::Defer {
                status: "4.7.5",
                ..
            }
        ));
        let mut w = world();
        w.mx.insert(
            "d.test".into(),
            Err(DnsError::Indeterminate("d.test".into(), "timeout".into())),
        );
        assert!(matches!(
            block_on(plan(&w, "d.test", 25, 1)),
            Route::Defer {
                status: "4.4.3",
                ..
            }
        ));
        let mut w = world();
        w.tlsa.insert(
            "_25._tcp.mx.d.test".into(),
            Err(DnsError::Bogus("sig".into())),
        );
        let h = hops(block_on(plan(&w, "d.test", 25, 1)));
        assert!(
            matches!(&h[0].dane, DanePolicy::Skip { bogus: true, .. }),
            "{h:?}"
        );
        let mut w = world();
        w.tlsa.insert(
            "_25._tcp.mx.d.test".into(),
            Err(DnsError::Indeterminate("t".into(), "timeout".into())),
        );
        let h = hops(block_on(plan(&w, "d.test", 25, 1)));
        assert!(
            matches!(&h[0].dane, DanePolicy::Skip { bogus: false, .. }),
            "{h:?}"
        );
    }

    /// An insecure MX answer means no DANE at all, whatever the TLSA answer says (RFC 7672
    /// §2.2.1); a host without addresses is unreachable with 4.4.4, not a DNSSEC failure.
    #[test]
    fn insecure_chains_and_hosts_without_addresses() {
        let mut w = world();
        w.mx.insert(
            "d.test".into(),
            Ok(answer(vec![mx(10, "mx.d.test")], DnssecState::Insecure)),
        );
        let h = hops(block_on(plan(&w, "d.test", 25, 1)));
        assert_eq!(h[0].dane, DanePolicy::Opportunistic);
        let mut w = world();
        w.addresses
            .insert("mx.d.test".into(), Ok(answer(Vec::new(), SECURE)));
        let h = hops(block_on(plan(&w, "d.test", 25, 1)));
        assert!(matches!(&h[0].unreachable, Some(("4.4.4", _))), "{h:?}");
    }

    /// RFC 7672 §2.2.2: a secure CNAME's target is the TLSA base (and SNI) when it has TLSA
    /// records; RFC 5321 §5.1 and RFC 7505: the implicit MX, null MX and NXDOMAIN.
    #[test]
    fn cname_targets_implicit_and_null_mx_and_nxdomain() {
        let mut w = world();
        w.cname.insert(
            "mx.d.test".into(),
            Ok(answer(vec!["real.d.test".to_string()], SECURE)),
        );
        let t = w.tlsa.remove("_25._tcp.mx.d.test").unwrap();
        w.tlsa.insert("_25._tcp.real.d.test".into(), t);
        let h = hops(block_on(plan(&w, "d.test", 25, 1)));
        assert_eq!(h[0].base, "real.d.test");
        assert!(matches!(h[0].dane, DanePolicy::Authenticate { .. }));

        let mut w = world();
        w.mx.insert("d.test".into(), Ok(answer(Vec::new(), SECURE)));
        w.addresses.insert(
            "d.test".into(),
            Ok(answer(vec!["192.0.2.9".parse().unwrap()], SECURE)),
        );
        let h = hops(block_on(plan(&w, "D.test.", 25, 1)));
        assert_eq!(h[0].host, "d.test", "the implicit MX");

        let mut w = world();
        w.mx.insert("d.test".into(), Ok(answer(vec![mx(0, ".")], SECURE)));
        assert_eq!(block_on(plan(&w, "d.test", 25, 1)), Route::NullMx);
        let mut w = world();
        w.mx.insert(
            "d.test".into(),
            Ok(Answer {
                records: Vec::new(),
                state: SECURE,
                nxdomain: true,
            }),
        );
        assert_eq!(block_on(plan(&w, "d.test", 25, 1)), Route::NoSuchDomain);
    }

    #[test]
    fn null_mx() {
        assert!(is_null_mx(&[mx(0, ".")]));
        assert!(!is_null_mx(&[mx(0, "."), mx(10, "a")]));
        assert!(!is_null_mx(&[]));
    }
}
