//! DMARC (RFC 7489; the policy discovery of DMARCbis, draft-ietf-dmarc-dmarcbis): does the
//! author's domain (RFC5322.From) stand behind the message, and what does it ask us to do if
//! not?
//!
//! `DmarcRecord::parse` reads a record (§6.3, §6.4; unknown or bad tags are ignored as §6.3
//! says), `discover` finds the policy by the DMARCbis tree walk (`_dmarc.<From domain>`, then
//! up the tree, at most 8 queries), `evaluate` checks identifier alignment (§3.1) of the SPF
//! and DKIM results, and `disposition` applies `p`/`sp`/`np` and `pct` (§6.6.4). Only
//! `discover` asks DNS.

use kurier_dns::{DnsError, DnssecState};

use crate::AuthLookup;
use crate::psl::PublicSuffixList;

/// What a domain asks receivers to do with mail that fails (§6.3 `p=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Policy {
    None,
    Quarantine,
    Reject,
}

impl Policy {
    fn parse(s: &str) -> Option<Policy> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Some(Policy::None),
            "quarantine" => Some(Policy::Quarantine),
            "reject" => Some(Policy::Reject),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }

    /// §6.6.4: a message not sampled by `pct` gets the next policy down.
    fn weaker(self) -> Policy {
        match self {
            Policy::Reject => Policy::Quarantine,
            _ => Policy::None,
        }
    }
}

/// One DMARC record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcRecord {
    pub p: Policy,
    pub sp: Option<Policy>,
    /// DMARCbis: the policy for subdomains that do not exist.
    pub np: Option<Policy>,
    pub pct: u8,
    pub strict_dkim: bool,
    pub strict_spf: bool,
    /// Aggregate report destinations (`rua=`), the URIs as written.
    pub rua: Vec<String>,
    /// Failure reporting options (`fo=`), repeated in aggregate reports.
    pub fo: String,
}

/// Whether a TXT string claims to be a DMARC record (§6.6.3: starts with `v=DMARC1`).
pub fn is_dmarc(txt: &str) -> bool {
    let mut tags = txt.split(';');
    tags.next()
        .and_then(|t| t.split_once('='))
        .is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("v") && v.trim().eq_ignore_ascii_case("DMARC1")
        })
}

impl DmarcRecord {
    /// §6.3: `v=DMARC1` first, then tags; a bad `p` makes the record invalid unless it names
    /// report destinations (then `p=none`, §6.6.3); other bad values fall back to defaults.
    pub fn parse(txt: &str) -> Result<DmarcRecord, String> {
        if !is_dmarc(txt) {
            return Err("does not start with v=DMARC1".into());
        }
        let mut p = None;
        let mut r = DmarcRecord {
            p: Policy::None,
            sp: None,
            np: None,
            pct: 100,
            strict_dkim: false,
            strict_spf: false,
            rua: Vec::new(),
            fo: "0".into(),
        };
        for tag in txt.split(';').skip(1) {
            let Some((k, v)) = tag.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "p" => p = Policy::parse(v),
                "sp" => r.sp = Policy::parse(v),
                "np" => r.np = Policy::parse(v),
                "pct" => r.pct = v.parse::<u8>().ok().filter(|n| *n <= 100).unwrap_or(100),
                "adkim" => r.strict_dkim = v.eq_ignore_ascii_case("s"),
                "aspf" => r.strict_spf = v.eq_ignore_ascii_case("s"),
                "fo" if !v.is_empty() && v.len() <= 16 => r.fo = v.to_string(),
                "rua" => {
                    r.rua = v
                        .split(',')
                        .map(|u| u.trim().to_string())
                        .filter(|u| !u.is_empty())
                        .take(8)
                        .collect()
                }
                _ => {}
            }
        }
        match (p, r.rua.is_empty()) {
            (Some(p), _) => r.p = p,
            (None, false) => r.p = Policy::None,
            (None, true) => return Err("no valid p= tag".into()),
        }
        Ok(r)
    }
}

