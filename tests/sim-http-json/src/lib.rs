//! A small ERP with a JSON-over-HTTP API, for the `http-json` connector's tests: three
//! resources paged three different ways, an API key in `X-Api-Key`, validation errors that
//! name the field, and idempotent order creation. It listens on 127.0.0.1 only.
//!
//! - `GET  /v1/products?page=N&per_page=M` → `{"data": [...], "meta": {"page": N, "pages": P}}`
//!   (page numbers from 1); `GET|PUT /v1/products/{sku}`, `POST /v1/products`
//! - `GET  /v1/stock?offset=N&limit=M` → `{"items": [...], "total": T}`;
//!   `GET|PUT /v1/stock/{sku}`
//! - `GET  /v1/orders?cursor=C&limit=M` → `{"data": [...], "next_cursor": C|null}`;
//!   `GET /v1/orders?reference=R` → `{"data": [the order with that reference]}`;
//!   `POST /v1/orders` (an `Idempotency-Key` header makes a repeat return the first order)
//!
//! Errors: `401 {"message": "..."}` without the key; `404`; `409` for a product that exists;
//! `422 {"message": "...", "field": "..."}` for a record that is not valid.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};

/// How the simulator starts.
#[derive(Clone, Debug)]
pub struct HttpJsonOptions {
    /// Seeded products (with a stock row each).
    pub products: usize,
    /// The API key; a random one when None.
    pub api_key: Option<String>,
}

impl Default for HttpJsonOptions {
    fn default() -> Self {
        HttpJsonOptions {
            products: 40,
            api_key: None,
        }
    }
}

#[derive(Default)]
struct Data {
    products: BTreeMap<String, Value>,
    stock: BTreeMap<String, Value>,
    /// In creation order.
    orders: Vec<Value>,
    idempotency: BTreeMap<String, usize>,
    requests: BTreeMap<String, u64>,
    next_id: u64,
}

#[derive(Clone)]
struct Shared {
    key: String,
    data: Arc<Mutex<Data>>,
}

impl Shared {
    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running simulator; it stops when dropped.
pub struct HttpJsonSimulator {
    addr: SocketAddr,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A seeded product, as the API shows it.
pub fn seed_product(n: usize) -> Value {
    const NAMES: [&str; 5] = ["Espresso cup", "Teapot", "Milk jug", "Sugar bowl", "Saucer"];
    json!({
        "sku": format!("ERP-{n:05}"),
        "title": format!("{} {n}", NAMES[n % NAMES.len()]),
        "description": format!("Stoneware, item {n}."),
        "ean": format!("871{n:010}"),
        "price": { "amount": format!("{}.{:02}", 4 + n % 30, (n * 13) % 100), "currency": "EUR" },
        "vat": if n.is_multiple_of(4) { 9 } else { 21 },
        "active": !n.is_multiple_of(9),
    })
}

fn seed_stock(n: usize) -> Value {
    json!({
        "sku": format!("ERP-{n:05}"),
        "qty": ((n * 7) % 40).to_string(),
        "reserved": (n % 3).to_string(),
        "warehouse": "main",
    })
}

impl HttpJsonSimulator {
    pub async fn start(options: HttpJsonOptions) -> std::io::Result<HttpJsonSimulator> {
        let key = options.api_key.unwrap_or_else(|| {
            let mut bytes = [0u8; 12];
            rand::rng().fill_bytes(&mut bytes);
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        });
        let mut data = Data::default();
        for n in 1..=options.products {
            let product = seed_product(n);
            let stock = seed_stock(n);
            let sku = format!("ERP-{n:05}");
            data.products.insert(sku.clone(), product);
            data.stock.insert(sku, stock);
        }
        let shared = Shared {
            key,
            data: Arc::new(Mutex::new(data)),
        };
        let app = Router::new()
            .route("/v1/ping", get(ping))
            .route("/v1/products", get(list_products).post(create_product))
            .route("/v1/products/{sku}", get(get_product).put(put_product))
            .route("/v1/stock", get(list_stock))
            .route("/v1/stock/{sku}", get(get_stock).put(put_stock))
            .route("/v1/orders", get(list_orders).post(create_order))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "The HTTP-JSON simulator stopped.");
            }
        });
        Ok(HttpJsonSimulator {
            addr,
            shared,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn api_key(&self) -> &str {
        &self.shared.key
    }

    pub fn products(&self) -> BTreeMap<String, Value> {
        self.shared.data().products.clone()
    }

    pub fn stock(&self) -> BTreeMap<String, Value> {
        self.shared.data().stock.clone()
    }

    pub fn orders(&self) -> Vec<Value> {
        self.shared.data().orders.clone()
    }

    /// Changes one product as a user of the ERP would.
    pub fn set_product(&self, sku: &str, product: Value) {
        self.shared.data().products.insert(sku.to_owned(), product);
    }

    /// Requests answered, by `METHOD /path-pattern` (`GET /v1/products`).
    pub fn request_count(&self, route: &str) -> u64 {
        self.shared.data().requests.get(route).copied().unwrap_or(0)
    }
}

impl Drop for HttpJsonSimulator {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn error(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    (status, Json(json!({ "message": message, "field": field }))).into_response()
}

/// Counts the request and checks the key; the error response when it is wrong.
fn refused(shared: &Shared, headers: &HeaderMap, route: &str) -> Option<Response> {
    *shared.data().requests.entry(route.to_owned()).or_default() += 1;
    let given = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    (given != Some(shared.key.as_str()))
        .then(|| error(StatusCode::UNAUTHORIZED, "missing or wrong X-Api-Key", None))
}

fn body_json(body: &[u8]) -> Result<Value, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!("the body is not JSON: {e}"),
            None,
        ))
    })
}

