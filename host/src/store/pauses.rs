//! Hosted tenants the operator paused: kept in the database so a pause outlives a restart.

use super::{Result, Store, now_ms};

impl Store {
    /// Whether the operator paused `tenant`.
    pub async fn tenant_paused(&self, tenant: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM tenant_pauses WHERE tenant = ?")
            .bind(tenant)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    /// Pauses or resumes `tenant`.
    pub async fn set_tenant_paused(&self, tenant: &str, paused: bool) -> Result<()> {
        let query = if paused {
            sqlx::query(
                "INSERT INTO tenant_pauses (tenant, paused_at) VALUES (?, ?) \
                 ON CONFLICT (tenant) DO NOTHING",
            )
            .bind(tenant)
            .bind(now_ms())
        } else {
            sqlx::query("DELETE FROM tenant_pauses WHERE tenant = ?").bind(tenant)
        };
        query.execute(self.pool()).await?;
        Ok(())
    }
}
