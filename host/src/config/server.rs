//! The `[server]`, `[webhooks]`, `[shopware_app.*]` and `[retention]` sections of
//! `koppel.toml`: what the dashboard, the API, the inbound webhooks and the Shopware app
//! backend receive.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::duration::HumanDuration;
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

/// `[webhooks.<connection>]`: inbound calls that start flows at once, one table per
/// connection whose system (or a relay for it) calls koppel, at
/// `POST /webhooks/{tenant}/{connection}`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct WebhooksConfig(pub BTreeMap<String, WebhookSource>);

/// How the calls of a webhook are signed.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookScheme {
    /// Shopware's app webhooks: `shopware-shop-signature` is the hex HMAC-SHA256 of the body;
    /// the body's `timestamp` must be fresh, `source.eventId` names a delivery.
    Shopware,
    /// koppel's own: `X-Koppel-Timestamp` and `X-Koppel-Signature: sha256=<hex HMAC of
    /// "<timestamp>.<body>">` (for a relay or a script; the one koppel signs its own
    /// notifications with).
    Koppel,
}

impl WebhookScheme {
    pub fn name(self) -> &'static str {
        match self {
            WebhookScheme::Shopware => "shopware",
            WebhookScheme::Koppel => "koppel",
        }
    }
}

/// One connection whose calls start flows.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSource {
    /// How its calls are signed: `shopware` or `koppel`.
    pub scheme: Option<WebhookScheme>,
    /// The key of the HMAC-SHA256 signature (Shopware: the app's shop secret).
    pub secret: Secret,
    /// The flows to run on an accepted call (default: every enabled flow that reads from
    /// this connection).
    pub flows: Option<Vec<String>>,
    /// Only these events start the flows (default: every event).
    #[serde(default)]
    pub events: Vec<String>,
    /// How old a call may be before it is refused as stale (default `5m`).
    pub max_age: Option<HumanDuration>,
}

impl WebhooksConfig {
    /// Checks each webhook against the connections of the file: its table names one, it says
    /// how calls are signed, and its secret can be read. A problem names its key.
    pub fn check<'a>(
        &self,
        connections: impl Iterator<Item = &'a String> + Clone,
    ) -> Result<(), (String, String)> {
        for (connection, source) in &self.0 {
            if !connections.clone().any(|c| c == connection) {
                let renamed = match connection.as_str() {
                    "shopware" | "mplus" => format!(
                        " `[webhooks.{connection}]` is now keyed by connection: write [webhooks.<the connection the calls are about>] with scheme = \"{}\"",
                        if connection == "shopware" {
                            "shopware"
                        } else {
                            "koppel"
                        }
                    ),
                    _ => String::new(),
                };
                return Err((
                    format!("webhooks.{connection}"),
                    format!(
                        "`{connection}` is not a connection (defined: {:?}).{renamed}",
                        connections.clone().collect::<Vec<_>>()
                    ),
                ));
            }
            if source.scheme.is_none() {
                return Err((
                    format!("webhooks.{connection}.scheme"),
                    "is missing: say how the calls are signed, scheme = \"shopware\" (shopware-shop-signature) or \"koppel\" (X-Koppel-Signature)".into(),
                ));
            }
            source
                .secret
                .resolve()
                .map_err(|m| (format!("webhooks.{connection}.secret"), m))?;
        }
        Ok(())
    }
}

impl ServerConfig {
    /// Checks what can be checked before the server starts: the address and the tokens.
    pub fn check(&self) -> Result<(), (String, String)> {
        let listen = self.listen();
        let port = listen.rsplit_once(':').map(|(_, port)| port.parse::<u16>());
        if !matches!(port, Some(Ok(_))) {
            return Err((
                "server.listen".into(),
                format!(
                    "{listen:?} is not an address with a port, like \"127.0.0.1:8080\" or \"0.0.0.0:8080\""
                ),
            ));
        }
        self.resolved_tokens().map(|_| ())
    }

    /// The tenant's tokens with values from the environment read: (key, message) of the
    /// first that cannot be.
    pub fn resolved_tokens(&self) -> Result<Vec<String>, (String, String)> {
        self.tokens
            .iter()
            .enumerate()
            .map(|(i, token)| {
                token
                    .resolve()
                    .map_err(|m| (format!("server.tokens[{i}]"), m))
            })
            .collect()
    }
}

