//! Reference look-up for a batch of products: the currencies, sales channels, taxes,
//! categories and property options its records refer to, resolved or created once per batch.

use std::collections::HashMap;

use koppel_sdk::{ConnectorError, Decimal, Product, Result, WriteOutcome};

use super::Refs;
use crate::api::{Client, Version};
use crate::config::Config;
use crate::refdata::{NewCategory, Shop};

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

pub(super) fn option_key(group: &str, option: &str) -> (String, String) {
    (group.trim().to_lowercase(), option.trim().to_lowercase())
}

/// Resolves what the batch refers to; records that cannot have it get a refusal.
pub(super) fn resolve_refs(
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
