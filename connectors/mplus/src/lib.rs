//! The MplusKASSA connector: MplusQapi (SOAP 1.1) as a koppel component.
//!
//! The protocol code — envelopes ([`ops`], [`soap`]), answers ([`wire`]), the mappings to and
//! from canonical records ([`products`], [`stock`], [`customers`], [`orders`], [`status`],
//! [`reference`]) — is plain Rust that compiles and is tested natively, over a [`Transport`]
//! that the component implements with the host's `http-send`. Streams and their states are
//! described in `README.md`.

pub mod changes;
pub mod config;
pub mod connector;
pub mod country;
pub mod customers;
pub mod ops;
pub mod orders;
pub mod products;
pub mod reference;
pub mod soap;
pub mod status;
pub mod stock;
pub mod time;
pub mod whole;
pub mod wire;

use koppel_sdk::http::Request;
use koppel_sdk::*;

use crate::config::MplusConfig;
use crate::connector::Mplus;
use crate::soap::{Call, Reply, Transport};

/// Errors that concern the whole connection (credentials, config): a write stops at them
/// instead of failing every record alike.
pub fn aborts_batch(error: &ConnectorError) -> bool {
    matches!(error.kind, ErrorKind::Auth | ErrorKind::Config)
}

/// `http-send` through the host.
pub struct HostTransport {
    endpoint: String,
    host: String,
}

impl HostTransport {
    pub fn new(config: &MplusConfig) -> Self {
        HostTransport {
            endpoint: config.endpoint.clone(),
            host: config.host.clone(),
        }
    }
}

impl Transport for HostTransport {
    fn send(&mut self, call: Call) -> Result<Reply> {
        let response = Request::post(self.endpoint.as_str())
            .header("SOAPAction", call.operation)
            .body("text/xml; charset=utf-8", call.body)
            .retry_safe(call.retry_safe)
            .send()?;
        Ok(Reply {
            status: response.status(),
            body: response.into_bytes(),
        })
    }

    fn host(&self) -> &str {
        &self.host
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
    let mut streams = vec![
        stream(
            "products",
            RecordKind::Product,
            StreamAccess::READ | StreamAccess::LOOKUP,
            "Products by article sync marker; a product with several articles is a variant family (key P<productNumber>).",
        ),
        stream(
            "stock",
            RecordKind::Stock,
            StreamAccess::READ,
            "On-hand, reserved and available stock per article and branch; full read, then by stock marker.",
        ),
        stream(
            "customers",
            RecordKind::Customer,
            StreamAccess::READ | StreamAccess::WRITE | StreamAccess::LOOKUP,
            "Relations: lookup by e-mail, write creates or updates (company or person).",
        ),
        stream(
            "orders",
            RecordKind::Order,
            StreamAccess::WRITE | StreamAccess::LOOKUP,
            "Web orders written with createOrderV3 (idempotent); lookup by external order id.",
        ),
        stream(
            "order-status",
            RecordKind::OrderStatus,
            StreamAccess::READ,
            "Deliveries, payments and cancellations of web orders since the last order marker.",
        ),
    ];
    streams.extend(reference::STREAMS.iter().map(|(name, description)| {
        stream(name, RecordKind::Reference, StreamAccess::READ, description)
    }));
    streams.push(stream(
        "changes",
        RecordKind::Reference,
        StreamAccess::READ,
        "What moved, for koppel's change watch: per stream (stock, products, customers, order-status, employees) its current sync marker, from one getCurrentSyncMarkers.",
    ));
    Manifest {
        id: "mplus".into(),
        name: "MplusKASSA".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "MplusKASSA point of sale through its SOAP API (MplusQapi): products, stock, customers, orders and order status.".into(),
        streams,
        config: config::schema(),
        outbound_hosts: vec!["{base_url}".into()],
    }
}

/// Reads a page of a stream.
pub fn read_stream<T: Transport>(
    m: &mut Mplus<T>,
    stream: &str,
    state: Option<&str>,
    limit: u32,
) -> Result<Page> {
    match stream {
        "products" => products::read(m, state, limit),
        "stock" => stock::read(m, state, limit),
        "customers" => customers::read(m, state, limit),
        "order-status" => status::read(m, state, limit),
        "changes" => changes::read(m, state, limit),
        "orders" => Err(ConnectorError::unsupported(
            "the orders stream is written, not read: read `order-status` for what happened to them",
        )),
        other => reference::read(m, other, state, limit),
    }
}

pub fn write_stream<T: Transport>(
    m: &mut Mplus<T>,
    stream: &str,
    records: &[Record],
    options: &WriteOptions,
) -> Result<Vec<WriteOutcome>> {
    match stream {
        "orders" => {
            options.expect_settings("orders", &["order_type"])?;
            orders::write(m, records, options)
        }
        "customers" => {
            options.expect_settings("customers", &[])?;
            customers::write(m, records, &CreateOnly::of(options))
        }
        other => Err(ConnectorError::unsupported(format!(
            "mplus does not write {other:?}: it writes `orders` and `customers`"
        ))),
    }
}

pub fn lookup_stream<T: Transport>(
    m: &mut Mplus<T>,
    stream: &str,
    key: &str,
) -> Result<Option<Found>> {
    match stream {
        "orders" => orders::lookup(m, key),
        "customers" => customers::lookup(m, key),
        "products" => products::lookup(m, key),
        other => Err(ConnectorError::unsupported(format!(
            "mplus has no lookup on {other:?}: it looks up `orders`, `customers` and `products`"
        ))),
    }
}

/// The connector, exported with the SDK's skeleton: an instance is the configured [`Mplus`]
/// over the host's `http-send`.
pub struct MplusConnector;

impl koppel_sdk::Connector for MplusConnector {
    type Instance = Mplus<HostTransport>;

