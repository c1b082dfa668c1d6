//! The guest side of the koppel contract: generated bindings for `wit/` and the helpers a
//! connector author needs.
//!
//! A connector is a `cdylib` (plus `rlib`, so its protocol code can be unit-tested natively)
//! that implements [`Connector`] and exports it:
//!
//! ```text
//! use koppel_sdk::*;
//!
//! struct MyConnector;
//!
//! impl Connector for MyConnector {
//!     type Instance = MyClient; // what `configure` builds from the config
//!     fn manifest() -> Manifest { /* ... */ }
//!     fn check(config: Settings) -> Result<()> { /* ... */ }
//!     fn configure(config: Settings) -> Result<MyClient> { /* ... */ }
//!     /* read, write, lookup: each gets `&mut MyClient` */
//! }
//!
//! koppel_sdk::export_connector!(MyConnector);
//! ```
//!
//! Besides the bindings: [`http`] (requests through the host, one default table from HTTP
//! status to error), [`money`] (net, gross and tax in minor units), [`time`] (timestamps
//! without a clock), [`write::CreateOnly`] (contract rule 4.7), [`config::Settings`],
//! [`decimal`], [`kv`] and [`log`]. A connector that needs the contract's exports as they
//! are implements [`Guest`] and uses [`export!`].
//!
//! Built with `cargo build --target wasm32-wasip2`, the crate is a component the host loads.
//! Natively the host imports are stubs that panic, so native tests exercise the pure parts
//! (parsers, builders, mappers) only.

pub mod config;
pub mod connector;
pub mod decimal;
pub mod error;
pub mod http;
pub mod kv;
pub mod log;
pub mod money;
pub mod time;
pub mod write;

/// The bindings generated from `wit/`.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "connector-world",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "koppel_sdk::bindings",
        export_macro_name: "export_component",
        generate_all,
    });
}

/// Exports a [`Guest`] implementation as the component's connector:
/// `koppel_sdk::export!(MyConnector);`.
///
/// With `config_types = path::to::fn` (a `fn() -> Vec<TypedKey>`), the connector also says
/// which config keys are tables, lists, numbers or booleans (contract 0.1.1), so users write
/// them as plain TOML: `koppel_sdk::export!(MyConnector, config_types = config::types);`.
/// Without it every key takes what its [`ConfigKind`] implies.
///
/// The export exists only when building for `wasm32`: a native build of the same crate (its
/// unit tests, or `cargo test --workspace`) links as a plain library, because the component's
/// export names (`koppel:connector/connector@0.1.1#read`) are not valid native symbol names.
#[macro_export]
macro_rules! export {
    ($connector:ident) => {
        $crate::export!($connector, config_types = $crate::config::no_types);
    };
    ($connector:ident, config_types = $types:path) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            impl $crate::bindings::exports::koppel::connector::config_types::Guest for $connector {
                fn config_types() -> ::std::vec::Vec<$crate::TypedKey> {
                    $types()
                }
            }
        };
        #[cfg(target_arch = "wasm32")]
        $crate::bindings::export_component!($connector);
    };
}
pub use bindings::exports::koppel::connector::config_types::{TypedKey, ValueType};
pub use bindings::exports::koppel::connector::connector::{
    Config, Found, Guest, OutcomeStatus, Page, WriteOptions, WriteOutcome,
};
pub use bindings::koppel::connector::manifest_types::{
    ConfigField, ConfigKind, ConnectorManifest as Manifest, Stream, StreamAccess,
};
pub use bindings::koppel::connector::types::{
    Address, Amount, ConnectorError, Customer, Decimal, DeliveryState, ErrorKind, ExternalId,
    NamedValue, Order, OrderLine, OrderState, OrderStatus, PaymentState, Price, Product, Property,
    Record, RecordKind, ReferenceEntry, Shipping, StockLevel, Value, Variant,
};
pub use config::Settings;
pub use connector::Connector;
pub use error::Result;
pub use write::CreateOnly;

impl TypedKey {
    /// `name` takes values of `type_`; `example` is one as written in `koppel.toml` after
    /// `name =` (`{ "21" = 1, DE = { "21" = 3 } }`).
    pub fn new(name: &str, type_: ValueType, example: &str) -> Self {
        TypedKey {
            name: name.to_owned(),
            type_,
            example: example.to_owned(),
        }
    }
}

