//! The one transaction that ends every batch of a run: what the target acknowledged, the id
//! map and hashes, failed records, the ledger, the run's counts and the new source cursor,
//! together or not at all. A crash before it loses nothing (the page is read again); a crash
//! after it repeats nothing.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{Result, Store, now_ms};
use crate::runtime::bindings::OutcomeStatus;

/// Rows per multi-row statement: 500 rows of at most 11 values stay far below SQLite's
/// 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 500;

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

/// Deletes the rows of `table` of a tenant's flow whose key is one of `keys` (and which meet
/// `condition`, SQL beginning with ` AND`), a statement per [`ROWS_PER_STATEMENT`] keys.
async fn delete_keys(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    table: &str,
    condition: &str,
    tenant: &str,
    flow: &str,
    keys: &[&str],
) -> Result<()> {
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let mut delete =
            QueryBuilder::<Sqlite>::new(format!("DELETE FROM {table} WHERE tenant = "));
        delete
            .push_bind(tenant)
            .push(" AND flow = ")
            .push_bind(flow)
            .push(format!("{condition} AND key IN ("));
        let mut bound = delete.separated(", ");
        for key in chunk {
            bound.push_bind(*key);
        }
        delete.push(")");
        delete.build().execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// Commits a batch in one transaction; returns its counts. Rows go in bulk, a statement
    /// per table and chunk of [`ROWS_PER_STATEMENT`] (a statement per record made the commit
    /// a third of a products run's time).
    pub async fn commit(&self, tenant: &str, flow: &str, batch: &Batch) -> Result<Counts> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        let kept: Vec<&RecordResult> = batch.results.iter().filter(|r| r.keep_row).collect();
        for chunk in kept.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO run_records (run_id, tenant, flow, key, outcome, message, field, target_id, source, target, at) ",
            );
            insert.push_values(chunk, |mut row, r| {
                row.push_bind(batch.run_id)
                    .push_bind(tenant)
                    .push_bind(flow)
                    .push_bind(&r.key)
                    .push_bind(r.outcome.name())
                    .push_bind(&r.message)
                    .push_bind(&r.field)
                    .push_bind(&r.target_id)
                    .push_bind(&r.source)
                    .push_bind(&r.target)
                    .push_bind(now);
            });
            insert.build().execute(&mut *tx).await?;
        }
        // Failures one by one (they are few, and each counts its attempts), in order.
        for r in batch
            .results
            .iter()
            .filter(|r| r.outcome == OutcomeStatus::Failed)
        {
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
        }
        // A key whose last result in the batch is not a failure leaves the failed queue.
        let mut last_failed: HashMap<&str, bool> = HashMap::new();
        for r in &batch.results {
            last_failed.insert(&r.key, r.outcome == OutcomeStatus::Failed);
        }
        let recovered: Vec<&str> = last_failed
            .iter()
            .filter(|(_, failed)| !**failed)
            .map(|(key, _)| *key)
            .collect();
        delete_keys(&mut tx, "failed_records", "", tenant, flow, &recovered).await?;
        let hashed: Vec<&RecordResult> = batch
            .results
            .iter()
            .filter(|r| r.outcome != OutcomeStatus::Failed && r.hash.is_some())
            .collect();
        for chunk in hashed.chunks(ROWS_PER_STATEMENT) {
            let mut upsert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO id_map (tenant, flow, key, target_id, hash, updated_at) ",
            );
            upsert.push_values(chunk, |mut row, r| {
                row.push_bind(tenant)
                    .push_bind(flow)
                    .push_bind(&r.key)
                    .push_bind(&r.target_id)
                    .push_bind(&r.hash)
                    .push_bind(now);
            });
            upsert.push(
                " ON CONFLICT (tenant, flow, key) DO UPDATE SET
                 target_id = COALESCE(excluded.target_id, id_map.target_id), hash = excluded.hash,
                 updated_at = excluded.updated_at",
            );
            upsert.build().execute(&mut *tx).await?;
        }
        // The ledger: a failed write was not delivered (its pending entry goes), a written
        // one was.
        let undelivered: Vec<&str> = batch
            .results
            .iter()
            .filter(|r| r.ledger && r.outcome == OutcomeStatus::Failed)
            .map(|r| r.key.as_str())
            .collect();
        delete_keys(
            &mut tx,
            "ledger",
            " AND status = 'pending'",
            tenant,
            flow,
            &undelivered,
        )
        .await?;
        let delivered: Vec<&RecordResult> = batch
            .results
            .iter()
            .filter(|r| {
                r.ledger && !matches!(r.outcome, OutcomeStatus::Failed | OutcomeStatus::Skipped)
            })
            .collect();
        for chunk in delivered.chunks(ROWS_PER_STATEMENT) {
            let mut upsert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO ledger (tenant, flow, key, status, target_id, updated_at) ",
            );
            upsert.push_values(chunk, |mut row, r| {
                row.push_bind(tenant)
                    .push_bind(flow)
                    .push_bind(&r.key)
                    .push_bind("done")
                    .push_bind(&r.target_id)
                    .push_bind(now);
            });
            upsert.push(
                " ON CONFLICT (tenant, flow, key) DO UPDATE SET status = 'done',
                 target_id = COALESCE(excluded.target_id, ledger.target_id), updated_at = excluded.updated_at",
            );
            upsert.build().execute(&mut *tx).await?;
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
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO ledger (tenant, flow, key, status, updated_at) ",
            );
            insert.push_values(chunk, |mut row, key| {
                row.push_bind(tenant)
                    .push_bind(flow)
                    .push_bind(*key)
                    .push_bind("pending")
                    .push_bind(now);
            });
            insert.push(" ON CONFLICT (tenant, flow, key) DO NOTHING");
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(key: &str, outcome: OutcomeStatus) -> RecordResult {
        let failed = outcome == OutcomeStatus::Failed;
        RecordResult {
            target_id: (!failed).then(|| format!("id-{key}")),
            hash: (!failed).then(|| format!("hash-{key}")),
            message: failed.then(|| "refused".to_owned()),
            source: Some("{}".to_owned()),
            keep_row: true,
            ledger: true,
            ..RecordResult::new(key, outcome)
        }
    }

    #[tokio::test]
    async fn a_batch_lands_in_bulk_as_it_did_record_by_record() {
        let store = Store::open_in_memory().await.expect("store");
        let run_id = store
            .start_run("t", "f", "manual", false)
            .await
            .expect("run");
        // More rows than one statement carries, a key failing then written, one written then
        // failing, and a failure that was queued before.
        let mut results: Vec<RecordResult> = (0..1_203)
            .map(|i| written(&format!("k{i}"), OutcomeStatus::Created))
            .collect();
        results.push(written("flaky", OutcomeStatus::Failed));
        results.push(written("flaky", OutcomeStatus::Updated));
        results.push(written("broke", OutcomeStatus::Created));
        results.push(written("broke", OutcomeStatus::Failed));
        results.push(written("skipped", OutcomeStatus::Skipped));
        let all: Vec<&str> = results.iter().map(|r| r.key.as_str()).collect();
        store.ledger_begin("t", "f", &all).await.expect("ledger");
        let batch = Batch {
            run_id,
            results,
            new_state: Some(Some("cursor-1".to_owned())),
            read: 1_208,
        };
        let counts = store.commit("t", "f", &batch).await.expect("commit");
        assert_eq!(
            counts,
            Counts {
                read: 1_208,
                created: 1_204,
                updated: 1,
                unchanged: 0,
                skipped: 1,
                failed: 2,
            }
        );
        assert_eq!(
            store
                .run_records("t", run_id, None, 10_000)
                .await
                .expect("records")
                .len(),
            1_208,
            "a row per kept result"
        );
        assert_eq!(store.mapped_count("t", "f").await.expect("count"), 1_206);
        let failed: Vec<String> = store
            .failed_records("t", Some("f"), true)
            .await
            .expect("failed")
            .into_iter()
            .map(|f| f.key)
            .collect();
        assert_eq!(failed, ["broke"], "the last result of a key decides");
        let ledger = store
            .ledger("t", "f", &["k0", "k1202", "flaky", "broke", "skipped"])
            .await
            .expect("ledger");
        assert!(!ledger["k0"].pending && !ledger["k1202"].pending);
        assert_eq!(ledger["k1202"].target_id.as_deref(), Some("id-k1202"));
        assert!(!ledger["flaky"].pending, "written after it failed");
        assert!(
            !ledger["broke"].pending,
            "written once; the later failure keeps that"
        );
        assert!(
            ledger["skipped"].pending,
            "a skipped record settles nothing"
        );
        assert_eq!(
            store
                .stream_state("t", "f")
                .await
                .expect("state")
                .as_deref(),
            Some("cursor-1")
        );
    }
}
