//! When to order a certificate, as pure functions over what is served now: none or only the
//! bootstrap one, names that changed (`kurier domain add/del`), or two thirds of the lifetime
//! gone (what Let's Encrypt and certbot do; it leaves a month of a 90-day certificate for
//! retries). Failed orders back off exponentially, capped, so a CA that is down is not hammered.

use std::time::Duration;

/// Why an order is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Nothing from the CA yet (the self-signed bootstrap certificate serves).
    First,
    /// The hosted domains changed: these names are new or gone.
    Names {
        added: Vec<String>,
        removed: Vec<String>,
    },
    /// Two thirds of the lifetime have passed.
    Renewal,
}

/// The certificate in use, as far as renewal cares (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    /// Issued by the CA (false: our bootstrap certificate).
    pub from_ca: bool,
}

/// Whether to order now, for `wanted` names (lower case).
pub fn due(served: Option<&Served>, wanted: &[String], now: i64) -> Option<Due> {
    let Some(s) = served.filter(|s| s.from_ca) else {
        return Some(Due::First);
    };
    let added: Vec<String> = wanted
        .iter()
        .filter(|n| !s.names.contains(n))
        .cloned()
        .collect();
    let removed: Vec<String> = s
        .names
        .iter()
        .filter(|n| !wanted.contains(n))
        .cloned()
        .collect();
    if !added.is_empty() || !removed.is_empty() {
        return Some(Due::Names { added, removed });
    }
    let lifetime = s.not_after.saturating_sub(s.not_before).max(0);
    let renew_at = s.not_before.saturating_add(lifetime / 3 * 2);
    (now >= renew_at).then_some(Due::Renewal)
}

/// The pause after `failures` failed orders in a row: 1 minute, doubling, at most 6 hours.
pub fn backoff(failures: u32) -> Duration {
    let minutes = 1u64 << failures.saturating_sub(1).min(9);
    Duration::from_secs((minutes * 60).min(6 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    const DAY: i64 = 86_400;

    fn served(n: &[&str]) -> Served {
        Served {
            names: names(n),
            not_before: 0,
            not_after: 90 * DAY,
            from_ca: true,
        }
    }

    #[test]
    fn the_first_order_replaces_the_bootstrap_certificate() {
        let want = names(&["mx.example.org"]);
        assert_eq!(due(None, &want, 0), Some(Due::First));
        let bootstrap = Served {
            from_ca: false,
            ..served(&["mx.example.org"])
        };
        assert_eq!(due(Some(&bootstrap), &want, 0), Some(Due::First));
    }

    #[test]
    fn renewal_at_two_thirds_of_the_lifetime() {
        let s = served(&["mx.example.org"]);
        let want = names(&["mx.example.org"]);
        assert_eq!(due(Some(&s), &want, 59 * DAY), None);
        assert_eq!(due(Some(&s), &want, 60 * DAY), Some(Due::Renewal));
        assert_eq!(
            due(Some(&s), &want, 100 * DAY),
            Some(Due::Renewal),
            "expired"
        );
    }

    #[test]
    fn a_domain_added_or_removed_orders_at_once() {
        let s = served(&["mx.example.org", "mta-sts.old.test"]);
        let want = names(&["mx.example.org", "mta-sts.new.test"]);
        assert_eq!(
            due(Some(&s), &want, DAY),
            Some(Due::Names {
                added: names(&["mta-sts.new.test"]),
                removed: names(&["mta-sts.old.test"])
            })
        );
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_six_hours() {
        assert_eq!(backoff(1), Duration::from_secs(60));
        assert_eq!(backoff(2), Duration::from_secs(120));
        assert_eq!(backoff(5), Duration::from_secs(16 * 60));
        assert_eq!(backoff(30), Duration::from_secs(6 * 3600));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(6 * 3600));
    }
}
