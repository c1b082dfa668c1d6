//! `[hosting]`: an operator who runs koppel for shops that are not their own. The network
//! guard (what connectors may reach), the folder of tenant files (one `<tenant>.toml` per
//! shop, in the format of `koppel.toml`), the operator's API tokens and how often the folder
//! is read again. A tenant file is read with [`Config::read_tenant`]: what belongs to the
//! operator (the state database, `[hosting]`, where the server listens) is refused in it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{Config, ConfigFile, HumanDuration, LoadError, Secret, parse};

/// `[hosting]` as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostingConfig {
    /// Connectors reach public addresses only: loopback, private, link-local and other
    /// addresses that are not public are refused, whatever a connection's config names.
    #[serde(default)]
    pub public_network_only: bool,
    /// Hosts (names or IP addresses) connectors may reach although they are private.
    #[serde(default)]
    pub allow_private_hosts: Vec<String>,
    /// A folder of tenant files, `<tenant>.toml` each, run besides this file's own flows
    /// (relative to this file; absolute once read).
    pub tenants: Option<PathBuf>,
    /// Tokens of the operator API (`/api/v1/admin`); a tenant's token never opens it.
    #[serde(default)]
    pub operator_tokens: Vec<Secret>,
    /// How often the tenants folder is read again (default 2s).
    pub reload_every: Option<HumanDuration>,
    /// Runs at once over all tenants, handed out tenant by tenant in turn (default 16).
    pub workers: Option<usize>,
    /// Quotas of every tenant, unless its own `[quotas]` says otherwise.
    #[serde(default)]
    pub quotas: QuotasConfig,
}

/// `[quotas]` of a tenant (and `[hosting.quotas]`, the defaults of all): what a tenant may
/// use of the process, over all its connections and runs together. Each key left out is
/// unlimited (or the operator's default).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuotasConfig {
    /// Runs of its flows at once; more wait for a slot.
    pub concurrent_runs: Option<u32>,
    /// Memory of all its connector instances together, in MiB.
    pub memory_mib: Option<u64>,
    /// Time its connectors may compute per hour (`"5m"`).
    pub cpu_per_hour: Option<HumanDuration>,
    /// Cores its connectors may keep busy (`0.5`: half a core, over each second); beyond,
    /// they are slowed down, not stopped.
    pub cpu_share: Option<f64>,
    /// HTTP requests per minute, all connections together; more wait for the next minute.
    pub requests_per_minute: Option<u32>,
    /// Request bodies sent per hour, in MiB.
    pub mib_out_per_hour: Option<u64>,
    /// Response bodies received per hour, in MiB.
    pub mib_in_per_hour: Option<u64>,
    /// Rows of its activity log kept (the oldest beyond are deleted).
    pub activity_rows: Option<u64>,
}

impl QuotasConfig {
    /// These quotas, key by key, over `defaults`.
    pub fn over(&self, defaults: &QuotasConfig) -> QuotasConfig {
        QuotasConfig {
            concurrent_runs: self.concurrent_runs.or(defaults.concurrent_runs),
            memory_mib: self.memory_mib.or(defaults.memory_mib),
            cpu_per_hour: self.cpu_per_hour.or(defaults.cpu_per_hour),
            cpu_share: self.cpu_share.or(defaults.cpu_share),
            requests_per_minute: self.requests_per_minute.or(defaults.requests_per_minute),
            mib_out_per_hour: self.mib_out_per_hour.or(defaults.mib_out_per_hour),
            mib_in_per_hour: self.mib_in_per_hour.or(defaults.mib_in_per_hour),
            activity_rows: self.activity_rows.or(defaults.activity_rows),
        }
    }

    /// (key, message) of the first value that would stop every run.
    pub(super) fn check(&self, section: &str) -> Result<(), (String, String)> {
        let zero = [
            ("concurrent_runs", self.concurrent_runs.map(u64::from)),
            ("memory_mib", self.memory_mib),
            (
                "requests_per_minute",
                self.requests_per_minute.map(u64::from),
            ),
            ("mib_out_per_hour", self.mib_out_per_hour),
            ("mib_in_per_hour", self.mib_in_per_hour),
            ("activity_rows", self.activity_rows),
        ]
        .into_iter()
        .find(|(_, v)| *v == Some(0));
        if let Some((key, _)) = zero {
            return Err((
                format!("{section}.{key}"),
                "is 0, which would stop every run; leave it out for no limit".into(),
            ));
        }
        if self.memory_mib.is_some_and(|m| m < 16) {
            return Err((
                format!("{section}.memory_mib"),
                "is below 16 MiB, less than one connector instance needs; give at least 64".into(),
            ));
        }
        if self
            .cpu_share
            .is_some_and(|c| !(c >= 0.01 && c.is_finite()))
        {
            return Err((
                format!("{section}.cpu_share"),
                "must be a number of cores of at least 0.01, e.g. 0.5".into(),
            ));
        }
        if self.cpu_per_hour.is_some_and(|d| d.get().is_zero()) {
            return Err((
                format!("{section}.cpu_per_hour"),
                "is 0s, which would stop every run; leave it out for no limit".into(),
            ));
        }
        Ok(())
    }
}

