//! Money in minor units (cents) with tax rates as decimals, in integers only: net from gross,
//! gross from net, the tax on a net amount, each rounded half away from zero to the minor
//! unit, and the minor-unit digits of a currency. One implementation for every connector, so
//! a cent is decided the same way everywhere.

use crate::Decimal;

/// Digits after the point of an ISO 4217 currency's minor unit (`EUR` 2, `JPY` 0, `KWD` 3).
pub fn minor_digits(currency: &str) -> u8 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// `numerator / denominator`, rounded half away from zero; `None` if it does not fit.
fn divide_rounded(numerator: i128, denominator: i128) -> Option<i64> {
    if denominator == 0 {
        return None;
    }
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    let rounded = if remainder.abs() * 2 >= denominator.abs() {
        quotient + numerator.signum() * denominator.signum()
    } else {
        quotient
    };
    i64::try_from(rounded).ok()
}

/// Net from gross and a tax rate in percent (`21`, `5.5`), in minor units, rounded half away
/// from zero: `net_from_gross(1210, 21%) = 1000`.
pub fn net_from_gross(gross: i64, rate: Decimal) -> Option<i64> {
    let hundred = 100 * 10i128.checked_pow(u32::from(rate.scale))?;
    let denominator = hundred + i128::from(rate.units);
    if denominator <= 0 {
        return None;
    }
    divide_rounded(i128::from(gross) * hundred, denominator)
}

/// Gross from net and a tax rate in percent, in minor units, rounded half away from zero:
/// `gross_from_net(1000, 21%) = 1210`.
pub fn gross_from_net(net: i64, rate: Decimal) -> Option<i64> {
    net.checked_add(tax_on(net, rate)?)
}

/// The tax on a net amount in minor units, rounded half away from zero.
pub fn tax_on(net: i64, rate: Decimal) -> Option<i64> {
    let denominator = 100 * 10i128.checked_pow(u32::from(rate.scale))?;
    divide_rounded(i128::from(net) * i128::from(rate.units), denominator)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_half_away_from_zero_to_the_minor_unit() {
        assert_eq!(net_from_gross(1999, Decimal::integer(19)), Some(1680));
        assert_eq!(net_from_gross(1210, Decimal::integer(21)), Some(1000));
        assert_eq!(net_from_gross(-1210, Decimal::integer(21)), Some(-1000));
        assert_eq!(net_from_gross(1000, Decimal::new(55, 1)), Some(948));
        assert_eq!(net_from_gross(1000, Decimal::ZERO), Some(1000));
        assert_eq!(net_from_gross(1000, Decimal::integer(-100)), None);
        assert_eq!(tax_on(1680, Decimal::integer(19)), Some(319));
        assert_eq!(tax_on(1000, Decimal::new(55, 1)), Some(55));
        assert_eq!(tax_on(-250, Decimal::integer(10)), Some(-25));
        assert_eq!(tax_on(5, Decimal::integer(10)), Some(1), "0.5 rounds up");
        assert_eq!(
            tax_on(-5, Decimal::integer(10)),
            Some(-1),
            "-0.5 rounds down"
        );
        assert_eq!(gross_from_net(1000, Decimal::integer(21)), Some(1210));
        assert_eq!(gross_from_net(i64::MAX, Decimal::integer(21)), None);
        assert_eq!(minor_digits("jpy"), 0);
        assert_eq!(minor_digits("EUR"), 2);
        assert_eq!(minor_digits("KWD"), 3);
    }
}
