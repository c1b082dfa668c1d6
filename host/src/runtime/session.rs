//! One instance of a connector in its own store, and the calls into it under the limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtx;

use super::bindings::typed::exports::koppel::connector::config_types::GuestIndices as ConfigTypesIndices;
use super::bindings::{
    ConnectorCore, ConnectorError, Found, Manifest, Page, Record, TypedKey, WriteOptions,
    WriteOutcome,
};
use super::connector::Connector;
use super::guest_io::GuestOutput;
use super::host::{CallContext, HostState, SandboxLimiter};
use super::quota::Quota;
use super::{CallError, log};

/// One instance of a connector in its own store. Calls run one at a time; after a trap or a
/// timeout the session is dead: its store is dropped (freeing its slot in the instance pool)
/// and every further call says so.
///
/// While a call runs, the guest yields to the async executor at every epoch tick, so a guest
/// stuck in computation neither holds a worker thread nor escapes the wall-clock timeout;
/// should that timeout not be polled, the epoch deadline traps at the same limit.
///
/// What the connector says in its errors and outcome messages is redacted with the
/// connection's secrets before any caller sees it.
pub struct Session {
    /// None once the instance failed: a trapped store is never entered again.
    store: Option<Store<HostState>>,
    instance: wasmtime::component::Instance,
    bindings: ConnectorCore,
    ctx: Arc<CallContext>,
    stderr: GuestOutput,
    dead: Option<String>,
    /// The peak memory of the dropped store, kept for [`Session::peak_memory`].
    peak: usize,
}

/// The tenant quota that stopped the guest, if one did, and why.
fn quota_stop(state: &HostState) -> Option<(Quota, String)> {
    if let Some(message) = &state.limiter.quota_refused {
        return Some((Quota::Memory, message.clone()));
    }
    state
        .cpu_refused
        .as_ref()
        .map(|message| (Quota::Cpu, message.clone()))
}

/// Ticks between two yields of a running guest to the executor.
const YIELD_TICKS: u64 = 1;