/// The record in canonical form (what a DMARC event keeps; `parse` reads it back).
impl std::fmt::Display for DmarcRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = |strict: bool| if strict { "s" } else { "r" };
        write!(f, "v=DMARC1; p={}", self.p.as_str())?;
        if let Some(sp) = self.sp {
            write!(f, "; sp={}", sp.as_str())?;
        }
        if let Some(np) = self.np {
            write!(f, "; np={}", np.as_str())?;
        }
        write!(
            f,
            "; pct={}; adkim={}; aspf={}; fo={}",
            self.pct,
            a(self.strict_dkim),
            a(self.strict_spf),
            self.fo
        )?;
        if !self.rua.is_empty() {
            write!(f, "; rua={}", self.rua.join(","))?;
        }
        Ok(())
    }
}

/// The result (RFC 8601 §2.7.1 / RFC 7489 §11.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcResult {
    /// No policy published.
    None,
    Pass,
    Fail,
    /// The policy or an aligned identifier could not be checked now.
    TempError,
}

impl DmarcResult {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcResult::None => "none",
            DmarcResult::Pass => "pass",
            DmarcResult::Fail => "fail",
            DmarcResult::TempError => "temperror",
        }
    }
}

/// A published policy as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub record: DmarcRecord,
    /// Where the record is (the From domain or one above it).
    pub domain: String,
    /// The policy that applies to the From domain: `p` at the domain itself, else `np` for a
    /// domain that does not exist, else `sp`, else `p`.
    pub policy: Policy,
    pub dnssec: DnssecState,
}

/// DMARCbis §4.10 tree walk: `_dmarc.<domain>`, then its parents (at most 8 queries: a name
/// of more than 8 labels jumps to its last 7). `Ok(None)`: no policy anywhere. A lookup that
/// fails is an error (temperror): the policy is unknown, not absent.
pub async fn discover<L: AuthLookup>(
    lookup: &L,
    from_domain: &str,
) -> Result<Option<Discovered>, DnsError> {
    let domain = from_domain.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let mut names = vec![domain.clone()];
    let start = if labels.len() > 8 {
        labels.len() - 7
    } else {
        1
    };
    for i in start..labels.len() {
        names.push(labels[i..].join("."));
    }
    let mut secure = true;
    for name in names {
        let answer = match lookup.txt(&format!("_dmarc.{name}")).await {
            Ok(a) => a,
            Err(DnsError::Invalid(_)) => continue,
            Err(e) => return Err(e),
        };
        secure &= answer.state == DnssecState::Secure;
        let claims: Vec<&String> = answer.records.iter().filter(|t| is_dmarc(t)).collect();
        // §6.6.3: more than one record at a name means none there.
        let [one] = claims.as_slice() else {
            continue;
        };
        let Ok(record) = DmarcRecord::parse(one) else {
            continue;
        };
        let policy = if name == domain {
            record.p
        } else {
            let np = match record.np {
                Some(np) if !exists(lookup, &domain).await? => Some(np),
                _ => None,
            };
            np.or(record.sp).unwrap_or(record.p)
        };
        return Ok(Some(Discovered {
            record,
            domain: name,
            policy,
            dnssec: if secure {
                DnssecState::Secure
            } else {
                DnssecState::Insecure
            },
        }));
    }
    Ok(None)
}

