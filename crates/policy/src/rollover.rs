//! Certificate rollover under DANE (RFC 7671 §8; TR-03108 DANE-1..DANE-6): a new certificate
//! chain may go live only if every TLSA RRset published for our own names authenticates it.
//! Otherwise every DANE-validating sender (RFC 7672 §3) holds all mail for us until DNS is
//! fixed. The decision is pure: the caller looks up the TLSA RRsets through the validating
//! resolver and says which records the new chain matches.

use crate::dane::{Tlsa, TlsaAnswer, digest_agility, usable};

/// What may happen to a new certificate chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollover {
    /// No published TLSA RRset is broken by it: serve it.
    Switch,
    /// It matches no usable record at these TLSA owner names: keep serving the old chain until
    /// a record for the new one is published there (RFC 7671 §8.1: publish, wait, switch).
    Refuse { owners: Vec<String> },
    /// No answer at these owner names now (timeout, SERVFAIL): whether the chain would break
    /// DANE cannot be known, so keep the old one and ask again later.
    Wait { owners: Vec<(String, String)> },
    /// Serve it although it could not be checked at these names: their TLSA RRsets are bogus
    /// (DANE senders defer to us whatever we serve, RFC 7672 §2.2), or there is no answer and
    /// the certificate in use is about to expire (waiting longer would break every other client).
    SwitchUnchecked { owners: Vec<(String, String)> },
}

/// The verdict over the TLSA answers at our owner names (`_<port>._tcp.<host>`), given which
/// records the new chain matches. A secure RRset without a usable record asks only for TLS
/// (RFC 7672 §2.2), an insecure name for nothing: neither holds the switch back. Senders apply
/// digest agility (RFC 7671 §9), so the check does too. `old_expiring`: the certificate in
/// use expires soon, so not knowing is no reason to keep it.
pub fn judge(
    answers: &[(String, TlsaAnswer)],
    matches: impl Fn(&Tlsa) -> bool,
    old_expiring: bool,
) -> Rollover {
    let mut refuse = Vec::new();
    let mut wait = Vec::new();
    let mut bogus = Vec::new();
    for (owner, answer) in answers {
        match answer {
            TlsaAnswer::Secure(records) => {
                let usable: Vec<Tlsa> =
                    digest_agility(records.iter().filter(|r| usable(r)).cloned().collect());
                if !usable.is_empty() && !usable.iter().any(&matches) {
                    refuse.push(owner.clone());
                }
            }
            TlsaAnswer::Insecure => {}
            TlsaAnswer::Bogus(why) => bogus.push((owner.clone(), why.clone())),
            TlsaAnswer::Unavailable(why) => wait.push((owner.clone(), why.clone())),
        }
    }
    if !refuse.is_empty() {
        Rollover::Refuse { owners: refuse }
    } else if !wait.is_empty() && !old_expiring {
        Rollover::Wait { owners: wait }
    } else if !wait.is_empty() || !bogus.is_empty() {
        bogus.extend(wait);
        Rollover::SwitchUnchecked { owners: bogus }
    } else {
        Rollover::Switch
    }
}

/// Where a scheduled key change stands (RFC 7671 §8.1: publish the next key's record beside the
/// current one, wait until every cache has the new RRset, then switch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// Keep the current key: the next chain matches no record at these owner names yet.
    Unpublished { owners: Vec<String> },
    /// Keep the current key: whether the next chain is published cannot be confirmed at these
    /// owner names (no answer, or a bogus RRset: a key change is never made unchecked).
    Unconfirmed { owners: Vec<(String, String)> },
    /// Published at every owner name; resolvers may hold the older RRset until `until` (Unix
    /// seconds): two TTLs after it was first seen.
    Propagating { until: u64 },
    /// Every cached copy of the older RRset has expired: switch to the next key.
    Switch,
}

/// Since when (Unix seconds) the next chain has been seen published, and the TTL then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub since: u64,
    pub ttl: u32,
}

