//! Decimal numbers without floats: parsing, formatting, rescaling and minor units.

use crate::Decimal;

impl Decimal {
    pub const ZERO: Decimal = Decimal { units: 0, scale: 0 };

    pub fn new(units: i64, scale: u8) -> Self {
        Decimal { units, scale }
    }

    pub fn integer(units: i64) -> Self {
        Decimal { units, scale: 0 }
    }

    /// Parses `"12"`, `"-0.530"`, `"19.95"`. Returns `None` for anything else (no exponents).
    pub fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        if !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let scale = u8::try_from(fraction.len()).ok().filter(|s| *s <= 18)?;
        let mut units: i64 = 0;
        for b in whole.bytes().chain(fraction.bytes()) {
            units = units.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
        }
        Some(Decimal {
            units: if negative { -units } else { units },
            scale,
        })
    }

    /// The same value with `scale` digits after the point, rounding half away from zero.
    pub fn rescale(self, scale: u8) -> Option<Decimal> {
        if scale >= self.scale {
            let factor = 10i64.checked_pow(u32::from(scale - self.scale))?;
            return Some(Decimal {
                units: self.units.checked_mul(factor)?,
                scale,
            });
        }
        let factor = 10i64.checked_pow(u32::from(self.scale - scale))?;
        let quotient = self.units / factor;
        let remainder = self.units % factor;
        let rounded = if remainder.abs() * 2 >= factor {
            quotient + self.units.signum()
        } else {
            quotient
        };
        Some(Decimal {
            units: rounded,
            scale,
        })
    }

    /// Minor units (cents) of an amount in major units: 19.95 → 1995.
    pub fn to_minor(self, minor_digits: u8) -> Option<i64> {
        self.rescale(minor_digits).map(|d| d.units)
    }

    /// An amount in minor units as a decimal in major units: 1995 → 19.95.
    pub fn from_minor(minor: i64, minor_digits: u8) -> Decimal {
        Decimal {
            units: minor,
            scale: minor_digits,
        }
    }

    /// Drops trailing zeros after the point: 21.00 → 21.
    pub fn normalize(self) -> Decimal {
        let mut d = self;
        while d.scale > 0 && d.units % 10 == 0 {
            d.units /= 10;
            d.scale -= 1;
        }
        d
    }

    /// Exact comparison of values across scales.
    pub fn same_value(self, other: Decimal) -> bool {
        self.normalize() == other.normalize()
    }

    pub fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let a = self.rescale(scale)?;
        let b = other.rescale(scale)?;
        Some(Decimal {
            units: a.units.checked_add(b.units)?,
            scale,
        })
    }

    pub fn checked_sub(self, other: Decimal) -> Option<Decimal> {
        self.checked_add(Decimal {
            units: other.units.checked_neg()?,
            scale: other.scale,
        })
    }

    /// The value rounded down to a whole number (for stock counts).
    pub fn floor(self) -> i64 {
        let factor = 10i64.pow(u32::from(self.scale.min(18)));
        self.units.div_euclid(factor)
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.units == other.units && self.scale == other.scale
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.scale == 0 {
            return write!(f, "{}", self.units);
        }
        let factor = 10u64.pow(u32::from(self.scale));
        let abs = self.units.unsigned_abs();
        let sign = if self.units < 0 { "-" } else { "" };
        write!(
            f,
            "{sign}{}.{:0width$}",
            abs / factor,
            abs % factor,
            width = usize::from(self.scale)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_without_floats() {
        let d = Decimal::parse("-0.530").expect("valid");
        assert_eq!((d.units, d.scale), (-530, 3));
        assert_eq!(d.to_string(), "-0.530");
        assert_eq!(
            Decimal::parse("19.95").and_then(|d| d.to_minor(2)),
            Some(1995)
        );
        assert_eq!(
            Decimal::parse("7").map(|d| d.to_string()).as_deref(),
            Some("7")
        );
        assert!(Decimal::parse("1e5").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(
            Decimal::parse("99999999999999999999").is_none(),
            "overflow is refused, not wrapped"
        );
    }

    #[test]
    fn rescales_with_half_away_from_zero() {
        assert_eq!(Decimal::new(1995, 3).rescale(2), Some(Decimal::new(200, 2)));
        assert_eq!(
            Decimal::new(-1995, 3).rescale(2),
            Some(Decimal::new(-200, 2))
        );
        assert_eq!(Decimal::new(1994, 3).rescale(2), Some(Decimal::new(199, 2)));
        assert!(Decimal::new(2100, 2).same_value(Decimal::integer(21)));
        assert_eq!(
            Decimal::new(1530, 3).checked_sub(Decimal::integer(1)),
            Some(Decimal::new(530, 3))
        );
        assert_eq!(Decimal::new(-1500, 3).floor(), -2);
    }
}
