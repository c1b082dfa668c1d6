//! Runtime overrides of a flow's schedule, set from the dashboard: enabled or not, and its
//! interval. They win over `koppel.toml` until cleared; the scheduler reads them before
//! every scheduled run.

use std::time::Duration;

use serde::Serialize;
use sqlx::Row;

use super::{Result, Store, now_ms};

/// What the dashboard changed about a flow's schedule (None: as configured).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlowOverrideRow {
    pub enabled: Option<bool>,
    pub interval_secs: Option<u64>,
}

impl FlowOverrideRow {
    pub fn interval(&self) -> Option<Duration> {
        self.interval_secs.map(Duration::from_secs)
    }
}

impl Store {
    /// A flow's override, if any.
    pub async fn flow_override(&self, tenant: &str, flow: &str) -> Result<FlowOverrideRow> {
        let row = sqlx::query(
            "SELECT enabled, interval_secs FROM flow_overrides WHERE tenant = ? AND flow = ?",
        )
        .bind(tenant)
        .bind(flow)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(FlowOverrideRow::default());
        };
        let interval: Option<i64> = row.try_get("interval_secs")?;
        Ok(FlowOverrideRow {
            enabled: row.try_get("enabled")?,
            interval_secs: interval.and_then(|s| u64::try_from(s).ok()),
        })
    }

    /// Sets (or with both None, clears) a flow's override.
    pub async fn set_flow_override(
        &self,
        tenant: &str,
        flow: &str,
        value: FlowOverrideRow,
    ) -> Result<()> {
        if value == FlowOverrideRow::default() {
            sqlx::query("DELETE FROM flow_overrides WHERE tenant = ? AND flow = ?")
                .bind(tenant)
                .bind(flow)
                .execute(self.pool())
                .await?;
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO flow_overrides (tenant, flow, enabled, interval_secs, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (tenant, flow) DO UPDATE SET enabled = excluded.enabled,
             interval_secs = excluded.interval_secs, updated_at = excluded.updated_at",
        )
        .bind(tenant)
        .bind(flow)
        .bind(value.enabled)
        .bind(value.interval_secs.map(|s| s as i64))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
