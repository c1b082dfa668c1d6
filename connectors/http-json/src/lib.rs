//! A generic JSON-over-HTTP connector: products and stock read from, and products, stock and
//! orders written to, any REST system, with the endpoints, paging (page, offset or cursor),
//! the API key header and a JSON pointer per canonical field all taken from the config.
//! Built only with koppel's connector kit (`koppel-sdk`); see README.md for the config.

// Natively (`cargo test --workspace`) nothing exports the connector, so nothing uses it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

pub mod map;
pub mod spec;

use koppel_sdk::bindings::koppel::connector::host::Method;
use koppel_sdk::http::{Request, Response, encode};
use koppel_sdk::*;
use serde_json::Value;

use spec::{Endpoint, Paging, Spec, StreamSpec};

fn method_of(name: &str) -> Method {
    match name {
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        _ => Method::Post,
    }
}

impl Spec {
    fn request(&self, method: Method, path_and_query: &str) -> Request {
        let request = Request::new(method, format!("{}{path_and_query}", self.base_url));
        match &self.api_key {
            Some(key) if self.bearer => request.header(&self.auth_header, format!("Bearer {key}")),
            Some(key) => request.header(&self.auth_header, key.clone()),
            None => request,
        }
    }
}

/// The error that fits an answer that is not a success (a whole call's error).
fn refused(response: &Response) -> ConnectorError {
    let (message, field) = api_error(response);
    let status = response.status();
    let error = match status {
        401 | 403 => ConnectorError::auth(format!(
            "the API refused the key (HTTP {status}): check `api_key`, `auth_header` and `auth_scheme`"
        ))
        .with_field("api_key"),
        404 => ConnectorError::config("base_url", format!("HTTP 404 from the API: check `base_url` and the stream's paths ({message})")),
        // Everything else as the SDK's one default table says.
        _ => koppel_sdk::http::status_error(status, &message),
    };
    match field {
        Some(field) if status != 401 && status != 403 => error.with_field(field),
        _ => error,
    }
}

/// The API's error message and field, from the usual places (`message`, `error`,
/// `errors[0].detail`), else the start of the body.
fn api_error(response: &Response) -> (String, Option<String>) {
    let body: Option<Value> = serde_json::from_slice(response.bytes()).ok();
    let text = |v: &Value, pointers: &[&str]| {
        pointers
            .iter()
            .find_map(|p| v.pointer(p).and_then(Value::as_str).map(str::to_owned))
    };
    match body {
        Some(v) => (
            text(
                &v,
                &[
                    "/message",
                    "/error",
                    "/errors/0/detail",
                    "/errors/0/message",
                    "/error/message",
                ],
            )
            .unwrap_or_else(|| koppel_sdk::http::snippet(response.bytes())),
            text(
                &v,
                &["/field", "/errors/0/field", "/errors/0/source/pointer"],
            ),
        ),
        None => (koppel_sdk::http::snippet(response.bytes()), None),
    }
}

fn fill(path: &str, key: &str) -> String {
    path.replace("{key}", &encode(key))
}

