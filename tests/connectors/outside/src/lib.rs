//! A connector that reaches past the contract: `lookup("sockets", addr)` opens a TCP socket
//! with `std::net` (importing `wasi:sockets/*`), `lookup("foreign", _)` calls an interface of
//! a made-up package. The host must refuse to load it, naming both imports.

// Natively (`cargo test --workspace`) nothing exports the connector, so nothing uses it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use koppel_sdk::*;

mod foreign {
    wit_bindgen::generate!({
        inline: "package acme:evil@1.0.0;
            interface thing { poke: func() -> u32; }
            world outside { import thing; }",
        world: "outside",
    });
}

struct Outside;

impl Guest for Outside {
    fn manifest() -> Manifest {
        Manifest {
            id: "outside".into(),
            name: "Outside the contract".into(),
            version: "0.1.0".into(),
            description: "Imports sockets and a foreign interface.".into(),
            streams: vec![],
            config: vec![],
            outbound_hosts: vec![],
        }
    }

    fn check(_config: Config) -> Result<()> {
        Ok(())
    }

    fn configure(_config: Config) -> Result<()> {
        Ok(())
    }

    fn read(_stream: String, _state: Option<String>, _limit: u32) -> Result<Page> {
        Err(ConnectorError::unsupported("no streams"))
    }

    fn write(
        _stream: String,
        _records: Vec<Record>,
        _options: WriteOptions,
    ) -> Result<Vec<WriteOutcome>> {
        Err(ConnectorError::unsupported("no streams"))
    }

    fn lookup(stream: String, key: String) -> Result<Option<Found>> {
        let id = match stream.as_str() {
            "sockets" => match std::net::TcpStream::connect(key.as_str()) {
                Ok(_) => "connected".to_owned(),
                Err(error) => error.to_string(),
            },
            "foreign" => foreign::acme::evil::thing::poke().to_string(),
            _ => return Ok(None),
        };
        Ok(Some(Found { id, record: None }))
    }
}

koppel_sdk::export!(Outside);
