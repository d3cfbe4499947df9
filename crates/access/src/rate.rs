//! Event rates per client address and per client network within a time window, as Postfix's
//! anvil counts them (`smtpd_client_connection_rate_limit`, `…_recipient_rate_limit`): one
//! count per address (IPv6: its /64, what one host gets) and one per network (IPv4 /24, IPv6
//! /48), so a spammer spreading over a botnet's neighbouring addresses meets the network limit.
//! Refused events count too, so a client that keeps hammering stays refused. The tables are
//! bounded: past `MAX_TRACKED` keys, expired ones are dropped first; if the table is still full,
//! new keys are let through uncounted (and logged) rather than refusing everyone.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Keys tracked per table at most.
pub const MAX_TRACKED: usize = 100_000;

/// What one event met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    Allowed,
    /// The address had its share of the window.
    Address,
    /// Its network had.
    Network,
}

/// One fixed window per key.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

#[derive(Debug, Default)]
struct Tables {
    addresses: HashMap<IpAddr, Window>,
    networks: HashMap<IpAddr, Window>,
}

/// A rate limit on one kind of event (0: no limit for that key).
#[derive(Debug)]
pub struct RateLimit {
    window: Duration,
    per_address: u32,
    per_network: u32,
    /// Networks never limited (`(network, prefix length)`).
    exempt: Vec<(IpAddr, u8)>,
    tables: Mutex<Tables>,
    refused: AtomicU64,
}

/// The address key and the network key of `ip`.
pub fn keys(ip: IpAddr) -> (IpAddr, IpAddr) {
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            let n = u32::from(a) & 0xffff_ff00;
            (IpAddr::V4(a), IpAddr::V4(n.into()))
        }
        IpAddr::V6(a) => {
            let v = u128::from(a);
            (
                IpAddr::V6((v & (u128::MAX << 64)).into()),
                IpAddr::V6((v & (u128::MAX << 80)).into()),
            )
        }
    }
}

/// Whether `ip` is in `net`/`len`.
pub fn contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip.to_canonical()) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl RateLimit {
    pub fn new(
        window: Duration,
        per_address: u32,
        per_network: u32,
        exempt: Vec<(IpAddr, u8)>,
    ) -> Self {
        RateLimit {
            window,
            per_address,
            per_network,
            exempt,
            tables: Mutex::new(Tables::default()),
            refused: AtomicU64::new(0),
        }
    }

    /// Counts one event from `ip` at `now`.
    pub fn hit(&self, ip: IpAddr, now: Instant) -> RateVerdict {
        if (self.per_address == 0 && self.per_network == 0)
            || self.exempt.iter().any(|(n, l)| contains(*n, *l, ip))
        {
            return RateVerdict::Allowed;
        }
        let (address, network) = keys(ip);
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let window = self.window;
        let a = count(&mut t.addresses, address, now, window);
        let n = count(&mut t.networks, network, now, window);
        drop(t);
        let verdict = if self.per_address > 0 && a > self.per_address {
            RateVerdict::Address
        } else if self.per_network > 0 && n > self.per_network {
            RateVerdict::Network
        } else {
            RateVerdict::Allowed
        };
        if verdict != RateVerdict::Allowed {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    /// Events refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// Counts one event for `key`; the count within its window, 0 if it could not be tracked.
fn count(table: &mut HashMap<IpAddr, Window>, key: IpAddr, now: Instant, window: Duration) -> u32 {
    if !table.contains_key(&key) && table.len() >= MAX_TRACKED {
        table.retain(|_, w| now.saturating_duration_since(w.start) < window);
        if table.len() >= MAX_TRACKED {
            tracing::warn!(
                tracked = table.len(),
                "rate limit table full; a new client is not counted"
            );
            return 0;
        }
    }
    let w = table.entry(key).or_insert(Window {
        start: now,
        count: 0,
    });
    if now.saturating_duration_since(w.start) >= window {
        *w = Window {
            start: now,
            count: 0,
        };
    }
    w.count = w.count.saturating_add(1);
    w.count
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keys_are_the_host_and_its_network() {
        assert_eq!(keys(ip("192.0.2.77")), (ip("192.0.2.77"), ip("192.0.2.0")));
        assert_eq!(keys(ip("::ffff:192.0.2.77")).1, ip("192.0.2.0"));
        assert_eq!(
            keys(ip("2001:db8:1:2:3:4:5:6")),
            (ip("2001:db8:1:2::"), ip("2001:db8:1::"))
        );
    }

    #[test]
    fn abuse_6_an_address_then_its_network_is_limited_per_window() {
        let l = RateLimit::new(Duration::from_secs(60), 2, 3, vec![]);
        let t = Instant::now();
        assert_eq!(l.hit(ip("192.0.2.1"), t), RateVerdict::Allowed);
        assert_eq!(l.hit(ip("192.0.2.1"), t), RateVerdict::Allowed);
        assert_eq!(l.hit(ip("192.0.2.1"), t), RateVerdict::Address);
        // A neighbour: its own address count, but the /24 is spent.
        assert_eq!(l.hit(ip("192.0.2.2"), t), RateVerdict::Network);
        // Another network is untouched.
        assert_eq!(l.hit(ip("198.51.100.1"), t), RateVerdict::Allowed);
        // IPv6 hosts in one /64 are one address.
        assert_eq!(l.hit(ip("2001:db8::1"), t), RateVerdict::Allowed);
        assert_eq!(l.hit(ip("2001:db8::2"), t), RateVerdict::Allowed);
        assert_eq!(l.hit(ip("2001:db8::3"), t), RateVerdict::Address);
        assert_eq!(l.refused(), 3);
        // The next window starts afresh.
        let later = t + Duration::from_secs(61);
        assert_eq!(l.hit(ip("192.0.2.1"), later), RateVerdict::Allowed);
    }

    #[test]
    fn exempt_networks_and_zero_limits_count_nothing() {
        let l = RateLimit::new(Duration::from_secs(60), 1, 0, vec![(ip("127.0.0.0"), 8)]);
        let t = Instant::now();
        for _ in 0..5 {
            assert_eq!(l.hit(ip("127.1.2.3"), t), RateVerdict::Allowed);
        }
        assert_eq!(l.hit(ip("192.0.2.1"), t), RateVerdict::Allowed);
        assert_eq!(l.hit(ip("192.0.2.1"), t), RateVerdict::Address);
        let off = RateLimit::new(Duration::from_secs(60), 0, 0, vec![]);
        for _ in 0..5 {
            assert_eq!(off.hit(ip("192.0.2.1"), t), RateVerdict::Allowed);
        }
    }

    #[test]
    fn the_tables_stay_bounded_under_an_address_spray() {
        let l = RateLimit::new(Duration::from_secs(60), 5, 0, vec![]);
        let t = Instant::now();
        for i in 0..(MAX_TRACKED as u128 + 10) {
            l.hit(IpAddr::V6(((0x2001_0db8u128 << 96) | (i << 64)).into()), t);
        }
        let tables = l.tables.lock().unwrap();
        assert!(tables.addresses.len() <= MAX_TRACKED);
        assert!(tables.networks.len() <= MAX_TRACKED);
    }
}
