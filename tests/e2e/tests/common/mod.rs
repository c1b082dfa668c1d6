//! What the flow tests and the flow benchmark share: both simulators in this process, a
//! `koppel.toml` written for them, and the flows run from it the way `koppel sync` runs them.
//! Request counters tell reads from writes on either side.

#![allow(dead_code)]

pub mod measure;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;

use koppel::app::App;
use koppel::flow::schedule::Scheduler;
use koppel::flow::{Environment, Loaded, RunOptions, RunSummary, run_flow};
use koppel::runtime::Runtime;
use koppel_sim_mplus::{MplusOptions, MplusSimulator};
use koppel_sim_shopware::{ShopwareOptions, ShopwareSimulator, Version};
use tokio_util::sync::CancellationToken;

/// A till and a shop, both simulated.
pub struct Systems {
    pub till: MplusSimulator,
    pub shop: ShopwareSimulator,
}

/// The catalogue the till starts with.
#[derive(Clone, Debug)]
pub struct Catalogue {
    pub products: usize,
    pub variant_share: f64,
    pub branches: usize,
    /// Check every message against the WSDL and the OpenAPI file (tests: on; bench: off).
    pub validate: bool,
    pub seed: u64,
}

impl Default for Catalogue {
    fn default() -> Self {
        Catalogue {
            products: 60,
            variant_share: 0.3,
            branches: 2,
            validate: true,
            seed: 7,
        }
    }
}

impl Systems {
    pub async fn start(catalogue: Catalogue) -> Systems {
        let till = MplusSimulator::start(MplusOptions {
            seed: catalogue.seed,
            products: catalogue.products,
            variant_share: catalogue.variant_share,
            branches: catalogue.branches,
            validate: catalogue.validate,
            ..MplusOptions::default()
        })
        .await
        .expect("start the MplusKASSA simulator");
        let shop = ShopwareSimulator::start(ShopwareOptions {
            version: Version::V6_6,
            seed: catalogue.seed,
            validate: catalogue.validate,
            ..ShopwareOptions::default()
        })
        .await
        .expect("start the Shopware simulator");
        if catalogue.validate {
            assert!(
                till.validating() && shop.schema_loaded(),
                "the reference files must be found (../shared/reference or KOPPEL_REFERENCE_DIR): checking every message is part of these tests"
            );
        }
        Systems { till, shop }
    }

    /// Requests to Shopware that change something (syncs, updates, state transitions).
    pub fn shop_writes(&self) -> u64 {
        shop_writes(&self.shop)
    }

    /// Requests to MplusKASSA that change something.
    pub fn till_writes(&self) -> u64 {
        till_writes(&self.till)
    }

    /// Nothing either side received broke its schema, and no answer did.
    pub fn assert_valid(&self) {
        self.till.assert_no_violations(0);
        let omissions = self.till.omissions();
        assert!(
            omissions.is_empty(),
            "the MplusKASSA connector left out what the schema requires (tolerated only for \
             other clients): {omissions:#?}"
        );
        let violations = self.shop.violations();
        assert!(violations.is_empty(), "Shopware schema: {violations:#?}");
    }
}

pub fn shop_writes(shop: &ShopwareSimulator) -> u64 {
    shop.request_counts()
        .iter()
        .filter(|(route, _)| {
            !route.starts_with("GET ")
                && !route.starts_with("POST /api/search")
                && route.as_str() != "POST /api/oauth/token"
        })
        .map(|(_, n)| n)
        .sum()
}

pub fn shop_requests(shop: &ShopwareSimulator) -> u64 {
    shop.request_counts().values().sum()
}

pub fn till_writes(till: &MplusSimulator) -> u64 {
    till.request_counts()
        .iter()
        .filter(|(op, _)| {
            [
                "create", "update", "save", "pay", "deliver", "cancel", "adjust",
            ]
            .iter()
            .any(|p| op.starts_with(p))
        })
        .map(|(_, n)| n)
        .sum()
}

pub fn till_requests(till: &MplusSimulator) -> u64 {
    till.request_counts().values().sum()
}

/// The config a test starts from: both connections, and extra TOML appended (flows, more
/// connection keys under `[connections.till.config]` go in `till`).
pub fn config_text(systems: &Systems, till: &str, shop: &str, rest: &str) -> String {
    format!(
        r#"tenant = "e2e"

[connections.till]
connector = "mplus"
call_timeout = "2m"
[connections.till.config]
base_url = "{till_url}"
ident = "{ident}"
secret = "{secret}"
{till}

[connections.shop]
connector = "shopware"
call_timeout = "2m"
[connections.shop.config]
shop_url = "{shop_url}"
access_key_id = "{client_id}"
secret_access_key = "{client_secret}"
sales_channels = "Storefront"
{shop}

{rest}
"#,
        till_url = systems.till.url(),
        ident = systems.till.ident(),
        secret = systems.till.secret(),
        shop_url = systems.shop.url(),
        client_id = systems.shop.client_id(),
        client_secret = systems.shop.client_secret(),
    )
}

/// The till settings of the order tests: VAT codes per rate and per country, revenue
/// groups per country, payment and delivery methods.
pub const ORDER_SETTINGS: &str = r#"vat_codes = '{"21": 1, "9": 2, "0": 3, "DE": {"21": 3, "9": 3, "0": 3}}'
turnover_groups = '{"NL": 10, "BE": 10, "DE": 40}'
payment_methods = '{"payment_prepayment": "IDEAL", "payment_invoice": "OPREKENING", "payment_debitpayment": "PIN"}'
delivery_methods = '{"shipping_standard": "VERZENDEN", "shipping_pickup": "AFHALEN"}'"#;

pub fn runtime() -> Runtime {
    koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"))
}

/// koppel with one configuration and its own state database.
pub struct Koppel {
    pub dir: tempfile::TempDir,
    pub loaded: Loaded,
    pub env: Environment,
}

impl Koppel {
    /// Every enabled flow on its schedule, as `koppel run` starts them, until `cancel`.
    pub fn schedule(&self, cancel: &CancellationToken) -> Arc<Scheduler> {
        Arc::new(Scheduler::start(
            self.env.clone(),
            self.loaded.flows.clone(),
            cancel.clone(),
            None,
        ))
    }

    pub async fn start(config: &str) -> Koppel {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("koppel.toml");
        std::fs::write(&file, config).expect("write koppel.toml");
        let loaded = Loaded::read(&file).unwrap_or_else(|e| panic!("{e}\n{config}"));
        let App { loaded, env, .. } = App::open(loaded, &runtime())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Koppel { dir, loaded, env }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("koppel.toml")
    }

    pub async fn run_with(&self, flow: &str, full: bool) -> RunSummary {
        let definition = self
            .loaded
            .flow(flow)
            .unwrap_or_else(|| panic!("flow `{flow}` is enabled in the config"));
        let options = RunOptions {
            full,
            trigger: "test".into(),
            ..RunOptions::default()
        };
        run_flow(&self.env, definition, &options)
            .await
            .unwrap_or_else(|e| panic!("{flow}: {e}"))
    }

    /// One run from the saved cursor, as `koppel sync <flow>`.
    pub async fn run(&self, flow: &str) -> RunSummary {
        self.run_with(flow, false).await
    }

    /// One run from the start, as `koppel sync <flow> --full`.
    pub async fn run_full(&self, flow: &str) -> RunSummary {
        self.run_with(flow, true).await
    }

    pub async fn close(self) {
        self.env.activity.flush().await;
        self.env.store.close().await;
    }
}

/// Waits for an async condition, polling (for what has no signal of its own).
pub async fn eventually<F, Fut>(what: &str, timeout: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}
