//! koppel as a Shopware app, end to end. The simulated shop installs the app from the
//! manifest koppel writes, registering with koppel's running server the way Shopware's
//! `AppRegistrationService` does; koppel's shop connection then works with the integration
//! the shop handed over (no credentials in `koppel.toml`), and the shop's signed events
//! (`checkout.order.placed`, `state_enter.order_transaction.state.paid`, sent the way
//! `WebhookDispatcher` sends them) bring orders into the simulated till at once. A wrongly
//! signed registration or event is refused; Shopware's retry after a 503 starts the flow.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Koppel, ORDER_SETTINGS, Systems};
use koppel::config::ShopwareApp;
use koppel::flow::RunSummary;
use koppel::flow::schedule::Scheduler;
use koppel::server::shopware_app::manifest::{ManifestInput, manifest_xml};
use koppel::server::{FlowControl, Started};
use koppel::store::RunStatus;
use koppel_sim_mplus::MplusSimulator;
use koppel_sim_shopware::{
    Delivery, OrderCustomer, OrderLine, PlacedOrder, ShopwareSimulator, StorefrontOrder,
};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const APP_SECRET: &str = "e2e-app-secret-0123456789abcdef0123456789";

/// The schedule as the server sees it, with a gate: while closed, run requests are refused
/// (as while koppel starts or stops) and webhooks are answered 503.
struct Gate {
    scheduler: Arc<Scheduler>,
    open: AtomicBool,
}

impl FlowControl for Gate {
    fn run_now(&self, flow: &str) -> bool {
        self.run_triggered(flow, "manual")
    }

    fn run_triggered(&self, flow: &str, trigger: &'static str) -> bool {
        self.open.load(Ordering::SeqCst) && self.scheduler.run_now(flow, trigger)
    }
}

/// `koppel run` in this process for the app's tenant: the orders flow scheduled hourly (so
/// what arrives at once is the webhooks' doing), the server, and the manifest for it.
struct AppKoppel {
    koppel: Koppel,
    scheduler: Arc<Scheduler>,
    gate: Arc<Gate>,
    runs: broadcast::Receiver<RunSummary>,
    cancel: CancellationToken,
    server: Started,
    manifest: String,
}

fn config(systems: &Systems) -> String {
    format!(
        r#"tenant = "e2e"

[connections.till]
connector = "mplus"
call_timeout = "2m"
[connections.till.config]
base_url = "{till_url}"
ident = "{ident}"
secret = "{secret}"
{ORDER_SETTINGS}

# No credentials: they come with the shop's installation of the koppel app.
[connections.shop]
connector = "shopware"
call_timeout = "2m"
[connections.shop.config]
shop_url = "{shop_url}"
sales_channels = "Storefront"

[shopware_app.shop]
secret = "{APP_SECRET}"
max_age = "5m"

[flows.products]
interval = "1h"
[flows.stock]
interval = "1h"
[flows.orders]
interval = "1h"
[flows.order-status]
interval = "1h"
# MplusKASSA has no tracking codes; the packing slip numbers stand in for them here.
[[flows.order-status.map]]
to = "tracking_codes"
from = "extra.packing_slip_ids"

[server]
listen = "127.0.0.1:0"
tokens = ["e2e-token"]
"#,
        till_url = systems.till.url(),
        ident = systems.till.ident(),
        secret = systems.till.secret(),
        shop_url = systems.shop.url(),
    )
}

impl AppKoppel {
    async fn start(systems: &Systems) -> AppKoppel {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let koppel = Koppel::start(&config(systems)).await;
        let cancel = CancellationToken::new();
        let orders = koppel.loaded.flow("orders").expect("orders").clone();
        let scheduler = Arc::new(Scheduler::start(
            koppel.env.clone(),
            vec![orders],
            cancel.clone(),
            None,
        ));
        let mut runs = scheduler.subscribe();
        let gate = Arc::new(Gate {
            scheduler: scheduler.clone(),
            open: AtomicBool::new(true),
        });
        let control: Arc<dyn FlowControl> = gate.clone();
        let server = koppel::server::start(
            &koppel.loaded,
            koppel.env.clone(),
            Some(control),
            scheduler.subscribe(),
            cancel.clone(),
        )
        .await
        .expect("server");
        // The first scheduled run comes before any installation: it fails and says why.
        let first = runs.recv().await.expect("the first scheduled run");
        assert_eq!(first.flow, "orders");
        assert_eq!(first.status, RunStatus::Failed, "{first:#?}");
        let why = first.error.clone().unwrap_or_default();
        assert!(
            why.contains("access_key_id") && why.contains("koppel app"),
            "the run names what it waits for: {why}"
        );
        let app: &ShopwareApp = &koppel.loaded.config.shopware_app["shop"];
        let events = app.events();
        let manifest = manifest_xml(&ManifestInput {
            name: app.name(),
            version: "0.1.0",
            base_url: &format!("http://{}", server.addr),
            tenant: "e2e",
            connection: "shop",
            app_secret: APP_SECRET,
            events: &events,
        });
        AppKoppel {
            koppel,
            scheduler,
            gate,
            runs,
            cancel,
            server,
            manifest,
        }
    }

