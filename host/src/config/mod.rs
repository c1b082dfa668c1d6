//! `koppel.toml`, read in one place: the file and its sections, values from the environment
//! (`{ env = "NAME" }`), secrets, durations, and errors that name the file, the key and the
//! fix. Each part of koppel receives its own section from here and reads no other's:
//! - `flow`: `[flows.*]` (as tables; it checks them against its definitions) and the
//!   connections' names;
//! - `runtime`: a connection's config values and limits ([`Connection`]);
//! - `server`: `[server]`, `[webhooks]`, `[shopware_app.*]` and `[retention]`
//!   ([`ServerConfig`], [`WebhooksConfig`], [`ShopwareApp`], [`RetentionConfig`]);
//! - `notify`: `[notify]` ([`NotifyConfig`]).
//!
//! This module imports nothing of them, so the sections form no cycle.

mod connections;
mod duration;
mod hosting;
mod notify;
mod secret;
mod server;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use connections::{Connection, ConnectionFile, ConnectionLimits, resolve_table};
pub use duration::{HumanDuration, parse_duration};
pub use hosting::{HostingConfig, QuotasConfig, is_tenant_name};
pub use notify::{EmailChannel, NotifyConfig, SmtpTls, WebhookChannel};
pub use secret::{Secret, env_name, resolve_env, scalar_text};
pub use server::{
    RetentionConfig, ServerConfig, ShopwareApp, WebhookScheme, WebhookSource, WebhooksConfig,
};

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
    /// The flows to enable, each with its changes; `flow` checks them.
    #[serde(default)]
    pub flows: BTreeMap<String, toml::Table>,
    /// The dashboard, API and inbound webhooks.
    #[serde(default)]
    pub server: ServerConfig,
    /// Notifications about incidents.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// How long personal data stays.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// Inbound webhooks that start flows at once.
    #[serde(default)]
    pub webhooks: WebhooksConfig,
    /// koppel as a Shopware app's backend, per connection.
    #[serde(default)]
    pub shopware_app: BTreeMap<String, ShopwareApp>,
    /// Running koppel for others: what their connectors may reach.
    #[serde(default)]
    pub hosting: HostingConfig,
    /// What this tenant may use of the process (over `[hosting.quotas]`).
    #[serde(default)]
    pub quotas: QuotasConfig,
}

/// A problem in `koppel.toml`.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct LoadError {
    pub file: String,
    /// The key at fault, as a dotted path (`connections.till.config.secret`).
    pub key: String,
    pub message: String,
}

/// A read, checked configuration: every section, values from the environment resolved.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (relative paths in it are relative to its folder).
    pub path: PathBuf,
    pub tenant: String,
    /// The state database's path.
    pub database: PathBuf,
    pub connections: BTreeMap<String, Connection>,
    /// `[flows.<name>]` as written.
    pub flows: BTreeMap<String, toml::Table>,
    pub server: ServerConfig,
    pub notify: NotifyConfig,
    pub retention: RetentionConfig,
    pub webhooks: WebhooksConfig,
    /// `[shopware_app.<connection>]`, each naming a defined connection.
    pub shopware_app: BTreeMap<String, ShopwareApp>,
    pub hosting: HostingConfig,
    /// `[quotas]` as written (see [`Config::quotas`] for what applies).
    pub quotas: QuotasConfig,
}

