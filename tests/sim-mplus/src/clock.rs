//! Time as MplusKASSA writes it: local wall-clock time in Europe/Amsterdam with the UTC offset
//! in minutes (`SoapMplusDateTime`), and dates as day/month/year (`SoapMplusDate`).

use crate::xml::Out;

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A broken-down local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Local {
    pub sec: u32,
    pub min: u32,
    pub hour: u32,
    pub day: u32,
    pub mon: u32,
    pub year: i32,
    pub isdst: bool,
    /// Offset from UTC in minutes (60 in winter, 120 in summer).
    pub offset_min: i32,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub fn days_from_civil(year: i32, mon: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(mon <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(mon);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number.
pub fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((y + i64::from(m <= 2)) as i32, m, d)
}

/// 01:00 UTC on the last Sunday of a month with 31 days.
fn last_sunday_1am_utc(year: i32, mon: u32) -> i64 {
    let last = days_from_civil(year, mon, 31);
    let weekday = (last + 4).rem_euclid(7); // 1970-01-01 was a Thursday; Sunday = 0.
    (last - weekday) * 86_400 + 3_600
}

/// Europe/Amsterdam local time of a Unix timestamp (EU summer time rules).
pub fn local(ts: i64) -> Local {
    let (year, _, _) = civil_from_days(ts.div_euclid(86_400));
    let summer = ts >= last_sunday_1am_utc(year, 3) && ts < last_sunday_1am_utc(year, 10);
    let offset_min = if summer { 120 } else { 60 };
    let t = ts + i64::from(offset_min) * 60;
    let (year, mon, day) = civil_from_days(t.div_euclid(86_400));
    let secs = t.rem_euclid(86_400);
    Local {
        sec: (secs % 60) as u32,
        min: (secs / 60 % 60) as u32,
        hour: (secs / 3600) as u32,
        day,
        mon,
        year,
        isdst: summer,
        offset_min,
    }
}

/// Writes a `SoapMplusDateTime`.
pub fn write_datetime(out: &mut Out, name: &str, ts: i64) {
    let l = local(ts);
    out.open(name);
    out.val("sec", l.sec);
    out.val("min", l.min);
    out.val("hour", l.hour);
    out.val("day", l.day);
    out.val("mon", l.mon);
    out.val("year", l.year);
    out.bool("isdst", l.isdst);
    out.val("timezone", l.offset_min);
    out.close(name);
}

/// Writes a `SoapMplusDate` (the local date of the timestamp).
pub fn write_date(out: &mut Out, name: &str, ts: i64) {
    let l = local(ts);
    out.open(name);
    out.val("day", l.day);
    out.val("mon", l.mon);
    out.val("year", l.year);
    out.close(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amsterdam_winter_and_summer_time() {
        // 2025-03-04 09:31:40 UTC+1.
        let winter = days_from_civil(2025, 3, 4) * 86_400 + 8 * 3600 + 31 * 60 + 40;
        let l = local(winter);
        assert_eq!(
            (l.year, l.mon, l.day, l.hour, l.min, l.sec),
            (2025, 3, 4, 9, 31, 40)
        );
        assert_eq!((l.offset_min, l.isdst), (60, false));
        // 2025-03-30 01:00 UTC is the switch to summer time.
        let switch = days_from_civil(2025, 3, 30) * 86_400 + 3600;
        assert_eq!(local(switch - 1).offset_min, 60);
        assert_eq!(local(switch).offset_min, 120);
        assert_eq!(local(switch).hour, 3);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
    }
}