impl WriteOutcome {
    fn with(key: &str, status: OutcomeStatus, target_id: Option<String>) -> Self {
        WriteOutcome {
            key: key.to_owned(),
            status,
            target_id,
            message: None,
            field: None,
            retryable: false,
        }
    }

    pub fn created(key: &str, target_id: impl Into<String>) -> Self {
        Self::with(key, OutcomeStatus::Created, Some(target_id.into()))
    }

    pub fn updated(key: &str, target_id: impl Into<String>) -> Self {
        Self::with(key, OutcomeStatus::Updated, Some(target_id.into()))
    }

    pub fn unchanged(key: &str, target_id: Option<String>) -> Self {
        Self::with(key, OutcomeStatus::Unchanged, target_id)
    }

    pub fn skipped(key: &str, reason: impl Into<String>) -> Self {
        WriteOutcome {
            message: Some(reason.into()),
            ..Self::with(key, OutcomeStatus::Skipped, None)
        }
    }

    /// A record the target refused; `field` names the field at fault when known.
    pub fn failed(key: &str, message: impl Into<String>, field: Option<&str>) -> Self {
        WriteOutcome {
            message: Some(message.into()),
            field: field.map(str::to_owned),
            ..Self::with(key, OutcomeStatus::Failed, None)
        }
    }

    /// A record that failed for a reason that may pass later (throttling, an outage).
    pub fn failed_retryable(key: &str, message: impl Into<String>) -> Self {
        WriteOutcome {
            retryable: true,
            ..Self::failed(key, message, None)
        }
    }

    /// Turns a call-level error into this record's outcome.
    pub fn from_error(key: &str, error: &ConnectorError) -> Self {
        WriteOutcome {
            message: Some(error.message.clone()),
            field: error.field.clone(),
            retryable: error.retryable,
            ..Self::with(key, OutcomeStatus::Failed, None)
        }
    }
}

impl Record {
    /// The record's key, whatever its kind.
    pub fn key(&self) -> &str {
        match self {
            Record::Product(p) => &p.key,
            Record::Stock(s) => &s.key,
            Record::Customer(c) => &c.key,
            Record::Order(o) => &o.key,
            Record::OrderStatus(s) => &s.key,
            Record::Reference(r) => &r.key,
        }
    }

    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Product(_) => RecordKind::Product,
            Record::Stock(_) => RecordKind::Stock,
            Record::Customer(_) => RecordKind::Customer,
            Record::Order(_) => RecordKind::Order,
            Record::OrderStatus(_) => RecordKind::OrderStatus,
            Record::Reference(_) => RecordKind::Reference,
        }
    }
}

impl NamedValue {
    pub fn text(name: &str, value: impl Into<String>) -> Self {
        NamedValue {
            name: name.to_owned(),
            value: Value::Text(value.into()),
        }
    }

    pub fn integer(name: &str, value: i64) -> Self {
        NamedValue {
            name: name.to_owned(),
            value: Value::Integer(value),
        }
    }

    pub fn boolean(name: &str, value: bool) -> Self {
        NamedValue {
            name: name.to_owned(),
            value: Value::Boolean(value),
        }
    }
}

impl WriteOptions {
    /// Refuses a write setting the connector does not know for `stream`, naming it and the
    /// known ones, so a typo in `[flows.<flow>.settings]` stops the run with the fix instead
    /// of being ignored (contract rule 4.7).
    pub fn expect_settings(&self, stream: &str, known: &[&str]) -> Result<()> {
        match self
            .settings
            .iter()
            .find(|s| !known.contains(&s.name.as_str()))
        {
            None => Ok(()),
            Some(unknown) => Err(ConnectorError::config(
                &format!("settings.{}", unknown.name),
                format!(
                    "`{}` is not a write setting of stream `{stream}`; {}",
                    unknown.name,
                    if known.is_empty() {
                        "it takes none: remove it from the flow's [settings]".to_owned()
                    } else {
                        format!("it takes: {}", known.join(", "))
                    }
                ),
            )),
        }
    }
}

/// Finds a named value in an `extra` list.
pub fn extra<'a>(values: &'a [NamedValue], name: &str) -> Option<&'a Value> {
    values.iter().find(|v| v.name == name).map(|v| &v.value)
}

impl Value {
    /// The value as text, for the kinds that have an obvious one.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Text(s) | Value::Json(s) => Some(s.clone()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Number(d) => Some(d.to_string()),
            Value::Boolean(b) => Some(b.to_string()),
        }
    }
}