/// Reads one page of a stream.
fn read_page(spec: &Spec, stream: &str, state: Option<&str>, limit: u32) -> Result<Page> {
    let s = spec.stream(stream)?;
    let Some(read) = &s.read else {
        return Err(ConnectorError::unsupported(format!(
            "`{stream}` has no `read` endpoint in the connection's config"
        )));
    };
    let size = limit.clamp(1, spec.page_size);
    let mut query: Vec<(String, String)> = read
        .query
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let bad_state = || {
        ConnectorError::internal(format!(
            "the state {state:?} is not one this connector wrote"
        ))
    };
    let position: u64 = match &read.paging {
        Paging::Page { start, .. } => match state {
            Some(s) => s.parse().map_err(|_| bad_state())?,
            None => *start,
        },
        Paging::Offset { .. } => match state {
            Some(s) => s.parse().map_err(|_| bad_state())?,
            None => 0,
        },
        _ => 0,
    };
    match &read.paging {
        Paging::None => {}
        Paging::Page {
            param, size_param, ..
        }
        | Paging::Offset {
            param, size_param, ..
        } => {
            query.push((param.clone(), position.to_string()));
            if let Some(size_param) = size_param {
                query.push((size_param.clone(), size.to_string()));
            }
        }
        Paging::Cursor {
            param, size_param, ..
        } => {
            if let Some(cursor) = state {
                query.push((param.clone(), cursor.to_owned()));
            }
            if let Some(size_param) = size_param {
                query.push((size_param.clone(), size.to_string()));
            }
        }
    }
    let mut url = read.path.clone();
    for (i, (k, v)) in query.iter().enumerate() {
        url.push(if i == 0 && !read.path.contains('?') {
            '?'
        } else {
            '&'
        });
        url.push_str(&format!("{}={}", encode(k), encode(v)));
    }
    let response = spec.request(Method::Get, &url).send()?;
    if !response.is_success() {
        return Err(refused(&response));
    }
    let body: Value = response.json()?;
    let items = body
        .pointer(&read.records)
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ConnectorError::protocol(format!(
                "the answer to GET {} has no array at {:?}: set `{stream}.read.records` to the pointer of the list",
                read.path, read.records
            ))
        })?;
    let records = items
        .iter()
        .map(|item| match stream {
            "stock" => map::stock(s, item).map(Record::Stock),
            "products" => map::product(s, item).map(Record::Product),
            other => Err(ConnectorError::unsupported(format!(
                "`{other}` cannot be read"
            ))),
        })
        .collect::<Result<Vec<_>>>()?;
    let count = items.len() as u64;
    // A full page, when the API does not say how much there is, means there may be more.
    let full = size_param_set(&read.paging) && count >= u64::from(size);
    let (has_more, next) = match &read.paging {
        Paging::None => (false, None),
        Paging::Page { pages, .. } => {
            let more = match pages
                .as_deref()
                .and_then(|p| body.pointer(p))
                .and_then(Value::as_u64)
            {
                Some(pages) => position < pages,
                None if size_param_set(&read.paging) => full,
                None => count > 0,
            };
            (more, Some((position + 1).to_string()))
        }
        Paging::Offset { total, .. } => {
            let next = position + count;
            let more = match total
                .as_deref()
                .and_then(|p| body.pointer(p))
                .and_then(Value::as_u64)
            {
                Some(total) => next < total,
                None if size_param_set(&read.paging) => full,
                None => count > 0,
            };
            (more, Some(next.to_string()))
        }
        Paging::Cursor { next, .. } => {
            let cursor = body.pointer(next).and_then(|v| match v {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
            (cursor.is_some(), cursor)
        }
    };
    // At the end, no state: the next read starts over (the host skips what did not change).
    Ok(Page {
        records,
        state: if has_more { next } else { None },
        has_more,
    })
}

fn size_param_set(paging: &Paging) -> bool {
    match paging {
        Paging::Page { size_param, .. }
        | Paging::Offset { size_param, .. }
        | Paging::Cursor { size_param, .. } => size_param.is_some(),
        Paging::None => false,
    }
}

/// Finds the item with `key`: (its id, the item).
fn find(spec: &Spec, s: &StreamSpec, key: &str) -> Result<Option<(String, Value)>> {
    let Some(lookup) = &s.lookup else {
        return Ok(None);
    };
    let response = spec.request(Method::Get, &fill(&lookup.path, key)).send()?;
    if response.status() == 404 {
        return Ok(None);
    }
    if !response.is_success() {
        return Err(refused(&response));
    }
    let body: Value = response.json()?;
    let item = match body.pointer(&lookup.record) {
        Some(Value::Array(items)) => items.first().cloned(),
        Some(Value::Null) | None => None,
        Some(item) => Some(item.clone()),
    };
    Ok(item.map(|item| {
        let id = lookup
            .id
            .as_deref()
            .and_then(|p| item.pointer(p))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_else(|| key.to_owned());
        (id, item)
    }))
}

fn send_item(
    spec: &Spec,
    endpoint: &Endpoint,
    key: &str,
    body: &Value,
    idempotency: Option<&str>,
) -> Result<Response> {
    let method = method_of(&endpoint.method);
    let mut request = spec
        .request(method, &fill(&endpoint.path, key))
        .json(body)?;
    if let Some(header) = idempotency {
        request = request.header(header, key.to_owned()).retry_safe(true);
    } else if method == Method::Put {
        request = request.retry_safe(true);
    }
    request.send()
}

fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Product => "product",
        RecordKind::Stock => "stock",
        RecordKind::Customer => "customer",
        RecordKind::Order => "order",
        RecordKind::OrderStatus => "order-status",
        RecordKind::Reference => "reference",
    }
}

