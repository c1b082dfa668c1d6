//! A configuration with its flows: the flows `koppel.toml` enables, built from the shipped
//! definitions and the file's changes and checked against its connections, and the
//! environment they run in (connectors loaded, configs checked against their manifests).
//! What `koppel sync`, `koppel run` and the demo start from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::definition::{FlowDef, FlowOverride, default_flow};
use super::engine::{ConnectionSetup, Environment, Supplied};
use crate::config::{Config, Connection, LoadError, QuotasConfig, ShopwareApp};
use crate::runtime::{Limits, QuotaLimits, Runtime, TenantQuota};
use crate::store::{ActivityWriter, Sealer, Store};

/// A loaded, checked configuration and the flows it enables.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub path: PathBuf,
    /// Every section of the file.
    pub config: Config,
    /// The enabled flows, complete.
    pub flows: Vec<FlowDef>,
}

impl Loaded {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<Loaded, LoadError> {
        Self::from_config(Config::read(path)?)
    }

    /// Builds and checks the flows of a read configuration, and what names them: the flows
    /// a webhook runs.
    pub fn from_config(config: Config) -> Result<Loaded, LoadError> {
        let flows = enabled_flows(&config)?;
        for (connection, source) in &config.webhooks.0 {
            webhook_flows(connection, source.flows.as_deref(), &flows)
                .map_err(|m| config.error(format!("webhooks.{connection}.flows"), m))?;
        }
        Ok(Loaded {
            path: config.path.clone(),
            config,
            flows,
        })
    }

    /// The state database's path.
    pub fn database(&self) -> PathBuf {
        self.config.database.clone()
    }

    /// Loads the connectors, checks each connection's config against its manifest, and gives
    /// what runs need.
    pub async fn environment(
        &self,
        runtime: &Runtime,
        store: Store,
        activity: ActivityWriter,
    ) -> Result<Environment, LoadError> {
        let config = &self.config;
        let mut connections = BTreeMap::new();
        for (name, connection) in &config.connections {
            let key = format!("connections.{name}");
            let loaded = crate::connectors::load(runtime, &connection.connector)
                .await
                .map_err(|e| config.error(format!("{key}.connector"), format!("{e:#}")))?;
            // Check the config now, so a typo stops the start, not the first run.
            let at_first = |problems: crate::runtime::ConfigError| {
                let first = problems
                    .problems
                    .first()
                    .map(|p| p.key.clone())
                    .unwrap_or_default();
                config.error(format!("{key}.config.{first}"), problems.to_string())
            };
            let guest = loaded
                .config_from_toml(&connection.config)
                .map_err(at_first)?;
            for warning in &guest.warnings {
                tracing::warn!(
                    file = %self.path.display(),
                    key = %format!("{key}.config.{}", warning.key),
                    "{}", warning.message
                );
            }
            // Keys a Shopware app registration supplies may be left out of the file; the
            // rest is checked now all the same.
            let supplied = self.supplied(name, connection, &store).await;
            let mut manifest = loaded.manifest().clone();
            let awaited = supplied.awaited();
            for field in &mut manifest.config {
                if awaited.contains(&field.name) {
                    field.required = false;
                }
            }
            crate::runtime::config::validate(&manifest, loaded.config_types(), &guest.values)
                .map_err(at_first)?;
            connections.insert(
                name.clone(),
                ConnectionSetup {
                    connector: Arc::clone(&loaded),
                    config: guest.values,
                    limits: Limits::from_section(&connection.limits),
                    supplied,
                },
            );
        }
        for flow in &self.flows {
            if let Some(setup) = connections.get(&flow.source.connection) {
                check_combine(flow, setup.connector.manifest())
                    .map_err(|m| config.error(format!("flows.{}.combine", flow.name), m))?;
            }
            // A watched flow needs a source that can tell what changed.
            if flow.watch.is_some()
                && let Some(setup) = connections.get(&flow.source.connection)
                && !super::watch::offers_changes(setup.connector.manifest())
            {
                return Err(config.error(
                    format!("flows.{}.watch", flow.name),
                    format!(
                        "connection `{}` ({}) has no `{}` stream to watch; leave `watch` out and run on `interval`",
                        flow.source.connection,
                        setup.connector.id(),
                        super::watch::CHANGES_STREAM
                    ),
                ));
            }
            // A target connector may know fields of its own (Shopware's `visibilities`), so
            // a name that is no canonical field is a warning, not an error.
            if let Some(setup) = connections.get(&flow.target.connection)
                && let Err(message) = check_create_only(flow, setup.connector.manifest())
            {
                tracing::warn!(
                    file = %self.path.display(),
                    key = %format!("flows.{}.create_only", flow.name),
                    "{message}, unless the target connector documents it"
                );
            }
        }
        let quota = TenantQuota::new(&config.tenant, quota_limits(&config.quotas()));
        activity.keep_at_most(quota.clone());
        Ok(Environment {
            tenant: config.tenant.clone(),
            store,
            activity,
            connections,
            quota,
        })
    }

