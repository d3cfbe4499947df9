//! SASL for submission (RFC 4954): PLAIN (RFC 4616) and the common LOGIN, as pure decoding,
//! plus failure throttling with an injected clock. Never logs or keeps a password.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Decodes standard base64 (RFC 4648 §4), padding optional; `None` for anything else.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let s = s.trim().trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

/// Credentials from a PLAIN response: `authzid NUL authcid NUL passwd`. An authorization
/// identity other than the user itself is refused (no proxy authentication).
pub fn plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|&b| b == 0);
    let (authz, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() || pass.is_empty() {
        return None;
    }
    if !authz.is_empty() && authz != user {
        return None;
    }
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(pass.to_vec()).ok()?,
    ))
}

/// Failed logins, per client address and per account: each failure doubles the delay before
/// the next answer (from 250 ms, at most 8 s); `block_after` failures within `window` block
/// further attempts until the window has passed. Success clears the account's record.
pub struct AuthThrottle {
    window: Duration,
    block_after: u32,
    by_ip: HashMap<IpAddr, (u32, Instant)>,
    by_account: HashMap<String, (u32, Instant)>,
}

/// What the throttle says before a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleVerdict {
    /// Go ahead, after waiting this long.
    Proceed(Duration),
    /// Too many failures: refuse with a temporary error.
    Blocked,
}

impl AuthThrottle {
    pub fn new(window: Duration, block_after: u32) -> Self {
        AuthThrottle {
            window,
            block_after,
            by_ip: HashMap::new(),
            by_account: HashMap::new(),
        }
    }

    fn count<K: std::hash::Hash + Eq>(
        map: &HashMap<K, (u32, Instant)>,
        key: &K,
        now: Instant,
        window: Duration,
    ) -> u32 {
        map.get(key)
            .filter(|(_, last)| now.duration_since(*last) < window)
            .map(|(n, _)| *n)
            .unwrap_or(0)
    }

    pub fn check(&self, ip: IpAddr, account: &str, now: Instant) -> ThrottleVerdict {
        let n = Self::count(&self.by_ip, &ip, now, self.window).max(Self::count(
            &self.by_account,
            &account.to_lowercase(),
            now,
            self.window,
        ));
        if n >= self.block_after {
            return ThrottleVerdict::Blocked;
        }
        let delay = if n == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(250 << (n - 1).min(5))
        };
        ThrottleVerdict::Proceed(delay)
    }

    pub fn failed(&mut self, ip: IpAddr, account: &str, now: Instant) {
        let window = self.window;
        // A failure after a quiet window starts the count afresh.
        let bump = |e: &mut (u32, Instant)| {
            *e = (
                if now.duration_since(e.1) >= window {
                    1
                } else {
                    e.0 + 1
                },
                now,
            )
        };
        bump(self.by_ip.entry(ip).or_insert((0, now)));
        bump(
            self.by_account
                .entry(account.to_lowercase())
                .or_insert((0, now)),
        );
        // Keep the maps from growing without bound under a spray of addresses.
        if self.by_ip.len() > 100_000 {
            self.by_ip
                .retain(|_, (_, last)| now.duration_since(*last) < window);
        }
        if self.by_account.len() > 100_000 {
            self.by_account
                .retain(|_, (_, last)| now.duration_since(*last) < window);
        }
    }

    pub fn succeeded(&mut self, account: &str) {
        self.by_account.remove(&account.to_lowercase());
    }
}

/// Messages per account per hour (a sliding window of send times).
pub struct RateLimit {
    per_hour: u32,
    sent: HashMap<String, Vec<Instant>>,
}

impl RateLimit {
    pub fn new(per_hour: u32) -> Self {
        RateLimit {
            per_hour,
            sent: HashMap::new(),
        }
    }

    /// Counts one message for `account` if it is within the limit.
    pub fn try_send(&mut self, account: &str, now: Instant) -> bool {
        let hour = Duration::from_secs(3600);
        let times = self.sent.entry(account.to_string()).or_default();
        times.retain(|t| now.duration_since(*t) < hour);
        if times.len() as u32 >= self.per_hour {
            return false;
        }
        times.push(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("AGFsaWNlAHNlY3JldA==").unwrap(),
            b"\0alice\0secret"
        );
        assert_eq!(base64_decode("VXNlcm5hbWU6").unwrap(), b"Username:");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("A").is_none());
        assert!(base64_decode("ab$d").is_none());
    }

    #[test]
    fn plain_responses() {
        assert_eq!(
            plain(b"\0alice\0secret"),
            Some(("alice".into(), "secret".into()))
        );
        assert_eq!(
            plain(b"alice\0alice\0secret"),
            Some(("alice".into(), "secret".into()))
        );
        assert_eq!(
            plain(b"admin\0alice\0secret"),
            None,
            "no proxy authentication"
        );
        assert_eq!(plain(b"\0alice\0"), None);
        assert_eq!(plain(b"alice"), None);
        assert_eq!(plain(b"\0a\0b\0c"), None);
    }

    #[test]
    fn throttle_grows_blocks_and_forgets() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(Duration::from_secs(900), 5);
        assert_eq!(
            t.check(ip, "a@x.test", t0),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
        t.failed(ip, "a@x.test", t0);
        assert_eq!(
            t.check(ip, "a@x.test", t0),
            ThrottleVerdict::Proceed(Duration::from_millis(250))
        );
        t.failed(ip, "a@x.test", t0);
        assert_eq!(
            t.check(ip, "b@x.test", t0),
            ThrottleVerdict::Proceed(Duration::from_millis(500)),
            "per IP"
        );
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            t.check(other, "A@x.test", t0),
            ThrottleVerdict::Proceed(Duration::from_millis(500)),
            "per account"
        );
        for _ in 0..3 {
            t.failed(ip, "a@x.test", t0);
        }
        assert_eq!(t.check(ip, "c@x.test", t0), ThrottleVerdict::Blocked);
        assert_eq!(
            t.check(ip, "c@x.test", t0 + Duration::from_secs(901)),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
        t.succeeded("a@x.test");
        assert_eq!(
            t.check(other, "a@x.test", t0),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
    }

    #[test]
    fn rate_limit_is_a_sliding_hour() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(2);
        assert!(r.try_send("a", t0) && r.try_send("a", t0));
        assert!(!r.try_send("a", t0 + Duration::from_secs(10)));
        assert!(r.try_send("b", t0));
        assert!(r.try_send("a", t0 + Duration::from_secs(3601)));
    }
}
