//! The `koppel` command line: parsing (clap) here, each family of commands in its module.

mod connector;
mod demo;
mod flows;
mod progress;

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
    /// changes and a second round. Needs nothing but this binary.
    Demo(DemoArgs),
    /// Sets koppel up: asks for each system's details, tests each connection, chooses the
    /// flows and where alerts go, and writes koppel.toml.
    Init(InitArgs),
    /// Runs one flow now and prints what moved (`koppel sync products --full`).
    Sync(SyncArgs),
    /// Runs every enabled flow on its interval until stopped (Ctrl-C or SIGTERM stop it
    /// after the current batch).
    Run(RunArgs),
    /// Lists the connectors this koppel can use: built in, and `.wasm` files in the
    /// connectors folder.
    Connectors(ConnectorsArgs),
    /// Works with one connector: inspect its manifest, check a config against a live system.
    #[command(subcommand)]
    Connector(ConnectorCommand),
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
        Command::Demo(args) => demo::demo(args).await,
        Command::Sync(args) => flows::sync(args).await,
        Command::Run(args) => flows::run(args).await,
        Command::Init(args) => flows::init(args).await,
    }
}

pub use connector::{load, read_config_file};

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
pub struct RunArgs {
    /// Print each run's summary as a JSON line.
    #[arg(long)]
    pub json: bool,
    /// Where the dashboard and API listen (overrides [server] listen; default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
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
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Write over an existing file.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}