/// Writes one record; an error ends the call (the host retries the batch), a refusal is
/// this record's `failed` outcome.
/// Writes one record: created when the system does not hold it, else updated without the
/// create-only fields (contract rule 4.7), or unchanged when it holds it as given.
fn write_one(
    spec: &Spec,
    stream: &str,
    s: &StreamSpec,
    record: &Record,
    create_only: &CreateOnly,
) -> Result<WriteOutcome> {
    let Some(write) = &s.write else {
        return Err(ConnectorError::unsupported(format!(
            "`{stream}` has no `write` endpoints in the connection's config"
        )));
    };
    let key = record.key().to_owned();
    let built = match (stream, record) {
        ("products", Record::Product(p)) => map::product_item(s, spec.decimals, p),
        ("stock", Record::Stock(l)) => Ok(map::stock_item(s, spec.decimals, l)),
        ("orders", Record::Order(o)) => map::order_item(s, spec.decimals, o),
        (stream, other) => {
            return Ok(WriteOutcome::failed(
                &key,
                format!(
                    "the {stream} stream does not take {} records",
                    kind_name(other.kind())
                ),
                None,
            ));
        }
    };
    let body = match built {
        Ok(body) => body,
        Err(error) => return Ok(WriteOutcome::from_error(&key, &error)),
    };
    let existing = find(spec, s, &key)?;
    let update_body = map::without_create_only(s, &body, create_only);
    let (endpoint, created) = match (&existing, &write.update) {
        (Some((id, _)), None) => {
            return Ok(WriteOutcome {
                message: Some("already in the system; written once, never updated".into()),
                ..WriteOutcome::unchanged(&key, Some(id.clone()))
            });
        }
        (Some((id, current)), Some(_)) if map::holds(current, &update_body) => {
            return Ok(WriteOutcome::unchanged(&key, Some(id.clone())));
        }
        (Some(_), Some(update)) => (update, false),
        (None, _) if s.lookup.is_none() => match &write.update {
            // Without a lookup, an upsert endpoint decides.
            Some(update) => (update, false),
            None => (&write.create, true),
        },
        (None, _) => (&write.create, true),
    };
    let idempotency = if created {
        write.idempotency_header.as_deref()
    } else {
        None
    };
    let sent = if created { &body } else { &update_body };
    let response = send_item(spec, endpoint, &key, sent, idempotency)?;
    match response.status() {
        401 | 403 => Err(refused(&response)),
        429 | 500..=599 => {
            let (message, _) = api_error(&response);
            Ok(WriteOutcome::failed_retryable(
                &key,
                format!("HTTP {}: {message}", response.status()),
            ))
        }
        status if !(200..300).contains(&status) => {
            let (message, field) = api_error(&response);
            Ok(WriteOutcome::failed(
                &key,
                format!("HTTP {status}: {message}"),
                field.as_deref(),
            ))
        }
        status => {
            let answer: Value = serde_json::from_slice(response.bytes()).unwrap_or(Value::Null);
            let id = write
                .id
                .as_deref()
                .and_then(|p| answer.pointer(p))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .or_else(|| existing.as_ref().map(|(id, _)| id.clone()))
                .unwrap_or_else(|| key.clone());
            Ok(if created || status == 201 {
                WriteOutcome::created(&key, id)
            } else {
                WriteOutcome::updated(&key, id)
            })
        }
    }
}

struct HttpJson;

fn field(
    name: &str,
    label: &str,
    description: &str,
    kind: ConfigKind,
    required: bool,
    default: Option<Value>,
) -> ConfigField {
    ConfigField {
        name: name.into(),
        label: label.into(),
        description: description.into(),
        kind,
        required,
        default: default.map(|v| match v {
            Value::Number(n) => koppel_sdk::Value::Integer(n.as_i64().unwrap_or_default()),
            Value::String(s) => koppel_sdk::Value::Text(s),
            _ => koppel_sdk::Value::Null,
        }),
        choices: vec![],
    }
}

fn stream_field(name: &str, example: &str) -> ConfigField {
    field(
        name,
        &format!("The {name} stream"),
        &format!(
            "JSON: the endpoints, paging and a JSON pointer per canonical field, e.g. {example}. Unset: the stream is off."
        ),
        ConfigKind::Json,
        false,
        None,
    )
}

impl Connector for HttpJson {
    type Instance = Spec;

