//! A run of a flow: read a page from the source → filter and map → diff against the hash
//! last written → write what changed in batches → commit outcomes, id map, hashes and the
//! new cursor in one transaction. Failed records wait in a queue and are tried again by later
//! runs; they never block the rest. The engine knows no connector by name.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::definition::{Combine, Delivery, FlowDef};
use super::side::{ConnectorSide, Side};
use crate::mapping::{Mapped, Mapper};
use crate::model::{Record, StockLevel, codec, decimal, key_of};
use crate::runtime::bindings::{OutcomeStatus, WriteOptions};
use crate::runtime::{CallError, ConnectionSpec, Connector, Limits};
use crate::store::{ActivityWriter, Batch, Counts, RecordResult, RunStatus, Store};

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

/// The source and target of a run.
pub(crate) type Sides = (Box<dyn Side>, Box<dyn Side>);

/// Runs one flow once, between the connectors its endpoints name.
pub async fn run_flow(
    env: &Environment,
    flow: &FlowDef,
    options: &RunOptions,
) -> Result<RunSummary, FlowError> {
    let definition = |message: String| FlowError::Definition {
        flow: flow.name.clone(),
        message,
    };
    let mut setups = Vec::new();
    for endpoint in [&flow.source, &flow.target] {
        match env.connections.get(&endpoint.connection) {
            Some(setup) => setups.push((endpoint.connection.as_str(), setup)),
            None => {
                return Err(definition(format!(
                    "connection `{}` is not configured; add [connections.{}] to koppel.toml",
                    endpoint.connection, endpoint.connection
                )));
            }
        }
    }
    let sides = |run_id: i64| -> Result<Sides, String> {
        let mut sides = setups.iter().map(|(name, setup)| {
            let config = setup
                .config_now()
                .map_err(|e| format!("connection `{name}`: {e}"))?;
            let sink = env.activity.sink(Some(run_id));
            let spec = ConnectionSpec {
                tenant: env.tenant.clone(),
                name: (*name).to_owned(),
                config,
                limits: setup.limits.clone(),
                activity: sink.clone(),
                kv: Arc::new(env.store.clone()),
            };
            let connection = setup.connector.connect(spec).map_err(|e| e.to_string())?;
            Ok::<Box<dyn Side>, String>(Box::new(ConnectorSide::new(connection, sink)))
        });
        let source = sides.next().expect("two setups")?;
        let target = sides.next().expect("two setups")?;
        Ok((source, target))
    };
    run_between(env, flow, options, sides).await
}