impl WebhookSource {
    pub fn max_age(&self) -> Duration {
        self.max_age
            .map_or(Duration::from_secs(300), HumanDuration::get)
    }
}

/// `[shopware_app.<connection>]`: koppel as the backend of a Shopware app for that
/// connection. The shop registers with a request signed with `secret` (the manifest's
/// `<setup><secret>`), receives a shop secret of its own, hands over the API credentials of
/// the app's integration, and then signs the events it sends with the shop secret.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopwareApp {
    /// The app secret: at least 32 characters (`openssl rand -hex 32`).
    pub secret: Secret,
    /// The app's technical name, the manifest's `<meta><name>` (default `Koppel`).
    pub name: Option<String>,
    /// The flows a handled event runs (default `["orders"]`).
    pub flows: Option<Vec<String>>,
    /// The events the app subscribes to; each runs the flows (default: an order placed and
    /// a payment that became paid).
    pub events: Option<Vec<String>>,
    /// How old a signed call may be before it is refused as stale (default `5m`).
    pub max_age: Option<HumanDuration>,
}

impl ShopwareApp {
    pub const DEFAULT_NAME: &str = "Koppel";
    pub const DEFAULT_EVENTS: [&str; 2] = [
        "checkout.order.placed",
        "state_enter.order_transaction.state.paid",
    ];
    /// The connection's config keys the registration supplies (the app integration's
    /// access key and secret) when the file leaves them out.
    pub const SUPPLIED_KEYS: [&str; 2] = ["access_key_id", "secret_access_key"];
    /// The shortest app secret accepted.
    pub const MIN_SECRET_LEN: usize = 32;

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(Self::DEFAULT_NAME)
    }

    pub fn flows(&self) -> Vec<String> {
        self.flows.clone().unwrap_or_else(|| vec!["orders".into()])
    }

    pub fn events(&self) -> Vec<String> {
        self.events
            .clone()
            .unwrap_or_else(|| Self::DEFAULT_EVENTS.map(String::from).to_vec())
    }

    pub fn max_age(&self) -> Duration {
        self.max_age
            .map_or(Duration::from_secs(300), HumanDuration::get)
    }

    /// The app secret, checked.
    pub fn app_secret(&self) -> Result<String, String> {
        let secret = self.secret.resolve()?;
        if secret.chars().count() < Self::MIN_SECRET_LEN {
            return Err(format!(
                "is {} characters; use at least {} random ones (for example the output of `openssl rand -hex 32`): anyone who knows it can register a shop",
                secret.chars().count(),
                Self::MIN_SECRET_LEN
            ));
        }
        Ok(secret)
    }

    /// Checks every value; a problem names its key (relative to the section).
    pub fn check(&self) -> Result<(), (String, String)> {
        self.app_secret().map_err(|m| ("secret".to_owned(), m))?;
        let name = self.name();
        let valid_name = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err((
                "name".into(),
                format!(
                    "{name:?} is not a technical app name: use letters, digits and `_`, starting with a letter (for example \"KoppelSync\")"
                ),
            ));
        }
        let events = self.events();
        if events.is_empty() {
            return Err((
                "events".into(),
                "is empty: without an event the shop never calls koppel; leave the key out for the default".into(),
            ));
        }
        for event in &events {
            let token = !event.is_empty()
                && event
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'));
            if !token {
                return Err((
                    "events".into(),
                    format!(
                        "{event:?} is not a Shopware event name (letters, digits, `.`, `_`, `-`), for example \"checkout.order.placed\""
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `[retention]`: how long personal data stays (GDPR).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long activity bodies and record payloads are kept (default `14d`).
    pub keep: Option<HumanDuration>,
    /// How often the purge runs (default `1h`).
    pub every: Option<HumanDuration>,
    /// Fields masked in the activity log as soon as it is written (JSON keys and XML
    /// element names, case-insensitive), for example `["email", "phone", "lastName"]`.
    #[serde(default)]
    pub mask_fields: Vec<String>,
}

impl RetentionConfig {
    pub fn keep(&self) -> Duration {
        self.keep
            .map_or(Duration::from_secs(14 * 86_400), HumanDuration::get)
    }

    pub fn every(&self) -> Duration {
        self.every
            .map_or(Duration::from_secs(3600), HumanDuration::get)
    }
}