    /// Waits for the runs that follow until the order is in the till; the runs seen.
    async fn order_arrives(
        &mut self,
        placed: &PlacedOrder,
        till: &MplusSimulator,
    ) -> Vec<RunSummary> {
        let mut seen = Vec::new();
        loop {
            let run = tokio::time::timeout(Duration::from_secs(30), self.runs.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "order {} not in the till within 30 s; runs: {seen:#?}",
                        placed.order_number
                    )
                })
                .expect("a summary");
            seen.push(run);
            if till.order_by_ext_id(&placed.order_number).is_some() {
                return seen;
            }
        }
    }

    /// Waits until no run of the orders flow waits or goes (earlier events' runs are over).
    async fn quiet(&self) {
        common::eventually(
            "the orders flow at rest",
            Duration::from_secs(30),
            || async { self.scheduler.is_at_rest("orders") },
        )
        .await;
    }

    /// Runs of the orders flow a webhook started at `since` (unix ms) or later.
    async fn webhook_runs_since(&self, since: i64) -> usize {
        self.koppel
            .env
            .store
            .runs("e2e", Some("orders"), 100)
            .await
            .expect("runs")
            .iter()
            .filter(|r| r.trigger == "webhook" && r.started_at >= since)
            .count()
    }

    async fn stop(self) {
        self.cancel.cancel();
        drop(self.runs);
        self.server.wait().await;
        drop(self.gate);
        if let Ok(scheduler) = Arc::try_unwrap(self.scheduler) {
            scheduler.stop().await;
        }
        self.koppel.close().await;
    }
}