/// DMARCbis `np`: a domain exists unless it is NXDOMAIN (asked for MX, which any name answers).
async fn exists<L: AuthLookup>(lookup: &L, domain: &str) -> Result<bool, DnsError> {
    match lookup.mx(domain).await {
        Ok(a) => Ok(!a.nxdomain),
        Err(DnsError::Invalid(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// An authenticated identifier as DMARC sees it: a domain and whether its check passed,
/// failed for good, or could not be done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Pass,
    Fail,
    TempError,
}

/// What `evaluate` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcOutcome {
    pub result: DmarcResult,
    pub from_domain: String,
    pub policy: Option<Discovered>,
    /// Which identifier aligned with a pass: "spf", "dkim", both, or neither.
    pub spf_aligned: bool,
    pub dkim_aligned: bool,
    pub reason: String,
}

/// §3.1: `id` is aligned with `from` (strict: equal; relaxed: same organizational domain).
pub fn aligned(psl: &PublicSuffixList, from: &str, id: &str, strict: bool) -> bool {
    let (from, id) = (
        from.to_ascii_lowercase(),
        id.trim_end_matches('.').to_ascii_lowercase(),
    );
    if strict {
        from == id
    } else {
        psl.organizational_domain(&from) == psl.organizational_domain(&id)
    }
}

/// §6.6.2: pass if SPF (its domain and result) or one DKIM signature (d= and result) passes
/// aligned; temperror if neither passed but an aligned check could not be done.
pub fn evaluate(
    psl: &PublicSuffixList,
    from_domain: &str,
    policy: Option<Discovered>,
    spf: Option<(&str, Check)>,
    dkim: &[(&str, Check)],
) -> DmarcOutcome {
    let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
    let Some(found) = policy else {
        return DmarcOutcome {
            result: DmarcResult::None,
            from_domain: from.clone(),
            policy: None,
            spf_aligned: false,
            dkim_aligned: false,
            reason: format!("{from} publishes no DMARC policy"),
        };
    };
    let (strict_spf, strict_dkim) = (found.record.strict_spf, found.record.strict_dkim);
    let spf_aligned_check = spf.filter(|(d, _)| aligned(psl, &from, d, strict_spf));
    let dkim_aligned: Vec<Check> = dkim
        .iter()
        .filter(|(d, _)| aligned(psl, &from, d, strict_dkim))
        .map(|(_, c)| *c)
        .collect();
    let spf_pass = spf_aligned_check.is_some_and(|(_, c)| c == Check::Pass);
    let dkim_pass = dkim_aligned.contains(&Check::Pass);
    let temporary = spf_aligned_check.is_some_and(|(_, c)| c == Check::TempError)
        || dkim_aligned.contains(&Check::TempError);
    let (result, reason) = if spf_pass || dkim_pass {
        let by = match (spf_pass, dkim_pass) {
            (true, true) => "SPF and DKIM",
            (true, false) => "SPF",
            _ => "DKIM",
        };
        (DmarcResult::Pass, format!("aligned {by} pass for {from}"))
    } else if temporary {
        (
            DmarcResult::TempError,
            format!("an aligned identifier of {from} could not be checked now"),
        )
    } else {
        (
            DmarcResult::Fail,
            format!("neither SPF nor DKIM passed aligned with {from}"),
        )
    };
    DmarcOutcome {
        result,
        from_domain: from,
        policy: Some(found),
        spf_aligned: spf_pass,
        dkim_aligned: dkim_pass,
        reason,
    }
}

/// What happens to the message (§6.6.4, §6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Deliver,
    /// Into the recipient's Junk folder.
    Quarantine,
    /// `550 5.7.1` at the end of DATA.
    Reject,
    /// `451 4.7.0`: the policy or an identifier could not be checked; the sender retries.
    TempFail,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Deliver => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
            Disposition::TempFail => "tempfail",
        }
    }
}

