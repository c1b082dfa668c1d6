//! The limits a connection's sandbox runs under.

use std::time::Duration;

use crate::config::ConnectionLimits;

/// Per-connection limits. The defaults suit a shop's connector; tests shrink them.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Linear memory a guest instance may grow to.
    pub memory_bytes: usize,
    /// Wall-clock time one call into the guest may take, host calls included.
    pub call_timeout: Duration,
    /// Default timeout of one HTTP request, when the guest does not ask for one.
    pub http_timeout: Duration,
    /// The most a guest may ask for as an HTTP timeout.
    pub http_timeout_max: Duration,
    pub max_request_bytes: usize,
    pub max_response_bytes: usize,
    /// Retries of a retry-safe request after 429/502/503/504 (so at most `1 + retries` sends).
    pub http_retries: u32,
    /// First back-off delay; doubled on every retry.
    pub retry_backoff: Duration,
    /// The longest the host waits before a retry, `Retry-After` included. A server asking for
    /// longer gets its 429/503 passed to the guest instead.
    pub retry_wait_max: Duration,
    /// How much of each body the activity log keeps.
    pub activity_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 64 * 1024 * 1024,
            call_timeout: Duration::from_secs(300),
            http_timeout: Duration::from_secs(60),
            http_timeout_max: Duration::from_secs(600),
            max_request_bytes: 16 * 1024 * 1024,
            max_response_bytes: 64 * 1024 * 1024,
            http_retries: 4,
            retry_backoff: Duration::from_millis(250),
            retry_wait_max: Duration::from_secs(30),
            activity_body_bytes: 16 * 1024,
        }
    }
}

impl Limits {
    /// The defaults with what a connection's section of `koppel.toml` sets (`memory_mib`,
    /// `call_timeout`).
    pub fn from_section(section: &ConnectionLimits) -> Limits {
        let defaults = Limits::default();
        Limits {
            memory_bytes: section.memory_bytes.unwrap_or(defaults.memory_bytes),
            call_timeout: section.call_timeout.unwrap_or(defaults.call_timeout),
            ..defaults
        }
    }
}
