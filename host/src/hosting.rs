//! Hosting many shops in one process: the tenants as data. Every `<tenant>.toml` in the
//! operator's tenants folder (`[hosting] tenants`) is a tenant, in the format of
//! `koppel.toml`, run on the operator's state database, runtime and server. The folder is
//! read again every `reload_every`: a file added starts its tenant, a changed one restarts
//! it (its running flows finish their batch first), a removed one stops it; no other tenant
//! notices. A file with a problem is refused with the file and the key, and the version
//! before it, if one runs, keeps running. The operator API (`server::admin`) acts through
//! the same [`Hosting`]: what it creates is a file in the folder, so the folder stays the
//! truth.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, LoadError, is_tenant_name};
use crate::flow::schedule::Scheduler;
use crate::flow::{Environment, Loaded, Progress, RunSummary};
use crate::notify::{Monitor, Notifier};
use crate::runtime::{RunPool, Runtime};
use crate::server::admin::{AdminError, Problem, PutOutcome, TenantAdmin, TenantEntry};
use crate::server::{FlowControl, ServerState, TenantState, generate_token, retention};
use crate::store::{ActivityWriter, Masker, Store, token_hash};

/// What one reading of the tenants folder changed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReloadReport {
    pub started: Vec<String>,
    pub restarted: Vec<String>,
    pub stopped: Vec<String>,
    /// Files refused, each with the file, the key and why.
    pub refused: Vec<(String, String)>,
}

impl ReloadReport {
    pub fn is_empty(&self) -> bool {
        *self == ReloadReport::default()
    }
}

/// The tenants of a hosting koppel.
pub struct Hosting {
    operator: Config,
    dir: PathBuf,
    runtime: Runtime,
    store: Store,
    server: Arc<ServerState>,
    /// The run slots every tenant takes its turn in.
    pool: Arc<RunPool>,
    progress: Option<Arc<dyn Progress>>,
    cancel: CancellationToken,
    /// Held across a whole reload or operator action, so they never interleave.
    slots: Mutex<BTreeMap<String, Slot>>,
    reloads: broadcast::Sender<ReloadReport>,
    /// Every hosted tenant's finished runs: (tenant, summary).
    runs: broadcast::Sender<(String, RunSummary)>,
}

/// A tenant file and what runs of it.
struct Slot {
    file: PathBuf,
    /// The digest of the file's text last seen (running or refused).
    seen: String,
    running: Option<Running>,
    problem: Option<LoadError>,
}

impl Slot {
    fn new(file: PathBuf) -> Slot {
        Slot {
            file,
            seen: String::new(),
            running: None,
            problem: None,
        }
    }
}

/// A tenant that runs: its configuration, environment, schedule and tasks.
struct Running {
    loaded: Loaded,
    env: Environment,
    tokens: Vec<String>,
    notifier: Arc<Notifier>,
    /// Stops the tenant's tasks (retention; the schedule's token is a child).
    cancel: CancellationToken,
    retention: JoinHandle<()>,
    schedule: Option<Schedule>,
}

/// The running schedule of a tenant that is not paused, with its monitor.
struct Schedule {
    scheduler: Arc<Scheduler>,
    monitor: JoinHandle<()>,
}

/// A tenant file read and checked, its connectors loaded: ready to start.
struct Prepared {
    loaded: Loaded,
    env: Environment,
    tokens: Vec<String>,
    notifier: Arc<Notifier>,
}

fn digest(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The tenant files of `dir`: `<name>.toml` (hidden files and editors' copies left out),
/// by name, with their text.
fn tenant_files(dir: &Path) -> std::io::Result<BTreeMap<String, (PathBuf, String)>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".toml") else {
            continue;
        };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                files.insert(stem.to_owned(), (path, text));
            }
            // Removed between listing and reading: gone, as the next reading will see.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    Ok(files)
}

