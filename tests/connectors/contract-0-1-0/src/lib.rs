//! A connector as a third party built it against contract 0.1.0, before typed config
//! values: `wit/` here is a frozen copy of that release, and there is no SDK. Its `config`
//! stream reads back what `configure` received (one reference record whose fields are the
//! config's pairs), so the host's tests see the strings an old connector gets.

// Natively (`cargo test --workspace`) nothing exports the connector, so nothing uses it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::cell::RefCell;

wit_bindgen::generate!({
    world: "connector-world",
    path: "wit",
    generate_all,
});

use exports::koppel::connector::connector::{
    Config, Found, Guest, Page, WriteOptions, WriteOutcome,
};
use koppel::connector::manifest_types::{
    ConfigField, ConfigKind, ConnectorManifest, Stream, StreamAccess,
};
use koppel::connector::types::{
    ConnectorError, ErrorKind, NamedValue, Record, RecordKind, ReferenceEntry, Value,
};

struct Old;

thread_local! {
    static CONFIG: RefCell<Config> = const { RefCell::new(Vec::new()) };
}

fn field(name: &str, kind: ConfigKind) -> ConfigField {
    ConfigField {
        name: name.into(),
        label: name.into(),
        description: format!("The {name}."),
        kind,
        required: false,
        default: None,
        choices: vec![],
    }
}

fn unsupported(what: &str) -> ConnectorError {
    ConnectorError {
        kind: ErrorKind::Unsupported,
        message: format!("{what} is not supported"),
        field: None,
        retryable: false,
    }
}

impl Guest for Old {
    fn manifest() -> ConnectorManifest {
        ConnectorManifest {
            id: "contract-0-1-0".into(),
            name: "Built against contract 0.1.0".into(),
            version: "1.0.0".into(),
            description: "A connector from before typed config values.".into(),
            streams: vec![Stream {
                name: "config".into(),
                kind: RecordKind::Reference,
                access: StreamAccess::READ,
                description: "What configure received.".into(),
            }],
            config: vec![
                field("label", ConfigKind::Text),
                field("count", ConfigKind::Integer),
                field("mapping", ConfigKind::Json),
            ],
            outbound_hosts: vec![],
        }
    }

    fn check(_config: Config) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn configure(config: Config) -> Result<(), ConnectorError> {
        // A host import of 0.1.0, so the host must link `host@0.1.0` to its own.
        koppel::connector::host::log(
            koppel::connector::host::Level::Info,
            "Configured.",
            &[("keys".into(), config.len().to_string())],
        );
        CONFIG.with(|c| *c.borrow_mut() = config);
        Ok(())
    }

    fn read(stream: String, _state: Option<String>, _limit: u32) -> Result<Page, ConnectorError> {
        if stream != "config" {
            return Err(unsupported(&format!("stream {stream:?}")));
        }
        let fields = CONFIG.with(|c| {
            c.borrow()
                .iter()
                .map(|(name, value)| NamedValue {
                    name: name.clone(),
                    value: Value::Text(value.clone()),
                })
                .collect()
        });
        Ok(Page {
            records: vec![Record::Reference(ReferenceEntry {
                key: "config".into(),
                name: "What configure received".into(),
                fields,
            })],
            state: None,
            has_more: false,
        })
    }

    fn write(
        _stream: String,
        _records: Vec<Record>,
        _options: WriteOptions,
    ) -> Result<Vec<WriteOutcome>, ConnectorError> {
        Err(unsupported("writing"))
    }

    fn lookup(_stream: String, _key: String) -> Result<Option<Found>, ConnectorError> {
        Err(unsupported("lookup"))
    }
}

#[cfg(target_arch = "wasm32")]
export!(Old);
