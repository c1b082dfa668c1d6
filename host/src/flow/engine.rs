//! A run of a flow: read a page from the source → filter and map → diff against the hash
//! last written → write what changed in batches → commit outcomes, id map, hashes and the
//! new cursor in one transaction. Failed records wait in a queue and are tried again by later
//! runs; they never block the rest. The engine knows no connector by name.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::definition::{Combine, Delivery, FlowDef};
use crate::mapping::{Mapped, Mapper, key_of};
use crate::runtime::bindings::{Decimal, OutcomeStatus, Record, StockLevel, WriteOptions};
use crate::runtime::{CallError, Connection, ConnectionSpec, Connector, Limits, Session};
use crate::store::{ActivityWriter, Batch, Counts, RecordResult, RunSink, RunStatus, Store};

/// A connection as configured: which connector, with what config, under which limits.
#[derive(Clone)]
pub struct ConnectionSetup {
    pub connector: Arc<Connector>,
    pub config: BTreeMap<String, String>,
    pub limits: Limits,
    /// Config values handed over at run time (a Shopware app registration's credentials).
    pub supplied: Supplied,
}

impl ConnectionSetup {
    /// The config a run uses now: the file's values, and the supplied ones for the keys the
    /// file leaves out. An error says which keys still wait for what.
    pub fn config_now(&self) -> Result<BTreeMap<String, String>, String> {
        self.supplied.complete(&self.config)
    }
}

/// Config values a connection receives while koppel runs instead of from `koppel.toml`:
/// the keys it `awaits`, filled when a shop registers the koppel app and hands over its
/// credentials. Clones share the values, so a registration reaches every holder of the
/// environment (the scheduler's flows, the dashboard's "Test connection") at once.
#[derive(Clone, Default)]
pub struct Supplied(Arc<RwLock<SuppliedState>>);

#[derive(Default)]
struct SuppliedState {
    /// Keys the file leaves to the supplier.
    awaited: Vec<String>,
    /// What supplies them, for the error while they are missing.
    from: String,
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Supplied {
    /// Supplied values are credentials: only the keys show.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        f.debug_struct("Supplied")
            .field("awaited", &state.awaited)
            .field("present", &state.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Supplied {
    /// Values for `awaited` keys will come from `from` (for example "the shop's Shopware app
    /// registration").
    pub fn awaiting(awaited: Vec<String>, from: impl Into<String>) -> Supplied {
        Supplied(Arc::new(RwLock::new(SuppliedState {
            awaited,
            from: from.into(),
            values: BTreeMap::new(),
        })))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, SuppliedState> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys the file leaves to the supplier.
    pub fn awaited(&self) -> Vec<String> {
        self.read().awaited.clone()
    }

    /// Whether every awaited key has its value.
    pub fn is_complete(&self) -> bool {
        let state = self.read();
        state.awaited.iter().all(|k| state.values.contains_key(k))
    }

    /// Sets the supplied values (only awaited keys are kept); `None` forgets them.
    pub fn set(&self, values: Option<BTreeMap<String, String>>) {
        let mut state = self.0.write().unwrap_or_else(|p| p.into_inner());
        state.values = values
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| state.awaited.contains(k))
            .collect();
    }

    /// `config` with the supplied values added.
    pub fn complete(
        &self,
        config: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, String> {
        let state = self.read();
        let missing: Vec<&str> = state
            .awaited
            .iter()
            .filter(|k| !config.contains_key(*k) && !state.values.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "the connection has no {} yet: they come with {}",
                missing
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" and "),
                state.from
            ));
        }
        let mut config = config.clone();
        for (key, value) in &state.values {
            config.entry(key.clone()).or_insert_with(|| value.clone());
        }
        Ok(config)
    }
}

/// What the runs of one tenant need.
#[derive(Clone)]
pub struct Environment {
    pub tenant: String,
    pub store: Store,
    pub activity: ActivityWriter,
    pub connections: BTreeMap<String, ConnectionSetup>,
}

/// Why a run could not be carried out at all (as opposed to a run that failed and says why).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    #[error("flow `{flow}`: {message}")]
    Definition { flow: String, message: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// How a run is started.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Read the source from the start, not from the saved cursor.
    pub full: bool,
    /// `schedule`, `manual`, `webhook`, `retry`, `demo`.
    pub trigger: String,
    /// Stops the run after the current batch.
    pub cancel: CancellationToken,
    /// Told about progress after every batch.
    pub progress: Option<Arc<dyn Progress>>,
}

/// Receives progress during a run.
pub trait Progress: Send + Sync {
    /// After every committed batch.
    fn update(&self, flow: &str, counts: &Counts);
    /// After the target answered a batch, before it is committed.
    fn written(&self, _flow: &str, _records: usize) {}
}

impl std::fmt::Debug for dyn Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub flow: String,
    pub status: RunStatus,
    pub counts: Counts,
    /// HTTP exchanges with both systems.
    pub requests: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// Why records were skipped, with how many each.
    pub skipped: BTreeMap<String, u64>,
    /// The first failures: (key, message).
    pub failures: Vec<(String, String)>,
}

