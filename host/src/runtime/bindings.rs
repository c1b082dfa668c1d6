//! Host-side bindings generated from `wit/`: the canonical records, the manifest, and the
//! typed exports of a connector.

wasmtime::component::bindgen!({
    world: "connector-world",
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