impl Hosting {
    /// Hosting for the operator's `operator` config, whose `[hosting] tenants` names the
    /// folder; tenants are served by `server`, their state in `store`, their runs take
    /// their turns in `pool`. Starts nothing: call [`Hosting::reload`], then
    /// [`Hosting::watch`].
    pub fn new(
        operator: Config,
        runtime: Runtime,
        store: Store,
        server: Arc<ServerState>,
        pool: Arc<RunPool>,
        progress: Option<Arc<dyn Progress>>,
        cancel: CancellationToken,
    ) -> Option<Arc<Hosting>> {
        let dir = operator.hosting.tenants.clone()?;
        let (reloads, _) = broadcast::channel(64);
        let (runs, _) = broadcast::channel(1024);
        let hosting = Arc::new(Hosting {
            operator,
            dir,
            runtime,
            store,
            server,
            pool,
            progress,
            cancel,
            slots: Mutex::new(BTreeMap::new()),
            reloads,
            runs,
        });
        let admin: Arc<dyn TenantAdmin> = hosting.clone();
        let weak: Weak<dyn TenantAdmin> = Arc::downgrade(&admin);
        hosting.server.set_admin(weak);
        Some(hosting)
    }

    /// How many tenants run (paused ones included).
    pub async fn count(&self) -> usize {
        self.slots
            .lock()
            .await
            .values()
            .filter(|s| s.running.is_some())
            .count()
    }

    /// The folder of tenant files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reports of later readings of the folder, as they happen (the ones that changed
    /// something).
    pub fn subscribe(&self) -> broadcast::Receiver<ReloadReport> {
        self.reloads.subscribe()
    }

    /// The summaries of every hosted tenant's runs as they finish, with the tenant.
    pub fn subscribe_runs(&self) -> broadcast::Receiver<(String, RunSummary)> {
        self.runs.subscribe()
    }