impl Config {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<Config, LoadError> {
        let error = |key: &str, message: String| LoadError {
            file: path.display().to_string(),
            key: key.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            error("(file)", format!("cannot read it ({e}); create one with `koppel init` or copy koppel.example.toml"))
        })?;
        let file = parse(&text).map_err(|m| error("(syntax)", m))?;
        Self::from_file(path, file)
    }

    /// Checks an already parsed file.
    pub fn from_file(path: &Path, file: ConfigFile) -> Result<Config, LoadError> {
        let error = |key: String, message: String| LoadError {
            file: path.display().to_string(),
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
            let checked = connection
                .check()
                .map_err(|p| error(format!("connections.{name}.{}", p.key), p.message))?;
            connections.insert(name.clone(), checked);
        }
        for (name, app) in &file.shopware_app {
            if !connections.contains_key(name) {
                let known: Vec<&String> = connections.keys().collect();
                return Err(error(
                    format!("shopware_app.{name}"),
                    format!(
                        "connection `{name}` is not defined; name the Shopware connection the app serves, as in [shopware_app.shop] (defined: {known:?})"
                    ),
                ));
            }
            app.check()
                .map_err(|(key, message)| error(format!("shopware_app.{name}.{key}"), message))?;
        }
        file.webhooks
            .check(connections.keys())
            .map_err(|(key, message)| error(key, message))?;
        file.server
            .check()
            .map_err(|(key, message)| error(key, message))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut hosting = file.hosting;
        hosting
            .check(base)
            .map_err(|(key, message)| error(key, message))?;
        file.quotas
            .check("quotas")
            .map_err(|(key, message)| error(key, message))?;
        let database = match &file.database {
            Some(db) if db.is_absolute() => db.clone(),
            Some(db) => base.join(db),
            None => base.join("koppel.db"),
        };
        Ok(Config {
            path: path.to_owned(),
            tenant: file.tenant,
            database,
            connections,
            flows: file.flows,
            server: file.server,
            notify: file.notify,
            retention: file.retention,
            webhooks: file.webhooks,
            shopware_app: file.shopware_app,
            hosting,
            quotas: file.quotas,
        })
    }

    /// The quotas of this tenant: `[quotas]` key by key over `[hosting.quotas]`.
    pub fn quotas(&self) -> QuotasConfig {
        self.quotas.over(&self.hosting.quotas)
    }

    /// A problem with `key` of this file.
    pub fn error(&self, key: impl Into<String>, message: impl Into<String>) -> LoadError {
        LoadError {
            file: self.path.display().to_string(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Parses the text of a `koppel.toml` (syntax and keys; values are checked by
/// [`Config::from_file`]).
pub fn parse(text: &str) -> Result<ConfigFile, String> {
    toml::from_str(text).map_err(|e| e.to_string().trim().replace('\n', " "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, LoadError> {
        let file = parse(text).map_err(|message| LoadError {
            file: "koppel.toml".into(),
            key: "(syntax)".into(),
            message,
        })?;
        Config::from_file(Path::new("/etc/koppel/koppel.toml"), file)
    }

    #[test]
    fn reads_connections_with_secrets_from_the_environment() {
        // SAFETY: only this test sets this variable.
        unsafe { std::env::set_var("KOPPEL_TEST_SECRET_X", "s3") };
        let config = load(
            r#"
            [connections.till]
            connector = "mplus"
            memory_mib = 32
            call_timeout = "1m"
            config = { base_url = "https://api.mpluskassa.nl:44123", secret = { env = "KOPPEL_TEST_SECRET_X" }, branch_number = 2 }
            [flows.products]
            interval = "5m"
            "#,
        )
        .expect("valid");
        let till = &config.connections["till"];
        assert_eq!(till.config["secret"].as_str(), Some("s3"));
        assert_eq!(till.config["branch_number"].as_integer(), Some(2));
        assert_eq!(till.limits.memory_bytes, Some(32 << 20));
        assert_eq!(
            till.limits.call_timeout,
            Some(std::time::Duration::from_secs(60))
        );
        assert!(!format!("{config:?}").contains("s3\""), "{config:?}");
        assert_eq!(config.database, PathBuf::from("/etc/koppel/koppel.db"));
        assert_eq!(config.tenant, "default");
        assert!(config.flows.contains_key("products"));
    }

    #[test]
    fn problems_name_the_file_the_key_and_the_fix() {
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

        let error = load("[connections.till]\nconnector = \"x\"\nmemory_mib = 4\n")
            .expect_err("too little memory");
        assert_eq!(error.key, "connections.till.memory_mib");

        let error = load("tenant = \"a/b\"\n").expect_err("bad tenant");
        assert!(
            error
                .to_string()
                .starts_with("/etc/koppel/koppel.toml: tenant:"),
            "{error}"
        );
    }

    #[test]
    fn hosting_guards_the_network_only_when_asked() {
        let plain = load("").expect("valid").hosting;
        assert!(!plain.public_network_only && plain.tenants.is_none());
        let config =
            load("[hosting]\npublic_network_only = true\nallow_private_hosts = [\"erp.lan\"]\n")
                .expect("valid");
        assert!(config.hosting.public_network_only);
        assert_eq!(config.hosting.allow_private_hosts, ["erp.lan"]);
        let error = load("[hosting]\npublic_only = true\n").expect_err("a typo");
        assert!(
            error.to_string().contains("unknown field `public_only`"),
            "{error}"
        );
    }

    #[test]
    fn a_shopware_app_names_its_connection_and_a_strong_secret() {
        let shop = "[connections.shop]\nconnector = \"shopware\"\n";
        let secret = "s".repeat(32);
        let config = load(&format!(
            "{shop}[shopware_app.shop]\nsecret = \"{secret}\"\n"
        ))
        .expect("valid");
        let app = &config.shopware_app["shop"];
        assert_eq!(app.name(), "Koppel");
        assert_eq!(app.flows(), ["orders"]);
        assert_eq!(
            app.events(),
            [
                "checkout.order.placed",
                "state_enter.order_transaction.state.paid"
            ]
        );
        assert!(!format!("{config:?}").contains(&secret), "{config:?}");

        let error = load(&format!("[shopware_app.shop]\nsecret = \"{secret}\"\n"))
            .expect_err("no such connection");
        assert_eq!(error.key, "shopware_app.shop");
        assert!(error.message.contains("not defined"), "{error}");

        let error = load(&format!("{shop}[shopware_app.shop]\nsecret = \"short\"\n"))
            .expect_err("weak secret");
        assert_eq!(error.key, "shopware_app.shop.secret");
        assert!(error.message.contains("openssl rand -hex 32"), "{error}");

        let error = load(&format!(
            "{shop}[shopware_app.shop]\nsecret = \"{secret}\"\nname = \"my app\"\n"
        ))
        .expect_err("bad name");
        assert_eq!(error.key, "shopware_app.shop.name");

        let error = load(&format!(
            "{shop}[shopware_app.shop]\nsecret = \"{secret}\"\nevents = [\"order placed\"]\n"
        ))
        .expect_err("bad event");
        assert_eq!(error.key, "shopware_app.shop.events");
    }
}
