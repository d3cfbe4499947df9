//! The Received header we add (RFC 5321 §4.4, RFC 8314 §4.3: record the TLS version and cipher).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::session::TlsInfo;

/// What time it is for the session: the Received and Date fields (RFC 5322 §3.3) and message
/// ids. The session asks this, never the system clock itself, so tests can pin the time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    /// Always this Unix time (tests).
    Fixed(i64),
}

impl Clock {
    /// Seconds since the Unix epoch.
    pub fn unix(self) -> i64 {
        (self.micros() / 1_000_000) as i64
    }

    /// Microseconds since the Unix epoch.
    pub fn micros(self) -> u64 {
        match self {
            Clock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_micros() as u64)
                .unwrap_or(0),
            Clock::Fixed(t) => u64::try_from(t).unwrap_or(0) * 1_000_000,
        }
    }
}

/// A value that never repeats within this process and rarely across restarts (for queue ids).
pub fn unique_stamp() -> u64 {
    unique_stamp_at(Clock::System)
}

/// `unique_stamp` with the time from `clock`: still never repeating, also when the clock stands.
pub fn unique_stamp_at(clock: Clock) -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = clock.micros();
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

/// What a `Received:` field says (RFC 5321 §4.4).
#[derive(Debug, Clone)]
pub struct Received<'a> {
    /// Our name.
    pub hostname: &'a str,
    /// The client's EHLO/HELO name.
    pub helo: &'a str,
    /// The client's address, if it is to be named.
    pub ip: Option<IpAddr>,
    /// `ESMTP`, `ESMTPS`, `ESMTPSA`, … (RFC 3848).
    pub protocol: &'a str,
    pub id: &'a str,
    pub tls: Option<&'a TlsInfo>,
    /// The recipient, when there is exactly one.
    pub single_recipient: Option<&'a str>,
    /// Unix time.
    pub at: i64,
}

impl Received<'_> {
    /// The field with folded lines, ending in CRLF.
    pub fn header(&self) -> String {
        let helo = sanitize(self.helo);
        let ip = self.ip.map(|ip| format!(" ([{ip}])")).unwrap_or_default();
        let mut h = format!(
            "Received: from {helo}{ip}\r\n\tby {} (Kurier) with {} id {}",
            self.hostname, self.protocol, self.id
        );
        if let Some(t) = self.tls {
            h.push_str(&format!(
                "\r\n\t(version={} cipher={}{})",
                sanitize(&t.version),
                sanitize(&t.cipher),
                t.group
                    .as_deref()
                    .map(|g| format!(" group={}", sanitize(g)))
                    .unwrap_or_default()
            ));
        }
        if let Some(rcpt) = self.single_recipient {
            h.push_str(&format!("\r\n\tfor <{}>", sanitize(rcpt)));
        }
        h.push_str(&format!(";\r\n\t{}\r\n", rfc5322_date(self.at)));
        h
    }
}

/// Keeps what the peer chose from breaking the header: printable, no parentheses.
fn sanitize(s: &str) -> String {
    let t: String = s
        .chars()
        .filter(|c| !c.is_control() && *c != '(' && *c != ')')
        .take(255)
        .collect();
    if t.is_empty() { "unknown".into() } else { t }
}

/// RFC 5322 §3.3 date in UTC, e.g. `Sat, 28 Nov 2026 22:55:01 +0000`.
pub fn rfc5322_date(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = UtcTime::from_unix(t);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[t.div_euclid(86400).rem_euclid(7) as usize],
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// A Unix time as a UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: i64,
    /// 1 to 12.
    pub month: i64,
    /// 1 to 31.
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

impl UtcTime {
    /// `2026-11-28T00:00:00Z` (RFC 3339).
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Seconds since 1970 of a civil date and time (the inverse of `from_unix`).
    pub fn to_unix(&self) -> i64 {
        let y = self.year - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = self.month;
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + self.day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86400 + self.hour * 3600 + self.minute * 60 + self.second
    }

    /// Civil date from days since 1970-01-01 (H. Hinnant's algorithm); any `i64` is fine.
    pub fn from_unix(t: i64) -> Self {
        let (days, secs) = (t.div_euclid(86400), t.rem_euclid(86400));
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcTime {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: secs / 3600,
            minute: secs % 3600 / 60,
            second: secs % 60,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_round_trip() {
        for t in [0, 951_782_400, 1_795_906_104, -86_400, 4_102_444_800] {
            assert_eq!(UtcTime::from_unix(t).to_unix(), t);
        }
        assert_eq!(
            UtcTime::from_unix(1_795_906_104).rfc3339(),
            "2026-11-28T22:48:24Z"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(rfc5322_date(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            rfc5322_date(1_795_906_104),
            "Sat, 28 Nov 2026 22:48:24 +0000"
        );
    }

    #[test]
    fn received_names_tls_and_resists_injection() {
        let tls = TlsInfo {
            version: "TLSv1.3".into(),
            cipher: "TLS_AES_128_GCM_SHA256".into(),
            group: None,
        };
        let h = Received {
            hostname: "mx.k.test",
            helo: "evil\r\nX-Injected: 1",
            ip: Some("192.0.2.1".parse().unwrap()),
            protocol: "ESMTPS",
            id: "abc",
            tls: Some(&tls),
            single_recipient: Some("a@b.test"),
            at: 1_795_906_104,
        }
        .header();
        assert!(h.starts_with("Received: from evilX-Injected: 1 ([192.0.2.1])\r\n\tby mx.k.test (Kurier) with ESMTPS id abc"), "{h}");
        assert!(h.contains("(version=TLSv1.3 cipher=TLS_AES_128_GCM_SHA256)"));
        assert!(
            h.ends_with(";\r\n\tSat, 28 Nov 2026 22:48:24 +0000\r\n"),
            "{h}"
        );
        assert_eq!(
            h.matches("\r\n").count(),
            h.matches("\r\n\t").count() + 1,
            "only folded lines: {h}"
        );
        assert!(unique_stamp() < unique_stamp());
        let fixed = Clock::Fixed(1_795_906_104);
        assert_eq!(fixed.unix(), 1_795_906_104);
        assert!(
            unique_stamp_at(fixed) < unique_stamp_at(fixed),
            "never repeats"
        );
    }
}
