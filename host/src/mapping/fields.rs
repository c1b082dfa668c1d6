//! Canonical records as plain JSON, and dotted field paths into them: `name`,
//! `customer.email`, `billing_address.country`, `prices.0.gross`, `extra.brand`.
//!
//! `extra.<name>` addresses the named value in a record's `extra` list. Decimals read as text
//! (`"0.530"`); extra values read as plain JSON (text, number, boolean, null).

use serde_json::{Value as Json, json};

use crate::runtime::bindings::{Decimal, Record, RecordKind, Value};

/// A record as a JSON object, with its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    pub kind: RecordKind,
    pub body: Json,
}

fn tag(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Product => "Product",
        RecordKind::Stock => "Stock",
        RecordKind::Customer => "Customer",
        RecordKind::Order => "Order",
        RecordKind::OrderStatus => "OrderStatus",
        RecordKind::Reference => "Reference",
    }
}

pub fn kind_of(record: &Record) -> RecordKind {
    match record {
        Record::Product(_) => RecordKind::Product,
        Record::Stock(_) => RecordKind::Stock,
        Record::Customer(_) => RecordKind::Customer,
        Record::Order(_) => RecordKind::Order,
        Record::OrderStatus(_) => RecordKind::OrderStatus,
        Record::Reference(_) => RecordKind::Reference,
    }
}

pub fn key_of(record: &Record) -> &str {
    match record {
        Record::Product(p) => &p.key,
        Record::Stock(s) => &s.key,
        Record::Customer(c) => &c.key,
        Record::Order(o) => &o.key,
        Record::OrderStatus(s) => &s.key,
        Record::Reference(r) => &r.key,
    }
}

impl Doc {
    pub fn from_record(record: &Record) -> Doc {
        let kind = kind_of(record);
        let mut tagged = serde_json::to_value(record).unwrap_or(Json::Null);
        let body = tagged
            .get_mut(tag(kind))
            .map(Json::take)
            .unwrap_or(Json::Null);
        Doc { kind, body }
    }

    /// Back to a typed record; an error names what does not fit the canonical model.
    pub fn into_record(self) -> Result<Record, String> {
        let tagged = json!({ tag(self.kind): self.body });
        serde_json::from_value(tagged).map_err(|error| error.to_string())
    }

