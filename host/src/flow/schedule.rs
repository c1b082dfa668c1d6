//! `koppel run`: each enabled flow on its interval, one run per flow at a time (one task per
//! flow), "run now" on request (dashboard, webhooks), a run as soon as the source changed for
//! a flow with `watch` ([`super::watch`]), the dashboard's enable/interval settings over
//! `koppel.toml`, and a clean stop after the current batch.
//!
//! Run-now requests coalesce: while a run of a flow is queued or going, more requests for
//! it merge into at most one follow-up run (a hundred webhooks in a burst are one run after
//! the current one, not a hundred back to back). The follow-up reads everything that
//! changed meanwhile, so no request is lost.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::definition::FlowDef;
use super::engine::{Environment, Progress, RunOptions, RunSummary, run_flow};
use super::watch::{self, Watcher};

/// What a flow's task is asked to do when it wakes up.
#[derive(Debug, Default)]
struct Wanted {
    /// Run now, recording this trigger (the first request's; later ones merge into it).
    run: Option<&'static str>,
    /// Its enabled flag or interval changed: re-read them.
    settings: bool,
    /// A run was taken and has not ended yet (kept by [`Waker::take`], not handed out).
    busy: bool,
}

/// The doorbell of one flow's task: at most one run waits, however often it is rung.
#[derive(Debug, Default)]
struct Waker {
    wanted: Mutex<Wanted>,
    notify: Notify,
    /// The task has ended (the schedule stopped).
    closed: AtomicBool,
}

impl Waker {
    fn wanted(&self) -> MutexGuard<'_, Wanted> {
        match self.wanted.lock() {
            Ok(wanted) => wanted,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Asks for a run: true when this queued one, false when it merged into one queued.
    fn request_run(&self, trigger: &'static str) -> bool {
        let mut wanted = self.wanted();
        if wanted.run.is_some() {
            return false;
        }
        wanted.run = Some(trigger);
        drop(wanted);
        self.notify.notify_one();
        true
    }

    fn request_settings(&self) {
        self.wanted().settings = true;
        self.notify.notify_one();
    }

    /// What was asked since the last call; a run taken here is no longer queued but busy
    /// until the next call, under the same lock, so the flow never looks at rest between.
    fn take(&self) -> Wanted {
        let mut wanted = self.wanted();
        let run = wanted.run.take();
        wanted.busy = run.is_some();
        Wanted {
            run,
            settings: std::mem::take(&mut wanted.settings),
            busy: false,
        }
    }

    /// Neither a run waits nor one goes.
    fn at_rest(&self) -> bool {
        let wanted = self.wanted();
        wanted.run.is_none() && !wanted.busy
    }

    /// A run starts that no request queued (the schedule's own).
    fn begin(&self) {
        self.wanted().busy = true;
    }
}

/// The running schedule.
pub struct Scheduler {
    wakers: BTreeMap<String, Arc<Waker>>,
    tasks: tokio::sync::Mutex<JoinSet<()>>,
    cancel: CancellationToken,
    finished: broadcast::Sender<RunSummary>,
}

/// The flow's schedule now: the dashboard's setting (kept in the database) over the file.
async fn effective(env: &Environment, flow: &FlowDef) -> (bool, Duration) {
    let configured = flow.interval();
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
        let mut watchers = Vec::new();
        for flow in flows {
            let waker = Arc::new(Waker::default());
            wakers.insert(flow.name.clone(), waker.clone());
            if let Some(every) = flow.watch() {
                let woken = waker.clone();
                watchers.push((
                    flow.source.connection.clone(),
                    Watcher {
                        flow: flow.name.clone(),
                        stream: flow.source.stream.clone(),
                        every,
                        wake: Arc::new(move || {
                            woken.request_run("watch");
                        }),
                    },
                ));
            }
            let env = env.clone();
            let cancel = cancel.clone();
            let progress = progress.clone();
            let finished = finished.clone();
            tasks.spawn(async move {
                let mut trigger = Some("schedule");
                waker.begin();
                loop {
                    let (enabled, interval) = effective(&env, &flow).await;
                    // A scheduled or watched run needs the flow enabled; a requested one
                    // runs anyway.
                    let run = match trigger {
                        Some("schedule" | "watch") => enabled,
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
                    // A request made during the run is waiting already: no sleep before it.
                    let wanted = waker.take();
                    trigger = match wanted.run {
                        Some(why) => Some(why),
                        None if wanted.settings => None,
                        None => tokio::select! {
                            _ = tokio::time::sleep(interval) => {
                                waker.begin();
                                Some("schedule")
                            }
                            _ = waker.notify.notified() => waker.take().run,
                            _ = cancel.cancelled() => break,
                        },
                    };
                    if cancel.is_cancelled() {
                        break;
                    }
                }
                waker.closed.store(true, Ordering::Release);
            });
        }
        watch::start(&mut tasks, &env, watchers, &cancel);
        Scheduler {
            wakers,
            tasks: tokio::sync::Mutex::new(tasks),
            cancel,
            finished,
        }
    }

    /// Runs a flow now (after its current run, if one is going), recording `trigger`. While
    /// a run of the flow is already queued, the request merges into it. False for a flow
    /// this schedule does not run (or no longer runs: it stopped).
    pub fn run_now(&self, flow: &str, trigger: &'static str) -> bool {
        let Some(waker) = self.wakers.get(flow) else {
            return false;
        };
        if waker.closed.load(Ordering::Acquire) {
            return false;
        }
        if !waker.request_run(trigger) {
            tracing::debug!(flow, trigger, "Run request merged into the one queued.");
        }
        true
    }

    /// Whether a run of the flow waits to start (requested, not yet begun).
    pub fn is_queued(&self, flow: &str) -> bool {
        self.wakers
            .get(flow)
            .is_some_and(|waker| waker.wanted().run.is_some())
    }

    /// Whether the flow neither runs nor has a run waiting: every request made before this
    /// call has had its run end.
    pub fn is_at_rest(&self, flow: &str) -> bool {
        self.wakers.get(flow).is_none_or(|waker| waker.at_rest())
    }

    /// The flow's enabled flag or interval changed: it takes effect now, not after the
    /// current wait.
    pub fn settings_changed(&self, flow: &str) {
        if let Some(waker) = self.wakers.get(flow) {
            waker.request_settings();
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
    pub async fn stop(&self) {
        self.cancel.cancel();
        let mut tasks = self.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_run_is_busy_until_the_next_take() {
        let waker = Waker::default();
        assert!(waker.at_rest());
        assert!(waker.request_run("webhook"));
        assert!(!waker.request_run("webhook"), "merged into the queued one");
        assert!(!waker.at_rest(), "queued");
        assert_eq!(waker.take().run, Some("webhook"));
        assert!(!waker.at_rest(), "taken: running, no longer queued");
        assert_eq!(waker.take().run, None);
        assert!(waker.at_rest(), "the run ended and nothing waits");
        waker.begin();
        assert!(!waker.at_rest(), "a scheduled run goes");
    }
}
