//! What the unit tests of the products modules share: resolved references, products and
//! the rows the shop would hold.

use std::collections::HashMap;

use koppel_sdk::{Decimal, NamedValue, Price, Product, Property, Variant};
use serde_json::{Map, Value, json};

use super::refs::{option_key, path_key};
use super::{Family, Refs};
use crate::config::ShortDescription;
use crate::ids;
use crate::refdata::Currency;

pub(super) fn refs() -> Refs {
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

pub(super) fn price(gross: i64) -> Price {
    Price {
        currency: "EUR".into(),
        net: gross * 100 / 121,
        gross,
        tax_rate: Decimal::integer(21),
    }
}

pub(super) fn product(key: &str, variants: &[(&str, &str)]) -> Product {
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
pub(super) fn stored(family: &Family) -> HashMap<String, Value> {
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
