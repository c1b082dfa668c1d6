//! Decimals as the contract carries them (`units × 10^-scale`, no floats): the one place the
//! host parses, prints and adds them. Arithmetic is checked: a result that does not fit is
//! `None`, never a saturated or wrapped number.

use super::Decimal;

/// The largest scale a decimal may have (`10^18` still fits an `i64`).
pub const MAX_SCALE: u8 = 18;

/// Parses `"12.50"`, `"-0.530"`, `" 7 "` into a decimal without floats; `None` for anything
/// else (an exponent, a second dot, more than 18 decimals, too many digits).
pub fn parse(text: &str) -> Option<Decimal> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > usize::from(MAX_SCALE)
    {
        return None;
    }
    let mut units: i64 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        units = units.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(Decimal {
        units: if negative { -units } else { units },
        scale: fraction.len() as u8,
    })
}

/// The decimal as text, with all its scale's digits (`-0.530`).
pub fn text(d: &Decimal) -> String {
    if d.scale == 0 {
        return d.units.to_string();
    }
    let scale = d.scale.min(MAX_SCALE);
    let factor = 10u64.pow(u32::from(scale));
    let abs = d.units.unsigned_abs();
    let sign = if d.units < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:0width$}",
        abs / factor,
        abs % factor,
        width = usize::from(scale)
    )
}

/// The same number at a larger scale (`1.5` at scale 3 is `1.500`); `None` if it does not
/// fit or the scale is smaller.
pub fn rescale(d: Decimal, scale: u8) -> Option<Decimal> {
    let up = scale.checked_sub(d.scale)?;
    Some(Decimal {
        units: d.units.checked_mul(10i64.checked_pow(u32::from(up))?)?,
        scale,
    })
}

/// `a + b` at the larger of the two scales; `None` when it does not fit.
pub fn checked_add(a: Decimal, b: Decimal) -> Option<Decimal> {
    let scale = a.scale.max(b.scale);
    Some(Decimal {
        units: rescale(a, scale)?
            .units
            .checked_add(rescale(b, scale)?.units)?,
        scale,
    })
}

/// `a - b` at the larger of the two scales; `None` when it does not fit.
pub fn checked_sub(a: Decimal, b: Decimal) -> Option<Decimal> {
    checked_add(
        a,
        Decimal {
            units: b.units.checked_neg()?,
            scale: b.scale,
        },
    )
}

/// Zero at scale 0.
pub const ZERO: Decimal = Decimal { units: 0, scale: 0 };

/// Decimals print as [`text`] gives them (`-0.530`).
impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&text(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(units: i64, scale: u8) -> Decimal {
        Decimal { units, scale }
    }

    #[test]
    fn parses_and_prints_without_floats() {
        assert_eq!(parse("12.50"), Some(d(1250, 2)));
        assert_eq!(parse(" -0.530 "), Some(d(-530, 3)));
        assert_eq!(parse("7"), Some(d(7, 0)));
        assert_eq!(parse(".5"), Some(d(5, 1)));
        for bad in ["", "-", "1e3", "1.2.3", "abc", "9223372036854775808"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse("0.1234567890123456789"), None, "19 decimals");
        assert_eq!(text(&d(-530, 3)), "-0.530");
        assert_eq!(text(&d(5, 2)), "0.05");
        assert_eq!(text(&d(i64::MIN, 0)), "-9223372036854775808");
        assert_eq!(text(&d(i64::MIN, 18)), "-9.223372036854775808");
    }

    #[test]
    fn adds_at_the_larger_scale_and_refuses_what_does_not_fit() {
        assert_eq!(checked_add(d(15, 1), d(250, 3)), Some(d(1750, 3)));
        assert_eq!(checked_sub(d(1, 0), d(25, 2)), Some(d(75, 2)));
        assert_eq!(checked_add(d(i64::MAX, 0), d(1, 0)), None);
        assert_eq!(
            checked_add(d(i64::MAX / 10 + 1, 0), d(0, 1)),
            None,
            "rescale overflows"
        );
        assert_eq!(checked_sub(d(0, 0), d(i64::MIN, 0)), None);
        assert_eq!(rescale(d(15, 1), 0), None, "no rounding down");
    }
}
