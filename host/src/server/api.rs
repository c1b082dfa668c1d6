//! The JSON API under `/api/v1`. Every handler takes the [`Tenant`] of the token and asks the
//! store only about that tenant: another tenant's rows answer 404, as if they did not exist.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::auth::{ApiError, Tenant};
use super::{ServerState, TenantState};
use crate::config::parse_duration;
use crate::flow::definition::Endpoint;
use crate::runtime::ConnectionSpec;
use crate::runtime::bindings::ConfigKind;
use crate::store::{
    ActivityFilter, FailedRecord, FlowOverrideRow, Incident, RecordFilter, Run, now_ms,
};

pub(super) fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/connections", get(connections))
        .route("/connections/{name}/check", post(check_connection))
        .route("/flows", get(flows))
        .route("/flows/{flow}", get(flow).patch(change_flow))
        .route("/flows/{flow}/run", post(run_now))
        .route("/flows/{flow}/records/{key}", get(record_history))
        .route("/runs", get(runs))
        .route("/runs/{id}", get(run))
        .route("/runs/{id}/records", get(run_records))
        .route("/activity", get(activity))
        .route("/activity/{id}", get(activity_entry))
        .route("/failed", get(failed))
        .route("/failed/{flow}/{key}/retry", post(retry_failed))
        .route("/failed/{flow}/{key}/dismiss", post(dismiss_failed))
        .route("/incidents", get(incidents))
        .route("/retention", get(retention))
}

type ApiResult<T> = Result<T, ApiError>;

// ---- connections ------------------------------------------------------------------------

/// A connection as shown: secrets as set or not set, never their value.
#[derive(Debug, Serialize)]
pub(super) struct ConnectionView {
    pub name: String,
    pub connector: String,
    pub version: String,
    pub config: BTreeMap<String, Value>,
}

pub(super) fn connection_views(tenant: &TenantState) -> Vec<ConnectionView> {
    tenant
        .env
        .connections
        .iter()
        .map(|(name, setup)| {
            let manifest = setup.connector.manifest();
            let awaited = setup.supplied.awaited();
            let mut config = BTreeMap::new();
            for field in &manifest.config {
                let value = setup.config.get(&field.name);
                let shown = if awaited.contains(&field.name) {
                    Value::String(if setup.supplied.is_complete() {
                        "<set by the shop's app registration>".into()
                    } else {
                        "<not set: comes with the shop's app registration>".into()
                    })
                } else if field.kind == ConfigKind::Secret {
                    Value::String(if value.is_some_and(|v| !v.is_empty()) {
                        "<set>".into()
                    } else {
                        "<not set>".into()
                    })
                } else if crate::runtime::redact::is_sensitive_name(&field.name) {
                    Value::String(
                        if value.is_some() {
                            "<set>"
                        } else {
                            "<not set>"
                        }
                        .into(),
                    )
                } else {
                    value.map_or(Value::Null, |v| Value::String(v.clone()))
                };
                config.insert(field.name.clone(), shown);
            }
            ConnectionView {
                name: name.clone(),
                connector: manifest.id.clone(),
                version: manifest.version.clone(),
                config,
            }
        })
        .collect()
}

async fn connections(Tenant(tenant): Tenant) -> Json<Vec<ConnectionView>> {
    Json(connection_views(&tenant))
}

