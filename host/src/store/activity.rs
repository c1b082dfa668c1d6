//! The activity log in the database: the runtime's exchanges (already redacted) are queued
//! without blocking the connector, masked (`[retention] mask_fields`) and written in batches
//! by one task, so a masked field never reaches the disk.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use super::mask::Masker;
use super::{Result, Store, millis};
use crate::runtime::{ActivitySink, Exchange, Quota, TenantQuota};

enum Message {
    Exchange {
        run_id: Option<i64>,
        exchange: Box<Exchange>,
    },
    Flush(oneshot::Sender<()>),
    /// From now on, keep at most this many rows of the quota's tenant.
    Cap(Arc<TenantQuota>),
}

/// Writes exchanges to the `activity` table in the background.
#[derive(Clone)]
pub struct ActivityWriter {
    sender: mpsc::UnboundedSender<Message>,
}

/// The sink of one run (or of no run: a `check`): counts the exchanges it saw.
pub struct RunSink {
    writer: ActivityWriter,
    run_id: Option<i64>,
    exchanges: AtomicU64,
}

impl RunSink {
    /// Exchanges recorded so far.
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(Ordering::Relaxed)
    }
}

impl ActivitySink for RunSink {
    fn record(&self, exchange: Exchange) {
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        let _ = self.writer.sender.send(Message::Exchange {
            run_id: self.run_id,
            exchange: Box::new(exchange),
        });
    }
}

impl ActivityWriter {
    /// Starts the writer task on the current tokio runtime; nothing is masked.
    pub fn start(store: Store) -> ActivityWriter {
        ActivityWriter::start_masked(store, Masker::default())
    }

