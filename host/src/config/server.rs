//! The `[server]`, `[webhooks]` and `[retention]` sections of `koppel.toml`: what the
//! dashboard, the API and the inbound webhooks receive.

use std::time::Duration;

use serde::Deserialize;

use super::duration::parse_duration;
use super::secret::Secret;

/// `[server]`: the dashboard, API and inbound webhooks.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:8080`).
    pub listen: Option<String>,
    /// API tokens of this tenant. With none here and none stored, one is generated at the
    /// first start and printed once.
    #[serde(default)]
    pub tokens: Vec<Secret>,
    /// The dashboard's address as people reach it (for links in notifications).
    pub public_url: Option<String>,
}

impl ServerConfig {
    pub fn listen(&self) -> &str {
        self.listen.as_deref().unwrap_or("127.0.0.1:8080")
    }
}

/// `[webhooks]`: inbound calls that start a flow at once.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    pub shopware: Option<WebhookSource>,
    pub mplus: Option<WebhookSource>,
}

/// One system that calls koppel.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSource {
    /// The key of the HMAC-SHA256 signature (Shopware: the app's shop secret).
    pub secret: Secret,
    /// The flows to run on an accepted call (Shopware default: `orders`; MplusKASSA
    /// default: `stock`).
    pub flows: Option<Vec<String>>,
    /// Only these events start the flows (default: every event).
    #[serde(default)]
    pub events: Vec<String>,
    /// How old a call may be before it is refused as stale (default `5m`).
    pub max_age: Option<String>,
}

impl WebhookSource {
    pub fn max_age(&self) -> Result<Duration, String> {
        match &self.max_age {
            Some(text) => parse_duration(text),
            None => Ok(Duration::from_secs(300)),
        }
    }
}

/// `[retention]`: how long personal data stays (GDPR).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long activity bodies and record payloads are kept (default `14d`).
    pub keep: Option<String>,
    /// How often the purge runs (default `1h`).
    pub every: Option<String>,
    /// Fields masked in the activity log as soon as it is written (JSON keys and XML
    /// element names, case-insensitive), for example `["email", "phone", "lastName"]`.
    #[serde(default)]
    pub mask_fields: Vec<String>,
}

impl RetentionConfig {
    pub fn keep(&self) -> Result<Duration, String> {
        match &self.keep {
            Some(text) => parse_duration(text),
            None => Ok(Duration::from_secs(14 * 86_400)),
        }
    }

    pub fn every(&self) -> Result<Duration, String> {
        match &self.every {
            Some(text) => parse_duration(text),
            None => Ok(Duration::from_secs(3600)),
        }
    }
}
