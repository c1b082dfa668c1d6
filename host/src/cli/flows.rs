//! `koppel sync` and `koppel run`.

use std::sync::Arc;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use super::connector::runtime;
use super::progress::{reporter, summary_text};
use super::{ConfigArgs, PurgeArgs, RunArgs, SyncArgs};
use crate::flow::schedule::Scheduler;
use crate::flow::{Environment, Loaded, RunOptions, run_flow};
use crate::server::FlowControl;
use crate::store::{ActivityWriter, Masker, RunStatus, Store};

/// The configuration loaded and the state database opened.
pub(super) struct Opened {
    pub loaded: Loaded,
    pub env: Environment,
}

pub(super) async fn open(config: &ConfigArgs) -> anyhow::Result<Opened> {
    let loaded = Loaded::read(&config.config)?;
    let runtime = runtime()?;
    let database = loaded.database();
    let store = Store::open(&database)
        .await
        .with_context(|| format!("state database {}", database.display()))?;
    let interrupted = store.mark_interrupted_runs().await?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "Runs were interrupted when koppel last stopped; they resume now."
        );
    }
    let masker = Masker::new(&loaded.config.retention.mask_fields);
    let activity = ActivityWriter::start_masked(store.clone(), masker);
    let env = loaded.environment(&runtime, store, activity).await?;
    Ok(Opened { loaded, env })
}

pub(super) async fn sync(args: SyncArgs) -> anyhow::Result<()> {
    let opened = open(&args.config).await?;
    let Some(flow) = opened.loaded.flow(&args.flow) else {
        let enabled: Vec<&str> = opened
            .loaded
            .flows
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        bail!(
            "flow `{}` is not enabled in {}; enabled: {}. Add [flows.{}] to enable it.",
            args.flow,
            opened.loaded.path.display(),
            if enabled.is_empty() {
                "none".to_owned()
            } else {
                enabled.join(", ")
            },
            args.flow
        );
    };
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
    let summary = run_flow(&opened.env, flow, &options).await?;
    drop(options);
    // The same incidents and notifications as under `koppel run`: a sync from cron that
    // fails is told at once, and its recovery too.
    let notify = &opened.loaded.config.notify;
    if notify.webhook.is_some() || notify.email.is_some() {
        let notifier = crate::notify::Notifier::from_config(notify)?;
        let monitor = crate::notify::Monitor::new(
            &opened.env.tenant,
            opened.env.store.clone(),
            opened.loaded.flows.clone(),
            Arc::new(notifier),
            notify.record_attempts(),
        )
        .with_public_url(opened.loaded.config.server.public_url.clone());
        if let Err(error) = monitor.on_run(&summary).await {
            tracing::warn!(%error, "Cannot record the run's incidents.");
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!("{}", summary_text(&summary));
    }
    opened.env.store.close().await;
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
    let mut opened = open(&args.config).await?;
    if opened.loaded.flows.is_empty() {
        bail!(
            "no flow is enabled in {}; add for example [flows.products]",
            opened.loaded.path.display()
        );
    }
    if let Some(listen) = &args.listen {
        opened.loaded.config.server.listen = Some(listen.clone());
    }
    let cancel = CancellationToken::new();
    let scheduler = Arc::new(Scheduler::start(
        opened.env.clone(),
        opened.loaded.flows.clone(),
        cancel.clone(),
        reporter(args.json),
    ));
    let control: Arc<dyn FlowControl> = scheduler.clone();
    let server = crate::server::start(
        &opened.loaded,
        opened.env.clone(),
        Some(control),
        scheduler.subscribe(),
        cancel.clone(),
    )
    .await?;
    if let Some(token) = &server.generated_token {
        // Shown once, on the terminal only: it is stored as a hash, never logged.
        eprintln!("Dashboard token (shown once; keep it): {token}");
    }
    let names: Vec<&str> = scheduler.flows().collect();
    eprintln!(
        "koppel is running {}. Dashboard: http://{}/",
        names.join(", "),
        server.addr
    );
    eprintln!("Ctrl-C stops it after the current batch.");
    let mut finished = scheduler.subscribe();
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
    shutdown_signal().await;
    eprintln!("Stopping after the current batch…");
    cancel.cancel();
    server.wait().await;
    match Arc::into_inner(scheduler) {
        Some(scheduler) => scheduler.stop().await,
        None => tracing::warn!("The schedule is still shared; its runs stop on their own."),
    }
    printer.abort();
    opened.env.store.close().await;
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
