//! `lookup`: a product or its stock by product number, an order by number, a customer by
//! e-mail, each as the canonical record.

use koppel_sdk::money::minor_digits;
use koppel_sdk::{Decimal, Found, Price, Product, Property, Record, Result, StockLevel, Variant};
use serde_json::{Value, json};

use crate::api::{Call, Client};
use crate::criteria;
use crate::money;
use crate::orders;
use crate::refdata::{Shop, name_of};

fn product_criteria(number: &str) -> Value {
    let options = json!({"associations": {"group": {}}});
    json!({
        "limit": 1,
        "filter": [criteria::equals("productNumber", number)],
        "associations": {
            "tax": {},
            "options": options,
            "children": {"associations": {"options": options}},
        },
    })
}

fn prices(client: &Client, shop: &mut Shop, row: &Value, rate: Decimal) -> Result<Vec<Price>> {
    let mut out = Vec::new();
    for entry in row
        .get("price")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(currency) = entry.get("currencyId").and_then(Value::as_str) else {
            continue;
        };
        let Some(iso) = shop.currency_iso(client, currency)? else {
            continue;
        };
        let digits = minor_digits(&iso);
        out.push(Price {
            net: entry
                .get("net")
                .and_then(|v| money::json_minor(v, digits))
                .unwrap_or(0),
            gross: entry
                .get("gross")
                .and_then(|v| money::json_minor(v, digits))
                .unwrap_or(0),
            currency: iso,
            tax_rate: rate,
        });
    }
    Ok(out)
}

fn options(row: &Value) -> Vec<Property> {
    row.get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|o| Property {
            group: o.get("group").map(name_of).unwrap_or_default(),
            option: name_of(o),
        })
        .collect()
}

fn text(row: &Value, key: &str) -> Option<String> {
    row.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A product by number, with its variants.
pub fn product(client: &Client, shop: &mut Shop, number: &str) -> Result<Option<Found>> {
    let answer = client.json(Call::search(
        "/search/product",
        &product_criteria(number.trim()),
        format!("finding product {number}"),
    ))?;
    let Some(row) = answer.pointer("/data/0") else {
        return Ok(None);
    };
    let rate = row
        .pointer("/tax/taxRate")
        .and_then(money::json_decimal)
        .unwrap_or(Decimal::ZERO)
        .normalize();
    let mut variants = Vec::new();
    for child in row
        .get("children")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        variants.push(Variant {
            key: text(child, "productNumber").unwrap_or_default(),
            name: text(child, "name"),
            ean: text(child, "ean"),
            options: options(child),
            prices: prices(client, shop, child, rate)?,
            active: child.get("active").and_then(Value::as_bool).unwrap_or(true),
            extra: vec![],
        });
    }
    variants.sort_by(|a, b| a.key.cmp(&b.key));
    let product = Product {
        key: text(row, "productNumber").unwrap_or_else(|| number.to_owned()),
        name: name_of(row),
        description: text(row, "description"),
        short_description: text(row, "metaDescription"),
        ean: text(row, "ean"),
        prices: prices(client, shop, row, rate)?,
        categories: vec![],
        properties: vec![],
        variants,
        active: row.get("active").and_then(Value::as_bool).unwrap_or(true),
        extra: vec![],
    };
    Ok(Some(Found {
        id: text(row, "id").unwrap_or_default(),
        record: Some(Record::Product(product)),
    }))
}

/// The stock of a product: on 6.4/6.5 `reserved` is what open orders hold.
pub fn stock(client: &Client, number: &str) -> Result<Option<Found>> {
    let answer = client.json(Call::search(
        "/search/product",
        &json!({
            "limit": 1,
            "filter": [criteria::equals("productNumber", number.trim())],
            "includes": {"product": ["id", "productNumber", "stock", "availableStock", "isCloseout"]},
        }),
        format!("finding the stock of {number}"),
    ))?;
    let Some(row) = answer.pointer("/data/0") else {
        return Ok(None);
    };
    let stock = row.get("stock").and_then(Value::as_i64).unwrap_or(0);
    let available = row
        .get("availableStock")
        .and_then(Value::as_i64)
        .unwrap_or(stock);
    let mut extra = Vec::new();
    if let Some(closeout) = row.get("isCloseout").and_then(Value::as_bool) {
        extra.push(koppel_sdk::NamedValue::boolean("closeout", closeout));
    }
    Ok(Some(Found {
        id: text(row, "id").unwrap_or_default(),
        record: Some(Record::Stock(StockLevel {
            key: text(row, "productNumber").unwrap_or_else(|| number.to_owned()),
            on_hand: Decimal::integer(stock),
            reserved: Decimal::integer((stock - available).max(0)),
            available: Decimal::integer(available),
            location: None,
            extra,
        })),
    }))
}

pub fn order(client: &Client, number: &str) -> Result<Option<Found>> {
    Ok(orders::find(client, number)?.map(|row| {
        let order = orders::map_order(&row);
        Found {
            id: order.key.clone(),
            record: Some(Record::Order(order)),
        }
    }))
}

pub fn customer(client: &Client, email: &str) -> Result<Option<Found>> {
    Ok(orders::find_customer(client, email)?.map(|row| {
        let customer = orders::map_customer(&row);
        Found {
            id: customer.key.clone(),
            record: Some(Record::Customer(customer)),
        }
    }))
}
