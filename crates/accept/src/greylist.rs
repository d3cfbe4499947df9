//! The greylisting stage (optional, off by default): mail from a (client network, envelope
//! sender, recipient) triplet not seen before is deferred with 451 until the sending server
//! retries after `delay`, as a real MTA does and most spam software does not (the technique of
//! Postgrey and rspamd's greylist module). The client network is the /24 (IPv4) or /64 (IPv6),
//! so a sender's farm of outgoing servers passes on any of its addresses. Triplets live in the
//! store, so every node of one PostgreSQL store shares them. It runs at the end of DATA, after
//! sender authentication, because mail whose From domain passed DMARC (aligned SPF or DKIM from
//! a domain that publishes DMARC) is never greylisted: its sender is known, and big senders
//! retry from other addresses on other schedules. With `only_suspicious`, only mail whose
//! rspamd action is `greylist` is greylisted (rspamd's own way), after the spam scan.

use std::net::IpAddr;
use std::sync::Arc;

use kurier_config::SenderPattern;
use kurier_store::{GreyRecord, GreyTriplet, Store, UnixTime};

/// What the stage did, for monitoring.
pub trait GreylistEvents: Send + Sync {
    fn counted(&self, outcome: Outcome);
}

/// What one message met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A triplet seen first now, or again before the delay: 451.
    Deferred,
    /// It came back after the delay: accepted, and its triplets pass from now on.
    Passed,
    /// Every triplet had passed before.
    Known,
    /// Not greylisted: DMARC passed, or `greylisting.exempt`.
    Exempt,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Deferred,
        Outcome::Passed,
        Outcome::Known,
        Outcome::Exempt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Deferred => "deferred",
            Outcome::Passed => "passed",
            Outcome::Known => "known",
            Outcome::Exempt => "exempt",
        }
    }
}

/// What one triplet met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// First sight (or a sight after the record lapsed): wait `delay`.
    New,
    /// Back too early: this many seconds still.
    TooEarly(i64),
    /// Back after the delay.
    Passed,
    /// Passed before.
    Known,
}

/// The settings of `[greylisting]`, in seconds.
#[derive(Clone)]
pub struct Greylisting {
    pub delay: i64,
    /// A first sight not retried within this is forgotten.
    pub retry_window: i64,
    /// A passed triplet not seen for this long is forgotten.
    pub expiry: i64,
    pub exempt: Vec<SenderPattern>,
    /// Greylist only what rspamd's action calls for greylisting (rspamd's own way: a score
    /// above its `greylist` threshold), not every new triplet.
    pub only_suspicious: bool,
    pub events: Arc<dyn GreylistEvents>,
}

/// The network greylisting counts `ip` in: its /24 or /64.
pub fn network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(a) => {
            let net = u128::from(a) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(net))
        }
    }
}

/// What the record `prev` of a triplet seen `now` becomes, and what the sight means.
pub fn step(prev: Option<GreyRecord>, now: UnixTime, g: &Greylisting) -> (GreyRecord, Step) {
    let fresh = GreyRecord {
        first_seen: now,
        last_seen: now,
        passed: false,
    };
    match prev {
        Some(r) if r.passed && now - r.last_seen <= g.expiry => (
            GreyRecord {
                last_seen: now,
                ..r
            },
            Step::Known,
        ),
        Some(r) if !r.passed && now - r.first_seen <= g.retry_window => {
            let waited = now - r.first_seen;
            if waited >= g.delay {
                (
                    GreyRecord {
                        last_seen: now,
                        passed: true,
                        ..r
                    },
                    Step::Passed,
                )
            } else {
                (
                    GreyRecord {
                        last_seen: now,
                        ..r
                    },
                    Step::TooEarly(g.delay - waited),
                )
            }
        }
        // None, or a record that lapsed: start again.
        _ => (fresh, Step::New),
    }
}

