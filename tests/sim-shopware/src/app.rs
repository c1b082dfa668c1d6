//! Shopware's app system as an app backend meets it, after the 6.4–6.7 source:
//!
//! - **Install** (`App/Lifecycle/AppLifecycle.php`, `Registration/HandshakeFactory.php`,
//!   `PrivateHandshake.php`, `AppRegistrationService.php`): the manifest is read (required
//!   meta fields, the elements each version's `manifest-*.xsd` knows); with
//!   `<setup><secret>` the shop `GET`s the registration URL with `shop-id`, `shop-url` and
//!   `timestamp` appended as Guzzle's `Uri::withQueryValues` does, signed in
//!   `shopware-app-signature` (hex HMAC-SHA256 of the query with the setup secret); checks
//!   the answer's `proof` (HMAC of shop id + shop URL + app name), keeps its `secret`, creates
//!   the app's integration and `POST`s `{apiKey, secretKey, timestamp, shopUrl, shopId}`
//!   (PHP's `json_encode`) to `confirmation_url`, signed with the app's secret in
//!   `shopware-shop-signature`. Any failure removes the app again.
//! - **Webhooks** (`Webhook/WebhookDispatcher.php`, `Handler/WebhookEventMessageHandler.php`):
//!   `checkout.order.placed` when an order is placed, `state_enter.<machine>.<state>` when a
//!   state is entered; only to an active app whose permissions allow reading the event's
//!   data (`order:read`); body `{"data":{"payload":…,"event":…},"source":{"url","eventId",
//!   "shopId","appVersion"},"timestamp":…}` with a fresh timestamp per attempt, signed with
//!   the app secret; a failed delivery is retried by the message queue (`framework.yaml`:
//!   `max_retries: 3`, `delay: 1000`, `multiplier: 2`) with the same `eventId`.
//! - **Uninstall**: `app.deleted` is sent synchronously, then the app and its integration go.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::broadcast;

use crate::http::App;
use crate::ids::{Id, now_millis};
use crate::shop::{SYSTEM_LANGUAGE, Shop};
use crate::{Version, entities, storefront};

pub const APP_SIGNATURE: &str = "shopware-app-signature";
pub const SHOP_SIGNATURE: &str = "shopware-shop-signature";
/// `messenger.transports.async.retry_strategy.max_retries`.
const MAX_RETRIES: u32 = 3;

/// Hex HMAC-SHA256, as PHP's `hash_hmac('sha256', …)`.
pub fn hmac_hex(secret: &str, payload: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        unreachable!("HMAC takes keys of any length");
    };
    mac.update(payload);
    let bytes = mac.finalize().into_bytes();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// PHP's `json_encode` with default flags: `/` as `\/`, characters beyond ASCII as
/// `\uXXXX`. Shopware signs exactly these bytes.
pub fn php_json(value: &Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

/// Guzzle's `Uri::withQueryValues`: the pairs appended to `url`'s query (pairs of the same
/// keys removed), `=` and `&` in keys and values encoded, then `withQuery`'s filter, which
/// percent-encodes what is not unreserved, a sub-delimiter, `%XX`, `:`, `@`, `/` or `?`.
pub fn with_query_values(url: &str, pairs: &[(&str, &str)]) -> (String, String) {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split('=').next().unwrap_or_default();
            !pairs.iter().any(|(k, _)| *k == key)
        })
        .map(str::to_owned)
        .collect();
    let separators = |s: &str| s.replace('=', "%3D").replace('&', "%26");
    for (key, value) in pairs {
        parts.push(format!("{}={}", separators(key), separators(value)));
    }
    let query = filter_query(&parts.join("&"));
    (format!("{base}?{query}"), query)
}

