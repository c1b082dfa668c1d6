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
mod connector;
mod engine;
mod guest_io;
mod host;
pub mod http;
pub mod imports;
pub mod kv;
pub mod limits;
mod log;
pub mod network;
pub mod pool;
pub mod quota;
pub mod redact;
mod session;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker};

pub use activity::{ActivitySink, Exchange, MemorySink, NullSink};
pub use bindings::{ConnectorError, Decimal, Manifest, Page, Record, WriteOptions, WriteOutcome};
pub use cache::{CacheStats, content_hash};
pub use config::{ConfigError, ConnectionConfig};
pub use connector::{Connection, ConnectionSpec, Connector, validate_manifest};
pub use engine::EngineOptions;
pub use kv::{KvStore, MemoryKv};
pub use limits::Limits;
pub use network::NetworkGuard;
pub use pool::{PoolSlot, RunPool};
pub use quota::{Quota, QuotaLimits, TenantQuota};
pub use session::Session;

use bindings::typed::exports::koppel::connector::config_types::GuestIndices as ConfigTypesIndices;
use bindings::{ConnectorCore, ConnectorCoreIndices};
use host::HostState;

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
    /// Which addresses connectors may reach (all, unless hosting for others).
    pub network: NetworkGuard,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            engine: EngineOptions::default(),
            cache_dir: default_cache_dir(),
            network: NetworkGuard::open(),
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
    /// The tenant reached a quota of all its connections together (hosting).
    #[error("connector `{connector}` was stopped in `{function}`: {message}")]
    Quota {
        connector: String,
        function: &'static str,
        quota: Quota,
        message: String,
    },
}

fn describe(error: &ConnectorError) -> String {
    match &error.field {
        Some(field) => format!("{} (field `{field}`)", error.message),
        None => error.message.clone(),
    }
}

pub(crate) struct RuntimeInner {
    engine: Engine,
    linker: Linker<HostState>,
    cache: cache::CompileCache,
    client: reqwest::Client,
    network: NetworkGuard,
    /// The epoch ticker's period: what a guest's tick costs its tenant's CPU quota.
    tick: Duration,
    /// Connectors loaded, by content hash: a component loaded again (by a thousand hosted
    /// tenants) is the same one, compiled code, instance template and manifest shared.
    loaded: std::sync::Mutex<HashMap<String, Weak<Connector>>>,
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
        // Redirects are never followed: a connector sees the answer (and the network guard
        // would have to check every hop).
        let mut client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("koppel/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .pool_idle_timeout(Duration::from_secs(60));
        if options.network.is_public_only() {
            client = client.dns_resolver(network::GuardedResolver::shared(&options.network));
        }
        let client = client
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
                network: options.network.clone(),
                tick: options.engine.epoch_tick,
                loaded: std::sync::Mutex::new(HashMap::new()),
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
        if let Some(connector) = self.loaded(&hash) {
            return Ok(connector);
        }
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
            manifest: connector::empty_manifest(),
            config_types: Vec::new(),
            hash: hash.clone(),
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
        let connector = Arc::new(connector);
        let mut loaded = match self.inner.loaded.lock() {
            Ok(loaded) => loaded,
            Err(poisoned) => poisoned.into_inner(),
        };
        loaded.retain(|_, weak| weak.strong_count() > 0);
        loaded.insert(hash, Arc::downgrade(&connector));
        Ok(connector)
    }

    /// The connector of content hash `hash`, if it is loaded and still in use.
    fn loaded(&self, hash: &str) -> Option<Arc<Connector>> {
        let loaded = match self.inner.loaded.lock() {
            Ok(loaded) => loaded,
            Err(poisoned) => poisoned.into_inner(),
        };
        loaded.get(hash).and_then(Weak::upgrade)
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