impl HostingConfig {
    pub const DEFAULT_RELOAD: Duration = Duration::from_secs(2);
    pub const DEFAULT_WORKERS: usize = 16;

    pub fn workers(&self) -> usize {
        self.workers.unwrap_or(Self::DEFAULT_WORKERS)
    }

    pub fn reload_every(&self) -> Duration {
        self.reload_every
            .map(HumanDuration::get)
            .unwrap_or(Self::DEFAULT_RELOAD)
    }

    /// Resolves `tenants` against the folder of the file (`base`) and checks the values:
    /// (key, message) of the first problem.
    pub(super) fn check(&mut self, base: &Path) -> Result<(), (String, String)> {
        if let Some(dir) = &self.tenants {
            if dir.as_os_str().is_empty() {
                return Err((
                    "hosting.tenants".into(),
                    "is empty; name the folder of tenant files, e.g. \"tenants\"".into(),
                ));
            }
            if dir.is_relative() {
                self.tenants = Some(base.join(dir));
            }
        }
        for (i, token) in self.operator_tokens.iter().enumerate() {
            let value = token
                .resolve()
                .map_err(|m| (format!("hosting.operator_tokens[{i}]"), m))?;
            if value.trim().len() < 16 {
                return Err((
                    format!("hosting.operator_tokens[{i}]"),
                    "is shorter than 16 characters; use a long random one (`openssl rand -hex 32`)"
                        .into(),
                ));
            }
        }
        self.quotas.check("hosting.quotas")?;
        if self.workers == Some(0) {
            return Err((
                "hosting.workers".into(),
                "is 0, which would run nothing; give at least 1 (default 16)".into(),
            ));
        }
        if self.reload_every.is_some_and(|d| d.get().is_zero()) {
            return Err((
                "hosting.reload_every".into(),
                "must be longer than 0s, e.g. \"2s\"".into(),
            ));
        }
        Ok(())
    }

    /// The operator tokens, resolved (the load checked that each resolves).
    pub fn operator_tokens(&self) -> Vec<String> {
        self.operator_tokens
            .iter()
            .filter_map(|t| t.resolve().ok())
            .collect()
    }
}

/// A tenant's name as hosting takes it (a file name, a URL path segment): 1 to 64 ASCII
/// letters, digits, `-` and `_`, not starting with `-` or `_`.
pub fn is_tenant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
}

impl Config {
    /// Reads the tenant file `path` (`<tenant>.toml`) of the operator's configuration
    /// `operator`: the format of `koppel.toml`, its tenant named by the file. The state
    /// database, `[hosting]` and `[server] listen` / `public_url` are the operator's and
    /// are refused here; the tenant runs with the operator's.
    pub fn read_tenant(path: &Path, operator: &Config) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError {
            file: path.display().to_string(),
            key: "(file)".into(),
            message: format!("cannot read it ({e})"),
        })?;
        Self::tenant_from_text(path, &text, operator)
    }

    /// [`Config::read_tenant`] of a text not (yet) in its file: what the operator API
    /// checks before it writes one.
    pub fn tenant_from_text(
        path: &Path,
        text: &str,
        operator: &Config,
    ) -> Result<Config, LoadError> {
        let error = |key: &str, message: String| LoadError {
            file: path.display().to_string(),
            key: key.to_owned(),
            message,
        };
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if !is_tenant_name(&name) {
            return Err(error(
                "(file name)",
                format!(
                    "`{name}` is not a tenant name: use 1 to 64 letters, digits, `-` and `_`, starting with a letter or digit"
                ),
            ));
        }
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| error("(syntax)", e.to_string().trim().replace('\n', " ")))?;
        if let Some(given) = table.get("tenant")
            && given.as_str() != Some(name.as_str())
        {
            return Err(error(
                "tenant",
                format!(
                    "is {given}, but the file names tenant `{name}`; leave `tenant` out or rename the file"
                ),
            ));
        }
        let operators = [
            ("database", table.contains_key("database")),
            ("hosting", table.contains_key("hosting")),
            ("server.listen", has(&table, "server", "listen")),
            ("server.public_url", has(&table, "server", "public_url")),
        ];
        if let Some((key, _)) = operators.iter().find(|(_, given)| *given) {
            return Err(error(
                key,
                format!(
                    "is the operator's setting (in {}), not a tenant's; remove it from this file",
                    operator.path.display()
                ),
            ));
        }
        let mut file: ConfigFile = parse(text).map_err(|m| error("(syntax)", m))?;
        file.tenant = name;
        let mut config = Config::from_file(path, file)?;
        config.database = operator.database.clone();
        config.hosting = HostingConfig {
            tenants: None,
            operator_tokens: Vec::new(),
            ..operator.hosting.clone()
        };
        config.server.public_url = operator.server.public_url.clone();
        Ok(config)
    }
}