/// The policy applied to `outcome`: `sample` (0–99, drawn per message) against `pct`; a
/// temperror is never a rejection — a 4xx when the domain's policy would act, else delivered.
pub fn disposition(outcome: &DmarcOutcome, sample: u8) -> Disposition {
    let Some(found) = &outcome.policy else {
        // No policy found, or none could be looked up (then the domain may well reject).
        return match outcome.result {
            DmarcResult::TempError => Disposition::TempFail,
            _ => Disposition::Deliver,
        };
    };
    let mut policy = found.policy;
    if sample >= found.record.pct {
        policy = policy.weaker();
    }
    match (outcome.result, policy) {
        (DmarcResult::Pass | DmarcResult::None, _) | (_, Policy::None) => Disposition::Deliver,
        (DmarcResult::TempError, _) => Disposition::TempFail,
        (DmarcResult::Fail, Policy::Quarantine) => Disposition::Quarantine,
        (DmarcResult::Fail, Policy::Reject) => Disposition::Reject,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn records_by_rfc7489_section_6_3() {
        let r = DmarcRecord::parse("v=DMARC1; p=reject; sp=quarantine; pct=50; adkim=s; rua=mailto:d@a.test,mailto:e@b.test!10m").unwrap();
        assert_eq!(
            (r.p, r.sp, r.pct, r.strict_dkim, r.strict_spf),
            (Policy::Reject, Some(Policy::Quarantine), 50, true, false)
        );
        assert_eq!(r.rua.len(), 2);
        assert!(DmarcRecord::parse("v=DMARC1; p=bogus").is_err());
        assert_eq!(
            DmarcRecord::parse("v=DMARC1; p=bogus; rua=mailto:x@a.test")
                .unwrap()
                .p,
            Policy::None
        );
        assert_eq!(
            DmarcRecord::parse("v=DMARC1;p=quarantine;pct=900")
                .unwrap()
                .pct,
            100
        );
        assert!(DmarcRecord::parse("p=reject; v=DMARC1").is_err());
        assert!(DmarcRecord::parse("v=DMARC10; p=reject").is_err());
        assert!(is_dmarc("V = dmarc1 ;p=none"));
        // The canonical form reads back as the same record.
        let again = DmarcRecord::parse(&r.to_string()).unwrap();
        assert_eq!(again, r);
        assert_eq!(
            DmarcRecord::parse("v=DMARC1; p=none; fo=1:d").unwrap().fo,
            "1:d"
        );
    }

    fn found(p: Policy, pct: u8) -> Discovered {
        Discovered {
            record: DmarcRecord {
                p,
                sp: None,
                np: None,
                pct,
                strict_dkim: false,
                strict_spf: false,
                rua: vec![],
                fo: "0".into(),
            },
            domain: "bank.test".into(),
            policy: p,
            dnssec: DnssecState::Secure,
        }
    }

    #[test]
    fn alignment_and_policy() {
        let psl = PublicSuffixList::parse("test\nco.uk\n").unwrap();
        assert!(aligned(&psl, "mail.bank.test", "bank.test", false));
        assert!(!aligned(&psl, "mail.bank.test", "bank.test", true));
        assert!(!aligned(&psl, "bank.co.uk", "evil.co.uk", false));
        let reject = || Some(found(Policy::Reject, 100));
        let pass = evaluate(
            &psl,
            "bank.test",
            reject(),
            Some(("evil.test", Check::Pass)),
            &[("mail.bank.test", Check::Pass)],
        );
        assert_eq!(
            (pass.result, pass.dkim_aligned, pass.spf_aligned),
            (DmarcResult::Pass, true, false)
        );
        let fail = evaluate(
            &psl,
            "bank.test",
            reject(),
            Some(("evil.test", Check::Pass)),
            &[("evil.test", Check::Pass)],
        );
        assert_eq!(fail.result, DmarcResult::Fail);
        assert_eq!(disposition(&fail, 0), Disposition::Reject);
        let temp = evaluate(
            &psl,
            "bank.test",
            reject(),
            Some(("bank.test", Check::TempError)),
            &[],
        );
        assert_eq!(
            (temp.result, disposition(&temp, 0)),
            (DmarcResult::TempError, Disposition::TempFail)
        );
        let none = evaluate(&psl, "bank.test", None, None, &[]);
        assert_eq!(
            (none.result, disposition(&none, 0)),
            (DmarcResult::None, Disposition::Deliver)
        );
        // pct=30: the 30 % sampled get the policy, the others the next one down.
        let half = evaluate(
            &psl,
            "bank.test",
            Some(found(Policy::Reject, 30)),
            None,
            &[],
        );
        assert_eq!(disposition(&half, 29), Disposition::Reject);
        assert_eq!(disposition(&half, 30), Disposition::Quarantine);
        let q = evaluate(
            &psl,
            "bank.test",
            Some(found(Policy::Quarantine, 0)),
            None,
            &[],
        );
        assert_eq!(disposition(&q, 0), Disposition::Deliver);
        let monitor = evaluate(&psl, "bank.test", Some(found(Policy::None, 100)), None, &[]);
        assert_eq!(
            (monitor.result, disposition(&monitor, 0)),
            (DmarcResult::Fail, Disposition::Deliver)
        );
    }
}
