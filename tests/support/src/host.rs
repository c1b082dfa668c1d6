use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use koppel::flow::{ConnectionSetup, Environment};
use koppel::model::{Decimal, Record, StockLevel};
use koppel::runtime::{Connector, Limits, Runtime, RuntimeOptions, TenantQuota};
use koppel::store::{ActivityWriter, Store};

/// A runtime whose compiled components are cached under `tmp` (pass
/// `env!("CARGO_TARGET_TMPDIR")`: a cache per target directory, shared by its test binaries).
pub fn runtime(tmp: &str) -> Runtime {
    Runtime::new(RuntimeOptions {
        cache_dir: Some(Path::new(tmp).join("component-cache")),
        ..RuntimeOptions::default()
    })
    .expect("runtime")
}

/// The fixture connector (tests/connectors/fixture, built by host/build.rs).
pub async fn fixture(runtime: &Runtime) -> Arc<Connector> {
    let path = koppel::connectors::test_guest("fixture")
        .expect("the fixture connector is built by build.rs");
    runtime.load_file(path).await.expect("load the fixture")
}

/// Tenant `t1` with a state database in `dir` and two fixture connections: `src`, whose
/// `products` stream holds `total` records, and an empty `dst`.
pub async fn fixture_environment(tmp: &str, dir: &tempfile::TempDir, total: u32) -> Environment {
    let connector = fixture(&runtime(tmp)).await;
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start(store.clone());
    let setup = |total: u32| ConnectionSetup {
        connector: connector.clone(),
        config: BTreeMap::from([("total".to_owned(), total.to_string())]),
        limits: Limits::default(),
        supplied: Default::default(),
    };
    Environment {
        tenant: "t1".into(),
        store,
        activity,
        connections: BTreeMap::from([
            ("src".to_owned(), setup(total)),
            ("dst".to_owned(), setup(0)),
        ]),
        quota: TenantQuota::unlimited("t1"),
    }
}

/// A whole number as the model's decimal.
pub fn whole(units: i64) -> Decimal {
    Decimal { units, scale: 0 }
}

/// A stock level of `key`: `available` sellable, `reserved` held for orders, on hand both.
pub fn stock_level(key: &str, available: i64, reserved: i64) -> Record {
    Record::Stock(StockLevel {
        key: key.into(),
        on_hand: whole(available + reserved),
        reserved: whole(reserved),
        available: whole(available),
        location: None,
        extra: vec![],
    })
}