    /// Records the connections (secrets shown as set) and the flows of `env` in its state
    /// database, for the dashboard and for other processes of this tenant: what `koppel run`
    /// does when it starts. Loading a configuration writes nothing.
    pub async fn register(&self, env: &Environment) -> Result<(), crate::store::StoreError> {
        for (name, setup) in &env.connections {
            let manifest = setup.connector.manifest();
            let shown: BTreeMap<&String, &str> = setup
                .config
                .iter()
                .map(|(key, value)| {
                    let secret = crate::runtime::redact::is_sensitive_name(key)
                        || manifest.config.iter().any(|f| {
                            &f.name == key && f.kind == crate::runtime::bindings::ConfigKind::Secret
                        });
                    (key, if secret { "<set>" } else { value.as_str() })
                })
                .collect();
            let shown = serde_json::to_string(&shown).unwrap_or_default();
            env.store
                .save_connection(&env.tenant, name, setup.connector.id(), &shown)
                .await?;
        }
        for flow in &self.flows {
            let definition = serde_json::to_string(flow).unwrap_or_default();
            env.store
                .save_flow(&env.tenant, &flow.name, true, flow.interval(), &definition)
                .await?;
        }
        Ok(())
    }

    pub fn flow(&self, name: &str) -> Option<&FlowDef> {
        self.flows.iter().find(|f| f.name == name)
    }

    /// The values a connection served by a Shopware app (`[shopware_app.<name>]`) receives
    /// from the shop's registration: the credentials the file leaves out, as far as a shop
    /// has handed them over already.
    async fn supplied(&self, name: &str, connection: &Connection, store: &Store) -> Supplied {
        let Some(app) = self.config.shopware_app.get(name) else {
            return Supplied::default();
        };
        let awaited: Vec<String> = ShopwareApp::SUPPLIED_KEYS
            .iter()
            .filter(|k| !connection.config.contains_key(**k))
            .map(|k| (*k).to_owned())
            .collect();
        if awaited.is_empty() {
            return Supplied::default();
        }
        let supplied = Supplied::awaiting(
            awaited,
            "the shop's installation of the koppel app (see \"Install the Shopware app\" in docs/dashboard.md)",
        );
        let Ok(secret) = app.app_secret() else {
            return supplied; // Config::read checked it; a test config may not have.
        };
        let tenant = &self.config.tenant;
        match store
            .app_registration(tenant, name, &Sealer::new(&secret, tenant, name))
            .await
        {
            Ok(Some(registration)) => supplied.set(registration.credentials),
            Ok(None) => {
                tracing::info!(
                    connection = name,
                    "The shop has not installed the koppel app yet; its flows wait for it."
                );
            }
            Err(error) => {
                tracing::warn!(connection = name, %error, "The shop's app registration is unusable.");
            }
        }
        supplied
    }
}

/// What `[quotas]` (over `[hosting.quotas]`) says, as the runtime counts it.
pub fn quota_limits(quotas: &QuotasConfig) -> QuotaLimits {
    QuotaLimits {
        concurrent_runs: quotas.concurrent_runs,
        memory_bytes: quotas
            .memory_mib
            .map(|m| usize::try_from(m.saturating_mul(1 << 20)).unwrap_or(usize::MAX)),
        cpu_per_hour: quotas.cpu_per_hour.map(|d| d.get()),
        cpu_share: quotas.cpu_share,
        requests_per_minute: quotas.requests_per_minute,
        bytes_out_per_hour: quotas.mib_out_per_hour.map(|m| m.saturating_mul(1 << 20)),
        bytes_in_per_hour: quotas.mib_in_per_hour.map(|m| m.saturating_mul(1 << 20)),
        activity_rows: quotas.activity_rows,
    }
}

