//! The scheduled retention purge (GDPR), as a background task per tenant. (Personal fields
//! are masked before the activity log is written: `store::mask`.)

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::RetentionConfig;
use crate::store::{PurgeCounts, Store, StoreError, now_ms};

/// Deletes personal data older than `keep` now.
pub async fn purge_now(
    store: &Store,
    tenant: &str,
    keep: Duration,
) -> Result<PurgeCounts, StoreError> {
    let cutoff = now_ms() - i64::try_from(keep.as_millis()).unwrap_or(i64::MAX / 2);
    let counts = store.purge(tenant, cutoff).await?;
    tracing::info!(
        tenant,
        activity = counts.activity_rows,
        records = counts.record_rows,
        failed = counts.failed_rows,
        "Retention purge done."
    );
    Ok(counts)
}

/// Purges every `every` (the first purge at once), until cancelled.
pub fn spawn(
    store: Store,
    tenant: String,
    config: RetentionConfig,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let keep = config.keep();
    let every = config.every();
    tokio::spawn(async move {
        let mut purge = tokio::time::interval(every);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = purge.tick() => {
                    if let Err(error) = purge_now(&store, &tenant, keep).await {
                        tracing::error!(tenant = %tenant, %error, "Retention purge failed.");
                    }
                }
            }
        }
    })
}
