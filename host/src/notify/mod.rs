//! Monitoring: watches the runs of one tenant and raises an incident when a flow fails, when
//! records keep failing, or when a flow has not succeeded for longer than its threshold
//! (`stale_after`). Each incident is notified once when it opens and once when it is
//! resolved, through the channels of `[notify]`; incidents and notifications are kept in
//! the state database.

pub mod channels;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use channels::{Notice, Notifier, NotifyError};

use crate::flow::{FlowDef, RunSummary};
use crate::store::{Incident, RunStatus, Store, StoreError, now_ms};

/// The kinds of incident.
pub const FLOW_FAILED: &str = "flow-failed";
pub const RECORDS_FAILING: &str = "records-failing";
pub const STALE: &str = "stale";

/// Watches one tenant's runs.
#[derive(Clone)]
pub struct Monitor {
    tenant: String,
    store: Store,
    flows: Vec<FlowDef>,
    notifier: Arc<Notifier>,
    record_attempts: u32,
    public_url: Option<String>,
}

impl Monitor {
    pub fn new(
        tenant: &str,
        store: Store,
        flows: Vec<FlowDef>,
        notifier: Arc<Notifier>,
        record_attempts: u32,
    ) -> Monitor {
        Monitor {
            tenant: tenant.to_owned(),
            store,
            flows,
            notifier,
            record_attempts: record_attempts.max(1),
            public_url: None,
        }
    }

    /// Links in notifications point here (the dashboard's address as people reach it).
    pub fn with_public_url(mut self, url: Option<String>) -> Monitor {
        self.public_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    async fn notify(&self, incident: &Incident, event: &str) -> Result<(), StoreError> {
        tracing::info!(tenant = %self.tenant, flow = %incident.flow, kind = %incident.kind, event, incident = incident.id, "Incident {event}.");
        let url = self.public_url.as_ref().map(|base| match incident.run_id {
            Some(run) if event == "opened" => format!("{base}/runs/{run}"),
            _ => format!("{base}/"),
        });
        let notice = Notice {
            tenant: &self.tenant,
            event,
            incident,
            url,
        };
        for (channel, error) in self.notifier.send(&notice).await {
            self.store
                .add_notification(&self.tenant, incident.id, event, channel, error.as_deref())
                .await?;
        }
        Ok(())
    }

    async fn open(
        &self,
        flow: &str,
        kind: &str,
        message: &str,
        run_id: Option<i64>,
    ) -> Result<(), StoreError> {
        if let Some(incident) = self
            .store
            .open_incident(&self.tenant, flow, kind, message, run_id)
            .await?
        {
            self.notify(&incident, "opened").await?;
        }
        Ok(())
    }

    async fn resolve(&self, flow: &str, kind: &str, resolution: &str) -> Result<(), StoreError> {
        if let Some(incident) = self
            .store
            .resolve_incident(&self.tenant, flow, kind, resolution)
            .await?
        {
            self.notify(&incident, "resolved").await?;
        }
        Ok(())
    }

    /// Looks at a finished run: opens or resolves the flow's incidents.
    pub async fn on_run(&self, summary: &RunSummary) -> Result<(), StoreError> {
        let flow = summary.flow.as_str();
        match summary.status {
            RunStatus::Failed => {
                let message = format!(
                    "Flow `{flow}` failed in run #{}: {}",
                    summary.run_id,
                    summary.error.as_deref().unwrap_or("no reason given")
                );
                self.open(flow, FLOW_FAILED, &message, Some(summary.run_id))
                    .await?;
            }
            RunStatus::Succeeded | RunStatus::Partial => {
                let resolution = format!("run #{} of `{flow}` succeeded", summary.run_id);
                self.resolve(flow, FLOW_FAILED, &resolution).await?;
                self.resolve(flow, STALE, &resolution).await?;
            }
            RunStatus::Running | RunStatus::Interrupted => return Ok(()),
        }
        let failing = self
            .store
            .failing_records(&self.tenant, flow, self.record_attempts, 1000)
            .await?;
        if failing.is_empty() {
            if summary.status != RunStatus::Failed {
                self.resolve(
                    flow,
                    RECORDS_FAILING,
                    &format!("no record of `{flow}` is failing any more"),
                )
                .await?;
            }
        } else {
            let mut message = format!(
                "{} record{} of flow `{flow}` failed {} times or more:",
                failing.len(),
                if failing.len() == 1 { "" } else { "s" },
                self.record_attempts
            );
            for (key, error, attempts) in failing.iter().take(10) {
                message.push_str(&format!("\n- {key} ({attempts}×): {error}"));
            }
            if failing.len() > 10 {
                message.push_str(&format!("\n- … and {} more", failing.len() - 10));
            }
            self.open(flow, RECORDS_FAILING, &message, Some(summary.run_id))
                .await?;
        }
        Ok(())
    }

    /// Opens a `stale` incident for each flow that has not succeeded for longer than its
    /// threshold (flows disabled from the dashboard are left alone).
    pub async fn check_stale(&self) -> Result<(), StoreError> {
        self.check_stale_at(now_ms()).await
    }

    /// [`Monitor::check_stale`] as if it were `now` (unix ms).
    pub async fn check_stale_at(&self, now: i64) -> Result<(), StoreError> {
        for flow in &self.flows {
            let threshold = flow.stale_after();
            let setting = self.store.flow_override(&self.tenant, &flow.name).await?;
            if setting.enabled == Some(false) {
                continue;
            }
            let since = match self.store.last_success(&self.tenant, &flow.name).await? {
                Some(run) => Some(run.finished_at.unwrap_or(run.started_at)),
                None => {
                    self.store
                        .first_run_started(&self.tenant, &flow.name)
                        .await?
                }
            };
            let Some(since) = since else { continue };
            let age = Duration::from_millis(u64::try_from(now - since).unwrap_or(0));
            if age > threshold {
                let message = format!(
                    "Flow `{}` has not succeeded for {} (alert after {}).",
                    flow.name,
                    human(age),
                    human(threshold)
                );
                self.open(&flow.name, STALE, &message, None).await?;
            }
        }
        Ok(())
    }

    /// Watches the runs as they finish and checks staleness every `every`, until cancelled.
    pub fn spawn(
        self,
        mut runs: broadcast::Receiver<RunSummary>,
        every: Duration,
        cancel: CancellationToken,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut open = true;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(error) = self.check_stale().await {
                            tracing::error!(tenant = %self.tenant, %error, "Cannot check for stale flows.");
                        }
                    }
                    summary = runs.recv(), if open => match summary {
                        Ok(summary) => {
                            if let Err(error) = self.on_run(&summary).await {
                                tracing::error!(tenant = %self.tenant, %error, "Cannot record an incident.");
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(tenant = %self.tenant, missed, "The monitor missed runs; it catches up with the next.");
                        }
                        Err(broadcast::error::RecvError::Closed) => open = false,
                    },
                }
            }
        })
    }
}

/// `2 h 5 min`, `40 s`.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s} s"),
        120..7200 => format!("{} min", s / 60),
        7200..172_800 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} days", s / 86_400),
    }
}
