//! Amounts between koppel's integers (minor units, decimals) and Shopware's JSON numbers, going
//! through the decimal text of the number so no float arithmetic decides a cent. The money
//! arithmetic itself (net, gross, tax, a currency's minor digits) is the SDK's
//! [`koppel_sdk::money`].

use koppel_sdk::Decimal;
use serde_json::{Number, Value};

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
    }
}
