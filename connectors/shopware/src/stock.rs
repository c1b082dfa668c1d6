//! Writing stock: the flow's sellable quantity (`available`, by default on-hand minus the
//! till's reservations) becomes what Shopware lets customers buy, without counting open
//! Shopware orders twice, plus the "sell only while in stock" (closeout) flag.
//!
//! What is written into `product.stock`:
//! - 6.6+ (real-time stock): `stock` is already the sellable quantity; Shopware lowers it
//!   itself when an order is placed. koppel writes `stock = available`.
//! - 6.4 and 6.5: Shopware shows `availableStock = stock − quantities in open orders`. koppel
//!   reads both and writes `stock = available + (stock − availableStock)`, so `availableStock`
//!   becomes `available` and Shopware's own reservations are not subtracted a second time.
//!
//! A negative `available` is written as 0 sellable. Unknown product numbers are skipped.

use std::collections::HashMap;

use koppel_sdk::{
    Decimal, NamedValue, Record, Result, StockLevel, Value as KValue, WriteOptions, WriteOutcome,
    extra,
};
use serde_json::{Value, json};

use crate::api::{Client, Version};
use crate::config::Config;
use crate::criteria;
use crate::products::sync_settings;
use crate::sync::{self, Fate};

/// The stock one product number should get.
#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    pub key: String,
    /// Sellable quantity, never below 0.
    pub available: i64,
    /// `isCloseout`, when the record or the settings say.
    pub closeout: Option<bool>,
}

