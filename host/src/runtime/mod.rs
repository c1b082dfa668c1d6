//! The sandboxed component host: loads connectors (WebAssembly components implementing
//! `wit/`), and runs each call sequence in a fresh store with a memory cap, an epoch deadline
//! and a wall-clock timeout. Guests get no files, no environment, no sockets and no inherited
//! stdio: the network only through `http-send`, under the connection's allow-list.
//!
//! The life of a connector:
//! - [`Runtime::load`]: compile once (or load the precompiled artifact from the cache), refuse
//!   imports outside the contract ([`imports`]), link, pre-instantiate, read and check the
//!   manifest → [`Connector`];
//! - [`Connector::connect`]: check a config against the manifest, build the allow-list and
//!   redactor → [`Connection`];
//! - [`Connection::session`]: a fresh instance, configured → [`Session`], whose `read`,
//!   `write` and `lookup` calls each run under the limits. A session that trapped or timed out
//!   is dead; the caller starts another.

pub mod activity;
pub mod bindings;
mod cache;
pub mod config;
mod engine;
mod guest_io;
pub mod http;
pub mod imports;
pub mod kv;
pub mod limits;
pub mod redact;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use activity::{ActivitySink, Exchange, MemorySink, NullSink};
pub use bindings::{ConnectorError, Decimal, Manifest, Page, Record, WriteOptions, WriteOutcome};
pub use cache::{CacheStats, content_hash};
pub use config::{ConfigError, ConnectionConfig};
pub use engine::EngineOptions;
pub use kv::{KvStore, MemoryKv};
pub use limits::Limits;

use bindings::typed::exports::koppel::connector::config_types::GuestIndices as ConfigTypesIndices;
use bindings::{ConnectorCore, ConnectorCoreIndices, Found, TypedKey};
use guest_io::GuestOutput;
use http::AllowList;
use redact::Redactor;

/// Where compiled components are kept: `$KOPPEL_CACHE_DIR`, else the user's cache directory.
pub fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("KOPPEL_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("koppel").join("components")))
}

/// How the runtime is set up.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    pub engine: EngineOptions,
    /// None: compile at every start.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            engine: EngineOptions::default(),
            cache_dir: default_cache_dir(),
        }
    }
}

/// Something wrong with the runtime or a component, before any call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot read connector {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{name}` is not a usable koppel connector: {reason}")]
    Invalid { name: String, reason: String },
}

/// A call into a connector that did not give an answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The connector answered with an error of its own (bad config, remote refused, ...).
    #[error("{}", describe(.0))]
    Connector(ConnectorError),
    #[error(
        "connector `{connector}` ran longer than its limit of {limit:?} in `{function}` and was stopped"
    )]
    Timeout {
        connector: String,
        function: &'static str,
        limit: Duration,
    },
    #[error(
        "connector `{connector}` tried to use more than its memory limit of {limit_mib} MiB in `{function}` and was stopped"
    )]
    Memory {
        connector: String,
        function: &'static str,
        limit_mib: usize,
    },
    #[error("connector `{connector}` crashed in `{function}`: {message}")]
    Trap {
        connector: String,
        function: &'static str,
        message: String,
    },
    #[error(
        "this instance of connector `{connector}` stopped after an earlier failure ({reason}); start a new session"
    )]
    Dead { connector: String, reason: String },
    #[error("cannot start connector `{connector}`: {message}")]
    Instantiate { connector: String, message: String },
}

fn describe(error: &ConnectorError) -> String {
    match &error.field {
        Some(field) => format!("{} (field `{field}`)", error.message),
        None => error.message.clone(),
    }
}

/// Renders a decimal as text (`-0.530`).
pub fn decimal_text(d: &Decimal) -> String {
    if d.scale == 0 {
        return d.units.to_string();
    }
    let factor = 10u64.pow(u32::from(d.scale.min(18)));
    let abs = d.units.unsigned_abs();
    let sign = if d.units < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:0width$}",
        abs / factor,
        abs % factor,
        width = usize::from(d.scale)
    )
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: cache::CompileCache,
    client: reqwest::Client,
    _ticker: engine::EpochTicker,
}

