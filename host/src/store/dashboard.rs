//! Read queries the dashboard and the API need beyond the engine's own: pages of a run's
//! records and of the activity log with filters, counts for the overview and `/metrics`,
//! and a manual retry of a failed record.

use serde::Serialize;
use sqlx::Row;

use super::{ActivityRow, Result, RunRecord, Store, now_ms};

/// Filters for a run's records.
#[derive(Clone, Debug, Default)]
pub struct RecordFilter {
    pub outcome: Option<String>,
    /// A part of the key.
    pub key: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

/// Filters for the activity log.
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    pub run_id: Option<i64>,
    pub connection: Option<String>,
    /// Only exchanges that failed (no answer, or a status of 400 and up).
    pub errors_only: bool,
    /// Older than this id (paging backwards).
    pub before: Option<i64>,
    pub limit: u32,
}

/// An activity row without its bodies and headers, for lists.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct ActivitySummary {
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
    pub request_bytes: i64,
    pub response_bytes: i64,
    pub at: i64,
}

/// Totals for `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// (flow, status, runs)
    pub runs: Vec<(String, String, i64)>,
    /// (flow, outcome, records)
    pub records: Vec<(String, String, i64)>,
    /// (connector, status or "none", exchanges)
    pub exchanges: Vec<(String, String, i64)>,
    /// (flow, waiting)
    pub failed_waiting: Vec<(String, i64)>,
}

impl Store {
    /// A page of a run's records, without payloads.
    pub async fn run_records_page(
        &self,
        tenant: &str,
        run_id: i64,
        filter: &RecordFilter,
    ) -> Result<Vec<RunRecord>> {
        let like = filter.key.as_ref().map(|k| {
            format!(
                "%{}%",
                k.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        });
        let rows = sqlx::query(
            "SELECT id, run_id, flow, key, outcome, message, field, target_id, NULL AS source, NULL AS target, at
             FROM run_records WHERE tenant = ? AND run_id = ? AND (? IS NULL OR outcome = ?)
             AND (? IS NULL OR key LIKE ? ESCAPE '\\') ORDER BY id LIMIT ? OFFSET ?",
        )
        .bind(tenant)
        .bind(run_id)
        .bind(&filter.outcome)
        .bind(&filter.outcome)
        .bind(&like)
        .bind(&like)
        .bind(i64::from(filter.limit))
        .bind(i64::from(filter.offset))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RunRecord {
                    id: row.try_get("id")?,
                    run_id: row.try_get("run_id")?,
                    flow: row.try_get("flow")?,
                    key: row.try_get("key")?,
                    outcome: row.try_get("outcome")?,
                    message: row.try_get("message")?,
                    field: row.try_get("field")?,
                    target_id: row.try_get("target_id")?,
                    source: None,
                    target: None,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }

    /// How many records of a run had each outcome.
    pub async fn run_outcomes(&self, tenant: &str, run_id: i64) -> Result<Vec<(String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT outcome, COUNT(*) FROM run_records WHERE tenant = ? AND run_id = ? GROUP BY outcome ORDER BY outcome",
        )
        .bind(tenant)
        .bind(run_id)
        .fetch_all(self.pool())
        .await?)
    }

    /// A page of the activity log, newest first, without bodies.
    pub async fn activity_page(
        &self,
        tenant: &str,
        filter: &ActivityFilter,
    ) -> Result<Vec<ActivitySummary>> {
        // Only the conditions in use: `? IS NULL OR …` would keep SQLite from walking an
        // index newest first, and it would sort the whole log instead.
        let mut sql = String::from(
            "SELECT id, run_id, connection, connector, method, url, status, error, duration_ms, attempt,
             request_bytes, response_bytes, at FROM activity WHERE tenant = ?",
        );
        if filter.run_id.is_some() {
            sql.push_str(" AND run_id = ?");
        }
        if filter.connection.is_some() {
            sql.push_str(" AND connection = ?");
        }
        if filter.errors_only {
            sql.push_str(" AND (status IS NULL OR status >= 400)");
        }
        if filter.before.is_some() {
            sql.push_str(" AND id < ?");
        }
        sql.push_str(" ORDER BY id DESC LIMIT ?");
        let mut query = sqlx::query_as::<_, ActivitySummary>(sqlx::AssertSqlSafe(sql)).bind(tenant);
        if let Some(run) = filter.run_id {
            query = query.bind(run);
        }
        if let Some(connection) = &filter.connection {
            query = query.bind(connection.clone());
        }
        if let Some(before) = filter.before {
            query = query.bind(before);
        }
        Ok(query
            .bind(i64::from(filter.limit))
            .fetch_all(self.pool())
            .await?)
    }

