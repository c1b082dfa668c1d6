//! Retention (GDPR): after the retention period, the bodies and headers of the activity log,
//! the query strings of its URLs, the payloads of run records and dismissed failed records
//! are deleted. The rows that count (runs, record outcomes, exchanges with their status and
//! duration) stay. The database runs with `secure_delete`, and the write-ahead log is
//! checkpointed after a purge, so the deleted bytes do not linger in free pages or the WAL.
//! (Masking of personal fields happens before the activity log is written: `store::mask`.)

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store, now_ms};

/// What one purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PurgeCounts {
    /// Activity rows whose bodies, headers and URL queries were deleted.
    pub activity_rows: u64,
    /// Run records whose source and target payloads were deleted.
    pub record_rows: u64,
    /// Dismissed failed records deleted.
    pub failed_rows: u64,
}

/// A past purge.
#[derive(Clone, Debug, Serialize)]
pub struct PurgeRow {
    pub at: i64,
    pub cutoff: i64,
    #[serde(flatten)]
    pub counts: PurgeCounts,
}

impl Store {
    /// (purged_before, purged_runs_upto); `retention_state.masked_upto` is no longer used.
    async fn retention_marks(&self, tenant: &str) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT purged_before, purged_runs_upto FROM retention_state WHERE tenant = ?",
        )
        .bind(tenant)
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            Some(row) => (
                row.try_get("purged_before")?,
                row.try_get("purged_runs_upto")?,
            ),
            None => (0, 0),
        })
    }

    /// Deletes personal data older than `cutoff` (unix ms) and records the purge.
    pub async fn purge(&self, tenant: &str, cutoff: i64) -> Result<PurgeCounts> {
        let (purged_before, runs_upto) = self.retention_marks(tenant).await?;
        let mut tx = self.pool().begin().await?;
        // Activity: bodies, headers and URL queries of exchanges in [purged_before, cutoff).
        let activity_rows = sqlx::query(
            "UPDATE activity SET request_body = NULL, response_body = NULL, request_headers = NULL,
             response_headers = NULL,
             url = CASE WHEN instr(url, '?') > 0 THEN substr(url, 1, instr(url, '?') - 1) || '?(purged)' ELSE url END
             WHERE tenant = ? AND at >= ? AND at < ?
             AND (request_body IS NOT NULL OR response_body IS NOT NULL OR request_headers IS NOT NULL
                  OR response_headers IS NOT NULL OR (instr(url, '?') > 0 AND url NOT LIKE '%?(purged)'))",
        )
        .bind(tenant)
        .bind(purged_before.min(cutoff))
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Run records: payloads of runs started before the cutoff.
        let (last_run,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(id) FROM runs WHERE tenant = ? AND started_at < ?")
                .bind(tenant)
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await?;
        let last_run = last_run.unwrap_or(0).max(runs_upto);
        let records = sqlx::query(
            "UPDATE run_records SET source = NULL, target = NULL WHERE tenant = ? AND run_id > ? AND run_id <= ?
             AND (source IS NOT NULL OR target IS NOT NULL)",
        )
        .bind(tenant)
        .bind(runs_upto)
        .bind(last_run)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // Dismissed failed records hold the source record; nobody will retry them.
        let failed = sqlx::query(
            "DELETE FROM failed_records WHERE tenant = ? AND dismissed = 1 AND last_failed_at < ?",
        )
        .bind(tenant)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let counts = PurgeCounts {
            activity_rows,
            record_rows: records,
            failed_rows: failed,
        };
        sqlx::query(
            "INSERT INTO retention_state (tenant, purged_before, purged_runs_upto) VALUES (?, ?, ?)
             ON CONFLICT (tenant) DO UPDATE SET purged_before = MAX(retention_state.purged_before, excluded.purged_before),
             purged_runs_upto = MAX(retention_state.purged_runs_upto, excluded.purged_runs_upto)",
        )
        .bind(tenant)
        .bind(cutoff)
        .bind(last_run)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO purges (tenant, at, cutoff, activity_rows, record_rows, failed_rows) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(now_ms())
        .bind(cutoff)
        .bind(counts.activity_rows as i64)
        .bind(counts.record_rows as i64)
        .bind(counts.failed_rows as i64)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        // Move what the WAL holds into the database file (where `secure_delete` overwrote the
        // purged bytes) and empty the log. Busy readers only make it partial: the next purge
        // finishes it, and SQLite's own checkpoints overwrite the rest.
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(self.pool())
            .await
        {
            tracing::warn!(%error, "Checkpointing the write-ahead log after the purge failed.");
        }
        Ok(counts)
    }

    /// The latest purges, newest first.
    pub async fn purges(&self, tenant: &str, limit: u32) -> Result<Vec<PurgeRow>> {
        let rows = sqlx::query(
            "SELECT at, cutoff, activity_rows, record_rows, failed_rows FROM purges WHERE tenant = ?
             ORDER BY id DESC LIMIT ?",
        )
        .bind(tenant)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(PurgeRow {
                    at: row.try_get("at")?,
                    cutoff: row.try_get("cutoff")?,
                    counts: PurgeCounts {
                        activity_rows: row.try_get::<i64, _>("activity_rows")? as u64,
                        record_rows: row.try_get::<i64, _>("record_rows")? as u64,
                        failed_rows: row.try_get::<i64, _>("failed_rows")? as u64,
                    },
                })
            })
            .collect()
    }
}