/// One per process: the engine, the linker with the host imports, the compile cache and the
/// HTTP client all connections share.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let engine =
            engine::build(&options.engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        ConnectorCore::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |state| state)
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        // rustls needs one process-wide crypto provider; a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("koppel/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| RuntimeError::Engine(format!("HTTP client: {e}")))?;
        let cache = cache::CompileCache::new(&engine, options.cache_dir.clone());
        let ticker = engine::EpochTicker::start(&engine, options.engine.epoch_tick);
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                cache,
                client,
                _ticker: ticker,
            }),
        })
    }

    /// How many components were compiled, and how many came precompiled from the cache.
    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }

    /// Loads a connector from its component bytes. `name` says where it came from, for errors.
    pub async fn load(&self, name: &str, wasm: &[u8]) -> Result<Arc<Connector>, RuntimeError> {
        let invalid = |reason: String| RuntimeError::Invalid {
            name: name.to_owned(),
            reason,
        };
        let hash = content_hash(wasm);
        let component = self
            .inner
            .cache
            .component(&self.inner.engine, wasm, &hash)
            .map_err(|e| {
                invalid(format!(
                    "not a WebAssembly component built for the koppel contract ({e:#})"
                ))
            })?;
        let component_type = component.component_type();
        imports::check(
            component_type
                .imports(&self.inner.engine)
                .map(|(name, _)| name),
        )
        .map_err(invalid)?;
        let pre = self.inner.linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "it needs something the host does not provide: {e:#}"
            ))
        })?;
        let indices = ConnectorCoreIndices::new(&pre).map_err(|e| {
            invalid(format!(
                "it does not export the koppel connector interface: {e:#}"
            ))
        })?;
        // Contract 0.1.1; a component built against 0.1.0 has no `config-types`.
        let types_indices = ConfigTypesIndices::new(&pre).ok();
        let mut connector = Connector {
            runtime: self.inner.clone(),
            pre,
            indices,
            types_indices,
            manifest: empty_manifest(),
            config_types: Vec::new(),
            hash,
            size: wasm.len(),
        };
        let (manifest, types) = connector
            .read_manifest()
            .await
            .map_err(|e| invalid(format!("its manifest cannot be read: {e}")))?;
        validate_manifest(&manifest).map_err(invalid)?;
        config::validate_types(&manifest, &types).map_err(invalid)?;
        connector.manifest = manifest;
        connector.config_types = types;
        Ok(Arc::new(connector))
    }

    /// Loads a connector from a `.wasm` file.
    pub async fn load_file(&self, path: &Path) -> Result<Arc<Connector>, RuntimeError> {
        let wasm = tokio::fs::read(path)
            .await
            .map_err(|source| RuntimeError::Read {
                path: path.to_owned(),
                source,
            })?;
        self.load(&path.display().to_string(), &wasm).await
    }
}

fn empty_manifest() -> Manifest {
    Manifest {
        id: String::new(),
        name: String::new(),
        version: String::new(),
        description: String::new(),
        streams: Vec::new(),
        config: Vec::new(),
        outbound_hosts: Vec::new(),
    }
}