    /// Starts the writer task; `masker`'s fields are masked in URLs and bodies before they
    /// are written.
    pub fn start_masked(store: Store, masker: Masker) -> ActivityWriter {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Message>();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            let mut cap: Option<Arc<TenantQuota>> = None;
            while let Some(first) = receiver.recv().await {
                let mut flushes = Vec::new();
                let mut next = Some(first);
                while let Some(message) = next.take() {
                    match message {
                        Message::Exchange {
                            run_id,
                            mut exchange,
                        } => {
                            mask(&masker, &mut exchange);
                            pending.push((run_id, exchange));
                        }
                        Message::Flush(done) => flushes.push(done),
                        Message::Cap(quota) => cap = Some(quota),
                    }
                    if pending.len() < 500 {
                        next = receiver.try_recv().ok();
                    }
                }
                if let Err(error) = insert(&store, &pending).await {
                    tracing::error!(%error, count = pending.len(), "Cannot write the activity log.");
                }
                if let Some(quota) = cap.as_ref().filter(|_| !pending.is_empty()) {
                    trim(&store, quota).await;
                }
                pending.clear();
                for done in flushes {
                    let _ = done.send(());
                }
            }
        });
        ActivityWriter { sender }
    }

    /// A sink that files exchanges under `run_id`.
    pub fn sink(&self, run_id: Option<i64>) -> Arc<RunSink> {
        Arc::new(RunSink {
            writer: self.clone(),
            run_id,
            exchanges: AtomicU64::new(0),
        })
    }

    /// Keeps at most the tenant's quota of activity rows (`[quotas] activity_rows`): after
    /// each write, the oldest rows beyond it are deleted.
    pub fn keep_at_most(&self, quota: Arc<TenantQuota>) {
        if quota.limits().activity_rows.is_some() {
            let _ = self.sender.send(Message::Cap(quota));
        }
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

fn mask(masker: &Masker, exchange: &mut Exchange) {
    if masker.is_empty() {
        return;
    }
    if let Cow::Owned(url) = masker.url(&exchange.url) {
        exchange.url = url;
    }
    if let Cow::Owned(body) = masker.body(&exchange.request_body) {
        exchange.request_body = body;
    }
    if let Cow::Owned(body) = masker.body(&exchange.response_body) {
        exchange.response_body = body;
    }
}

/// Deletes the quota's tenant's oldest activity rows beyond its quota.
async fn trim(store: &Store, quota: &TenantQuota) {
    let Some(keep) = quota.limits().activity_rows else {
        return;
    };
    let deleted = sqlx::query(
        "DELETE FROM activity WHERE tenant = ?1 AND id <= \
         (SELECT id FROM activity WHERE tenant = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )
    .bind(quota.tenant())
    .bind(i64::try_from(keep).unwrap_or(i64::MAX))
    .execute(store.pool())
    .await;
    match deleted {
        Ok(done) if done.rows_affected() > 0 => {
            quota.hit(Quota::ActivityRows);
            tracing::debug!(
                tenant = quota.tenant(),
                deleted = done.rows_affected(),
                "Activity rows beyond the quota deleted."
            );
        }
        Ok(_) => {}
        Err(error) => tracing::error!(%error, "Cannot keep the activity log within its quota."),
    }
}

async fn insert(store: &Store, exchanges: &[(Option<i64>, Box<Exchange>)]) -> Result<()> {
    if exchanges.is_empty() {
        return Ok(());
    }
    let mut counts: std::collections::BTreeMap<(&str, &str, i64), i64> = Default::default();
    for (_, e) in exchanges {
        *counts
            .entry((&e.tenant, &e.connector, e.status.map_or(0, i64::from)))
            .or_default() += 1;
    }
    let mut tx = store.pool().begin().await?;
    for ((tenant, connector, status), n) in counts {
        sqlx::query(
            "INSERT INTO activity_counts (tenant, connector, status, exchanges) VALUES (?, ?, ?, ?)
             ON CONFLICT (tenant, connector, status) DO UPDATE SET exchanges = exchanges + excluded.exchanges",
        )
        .bind(tenant)
        .bind(connector)
        .bind(status)
        .bind(n)
        .execute(&mut *tx)
        .await?;
    }
    for (run_id, e) in exchanges {
        sqlx::query(
            "INSERT INTO activity (tenant, run_id, connection, connector, method, url, status, error, duration_ms,
             attempt, request_headers, request_body, response_headers, response_body, request_bytes, response_bytes, at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.tenant)
        .bind(run_id)
        .bind(&e.connection)
        .bind(&e.connector)
        .bind(&e.method)
        .bind(&e.url)
        .bind(e.status.map(i64::from))
        .bind(&e.error)
        .bind(e.duration_ms as i64)
        .bind(i64::from(e.attempt))
        .bind(serde_json::to_string(&e.request_headers).unwrap_or_default())
        .bind(&e.request_body)
        .bind(serde_json::to_string(&e.response_headers).unwrap_or_default())
        .bind(&e.response_body)
        .bind(e.request_bytes as i64)
        .bind(e.response_bytes as i64)
        .bind(millis(e.at))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One exchange as the activity log shows it.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct ActivityRow {
    pub id: i64,
    pub run_id: Option<i64>,
    pub connection: String,
    pub connector: String,
    pub method: String,
    pub url: String,
    pub status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub attempt: i64,
    pub request_headers: Option<String>,
    pub request_body: Option<String>,
    pub response_headers: Option<String>,
    pub response_body: Option<String>,
    pub at: i64,
}

/// An exchange that carried a record (its request body names the record's key).
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Carrier {
    pub id: i64,
    pub method: String,
    pub url: String,
    pub status: Option<i64>,
}

impl Store {
    /// The exchanges of run `run_id` to `connection` whose request body holds `needle` (a
    /// record's key): what was sent for that record, oldest first.
    pub async fn exchanges_carrying(
        &self,
        tenant: &str,
        run_id: i64,
        connection: &str,
        needle: &str,
        limit: u32,
    ) -> Result<Vec<Carrier>> {
        if needle.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query_as::<_, Carrier>(
            "SELECT id, method, url, status FROM activity
             WHERE tenant = ? AND run_id = ? AND connection = ? AND instr(request_body, ?) > 0
             ORDER BY id LIMIT ?",
        )
        .bind(tenant)
        .bind(run_id)
        .bind(connection)
        .bind(needle)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(Into::into)
    }

    /// Exchanges, newest first; of one run when given.
    pub async fn activity(
        &self,
        tenant: &str,
        run_id: Option<i64>,
        limit: u32,
    ) -> Result<Vec<ActivityRow>> {
        sqlx::query_as::<_, ActivityRow>(
            "SELECT id, run_id, connection, connector, method, url, status, error, duration_ms, attempt,
             request_headers, request_body, response_headers, response_body, at
             FROM activity WHERE tenant = ? AND (? IS NULL OR run_id = ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(tenant)
        .bind(run_id)
        .bind(run_id)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(Into::into)
    }
}
