//! `POST /api/_action/sync` (API-NOTES §5.2): 6.5+ runs every operation in one transaction
//! and answers `{data, notFound, deleted}` keyed by entity, or 400 with every record's
//! errors and nothing written; 6.4 answers per operation key with per-record results and a
//! `success` flag, honouring `fail-on-error` and `single-operation`.

use serde_json::{Map, Value, json};

use crate::criteria::{self, Criteria};
use crate::entities;
use crate::errors::{ApiError, ApiErrors};
use crate::shop::Shop;
use crate::write::{Batch, Mode};

/// The sync request headers that change behaviour.
#[derive(Clone, Debug, Default)]
pub struct SyncHeaders {
    pub fail_on_error: bool,
    pub single_operation: bool,
    pub indexing: Option<String>,
}

struct Operation {
    key: String,
    entity: usize,
    delete: bool,
    payload: Vec<Value>,
    criteria: Option<Vec<Value>>,
}

fn operations(shop: &Shop, body: &Value) -> Result<Vec<Operation>, ApiError> {
    let entries: Vec<(String, &Value)> = match body {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        _ => {
            return Err(ApiError::invalid_sync(
                "The sync payload must be an array or an object of operations.",
            ));
        }
    };
    let mut out = Vec::new();
    for (key, op) in entries {
        let name = op.get("entity").and_then(Value::as_str).unwrap_or_default();
        let entity =
            entities::index_of(name).ok_or_else(|| ApiError::definition_not_found(name))?;
        let action = op.get("action").and_then(Value::as_str).unwrap_or_default();
        let delete = match action {
            "upsert" => false,
            "delete" => true,
            other => {
                return Err(ApiError::invalid_sync(format!(
                    "Sync operation {key}, with action \"{other}\", is not supported. Use \"upsert\" or \"delete\"."
                )));
            }
        };
        let criteria = op.get("criteria").and_then(Value::as_array).cloned();
        if criteria.is_some() && (!delete || !shop.version.sync_resolvers()) {
            return Err(ApiError::invalid_sync(format!(
                "Sync operation {key}: criteria are only supported for delete operations (6.5+)."
            )));
        }
        if criteria.is_some() && entities::def(entity).mapping.is_none() {
            return Err(ApiError::invalid_sync(format!(
                "Sync operation {key}: delete by criteria is only supported for mapping entities, not {name}."
            )));
        }
        let payload = match op.get("payload") {
            Some(Value::Array(items)) => {
                if criteria.is_some() && !items.is_empty() {
                    return Err(ApiError::invalid_sync(format!(
                        "Sync operation {key}: payload and criteria cannot be combined."
                    )));
                }
                items.clone()
            }
            None if criteria.is_some() => Vec::new(),
            _ => {
                return Err(ApiError::invalid_sync(format!(
                    "Sync operation {key}, with action \"{action}\", has no payload provided."
                )));
            }
        };
        out.push(Operation {
            key,
            entity,
            delete,
            payload,
            criteria,
        });
    }
    Ok(out)
}

fn run_operation(shop: &mut Shop, batch: &mut Batch, op: &Operation) {
    if let Some(filters) = &op.criteria {
        let body = json!({ "filter": filters });
        match Criteria::parse(shop, op.entity, &body) {
            Ok(criteria) => {
                let hits = criteria::search(shop, op.entity, &criteria, None);
                for id in hits.ids {
                    if let Err(error) = shop.delete_row(batch, op.entity, id) {
                        batch.errors.push(error);
                    }
                }
            }
            Err(error) => batch.errors.push(error),
        }
        return;
    }
    for (i, record) in op.payload.iter().enumerate() {
        let pointer = format!("/{i}");
        if op.delete {
            shop.delete_key(batch, op.entity, record, &pointer);
        } else {
            shop.write(batch, op.entity, record, Mode::Upsert, &pointer, None);
        }
    }
}

