//! DANE for SMTP (RFC 7672 §2.2, §3; RFC 7671 §5, §9): from the validated MX and TLSA answers,
//! decide whether TLS is optional, mandatory, or mandatory and authenticated — or whether this
//! MX must not be used now.

/// One TLSA record as DNS delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    pub selector: u8,
    pub matching: u8,
    pub data: Vec<u8>,
}

/// The TLSA lookup of `_25._tcp.<mx>`, with what DNSSEC proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsaAnswer {
    /// Validated; empty when the absence itself is proven (NXDOMAIN/NODATA).
    Secure(Vec<Tlsa>),
    /// Provably unsigned (or below an insecure delegation).
    Insecure,
    /// Bogus: the signatures do not validate (somebody may be tampering).
    Bogus(String),
    /// Indeterminate: no answer now (timeout, SERVFAIL) — not a DNSSEC verdict.
    Unavailable(String),
}

/// What a connection to one MX host must achieve (TR-03108 DANE-7..DANE-11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DanePolicy {
    /// No DANE: opportunistic STARTTLS (MTA-STS may still apply).
    Opportunistic,
    /// A secure TLSA RRset with no usable record: TLS is mandatory, but unauthenticated
    /// (RFC 7672 §2.2, DANE-9).
    TlsRequired,
    /// TLS mandatory and the peer authenticated by one of `records` (DANE-8). For DANE-TA
    /// records the certificate must also name one of `names` (RFC 7672 §3.2.2).
    Authenticate {
        records: Vec<Tlsa>,
        names: Vec<String>,
    },
    /// Do not use this MX now (bogus or indeterminate TLSA): try the next one, or defer.
    /// Never cleartext (RFC 7672 §2.2, DANE-7). `bogus`: the answer failed validation; else
    /// there was none to be had just now.
    Skip { bogus: bool, why: String },
}

impl DanePolicy {
    /// The TLSRPT policy type this corresponds to (RFC 8460 §4.3).
    pub fn is_dane(&self) -> bool {
        matches!(
            self,
            DanePolicy::Authenticate { .. } | DanePolicy::TlsRequired
        )
    }
}

/// The TLSA owner name for an MX host (RFC 7672 §2.2.1; RFC 6698 §3: `_<port>._tcp.<host>`,
/// port 25 for SMTP).
pub fn tlsa_name(mx_host: &str, port: u16) -> String {
    format!("_{port}._tcp.{}", mx_host.trim_end_matches('.'))
}

/// Whether a record can be used for SMTP (RFC 7672 §3.1): usages 2 (DANE-TA) and 3 (DANE-EE)
/// only — PKIX-TA/EE (0, 1) are unusable for opportunistic SMTP — with a known selector and
/// matching type and data of the right length.
pub fn usable(t: &Tlsa) -> bool {
    let data_ok = match t.matching {
        0 => !t.data.is_empty(),
        1 => t.data.len() == 32,
        2 => t.data.len() == 64,
        _ => false,
    };
    matches!(t.usage, 2 | 3) && t.selector <= 1 && data_ok
}

/// RFC 7671 §9: per (usage, selector), when SHA2-512 records are present the SHA2-256 ones
/// are ignored (the strongest digest the publisher offers wins; Full is kept as it is).
pub fn digest_agility(records: Vec<Tlsa>) -> Vec<Tlsa> {
    let strongest = |u: u8, s: u8| {
        records
            .iter()
            .filter(|r| r.usage == u && r.selector == s && r.matching != 0)
            .map(|r| r.matching)
            .max()
    };
    records
        .iter()
        .filter(|r| r.matching == 0 || Some(r.matching) == strongest(r.usage, r.selector))
        .cloned()
        .collect()
}

