//! The axum router: Admin API routes, the bearer check, request counting, and (in
//! validation mode) the check of every request and response body against the version's
//! OpenAPI file. Faults wrap everything, so injected failures look like a real server's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use koppel_sim_faults::Faults;
use serde_json::{Value, json};

use crate::Version;
use crate::auth::Auth;
use crate::criteria::{self, Criteria};
use crate::entities::{self, Kind};
use crate::errors::{ApiError, ApiErrors};
use crate::ids::Id;
use crate::read::{View, resource};
use crate::schema::{Direction, Reference, Violation, list_schema};
use crate::shop::Shop;
use crate::sync::{self, SyncHeaders};
use crate::write::{Batch, Mode};

/// The largest request body accepted (sync batches can be big).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Everything a request handler reaches.
pub struct Inner {
    pub shop: RwLock<Shop>,
    pub auth: Mutex<Auth>,
    pub version: Version,
    pub validate: bool,
    pub reference: Option<Arc<Reference>>,
    pub counts: Mutex<BTreeMap<String, u64>>,
    pub violations: Mutex<Vec<Violation>>,
    /// Bodies checked against a schema, requests and responses.
    pub validated: Mutex<u64>,
    /// Bodies no schema checked, per `"request POST /api/oauth/token"` /
    /// `"response 200 GET /api/_info/version"`.
    pub unvalidated: Mutex<BTreeMap<String, u64>>,
    pub faults: Faults,
    pub base_url: RwLock<String>,
    /// Installed apps and the webhooks they receive.
    pub apps: crate::app::Apps,
    /// Time one synchronous indexing of written data takes (see `ShopwareOptions`).
    pub index_delay: std::time::Duration,
    /// Synchronous indexings of sync requests so far.
    pub indexings: std::sync::atomic::AtomicU64,
}

pub type App = Arc<Inner>;

impl Inner {
    pub fn shop_read(&self) -> std::sync::RwLockReadGuard<'_, Shop> {
        self.shop.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn shop_write(&self) -> std::sync::RwLockWriteGuard<'_, Shop> {
        self.shop.write().unwrap_or_else(|p| p.into_inner())
    }

    fn auth(&self) -> std::sync::MutexGuard<'_, Auth> {
        self.auth.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn base_url(&self) -> String {
        self.base_url.read().map(|b| b.clone()).unwrap_or_default()
    }
}

/// The whole router for one simulator.
pub fn router(app: App) -> Router {
    let api = Router::new()
        .route("/api/oauth/token", post(token))
        .route("/api/_info/version", get(info_version))
        .route("/api/_action/sync", post(sync_handler))
        .route(
            "/api/_action/{entity}/{id}/state/{transition}",
            post(transition),
        )
        .route(
            "/api/_action/state-machine/{entity}/{id}/state",
            get(machine_transitions),
        )
        .route(
            "/api/_action/state-machine/{entity}/{id}/state/{transition}",
            post(machine_transition),
        )
        .route("/api/search/{entity}", post(search))
        .route("/api/search-ids/{entity}", post(search_ids))
        .route("/api/{entity}", get(list).post(create))
        .route(
            "/api/{entity}/{id}",
            get(detail).patch(update).delete(remove),
        )
        .route("/api/{entity}/{id}/{association}", get(association_list))
        .route(
            "/api/{entity}/{id}/{association}/{foreign}",
            delete(association_delete),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(app.clone());
    let api = api
        .layer(middleware::from_fn_with_state(app.clone(), crate::app::acl))
        .layer(middleware::from_fn_with_state(app.clone(), authenticate))
        .layer(middleware::from_fn_with_state(app.clone(), validate));
    // Counted before faults: a throttled or dropped request was still received.
    app.faults
        .layer(api)
        .layer(middleware::from_fn_with_state(app.clone(), count))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            crate::app::after_request,
        ))
        .layer(middleware::from_fn(rate_limit_body))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

fn json_response(status: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn jsonapi_response(body: &Value) -> Response {
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.api+json"),
    );
    response
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// `Accept` decides the format: `application/json` gives plain JSON; JSON:API
/// (`application/vnd.api+json`) is the default, also for `*/*` or no header.
fn wants_jsonapi(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    for part in accept.split(',') {
        let media = part.split(';').next().unwrap_or("").trim();
        match media {
            "application/json" => return false,
            "application/vnd.api+json" => return true,
            _ => {}
        }
    }
    true
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|_| ApiError::malformed_json())
}

