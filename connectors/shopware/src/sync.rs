//! The Sync API (`POST /api/_action/sync`): request bodies, the answers of both generations,
//! and the splitting of a refused batch so every good record lands and every bad one fails on
//! its own, naming its field. Checked against Shopware's own code
//! (`Api/Controller/SyncController.php`, `Api/Sync/SyncService.php`,
//! `DataAbstractionLayer/Write/EntityWriter.php`):
//!
//! - The body is a JSON list of operations, each with its `key`: Shopware runs them in body
//!   order (a JSON object would travel with its keys sorted as text, `0, 1, 10, 11, …, 2`,
//!   and put a child category before its parent).
//! - 6.5+ writes a sync in one transaction. A 400 writes nothing; validation errors point at
//!   the record as `/<operation key>/<index>/<field>`; they are taken out and the rest is
//!   sent again. Errors raised while writing (a duplicate product number, a missing
//!   privilege) point nowhere and come alone: the batch splits in halves until the bad
//!   record is alone.
//! - 6.4: every record is its own operation and `fail-on-error: false` gives each operation
//!   its own transaction, so the good records are committed by the first request. The
//!   answer keeps each operation's result under its key in a PHP array: keys `"0".."n-1"` in
//!   order come back as a JSON **list**, others as an object, and the status is 200 even
//!   when records failed (`success: false`). A record counts as written only when its
//!   operation's result says so.

use std::collections::BTreeMap;

use koppel_sdk::{ConnectorError, Result, log};
use serde_json::{Value, json};

use crate::api::{Call, Client, Version};
use crate::errors::{self, ApiError};

/// How a shop's Sync API writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// 6.4: one operation per record, each in its own transaction, answered per operation.
    PerRecord,
    /// 6.5+: one transaction, all or nothing.
    Transaction,
}

impl Mode {
    pub fn of(version: Version) -> Mode {
        if version.flat_sync() {
            Mode::Transaction
        } else {
            Mode::PerRecord
        }
    }
}

/// How every sync is sent.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub version: Version,
    /// `indexing-behavior: use-queue-indexing`.
    pub queue_indexing: bool,
}

impl Settings {
    pub fn mode(&self) -> Mode {
        Mode::of(self.version)
    }

    /// The request, with the headers every sync carries: `fail-on-error: false` on 6.4 (each
    /// operation in its own transaction; 6.5+ ignores it), queue indexing when asked, and no
    /// flows fired (no mails about products).
    pub fn call(&self, body: &Value, what: impl Into<String>) -> Call {
        let mut call = Call::post("/_action/sync", body, what)
            .retry_safe(true)
            .header("sw-skip-trigger-flow", "1");
        if self.mode() == Mode::PerRecord {
            call = call.header("fail-on-error", "false");
        }
        if self.queue_indexing {
            call = call.header("indexing-behavior", "use-queue-indexing");
        }
        call
    }
}

/// One operation of a sync request.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    pub key: String,
    pub entity: String,
    /// `upsert` or `delete`.
    pub action: &'static str,
    pub payload: Vec<Value>,
    /// For each payload item, the record of the request it belongs to.
    pub owners: Vec<usize>,
}

impl Op {
    pub fn new(key: impl Into<String>, entity: &str, action: &'static str) -> Op {
        Op {
            key: key.into(),
            entity: entity.to_owned(),
            action,
            payload: Vec::new(),
            owners: Vec::new(),
        }
    }

    pub fn push(&mut self, owner: usize, item: Value) {
        self.payload.push(item);
        self.owners.push(owner);
    }
}

/// The operations that upsert `payloads` (record `i` is `payloads[i]`): one per record on
/// 6.4, keyed by position, one for all from 6.5 on.
pub fn upserts(mode: Mode, entity: &str, payloads: &[Value]) -> Vec<Op> {
    match mode {
        Mode::PerRecord => payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| {
                let mut op = Op::new(i.to_string(), entity, "upsert");
                op.push(i, payload.clone());
                op
            })
            .collect(),
        Mode::Transaction => {
            let mut op = Op::new(format!("upsert-{entity}"), entity, "upsert");
            for (i, payload) in payloads.iter().enumerate() {
                op.push(i, payload.clone());
            }
            vec![op]
        }
    }
}

