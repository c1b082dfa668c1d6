//! koppel as the backend of a Shopware app (`[shopware_app.<connection>]`), per tenant and
//! connection, as Shopware's app system speaks to one (`src/Core/Framework/App/Lifecycle/
//! Registration/*`, `src/Core/Framework/Webhook/*`):
//!
//! 1. **Register** — `GET /shopware/app/{tenant}/{connection}/register?shop-id=…&shop-url=…&timestamp=…`
//!    with `shopware-app-signature`: the hex HMAC-SHA256 of the raw query string keyed with
//!    the app secret (the manifest's `<setup><secret>`). koppel answers `proof` (the HMAC of
//!    shop id + shop URL + app name), a fresh shop `secret` and the `confirmation_url`.
//! 2. **Confirm** — `POST …/confirm` with `{apiKey, secretKey, timestamp, shopUrl, shopId}`,
//!    signed in `shopware-shop-signature` with the shop secret: the app integration's
//!    credentials, which the connection uses when `koppel.toml` leaves them out.
//! 3. **Events** — `POST …/event` (the manifest's webhook URL), signed with the shop secret:
//!    `checkout.order.placed`, `state_enter.order_transaction.state.paid`, … run the flows;
//!    `app.deleted` makes koppel forget the shop's secret and credentials.
//!
//! The shop secret and the credentials are kept sealed ([`crate::store::Sealer`]); neither
//! is ever logged.

pub mod manifest;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::RngCore;
use serde_json::{Value, json};

use super::auth::ApiError;
use super::webhooks::{Delivery, start_flows};
use super::{ServerState, TenantState};
use crate::flow::Supplied;
use crate::signature::{SHOPWARE_HEADER, SignatureError, hmac_hex, verify_hex};
use crate::store::{AppRegistration, Sealer, now_ms};

/// The header with the shop's signature of its registration request.
pub const APP_SIGNATURE_HEADER: &str = "shopware-app-signature";
pub const REGISTER: &str = "register";
pub const CONFIRM: &str = "confirm";
pub const EVENT: &str = "event";

/// What a path segment cannot hold as is.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The path of one of the app's endpoints.
pub fn path(tenant: &str, connection: &str, leaf: &str) -> String {
    let segment = |s: &str| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string();
    format!(
        "/shopware/app/{}/{}/{leaf}",
        segment(tenant),
        segment(connection)
    )
}

pub(super) fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route(
            "/shopware/app/{tenant}/{connection}/register",
            get(register),
        )
        .route("/shopware/app/{tenant}/{connection}/confirm", post(confirm))
        .route("/shopware/app/{tenant}/{connection}/event", post(event))
}

/// One connection served as a Shopware app, its app secret resolved.
pub struct AppSetup {
    pub connection: String,
    pub app_secret: String,
    pub name: String,
    pub flows: Vec<String>,
    pub events: Vec<String>,
    pub max_age: Duration,
    /// The connection's `shop_url` in `koppel.toml`: only that shop may register.
    pub shop_url: Option<String>,
    /// Where the credentials go once the shop confirms (shared with the environment).
    pub supplied: Supplied,
    sealer: Sealer,
}

impl std::fmt::Debug for AppSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSetup")
            .field("connection", &self.connection)
            .field("app_secret", &"<set>")
            .field("name", &self.name)
            .field("flows", &self.flows)
            .field("events", &self.events)
            .field("max_age", &self.max_age)
            .field("shop_url", &self.shop_url)
            .finish()
    }
}

impl AppSetup {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tenant: &str,
        connection: &str,
        app_secret: String,
        name: String,
        flows: Vec<String>,
        events: Vec<String>,
        max_age: Duration,
        shop_url: Option<String>,
        supplied: Supplied,
    ) -> AppSetup {
        AppSetup {
            sealer: Sealer::new(&app_secret, tenant, connection),
            connection: connection.to_owned(),
            app_secret,
            name,
            flows,
            events,
            max_age,
            shop_url,
            supplied,
        }
    }
}

fn refused(tenant: &str, connection: &str, step: &str, why: impl std::fmt::Display) -> ApiError {
    tracing::warn!(tenant, connection, step, error = %why, "Shopware app call refused.");
    ApiError::new(StatusCode::UNAUTHORIZED, why.to_string())
}

/// The tenant that serves `connection` as a Shopware app.
fn app_of(
    state: &ServerState,
    tenant: &str,
    connection: &str,
) -> Result<Arc<TenantState>, ApiError> {
    state
        .tenant(tenant)
        .filter(|t| t.apps.contains_key(connection))
        .ok_or_else(|| no_app(tenant, connection))
}

