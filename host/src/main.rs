//! The `koppel` binary: logging set up, then the command line.

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Quiet by default about the engine's and HTTP stack's internals; `KOPPEL_LOG` or
/// `RUST_LOG` override it.
const DEFAULT_LOG: &str = "info,wasmtime=warn,wasmtime_wasi=warn,cranelift_codegen=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn";

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = koppel::cli::Cli::parse();
    // A service logs what it does; a command a person runs shows its own output and warnings.
    let default = match cli.command {
        koppel::cli::Command::Run(_) => DEFAULT_LOG,
        _ => "warn",
    };
    let filter = std::env::var("KOPPEL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        .init();
    match koppel::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
