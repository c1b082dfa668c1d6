//! The one transaction that ends every batch of a run: what the target acknowledged, the id
//! map and hashes, failed records, the ledger, the run's counts and the new source cursor,
//! together or not at all. A crash before it loses nothing (the page is read again); a crash
//! after it repeats nothing.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store, now_ms};
use crate::runtime::bindings::OutcomeStatus;

/// What happened to one record.
#[derive(Clone, Debug)]
pub struct RecordResult {
    pub key: String,
    pub outcome: OutcomeStatus,
    pub message: Option<String>,
    pub field: Option<String>,
    pub target_id: Option<String>,
    /// The record as read, JSON.
    pub source: Option<String>,
    /// The record as written, JSON.
    pub target: Option<String>,
    /// The content hash of what the target now holds (written or confirmed unchanged).
    pub hash: Option<String>,
    /// For failures: mapping | writing.
    pub stage: Option<&'static str>,
    pub retryable: bool,
    /// Keep a row in the run's records (false for records the diff found unchanged).
    pub keep_row: bool,
    /// Settle this record's ledger entry.
    pub ledger: bool,
}

impl RecordResult {
    /// A result for `key` with this outcome and nothing else known yet.
    pub fn new(key: impl Into<String>, outcome: OutcomeStatus) -> Self {
        RecordResult {
            key: key.into(),
            outcome,
            message: None,
            field: None,
            target_id: None,
            source: None,
            target: None,
            hash: None,
            stage: None,
            retryable: false,
            keep_row: false,
            ledger: false,
        }
    }
}

/// A batch to commit.
#[derive(Debug, Default)]
pub struct Batch {
    pub run_id: i64,
    pub results: Vec<RecordResult>,
    /// Some: move the cursor to this state (None inside: back to the start).
    pub new_state: Option<Option<String>>,
    /// Records read from the source for this batch.
    pub read: u64,
}

/// Counts by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub read: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.read += other.read;
        self.created += other.created;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
        self.failed += other.failed;
    }

    pub fn of(batch: &Batch) -> Counts {
        let mut counts = Counts {
            read: batch.read,
            ..Counts::default()
        };
        for result in &batch.results {
            match result.outcome {
                OutcomeStatus::Created => counts.created += 1,
                OutcomeStatus::Updated => counts.updated += 1,
                OutcomeStatus::Unchanged => counts.unchanged += 1,
                OutcomeStatus::Skipped => counts.skipped += 1,
                OutcomeStatus::Failed => counts.failed += 1,
            }
        }
        counts
    }
}

/// What the id map knows of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub target_id: Option<String>,
    pub hash: String,
}

/// A record's entry in the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub key: String,
    pub pending: bool,
    pub target_id: Option<String>,
}

