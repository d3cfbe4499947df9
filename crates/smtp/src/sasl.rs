//! Submission's own share of logins: the sending rate limit. SASL decoding and the failure
//! throttle are `kurier-access`'s, shared with IMAP and POP3.

use std::collections::HashMap;
use std::time::{Duration, Instant};

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
    fn rate_limit_is_a_sliding_hour() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(2);
        assert!(r.try_send("a", t0) && r.try_send("a", t0));
        assert!(!r.try_send("a", t0 + Duration::from_secs(10)));
        assert!(r.try_send("b", t0));
        assert!(r.try_send("a", t0 + Duration::from_secs(3601)));
    }
}