fn entity_of(segment: &str) -> Result<usize, ApiError> {
    entities::from_segment(segment)
        .ok_or_else(|| ApiError::definition_not_found(&segment.replace('-', "_")))
}

fn header_flag(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_ascii_lowercase())
}

// --- Middleware -----------------------------------------------------------------------------

/// A path as a route label: ids become `{id}`.
fn route_label(method: &Method, path: &str) -> String {
    let path: Vec<&str> = path
        .split('/')
        .map(|s| if Id::parse(s).is_some() { "{id}" } else { s })
        .collect();
    format!("{method} {}", path.join("/"))
}

async fn count(State(app): State<App>, request: Request, next: Next) -> Response {
    let label = route_label(request.method(), request.uri().path());
    *app.counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(label)
        .or_default() += 1;
    next.run(request).await
}

async fn authenticate(State(app): State<App>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if path == "/api/oauth/token" || !path.starts_with("/api/") {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Err(error) = app.auth().verify(header) {
        tracing::debug!(path, "Refused a request without a valid token.");
        return error.into_response();
    }
    next.run(request).await
}

/// Reshapes the 429 of the fault injector into Shopware's rate-limit error
/// (`FRAMEWORK__RATE_LIMIT_EXCEEDED`, `meta.parameters.seconds`), keeping `Retry-After`.
async fn rate_limit_body(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status() != StatusCode::TOO_MANY_REQUESTS {
        return response;
    }
    let seconds = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    let error = ApiError::new(
        429,
        "FRAMEWORK__RATE_LIMIT_EXCEEDED",
        format!("Too many requests, try again in {seconds} seconds."),
    )
    .with_parameters(json!({ "seconds": seconds }));
    let mut shaped = ApiErrors::from(error).into_response();
    shaped
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    shaped
}

async fn validate(State(app): State<App>, request: Request, next: Next) -> Response {
    let Some(reference) = app.reference.clone().filter(|_| app.validate) else {
        return next.run(request).await;
    };
    let method = request.method().to_string();
    let full_path = request.uri().path().to_string();
    let path = full_path
        .strip_prefix("/api")
        .unwrap_or(&full_path)
        .to_string();
    let (parts, body) = request.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(error) => {
            return ApiError::new(413, "0", format!("request body: {error}")).into_response();
        }
    };
    let label = route_label(&parts.method, &full_path);
    let mut found = Vec::new();
    let mut checked = 0u64;
    let mut unchecked = Vec::new();
    let request_json = serde_json::from_slice::<Value>(&body).ok();
    let request_schema = request_json
        .as_ref()
        .and_then(|json| request_schema(&reference, &method, &path, json))
        .filter(|schema| reference.validator(schema).is_some());
    if !body.iter().all(u8::is_ascii_whitespace) {
        if request_schema.is_some() {
            checked += 1;
        } else {
            unchecked.push(format!("request {label}"));
        }
    }
    if let (Some(json), Some(schema)) = (request_json, request_schema) {
        let json = match (&path[..], json) {
            ("/_action/sync", Value::Object(map)) => {
                Value::Array(map.into_iter().map(|(_, v)| v).collect())
            }
            (_, json) => json,
        };
        for problem in reference.check(&schema, &json) {
            found.push((
                Direction::Request,
                0,
                schema.clone(),
                problem.pointer,
                problem.message,
            ));
        }
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(json) => {
                let (problems, whole) =
                    response_problems(&reference, &method, &path, status, &content_type, &json);
                if whole {
                    checked += 1;
                } else {
                    unchecked.push(format!("response {status} {label}"));
                }
                for (schema, pointer, message) in problems {
                    found.push((Direction::Response, status, schema, pointer, message));
                }
            }
            Err(error) => found.push((
                Direction::Response,
                status,
                String::new(),
                String::new(),
                format!("body is not JSON: {error}"),
            )),
        }
    }
    *app.validated.lock().unwrap_or_else(|p| p.into_inner()) += checked;
    if !unchecked.is_empty() {
        let mut log = app.unvalidated.lock().unwrap_or_else(|p| p.into_inner());
        for key in unchecked {
            tracing::debug!(route = %key, "No schema checks this body.");
            *log.entry(key).or_default() += 1;
        }
    }
    if !found.is_empty() {
        let mut log = app.violations.lock().unwrap_or_else(|p| p.into_inner());
        for (direction, status, schema, instance_path, message) in found {
            if direction == Direction::Response {
                tracing::warn!(method = %method, path = %full_path, schema = %schema, at = %instance_path, %message, "Response breaks the OpenAPI schema.");
            } else {
                tracing::info!(method = %method, path = %full_path, schema = %schema, at = %instance_path, %message, "Request breaks the OpenAPI schema.");
            }
            log.push(Violation {
                direction,
                method: method.clone(),
                path: full_path.clone(),
                status,
                schema,
                instance_path,
                message,
            });
        }
    }
    Response::from_parts(parts, Body::from(body))
}

