//! The connectors' key-value entries, kept across restarts (a cached OAuth token survives).

use std::time::Duration;

use futures::future::BoxFuture;

use super::{Store, now_ms};
use crate::runtime::KvStore;

/// The runtime scopes keys as `tenant/connection`.
fn split(scope: &str) -> (&str, &str) {
    scope.split_once('/').unwrap_or(("", scope))
}

impl KvStore for Store {
    fn get<'a>(&'a self, scope: &'a str, key: &'a str) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let (tenant, scope) = split(scope);
            let row: Option<(Vec<u8>, Option<i64>)> = sqlx::query_as(
                "SELECT value, expires_at FROM kv WHERE tenant = ? AND scope = ? AND key = ?",
            )
            .bind(tenant)
            .bind(scope)
            .bind(key)
            .fetch_optional(self.pool())
            .await
            .map_err(|error| tracing::warn!(%error, "Key-value read failed."))
            .ok()
            .flatten();
            match row {
                Some((_, Some(expires))) if expires <= now_ms() => None,
                Some((value, _)) => Some(value),
                None => None,
            }
        })
    }

    fn set<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (tenant, scope) = split(scope);
            let expires = ttl.map(|t| now_ms() + t.as_millis() as i64);
            let result = sqlx::query(
                "INSERT INTO kv (tenant, scope, key, value, expires_at) VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (tenant, scope, key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            )
            .bind(tenant)
            .bind(scope)
            .bind(key)
            .bind(value)
            .bind(expires)
            .execute(self.pool())
            .await;
            if let Err(error) = result {
                tracing::warn!(%error, "Key-value write failed.");
            }
        })
    }

    fn delete<'a>(&'a self, scope: &'a str, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let (tenant, scope) = split(scope);
            let result = sqlx::query("DELETE FROM kv WHERE tenant = ? AND scope = ? AND key = ?")
                .bind(tenant)
                .bind(scope)
                .bind(key)
                .execute(self.pool())
                .await;
            if let Err(error) = result {
                tracing::warn!(%error, "Key-value delete failed.");
            }
        })
    }
}