const MAX_FAILURES_SHOWN: usize = 20;

/// Runs one flow once.
pub async fn run_flow(
    env: &Environment,
    flow: &FlowDef,
    options: &RunOptions,
) -> Result<RunSummary, FlowError> {
    let definition = |message: String| FlowError::Definition {
        flow: flow.name.clone(),
        message,
    };
    let mapper = flow.mapper().map_err(definition)?;
    for endpoint in [&flow.source, &flow.target] {
        if !env.connections.contains_key(&endpoint.connection) {
            return Err(definition(format!(
                "connection `{}` is not configured; add [connections.{}] to koppel.toml",
                endpoint.connection, endpoint.connection
            )));
        }
    }
    let store = &env.store;
    let _lease = store.lease_flow(&env.tenant, &flow.name)?;
    let started = Instant::now();
    if options.full {
        store.reset_stream_state(&env.tenant, &flow.name).await?;
    }
    let trigger = if options.trigger.is_empty() {
        "manual"
    } else {
        options.trigger.as_str()
    };
    let run_id = store
        .start_run(&env.tenant, &flow.name, trigger, options.full)
        .await?;
    tracing::debug!(tenant = %env.tenant, flow = %flow.name, run_id, trigger, full = options.full, "Run started.");

    // A connection that cannot be set up (its credentials have not come yet) fails the
    // run, which says why, on the dashboard and in the incident it opens.
    let endpoints = Endpoint::new(env, &flow.source.connection, run_id)
        .and_then(|source| Ok((source, Endpoint::new(env, &flow.target.connection, run_id)?)));
    let (source, target) = match endpoints {
        Ok(endpoints) => endpoints,
        Err(message) => {
            store
                .finish_run(&env.tenant, run_id, RunStatus::Failed, 0, Some(&message))
                .await?;
            tracing::warn!(tenant = %env.tenant, flow = %flow.name, run_id, error = %message, "Run failed before it began.");
            return Ok(RunSummary {
                run_id,
                flow: flow.name.clone(),
                status: RunStatus::Failed,
                counts: Counts::default(),
                requests: 0,
                duration_ms: started.elapsed().as_millis() as u64,
                error: Some(message),
                skipped: BTreeMap::new(),
                failures: Vec::new(),
            });
        }
    };
    let mut runner = Runner {
        env,
        flow,
        mapper,
        options,
        run_id,
        write_options: flow.write_options(),
        settings_hash: hash_of(&flow.write_options()),
        source,
        target,
        counts: Counts::default(),
        skipped: BTreeMap::new(),
        failures: Vec::new(),
    };
    let outcome = runner.go().await;
    env.activity.flush().await;
    let requests = runner.source.sink.exchanges() + runner.target.sink.exchanges();
    let (status, error) = match outcome {
        Ok(Finish::Done) if runner.counts.failed > 0 => (RunStatus::Partial, None),
        Ok(Finish::Done) => (RunStatus::Succeeded, None),
        Ok(Finish::Cancelled) | Err(Abort::Cancelled) => (
            RunStatus::Interrupted,
            Some("stopped on request after a complete batch".to_owned()),
        ),
        Err(Abort::Store(error)) => {
            let _ = store
                .finish_run(
                    &env.tenant,
                    run_id,
                    RunStatus::Failed,
                    requests,
                    Some(&error.to_string()),
                )
                .await;
            return Err(FlowError::Store(error));
        }
        Err(Abort::Call(message)) => (RunStatus::Failed, Some(message)),
    };
    store
        .finish_run(&env.tenant, run_id, status, requests, error.as_deref())
        .await?;
    let summary = RunSummary {
        run_id,
        flow: flow.name.clone(),
        status,
        counts: runner.counts,
        requests,
        duration_ms: started.elapsed().as_millis() as u64,
        error,
        skipped: runner.skipped,
        failures: runner.failures,
    };
    tracing::info!(
        tenant = %env.tenant, flow = %flow.name, run_id, status = status.as_str(),
        read = summary.counts.read, created = summary.counts.created, updated = summary.counts.updated,
        unchanged = summary.counts.unchanged, skipped = summary.counts.skipped, failed = summary.counts.failed,
        requests, duration_ms = summary.duration_ms, error = summary.error.as_deref().unwrap_or(""),
        "Run finished."
    );
    Ok(summary)
}

