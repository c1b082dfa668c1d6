//! Incidents (a flow failed, records keep failing, a flow is stale) and the notifications
//! sent about them. At most one incident of a kind is open per flow, so a problem is
//! announced once, however many runs or records show it.

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store, now_ms};

/// Something a person must know about.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    pub flow: String,
    /// `flow-failed`, `records-failing` or `stale`.
    pub kind: String,
    pub message: String,
    pub run_id: Option<i64>,
    pub opened_at: i64,
    pub last_seen_at: i64,
    pub resolved_at: Option<i64>,
    pub resolution: Option<String>,
}

/// One notification about an incident.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NotificationRow {
    pub id: i64,
    pub incident_id: i64,
    /// `opened` or `resolved`.
    pub event: String,
    /// `webhook` or `email`.
    pub channel: String,
    pub ok: bool,
    pub error: Option<String>,
    pub at: i64,
}

const INCIDENT_COLUMNS: &str =
    "id, flow, kind, message, run_id, opened_at, last_seen_at, resolved_at, resolution";

fn incident_of(row: &sqlx::sqlite::SqliteRow) -> Result<Incident> {
    Ok(Incident {
        id: row.try_get("id")?,
        flow: row.try_get("flow")?,
        kind: row.try_get("kind")?,
        message: row.try_get("message")?,
        run_id: row.try_get("run_id")?,
        opened_at: row.try_get("opened_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        resolved_at: row.try_get("resolved_at")?,
        resolution: row.try_get("resolution")?,
    })
}

impl Store {
    /// Opens an incident unless one of this kind is open for the flow. Returns the new
    /// incident, or None when it was already open (then only `last_seen_at` moves).
    pub async fn open_incident(
        &self,
        tenant: &str,
        flow: &str,
        kind: &str,
        message: &str,
        run_id: Option<i64>,
    ) -> Result<Option<Incident>> {
        let now = now_ms();
        let inserted = sqlx::query(
            "INSERT INTO incidents (tenant, flow, kind, message, run_id, opened_at, last_seen_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (tenant, flow, kind) WHERE resolved_at IS NULL DO NOTHING",
        )
        .bind(tenant)
        .bind(flow)
        .bind(kind)
        .bind(message)
        .bind(run_id)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            sqlx::query(
                "UPDATE incidents SET last_seen_at = ? WHERE tenant = ? AND flow = ? AND kind = ? AND resolved_at IS NULL",
            )
            .bind(now)
            .bind(tenant)
            .bind(flow)
            .bind(kind)
            .execute(self.pool())
            .await?;
            return Ok(None);
        }
        self.incident(tenant, inserted.last_insert_rowid()).await
    }

    /// Resolves the open incident of this kind for the flow; returns it, or None when none
    /// was open.
    pub async fn resolve_incident(
        &self,
        tenant: &str,
        flow: &str,
        kind: &str,
        resolution: &str,
    ) -> Result<Option<Incident>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE incidents SET resolved_at = ?, resolution = ?
             WHERE tenant = ? AND flow = ? AND kind = ? AND resolved_at IS NULL RETURNING {INCIDENT_COLUMNS}"
        )))
        .bind(now_ms())
        .bind(resolution)
        .bind(tenant)
        .bind(flow)
        .bind(kind)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(incident_of).transpose()
    }

    pub async fn incident(&self, tenant: &str, id: i64) -> Result<Option<Incident>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant = ? AND id = ?"
        )))
        .bind(tenant)
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(incident_of).transpose()
    }

    /// Incidents, newest first (only open ones when asked).
    pub async fn incidents(
        &self,
        tenant: &str,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<Incident>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE tenant = ? AND (NOT ? OR resolved_at IS NULL)
             ORDER BY id DESC LIMIT ?"
        )))
        .bind(tenant)
        .bind(open_only)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(incident_of).collect()
    }

    /// Records a notification attempt.
    pub async fn add_notification(
        &self,
        tenant: &str,
        incident_id: i64,
        event: &str,
        channel: &str,
        error: Option<&str>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO notifications (tenant, incident_id, event, channel, ok, error, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(tenant)
        .bind(incident_id)
        .bind(event)
        .bind(channel)
        .bind(error.is_none())
        .bind(error)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The notifications sent about an incident, oldest first.
    pub async fn notifications(
        &self,
        tenant: &str,
        incident_id: i64,
    ) -> Result<Vec<NotificationRow>> {
        let rows = sqlx::query(
            "SELECT id, incident_id, event, channel, ok, error, at FROM notifications
             WHERE tenant = ? AND incident_id = ? ORDER BY id",
        )
        .bind(tenant)
        .bind(incident_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NotificationRow {
                    id: row.try_get("id")?,
                    incident_id: row.try_get("incident_id")?,
                    event: row.try_get("event")?,
                    channel: row.try_get("channel")?,
                    ok: row.try_get("ok")?,
                    error: row.try_get("error")?,
                    at: row.try_get("at")?,
                })
            })
            .collect()
    }
}
