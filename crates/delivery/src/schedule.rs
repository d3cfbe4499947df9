//! When to try again, when to warn, when to give up (RFC 5321 §4.5.4.1: retry at least 30 min
//! apart at first, give up after 4–5 days; RFC 3464 "delayed" warnings).
//!
//! Attempt n (counting from 0) is nominally due `offset(n)` after the message was queued, where
//! the gaps grow exponentially from `retry_min` to `retry_max`. The delay warning goes with the
//! first attempt whose nominal time is at or past `delay_warning`, so it is sent once, without
//! the store having to remember it.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub retry_min: Duration,
    pub retry_max: Duration,
    pub lifetime: Duration,
    /// Zero: never warn.
    pub delay_warning: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            retry_min: Duration::from_secs(300),
            retry_max: Duration::from_secs(3600),
            lifetime: Duration::from_secs(5 * 86400),
            delay_warning: Duration::from_secs(4 * 3600),
        }
    }
}

impl Schedule {
    /// The gap after attempt `n` failed.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(30)).unwrap_or(u32::MAX);
        self.retry_min
            .checked_mul(factor)
            .unwrap_or(self.retry_max)
            .min(self.retry_max)
            .max(Duration::from_secs(1))
    }

    /// The nominal offset of attempt `n` from queueing.
    pub fn offset(&self, n: u32) -> Duration {
        (0..n).map(|i| self.backoff(i)).sum()
    }

    /// Attempt `n` carries the delay warning.
    pub fn warn_at(&self, n: u32) -> bool {
        !self.delay_warning.is_zero()
            && n > 0
            && self.offset(n) >= self.delay_warning
            && self.offset(n - 1) < self.delay_warning
    }

    /// The message has been queued for its whole lifetime: pending recipients fail now.
    pub fn expired(&self, age: Duration) -> bool {
        age >= self.lifetime
    }

    /// The same for a TLSRPT report, which is retried for one day at most (RFC 8460 §5.3,
    /// TR-03108 RPT-10): yesterday's report is worth little after today.
    pub fn report_expired(&self, age: Duration) -> bool {
        self.expired(age) || age >= REPORT_LIFETIME
    }
}

/// How long a TLSRPT report is retried.
pub const REPORT_LIFETIME: Duration = Duration::from_secs(86_400);

/// The pauses between the HTTPS upload attempts of a report: doubling from 5 minutes, about a
/// day in all (RPT-10).
pub fn report_upload_pauses() -> Vec<Duration> {
    (0..8).map(|i| Duration::from_secs(300 << i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_capped() {
        let s = Schedule::default();
        assert_eq!(s.backoff(0), Duration::from_secs(300));
        assert_eq!(s.backoff(1), Duration::from_secs(600));
        assert_eq!(s.backoff(3), Duration::from_secs(2400));
        assert_eq!(s.backoff(4), Duration::from_secs(3600));
        assert_eq!(s.backoff(u32::MAX), Duration::from_secs(3600));
    }

    #[test]
    fn exactly_one_attempt_warns() {
        let s = Schedule::default();
        let warned: Vec<u32> = (0..200).filter(|n| s.warn_at(*n)).collect();
        assert_eq!(warned.len(), 1);
        let n = warned[0];
        assert!(s.offset(n) >= s.delay_warning && s.offset(n - 1) < s.delay_warning);
        let never = Schedule {
            delay_warning: Duration::ZERO,
            ..s
        };
        assert!((0..200).all(|n| !never.warn_at(n)));
    }

    #[test]
    fn rpt10_reports_live_a_day() {
        let s = Schedule::default();
        let hours = |h: u64| Duration::from_secs(h * 3600);
        assert!(!s.report_expired(hours(23)));
        assert!(s.report_expired(hours(24)));
        assert!(!s.expired(hours(24)), "other mail lives on");
        let total: Duration = report_upload_pauses().iter().sum();
        assert!(total >= hours(20) && total <= hours(24), "{total:?}");
    }

    #[test]
    fn lifetime() {
        let s = Schedule::default();
        assert!(!s.expired(Duration::from_secs(86400)));
        assert!(s.expired(Duration::from_secs(5 * 86400)));
    }
}