enum Finish {
    Done,
    Cancelled,
}

enum Abort {
    Store(crate::store::StoreError),
    /// Stopped on request between batches; what was written is committed.
    Cancelled,
    /// The source or target could not be used; the cursor stays where it was.
    Call(String),
}

impl From<crate::store::StoreError> for Abort {
    fn from(error: crate::store::StoreError) -> Self {
        Abort::Store(error)
    }
}

/// One side of the flow: its connection for this run and a live session, renewed after a
/// failure kills the old one.
struct Endpoint {
    connection: Connection,
    sink: Arc<RunSink>,
    session: Option<Session>,
}

impl Endpoint {
    fn new(env: &Environment, name: &str, run_id: i64) -> Result<Endpoint, String> {
        let setup = &env.connections[name];
        let config = setup
            .config_now()
            .map_err(|e| format!("connection `{name}`: {e}"))?;
        let sink = env.activity.sink(Some(run_id));
        let spec = ConnectionSpec {
            tenant: env.tenant.clone(),
            name: name.to_owned(),
            config,
            limits: setup.limits.clone(),
            activity: sink.clone(),
            kv: Arc::new(env.store.clone()),
        };
        let connection = setup.connector.connect(spec).map_err(|e| e.to_string())?;
        Ok(Endpoint {
            connection,
            sink,
            session: None,
        })
    }

    async fn session(&mut self) -> Result<&mut Session, CallError> {
        if self.session.as_ref().is_none_or(|s| !s.is_alive()) {
            self.session = Some(self.connection.session().await?);
        }
        Ok(self.session.as_mut().expect("just set"))
    }
}

/// Whether a failed call is worth trying again later as a whole (the system is away or
/// throttling), rather than failing the records it carried.
fn transient(error: &CallError) -> bool {
    match error {
        CallError::Connector(e) => e.retryable,
        CallError::Timeout { .. } => true,
        _ => false,
    }
}

struct Runner<'a> {
    env: &'a Environment,
    flow: &'a FlowDef,
    mapper: Mapper,
    options: &'a RunOptions,
    run_id: i64,
    write_options: WriteOptions,
    settings_hash: String,
    source: Endpoint,
    target: Endpoint,
    counts: Counts,
    skipped: BTreeMap<String, u64>,
    failures: Vec<(String, String)>,
}

/// A reason with its numbers and ids left out, so the same reason for many records counts
/// once: `no product with number 1000052` → `no product with number …`.
fn reason_shape(reason: &str) -> String {
    static IDS: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\b[0-9a-fA-F-]*[0-9][0-9a-fA-F-]{2,}\b").expect("valid regex")
    });
    IDS.replace_all(reason, "…").into_owned()
}

fn hash_of<T: Serialize + ?Sized>(value: &T) -> String {
    hex::encode(Sha256::digest(
        serde_json::to_vec(value).unwrap_or_default(),
    ))
}