/// Runs the connector's `check` for a connection: `{ok, error}`.
pub(super) async fn check(tenant: &TenantState, name: &str) -> ApiResult<Value> {
    let Some(setup) = tenant.env.connections.get(name) else {
        return Err(ApiError::not_found(format!("no connection `{name}`")));
    };
    let config = match setup.config_now() {
        Ok(config) => config,
        Err(error) => {
            return Ok(json!({
                "connection": name, "ok": false, "error": error, "duration_ms": 0,
            }));
        }
    };
    let sink = tenant.env.activity.sink(None);
    let spec = ConnectionSpec {
        tenant: tenant.tenant.clone(),
        name: name.to_owned(),
        config,
        limits: setup.limits.clone(),
        activity: sink,
        kv: Arc::new(tenant.env.store.clone()),
        quota: tenant.env.quota.clone(),
    };
    let started = std::time::Instant::now();
    let result = match setup.connector.connect(spec) {
        Ok(connection) => {
            let limit = setup.limits.call_timeout + Duration::from_secs(5);
            match tokio::time::timeout(limit, connection.check()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(error)) => Err(connection.redact(&error.to_string())),
                Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
            }
        }
        Err(error) => Err(error.to_string()),
    };
    tenant.env.activity.flush().await;
    let duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(tenant = %tenant.tenant, connection = name, ok = result.is_ok(), duration_ms, "Connection checked.");
    Ok(match result {
        Ok(()) => json!({ "connection": name, "ok": true, "duration_ms": duration_ms }),
        Err(error) => {
            json!({ "connection": name, "ok": false, "error": error, "duration_ms": duration_ms })
        }
    })
}

async fn check_connection(
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    check(&tenant, &name).await.map(Json)
}

// ---- flows ------------------------------------------------------------------------------

/// A flow with its schedule and health.
#[derive(Debug, Serialize)]
pub(super) struct FlowView {
    pub name: String,
    pub description: String,
    pub source: Endpoint,
    pub target: Endpoint,
    pub enabled: bool,
    /// The interval in effect, in seconds.
    pub interval_secs: u64,
    /// The interval in `koppel.toml`.
    pub configured_interval: String,
    /// What the dashboard changed (null: as configured).
    #[serde(rename = "override")]
    pub overridden: FlowOverrideRow,
    pub last_run: Option<Run>,
    pub last_success: Option<Run>,
    /// Seconds since the last success ended (or since the first run started, if none did).
    pub lag_secs: Option<i64>,
    pub stale_after_secs: u64,
    pub stale: bool,
    pub failed_waiting: i64,
    pub incidents: Vec<Incident>,
}

pub(super) async fn flow_view(
    tenant: &TenantState,
    flow: &crate::flow::FlowDef,
    open: &[Incident],
) -> ApiResult<FlowView> {
    let store = tenant.store();
    let name = &flow.name;
    let overridden = store.flow_override(&tenant.tenant, name).await?;
    let configured = flow.interval();
    let last_run = store
        .runs(&tenant.tenant, Some(name), 1)
        .await?
        .into_iter()
        .next();
    let last_success = store.last_success(&tenant.tenant, name).await?;
    let since = match &last_success {
        Some(run) => Some(run.finished_at.unwrap_or(run.started_at)),
        None => store.first_run_started(&tenant.tenant, name).await?,
    };
    let now = now_ms();
    let lag_secs = since.map(|at| ((now - at) / 1000).max(0));
    let stale_after = flow.stale_after();
    Ok(FlowView {
        name: name.clone(),
        description: flow.description.clone(),
        source: flow.source.clone(),
        target: flow.target.clone(),
        enabled: overridden.enabled.unwrap_or(true),
        interval_secs: overridden.interval_secs.unwrap_or(configured.as_secs()),
        configured_interval: flow.interval.to_string(),
        overridden,
        stale: lag_secs.is_some_and(|lag| lag as u64 > stale_after.as_secs()),
        last_run,
        last_success,
        lag_secs,
        stale_after_secs: stale_after.as_secs(),
        failed_waiting: store.failed_waiting(&tenant.tenant, name).await?,
        incidents: open.iter().filter(|i| i.flow == *name).cloned().collect(),
    })
}

pub(super) async fn flow_views(tenant: &TenantState) -> ApiResult<Vec<FlowView>> {
    let open = tenant.store().incidents(&tenant.tenant, true, 500).await?;
    let mut views = Vec::new();
    for flow in &tenant.flows {
        views.push(flow_view(tenant, flow, &open).await?);
    }
    Ok(views)
}

async fn flows(Tenant(tenant): Tenant) -> ApiResult<Json<Vec<FlowView>>> {
    flow_views(&tenant).await.map(Json)
}

