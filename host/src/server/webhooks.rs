//! Inbound webhooks: `POST /webhooks/{tenant}/{connection}`, configured per connection under
//! `[webhooks.<connection>]`. A call is accepted only with a valid HMAC-SHA256 signature and
//! a fresh timestamp; then the configured flows run at once (after a run in progress).
//! Replays inside the window are answered but start nothing. The connection's `scheme` says
//! how calls are signed:
//!
//! - `shopware` (Shopware's app system): `shopware-shop-signature` is the hex HMAC-SHA256 of
//!   the raw body keyed with the app's shop secret; the body's `timestamp` (unix seconds) must
//!   be within `max_age`; `source.eventId` identifies a delivery.
//! - `koppel` (see [`crate::signature`]): `X-Koppel-Timestamp` and
//!   `X-Koppel-Signature: sha256=<hex HMAC(secret, "<timestamp>.<body>")>`; the body's
//!   `event`, if any, names the event.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::auth::ApiError;
use super::{ServerState, TenantState, WebhookSetup};
use crate::config::WebhookScheme;
use crate::signature::{
    SHOPWARE_HEADER, SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER, verify_hex, verify_koppel,
};
use crate::store::now_ms;

pub(super) fn routes() -> Router<Arc<ServerState>> {
    Router::new().route("/webhooks/{tenant}/{connection}", post(receive))
}

/// A call for `connection`, checked as its scheme says.
async fn receive(
    State(state): State<Arc<ServerState>>,
    Path((tenant, connection)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (tenant, setup) = setup(&state, &tenant, &connection)?;
    match setup.scheme {
        WebhookScheme::Shopware => shopware(&tenant, &connection, &setup, &headers, &body).await,
        WebhookScheme::Koppel => koppel(&tenant, &connection, &setup, &headers, &body).await,
    }
}

fn refused(tenant: &str, source: &str, error: &SignatureError) -> ApiError {
    tracing::warn!(tenant, source, %error, "Webhook refused.");
    ApiError::new(StatusCode::UNAUTHORIZED, error.to_string())
}

fn setup(
    state: &ServerState,
    tenant: &str,
    connection: &str,
) -> Result<(Arc<TenantState>, WebhookSetup), ApiError> {
    let not_found = || {
        ApiError::not_found(format!(
            "no webhook for `{connection}` of tenant `{tenant}`"
        ))
    };
    let tenant = state.tenant(tenant).ok_or_else(not_found)?;
    let setup = tenant
        .webhooks
        .get(connection)
        .cloned()
        .ok_or_else(not_found)?;
    Ok((tenant, setup))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// A signed call that passed its checks: what it asks for and how to know it again.
pub(super) struct Delivery<'a> {
    /// The connection (or app) the call is about: for the log.
    pub source: &'a str,
    pub event: &'a str,
    /// Identifies a delivery (Shopware's `source.eventId`, else the signature); the same id
    /// within `ttl_secs` is answered as a replay.
    pub id: String,
    pub ttl_secs: i64,
}

/// Asks the schedule to run `flows` (those not disabled from the dashboard) for a delivery
/// of an `events` event. The delivery is remembered only once the schedule took the
/// request: a call answered 503 (no schedule, or one that is stopping) starts nothing and is
/// not remembered, so the sender's retry starts the flows.
pub(super) async fn start_flows(
    tenant: &TenantState,
    flows: &[String],
    events: &[String],
    delivery: Delivery<'_>,
) -> Result<Response, ApiError> {
    let Delivery {
        source,
        event,
        id,
        ttl_secs,
    } = delivery;
    let now = now_ms() / 1000;
    if tenant.seen_lately(&id, now) {
        tracing::debug!(tenant = %tenant.tenant, source, event, "Webhook replayed; ignored.");
        return Ok(duplicate());
    }
    if !events.is_empty() && !events.iter().any(|e| e == event) {
        tracing::debug!(tenant = %tenant.tenant, source, event, "Webhook event not handled.");
        return Ok(
            Json(json!({ "accepted": false, "reason": "event not handled" })).into_response(),
        );
    }
    let unavailable = || {
        tracing::warn!(tenant = %tenant.tenant, source, event, paused = tenant.paused, "Webhook answered 503: no schedule takes run requests.");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            if tenant.paused {
                "the operator paused this tenant; its flows read what changed meanwhile when it is resumed"
            } else {
                "no schedule takes run requests in this process now (koppel is starting or stopping); send it again"
            },
        )
    };
    let Some(control) = &tenant.control else {
        return Err(unavailable());
    };
    let mut started = Vec::new();
    for flow in flows {
        let setting = tenant.store().flow_override(&tenant.tenant, flow).await?;
        if setting.enabled == Some(false) {
            continue;
        }
        if !control.run_triggered(flow, "webhook") {
            return Err(unavailable());
        }
        started.push(flow.clone());
    }
    tenant.remember(id, now, ttl_secs);
    tracing::info!(tenant = %tenant.tenant, source, event, flows = ?started, "Webhook accepted.");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "accepted": true, "event": event, "flows": started })),
    )
        .into_response())
}

pub(super) fn duplicate() -> Response {
    Json(json!({ "accepted": false, "duplicate": true })).into_response()
}

async fn shopware(
    tenant: &TenantState,
    connection: &str,
    setup: &WebhookSetup,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let name = tenant.tenant.as_str();
    let signature = header(headers, SHOPWARE_HEADER)
        .ok_or_else(|| refused(name, connection, &SignatureError::Missing(SHOPWARE_HEADER)))?;
    if !verify_hex(setup.secret.as_bytes(), &[body], signature) {
        return Err(refused(name, connection, &SignatureError::Mismatch));
    }
    let payload: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
    let timestamp = payload
        .get("timestamp")
        .and_then(Value::as_i64)
        .ok_or_else(|| refused(name, connection, &SignatureError::BadTimestamp))?;
    // Seconds; a value in milliseconds is read as such.
    let timestamp = if timestamp > 100_000_000_000 {
        timestamp / 1000
    } else {
        timestamp
    };
    let now = now_ms() / 1000;
    let max = setup.max_age.as_secs() as i64;
    let age = (now - timestamp).abs();
    if age > max {
        return Err(refused(
            name,
            connection,
            &SignatureError::Stale {
                age_secs: age,
                max_secs: max,
            },
        ));
    }
    let id = payload
        .pointer("/source/eventId")
        .and_then(Value::as_str)
        .map_or_else(|| format!("sig:{signature}"), |id| format!("event:{id}"));
    let event = payload
        .pointer("/data/event")
        .and_then(Value::as_str)
        .unwrap_or("");
    let delivery = Delivery {
        source: connection,
        event,
        id: format!("{connection}/{id}"),
        ttl_secs: 2 * max,
    };
    start_flows(tenant, &setup.flows, &setup.events, delivery).await
}

async fn koppel(
    tenant: &TenantState,
    connection: &str,
    setup: &WebhookSetup,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let name = tenant.tenant.as_str();
    let now = now_ms() / 1000;
    let max = setup.max_age.as_secs() as i64;
    let signature = header(headers, SIGNATURE_HEADER);
    verify_koppel(
        setup.secret.as_bytes(),
        header(headers, TIMESTAMP_HEADER),
        signature,
        body,
        now,
        max,
    )
    .map_err(|e| refused(name, connection, &e))?;
    let event = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("event").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    let delivery = Delivery {
        source: connection,
        event: &event,
        id: format!("{connection}/{}", signature.unwrap_or_default()),
        ttl_secs: 2 * max,
    };
    start_flows(tenant, &setup.flows, &setup.events, delivery).await
}