    /// One exchange with its bodies and headers.
    pub async fn activity_entry(&self, tenant: &str, id: i64) -> Result<Option<ActivityRow>> {
        Ok(sqlx::query_as::<_, ActivityRow>(
            "SELECT id, run_id, connection, connector, method, url, status, error, duration_ms, attempt,
             request_headers, request_body, response_headers, response_body, at
             FROM activity WHERE tenant = ? AND id = ?",
        )
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Failed records waiting (not dismissed) for a flow.
    pub async fn failed_waiting(&self, tenant: &str, flow: &str) -> Result<i64> {
        let (count,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM failed_records WHERE tenant = ? AND flow = ? AND dismissed = 0",
        )
        .bind(tenant)
        .bind(flow)
        .fetch_one(self.pool())
        .await?;
        Ok(count)
    }

    /// Failed records (not dismissed) of a flow that failed at least `attempts` times:
    /// (key, error, attempts), most attempts first.
    pub async fn failing_records(
        &self,
        tenant: &str,
        flow: &str,
        attempts: u32,
        limit: u32,
    ) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT key, error, attempts FROM failed_records WHERE tenant = ? AND flow = ? AND dismissed = 0
             AND attempts >= ? ORDER BY attempts DESC, key LIMIT ?",
        )
        .bind(tenant)
        .bind(flow)
        .bind(i64::from(attempts))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?)
    }

    /// Puts a failed record back in the queue with a fresh count of attempts, so the next run
    /// tries it again (also when it had run out of automatic retries or was dismissed).
    pub async fn retry_failed(&self, tenant: &str, flow: &str, key: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE failed_records SET dismissed = 0, attempts = 0, last_failed_at = ?
             WHERE tenant = ? AND flow = ? AND key = ?",
        )
        .bind(now_ms())
        .bind(tenant)
        .bind(flow)
        .bind(key)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The first run of a flow (when it never succeeded, lag counts from its start).
    pub async fn first_run_started(&self, tenant: &str, flow: &str) -> Result<Option<i64>> {
        let (at,): (Option<i64>,) =
            sqlx::query_as("SELECT MIN(started_at) FROM runs WHERE tenant = ? AND flow = ?")
                .bind(tenant)
                .bind(flow)
                .fetch_one(self.pool())
                .await?;
        Ok(at)
    }

    /// Totals for `/metrics`.
    pub async fn totals(&self, tenant: &str) -> Result<Totals> {
        let runs = sqlx::query_as(
            "SELECT flow, status, COUNT(*) FROM runs WHERE tenant = ? GROUP BY flow, status ORDER BY flow, status",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        let sums: Vec<(String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT flow, SUM(created), SUM(updated), SUM(unchanged), SUM(skipped), SUM(failed)
             FROM runs WHERE tenant = ? GROUP BY flow ORDER BY flow",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        let mut records = Vec::new();
        for (flow, created, updated, unchanged, skipped, failed) in sums {
            for (outcome, n) in [
                ("created", created),
                ("updated", updated),
                ("unchanged", unchanged),
                ("skipped", skipped),
                ("failed", failed),
            ] {
                records.push((flow.clone(), outcome.to_owned(), n));
            }
        }
        let exchanges: Vec<(String, Option<i64>, i64)> = sqlx::query_as(
            "SELECT connector, NULLIF(status, 0), exchanges FROM activity_counts WHERE tenant = ?
             ORDER BY connector, status",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        let failed_waiting = sqlx::query_as(
            "SELECT flow, COUNT(*) FROM failed_records WHERE tenant = ? AND dismissed = 0 GROUP BY flow ORDER BY flow",
        )
        .bind(tenant)
        .fetch_all(self.pool())
        .await?;
        Ok(Totals {
            runs,
            records,
            exchanges: exchanges
                .into_iter()
                .map(|(connector, status, n)| {
                    (
                        connector,
                        status.map_or_else(|| "none".to_owned(), |s| s.to_string()),
                        n,
                    )
                })
                .collect(),
            failed_waiting,
        })
    }
}