fn known_flow<'a>(tenant: &'a TenantState, name: &str) -> ApiResult<&'a crate::flow::FlowDef> {
    tenant
        .flow(name)
        .ok_or_else(|| ApiError::not_found(format!("no flow `{name}`")))
}

async fn flow(Tenant(tenant): Tenant, Path(name): Path<String>) -> ApiResult<Json<FlowView>> {
    let flow = known_flow(&tenant, &name)?;
    let open = tenant.store().incidents(&tenant.tenant, true, 500).await?;
    flow_view(&tenant, flow, &open).await.map(Json)
}

/// `PATCH /flows/{flow}` with `{"enabled": false}`, `{"interval": "5m"}` (or seconds);
/// `null` returns a field to what `koppel.toml` says.
async fn change_flow(
    Tenant(tenant): Tenant,
    Path(name): Path<String>,
    Json(body): Json<serde_json::Map<String, Value>>,
) -> ApiResult<Json<FlowView>> {
    let flow = known_flow(&tenant, &name)?;
    let store = tenant.store();
    let mut setting = store.flow_override(&tenant.tenant, &name).await?;
    for (key, value) in &body {
        match (key.as_str(), value) {
            ("enabled", Value::Null) => setting.enabled = None,
            ("enabled", Value::Bool(b)) => setting.enabled = Some(*b),
            ("interval", Value::Null) => setting.interval_secs = None,
            ("interval", Value::String(text)) => {
                let interval = parse_duration(text)
                    .map_err(|m| ApiError::bad_request(format!("interval: {m}")))?;
                setting.interval_secs = Some(interval.as_secs());
            }
            ("interval", Value::Number(n)) => match n.as_u64() {
                Some(secs) if secs > 0 => setting.interval_secs = Some(secs),
                _ => {
                    return Err(ApiError::bad_request(
                        "interval: a whole number of seconds above zero",
                    ));
                }
            },
            ("enabled" | "interval", _) => {
                return Err(ApiError::bad_request(format!(
                    "{key}: enabled takes true, false or null; interval takes \"5m\", seconds or null"
                )));
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "unknown field `{key}`; a flow takes `enabled` and `interval`"
                )));
            }
        }
    }
    store
        .set_flow_override(&tenant.tenant, &name, setting)
        .await?;
    tracing::info!(tenant = %tenant.tenant, flow = %name, enabled = ?setting.enabled, interval_secs = ?setting.interval_secs, "Flow schedule changed.");
    if let Some(control) = &tenant.control {
        control.settings_changed(&name);
    }
    let open = store.incidents(&tenant.tenant, true, 500).await?;
    flow_view(&tenant, flow, &open).await.map(Json)
}

/// Asks the schedule to run a flow now.
pub(super) fn start_run(tenant: &TenantState, name: &str) -> ApiResult<()> {
    known_flow(tenant, name)?;
    let Some(control) = &tenant.control else {
        if tenant.paused {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the operator paused this tenant: its flows do not run until it is resumed",
            ));
        }
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no schedule is running in this process (start koppel with `koppel run`)",
        ));
    };
    if !control.run_now(name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("flow `{name}` is not scheduled in this process"),
        ));
    }
    tracing::info!(tenant = %tenant.tenant, flow = name, "Run requested.");
    Ok(())
}

async fn run_now(Tenant(tenant): Tenant, Path(name): Path<String>) -> ApiResult<Response> {
    start_run(&tenant, &name)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "flow": name, "queued": true })),
    )
        .into_response())
}

// ---- runs and records -------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct RunsQuery {
    flow: Option<String>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
struct RunView {
    #[serde(flatten)]
    run: Run,
    duration_ms: Option<i64>,
}

fn run_view(run: Run) -> RunView {
    RunView {
        duration_ms: run.finished_at.map(|end| end - run.started_at),
        run,
    }
}

async fn runs(Tenant(tenant): Tenant, Query(q): Query<RunsQuery>) -> ApiResult<Json<Vec<RunView>>> {
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let runs = tenant
        .store()
        .runs(&tenant.tenant, q.flow.as_deref(), limit)
        .await?;
    Ok(Json(runs.into_iter().map(run_view).collect()))
}

