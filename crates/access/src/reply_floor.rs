//! A floor under the time of an answer that must not tell whether something exists: an MX
//! that rejects unknown recipients at RCPT (RFC 5321 §3.3: 550) answers a known address after
//! more store work (quota, the account's settings) than an unknown one, and a harvester who
//! times the replies learns which addresses exist without sending a message. Every answer from
//! a non-exempt client waits until `floor` has passed since the question, so both take the
//! same time as long as the look-up is faster than the floor; answers that took longer are
//! counted, so an operator sees when the floor is too low for the store.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::rate::contains;

/// The least time an answer takes, for clients outside `exempt`.
#[derive(Debug)]
pub struct ReplyFloor {
    floor: Duration,
    exempt: Vec<(IpAddr, u8)>,
    late: AtomicU64,
}

impl ReplyFloor {
    /// `floor` zero: no waiting.
    pub fn new(floor: Duration, exempt: Vec<(IpAddr, u8)>) -> Self {
        ReplyFloor {
            floor,
            exempt,
            late: AtomicU64::new(0),
        }
    }

    /// How much longer the answer to `ip`, ready after `elapsed`, waits (`None`: send now).
    pub fn wait(&self, ip: IpAddr, elapsed: Duration) -> Option<Duration> {
        if self.floor.is_zero() || self.exempt.iter().any(|(n, l)| contains(*n, *l, ip)) {
            return None;
        }
        match self.floor.checked_sub(elapsed) {
            Some(left) if !left.is_zero() => Some(left),
            _ => {
                self.late.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Answers that were ready only after the floor (their time may differ).
    pub fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn quick_answers_wait_for_the_floor_and_late_ones_are_counted() {
        let f = ReplyFloor::new(Duration::from_millis(30), vec![]);
        let ms = Duration::from_millis;
        assert_eq!(f.wait(ip("192.0.2.1"), ms(1)), Some(ms(29)));
        assert_eq!(f.wait(ip("192.0.2.1"), ms(0)), Some(ms(30)));
        assert_eq!(f.late(), 0);
        assert_eq!(f.wait(ip("192.0.2.1"), ms(30)), None);
        assert_eq!(f.wait(ip("192.0.2.1"), ms(45)), None);
        assert_eq!(f.late(), 2);
    }

    #[test]
    fn exempt_networks_and_a_zero_floor_never_wait() {
        let f = ReplyFloor::new(Duration::from_millis(30), vec![(ip("127.0.0.0"), 8)]);
        assert_eq!(f.wait(ip("127.1.2.3"), Duration::ZERO), None);
        assert_eq!(f.wait(ip("::ffff:127.0.0.1"), Duration::ZERO), None);
        assert!(f.wait(ip("128.0.0.1"), Duration::ZERO).is_some());
        let off = ReplyFloor::new(Duration::ZERO, vec![]);
        assert_eq!(off.wait(ip("192.0.2.1"), Duration::ZERO), None);
        assert_eq!(off.late(), 0);
    }
}
