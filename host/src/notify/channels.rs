//! Where notifications go: a webhook (JSON POST signed with koppel's HMAC-SHA256 scheme, see
//! [`crate::signature`]) and e-mail over SMTP (lettre, TLS through rustls).
//!
//! A delivery that fails for a reason that may pass (no connection, a timeout, HTTP 5xx or
//! 429, an SMTP 4xx) is tried again, up to [`ATTEMPTS`] times with a doubling wait in
//! between; a refusal (HTTP 4xx, SMTP 5xx) is not. Only the outcome is recorded: one
//! notification per channel, delivered or not.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;

use crate::config::{EmailChannel, NotifyConfig, SmtpTls, WebhookChannel};
use crate::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, koppel_signature};
use crate::store::Incident;

/// A channel could not be set up from the config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error("notify.{key}: {message}")]
    Config { key: String, message: String },
}

/// What a notification says, as the webhook's JSON body.
#[derive(Clone, Debug, Serialize)]
pub struct Notice<'a> {
    pub tenant: &'a str,
    /// `opened` or `resolved`.
    pub event: &'a str,
    pub incident: &'a Incident,
    /// A link into the dashboard, when `server.public_url` is set.
    pub url: Option<String>,
}

impl Notice<'_> {
    pub fn subject(&self) -> String {
        let what = match (self.event, self.incident.kind.as_str()) {
            ("resolved", _) => "resolved",
            (_, "flow-failed") => "flow failed",
            (_, "records-failing") => "records keep failing",
            (_, "stale") => "flow has not succeeded",
            _ => "incident",
        };
        format!(
            "[koppel {}] {what}: {}",
            self.tenant,
            self.incident.flow.as_str()
        )
    }

    pub fn text(&self) -> String {
        let mut text = String::new();
        if self.event == "resolved" {
            text.push_str(&format!(
                "Resolved: {}\n\nThe incident was: {}\n",
                self.incident.resolution.as_deref().unwrap_or("recovered"),
                self.incident.message
            ));
        } else {
            text.push_str(&format!("{}\n", self.incident.message));
        }
        text.push_str(&format!(
            "\nTenant: {}\nFlow: {}\nKind: {}\nIncident: #{}\n",
            self.tenant, self.incident.flow, self.incident.kind, self.incident.id
        ));
        if let Some(run) = self.incident.run_id {
            text.push_str(&format!("Run: #{run}\n"));
        }
        if let Some(url) = &self.url {
            text.push_str(&format!("\n{url}\n"));
        }
        text
    }
}

enum Channel {
    Webhook {
        url: String,
        secret: String,
    },
    Email {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
        to: Vec<Mailbox>,
    },
}

impl Channel {
    fn name(&self) -> &'static str {
        match self {
            Channel::Webhook { .. } => "webhook",
            Channel::Email { .. } => "email",
        }
    }
}

/// Tries per notification and channel.
pub const ATTEMPTS: u32 = 3;

/// The wait before the second try; it doubles before each next one.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Why one try did not deliver.
struct Failure {
    message: String,
    /// It may pass: try again.
    transient: bool,
}

impl Failure {
    fn transient(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: true,
        }
    }

    fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            transient: false,
        }
    }
}

/// The configured channels.
pub struct Notifier {
    channels: Vec<Channel>,
    backoff: Duration,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.channels.iter().map(Channel::name))
            .finish()
    }
}

