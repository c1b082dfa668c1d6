//! Amounts between koppel's integers (minor units, decimals) and Shopware's JSON numbers, going
//! through the decimal text of the number so no float arithmetic decides a cent.

use koppel_sdk::Decimal;
use serde_json::{Number, Value};

/// Digits after the point of an ISO 4217 currency's minor unit.
pub fn minor_digits(currency: &str) -> u8 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// A decimal as a JSON number (`19.95`); `None` if it cannot be one.
pub fn decimal_json(value: Decimal) -> Option<Value> {
    value
        .normalize()
        .to_string()
        .parse::<Number>()
        .ok()
        .map(Value::Number)
}

/// An amount in minor units as a JSON number in major units: 1995 (2 digits) → `19.95`.
pub fn minor_json(minor: i64, digits: u8) -> Option<Value> {
    decimal_json(Decimal::from_minor(minor, digits))
}

/// A JSON number (or numeric string) as a decimal, read from its text.
pub fn json_decimal(value: &Value) -> Option<Decimal> {
    match value {
        Value::Number(n) => Decimal::parse(&n.to_string()),
        Value::String(s) => Decimal::parse(s),
        _ => None,
    }
}

/// A JSON number in major units as minor units, rounded half away from zero.
pub fn json_minor(value: &Value, digits: u8) -> Option<i64> {
    json_decimal(value)?.to_minor(digits)
}

/// Net from gross and a tax rate in percent, in minor units, rounded half away from zero.
pub fn net_from_gross(gross: i64, rate: Decimal) -> Option<i64> {
    // gross * 100 / (100 + rate), in integers at the rate's scale.
    let scale = 10i128.pow(u32::from(rate.scale));
    let hundred = 100 * scale;
    let denominator = hundred + i128::from(rate.units);
    if denominator <= 0 {
        return None;
    }
    let numerator = i128::from(gross) * hundred;
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    let rounded = if remainder.abs() * 2 >= denominator {
        quotient + numerator.signum()
    } else {
        quotient
    };
    i64::try_from(rounded).ok()
}

/// The tax on a net amount in minor units, rounded half away from zero.
pub fn tax_on(net: i64, rate: Decimal) -> Option<i64> {
    let scale = 10i128.pow(u32::from(rate.scale));
    let numerator = i128::from(net) * i128::from(rate.units);
    let denominator = 100 * scale;
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    let rounded = if remainder.abs() * 2 >= denominator {
        quotient + numerator.signum()
    } else {
        quotient
    };
    i64::try_from(rounded).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn minor_units_become_json_numbers_and_back() {
        assert_eq!(minor_json(1999, 2), Some(json!(19.99)));
        assert_eq!(minor_json(1680, 2), Some(json!(16.8)));
        assert_eq!(minor_json(500, 0), Some(json!(500)));
        assert_eq!(json_minor(&json!(16.8), 2), Some(1680));
        assert_eq!(json_minor(&json!(43.98), 2), Some(4398));
        assert_eq!(json_minor(&json!(19), 2), Some(1900));
        assert_eq!(json_minor(&json!("7.005"), 2), Some(701));
        assert_eq!(json_minor(&json!(null), 2), None);
        assert_eq!(minor_digits("jpy"), 0);
        assert_eq!(minor_digits("EUR"), 2);
    }

    #[test]
    fn net_from_gross_rounds_to_the_cent() {
        assert_eq!(net_from_gross(1999, Decimal::integer(19)), Some(1680));
        assert_eq!(net_from_gross(1210, Decimal::integer(21)), Some(1000));
        assert_eq!(net_from_gross(1000, Decimal::new(55, 1)), Some(948));
        assert_eq!(net_from_gross(1000, Decimal::ZERO), Some(1000));
        assert_eq!(tax_on(1680, Decimal::integer(19)), Some(319));
        assert_eq!(tax_on(1000, Decimal::new(55, 1)), Some(55));
    }
}
