//! The Sync API (`POST /api/_action/sync`, API-NOTES §5.2): request bodies, the two answer
//! shapes (6.4 per operation, 6.5+ all-or-nothing), and the splitting of a refused batch so
//! every good record lands and every bad one fails on its own, naming its field.
//!
//! - 6.5+: one operation holds the batch. A 400 writes nothing and points at the bad records
//!   (`/3/price`); they are taken out and the rest is sent again. Errors that point nowhere
//!   (a database constraint) make the batch split in halves until the bad record is alone.
//! - 6.4: every record is its own operation and `fail-on-error: false` gives each operation
//!   its own transaction, so the good records are committed by the first request and the
//!   answer lists the bad ones by operation.

use std::collections::BTreeMap;

use koppel_sdk::{ConnectorError, Result};
use serde_json::{Map, Value, json};

use crate::errors::{self, ApiError};

/// What a sync request did.
#[derive(Clone, Debug, PartialEq)]
pub enum Written {
    /// Everything was written.
    All,
    /// Nothing was written. Errors by the record's position in the request, and errors that
    /// name no record.
    Rejected {
        by_record: BTreeMap<usize, Vec<ApiError>>,
        unattributed: Vec<ApiError>,
    },
    /// 6.4, one operation per record: the listed records failed, all others were written.
    Partial {
        by_record: BTreeMap<usize, Vec<ApiError>>,
    },
}

/// An upsert of `payloads` into `entity`: one operation (6.5+), or one per record (6.4).
pub fn upsert_body(flat: bool, entity: &str, payloads: &[Value]) -> Value {
    if flat {
        return json!({
            format!("upsert-{entity}"): {"entity": entity, "action": "upsert", "payload": payloads}
        });
    }
    let ops: Map<String, Value> = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| {
            (
                i.to_string(),
                json!({"entity": entity, "action": "upsert", "payload": [payload]}),
            )
        })
        .collect();
    Value::Object(ops)
}

/// Deletes of `keys` (`{"id": …}`, or both foreign keys of a mapping row) from `entity`.
pub fn delete_body(entity: &str, keys: &[Value]) -> Value {
    json!({
        format!("delete-{entity}"): {"entity": entity, "action": "delete", "payload": keys}
    })
}

/// Reads a sync answer. `None`: the status is not Shopware refusing data (a 5xx, a 429...);
/// the caller turns it into a call error.
pub fn parse_answer(flat: bool, status: u16, body: &[u8], count: usize) -> Option<Written> {
    if (200..300).contains(&status) {
        if !flat && let Some(by_record) = per_operation_errors(body, count) {
            // A 6.4 answer may report record errors with a 200 when nothing failed hard.
            if !by_record.is_empty() {
                return Some(Written::Partial { by_record });
            }
        }
        return Some(Written::All);
    }
    let errors = errors::parse(body);
    if !errors::is_data_error(status, &errors) {
        return None;
    }
    if !flat && let Some(by_record) = per_operation_errors(body, count) {
        return Some(Written::Partial { by_record });
    }
    let mut by_record: BTreeMap<usize, Vec<ApiError>> = BTreeMap::new();
    let mut unattributed = Vec::new();
    for error in errors {
        match error.record_index().filter(|i| *i < count) {
            Some(i) => by_record.entry(i).or_default().push(error),
            None => unattributed.push(error),
        }
    }
    Some(Written::Rejected {
        by_record,
        unattributed,
    })
}

/// 6.4: `{"data": {"<op key>": {"result": [{"entities": …, "errors": […]}]}}}` with op keys
/// `"0"`, `"1"`, … (one record each). `None` if the body has no such data.
fn per_operation_errors(body: &[u8], count: usize) -> Option<BTreeMap<usize, Vec<ApiError>>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let data = value.get("data")?.as_object()?;
    let mut out = BTreeMap::new();
    let mut seen = 0;
    for (key, op) in data {
        let Ok(index) = key.parse::<usize>() else {
            continue;
        };
        let Some(results) = op.get("result").and_then(Value::as_array) else {
            continue;
        };
        seen += 1;
        let errors: Vec<ApiError> = results
            .iter()
            .filter_map(|r| r.get("errors").and_then(Value::as_array))
            .flatten()
            .map(ApiError::from_json)
            .collect();
        if !errors.is_empty() && index < count {
            out.insert(index, errors);
        }
    }
    (seen > 0).then_some(out)
}

