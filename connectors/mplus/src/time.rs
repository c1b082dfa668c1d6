//! Timestamps: RFC 3339 from the canonical records to MplusKASSA's local wall-clock time
//! (Europe/Amsterdam, by the EU summer-time rule) with its offset in minutes. The civil-date
//! arithmetic is the SDK's ([`koppel_sdk::time`]); the strict RFC 3339 reading (an order's
//! `placed_at` must have a time and an offset) and Amsterdam's clock are MplusKASSA's.

use koppel_sdk::time::{civil_from_days, days_from_civil};

use crate::ops::LocalTime;

/// Seconds since the Unix epoch of an RFC 3339 timestamp (`2026-11-29T10:15:00Z`,
/// `2026-03-29T03:00:00.123+02:00`).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    if bytes.len() < 20 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let year = num(0..4)?;
    let mon = num(5..7)?;
    let day = num(8..10)?;
    let hour = num(11..13)?;
    let min = num(14..16)?;
    let sec = num(17..19)?;
    if bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
        || bytes[13] != b':'
        || bytes[16] != b':'
        || !(1..=12).contains(&mon)
        || !(1..=31).contains(&day)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let h: i64 = rest.get(1..3)?.parse().ok()?;
            let m: i64 = rest.get(4..6)?.parse().ok()?;
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let days = days_from_civil(year, u32::try_from(mon).ok()?, u32::try_from(day).ok()?);
    Some(days * 86_400 + hour * 3600 + min * 60 + sec.min(59) - offset)
}

/// The last Sunday of a month, as days since the epoch.
fn last_sunday(year: i64, mon: u32) -> i64 {
    let first_of_next = if mon == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, mon + 1, 1)
    };
    let last = first_of_next - 1;
    // 1970-01-01 was a Thursday: weekday 0 = Sunday is (days + 4) mod 7.
    last - (last + 4).rem_euclid(7)
}

/// Europe/Amsterdam: CET (+60), summer time (+120) from 01:00 UTC on the last Sunday of March
/// to 01:00 UTC on the last Sunday of October.
pub fn amsterdam(epoch: i64) -> LocalTime {
    let (year, _, _) = civil_from_days(epoch.div_euclid(86_400));
    let start = last_sunday(year, 3) * 86_400 + 3600;
    let end = last_sunday(year, 10) * 86_400 + 3600;
    let summer = (start..end).contains(&epoch);
    let offset_minutes = if summer { 120 } else { 60 };
    let local = epoch + i64::from(offset_minutes) * 60;
    let (year, mon, day) = civil_from_days(local.div_euclid(86_400));
    let secs = local.rem_euclid(86_400);
    LocalTime {
        year: year as i32,
        mon: mon as u8,
        day: day as u8,
        hour: (secs / 3600) as u8,
        min: (secs % 3600 / 60) as u8,
        sec: (secs % 60) as u8,
        isdst: summer,
        offset_minutes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc3339_with_offsets_and_fractions() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2025-03-04T10:15:05Z"),
            parse_rfc3339("2025-03-04T11:15:05.250+01:00")
        );
        assert_eq!(parse_rfc3339("2025-03-04"), None);
        assert_eq!(parse_rfc3339("2025-13-04T10:15:05Z"), None);
        assert_eq!(parse_rfc3339("2025-03-04T10:15:05+0100"), None);
    }

    #[test]
    fn amsterdam_switches_at_one_utc_on_the_last_sundays() {
        let at = |s: &str| amsterdam(parse_rfc3339(s).expect("valid"));
        let winter = at("2025-03-04T09:15:05Z");
        assert_eq!(
            (winter.hour, winter.offset_minutes, winter.isdst),
            (10, 60, false)
        );
        // 2025-03-30 is the last Sunday of March.
        assert_eq!(at("2025-03-30T00:59:59Z").offset_minutes, 60);
        let summer = at("2025-03-30T01:00:00Z");
        assert_eq!((summer.hour, summer.offset_minutes), (3, 120));
        // 2025-10-26 is the last Sunday of October.
        assert_eq!(at("2025-10-26T00:59:59Z").offset_minutes, 120);
        assert_eq!(at("2025-10-26T01:00:00Z").offset_minutes, 60);
        let new_year = at("2025-12-31T23:30:00Z");
        assert_eq!(
            (new_year.year, new_year.mon, new_year.day, new_year.hour),
            (2026, 1, 1, 0)
        );
    }
}