    fn manifest() -> Manifest {
        manifest()
    }

    fn config_types() -> Vec<TypedKey> {
        config::types()
    }

    fn check(config: Settings) -> Result<()> {
        let config = MplusConfig::from_settings(&config)?;
        let transport = HostTransport::new(&config);
        let version = soap::Client::new(transport).check()?;
        log::info(
            "MplusKASSA answered.",
            &[(
                "api_version",
                &format!(
                    "{}.{}.{}",
                    version.major_number, version.minor_number, version.revision_number
                ),
            )],
        );
        Ok(())
    }

    fn configure(config: Settings) -> Result<Self::Instance> {
        let config = MplusConfig::from_settings(&config)?;
        let transport = HostTransport::new(&config);
        Ok(Mplus::new(config, transport))
    }

    fn read(m: &mut Self::Instance, stream: &str, state: Option<&str>, limit: u32) -> Result<Page> {
        read_stream(m, stream, state, limit)
    }

    fn write(
        m: &mut Self::Instance,
        stream: &str,
        records: Vec<Record>,
        options: &WriteOptions,
    ) -> Result<Vec<WriteOutcome>> {
        write_stream(m, stream, &records, options)
    }

    fn lookup(m: &mut Self::Instance, stream: &str, key: &str) -> Result<Option<Found>> {
        lookup_stream(m, stream, key)
    }
}

koppel_sdk::export_connector!(MplusConnector);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A reference example envelope, read where the reference lives (`KOPPEL_REFERENCE_DIR`,
    /// else `../shared/reference` beside the repository); it is never copied into the project.
    pub fn example(name: &str) -> std::path::PathBuf {
        let reference = std::env::var_os("KOPPEL_REFERENCE_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
            });
        reference.join("mplus/examples").join(name)
    }

    #[test]
    fn the_manifest_names_every_stream_once_and_only_the_base_url_as_host() {
        let m = manifest();
        let names: Vec<&str> = m.streams.iter().map(|s| s.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert!(names.contains(&"order-status") && names.contains(&"employees"));
        assert_eq!(m.outbound_hosts, vec!["{base_url}".to_owned()]);
        let secret = m
            .config
            .iter()
            .find(|f| f.name == "secret")
            .expect("secret");
        assert_eq!(secret.kind, ConfigKind::Secret);
        let employee = m
            .config
            .iter()
            .find(|f| f.name == "employee_number")
            .expect("employee");
        assert!(matches!(employee.default, Some(Value::Integer(999_999))));
    }
}