fn filter_query(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    for (i, &b) in bytes.iter().enumerate() {
        let allowed = b.is_ascii_alphanumeric() || b"_-.~!$&'()*+,;=:@/?".contains(&b);
        let escape = b == b'%'
            && bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
        if allowed || escape {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A webhook of an app's manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    pub event: String,
}

/// What the simulator reads of a `manifest.xml`.
#[derive(Clone, Debug, Default)]
pub struct AppManifest {
    pub name: String,
    pub version: String,
    pub registration_url: Option<String>,
    pub setup_secret: Option<String>,
    /// `entity:privilege`, with `read` added for each create, update and delete
    /// (`AclRoleDefinition::PRIVILEGE_DEPENDENCE`).
    pub privileges: BTreeSet<String>,
    pub webhooks: Vec<Webhook>,
}

const TOP_LEVEL: [&str; 14] = [
    "meta",
    "setup",
    "admin",
    "storefront",
    "permissions",
    "allowed-hosts",
    "custom-fields",
    "webhooks",
    "cookies",
    "payments",
    "shipping-methods",
    "rule-conditions",
    "tax",
    "gateways",
];

/// `<meta>` children of `manifest-1.0.xsd` (6.4); 6.5's `manifest-2.0.xsd` adds
/// `compatibility`.
const META_1_0: [&str; 10] = [
    "name",
    "label",
    "description",
    "author",
    "copyright",
    "version",
    "icon",
    "license",
    "privacy",
    "privacyPolicyExtensions",
];

/// `Metadata::REQUIRED_FIELDS`.
const META_REQUIRED: [&str; 6] = ["label", "name", "author", "copyright", "license", "version"];

impl AppManifest {
    /// Reads a manifest as Shopware's `XmlReader` would accept it for `version`; an error
    /// says what is wrong.
    pub fn parse(xml: &str, version: Version) -> Result<AppManifest, String> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(xml);
        let mut stack: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut manifest = AppManifest::default();
        let mut meta_seen: HashSet<String> = HashSet::new();
        loop {
            let event = reader
                .read_event()
                .map_err(|e| format!("not well-formed at byte {}: {e}", reader.error_position()))?;
            let is_empty = matches!(event, Event::Empty(_));
            match event {
                Event::Start(e) | Event::Empty(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    let path = stack.join("/");
                    match path.as_str() {
                        "" if name != "manifest" => {
                            return Err(format!("the root element is <{name}>, not <manifest>"));
                        }
                        "manifest" if !TOP_LEVEL.contains(&name.as_str()) => {
                            return Err(format!(
                                "Element 'manifest' has an unexpected child <{name}>"
                            ));
                        }
                        "manifest/meta" => {
                            let known = META_1_0.contains(&name.as_str())
                                || (version >= Version::V6_5 && name == "compatibility");
                            if !known {
                                return Err(format!(
                                    "Element 'meta' has an unexpected child <{name}> (Shopware {})",
                                    version.full()
                                ));
                            }
                            meta_seen.insert(name.clone());
                        }
                        "manifest/webhooks" if name == "webhook" => {
                            let mut webhook = Webhook {
                                name: String::new(),
                                url: String::new(),
                                event: String::new(),
                            };
                            for attribute in e.attributes() {
                                let attribute = attribute.map_err(|e| e.to_string())?;
                                let key =
                                    String::from_utf8_lossy(attribute.key.as_ref()).into_owned();
                                let value = attribute
                                    .unescape_value()
                                    .map_err(|e| e.to_string())?
                                    .into_owned();
                                match key.as_str() {
                                    "name" => webhook.name = value,
                                    "url" => webhook.url = value,
                                    "event" => webhook.event = value,
                                    "onlyLiveVersion" if version >= Version::V6_5 => {}
                                    other => {
                                        return Err(format!(
                                            "webhook: the attribute '{other}' is not allowed"
                                        ));
                                    }
                                }
                            }
                            if webhook.name.is_empty()
                                || webhook.url.is_empty()
                                || webhook.event.is_empty()
                            {
                                return Err(
                                    "webhook: the attributes 'name', 'url' and 'event' are required"
                                        .into(),
                                );
                            }
                            manifest.webhooks.push(webhook);
                        }
                        _ => {}
                    }
                    text.clear();
                    // An empty element (`<x/>`) has no end event.
                    if !is_empty {
                        stack.push(name);
                    }
                }
                Event::Text(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
                Event::CData(t) => text.push_str(&t.decode().map_err(|e| e.to_string())?),
                Event::GeneralRef(r) => {
                    let resolved = if r.is_char_ref() {
                        r.resolve_char_ref()
                            .map_err(|e| e.to_string())?
                            .map(String::from)
                    } else {
                        let name = r.decode().map_err(|e| e.to_string())?;
                        quick_xml::escape::resolve_predefined_entity(&name).map(String::from)
                    };
                    text.push_str(&resolved.ok_or("an unknown entity reference")?);
                }
                Event::End(_) => {
                    let path = stack.join("/");
                    let value = text.trim().to_owned();
                    match path.as_str() {
                        "manifest/meta/name" => manifest.name = value,
                        "manifest/meta/version" => manifest.version = value,
                        "manifest/setup/registrationUrl" => manifest.registration_url = Some(value),
                        "manifest/setup/secret" => manifest.setup_secret = Some(value),
                        p if p.starts_with("manifest/permissions/") => {
                            let privilege = p.trim_start_matches("manifest/permissions/");
                            match privilege {
                                "read" | "create" | "update" | "delete" => {
                                    manifest.privileges.insert(format!("{value}:{privilege}"));
                                    manifest.privileges.insert(format!("{value}:read"));
                                }
                                "permission" => {
                                    manifest.privileges.insert(value);
                                }
                                other => {
                                    return Err(format!(
                                        "Element 'permissions' has an unexpected child <{other}>"
                                    ));
                                }
                            }
                        }
                        _ => {}
                    }
                    text.clear();
                    stack.pop();
                }
                Event::Eof => break,
                Event::DocType(_) => return Err("a DOCTYPE is not allowed".into()),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            }
        }
        for required in META_REQUIRED {
            if !meta_seen.contains(required) {
                return Err(format!("the meta field <{required}> is required"));
            }
        }
        if manifest.setup_secret.is_some() && manifest.registration_url.is_none() {
            return Err("<setup> needs a <registrationUrl>".into());
        }
        Ok(manifest)
    }
}

/// An installed app.
#[derive(Clone, Debug)]
struct Installed {
    name: String,
    version: String,
    /// The secret the app backend chose at registration (signs webhooks).
    app_secret: String,
    access_key: String,
    secret_key: String,
    privileges: BTreeSet<String>,
    webhooks: Vec<Webhook>,
}

/// What a test sees of an installed app.
#[derive(Clone, Debug)]
pub struct AppInfo {
    pub name: String,
    /// The access key of the app's integration (`SWIA…`).
    pub access_key: String,
    /// Its secret, as handed to the app's backend (tests check it is kept secret).
    pub secret_key: String,
    pub privileges: BTreeSet<String>,
    pub webhooks: Vec<Webhook>,
}

/// One attempt to deliver a webhook.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub app: String,
    pub event: String,
    /// The same for every attempt of one event.
    pub event_id: String,
    /// The order the event is about (`data.payload.order.id`), if any.
    pub order_id: Option<String>,
    /// 1 for the first attempt, up to 4.
    pub attempt: u32,
    /// The app server's status; none when it could not be reached.
    pub status: Option<u16>,
    pub error: Option<String>,
    /// No further attempt follows (delivered, or out of retries).
    pub last: bool,
}

impl Delivery {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// The app system of one simulator.
pub struct Apps {
    /// `ShopIdProvider`'s id: 16 random letters and digits.
    pub shop_id: String,
    installed: Mutex<Vec<Installed>>,
    /// History rows already turned into `state_enter` events.
    seen_history: Mutex<HashSet<Id>>,
    log: Mutex<Vec<Delivery>>,
    deliveries: broadcast::Sender<Delivery>,
    retry_delay: Mutex<Duration>,
    /// A test hook: sign webhooks with this instead of the app secret.
    forged_secret: Mutex<Option<String>>,
    client: reqwest::Client,
}

impl Default for Apps {
    fn default() -> Apps {
        Apps::new()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

fn alphanumeric(n: usize, upper: bool) -> String {
    let chars: &[u8] = if upper {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    } else {
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    };
    let mut rng = rand::rng();
    (0..n)
        .map(|_| chars[rng.random_range(0..chars.len())] as char)
        .collect()
}

/// Why an install failed, in Shopware's words (`AppException::registrationFailed`).
fn registration_failed(app: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("App registration for \"{app}\" failed: {why}")
}

impl Apps {
    pub fn new() -> Apps {
        // reqwest is built without a TLS provider in this workspace; webhooks to plain HTTP
        // need none, and a provider installed once serves every client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(20))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Apps {
            shop_id: alphanumeric(16, false),
            installed: Mutex::new(Vec::new()),
            seen_history: Mutex::new(HashSet::new()),
            log: Mutex::new(Vec::new()),
            deliveries: broadcast::channel(1024).0,
            retry_delay: Mutex::new(Duration::from_secs(1)),
            forged_secret: Mutex::new(None),
            client,
        }
    }

    pub fn set_retry_delay(&self, delay: Duration) {
        *lock(&self.retry_delay) = delay;
    }

    pub fn sign_with(&self, secret: Option<String>) {
        *lock(&self.forged_secret) = secret;
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.log).clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.deliveries.subscribe()
    }

    pub fn installed(&self) -> Vec<AppInfo> {
        lock(&self.installed)
            .iter()
            .map(|app| AppInfo {
                name: app.name.clone(),
                access_key: app.access_key.clone(),
                secret_key: app.secret_key.clone(),
                privileges: app.privileges.clone(),
                webhooks: app.webhooks.clone(),
            })
            .collect()
    }

    fn shop_url(app: &App) -> String {
        app.base_url.read().map(|b| b.clone()).unwrap_or_default()
    }

    /// Installs an app from its manifest, registering it with its backend.
    pub async fn install(app: &App, xml: &str) -> anyhow::Result<AppInfo> {
        let apps = &app.apps;
        let manifest = AppManifest::parse(xml, app.version)
            .map_err(|e| anyhow::anyhow!("the manifest is invalid: {e}"))?;
        let name = manifest.name.clone();
        if lock(&apps.installed).iter().any(|a| a.name == name) {
            anyhow::bail!("App \"{name}\" is already installed");
        }
        let (Some(registration_url), Some(secret)) =
            (&manifest.registration_url, &manifest.setup_secret)
        else {
            anyhow::bail!(
                "the simulator installs only apps with <setup><registrationUrl> and <secret> (PrivateHandshake)"
            );
        };
        let shop_url = Apps::shop_url(app);
        let timestamp = (now_millis() / 1000).to_string();
        let (url, query) = with_query_values(
            registration_url,
            &[
                ("shop-id", &apps.shop_id),
                ("shop-url", &shop_url),
                ("timestamp", &timestamp),
            ],
        );
        let response = apps
            .client
            .get(&url)
            .header(APP_SIGNATURE, hmac_hex(secret, query.as_bytes()))
            .header("sw-version", app.version.full())
            .send()
            .await
            .map_err(|e| registration_failed(&name, e))?;
        let status = response.status();
        let body: Value = serde_json::from_str(&response.text().await.unwrap_or_default())
            .map_err(|_| registration_failed(&name, "JSON response could not be decoded"))?;
        if let Some(error) = body.get("error").and_then(Value::as_str) {
            return Err(registration_failed(&name, error));
        }
        if !status.is_success() {
            return Err(registration_failed(
                &name,
                format!("the app server answered {status}"),
            ));
        }
        let proof = body
            .get("proof")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let expected = hmac_hex(
            secret,
            format!("{}{shop_url}{name}", apps.shop_id).as_bytes(),
        );
        if proof.trim() != expected {
            return Err(registration_failed(
                &name,
                "The app server provided an invalid proof",
            ));
        }
        let (Some(app_secret), Some(confirmation_url)) = (
            body.get("secret").and_then(Value::as_str),
            body.get("confirmation_url").and_then(Value::as_str),
        ) else {
            return Err(registration_failed(
                &name,
                "the answer has no secret or confirmation_url",
            ));
        };
        // The integration, with the app's role.
        let access_key = format!("SWIA{}", alphanumeric(26, true));
        let secret_key = alphanumeric(55, false);
        app.auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add_integration(&access_key, &secret_key);
        let payload = php_json(&json!({
            "apiKey": access_key,
            "secretKey": secret_key,
            "timestamp": (now_millis() / 1000).to_string(),
            "shopUrl": shop_url,
            "shopId": apps.shop_id,
        }));
        let confirmed = apps
            .client
            .post(confirmation_url)
            .header(SHOP_SIGNATURE, hmac_hex(app_secret, payload.as_bytes()))
            .header("sw-version", app.version.full())
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await;
        let refused = match confirmed {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                Some(
                    serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v.get("error").and_then(Value::as_str).map(String::from))
                        .unwrap_or_else(|| format!("the confirmation was answered {status}")),
                )
            }
            Err(error) => Some(error.to_string()),
        };
        if let Some(why) = refused {
            app.auth
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove_integration(&access_key);
            return Err(registration_failed(&name, why));
        }
        // Events before the installation are not the app's business.
        {
            let shop = app.shop_read();
            let history = Shop::entity_index("state_machine_history");
            let mut seen = lock(&apps.seen_history);
            seen.extend(shop.table(history).iter().map(|(_, id, _)| id));
        }
        let installed = Installed {
            name: name.clone(),
            version: manifest.version.clone(),
            app_secret: app_secret.to_owned(),
            access_key: access_key.clone(),
            secret_key: secret_key.clone(),
            privileges: manifest.privileges.clone(),
            webhooks: manifest.webhooks.clone(),
        };
        lock(&apps.installed).push(installed);
        tracing::info!(app = %name, "App installed and registered.");
        Ok(AppInfo {
            name,
            access_key,
            secret_key,
            privileges: manifest.privileges,
            webhooks: manifest.webhooks,
        })
    }

    /// Removes an app: `app.deleted` first (synchronously, one attempt), then the app and
    /// its integration.
    pub async fn uninstall(app: &App, name: &str) -> anyhow::Result<()> {
        let Some(installed) = lock(&app.apps.installed)
            .iter()
            .find(|a| a.name == name)
            .cloned()
        else {
            anyhow::bail!("no app \"{name}\" is installed");
        };
        for webhook in installed
            .webhooks
            .iter()
            .filter(|w| w.event == "app.deleted")
        {
            let message = Message {
                app: installed.clone(),
                url: webhook.url.clone(),
                event: "app.deleted".into(),
                event_id: Id::random(&mut rand::rng()).hex(),
                payload: json!([]),
                retries: 0,
            };
            deliver(app.clone(), message).await;
        }
        lock(&app.apps.installed).retain(|a| a.name != name);
        app.auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove_integration(&installed.access_key);
        Ok(())
    }

    /// `checkout.order.placed` for a new order.
    pub fn order_placed(app: &App, order: &str) {
        if lock(&app.apps.installed).is_empty() {
            return;
        }
        if let Some(order) = render_order(app, order) {
            Apps::dispatch(app, "checkout.order.placed", json!({ "order": order }));
        }
    }

    /// `state_enter.…` for every state entered since the last call.
    pub fn pump(app: &App) {
        if lock(&app.apps.installed).is_empty() {
            return;
        }
        let mut events = Vec::new();
        {
            let shop = app.shop_read();
            let history = Shop::entity_index("state_machine_history");
            let states = Shop::entity_index("state_machine_state");
            let mut seen = lock(&app.apps.seen_history);
            for (_, id, row) in shop.table(history).iter() {
                if !seen.insert(id) {
                    continue;
                }
                let entity = shop
                    .get(row, "entityName")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let state = shop
                    .get_id(row, "toStateId")
                    .and_then(|s| shop.table(states).get(s))
                    .and_then(|s| shop.get(s, "technicalName"))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned();
                let Some(referenced) = shop.get_id(row, "referencedId") else {
                    continue;
                };
                let order = if entity == "order" {
                    Some(referenced)
                } else {
                    entities::index_of(&entity)
                        .and_then(|e| shop.table(e).get(referenced))
                        .and_then(|r| shop.get_id(r, "orderId"))
                };
                if let Some(order) = order {
                    events.push((format!("state_enter.{entity}.state.{state}"), order.hex()));
                }
            }
        }
        for (event, order) in events {
            if let Some(order) = render_order(app, &order) {
                Apps::dispatch(app, &event, json!({ "order": order }));
            }
        }
    }

    /// Queues the event for every active app with a webhook for it that may see its data.
    fn dispatch(app: &App, event: &str, payload: Value) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                event,
                "No runtime to send webhooks from; the event is dropped."
            );
            return;
        };
        let installed = lock(&app.apps.installed).clone();
        for target in installed {
            if !allowed(event, &target.privileges) {
                tracing::debug!(app = %target.name, event, "The app may not read this event's data; not sent.");
                continue;
            }
            for webhook in target.webhooks.iter().filter(|w| w.event == event) {
                let message = Message {
                    app: target.clone(),
                    url: webhook.url.clone(),
                    event: event.to_owned(),
                    event_id: Id::random(&mut rand::rng()).hex(),
                    payload: payload.clone(),
                    retries: MAX_RETRIES,
                };
                runtime.spawn(deliver(app.clone(), message));
            }
        }
    }
}