fn sellable(shop: &ShopwareSimulator) -> Vec<String> {
    let mut numbers: Vec<String> = shop
        .products()
        .iter()
        .filter(|p| p.get("childCount").and_then(Value::as_i64).unwrap_or(0) == 0)
        .filter(|p| p.get("active").and_then(Value::as_bool) == Some(true))
        .filter_map(|p| {
            p.get("productNumber")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .filter(|n| n.parse::<i64>().is_ok())
        .collect();
    numbers.sort();
    numbers
}

/// The catalogue into the shop with the app's credentials: products, then stock.
async fn fill_the_shop(app: &AppKoppel, systems: &Systems) {
    let products = app.koppel.run("products").await;
    assert_eq!(products.status, RunStatus::Succeeded, "{products:#?}");
    assert!(products.counts.created > 0, "{products:#?}");
    for number in sellable(&systems.shop) {
        if let Ok(article) = number.parse::<i64>() {
            let _ = systems.till.set_stock(article, 1, 50, 0);
        }
    }
    let stock = app.koppel.run("stock").await;
    assert_eq!(stock.status, RunStatus::Succeeded, "{stock:#?}");
}

fn order(shop: &ShopwareSimulator, sku: &str, email: &str, paid: bool) -> PlacedOrder {
    let order = StorefrontOrder {
        paid,
        payment_method: "payment_prepayment".into(),
        shipping_method: "shipping_standard".into(),
        ..StorefrontOrder::new(
            OrderCustomer::private(email, "Anna", "de Vries", "NL"),
            vec![OrderLine::new(sku, 1)],
        )
    };
    shop.place_order(&order).expect("checkout")
}

/// Every attempt at delivering `event` about `order`, once the last one is made
/// (delivered, or out of retries).
async fn settled(shop: &ShopwareSimulator, event: &str, order: &PlacedOrder) -> Vec<Delivery> {
    let attempts = || {
        shop.app_deliveries()
            .into_iter()
            .filter(|d| d.event == event && d.order_id.as_deref() == Some(order.id.as_str()))
            .collect::<Vec<_>>()
    };
    common::eventually(
        &format!("the delivery of {event} for order {}", order.order_number),
        Duration::from_secs(30),
        || async { attempts().iter().any(|d| d.last) },
    )
    .await;
    attempts()
}

#[tokio::test]
async fn a_shop_installs_the_koppel_app_and_its_signed_events_bring_orders_into_the_till() {
    let systems = Systems::start(common::Catalogue {
        products: 20,
        ..common::Catalogue::default()
    })
    .await;
    systems.shop.set_app_retry_delay(Duration::from_millis(20));
    let mut app = AppKoppel::start(&systems).await;

    // A manifest with another secret: the shop's registration is refused, nothing installed.
    let forged = app
        .manifest
        .replace(APP_SECRET, "not-the-app-secret-0123456789abcdef01");
    let error = systems
        .shop
        .install_app(&forged)
        .await
        .expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("App registration for \"Koppel\" failed")
            && error.to_string().contains("signature"),
        "{error:#}"
    );
    assert!(systems.shop.apps().is_empty());

    // The real one: registration, proof, confirmation with the app's integration.
    let installed = systems
        .shop
        .install_app(&app.manifest)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(installed.access_key.starts_with("SWIA"));
    assert!(
        installed.privileges.contains("order:read"),
        "order events need order:read"
    );
    let events: Vec<&str> = installed
        .webhooks
        .iter()
        .map(|w| w.event.as_str())
        .collect();
    assert_eq!(
        events,
        [
            "checkout.order.placed",
            "state_enter.order_transaction.state.paid",
            "app.deleted"
        ]
    );

    // koppel works with the integration the shop handed over.
    fill_the_shop(&app, &systems).await;
    // Its secret is nowhere in koppel's state in clear: sealed in the registration,
    // redacted from the token requests in the activity log.
    app.koppel.env.activity.flush().await;
    for file in ["koppel.db", "koppel.db-wal"] {
        let bytes = std::fs::read(app.koppel.dir.path().join(file)).unwrap_or_default();
        assert!(
            !bytes
                .windows(installed.secret_key.len())
                .any(|w| w == installed.secret_key.as_bytes()),
            "the integration's secret in {file}"
        );
    }
    let skus = sellable(&systems.shop);
    assert!(!skus.is_empty(), "sellable products in the shop");

    // A paid order: `checkout.order.placed` (and the payment's `state_enter … paid`) start
    // the orders flow at once; the interval is an hour.
    let paid = order(&systems.shop, &skus[0], "anna@example.nl", true);
    app.order_arrives(&paid, &systems.till).await;
    let placed = settled(&systems.shop, "checkout.order.placed", &paid).await;
    assert_eq!(placed.len(), 1, "delivered at once: {placed:#?}");
    assert_eq!(placed[0].status, Some(202));
    let till_order = systems
        .till
        .order_by_ext_id(&paid.order_number)
        .expect("in the till");
    assert_eq!(till_order.payments.len(), 1, "paid, with its payment");

    // The till ships it: the order-status flow moves the shop's delivery, again with the
    // app's integration (its permissions are what the manifest asked for).
    let slip = systems.till.deliver_order(&till_order.id).expect("deliver");
    let status = app.koppel.run("order-status").await;
    assert_eq!(status.status, RunStatus::Succeeded, "{status:#?}");
    let shop_order = systems
        .shop
        .orders()
        .into_iter()
        .find(|o| o.get("id").and_then(Value::as_str) == Some(paid.id.as_str()))
        .expect("the shop's order");
    let parcel = &shop_order["deliveries"][0];
    assert_eq!(
        parcel
            .pointer("/stateMachineState/technicalName")
            .and_then(Value::as_str),
        Some("shipped"),
        "{parcel:#}"
    );
    assert_eq!(parcel["trackingCodes"], serde_json::json!([slip]));

    // An order paid later: the flow reads only paid orders, so it arrives with the payment.
    let later = order(
        &systems.shop,
        &skus[1 % skus.len()],
        "bert@example.nl",
        false,
    );
    let placed = settled(&systems.shop, "checkout.order.placed", &later).await;
    assert_eq!(placed.last().and_then(|d| d.status), Some(202));
    // The run the placement started finds nothing to bring yet.
    app.quiet().await;
    assert!(systems.till.order_by_ext_id(&later.order_number).is_none());
    systems
        .shop
        .set_payment_state(&later.id, "paid")
        .expect("paid");
    app.order_arrives(&later, &systems.till).await;
    let paid_event = settled(
        &systems.shop,
        "state_enter.order_transaction.state.paid",
        &later,
    )
    .await;
    assert_eq!(paid_event.last().and_then(|d| d.status), Some(202));

    // Events signed with anything but the shop's secret are refused, every retry too, and
    // start nothing.
    app.quiet().await;
    let since = koppel::store::now_ms();
    let till_orders = systems.till.orders().len();
    systems.shop.sign_app_events_with(Some("forged-secret"));
    let forged = order(
        &systems.shop,
        &skus[2 % skus.len()],
        "carla@example.nl",
        true,
    );
    let attempts = settled(&systems.shop, "checkout.order.placed", &forged).await;
    assert_eq!(
        attempts.len(),
        4,
        "the first try and three retries: {attempts:#?}"
    );
    assert!(
        attempts.iter().all(|d| d.status == Some(401)),
        "{attempts:#?}"
    );
    let attempts = settled(
        &systems.shop,
        "state_enter.order_transaction.state.paid",
        &forged,
    )
    .await;
    assert!(
        attempts.iter().all(|d| d.status == Some(401)),
        "{attempts:#?}"
    );
    systems.shop.sign_app_events_with(None);
    assert!(systems.till.order_by_ext_id(&forged.order_number).is_none());
    assert_eq!(systems.till.orders().len(), till_orders);
    assert_eq!(app.webhook_runs_since(since).await, 0, "no run started");

    // The shop removes the app: koppel forgets its credentials; the next run says so.
    systems
        .shop
        .uninstall_app("Koppel")
        .await
        .expect("uninstall");
    let gone = systems
        .shop
        .app_deliveries()
        .into_iter()
        .rfind(|d| d.event == "app.deleted")
        .expect("app.deleted sent");
    assert_eq!(gone.status, Some(200));
    let after = app.koppel.run("orders").await;
    assert_eq!(after.status, RunStatus::Failed, "{after:#?}");
    assert!(
        after.error.unwrap_or_default().contains("access_key_id"),
        "no credentials after the removal"
    );
    systems.assert_valid();
    app.stop().await;
}

#[tokio::test]
async fn shopwares_retry_after_a_503_brings_the_order() {
    let systems = Systems::start(common::Catalogue {
        products: 12,
        ..common::Catalogue::default()
    })
    .await;
    systems.shop.set_app_retry_delay(Duration::from_millis(50));
    let mut app = AppKoppel::start(&systems).await;
    systems
        .shop
        .install_app(&app.manifest)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    fill_the_shop(&app, &systems).await;
    let skus = sellable(&systems.shop);

    // koppel's schedule takes no requests for a moment (it is starting or stopping).
    app.gate.open.store(false, Ordering::SeqCst);
    let mut deliveries = systems.shop.subscribe_app_deliveries();
    let placed = order(&systems.shop, &skus[0], "dirk@example.nl", true);
    let first = loop {
        let delivery = tokio::time::timeout(Duration::from_secs(30), deliveries.recv())
            .await
            .expect("a delivery")
            .expect("delivery");
        if delivery.event == "checkout.order.placed" {
            break delivery;
        }
    };
    assert_eq!(first.attempt, 1);
    assert_eq!(first.status, Some(503), "{first:#?}");
    assert!(systems.till.order_by_ext_id(&placed.order_number).is_none());

    // Shopware retries with the same event id: accepted now, not dropped as a replay.
    app.gate.open.store(true, Ordering::SeqCst);
    app.order_arrives(&placed, &systems.till).await;
    let retried: Vec<Delivery> = systems
        .shop
        .app_deliveries()
        .into_iter()
        .filter(|d| d.event_id == first.event_id)
        .collect();
    assert!(
        retried
            .iter()
            .any(|d| d.attempt > 1 && d.status == Some(202)),
        "the retry was accepted: {retried:#?}"
    );
    systems.assert_valid();
    app.stop().await;
}
