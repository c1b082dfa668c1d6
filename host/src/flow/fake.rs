//! In-memory sides for the engine's unit tests: a source that pages through a list of
//! records, and a target that keeps what it was given, refuses chosen keys, and can fail
//! transiently or lose its answer after writing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;

use super::side::Side;
use crate::model::{Record, key_of};
use crate::runtime::CallError;
use crate::runtime::bindings::{
    ConnectorError, ErrorKind, Found, OutcomeStatus, Page, WriteOptions, WriteOutcome,
};

/// Pages through `records`; its state is the index of the next record.
pub struct FakeSource {
    pub records: Arc<Mutex<Vec<Record>>>,
}

impl Side for FakeSource {
    fn ready(&mut self) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async { Ok(()) })
    }

    fn read<'a>(
        &'a mut self,
        _stream: &'a str,
        state: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page, CallError>> {
        Box::pin(async move {
            let records = lock(&self.records);
            let from: usize = state.and_then(|s| s.parse().ok()).unwrap_or(0);
            let to = (from + limit as usize).min(records.len());
            Ok(Page {
                records: records[from..to].to_vec(),
                state: Some(to.to_string()),
                has_more: to < records.len(),
            })
        })
    }

    fn write<'a>(
        &'a mut self,
        _stream: &'a str,
        _records: &'a [Record],
        _options: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Vec<WriteOutcome>, CallError>> {
        Box::pin(async { Err(unsupported()) })
    }

    fn lookup<'a>(
        &'a mut self,
        _stream: &'a str,
        _key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Found>, CallError>> {
        Box::pin(async { Err(unsupported()) })
    }

    fn fork(&self) -> Box<dyn Side> {
        Box::new(FakeSource {
            records: Arc::clone(&self.records),
        })
    }

    fn exchanges(&self) -> u64 {
        0
    }
}

/// What the fake target holds and how it behaves; shared with the test.
#[derive(Default)]
pub struct TargetState {
    /// key → record as last written.
    pub held: BTreeMap<String, Record>,
    /// Every write call, with the keys it carried.
    pub writes: Vec<Vec<String>>,
    /// Keys refused with a per-record failure.
    pub refuse: BTreeSet<String>,
    /// The next write fails as a whole, retryable (the system is away).
    pub away: bool,
    /// The next write is carried out but its answer is lost (a timeout after the write).
    pub lose_answer: bool,
    pub lookups: u64,
}

pub struct FakeTarget {
    pub state: Arc<Mutex<TargetState>>,
}

impl Side for FakeTarget {
    fn ready(&mut self) -> BoxFuture<'_, Result<(), CallError>> {
        Box::pin(async { Ok(()) })
    }

    fn read<'a>(
        &'a mut self,
        _stream: &'a str,
        _state: Option<&'a str>,
        _limit: u32,
    ) -> BoxFuture<'a, Result<Page, CallError>> {
        Box::pin(async { Err(unsupported()) })
    }

    fn write<'a>(
        &'a mut self,
        _stream: &'a str,
        records: &'a [Record],
        _options: &'a WriteOptions,
    ) -> BoxFuture<'a, Result<Vec<WriteOutcome>, CallError>> {
        Box::pin(async move {
            let mut state = lock(&self.state);
            state
                .writes
                .push(records.iter().map(|r| key_of(r).to_owned()).collect());
            if std::mem::take(&mut state.away) {
                return Err(CallError::Connector(ConnectorError {
                    kind: ErrorKind::Unreachable,
                    message: "the system is away".into(),
                    field: None,
                    retryable: true,
                }));
            }
            let mut outcomes = Vec::new();
            for record in records {
                let key = key_of(record).to_owned();
                if state.refuse.contains(&key) {
                    outcomes.push(WriteOutcome {
                        key: key.clone(),
                        status: OutcomeStatus::Failed,
                        target_id: None,
                        message: Some(format!("{key} is refused")),
                        field: Some("name".into()),
                        retryable: true,
                    });
                    continue;
                }
                let status = match state.held.insert(key.clone(), record.clone()) {
                    None => OutcomeStatus::Created,
                    Some(_) => OutcomeStatus::Updated,
                };
                outcomes.push(WriteOutcome {
                    key: key.clone(),
                    status,
                    target_id: Some(format!("id-{key}")),
                    message: None,
                    field: None,
                    retryable: false,
                });
            }
            if std::mem::take(&mut state.lose_answer) {
                return Err(CallError::Timeout {
                    connector: "fake".into(),
                    function: "write",
                    limit: std::time::Duration::from_secs(1),
                });
            }
            Ok(outcomes)
        })
    }

    fn lookup<'a>(
        &'a mut self,
        _stream: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Found>, CallError>> {
        Box::pin(async move {
            let mut state = lock(&self.state);
            state.lookups += 1;
            Ok(state.held.contains_key(key).then(|| Found {
                id: format!("id-{key}"),
                record: None,
            }))
        })
    }

    fn fork(&self) -> Box<dyn Side> {
        Box::new(FakeTarget {
            state: Arc::clone(&self.state),
        })
    }

    fn exchanges(&self) -> u64 {
        lock(&self.state).writes.len() as u64
    }
}

fn unsupported() -> CallError {
    CallError::Connector(ConnectorError {
        kind: ErrorKind::Unsupported,
        message: "not this side".into(),
        field: None,
        retryable: false,
    })
}

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
