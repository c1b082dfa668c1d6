//! Who is asking: a token (`Authorization: Bearer …`, or the dashboard's `koppel_token`
//! cookie) opens exactly one tenant. Requests that change something with the cookie must
//! also carry `X-Koppel-Csrf` (which a page of another site cannot set).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::{ServerState, TenantState};

pub const COOKIE: &str = "koppel_token";
pub const CSRF_HEADER: &str = "x-koppel-csrf";

/// An error as the API answers it: `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, what)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"koppel\""),
            );
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::error!(%error, "State database error in a request.");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the state database could not answer; see the server log",
        )
    }
}

/// The token of `Authorization: Bearer …`.
pub(super) fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?
        .trim();
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .unwrap_or(value);
    Some(token.trim().to_owned())
}

/// The token of a request and whether it came from the cookie.
fn token_of(headers: &HeaderMap) -> Option<(String, bool)> {
    if let Some(token) = bearer_token(headers) {
        return Some((token, false));
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| (value.to_owned(), true))
}

fn tenant_of(parts: &Parts, state: &ServerState) -> Result<Arc<TenantState>, ApiError> {
    let Some((token, from_cookie)) = token_of(&parts.headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "a token is needed: send `Authorization: Bearer <token>`",
        ));
    };
    let Some(tenant) = state.tenant_of_token(&token) else {
        let message = if state.is_operator_token(&token) {
            "an operator token opens the operator API (/api/v1/admin) only, not a tenant's"
        } else {
            "the token is not valid"
        };
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, message));
    };
    let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    if from_cookie && !safe && !parts.headers.contains_key(CSRF_HEADER) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "a change made with the dashboard's cookie needs the X-Koppel-Csrf header",
        ));
    }
    Ok(tenant)
}

/// The tenant of an API request (401 without a valid token).
pub struct Tenant(pub Arc<TenantState>);

impl FromRequestParts<Arc<ServerState>> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, Self::Rejection> {
        tenant_of(parts, state).map(Tenant)
    }
}

/// The tenant of a dashboard page (to the login page without a valid token).
pub struct PageTenant(pub Arc<TenantState>);

impl FromRequestParts<Arc<ServerState>> for PageTenant {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, Self::Rejection> {
        tenant_of(parts, state)
            .map(PageTenant)
            .map_err(|_| Redirect::to("/login").into_response())
    }
}