/// The decision for one MX host. `mx_secure`: the MX RRset (and the host's addresses) validated
/// as secure — only then is DANE looked at (RFC 7672 §2.2). `next_hop` is the recipient domain.
pub fn decide(mx_secure: bool, mx_host: &str, next_hop: &str, tlsa: &TlsaAnswer) -> DanePolicy {
    if !mx_secure {
        return DanePolicy::Opportunistic;
    }
    match tlsa {
        TlsaAnswer::Insecure => DanePolicy::Opportunistic,
        TlsaAnswer::Bogus(why) => DanePolicy::Skip {
            bogus: true,
            why: format!("TLSA of {mx_host} cannot be trusted: {why}"),
        },
        TlsaAnswer::Unavailable(why) => DanePolicy::Skip {
            bogus: false,
            why: format!("TLSA of {mx_host} could not be looked up: {why}"),
        },
        TlsaAnswer::Secure(records) if records.is_empty() => DanePolicy::Opportunistic,
        TlsaAnswer::Secure(records) => {
            let usable: Vec<Tlsa> = records.iter().filter(|r| usable(r)).cloned().collect();
            if usable.is_empty() {
                return DanePolicy::TlsRequired;
            }
            let mut names = vec![mx_host.trim_end_matches('.').to_ascii_lowercase()];
            let hop = next_hop.trim_end_matches('.').to_ascii_lowercase();
            if !names.contains(&hop) {
                names.push(hop);
            }
            DanePolicy::Authenticate {
                records: digest_agility(usable),
                names,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(usage: u8, selector: u8, matching: u8) -> Tlsa {
        let len = match matching {
            1 => 32,
            2 => 64,
            _ => 100,
        };
        Tlsa {
            usage,
            selector,
            matching,
            data: vec![matching; len],
        }
    }

    const MX: &str = "mx.example.test";
    const HOP: &str = "example.test";

    #[test]
    fn dane7_insecure_mx_means_no_dane_and_bogus_tlsa_skips_the_mx() {
        let secure = TlsaAnswer::Secure(vec![t(3, 1, 1)]);
        assert_eq!(
            decide(false, MX, HOP, &secure),
            DanePolicy::Opportunistic,
            "TLSA only counts under a secure MX"
        );
        assert!(matches!(
            decide(true, MX, HOP, &TlsaAnswer::Bogus("bad signature".into())),
            DanePolicy::Skip { bogus: true, .. }
        ));
        assert!(matches!(
            decide(true, MX, HOP, &TlsaAnswer::Unavailable("timeout".into())),
            DanePolicy::Skip { bogus: false, .. }
        ));
    }

    #[test]
    fn dane8_secure_usable_records_require_authentication() {
        let p = decide(
            true,
            "MX.Example.TEST.",
            HOP,
            &TlsaAnswer::Secure(vec![t(3, 1, 1), t(2, 1, 1)]),
        );
        let DanePolicy::Authenticate { records, names } = p else {
            panic!("{p:?}")
        };
        assert_eq!(records.len(), 2);
        assert_eq!(names, ["mx.example.test", "example.test"]);
        assert!(decide(true, MX, HOP, &TlsaAnswer::Secure(vec![t(3, 1, 1)])).is_dane());
    }

    #[test]
    fn dane9_unusable_records_require_tls_and_no_records_mean_opportunistic() {
        for unusable in [
            t(0, 0, 1),
            t(1, 1, 1),
            t(3, 2, 1),
            t(3, 1, 3),
            Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![0; 31],
            },
        ] {
            assert_eq!(
                decide(true, MX, HOP, &TlsaAnswer::Secure(vec![unusable.clone()])),
                DanePolicy::TlsRequired,
                "{unusable:?}"
            );
        }
        let mixed = decide(
            true,
            MX,
            HOP,
            &TlsaAnswer::Secure(vec![t(1, 1, 1), t(3, 1, 1)]),
        );
        assert!(
            matches!(mixed, DanePolicy::Authenticate { ref records, .. } if records == &[t(3, 1, 1)])
        );
        assert_eq!(
            decide(true, MX, HOP, &TlsaAnswer::Secure(vec![])),
            DanePolicy::Opportunistic,
            "proven absence"
        );
        assert_eq!(
            decide(true, MX, HOP, &TlsaAnswer::Insecure),
            DanePolicy::Opportunistic
        );
    }

    #[test]
    fn dane11_the_strongest_digest_wins_per_usage_and_selector() {
        let records = vec![t(3, 1, 1), t(3, 1, 2), t(3, 0, 1), t(2, 1, 1), t(3, 1, 0)];
        let kept = digest_agility(records);
        assert_eq!(kept, [t(3, 1, 2), t(3, 0, 1), t(2, 1, 1), t(3, 1, 0)]);
        assert_eq!(
            tlsa_name("mx.example.test.", 25),
            "_25._tcp.mx.example.test"
        );
    }
}
