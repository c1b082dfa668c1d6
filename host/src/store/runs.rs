//! Runs of flows: when, how, with what counts.

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store, StoreError, now_ms};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    /// Every record reached its target (or was skipped on purpose).
    Succeeded,
    /// The run finished, but some records failed (they wait in the failed-records queue).
    Partial,
    /// The run stopped on an error (source unreadable, target unreachable, connector crashed).
    Failed,
    /// The process stopped during the run (crash, kill); found at the next start.
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Partial => "partial",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    fn parse(text: &str) -> Result<RunStatus> {
        Ok(match text {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "partial" => RunStatus::Partial,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            other => return Err(StoreError::Corrupt(format!("run status {other:?}"))),
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub id: i64,
    pub flow: String,
    pub trigger: String,
    pub full: bool,
    pub status: RunStatus,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub read: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub skipped: i64,
    pub failed: i64,
    pub requests: i64,
    pub error: Option<String>,
}

const RUN_COLUMNS: &str = "id, flow, trigger, full, status, started_at, finished_at, read, created, updated, unchanged, skipped, failed, requests, error";

fn run_of(row: &sqlx::sqlite::SqliteRow) -> Result<Run> {
    Ok(Run {
        id: row.try_get("id")?,
        flow: row.try_get("flow")?,
        trigger: row.try_get("trigger")?,
        full: row.try_get("full")?,
        status: RunStatus::parse(&row.try_get::<String, _>("status")?)?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        read: row.try_get("read")?,
        created: row.try_get("created")?,
        updated: row.try_get("updated")?,
        unchanged: row.try_get("unchanged")?,
        skipped: row.try_get("skipped")?,
        failed: row.try_get("failed")?,
        requests: row.try_get("requests")?,
        error: row.try_get("error")?,
    })
}

impl Store {
    /// Opens a run; its counts grow with every committed batch.
    pub async fn start_run(
        &self,
        tenant: &str,
        flow: &str,
        trigger: &str,
        full: bool,
    ) -> Result<i64> {
        let id = sqlx::query(
            "INSERT INTO runs (tenant, flow, trigger, full, status, started_at) VALUES (?, ?, ?, ?, 'running', ?)",
        )
        .bind(tenant)
        .bind(flow)
        .bind(trigger)
        .bind(full)
        .bind(now_ms())
        .execute(self.pool())
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// Closes a run.
    pub async fn finish_run(
        &self,
        tenant: &str,
        id: i64,
        status: RunStatus,
        requests: u64,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE runs SET status = ?, finished_at = ?, requests = ?, error = ? WHERE tenant = ? AND id = ?",
        )
        .bind(status.as_str())
        .bind(now_ms())
        .bind(requests as i64)
        .bind(error)
        .bind(tenant)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Runs left `running` by a process that stopped: marked interrupted. A run whose flow's
    /// lease is held (by a live process) is left alone. Call at start-up.
    pub async fn mark_interrupted_runs(&self) -> Result<u64> {
        let running: Vec<(String, String)> =
            sqlx::query_as("SELECT DISTINCT tenant, flow FROM runs WHERE status = 'running'")
                .fetch_all(self.pool())
                .await?;
        let mut marked = 0;
        for (tenant, flow) in running {
            let _lease = match self.lease_flow(&tenant, &flow) {
                Ok(lease) => lease,
                Err(StoreError::Busy { .. }) => continue,
                Err(error) => return Err(error),
            };
            marked += sqlx::query(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, error = 'the process stopped during this run'
                 WHERE tenant = ? AND flow = ? AND status = 'running'",
            )
            .bind(now_ms())
            .bind(&tenant)
            .bind(&flow)
            .execute(self.pool())
            .await?
            .rows_affected();
        }
        Ok(marked)
    }

    pub async fn run(&self, tenant: &str, id: i64) -> Result<Option<Run>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = ? AND id = ?"
        )))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_of).transpose()
    }

    /// The latest runs, newest first; of one flow when given.
    pub async fn runs(&self, tenant: &str, flow: Option<&str>, limit: u32) -> Result<Vec<Run>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = ? AND (? IS NULL OR flow = ?) ORDER BY id DESC LIMIT ?"
        )))
        .bind(tenant)
        .bind(flow)
        .bind(flow)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(run_of).collect()
    }

    /// The last run of a flow that ended without an error of its own.
    pub async fn last_success(&self, tenant: &str, flow: &str) -> Result<Option<Run>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE tenant = ? AND flow = ? AND status IN ('succeeded', 'partial')
             ORDER BY id DESC LIMIT 1"
        )))
        .bind(tenant)
        .bind(flow)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(run_of).transpose()
    }
}