/// The flows `[flows.*]` enables: shipped ones with the file's changes, and the file's own.
fn enabled_flows(config: &Config) -> Result<Vec<FlowDef>, LoadError> {
    let mut flows = Vec::new();
    for (name, table) in &config.flows {
        let error = |message: String| config.error(format!("flows.{name}"), message);
        let change = FlowOverride::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| error(e.to_string().trim().replace('\n', " ")))?;
        if change.enabled == Some(false) {
            continue;
        }
        let flow = match default_flow(name) {
            Some(base) => change.apply(base.map_err(error)?),
            None => change.into_flow(name).map_err(error)?,
        };
        flow.check().map_err(error)?;
        for (side, endpoint) in [("source", &flow.source), ("target", &flow.target)] {
            if !config.connections.contains_key(&endpoint.connection) {
                let known: Vec<&String> = config.connections.keys().collect();
                return Err(config.error(
                    format!("flows.{name}.{side}.connection"),
                    format!(
                        "connection `{}` is not defined; add [connections.{}] or set {side} = {{ connection = \"…\", stream = \"{}\" }} (defined: {:?})",
                        endpoint.connection, endpoint.connection, endpoint.stream, known
                    ),
                ));
            }
        }
        flows.push(flow);
    }
    Ok(flows)
}

/// The flows a webhook of `connection` runs: those it names, each enabled, or else every
/// enabled flow that reads from the connection (at least one).
pub fn webhook_flows(
    connection: &str,
    named: Option<&[String]>,
    flows: &[FlowDef],
) -> Result<Vec<String>, String> {
    let enabled: Vec<&str> = flows.iter().map(|f| f.name.as_str()).collect();
    match named {
        Some(named) => {
            if let Some(unknown) = named.iter().find(|f| !enabled.contains(&f.as_str())) {
                return Err(format!(
                    "flow `{unknown}` is not enabled; enable it under [flows.{unknown}] or name one of {enabled:?}"
                ));
            }
            Ok(named.to_vec())
        }
        None => {
            let reading: Vec<String> = flows
                .iter()
                .filter(|f| f.source.connection == connection)
                .map(|f| f.name.clone())
                .collect();
            if reading.is_empty() {
                return Err(format!(
                    "no enabled flow reads from `{connection}`: name the flows its calls start (flows = [\"orders\"])"
                ));
            }
            Ok(reading)
        }
    }
}

/// `combine = "sum-by-key"` adds up stock levels: the source stream must give stock.
fn check_combine(flow: &FlowDef, manifest: &crate::runtime::Manifest) -> Result<(), String> {
    let Some(combine) = flow.combine else {
        return Ok(());
    };
    let Some(stream) = manifest
        .streams
        .iter()
        .find(|s| s.name == flow.source.stream)
    else {
        return Ok(()); // The run names a missing stream with the connector's own words.
    };
    match combine {
        super::definition::Combine::SumByKey if stream.kind != crate::model::RecordKind::Stock => {
            Err(format!(
                "`sum-by-key` adds up stock levels of one key, but stream `{}` of `{}` gives {} records; remove `combine`",
                stream.name,
                manifest.id,
                stream.kind.name()
            ))
        }
        super::definition::Combine::SumByKey => Ok(()),
    }
}