    /// The value at `path` as plain JSON; None when absent.
    pub fn get(&self, path: &str) -> Option<Json> {
        if let Some(name) = path.strip_prefix("extra.") {
            let extra = self.body.get("extra")?.as_array()?;
            let entry = extra
                .iter()
                .find(|e| e.get("name").and_then(Json::as_str) == Some(name))?;
            return entry.get("value").map(plain_value);
        }
        let mut at = &self.body;
        for part in path.split('.') {
            at = match at {
                Json::Object(map) => map.get(part)?,
                Json::Array(items) => items.get(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        if is_enum_field(path)
            && let Json::String(variant) = at
        {
            return Some(Json::String(kebab(variant)));
        }
        Some(plain(at))
    }

    /// Sets the value at `path`. Canonical fields keep their type (a decimal field takes
    /// `"0.530"`); `extra.<name>` entries are added or replaced.
    pub fn set(&mut self, path: &str, value: Json) -> Result<(), String> {
        if let Some(name) = path.strip_prefix("extra.") {
            let extra = self
                .body
                .as_object_mut()
                .ok_or("the record is not an object")?
                .entry("extra")
                .or_insert_with(|| Json::Array(Vec::new()));
            let list = extra.as_array_mut().ok_or("`extra` is not a list")?;
            let entry = json!({ "name": name, "value": typed_value(&value) });
            match list
                .iter_mut()
                .find(|e| e.get("name").and_then(Json::as_str) == Some(name))
            {
                Some(existing) => *existing = entry,
                None => list.push(entry),
            }
            return Ok(());
        }
        let parts: Vec<&str> = path.split('.').collect();
        let mut at = &mut self.body;
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            at = match at {
                Json::Object(map) => {
                    if last {
                        let slot = map.get(*part).ok_or_else(|| {
                            format!("`{path}` is not a field of a {} record", self.kind.name())
                        })?;
                        let value = match value {
                            Json::String(s) if is_enum_field(path) => Json::String(pascal(&s)),
                            other => other,
                        };
                        let converted = convert_like(slot, value)?;
                        map.insert((*part).to_owned(), converted);
                        return Ok(());
                    }
                    map.get_mut(*part)
                        .ok_or_else(|| format!("`{path}`: no field `{part}`"))?
                }
                Json::Array(items) => {
                    let index: usize = part
                        .parse()
                        .map_err(|_| format!("`{path}`: `{part}` is not a list index"))?;
                    let len = items.len();
                    let item = items
                        .get_mut(index)
                        .ok_or_else(|| format!("`{path}`: index {index} of a list of {len}"))?;
                    if last {
                        let converted = convert_like(item, value)?;
                        *item = converted;
                        return Ok(());
                    }
                    item
                }
                Json::Null => {
                    return Err(format!(
                        "`{path}`: `{part}` is inside an empty (null) field"
                    ));
                }
                _ => return Err(format!("`{path}`: `{part}` is inside a plain value")),
            };
        }
        Ok(())
    }
}

/// The canonical enums (order, payment and delivery states) read as `in-progress` and are
/// written from `in-progress`, `in_progress` or `InProgress`.
fn is_enum_field(path: &str) -> bool {
    matches!(
        path.rsplit('.').next(),
        Some("state" | "payment_state" | "delivery_state")
    )
}

fn kebab(variant: &str) -> String {
    let mut out = String::with_capacity(variant.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn pascal(text: &str) -> String {
    text.split(['-', '_', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn is_decimal(value: &Json) -> bool {
    matches!(value, Json::Object(map) if map.len() == 2 && map.contains_key("units") && map.contains_key("scale"))
}

/// Canonical JSON → plain JSON (decimals as text, extra values unwrapped).
fn plain(value: &Json) -> Json {
    if is_decimal(value) {
        let decimal: Option<Decimal> = serde_json::from_value(value.clone()).ok();
        return decimal.map_or(Json::Null, |d| {
            Json::String(crate::runtime::decimal_text(&d))
        });
    }
    value.clone()
}

fn plain_value(value: &Json) -> Json {
    let typed: Option<Value> = serde_json::from_value(value.clone()).ok();
    match typed {
        Some(Value::Null) | None => Json::Null,
        Some(Value::Text(s)) => Json::String(s),
        Some(Value::Integer(i)) => json!(i),
        Some(Value::Number(d)) => Json::String(crate::runtime::decimal_text(&d)),
        Some(Value::Boolean(b)) => Json::Bool(b),
        Some(Value::Json(s)) => serde_json::from_str(&s).unwrap_or(Json::String(s)),
    }
}

/// Plain JSON → a typed extra value.
fn typed_value(value: &Json) -> Json {
    let typed = match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => match parse_decimal(&n.to_string()) {
                Some(d) => Value::Number(d),
                None => Value::Text(n.to_string()),
            },
        },
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.to_string()),
    };
    serde_json::to_value(typed).unwrap_or(Json::Null)
}

/// Parses `"12.50"` into a decimal without floats.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if (whole.is_empty() && fraction.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 18
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

/// Converts a plain value to the shape of the canonical field it replaces.
fn convert_like(slot: &Json, value: Json) -> Result<Json, String> {
    if is_decimal(slot) {
        let text = match &value {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            other => return Err(format!("{other} is not a number")),
        };
        let decimal =
            parse_decimal(&text).ok_or_else(|| format!("{text:?} is not a decimal number"))?;
        return serde_json::to_value(decimal).map_err(|e| e.to_string());
    }
    match (slot, value) {
        (Json::Number(_), Json::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(|i| json!(i))
            .map_err(|_| format!("{s:?} is not a whole number")),
        (Json::Bool(_), Json::String(s)) => match s.trim() {
            "true" | "1" | "yes" => Ok(Json::Bool(true)),
            "false" | "0" | "no" => Ok(Json::Bool(false)),
            _ => Err(format!("{s:?} is not true or false")),
        },
        (Json::String(_), Json::Number(n)) => Ok(Json::String(n.to_string())),
        (Json::String(_), Json::Bool(b)) => Ok(Json::String(b.to_string())),
        (_, value) => Ok(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::{NamedValue, StockLevel};

    fn stock() -> Record {
        Record::Stock(StockLevel {
            key: "1001".into(),
            on_hand: Decimal {
                units: 12,
                scale: 0,
            },
            reserved: Decimal {
                units: 2500,
                scale: 3,
            },
            available: Decimal {
                units: 9500,
                scale: 3,
            },
            location: Some("1".into()),
            extra: vec![NamedValue {
                name: "brand".into(),
                value: Value::Text("Acme".into()),
            }],
        })
    }

    #[test]
    fn reads_fields_decimals_and_extras_as_plain_values() {
        let doc = Doc::from_record(&stock());
        assert_eq!(doc.get("key"), Some(json!("1001")));
        assert_eq!(doc.get("reserved"), Some(json!("2.500")));
        assert_eq!(doc.get("extra.brand"), Some(json!("Acme")));
        assert_eq!(doc.get("extra.none"), None);
        assert_eq!(doc.get("nope"), None);
    }

    #[test]
    fn writes_keep_canonical_types_and_round_trip() {
        let mut doc = Doc::from_record(&stock());
        doc.set("available", json!("3.25")).expect("decimal");
        doc.set("extra.colour", json!("red")).expect("extra");
        doc.set("extra.brand", json!(7)).expect("replace");
        let error = doc
            .set("reserved", json!("lots"))
            .expect_err("not a decimal");
        assert!(error.contains("\"lots\""), "{error}");
        let error = doc.set("colour", json!("x")).expect_err("not a field");
        assert!(error.contains("not a field of a stock record"), "{error}");
        let Record::Stock(back) = doc.into_record().expect("valid") else {
            panic!("kind")
        };
        assert_eq!(
            back.available,
            Decimal {
                units: 325,
                scale: 2
            }
        );
        assert_eq!(back.extra.len(), 2);
        assert_eq!(back.extra[0].value, Value::Integer(7));
    }
}

/// The top-level field names of a record of `kind` (`name`, `prices`, `extra`, ...), as the
/// records' serde derive declares them: what `create_only` and dotted paths start with.
pub fn field_names(kind: RecordKind) -> &'static [&'static str] {
    use crate::runtime::bindings::{
        Customer, Order, OrderStatus, Product, ReferenceEntry, StockLevel,
    };
    fn of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(names::Names(&mut fields));
        fields
    }
    match kind {
        RecordKind::Product => of::<Product>(),
        RecordKind::Stock => of::<StockLevel>(),
        RecordKind::Customer => of::<Customer>(),
        RecordKind::Order => of::<Order>(),
        RecordKind::OrderStatus => of::<OrderStatus>(),
        RecordKind::Reference => of::<ReferenceEntry>(),
    }
}

/// A deserializer that only notes the field names a struct asks for, then gives up.
mod names {
    use serde::de::{self, Visitor};

    pub struct Names<'a>(pub &'a mut &'static [&'static str]);

    #[derive(Debug)]
    pub struct Stop;

    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names noted")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<T: std::fmt::Display>(_msg: T) -> Self {
            Stop
        }
    }

    impl<'de> de::Deserializer<'de> for Names<'_> {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
}

#[cfg(test)]
mod field_name_tests {
    use super::*;

    #[test]
    fn field_names_come_from_the_records() {
        let product = field_names(RecordKind::Product);
        for name in [
            "key",
            "name",
            "description",
            "ean",
            "prices",
            "categories",
            "extra",
        ] {
            assert!(product.contains(&name), "{name} in {product:?}");
        }
        assert!(!product.contains(&"descripton"));
        assert!(field_names(RecordKind::Order).contains(&"billing_address"));
        assert!(field_names(RecordKind::Stock).contains(&"available"));
    }
}
