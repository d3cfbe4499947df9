//! Which policy governs the connection to one MX host (RFC 8461 §2, RFC 7672 §2.2; TR-03108
//! DANE-12): DANE wherever the host has a secure TLSA answer — an MTA-STS policy never
//! overrides it, and never rescues a host whose DANE lookup failed — then MTA-STS, then best
//! effort.

use crate::dane::DanePolicy;
use crate::sts::StsRequirement;

/// The protection a connection must achieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// DANE applies (authenticated, TLS-only, or the host is skipped): `DanePolicy` says how.
    Dane,
    /// MTA-STS: PKIX-verified TLS naming the host; `enforce = false` (testing) delivers anyway.
    Sts { enforce: bool },
    /// STARTTLS when offered; clear text otherwise.
    BestEffort,
}

impl Protection {
    /// DANE first; MTA-STS only where DANE does not apply.
    pub fn of(dane: &DanePolicy, sts: Option<&StsRequirement>) -> Protection {
        match dane {
            DanePolicy::Authenticate { .. } | DanePolicy::TlsRequired | DanePolicy::Skip { .. } => {
                Protection::Dane
            }
            DanePolicy::Opportunistic => match sts {
                Some(
                    StsRequirement::Verify { enforce } | StsRequirement::NotListed { enforce },
                ) => Protection::Sts { enforce: *enforce },
                Some(StsRequirement::None) | None => Protection::BestEffort,
            },
        }
    }

    /// No delivery without TLS that passed the check.
    pub fn required(self) -> bool {
        matches!(self, Protection::Dane | Protection::Sts { enforce: true })
    }

    /// The name in logs and notices.
    pub fn word(self) -> &'static str {
        match self {
            Protection::Dane => "DANE",
            Protection::Sts { .. } => "MTA-STS",
            Protection::BestEffort => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dane::Tlsa;

    fn authenticate() -> DanePolicy {
        DanePolicy::Authenticate {
            records: vec![Tlsa {
                usage: 3,
                selector: 1,
                matching: 1,
                data: vec![0; 32],
            }],
            names: vec![],
        }
    }

    /// DANE-12: with both published, DANE wins; MTA-STS never overrides or rescues DANE.
    #[test]
    fn dane12_dane_takes_precedence_over_mta_sts() {
        let enforce = StsRequirement::Verify { enforce: true };
        let testing = StsRequirement::Verify { enforce: false };
        let unlisted = StsRequirement::NotListed { enforce: true };
        for sts in [Some(&enforce), Some(&testing), Some(&unlisted), None] {
            assert_eq!(Protection::of(&authenticate(), sts), Protection::Dane);
            assert_eq!(
                Protection::of(&DanePolicy::TlsRequired, sts),
                Protection::Dane
            );
            assert_eq!(
                Protection::of(
                    &DanePolicy::Skip {
                        bogus: true,
                        why: "bogus TLSA".into()
                    },
                    sts
                ),
                Protection::Dane,
                "a failed DANE lookup is not rescued by MTA-STS"
            );
        }
        let o = DanePolicy::Opportunistic;
        assert_eq!(
            Protection::of(&o, Some(&enforce)),
            Protection::Sts { enforce: true }
        );
        assert_eq!(
            Protection::of(&o, Some(&testing)),
            Protection::Sts { enforce: false }
        );
        assert_eq!(
            Protection::of(&o, Some(&unlisted)),
            Protection::Sts { enforce: true }
        );
        assert_eq!(
            Protection::of(&o, Some(&StsRequirement::None)),
            Protection::BestEffort
        );
        assert_eq!(Protection::of(&o, None), Protection::BestEffort);
    }

    #[test]
    fn what_is_required() {
        assert!(Protection::Dane.required());
        assert!(Protection::Sts { enforce: true }.required());
        assert!(!Protection::Sts { enforce: false }.required());
        assert!(!Protection::BestEffort.required());
    }
}