/// The outcome of a message from the steps of its triplets, and the seconds to wait.
pub fn outcome(steps: &[Step], delay: i64) -> (Outcome, i64) {
    let wait = steps
        .iter()
        .map(|s| match s {
            Step::New => delay,
            Step::TooEarly(w) => *w,
            _ => 0,
        })
        .max()
        .unwrap_or(0);
    if wait > 0 {
        (Outcome::Deferred, wait)
    } else if steps.contains(&Step::Passed) {
        (Outcome::Passed, 0)
    } else {
        (Outcome::Known, 0)
    }
}

impl Greylisting {
    /// Greylists a message from `ip` with envelope `sender` to `recipients`: `Err(reply text)`
    /// when it must wait. A store that cannot answer lets the message through (greylisting
    /// is a filter, not a reason to lose mail), logged.
    pub async fn check(
        &self,
        store: &dyn Store,
        ip: IpAddr,
        sender: &str,
        recipients: &[&str],
        dmarc_passed: bool,
    ) -> Result<(), String> {
        if dmarc_passed || self.exempt.iter().any(|p| p.matches(ip, sender)) {
            self.events.counted(Outcome::Exempt);
            return Ok(());
        }
        let now = kurier_store::now();
        let mut steps = Vec::with_capacity(recipients.len());
        for r in recipients {
            let triplet = GreyTriplet {
                network: network(ip),
                sender: sender.to_ascii_lowercase(),
                recipient: r.to_ascii_lowercase(),
            };
            let prev = match store.greylist_get(&triplet).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "greylisting cannot read the store; not greylisted");
                    return Ok(());
                }
            };
            let (record, s) = step(prev, now, self);
            if let Err(e) = store.greylist_put(&triplet, &record).await {
                tracing::warn!(error = %e, "greylisting cannot write the store; not greylisted");
                return Ok(());
            }
            steps.push(s);
        }
        let (o, wait) = outcome(&steps, self.delay);
        self.events.counted(o);
        match o {
            Outcome::Deferred => Err(format!("Greylisted, please try again in {wait} seconds")),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    struct Nobody;
    impl GreylistEvents for Nobody {
        fn counted(&self, _: Outcome) {}
    }

    fn g() -> Greylisting {
        Greylisting {
            delay: 300,
            retry_window: 2 * 86400,
            expiry: 35 * 86400,
            exempt: vec![],
            only_suspicious: false,
            events: Arc::new(Nobody),
        }
    }

    #[test]
    fn networks_are_the_slash_24_and_the_slash_64() {
        assert_eq!(network("192.0.2.77".parse().unwrap()), "192.0.2.0/24");
        assert_eq!(
            network("::ffff:192.0.2.77".parse().unwrap()),
            "192.0.2.0/24"
        );
        assert_eq!(
            network("2001:db8:1:2:aaaa::1".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
    }

    #[test]
    fn a_triplet_waits_the_delay_then_passes_and_lapses() {
        let g = g();
        let (r, s) = step(None, 1000, &g);
        assert_eq!(s, Step::New);
        let (r, s) = step(Some(r), 1100, &g);
        assert_eq!(s, Step::TooEarly(200));
        assert_eq!(
            r.first_seen, 1000,
            "an early retry does not restart the clock"
        );
        let (r, s) = step(Some(r), 1300, &g);
        assert_eq!(s, Step::Passed);
        assert!(r.passed);
        let (r, s) = step(Some(r), 1300 + 86400, &g);
        assert_eq!(s, Step::Known);
        assert_eq!(r.last_seen, 1300 + 86400);
        // Unseen longer than the expiry: a stranger again.
        assert_eq!(step(Some(r), r.last_seen + 36 * 86400, &g).1, Step::New);
        // A first sight never retried within the window: forgotten.
        let (r, _) = step(None, 0, &g);
        assert_eq!(step(Some(r), 3 * 86400, &g).1, Step::New);
    }

    #[test]
    fn a_message_waits_for_its_slowest_triplet() {
        assert_eq!(
            outcome(&[Step::Known, Step::TooEarly(20), Step::New], 300),
            (Outcome::Deferred, 300)
        );
        assert_eq!(
            outcome(&[Step::Known, Step::Passed], 300),
            (Outcome::Passed, 0)
        );
        assert_eq!(outcome(&[Step::Known], 300), (Outcome::Known, 0));
    }
}
