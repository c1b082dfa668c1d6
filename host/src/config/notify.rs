//! The `[notify]` section of `koppel.toml`: when to raise an incident and where to send it.

use serde::Deserialize;

use super::secret::Secret;

/// `[notify]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A record "keeps failing" once it failed this many times (default 3).
    pub record_attempts: Option<u32>,
    pub webhook: Option<WebhookChannel>,
    pub email: Option<EmailChannel>,
}

impl NotifyConfig {
    pub fn record_attempts(&self) -> u32 {
        self.record_attempts.unwrap_or(3).max(1)
    }
}

/// `[notify.webhook]`: a JSON POST signed with HMAC-SHA256.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub url: String,
    /// The HMAC key; the receiver checks `X-Koppel-Signature` with it.
    pub secret: Secret,
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587), required.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine.
    None,
}

/// `[notify.email]`: e-mail over SMTP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    /// The SMTP server's host name.
    pub host: String,
    /// Default: 587 for STARTTLS, 465 for TLS, 25 without.
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `koppel <koppel@example.com>`.
    pub from: String,
    pub to: Vec<String>,
}

impl EmailChannel {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }
}
