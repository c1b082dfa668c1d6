//! A run of a flow: read a page from the source → filter and map → diff against the hash
//! last written → write what changed in batches → commit outcomes, id map, hashes and the
//! new cursor in one transaction. Failed records wait in a queue and are tried again by later
//! runs; they never block the rest. The engine knows no connector by name. This module sets a
//! run up and sums it up; [`super::runner`] carries it out, as a pipeline.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::definition::FlowDef;
use super::runner::{Abort, Finish, Runner};
use super::side::{ConnectorSide, Side};
use crate::runtime::{ConnectionSpec, Connector, Limits, TenantQuota};
use crate::store::{ActivityWriter, Counts, RunStatus, Store};

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
    /// The tenant's quotas, over all its connections and runs (unlimited unless hosting
    /// sets them).
    pub quota: Arc<TenantQuota>,
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
    /// Pages read from the source and batches written to the target: the fewest requests
    /// such a run can make (the flows bench compares `requests` with their sum).
    pub pages: u64,
    pub batches: u64,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// Why records were skipped, with how many each.
    pub skipped: BTreeMap<String, u64>,
    /// The first failures: (key, message).
    pub failures: Vec<(String, String)>,
    /// Where the run's time went.
    pub stages: StageTimes,
}

/// Where a run's time went, stage by stage (the flows bench prints it; docs/flows.md
/// *Figures* has a breakdown). Reading and writing overlap the rest in a pipelined run, so
/// the stages add up to more than the wall time. In JSON, each is milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StageTimes {
    /// Waiting for the source's pages (in the reader task, alongside the rest).
    #[serde(serialize_with = "milliseconds")]
    pub read: Duration,
    /// The id map or ledger looked up for each page.
    #[serde(serialize_with = "milliseconds")]
    pub lookup: Duration,
    /// Filters and mapping, and encoding each record.
    #[serde(serialize_with = "milliseconds")]
    pub map: Duration,
    /// Content hashes.
    #[serde(serialize_with = "milliseconds")]
    pub hash: Duration,
    /// Batches in the target's hands (summed over batches in flight at once).
    #[serde(serialize_with = "milliseconds")]
    pub write: Duration,
    /// The transactions that commit outcomes, run records, the id map and the cursor.
    #[serde(serialize_with = "milliseconds")]
    pub commit: Duration,
    /// Writing the activity log's last entries at the end.
    #[serde(serialize_with = "milliseconds")]
    pub log: Duration,
}

fn milliseconds<S: serde::Serializer>(took: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((took.as_secs_f64() * 1000.0 * 10.0).round() / 10.0)
}

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
                quota: env.quota.clone(),
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
    // A slot of the tenant's concurrent runs (waits while all are taken), then the flow's
    // lease.
    let _slot = env.quota.run_slot().await;
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
                pages: 0,
                batches: 0,
                duration_ms: started.elapsed().as_millis() as u64,
                error: Some(message),
                skipped: BTreeMap::new(),
                failures: Vec::new(),
                stages: StageTimes::default(),
            });
        }
    };
    let mut runner = Runner::new(env, flow, mapper, options, run_id, source, target);
    let outcome = runner.go().await;
    let flushing = Instant::now();
    env.activity.flush().await;
    runner.stages.log = flushing.elapsed();
    let requests = runner.exchanges();
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
        pages: runner.pages,
        batches: runner.batches,
        duration_ms: started.elapsed().as_millis() as u64,
        error,
        skipped: runner.skipped,
        failures: runner.failures,
        stages: runner.stages,
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
