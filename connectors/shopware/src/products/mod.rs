//! Writing products: canonical products (simple ones and variant families) become Shopware
//! product rows with deterministic ids, compared with what the shop holds so only what
//! differs is sent, and written through the Sync API in batches that split around bad
//! records.
//!
//! Per batch: one search finds the rows by product number (existence, current values); the
//! reference data the batch needs is resolved or created; one sync writes what changed; one
//! more sync removes links that are no longer wanted (categories, properties, options,
//! configurator settings), only when there are any.
//!
//! [`rows`] builds the rows, [`refs`] resolves what they refer to, [`plan`] compares them with
//! the shop's, [`send`] batches and writes them, [`errors`] names the field a refusal is about.

pub mod errors;
pub mod plan;
pub mod refs;
pub mod rows;
pub mod send;

#[cfg(test)]
mod fixtures;

use std::collections::{HashMap, HashSet};

use koppel_sdk::{ConnectorError, CreateOnly, Product, Record, Result, WriteOptions, WriteOutcome};
use serde_json::Value;

use crate::api::Client;
use crate::config::{Config, ShortDescription};
use crate::refdata::{Currency, Shop};

pub use send::sync_settings;
use send::{batches, write_batch};

/// The create-only fields of a products write: the SDK's [`CreateOnly`] (the canonical
/// spelling, `short_description`; case and `-` folded; `extra` covers every `extra.<name>`),
/// after Shopware's own aliases: `price` → `prices`, `category` → `categories`, `property` →
/// `properties`, `visibility` → `visibilities`, `custom_fields` → `extra`, and a leading
/// `product.`, `variants.` or `variant.` dropped.
pub fn create_only(names: &[String]) -> CreateOnly {
    CreateOnly::new(&names.iter().map(|n| alias(n)).collect::<Vec<_>>())
}

/// A create-only name with Shopware's aliases resolved (see [`create_only`]).
fn alias(name: &str) -> String {
    let name = name.trim();
    let name = name
        .strip_prefix("product.")
        .or_else(|| name.strip_prefix("variants."))
        .or_else(|| name.strip_prefix("variant."))
        .unwrap_or(name);
    let (head, rest) = match name.split_once('.') {
        Some((head, rest)) => (head, Some(rest)),
        None => (name, None),
    };
    let head = match head.to_lowercase().replace('-', "_").as_str() {
        "price" => "prices",
        "category" => "categories",
        "property" => "properties",
        "visibility" => "visibilities",
        "custom_fields" | "customfields" => "extra",
        _ => head,
    };
    match rest {
        Some(rest) => format!("{head}.{rest}"),
        None => head.to_owned(),
    }
}

/// The reference ids a batch resolved.
#[derive(Clone, Debug, Default)]
pub struct Refs {
    pub currencies: Vec<Currency>,
    pub channels: Vec<String>,
    pub visibility: u8,
    /// Normalized rate → tax id, or the error when the rate cannot be had.
    pub taxes: HashMap<String, std::result::Result<String, ConnectorError>>,
    /// Path key → category id.
    pub categories: HashMap<String, String>,
    /// (lower group, lower option) → option id.
    pub options: HashMap<(String, String), String>,
    /// Write translated fields in this language (not the system language).
    pub language: Option<String>,
    /// 6.5+: a text that is blank after trimming is stored as `null`.
    pub trims: bool,
    pub short_description: ShortDescription,
}

/// A record the connector refuses before sending it.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub field: String,
    pub message: String,
}

fn refuse(field: impl Into<String>, message: impl Into<String>) -> Refusal {
    Refusal {
        field: field.into(),
        message: message.into(),
    }
}

/// One Shopware product row as the source wants it.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub id: String,
    pub number: String,
    pub parent_id: Option<String>,
    /// The row as the shop holds it, if it exists.
    pub existing: Option<Value>,
    /// (Shopware field, canonical field, value); `Value::Null` restores inheritance.
    pub fields: Vec<(&'static str, String, Value)>,
    /// customFields entries: (key, value).
    pub custom: Vec<(String, Value)>,
    pub categories: Option<Vec<String>>,
    pub properties: Option<Vec<String>>,
    /// Variant options (variants only).
    pub options: Vec<String>,
    /// (sales channel id, visibility); parents and simple products only.
    pub visibilities: Vec<(String, u8)>,
    /// Option ids of the configurator (parents only).
    pub configurator: Vec<String>,
}

/// A simple product or a variant family: the parent row and its children.
#[derive(Clone, Debug, Default)]
pub struct Family {
    pub key: String,
    pub parent: Row,
    pub children: Vec<Row>,
    /// Variants the shop holds that the source no longer lists: kept, but inactive.
    pub dropped: Vec<Row>,
}

/// A link to remove: (mapping entity, delete key).
pub type Unlink = (&'static str, Value);

/// What to send for a family.
#[derive(Clone, Debug, Default)]
pub struct Change {
    /// The upsert payload, `None` when nothing differs.
    pub payload: Option<Value>,
    /// Keys of the children in the payload's `children`, in order (to name fields in errors).
    pub child_keys: Vec<String>,
    pub unlinks: Vec<Unlink>,
    pub created: bool,
    /// Numbers of the variants this change deactivates (no longer in the source).
    pub deactivated: Vec<String>,
}

/// Writes the `products` stream.
pub fn write(
    client: &Client,
    shop: &mut Shop,
    config: &Config,
    records: &[Record],
    options: &WriteOptions,
) -> Result<Vec<WriteOutcome>> {
    let version = client.version()?;
    let create_only = create_only(&options.create_only);
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; records.len()];
    let mut products: Vec<&Product> = Vec::new();
    let mut positions: Vec<usize> = Vec::new();
    let mut keys_seen: HashSet<String> = HashSet::new();
    for (i, record) in records.iter().enumerate() {
        match record {
            Record::Product(product) => {
                // One row per product number in a write: a number used twice would give two
                // records the same deterministic id.
                let numbers: Vec<String> = std::iter::once(product.key.trim().to_owned())
                    .chain(product.variants.iter().map(|v| v.key.trim().to_owned()))
                    .filter(|n| !n.is_empty())
                    .collect();
                if let Some(twice) = numbers.iter().find(|n| keys_seen.contains(*n)) {
                    outcomes[i] = Some(WriteOutcome::failed(
                        &product.key,
                        format!(
                            "product number {twice} appears more than once in this write; \
                             product {} was not sent",
                            product.key
                        ),
                        Some("key"),
                    ));
                    continue;
                }
                keys_seen.extend(numbers);
                products.push(product);
                positions.push(i);
            }
            other => {
                outcomes[i] = Some(WriteOutcome::failed(
                    other.key(),
                    "the products stream takes product records only",
                    None,
                ))
            }
        }
    }
    for range in batches(&products, config.batch_size) {
        let batch = &products[range.clone()];
        let at = &positions[range];
        let results = write_batch(client, shop, config, version, &create_only, batch);
        for (outcome, &i) in results.into_iter().zip(at) {
            outcomes[i] = Some(outcome);
        }
    }
    Ok(outcomes
        .into_iter()
        .zip(records)
        .map(|(o, r)| o.unwrap_or_else(|| WriteOutcome::failed(r.key(), "not written", None)))
        .collect())
}
