//! The `koppel` command line: parsing (clap) here, each family of commands in its module.

pub mod conformance;
mod connector;
pub mod demo;
pub mod example_api;
mod flows;
pub mod init;
mod progress;
mod shopware;
pub mod template;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// koppel keeps a shop's systems in step: products and stock from the till to the web shop,
/// orders back, each system reached through a sandboxed connector.
#[derive(Debug, Parser)]
#[command(name = "koppel", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Shows the whole job on this machine: simulated till and shop, all four flows, then
    /// changes and a second round. Needs nothing but this binary. With --serve the
    /// dashboard stays open to look at every record that moved.
    Demo(DemoArgs),
    /// Sets koppel up: asks for each system's details, tests each connection, chooses the
    /// flows and where alerts go, and writes koppel.toml.
    Init(InitArgs),
    /// Runs one flow now and prints what moved (`koppel sync products --full`).
    Sync(SyncArgs),
    /// Runs every enabled flow on its interval until stopped (Ctrl-C or SIGTERM stop it
    /// after the current batch); with `--tenants DIR`, hosts every tenant of that folder too.
    #[command(alias = "serve")]
    Run(RunArgs),
    /// Deletes personal data older than the retention period ([retention] keep, default
    /// 14 days) now: what `koppel run` does every hour, for setups that run `koppel sync`
    /// from cron.
    Purge(PurgeArgs),
    /// Lists the connectors this koppel can use: built in, and `.wasm` files in the
    /// connectors folder.
    Connectors(ConnectorsArgs),
    /// Works with one connector: inspect its manifest, check a config against a live system,
    /// create one from the template, run the conformance suite.
    #[command(subcommand)]
    Connector(ConnectorCommand),
    /// Shopware's side of koppel: the app a shop installs so that koppel receives its signed
    /// events and API credentials.
    #[command(subcommand)]
    Shopware(ShopwareCommand),
}

#[derive(Debug, Subcommand)]
pub enum ShopwareCommand {
    /// Writes the manifest.xml of the koppel app for a connection of [shopware_app.*]: its
    /// registration URL, the events it sends and the permissions the connector needs.
    AppManifest(AppManifestArgs),
}