/// Checks what the host relies on: a usable id, unique names, templates that name config keys.
pub fn validate_manifest(manifest: &Manifest) -> Result<(), String> {
    let id_ok = !manifest.id.is_empty()
        && manifest
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !id_ok {
        return Err(format!(
            "manifest id {:?} must be lower-case letters, digits, - or _",
            manifest.id
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for stream in &manifest.streams {
        if stream.name.is_empty() || !seen.insert(stream.name.as_str()) {
            return Err(format!(
                "stream name {:?} is empty or declared twice",
                stream.name
            ));
        }
    }
    let mut keys = std::collections::HashSet::new();
    for field in &manifest.config {
        if field.name.is_empty() || !keys.insert(field.name.as_str()) {
            return Err(format!(
                "config key {:?} is empty or declared twice",
                field.name
            ));
        }
    }
    for template in &manifest.outbound_hosts {
        for name in http::placeholders(template) {
            if !keys.contains(name) {
                return Err(format!(
                    "outbound host {template:?} refers to `{name}`, which is not a config key"
                ));
            }
        }
    }
    Ok(())
}

/// A loaded connector: compiled, linked, pre-instantiated, with its manifest.
pub struct Connector {
    runtime: Arc<RuntimeInner>,
    pre: wasmtime::component::InstancePre<HostState>,
    indices: ConnectorCoreIndices,
    /// None: the component exports no `config-types` (built against contract 0.1.0).
    types_indices: Option<ConfigTypesIndices>,
    manifest: Manifest,
    config_types: Vec<TypedKey>,
    hash: String,
    size: usize,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("id", &self.manifest.id)
            .field("hash", &self.hash)
            .finish()
    }
}

/// What a connection needs besides its config.
pub struct ConnectionSpec {
    pub tenant: String,
    /// The connection's name in the tenant's config (`till`, `shop`).
    pub name: String,
    pub config: BTreeMap<String, String>,
    pub limits: Limits,
    pub activity: Arc<dyn ActivitySink>,
    pub kv: Arc<dyn KvStore>,
}

impl ConnectionSpec {
    /// A spec with default limits, no activity recording and an in-memory key-value store.
    pub fn new(tenant: &str, name: &str, config: BTreeMap<String, String>) -> Self {
        ConnectionSpec {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            config,
            limits: Limits::default(),
            activity: Arc::new(NullSink),
            kv: Arc::new(MemoryKv::new()),
        }
    }
}

impl Connector {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn id(&self) -> &str {
        &self.manifest.id
    }

    /// The types of its config keys beyond their kinds (`config-types`, contract 0.1.1);
    /// empty for a component built against 0.1.0.
    pub fn config_types(&self) -> &[TypedKey] {
        &self.config_types
    }

    /// Whether the component exports `config-types` (built against contract 0.1.1 or later).
    pub fn has_config_types(&self) -> bool {
        self.types_indices.is_some()
    }

    /// A config as written in `koppel.toml` (values from the environment read), converted to
    /// what the connector receives, each value checked against its key's type.
    pub fn config_from_toml(
        &self,
        table: &toml::Table,
    ) -> Result<config::GuestConfig, ConfigError> {
        config::from_toml(&self.manifest, &self.config_types, table)
    }

    /// SHA-256 of the component.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A connection of this connector: the config checked, the allow-list built.
    pub fn connect(self: &Arc<Self>, spec: ConnectionSpec) -> Result<Connection, ConfigError> {
        let config = config::validate(&self.manifest, &self.config_types, &spec.config)?;
        let allow = AllowList::from_templates(&self.manifest.outbound_hosts, &config);
        let redactor = Redactor::new(config.secret_values());
        let ctx = Arc::new(CallContext {
            tenant: spec.tenant,
            connection: spec.name,
            connector: self.manifest.id.clone(),
            allow,
            redactor,
            limits: spec.limits,
            activity: spec.activity,
            kv: spec.kv,
            client: self.runtime.client.clone(),
        });
        Ok(Connection {
            connector: self.clone(),
            config,
            ctx,
        })
    }

    async fn read_manifest(&self) -> Result<(Manifest, Vec<TypedKey>), CallError> {
        let ctx = Arc::new(CallContext {
            tenant: String::new(),
            connection: String::from("(manifest)"),
            connector: String::from("(loading)"),
            allow: AllowList::default(),
            redactor: Redactor::default(),
            limits: Limits {
                call_timeout: Duration::from_secs(10),
                ..Limits::default()
            },
            activity: Arc::new(NullSink),
            kv: Arc::new(MemoryKv::new()),
            client: self.runtime.client.clone(),
        });
        let mut session = Session::start(self, ctx).await?;
        let manifest = session.manifest().await?;
        let types = match &self.types_indices {
            Some(indices) => session.config_types(indices).await?,
            None => Vec::new(),
        };
        Ok((manifest, types))
    }
}

/// A configured connection of a connector, for one tenant.
pub struct Connection {
    connector: Arc<Connector>,
    config: ConnectionConfig,
    ctx: Arc<CallContext>,
}

impl std::fmt::Debug for Connection {
    /// The config's secrets show as set, never their value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("tenant", &self.ctx.tenant)
            .field("name", &self.ctx.connection)
            .field("connector", &self.ctx.connector)
            .field("config", &self.config)
            .finish()
    }
}

impl Connection {
    pub fn connector(&self) -> &Arc<Connector> {
        &self.connector
    }

    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    pub fn name(&self) -> &str {
        &self.ctx.connection
    }

    pub fn tenant(&self) -> &str {
        &self.ctx.tenant
    }

    pub fn allow_list(&self) -> &AllowList {
        &self.ctx.allow
    }

    /// Redacts this connection's secrets from a text.
    pub fn redact(&self, text: &str) -> String {
        self.ctx.redactor.text(text)
    }

    /// Runs the connector's `check` (one cheap authenticated call) in a fresh instance.
    pub async fn check(&self) -> Result<(), CallError> {
        self.check_measured().await.0
    }

    /// [`Connection::check`], also giving the most memory its instance grew to, in bytes.
    pub async fn check_measured(&self) -> (Result<(), CallError>, usize) {
        let mut session = match self.instantiate().await {
            Ok(session) => session,
            Err(error) => return (Err(error), 0),
        };
        let outcome = session.check(&self.config.to_guest()).await;
        (outcome, session.peak_memory())
    }

    /// A fresh instance with the config applied: the unit of work (a flow run's reads, writes
    /// and lookups).
    pub async fn session(&self) -> Result<Session, CallError> {
        let mut session = self.instantiate().await?;
        session.configure(&self.config.to_guest()).await?;
        Ok(session)
    }

    /// A fresh instance without `configure` (for `check` and benchmarks).
    pub async fn instantiate(&self) -> Result<Session, CallError> {
        Session::start(&self.connector, self.ctx.clone()).await
    }
}

/// What the host imports of one connection need.
pub(crate) struct CallContext {
    pub(crate) tenant: String,
    pub(crate) connection: String,
    pub(crate) connector: String,
    pub(crate) allow: AllowList,
    pub(crate) redactor: Redactor,
    pub(crate) limits: Limits,
    pub(crate) activity: Arc<dyn ActivitySink>,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) client: reqwest::Client,
}

