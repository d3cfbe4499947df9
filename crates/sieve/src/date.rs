//! The date parts of RFC 5260 §4.2 from an RFC 5322 date-time ("Fri, 04 Dec 2026 09:30:00
//! +0100") and of the current time, in the zone the script asks for (§4.1: `:zone`), the
//! date's own (`:originalzone`), or else the server's, which is UTC.

/// Which zone a date is seen in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// As written in the header field (`:originalzone`).
    Original,
    /// Minutes east of UTC (`:zone "+0100"` is 60; no `:zone` is 0).
    Offset(i32),
}

/// `"+0100"` as minutes east of UTC (RFC 5260 §4.1: `("+" / "-") 4DIGIT`).
pub fn zone_offset(zone: &str) -> Option<i32> {
    let b = zone.as_bytes();
    if b.len() != 5 || !b[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let hours = i32::from(b[1] - b'0') * 10 + i32::from(b[2] - b'0');
    let minutes = i32::from(b[3] - b'0') * 10 + i32::from(b[4] - b'0');
    (minutes < 60).then_some(sign * (hours * 60 + minutes))
}

/// The `part` of `date` seen in `zone`, or `None` when it is no date.
pub fn part(date: &str, part: &str, zone: Zone) -> Option<String> {
    let d = parse(date)?;
    let d = match zone {
        Zone::Original => d,
        Zone::Offset(minutes) => d.in_zone(minutes),
    };
    Some(match part {
        "year" => format!("{:04}", d.year),
        "month" => format!("{:02}", d.month),
        "day" => format!("{:02}", d.day),
        "date" => format!("{:04}-{:02}-{:02}", d.year, d.month, d.day),
        "julian" => (days_from_civil(d.year, d.month, d.day) + 40587).to_string(),
        "hour" => format!("{:02}", d.hour),
        "minute" => format!("{:02}", d.minute),
        "second" => format!("{:02}", d.second),
        "time" => format!("{:02}:{:02}:{:02}", d.hour, d.minute, d.second),
        "iso8601" => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}:{}",
            d.year,
            d.month,
            d.day,
            d.hour,
            d.minute,
            d.second,
            &d.zone[..3],
            &d.zone[3..]
        ),
        "std11" => format!(
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} {}",
            WEEKDAYS[weekday(d.year, d.month, d.day)],
            d.day,
            MONTHS[(d.month - 1) as usize],
            d.year,
            d.hour,
            d.minute,
            d.second,
            d.zone
        ),
        "zone" => d.zone.clone(),
        "weekday" => weekday(d.year, d.month, d.day).to_string(),
        _ => return None,
    })
}

/// `secs` after the epoch as an RFC 5322 date in UTC.
pub fn rfc5322_utc(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rest = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} +0000",
        WEEKDAYS[weekday(y, m, d)],
        MONTHS[(m - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

struct DateTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    /// "+0100"
    zone: String,
}

impl DateTime {
    /// The same instant, `minutes` east of UTC.
    fn in_zone(&self, minutes: i32) -> DateTime {
        let own = zone_offset(&self.zone).unwrap_or(0);
        // A leap second (60) stays in its minute rather than rolling over.
        let leap = u32::from(self.second == 60);
        let local = days_from_civil(self.year, self.month, self.day) * 86400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second - leap);
        let t = local + 60 * i64::from(minutes - own);
        let (year, month, day) = civil_from_days(t.div_euclid(86400));
        let rest = t.rem_euclid(86400);
        let sign = if minutes < 0 { '-' } else { '+' };
        let m = minutes.unsigned_abs();
        DateTime {
            year,
            month,
            day,
            hour: (rest / 3600) as u32,
            minute: (rest % 3600 / 60) as u32,
            second: (rest % 60) as u32 + leap,
            zone: format!("{sign}{:02}{:02}", m / 60, m % 60),
        }
    }
}

