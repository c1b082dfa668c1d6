//! `koppel.toml`: the user's connections (connector + config, secrets from the file or the
//! environment) and the flows they enable, with overrides. Unknown keys and bad values are
//! refused at load, naming the file, the key and the fix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::definition::{FlowDef, FlowOverride, default_flow, parse_duration};
use super::engine::{ConnectionSetup, Environment};
use crate::runtime::{Limits, Runtime};
use crate::store::{ActivityWriter, Store};

fn default_tenant() -> String {
    "default".into()
}

/// The file as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Whose data this is; every row in the state database carries it.
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The state database (SQLite), relative to this file. Default: `koppel.db` beside it.
    pub database: Option<PathBuf>,
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionFile>,
    #[serde(default)]
    pub flows: BTreeMap<String, FlowOverride>,
    /// The dashboard, API and inbound webhooks.
    #[serde(default)]
    pub server: crate::server::config::ServerConfig,
    /// Notifications about incidents.
    #[serde(default)]
    pub notify: crate::notify::config::NotifyConfig,
    /// How long personal data stays.
    #[serde(default)]
    pub retention: crate::server::config::RetentionConfig,
    /// Inbound webhooks that start flows at once.
    #[serde(default)]
    pub webhooks: crate::server::config::WebhooksConfig,
}

/// A connection as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionFile {
    /// A built-in connector id (`mplus`, `shopware`) or a path to a `.wasm` file.
    pub connector: String,
    /// The connector's config; `koppel connector inspect <id>` lists the keys.
    #[serde(default)]
    pub config: toml::Table,
    /// Memory the connector may use, in MiB (default 64).
    pub memory_mib: Option<usize>,
    /// How long one call into the connector may take (default 5m).
    pub call_timeout: Option<String>,
}

/// A problem in `koppel.toml`.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct LoadError {
    pub file: String,
    /// The key at fault, as a dotted path (`connections.till.config.secret`).
    pub key: String,
    pub message: String,
}

/// A loaded, checked configuration.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub file: ConfigFile,
    /// Every connection's config as text, secrets resolved from the environment.
    pub connections: BTreeMap<String, (String, BTreeMap<String, String>, Limits)>,
    /// The enabled flows, complete.
    pub flows: Vec<FlowDef>,
}

/// One config value as the connector receives it; `{ env = "NAME" }` reads the environment.
pub fn value_text(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Float(_) => Err("write numbers with decimals as text (\"12.50\")".into()),
        toml::Value::Table(t) => match t.get("env").and_then(toml::Value::as_str) {
            Some(var) if t.len() == 1 => std::env::var(var)
                .map_err(|_| format!("is read from the environment variable {var}, which is not set; set it or write the value here")),
            _ => Err("a table here must be { env = \"VARIABLE\" }".into()),
        },
        toml::Value::Array(items) => Ok(serde_json::to_string(items).unwrap_or_default()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
    }
}