fn no_app(tenant: &str, connection: &str) -> ApiError {
    ApiError::not_found(format!(
        "no Shopware app for connection `{connection}` of tenant `{tenant}`"
    ))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks a unix timestamp in seconds (a number or its text) against `max_age`.
fn fresh(timestamp: Option<&Value>, max_age: Duration) -> Result<(), SignatureError> {
    let seconds = match timestamp {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or(SignatureError::BadTimestamp)?;
    let age = (now_ms() / 1000 - seconds).abs();
    let max = max_age.as_secs() as i64;
    if age > max {
        return Err(SignatureError::Stale {
            age_secs: age,
            max_secs: max,
        });
    }
    Ok(())
}

/// A URL's scheme, host, port and path, for comparing the shop's address with the one in
/// `koppel.toml` (`https://Shop.example:443/` equals `https://shop.example`).
fn normalized(url: &str) -> String {
    match url::Url::parse(url.trim()) {
        Ok(parsed) => format!(
            "{}://{}{}{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or_default().to_ascii_lowercase(),
            parsed.port().map(|p| format!(":{p}")).unwrap_or_default(),
            parsed.path().trim_end_matches('/')
        ),
        Err(_) => url.trim().trim_end_matches('/').to_ascii_lowercase(),
    }
}

/// Where the shop reaches koppel: `[server] public_url`, else the request's own host.
fn base_url(tenant: &TenantState, headers: &HeaderMap) -> String {
    if let Some(url) = &tenant.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    let scheme = header(headers, "x-forwarded-proto").unwrap_or("http");
    let host = header(headers, "x-forwarded-host")
        .or_else(|| header(headers, "host"))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Step 1: the shop asks to register; koppel proves it knows the app secret and hands the
/// shop a secret of its own.
async fn register(
    State(state): State<Arc<ServerState>>,
    Path((tenant, connection)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tenant = app_of(&state, &tenant, &connection)?;
    let app = tenant
        .apps
        .get(&connection)
        .ok_or_else(|| no_app(&tenant.tenant, &connection))?;
    let name = tenant.tenant.as_str();
    let query = query.unwrap_or_default();
    let signature = header(&headers, APP_SIGNATURE_HEADER).ok_or_else(|| {
        refused(
            name,
            &connection,
            REGISTER,
            SignatureError::Missing(APP_SIGNATURE_HEADER),
        )
    })?;
    // The signature covers the query string exactly as sent.
    if !verify_hex(app.app_secret.as_bytes(), &[query.as_bytes()], signature) {
        return Err(refused(
            name,
            &connection,
            REGISTER,
            "the signature does not match the query with the app secret; install the manifest koppel wrote for this connection",
        ));
    }
    let params: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let param = |key: &str| {
        params
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| ApiError::bad_request(format!("the query has no `{key}`")))
    };
    let shop_id = param("shop-id")?;
    let shop_url = param("shop-url")?;
    fresh(
        params.get("timestamp").map(|t| json!(t)).as_ref(),
        app.max_age,
    )
    .map_err(|e| refused(name, &connection, REGISTER, e))?;
    if let Some(configured) = &app.shop_url
        && normalized(configured) != normalized(&shop_url)
    {
        tracing::warn!(tenant = name, connection = %connection, shop_url = %shop_url, configured = %configured, "A shop with another address tried to register.");
        return Err(ApiError::bad_request(format!(
            "koppel serves the shop {configured} on this connection, not {shop_url}; install the app only in that shop (another shop needs a connection of its own)"
        )));
    }
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let shop_secret = hex::encode(secret);
    tenant
        .store()
        .register_app(
            name,
            &connection,
            &app.sealer,
            &shop_id,
            &shop_url,
            &shop_secret,
        )
        .await?;
    // A new installation has a new integration: the old credentials are gone.
    app.supplied.set(None);
    let proof = hmac_hex(
        app.app_secret.as_bytes(),
        &[shop_id.as_bytes(), shop_url.as_bytes(), app.name.as_bytes()],
    );
    let confirmation_url = format!(
        "{}{}",
        base_url(&tenant, &headers),
        path(name, &connection, CONFIRM)
    );
    tracing::info!(tenant = name, connection = %connection, shop_id = %shop_id, shop_url = %shop_url, "A shop registered the koppel app; its confirmation follows.");
    Ok(Json(json!({
        "proof": proof,
        "secret": shop_secret,
        "confirmation_url": confirmation_url,
    }))
    .into_response())
}

/// The connection's registration, for a call from `shop_id` (else 401).
async fn registration_of(
    tenant: &TenantState,
    app: &AppSetup,
    shop_id: &str,
    step: &str,
) -> Result<AppRegistration, ApiError> {
    let name = tenant.tenant.as_str();
    let registration = match tenant
        .store()
        .app_registration(name, &app.connection, &app.sealer)
        .await
    {
        Ok(registration) => registration,
        Err(error) => {
            tracing::warn!(tenant = name, connection = %app.connection, %error, "The shop's app registration is unusable.");
            None
        }
    };
    match registration {
        Some(registration) if registration.shop_id == shop_id => Ok(registration),
        _ => Err(refused(
            name,
            &app.connection,
            step,
            format!(
                "shop `{shop_id}` has not registered the app with koppel; install (or reinstall) the app in the shop"
            ),
        )),
    }
}

/// Reads a signed JSON body: the signature header, the JSON, the shop it names.
fn signed_body<'a>(
    tenant: &TenantState,
    app: &AppSetup,
    headers: &'a HeaderMap,
    body: &Bytes,
    step: &str,
    shop_pointer: &str,
) -> Result<(&'a str, Value, String), ApiError> {
    let signature = header(headers, SHOPWARE_HEADER).ok_or_else(|| {
        refused(
            &tenant.tenant,
            &app.connection,
            step,
            SignatureError::Missing(SHOPWARE_HEADER),
        )
    })?;
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let shop_id = payload
        .pointer(shop_pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "the body names no shop (`{}`)",
                shop_pointer.trim_start_matches('/').replace('/', ".")
            ))
        })?
        .to_owned();
    Ok((signature, payload, shop_id))
}