fn parse(s: &str) -> Option<DateTime> {
    // Comments and the day name are not needed.
    let s = s.split('(').next()?;
    let s = s.split_once(',').map_or(s, |(_, rest)| rest);
    let mut it = s.split_whitespace();
    let day: u32 = it.next()?.parse().ok()?;
    let month = it.next()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    let mut year: i64 = it.next()?.parse().ok()?;
    // RFC 5322 §4.3 obsolete two-digit years.
    if year < 50 {
        year += 2000;
    } else if year < 1000 {
        year += 1900;
    }
    let time = it.next()?;
    let mut t = time.split(':');
    let hour: u32 = t.next()?.parse().ok()?;
    let minute: u32 = t.next()?.parse().ok()?;
    let second: u32 = t.next().map_or(Some(0), |s| s.parse().ok())?;
    let zone = match it.next() {
        Some(z) if zone_offset(z).is_some() => z.to_string(),
        // Obsolete zone names (RFC 5322 §4.3): UT, GMT, and US zones.
        Some(z) => match z.to_ascii_uppercase().as_str() {
            "EST" => "-0500",
            "EDT" => "-0400",
            "CST" => "-0600",
            "CDT" => "-0500",
            "MST" => "-0700",
            "MDT" => "-0600",
            "PST" => "-0800",
            "PDT" => "-0700",
            _ => "+0000",
        }
        .to_string(),
        None => "+0000".into(),
    };
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        zone,
    })
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// 0 = Sunday.
fn weekday(y: i64, m: u32, d: u32) -> usize {
    (days_from_civil(y, m, d) + 4).rem_euclid(7) as usize
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn parts_of_a_date() {
        let d = "Fri, 04 Dec 2026 09:30:05 +0100 (CET)";
        let part = |d: &str, p: &str| part(d, p, Zone::Original);
        assert_eq!(part(d, "year").unwrap(), "2026");
        assert_eq!(part(d, "date").unwrap(), "2026-12-04");
        assert_eq!(part(d, "time").unwrap(), "09:30:05");
        assert_eq!(part(d, "weekday").unwrap(), "5");
        assert_eq!(part(d, "zone").unwrap(), "+0100");
        assert_eq!(part(d, "iso8601").unwrap(), "2026-12-04T09:30:05+01:00");
        assert_eq!(part(d, "std11").unwrap(), "Fri, 04 Dec 2026 09:30:05 +0100");
        // RFC 5260 §4.2: the Modified Julian Day of 1858-11-17 is 0.
        assert_eq!(part("17 Nov 1858 00:00 +0000", "julian").unwrap(), "0");
        assert_eq!(part("not a date", "year"), None);
        assert_eq!(part("Fri, 44 Dec 2026 09:30:05 +0100", "year"), None);
    }

    #[test]
    fn dates_are_seen_in_the_zone_asked_for() {
        let d = "Thu, 31 Dec 2026 23:30:00 -0130";
        // RFC 5260 §4.1: 23:30 at -01:30 is 01:00 UTC the next day, in the next year.
        let utc = |p: &str| part(d, p, Zone::Offset(0)).unwrap();
        assert_eq!(utc("date"), "2027-01-01");
        assert_eq!(utc("time"), "01:00:00");
        assert_eq!(utc("zone"), "+0000");
        assert_eq!(utc("weekday"), "5");
        let east = part(d, "iso8601", Zone::Offset(zone_offset("+0545").unwrap())).unwrap();
        assert_eq!(east, "2027-01-01T06:45:00+05:45");
        let west = part(d, "std11", Zone::Offset(zone_offset("-1200").unwrap())).unwrap();
        assert_eq!(west, "Thu, 31 Dec 2026 13:00:00 -1200");
        assert_eq!(part(d, "zone", Zone::Original).unwrap(), "-0130");
        // A leap second stays a leap second.
        let leap = "31 Dec 2016 23:59:60 +0000";
        assert_eq!(part(leap, "time", Zone::Offset(60)).unwrap(), "00:59:60");
        for bad in ["0100", "+01", "+01000", "+0160", "x0100", "+01a0"] {
            assert_eq!(zone_offset(bad), None, "{bad}");
        }
        assert_eq!(zone_offset("-0000"), Some(0));
        assert_eq!(rfc5322_utc(0), "Thu, 01 Jan 1970 00:00:00 +0000");
    }

    #[test]
    fn days_and_back() {
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