impl Loaded {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<Loaded, LoadError> {
        let file_name = path.display().to_string();
        let error = |key: &str, message: String| LoadError {
            file: file_name.clone(),
            key: key.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            error("(file)", format!("cannot read it ({e}); create one with `koppel init` or copy koppel.example.toml"))
        })?;
        let file: ConfigFile = toml::from_str(&text)
            .map_err(|e| error("(syntax)", e.to_string().trim().replace('\n', " ")))?;
        Self::from_file(path, file)
    }

    /// Checks an already parsed file.
    pub fn from_file(path: &Path, file: ConfigFile) -> Result<Loaded, LoadError> {
        let file_name = path.display().to_string();
        let error = |key: String, message: String| LoadError {
            file: file_name.clone(),
            key,
            message,
        };
        if file.tenant.is_empty() || file.tenant.contains('/') {
            return Err(error(
                "tenant".into(),
                "must be a non-empty name without '/'".into(),
            ));
        }
        let mut connections = BTreeMap::new();
        for (name, connection) in &file.connections {
            let mut config = BTreeMap::new();
            for (key, value) in &connection.config {
                let text = value_text(value)
                    .map_err(|m| error(format!("connections.{name}.config.{key}"), m))?;
                config.insert(key.clone(), text);
            }
            let mut limits = Limits::default();
            if let Some(mib) = connection.memory_mib {
                if !(8..=256).contains(&mib) {
                    return Err(error(
                        format!("connections.{name}.memory_mib"),
                        format!("{mib} is outside 8 to 256"),
                    ));
                }
                limits.memory_bytes = mib << 20;
            }
            if let Some(timeout) = &connection.call_timeout {
                limits.call_timeout = parse_duration(timeout)
                    .map_err(|m| error(format!("connections.{name}.call_timeout"), m))?;
            }
            connections.insert(name.clone(), (connection.connector.clone(), config, limits));
        }
        let mut flows = Vec::new();
        for (name, change) in &file.flows {
            if change.enabled == Some(false) {
                continue;
            }
            let flow = match default_flow(name) {
                Some(base) => change.apply(base.map_err(|m| error(format!("flows.{name}"), m))?),
                None => change
                    .into_flow(name)
                    .map_err(|m| error(format!("flows.{name}"), m))?,
            };
            flow.check()
                .map_err(|m| error(format!("flows.{name}"), m))?;
            for (side, endpoint) in [("source", &flow.source), ("target", &flow.target)] {
                if !connections.contains_key(&endpoint.connection) {
                    let known: Vec<&String> = connections.keys().collect();
                    return Err(error(
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
        Ok(Loaded {
            path: path.to_owned(),
            file,
            connections,
            flows,
        })
    }

    /// The state database's path.
    pub fn database(&self) -> PathBuf {
        let base = self.path.parent().unwrap_or(Path::new("."));
        match &self.file.database {
            Some(db) if db.is_absolute() => db.clone(),
            Some(db) => base.join(db),
            None => base.join("koppel.db"),
        }
    }

    /// Loads the connectors, checks each connection's config against its manifest, and gives
    /// what runs need.
    pub async fn environment(
        &self,
        runtime: &Runtime,
        store: Store,
        activity: ActivityWriter,
    ) -> Result<Environment, LoadError> {
        let file_name = self.path.display().to_string();
        let mut connections = BTreeMap::new();
        for (name, (connector, config, limits)) in &self.connections {
            let key = format!("connections.{name}");
            let loaded = crate::cli::load(runtime, connector)
                .await
                .map_err(|e| LoadError {
                    file: file_name.clone(),
                    key: format!("{key}.connector"),
                    message: format!("{e:#}"),
                })?;
            // Check the config now, so a typo stops the start, not the first run.
            let check = crate::runtime::config::validate(loaded.manifest(), config);
            if let Err(problems) = check {
                let first = problems
                    .problems
                    .first()
                    .map(|p| p.key.clone())
                    .unwrap_or_default();
                return Err(LoadError {
                    file: file_name,
                    key: format!("{key}.config.{first}"),
                    message: problems.to_string(),
                });
            }
            store
                .save_connection(
                    &self.file.tenant,
                    name,
                    loaded.id(),
                    &redacted_config(loaded.manifest(), config),
                )
                .await
                .map_err(|e| LoadError {
                    file: file_name.clone(),
                    key,
                    message: e.to_string(),
                })?;
            connections.insert(
                name.clone(),
                ConnectionSetup {
                    connector: Arc::clone(&loaded),
                    config: config.clone(),
                    limits: limits.clone(),
                },
            );
        }
        for flow in &self.flows {
            // A target connector may know fields of its own (Shopware's `visibilities`), so
            // a name that is no canonical field is a warning, not an error.
            if let Some(setup) = connections.get(&flow.target.connection)
                && let Err(message) = check_create_only(flow, setup.connector.manifest())
            {
                tracing::warn!(
                    file = %file_name,
                    key = %format!("flows.{}.create_only", flow.name),
                    "{message}, unless the target connector documents it"
                );
            }
            let interval = flow.interval().unwrap_or_default();
            let definition = serde_json::to_string(flow).unwrap_or_default();
            store
                .save_flow(&self.file.tenant, &flow.name, true, interval, &definition)
                .await
                .map_err(|e| LoadError {
                    file: file_name.clone(),
                    key: format!("flows.{}", flow.name),
                    message: e.to_string(),
                })?;
        }
        Ok(Environment {
            tenant: self.file.tenant.clone(),
            store,
            activity,
            connections,
        })
    }

    pub fn flow(&self, name: &str) -> Option<&FlowDef> {
        self.flows.iter().find(|f| f.name == name)
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
    let fields = crate::mapping::field_names(stream.kind);
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

/// A config as JSON with secret values shown as set.
pub fn redacted_config(
    manifest: &crate::runtime::Manifest,
    config: &BTreeMap<String, String>,
) -> String {
    let secret: Vec<&str> = manifest
        .config
        .iter()
        .filter(|f| f.kind == crate::runtime::bindings::ConfigKind::Secret)
        .map(|f| f.name.as_str())
        .collect();
    let shown: BTreeMap<&String, &str> = config
        .iter()
        .map(|(k, v)| {
            (
                k,
                if secret.contains(&k.as_str()) {
                    "<set>"
                } else {
                    v.as_str()
                },
            )
        })
        .collect();
    serde_json::to_string(&shown).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, LoadError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| LoadError {
            file: "koppel.toml".into(),
            key: "(syntax)".into(),
            message: e.to_string(),
        })?;
        Loaded::from_file(Path::new("/etc/koppel/koppel.toml"), file)
    }

    const BASE: &str = r#"
        [connections.till]
        connector = "mplus"
        config = { base_url = "https://api.mpluskassa.nl:44123", secret = { env = "KOPPEL_TEST_SECRET_X" } }
        [connections.shop]
        connector = "shopware"
        [flows.products]
        interval = "5m"
        [flows.stock]
        enabled = false
    "#;

    fn set_secret() {
        // SAFETY: the tests of this module set this variable to the same value.
        unsafe { std::env::set_var("KOPPEL_TEST_SECRET_X", "s3") };
    }

    #[test]
    fn enables_listed_flows_and_reads_secrets_from_the_environment() {
        set_secret();
        let loaded = load(BASE).expect("valid");
        assert_eq!(
            loaded.flows.len(),
            1,
            "stock is disabled, orders not listed"
        );
        assert_eq!(loaded.flows[0].name, "products");
        assert_eq!(loaded.flows[0].interval, "5m");
        assert_eq!(loaded.connections["till"].1["secret"], "s3");
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
    fn problems_name_the_file_the_key_and_the_fix() {
        set_secret();
        let error = load("[connections.till]\nconnector = \"mplus\"\ncolour = 1\n")
            .expect_err("unknown key");
        assert!(
            error.to_string().contains("unknown field `colour`"),
            "{error}"
        );

        let error = load("[connections.till]\nconnector = \"x\"\nconfig = { secret = { env = \"KOPPEL_NOT_SET_ANYWHERE\" } }\n")
            .expect_err("unset variable");
        assert_eq!(error.key, "connections.till.config.secret");
        assert!(
            error
                .message
                .contains("KOPPEL_NOT_SET_ANYWHERE, which is not set"),
            "{error}"
        );

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
    }
}
