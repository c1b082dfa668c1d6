//! Host-side bindings generated from `wit/`: the canonical records, the manifest, and the
//! typed exports of a connector. The world bound is `connector-core`, what every connector
//! has (0.1.0 and later); `config-types` (0.1.1), which older components lack, is bound on
//! its own in [`typed`] and looked up per component.

wasmtime::component::bindgen!({
    world: "connector-core",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
});

pub use self::koppel::connector::host::{HttpError, HttpRequest, HttpResponse, Level, Method};
pub use self::koppel::connector::manifest_types::{
    ConfigField, ConfigKind, ConnectorManifest as Manifest, Stream, StreamAccess,
};
pub use self::koppel::connector::types::{
    Address, Amount, ConnectorError, Customer, Decimal, DeliveryState, ErrorKind, ExternalId,
    NamedValue, Order, OrderLine, OrderState, OrderStatus, PaymentState, Price, Product, Property,
    Record, RecordKind, ReferenceEntry, Shipping, StockLevel, Value, Variant,
};
pub use exports::koppel::connector::connector::{
    Found, OutcomeStatus, Page, WriteOptions, WriteOutcome,
};
pub use typed::exports::koppel::connector::config_types::{TypedKey, ValueType};

/// The `config-types` export (contract 0.1.1), bound apart from [`ConnectorCore`] so that a
/// component without it still loads. The shared interfaces are the ones above.
pub mod typed {
    wasmtime::component::bindgen!({
        world: "connector-world",
        path: "../wit",
        imports: { default: async },
        exports: { default: async },
        with: {
            "koppel:connector/types": super::koppel::connector::types,
            "koppel:connector/manifest-types": super::koppel::connector::manifest_types,
            "koppel:connector/host": super::koppel::connector::host,
        },
        additional_derives: [serde::Serialize, serde::Deserialize, PartialEq],
    });
}

impl ValueType {
    /// The type's name in the contract (`table`).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::Text => "text",
            ValueType::Integer => "integer",
            ValueType::Number => "number",
            ValueType::Boolean => "boolean",
            ValueType::List => "list",
            ValueType::Table => "table",
        }
    }
}

// Flags get no serde derive from bindgen: (de)serialise them as a list of names.
impl serde::Serialize for StreamAccess {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let names: Vec<&str> = [
            (StreamAccess::READ, "read"),
            (StreamAccess::WRITE, "write"),
            (StreamAccess::LOOKUP, "lookup"),
        ]
        .into_iter()
        .filter(|(flag, _)| self.contains(*flag))
        .map(|(_, name)| name)
        .collect();
        names.serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for StreamAccess {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        let mut access = StreamAccess::empty();
        for name in names {
            access |= match name.as_str() {
                "read" => StreamAccess::READ,
                "write" => StreamAccess::WRITE,
                "lookup" => StreamAccess::LOOKUP,
                other => {
                    return Err(serde::de::Error::unknown_variant(
                        other,
                        &["read", "write", "lookup"],
                    ));
                }
            };
        }
        Ok(access)
    }
}

impl RecordKind {
    /// The kind's name in the contract (`order-status`).
    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Product => "product",
            RecordKind::Stock => "stock",
            RecordKind::Customer => "customer",
            RecordKind::Order => "order",
            RecordKind::OrderStatus => "order-status",
            RecordKind::Reference => "reference",
        }
    }
}

impl OutcomeStatus {
    /// The outcome's name in the contract and the state database (`unchanged`).
    pub fn name(self) -> &'static str {
        match self {
            OutcomeStatus::Created => "created",
            OutcomeStatus::Updated => "updated",
            OutcomeStatus::Unchanged => "unchanged",
            OutcomeStatus::Skipped => "skipped",
            OutcomeStatus::Failed => "failed",
        }
    }
}

impl ConfigKind {
    /// The kind's name in the contract (`secret`).
    pub fn name(self) -> &'static str {
        match self {
            ConfigKind::Text => "text",
            ConfigKind::Secret => "secret",
            ConfigKind::Url => "url",
            ConfigKind::Integer => "integer",
            ConfigKind::Boolean => "boolean",
            ConfigKind::Choice => "choice",
            ConfigKind::Json => "json",
        }
    }
}
