//! `POST /api/_action/sync`: 6.5+ runs every operation in one transaction and answers
//! `{data, notFound, deleted}` keyed by entity, or 400 with every record's errors and nothing
//! written; 6.4 answers per operation key with per-record results and a `success` flag,
//! honouring `fail-on-error` and `single-operation`.
//!
//! As Shopware's own code does it (`Api/Controller/SyncController.php`,
//! `Api/Sync/SyncService.php`, `DataAbstractionLayer/Write/EntityWriter.php`):
//! - operations run in the order of the body (a PHP array keeps insertion order), each
//!   keyed by its body key or its `key` member;
//! - 6.5+ error pointers carry the operation key: `/<key>/<record>/<field>`;
//! - 6.4 keeps each operation's result under its key in a PHP array, so keys `"0".."n-1"`
//!   in order come back as a JSON **list**, other keys as an object; the status is 400 only
//!   when `fail-on-error` is on and something failed, so with `fail-on-error: false` a sync
//!   with refused records answers **200** with `success: false`;
//! - 6.4 writes (and indexes) each record of an operation on its own.

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
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

impl SyncHeaders {
    /// Whether written records are indexed in the request (no queue, not disabled).
    fn indexes_now(&self) -> bool {
        !matches!(
            self.indexing.as_deref(),
            Some("use-queue-indexing" | "disable-indexing")
        )
    }
}

/// What a sync request did: its status and body, and how many times the shop indexed
/// written data synchronously (what makes a 6.4 sync slow without queue indexing).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub indexed: usize,
}

impl Answer {
    fn new(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body,
            indexed: 0,
        }
    }
}

struct Operation {
    key: String,
    entity: usize,
    delete: bool,
    payload: Vec<Value>,
    criteria: Option<Vec<Value>>,
}

/// The body's top-level entries in the order they were sent (`serde_json::Map` would sort
/// them): list positions as keys for a JSON list; for an object, a repeated key keeps its
/// first place and its last value, as in a PHP array.
pub fn parse_entries(body: &[u8]) -> Result<Vec<(String, Value)>, ApiError> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Option<Vec<(String, Value)>>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list or an object of sync operations")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(value) = seq.next_element::<Value>()? {
                out.push((out.len().to_string(), value));
            }
            Ok(Some(out))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: Vec<(String, Value)> = Vec::new();
            while let Some((key, value)) = map.next_entry::<String, Value>()? {
                match out.iter_mut().find(|(k, _)| php_key(k) == php_key(&key)) {
                    Some(entry) => entry.1 = value,
                    None => out.push((key, value)),
                }
            }
            Ok(Some(out))
        }

        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let entries = (&mut deserializer)
        .deserialize_any(Entries)
        .and_then(|entries| deserializer.end().map(|()| entries))
        .map_err(|_| ApiError::malformed_json())?;
    entries.ok_or_else(|| {
        ApiError::invalid_sync("The sync payload must be an array or an object of operations.")
    })
}

/// A PHP array key: a decimal integer string becomes an integer key, any other a string key.
#[derive(Debug, PartialEq)]
enum PhpKey<'a> {
    Int(i64),
    Str(&'a str),
}

fn php_key(key: &str) -> PhpKey<'_> {
    let digits = key.strip_prefix('-').unwrap_or(key);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && key != "-0";
    match key.parse::<i64>() {
        Ok(n) if canonical => PhpKey::Int(n),
        _ => PhpKey::Str(key),
    }
}

/// `json_encode` of a PHP array with these keys and values: a list when the keys are
/// 0, 1, 2, … in order, else an object.
pub fn php_array(entries: Vec<(String, Value)>) -> Value {
    let is_list = entries
        .iter()
        .enumerate()
        .all(|(i, (k, _))| php_key(k) == PhpKey::Int(i as i64));
    if is_list {
        return Value::Array(entries.into_iter().map(|(_, v)| v).collect());
    }
    Value::Object(entries.into_iter().collect())
}

