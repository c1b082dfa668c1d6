//! `koppel run`: each enabled flow on its interval, one run per flow at a time (one task per
//! flow), "run now" on request (dashboard, webhooks), and a clean stop after the current batch.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::definition::FlowDef;
use super::engine::{Environment, Progress, RunOptions, RunSummary, run_flow};

/// The running schedule.
pub struct Scheduler {
    wakers: BTreeMap<String, Arc<Notify>>,
    tasks: JoinSet<()>,
    cancel: CancellationToken,
    finished: broadcast::Sender<RunSummary>,
}

impl Scheduler {
    /// Starts a task per flow; the first run of each starts at once.
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
            let waker = Arc::new(Notify::new());
            wakers.insert(flow.name.clone(), waker.clone());
            let env = env.clone();
            let cancel = cancel.clone();
            let progress = progress.clone();
            let finished = finished.clone();
            tasks.spawn(async move {
                let interval = flow
                    .interval()
                    .unwrap_or(std::time::Duration::from_secs(900));
                let mut trigger = "schedule";
                loop {
                    let options = RunOptions {
                        full: false,
                        trigger: trigger.to_owned(),
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
                    trigger = tokio::select! {
                        _ = tokio::time::sleep(interval) => "schedule",
                        _ = waker.notified() => "manual",
                        _ = cancel.cancelled() => break,
                    };
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

    /// Runs a flow now (after its current run, if one is going). False for an unknown flow.
    pub fn run_now(&self, flow: &str) -> bool {
        match self.wakers.get(flow) {
            Some(waker) => {
                waker.notify_one();
                true
            }
            None => false,
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