fn config_error(key: &str, message: impl Into<String>) -> NotifyError {
    NotifyError::Config {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn webhook(config: &WebhookChannel) -> Result<Channel, NotifyError> {
    let url = url::Url::parse(&config.url)
        .map_err(|e| config_error("webhook.url", format!("{e}; write a full https:// URL")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(config_error("webhook.url", "must be an http(s) URL"));
    }
    let secret = config
        .secret
        .resolve()
        .map_err(|m| config_error("webhook.secret", m))?;
    Ok(Channel::Webhook {
        url: config.url.clone(),
        secret,
    })
}

fn email(config: &EmailChannel) -> Result<Channel, NotifyError> {
    let builder = match config.tls {
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
            .map_err(|e| config_error("email.host", e.to_string()))?,
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
            .map_err(|e| config_error("email.host", e.to_string()))?,
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
    };
    let mut builder = builder
        .port(config.port())
        .timeout(Some(Duration::from_secs(20)));
    match (&config.username, &config.password) {
        (Some(user), Some(password)) => {
            let password = password
                .resolve()
                .map_err(|m| config_error("email.password", m))?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        (None, None) => {}
        _ => {
            return Err(config_error(
                "email",
                "set both username and password, or neither",
            ));
        }
    }
    let from: Mailbox = config
        .from
        .parse()
        .map_err(|e| config_error("email.from", format!("{e}")))?;
    if config.to.is_empty() {
        return Err(config_error("email.to", "name at least one address"));
    }
    let to = config
        .to
        .iter()
        .enumerate()
        .map(|(i, address)| {
            address
                .parse()
                .map_err(|e| config_error(&format!("email.to[{i}]"), format!("{e}")))
        })
        .collect::<Result<Vec<Mailbox>, _>>()?;
    Ok(Channel::Email {
        transport: Box::new(builder.build()),
        from,
        to,
    })
}

impl Notifier {
    /// The channels of `[notify]`; secrets resolved, addresses checked.
    pub fn from_config(config: &NotifyConfig) -> Result<Notifier, NotifyError> {
        let mut channels = Vec::new();
        if let Some(hook) = &config.webhook {
            channels.push(webhook(hook)?);
        }
        if let Some(mail) = &config.email {
            channels.push(email(mail)?);
        }
        Ok(Notifier {
            channels,
            backoff: FIRST_BACKOFF,
        })
    }

    /// Waits `first` before the second try of a failed delivery (default 1 s), doubling
    /// before each next.
    pub fn with_backoff(mut self, first: Duration) -> Notifier {
        self.backoff = first;
        self
    }

    /// No channel configured.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Sends a notice through every channel, trying each up to [`ATTEMPTS`] times: (channel,
    /// error if it was not delivered in the end).
    pub async fn send(&self, notice: &Notice<'_>) -> Vec<(&'static str, Option<String>)> {
        let mut results = Vec::new();
        for channel in &self.channels {
            let result = self.deliver(channel, notice).await;
            if let Err(error) = &result {
                tracing::warn!(channel = channel.name(), %error, incident = notice.incident.id, "Notification not delivered.");
            }
            results.push((channel.name(), result.err()));
        }
        results
    }

    async fn deliver(&self, channel: &Channel, notice: &Notice<'_>) -> Result<(), String> {
        let mut wait = self.backoff;
        let mut attempt = 1;
        loop {
            let result = match channel {
                Channel::Webhook { url, secret } => post(url, secret, notice).await,
                Channel::Email {
                    transport,
                    from,
                    to,
                } => mail(transport, from, to, notice).await,
            };
            let failure = match result {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if !failure.transient || attempt >= ATTEMPTS {
                return Err(if attempt > 1 {
                    format!("{} (after {attempt} tries)", failure.message)
                } else {
                    failure.message
                });
            }
            tracing::info!(channel = channel.name(), error = %failure.message, attempt, incident = notice.incident.id, "Notification not delivered; trying again.");
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
            attempt += 1;
        }
    }
}

/// One try at the webhook.
async fn post(url: &str, secret: &str, notice: &Notice<'_>) -> Result<(), Failure> {
    let body = serde_json::to_vec(notice).map_err(|e| Failure::permanent(e.to_string()))?;
    let loopback = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]")
        })
        .unwrap_or(false);
    let mut client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("koppel/", env!("CARGO_PKG_VERSION")));
    if loopback {
        client = client.no_proxy();
    }
    let client = client
        .build()
        .map_err(|e| Failure::permanent(e.to_string()))?;
    let timestamp = crate::store::now_ms() / 1000;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(
            SIGNATURE_HEADER,
            koppel_signature(secret.as_bytes(), timestamp, &body),
        )
        .body(body)
        .send()
        .await;
    match response {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => Err(
            Failure::transient(format!("the receiver answered {}", r.status())),
        ),
        Ok(r) => Err(Failure::permanent(format!(
            "the receiver answered {}",
            r.status()
        ))),
        Err(e) => Err(Failure::transient(e.to_string())),
    }
}

/// One try at the SMTP server.
async fn mail(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    to: &[Mailbox],
    notice: &Notice<'_>,
) -> Result<(), Failure> {
    let mut message = Message::builder()
        .from(from.clone())
        .subject(notice.subject());
    for address in to {
        message = message.to(address.clone());
    }
    let message = message
        .body(notice.text())
        .map_err(|e| Failure::permanent(format!("cannot build the message: {e}")))?;
    transport.send(message).await.map(|_| ()).map_err(|e| {
        let message = format!("SMTP: {e}");
        // 5xx: the server refuses the message (a client error would recur as well);
        // anything else (4xx, no connection, a timeout) may pass.
        if e.is_permanent() || e.is_client() {
            Failure::permanent(message)
        } else {
            Failure::transient(message)
        }
    })
}
