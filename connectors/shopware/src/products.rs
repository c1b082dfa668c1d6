//! Writing products: canonical products (simple ones and variant families) become Shopware
//! product rows with deterministic ids, compared with what the shop holds so only what
//! differs is sent, and written through the Sync API in batches that split around bad
//! records.
//!
//! Per batch: one search finds the rows by product number (existence, current values); the
//! reference data the batch needs is resolved or created; one sync writes what changed; one
//! more sync removes links that are no longer wanted (categories, properties, options,
//! configurator settings), only when there are any.

use std::collections::{BTreeSet, HashMap, HashSet};

use koppel_sdk::money::minor_digits;
use koppel_sdk::{
    ConnectorError, CreateOnly, Decimal, NamedValue, Product, Record, Result, Value as KValue,
    Variant, WriteOptions, WriteOutcome, log,
};
use serde_json::{Map, Value, json};

use crate::api::{Client, Version};
use crate::config::{Config, ShortDescription};
use crate::criteria;
use crate::errors::{self, ApiError};
use crate::ids;
use crate::money;
use crate::refdata::{Currency, NewCategory, Shop};
use crate::sync::{self, Fate, Op};
use crate::text::{self, TextError};

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

pub fn rate_key(rate: Decimal) -> String {
    rate.normalize().to_string()
}

pub fn path_key(path: &[String]) -> String {
    path.iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

fn option_key(group: &str, option: &str) -> (String, String) {
    (group.trim().to_lowercase(), option.trim().to_lowercase())
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

fn custom_value(name: &str, value: &KValue) -> std::result::Result<Value, Refusal> {
    Ok(match value {
        KValue::Null => Value::Null,
        KValue::Text(s) => Value::String(s.clone()),
        KValue::Integer(i) => json!(i),
        KValue::Boolean(b) => json!(b),
        KValue::Number(d) => money::decimal_json(*d).ok_or_else(|| {
            refuse(
                format!("extra.{name}"),
                format!("extra field {name:?} is not a number Shopware can store"),
            )
        })?,
        KValue::Json(text) => serde_json::from_str(text).map_err(|error| {
            refuse(
                format!("extra.{name}"),
                format!("extra field {name:?} is not valid JSON: {error}"),
            )
        })?,
    })
}

fn customs(extra: &[NamedValue]) -> std::result::Result<Vec<(String, Value)>, Refusal> {
    extra
        .iter()
        .map(|nv| Ok((nv.name.clone(), custom_value(&nv.name, &nv.value)?)))
        .collect()
}

/// The tax rate of a price list: the default currency's, else the first.
fn family_rate(prices: &[koppel_sdk::Price], default_currency: &str) -> Option<Decimal> {
    prices
        .iter()
        .find(|p| p.currency.eq_ignore_ascii_case(default_currency))
        .or_else(|| prices.first())
        .map(|p| p.tax_rate)
}

/// The price list of the variant with the lowest gross price in `default_currency` (none
/// when no variant has one).
fn cheapest_variant_prices<'a>(
    product: &'a Product,
    default_currency: &str,
) -> &'a [koppel_sdk::Price] {
    product
        .variants
        .iter()
        .filter_map(|v| {
            let gross = v
                .prices
                .iter()
                .find(|p| p.currency.trim().eq_ignore_ascii_case(default_currency))?
                .gross;
            Some((gross, &v.prices[..]))
        })
        .min_by_key(|(gross, _)| *gross)
        .map(|(_, prices)| prices)
        .unwrap_or(&[])
}

/// A price list in Shopware's shape. Shopware needs a price in its default currency on every
/// product that has prices ("No price for default currency defined"): without one the record
/// is refused here, naming the field, instead of sinking a sync batch.
fn price_list(
    prices: &[koppel_sdk::Price],
    refs: &Refs,
    default_currency: &str,
    field: &str,
) -> std::result::Result<Value, Refusal> {
    if !prices
        .iter()
        .any(|p| p.currency.trim().eq_ignore_ascii_case(default_currency))
    {
        let given: Vec<&str> = prices.iter().map(|p| p.currency.as_str()).collect();
        return Err(refuse(
            field,
            format!(
                "no price in the shop's default currency {default_currency} (prices given in {}): \
                 Shopware needs one on every product; add it, or set `default_currency` to the \
                 shop's default",
                given.join(", ")
            ),
        ));
    }
    let mut out = Vec::new();
    for price in prices {
        let currency = refs
            .currencies
            .iter()
            .find(|c| c.iso.eq_ignore_ascii_case(&price.currency))
            .ok_or_else(|| {
                refuse(
                    field,
                    format!(
                        "Shopware has no currency {:?}: add it in Settings → Currencies, or map \
                         the price to one the shop has",
                        price.currency
                    ),
                )
            })?;
        let digits = minor_digits(&currency.iso);
        let (Some(net), Some(gross)) = (
            money::minor_json(price.net, digits),
            money::minor_json(price.gross, digits),
        ) else {
            return Err(refuse(field, "the price is not a number Shopware takes"));
        };
        out.push(json!({"currencyId": currency.id, "net": net, "gross": gross, "linked": true}));
    }
    Ok(Value::Array(out))
}

/// A text for a `StringField` as the shop will store it (see [`text::stored`]), so a re-run
/// compares equal; `null` for an empty one. Too long or only tags: refused, naming `field`.
fn string_field(value: &str, field: &str, refs: &Refs) -> std::result::Result<Value, Refusal> {
    match text::stored(value, refs.trims) {
        Ok(Some(text)) => Ok(Value::String(text)),
        Ok(None) => Ok(Value::Null),
        Err(TextError::TooLong(chars)) => Err(refuse(
            field,
            format!(
                "{field} is {chars} characters long; Shopware takes at most {} (HTML tags \
                 removed)",
                text::MAX_CHARS
            ),
        )),
        Err(TextError::OnlyTags) => Err(refuse(
            field,
            format!("{field} holds nothing but HTML tags, which Shopware removes"),
        )),
    }
}

fn tax_for(rate: Decimal, refs: &Refs, field: &str) -> std::result::Result<String, Refusal> {
    match refs.taxes.get(&rate_key(rate)) {
        Some(Ok(id)) => Ok(id.clone()),
        Some(Err(error)) => Err(refuse(field, error.message.clone())),
        None => Err(refuse(
            field,
            format!("tax rate {} % was not resolved", rate_key(rate)),
        )),
    }
}

