//! The connector's config: where each stream's endpoints are, how they page, and which JSON
//! pointer holds each canonical field. Checked once in `configure`/`check`, with errors that
//! name the key.

use std::collections::BTreeMap;

use koppel_sdk::{ConnectorError, Result, Settings};
use serde::Deserialize;
use serde_json::Value;

/// One stream: `products`, `stock` or `orders`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    pub read: Option<ReadSpec>,
    pub write: Option<WriteSpec>,
    pub lookup: Option<LookupSpec>,
    /// Canonical field → JSON pointer inside one item (`"name": "/title"`).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Canonical field → value when the API has none (`"currency": "EUR"`).
    #[serde(default)]
    pub defaults: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadSpec {
    /// Appended to `base_url`: `/v1/products`.
    pub path: String,
    /// Fixed query parameters.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Pointer to the array of items in the answer; empty: the answer is the array.
    #[serde(default)]
    pub records: String,
    #[serde(default)]
    pub paging: Paging,
}

/// How a list is paged.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Paging {
    /// One request returns everything.
    #[default]
    None,
    /// `?page=N` from `start`; `pages` points at the number of pages, if the API says.
    Page {
        #[serde(default = "page_param")]
        param: String,
        size_param: Option<String>,
        #[serde(default = "one")]
        start: u64,
        pages: Option<String>,
    },
    /// `?offset=N`; `total` points at the number of items, if the API says.
    Offset {
        #[serde(default = "offset_param")]
        param: String,
        size_param: Option<String>,
        total: Option<String>,
    },
    /// `?cursor=C`, where `next` points at the next page's cursor (null at the end).
    Cursor {
        #[serde(default = "cursor_param")]
        param: String,
        size_param: Option<String>,
        next: String,
    },
}

fn page_param() -> String {
    "page".into()
}
fn offset_param() -> String {
    "offset".into()
}
fn cursor_param() -> String {
    "cursor".into()
}
fn one() -> u64 {
    1
}
fn post() -> String {
    "POST".into()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    #[serde(default = "post")]
    pub method: String,
    /// `{key}` is replaced by the record's key, percent-encoded.
    pub path: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteSpec {
    /// Creates a record (`POST /v1/products`).
    pub create: Endpoint,
    /// Replaces a record that exists (`PUT /v1/products/{key}`). Without it a record that
    /// exists is left alone (`unchanged`): orders are written once.
    pub update: Option<Endpoint>,
    /// Pointer to the new record's id in the answer.
    pub id: Option<String>,
    /// A header that carries the record's key on create, so the API can refuse a repeat
    /// (`Idempotency-Key`); with it, a create is safe to retry.
    pub idempotency_header: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupSpec {
    /// `/v1/products/{key}` or `/v1/orders?reference={key}`; a 404 means not found.
    pub path: String,
    /// Pointer to the item in the answer; when it is an array, its first element (empty:
    /// not found).
    #[serde(default)]
    pub record: String,
    /// Pointer to the id inside the item; the key when not given.
    pub id: Option<String>,
}

/// How decimals are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decimals {
    Number,
    Text,
}

/// The whole config.
#[derive(Clone, Debug)]
pub struct Spec {
    pub base_url: String,
    pub api_key: Option<String>,
    pub auth_header: String,
    pub bearer: bool,
    pub check_path: Option<String>,
    pub page_size: u32,
    pub decimals: Decimals,
    pub streams: BTreeMap<&'static str, StreamSpec>,
}

/// The canonical fields each kind understands (the README's table).
pub const PRODUCT_FIELDS: &[&str] = &[
    "key",
    "name",
    "description",
    "ean",
    "active",
    "price",
    "net_price",
    "tax_rate",
    "currency",
];
pub const STOCK_FIELDS: &[&str] = &["key", "on_hand", "reserved", "available", "location"];
pub const ORDER_FIELDS: &[&str] = &[
    "key",
    "number",
    "placed_at",
    "currency",
    "total",
    "total_net",
    "email",
    "first_name",
    "last_name",
    "company",
    "phone",
    "street",
    "house_number",
    "postal_code",
    "city",
    "country",
    "payment_method",
    "payment_state",
    "shipping_method",
    "shipping_cost",
    "lines",
    "line.sku",
    "line.name",
    "line.quantity",
    "line.unit_price",
    "line.total",
    "line.tax_rate",
];

pub const STREAMS: &[&str] = &["products", "stock", "orders"];

pub fn fields_of(stream: &str) -> &'static [&'static str] {
    match stream {
        "products" => PRODUCT_FIELDS,
        "stock" => STOCK_FIELDS,
        _ => ORDER_FIELDS,
    }
}

fn check_pointer(key: &str, what: &str, pointer: &str) -> Result<()> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(ConnectorError::config(
            key,
            format!("{what} {pointer:?} is not a JSON pointer: write it as \"/{pointer}\""),
        ))
    }
}

fn check_path(key: &str, what: &str, path: &str) -> Result<()> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(ConnectorError::config(
            key,
            format!("{what} {path:?} must start with / (it is appended to base_url)"),
        ))
    }
}