/// Every `create_only` name should be a field of the target stream's records (or
/// `extra.<name>`).
fn check_create_only(flow: &FlowDef, manifest: &crate::runtime::Manifest) -> Result<(), String> {
    let Some(stream) = manifest
        .streams
        .iter()
        .find(|s| s.name == flow.target.stream)
    else {
        return Ok(()); // The run names a missing stream with the connector's own words.
    };
    let fields = crate::model::field_names(stream.kind);
    for name in &flow.create_only {
        let head = name.split('.').next().unwrap_or_default();
        let known = if head == "extra" {
            name.len() > "extra.".len() && name.starts_with("extra.")
        } else {
            fields.contains(&head)
        };
        if !known {
            return Err(format!(
                "`{name}` is not a field of a {} record of stream `{}`; use one of {} or extra.<name>",
                stream.kind.name(),
                stream.name,
                fields.join(", ")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, LoadError> {
        let file = crate::config::parse(text).map_err(|message| LoadError {
            file: "koppel.toml".into(),
            key: "(syntax)".into(),
            message,
        })?;
        Loaded::from_config(Config::from_file(
            Path::new("/etc/koppel/koppel.toml"),
            file,
        )?)
    }

    const BASE: &str = r#"
        [connections.till]
        connector = "mplus"
        config = { base_url = "https://api.mpluskassa.nl:44123" }
        [connections.shop]
        connector = "shopware"
        [flows.products]
        interval = "5m"
        [flows.stock]
        enabled = false
    "#;

    #[test]
    fn enables_listed_flows() {
        let loaded = load(BASE).expect("valid");
        assert_eq!(
            loaded.flows.len(),
            1,
            "stock is disabled, orders not listed"
        );
        assert_eq!(loaded.flows[0].name, "products");
        assert_eq!(loaded.flows[0].interval.to_string(), "5m");
        assert_eq!(loaded.database(), PathBuf::from("/etc/koppel/koppel.db"));
    }

    #[test]
    fn the_example_configuration_loads() {
        // SAFETY: only this test sets these variables.
        unsafe {
            std::env::set_var("MPLUS_SECRET", "x");
            std::env::set_var("SHOPWARE_SECRET", "y");
        }
        let text = include_str!("../../../koppel.example.toml");
        let loaded = load(text).expect("koppel.example.toml is valid");
        let names: Vec<&str> = loaded.flows.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, vec!["order-status", "orders", "products", "stock"]);
        assert_eq!(
            loaded.flow("products").expect("enabled").create_only,
            vec!["description".to_owned()]
        );
    }

    #[test]
    fn flow_problems_name_the_key_and_the_fix() {
        let error = load("[connections.shop]\nconnector = \"shopware\"\n[flows.products]\n")
            .expect_err("no till");
        assert_eq!(error.key, "flows.products.source.connection");
        assert!(error.message.contains("add [connections.till]"), "{error}");

        let error = load("[flows.mine]\ninterval = \"1m\"\n").expect_err("new flow without ends");
        assert!(error.message.contains("needs source and target"), "{error}");

        let error = load(&format!("{BASE}\n[flows.orders]\ninterval = \"often\"\n"))
            .expect_err("bad interval");
        assert_eq!(error.key, "flows.orders");
        assert!(
            error
                .to_string()
                .starts_with("/etc/koppel/koppel.toml: flows.orders:"),
            "{error}"
        );

        let error = load(&format!("{BASE}\n[flows.orders]\nintervall = \"1m\"\n"))
            .expect_err("unknown key");
        assert_eq!(error.key, "flows.orders");
        assert!(
            error.message.contains("unknown field `intervall`"),
            "{error}"
        );
    }

    #[test]
    fn sum_by_key_is_refused_on_a_stream_that_gives_no_stock() {
        use crate::model::RecordKind;
        use crate::runtime::bindings::{Stream, StreamAccess};
        let manifest = |kind: RecordKind| crate::runtime::Manifest {
            id: "till".into(),
            name: "Till".into(),
            version: "1.0.0".into(),
            description: String::new(),
            streams: vec![Stream {
                name: "levels".into(),
                kind,
                access: StreamAccess::READ,
                description: String::new(),
            }],
            config: vec![],
            outbound_hosts: vec![],
        };
        let loaded = load(&format!(
            "{BASE}\n[flows.mine]\nsource = {{ connection = \"till\", stream = \"levels\" }}\ntarget = {{ connection = \"shop\", stream = \"stock\" }}\ncombine = \"sum-by-key\"\n"
        ))
        .expect("valid");
        let flow = loaded.flow("mine").expect("flow");
        assert_eq!(check_combine(flow, &manifest(RecordKind::Stock)), Ok(()));
        let error = check_combine(flow, &manifest(RecordKind::Product)).expect_err("refused");
        assert!(
            error.contains("stream `levels` of `till` gives product records; remove `combine`"),
            "{error}"
        );
    }
}