impl CallContext {
    fn kv_scope(&self) -> String {
        format!("{}/{}", self.tenant, self.connection)
    }
}

/// Caps the guest's memory and remembers when it hit the cap, for a clear error.
struct SandboxLimiter {
    memory_bytes: usize,
    exceeded: bool,
    /// The most linear memory the guest has grown to.
    peak: usize,
}

impl ResourceLimiter for SandboxLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.exceeded = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit: the guest asked for {desired} bytes, the limit is {}",
                self.memory_bytes
            )));
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// The data of one store.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: SandboxLimiter,
    ctx: Arc<CallContext>,
    log_lines: u32,
    /// When the running call must stop at the latest: past it, the next epoch check traps.
    hard_deadline: Instant,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Most guest log lines one instance may write.
const MAX_LOG_LINES: u32 = 10_000;
const MAX_KV_KEY_BYTES: usize = 256;

impl bindings::koppel::connector::types::Host for HostState {}
impl bindings::koppel::connector::manifest_types::Host for HostState {}

impl bindings::koppel::connector::host::Host for HostState {
    async fn http_send(
        &mut self,
        request: bindings::HttpRequest,
    ) -> Result<bindings::HttpResponse, bindings::HttpError> {
        http::send(&self.ctx, request).await
    }

    async fn log(
        &mut self,
        level: bindings::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(connection = %self.ctx.connection, "Connector logs too much; further lines are dropped.");
            }
            return;
        }
        let redactor = &self.ctx.redactor;
        let message = redactor.text(&message);
        let fields = fields
            .iter()
            .map(|(k, v)| {
                let v = if redact::is_sensitive_name(k) {
                    redact::REDACTED.to_owned()
                } else {
                    redactor.text(v)
                };
                format!("{k}={v}")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let (tenant, connection) = (&self.ctx.tenant, &self.ctx.connection);
        match level {
            bindings::Level::Trace => {
                tracing::trace!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
            bindings::Level::Debug => {
                tracing::debug!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
            bindings::Level::Info => {
                tracing::info!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
            bindings::Level::Warn => {
                tracing::warn!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
            bindings::Level::Error => {
                tracing::error!(target: "koppel::guest", %tenant, %connection, %fields, "{message}")
            }
        }
    }

    async fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.ctx.kv.get(&self.ctx.kv_scope(), &key).await
    }

    async fn kv_set(&mut self, key: String, value: Vec<u8>, ttl_seconds: Option<u32>) {
        if key.len() > MAX_KV_KEY_BYTES || value.len() > kv::MAX_VALUE_BYTES {
            tracing::warn!(connection = %self.ctx.connection, key_bytes = key.len(), value_bytes = value.len(), "Key-value entry too large; not stored.");
            return;
        }
        let ttl = ttl_seconds.map(|s| Duration::from_secs(u64::from(s)));
        self.ctx
            .kv
            .set(&self.ctx.kv_scope(), &key, value, ttl)
            .await;
    }

    async fn kv_delete(&mut self, key: String) {
        self.ctx.kv.delete(&self.ctx.kv_scope(), &key).await;
    }
}

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

/// Ticks between two yields of a running guest to the executor.
const YIELD_TICKS: u64 = 1;

impl Session {
    async fn start(connector: &Connector, ctx: Arc<CallContext>) -> Result<Session, CallError> {
        let stderr = GuestOutput::new("stderr", ctx.clone());
        let wasi = WasiCtx::builder()
            .stdout(GuestOutput::new("stdout", ctx.clone()))
            .stderr(stderr.clone())
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: SandboxLimiter {
                memory_bytes: ctx.limits.memory_bytes,
                exceeded: false,
                peak: 0,
            },
            ctx: ctx.clone(),
            log_lines: 0,
            hard_deadline: Instant::now() + ctx.limits.call_timeout,
        };
        let mut store = Store::new(&connector.runtime.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.epoch_deadline_callback(|store| {
            if Instant::now() >= store.data().hard_deadline {
                return Ok(UpdateDeadline::Interrupt);
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
        let error = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Err(_elapsed) => CallError::Timeout {
                connector,
                function,
                limit,
            },
            Ok(Err(_)) if exceeded => CallError::Memory {
                connector,
                function,
                limit_mib: self.ctx.limits.memory_bytes >> 20,
            },
            Ok(Err(error)) if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                CallError::Timeout {
                    connector,
                    function,
                    limit,
                }
            }
            Ok(Err(error)) => {
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

    async fn manifest(&mut self) -> Result<Manifest, CallError> {
        let (store, bindings, limit) = self.arm()?;
        let call = bindings.koppel_connector_connector().call_manifest(store);
        let outcome = tokio::time::timeout(limit, call).await;
        self.settle("manifest", limit, outcome)
    }

    async fn config_types(
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
    async fn check(&mut self, config: &Vec<(String, String)>) -> Result<(), CallError> {
        let (store, bindings, limit) = self.arm()?;
        let call = bindings
            .koppel_connector_connector()
            .call_check(store, config);
        let outcome = tokio::time::timeout(limit, call).await;
        self.settle("check", limit, outcome)?
            .map_err(|e| self.connector_error(e))
    }

    async fn configure(&mut self, config: &Vec<(String, String)>) -> Result<(), CallError> {
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