fn flag(value: &KValue) -> Option<bool> {
    match value {
        KValue::Boolean(b) => Some(*b),
        KValue::Integer(i) => Some(*i != 0),
        KValue::Text(t) => match t.trim().to_lowercase().as_str() {
            "true" | "1" | "yes" | "y" | "j" | "ja" => Some(true),
            "false" | "0" | "no" | "n" | "nee" | "nein" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The closeout flag of a record (`extra.closeout` or `extra.manage_stock`), else the
/// `manage_stock` setting.
fn closeout(level: &StockLevel, settings: &[NamedValue]) -> Option<bool> {
    extra(&level.extra, "closeout")
        .or_else(|| extra(&level.extra, "manage_stock"))
        .and_then(flag)
        .or_else(|| extra(settings, "manage_stock").and_then(flag))
}

/// The levels of one product number so far: (location, available) and the closeout flag.
#[derive(Default)]
struct Levels {
    parts: Vec<(Option<String>, Decimal)>,
    closeout: Option<bool>,
}

/// Groups the records by product number: levels of different locations add up; a later
/// record for the same location replaces an earlier one.
pub fn wanted(levels: &[&StockLevel], settings: &[NamedValue]) -> Vec<Wanted> {
    let mut order: Vec<String> = Vec::new();
    let mut by_key: HashMap<String, Levels> = HashMap::new();
    for level in levels {
        let key = level.key.trim().to_owned();
        let entry = by_key.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Levels::default()
        });
        entry
            .parts
            .retain(|(location, _)| *location != level.location);
        entry.parts.push((level.location.clone(), level.available));
        if let Some(flag) = closeout(level, settings) {
            entry.closeout = Some(flag);
        }
    }
    order
        .into_iter()
        .filter_map(|key| {
            let Levels { parts, closeout } = by_key.remove(&key)?;
            let total = parts
                .iter()
                .try_fold(Decimal::ZERO, |sum, (_, d)| sum.checked_add(*d))
                .unwrap_or(Decimal::ZERO);
            Some(Wanted {
                key,
                available: total.floor().max(0),
                closeout,
            })
        })
        .collect()
}

/// The `stock` to write on this version, given the row as the shop holds it.
pub fn stock_value(version: Version, available: i64, row: &Value) -> i64 {
    if version.realtime_stock() {
        return available;
    }
    let stock = row.get("stock").and_then(Value::as_i64).unwrap_or(0);
    let sellable = row
        .get("availableStock")
        .and_then(Value::as_i64)
        .unwrap_or(stock);
    available + (stock - sellable).max(0)
}

/// The sync payload for one product, `None` if nothing differs.
pub fn payload(version: Version, wanted: &Wanted, row: &Value) -> Option<Value> {
    let id = row.get("id").and_then(Value::as_str)?;
    let stock = stock_value(version, wanted.available, row);
    let mut out = serde_json::Map::new();
    if row.get("stock").and_then(Value::as_i64) != Some(stock) {
        out.insert("stock".into(), json!(stock));
    }
    if let Some(closeout) = wanted.closeout
        && row
            .get("isCloseout")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            != closeout
    {
        out.insert("isCloseout".into(), json!(closeout));
    }
    if out.is_empty() {
        return None;
    }
    out.insert("id".into(), json!(id));
    Some(Value::Object(out))
}

pub fn lookup_criteria(numbers: &[String]) -> Value {
    json!({
        "filter": [criteria::equals_any("productNumber", numbers)],
        "includes": {"product": ["id", "productNumber", "stock", "availableStock", "isCloseout"]},
    })
}

/// Writes the `stock` stream.
pub fn write(
    client: &Client,
    config: &Config,
    records: &[Record],
    options: &WriteOptions,
) -> Result<Vec<WriteOutcome>> {
    let version = client.version()?;
    let mut levels: Vec<&StockLevel> = Vec::new();
    let mut outcome_of: Vec<Option<WriteOutcome>> = vec![None; records.len()];
    for (i, record) in records.iter().enumerate() {
        match record {
            Record::Stock(level) if level.key.trim().is_empty() => {
                outcome_of[i] = Some(WriteOutcome::failed(
                    "",
                    "the stock record has no product number",
                    Some("key"),
                ));
            }
            Record::Stock(level) => levels.push(level),
            other => {
                outcome_of[i] = Some(WriteOutcome::failed(
                    other.key(),
                    "the stock stream takes stock records only",
                    None,
                ))
            }
        }
    }
    let wanted = wanted(&levels, &options.settings);
    let mut by_key: HashMap<String, WriteOutcome> = HashMap::new();
    for chunk in wanted.chunks(config.stock_batch_size) {
        for outcome in write_chunk(client, config, version, chunk) {
            by_key.insert(outcome.key.clone(), outcome);
        }
    }
    Ok(outcome_of
        .into_iter()
        .zip(records)
        .map(|(outcome, record)| {
            outcome.unwrap_or_else(|| {
                let key = record.key();
                let mut outcome = by_key
                    .get(key.trim())
                    .cloned()
                    .unwrap_or_else(|| WriteOutcome::failed(key, "not written", None));
                outcome.key = key.to_owned();
                outcome
            })
        })
        .collect())
}

fn write_chunk(
    client: &Client,
    config: &Config,
    version: Version,
    chunk: &[Wanted],
) -> Vec<WriteOutcome> {
    let numbers: Vec<String> = chunk.iter().map(|w| w.key.clone()).collect();
    let mut rows: HashMap<String, Value> = HashMap::new();
    for part in numbers.chunks(client.max_limit()) {
        let found = client.search_all(
            "/search/product",
            &lookup_criteria(part),
            "looking up products for stock",
            None,
            Some(part.len()),
        );
        match found {
            Ok(found) => rows.extend(
                found
                    .into_iter()
                    .filter_map(|row| Some((row.get("productNumber")?.as_str()?.to_owned(), row))),
            ),
            Err(error) => {
                return chunk
                    .iter()
                    .map(|w| WriteOutcome::from_error(&w.key, &error))
                    .collect();
            }
        }
    }
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; chunk.len()];
    let mut sending: Vec<(usize, String)> = Vec::new();
    let mut payloads: Vec<Value> = Vec::new();
    for (i, wanted) in chunk.iter().enumerate() {
        let Some(row) = rows.get(&wanted.key) else {
            outcomes[i] = Some(WriteOutcome::skipped(
                &wanted.key,
                format!(
                    "Shopware has no product with number {}; the products flow creates it",
                    wanted.key
                ),
            ));
            continue;
        };
        let id = row
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match payload(version, wanted, row) {
            None => outcomes[i] = Some(WriteOutcome::unchanged(&wanted.key, Some(id))),
            Some(payload) => {
                payloads.push(payload);
                sending.push((i, id));
            }
        }
    }
    if !payloads.is_empty() {
        let settings = sync_settings(version, config);
        let fates = sync::upsert(client, &settings, "product", &payloads, "writing stock");
        for ((i, id), fate) in sending.into_iter().zip(fates) {
            let key = &chunk[i].key;
            outcomes[i] = Some(match fate {
                Fate::Written => WriteOutcome::updated(key, id),
                Fate::Refused(errors) => WriteOutcome::failed(
                    key,
                    format!(
                        "Shopware refused the stock of {key}: {}",
                        crate::errors::describe_all(&errors)
                    ),
                    Some("available"),
                ),
                Fate::Failed(error) => WriteOutcome::from_error(key, &error),
            });
        }
    }
    outcomes
        .into_iter()
        .zip(chunk)
        .map(|(o, w)| o.unwrap_or_else(|| WriteOutcome::failed(&w.key, "not written", None)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(key: &str, available: i64, location: Option<&str>) -> StockLevel {
        StockLevel {
            key: key.into(),
            on_hand: Decimal::integer(available + 2),
            reserved: Decimal::integer(2),
            available: Decimal::integer(available),
            location: location.map(str::to_owned),
            extra: vec![],
        }
    }

    #[test]
    fn nothing_is_counted_twice_on_either_generation() {
        // 6.4/6.5: stock 10, 3 in open Shopware orders → availableStock 7.
        let row = json!({"id": "p", "stock": 10, "availableStock": 7, "isCloseout": false});
        assert_eq!(
            stock_value(Version::V6_5, 5, &row),
            8,
            "8 − 3 open = 5 sellable"
        );
        assert_eq!(stock_value(Version::V6_4, 5, &row), 8);
        // 6.6+: stock is the sellable quantity already.
        let row = json!({"id": "p", "stock": 7, "availableStock": 7});
        assert_eq!(stock_value(Version::V6_6, 5, &row), 5);
        assert_eq!(stock_value(Version::V6_7, 5, &row), 5);
    }

    #[test]
    fn unchanged_stock_is_not_sent() {
        let wanted = Wanted {
            key: "A".into(),
            available: 7,
            closeout: None,
        };
        let row = json!({"id": "p", "stock": 7, "availableStock": 7, "isCloseout": false});
        assert_eq!(payload(Version::V6_6, &wanted, &row), None);
        let wanted = Wanted {
            closeout: Some(true),
            ..wanted
        };
        assert_eq!(
            payload(Version::V6_6, &wanted, &row),
            Some(json!({"id": "p", "isCloseout": true}))
        );
    }

    #[test]
    fn locations_add_up_and_negative_is_zero() {
        let a = level("A", 3, Some("Amsterdam"));
        let b = level("A", 4, Some("Utrecht"));
        let a2 = level("A", 5, Some("Amsterdam"));
        let c = level("C", -2, None);
        let mut d = level("D", 1, None);
        d.extra.push(NamedValue::boolean("manage_stock", true));
        let list = vec![&a, &b, &a2, &c, &d];
        let settings = vec![NamedValue::text("manage_stock", "false")];
        let wanted = wanted(&list, &settings);
        assert_eq!(wanted.len(), 3);
        assert_eq!(wanted[0].available, 9, "Amsterdam replaced, Utrecht added");
        assert_eq!(wanted[0].closeout, Some(false), "from the settings");
        assert_eq!(wanted[1].available, 0);
        assert_eq!(wanted[2].closeout, Some(true), "the record wins");
    }
}
