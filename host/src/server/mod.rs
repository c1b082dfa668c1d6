//! The HTTP side of koppel (axum on hyper): the JSON API under `/api/v1`, the dashboard
//! pages, `/healthz`, Prometheus `/metrics`, the inbound webhooks that start flows at once,
//! and the backend of the Shopware app (registration and signed events, [`shopware_app`]).
//! One process serves many tenants: a token belongs to one tenant and every query a request
//! makes is scoped to that tenant.
//!
//! Start with [`start`] (what `koppel run` calls), or build a [`ServerState`] and call
//! [`serve`]. The user's guide is `docs/dashboard.md`.

pub mod admin;
mod api;
mod auth;
mod dashboard;
mod metrics;
pub mod retention;
pub mod shopware_app;
mod webhooks;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use rand::RngCore;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{RetentionConfig, ShopwareApp, WebhookScheme, WebhookSource, WebhooksConfig};
use crate::flow::schedule::Scheduler;
use crate::flow::{Environment, FlowDef, Loaded, RunSummary};
use crate::notify::{Monitor, Notifier, NotifyError};
use crate::store::Masker;
use crate::store::{Store, StoreError, token_hash};

/// What the server can ask of the running schedule.
pub trait FlowControl: Send + Sync {
    /// Runs the flow now (after its current run, if one is going; while a run is queued
    /// already, the request merges into it). False when the flow is not scheduled here.
    fn run_now(&self, flow: &str) -> bool;
    /// Runs the flow now, recording why (`webhook`, `manual`).
    fn run_triggered(&self, flow: &str, _trigger: &'static str) -> bool {
        self.run_now(flow)
    }
    /// The flow's override (enabled, interval) changed in the database: the scheduler
    /// re-reads it with [`Store::flow_override`] before its next scheduled run.
    fn settings_changed(&self, _flow: &str) {}
}

impl FlowControl for Scheduler {
    fn run_now(&self, flow: &str) -> bool {
        Scheduler::run_now(self, flow, "manual")
    }

    fn run_triggered(&self, flow: &str, trigger: &'static str) -> bool {
        Scheduler::run_now(self, flow, trigger)
    }

    fn settings_changed(&self, flow: &str) {
        Scheduler::settings_changed(self, flow);
    }
}

/// A flow's schedule as it is now: the dashboard's override over `koppel.toml`. The
/// scheduler calls this before each scheduled run: skip the run when not enabled, and sleep
/// the interval returned before the next one.
pub async fn effective_schedule(
    store: &Store,
    tenant: &str,
    flow: &FlowDef,
) -> Result<(bool, Duration), StoreError> {
    let setting = store.flow_override(tenant, &flow.name).await?;
    let configured = flow.interval();
    Ok((
        setting.enabled.unwrap_or(true),
        setting.interval().unwrap_or(configured),
    ))
}

/// The server could not start or stopped on an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the HTTP server stopped: {0}")]
    Io(#[source] std::io::Error),
}

fn config_error(key: &str, message: impl Into<String>) -> ServerError {
    ServerError::Config {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// An inbound webhook of a connection, with its secret resolved.
#[derive(Clone)]
pub struct WebhookSetup {
    pub scheme: WebhookScheme,
    pub secret: String,
    pub flows: Vec<String>,
    pub events: Vec<String>,
    pub max_age: Duration,
}

impl std::fmt::Debug for WebhookSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSetup")
            .field("scheme", &self.scheme)
            .field("secret", &"<set>")
            .field("flows", &self.flows)
            .field("events", &self.events)
            .field("max_age", &self.max_age)
            .finish()
    }
}

/// The webhook of `connection` as `[webhooks.<connection>]` describes it, checked against
/// the tenant's connections and flows.
fn webhook_setup(
    connection: &str,
    source: &WebhookSource,
    env: &Environment,
    flows: &[FlowDef],
) -> Result<WebhookSetup, ServerError> {
    let key = |leaf: &str| format!("webhooks.{connection}.{leaf}");
    let file = WebhooksConfig([(connection.to_owned(), source.clone())].into());
    file.check(env.connections.keys())
        .map_err(|(key, message)| config_error(&key, message))?;
    let flows = crate::flow::loaded::webhook_flows(connection, source.flows.as_deref(), flows)
        .map_err(|m| config_error(&key("flows"), m))?;
    Ok(WebhookSetup {
        scheme: source.scheme.unwrap_or(WebhookScheme::Koppel),
        secret: source
            .secret
            .resolve()
            .map_err(|m| config_error(&key("secret"), m))?,
        flows,
        events: source.events.clone(),
        max_age: source.max_age(),
    })
}