/// Runs one flow once between the sides `sides` makes for the run's id.
pub(crate) async fn run_between(
    env: &Environment,
    flow: &FlowDef,
    options: &RunOptions,
    sides: impl FnOnce(i64) -> Result<Sides, String>,
) -> Result<RunSummary, FlowError> {
    let definition = |message: String| FlowError::Definition {
        flow: flow.name.clone(),
        message,
    };
    let mapper = flow.mapper().map_err(definition)?;
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
    let (source, target) = match sides(run_id) {
        Ok(sides) => sides,
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
        settings_hash: codec::hash_of(&flow.write_options()),
        source,
        target,
        counts: Counts::default(),
        skipped: BTreeMap::new(),
        failures: Vec::new(),
    };
    let outcome = runner.go().await;
    env.activity.flush().await;
    let requests = runner.source.exchanges() + runner.target.exchanges();
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
    source: Box<dyn Side>,
    target: Box<dyn Side>,
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

/// Adds up the stock levels of one key (several branches) into one, in first-seen order
/// (`combine = "sum-by-key"`, which a flow may set only on a stock stream). A key whose sum
/// does not fit comes back as an error naming it, for that record alone to fail.
fn sum_by_key(records: Vec<Record>) -> Vec<Result<Record, (String, String)>> {
    let mut order: Vec<String> = Vec::new();
    let mut sums: HashMap<String, Option<StockLevel>> = HashMap::new();
    let mut others = Vec::new();
    for record in records {
        match record {
            Record::Stock(stock) => match sums.get_mut(&stock.key) {
                Some(slot) => {
                    *slot = slot.take().and_then(|sum| {
                        Some(StockLevel {
                            on_hand: decimal::checked_add(sum.on_hand, stock.on_hand)?,
                            reserved: decimal::checked_add(sum.reserved, stock.reserved)?,
                            available: decimal::checked_add(sum.available, stock.available)?,
                            ..sum
                        })
                    });
                }
                None => {
                    order.push(stock.key.clone());
                    sums.insert(
                        stock.key.clone(),
                        Some(StockLevel {
                            location: None,
                            ..stock
                        }),
                    );
                }
            },
            other => others.push(Ok(other)),
        }
    }
    let mut combined: Vec<Result<Record, (String, String)>> = order
        .into_iter()
        .map(|key| match sums.remove(&key).flatten() {
            Some(sum) => Ok(Record::Stock(sum)),
            None => Err((
                key,
                "combining its locations (sum-by-key): the total is too large".to_owned(),
            )),
        })
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
            let page = self
                .source
                .read(&stream, state.as_deref(), page_size)
                .await
                .map_err(|e| Abort::Call(format!("reading `{stream}`: {e}")))?;
            let read = page.records.len() as u64;
            let records = match self.flow.combine {
                Some(Combine::SumByKey) => sum_by_key(page.records),
                None => page.records.into_iter().map(Ok).collect(),
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
        let records: Vec<Result<Record, (String, String)>> = failed
            .iter()
            .filter(|f| f.attempts < i64::from(self.flow.max_attempts))
            .filter_map(|f| match codec::decode(&f.record) {
                Ok(record) => Some(Ok(record)),
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
        let mut records = records;
        while !records.is_empty() {
            let rest = records.split_off(records.len().min(self.flow.page_size.max(1) as usize));
            let chunk = std::mem::replace(&mut records, rest);
            self.process(chunk, 0, None).await?;
        }
        Ok(())
    }

    fn note(&mut self, result: &RecordResult) {
        match result.outcome {
            OutcomeStatus::Skipped => {
                let reason = reason_shape(result.message.as_deref().unwrap_or("skipped"));
                *self.skipped.entry(reason).or_default() += 1;
            }
            OutcomeStatus::Failed if self.failures.len() < MAX_FAILURES_SHOWN => {
                self.failures.push((
                    result.key.clone(),
                    result.message.clone().unwrap_or_default(),
                ));
            }
            _ => {}
        }
    }

    /// Maps, diffs, writes and commits one page (or a set of retried records). A record that
    /// could not be combined comes as its key and why; it fails alone.
    async fn process(
        &mut self,
        records: Vec<Result<Record, (String, String)>>,
        read: u64,
        new_state: Option<Option<String>>,
    ) -> Result<(), Abort> {
        let tenant = self.env.tenant.clone();
        let flow = self.flow.name.clone();
        let store = self.env.store.clone();
        let once = self.flow.delivery == Delivery::Once;
        let keys: Vec<&str> = records
            .iter()
            .map(|r| match r {
                Ok(record) => key_of(record),
                Err((key, _)) => key.as_str(),
            })
            .collect();
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
            let record = match record {
                Ok(record) => record,
                Err((key, message)) => {
                    settled.push(RecordResult {
                        message: Some(message.clone()),
                        stage: Some("mapping"),
                        keep_row: true,
                        ..RecordResult::new(key.clone(), OutcomeStatus::Failed)
                    });
                    continue;
                }
            };
            let key = key_of(record).to_owned();
            // Each record is encoded once: its source form, and (when the mapper changed
            // nothing) the same bytes as what the target receives, hashed as they are.
            let source = codec::encode(record);
            // Every path below sets the outcome; one that did not would count as failed.
            let base = RecordResult {
                source: Some(source.clone()),
                keep_row: true,
                ledger: once,
                ..RecordResult::new(key.clone(), OutcomeStatus::Failed)
            };
            let (mapped, target_json) = match self.mapper.apply(record) {
                Ok(Mapped::Same) => (record.clone(), source),
                Ok(Mapped::Keep(mapped)) => {
                    let encoded = codec::encode(&mapped);
                    (*mapped, encoded)
                }
                Ok(Mapped::Skip(reason)) => {
                    settled.push(RecordResult {
                        outcome: OutcomeStatus::Skipped,
                        message: Some(reason),
                        ledger: false,
                        ..base
                    });
                    continue;
                }
                Err(error) => {
                    settled.push(RecordResult {
                        outcome: OutcomeStatus::Failed,
                        message: Some(format!("mapping: {error}")),
                        field: Some(error.field.clone()).filter(|f| !f.is_empty()),
                        stage: Some("mapping"),
                        ledger: false,
                        ..base
                    });
                    continue;
                }
            };
            let hash = codec::content_hash(&target_json, &self.settings_hash);
            let target_json = Some(target_json);
            if once {
                match ledger.get(&key) {
                    Some(entry) if !entry.pending => {
                        settled.push(RecordResult {
                            outcome: OutcomeStatus::Skipped,
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
                        self.target
                            .ready()
                            .await
                            .map_err(|e| Abort::Call(format!("looking up `{key}`: {e}")))?;
                        // Ask by the key the target knows the record under (the mapped one).
                        match self.target.lookup(&stream, key_of(&mapped)).await {
                            Ok(Some(found)) => {
                                settled.push(RecordResult {
                                    outcome: OutcomeStatus::Unchanged,
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
                                    outcome: OutcomeStatus::Failed,
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
                    outcome: OutcomeStatus::Unchanged,
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
        let written = self.target.write(&stream, &records, &options).await;
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
                        outcome: OutcomeStatus::Failed,
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
                let failed = outcome.status == OutcomeStatus::Failed;
                RecordResult {
                    outcome: outcome.status,
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
    use super::{reason_shape, sum_by_key};
    use crate::model::{Decimal, Record, StockLevel};

    fn level(key: &str, location: &str, available: i64) -> Record {
        let d = |units| Decimal { units, scale: 0 };
        Record::Stock(StockLevel {
            key: key.into(),
            on_hand: d(available),
            reserved: d(0),
            available: d(available),
            location: Some(location.into()),
            extra: vec![],
        })
    }

    #[test]
    fn stock_of_one_key_adds_up_and_a_sum_too_large_fails_that_key_alone() {
        let combined = sum_by_key(vec![
            level("A", "1", 3),
            level("B", "1", i64::MAX),
            level("A", "2", 4),
            level("B", "2", 1),
        ]);
        assert_eq!(combined.len(), 2);
        let Ok(Record::Stock(a)) = &combined[0] else {
            panic!("A adds up: {combined:?}")
        };
        assert_eq!((a.available.units, a.location.as_deref()), (7, None));
        let Err((key, message)) = &combined[1] else {
            panic!("B overflows: {combined:?}")
        };
        assert_eq!(key, "B");
        assert!(message.contains("too large"), "{message}");
    }

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