/// The request body: a JSON list of the operations, in order, each with its key.
pub fn body(ops: &[Op]) -> Value {
    Value::Array(
        ops.iter()
            .map(|op| {
                json!({"key": op.key, "entity": op.entity, "action": op.action, "payload": op.payload})
            })
            .collect(),
    )
}

/// What the shop said a record's fate was (6.4).
pub type Word = Option<std::result::Result<(), Vec<ApiError>>>;

/// What a sync request did.
#[derive(Clone, Debug, PartialEq)]
pub enum Written {
    /// Everything was written.
    All,
    /// Nothing was written. Errors by the record they point at, and errors that point at none.
    Rejected {
        by_record: BTreeMap<usize, Vec<ApiError>>,
        unattributed: Vec<ApiError>,
    },
    /// 6.4: per record, the shop's word: written, refused, or nothing said.
    PerRecord(Vec<Word>),
}

/// Reads a sync answer about `records` records sent as `ops`. `None`: the status is not
/// Shopware refusing data (a 5xx, a 429, a 403…); the caller turns it into a call error.
pub fn parse_answer(
    mode: Mode,
    status: u16,
    body: &[u8],
    ops: &[Op],
    records: usize,
) -> Option<Written> {
    if mode == Mode::PerRecord
        && let Some((success, words)) = per_operation(body, ops, records)
    {
        // With fail-on-error on (a server that ignored the header) a failure rolls back all.
        if !(200..300).contains(&status) && !success {
            let mut by_record = BTreeMap::new();
            for (i, word) in words.into_iter().enumerate() {
                if let Some(Err(errors)) = word {
                    by_record.insert(i, errors);
                }
            }
            return Some(Written::Rejected {
                by_record,
                unattributed: Vec::new(),
            });
        }
        return Some(Written::PerRecord(words));
    }
    if (200..300).contains(&status) {
        return match mode {
            Mode::Transaction => Some(Written::All),
            // A 2xx without per-operation results says nothing about any record.
            Mode::PerRecord => Some(Written::PerRecord(vec![None; records])),
        };
    }
    let errors = errors::parse(body);
    if !errors::is_data_error(status, &errors) {
        return None;
    }
    let mut by_record: BTreeMap<usize, Vec<ApiError>> = BTreeMap::new();
    let mut unattributed = Vec::new();
    for error in errors {
        match owner_of(&error, ops).filter(|i| *i < records) {
            Some(i) => by_record.entry(i).or_default().push(error),
            None => unattributed.push(error),
        }
    }
    Some(Written::Rejected {
        by_record,
        unattributed,
    })
}

/// The record a 6.5+ error points at: `/<op key>/<index>/…` (a pointer without the key, as
/// single-operation 6.4 writes it, is read as the only operation's).
fn owner_of(error: &ApiError, ops: &[Op]) -> Option<usize> {
    let pointer = error.pointer.as_deref()?;
    let segments: Vec<&str> = pointer.split('/').filter(|s| !s.is_empty()).collect();
    let (op, index) = match ops
        .iter()
        .find(|op| segments.first() == Some(&op.key.as_str()))
    {
        Some(op) => (op, segments.get(1)?.parse::<usize>().ok()?),
        None if ops.len() == 1 => (&ops[0], segments.first()?.parse::<usize>().ok()?),
        None => return None,
    };
    op.owners.get(index).copied()
}

/// 6.4: `{"success": bool, "data": <list or object of {"result": [{"entities", "errors"}…]}>}`,
/// one entry per operation key. `None` if the body has no such data. A record's word is
/// "written" only when every operation holding it answered without errors; an operation with
/// an error was rolled back whole.
fn per_operation(body: &[u8], ops: &[Op], records: usize) -> Option<(bool, Vec<Word>)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let data = value.get("data")?;
    if !data.is_array() && !data.is_object() {
        return None;
    }
    let success = value
        .get("success")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut words: Vec<Word> = vec![Some(Ok(())); records];
    let mut said = vec![false; records];
    for (position, op) in ops.iter().enumerate() {
        // A list holds the operations in order; an object by key.
        let entry = match data {
            Value::Array(list) => list.get(position),
            _ => data.get(&op.key),
        };
        let results = entry
            .and_then(|e| e.get("result"))
            .and_then(Value::as_array)
            .filter(|results| results.len() == op.payload.len());
        let Some(results) = results else {
            for &owner in &op.owners {
                if owner < records && !matches!(words[owner], Some(Err(_))) {
                    words[owner] = None;
                }
            }
            continue;
        };
        let errors: Vec<ApiError> = results
            .iter()
            .filter_map(|r| r.get("errors").and_then(Value::as_array))
            .flatten()
            .map(ApiError::from_json)
            .collect();
        for &owner in &op.owners {
            if owner >= records {
                continue;
            }
            said[owner] = true;
            if !errors.is_empty() {
                match &mut words[owner] {
                    Some(Err(list)) => list.extend(errors.iter().cloned()),
                    word => *word = Some(Err(errors.clone())),
                }
            }
        }
    }
    for (word, said) in words.iter_mut().zip(said) {
        if !said && matches!(word, Some(Ok(()))) {
            *word = None;
        }
    }
    Some((success, words))
}

