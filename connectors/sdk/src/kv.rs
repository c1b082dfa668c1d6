//! The connection's key-value store in the host (cached tokens, version probes).

use crate::bindings::koppel::connector::host;

pub fn get(key: &str) -> Option<Vec<u8>> {
    host::kv_get(key)
}

pub fn get_string(key: &str) -> Option<String> {
    get(key).and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Stores `value`; with `ttl_seconds` it expires.
pub fn set(key: &str, value: &[u8], ttl_seconds: Option<u32>) {
    host::kv_set(key, value, ttl_seconds);
}

pub fn set_string(key: &str, value: &str, ttl_seconds: Option<u32>) {
    set(key, value.as_bytes(), ttl_seconds);
}

pub fn delete(key: &str) {
    host::kv_delete(key);
}
