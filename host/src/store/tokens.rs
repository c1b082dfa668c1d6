//! API tokens: only their SHA-256 is stored, so a copy of the database gives no access.

use sha2::{Digest, Sha256};

use super::{Result, Store, now_ms};

/// The hex SHA-256 of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Store {
    /// Keeps a token (by its hash) for a tenant.
    pub async fn add_token(&self, tenant: &str, name: &str, token: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (hash, tenant, name, created_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (hash) DO NOTHING",
        )
        .bind(token_hash(token))
        .bind(tenant)
        .bind(name)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The hashes of a tenant's stored tokens.
    pub async fn token_hashes(&self, tenant: &str) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT hash FROM api_tokens WHERE tenant = ?")
            .bind(tenant)
            .fetch_all(self.pool())
            .await?;
        Ok(rows.into_iter().map(|(hash,)| hash).collect())
    }

    /// Forgets a tenant's stored tokens (to rotate: the next start makes a new one).
    pub async fn revoke_tokens(&self, tenant: &str) -> Result<u64> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE tenant = ?")
            .bind(tenant)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}