impl Store {
    /// Commits a batch in one transaction; returns its counts.
    pub async fn commit(&self, tenant: &str, flow: &str, batch: &Batch) -> Result<Counts> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        for r in &batch.results {
            if r.keep_row {
                sqlx::query(
                    "INSERT INTO run_records (run_id, tenant, flow, key, outcome, message, field, target_id, source, target, at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(batch.run_id)
                .bind(tenant)
                .bind(flow)
                .bind(&r.key)
                .bind(r.outcome.name())
                .bind(&r.message)
                .bind(&r.field)
                .bind(&r.target_id)
                .bind(&r.source)
                .bind(&r.target)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            match r.outcome {
                OutcomeStatus::Failed => {
                    sqlx::query(
                        "INSERT INTO failed_records (tenant, flow, key, record, error, field, stage, retryable, attempts,
                         first_failed_at, last_failed_at, last_run)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)
                         ON CONFLICT (tenant, flow, key) DO UPDATE SET record = excluded.record, error = excluded.error,
                         field = excluded.field, stage = excluded.stage, retryable = excluded.retryable,
                         attempts = failed_records.attempts + 1, last_failed_at = excluded.last_failed_at,
                         last_run = excluded.last_run",
                    )
                    .bind(tenant)
                    .bind(flow)
                    .bind(&r.key)
                    .bind(r.source.as_deref().unwrap_or("null"))
                    .bind(r.message.as_deref().unwrap_or("failed"))
                    .bind(&r.field)
                    .bind(r.stage.unwrap_or("writing"))
                    .bind(r.retryable)
                    .bind(now)
                    .bind(now)
                    .bind(batch.run_id)
                    .execute(&mut *tx)
                    .await?;
                    if r.ledger {
                        sqlx::query("DELETE FROM ledger WHERE tenant = ? AND flow = ? AND key = ? AND status = 'pending'")
                            .bind(tenant)
                            .bind(flow)
                            .bind(&r.key)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                outcome => {
                    if let Some(hash) = &r.hash {
                        sqlx::query(
                            "INSERT INTO id_map (tenant, flow, key, target_id, hash, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                             ON CONFLICT (tenant, flow, key) DO UPDATE SET
                             target_id = COALESCE(excluded.target_id, id_map.target_id), hash = excluded.hash,
                             updated_at = excluded.updated_at",
                        )
                        .bind(tenant)
                        .bind(flow)
                        .bind(&r.key)
                        .bind(&r.target_id)
                        .bind(hash)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query(
                        "DELETE FROM failed_records WHERE tenant = ? AND flow = ? AND key = ?",
                    )
                    .bind(tenant)
                    .bind(flow)
                    .bind(&r.key)
                    .execute(&mut *tx)
                    .await?;
                    if r.ledger && outcome != OutcomeStatus::Skipped {
                        sqlx::query(
                            "INSERT INTO ledger (tenant, flow, key, status, target_id, updated_at) VALUES (?, ?, ?, 'done', ?, ?)
                             ON CONFLICT (tenant, flow, key) DO UPDATE SET status = 'done',
                             target_id = COALESCE(excluded.target_id, ledger.target_id), updated_at = excluded.updated_at",
                        )
                        .bind(tenant)
                        .bind(flow)
                        .bind(&r.key)
                        .bind(&r.target_id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
        }
        let counts = Counts::of(batch);
        sqlx::query(
            "UPDATE runs SET read = read + ?, created = created + ?, updated = updated + ?, unchanged = unchanged + ?,
             skipped = skipped + ?, failed = failed + ? WHERE tenant = ? AND id = ?",
        )
        .bind(counts.read as i64)
        .bind(counts.created as i64)
        .bind(counts.updated as i64)
        .bind(counts.unchanged as i64)
        .bind(counts.skipped as i64)
        .bind(counts.failed as i64)
        .bind(tenant)
        .bind(batch.run_id)
        .execute(&mut *tx)
        .await?;
        if let Some(state) = &batch.new_state {
            sqlx::query(
                "INSERT INTO stream_states (tenant, flow, state, updated_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (tenant, flow) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            )
            .bind(tenant)
            .bind(flow)
            .bind(state)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(counts)
    }

    /// What the id map knows of these keys.
    pub async fn mapped(
        &self,
        tenant: &str,
        flow: &str,
        keys: &[&str],
    ) -> Result<HashMap<String, Mapped>> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT key, target_id, hash FROM id_map WHERE tenant = ? AND flow = ? AND key IN ({marks})"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(tenant)
                .bind(flow);
            for key in chunk {
                query = query.bind(*key);
            }
            for row in query.fetch_all(self.pool()).await? {
                found.insert(
                    row.try_get::<String, _>("key")?,
                    Mapped {
                        target_id: row.try_get("target_id")?,
                        hash: row.try_get("hash")?,
                    },
                );
            }
        }
        Ok(found)
    }

    /// How many keys the id map holds for a flow.
    pub async fn mapped_count(&self, tenant: &str, flow: &str) -> Result<i64> {
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM id_map WHERE tenant = ? AND flow = ?")
                .bind(tenant)
                .bind(flow)
                .fetch_one(self.pool())
                .await?;
        Ok(count)
    }

    /// Forgets the hashes of a flow, so the next run writes every record again.
    pub async fn forget_hashes(&self, tenant: &str, flow: &str) -> Result<()> {
        sqlx::query("UPDATE id_map SET hash = '' WHERE tenant = ? AND flow = ?")
            .bind(tenant)
            .bind(flow)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ledger entries of these keys.
    pub async fn ledger(
        &self,
        tenant: &str,
        flow: &str,
        keys: &[&str],
    ) -> Result<HashMap<String, LedgerEntry>> {
        let mut found = HashMap::new();
        for chunk in keys.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT key, status, target_id FROM ledger WHERE tenant = ? AND flow = ? AND key IN ({marks})"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(tenant)
                .bind(flow);
            for key in chunk {
                query = query.bind(*key);
            }
            for row in query.fetch_all(self.pool()).await? {
                let key: String = row.try_get("key")?;
                let status: String = row.try_get("status")?;
                found.insert(
                    key.clone(),
                    LedgerEntry {
                        key,
                        pending: status == "pending",
                        target_id: row.try_get("target_id")?,
                    },
                );
            }
        }
        Ok(found)
    }

    /// Records the intent to write these keys, before the target is asked. After a crash a
    /// pending entry means "may or may not have arrived: look it up before writing again".
    pub async fn ledger_begin(&self, tenant: &str, flow: &str, keys: &[&str]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        for key in keys {
            sqlx::query(
                "INSERT INTO ledger (tenant, flow, key, status, updated_at) VALUES (?, ?, ?, 'pending', ?)
                 ON CONFLICT (tenant, flow, key) DO NOTHING",
            )
            .bind(tenant)
            .bind(flow)
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
