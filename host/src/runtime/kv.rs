//! The per-connection key-value store behind the `kv-*` host imports (a cached OAuth token,
//! a probed API version). The state store provides a durable one; [`MemoryKv`] lives as
//! long as the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use super::host::CallContext;

/// Most bytes one value may hold.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most keys one connection may keep.
pub const MAX_KEYS: usize = 1024;

/// Values are scoped by `scope` (tenant and connection), so connections never see each
/// other's keys.
pub trait KvStore: Send + Sync {
    fn get<'a>(&'a self, scope: &'a str, key: &'a str) -> BoxFuture<'a, Option<Vec<u8>>>;
    fn set<'a>(
        &'a self,
        scope: &'a str,
        key: &'a str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> BoxFuture<'a, ()>;
    fn delete<'a>(&'a self, scope: &'a str, key: &'a str) -> BoxFuture<'a, ()>;
}

/// (scope, key) → (value, expiry).
type Entries = HashMap<(String, String), (Vec<u8>, Option<Instant>)>;

#[derive(Clone, Debug, Default)]
pub struct MemoryKv {
    entries: Arc<Mutex<Entries>>,
}

impl MemoryKv {
    pub fn new() -> Self {
        Self::default()
    }
}

impl KvStore for MemoryKv {
    fn get<'a>(&'a self, scope: &'a str, key: &'a str) -> BoxFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move {
            let mut entries = self.entries.lock().ok()?;
            let id = (scope.to_owned(), key.to_owned());
            match entries.get(&id) {
                Some((_, Some(expires))) if *expires <= Instant::now() => {
                    entries.remove(&id);
                    None
                }
                Some((value, _)) => Some(value.clone()),
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
            if let Ok(mut entries) = self.entries.lock() {
                let in_scope = entries.keys().filter(|(s, _)| s == scope).count();
                let id = (scope.to_owned(), key.to_owned());
                if in_scope >= MAX_KEYS && !entries.contains_key(&id) {
                    tracing::warn!(scope, key, "Key-value store full; value not stored.");
                    return;
                }
                entries.insert(id, (value, ttl.map(|t| Instant::now() + t)));
            }
        })
    }

    fn delete<'a>(&'a self, scope: &'a str, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Ok(mut entries) = self.entries.lock() {
                entries.remove(&(scope.to_owned(), key.to_owned()));
            }
        })
    }
}

/// Longest key a guest may use.
const MAX_KEY_BYTES: usize = 256;

/// `kv-get`: a value of this connection's.
pub(crate) async fn get(ctx: &CallContext, key: &str) -> Option<Vec<u8>> {
    ctx.kv.get(&ctx.kv_scope(), key).await
}

/// `kv-set`: an entry too large is not stored (and said so in the log).
pub(crate) async fn set(ctx: &CallContext, key: &str, value: Vec<u8>, ttl_seconds: Option<u32>) {
    if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
        tracing::warn!(connection = %ctx.connection, key_bytes = key.len(), value_bytes = value.len(), "Key-value entry too large; not stored.");
        return;
    }
    let ttl = ttl_seconds.map(|s| Duration::from_secs(u64::from(s)));
    ctx.kv.set(&ctx.kv_scope(), key, value, ttl).await;
}

/// `kv-delete`.
pub(crate) async fn delete(ctx: &CallContext, key: &str) {
    ctx.kv.delete(&ctx.kv_scope(), key).await;
}