/// `HookableBusinessEvent::isAllowed`: the app's role must read the event's entities (order
/// events carry an `order`); lifecycle events go to their own app.
fn allowed(event: &str, privileges: &BTreeSet<String>) -> bool {
    if event.starts_with("app.") {
        return true;
    }
    let entity = if event == "checkout.order.placed" || event.starts_with("state_enter.") {
        "order".to_owned()
    } else {
        event.split('.').next().unwrap_or_default().to_owned()
    };
    privileges.contains(&format!("{entity}:read"))
}

fn render_order(app: &App, order: &str) -> Option<Value> {
    let id = Id::parse(order)?;
    let shop = app.shop_read();
    let e = Shop::entity_index("order");
    shop.table(e).get(id)?;
    let criteria = crate::criteria::Criteria::parse(
        &shop,
        e,
        &json!({ "associations": storefront::order_associations() }),
    )
    .ok()?;
    let view = crate::read::View {
        inheritance: false,
        root: &criteria,
    };
    Some(shop.render(&view, e, id, &criteria))
}

struct Message {
    app: Installed,
    url: String,
    event: String,
    event_id: String,
    payload: Value,
    retries: u32,
}

/// `WebhookDispatcher::getPayloadForWebhook` with the handler's `timestamp`, in PHP's key
/// order.
fn body(app: &App, message: &Message, timestamp: i64) -> String {
    let text = |v: &str| php_json(&Value::String(v.to_owned()));
    format!(
        "{{\"data\":{{\"payload\":{},\"event\":{}}},\"source\":{{\"url\":{},\"eventId\":{},\"shopId\":{},\"appVersion\":{}}},\"timestamp\":{timestamp}}}",
        php_json(&message.payload),
        text(&message.event),
        text(&Apps::shop_url(app)),
        text(&message.event_id),
        text(&app.apps.shop_id),
        text(&message.app.version),
    )
}

