//! Runs one simulator on a port, for trying connectors by hand:
//! `koppel-sim mplus --port 18083 --products 1000` or `koppel-sim shopware --version 6.6`.

use std::time::Duration;

use clap::{Parser, Subcommand};
use koppel_sim_mplus::{MplusOptions, MplusSimulator};
use koppel_sim_shopware::{ShopwareOptions, ShopwareSimulator, Version};

/// Simulators of MplusKASSA (SOAP) and Shopware 6 (Admin API), seeded with generated data.
#[derive(Debug, Parser)]
#[command(name = "koppel-sim", version)]
struct Cli {
    #[command(subcommand)]
    system: System,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Seed of the generated data: the same seed gives the same data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Products to generate.
    #[arg(long, default_value_t = 100)]
    products: usize,
    /// Share of products that are variant families (0.0 to 1.0).
    #[arg(long, default_value_t = 0.2)]
    variant_share: f64,
    /// Validate every message against the real schemas (needs ../shared/reference or
    /// KOPPEL_REFERENCE_DIR).
    #[arg(long)]
    validate: bool,
}

#[derive(Debug, Subcommand)]
enum System {
    /// MplusKASSA: SOAP on POST /?ident=..&secret=.., the WSDL on GET /?wsdl.
    Mplus {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "koppel")]
        ident: String,
        #[arg(long, default_value = "sim-secret")]
        secret: String,
        /// Seeded orders (some delivered, some paid and invoiced).
        #[arg(long, default_value_t = 0)]
        orders: usize,
    },
    /// Shopware 6 Admin API under /api.
    Shopware {
        #[command(flatten)]
        common: Common,
        /// 6.4, 6.5, 6.6 or 6.7.
        #[arg(long, default_value = "6.6")]
        version: String,
        /// Seeded customers.
        #[arg(long, default_value_t = 0)]
        customers: usize,
        /// Seeded orders.
        #[arg(long, default_value_t = 0)]
        orders: usize,
        /// Access-token lifetime in seconds.
        #[arg(long, default_value_t = 600)]
        token_ttl: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Logs on stderr: stdout carries the one line with the URL, for scripts to read.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.system {
        System::Mplus {
            common,
            ident,
            secret,
            orders,
        } => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", common.port)).await?;
            let options = MplusOptions {
                seed: common.seed,
                products: common.products,
                variant_share: common.variant_share,
                validate: common.validate,
                orders,
                ident,
                secret,
                ..MplusOptions::default()
            };
            let sim = MplusSimulator::start_on(listener, options).await?;
            println!(
                "MplusKASSA simulator on {}  (ident {}, secret {})",
                sim.url(),
                sim.ident(),
                sim.secret()
            );
            tokio::signal::ctrl_c().await?;
        }
        System::Shopware {
            common,
            version,
            customers,
            orders,
            token_ttl,
        } => {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", common.port)).await?;
            let options = ShopwareOptions {
                version: version.parse::<Version>()?,
                seed: common.seed,
                products: common.products,
                variant_share: common.variant_share,
                customers,
                orders,
                validate: common.validate,
                token_ttl: Duration::from_secs(token_ttl),
                ..ShopwareOptions::default()
            };
            let sim = ShopwareSimulator::serve(options, listener).await?;
            println!(
                "Shopware {} simulator on {}  (client id {}, secret {})",
                sim.version().full(),
                sim.url(),
                sim.client_id(),
                sim.client_secret()
            );
            tokio::signal::ctrl_c().await?;
        }
    }
    Ok(())
}
