//! The operator API, under `/api/v1/admin`: the tenants a hosting koppel runs, listed with
//! their health, created or changed (a tenant file's text), paused, resumed, deleted, and
//! their API tokens issued. It opens with an operator token (`[hosting] operator_tokens`)
//! only; a tenant's token is refused. What it acts on is a [`TenantAdmin`] (the hosting
//! supervisor), so this module knows the HTTP side alone.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::ServerState;
use super::api::flow_views;
use super::auth::{ApiError, bearer_token};
use crate::config::LoadError;
use crate::runtime::Quota;

/// What the operator API acts on.
#[async_trait::async_trait]
pub trait TenantAdmin: Send + Sync {
    /// Every tenant known: running, paused, or refused (its file has a problem).
    async fn list(&self) -> Vec<TenantEntry>;
    /// Creates or replaces tenant `name` with the text of its file, checked before it is
    /// written; the tenant (re)starts at once.
    async fn put(&self, name: &str, text: &str) -> Result<PutOutcome, AdminError>;
    /// Stops tenant `name` and removes its file. False when there is no such tenant.
    async fn delete(&self, name: &str) -> Result<bool, AdminError>;
    /// Pauses (no runs; its dashboard stays) or resumes tenant `name`. False when there is
    /// no such tenant.
    async fn set_paused(&self, name: &str, paused: bool) -> Result<bool, AdminError>;
    /// A new API token of tenant `name`, stored as a hash (None: no such tenant).
    async fn issue_token(&self, name: &str) -> Result<Option<String>, AdminError>;
}

/// A tenant as the operator sees it.
#[derive(Clone, Debug, Serialize)]
pub struct TenantEntry {
    pub tenant: String,
    /// Its file in the tenants folder.
    pub file: String,
    /// `running`, `paused` or `refused`.
    pub state: &'static str,
    /// Why its file was refused (the version before it, if any, keeps running).
    pub problem: Option<Problem>,
}

/// A problem in a tenant file: the file, the key and what is wrong.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub file: String,
    pub key: String,
    pub message: String,
}

impl From<&LoadError> for Problem {
    fn from(error: &LoadError) -> Problem {
        Problem {
            file: error.file.clone(),
            key: error.key.clone(),
            message: error.message.clone(),
        }
    }
}

/// What a `put` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PutOutcome {
    Created,
    Updated,
    Unchanged,
}

/// Why the operator API could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Refused(LoadError),
    #[error("{0}")]
    BadName(String),
    #[error("{0}")]
    Failed(String),
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> ApiError {
        match error {
            AdminError::Refused(error) => ApiError::bad_request(error.to_string()),
            AdminError::BadName(message) => ApiError::bad_request(message),
            AdminError::Failed(message) => {
                tracing::error!(%message, "The operator API could not act.");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
            }
        }
    }
}

/// A request of the operator: its token is an operator token.
struct Operator(Arc<dyn TenantAdmin>);

impl FromRequestParts<Arc<ServerState>> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ServerState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(admin) = state.admin() else {
            return Err(ApiError::not_found(
                "there is no operator API here: it needs [hosting] tenants and operator_tokens",
            ));
        };
        let Some(token) = bearer_token(&parts.headers) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "an operator token is needed: send `Authorization: Bearer <token>`",
            ));
        };
        if state.is_operator_token(&token) {
            return Ok(Operator(admin));
        }
        if state.tenant_of_token(&token).is_some() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "a tenant's token does not open the operator API",
            ));
        }
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "the operator token is not valid",
        ))
    }
}

pub(super) fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/tenants", get(list))
        .route("/tenants/{name}", get(one).put(put).delete(delete))
        .route("/tenants/{name}/pause", post(pause))
        .route("/tenants/{name}/resume", post(resume))
        .route("/tenants/{name}/tokens", post(issue_token))
}

type ApiResult<T> = Result<T, ApiError>;

