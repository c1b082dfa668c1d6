//! `[connections.<name>]`: which connector a connection uses, its config, and the limits of
//! its sandbox. The config is only read here (values from the environment resolved, tables
//! and lists kept as written); the runtime checks it against the connector's manifest and
//! the types of its keys.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::duration::HumanDuration;
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
    pub call_timeout: Option<HumanDuration>,
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
    /// The config as written, values from the environment resolved.
    pub config: toml::Table,
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
        let config = resolve_table(&self.config).map_err(|(key, message)| KeyProblem {
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
        limits.call_timeout = self.call_timeout.map(HumanDuration::get);
        Ok(Connection {
            connector: self.connector.clone(),
            config,
            limits,
        })
    }
}

/// A config table with every `{ env = "NAME" }` value read from the environment; a problem
/// names its key.
pub fn resolve_table(table: &toml::Table) -> Result<toml::Table, (String, String)> {
    table
        .iter()
        .map(|(key, value)| {
            resolve_env(value)
                .map(|value| (key.clone(), value))
                .map_err(|message| (key.clone(), message))
        })
        .collect()
}