fn request_schema(reference: &Reference, method: &str, path: &str, body: &Value) -> Option<String> {
    if body.is_null() {
        return None;
    }
    if let Some(schema) = reference.request_schema(method, path) {
        return Some(schema);
    }
    let is_search = path.starts_with("/search/") || path.starts_with("/search-ids/");
    (is_search && reference.has_component("Criteria"))
        .then(|| "#/components/schemas/Criteria".to_string())
}

fn response_problems(
    reference: &Reference,
    method: &str,
    path: &str,
    status: u16,
    content_type: &str,
    body: &Value,
) -> (Vec<(String, String, String)>, bool) {
    let mut out = Vec::new();
    // Whether every part of the body met a schema the file has (and that compiles).
    let mut whole = true;
    let mut check = |schema: String, value: &Value, prefix: &str| {
        if reference.validator(&schema).is_none() {
            whole = false;
            return;
        }
        for problem in reference.check(&schema, value) {
            out.push((
                schema.clone(),
                format!("{prefix}{}", problem.pointer),
                problem.message,
            ));
        }
    };
    if status >= 400 && body.get("errors").is_some() {
        check("#/components/schemas/failure".into(), body, "");
        return (out, whole);
    }
    if content_type.starts_with("application/vnd.api+json") {
        check("#/components/schemas/success".into(), body, "");
        let mut resources: Vec<(String, &Value)> = Vec::new();
        match body.get("data") {
            Some(Value::Array(items)) => resources.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("/data/{i}"), r)),
            ),
            Some(item @ Value::Object(_)) => resources.push(("/data".into(), item)),
            _ => {}
        }
        if let Some(Value::Array(items)) = body.get("included") {
            resources.extend(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, r)| (format!("/included/{i}"), r)),
            );
        }
        for (at, item) in resources {
            let alias = item.get("type").and_then(Value::as_str).unwrap_or_default();
            let name = format!("{}JsonApi", entities::pascal(alias));
            check(format!("#/components/schemas/{name}"), item, &at);
        }
        return (out, whole);
    }
    if let Some(schema) = reference.response_schema(method, path, status, "application/json") {
        check(schema, body, "");
    } else if let Some(entity) = path
        .strip_prefix("/search/")
        .and_then(entities::from_segment)
    {
        let name = entities::def(entity).schema_name();
        check(list_schema(&name), body, "");
    } else {
        whole = false;
    }
    (out, whole)
}

// --- Handlers -------------------------------------------------------------------------------

async fn not_found(request: Request) -> Response {
    ApiError::route_not_found(request.uri().path()).into_response()
}

async fn method_not_allowed(request: Request) -> Response {
    ApiError::method_not_allowed(request.method().as_str(), request.uri().path()).into_response()
}

async fn token(State(app): State<App>, body: Bytes) -> Response {
    let body = match parse_body(&body) {
        Ok(Value::Null) => match std::str::from_utf8(&body) {
            Ok(_) => Value::Null,
            Err(_) => return ApiError::malformed_json().into_response(),
        },
        Ok(body) => body,
        Err(_) => form_body(&body).unwrap_or(Value::Null),
    };
    match app.auth().grant(&body) {
        Ok(answer) => json_response(200, &answer),
        Err(error) => error.into_response(),
    }
}

/// `application/x-www-form-urlencoded` token requests.
fn form_body(body: &Bytes) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    let map: serde_json::Map<String, Value> = text
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::String(v.replace('+', " "))))
        .collect();
    (!map.is_empty()).then_some(Value::Object(map))
}

async fn info_version(State(app): State<App>) -> Response {
    json_response(200, &json!({ "version": app.version.full() }))
}