fn is_decimal(value: &Value) -> bool {
    match value {
        Value::Number(_) => true,
        Value::String(s) => {
            let s = s.strip_prefix('-').unwrap_or(s);
            !s.is_empty()
                && s.split('.').count() <= 2
                && s.chars().all(|c| c.is_ascii_digit() || c == '.')
        }
        _ => false,
    }
}

/// What is wrong with a product, naming the field.
fn invalid_product(p: &Value) -> Option<(&'static str, &'static str)> {
    if p.get("sku")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Some(("sku", "sku is required"));
    }
    if p.get("title")
        .and_then(Value::as_str)
        .is_none_or(|s| s.trim().is_empty())
    {
        return Some(("title", "title is required"));
    }
    if !p.pointer("/price/amount").is_some_and(is_decimal) {
        return Some(("price.amount", "price.amount must be a decimal"));
    }
    None
}

async fn ping(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    match refused(&shared, &headers, "GET /v1/ping") {
        None => Json(json!({ "ok": true })).into_response(),
        Some(response) => response,
    }
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<usize>,
    per_page: Option<usize>,
}

async fn list_products(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    if let Some(r) = refused(&shared, &headers, "GET /v1/products") {
        return r;
    }
    let per_page = q.per_page.unwrap_or(20).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let data = shared.data();
    let all: Vec<&Value> = data.products.values().collect();
    let pages = all.len().div_ceil(per_page).max(1);
    let items: Vec<&Value> = all
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    Json(json!({ "data": items, "meta": { "page": page, "pages": pages } })).into_response()
}

async fn get_product(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(sku): Path<String>,
) -> Response {
    if let Some(r) = refused(&shared, &headers, "GET /v1/products/{sku}") {
        return r;
    }
    match shared.data().products.get(&sku) {
        Some(p) => Json(json!({ "data": p })).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such product", None),
    }
}

async fn create_product(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = refused(&shared, &headers, "POST /v1/products") {
        return r;
    }
    let product = match body_json(&body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if let Some((field, message)) = invalid_product(&product) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, message, Some(field));
    }
    let sku = product["sku"].as_str().unwrap_or_default().to_owned();
    let mut data = shared.data();
    if data.products.contains_key(&sku) {
        return error(
            StatusCode::CONFLICT,
            "a product with this sku exists",
            Some("sku"),
        );
    }
    data.products.insert(sku, product.clone());
    (StatusCode::CREATED, Json(json!({ "data": product }))).into_response()
}