/// Sends one message, retrying as the message queue does.
async fn deliver(app: App, message: Message) {
    let apps = &app.apps;
    for attempt in 1..=message.retries + 1 {
        let timestamp = now_millis() / 1000;
        let body = body(&app, &message, timestamp);
        let secret = lock(&apps.forged_secret)
            .clone()
            .unwrap_or_else(|| message.app.app_secret.clone());
        let mut request = apps
            .client
            .post(&message.url)
            .header("content-type", "application/json")
            .header("sw-version", app.version.full())
            .header(SHOP_SIGNATURE, hmac_hex(&secret, body.as_bytes()));
        if app.version >= Version::V6_5 {
            request = request
                .header("sw-context-language", SYSTEM_LANGUAGE)
                .header("sw-user-language", "en-GB");
        }
        let (status, error) = match request.body(body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let error = (!(200..300).contains(&status)).then_some(text);
                (Some(status), error)
            }
            Err(error) => (None, Some(error.to_string())),
        };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        let delivery = Delivery {
            app: message.app.name.clone(),
            event: message.event.clone(),
            event_id: message.event_id.clone(),
            order_id: message
                .payload
                .pointer("/order/id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            attempt,
            status,
            error,
            last: delivered || attempt > message.retries,
        };
        tracing::debug!(app = %delivery.app, event = %delivery.event, attempt, status = ?status, "Webhook sent.");
        lock(&apps.log).push(delivery.clone());
        let _ = apps.deliveries.send(delivery);
        if delivered {
            return;
        }
        if attempt <= message.retries {
            let delay = *lock(&apps.retry_delay) * 2u32.pow(attempt - 1);
            tokio::time::sleep(delay).await;
        }
    }
}

