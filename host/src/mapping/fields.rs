//! Canonical records as plain JSON, and dotted field paths into them: `name`,
//! `customer.email`, `billing_address.country`, `prices.0.gross`, `extra.brand`.
//!
//! `extra.<name>` addresses the named value in a record's `extra` list. Decimals read as text
//! (`"0.530"`); extra values read as plain JSON (text, number, boolean, null).

use serde_json::{Value as Json, json};

use crate::model::{Decimal, Record, RecordKind, Value, decimal, kind_of, tag};

/// A record as a JSON object, with its kind.
#[derive(Clone, Debug, PartialEq)]
pub struct Doc {
    pub kind: RecordKind,
    pub body: Json,
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
        return decimal.map_or(Json::Null, |d| Json::String(decimal::text(&d)));
    }
    value.clone()
}

fn plain_value(value: &Json) -> Json {
    serde_json::from_value::<Value>(value.clone()).map_or(Json::Null, |typed| plain_typed(&typed))
}

/// A typed extra value as plain JSON (text, number, boolean, null; decimals as text).
fn plain_typed(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Text(s) => Json::String(s.clone()),
        Value::Integer(i) => json!(i),
        Value::Number(d) => Json::String(decimal::text(d)),
        Value::Boolean(b) => Json::Bool(*b),
        Value::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| Json::String(s.clone())),
    }
}

/// The plain value of `extra.<name>` read from the typed record, without converting the
/// record to JSON; `None` when absent (or the kind has no `extra`).
pub fn extra_of(record: &Record, name: &str) -> Option<Json> {
    let extra = match record {
        Record::Product(p) => &p.extra,
        Record::Stock(s) => &s.extra,
        Record::Customer(c) => &c.extra,
        Record::Order(o) => &o.extra,
        Record::OrderStatus(s) => &s.extra,
        Record::Reference(_) => return None,
    };
    extra
        .iter()
        .find(|e| e.name == name)
        .map(|e| plain_typed(&e.value))
}

/// Plain JSON → a typed extra value.
fn typed_value(value: &Json) -> Json {
    let typed = match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Integer(i),
            None => match decimal::parse(&n.to_string()) {
                Some(d) => Value::Number(d),
                None => Value::Text(n.to_string()),
            },
        },
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Json(other.to_string()),
    };
    serde_json::to_value(typed).unwrap_or(Json::Null)
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
            decimal::parse(&text).ok_or_else(|| format!("{text:?} is not a decimal number"))?;
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
    use crate::model::{NamedValue, StockLevel};

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