    /// Reads the folder again every `every` until the hosting's token is cancelled.
    pub fn watch(self: &Arc<Self>, every: Duration) -> JoinHandle<()> {
        let hosting = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = hosting.cancel.cancelled() => break,
                }
                hosting.reload().await;
            }
        })
    }

    /// Reads the folder once: starts, restarts and stops tenants as their files say.
    pub async fn reload(&self) -> ReloadReport {
        let mut report = ReloadReport::default();
        let files = match tenant_files(&self.dir) {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(dir = %self.dir.display(), %error, "Cannot read the tenants folder; the tenants keep running as they are.");
                return report;
            }
        };
        let mut slots = self.slots.lock().await;
        let gone: Vec<String> = slots
            .keys()
            .filter(|name| !files.contains_key(*name))
            .cloned()
            .collect();
        for name in gone {
            if let Some(slot) = slots.remove(&name) {
                if let Some(running) = slot.running {
                    self.stop(&name, running).await;
                    report.stopped.push(name.clone());
                }
                tracing::info!(tenant = %name, "Tenant file removed; the tenant stopped.");
            }
        }
        for (name, (path, text)) in files {
            let seen = digest(&text);
            if slots.get(&name).is_some_and(|slot| slot.seen == seen) {
                continue;
            }
            let slot = slots
                .entry(name.clone())
                .or_insert_with(|| Slot::new(path.clone()));
            slot.seen = seen;
            match self.prepare(&path, &text).await {
                Ok(prepared) => match self.replace(&name, slot, prepared).await {
                    Ok(true) => {
                        tracing::info!(tenant = %name, "Tenant file changed; the tenant restarted.");
                        report.restarted.push(name);
                    }
                    Ok(false) => {
                        tracing::info!(tenant = %name, "Tenant started.");
                        report.started.push(name);
                    }
                    Err(error) => {
                        tracing::error!(tenant = %name, %error, "The tenant could not start.");
                        report.refused.push((name, error.to_string()));
                    }
                },
                Err(error) => {
                    tracing::error!(tenant = %name, file = %error.file, key = %error.key, "Tenant file refused: {}", error.message);
                    report.refused.push((name, error.to_string()));
                    slot.problem = Some(error);
                }
            }
        }
        drop(slots);
        if !report.is_empty() {
            let _ = self.reloads.send(report.clone());
        }
        report
    }

    /// Runs `prepared` in `slot` instead of what ran there (stopped first, after its current
    /// batch). True when a version ran before; on an error the slot holds it as its problem.
    async fn replace(
        &self,
        name: &str,
        slot: &mut Slot,
        prepared: Prepared,
    ) -> Result<bool, LoadError> {
        let restarted = match slot.running.take() {
            Some(old) => {
                self.stop(name, old).await;
                true
            }
            None => false,
        };
        slot.problem = None;
        match self.start(name, prepared).await {
            Ok(running) => {
                slot.running = Some(running);
                Ok(restarted)
            }
            Err(error) => {
                slot.problem = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Reads and checks a tenant file's text and loads its connectors; starts nothing.
    async fn prepare(&self, path: &Path, text: &str) -> Result<Prepared, LoadError> {
        let config = Config::tenant_from_text(path, text, &self.operator)?;
        let loaded = Loaded::from_config(config)?;
        let config = &loaded.config;
        let tokens = config
            .server
            .resolved_tokens()
            .map_err(|(key, message)| config.error(key, message))?;
        let notifier = Notifier::from_config(&config.notify)
            .map_err(|e| config.error("notify", e.to_string()))?;
        let activity = ActivityWriter::start_masked(
            self.store.clone(),
            Masker::new(&config.retention.mask_fields),
        );
        let env = loaded
            .environment(&self.runtime, self.store.clone(), activity)
            .await?;
        env.quota.use_pool(self.pool.clone());
        Ok(Prepared {
            loaded,
            env,
            tokens,
            notifier: Arc::new(notifier),
        })
    }

    /// Starts a prepared tenant: records its connections and flows, starts its schedule
    /// (unless the operator paused it) and serves it.
    async fn start(&self, name: &str, prepared: Prepared) -> Result<Running, LoadError> {
        let Prepared {
            loaded,
            env,
            tokens,
            notifier,
        } = prepared;
        let failed = |e: &dyn std::fmt::Display| loaded.config.error("(state)", e.to_string());
        loaded.register(&env).await.map_err(|e| failed(&e))?;
        let paused = self
            .store
            .tenant_paused(name)
            .await
            .map_err(|e| failed(&e))?;
        let cancel = self.cancel.child_token();
        let retention = retention::spawn(
            self.store.clone(),
            name.to_owned(),
            loaded.config.retention.clone(),
            cancel.clone(),
        );
        let mut running = Running {
            loaded,
            env,
            tokens,
            notifier,
            cancel,
            retention,
            schedule: None,
        };
        if !paused {
            running.schedule = Some(self.schedule(&running));
        }
        if let Err(error) = self.serve(&running).await {
            let error = running
                .loaded
                .config
                .error("server.tokens", error.to_string());
            self.stop(name, running).await;
            return Err(error);
        }
        Ok(running)
    }

    fn schedule(&self, running: &Running) -> Schedule {
        let cancel = running.cancel.child_token();
        let scheduler = Arc::new(Scheduler::start(
            running.env.clone(),
            running.loaded.flows.clone(),
            cancel.clone(),
            self.progress.clone(),
        ));
        let notify = &running.loaded.config.notify;
        let monitor = Monitor::new(
            &running.env.tenant,
            self.store.clone(),
            running.loaded.flows.clone(),
            running.notifier.clone(),
            notify.record_attempts(),
        )
        .with_public_url(running.loaded.config.server.public_url.clone())
        .spawn(scheduler.subscribe(), Duration::from_secs(60), cancel);
        // Ends when the scheduler is dropped (its sender with it).
        let mut finished = scheduler.subscribe();
        let (runs, tenant) = (self.runs.clone(), running.env.tenant.clone());
        tokio::spawn(async move {
            loop {
                match finished.recv().await {
                    Ok(summary) => {
                        let _ = runs.send((tenant.clone(), summary));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        Schedule { scheduler, monitor }
    }

    /// Serves the tenant as it is now (with its schedule, or paused without).
    async fn serve(&self, running: &Running) -> Result<(), crate::server::ServerError> {
        let mut state = TenantState::from_loaded(&running.loaded, running.env.clone())?;
        match &running.schedule {
            Some(schedule) => {
                let control: Arc<dyn FlowControl> = schedule.scheduler.clone();
                state = state.with_control(control);
            }
            None => state.paused = true,
        }
        self.server.put_tenant(state, &running.tokens).await
    }

    /// Stops a tenant: no longer served, its runs end after their current batch, its
    /// activity written.
    async fn stop(&self, name: &str, running: Running) {
        self.server.remove_tenant(name);
        if let Some(schedule) = running.schedule {
            schedule.scheduler.stop().await;
            let _ = schedule.monitor.await;
        }
        running.cancel.cancel();
        let _ = running.retention.await;
        running.env.activity.flush().await;
    }

    /// Stops every tenant (their runs end after the current batch).
    pub async fn stop_all(&self) {
        let mut slots = self.slots.lock().await;
        for (name, slot) in std::mem::take(&mut *slots) {
            if let Some(running) = slot.running {
                self.stop(&name, running).await;
            }
        }
    }

    fn file_of(&self, name: &str) -> Result<PathBuf, AdminError> {
        if !is_tenant_name(name) {
            return Err(AdminError::BadName(format!(
                "`{name}` is not a tenant name: use 1 to 64 letters, digits, `-` and `_`, starting with a letter or digit"
            )));
        }
        Ok(self.dir.join(format!("{name}.toml")))
    }
}

fn failed(what: &str, error: impl std::fmt::Display) -> AdminError {
    AdminError::Failed(format!("{what}: {error}"))
}

#[async_trait::async_trait]
impl TenantAdmin for Hosting {
    async fn list(&self) -> Vec<TenantEntry> {
        let slots = self.slots.lock().await;
        slots
            .iter()
            .map(|(name, slot)| TenantEntry {
                tenant: name.clone(),
                file: slot.file.display().to_string(),
                state: match &slot.running {
                    None => "refused",
                    Some(running) if running.schedule.is_none() => "paused",
                    Some(_) => "running",
                },
                problem: slot.problem.as_ref().map(Problem::from),
            })
            .collect()
    }

    async fn put(&self, name: &str, text: &str) -> Result<PutOutcome, AdminError> {
        let file = self.file_of(name)?;
        let mut slots = self.slots.lock().await;
        let seen = digest(text);
        if let Some(slot) = slots.get(name)
            && slot.seen == seen
            && slot.running.is_some()
            && slot.problem.is_none()
        {
            return Ok(PutOutcome::Unchanged);
        }
        // Checked whole (connectors loaded, configs against their manifests) before the
        // file is written: a refused text changes nothing.
        let prepared = self
            .prepare(&file, text)
            .await
            .map_err(AdminError::Refused)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| failed("cannot create the tenants folder", e))?;
        let partial = self.dir.join(format!(".{name}.toml.partial"));
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::rename(&partial, &file))
            .map_err(|e| failed(&format!("cannot write {}", file.display()), e))?;
        let slot = slots
            .entry(name.to_owned())
            .or_insert_with(|| Slot::new(file.clone()));
        slot.seen = seen;
        let outcome = match self.replace(name, slot, prepared).await {
            Ok(true) => PutOutcome::Updated,
            Ok(false) => PutOutcome::Created,
            Err(error) => return Err(AdminError::Refused(error)),
        };
        tracing::info!(
            tenant = name,
            ?outcome,
            "Tenant written by the operator API."
        );
        Ok(outcome)
    }

    async fn delete(&self, name: &str) -> Result<bool, AdminError> {
        let file = self.file_of(name)?;
        let mut slots = self.slots.lock().await;
        let Some(slot) = slots.remove(name) else {
            return Ok(false);
        };
        if let Err(error) = std::fs::remove_file(&file)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            slots.insert(name.to_owned(), slot);
            return Err(failed(&format!("cannot remove {}", file.display()), error));
        }
        if let Some(running) = slot.running {
            self.stop(name, running).await;
        }
        tracing::info!(tenant = name, "Tenant deleted by the operator API.");
        Ok(true)
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<bool, AdminError> {
        let mut slots = self.slots.lock().await;
        let Some(slot) = slots.get_mut(name) else {
            return Ok(false);
        };
        self.store
            .set_tenant_paused(name, paused)
            .await
            .map_err(|e| failed("cannot record the pause", e))?;
        let Some(running) = slot.running.as_mut() else {
            return Ok(true); // Refused: it starts paused or not once its file is right.
        };
        match (paused, running.schedule.take()) {
            (true, Some(schedule)) => {
                schedule.scheduler.stop().await;
                let _ = schedule.monitor.await;
            }
            (false, None) => running.schedule = Some(self.schedule(running)),
            (_, schedule) => running.schedule = schedule,
        }
        self.serve(running)
            .await
            .map_err(|e| failed("cannot serve the tenant", e))?;
        tracing::info!(
            tenant = name,
            paused,
            "Tenant paused or resumed by the operator API."
        );
        Ok(true)
    }

    async fn issue_token(&self, name: &str) -> Result<Option<String>, AdminError> {
        let slots = self.slots.lock().await;
        if !slots.contains_key(name) {
            return Ok(None);
        }
        let token = generate_token();
        self.store
            .add_token(name, "issued by the operator API", &token)
            .await
            .map_err(|e| failed("cannot store the token", e))?;
        if slots.get(name).is_some_and(|s| s.running.is_some()) {
            self.server.add_token_hash(name, token_hash(&token));
        }
        Ok(Some(token))
    }
}
