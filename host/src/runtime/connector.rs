//! A loaded connector ([`Connector`]) and its configured connections ([`Connection`]), from
//! which sessions start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::activity::{ActivitySink, NullSink};
use super::bindings::typed::exports::koppel::connector::config_types::GuestIndices as ConfigTypesIndices;
use super::bindings::{ConnectorCoreIndices, Manifest, TypedKey};
use super::config::{self, ConfigError, ConnectionConfig};
use super::host::{CallContext, HostState};
use super::http::{self, AllowList};
use super::kv::{KvStore, MemoryKv};
use super::limits::Limits;
use super::quota::TenantQuota;
use super::redact::Redactor;
use super::session::Session;
use super::{CallError, RuntimeInner};

pub(super) fn empty_manifest() -> Manifest {
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
    pub(super) runtime: Arc<RuntimeInner>,
    pub(super) pre: wasmtime::component::InstancePre<HostState>,
    pub(super) indices: ConnectorCoreIndices,
    /// None: the component exports no `config-types` (built against contract 0.1.0).
    pub(super) types_indices: Option<ConfigTypesIndices>,
    pub(super) manifest: Manifest,
    pub(super) config_types: Vec<TypedKey>,
    pub(super) hash: String,
    pub(super) size: usize,
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
    /// The tenant's quotas, shared by all its connections.
    pub quota: Arc<TenantQuota>,
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
            quota: TenantQuota::unlimited(tenant),
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
            quota: spec.quota,
            tenant: spec.tenant,
            connection: spec.name,
            connector: self.manifest.id.clone(),
            allow,
            redactor,
            limits: spec.limits,
            activity: spec.activity,
            kv: spec.kv,
            client: self.runtime.client.clone(),
            network: self.runtime.network.clone(),
        });
        Ok(Connection {
            connector: self.clone(),
            config,
            ctx,
        })
    }

    pub(super) async fn read_manifest(&self) -> Result<(Manifest, Vec<TypedKey>), CallError> {
        let ctx = Arc::new(CallContext {
            quota: TenantQuota::unlimited(""),
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
            network: self.runtime.network.clone(),
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
