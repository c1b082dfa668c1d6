//! The scheduled retention purge (GDPR) and the masking of personal fields in the activity
//! log, as a background task per tenant.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::RetentionConfig;
use super::mask::Masker;
use crate::store::{ActivityTexts, PurgeCounts, Store, StoreError, now_ms};

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

/// Masks the activity rows written since the last call; returns how many changed.
pub async fn mask_new(store: &Store, tenant: &str, masker: &Masker) -> Result<u64, StoreError> {
    if masker.is_empty() {
        return Ok(0);
    }
    let mut changed_total = 0;
    loop {
        let rows = store.activity_to_mask(tenant, 500).await?;
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(changed_total);
        };
        let changed: Vec<ActivityTexts> = rows
            .into_iter()
            .filter_map(|row| {
                let url = masker.url(&row.url).into_owned();
                let request = row
                    .request_body
                    .as_deref()
                    .map(|b| masker.body(b).into_owned());
                let response = row
                    .response_body
                    .as_deref()
                    .map(|b| masker.body(b).into_owned());
                (url != row.url || request != row.request_body || response != row.response_body)
                    .then_some(ActivityTexts {
                        id: row.id,
                        url,
                        request_body: request,
                        response_body: response,
                    })
            })
            .collect();
        changed_total += changed.len() as u64;
        store.save_masked(tenant, &changed, last).await?;
    }
}

/// Purges every `every` (the first purge at once) and masks new activity every few seconds,
/// until cancelled.
pub fn spawn(
    store: Store,
    tenant: String,
    config: RetentionConfig,
    masker: Masker,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let keep = config.keep().unwrap_or(Duration::from_secs(14 * 86_400));
    let every = config.every().unwrap_or(Duration::from_secs(3600));
    tokio::spawn(async move {
        let mut purge = tokio::time::interval(every);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut mask = tokio::time::interval(Duration::from_secs(5));
        mask.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = purge.tick() => {
                    if let Err(error) = purge_now(&store, &tenant, keep).await {
                        tracing::error!(tenant = %tenant, %error, "Retention purge failed.");
                    }
                }
                _ = mask.tick(), if !masker.is_empty() => {
                    if let Err(error) = mask_new(&store, &tenant, &masker).await {
                        tracing::error!(tenant = %tenant, %error, "Masking the activity log failed.");
                    }
                }
            }
        }
    })
}