/// The fate of one record of a batch.
#[derive(Clone, Debug)]
pub enum Fate {
    Written,
    /// Shopware refused this record.
    Refused(Vec<ApiError>),
    /// The request failed for a reason that is not this record's fault, or Shopware's answer
    /// did not say what became of the record.
    Failed(ConnectorError),
}

fn unanswered() -> ConnectorError {
    ConnectorError::protocol(
        "Shopware's sync answer did not say whether this record was written; it is sent again \
         on the next run",
    )
    .retryable(true)
}

/// Writes records `0..count` with `send`, which writes the records at the given positions
/// in one request. Refused records are taken out and the rest is sent again; a refusal that
/// names no record splits the batch in halves (the left half first, so order is kept).
/// Every record ends with a [`Fate`].
pub fn write_split(count: usize, send: &mut dyn FnMut(&[usize]) -> Result<Written>) -> Vec<Fate> {
    let mut fates: Vec<Option<Fate>> = vec![None; count];
    let mut queue: Vec<Vec<usize>> = Vec::new();
    if count > 0 {
        queue.push((0..count).collect());
    }
    while let Some(group) = queue.pop() {
        match send(&group) {
            Err(error) => {
                for &i in &group {
                    fates[i] = Some(Fate::Failed(error.clone()));
                }
            }
            Ok(Written::All) => {
                for &i in &group {
                    fates[i] = Some(Fate::Written);
                }
            }
            Ok(Written::PerRecord(words)) => {
                for (position, &i) in group.iter().enumerate() {
                    fates[i] = Some(match words.get(position).cloned().flatten() {
                        Some(Ok(())) => Fate::Written,
                        Some(Err(errors)) => Fate::Refused(errors),
                        None => Fate::Failed(unanswered()),
                    });
                }
            }
            Ok(Written::Rejected {
                by_record,
                unattributed,
            }) => {
                if by_record.is_empty() {
                    if group.len() == 1 {
                        fates[group[0]] = Some(Fate::Refused(unattributed));
                    } else {
                        let (left, right) = group.split_at(group.len() / 2);
                        queue.push(right.to_vec());
                        queue.push(left.to_vec());
                    }
                    continue;
                }
                let mut rest = Vec::new();
                for (position, &i) in group.iter().enumerate() {
                    match by_record.get(&position) {
                        Some(errors) => fates[i] = Some(Fate::Refused(errors.clone())),
                        None => rest.push(i),
                    }
                }
                if !rest.is_empty() {
                    queue.push(rest);
                }
            }
        }
    }
    fates
        .into_iter()
        .map(|f| {
            f.unwrap_or_else(|| {
                Fate::Failed(ConnectorError::internal(
                    "a record of the batch was not sent",
                ))
            })
        })
        .collect()
}

/// Sends `ops` about `records` records in one request and reads the answer.
pub fn send(
    client: &Client,
    settings: &Settings,
    ops: &[Op],
    records: usize,
    what: &str,
) -> Result<Written> {
    let call = settings.call(&body(ops), what);
    let response = client.send(&call)?;
    let written = parse_answer(
        settings.mode(),
        response.status(),
        response.bytes(),
        ops,
        records,
    )
    .ok_or_else(|| errors::for_status(response.status(), response.bytes(), what))?;
    if !matches!(&written, Written::All)
        && !matches!(&written, Written::PerRecord(words) if words.iter().all(|w| matches!(w, Some(Ok(())))))
    {
        log::info(
            "Shopware did not write every record of a sync.",
            &[("what", what), ("records", &records.to_string())],
        );
    }
    Ok(written)
}

