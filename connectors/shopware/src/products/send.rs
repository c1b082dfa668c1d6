//! Batching and sending: records split into batches of at most `batch_size` rows, each
//! looked up, planned and written through the Sync API, split around bad records.

use std::collections::{HashMap, HashSet};

use koppel_sdk::{ConnectorError, CreateOnly, Product, Result, WriteOutcome, log};
use serde_json::{Value, json};

use super::Change;
use super::errors::refused_outcome;
use super::plan::family_change;
use super::refs::resolve_refs;
use super::rows::build_family;
use crate::api::{Client, Version};
use crate::config::Config;
use crate::criteria;
use crate::ids;
use crate::refdata::Shop;
use crate::sync::{self, Fate, Op};

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

pub(super) fn write_batch(
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

pub(super) fn try_write_batch(
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
pub(super) fn unlink_ops(
    mode: sync::Mode,
    group: &[usize],
    unlinking: &[(usize, &Change)],
) -> Vec<Op> {
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

pub(super) fn ids_of(product: &Product, existing: &HashMap<String, Value>) -> String {
    existing
        .get(product.key.trim())
        .and_then(|r| r.get("id").and_then(Value::as_str))
        .map(str::to_owned)
        .unwrap_or_else(|| ids::product(product.key.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::products::fixtures::*;

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
}