fn operations(shop: &Shop, entries: Vec<(String, Value)>) -> Result<Vec<Operation>, ApiError> {
    let mut out = Vec::new();
    for (key, op) in entries {
        let key = match op.get("key") {
            Some(Value::String(k)) => k.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => key,
        };
        let op = &op;
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

/// Runs one operation into `batch`; `prefix` goes before each record's index in pointers
/// (`/<key>` from 6.5 on, where `EntityWriter::sync` sets the path `/<key>/<index>`).
fn run_operation(shop: &mut Shop, batch: &mut Batch, op: &Operation, prefix: &str) {
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
        let pointer = format!("{prefix}/{i}");
        if op.delete {
            shop.delete_key(batch, op.entity, record, &pointer);
        } else {
            shop.write(batch, op.entity, record, Mode::Upsert, &pointer, None);
        }
    }
}

/// The errors a failed all-or-nothing write answers with: every validation error (the DAL
/// validates the whole write before any SQL runs); only without them the first error raised
/// while the write runs (a database constraint, a missing privilege), which aborts it.
pub fn failure(errors: Vec<ApiError>) -> ApiErrors {
    let validation: Vec<ApiError> = errors.iter().filter(|e| !e.execute).cloned().collect();
    match validation.is_empty() {
        true => ApiErrors(errors.into_iter().take(1).collect()),
        false => ApiErrors(validation),
    }
}

/// Runs a sync request (its top-level entries, see [`parse_entries`]).
pub fn run(shop: &mut Shop, entries: Vec<(String, Value)>, headers: &SyncHeaders) -> Answer {
    let ops = match operations(shop, entries) {
        Ok(ops) => ops,
        Err(error) => {
            let errors = ApiErrors::from(error);
            return Answer::new(errors.status(), errors.body());
        }
    };
    shop.indexing_disabled = headers.indexing.as_deref() == Some("disable-indexing");
    let mut answer = if shop.version.sync_resolvers() {
        run_65(shop, &ops)
    } else if headers.single_operation {
        run_64_single(shop, &ops)
    } else {
        run_64(shop, &ops, headers.fail_on_error)
    };
    shop.indexing_disabled = false;
    if !headers.indexes_now() {
        answer.indexed = 0;
    }
    answer
}

fn run_65(shop: &mut Shop, ops: &[Operation]) -> Answer {
    shop.store.begin();
    let mut batch = Batch {
        resolvers: true,
        ..Batch::default()
    };
    for op in ops {
        run_operation(shop, &mut batch, op, &format!("/{}", op.key));
    }
    if !batch.errors.is_empty() {
        shop.store.rollback();
        let errors = failure(batch.errors);
        return Answer::new(errors.status(), errors.body());
    }
    shop.store.commit();
    let mut answer = Answer::new(
        200,
        json!({
            "data": Batch::object(&batch.written),
            "notFound": Batch::object(&batch.not_found),
            "deleted": Batch::object(&batch.deleted),
        }),
    );
    // One write, one indexing pass.
    answer.indexed = usize::from(!batch.written.is_empty() || !batch.deleted.is_empty());
    answer
}

fn run_64_single(shop: &mut Shop, ops: &[Operation]) -> Answer {
    shop.store.begin();
    let mut batch = Batch::default();
    for op in ops {
        run_operation(shop, &mut batch, op, &format!("/{}", op.key));
    }
    if !batch.errors.is_empty() {
        shop.store.rollback();
        let errors = failure(batch.errors);
        return Answer::new(errors.status(), errors.body());
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
    let mut answer = Answer::new(
        200,
        json!({ "success": true, "data": data, "extensions": [] }),
    );
    answer.indexed = usize::from(!batch.written.is_empty() || !batch.deleted.is_empty());
    answer
}

/// 6.4 without `single-operation` (`SyncService::sync`): every record is written by its own
/// repository call (its own validation, events and indexing); with `fail-on-error: false`
/// each operation has its own transaction, rolled back whole when one of its records fails.
fn run_64(shop: &mut Shop, ops: &[Operation], fail_on_error: bool) -> Answer {
    shop.store.begin();
    let mut any_error = false;
    let mut indexed = 0;
    let mut data: Vec<(String, Value)> = Vec::new();
    for op in ops {
        let savepoint = shop.store.savepoint();
        let mut results = Vec::new();
        let mut op_error = false;
        let mut op_indexed = 0;
        for (i, record) in op.payload.iter().enumerate() {
            let mut batch = Batch::default();
            // `getWriteError` rewrites the record's `/0` to its index in the operation.
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
            let errors = match batch.errors.is_empty() {
                true => Vec::new(),
                false => failure(std::mem::take(&mut batch.errors)).0,
            };
            op_error |= !errors.is_empty();
            op_indexed += usize::from(errors.is_empty());
            let entities = if op.delete {
                &batch.deleted
            } else {
                &batch.written
            };
            results.push(json!({
                "entities": php_entities(entities),
                "errors": errors.iter().map(ApiError::to_json).collect::<Vec<_>>(),
            }));
        }
        if op_error && !fail_on_error {
            shop.store.rollback_to(savepoint);
        }
        any_error |= op_error;
        indexed += op_indexed;
        let result = json!({ "result": results, "extensions": [] });
        match data
            .iter_mut()
            .find(|(k, _)| php_key(k) == php_key(&op.key))
        {
            Some(entry) => entry.1 = result,
            None => data.push((op.key.clone(), result)),
        }
    }
    if any_error && fail_on_error {
        shop.store.rollback();
    } else {
        shop.store.commit();
    }
    // `SyncController`: 400 only when fail-on-error is on and the sync did not succeed.
    let status = if any_error && fail_on_error { 400 } else { 200 };
    let mut answer = Answer::new(
        status,
        json!({
            "success": !any_error,
            "data": php_array(data),
            "deleted": [],
            "notFound": [],
            "extensions": [],
        }),
    );
    answer.indexed = indexed;
    answer
}

/// A record's `entities` (`getWrittenEntitiesByEvent`): `[]` when none, as PHP encodes an
/// empty array (nothing in the file types this member).
fn php_entities(list: &[(String, Vec<Value>)]) -> Value {
    match list.is_empty() {
        true => json!([]),
        false => Batch::object(list),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_keeps_body_order_and_lists_sequential_keys() {
        let entries = parse_entries(br#"{"0": 1, "2": 2, "1": 3, "2": 4}"#).expect("object");
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            vec!["0", "2", "1"],
            "order kept, a repeat keeps its place"
        );
        assert_eq!(entries[1].1, json!(4), "and its last value");
        assert_eq!(
            php_array(vec![("0".into(), json!("a")), ("1".into(), json!("b"))]),
            json!(["a", "b"])
        );
        assert_eq!(
            php_array(vec![("1".into(), json!("a")), ("0".into(), json!("b"))]),
            json!({"1": "a", "0": "b"})
        );
        assert_eq!(
            php_array(vec![("01".into(), json!("a"))]),
            json!({"01": "a"}),
            "01 is no integer key"
        );
        let list = parse_entries(br#"[{"a": 1}, {"b": 2}]"#).expect("list");
        assert_eq!(list[1].0, "1");
        assert!(parse_entries(b"3").is_err());
        assert!(parse_entries(b"{").is_err());
    }
}