// --- The app's role -------------------------------------------------------------------------

/// Checks a request made with an app integration's token against the app's privileges, as
/// `AclCriteriaValidator` (reads) and `AclWriteValidator` (writes) do: 403
/// `FRAMEWORK__MISSING_PRIVILEGE_ERROR` naming every privilege missing. Requests with other
/// tokens (the shop's own integration, an admin) pass.
pub async fn acl(State(app): State<App>, request: Request, next: Next) -> Response {
    if lock(&app.apps.installed).is_empty() {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let subject = app
        .auth
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .subject(header.as_deref());
    let Some(privileges) = subject.and_then(|subject| {
        lock(&app.apps.installed)
            .iter()
            .find(|a| a.access_key == subject)
            .map(|a| a.privileges.clone())
    }) else {
        return next.run(request).await;
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return next
            .run(Request::from_parts(parts, axum::body::Body::empty()))
            .await;
    };
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let needed = {
        let shop = app.shop_read();
        required(&shop, method.as_str(), &path, &json)
    };
    let missing: Vec<String> = needed
        .into_iter()
        .filter(|p| !privileges.contains(p))
        .collect();
    if !missing.is_empty() {
        tracing::info!(%path, ?missing, "An app's integration lacks privileges.");
        let detail =
            json!({"message": "Missing privilege", "missingPrivileges": missing}).to_string();
        return crate::errors::ApiError::new(403, "FRAMEWORK__MISSING_PRIVILEGE_ERROR", detail)
            .into_response();
    }
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The privileges a request needs (`entity:read|create|update|delete`), sorted.
fn required(shop: &Shop, method: &str, path: &str, body: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let segments: Vec<&str> = path.trim_start_matches("/api/").split('/').collect();
    let entity_of = |segment: &str| entities::from_segment(segment).map(entities::def);
    match (method, segments.as_slice()) {
        ("POST", ["search" | "search-ids", entity]) => {
            if let Some(def) = entity_of(entity) {
                criteria_reads(def, body, &mut out);
            }
        }
        ("POST", ["_action", "sync"]) => {
            let operations: Vec<&Value> = match body {
                Value::Object(map) => map.values().collect(),
                Value::Array(list) => list.iter().collect(),
                _ => Vec::new(),
            };
            for operation in operations {
                let Some(def) = operation
                    .get("entity")
                    .and_then(Value::as_str)
                    .and_then(entities::index_of)
                    .map(entities::def)
                else {
                    continue;
                };
                let rows = operation
                    .get("payload")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                match operation.get("action").and_then(Value::as_str) {
                    Some("delete") => {
                        out.insert(format!("{}:delete", def.name));
                    }
                    _ => {
                        for row in &rows {
                            writes(shop, def, row, &mut out);
                        }
                    }
                }
            }
        }
        ("GET", [entity, ..]) if !entity.starts_with('_') => {
            if let Some(def) = entity_of(entity) {
                out.insert(format!("{}:read", def.name));
            }
        }
        ("POST", [entity]) | ("PATCH", [entity, _]) if !entity.starts_with('_') => {
            if let Some(def) = entity_of(entity) {
                let mut row = body.clone();
                if let (Some(id), Value::Object(map)) = (segments.get(1), &mut row) {
                    map.insert("id".into(), Value::String((*id).to_owned()));
                }
                writes(shop, def, &row, &mut out);
            }
        }
        ("DELETE", [entity, _]) if !entity.starts_with('_') => {
            if let Some(def) = entity_of(entity) {
                out.insert(format!("{}:delete", def.name));
            }
        }
        // Transitions run in the system scope (`StateMachineRegistry::transition`).
        _ => {}
    }
    out
}

/// `AclCriteriaValidator::validate`: read on the entity, on every association's target
/// (the other side of a many-to-many) and on every association a filter, sorting or
/// aggregation path walks through.
fn criteria_reads(def: &'static entities::EntityDef, criteria: &Value, out: &mut BTreeSet<String>) {
    out.insert(format!("{}:read", def.name));
    if let Some(Value::Object(associations)) = criteria.get("associations") {
        for (name, nested) in associations {
            if let Some(target) = def
                .assoc(name)
                .and_then(|a| entities::index_of(a.target))
                .map(entities::def)
            {
                criteria_reads(target, nested, out);
            }
        }
    }
    let mut fields = Vec::new();
    for key in ["filter", "post-filter", "sort", "aggregations", "query"] {
        if let Some(value) = criteria.get(key) {
            field_paths(value, &mut fields);
        }
    }
    for path in fields {
        let mut current = def;
        let mut parts: Vec<&str> = path.split('.').collect();
        if parts.first() == Some(&def.name) {
            parts.remove(0);
        }
        for part in parts {
            let Some(target) = current
                .assoc(part)
                .and_then(|a| entities::index_of(a.target))
                .map(entities::def)
            else {
                break;
            };
            out.insert(format!("{}:read", target.name));
            current = target;
        }
    }
}

/// Every `field` in filters, sortings and aggregations, nested ones included.
fn field_paths(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| field_paths(v, out)),
        Value::Object(map) => {
            if let Some(field) = map.get("field").and_then(Value::as_str) {
                out.push(field.to_owned());
            }
            for (key, nested) in map {
                if key != "field" {
                    field_paths(nested, out);
                }
            }
        }
        _ => {}
    }
}

