//! One koppel, wired in one place: the configuration read and checked, the state database
//! opened, the connectors loaded ([`App::open`]); then one flow run once ([`App::sync`], for
//! `koppel sync`) or the schedule and the server started ([`App::serve`], for `koppel run`
//! and the demo's dashboard). The commands and the tests start here rather than putting store,
//! runtime, scheduler and server together themselves.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::LoadError;
use crate::flow::schedule::Scheduler;
use crate::flow::{Environment, FlowError, Loaded, Progress, RunOptions, RunSummary, run_flow};
use crate::hosting::Hosting;
use crate::notify::{Monitor, Notifier, NotifyError};
use crate::runtime::{RunPool, Runtime};
use crate::server::{FlowControl, ServerError, Started};
use crate::store::{ActivityWriter, Masker, Store, StoreError};

/// Why koppel could not start or carry out what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("state database {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Flow(#[from] FlowError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Notify(#[from] NotifyError),
    #[error(
        "flow `{flow}` is not enabled in {file}; enabled: {enabled}. Add [flows.{flow}] to enable it."
    )]
    NotEnabled {
        flow: String,
        file: String,
        enabled: String,
    },
}

/// A configuration and the environment its flows run in.
pub struct App {
    pub loaded: Loaded,
    pub env: Environment,
    /// The runtime the connectors run in (hosted tenants load theirs into it too).
    pub runtime: Runtime,
}

impl App {
    /// Opens the state database of `loaded` (runs a stopped process left going are marked
    /// interrupted), starts the activity writer with the configured masking, and loads and
    /// checks the connectors. Writes nothing else.
    pub async fn open(loaded: Loaded, runtime: &Runtime) -> Result<App, AppError> {
        let database = loaded.database();
        let store = Store::open(&database)
            .await
            .map_err(|source| AppError::Store {
                path: database.display().to_string(),
                source,
            })?;
        let interrupted =
            store
                .mark_interrupted_runs()
                .await
                .map_err(|source| AppError::Store {
                    path: database.display().to_string(),
                    source,
                })?;
        if interrupted > 0 {
            tracing::warn!(
                runs = interrupted,
                "Runs were interrupted when koppel last stopped; they resume now."
            );
        }
        let masker = Masker::new(&loaded.config.retention.mask_fields);
        let activity = ActivityWriter::start_masked(store.clone(), masker);
        let env = loaded.environment(runtime, store, activity).await?;
        Ok(App {
            loaded,
            env,
            runtime: runtime.clone(),
        })
    }

    /// Runs the enabled flow `name` once, then records its incidents and sends its
    /// notifications as `koppel run` would (a sync from cron that fails is told at once, and
    /// its recovery too).
    pub async fn sync(&self, name: &str, options: &RunOptions) -> Result<RunSummary, AppError> {
        let Some(flow) = self.loaded.flow(name) else {
            let enabled: Vec<&str> = self.loaded.flows.iter().map(|f| f.name.as_str()).collect();
            return Err(AppError::NotEnabled {
                flow: name.to_owned(),
                file: self.loaded.path.display().to_string(),
                enabled: if enabled.is_empty() {
                    "none".to_owned()
                } else {
                    enabled.join(", ")
                },
            });
        };
        let summary = run_flow(&self.env, flow, options).await?;
        let notify = &self.loaded.config.notify;
        if notify.webhook.is_some() || notify.email.is_some() {
            let notifier = Notifier::from_config(notify)?;
            let monitor = Monitor::new(
                &self.env.tenant,
                self.env.store.clone(),
                self.loaded.flows.clone(),
                Arc::new(notifier),
                notify.record_attempts(),
            )
            .with_public_url(self.loaded.config.server.public_url.clone());
            if let Err(error) = monitor.on_run(&summary).await {
                tracing::warn!(%error, "Cannot record the run's incidents.");
            }
        }
        Ok(summary)
    }

    /// Records the connections and flows in the state database, starts every enabled flow
    /// on its schedule and the server (dashboard, API, webhooks, metrics, the monitor and the
    /// retention purge). Everything stops when `cancel` is cancelled; [`Serving::stop`] waits
    /// for it.
    pub async fn serve(
        &self,
        cancel: CancellationToken,
        progress: Option<Arc<dyn Progress>>,
    ) -> Result<Serving, AppError> {
        self.loaded
            .register(&self.env)
            .await
            .map_err(|source| AppError::Store {
                path: self.loaded.database().display().to_string(),
                source,
            })?;
        // Hosting many tenants: every run, this file's own too, takes its turn in one pool.
        let pool = self
            .loaded
            .config
            .hosting
            .tenants
            .as_ref()
            .map(|_| RunPool::new(self.loaded.config.hosting.workers()));
        if let Some(pool) = &pool {
            self.env.quota.use_pool(pool.clone());
        }
        let scheduler = Arc::new(Scheduler::start(
            self.env.clone(),
            self.loaded.flows.clone(),
            cancel.clone(),
            progress.clone(),
        ));
        let control: Arc<dyn FlowControl> = scheduler.clone();
        let server = crate::server::start(
            &self.loaded,
            self.env.clone(),
            Some(control),
            scheduler.subscribe(),
            cancel.clone(),
        )
        .await?;
        let hosting = pool.and_then(|pool| {
            Hosting::new(
                self.loaded.config.clone(),
                self.runtime.clone(),
                self.env.store.clone(),
                server.state.clone(),
                pool,
                progress,
                cancel.clone(),
            )
        });
        if let Some(hosting) = &hosting {
            let report = hosting.reload().await;
            tracing::info!(
                dir = %hosting.dir().display(),
                started = report.started.len(),
                refused = report.refused.len(),
                "Hosting the tenants of the tenants folder."
            );
            hosting.watch(self.loaded.config.hosting.reload_every());
        }
        Ok(Serving {
            scheduler,
            server,
            hosting,
            cancel,
        })
    }

    /// Flushes the activity log and closes the state database.
    pub async fn close(self) {
        self.env.activity.flush().await;
        self.env.store.close().await;
    }
}

/// The schedule and the server of a running koppel.
pub struct Serving {
    pub scheduler: Arc<Scheduler>,
    pub server: Started,
    /// The tenants of `[hosting] tenants`, when the configuration names a folder.
    pub hosting: Option<Arc<Hosting>>,
    cancel: CancellationToken,
}

impl Serving {
    /// Stops the server and the schedule after their current batch, and waits for both.
    pub async fn stop(self) {
        self.cancel.cancel();
        self.server.wait().await;
        self.scheduler.stop().await;
        if let Some(hosting) = &self.hosting {
            hosting.stop_all().await;
        }
    }
}