/// The rows a canonical product wants, given what the shop holds (`existing`, by number).
pub fn build_family(
    product: &Product,
    refs: &Refs,
    default_currency: &str,
    existing: &HashMap<String, Value>,
) -> std::result::Result<Family, Refusal> {
    let key = product.key.trim();
    if key.is_empty() {
        return Err(refuse("key", "the product has no product number"));
    }
    let found = existing.get(key).cloned();
    if let Some(row) = &found
        && row.get("parentId").and_then(Value::as_str).is_some()
    {
        return Err(refuse(
            "key",
            format!("product number {key:?} is a variant of another product in Shopware"),
        ));
    }
    let parent_id = found
        .as_ref()
        .and_then(|r| r.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .unwrap_or_else(|| ids::product(key));

    let mut parent = Row {
        id: parent_id.clone(),
        number: key.to_owned(),
        existing: found,
        ..Row::default()
    };
    let name = string_field(&product.name, "name", refs)?;
    if name.is_null() {
        return Err(refuse(
            "name",
            "the product has no name; Shopware needs one",
        ));
    }
    parent.fields.push(("name", "name".into(), name));
    if let Some(description) = &product.description {
        parent.fields.push((
            "description",
            "description".into(),
            Value::String(description.clone()),
        ));
    }
    match (&product.short_description, &refs.short_description) {
        (Some(short), ShortDescription::MetaDescription) => parent.fields.push((
            "metaDescription",
            "short_description".into(),
            string_field(short, "short_description", refs)?,
        )),
        (Some(short), ShortDescription::CustomField(name)) => {
            parent
                .custom
                .push((name.clone(), Value::String(short.clone())));
        }
        _ => {}
    }
    if let Some(ean) = &product.ean {
        parent
            .fields
            .push(("ean", "ean".into(), string_field(ean, "ean", refs)?));
    }
    parent
        .fields
        .push(("active", "active".into(), Value::Bool(product.active)));
    // A family priced only on its variants: Shopware still needs a price and a tax on the
    // parent (variants without their own inherit them), so it gets the cheapest variant's.
    let parent_prices = match product.prices.is_empty() {
        true => cheapest_variant_prices(product, default_currency),
        false => &product.prices[..],
    };
    let family_rate = family_rate(parent_prices, default_currency);
    if !parent_prices.is_empty() {
        parent.fields.push((
            "price",
            "prices".into(),
            price_list(parent_prices, refs, default_currency, "prices")?,
        ));
    }
    if let Some(rate) = family_rate {
        parent.fields.push((
            "taxId",
            "prices".into(),
            Value::String(tax_for(rate, refs, "prices")?),
        ));
    }
    parent.custom.extend(customs(&product.extra)?);
    let categories: BTreeSet<String> = product
        .categories
        .iter()
        .filter(|path| !path_key(path).is_empty())
        .map(|path| {
            refs.categories
                .get(&path_key(path))
                .cloned()
                .ok_or_else(|| refuse("categories", format!("category {path:?} was not resolved")))
        })
        .collect::<std::result::Result<_, _>>()?;
    parent.categories = Some(categories.into_iter().collect());
    let properties: BTreeSet<String> = product
        .properties
        .iter()
        .map(|p| {
            refs.options
                .get(&option_key(&p.group, &p.option))
                .cloned()
                .ok_or_else(|| {
                    refuse(
                        "properties",
                        format!("property {}: {} was not resolved", p.group, p.option),
                    )
                })
        })
        .collect::<std::result::Result<_, _>>()?;
    parent.properties = Some(properties.into_iter().collect());
    parent.visibilities = refs
        .channels
        .iter()
        .map(|c| (c.clone(), refs.visibility))
        .collect();

    let mut children = Vec::new();
    let mut seen: HashSet<String> = HashSet::from([key.to_owned()]);
    let mut configurator: BTreeSet<String> = BTreeSet::new();
    for variant in &product.variants {
        let child = build_child(
            variant,
            &parent_id,
            family_rate,
            refs,
            default_currency,
            existing,
            &mut seen,
        )?;
        configurator.extend(child.options.iter().cloned());
        children.push(child);
    }
    parent.configurator = configurator.into_iter().collect();
    let dropped = dropped_variants(&parent, &seen, existing);
    Ok(Family {
        key: key.to_owned(),
        parent,
        children,
        dropped,
    })
}

/// The shop's variants of `parent` the source does not list (`listed` holds the listed
/// numbers): each to be made inactive, nothing else about it changed. Not deleted: orders,
/// reviews and the shop's own edits refer to it, and the till may list it again.
fn dropped_variants(
    parent: &Row,
    listed: &HashSet<String>,
    existing: &HashMap<String, Value>,
) -> Vec<Row> {
    if parent.existing.is_none() {
        return Vec::new();
    }
    let mut out: Vec<Row> = existing
        .iter()
        .filter(|(number, row)| {
            row.get("parentId").and_then(Value::as_str) == Some(parent.id.as_str())
                && !listed.contains(*number)
        })
        .filter_map(|(number, row)| {
            Some(Row {
                id: row.get("id")?.as_str()?.to_owned(),
                number: number.clone(),
                parent_id: Some(parent.id.clone()),
                existing: Some(row.clone()),
                // Not the canonical `active`: a create-only `active` leaves the shop's choice
                // for listed variants, not for one the till dropped.
                fields: vec![(
                    "active",
                    format!("variants.{number}.active"),
                    Value::Bool(false),
                )],
                options: id_list(row.get("optionIds")).into_iter().collect(),
                ..Row::default()
            })
        })
        .collect();
    out.sort_by(|a, b| a.number.cmp(&b.number));
    out
}

fn build_child(
    variant: &Variant,
    parent_id: &str,
    family_rate: Option<Decimal>,
    refs: &Refs,
    default_currency: &str,
    existing: &HashMap<String, Value>,
    seen: &mut HashSet<String>,
) -> std::result::Result<Row, Refusal> {
    let key = variant.key.trim();
    let at = |field: &str| format!("variants.{key}.{field}");
    if key.is_empty() {
        return Err(refuse("variants", "a variant has no product number"));
    }
    if !seen.insert(key.to_owned()) {
        return Err(refuse(
            at("key"),
            format!("product number {key:?} appears twice in this family"),
        ));
    }
    let found = existing.get(key).cloned();
    if let Some(row) = &found {
        let other_parent = row.get("parentId").and_then(Value::as_str);
        if other_parent.is_some_and(|p| p != parent_id) || other_parent.is_none() {
            return Err(refuse(
                at("key"),
                format!(
                    "product number {key:?} already belongs to {} in Shopware",
                    if other_parent.is_some() {
                        "another product family"
                    } else {
                        "a product that is not a variant"
                    }
                ),
            ));
        }
    }
    if variant.options.is_empty() {
        return Err(refuse(
            at("options"),
            "a variant needs at least one option (e.g. size: M) to tell it apart",
        ));
    }
    let id = found
        .as_ref()
        .and_then(|r| r.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .unwrap_or_else(|| ids::product(key));
    let mut row = Row {
        id,
        number: key.to_owned(),
        parent_id: Some(parent_id.to_owned()),
        existing: found,
        ..Row::default()
    };
    if let Some(name) = &variant.name {
        row.fields.push((
            "name",
            "name".into(),
            string_field(name, &at("name"), refs)?,
        ));
    }
    if let Some(ean) = &variant.ean {
        row.fields
            .push(("ean", "ean".into(), string_field(ean, &at("ean"), refs)?));
    }
    row.fields
        .push(("active", "active".into(), Value::Bool(variant.active)));
    if variant.prices.is_empty() {
        row.fields.push(("price", "prices".into(), Value::Null));
    } else {
        row.fields.push((
            "price",
            "prices".into(),
            price_list(&variant.prices, refs, default_currency, &at("prices"))?,
        ));
        let rate = variant.prices.first().map(|p| p.tax_rate);
        if let Some(rate) = rate.filter(|r| family_rate.is_none_or(|f| !f.same_value(*r))) {
            row.fields.push((
                "taxId",
                "prices".into(),
                Value::String(tax_for(rate, refs, &at("prices"))?),
            ));
        }
    }
    row.custom = customs(&variant.extra)?;
    let mut options = BTreeSet::new();
    for option in &variant.options {
        let id = refs
            .options
            .get(&option_key(&option.group, &option.option))
            .cloned()
            .ok_or_else(|| {
                refuse(
                    at("options"),
                    format!(
                        "option {}: {} was not resolved",
                        option.group, option.option
                    ),
                )
            })?;
        options.insert(id);
    }
    row.options = options.into_iter().collect();
    Ok(row)
}

/// JSON values equal as Shopware would store them (numbers by value).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => {
            match (money::json_decimal(a), money::json_decimal(b)) {
                (Some(x), Some(y)) => x.same_value(y),
                _ => a == b,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Price lists equal per currency (net and gross by value).
fn same_prices(existing: &Value, wanted: &Value) -> bool {
    let (Some(have), Some(want)) = (existing.as_array(), wanted.as_array()) else {
        return existing.is_null() && wanted.is_null();
    };
    have.len() == want.len()
        && want.iter().all(|w| {
            have.iter().any(|h| {
                h.get("currencyId") == w.get("currencyId")
                    && ["net", "gross"]
                        .iter()
                        .all(|k| match (h.get(*k), w.get(*k)) {
                            (Some(x), Some(y)) => same(x, y),
                            _ => false,
                        })
            })
        })
}

fn id_list(value: Option<&Value>) -> BTreeSet<String> {
    value
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

const TRANSLATED: &[&str] = &["name", "description", "metaDescription"];

/// The payload of one row: everything for a new row, only what differs for an existing one
/// (create-only fields left out). `None` if nothing differs.
pub fn row_payload(
    row: &Row,
    create_only: &CreateOnly,
    language: Option<&str>,
    unlinks: &mut Vec<Unlink>,
) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    let mut translated = Map::new();
    let existing = row.existing.as_ref();
    let creating = existing.is_none();
    let keep = |field: &str| creating || !create_only.has(field);
    for (key, canonical, value) in &row.fields {
        if !keep(canonical) {
            continue;
        }
        let differs = match existing {
            None => !value.is_null(),
            Some(current) => {
                let current = current.get(*key).unwrap_or(&Value::Null);
                if *key == "price" {
                    !same_prices(current, value)
                } else {
                    !same(current, value)
                }
            }
        };
        if differs {
            if language.is_some() && TRANSLATED.contains(key) {
                translated.insert((*key).to_owned(), value.clone());
                if creating {
                    out.insert((*key).to_owned(), value.clone());
                }
            } else {
                out.insert((*key).to_owned(), value.clone());
            }
        }
    }
    let current_custom = existing.and_then(|c| c.get("customFields"));
    let mut custom = Map::new();
    for (name, value) in &row.custom {
        if !keep(&format!("extra.{name}")) {
            continue;
        }
        let current = current_custom
            .and_then(|c| c.get(name))
            .unwrap_or(&Value::Null);
        if creating || !same(current, value) {
            custom.insert(name.clone(), value.clone());
        }
    }
    if !custom.is_empty() {
        match language {
            Some(_) => {
                translated.insert("customFields".into(), Value::Object(custom.clone()));
                if creating {
                    out.insert("customFields".into(), Value::Object(custom));
                }
            }
            None => {
                out.insert("customFields".into(), Value::Object(custom));
            }
        }
    }
    for (field, key, ids_field, mapping, remote) in [
        (
            "categories",
            &row.categories,
            "categoryIds",
            "product_category",
            "categoryId",
        ),
        (
            "properties",
            &row.properties,
            "propertyIds",
            "product_property",
            "optionId",
        ),
    ] {
        // An empty list is "not managed": a source without categories does not wipe the
        // shop's own.
        let Some(wanted) = key.as_ref().filter(|w| !w.is_empty()) else {
            continue;
        };
        if !keep(field) {
            continue;
        }
        let wanted_set: BTreeSet<String> = wanted.iter().cloned().collect();
        let current = id_list(existing.and_then(|c| c.get(ids_field)));
        if wanted_set != current {
            let missing: Vec<Value> = wanted_set
                .difference(&current)
                .map(|id| json!({"id": id}))
                .collect();
            if !missing.is_empty() {
                out.insert(field.to_owned(), Value::Array(missing));
            }
            for stale in current.difference(&wanted_set) {
                unlinks.push((mapping, json!({"productId": row.id, remote: stale})));
            }
        }
    }
    if row.parent_id.is_some() {
        let wanted: BTreeSet<String> = row.options.iter().cloned().collect();
        let current = id_list(existing.and_then(|c| c.get("optionIds")));
        if wanted != current {
            let missing: Vec<Value> = wanted
                .difference(&current)
                .map(|id| json!({"id": id}))
                .collect();
            if !missing.is_empty() {
                out.insert("options".into(), Value::Array(missing));
            }
            for stale in current.difference(&wanted) {
                unlinks.push((
                    "product_option",
                    json!({"productId": row.id, "optionId": stale}),
                ));
            }
        }
    }
    if keep("visibilities") && !row.visibilities.is_empty() {
        let current: Vec<Value> = existing
            .and_then(|c| c.get("visibilities"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut rows = Vec::new();
        for (channel, visibility) in &row.visibilities {
            let have = current
                .iter()
                .find(|v| v.get("salesChannelId").and_then(Value::as_str) == Some(channel));
            match have {
                Some(v)
                    if v.get("visibility").and_then(Value::as_u64)
                        == Some(u64::from(*visibility)) => {}
                Some(v) => rows.push(json!({"id": v.get("id"), "visibility": visibility})),
                None => rows.push(json!({
                    "id": ids::visibility(&row.id, channel),
                    "salesChannelId": channel,
                    "visibility": visibility,
                })),
            }
        }
        if !rows.is_empty() {
            out.insert("visibilities".into(), Value::Array(rows));
        }
    }
    if !row.configurator.is_empty()
        || existing.is_some_and(|c| c.get("configuratorSettings").is_some())
    {
        let current: Vec<Value> = existing
            .and_then(|c| c.get("configuratorSettings"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let have: BTreeSet<String> = current
            .iter()
            .filter_map(|s| s.get("optionId").and_then(Value::as_str).map(str::to_owned))
            .collect();
        let wanted: BTreeSet<String> = row.configurator.iter().cloned().collect();
        let missing: Vec<Value> = wanted
            .difference(&have)
            .map(|option| {
                json!({"id": ids::configurator_setting(&row.id, option), "optionId": option})
            })
            .collect();
        if !missing.is_empty() {
            out.insert("configuratorSettings".into(), Value::Array(missing));
        }
        if !row.configurator.is_empty() {
            for setting in &current {
                let stale = setting
                    .get("optionId")
                    .and_then(Value::as_str)
                    .is_some_and(|o| !wanted.contains(o));
                if stale && let Some(id) = setting.get("id") {
                    unlinks.push(("product_configurator_setting", json!({"id": id})));
                }
            }
        }
    }
    if let (Some(language), false) = (language, translated.is_empty()) {
        out.insert(
            "translations".into(),
            json!({ language: Value::Object(translated) }),
        );
    }
    if out.is_empty() {
        return None;
    }
    if creating {
        out.insert("productNumber".into(), Value::String(row.number.clone()));
        out.insert("stock".into(), json!(0));
        if let Some(parent) = &row.parent_id {
            out.insert("parentId".into(), Value::String(parent.clone()));
        }
    }
    out.insert("id".into(), Value::String(row.id.clone()));
    Some(out)
}

/// What to send for a family.
pub fn family_change(family: &Family, create_only: &CreateOnly, language: Option<&str>) -> Change {
    let mut unlinks = Vec::new();
    let parent = row_payload(&family.parent, create_only, language, &mut unlinks);
    let mut children = Vec::new();
    let mut child_keys = Vec::new();
    for child in &family.children {
        if let Some(payload) = row_payload(child, create_only, language, &mut unlinks) {
            children.push(Value::Object(payload));
            child_keys.push(child.number.clone());
        }
    }
    let mut deactivated = Vec::new();
    for child in &family.dropped {
        if let Some(payload) = row_payload(child, create_only, language, &mut unlinks) {
            children.push(Value::Object(payload));
            child_keys.push(child.number.clone());
            deactivated.push(child.number.clone());
        }
    }
    let payload = match (parent, children.is_empty()) {
        (None, true) => None,
        (parent, _) => {
            let mut parent = parent.unwrap_or_else(|| {
                let mut map = Map::new();
                map.insert("id".into(), Value::String(family.parent.id.clone()));
                map
            });
            if !children.is_empty() {
                parent.insert("children".into(), Value::Array(children));
            }
            Some(Value::Object(parent))
        }
    };
    Change {
        payload,
        child_keys,
        unlinks,
        created: family.parent.existing.is_none(),
        deactivated,
    }
}

/// The canonical field a Shopware pointer below a family payload names.
pub fn canonical_field(path: &str, child_keys: &[String]) -> String {
    let mut parts = path.split('/');
    let head = parts.next().unwrap_or("");
    match head {
        "children" => {
            let index: Option<usize> = parts.next().and_then(|i| i.parse().ok());
            let rest: Vec<&str> = parts.collect();
            let key = index
                .and_then(|i| child_keys.get(i))
                .cloned()
                .unwrap_or_else(|| "?".into());
            if rest.is_empty() {
                format!("variants.{key}")
            } else {
                format!("variants.{key}.{}", canonical_field(&rest.join("/"), &[]))
            }
        }
        "price" | "taxId" | "tax" => "prices".into(),
        // Translated fields point into `translations/<language id>/<field>`.
        "translations" => match (parts.next(), parts.next()) {
            (Some(_), Some(field)) => canonical_field(field, child_keys),
            _ => "name".into(),
        },
        "name" => "name".into(),
        "description" => "description".into(),
        "metaDescription" => "short_description".into(),
        "ean" => "ean".into(),
        "active" => "active".into(),
        "customFields" => match parts.next() {
            Some(name) => format!("extra.{name}"),
            None => "extra".into(),
        },
        "categories" => "categories".into(),
        "properties" => "properties".into(),
        "options" => "options".into(),
        "visibilities" => "visibilities".into(),
        "configuratorSettings" => "variants".into(),
        "productNumber" | "id" | "parentId" => "key".into(),
        other => other.to_owned(),
    }
}

/// The outcome of a record Shopware refused.
pub fn refused_outcome(key: &str, errors: &[ApiError], child_keys: &[String]) -> WriteOutcome {
    // A duplicate number comes from the database's unique key, without a pointer: its
    // parameters name the number (the product's or one of its variants').
    let duplicate = || {
        let number = errors
            .iter()
            .filter(|e| e.code == "CONTENT__DUPLICATE_PRODUCT_NUMBER")
            .find_map(|e| {
                e.parameters
                    .get("number")
                    .and_then(serde_json::Value::as_str)
            })?;
        Some(match child_keys.iter().find(|k| k.as_str() == number) {
            Some(variant) => format!("variants.{variant}.key"),
            None => "key".to_owned(),
        })
    };
    let field = errors
        .iter()
        .find_map(|e| e.field_path())
        .map(|path| canonical_field(&path, child_keys))
        .or_else(duplicate);
    WriteOutcome::failed(
        key,
        format!(
            "Shopware refused product {key}: {}",
            errors::describe_all(errors)
        ),
        field.as_deref(),
    )
}

// ----- the write -----

/// Splits records into batches of at most `rows` Shopware rows (a family counts its parent
/// and variants); a family larger than `rows` is a batch of its own.
pub fn batches(products: &[&Product], rows: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, product) in products.iter().enumerate() {
        let size = 1 + product.variants.len();
        if count > 0 && count + size > rows {
            out.push(start..i);
            start = i;
            count = 0;
        }
        count += size;
    }
    if start < products.len() {
        out.push(start..products.len());
    }
    out
}

/// The criteria that find the rows of these product numbers with what is compared (the
/// limit and page are set by [`Client::search_all`]).
pub fn lookup_criteria(numbers: &[String]) -> Value {
    json!({
        "filter": [criteria::equals_any("productNumber", numbers)],
        "associations": {"visibilities": {}, "configuratorSettings": {}},
        "includes": {
            "product": ["id", "productNumber", "parentId", "childCount", "name", "description",
                "metaDescription",
                "ean", "active", "price", "taxId", "customFields", "categoryIds", "propertyIds",
                "optionIds", "visibilities", "configuratorSettings"],
            "product_visibility": ["id", "salesChannelId", "visibility"],
            "product_configurator_setting": ["id", "optionId"],
        },
    })
}

/// How this connection sends syncs.
pub fn sync_settings(version: Version, config: &Config) -> sync::Settings {
    sync::Settings {
        version,
        queue_indexing: config.queue_indexing,
    }
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

/// Resolves what the batch refers to; records that cannot have it get a refusal.
fn resolve_refs(
    client: &Client,
    shop: &mut Shop,
    config: &Config,
    batch: &[&Product],
    failed: &mut HashMap<usize, WriteOutcome>,
) -> Result<Refs> {
    let mut refs = Refs {
        currencies: shop.currencies(client)?.to_vec(),
        channels: shop
            .channels(client, config)?
            .iter()
            .map(|c| c.id.clone())
            .collect(),
        visibility: config.visibility,
        language: shop.language(client, config)?,
        trims: client.version()? >= Version::V6_5,
        short_description: config.short_description.clone(),
        ..Refs::default()
    };
    // Taxes by rate.
    for product in batch {
        let rates = product
            .prices
            .iter()
            .chain(product.variants.iter().flat_map(|v| v.prices.iter()))
            .map(|p| p.tax_rate);
        for rate in rates {
            if let std::collections::hash_map::Entry::Vacant(entry) =
                refs.taxes.entry(rate_key(rate))
            {
                let id = shop.tax_id(client, config, rate);
                if let Err(error) = &id
                    && !matches!(error.kind, koppel_sdk::ErrorKind::Rejected)
                {
                    return Err(error.clone());
                }
                entry.insert(id);
            }
        }
    }
    // Categories by path.
    let paths: Vec<&Vec<String>> = batch
        .iter()
        .flat_map(|p| p.categories.iter())
        .filter(|path| !path_key(path).is_empty())
        .collect();
    if !paths.is_empty() {
        let root = shop.category_root(client, config)?;
        let mut new: Vec<NewCategory> = Vec::new();
        {
            let tree = shop.categories(client)?;
            for path in &paths {
                let id = tree.resolve(&root, path, &mut new);
                refs.categories.insert(path_key(path), id);
            }
        }
        let failed_categories = shop.create_categories(client, config, &new)?;
        for (i, product) in batch.iter().enumerate() {
            let broken = product.categories.iter().find_map(|path| {
                let id = refs.categories.get(&path_key(path))?;
                Some((path, failed_categories.get(id)?))
            });
            if let Some((path, error)) = broken {
                let message = format!(
                    "category {} could not be created in Shopware: {}",
                    path.join(" > "),
                    error.message
                );
                let error = ConnectorError::new(error.kind, message)
                    .retryable(error.retryable)
                    .with_field("categories");
                failed.insert(i, WriteOutcome::from_error(&product.key, &error));
            }
        }
        refs.categories
            .retain(|_, id| !failed_categories.contains_key(id));
    }
    // Property groups and options by name.
    let pairs: Vec<(String, String)> = batch
        .iter()
        .flat_map(|p| {
            p.properties
                .iter()
                .chain(p.variants.iter().flat_map(|v| v.options.iter()))
        })
        .map(|p| (p.group.trim().to_owned(), p.option.trim().to_owned()))
        .filter(|(g, o)| !g.is_empty() && !o.is_empty())
        .collect();
    if !pairs.is_empty() {
        let failed_groups = shop.ensure_options(client, config, &pairs)?;
        for (group, option) in &pairs {
            if !failed_groups.contains_key(&group.to_lowercase()) {
                let id = shop.groups.option_id(group, option);
                refs.options.insert(option_key(group, option), id);
            }
        }
        for (i, product) in batch.iter().enumerate() {
            let used = product
                .properties
                .iter()
                .map(|p| (p, "properties".to_owned()))
                .chain(product.variants.iter().flat_map(|v| {
                    v.options
                        .iter()
                        .map(move |o| (o, format!("variants.{}.options", v.key.trim())))
                }));
            let broken = used.into_iter().find_map(|(property, field)| {
                let error = failed_groups.get(&property.group.trim().to_lowercase())?;
                Some((property, field, error))
            });
            if let Some((property, field, error)) = broken {
                let message = format!(
                    "property group {} (option {}) could not be created in Shopware: {}",
                    property.group.trim(),
                    property.option.trim(),
                    error.message
                );
                let error = ConnectorError::new(error.kind, message)
                    .retryable(error.retryable)
                    .with_field(field);
                failed
                    .entry(i)
                    .or_insert_with(|| WriteOutcome::from_error(&product.key, &error));
            }
        }
    }
    Ok(refs)
}

fn write_batch(
    client: &Client,
    shop: &mut Shop,
    config: &Config,
    version: Version,
    create_only: &CreateOnly,
    batch: &[&Product],
) -> Vec<WriteOutcome> {
    match try_write_batch(client, shop, config, version, create_only, batch) {
        Ok(outcomes) => outcomes,
        Err(error) => batch
            .iter()
            .map(|p| WriteOutcome::from_error(&p.key, &error))
            .collect(),
    }
}

fn try_write_batch(
    client: &Client,
    shop: &mut Shop,
    config: &Config,
    version: Version,
    create_only: &CreateOnly,
    batch: &[&Product],
) -> Result<Vec<WriteOutcome>> {
    let mut failed: HashMap<usize, WriteOutcome> = HashMap::new();
    let refs = resolve_refs(client, shop, config, batch, &mut failed)?;

    // What the shop holds.
    let numbers: Vec<String> = batch
        .iter()
        .flat_map(|p| {
            std::iter::once(p.key.trim().to_owned())
                .chain(p.variants.iter().map(|v| v.key.trim().to_owned()))
        })
        .filter(|n| !n.is_empty())
        .collect();
    let mut existing: HashMap<String, Value> = HashMap::new();
    for chunk in numbers.chunks(client.max_limit()) {
        let rows = client.search_all(
            "/search/product",
            &lookup_criteria(chunk),
            "looking up products by number",
            refs.language.as_deref(),
            Some(chunk.len()),
        )?;
        existing.extend(
            rows.into_iter()
                .filter_map(|row| Some((row.get("productNumber")?.as_str()?.to_owned(), row))),
        );
    }

    // Variants the shop holds beyond those the batch lists: a parent that counts more
    // children than were found has some the source dropped.
    let mut found_children: HashMap<&str, u64> = HashMap::new();
    for row in existing.values() {
        if let Some(parent) = row.get("parentId").and_then(Value::as_str) {
            *found_children.entry(parent).or_default() += 1;
        }
    }
    let parents: Vec<String> = batch
        .iter()
        .filter_map(|p| existing.get(p.key.trim()))
        .filter(|row| row.get("parentId").is_none_or(Value::is_null))
        .filter_map(|row| {
            let id = row.get("id")?.as_str()?;
            let count = row.get("childCount").and_then(Value::as_u64).unwrap_or(0);
            (count > found_children.get(id).copied().unwrap_or(0)).then(|| id.to_owned())
        })
        .collect();
    for chunk in parents.chunks(client.max_limit()) {
        let mut children = lookup_criteria(&[]);
        children["filter"] = json!([criteria::equals_any("parentId", chunk)]);
        let rows = client.search_all(
            "/search/product",
            &children,
            "looking up variants the source no longer lists",
            refs.language.as_deref(),
            None,
        )?;
        for row in rows {
            if let Some(number) = row.get("productNumber").and_then(Value::as_str) {
                existing.entry(number.to_owned()).or_insert(row);
            }
        }
    }

    // What differs.
    let mut changes: Vec<(usize, Change)> = Vec::new();
    let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; batch.len()];
    for (i, product) in batch.iter().enumerate() {
        if let Some(outcome) = failed.remove(&i) {
            outcomes[i] = Some(outcome);
            continue;
        }
        match build_family(product, &refs, &config.default_currency, &existing) {
            Err(refusal) => {
                outcomes[i] = Some(WriteOutcome::failed(
                    &product.key,
                    format!("product {} was not sent: {}", product.key, refusal.message),
                    Some(&refusal.field),
                ));
            }
            Ok(family) => {
                let change = family_change(&family, create_only, refs.language.as_deref());
                if change.payload.is_none() && change.unlinks.is_empty() {
                    outcomes[i] = Some(WriteOutcome::unchanged(
                        &product.key,
                        Some(family.parent.id.clone()),
                    ));
                } else {
                    changes.push((i, change));
                }
            }
        }
    }

    // Write what differs.
    let sending: Vec<&(usize, Change)> = changes
        .iter()
        .filter(|(_, c)| c.payload.is_some())
        .collect();
    let payloads: Vec<Value> = sending
        .iter()
        .filter_map(|(_, c)| c.payload.clone())
        .collect();
    let settings = sync_settings(version, config);
    let fates = if payloads.is_empty() {
        Vec::new()
    } else {
        sync::upsert(client, &settings, "product", &payloads, "writing products")
    };
    // Records with only links to remove count as written.
    let mut written: HashSet<usize> = changes
        .iter()
        .filter(|(_, c)| c.payload.is_none())
        .map(|(i, _)| *i)
        .collect();
    for ((i, change), fate) in sending.iter().zip(fates) {
        let key = &batch[*i].key;
        match fate {
            Fate::Written => {
                written.insert(*i);
            }
            Fate::Refused(errors) => {
                outcomes[*i] = Some(refused_outcome(key, &errors, &change.child_keys));
            }
            Fate::Failed(error) => outcomes[*i] = Some(WriteOutcome::from_error(key, &error)),
        }
    }

    // Links no longer wanted, for the records that were written: one operation per record
    // and entity on 6.4 (a failed one fails its record only), one per entity from 6.5 on.
    let unlinking: Vec<(usize, &Change)> = changes
        .iter()
        .filter(|(i, c)| written.contains(i) && !c.unlinks.is_empty())
        .map(|(i, c)| (*i, c))
        .collect();
    let unlink_fates = sync::write_split(unlinking.len(), &mut |group| {
        let ops = unlink_ops(settings.mode(), group, &unlinking);
        sync::send(
            client,
            &settings,
            &ops,
            group.len(),
            "removing links that are no longer wanted",
        )
    });
    let mut unlink_errors: HashMap<usize, ConnectorError> = HashMap::new();
    for ((i, _), fate) in unlinking.iter().zip(&unlink_fates) {
        let key = &batch[*i].key;
        let what = format!("removing links of product {key} that are no longer wanted");
        if let Some(error) = sync::fate_error(fate, &what) {
            unlink_errors.insert(*i, error);
        }
    }
    for (i, change) in &changes {
        if !written.contains(i) {
            continue;
        }
        let key = &batch[*i].key;
        let id = ids_of(batch[*i], &existing);
        outcomes[*i] = Some(match unlink_errors.get(i) {
            Some(error) => WriteOutcome::from_error(key, error),
            None if change.created => WriteOutcome::created(key, id),
            None if !change.deactivated.is_empty() => {
                let numbers = change.deactivated.join(", ");
                log::info(
                    "Deactivated variants the source no longer lists.",
                    &[("product", key), ("variants", &numbers)],
                );
                let mut outcome = WriteOutcome::updated(key, id);
                outcome.message = Some(format!(
                    "deactivated variants no longer in the source: {numbers}"
                ));
                outcome
            }
            None => WriteOutcome::updated(key, id),
        });
    }
    Ok(outcomes
        .into_iter()
        .zip(batch)
        .map(|(o, p)| o.unwrap_or_else(|| WriteOutcome::failed(&p.key, "not written", None)))
        .collect())
}

/// The delete operations of the records at `group` (positions in `unlinking`).
fn unlink_ops(mode: sync::Mode, group: &[usize], unlinking: &[(usize, &Change)]) -> Vec<Op> {
    let mut ops: Vec<Op> = Vec::new();
    for (position, &u) in group.iter().enumerate() {
        for (entity, key) in &unlinking[u].1.unlinks {
            let op_key = match mode {
                sync::Mode::Transaction => format!("delete-{entity}"),
                sync::Mode::PerRecord => format!("{position}-{entity}"),
            };
            match ops.iter_mut().find(|op| op.key == op_key) {
                Some(op) => op.push(position, key.clone()),
                None => {
                    let mut op = Op::new(op_key, entity, "delete");
                    op.push(position, key.clone());
                    ops.push(op);
                }
            }
        }
    }
    ops
}

fn ids_of(product: &Product, existing: &HashMap<String, Value>) -> String {
    existing
        .get(product.key.trim())
        .and_then(|r| r.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .unwrap_or_else(|| ids::product(product.key.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use koppel_sdk::{Price, Property};

    fn refs() -> Refs {
        Refs {
            currencies: vec![Currency {
                id: "eur".into(),
                iso: "EUR".into(),
                system_default: true,
            }],
            channels: vec!["sc".into()],
            visibility: 30,
            taxes: HashMap::from([("21".to_owned(), Ok("tax21".to_owned()))]),
            categories: HashMap::from([(
                path_key(&["Clothing".into(), "Shirts".into()]),
                "cat".to_owned(),
            )]),
            options: HashMap::from([
                (option_key("Size", "M"), "size-m".to_owned()),
                (option_key("Size", "L"), "size-l".to_owned()),
                (option_key("Material", "Cotton"), "cotton".to_owned()),
            ]),
            language: None,
            trims: true,
            short_description: ShortDescription::Skip,
        }
    }

    #[test]
    fn texts_are_sent_as_the_shop_stores_them() {
        let mut p = product("SKU-1", &[("SKU-1-M", "M")]);
        p.name = "<b>Shirt</b> blue".into();
        p.ean = Some("  ".into());
        p.short_description = Some("Soft".into());
        let family = build_family(&p, &refs(), "EUR", &HashMap::new()).expect("valid");
        let payload = family_change(&family, &CreateOnly::default(), None)
            .payload
            .expect("new");
        assert_eq!(payload["name"], "Shirt blue");
        assert!(payload.get("ean").is_none(), "blank is null: {payload}");
        assert!(
            payload.get("metaDescription").is_none(),
            "the short description is not the SEO text"
        );
        // What the shop stored compares equal: nothing to send again.
        let again = build_family(&p, &refs(), "EUR", &stored(&family)).expect("valid");
        assert!(
            family_change(&again, &CreateOnly::default(), None)
                .payload
                .is_none()
        );

        let mut refs = refs();
        refs.short_description = ShortDescription::MetaDescription;
        let family = build_family(&p, &refs, "EUR", &HashMap::new()).expect("valid");
        let payload = family_change(&family, &CreateOnly::default(), None)
            .payload
            .expect("new");
        assert_eq!(payload["metaDescription"], "Soft");

        p.name = "x".repeat(256);
        let refusal = build_family(&p, &refs, "EUR", &HashMap::new()).expect_err("too long");
        assert_eq!(refusal.field, "name");
        assert!(refusal.message.contains("256") && refusal.message.contains("255"));
        p.name = "Fine".into();
        p.variants[0].name = Some("<br>".into());
        let refusal = build_family(&p, &refs, "EUR", &HashMap::new()).expect_err("tags");
        assert_eq!(refusal.field, "variants.SKU-1-M.name");
    }

    fn price(gross: i64) -> Price {
        Price {
            currency: "EUR".into(),
            net: gross * 100 / 121,
            gross,
            tax_rate: Decimal::integer(21),
        }
    }

    fn product(key: &str, variants: &[(&str, &str)]) -> Product {
        Product {
            key: key.into(),
            name: format!("Product {key}"),
            description: Some("<p>Fine</p>".into()),
            short_description: None,
            ean: Some("8712345678906".into()),
            prices: vec![price(1210)],
            categories: vec![vec!["Clothing".into(), "Shirts".into()]],
            properties: vec![Property {
                group: "Material".into(),
                option: "Cotton".into(),
            }],
            variants: variants
                .iter()
                .map(|(k, size)| Variant {
                    key: (*k).into(),
                    name: None,
                    ean: None,
                    options: vec![Property {
                        group: "Size".into(),
                        option: (*size).into(),
                    }],
                    prices: vec![],
                    active: true,
                    extra: vec![],
                })
                .collect(),
            active: true,
            extra: vec![NamedValue::text("erp_id", "A-1")],
        }
    }

    /// The rows as Shopware would hold them after `payload` was written.
    fn stored(family: &Family) -> HashMap<String, Value> {
        let mut out = HashMap::new();
        let mut rows = vec![&family.parent];
        rows.extend(family.children.iter());
        for row in rows {
            let mut value = json!({"id": row.id, "productNumber": row.number, "parentId": row.parent_id,
                "categoryIds": row.categories, "propertyIds": row.properties, "optionIds": if row.options.is_empty() { Value::Null } else { json!(row.options) },
                "visibilities": row.visibilities.iter().map(|(c, v)| json!({"id": ids::visibility(&row.id, c), "salesChannelId": c, "visibility": v})).collect::<Vec<_>>(),
                "configuratorSettings": row.configurator.iter().map(|o| json!({"id": ids::configurator_setting(&row.id, o), "optionId": o})).collect::<Vec<_>>(),
                "customFields": row.custom.iter().cloned().collect::<Map<String, Value>>()});
            for (key, _, v) in &row.fields {
                value[*key] = v.clone();
            }
            out.insert(row.number.clone(), value);
        }
        out
    }

    #[test]
    fn prices_in_several_currencies_need_one_in_the_default_currency() {
        let mut refs = refs();
        refs.currencies.push(Currency {
            id: "chf".into(),
            iso: "CHF".into(),
            system_default: false,
        });
        let chf = Price {
            currency: "CHF".into(),
            net: 1100,
            gross: 1331,
            tax_rate: Decimal::integer(21),
        };
        let mut p = product("TS-200", &[]);
        p.prices.push(chf.clone());
        let family = build_family(&p, &refs, "EUR", &HashMap::new()).expect("valid");
        let payload = family_change(&family, &CreateOnly::default(), None)
            .payload
            .expect("new");
        assert_eq!(
            payload["price"],
            json!([
                {"currencyId": "eur", "net": 10, "gross": 12.1, "linked": true},
                {"currencyId": "chf", "net": 11, "gross": 13.31, "linked": true},
            ])
        );

        // CHF only: refused before anything is sent, naming the field.
        p.prices = vec![chf.clone()];
        let refusal = build_family(&p, &refs, "EUR", &HashMap::new()).expect_err("refused");
        assert_eq!(refusal.field, "prices");
        assert!(
            refusal.message.contains("default currency EUR") && refusal.message.contains("CHF"),
            "{}",
            refusal.message
        );

        // A variant's own prices too.
        let mut p = product("TS-300", &[("TS-300-M", "M")]);
        p.variants[0].prices = vec![chf];
        let refusal = build_family(&p, &refs, "EUR", &HashMap::new()).expect_err("refused");
        assert_eq!(refusal.field, "variants.TS-300-M.prices");
    }

    #[test]
    fn a_new_family_is_sent_whole_with_deterministic_ids() {
        let p = product("TS-100", &[("TS-100-M", "M"), ("TS-100-L", "L")]);
        let family = build_family(&p, &refs(), "EUR", &HashMap::new()).expect("valid");
        assert_eq!(family.parent.id, ids::product("TS-100"));
        let change = family_change(&family, &CreateOnly::default(), None);
        assert!(change.created);
        let payload = change.payload.expect("new");
        assert_eq!(payload["productNumber"], "TS-100");
        assert_eq!(payload["stock"], 0);
        assert_eq!(payload["taxId"], "tax21");
        assert_eq!(payload["price"][0]["gross"], json!(12.1));
        assert_eq!(payload["price"][0]["net"], json!(10));
        assert_eq!(payload["categories"], json!([{"id": "cat"}]));
        assert_eq!(payload["properties"], json!([{"id": "cotton"}]));
        assert_eq!(payload["customFields"], json!({"erp_id": "A-1"}));
        assert_eq!(
            payload["visibilities"][0]["id"],
            ids::visibility(&family.parent.id, "sc")
        );
        assert_eq!(
            payload["configuratorSettings"].as_array().map(Vec::len),
            Some(2)
        );
        let children = payload["children"].as_array().expect("children");
        assert_eq!(children.len(), 2);
        assert_eq!(children[0]["parentId"], family.parent.id);
        assert_eq!(children[0]["options"], json!([{"id": "size-m"}]));
        assert!(
            children[0].get("price").is_none(),
            "variants inherit the price"
        );
        assert_eq!(change.child_keys, vec!["TS-100-M", "TS-100-L"]);
    }

    #[test]
    fn an_unchanged_family_sends_nothing_and_a_change_sends_only_itself() {
        let p = product("TS-100", &[("TS-100-M", "M")]);
        let family = build_family(&p, &refs(), "EUR", &HashMap::new()).expect("valid");
        let shop = stored(&family);
        let again = build_family(&p, &refs(), "EUR", &shop).expect("valid");
        let change = family_change(&again, &CreateOnly::default(), None);
        assert!(change.payload.is_none(), "{:?}", change.payload);
        assert!(change.unlinks.is_empty());

        let mut renamed = p.clone();
        renamed.name = "Better name".into();
        renamed.variants[0].ean = Some("123".into());
        let family = build_family(&renamed, &refs(), "EUR", &shop).expect("valid");
        let change = family_change(&family, &CreateOnly::default(), None);
        let payload = change.payload.expect("changed");
        let keys: BTreeSet<&str> = payload
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, BTreeSet::from(["id", "name", "children"]));
        assert_eq!(
            payload["children"],
            json!([{"id": ids::product("TS-100-M"), "ean": "123"}])
        );
        assert!(!change.created);
    }

    #[test]
    fn create_only_fields_are_left_alone_on_existing_products() {
        let p = product("SKU-1", &[]);
        let family = build_family(&p, &refs(), "EUR", &HashMap::new()).expect("valid");
        let mut shop = stored(&family);
        shop.get_mut("SKU-1").expect("row")["name"] = json!("Edited in the shop");
        shop.get_mut("SKU-1").expect("row")["description"] = json!("Shop text");
        let family = build_family(&p, &refs(), "EUR", &shop).expect("valid");
        let name_and_description = create_only(&["name".into(), "Description".into()]);
        let change = family_change(&family, &name_and_description, None);
        assert!(change.payload.is_none(), "{:?}", change.payload);
        let change = family_change(&family, &create_only(&["name".into()]), None);
        assert_eq!(
            change.payload.expect("description")["description"],
            "<p>Fine</p>"
        );
        let aliases = create_only(&[
            "extra".into(),
            "short-description".into(),
            "Price".into(),
            "visibility".into(),
            "product.category".into(),
        ]);
        for field in [
            "extra.erp_id",
            "short_description",
            "prices",
            "visibilities",
            "categories",
        ] {
            assert!(aliases.has(field), "{field}");
        }
        assert!(!aliases.has("name"));
        assert!(create_only(&["custom_fields".into()]).has("extra.erp_id"));
        assert!(create_only(&["custom_fields.Color".into()]).has("extra.Color"));
    }

    #[test]
    fn stale_links_are_removed_and_prices_compare_by_value() {
        let p = product("SKU-1", &[]);
        let family = build_family(&p, &refs(), "EUR", &HashMap::new()).expect("valid");
        let mut shop = stored(&family);
        let row = shop.get_mut("SKU-1").expect("row");
        row["categoryIds"] = json!(["cat", "old"]);
        row["price"] = json!([{"currencyId": "eur", "net": 10, "gross": 12.10, "linked": true}]);
        let family = build_family(&p, &refs(), "EUR", &shop).expect("valid");
        let change = family_change(&family, &CreateOnly::default(), None);
        assert!(
            change.payload.is_none(),
            "prices equal by value: {:?}",
            change.payload
        );
        assert_eq!(
            change.unlinks,
            vec![(
                "product_category",
                json!({"productId": family.parent.id, "categoryId": "old"})
            )]
        );
    }

    #[test]
    fn an_empty_category_list_leaves_the_shops_categories_alone() {
        let mut p = product("SKU-1", &[]);
        let family = build_family(&p, &refs(), "EUR", &HashMap::new()).expect("valid");
        let shop = stored(&family);
        p.categories.clear();
        p.properties.clear();
        let family = build_family(&p, &refs(), "EUR", &shop).expect("valid");
        let change = family_change(&family, &CreateOnly::default(), None);
        assert!(change.payload.is_none(), "{:?}", change.payload);
        assert!(change.unlinks.is_empty(), "{:?}", change.unlinks);
    }

    #[test]
    fn bad_records_are_refused_with_the_field() {
        let mut p = product("SKU-1", &[("SKU-1-M", "M")]);
        p.prices[0].currency = "USD".into();
        let refusal = build_family(&p, &refs(), "EUR", &HashMap::new()).expect_err("usd");
        assert_eq!(refusal.field, "prices");
        assert!(refusal.message.contains("USD"));

        let mut p = product("SKU-1", &[("SKU-1-M", "M")]);
        p.variants[0].options.clear();
        let refusal = build_family(&p, &refs(), "EUR", &HashMap::new()).expect_err("no options");
        assert_eq!(refusal.field, "variants.SKU-1-M.options");

        let p = product("SKU-1", &[("SKU-1-M", "M")]);
        let shop = HashMap::from([(
            "SKU-1-M".to_owned(),
            json!({"id": "x", "parentId": "other"}),
        )]);
        let refusal = build_family(&p, &refs(), "EUR", &shop).expect_err("hijack");
        assert_eq!(refusal.field, "variants.SKU-1-M.key");

        let mut refs = refs();
        refs.taxes
            .insert("21".into(), Err(ConnectorError::rejected("no 21 % tax")));
        let refusal =
            build_family(&product("A", &[]), &refs, "EUR", &HashMap::new()).expect_err("tax");
        assert_eq!(refusal.field, "prices");
    }

    #[test]
    fn pointers_map_back_to_canonical_fields() {
        let keys = vec!["V-1".to_owned(), "V-2".to_owned()];
        assert_eq!(canonical_field("price", &keys), "prices");
        assert_eq!(
            canonical_field("children/1/productNumber", &keys),
            "variants.V-2.key"
        );
        assert_eq!(canonical_field("customFields/color", &keys), "extra.color");
        assert_eq!(
            canonical_field(
                "translations/2fbb5fe2e29a4d70aa5854ce7ce3e20b/metaDescription",
                &keys
            ),
            "short_description"
        );
        let outcome = refused_outcome(
            "SKU",
            &[ApiError {
                status: 400,
                code: errors::NOT_BLANK.into(),
                detail: "This value should not be blank.".into(),
                pointer: Some("/4/price".into()),
                ..ApiError::default()
            }],
            &keys,
        );
        assert_eq!(outcome.field.as_deref(), Some("prices"));
        assert!(
            outcome
                .message
                .as_deref()
                .is_some_and(|m| m.contains("SKU") && m.contains("c1051bb4"))
        );
    }

    #[test]
    fn a_duplicate_number_names_the_key_it_belongs_to() {
        let duplicate = |number: &str| ApiError {
            status: 400,
            code: "CONTENT__DUPLICATE_PRODUCT_NUMBER".into(),
            detail: format!("Product with number \"{number}\" already exists."),
            parameters: json!({"number": number}),
            ..ApiError::default()
        };
        let keys = vec!["V-1".to_owned()];
        let outcome = refused_outcome("P", &[duplicate("P")], &keys);
        assert_eq!(outcome.field.as_deref(), Some("key"));
        let outcome = refused_outcome("P", &[duplicate("V-1")], &keys);
        assert_eq!(outcome.field.as_deref(), Some("variants.V-1.key"));
    }

    #[test]
    fn a_family_priced_on_its_variants_gets_the_cheapest_on_its_parent() {
        let mut p = product("TS-9", &[("TS-9-M", "M"), ("TS-9-L", "L")]);
        p.prices.clear();
        p.variants[0].prices = vec![price(1500)];
        p.variants[1].prices = vec![price(1210)];
        let family = build_family(&p, &refs(), "EUR", &HashMap::new()).expect("valid");
        let payload = family_change(&family, &CreateOnly::default(), None)
            .payload
            .expect("new");
        assert_eq!(payload["price"][0]["gross"], json!(12.1));
        assert_eq!(payload["taxId"], "tax21");
        assert_eq!(payload["children"][0]["price"][0]["gross"], json!(15));
    }

    #[test]
    fn a_variant_no_longer_listed_is_deactivated_not_deleted() {
        let p = product("TS-1", &[("TS-1-M", "M"), ("TS-1-L", "L")]);
        let family = build_family(&p, &refs(), "EUR", &HashMap::new()).expect("valid");
        let shop = stored(&family);
        let mut fewer = p.clone();
        fewer.variants.pop();
        let family = build_family(&fewer, &refs(), "EUR", &shop).expect("valid");
        let change = family_change(&family, &create_only(&["active".into()]), None);
        assert_eq!(change.deactivated, vec!["TS-1-L"]);
        let payload = change.payload.expect("deactivation");
        assert_eq!(
            payload["children"],
            json!([{"id": ids::product("TS-1-L"), "active": false}])
        );
        assert!(
            change
                .unlinks
                .iter()
                .any(|(entity, _)| *entity == "product_configurator_setting"),
            "its option leaves the configurator"
        );
        // Once inactive, nothing more to do.
        let mut shop = shop;
        shop.get_mut("TS-1-L").expect("row")["active"] = json!(false);
        let family = build_family(&fewer, &refs(), "EUR", &shop).expect("valid");
        assert!(
            family_change(&family, &CreateOnly::default(), None)
                .deactivated
                .is_empty()
        );
    }

    #[test]
    fn batches_count_rows_not_records() {
        let a = product("A", &[("A1", "M"), ("A2", "L")]);
        let b = product("B", &[]);
        let c = product("C", &[("C1", "M")]);
        let list = vec![&a, &b, &c];
        assert_eq!(batches(&list, 4), vec![0..2, 2..3]);
        assert_eq!(batches(&list, 2), vec![0..1, 1..2, 2..3]);
        assert_eq!(batches(&list, 100), vec![0..3]);
    }

    #[test]
    fn another_language_goes_into_translations() {
        let p = product("SKU-1", &[]);
        let family = build_family(&p, &refs(), "EUR", &HashMap::new()).expect("valid");
        let shop = stored(&family);
        let mut renamed = p.clone();
        renamed.name = "Hemd".into();
        let family = build_family(&renamed, &refs(), "EUR", &shop).expect("valid");
        let change = family_change(&family, &CreateOnly::default(), Some("de"));
        let payload = change.payload.expect("changed");
        assert!(payload.get("name").is_none());
        assert_eq!(payload["translations"]["de"]["name"], "Hemd");
    }
}