impl Session {
    pub(super) async fn start(
        connector: &Connector,
        ctx: Arc<CallContext>,
    ) -> Result<Session, CallError> {
        let stderr = GuestOutput::new("stderr", ctx.clone());
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::new("stdout", ctx.clone()))
            .stderr(stderr.clone())
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: SandboxLimiter::new(ctx.limits.memory_bytes, ctx.quota.clone()),
            ctx: ctx.clone(),
            log: log::GuestLog::default(),
            hard_deadline: Instant::now() + ctx.limits.call_timeout,
            cpu_refused: None,
        };
        let mut store = Store::new(&connector.runtime.engine, state);
        store.limiter(|state| &mut state.limiter);
        let tick = connector.runtime.tick;
        store.epoch_deadline_callback(move |mut store| {
            let now = Instant::now();
            if now >= store.data().hard_deadline {
                return Ok(UpdateDeadline::Interrupt);
            }
            if !store.data().ctx.quota.spend_tick(tick, now) {
                let message = store.data().ctx.quota.cpu_message();
                store.data_mut().cpu_refused = Some(message);
                return Ok(UpdateDeadline::Interrupt);
            }
            // Past its tenant's share of the CPU this second: the guest waits, its thread
            // free for other tenants' work.
            if let Some(pause) = store.data().ctx.quota.throttle(tick, now) {
                return Ok(UpdateDeadline::YieldCustom(
                    YIELD_TICKS,
                    Box::pin(tokio::time::sleep(pause)),
                ));
            }
            Ok(UpdateDeadline::YieldCustom(
                YIELD_TICKS,
                Box::pin(tokio::task::yield_now()),
            ))
        });
        store.set_epoch_deadline(YIELD_TICKS);
        let limit = ctx.limits.call_timeout;
        let instantiate = async {
            let instance = connector.pre.instantiate_async(&mut store).await?;
            connector
                .indices
                .load(&mut store, &instance)
                .map(|bindings| (instance, bindings))
        };
        let instantiated = tokio::time::timeout(limit, instantiate).await;
        if let (Ok(Err(_)), Some((quota, message))) = (&instantiated, quota_stop(store.data())) {
            return Err(CallError::Quota {
                connector: ctx.connector.clone(),
                function: "instantiate",
                quota,
                message,
            });
        }
        let (instance, bindings) = match instantiated {
            Ok(Ok(instantiated)) => instantiated,
            Ok(Err(_)) if store.data().limiter.exceeded => {
                return Err(CallError::Memory {
                    connector: ctx.connector.clone(),
                    function: "instantiate",
                    limit_mib: ctx.limits.memory_bytes >> 20,
                });
            }
            Ok(Err(e)) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                return Err(CallError::Timeout {
                    connector: ctx.connector.clone(),
                    function: "instantiate",
                    limit,
                });
            }
            Err(_elapsed) => {
                return Err(CallError::Timeout {
                    connector: ctx.connector.clone(),
                    function: "instantiate",
                    limit,
                });
            }
            Ok(Err(e)) => {
                return Err(CallError::Instantiate {
                    connector: ctx.connector.clone(),
                    message: ctx.redactor.text(&format!("{e:#}")),
                });
            }
        };
        Ok(Session {
            store: Some(store),
            instance,
            bindings,
            ctx,
            stderr,
            dead: None,
            peak: 0,
        })
    }

    /// Before a call: refuse when dead, arm the deadlines. Gives the store, the exports and
    /// the call's time limit.
    fn arm(&mut self) -> Result<(&mut Store<HostState>, &ConnectorCore, Duration), CallError> {
        let Session {
            store,
            bindings,
            ctx,
            dead,
            ..
        } = self;
        let store = match (dead.as_ref(), store.as_mut()) {
            (None, Some(store)) => store,
            (reason, _) => {
                return Err(CallError::Dead {
                    connector: ctx.connector.clone(),
                    reason: reason.map_or_else(|| "its instance is gone".to_owned(), Clone::clone),
                });
            }
        };
        let limit = ctx.limits.call_timeout;
        store.data_mut().hard_deadline = Instant::now() + limit;
        store.set_epoch_deadline(YIELD_TICKS);
        Ok((store, bindings, limit))
    }

    /// Marks the session dead and drops its store: a store that trapped, overran or was cut
    /// off mid-call is never entered again.
    fn kill(&mut self, error: &CallError) {
        if let Some(store) = self.store.take() {
            self.peak = self.peak.max(store.data().limiter.peak);
        }
        self.dead = Some(error.to_string());
    }

    /// After a call: turn a timeout or trap into a clear error and kill the session.
    fn settle<T>(
        &mut self,
        function: &'static str,
        limit: Duration,
        outcome: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, CallError> {
        let connector = self.ctx.connector.clone();
        let exceeded = self
            .store
            .as_ref()
            .is_some_and(|s| s.data().limiter.exceeded);
        let quota = self.store.as_ref().and_then(|s| quota_stop(s.data()));
        let error = match (outcome, quota) {
            (Ok(Ok(value)), _) => return Ok(value),
            (Ok(Err(_)), Some((quota, message))) => CallError::Quota {
                connector,
                function,
                quota,
                message,
            },
            (Err(_elapsed), _) => CallError::Timeout {
                connector,
                function,
                limit,
            },
            (Ok(Err(_)), None) if exceeded => CallError::Memory {
                connector,
                function,
                limit_mib: self.ctx.limits.memory_bytes >> 20,
            },
            (Ok(Err(error)), None) if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                CallError::Timeout {
                    connector,
                    function,
                    limit,
                }
            }
            (Ok(Err(error)), None) => {
                let mut message = error
                    .downcast_ref::<Trap>()
                    .map_or_else(|| format!("{error:#}"), |t| t.to_string());
                let tail = self.stderr.tail();
                if !tail.is_empty() {
                    message = format!("{message}; the connector wrote: {}", tail.join(" | "));
                }
                CallError::Trap {
                    connector,
                    function,
                    message: self.ctx.redactor.text(&message),
                }
            }
        };
        tracing::warn!(
            tenant = %self.ctx.tenant, connection = %self.ctx.connection, function, error = %error,
            "Connector call failed; its instance is dropped."
        );
        self.kill(&error);
        Err(error)
    }

    /// A connector's own error, with the connection's secrets redacted from what it says.
    fn connector_error(&self, mut error: ConnectorError) -> CallError {
        error.message = self.ctx.redactor.text(&error.message);
        error.field = error.field.map(|f| self.ctx.redactor.text(&f));
        CallError::Connector(error)
    }

    /// Whether the instance is still usable.
    pub fn is_alive(&self) -> bool {
        self.dead.is_none() && self.store.is_some()
    }

    /// The most linear memory this instance has grown to, in bytes (for the conformance
    /// suite's report of how close a connector comes to its cap).
    pub fn peak_memory(&self) -> usize {
        self.store
            .as_ref()
            .map_or(self.peak, |s| self.peak.max(s.data().limiter.peak))
    }

    pub(super) async fn manifest(&mut self) -> Result<Manifest, CallError> {
        let (store, bindings, limit) = self.arm()?;
        let call = bindings.koppel_connector_connector().call_manifest(store);
        let outcome = tokio::time::timeout(limit, call).await;
        self.settle("manifest", limit, outcome)
    }

    pub(super) async fn config_types(
        &mut self,
        indices: &ConfigTypesIndices,
    ) -> Result<Vec<TypedKey>, CallError> {
        let instance = self.instance;
        let (store, _, limit) = self.arm()?;
        let call = async {
            let guest = indices.load(&mut *store, &instance)?;
            guest.call_config_types(&mut *store).await
        };
        let outcome = tokio::time::timeout(limit, call).await;
        self.settle("config-types", limit, outcome)
    }

    /// Runs the connector's `check` with this config (no `configure` needed).
    pub(super) async fn check(&mut self, config: &Vec<(String, String)>) -> Result<(), CallError> {
        let (store, bindings, limit) = self.arm()?;
        let call = bindings
            .koppel_connector_connector()
            .call_check(store, config);
        let outcome = tokio::time::timeout(limit, call).await;
        self.settle("check", limit, outcome)?
            .map_err(|e| self.connector_error(e))
    }

    pub(super) async fn configure(
        &mut self,
        config: &Vec<(String, String)>,
    ) -> Result<(), CallError> {
        let (store, bindings, limit) = self.arm()?;
        let call = bindings
            .koppel_connector_connector()
            .call_configure(store, config);
        let outcome = tokio::time::timeout(limit, call).await;
        self.settle("configure", limit, outcome)?
            .map_err(|e| self.connector_error(e))
    }

    /// Reads up to `limit` records after `state`.
    pub async fn read(
        &mut self,
        stream: &str,
        state: Option<&str>,
        limit: u32,
    ) -> Result<Page, CallError> {
        let (store, bindings, time) = self.arm()?;
        let call = bindings
            .koppel_connector_connector()
            .call_read(store, stream, state, limit);
        let outcome = tokio::time::timeout(time, call).await;
        self.settle("read", time, outcome)?
            .map_err(|e| self.connector_error(e))
    }

    /// Writes records; one outcome per record, in order.
    pub async fn write(
        &mut self,
        stream: &str,
        records: &[Record],
        options: &WriteOptions,
    ) -> Result<Vec<WriteOutcome>, CallError> {
        let (store, bindings, time) = self.arm()?;
        let call = bindings
            .koppel_connector_connector()
            .call_write(store, stream, records, options);
        let outcome = tokio::time::timeout(time, call).await;
        let mut outcomes = self
            .settle("write", time, outcome)?
            .map_err(|e| self.connector_error(e))?;
        if outcomes.len() != records.len() {
            let error = CallError::Trap {
                connector: self.ctx.connector.clone(),
                function: "write",
                message: format!(
                    "broke the contract: {} records written but {} outcomes returned",
                    records.len(),
                    outcomes.len()
                ),
            };
            self.kill(&error);
            return Err(error);
        }
        let redactor = &self.ctx.redactor;
        for outcome in &mut outcomes {
            outcome.message = outcome.message.take().map(|m| redactor.text(&m));
            outcome.field = outcome.field.take().map(|f| redactor.text(&f));
        }
        Ok(outcomes)
    }

    /// Finds one record by key.
    pub async fn lookup(&mut self, stream: &str, key: &str) -> Result<Option<Found>, CallError> {
        let (store, bindings, time) = self.arm()?;
        let call = bindings
            .koppel_connector_connector()
            .call_lookup(store, stream, key);
        let outcome = tokio::time::timeout(time, call).await;
        self.settle("lookup", time, outcome)?
            .map_err(|e| self.connector_error(e))
    }
}