async fn find_run(tenant: &TenantState, id: i64) -> ApiResult<Run> {
    tenant
        .store()
        .run(&tenant.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))
}

async fn run(Tenant(tenant): Tenant, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    let run = find_run(&tenant, id).await?;
    let outcomes: BTreeMap<String, i64> = tenant
        .store()
        .run_outcomes(&tenant.tenant, id)
        .await?
        .into_iter()
        .collect();
    let mut view = serde_json::to_value(run_view(run)).unwrap_or_default();
    view["records_kept"] = json!(outcomes);
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
pub(super) struct RecordsQuery {
    pub outcome: Option<String>,
    pub key: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

impl RecordsQuery {
    pub fn filter(&self) -> RecordFilter {
        RecordFilter {
            outcome: self.outcome.clone().filter(|o| !o.is_empty()),
            key: self.key.clone().filter(|k| !k.is_empty()),
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
            offset: self.offset.unwrap_or(0),
        }
    }
}

async fn run_records(
    Tenant(tenant): Tenant,
    Path(id): Path<i64>,
    Query(q): Query<RecordsQuery>,
) -> ApiResult<Json<Value>> {
    find_run(&tenant, id).await?;
    let records = tenant
        .store()
        .run_records_page(&tenant.tenant, id, &q.filter())
        .await?;
    Ok(Json(json!({ "run_id": id, "records": records })))
}

/// A payload as stored (JSON text) as a JSON value; a text that is not JSON stays text.
pub(super) fn payload(text: Option<&str>) -> Value {
    match text {
        None => Value::Null,
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
    }
}

/// A record's history with the payloads read and written.
pub(super) async fn history(tenant: &TenantState, flow: &str, key: &str) -> ApiResult<Value> {
    let rows = tenant
        .store()
        .record_history(&tenant.tenant, flow, key, 100)
        .await?;
    if rows.is_empty() {
        return Err(ApiError::not_found(format!(
            "no record `{key}` in flow `{flow}`"
        )));
    }
    let target = tenant.flow(flow).map(|f| f.target.connection.clone());
    let mut history = Vec::with_capacity(rows.len());
    for r in &rows {
        // The requests that carried this record to the target: exactly what was sent.
        let sent = match (&target, r.target.is_some()) {
            (Some(connection), true) => {
                tenant
                    .store()
                    .exchanges_carrying(&tenant.tenant, r.run_id, connection, key, 10)
                    .await?
            }
            _ => Vec::new(),
        };
        history.push(json!({
            "run_id": r.run_id,
            "outcome": r.outcome,
            "message": r.message,
            "field": r.field,
            "target_id": r.target_id,
            "at": r.at,
            "purged": r.source.is_none() && r.target.is_none(),
            "source": payload(r.source.as_deref()),
            "target": payload(r.target.as_deref()),
            "sent_in": sent.iter().map(|c| json!({
                "activity_id": c.id,
                "method": c.method,
                "url": tenant.masker.url(&c.url),
                "status": c.status,
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(json!({ "flow": flow, "key": key, "history": history }))
}

async fn record_history(
    Tenant(tenant): Tenant,
    Path((flow, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    history(&tenant, &flow, &key).await.map(Json)
}

// ---- activity ---------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
pub(super) struct ActivityQuery {
    pub run: Option<i64>,
    pub connection: Option<String>,
    #[serde(default)]
    pub errors: bool,
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

impl ActivityQuery {
    pub fn filter(&self) -> ActivityFilter {
        ActivityFilter {
            run_id: self.run,
            connection: self.connection.clone().filter(|c| !c.is_empty()),
            errors_only: self.errors,
            before: self.before,
            limit: self.limit.unwrap_or(100).clamp(1, 1000),
        }
    }
}

async fn activity(
    Tenant(tenant): Tenant,
    Query(q): Query<ActivityQuery>,
) -> ApiResult<Json<Value>> {
    let mut rows = tenant
        .store()
        .activity_page(&tenant.tenant, &q.filter())
        .await?;
    for row in &mut rows {
        row.url = tenant.masker.url(&row.url).into_owned();
    }
    let next = rows.last().map(|r| r.id);
    Ok(Json(json!({ "activity": rows, "next_before": next })))
}

/// One exchange with its (masked) bodies.
pub(super) async fn exchange(
    tenant: &TenantState,
    id: i64,
) -> ApiResult<crate::store::ActivityRow> {
    let mut row = tenant
        .store()
        .activity_entry(&tenant.tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no exchange {id}")))?;
    let m = &tenant.masker;
    row.url = m.url(&row.url).into_owned();
    row.request_body = row.request_body.map(|b| m.body(&b).into_owned());
    row.response_body = row.response_body.map(|b| m.body(&b).into_owned());
    Ok(row)
}

async fn activity_entry(
    Tenant(tenant): Tenant,
    Path(id): Path<i64>,
) -> ApiResult<Json<crate::store::ActivityRow>> {
    exchange(&tenant, id).await.map(Json)
}

// ---- failed records ---------------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct FailedQuery {
    flow: Option<String>,
    #[serde(default)]
    dismissed: bool,
}

async fn failed(
    Tenant(tenant): Tenant,
    Query(q): Query<FailedQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let rows: Vec<FailedRecord> = tenant
        .store()
        .failed_records(&tenant.tenant, q.flow.as_deref(), q.dismissed)
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| {
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                v["record"] = payload(Some(&r.record));
                v
            })
            .collect(),
    ))
}

/// Puts a failed record back in the queue and asks for a run of its flow.
pub(super) async fn retry(tenant: &TenantState, flow: &str, key: &str) -> ApiResult<Value> {
    if !tenant
        .store()
        .retry_failed(&tenant.tenant, flow, key)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "no failed record `{key}` in flow `{flow}`"
        )));
    }
    let run_started = start_run(tenant, flow).is_ok();
    tracing::info!(tenant = %tenant.tenant, flow, key, run_started, "Failed record queued for retry.");
    Ok(json!({ "flow": flow, "key": key, "retry": true, "run_started": run_started }))
}

async fn retry_failed(
    Tenant(tenant): Tenant,
    Path((flow, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let body = retry(&tenant, &flow, &key).await?;
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

async fn dismiss_failed(
    Tenant(tenant): Tenant,
    Path((flow, key)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    if !tenant
        .store()
        .dismiss_failed(&tenant.tenant, &flow, &key)
        .await?
    {
        return Err(ApiError::not_found(format!(
            "no failed record `{key}` in flow `{flow}`"
        )));
    }
    tracing::info!(tenant = %tenant.tenant, flow = %flow, key = %key, "Failed record dismissed.");
    Ok(Json(json!({ "flow": flow, "key": key, "dismissed": true })))
}

// ---- incidents and retention ------------------------------------------------------------

#[derive(Debug, Deserialize)]
struct IncidentsQuery {
    #[serde(default)]
    open: bool,
    limit: Option<u32>,
}

async fn incidents(
    Tenant(tenant): Tenant,
    Query(q): Query<IncidentsQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let store = tenant.store();
    let rows = store
        .incidents(
            &tenant.tenant,
            q.open,
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    let mut out = Vec::new();
    for incident in rows {
        let sent = store.notifications(&tenant.tenant, incident.id).await?;
        let mut v = serde_json::to_value(&incident).unwrap_or_default();
        v["notifications"] = serde_json::to_value(sent).unwrap_or_default();
        out.push(v);
    }
    Ok(Json(out))
}

async fn retention(Tenant(tenant): Tenant) -> ApiResult<Json<Value>> {
    let config = &tenant.retention;
    let purges = tenant.store().purges(&tenant.tenant, 20).await?;
    Ok(Json(json!({
        "keep_secs": config.keep().as_secs(),
        "every_secs": config.every().as_secs(),
        "mask_fields": config.mask_fields,
        "purges": purges,
    })))
}