/// The next step of a key change, given `verdict` (`judge` over the next chain, with
/// `old_expiring = false`), the TTL of the answers now and when they were first seen matching
/// (`seen`, updated: a refusal starts the wait over; not knowing keeps it).
pub fn key_change(
    verdict: Rollover,
    seen: &mut Option<Published>,
    ttl: u32,
    now: u64,
) -> KeyChange {
    match verdict {
        Rollover::Switch => {
            let first = *seen.get_or_insert(Published { since: now, ttl });
            let until = first.since.saturating_add(2 * u64::from(first.ttl));
            if now >= until {
                KeyChange::Switch
            } else {
                KeyChange::Propagating { until }
            }
        }
        Rollover::Refuse { owners } => {
            *seen = None;
            KeyChange::Unpublished { owners }
        }
        Rollover::Wait { owners } | Rollover::SwitchUnchecked { owners } => {
            KeyChange::Unconfirmed { owners }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(usage: u8, matching: u8, byte: u8) -> Tlsa {
        Tlsa {
            usage,
            selector: 1,
            matching,
            data: vec![byte; if matching == 2 { 64 } else { 32 }],
        }
    }

    fn at(port: u16, answer: TlsaAnswer) -> (String, TlsaAnswer) {
        (format!("_{port}._tcp.mx.example"), answer)
    }

    /// The new chain's key hashes to 0xBB; the old one's to 0xAA.
    fn new_chain(r: &Tlsa) -> bool {
        r.data[0] == 0xBB
    }

    #[test]
    fn a_chain_published_beside_the_old_one_switches() {
        let both = TlsaAnswer::Secure(vec![rec(3, 1, 0xAA), rec(3, 1, 0xBB)]);
        assert_eq!(
            judge(&[at(25, both.clone()), at(465, both)], new_chain, false),
            Rollover::Switch
        );
    }

    #[test]
    fn a_chain_no_record_names_is_refused_at_each_port_that_would_break() {
        let old = TlsaAnswer::Secure(vec![rec(3, 1, 0xAA)]);
        let both = TlsaAnswer::Secure(vec![rec(3, 1, 0xAA), rec(3, 1, 0xBB)]);
        assert_eq!(
            judge(
                &[at(25, old.clone()), at(465, both), at(993, old)],
                new_chain,
                true
            ),
            Rollover::Refuse {
                owners: vec!["_25._tcp.mx.example".into(), "_993._tcp.mx.example".into()]
            }
        );
    }

    #[test]
    fn no_dane_or_no_usable_record_holds_nothing_back() {
        assert_eq!(
            judge(&[at(25, TlsaAnswer::Insecure)], new_chain, false),
            Rollover::Switch
        );
        assert_eq!(
            judge(&[at(25, TlsaAnswer::Secure(vec![]))], new_chain, false),
            Rollover::Switch,
            "a proven absence"
        );
        // PKIX-EE (usage 1) is unusable for SMTP (RFC 7672 §3.1.3): TLS only.
        assert_eq!(
            judge(
                &[at(25, TlsaAnswer::Secure(vec![rec(1, 1, 0xAA)]))],
                new_chain,
                false
            ),
            Rollover::Switch
        );
    }

    #[test]
    fn the_strongest_digest_decides_as_it_does_for_senders() {
        // RFC 7671 §9: a 3 1 2 record outranks the matching 3 1 1; senders ignore the latter.
        let answer = TlsaAnswer::Secure(vec![rec(3, 1, 0xBB), rec(3, 2, 0xAA)]);
        assert!(matches!(
            judge(&[at(25, answer)], new_chain, false),
            Rollover::Refuse { .. }
        ));
    }

    #[test]
    fn without_an_answer_it_waits_unless_the_old_certificate_expires() {
        let down = TlsaAnswer::Unavailable("timeout".into());
        let owners = vec![("_465._tcp.mx.example".to_string(), "timeout".to_string())];
        let both = TlsaAnswer::Secure(vec![rec(3, 1, 0xAA), rec(3, 1, 0xBB)]);
        let answers = [at(25, both), at(465, down.clone())];
        assert_eq!(
            judge(&answers, new_chain, false),
            Rollover::Wait {
                owners: owners.clone()
            }
        );
        assert_eq!(
            judge(&answers, new_chain, true),
            Rollover::SwitchUnchecked { owners }
        );
        // A known break refuses even then: an expired DANE-EE key still authenticates
        // (RFC 7671 §5.1), a wrong one never.
        let old = TlsaAnswer::Secure(vec![rec(3, 1, 0xAA)]);
        assert!(matches!(
            judge(&[at(25, down), at(465, old)], new_chain, true),
            Rollover::Refuse { .. }
        ));
    }

    #[test]
    fn a_bogus_rrset_does_not_hold_the_switch_back() {
        // DANE senders skip an MX whose TLSA RRset is bogus, whatever it serves.
        let bogus = TlsaAnswer::Bogus("RRSIG expired".into());
        assert_eq!(
            judge(&[at(25, bogus)], new_chain, false),
            Rollover::SwitchUnchecked {
                owners: vec![("_25._tcp.mx.example".into(), "RRSIG expired".into())]
            }
        );
    }

    #[test]
    fn a_key_change_waits_two_ttls_after_the_record_is_seen_everywhere() {
        let mut seen = None;
        let owners = vec!["_25._tcp.mx.example".to_string()];
        let refused = Rollover::Refuse {
            owners: owners.clone(),
        };
        let unpublished = KeyChange::Unpublished {
            owners: owners.clone(),
        };
        assert_eq!(
            key_change(refused.clone(), &mut seen, 300, 1000),
            unpublished
        );
        assert_eq!(seen, None);
        assert_eq!(
            key_change(Rollover::Switch, &mut seen, 300, 2000),
            KeyChange::Propagating { until: 2600 }
        );
        // A lower TTL later (a cache counting down) does not shorten the wait.
        assert_eq!(
            key_change(Rollover::Switch, &mut seen, 10, 2599),
            KeyChange::Propagating { until: 2600 }
        );
        // No answer for a while keeps what was seen; it does not switch either.
        let why = vec![("_25._tcp.mx.example".to_string(), "timeout".to_string())];
        let down = Rollover::Wait {
            owners: why.clone(),
        };
        assert_eq!(
            key_change(down, &mut seen, 0, 2700),
            KeyChange::Unconfirmed { owners: why }
        );
        assert_eq!(
            key_change(Rollover::Switch, &mut seen, 300, 2700),
            KeyChange::Switch
        );
        // The record disappears again: the wait starts over.
        assert_eq!(key_change(refused, &mut seen, 300, 2800), unpublished);
        assert_eq!(
            key_change(Rollover::Switch, &mut seen, 300, 2900),
            KeyChange::Propagating { until: 3500 }
        );
    }

    #[test]
    fn a_key_change_is_never_made_unchecked_and_without_dane_it_is_immediate() {
        let why = vec![(
            "_25._tcp.mx.example".to_string(),
            "RRSIG expired".to_string(),
        )];
        let bogus = Rollover::SwitchUnchecked {
            owners: why.clone(),
        };
        let mut seen = None;
        assert_eq!(
            key_change(bogus, &mut seen, 60, 10),
            KeyChange::Unconfirmed { owners: why }
        );
        // No TLSA anywhere (judge says Switch, TTL 0): nothing to wait for.
        assert_eq!(
            key_change(Rollover::Switch, &mut seen, 0, 10),
            KeyChange::Switch
        );
    }
}