/// Upserts `payloads` into `entity` (one record each) and splits around refused records.
pub fn upsert(
    client: &Client,
    settings: &Settings,
    entity: &str,
    payloads: &[Value],
    what: &str,
) -> Vec<Fate> {
    write_split(payloads.len(), &mut |group| {
        let chosen: Vec<Value> = group.iter().map(|&i| payloads[i].clone()).collect();
        let ops = upserts(settings.mode(), entity, &chosen);
        send(client, settings, &ops, group.len(), what)
    })
}

/// The error a record's fate stands for (`None`: written).
pub fn fate_error(fate: &Fate, what: &str) -> Option<ConnectorError> {
    match fate {
        Fate::Written => None,
        Fate::Refused(errors) => Some(ConnectorError::rejected(format!(
            "Shopware refused {what}: {}",
            errors::describe_all(errors)
        ))),
        Fate::Failed(error) => Some(error.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(pointer: Option<&str>) -> ApiError {
        ApiError {
            status: 400,
            code: "X".into(),
            detail: "bad".into(),
            pointer: pointer.map(str::to_owned),
            ..ApiError::default()
        }
    }

    #[test]
    fn bodies_keep_their_order_and_keys() {
        let payloads: Vec<Value> = (0..12).map(|i| json!({"id": i})).collect();
        let per_record = body(&upserts(Mode::PerRecord, "category", &payloads));
        let list = per_record.as_array().expect("a list");
        assert_eq!(list.len(), 12);
        assert_eq!(list[2]["key"], "2", "0, 1, 2, … not 0, 1, 10");
        assert_eq!(list[11]["payload"][0]["id"], 11);
        let flat = body(&upserts(Mode::Transaction, "product", &payloads[..2]));
        assert_eq!(flat[0]["key"], "upsert-product");
        assert_eq!(flat[0]["payload"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn answers_of_65_point_at_records_by_operation_key() {
        let ops = upserts(
            Mode::Transaction,
            "product",
            &[json!({}), json!({}), json!({})],
        );
        let refused = json!({"errors": [
            {"status": "400", "code": "FRAMEWORK__WRITE_CONSTRAINT_VIOLATION", "detail": "No price", "source": {"pointer": "/upsert-product/2/price"}},
            {"status": "400", "code": "CONTENT__DUPLICATE_PRODUCT_NUMBER", "detail": "Product with number \"A\" already exists."}
        ]});
        let Some(Written::Rejected {
            by_record,
            unattributed,
        }) = parse_answer(
            Mode::Transaction,
            400,
            refused.to_string().as_bytes(),
            &ops,
            3,
        )
        else {
            panic!("a 400 is a refusal");
        };
        assert_eq!(by_record.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(unattributed.len(), 1);
        assert_eq!(
            parse_answer(Mode::Transaction, 200, b"{\"data\":{}}", &ops, 3),
            Some(Written::All)
        );
        assert_eq!(parse_answer(Mode::Transaction, 503, b"", &ops, 3), None);
    }

    #[test]
    fn answers_of_64_as_a_list_or_an_object_and_never_written_without_word() {
        let ops = upserts(
            Mode::PerRecord,
            "product",
            &[json!({}), json!({}), json!({})],
        );
        let ok = json!({"entities": {"product": ["a"]}, "errors": []});
        let bad = json!({"entities": [], "errors": [{"status": "400", "code": "c1051bb4-d103-4f74-8988-acbcafc7fdc3", "detail": "blank", "source": {"pointer": "/0/taxId"}}]});
        // Keys 0..n-1 in order: PHP writes a list. 200 with fail-on-error: false.
        let list = json!({"success": false, "data": [
            {"result": [ok], "extensions": []},
            {"result": [bad], "extensions": []},
            {"result": [ok], "extensions": []},
        ]});
        let Some(Written::PerRecord(words)) =
            parse_answer(Mode::PerRecord, 200, list.to_string().as_bytes(), &ops, 3)
        else {
            panic!("6.4 answers per operation");
        };
        assert_eq!(words[0], Some(Ok(())));
        let Some(Err(errors)) = &words[1] else {
            panic!("refused: {words:?}");
        };
        assert_eq!(errors[0].field_path().as_deref(), Some("taxId"));

        // An object by key; an operation the answer leaves out has no word.
        let object =
            json!({"success": true, "data": {"0": {"result": [ok]}, "2": {"result": [ok]}}});
        let Some(Written::PerRecord(words)) =
            parse_answer(Mode::PerRecord, 200, object.to_string().as_bytes(), &ops, 3)
        else {
            panic!("per operation");
        };
        assert_eq!(words, vec![Some(Ok(())), None, Some(Ok(()))]);

        // A 2xx without data says nothing; a 400 that rolled back writes nothing.
        assert_eq!(
            parse_answer(Mode::PerRecord, 200, b"", &ops, 3),
            Some(Written::PerRecord(vec![None, None, None]))
        );
        let rolled_back = json!({"success": false, "data": [{"result": [ok]}, {"result": [bad]}, {"result": [ok]}]});
        assert!(matches!(
            parse_answer(
                Mode::PerRecord,
                400,
                rolled_back.to_string().as_bytes(),
                &ops,
                3
            ),
            Some(Written::Rejected { .. })
        ));
    }

    #[test]
    fn a_failed_operation_fails_every_record_it_holds() {
        let mut op = Op::new("0", "product_category", "delete");
        op.push(0, json!({"productId": "p", "categoryId": "a"}));
        op.push(0, json!({"productId": "p", "categoryId": "b"}));
        let mut other = Op::new("1", "product_category", "delete");
        other.push(1, json!({"productId": "q", "categoryId": "a"}));
        let answer = json!({"success": false, "data": [
            {"result": [{"entities": [], "errors": []}, {"entities": [], "errors": [{"status": "403", "code": "FRAMEWORK__MISSING_PRIVILEGE_ERROR", "detail": "x"}]}]},
            {"result": [{"entities": {"product_category": [{}]}, "errors": []}]},
        ]});
        let Some(Written::PerRecord(words)) = parse_answer(
            Mode::PerRecord,
            200,
            answer.to_string().as_bytes(),
            &[op, other],
            2,
        ) else {
            panic!("per operation");
        };
        assert!(
            matches!(&words[0], Some(Err(e)) if e[0].code == "FRAMEWORK__MISSING_PRIVILEGE_ERROR")
        );
        assert_eq!(words[1], Some(Ok(())));
    }

    #[test]
    fn a_bad_record_is_taken_out_and_the_rest_resent() {
        // Record 3 of 6 is bad; Shopware points at it by its position in each request.
        let mut requests: Vec<Vec<usize>> = Vec::new();
        let fates = write_split(6, &mut |group| {
            requests.push(group.to_vec());
            match group.iter().position(|&i| i == 3) {
                Some(position) => Ok(Written::Rejected {
                    by_record: BTreeMap::from([(
                        position,
                        vec![error(Some(&format!("/upsert-product/{position}/price")))],
                    )]),
                    unattributed: vec![],
                }),
                None => Ok(Written::All),
            }
        });
        assert_eq!(requests, vec![vec![0, 1, 2, 3, 4, 5], vec![0, 1, 2, 4, 5]]);
        assert!(matches!(fates[3], Fate::Refused(_)));
        assert_eq!(
            fates.iter().filter(|f| matches!(f, Fate::Written)).count(),
            5
        );
    }

    #[test]
    fn a_refusal_without_pointer_is_bisected_to_the_culprit() {
        let mut requests = 0;
        let fates = write_split(250, &mut |group| {
            requests += 1;
            if group.contains(&137) {
                Ok(Written::Rejected {
                    by_record: BTreeMap::new(),
                    unattributed: vec![error(None)],
                })
            } else {
                Ok(Written::All)
            }
        });
        assert!(matches!(fates[137], Fate::Refused(_)));
        assert_eq!(
            fates.iter().filter(|f| matches!(f, Fate::Written)).count(),
            249
        );
        assert!(requests <= 17, "two requests per halving: {requests}");
    }

    #[test]
    fn a_record_without_word_fails_retryably() {
        let fates = write_split(2, &mut |_| Ok(Written::PerRecord(vec![Some(Ok(())), None])));
        assert!(matches!(fates[0], Fate::Written));
        assert!(matches!(&fates[1], Fate::Failed(e) if e.retryable));
        let fates = write_split(2, &mut |_| Err(ConnectorError::throttled("busy")));
        assert!(
            fates
                .iter()
                .all(|f| matches!(f, Fate::Failed(e) if e.retryable))
        );
    }
}
