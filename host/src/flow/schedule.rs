//! `koppel run`: each enabled flow on its interval, one run per flow at a time (one task per
//! flow), "run now" on request (dashboard, webhooks), the dashboard's enable/interval
//! settings over `koppel.toml`, and a clean stop after the current batch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::definition::FlowDef;
use super::engine::{Environment, Progress, RunOptions, RunSummary, run_flow};

/// Why a flow's task wakes up.
#[derive(Clone, Copy, Debug)]
enum Wake {
    /// Run now; the trigger is recorded with the run.
    Run(&'static str),
    /// Its enabled flag or interval changed: re-read them.
    Settings,
}

/// The running schedule.
pub struct Scheduler {
    wakers: BTreeMap<String, mpsc::UnboundedSender<Wake>>,
    tasks: JoinSet<()>,
    cancel: CancellationToken,
    finished: broadcast::Sender<RunSummary>,
}

/// The flow's schedule now: the dashboard's setting (kept in the database) over the file.
async fn effective(env: &Environment, flow: &FlowDef) -> (bool, Duration) {
    let configured = flow.interval().unwrap_or(Duration::from_secs(900));
    match env.store.flow_override(&env.tenant, &flow.name).await {
        Ok(setting) => (
            setting.enabled.unwrap_or(true),
            setting.interval().unwrap_or(configured),
        ),
        Err(error) => {
            tracing::warn!(flow = %flow.name, %error, "Cannot read the flow's schedule settings; using koppel.toml.");
            (true, configured)
        }
    }
}

impl Scheduler {
    /// Starts a task per flow; the first run of each enabled flow starts at once.
    pub fn start(
        env: Environment,
        flows: Vec<FlowDef>,
        cancel: CancellationToken,
        progress: Option<Arc<dyn Progress>>,
    ) -> Scheduler {
        let (finished, _) = broadcast::channel(256);
        let mut wakers = BTreeMap::new();
        let mut tasks = JoinSet::new();
        for flow in flows {
            let (waker, mut wakes) = mpsc::unbounded_channel();
            wakers.insert(flow.name.clone(), waker);
            let env = env.clone();
            let cancel = cancel.clone();
            let progress = progress.clone();
            let finished = finished.clone();
            tasks.spawn(async move {
                let mut trigger = Some("schedule");
                loop {
                    let (enabled, interval) = effective(&env, &flow).await;
                    // A scheduled run needs the flow enabled; a requested one runs anyway.
                    let run = match trigger {
                        Some("schedule") => enabled,
                        Some(_) => true,
                        None => false,
                    };
                    if run {
                        let options = RunOptions {
                            full: false,
                            trigger: trigger.unwrap_or("schedule").to_owned(),
                            cancel: cancel.child_token(),
                            progress: progress.clone(),
                        };
                        match run_flow(&env, &flow, &options).await {
                            Ok(summary) => {
                                let _ = finished.send(summary);
                            }
                            Err(error) => {
                                tracing::error!(flow = %flow.name, %error, "Run could not start.")
                            }
                        }
                    }
                    trigger = tokio::select! {
                        _ = tokio::time::sleep(interval) => Some("schedule"),
                        wake = wakes.recv() => match wake {
                            Some(Wake::Run(why)) => Some(why),
                            Some(Wake::Settings) => None,
                            None => break,
                        },
                        _ = cancel.cancelled() => break,
                    };
                    if cancel.is_cancelled() {
                        break;
                    }
                }
            });
        }
        Scheduler {
            wakers,
            tasks,
            cancel,
            finished,
        }
    }

    /// Runs a flow now (after its current run, if one is going), recording `trigger`. False
    /// for a flow this schedule does not run.
    pub fn run_now(&self, flow: &str, trigger: &'static str) -> bool {
        self.wakers
            .get(flow)
            .is_some_and(|waker| waker.send(Wake::Run(trigger)).is_ok())
    }

    /// The flow's enabled flag or interval changed: it takes effect now, not after the
    /// current wait.
    pub fn settings_changed(&self, flow: &str) {
        if let Some(waker) = self.wakers.get(flow) {
            let _ = waker.send(Wake::Settings);
        }
    }

    /// The summaries of runs as they finish.
    pub fn subscribe(&self) -> broadcast::Receiver<RunSummary> {
        self.finished.subscribe()
    }

    pub fn flows(&self) -> impl Iterator<Item = &str> {
        self.wakers.keys().map(String::as_str)
    }

    /// Asks every flow to stop after its current batch, and waits until all have.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}
