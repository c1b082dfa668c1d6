//! `koppel sync` and `koppel run`.

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use super::connector::{runtime, runtime_for};
use super::progress::{reporter, summary_text};
use super::{ConfigArgs, PurgeArgs, RunArgs, SyncArgs};
use crate::app::App;
use crate::flow::{Loaded, RunOptions};
use crate::store::{RunStatus, Store};

/// The configuration read and checked, the state database opened, the connectors loaded.
pub(super) async fn open(config: &ConfigArgs) -> anyhow::Result<App> {
    let loaded = Loaded::read(&config.config)?;
    let runtime = runtime_for(&loaded.config)?;
    Ok(App::open(loaded, &runtime).await?)
}

pub(super) async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    let app = open(&args.config).await?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("Stopping after the current batch…");
            stop.cancel();
        }
    });
    let options = RunOptions {
        full: args.full,
        trigger: "manual".into(),
        cancel,
        progress: reporter(args.json),
    };
    let summary = app.sync(&args.flow, &options).await?;
    drop(options);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary_text(&summary));
    }
    app.close().await;
    if summary.status == RunStatus::Failed {
        bail!(
            "flow `{}` failed: {}",
            summary.flow,
            summary.error.unwrap_or_default()
        );
    }
    Ok(())
}

pub(super) async fn purge(args: PurgeArgs) -> anyhow::Result<()> {
    let loaded = Loaded::read(&args.config.config)?;
    let keep = loaded.config.retention.keep();
    let database = loaded.database();
    let store = Store::open(&database)
        .await
        .with_context(|| format!("state database {}", database.display()))?;
    let counts = crate::server::retention::purge_now(&store, &loaded.config.tenant, keep).await?;
    store.close().await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&counts)?);
    } else {
        println!(
            "Purged what is older than {}: the bodies of {} exchanges, the payloads of {} records, {} dismissed failed records. Counts and outcomes stay.",
            humantime_days(keep),
            counts.activity_rows,
            counts.record_rows,
            counts.failed_rows
        );
    }
    Ok(())
}

/// `14 days`, `36 hours`, `90 minutes`, `1 second`.
fn humantime_days(keep: std::time::Duration) -> String {
    let secs = keep.as_secs();
    let (n, unit) = [(86_400, "day"), (3600, "hour"), (60, "minute")]
        .into_iter()
        .find(|(size, _)| secs >= *size && secs.is_multiple_of(*size))
        .map_or((secs, "second"), |(size, unit)| (secs / size, unit));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Waits for Ctrl-C or SIGTERM.
pub(super) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

pub(super) async fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut loaded = Loaded::read(&args.config.config)?;
    if let Some(dir) = &args.tenants {
        loaded.config.hosting.tenants = Some(dir.clone());
    }
    if loaded.flows.is_empty() && loaded.config.hosting.tenants.is_none() {
        bail!(
            "no flow is enabled in {}; add for example [flows.products] (or host tenants: [hosting] tenants = \"tenants\")",
            loaded.path.display()
        );
    }
    if let Some(listen) = &args.listen {
        loaded.config.server.listen = Some(listen.clone());
    }
    let runtime = runtime_for(&loaded.config)?;
    let app = App::open(loaded, &runtime).await?;
    let serving = app
        .serve(CancellationToken::new(), reporter(args.json))
        .await?;
    if let Some(token) = &serving.server.generated_token {
        // Shown once, on the terminal only: it is stored as a hash, never logged.
        eprintln!("Dashboard token (shown once; keep it): {token}");
    }
    let names: Vec<&str> = serving.scheduler.flows().collect();
    eprintln!(
        "koppel is running {}. Dashboard: http://{}/",
        if names.is_empty() {
            "no flow of its own".to_owned()
        } else {
            names.join(", ")
        },
        serving.server.addr
    );
    if let Some(hosting) = &serving.hosting {
        eprintln!(
            "Hosting the tenants in {} ({} now); operator API: http://{}/api/v1/admin/tenants",
            hosting.dir().display(),
            hosting.count().await,
            serving.server.addr
        );
    }
    eprintln!("Ctrl-C stops it after the current batch.");
    let mut finished = serving.scheduler.subscribe();
    let json = args.json;
    let printer = tokio::spawn(async move {
        while let Ok(summary) = finished.recv().await {
            if json {
                println!("{}", serde_json::to_string(&summary).unwrap_or_default());
            } else if summary.counts != Default::default() || summary.status != RunStatus::Succeeded
            {
                println!("{}", summary_text(&summary));
            }
        }
    });
    let hosted = serving.hosting.as_ref().map(|hosting| {
        let mut finished = hosting.subscribe_runs();
        tokio::spawn(async move {
            while let Ok((tenant, summary)) = finished.recv().await {
                if json {
                    let mut line = serde_json::to_value(&summary).unwrap_or_default();
                    line["tenant"] = serde_json::Value::String(tenant);
                    println!("{line}");
                } else if summary.counts != Default::default()
                    || summary.status != RunStatus::Succeeded
                {
                    println!("[{tenant}] {}", summary_text(&summary));
                }
            }
        })
    });
    shutdown_signal().await;
    eprintln!("Stopping after the current batch…");
    serving.stop().await;
    printer.abort();
    if let Some(hosted) = hosted {
        hosted.abort();
    }
    app.close().await;
    eprintln!("Stopped.");
    Ok(())
}

pub(super) async fn init(args: super::InitArgs) -> anyhow::Result<()> {
    let runtime = runtime()?;
    let path = args.config.config;
    if path.exists() && !args.force {
        bail!(
            "{} exists; move it away or pass --force to write over it",
            path.display()
        );
    }
    let (available, problems) = crate::connectors::available(&runtime).await;
    for problem in &problems {
        eprintln!("skipped: {problem}");
    }
    super::init::init_wizard(
        &path,
        &available,
        std::io::stdin().lock(),
        std::io::stdout(),
    )
    .await?;
    Ok(())
}
