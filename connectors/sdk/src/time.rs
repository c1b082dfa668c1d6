//! Timestamps without a clock (a guest has none): RFC 3339 / ISO 8601 as APIs write them
//! (`2024-05-02T09:14:11.123+00:00`), RFC 3339 in UTC for canonical records, and the HTTP
//! `Date` header, all through milliseconds since the epoch; and civil dates for APIs that
//! write their parts apart.

/// Parses an RFC 3339 / ISO 8601 timestamp (`2024-05-02T09:14:11.123+00:00`,
/// `2024-05-02T09:14:11Z`, `2024-05-02 09:14:11`, or a date `2024-05-02`) to milliseconds since
/// the epoch, in UTC. A missing offset means UTC.
pub fn parse_millis(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, ""),
    };
    let mut parts = date.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, offset_minutes) = split_offset(rest)?;
    let (mut hours, mut minutes, mut seconds, mut millis) = (0i64, 0i64, 0i64, 0i64);
    if !clock.is_empty() {
        let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
        let mut fields = hms.split(':');
        hours = fields.next()?.parse().ok()?;
        minutes = fields.next()?.parse().ok()?;
        seconds = fields.next().map_or(Some(0), |s| s.parse().ok())?;
        if !fraction.is_empty() {
            if !fraction.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
            millis = digits.parse().ok()?;
        }
        if hours > 23 || minutes > 59 || seconds > 60 {
            return None;
        }
    }
    let days = days_from_civil(year, month, day);
    let local = ((days * 24 + hours) * 60 + minutes) * 60 + seconds;
    Some((local - offset_minutes * 60) * 1000 + millis)
}

/// Splits `09:14:11.123+02:00` into the clock and the offset in minutes.
fn split_offset(rest: &str) -> Option<(&str, i64)> {
    if let Some(clock) = rest.strip_suffix(['Z', 'z']) {
        return Some((clock, 0));
    }
    match rest.rfind(['+', '-']) {
        Some(i) if i > 0 => {
            let (clock, offset) = rest.split_at(i);
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let digits = offset[1..].replace(':', "");
            if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let hours: i64 = digits[..2].parse().ok()?;
            let minutes: i64 = digits[2..].parse().ok()?;
            Some((clock, sign * (hours * 60 + minutes)))
        }
        _ => Some((rest, 0)),
    }
}

/// RFC 3339 with milliseconds and a `+00:00` offset (as Shopware writes timestamps):
/// `2024-05-02T09:14:11.123+00:00`.
pub fn rfc3339_millis(millis: i64) -> String {
    let (y, mo, d, h, mi, s, ms) = civil(millis);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}+00:00")
}

/// RFC 3339 in UTC, to the second: `2024-05-02T09:14:11Z`.
pub fn rfc3339(millis: i64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(millis);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`) to milliseconds.
pub fn parse_http_date(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let _weekday = parts.next()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let clock = parts.next()?;
    if parts.next()? != "GMT" {
        return None;
    }
    parse_millis(&format!("{year:04}-{month:02}-{day:02}T{clock}Z"))
}

/// Milliseconds as (year, month, day, hour, minute, second, millisecond) in UTC.
pub fn civil(millis: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, rem / 3600, (rem / 60) % 60, rem % 60, ms)
}

/// Days since 1970-01-01 of a date (Howard Hinnant's days-from-civil algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month, day) of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_shopware_timestamps() {
        let ms = parse_millis("2024-05-02T09:14:11.123+00:00").expect("valid");
        assert_eq!(ms, 1_714_641_251_123);
        assert_eq!(rfc3339_millis(ms), "2024-05-02T09:14:11.123+00:00");
        assert_eq!(rfc3339(ms), "2024-05-02T09:14:11Z");
    }

    #[test]
    fn offsets_dates_and_http_dates() {
        assert_eq!(
            parse_millis("2024-05-02T11:14:11.123+02:00"),
            parse_millis("2024-05-02T09:14:11.123Z")
        );
        assert_eq!(
            parse_millis("2024-01-01"),
            parse_millis("2024-01-01T00:00:00+00:00")
        );
        assert_eq!(
            parse_millis("2024-05-02 09:14:11"),
            parse_millis("2024-05-02T09:14:11Z")
        );
        assert_eq!(parse_millis("1970-01-01T00:00:00.5Z"), Some(500));
        assert_eq!(
            parse_http_date("Thu, 02 May 2024 09:14:11 GMT"),
            parse_millis("2024-05-02T09:14:11Z")
        );
        assert!(parse_millis("yesterday").is_none());
        assert!(parse_millis("2024-13-01").is_none());
        assert!(parse_http_date("2024-05-02").is_none());
    }
}
