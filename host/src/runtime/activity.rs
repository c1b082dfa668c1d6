//! The activity sink: every HTTP exchange a connector makes, as the host saw it, with
//! secrets already redacted. The state store keeps them for the dashboard; tests read them
//! from [`MemorySink`].

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;

/// One HTTP exchange (one attempt: a retried request is several exchanges).
#[derive(Clone, Debug, Serialize)]
pub struct Exchange {
    pub tenant: String,
    pub connection: String,
    pub connector: String,
    pub method: String,
    /// Redacted.
    pub url: String,
    /// None when no answer came (timeout, refused, dropped).
    pub status: Option<u16>,
    /// Why no usable answer came.
    pub error: Option<String>,
    pub duration_ms: u64,
    /// 1 for the first send, 2 for the first retry, ...
    pub attempt: u32,
    /// Redacted.
    pub request_headers: Vec<(String, String)>,
    /// Redacted and truncated.
    pub request_body: String,
    pub response_headers: Vec<(String, String)>,
    /// Redacted and truncated.
    pub response_body: String,
    pub request_bytes: u64,
    pub response_bytes: u64,
    #[serde(with = "unix_millis")]
    pub at: SystemTime,
}

/// Where exchanges go. `record` must not block: implementations queue.
pub trait ActivitySink: Send + Sync {
    fn record(&self, exchange: Exchange);
}

/// Drops everything (for calls whose traffic nobody needs to see, like reading a manifest).
#[derive(Debug, Default)]
pub struct NullSink;

impl ActivitySink for NullSink {
    fn record(&self, _exchange: Exchange) {}
}

/// Keeps everything in memory.
#[derive(Clone, Debug, Default)]
pub struct MemorySink {
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl MemorySink {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Everything recorded, as one JSON text (for asserting that a secret is nowhere).
    pub fn dump(&self) -> String {
        serde_json::to_string(&self.exchanges()).unwrap_or_default()
    }
}

impl ActivitySink for MemorySink {
    fn record(&self, exchange: Exchange) {
        if let Ok(mut exchanges) = self.exchanges.lock() {
            exchanges.push(exchange);
        }
    }
}

mod unix_millis {
    use std::time::{SystemTime, UNIX_EPOCH};

    pub fn serialize<S: serde::Serializer>(
        at: &SystemTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let millis = at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        serializer.serialize_u64(millis)
    }
}