/// A tenant with its health: its flows' last runs, what fails and what is stale.
async fn with_health(state: &ServerState, entry: TenantEntry) -> ApiResult<Value> {
    let mut out = serde_json::to_value(&entry).unwrap_or_default();
    let Some(tenant) = state.tenant(&entry.tenant) else {
        out["healthy"] = json!(false);
        out["flows"] = json!([]);
        return Ok(out);
    };
    let views = flow_views(&tenant).await?;
    let flows: Vec<Value> = views
        .iter()
        .map(|v| {
            json!({
                "name": v.name,
                "enabled": v.enabled,
                "last_status": v.last_run.as_ref().map(|r| r.status),
                "last_error": v.last_run.as_ref().and_then(|r| r.error.clone()),
                "stale": v.stale,
                "failed_waiting": v.failed_waiting,
                "incidents": v.incidents.len(),
            })
        })
        .collect();
    let failing = views.iter().any(|v| {
        v.stale
            || !v.incidents.is_empty()
            || v.last_run
                .as_ref()
                .is_some_and(|r| r.status == crate::store::RunStatus::Failed)
    });
    out["healthy"] = json!(entry.state == "running" && entry.problem.is_none() && !failing);
    out["flows"] = Value::Array(flows);
    let quota = &tenant.env.quota;
    out["quotas"] = Value::Object(
        Quota::ALL
            .iter()
            .map(|q| {
                let limit = quota.limit(*q);
                let used = limit.map(|_| quota.used(*q));
                (
                    q.name().to_owned(),
                    json!({ "limit": limit, "used": used, "hits": quota.hits(*q) }),
                )
            })
            .collect(),
    );
    Ok(out)
}

async fn list(
    State(state): State<Arc<ServerState>>,
    Operator(admin): Operator,
) -> ApiResult<Json<Vec<Value>>> {
    let mut out = Vec::new();
    for entry in admin.list().await {
        out.push(with_health(&state, entry).await?);
    }
    Ok(Json(out))
}

async fn find(admin: &dyn TenantAdmin, name: &str) -> ApiResult<TenantEntry> {
    admin
        .list()
        .await
        .into_iter()
        .find(|e| e.tenant == name)
        .ok_or_else(|| ApiError::not_found(format!("no tenant `{name}`")))
}

async fn one(
    State(state): State<Arc<ServerState>>,
    Operator(admin): Operator,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let entry = find(admin.as_ref(), &name).await?;
    with_health(&state, entry).await.map(Json)
}

/// `PUT /tenants/{name}` with the tenant file's text (TOML) as the body.
async fn put(
    Operator(admin): Operator,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let text = std::str::from_utf8(&body).map_err(|_| {
        ApiError::bad_request("the body must be the tenant file's text (UTF-8 TOML)")
    })?;
    let outcome = admin.put(&name, text).await?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(json!({ "tenant": name, "outcome": outcome }))))
}

async fn delete(Operator(admin): Operator, Path(name): Path<String>) -> ApiResult<StatusCode> {
    match admin.delete(&name).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found(format!("no tenant `{name}`"))),
    }
}

async fn set_paused(admin: &dyn TenantAdmin, name: &str, paused: bool) -> ApiResult<Json<Value>> {
    match admin.set_paused(name, paused).await? {
        true => Ok(Json(json!({ "tenant": name, "paused": paused }))),
        false => Err(ApiError::not_found(format!("no tenant `{name}`"))),
    }
}

async fn pause(Operator(admin): Operator, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    set_paused(admin.as_ref(), &name, true).await
}

async fn resume(Operator(admin): Operator, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    set_paused(admin.as_ref(), &name, false).await
}

/// `POST /tenants/{name}/tokens`: a new token of the tenant, in the answer only (it is
/// stored as a hash).
async fn issue_token(
    Operator(admin): Operator,
    Path(name): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    match admin.issue_token(&name).await? {
        Some(token) => Ok((
            StatusCode::CREATED,
            Json(json!({ "tenant": name, "token": token })),
        )),
        None => Err(ApiError::not_found(format!("no tenant `{name}`"))),
    }
}