async fn sync_handler(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let entries = match sync::parse_entries(&body) {
        Ok(entries) => entries,
        Err(error) => return error.into_response(),
    };
    // `filter_var(…, FILTER_VALIDATE_BOOLEAN)` with the defaults `true` and `false`.
    let flag = |name: &str, default: bool| {
        header_flag(&headers, name).map_or(default, |v| {
            matches!(v.as_str(), "1" | "true" | "on" | "yes")
        })
    };
    let sync_headers = SyncHeaders {
        fail_on_error: flag("fail-on-error", true),
        single_operation: flag("single-operation", false),
        indexing: header_flag(&headers, "indexing-behavior"),
    };
    let answer = {
        let mut shop = app.shop_write();
        sync::run(&mut shop, entries, &sync_headers)
    };
    app.indexings
        .fetch_add(answer.indexed as u64, std::sync::atomic::Ordering::Relaxed);
    // Indexing in the request takes its time (6.4: once per record), outside the lock.
    let delay = app.index_delay * u32::try_from(answer.indexed).unwrap_or(u32::MAX);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    tracing::debug!(
        status = answer.status,
        indexed = answer.indexed,
        "Sync handled."
    );
    json_response(answer.status, &answer.body)
}

async fn search(
    State(app): State<App>,
    Path(entity): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_search(&app, &entity, &headers, &body, false)
}

async fn search_ids(
    State(app): State<App>,
    Path(entity): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_search(&app, &entity, &headers, &body, true)
}

