//! Change planning: the rows the source wants compared with what the shop holds, so only
//! what differs is sent (create-only fields left out of updates), links no longer wanted
//! become unlinks and variants no longer listed are deactivated.

use std::collections::BTreeSet;

use koppel_sdk::CreateOnly;
use serde_json::{Map, Value, json};

use super::{Change, Family, Row, Unlink};
use crate::ids;
use crate::money;

/// JSON values equal as Shopware would store them (numbers by value).
pub(super) fn same(a: &Value, b: &Value) -> bool {
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
pub(super) fn same_prices(existing: &Value, wanted: &Value) -> bool {
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

pub(super) fn id_list(value: Option<&Value>) -> BTreeSet<String> {
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

pub(super) const TRANSLATED: &[&str] = &["name", "description", "metaDescription"];

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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::ShortDescription;
    use crate::products::create_only;
    use crate::products::fixtures::*;
    use crate::products::rows::*;

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
