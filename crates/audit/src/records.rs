//! The sender-authentication records of a domain, judged as BSI TR-03182 and the BSI e-mail
//! checker ask: SPF (RFC 7208) ending in `-all` (SPF-1), DMARC (RFC 7489) with
//! `p=quarantine` or `p=reject` for all mail and reports asked for (DMARC-1), and the DKIM key
//! of every selector the domain's mail is signed with, of at least 2048 bits for RSA (DKIM-1;
//! RFC 8301 sets 1024 as the floor, TR-03182 and the checker ask for 2048).
//!
//! The judgements are pure functions of the TXT strings found, parsed with the same code that
//! checks inbound mail (`kurier-mailauth`, `kurier-dkim`), so the audit and the MX cannot
//! disagree about what a record means.

use kurier_dkim::verify::published_key;
use kurier_mailauth::SpfResult;
use kurier_mailauth::dmarc::{DmarcRecord, Policy, is_dmarc};
use kurier_mailauth::spf::{Record, is_spf};

use crate::Status;

/// A judgement: the status, what was seen, and the fix when it is not a pass.
pub type Judgement = (Status, String, &'static str);

/// The smallest RSA key TR-03182 accepts for DKIM.
pub const MIN_DKIM_RSA_BITS: u32 = 2048;

/// SPF-1 for the TXT strings at the domain; `redirected`: the records at the `redirect=`
/// target, if the record ends with one (one step, as the checker does).
pub fn judge_spf(records: &[String], redirected: Option<&[String]>) -> Judgement {
    const FIX: &str =
        "publish exactly one `v=spf1 … -all` record naming the servers that send your mail";
    let spf: Vec<&String> = records.iter().filter(|t| is_spf(t)).collect();
    let one = match spf.as_slice() {
        [] => return (Status::Fail, "no SPF record".into(), FIX),
        [one] => one,
        _ => {
            return (
                Status::Fail,
                format!("{} SPF records (RFC 7208 §4.5: permerror)", spf.len()),
                FIX,
            );
        }
    };
    let record = match Record::parse(one) {
        Ok(r) => r,
        Err(e) => return (Status::Fail, format!("{one:?}: {e}"), FIX),
    };
    let ending = match (record.default_result(), record.redirect(), redirected) {
        (Some(r), _, _) => r,
        (None, Some(target), Some(there)) => {
            let (status, seen, _) = judge_spf(there, None);
            return (
                status,
                format!("{one:?} → redirect to {target}: {seen}"),
                FIX,
            );
        }
        (None, _, _) => {
            return (
                Status::Fail,
                format!("{one:?} ends without `all` (senders it does not name get neutral)"),
                FIX,
            );
        }
    };
    match ending {
        SpfResult::Fail => (Status::Pass, format!("{one:?}"), FIX),
        SpfResult::SoftFail => (
            Status::Fail,
            format!("{one:?} ends with ~all: forgeries get softfail, not fail"),
            "end the record with -all",
        ),
        other => (
            Status::Fail,
            format!("{one:?} ends with {}all", qualifier(other)),
            "end the record with -all",
        ),
    }
}

fn qualifier(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "+",
        SpfResult::Neutral => "?",
        SpfResult::SoftFail => "~",
        _ => "-",
    }
}

/// DMARC-1 for the TXT strings at `_dmarc.<domain>`.
pub fn judge_dmarc(records: &[String]) -> Judgement {
    const FIX: &str = "publish `v=DMARC1; p=reject; rua=mailto:…` at _dmarc.<domain> (kurier dns)";
    let claims: Vec<&String> = records.iter().filter(|t| is_dmarc(t)).collect();
    let one = match claims.as_slice() {
        [] => return (Status::Fail, "no DMARC record".into(), FIX),
        [one] => one,
        _ => {
            return (
                Status::Fail,
                format!("{} DMARC records: receivers use none", claims.len()),
                FIX,
            );
        }
    };
    let r = match DmarcRecord::parse(one) {
        Ok(r) => r,
        Err(e) => return (Status::Fail, format!("{one:?}: {e}"), FIX),
    };
    let mut problems = Vec::new();
    if r.p == Policy::None {
        problems.push("p=none: failing mail is delivered anyway".to_string());
    }
    if r.sp == Some(Policy::None) && r.p != Policy::None {
        problems.push("sp=none: mail from subdomains is not protected".into());
    }
    if r.pct < 100 {
        problems.push(format!(
            "pct={}: the policy covers only part of the mail",
            r.pct
        ));
    }
    if r.rua.is_empty() {
        problems.push("no rua: nobody learns who sends in the domain's name".into());
    }
    if problems.is_empty() {
        (Status::Pass, format!("{one:?}"), FIX)
    } else {
        (
            Status::Fail,
            format!("{one:?}: {}", problems.join("; ")),
            "use p=quarantine or p=reject for all mail (pct=100) and name a rua address",
        )
    }
}

