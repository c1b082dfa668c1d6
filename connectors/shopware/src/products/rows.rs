//! Row building: a canonical product (simple, or a variant family) as the Shopware rows the
//! source wants, with deterministic ids, texts as the shop stores them, prices per currency
//! and the tax; a record that cannot be a row is refused naming its field.

use std::collections::{BTreeSet, HashMap, HashSet};

use koppel_sdk::money::minor_digits;
use koppel_sdk::{Decimal, NamedValue, Product, Value as KValue, Variant};
use serde_json::{Value, json};

use super::plan::id_list;
use super::refs::{option_key, path_key, rate_key};
use super::{Family, Refs, Refusal, Row, refuse};
use crate::config::ShortDescription;
use crate::ids;
use crate::money;
use crate::text::{self, TextError};

pub(super) fn custom_value(name: &str, value: &KValue) -> std::result::Result<Value, Refusal> {
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

pub(super) fn customs(extra: &[NamedValue]) -> std::result::Result<Vec<(String, Value)>, Refusal> {
    extra
        .iter()
        .map(|nv| Ok((nv.name.clone(), custom_value(&nv.name, &nv.value)?)))
        .collect()
}

/// The tax rate of a price list: the default currency's, else the first.
pub(super) fn family_rate(prices: &[koppel_sdk::Price], default_currency: &str) -> Option<Decimal> {
    prices
        .iter()
        .find(|p| p.currency.eq_ignore_ascii_case(default_currency))
        .or_else(|| prices.first())
        .map(|p| p.tax_rate)
}

/// The price list of the variant with the lowest gross price in `default_currency` (none
/// when no variant has one).
pub(super) fn cheapest_variant_prices<'a>(
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
pub(super) fn price_list(
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
pub(super) fn string_field(
    value: &str,
    field: &str,
    refs: &Refs,
) -> std::result::Result<Value, Refusal> {
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

pub(super) fn tax_for(
    rate: Decimal,
    refs: &Refs,
    field: &str,
) -> std::result::Result<String, Refusal> {
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
pub(super) fn dropped_variants(
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

pub(super) fn build_child(
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

#[cfg(test)]
mod tests {
    use koppel_sdk::{ConnectorError, CreateOnly, Price};

    use super::*;
    use crate::products::fixtures::*;
    use crate::products::plan::*;
    use crate::refdata::Currency;

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
}