/// The fate of one record of a batch.
#[derive(Clone, Debug)]
pub enum Fate {
    Written,
    /// Shopware refused this record.
    Refused(Vec<ApiError>),
    /// The request failed for a reason that is not this record's fault.
    Failed(ConnectorError),
}

/// Writes records `0..count` with `send`, which writes the records at the given positions
/// in one request. Refused records are taken out and the rest is sent again; a refusal that
/// names no record splits the batch in halves. Every record ends with a [`Fate`].
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
            Ok(Written::Partial { by_record }) => {
                for (position, &i) in group.iter().enumerate() {
                    fates[i] = Some(match by_record.get(&position) {
                        Some(errors) => Fate::Refused(errors.clone()),
                        None => Fate::Written,
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
    fn bodies_for_both_generations() {
        let payloads = vec![json!({"id": "a"}), json!({"id": "b"})];
        let flat = upsert_body(true, "product", &payloads);
        assert_eq!(
            flat["upsert-product"]["payload"].as_array().map(Vec::len),
            Some(2)
        );
        let old = upsert_body(false, "product", &payloads);
        assert_eq!(old["1"]["payload"][0]["id"], "b");
        assert_eq!(old["0"]["action"], "upsert");
        let delete = delete_body(
            "product_category",
            &[json!({"productId": "p", "categoryId": "c"})],
        );
        assert_eq!(delete["delete-product_category"]["action"], "delete");
    }

    #[test]
    fn answers_of_65_and_64() {
        let refused = json!({"errors": [
            {"status": "400", "code": "FRAMEWORK__WRITE_CONSTRAINT_VIOLATION", "detail": "No price", "source": {"pointer": "/2/price"}},
            {"status": "400", "code": "X", "detail": "?"}
        ]});
        let Some(Written::Rejected {
            by_record,
            unattributed,
        }) = parse_answer(true, 400, refused.to_string().as_bytes(), 3)
        else {
            panic!("a 400 is a refusal");
        };
        assert_eq!(by_record.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(unattributed.len(), 1);
        assert_eq!(
            parse_answer(true, 200, b"{\"data\":{}}", 3),
            Some(Written::All)
        );
        assert_eq!(parse_answer(true, 503, b"", 3), None);

        let partial = json!({"success": false, "data": {
            "0": {"result": [{"entities": {"product": ["a"]}, "errors": []}], "extensions": []},
            "1": {"result": [{"entities": {}, "errors": [{"status": "400", "code": "c1051bb4-d103-4f74-8988-acbcafc7fdc3", "detail": "blank", "source": {"pointer": "/0/taxId"}}]}], "extensions": []}
        }, "extensions": []});
        let Some(Written::Partial { by_record }) =
            parse_answer(false, 400, partial.to_string().as_bytes(), 2)
        else {
            panic!("6.4 answers per operation");
        };
        assert_eq!(by_record.keys().copied().collect::<Vec<_>>(), vec![1]);
        assert_eq!(by_record[&1][0].field_path().as_deref(), Some("taxId"));
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
                        vec![error(Some(&format!("/{position}/price")))],
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
        let fates = write_split(8, &mut |group| {
            requests += 1;
            if group.contains(&5) {
                Ok(Written::Rejected {
                    by_record: BTreeMap::new(),
                    unattributed: vec![error(None)],
                })
            } else {
                Ok(Written::All)
            }
        });
        assert!(matches!(fates[5], Fate::Refused(_)));
        assert_eq!(
            fates.iter().filter(|f| matches!(f, Fate::Written)).count(),
            7
        );
        assert!(requests <= 7, "bisection stays logarithmic-ish: {requests}");
    }

    #[test]
    fn a_failed_request_fails_its_records_retryably() {
        let fates = write_split(2, &mut |_| Err(ConnectorError::throttled("busy")));
        assert!(
            fates
                .iter()
                .all(|f| matches!(f, Fate::Failed(e) if e.retryable))
        );
    }
}