impl StreamSpec {
    /// Checks pointers, paths and field names; the error names the stream's key.
    pub fn check(&self, stream: &str) -> Result<()> {
        let known = fields_of(stream);
        for (field, pointer) in &self.fields {
            if !known.contains(&field.as_str()) {
                return Err(ConnectorError::config(
                    stream,
                    format!(
                        "`fields` names {field:?}, which {stream} do not have; known: {}",
                        known.join(", ")
                    ),
                ));
            }
            check_pointer(stream, &format!("the pointer of {field:?}"), pointer)?;
        }
        for field in self.defaults.keys() {
            if !known.contains(&field.as_str()) {
                return Err(ConnectorError::config(
                    stream,
                    format!("`defaults` names {field:?}, which {stream} do not have"),
                ));
            }
        }
        if !self.fields.contains_key("key") {
            return Err(ConnectorError::config(
                stream,
                "`fields` must give the pointer of \"key\" (the record's stable id)",
            ));
        }
        if let Some(read) = &self.read {
            check_path(stream, "read.path", &read.path)?;
            check_pointer(stream, "read.records", &read.records)?;
            match &read.paging {
                Paging::Page { pages: Some(p), .. } => check_pointer(stream, "paging.pages", p)?,
                Paging::Offset { total: Some(p), .. } => check_pointer(stream, "paging.total", p)?,
                Paging::Cursor { next, .. } => check_pointer(stream, "paging.next", next)?,
                _ => {}
            }
        }
        if let Some(write) = &self.write {
            check_path(stream, "write.create.path", &write.create.path)?;
            if let Some(update) = &write.update {
                check_path(stream, "write.update.path", &update.path)?;
            }
            for e in std::iter::once(&write.create).chain(write.update.as_ref()) {
                if !matches!(e.method.as_str(), "POST" | "PUT" | "PATCH") {
                    return Err(ConnectorError::config(
                        stream,
                        format!("write method {:?} must be POST, PUT or PATCH", e.method),
                    ));
                }
            }
        }
        if let Some(lookup) = &self.lookup {
            check_path(stream, "lookup.path", &lookup.path)?;
            check_pointer(stream, "lookup.record", &lookup.record)?;
        }
        Ok(())
    }
}

impl Spec {
    pub fn from_settings(settings: &Settings) -> Result<Spec> {
        let mut streams = BTreeMap::new();
        for stream in STREAMS {
            let spec: Option<StreamSpec> = settings.json(stream)?;
            if let Some(spec) = spec {
                spec.check(stream)?;
                streams.insert(*stream, spec);
            }
        }
        let decimals = match settings.get("decimals").unwrap_or("number") {
            "string" => Decimals::Text,
            _ => Decimals::Number,
        };
        let check_path = settings.get("check_path").map(str::to_owned);
        if let Some(path) = &check_path {
            self::check_path("check_path", "check_path", path)?;
        }
        Ok(Spec {
            base_url: settings.base_url("base_url")?,
            api_key: settings.get("api_key").map(str::to_owned),
            auth_header: settings
                .get("auth_header")
                .unwrap_or("Authorization")
                .to_owned(),
            bearer: settings.get("auth_scheme").unwrap_or("bearer") == "bearer",
            check_path,
            page_size: settings.parse_or("page_size", 100u32)?.clamp(1, 1000),
            decimals,
            streams,
        })
    }

    /// The stream's spec, or an error saying which config key to set.
    pub fn stream(&self, stream: &str) -> Result<&StreamSpec> {
        self.streams.get(stream).ok_or_else(|| {
            ConnectorError::unsupported(format!(
                "the stream `{stream}` is not configured: set `{stream}` in the connection's config"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Result<StreamSpec> {
        serde_json::from_str(json).map_err(|e| ConnectorError::config("products", e.to_string()))
    }

    #[test]
    fn a_full_spec_parses_and_checks() {
        let s = spec(
            r#"{"read": {"path": "/v1/products", "records": "/data",
                 "paging": {"type": "page", "size_param": "per_page", "pages": "/meta/pages"}},
                "write": {"create": {"path": "/v1/products"}, "update": {"method": "PUT", "path": "/v1/products/{key}"}},
                "lookup": {"path": "/v1/products/{key}", "record": "/data"},
                "fields": {"key": "/sku", "name": "/title", "price": "/price/amount"}}"#,
        )
        .expect("parses");
        s.check("products").expect("valid");
        assert!(matches!(
            s.read.as_ref().map(|r| &r.paging),
            Some(Paging::Page { start: 1, .. })
        ));
    }

    #[test]
    fn mistakes_name_the_stream_and_the_fix() {
        let s = spec(r#"{"fields": {"key": "sku"}}"#).expect("parses");
        let e = s.check("products").expect_err("no slash");
        assert_eq!(e.field.as_deref(), Some("products"));
        assert!(e.message.contains("\"/sku\""), "{}", e.message);
        let s = spec(r#"{"fields": {"key": "/sku", "colour": "/c"}}"#).expect("parses");
        assert!(
            s.check("products")
                .expect_err("unknown")
                .message
                .contains("colour")
        );
        let s = spec(r#"{"fields": {"name": "/n"}}"#).expect("parses");
        assert!(
            s.check("products")
                .expect_err("no key")
                .message
                .contains("\"key\"")
        );
        assert!(spec(r#"{"fields": {"key": "/k"}, "colour": 1}"#).is_err());
    }
}