/// Adds up the stock levels of one key (several branches) into one, in first-seen order.
fn sum_by_key(records: Vec<Record>) -> Vec<Record> {
    fn add(a: Decimal, b: Decimal) -> Decimal {
        let scale = a.scale.max(b.scale);
        let up = |d: Decimal| {
            d.units
                .saturating_mul(10i64.saturating_pow(u32::from(scale - d.scale)))
        };
        Decimal {
            units: up(a).saturating_add(up(b)),
            scale,
        }
    }
    let mut order: Vec<String> = Vec::new();
    let mut sums: HashMap<String, StockLevel> = HashMap::new();
    let mut others = Vec::new();
    for record in records {
        match record {
            Record::Stock(stock) => match sums.get_mut(&stock.key) {
                Some(sum) => {
                    sum.on_hand = add(sum.on_hand, stock.on_hand);
                    sum.reserved = add(sum.reserved, stock.reserved);
                    sum.available = add(sum.available, stock.available);
                }
                None => {
                    order.push(stock.key.clone());
                    sums.insert(
                        stock.key.clone(),
                        StockLevel {
                            location: None,
                            ..stock
                        },
                    );
                }
            },
            other => others.push(other),
        }
    }
    let mut combined: Vec<Record> = order
        .into_iter()
        .filter_map(|k| sums.remove(&k))
        .map(Record::Stock)
        .collect();
    combined.extend(others);
    combined
}

