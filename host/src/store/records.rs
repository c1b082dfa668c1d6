//! Reading back what happened to records: a run's records, a record's history, the
//! failed-records queue.

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store, now_ms};

/// One record in one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub run_id: i64,
    pub flow: String,
    pub key: String,
    pub outcome: String,
    pub message: Option<String>,
    pub field: Option<String>,
    pub target_id: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub at: i64,
}

/// A record that did not reach its target, waiting for a retry.
#[derive(Clone, Debug, Serialize)]
pub struct FailedRecord {
    pub flow: String,
    pub key: String,
    pub record: String,
    pub error: String,
    pub field: Option<String>,
    pub stage: String,
    pub retryable: bool,
    pub attempts: i64,
    pub first_failed_at: i64,
    pub last_failed_at: i64,
    pub dismissed: bool,
}

fn run_record_of(row: &sqlx::sqlite::SqliteRow) -> Result<RunRecord> {
    Ok(RunRecord {
        id: row.try_get("id")?,
        run_id: row.try_get("run_id")?,
        flow: row.try_get("flow")?,
        key: row.try_get("key")?,
        outcome: row.try_get("outcome")?,
        message: row.try_get("message")?,
        field: row.try_get("field")?,
        target_id: row.try_get("target_id")?,
        source: row.try_get("source")?,
        target: row.try_get("target")?,
        at: row.try_get("at")?,
    })
}

fn failed_of(row: &sqlx::sqlite::SqliteRow) -> Result<FailedRecord> {
    Ok(FailedRecord {
        flow: row.try_get("flow")?,
        key: row.try_get("key")?,
        record: row.try_get("record")?,
        error: row.try_get("error")?,
        field: row.try_get("field")?,
        stage: row.try_get("stage")?,
        retryable: row.try_get("retryable")?,
        attempts: row.try_get("attempts")?,
        first_failed_at: row.try_get("first_failed_at")?,
        last_failed_at: row.try_get("last_failed_at")?,
        dismissed: row.try_get("dismissed")?,
    })
}

const RECORD_COLUMNS: &str =
    "id, run_id, flow, key, outcome, message, field, target_id, source, target, at";
const FAILED_COLUMNS: &str = "flow, key, record, error, field, stage, retryable, attempts, first_failed_at, last_failed_at, dismissed";

impl Store {
    /// The records of a run, optionally of one outcome.
    pub async fn run_records(
        &self,
        tenant: &str,
        run_id: i64,
        outcome: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM run_records WHERE tenant = ? AND run_id = ? AND (? IS NULL OR outcome = ?)
             ORDER BY id LIMIT ?"
        )))
        .bind(tenant)
        .bind(run_id)
        .bind(outcome)
        .bind(outcome)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_record_of).collect()
    }

    /// A record's history across runs, newest first.
    pub async fn record_history(
        &self,
        tenant: &str,
        flow: &str,
        key: &str,
        limit: u32,
    ) -> Result<Vec<RunRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RECORD_COLUMNS} FROM run_records WHERE tenant = ? AND flow = ? AND key = ? ORDER BY id DESC LIMIT ?"
        )))
        .bind(tenant)
        .bind(flow)
        .bind(key)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_record_of).collect()
    }

    /// The failed-records queue (dismissed ones too when asked).
    pub async fn failed_records(
        &self,
        tenant: &str,
        flow: Option<&str>,
        include_dismissed: bool,
    ) -> Result<Vec<FailedRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FAILED_COLUMNS} FROM failed_records WHERE tenant = ? AND (? IS NULL OR flow = ?)
             AND (? OR dismissed = 0) ORDER BY last_failed_at DESC"
        )))
        .bind(tenant)
        .bind(flow)
        .bind(flow)
        .bind(include_dismissed)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(failed_of).collect()
    }

    /// Failed records of a flow to try again (not dismissed), oldest first.
    pub async fn failed_to_retry(
        &self,
        tenant: &str,
        flow: &str,
        limit: u32,
    ) -> Result<Vec<FailedRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {FAILED_COLUMNS} FROM failed_records WHERE tenant = ? AND flow = ? AND dismissed = 0
             ORDER BY last_failed_at LIMIT ?"
        )))
        .bind(tenant)
        .bind(flow)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(failed_of).collect()
    }

    /// Stops retrying a failed record; it stays visible as dismissed.
    pub async fn dismiss_failed(&self, tenant: &str, flow: &str, key: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE failed_records SET dismissed = 1 WHERE tenant = ? AND flow = ? AND key = ?",
        )
        .bind(tenant)
        .bind(flow)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Puts a dismissed record back in the queue.
    pub async fn restore_failed(&self, tenant: &str, flow: &str, key: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE failed_records SET dismissed = 0, last_failed_at = ? WHERE tenant = ? AND flow = ? AND key = ?",
        )
        .bind(now_ms())
        .bind(tenant)
        .bind(flow)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }
}