/// `WriteCommandExtractor`: one command per row written, an update when its id exists and a
/// create otherwise (a mapping row is always a create, "replace into"), translations under
/// their parent's; nested rows through associations each their own, except a many-to-many
/// item that names only the id (then only the mapping row is written).
fn writes(shop: &Shop, def: &'static entities::EntityDef, row: &Value, out: &mut BTreeSet<String>) {
    let Value::Object(map) = row else {
        return;
    };
    let index = entities::index_of(def.name).unwrap_or(0);
    let exists = def.mapping.is_none()
        && map
            .get("id")
            .and_then(Value::as_str)
            .and_then(Id::parse)
            .is_some_and(|id| shop.table(index).get(id).is_some());
    out.insert(format!(
        "{}:{}",
        def.name,
        if exists { "update" } else { "create" }
    ));
    for (key, value) in map {
        let Some(assoc) = def.assoc(key) else {
            continue;
        };
        let Some(target) = entities::index_of(assoc.target).map(entities::def) else {
            continue;
        };
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            Value::Object(_) => vec![value],
            _ => Vec::new(),
        };
        for item in items {
            match assoc.kind {
                entities::Kind::ManyToMany { mapping, .. } => {
                    out.insert(format!("{mapping}:create"));
                    let link_only = item
                        .as_object()
                        .is_some_and(|o| o.len() == 1 && o.contains_key("id"));
                    if !link_only {
                        writes(shop, target, item, out);
                    }
                }
                _ => writes(shop, target, item, out),
            }
        }
    }
}