/// Everything the server needs of one tenant.
pub struct TenantState {
    pub tenant: String,
    /// The tenant's store, activity writer and connections (for "test connection").
    pub env: Environment,
    /// The flows configured for the tenant.
    pub flows: Vec<FlowDef>,
    /// The running schedule (none: run-now and webhooks answer 503).
    pub control: Option<Arc<dyn FlowControl>>,
    /// The operator paused the tenant (hosting): why there is no schedule.
    pub paused: bool,
    /// Inbound webhooks, by the connection whose calls they are.
    pub webhooks: BTreeMap<String, WebhookSetup>,
    /// Connections served as a Shopware app, by connection name.
    pub apps: BTreeMap<String, shopware_app::AppSetup>,
    /// Where people and shops reach this server (`[server] public_url`).
    pub public_url: Option<String>,
    pub retention: RetentionConfig,
    pub masker: Masker,
    /// Deliveries (signatures, Shopware event ids) accepted lately, until they expire: their
    /// replays are ignored.
    seen: Mutex<HashMap<String, i64>>,
}

impl TenantState {
    /// A tenant with its flows, no schedule, no webhooks, default retention.
    pub fn new(env: Environment, flows: Vec<FlowDef>) -> TenantState {
        TenantState {
            tenant: env.tenant.clone(),
            env,
            flows,
            control: None,
            paused: false,
            webhooks: BTreeMap::new(),
            apps: BTreeMap::new(),
            public_url: None,
            retention: RetentionConfig::default(),
            masker: Masker::default(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// A tenant as `koppel.toml` describes it (`[webhooks]`, `[retention]`).
    pub fn from_loaded(loaded: &Loaded, env: Environment) -> Result<TenantState, ServerError> {
        let mut state = TenantState::new(env, loaded.flows.clone());
        state.set_webhooks(&loaded.config.webhooks)?;
        state.public_url = loaded.config.server.public_url.clone();
        state.set_shopware_apps(&loaded.config.shopware_app)?;
        state.set_retention(loaded.config.retention.clone())?;
        Ok(state)
    }

    /// Serves the connections of `[shopware_app.*]` as a Shopware app. Each names a
    /// connection of the environment, and its flows are among the tenant's.
    pub fn set_shopware_apps(
        &mut self,
        apps: &BTreeMap<String, ShopwareApp>,
    ) -> Result<(), ServerError> {
        let mut setups = BTreeMap::new();
        for (connection, app) in apps {
            let key = |leaf: &str| format!("shopware_app.{connection}.{leaf}");
            let setup = self.env.connections.get(connection).ok_or_else(|| {
                config_error(
                    &format!("shopware_app.{connection}"),
                    format!("connection `{connection}` is not defined"),
                )
            })?;
            let flows = app.flows();
            for flow in &flows {
                if self.flow(flow).is_none() {
                    let known: Vec<&str> = self.flows.iter().map(|f| f.name.as_str()).collect();
                    return Err(config_error(
                        &key("flows"),
                        format!(
                            "flow `{flow}` is not enabled; enable it under [flows.{flow}] or name one of {known:?}"
                        ),
                    ));
                }
            }
            setups.insert(
                connection.clone(),
                shopware_app::AppSetup::new(
                    &self.tenant,
                    connection,
                    app.app_secret()
                        .map_err(|m| config_error(&key("secret"), m))?,
                    app.name().to_owned(),
                    flows,
                    app.events(),
                    app.max_age(),
                    setup.config.get("shop_url").cloned(),
                    setup.supplied.clone(),
                ),
            );
        }
        self.apps = setups;
        Ok(())
    }

    /// The inbound webhooks of `[webhooks.<connection>]`, each checked against the tenant's
    /// connections and flows.
    pub fn set_webhooks(&mut self, config: &WebhooksConfig) -> Result<(), ServerError> {
        let mut webhooks = BTreeMap::new();
        for (connection, source) in &config.0 {
            let setup = webhook_setup(connection, source, &self.env, &self.flows)?;
            webhooks.insert(connection.clone(), setup);
        }
        self.webhooks = webhooks;
        Ok(())
    }

    pub fn set_retention(&mut self, config: RetentionConfig) -> Result<(), ServerError> {
        self.masker = Masker::new(&config.mask_fields);
        self.retention = config;
        Ok(())
    }

    pub fn with_control(mut self, control: Arc<dyn FlowControl>) -> TenantState {
        self.control = Some(control);
        self
    }

    pub fn store(&self) -> &Store {
        &self.env.store
    }

    pub fn flow(&self, name: &str) -> Option<&FlowDef> {
        self.flows.iter().find(|f| f.name == name)
    }

    /// Whether a delivery with `id` was accepted within its time to live.
    fn seen_lately(&self, id: &str, now: i64) -> bool {
        let mut seen = self.seen();
        seen.retain(|_, expires| *expires > now);
        seen.contains_key(id)
    }

    /// Remembers an accepted delivery for `ttl_secs`.
    fn remember(&self, id: String, now: i64, ttl_secs: i64) {
        self.seen().insert(id, now + ttl_secs);
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        match self.seen.lock() {
            Ok(seen) => seen,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The tenants a process serves and the tokens that open them. Tenants come and go while
/// the server runs (hosting reads its tenants folder again): a request holds the tenant it
/// found for as long as it runs.
#[derive(Default)]
pub struct ServerState {
    tenants: RwLock<Tenants>,
    /// Hashes of the operator API's tokens.
    operator_tokens: HashSet<String>,
    /// What the operator API acts on (none: the operator API answers 404).
    admin: OnceLock<Weak<dyn admin::TenantAdmin>>,
}

#[derive(Default)]
struct Tenants {
    by_name: BTreeMap<String, Arc<TenantState>>,
    /// Token hash → tenant.
    tokens: HashMap<String, String>,
}

/// A new random API token (`kpl_` and 48 hex digits).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("kpl_{}", hex::encode(bytes))
}

impl ServerState {
    pub fn new() -> ServerState {
        ServerState::default()
    }

    /// A server whose operator API opens with these tokens.
    pub fn with_operator_tokens(tokens: &[String]) -> ServerState {
        ServerState {
            operator_tokens: tokens.iter().map(|t| token_hash(t)).collect(),
            ..ServerState::default()
        }
    }

    /// Hands the operator API what it acts on (once).
    pub fn set_admin(&self, admin: Weak<dyn admin::TenantAdmin>) {
        let _ = self.admin.set(admin);
    }

    fn admin(&self) -> Option<Arc<dyn admin::TenantAdmin>> {
        self.admin.get().and_then(Weak::upgrade)
    }

    fn is_operator_token(&self, token: &str) -> bool {
        !self.operator_tokens.is_empty() && self.operator_tokens.contains(&token_hash(token))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tenants> {
        match self.tenants.read() {
            Ok(tenants) => tenants,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Tenants> {
        match self.tenants.write() {
            Ok(tenants) => tenants,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Adds a tenant. Its tokens are `configured` plus those stored in its database; with
    /// none at all, one is generated, stored (as a hash) and returned to be shown once.
    pub async fn add_tenant(
        &self,
        tenant: TenantState,
        configured: &[String],
    ) -> Result<Option<String>, ServerError> {
        let name = tenant.tenant.clone();
        let mut hashes: Vec<String> = configured.iter().map(|t| token_hash(t)).collect();
        hashes.extend(tenant.store().token_hashes(&name).await?);
        let mut generated = None;
        if hashes.is_empty() {
            let token = generate_token();
            tenant
                .store()
                .add_token(&name, "generated at first start", &token)
                .await?;
            hashes.push(token_hash(&token));
            generated = Some(token);
        }
        self.insert(tenant, hashes)?;
        Ok(generated)
    }

    /// Adds a tenant, or replaces the one of the same name, with the tokens `configured`
    /// plus those stored in its database; none are generated (a hosted tenant gets its
    /// first through the operator API).
    pub async fn put_tenant(
        &self,
        tenant: TenantState,
        configured: &[String],
    ) -> Result<(), ServerError> {
        let mut hashes: Vec<String> = configured.iter().map(|t| token_hash(t)).collect();
        hashes.extend(tenant.store().token_hashes(&tenant.tenant).await?);
        self.insert(tenant, hashes)
    }

    fn insert(&self, tenant: TenantState, hashes: Vec<String>) -> Result<(), ServerError> {
        let name = tenant.tenant.clone();
        let mut tenants = self.write();
        for hash in &hashes {
            if self.operator_tokens.contains(hash) {
                return Err(config_error(
                    "server.tokens",
                    format!("tenant `{name}` has a token of the operator; give it its own"),
                ));
            }
            if let Some(other) = tenants.tokens.get(hash)
                && *other != name
            {
                return Err(config_error(
                    "server.tokens",
                    format!("tenants `{other}` and `{name}` share a token; give each its own"),
                ));
            }
        }
        tenants.tokens.retain(|_, owner| *owner != name);
        for hash in hashes {
            tenants.tokens.insert(hash, name.clone());
        }
        tenants.by_name.insert(name, Arc::new(tenant));
        Ok(())
    }

    /// Stops serving a tenant: its tokens open nothing from now on. The tenant, if it was
    /// served.
    pub fn remove_tenant(&self, name: &str) -> Option<Arc<TenantState>> {
        let mut tenants = self.write();
        tenants.tokens.retain(|_, owner| owner != name);
        tenants.by_name.remove(name)
    }

    /// Lets one more token open a tenant (one the operator API just issued).
    pub fn add_token_hash(&self, tenant: &str, hash: String) {
        self.write().tokens.insert(hash, tenant.to_owned());
    }

    /// The tenant a token opens.
    pub fn tenant_of_token(&self, token: &str) -> Option<Arc<TenantState>> {
        let tenants = self.read();
        let tenant = tenants.tokens.get(&token_hash(token))?;
        tenants.by_name.get(tenant).cloned()
    }

    pub fn tenant(&self, name: &str) -> Option<Arc<TenantState>> {
        self.read().by_name.get(name).cloned()
    }

    pub fn tenants(&self) -> Vec<Arc<TenantState>> {
        self.read().by_name.values().cloned().collect()
    }
}

/// Every route: `/healthz`, `/metrics`, `/api/v1/…`, `/webhooks/…`, `/shopware/app/…` and
/// the dashboard.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::metrics))
        .nest("/api/v1/admin", admin::routes())
        .nest("/api/v1", api::routes())
        .merge(webhooks::routes())
        .merge(shopware_app::routes())
        .merge(dashboard::routes())
        .with_state(state)
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Serves on `listener` until `shutdown` is cancelled (requests in flight finish).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ServerState>,
    shutdown: CancellationToken,
) -> Result<(), ServerError> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .map_err(ServerError::Io)
}

/// A started server with its monitor and retention tasks.
pub struct Started {
    /// Where it listens (the port is real when `listen` asked for port 0).
    pub addr: SocketAddr,
    /// A token generated at this first start: print it once, it is not stored in clear.
    pub generated_token: Option<String>,
    /// The tenants served (hosting adds and removes its own while the server runs).
    pub state: Arc<ServerState>,
    tasks: Vec<JoinHandle<()>>,
}

impl Started {
    /// Waits for the server and its tasks to end (cancel the token given to [`start`]).
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts everything `koppel run` needs besides the scheduler, for the tenant of `loaded`:
/// the HTTP server on `[server] listen`, the monitor (incidents and notifications, fed by
/// `runs`), and the retention purge. All stop when `cancel` is cancelled.
pub async fn start(
    loaded: &Loaded,
    env: Environment,
    control: Option<Arc<dyn FlowControl>>,
    runs: broadcast::Receiver<RunSummary>,
    cancel: CancellationToken,
) -> Result<Started, ServerError> {
    let config = &loaded.config;
    let notifier = Arc::new(Notifier::from_config(&config.notify)?);
    let mut tenant = TenantState::from_loaded(loaded, env.clone())?;
    if let Some(control) = control {
        tenant = tenant.with_control(control);
    }
    let tokens = config
        .server
        .resolved_tokens()
        .map_err(|(key, message)| config_error(&key, message))?;
    let retention = tenant.retention.clone();
    let state = ServerState::with_operator_tokens(&config.hosting.operator_tokens());
    let generated_token = state.add_tenant(tenant, &tokens).await?;
    let listen = config.server.listen();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: listen.to_owned(),
            source,
        })?;
    let addr = listener.local_addr().map_err(ServerError::Io)?;
    let monitor = Monitor::new(
        &env.tenant,
        env.store.clone(),
        loaded.flows.clone(),
        notifier,
        config.notify.record_attempts(),
    )
    .with_public_url(config.server.public_url.clone());
    let mut tasks = vec![
        monitor.spawn(runs, Duration::from_secs(60), cancel.clone()),
        retention::spawn(
            env.store.clone(),
            env.tenant.clone(),
            retention,
            cancel.clone(),
        ),
    ];
    let state = Arc::new(state);
    let shutdown = cancel.clone();
    let served = state.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(error) = serve(listener, served, shutdown).await {
            tracing::error!(%error, "The dashboard stopped.");
        }
    }));
    tracing::info!(%addr, tenant = %env.tenant, "Dashboard and API listening.");
    Ok(Started {
        addr,
        generated_token,
        state,
        tasks,
    })
}