#[derive(Debug, Args)]
pub struct AppManifestArgs {
    /// The connection the app serves (default: the only one under [shopware_app]).
    #[arg(long, value_name = "NAME")]
    pub connection: Option<String>,
    /// koppel's address as the shop reaches it (default: [server] public_url).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// Where to write it (default: <app name>/manifest.xml, the folder Shopware expects).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct ConnectorsArgs {
    #[command(subcommand)]
    pub command: ConnectorsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConnectorsCommand {
    /// Lists every connector with its version, streams and size.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Folder with third-party connectors (default: $KOPPEL_CONNECTORS_DIR, else
    /// ~/.local/share/koppel/connectors).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Prints a connector's manifest: streams, config keys (secrets marked), allowed hosts.
    Inspect(InspectArgs),
    /// Runs a connector's `check` with a config file: are the credentials accepted, is the
    /// system reachable?
    Check(CheckArgs),
    /// Creates a ready-to-build connector crate from the template (docs/writing-a-connector.md).
    New(NewArgs),
    /// Runs the conformance suite against a connector: manifest, check, paging and state,
    /// idempotent writes, per-record errors, lookups, limits (docs/connector-contract.md).
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The connector's id: lower-case letters, digits and `-` (`acme-erp`).
    pub name: String,
    /// The folder to create it in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// The `connectors/sdk` folder of a koppel checkout to depend on (default: the checkout
    /// DIR is in, else the koppel git repository).
    #[arg(long, value_name = "DIR")]
    pub sdk_path: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A `.wasm` file, or the id of a connector (built in or in the connectors folder).
    pub connector: String,
    /// The connection's config (as for `koppel connector check`; the template calls it
    /// `conformance.toml`). A `[suite]` table in it lists the checks the connector cannot
    /// exercise, each with why (`[[suite.allowed_skip]] rule = "3.4" check = "read
    /// vat-groups" reason = "..."`); with it the suite is strict: any other skip fails, and so
    /// does a listed skip that no longer happens.
    #[arg(long, value_name = "FILE", required_unless_present = "example_api")]
    pub config: Option<PathBuf>,
    /// Start koppel's example API on 127.0.0.1 and point `base_url` and `api_key` at it
    /// (for a connector fresh from `koppel connector new`).
    #[arg(long)]
    pub example_api: bool,
    /// Records to write, as JSON: `{"products": [{"Product": {"key": ...}}, ...]}` (records as
    /// koppel stores them). Without it a writable stream is written only with what was just
    /// read from it.
    #[arg(long, value_name = "FILE")]
    pub records: Option<PathBuf>,
    /// Only these streams (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub streams: Vec<String>,
    /// Records per `read` call.
    #[arg(long, default_value_t = 25)]
    pub page_size: u32,
    /// Records read per stream at most.
    #[arg(long, default_value_t = 5000)]
    pub max_records: usize,
    /// Do not write at all (against a system that must not change).
    #[arg(long)]
    pub no_write: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A `.wasm` file, or the id of a built-in connector (`mplus`, `shopware`).
    pub connector: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A `.wasm` file, or the id of a built-in connector.
    pub connector: String,
    /// A TOML file with the connection's config: `key = "value"` per line; a secret can be
    /// read from the environment with `secret = { env = "MPLUS_SECRET" }`.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Runs the command; the error is printed by `main`.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Connectors(ConnectorsArgs {
            command: ConnectorsCommand::List(args),
        }) => connector::list(args).await,
        Command::Connector(ConnectorCommand::Inspect(args)) => connector::inspect(args).await,
        Command::Connector(ConnectorCommand::Check(args)) => connector::check(args).await,
        Command::Connector(ConnectorCommand::New(args)) => template::new(args),
        Command::Connector(ConnectorCommand::Test(args)) => connector::test(args).await,
        Command::Demo(args) => demo::demo(args).await,
        Command::Sync(args) => flows::sync(args).await,
        Command::Run(args) => flows::run(args).await,
        Command::Purge(args) => flows::purge(args).await,
        Command::Init(args) => flows::init(args).await,
        Command::Shopware(ShopwareCommand::AppManifest(args)) => shopware::app_manifest(args),
    }
}

pub use connector::read_config_file;

/// Where the configuration is.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The configuration file (default: $KOPPEL_CONFIG, else ./koppel.toml).
    #[arg(
        long,
        short = 'c',
        value_name = "FILE",
        env = "KOPPEL_CONFIG",
        default_value = "koppel.toml"
    )]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The flow to run (`products`, `stock`, `orders`, `order-status`, or one of yours).
    pub flow: String,
    /// Read the source from the start instead of from where the last run stopped.
    #[arg(long)]
    pub full: bool,
    /// Print the summary as JSON (for scripts) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Print what was purged as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Print each run's summary as a JSON line.
    #[arg(long)]
    pub json: bool,
    /// Where the dashboard and API listen (overrides [server] listen; default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Host the tenants of this folder besides the file's own flows, one `<tenant>.toml` each
    /// in the format of koppel.toml, read again while running (overrides [hosting] tenants).
    #[arg(long, value_name = "DIR")]
    pub tenants: Option<PathBuf>,
    #[command(flatten)]
    pub config: ConfigArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Products in the simulated till (a fifth of them families of sizes and colours).
    #[arg(long, default_value_t = 1000)]
    pub products: usize,
    /// Where to keep the demo's koppel.toml and state database (default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Print what happened as JSON.
    #[arg(long)]
    pub json: bool,
    /// Keep the dashboard open afterwards (with one order that fails, for the failed queue),
    /// the flows running on their intervals; prints its address and a token. Ctrl-C stops it.
    #[arg(long)]
    pub serve: bool,
    /// Where the dashboard listens with --serve (default 127.0.0.1:8080; port 0: any free one).
    #[arg(long, value_name = "ADDR", requires = "serve")]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write over an existing file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}
