//! The date parts of RFC 5260 §4.2 from an RFC 5322 date-time ("Fri, 04 Dec 2026 09:30:00
//! +0100"), in the date's own zone; and the current time, in UTC.

/// The `part` of `date`, or `None` when it is no date.
pub fn part(date: &str, part: &str) -> Option<String> {
    let d = parse(date)?;
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

/// Now, as an RFC 5322 date in UTC.
pub fn now_rfc5322() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
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
        Some(z) if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => z.to_string(),
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
    fn now_is_a_date() {
        let now = now_rfc5322();
        assert!(part(&now, "year").unwrap().starts_with("20"), "{now}");
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
