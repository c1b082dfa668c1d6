//! `[connections.<name>]`: which connector a connection uses, its config, and the limits of
//! its sandbox. The config is only read here (values from the environment resolved); the
//! runtime checks it against the connector's manifest.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::duration::parse_duration;
use super::secret::resolve_env;

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

/// A connection's sandbox limits as written; unset ones keep the runtime's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub memory_bytes: Option<usize>,
    pub call_timeout: Option<Duration>,
}

/// A connection, read and checked: what the runtime receives.
#[derive(Clone)]
pub struct Connection {
    pub connector: String,
    /// The config as the connector receives it, values from the environment resolved.
    pub config: BTreeMap<String, String>,
    pub limits: ConnectionLimits,
}

impl fmt::Debug for Connection {
    /// Config values may be secrets: only the keys are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("connector", &self.connector)
            .field("config", &self.config.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish()
    }
}

/// A problem with one key of a connection, relative to `connections.<name>`.
#[derive(Debug)]
pub(super) struct KeyProblem {
    pub key: String,
    pub message: String,
}

impl ConnectionFile {
    /// Reads the config values and checks the limits.
    pub(super) fn check(&self) -> Result<Connection, KeyProblem> {
        let config = config_values(&self.config).map_err(|(key, message)| KeyProblem {
            key: format!("config.{key}"),
            message,
        })?;
        let mut limits = ConnectionLimits::default();
        if let Some(mib) = self.memory_mib {
            if !(8..=256).contains(&mib) {
                return Err(KeyProblem {
                    key: "memory_mib".into(),
                    message: format!("{mib} is outside 8 to 256"),
                });
            }
            limits.memory_bytes = Some(mib << 20);
        }
        if let Some(timeout) = &self.call_timeout {
            limits.call_timeout = Some(parse_duration(timeout).map_err(|message| KeyProblem {
                key: "call_timeout".into(),
                message,
            })?);
        }
        Ok(Connection {
            connector: self.connector.clone(),
            config,
            limits,
        })
    }
}

/// One config value as the connector receives it; `{ env = "NAME" }` reads the environment.
pub fn value_text(value: &toml::Value) -> Result<String, String> {
    match resolve_env(value)? {
        toml::Value::String(s) => Ok(s),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Float(_) => Err("write numbers with decimals as text (\"12.50\")".into()),
        toml::Value::Table(_) => Err("a table here must be { env = \"VARIABLE\" }".into()),
        toml::Value::Array(items) => Ok(serde_json::to_string(&items).unwrap_or_default()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
    }
}

/// A connection's config table as the connector receives it; a problem names its key.
pub fn config_values(table: &toml::Table) -> Result<BTreeMap<String, String>, (String, String)> {
    table
        .iter()
        .map(|(key, value)| {
            value_text(value)
                .map(|text| (key.clone(), text))
                .map_err(|message| (key.clone(), message))
        })
        .collect()
}