/// Runs after every request to the simulator: states entered by it become webhooks.
pub async fn after_request(State(app): State<App>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    Apps::pump(&app);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_as_guzzle_appends_them() {
        let (url, query) = with_query_values(
            "https://app.example/register?tenant=a b&shop-id=old",
            &[
                ("shop-id", "AbC123"),
                ("shop-url", "http://127.0.0.1:8000"),
                ("timestamp", "1700000000"),
            ],
        );
        assert_eq!(
            query,
            "tenant=a%20b&shop-id=AbC123&shop-url=http://127.0.0.1:8000&timestamp=1700000000"
        );
        assert_eq!(url, format!("https://app.example/register?{query}"));
    }

    #[test]
    fn php_json_escapes_slashes_and_non_ascii() {
        assert_eq!(
            php_json(&json!({"url": "http://x/y", "name": "Zoë"})),
            r#"{"name":"Zo\u00eb","url":"http:\/\/x\/y"}"#
        );
    }

    #[test]
    fn reads_a_manifest_like_shopware() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<manifest xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <meta>
        <name>MyApp</name><label>My app</label><author>me</author>
        <copyright>(c) me</copyright><version>1.0.0</version><license>MIT</license>
    </meta>
    <setup>
        <registrationUrl>https://app.example/register</registrationUrl>
        <secret>s&amp;cret</secret>
    </setup>
    <permissions><update>order</update><read>product</read></permissions>
    <webhooks>
        <webhook name="placed" url="https://app.example/hook" event="checkout.order.placed"/>
    </webhooks>
</manifest>"#;
        let manifest = AppManifest::parse(xml, Version::V6_4).expect("valid");
        assert_eq!(manifest.name, "MyApp");
        assert_eq!(manifest.setup_secret.as_deref(), Some("s&cret"));
        assert!(
            manifest.privileges.contains("order:read"),
            "update implies read"
        );
        assert!(manifest.privileges.contains("order:update"));
        assert_eq!(manifest.webhooks.len(), 1);
        assert!(allowed("checkout.order.placed", &manifest.privileges));

        let no_author = xml.replace("<author>me</author>", "");
        assert!(
            AppManifest::parse(&no_author, Version::V6_6)
                .expect_err("author")
                .contains("author")
        );
        let compatibility = xml.replace(
            "<license>",
            "<compatibility>~6.5.0</compatibility><license>",
        );
        assert!(
            AppManifest::parse(&compatibility, Version::V6_4).is_err(),
            "6.4's schema"
        );
        assert!(AppManifest::parse(&compatibility, Version::V6_5).is_ok());
    }
}