/// The errors a failed all-or-nothing write answers with: every validation error (the DAL
/// validates the whole write before any SQL runs); only without them the first database
/// error (a 500), which aborts the request.
pub fn failure(errors: Vec<ApiError>) -> ApiErrors {
    let validation: Vec<ApiError> = errors.iter().filter(|e| e.status < 500).cloned().collect();
    match validation.is_empty() {
        true => ApiErrors(errors.into_iter().take(1).collect()),
        false => ApiErrors(validation),
    }
}

/// Runs a sync request; the answer's status and body.
pub fn run(shop: &mut Shop, body: &Value, headers: &SyncHeaders) -> (u16, Value) {
    let ops = match operations(shop, body) {
        Ok(ops) => ops,
        Err(error) => {
            let errors = ApiErrors::from(error);
            return (errors.status(), errors.body());
        }
    };
    shop.indexing_disabled = headers.indexing.as_deref() == Some("disable-indexing");
    let answer = if shop.version.sync_resolvers() {
        run_65(shop, &ops)
    } else if headers.single_operation {
        run_64_single(shop, &ops)
    } else {
        run_64(shop, &ops, headers.fail_on_error)
    };
    shop.indexing_disabled = false;
    answer
}

fn run_65(shop: &mut Shop, ops: &[Operation]) -> (u16, Value) {
    shop.store.begin();
    let mut batch = Batch {
        resolvers: true,
        ..Batch::default()
    };
    for op in ops {
        run_operation(shop, &mut batch, op);
    }
    if !batch.errors.is_empty() {
        shop.store.rollback();
        let errors = failure(batch.errors);
        return (errors.status(), errors.body());
    }
    shop.store.commit();
    (
        200,
        json!({
            "data": Batch::object(&batch.written),
            "notFound": Batch::object(&batch.not_found),
            "deleted": Batch::object(&batch.deleted),
        }),
    )
}

fn run_64_single(shop: &mut Shop, ops: &[Operation]) -> (u16, Value) {
    shop.store.begin();
    let mut batch = Batch::default();
    for op in ops {
        run_operation(shop, &mut batch, op);
    }
    if !batch.errors.is_empty() {
        shop.store.rollback();
        let errors = failure(batch.errors);
        return (errors.status(), errors.body());
    }
    shop.store.commit();
    let mut data = match Batch::object(&batch.written) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for (entity, ids) in &batch.deleted {
        data.entry(entity.clone())
            .or_insert_with(|| Value::Array(ids.clone()));
    }
    (
        200,
        json!({ "success": true, "data": data, "extensions": [] }),
    )
}

fn run_64(shop: &mut Shop, ops: &[Operation], fail_on_error: bool) -> (u16, Value) {
    shop.store.begin();
    let mut any_error = false;
    let mut data = Map::new();
    for op in ops {
        let savepoint = shop.store.savepoint();
        let mut results = Vec::new();
        let mut op_error = false;
        for (i, record) in op.payload.iter().enumerate() {
            let mut batch = Batch::default();
            // Pointers name the record's index in its operation.
            if op.delete {
                shop.delete_key(&mut batch, op.entity, record, &format!("/{i}"));
            } else {
                shop.write(
                    &mut batch,
                    op.entity,
                    record,
                    Mode::Upsert,
                    &format!("/{i}"),
                    None,
                );
            }
            op_error |= !batch.errors.is_empty();
            let entities = if op.delete {
                &batch.deleted
            } else {
                &batch.written
            };
            results.push(json!({
                "entities": Batch::object(entities),
                "errors": batch.errors.iter().map(ApiError::to_json).collect::<Vec<_>>(),
            }));
        }
        if op_error && !fail_on_error {
            shop.store.rollback_to(savepoint);
        }
        any_error |= op_error;
        data.insert(
            op.key.clone(),
            json!({ "result": results, "extensions": [] }),
        );
    }
    if any_error && fail_on_error {
        shop.store.rollback();
    } else {
        shop.store.commit();
    }
    let status = if any_error { 400 } else { 200 };
    (
        status,
        json!({ "success": !any_error, "data": data, "extensions": [] }),
    )
}
