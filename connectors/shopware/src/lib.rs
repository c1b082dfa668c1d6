//! The Shopware 6 connector (6.4 to 6.7, Admin API) as a koppel component.
//!
//! Streams: `products` (write, lookup), `stock` (write, lookup), `orders` (read, lookup),
//! `order-status` (write), `customers` (lookup). The protocol code (request builders, answer
//! parsers, mappers, planners) is plain Rust and unit-tested natively; this file only wires
//! it to the contract. See README.md for what each stream maps to.

pub mod api;
pub mod config;
pub mod criteria;
pub mod errors;
pub mod ids;
pub mod lookup;
pub mod machine_table;
pub mod machines;
pub mod money;
pub mod orders;
pub mod products;
pub mod refdata;
pub mod status;
pub mod stock;
pub mod sync;
pub mod text;
pub mod time;

use koppel_sdk::{
    Connector, ConnectorError, Found, Manifest, Page, Record, RecordKind, Result, Settings, Stream,
    StreamAccess, WriteOptions, WriteOutcome,
};

use crate::api::Client;
use crate::config::Config;
use crate::refdata::Shop;

/// What one instance keeps between calls: the config, the client (token, version) and the
/// reference data read so far.
pub struct State {
    config: Config,
    client: Client,
    shop: Shop,
}

impl State {
    fn new(config: Config) -> State {
        let client = Client::new(
            &config.shop_url,
            &config.access_key_id,
            &config.secret_access_key,
        );
        State {
            config,
            client,
            shop: Shop::default(),
        }
    }
}

fn stream(name: &str, kind: RecordKind, access: StreamAccess, description: &str) -> Stream {
    Stream {
        name: name.into(),
        kind,
        access,
        description: description.into(),
    }
}

/// The connector's manifest.
pub fn manifest() -> Manifest {
    Manifest {
        id: "shopware".into(),
        name: "Shopware 6".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Shopware 6.4 to 6.7 through the Admin API: products and stock in, orders \
                      out, order status back."
            .into(),
        streams: vec![
            stream(
                "products",
                RecordKind::Product,
                StreamAccess::WRITE | StreamAccess::LOOKUP,
                "Products and variant families, upserted by product number (lookup: by number).",
            ),
            stream(
                "stock",
                RecordKind::Stock,
                StreamAccess::WRITE | StreamAccess::LOOKUP,
                "Sellable stock and the closeout flag, by product number.",
            ),
            stream(
                "orders",
                RecordKind::Order,
                StreamAccess::READ | StreamAccess::LOOKUP,
                "Orders in the configured states, changed since the last read (lookup: by number).",
            ),
            stream(
                "order-status",
                RecordKind::OrderStatus,
                StreamAccess::WRITE,
                "Order, payment and delivery states and tracking codes, by order number.",
            ),
            stream(
                "customers",
                RecordKind::Customer,
                StreamAccess::LOOKUP,
                "Customers, by e-mail.",
            ),
        ],
        config: config::fields(),
        outbound_hosts: vec!["{shop_url}".into()],
    }
}

fn canonical_stream(name: &str) -> &str {
    match name {
        "order_status" | "order-statuses" => "order-status",
        "product" => "products",
        "order" => "orders",
        "customer" => "customers",
        other => other,
    }
}

fn unknown_stream(stream: &str, operation: &str) -> ConnectorError {
    ConnectorError::unsupported(format!(
        "the Shopware connector cannot {operation} the stream {stream:?}"
    ))
}

/// The connector, exported with the SDK's skeleton.
pub struct Shopware;

impl Connector for Shopware {
    type Instance = State;

    fn manifest() -> Manifest {
        manifest()
    }

    fn check(config: Settings) -> Result<()> {
        let mut state = State::new(Config::from_settings(&config)?);
        // A token (credentials), the version (supported), the currency and the channels.
        state.client.version()?;
        state
            .shop
            .check_default_currency(&state.client, &state.config)?;
        state.shop.channels(&state.client, &state.config)?;
        Ok(())
    }

    fn configure(config: Settings) -> Result<State> {
        Ok(State::new(Config::from_settings(&config)?))
    }

    fn read(s: &mut State, stream: &str, state: Option<&str>, limit: u32) -> Result<Page> {
        match canonical_stream(stream) {
            "orders" => orders::read(&s.client, &s.config, state, limit),
            _ => Err(unknown_stream(stream, "read")),
        }
    }

    fn write(
        s: &mut State,
        stream: &str,
        records: Vec<Record>,
        options: &WriteOptions,
    ) -> Result<Vec<WriteOutcome>> {
        match canonical_stream(stream) {
            "products" => {
                options.expect_settings("products", &[])?;
                products::write(&s.client, &mut s.shop, &s.config, &records, options)
            }
            "stock" => {
                options.expect_settings("stock", &["manage_stock"])?;
                stock::write(&s.client, &s.config, &records, options)
            }
            "order-status" => {
                options.expect_settings("order-status", &["allow_reopen"])?;
                status::write(&s.client, &s.config, &records, options)
            }
            _ => Err(unknown_stream(stream, "write")),
        }
    }

    fn lookup(s: &mut State, stream: &str, key: &str) -> Result<Option<Found>> {
        match canonical_stream(stream) {
            "products" => lookup::product(&s.client, &mut s.shop, key),
            "stock" => lookup::stock(&s.client, key),
            "orders" => lookup::order(&s.client, key),
            "customers" => lookup::customer(&s.client, key),
            _ => Err(unknown_stream(stream, "look up in")),
        }
    }
}

koppel_sdk::export_connector!(Shopware);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_names_its_streams_and_only_the_shop_host() {
        let manifest = manifest();
        assert_eq!(manifest.id, "shopware");
        let names: Vec<&str> = manifest.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            vec!["products", "stock", "orders", "order-status", "customers"]
        );
        assert_eq!(manifest.outbound_hosts, vec!["{shop_url}"]);
        assert!(manifest.config.iter().any(|f| f.name == "shop_url"));
        assert_eq!(canonical_stream("order_status"), "order-status");
    }
}
