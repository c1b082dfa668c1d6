//! Section 4 of the contract: `write` — idempotent writes with a bad record among good ones.

use super::*;
use crate::model::{Customer, Product};

impl Suite {
    pub(super) async fn write_stream(
        &mut self,
        stream: &str,
        kind: RecordKind,
        records: Vec<Record>,
    ) {
        let label = format!("write {stream}");
        let records: Vec<Record> = records.into_iter().take(self.options.write_batch).collect();
        let options = WriteOptions {
            create_only: vec![],
            settings: vec![],
        };
        let Some(mut session) = self.session(&label).await else {
            return;
        };
        // First write: one outcome per record, in order; none failed.
        let first = self
            .call(&label, session.write(stream, &records, &options))
            .await;
        let first = match first {
            Ok(outcomes) => outcomes,
            Err(error) => {
                self.add(
                    "4.1",
                    format!("{label}: one outcome per record"),
                    Status::Fail,
                    error.to_string(),
                );
                return;
            }
        };
        self.report.peak_memory_bytes = self.report.peak_memory_bytes.max(session.peak_memory());
        let mut problems = Vec::new();
        for (record, outcome) in records.iter().zip(&first) {
            let key = key_of(record);
            if outcome.key != key {
                problems.push(format!("the outcome for {key} says {}", outcome.key));
            }
            if let Some(m) = &outcome.message {
                self.said.push(m.clone());
            }
            if outcome.status == OutcomeStatus::Failed {
                problems.push(format!(
                    "{key} failed: {}",
                    outcome.message.clone().unwrap_or_default()
                ));
            }
        }
        if let Some((record, _)) = records
            .iter()
            .zip(&first)
            .find(|(_, o)| o.status != OutcomeStatus::Failed)
        {
            self.written.insert(stream.to_owned(), record.clone());
        }
        let tally = tally(&first.iter().map(|o| o.status).collect::<Vec<_>>());
        self.pass_or_fail(
            "4.1",
            format!("{label}: one outcome per record, in order"),
            problems,
            format!("{} records: {tally}", records.len()),
        );
        // Second write of the same records: nothing changes.
        let second = self
            .call(
                &format!("{label} (again)"),
                session.write(stream, &records, &options),
            )
            .await;
        match second {
            Ok(outcomes) => {
                let problems: Vec<String> = records
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.status != OutcomeStatus::Unchanged)
                    .map(|(r, o)| format!("{} was {} the second time", key_of(r), o.status.name()))
                    .collect();
                self.pass_or_fail(
                    "4.2",
                    format!("{label}: the same records twice are unchanged"),
                    problems,
                    format!("{} unchanged", outcomes.len()),
                );
            }
            Err(error) => self.add(
                "4.2",
                format!("{label}: the same records twice are unchanged"),
                Status::Fail,
                error.to_string(),
            ),
        }
        self.create_only_check(&label, &mut session, stream, &records, &options)
            .await;
        // A bad record among good ones fails alone.
        let mut batch: Vec<Record> = records.iter().take(2).cloned().collect();
        let at = batch.len().min(1);
        batch.insert(at, bad_record(kind));
        let name = format!("{label}: a bad record fails alone");
        match self
            .call(
                &format!("{label} (a bad record)"),
                session.write(stream, &batch, &options),
            )
            .await
        {
            Ok(outcomes) => {
                let mut problems = Vec::new();
                for (i, (record, outcome)) in batch.iter().zip(&outcomes).enumerate() {
                    if let Some(m) = &outcome.message {
                        self.said.push(m.clone());
                    }
                    let key = key_of(record);
                    if i == at && outcome.status != OutcomeStatus::Failed {
                        problems.push(format!(
                            "the {} record was {}",
                            kind_of(record).name(),
                            outcome.status.name()
                        ));
                    } else if i == at
                        && outcome
                            .message
                            .as_deref()
                            .is_none_or(|m| m.trim().is_empty())
                    {
                        problems.push("the failed outcome has no message".to_owned());
                    } else if i != at && outcome.status == OutcomeStatus::Failed {
                        problems.push(format!(
                            "{key} failed with it: {}",
                            outcome.message.clone().unwrap_or_default()
                        ));
                    }
                }
                let message = outcomes
                    .get(at)
                    .and_then(|o| o.message.clone())
                    .unwrap_or_default();
                self.pass_or_fail("4.3", name, problems, format!("failed: {message}"));
            }
            Err(error) => self.add(
                "4.3",
                name,
                Status::Fail,
                format!("the whole call failed: {error}"),
            ),
        }
        self.report.peak_memory_bytes = self.report.peak_memory_bytes.max(session.peak_memory());
    }

    /// 4.7: the same records with one create-only field changed: the system keeps its own
    /// value, so nothing is written. Then what was there is written back, in case it was not.
    async fn create_only_check(
        &mut self,
        label: &str,
        session: &mut Session,
        stream: &str,
        records: &[Record],
        options: &WriteOptions,
    ) {
        let Some((field, changed)) = create_only_probe(records) else {
            return; // No record kind here with a field a system keeps (stock, orders, ...).
        };
        let name = format!("{label}: a create-only `{field}` is left as the system has it");
        let create_only = WriteOptions {
            create_only: vec![field.to_owned()],
            settings: options.settings.clone(),
        };
        let outcome = self
            .call(
                &format!("{label} (create-only)"),
                session.write(stream, &changed, &create_only),
            )
            .await;
        match outcome {
            Ok(outcomes) => {
                let problems: Vec<String> = changed
                    .iter()
                    .zip(&outcomes)
                    .filter(|(_, o)| o.status != OutcomeStatus::Unchanged)
                    .map(|(r, o)| {
                        format!(
                            "{} was {} although only its create-only `{field}` differed",
                            key_of(r),
                            o.status.name()
                        )
                    })
                    .collect();
                self.pass_or_fail(
                    "4.7",
                    name,
                    problems,
                    format!("{} unchanged", outcomes.len()),
                );
            }
            Err(error) => self.add("4.7", name, Status::Fail, error.to_string()),
        }
        let _ = self
            .call(
                &format!("{label} (restore)"),
                session.write(stream, records, options),
            )
            .await;
    }
}

/// The records with one field a system keeps changed, and that field's name: a product's
/// `name`, a customer's `first_name`. None for kinds without one.
fn create_only_probe(records: &[Record]) -> Option<(&'static str, Vec<Record>)> {
    const MARK: &str = " (changed by koppel's conformance suite)";
    let mut field = None;
    let changed = records
        .iter()
        .map(|record| match record {
            Record::Product(p) => {
                field = Some("name");
                Some(Record::Product(Product {
                    name: format!("{}{MARK}", p.name),
                    ..p.clone()
                }))
            }
            Record::Customer(c) => {
                field = Some("first_name");
                Some(Record::Customer(Customer {
                    first_name: Some(format!("{}{MARK}", c.first_name.as_deref().unwrap_or(""))),
                    ..c.clone()
                }))
            }
            _ => None,
        })
        .collect::<Option<Vec<Record>>>()?;
    Some((field?, changed))
}