    fn manifest() -> Manifest {
        let mut auth_scheme = field(
            "auth_scheme",
            "How the key is sent",
            "`bearer`: `<auth_header>: Bearer <api_key>`; `plain`: `<auth_header>: <api_key>`.",
            ConfigKind::Choice,
            false,
            Some(Value::String("bearer".into())),
        );
        auth_scheme.choices = vec!["bearer".into(), "plain".into()];
        let mut decimals = field(
            "decimals",
            "Decimals as",
            "How prices and quantities are written: JSON numbers (`19.95`) or strings (`\"19.95\"`).",
            ConfigKind::Choice,
            false,
            Some(Value::String("number".into())),
        );
        decimals.choices = vec!["number".into(), "string".into()];
        Manifest {
            id: "http-json".into(),
            name: "JSON over HTTP".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Any REST system that speaks JSON: endpoints, paging and field paths from the config.".into(),
            streams: vec![
                Stream {
                    name: "products".into(),
                    kind: RecordKind::Product,
                    access: StreamAccess::READ | StreamAccess::WRITE | StreamAccess::LOOKUP,
                    description: "Products as the config's `products` describes them.".into(),
                },
                Stream {
                    name: "stock".into(),
                    kind: RecordKind::Stock,
                    access: StreamAccess::READ | StreamAccess::WRITE | StreamAccess::LOOKUP,
                    description: "Stock levels as the config's `stock` describes them.".into(),
                },
                Stream {
                    name: "orders".into(),
                    kind: RecordKind::Order,
                    access: StreamAccess::WRITE | StreamAccess::LOOKUP,
                    description: "Orders posted once each, as the config's `orders` describes them.".into(),
                },
            ],
            config: vec![
                field("base_url", "API address", "Scheme, host, port and base path of the API: https://erp.example.com/api. The only host the connector may reach.", ConfigKind::Url, true, None),
                field("api_key", "API key", "Sent in `auth_header` on every request. Leave unset for an API without a key.", ConfigKind::Secret, false, None),
                field("auth_header", "Key header", "The header that carries the key: `Authorization`, `X-Api-Key`.", ConfigKind::Text, false, Some(Value::String("Authorization".into()))),
                auth_scheme,
                field("check_path", "Check path", "A cheap GET `check` sends (`/v1/ping`); default: the first configured read or lookup path.", ConfigKind::Text, false, None),
                field("page_size", "Page size", "The most records asked for in one request.", ConfigKind::Integer, false, Some(Value::Number(100.into()))),
                decimals,
                stream_field("products", r#"{"read": {"path": "/products", "records": "/data", "paging": {"type": "page", "size_param": "per_page"}}, "fields": {"key": "/sku", "name": "/title", "price": "/price"}}"#),
                stream_field("stock", r#"{"read": {"path": "/stock", "records": "/items", "paging": {"type": "offset", "size_param": "limit"}}, "fields": {"key": "/sku", "on_hand": "/qty"}}"#),
                stream_field("orders", r#"{"write": {"create": {"path": "/orders"}, "idempotency_header": "Idempotency-Key"}, "lookup": {"path": "/orders?reference={key}", "record": "/data"}, "fields": {"key": "/reference", "email": "/customer/email", "lines": "/lines", "line.sku": "/sku"}}"#),
            ],
            outbound_hosts: vec!["{base_url}".into()],
        }
    }

    fn check(config: Settings) -> Result<()> {
        let spec = Spec::from_settings(&config)?;
        let path = spec
            .check_path
            .clone()
            .or_else(|| {
                spec.streams.values().find_map(|s| {
                    s.read
                        .as_ref()
                        .map(|r| r.path.clone())
                        .or_else(|| s.lookup.as_ref().map(|l| fill(&l.path, "koppel-check")))
                })
            })
            .ok_or_else(|| {
                ConnectorError::config(
                    "check_path",
                    "nothing to check with: set `check_path` or configure a stream",
                )
            })?;
        let response = spec.request(Method::Get, &path).send()?;
        if response.is_success() || (response.status() == 404 && spec.check_path.is_none()) {
            Ok(())
        } else {
            Err(refused(&response))
        }
    }

    fn configure(config: Settings) -> Result<Spec> {
        Spec::from_settings(&config)
    }

    fn read(spec: &mut Spec, stream: &str, state: Option<&str>, limit: u32) -> Result<Page> {
        read_page(spec, stream, state, limit)
    }

    fn write(
        spec: &mut Spec,
        stream: &str,
        records: Vec<Record>,
        options: &WriteOptions,
    ) -> Result<Vec<WriteOutcome>> {
        options.expect_settings(stream, &[])?;
        let create_only = CreateOnly::of(options);
        let s = spec.stream(stream)?;
        records
            .iter()
            .map(|r| write_one(spec, stream, s, r, &create_only))
            .collect()
    }

    fn lookup(spec: &mut Spec, stream: &str, key: &str) -> Result<Option<Found>> {
        {
            let s = spec.stream(stream)?;
            if s.lookup.is_none() {
                return Err(ConnectorError::unsupported(format!(
                    "`{stream}` has no `lookup` endpoint in the connection's config"
                )));
            }
            let Some((id, item)) = find(spec, s, key)? else {
                return Ok(None);
            };
            let record = match stream {
                "products" => map::product(s, &item).ok().map(Record::Product),
                "stock" => map::stock(s, &item).ok().map(Record::Stock),
                _ => None,
            };
            Ok(Some(Found { id, record }))
        }
    }
}

koppel_sdk::export_connector!(HttpJson);