fn run_search(
    app: &App,
    segment: &str,
    headers: &HeaderMap,
    body: &Bytes,
    ids_only: bool,
) -> Response {
    let result = (|| -> Result<Response, ApiError> {
        let entity = entity_of(segment)?;
        let body = parse_body(body)?;
        let shop = app.shop_read();
        let mut criteria = Criteria::parse(&shop, entity, &body)?;
        criteria.cap_limit(shop.version)?;
        let hits = criteria::search(&shop, entity, &criteria, None);
        if ids_only {
            let ids: Vec<Value> = hits.ids.iter().map(|id| json!(id.hex())).collect();
            return Ok(json_response(
                200,
                &json!({ "total": hits.total, "data": ids }),
            ));
        }
        Ok(render_list(
            app, &shop, entity, &criteria, &hits.ids, hits.total, headers,
        ))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

fn render_list(
    app: &App,
    shop: &Shop,
    entity: usize,
    criteria: &Criteria,
    ids: &[Id],
    total: usize,
    headers: &HeaderMap,
) -> Response {
    let view = View {
        inheritance: header_flag(headers, "sw-inheritance")
            .is_some_and(|v| v == "1" || v == "true"),
        root: criteria,
    };
    let data: Vec<Value> = ids
        .iter()
        .map(|id| shop.render(&view, entity, *id, criteria))
        .collect();
    if wants_jsonapi(headers) {
        let base = app.base_url();
        let mut included = Vec::new();
        let mut seen = HashSet::new();
        let resources: Vec<Value> = data
            .iter()
            .map(|d| resource(d, &base, &mut included, &mut seen))
            .collect();
        let segment = entities::def(entity).name.replace('_', "-");
        return jsonapi_response(&json!({
            "data": resources,
            "included": included,
            "links": { "self": format!("{base}/api/search/{segment}") },
            "meta": { "totalCountMode": criteria.total_count_mode, "total": total },
        }));
    }
    json_response(
        200,
        &json!({ "total": total, "data": data, "aggregations": [] }),
    )
}

async fn list(
    State(app): State<App>,
    Path(segment): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let result = (|| -> Result<Response, ApiError> {
        let entity = entity_of(&segment)?;
        let shop = app.shop_read();
        let mut criteria = Criteria::from_query(&shop, entity, &query)?;
        criteria.cap_limit(shop.version)?;
        criteria.total_count_mode = 1;
        let hits = criteria::search(&shop, entity, &criteria, None);
        Ok(render_list(
            &app, &shop, entity, &criteria, &hits.ids, hits.total, &headers,
        ))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

fn render_one(app: &App, shop: &Shop, entity: usize, id: Id, headers: &HeaderMap) -> Response {
    let criteria = Criteria::default();
    let view = View {
        inheritance: header_flag(headers, "sw-inheritance")
            .is_some_and(|v| v == "1" || v == "true"),
        root: &criteria,
    };
    let data = shop.render(&view, entity, id, &criteria);
    if wants_jsonapi(headers) {
        let base = app.base_url();
        let mut included = Vec::new();
        let resource = resource(&data, &base, &mut included, &mut HashSet::new());
        return jsonapi_response(&json!({ "data": resource, "included": included }));
    }
    json_response(200, &json!({ "data": data }))
}

fn parse_id(entity: usize, text: &str) -> Result<Id, ApiError> {
    Id::parse(text).ok_or_else(|| ApiError::not_found(entities::def(entity).name, text))
}

async fn detail(
    State(app): State<App>,
    Path((segment, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = (|| -> Result<Response, ApiError> {
        let entity = entity_of(&segment)?;
        let id = parse_id(entity, &id)?;
        let shop = app.shop_read();
        if shop.table(entity).get(id).is_none() {
            return Err(ApiError::not_found(entities::def(entity).name, &id.hex()));
        }
        Ok(render_one(&app, &shop, entity, id, &headers))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Writes one entity in its own transaction.
fn write_one(shop: &mut Shop, entity: usize, body: &Value, mode: Mode) -> Result<Id, ApiErrors> {
    shop.store.begin();
    let mut batch = Batch::default();
    let id = shop.write(&mut batch, entity, body, mode, "/0", None);
    match (id, batch.errors.is_empty()) {
        (Some(id), true) => {
            shop.store.commit();
            Ok(id)
        }
        _ => {
            shop.store.rollback();
            let errors = batch.errors;
            Err(match errors.iter().find(|e| e.execute || e.status == 404) {
                Some(first) => ApiErrors(vec![first.clone()]),
                None => ApiErrors(errors),
            })
        }
    }
}

fn written_answer(
    app: &App,
    shop: &Shop,
    entity: usize,
    id: Id,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    if query
        .get("_response")
        .is_some_and(|v| !v.is_empty() && v != "false")
    {
        return render_one(app, shop, entity, id, headers);
    }
    let mut response = no_content();
    let location = format!(
        "{}/api/{}/{}",
        app.base_url(),
        entities::def(entity).name.replace('_', "-"),
        id.hex()
    );
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn create(
    State(app): State<App>,
    Path(segment): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = (|| -> Result<Response, ApiErrors> {
        let entity = entity_of(&segment)?;
        let body = parse_body(&body)?;
        let mut shop = app.shop_write();
        let id = write_one(&mut shop, entity, &body, Mode::Create)?;
        Ok(written_answer(&app, &shop, entity, id, &query, &headers))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn update(
    State(app): State<App>,
    Path((segment, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = (|| -> Result<Response, ApiErrors> {
        let entity = entity_of(&segment)?;
        let id = parse_id(entity, &id)?;
        let mut body = parse_body(&body)?;
        let mut shop = app.shop_write();
        if shop.table(entity).get(id).is_none() {
            return Err(ApiError::not_found(entities::def(entity).name, &id.hex()).into());
        }
        match &mut body {
            Value::Object(map) => {
                map.insert("id".into(), json!(id.hex()));
            }
            _ => return Err(ApiError::malformed_input("/0".into()).into()),
        }
        let id = write_one(&mut shop, entity, &body, Mode::Update)?;
        Ok(written_answer(&app, &shop, entity, id, &query, &headers))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn remove(State(app): State<App>, Path((segment, id)): Path<(String, String)>) -> Response {
    let result = (|| -> Result<Response, ApiErrors> {
        let entity = entity_of(&segment)?;
        let id = parse_id(entity, &id)?;
        let mut shop = app.shop_write();
        if shop.table(entity).get(id).is_none() {
            return Err(ApiError::not_found(entities::def(entity).name, &id.hex()).into());
        }
        shop.store.begin();
        let mut batch = Batch::default();
        match shop.delete_row(&mut batch, entity, id) {
            Ok(()) => {
                shop.store.commit();
                Ok(no_content())
            }
            Err(error) => {
                shop.store.rollback();
                Err(error.into())
            }
        }
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn association_list(
    State(app): State<App>,
    Path((segment, id, association)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let result = (|| -> Result<Response, ApiError> {
        let entity = entity_of(&segment)?;
        let id = parse_id(entity, &id)?;
        let shop = app.shop_read();
        let record = shop
            .table(entity)
            .get(id)
            .ok_or_else(|| ApiError::not_found(entities::def(entity).name, &id.hex()))?;
        let name = camel_segment(&association);
        let assoc = entities::def(entity)
            .assoc(&name)
            .ok_or_else(|| ApiError::association_not_found(&name))?;
        let target = entities::index_of(assoc.target)
            .ok_or_else(|| ApiError::association_not_found(&name))?;
        let related = criteria::related_ids(&shop, id, record, assoc);
        let criteria = Criteria {
            total_count_mode: 1,
            ..Criteria::default()
        };
        let hits = criteria::search(&shop, target, &criteria, Some(related));
        Ok(render_list(
            &app, &shop, target, &criteria, &hits.ids, hits.total, &headers,
        ))
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `line-items` → `lineItems`.
fn camel_segment(segment: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in segment.chars() {
        if c == '-' || c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

async fn association_delete(
    State(app): State<App>,
    Path((segment, id, association, foreign)): Path<(String, String, String, String)>,
) -> Response {
    let result = (|| -> Result<Response, ApiErrors> {
        let entity = entity_of(&segment)?;
        let id = parse_id(entity, &id)?;
        let name = camel_segment(&association);
        let assoc = *entities::def(entity)
            .assoc(&name)
            .ok_or_else(|| ApiError::association_not_found(&name))?;
        let target = entities::index_of(assoc.target)
            .ok_or_else(|| ApiError::association_not_found(&name))?;
        let foreign = parse_id(target, &foreign)?;
        let mut shop = app.shop_write();
        shop.store.begin();
        let mut batch = Batch::default();
        let outcome = match assoc.kind {
            Kind::ManyToMany {
                mapping,
                local,
                remote,
            } => {
                let m = Shop::entity_index(mapping);
                shop.delete_key(
                    &mut batch,
                    m,
                    &json!({ local: id.hex(), remote: foreign.hex() }),
                    "/0",
                );
                batch.errors.first().cloned().map_or(Ok(()), Err)
            }
            Kind::OneToMany { .. } if shop.table(target).get(foreign).is_some() => {
                shop.delete_row(&mut batch, target, foreign)
            }
            _ => Err(ApiError::not_found(assoc.target, &foreign.hex())),
        };
        match outcome {
            Ok(()) => {
                shop.store.commit();
                Ok(no_content())
            }
            Err(error) => {
                shop.store.rollback();
                Err(error.into())
            }
        }
    })();
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn transition(
    State(app): State<App>,
    Path((entity, id, action)): Path<(String, String, String)>,
) -> Response {
    if !matches!(
        entity.as_str(),
        "order" | "order_transaction" | "order_delivery"
    ) {
        return ApiError::route_not_found(&format!("/api/_action/{entity}/{id}/state/{action}"))
            .into_response();
    }
    run_transition(&app, &entity, &id, &action)
}

fn run_transition(app: &App, entity: &str, id: &str, action: &str) -> Response {
    let Some(id) = Id::parse(id) else {
        return ApiError::state_machine_invalid_entity(entity).into_response();
    };
    let mut shop = app.shop_write();
    match shop.transition(entity, id, action) {
        Ok(state) => json_response(200, &shop.state_json(state)),
        Err(error) => error.into_response(),
    }
}

async fn machine_transition(
    State(app): State<App>,
    Path((entity, id, action)): Path<(String, String, String)>,
) -> Response {
    run_transition(&app, &entity, &id, &action)
}

async fn machine_transitions(
    State(app): State<App>,
    Path((entity, id)): Path<(String, String)>,
) -> Response {
    let Some(parsed) = Id::parse(&id) else {
        return ApiError::state_machine_invalid_entity(&entity).into_response();
    };
    let shop = app.shop_read();
    let (machine, state) = match shop.current_state(&entity, parsed) {
        Ok(found) => found,
        Err(error) => return error.into_response(),
    };
    let base = app.base_url();
    let transitions: Vec<Value> = machine
        .transitions
        .iter()
        .filter(|(_, from, _)| *from == state)
        .map(|(action, from, to)| {
            let name = shop
                .state_json(machine.state_id(to))
                .get("name")
                .cloned()
                .unwrap_or(Value::Null);
            json!({
                "name": name,
                "technicalName": action,
                "actionName": action,
                "fromStateName": from,
                "toStateName": to,
                "url": format!("{base}/api/_action/state-machine/{entity}/{id}/state/{action}"),
            })
        })
        .collect();
    json_response(
        200,
        &json!({ "currentState": shop.state_json(machine.state_id(&state)), "transitions": transitions }),
    )
}
