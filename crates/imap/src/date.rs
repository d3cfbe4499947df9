//! IMAP's dates (RFC 9051 §9): `date` (`7-Feb-1994`, for SEARCH) and `date-time`
//! (`" 7-Feb-1994 21:52:25 -0800"`, INTERNALDATE and APPEND). The calendar arithmetic is
//! mail-parser's `DateTime`.

use mail_parser::DateTime;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `d-Mon-yyyy` as days since 1970-01-01; `None` for anything else, including 30-Feb.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let (d, m, y) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || d.is_empty() || d.len() > 2 || y.len() != 4 {
        return None;
    }
    let day: u8 = d.parse().ok()?;
    let month = MONTHS.iter().position(|n| n.eq_ignore_ascii_case(m))? as u8 + 1;
    let year: u16 = y.parse().ok()?;
    let t = checked(year, month, day, 0, 0, 0)?;
    Some(t.div_euclid(86400))
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` (a leading space for one-digit days) as Unix time.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let s = s.strip_prefix(' ').unwrap_or(s);
    let (date, rest) = s.split_once(' ')?;
    let (time, zone) = rest.split_once(' ')?;
    let days = parse_date(date)?;
    let mut hms = time.split(':');
    let mut field = |max: i64| -> Option<i64> {
        let f = hms.next()?;
        (f.len() == 2)
            .then(|| f.parse::<i64>().ok())
            .flatten()
            .filter(|v| (0..=max).contains(v))
    };
    let (h, m, sec) = (field(23)?, field(59)?, field(60)?);
    let zb = zone.as_bytes();
    if zb.len() != 5 || !matches!(zb[0], b'+' | b'-') || !zb[1..].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let zh: i64 = zone[1..3].parse().ok()?;
    let zm: i64 = zone[3..5].parse().ok()?;
    let offset = (zh * 3600 + zm * 60) * if zb[0] == b'-' { -1 } else { 1 };
    Some(days * 86400 + h * 3600 + m * 60 + sec - offset)
}

/// INTERNALDATE form, in UTC: `08-Feb-1994 05:52:25 +0000`.
pub fn format_date_time(t: i64) -> String {
    let d = DateTime::from_timestamp(t);
    format!(
        "{:02}-{}-{:04} {:02}:{:02}:{:02} +0000",
        d.day,
        MONTHS[usize::from(d.month.clamp(1, 12) - 1)],
        d.year,
        d.hour,
        d.minute,
        d.second
    )
}

/// Unix time of a civil UTC time, if the date exists.
fn checked(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> Option<i64> {
    let dt = DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
        tz_before_gmt: false,
        tz_hour: 0,
        tz_minute: 0,
    };
    let t = dt.to_timestamp();
    let back = DateTime::from_timestamp(t);
    (back.day == day && back.month == month && back.year == year).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1-Jan-1970"), Some(0));
        assert_eq!(parse_date("29-feb-2024"), Some(19_782));
        for bad in [
            "29-Feb-2023",
            "1-Foo-2000",
            "01-Jan-70",
            "",
            "1-Jan-1970-1",
            "x-Jan-1970",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn date_times_round_trip() {
        assert_eq!(
            parse_date_time(" 7-Feb-1994 21:52:25 -0800"),
            Some(760_686_745)
        );
        assert_eq!(format_date_time(760_686_745), "08-Feb-1994 05:52:25 +0000");
        assert_eq!(
            parse_date_time(&format_date_time(1_795_906_104)),
            Some(1_795_906_104)
        );
        for bad in [
            "07-Feb-1994 24:00:00 +0000",
            "07-Feb-1994 21:52:25 0800",
            "07-Feb-1994 21:52 +0000",
            "07-Feb-1994",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
    }
}