async fn put_product(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(sku): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = refused(&shared, &headers, "PUT /v1/products/{sku}") {
        return r;
    }
    let product = match body_json(&body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if let Some((field, message)) = invalid_product(&product) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, message, Some(field));
    }
    if product["sku"].as_str() != Some(sku.as_str()) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sku differs from the path",
            Some("sku"),
        );
    }
    let mut data = shared.data();
    if !data.products.contains_key(&sku) {
        return error(StatusCode::NOT_FOUND, "no such product", None);
    }
    data.products.insert(sku, product.clone());
    Json(json!({ "data": product })).into_response()
}

#[derive(Deserialize)]
struct OffsetQuery {
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn list_stock(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<OffsetQuery>,
) -> Response {
    if let Some(r) = refused(&shared, &headers, "GET /v1/stock") {
        return r;
    }
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let data = shared.data();
    let items: Vec<&Value> = data
        .stock
        .values()
        .skip(q.offset.unwrap_or(0))
        .take(limit)
        .collect();
    Json(json!({ "items": items, "total": data.stock.len() })).into_response()
}

async fn get_stock(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(sku): Path<String>,
) -> Response {
    if let Some(r) = refused(&shared, &headers, "GET /v1/stock/{sku}") {
        return r;
    }
    match shared.data().stock.get(&sku) {
        Some(s) => Json(s.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such stock row", None),
    }
}

async fn put_stock(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(sku): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = refused(&shared, &headers, "PUT /v1/stock/{sku}") {
        return r;
    }
    let row = match body_json(&body) {
        Ok(p) => p,
        Err(r) => return *r,
    };
    if !row.get("qty").is_some_and(is_decimal) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "qty must be a decimal",
            Some("qty"),
        );
    }
    let mut data = shared.data();
    let created = !data.stock.contains_key(&sku);
    data.stock.insert(sku, row.clone());
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(row)).into_response()
}

#[derive(Deserialize)]
struct OrderQuery {
    cursor: Option<String>,
    limit: Option<usize>,
    reference: Option<String>,
}

async fn list_orders(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<OrderQuery>,
) -> Response {
    if let Some(r) = refused(&shared, &headers, "GET /v1/orders") {
        return r;
    }
    let data = shared.data();
    if let Some(reference) = q.reference {
        let found: Vec<&Value> = data
            .orders
            .iter()
            .filter(|o| o.get("reference").and_then(Value::as_str) == Some(reference.as_str()))
            .collect();
        return Json(json!({ "data": found })).into_response();
    }
    let start: usize = match q.cursor.as_deref().map(str::parse) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return error(StatusCode::BAD_REQUEST, "not a cursor", Some("cursor")),
    };
    let limit = q.limit.unwrap_or(20).clamp(1, 100);
    let items: Vec<&Value> = data.orders.iter().skip(start).take(limit).collect();
    let end = start + items.len();
    let next = (end < data.orders.len()).then(|| end.to_string());
    Json(json!({ "data": items, "next_cursor": next })).into_response()
}

async fn create_order(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = refused(&shared, &headers, "POST /v1/orders") {
        return r;
    }
    let mut order = match body_json(&body) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let mut data = shared.data();
    let idempotency = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(at) = idempotency.as_ref().and_then(|k| data.idempotency.get(k)) {
        return Json(data.orders[*at].clone()).into_response();
    }
    if order
        .get("reference")
        .and_then(Value::as_str)
        .is_none_or(|s| s.is_empty())
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reference is required",
            Some("reference"),
        );
    }
    if order
        .pointer("/customer/email")
        .and_then(Value::as_str)
        .is_none_or(|s| !s.contains('@'))
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "customer.email must be an e-mail address",
            Some("customer.email"),
        );
    }
    let lines = order
        .get("lines")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if lines == 0 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "an order needs lines",
            Some("lines"),
        );
    }
    data.next_id += 1;
    order["id"] = json!(format!("SO-{:05}", data.next_id));
    data.orders.push(order.clone());
    if let Some(key) = idempotency {
        let at = data.orders.len() - 1;
        data.idempotency.insert(key, at);
    }
    (StatusCode::CREATED, Json(order)).into_response()
}
