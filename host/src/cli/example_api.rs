//! The example API the connector template (`koppel connector new`) talks to out of the box: a
//! tiny JSON-over-HTTP item store on 127.0.0.1 with a bearer key, keyset paging and upserts
//! that say whether anything changed. `koppel connector test --example-api` starts it, so a
//! freshly generated connector passes the conformance suite before it is changed at all.
//!
//! - `GET  /api/ping` → `{"ok": true}` (401 without the key)
//! - `GET  /api/items?after=SKU&limit=N` → `{"items": [...], "has_more": bool}`, by SKU
//! - `GET  /api/items/{sku}` → the item, or 404
//! - `PUT  /api/items/{sku}` → `{"status": "created"|"updated"|"unchanged", "item": {...}}`;
//!   422 `{"error": "...", "field": "name"}` for an invalid item

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// One item of the example API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub sku: String,
    pub name: String,
    /// Gross price in major units, as a decimal string: `"19.95"`.
    pub price: String,
    pub currency: String,
    /// Percent, as a decimal string: `"21"`.
    pub tax_rate: String,
    /// Units in stock, as a decimal string. A `PUT` without it keeps the stock as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<String>,
    pub active: bool,
}

#[derive(Default)]
struct Inner {
    items: BTreeMap<String, Item>,
    requests: u64,
}

#[derive(Clone)]
struct Shared {
    key: String,
    inner: Arc<Mutex<Inner>>,
}

/// The example API, serving until dropped.
pub struct ExampleApi {
    addr: SocketAddr,
    key: String,
    shared: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl ExampleApi {
    /// Starts on 127.0.0.1 (a free port) with `items` seeded items and a random key.
    pub async fn start(items: usize) -> std::io::Result<ExampleApi> {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let key = format!("example-{}", hex::encode(bytes));
        let mut inner = Inner::default();
        for n in 1..=items {
            let item = seed_item(n);
            inner.items.insert(item.sku.clone(), item);
        }
        let shared = Shared {
            key: key.clone(),
            inner: Arc::new(Mutex::new(inner)),
        };
        let app = Router::new()
            .route("/api/ping", get(ping))
            .route("/api/items", get(list))
            .route("/api/items/{sku}", get(one).put(put))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serve.await {
                tracing::warn!(%error, "The example API stopped.");
            }
        });
        Ok(ExampleApi {
            addr,
            key,
            shared,
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bearer key it accepts.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The items it holds now, by SKU.
    pub fn items(&self) -> BTreeMap<String, Item> {
        self.shared
            .inner
            .lock()
            .map(|i| i.items.clone())
            .unwrap_or_default()
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.shared.inner.lock().map(|i| i.requests).unwrap_or(0)
    }
}

impl Drop for ExampleApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn seed_item(n: usize) -> Item {
    const NAMES: [&str; 6] = [
        "Mug",
        "Tea towel",
        "Notebook",
        "Candle",
        "Tote bag",
        "Poster",
    ];
    Item {
        sku: format!("ITEM-{n:04}"),
        name: format!("{} no. {n}", NAMES[n % NAMES.len()]),
        price: format!("{}.{:02}", 3 + n % 40, (n * 37) % 100),
        currency: "EUR".into(),
        tax_rate: if n.is_multiple_of(5) { "9" } else { "21" }.into(),
        stock: Some(((n * 7) % 50).to_string()),
        active: !n.is_multiple_of(11),
    }
}

fn error(status: StatusCode, message: &str, field: Option<&str>) -> Response {
    (status, Json(json!({ "error": message, "field": field }))).into_response()
}

/// Counts the request and checks the key; the error response when it is wrong.
fn refused(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    if let Ok(mut inner) = shared.inner.lock() {
        inner.requests += 1;
    }
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (given != Some(shared.key.as_str()))
        .then(|| error(StatusCode::UNAUTHORIZED, "missing or wrong API key", None))
}

async fn ping(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    match refused(&shared, &headers) {
        None => Json(json!({ "ok": true })).into_response(),
        Some(response) => response,
    }
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

async fn list(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Some(response) = refused(&shared, &headers) {
        return response;
    }
    let limit = query.limit.unwrap_or(50).clamp(1, 200);
    let Ok(inner) = shared.inner.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "poisoned", None);
    };
    let after = query.after.unwrap_or_default();
    let mut rest = inner
        .items
        .range::<String, _>((
            std::ops::Bound::Excluded(&after),
            std::ops::Bound::Unbounded,
        ))
        .map(|(_, item)| item);
    let items: Vec<&Item> = rest.by_ref().take(limit).collect();
    let has_more = rest.next().is_some();
    Json(json!({ "items": items, "has_more": has_more })).into_response()
}

async fn one(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(sku): Path<String>,
) -> Response {
    if let Some(response) = refused(&shared, &headers) {
        return response;
    }
    let Ok(inner) = shared.inner.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "poisoned", None);
    };
    match inner.items.get(&sku) {
        Some(item) => Json(item).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such item", None),
    }
}

fn invalid(item: &Item) -> Option<(&'static str, &'static str)> {
    let decimal = |s: &str| {
        let s = s.strip_prefix('-').unwrap_or(s);
        !s.is_empty()
            && s.split('.').count() <= 2
            && s.chars().all(|c| c.is_ascii_digit() || c == '.')
    };
    if item.name.trim().is_empty() {
        return Some(("name", "name must not be empty"));
    }
    if !decimal(&item.price) || item.price.starts_with('-') {
        return Some(("price", "price must be a decimal of at least 0"));
    }
    if !decimal(&item.tax_rate) {
        return Some(("tax_rate", "tax_rate must be a decimal"));
    }
    if item.stock.as_deref().is_some_and(|s| !decimal(s)) {
        return Some(("stock", "stock must be a decimal"));
    }
    if item.currency.len() != 3 {
        return Some(("currency", "currency must be an ISO 4217 code"));
    }
    None
}

async fn put(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Path(sku): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(response) = refused(&shared, &headers) {
        return response;
    }
    let mut item: Item = match serde_json::from_slice(&body) {
        Ok(item) => item,
        Err(e) => {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("not an item: {e}"),
                None,
            );
        }
    };
    if item.sku != sku {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sku differs from the path",
            Some("sku"),
        );
    }
    if let Some((field, message)) = invalid(&item) {
        return error(StatusCode::UNPROCESSABLE_ENTITY, message, Some(field));
    }
    let Ok(mut inner) = shared.inner.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "poisoned", None);
    };
    if item.stock.is_none() {
        let kept = inner.items.get(&sku).and_then(|old| old.stock.clone());
        item.stock = Some(kept.unwrap_or_else(|| "0".into()));
    }
    let status = match inner.items.get(&sku) {
        None => "created",
        Some(old) if *old == item => "unchanged",
        Some(_) => "updated",
    };
    inner.items.insert(sku, item.clone());
    let code = if status == "created" {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (code, Json(json!({ "status": status, "item": item }))).into_response()
}
