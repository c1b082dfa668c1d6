//! Error attribution: a Shopware error below a family payload named as the canonical field
//! and record it belongs to.

use koppel_sdk::WriteOutcome;

use crate::errors::{self, ApiError};

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

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

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
}