/// DKIM-1 for the TXT strings at `<selector>._domainkey.<domain>`.
pub fn judge_dkim(records: &[String]) -> Judgement {
    const FIX: &str = "publish the selector's key: RSA of 2048 bits or more, or Ed25519 beside RSA (kurier dkim generate)";
    let record = match records {
        [] => return (Status::Fail, "no key record".into(), FIX),
        [one] => one,
        _ => return (Status::Fail, format!("{} key records", records.len()), FIX),
    };
    match published_key(record) {
        Ok(k) if k.kind == "rsa" && k.bits < MIN_DKIM_RSA_BITS => (
            Status::Fail,
            format!("RSA key of {} bits", k.bits),
            "replace the key by one of 2048 bits or more (kurier dkim generate)",
        ),
        Ok(k) => (
            Status::Pass,
            format!("{} key of {} bits", k.kind, k.bits),
            FIX,
        ),
        Err(e) => (Status::Fail, e, FIX),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn spf_must_end_in_fail() {
        assert_eq!(judge_spf(&s(&["v=spf1 mx -all"]), None).0, Status::Pass);
        for bad in [
            vec![],
            vec!["v=spf1 mx ~all"],
            vec!["v=spf1 mx ?all"],
            vec!["v=spf1 mx"],
            vec!["v=spf1 mx -all", "v=spf1 -all"],
            vec!["v=spf1 mx:: -all"],
        ] {
            let (status, seen, _) = judge_spf(&s(&bad), None);
            assert_eq!(status, Status::Fail, "{bad:?}: {seen}");
        }
        let (_, seen, _) = judge_spf(&s(&["v=spf1 a ~all"]), None);
        assert!(seen.contains("~all"), "{seen}");
        assert_eq!(
            judge_spf(
                &s(&["v=spf1 redirect=_spf.a.test"]),
                Some(&s(&["v=spf1 ip4:192.0.2.0/24 -all"]))
            )
            .0,
            Status::Pass
        );
        assert_eq!(
            judge_spf(&s(&["v=spf1 redirect=_spf.a.test"]), Some(&[])).0,
            Status::Fail
        );
    }

    #[test]
    fn dmarc_must_act_and_report() {
        assert_eq!(
            judge_dmarc(&s(&["v=DMARC1; p=reject; rua=mailto:d@a.test"])).0,
            Status::Pass
        );
        assert_eq!(
            judge_dmarc(&s(&["v=DMARC1; p=quarantine; rua=mailto:d@a.test"])).0,
            Status::Pass
        );
        for bad in [
            "v=DMARC1; p=none; rua=mailto:d@a.test",
            "v=DMARC1; p=reject",
            "v=DMARC1; p=reject; pct=50; rua=mailto:d@a.test",
            "v=DMARC1; p=reject; sp=none; rua=mailto:d@a.test",
            "v=DMARC1; p=bogus",
        ] {
            assert_eq!(judge_dmarc(&s(&[bad])).0, Status::Fail, "{bad}");
        }
        assert_eq!(judge_dmarc(&[]).0, Status::Fail);
    }

    #[test]
    fn dkim_keys_of_2048_bits() {
        let rsa = |bits| {
            let k = openssl::rsa::Rsa::generate(bits).unwrap();
            let der = openssl::pkey::PKey::from_rsa(k)
                .unwrap()
                .public_key_to_der()
                .unwrap();
            format!("v=DKIM1; k=rsa; p={}", openssl::base64::encode_block(&der))
        };
        assert_eq!(judge_dkim(&[rsa(2048)]).0, Status::Pass);
        let (status, seen, _) = judge_dkim(&[rsa(1024)]);
        assert_eq!(
            (status, seen.as_str()),
            (Status::Fail, "RSA key of 1024 bits")
        );
        assert_eq!(judge_dkim(&s(&["v=DKIM1; p="])).0, Status::Fail);
        assert_eq!(judge_dkim(&[]).0, Status::Fail);
    }
}