/// Step 2: the shop confirms, with its credentials for the app's integration.
async fn confirm(
    State(state): State<Arc<ServerState>>,
    Path((tenant, connection)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = app_of(&state, &tenant, &connection)?;
    let app = tenant
        .apps
        .get(&connection)
        .ok_or_else(|| no_app(&tenant.tenant, &connection))?;
    let name = tenant.tenant.as_str();
    let (signature, payload, shop_id) =
        signed_body(&tenant, app, &headers, &body, CONFIRM, "/shopId")?;
    let registration = registration_of(&tenant, app, &shop_id, CONFIRM).await?;
    if !verify_hex(registration.shop_secret.as_bytes(), &[&body], signature) {
        return Err(refused(
            name,
            &connection,
            CONFIRM,
            SignatureError::Mismatch,
        ));
    }
    fresh(payload.get("timestamp"), app.max_age)
        .map_err(|e| refused(name, &connection, CONFIRM, e))?;
    let text = |key: &str| {
        payload
            .get(key)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request(format!("the confirmation has no `{key}`")))
    };
    let credentials = BTreeMap::from([
        ("access_key_id".to_owned(), text("apiKey")?),
        ("secret_access_key".to_owned(), text("secretKey")?),
    ]);
    if !tenant
        .store()
        .confirm_app(name, &connection, &app.sealer, &shop_id, &credentials)
        .await?
    {
        return Err(refused(
            name,
            &connection,
            CONFIRM,
            "the registration changed meanwhile; install the app again",
        ));
    }
    app.supplied.set(Some(credentials));
    tracing::info!(tenant = name, connection = %connection, shop_id = %shop_id, "The shop confirmed the koppel app; the connection uses its integration.");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Step 3: a signed event from the registered shop.
async fn event(
    State(state): State<Arc<ServerState>>,
    Path((tenant, connection)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let tenant = app_of(&state, &tenant, &connection)?;
    let app = tenant
        .apps
        .get(&connection)
        .ok_or_else(|| no_app(&tenant.tenant, &connection))?;
    let name = tenant.tenant.as_str();
    let (signature, payload, shop_id) =
        signed_body(&tenant, app, &headers, &body, EVENT, "/source/shopId")?;
    let registration = registration_of(&tenant, app, &shop_id, EVENT).await?;
    if !verify_hex(registration.shop_secret.as_bytes(), &[&body], signature) {
        return Err(refused(name, &connection, EVENT, SignatureError::Mismatch));
    }
    fresh(payload.get("timestamp"), app.max_age)
        .map_err(|e| refused(name, &connection, EVENT, e))?;
    let event = payload
        .pointer("/data/event")
        .and_then(Value::as_str)
        .unwrap_or("");
    if event == manifest::APP_DELETED {
        tenant
            .store()
            .forget_app(name, &connection, &shop_id)
            .await?;
        app.supplied.set(None);
        tracing::info!(tenant = name, connection = %connection, shop_id = %shop_id, "The shop removed the koppel app; its secret and credentials are forgotten.");
        return Ok(Json(json!({ "accepted": true, "event": event })).into_response());
    }
    let id = payload
        .pointer("/source/eventId")
        .and_then(Value::as_str)
        .map_or_else(|| format!("sig:{signature}"), |id| format!("event:{id}"));
    let delivery = Delivery {
        source: "shopware-app",
        event,
        id: format!("shopware-app/{connection}/{id}"),
        ttl_secs: 2 * app.max_age.as_secs() as i64,
    };
    start_flows(&tenant, &app.flows, &app.events, delivery).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_addresses() {
        assert_eq!(
            path("shop-1", "my shop", REGISTER),
            "/shopware/app/shop-1/my%20shop/register"
        );
        assert_eq!(
            normalized("https://Shop.Example:443/"),
            normalized("https://shop.example")
        );
        assert_ne!(
            normalized("https://staging.shop.example"),
            normalized("https://shop.example")
        );
    }
}