impl Runner<'_> {
    async fn go(&mut self) -> Result<Finish, Abort> {
        self.retry_failed().await?;
        let mut last_state: Option<String> = None;
        let mut first = true;
        loop {
            if self.options.cancel.is_cancelled() {
                return Ok(Finish::Cancelled);
            }
            let state = self
                .env
                .store
                .stream_state(&self.env.tenant, &self.flow.name)
                .await?;
            if !first && state == last_state {
                tracing::warn!(flow = %self.flow.name, "The source says it has more but its state did not move; stopping this run.");
                break;
            }
            first = false;
            last_state = state.clone();
            let stream = self.flow.source.stream.clone();
            let page_size = self.flow.page_size;
            let session = self
                .source
                .session()
                .await
                .map_err(|e| Abort::Call(format!("reading `{stream}`: {e}")))?;
            let page = session
                .read(&stream, state.as_deref(), page_size)
                .await
                .map_err(|e| Abort::Call(format!("reading `{stream}`: {e}")))?;
            let read = page.records.len() as u64;
            let records = match self.flow.combine {
                Some(Combine::SumByKey) => sum_by_key(page.records),
                None => page.records,
            };
            self.process(records, read, Some(page.state.clone()))
                .await?;
            if !page.has_more {
                break;
            }
        }
        Ok(Finish::Done)
    }

    /// Records that failed in earlier runs, tried again first.
    async fn retry_failed(&mut self) -> Result<(), Abort> {
        let failed = self
            .env
            .store
            .failed_to_retry(&self.env.tenant, &self.flow.name, 10_000)
            .await?;
        let records: Vec<Record> = failed
            .iter()
            .filter(|f| f.attempts < i64::from(self.flow.max_attempts))
            .filter_map(|f| match serde_json::from_str::<Record>(&f.record) {
                Ok(record) => Some(record),
                Err(error) => {
                    tracing::warn!(flow = %self.flow.name, key = %f.key, %error, "A failed record cannot be read back; skipping its retry.");
                    None
                }
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        tracing::info!(flow = %self.flow.name, count = records.len(), "Retrying failed records.");
        for chunk in records.chunks(self.flow.page_size.max(1) as usize) {
            self.process(chunk.to_vec(), 0, None).await?;
        }
        Ok(())
    }

    fn note(&mut self, result: &RecordResult) {
        match result.outcome {
            "skipped" => {
                let reason = reason_shape(result.message.as_deref().unwrap_or("skipped"));
                *self.skipped.entry(reason).or_default() += 1;
            }
            "failed" if self.failures.len() < MAX_FAILURES_SHOWN => {
                self.failures.push((
                    result.key.clone(),
                    result.message.clone().unwrap_or_default(),
                ));
            }
            _ => {}
        }
    }

    /// Maps, diffs, writes and commits one page (or a set of retried records).
    async fn process(
        &mut self,
        records: Vec<Record>,
        read: u64,
        new_state: Option<Option<String>>,
    ) -> Result<(), Abort> {
        let tenant = self.env.tenant.clone();
        let flow = self.flow.name.clone();
        let store = self.env.store.clone();
        let once = self.flow.delivery == Delivery::Once;
        let keys: Vec<&str> = records.iter().map(key_of).collect();
        let mapped_before = if once {
            HashMap::new()
        } else {
            store.mapped(&tenant, &flow, &keys).await?
        };
        let ledger = if once {
            store.ledger(&tenant, &flow, &keys).await?
        } else {
            HashMap::new()
        };

        let mut settled: Vec<RecordResult> = Vec::new();
        let mut to_write: Vec<(Record, RecordResult)> = Vec::new();
        for record in &records {
            let key = key_of(record).to_owned();
            let source = serde_json::to_string(record).ok();
            let base = RecordResult {
                key: key.clone(),
                source: source.clone(),
                keep_row: true,
                ledger: once,
                ..RecordResult::default()
            };
            let mapped = match self.mapper.apply(record) {
                Ok(Mapped::Keep(mapped)) => *mapped,
                Ok(Mapped::Skip(reason)) => {
                    settled.push(RecordResult {
                        outcome: "skipped",
                        message: Some(reason),
                        ledger: false,
                        ..base
                    });
                    continue;
                }
                Err(error) => {
                    settled.push(RecordResult {
                        outcome: "failed",
                        message: Some(format!("mapping: {error}")),
                        field: Some(error.field.clone()).filter(|f| !f.is_empty()),
                        stage: Some("mapping"),
                        ledger: false,
                        ..base
                    });
                    continue;
                }
            };
            let target_json = serde_json::to_string(&mapped).ok();
            let hash = hash_of(&(&mapped, &self.settings_hash));
            if once {
                match ledger.get(&key) {
                    Some(entry) if !entry.pending => {
                        settled.push(RecordResult {
                            outcome: "skipped",
                            message: Some("already in the target".into()),
                            target_id: entry.target_id.clone(),
                            ledger: false,
                            keep_row: false,
                            ..base
                        });
                        continue;
                    }
                    Some(_) => {
                        // Asked before, answer unknown (a crash or a lost response): look first.
                        let stream = self.flow.target.stream.clone();
                        let session = self
                            .target
                            .session()
                            .await
                            .map_err(|e| Abort::Call(format!("looking up `{key}`: {e}")))?;
                        // Ask by the key the target knows the record under (the mapped one).
                        match session.lookup(&stream, key_of(&mapped)).await {
                            Ok(Some(found)) => {
                                settled.push(RecordResult {
                                    outcome: "unchanged",
                                    message: Some(
                                        "found in the target after an interrupted write".into(),
                                    ),
                                    target_id: Some(found.id),
                                    target: target_json,
                                    hash: Some(hash),
                                    ..base
                                });
                                continue;
                            }
                            Ok(None) => {}
                            Err(error) if transient(&error) => {
                                return Err(Abort::Call(format!("looking up `{key}`: {error}")));
                            }
                            Err(error) => {
                                settled.push(RecordResult {
                                    outcome: "failed",
                                    message: Some(format!("looking it up in the target: {error}")),
                                    stage: Some("writing"),
                                    retryable: true,
                                    ..base
                                });
                                continue;
                            }
                        }
                    }
                    None => {}
                }
            } else if mapped_before.get(&key).is_some_and(|m| m.hash == hash) {
                settled.push(RecordResult {
                    outcome: "unchanged",
                    keep_row: false,
                    ledger: false,
                    ..base
                });
                continue;
            }
            to_write.push((
                mapped,
                RecordResult {
                    target: target_json,
                    hash: Some(hash),
                    ..base
                },
            ));
        }

        // Everything that needs no write, committed with the first batch (or alone).
        let mut pending_read = read;
        let mut pending_results = settled;
        let batches: Vec<Vec<(Record, RecordResult)>> = {
            let size = self.flow.batch_size.max(1) as usize;
            let mut batches = Vec::new();
            let mut rest = to_write;
            while !rest.is_empty() {
                let tail = rest.split_off(rest.len().min(size));
                batches.push(std::mem::replace(&mut rest, tail));
            }
            batches
        };
        let last = batches.len();
        if last == 0 {
            self.commit(pending_results, pending_read, new_state)
                .await?;
            return Ok(());
        }
        for (index, batch) in batches.into_iter().enumerate() {
            if index > 0 && self.options.cancel.is_cancelled() {
                // Stop between batches: what was written is committed, the cursor stays.
                return Err(Abort::Cancelled);
            }
            let results = self.write(batch).await?;
            if let Some(progress) = &self.options.progress {
                progress.written(&self.flow.name, results.len());
            }
            pending_results.extend(results);
            let state = if index + 1 == last {
                new_state.clone()
            } else {
                None
            };
            self.commit(std::mem::take(&mut pending_results), pending_read, state)
                .await?;
            pending_read = 0;
        }
        Ok(())
    }

    async fn write(
        &mut self,
        batch: Vec<(Record, RecordResult)>,
    ) -> Result<Vec<RecordResult>, Abort> {
        let tenant = self.env.tenant.clone();
        let flow = self.flow.name.clone();
        if self.flow.delivery == Delivery::Once {
            let keys: Vec<&str> = batch.iter().map(|(_, r)| r.key.as_str()).collect();
            self.env.store.ledger_begin(&tenant, &flow, &keys).await?;
        }
        let (records, bases): (Vec<Record>, Vec<RecordResult>) = batch.into_iter().unzip();
        let stream = self.flow.target.stream.clone();
        let options = self.write_options.clone();
        let written = match self.target.session().await {
            Ok(session) => session.write(&stream, &records, &options).await,
            Err(error) => Err(error),
        };
        let outcomes = match written {
            Ok(outcomes) => outcomes,
            Err(error) if transient(&error) => {
                return Err(Abort::Call(format!("writing `{stream}`: {error}")));
            }
            Err(error) => {
                // The connector broke on this batch: its records wait in the queue, the run goes on.
                let message = format!("writing `{stream}`: {error}");
                return Ok(bases
                    .into_iter()
                    .map(|base| RecordResult {
                        outcome: "failed",
                        message: Some(message.clone()),
                        stage: Some("writing"),
                        retryable: true,
                        hash: None,
                        ..base
                    })
                    .collect());
            }
        };
        Ok(bases
            .into_iter()
            .zip(outcomes)
            .map(|(base, outcome)| {
                let outcome_name = match outcome.status {
                    OutcomeStatus::Created => "created",
                    OutcomeStatus::Updated => "updated",
                    OutcomeStatus::Unchanged => "unchanged",
                    OutcomeStatus::Skipped => "skipped",
                    OutcomeStatus::Failed => "failed",
                };
                let failed = outcome.status == OutcomeStatus::Failed;
                RecordResult {
                    outcome: outcome_name,
                    message: outcome.message,
                    field: outcome.field,
                    target_id: outcome.target_id,
                    hash: if failed { None } else { base.hash.clone() },
                    stage: failed.then_some("writing"),
                    retryable: outcome.retryable,
                    ..base
                }
            })
            .collect())
    }

    async fn commit(
        &mut self,
        results: Vec<RecordResult>,
        read: u64,
        new_state: Option<Option<String>>,
    ) -> Result<(), Abort> {
        for result in &results {
            self.note(result);
        }
        let batch = Batch {
            run_id: self.run_id,
            results,
            new_state,
            read,
        };
        let counts = self
            .env
            .store
            .commit(&self.env.tenant, &self.flow.name, &batch)
            .await?;
        self.counts.add(counts);
        if let Some(progress) = &self.options.progress {
            progress.update(&self.flow.name, &self.counts);
        }
        Ok(())
    }
}

/// How long ago a time was, for people (`3 min ago`).
pub fn ago(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs} s ago"),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::reason_shape;

    #[test]
    fn reasons_group_without_their_numbers_and_ids() {
        assert_eq!(
            reason_shape(
                "Shopware has no product with number 1000052; the products flow creates it"
            ),
            "Shopware has no product with number …; the products flow creates it"
        );
        assert_eq!(
            reason_shape("filtered out: `extra.webshop` is false"),
            "filtered out: `extra.webshop` is false"
        );
        assert_eq!(
            reason_shape("as 9143a0bde6c9c15e2d331d9c8ebfafcf here"),
            "as … here"
        );
        assert_eq!(
            reason_shape("`extra.group` is 12, not one of [1,2]"),
            "`extra.group` is 12, not one of [1,2]"
        );
    }
}