fn has(table: &toml::Table, section: &str, key: &str) -> bool {
    table
        .get(section)
        .and_then(toml::Value::as_table)
        .is_some_and(|t| t.contains_key(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator(text: &str) -> Config {
        let file = parse(text).expect("syntax");
        Config::from_file(Path::new("/srv/koppel/koppel.toml"), file).expect("valid")
    }

    fn tenant(name: &str, text: &str) -> Result<Config, LoadError> {
        let operator = operator(
            "database = \"/var/lib/koppel/state.db\"\n[hosting]\ntenants = \"tenants\"\npublic_network_only = true\noperator_tokens = [\"0123456789abcdef0123\"]\n",
        );
        Config::tenant_from_text(
            &Path::new("/srv/koppel/tenants").join(format!("{name}.toml")),
            text,
            &operator,
        )
    }

    #[test]
    fn a_tenant_file_names_its_tenant_and_runs_on_the_operators_state() {
        let config = tenant(
            "shop-a",
            "[connections.till]\nconnector = \"mplus\"\n[server]\ntokens = [\"tenant-token-1\"]\n",
        )
        .expect("valid");
        assert_eq!(config.tenant, "shop-a");
        assert_eq!(config.database, PathBuf::from("/var/lib/koppel/state.db"));
        assert!(config.hosting.public_network_only);
        assert!(config.hosting.operator_tokens.is_empty() && config.hosting.tenants.is_none());
        assert_eq!(config.server.tokens.len(), 1);
        assert!(tenant("shop-a", "tenant = \"shop-a\"\n").is_ok());
    }

    #[test]
    fn a_tenant_file_may_not_take_the_operators_settings() {
        for (text, key) in [
            ("database = \"mine.db\"\n", "database"),
            ("[hosting]\npublic_network_only = false\n", "hosting"),
            ("[server]\nlisten = \"0.0.0.0:80\"\n", "server.listen"),
            (
                "[server]\npublic_url = \"https://x\"\n",
                "server.public_url",
            ),
        ] {
            let error = tenant("shop-a", text).expect_err(text);
            assert_eq!(error.key, key, "{error}");
            assert!(error.message.contains("operator's setting"), "{error}");
            assert!(error.file.ends_with("tenants/shop-a.toml"), "{error}");
        }
        let error = tenant("shop-a", "tenant = \"shop-b\"\n").expect_err("another tenant");
        assert_eq!(error.key, "tenant");
        let error = tenant("shop a", "").expect_err("a bad name");
        assert_eq!(error.key, "(file name)");
        let error = tenant("shop-a", "[flows.products\n").expect_err("syntax");
        assert_eq!(error.key, "(syntax)");
        let error = tenant(
            "shop-a",
            "[connections.till]\nconnector = \"mplus\"\ncolour = 1\n",
        )
        .expect_err("unknown key");
        assert!(error.message.contains("unknown field `colour`"), "{error}");
    }

    #[test]
    fn the_operators_hosting_settings_are_checked() {
        let config = operator("[hosting]\ntenants = \"tenants\"\nreload_every = \"5s\"\n");
        assert_eq!(
            config.hosting.tenants.as_deref(),
            Some(Path::new("/srv/koppel/tenants"))
        );
        assert_eq!(config.hosting.reload_every(), Duration::from_secs(5));
        let file = parse("[hosting]\noperator_tokens = [\"short\"]\n").expect("syntax");
        let error = Config::from_file(Path::new("/srv/koppel/koppel.toml"), file)
            .expect_err("a short token");
        assert_eq!(error.key, "hosting.operator_tokens[0]");
        assert!(is_tenant_name("shop_1") && !is_tenant_name("-x") && !is_tenant_name("a/b"));
        assert!(!is_tenant_name(&"a".repeat(65)) && !is_tenant_name(""));
    }
}
