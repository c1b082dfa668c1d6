//! The third connector, `http-json`, built only with the connector kit: in flows from a
//! JSON-over-HTTP ERP (its simulator) into the Shopware simulator (products, stock) and from
//! Shopware back into the ERP (paid orders, each once), and through the conformance suite.

use std::collections::BTreeMap;
use std::path::Path;

use koppel::app::App;
use koppel::cli::conformance::{self, Options, Status};
use koppel::flow::{Loaded, RunOptions, RunSummary, run_flow};
use koppel::runtime::{ConnectionSpec, Runtime};
use koppel::store::RunStatus;
use koppel_sim_http_json::{HttpJsonOptions, HttpJsonSimulator};
use koppel_sim_shopware::{
    OrderCustomer, OrderLine, ShopwareOptions, ShopwareSimulator, StorefrontOrder, Version,
};
use serde_json::{Value, json};

const PRODUCTS: &str = r#"{
  "read": {"path": "/v1/products", "records": "/data",
           "paging": {"type": "page", "size_param": "per_page", "pages": "/meta/pages"}},
  "write": {"create": {"path": "/v1/products"},
            "update": {"method": "PUT", "path": "/v1/products/{key}"}},
  "lookup": {"path": "/v1/products/{key}", "record": "/data"},
  "fields": {"key": "/sku", "name": "/title", "description": "/description", "ean": "/ean",
             "price": "/price/amount", "currency": "/price/currency", "tax_rate": "/vat",
             "active": "/active"}
}"#;

const STOCK: &str = r#"{
  "read": {"path": "/v1/stock", "records": "/items",
           "paging": {"type": "offset", "size_param": "limit", "total": "/total"}},
  "write": {"create": {"method": "PUT", "path": "/v1/stock/{key}"},
            "update": {"method": "PUT", "path": "/v1/stock/{key}"}},
  "lookup": {"path": "/v1/stock/{key}"},
  "fields": {"key": "/sku", "on_hand": "/qty", "reserved": "/reserved", "location": "/warehouse"}
}"#;

const ORDERS: &str = r#"{
  "write": {"create": {"path": "/v1/orders"}, "id": "/id",
            "idempotency_header": "Idempotency-Key"},
  "lookup": {"path": "/v1/orders?reference={key}", "record": "/data", "id": "/id"},
  "fields": {"key": "/reference", "number": "/number", "placed_at": "/placed_at",
             "currency": "/currency", "total": "/total", "email": "/customer/email",
             "first_name": "/customer/first_name", "last_name": "/customer/last_name",
             "street": "/address/street", "postal_code": "/address/zip",
             "city": "/address/city", "country": "/address/country",
             "payment_state": "/payment", "lines": "/lines", "line.sku": "/sku",
             "line.name": "/name", "line.quantity": "/qty", "line.unit_price": "/price",
             "line.total": "/total"}
}"#;

fn erp_config(erp: &HttpJsonSimulator) -> BTreeMap<String, String> {
    [
        ("base_url", erp.url()),
        ("api_key", erp.api_key().to_owned()),
        ("auth_header", "X-Api-Key".to_owned()),
        ("auth_scheme", "plain".to_owned()),
        ("decimals", "string".to_owned()),
        ("products", PRODUCTS.to_owned()),
        ("stock", STOCK.to_owned()),
        ("orders", ORDERS.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn toml_config(erp: &HttpJsonSimulator, shop: &ShopwareSimulator) -> String {
    let mut text = String::from(
        "tenant = \"e2e\"\n\n[connections.erp]\nconnector = \"http-json\"\n[connections.erp.config]\n",
    );
    for (key, value) in erp_config(erp) {
        text.push_str(&format!("{key} = '''{value}'''\n"));
    }
    text.push_str(&format!(
        r#"
[connections.shop]
connector = "shopware"
[connections.shop.config]
shop_url = "{}"
access_key_id = "{}"
secret_access_key = "{}"

[flows.erp-products]
source = {{ connection = "erp", stream = "products" }}
target = {{ connection = "shop", stream = "products" }}
page_size = 7

[flows.erp-stock]
source = {{ connection = "erp", stream = "stock" }}
target = {{ connection = "shop", stream = "stock" }}

[flows.shop-orders]
source = {{ connection = "shop", stream = "orders" }}
target = {{ connection = "erp", stream = "orders" }}
delivery = "once"
"#,
        shop.url(),
        shop.client_id(),
        shop.client_secret()
    ));
    text
}

struct Setup {
    _dir: tempfile::TempDir,
    loaded: Loaded,
    env: koppel::flow::Environment,
}

impl Setup {
    async fn run(&self, flow: &str) -> RunSummary {
        let definition = self.loaded.flow(flow).expect("flow is defined");
        let options = RunOptions {
            trigger: "e2e".into(),
            ..RunOptions::default()
        };
        let summary = run_flow(&self.env, definition, &options)
            .await
            .expect("run");
        assert_eq!(summary.status, RunStatus::Succeeded, "{summary:#?}");
        summary
    }
}

fn runtime() -> Runtime {
    koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"))
}

async fn setup(erp: &HttpJsonSimulator, shop: &ShopwareSimulator) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("koppel.toml");
    std::fs::write(&file, toml_config(erp, shop)).expect("write koppel.toml");
    let loaded = Loaded::read(&file).expect("koppel.toml is valid");
    let App { loaded, env, .. } = App::open(loaded, &runtime()).await.expect("environment");
    Setup {
        _dir: dir,
        loaded,
        env,
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_and_stock_flow_from_the_json_erp_into_shopware() {
    let erp = HttpJsonSimulator::start(HttpJsonOptions {
        products: 30,
        ..HttpJsonOptions::default()
    })
    .await
    .expect("erp");
    let shop = ShopwareSimulator::start(ShopwareOptions {
        version: Version::V6_6,
        ..ShopwareOptions::default()
    })
    .await
    .expect("shop");
    let setup = setup(&erp, &shop).await;

    let first = setup.run("erp-products").await;
    assert_eq!(first.counts.read, 30, "{first:#?}");
    assert_eq!(first.counts.created, 30, "{first:#?}");
    for (sku, item) in erp.products() {
        let product = shop
            .product_by_number(&sku)
            .unwrap_or_else(|| panic!("{sku} is in the shop"));
        assert_eq!(product["name"], item["title"], "{sku}");
        let gross = product
            .pointer("/price/0/gross")
            .and_then(Value::as_f64)
            .unwrap_or_default();
        let wanted: f64 = text(&item, "/price/amount").parse().expect("decimal");
        assert!((gross - wanted).abs() < 0.001, "{sku}: {gross} ≠ {wanted}");
        assert_eq!(product["active"], item["active"], "{sku}");
    }

    let again = setup.run("erp-products").await;
    assert_eq!(again.counts.created + again.counts.updated, 0, "{again:#?}");

    // A price changes in the ERP: only that product is written.
    let mut changed = erp.products()["ERP-00007"].clone();
    changed["price"]["amount"] = json!("99.95");
    erp.set_product("ERP-00007", changed);
    let third = setup.run("erp-products").await;
    assert_eq!(third.counts.updated, 1, "{third:#?}");
    let gross = shop
        .product_by_number("ERP-00007")
        .and_then(|p| p.pointer("/price/0/gross").and_then(Value::as_f64));
    assert_eq!(gross, Some(99.95));

    let stock = setup.run("erp-stock").await;
    assert_eq!(stock.counts.read, 30, "{stock:#?}");
    assert_eq!(stock.counts.failed, 0, "{stock:#?}");
    let row = &erp.stock()["ERP-00012"];
    let available = text(row, "/qty").parse::<i64>().expect("qty")
        - text(row, "/reserved").parse::<i64>().expect("reserved");
    let in_shop = shop
        .product_by_number("ERP-00012")
        .and_then(|p| p.get("stock").and_then(Value::as_i64));
    assert_eq!(in_shop, Some(available));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_orders_flow_from_shopware_into_the_json_erp_once() {
    let erp = HttpJsonSimulator::start(HttpJsonOptions::default())
        .await
        .expect("erp");
    let shop = ShopwareSimulator::start(ShopwareOptions {
        version: Version::V6_6,
        products: 20,
        variant_share: 0.0,
        ..ShopwareOptions::default()
    })
    .await
    .expect("shop");
    let numbers: Vec<String> = shop
        .products()
        .iter()
        .filter_map(|p| {
            p.get("productNumber")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .take(3)
        .collect();
    assert_eq!(numbers.len(), 3, "the shop has products");
    let mut placed = Vec::new();
    for (i, email) in ["anna@example.nl", "jan@example.be"].iter().enumerate() {
        let order = StorefrontOrder {
            paid: true,
            ..StorefrontOrder::new(
                OrderCustomer::private(email, "Anna", "de Vries", "NL"),
                vec![
                    OrderLine::new(&numbers[i], 2),
                    OrderLine::new(&numbers[2], 1),
                ],
            )
        };
        placed.push(shop.place_order(&order).expect("order placed"));
    }
    let setup = setup(&erp, &shop).await;
    let first = setup.run("shop-orders").await;
    assert_eq!(first.counts.created, 2, "{first:#?}");
    let orders = erp.orders();
    assert_eq!(orders.len(), 2);
    for order in &orders {
        assert_eq!(order["lines"].as_array().map(Vec::len), Some(2), "{order}");
        assert!(text(order, "/customer/email").contains('@'), "{order}");
        assert!(!text(order, "/reference").is_empty(), "{order}");
    }
    let numbers_in_erp: Vec<&str> = orders.iter().map(|o| text(o, "/number")).collect();
    for p in &placed {
        assert!(
            numbers_in_erp.contains(&p.order_number.as_str()),
            "{numbers_in_erp:?}"
        );
    }

    let again = setup.run("shop-orders").await;
    assert_eq!(again.counts.created, 0, "{again:#?}");
    assert_eq!(erp.orders().len(), 2, "no order arrives twice");

    // The suite's write checks on orders, with the shop's orders as records: all are there
    // already, so every write is `unchanged`, and a bad record among them fails alone.
    let runtime = runtime();
    let shopware = koppel::connectors::builtin_by_id("shopware").expect("built in");
    let shopware = runtime.load("shopware", shopware.wasm).await.expect("load");
    let shop_config: BTreeMap<String, String> = [
        ("shop_url", shop.url()),
        ("access_key_id", shop.client_id().to_owned()),
        ("secret_access_key", shop.client_secret().to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let connection = shopware
        .connect(ConnectionSpec::new("e2e", "shop", shop_config))
        .expect("config");
    let mut session = connection.session().await.expect("session");
    let orders = session
        .read("orders", None, 50)
        .await
        .expect("orders")
        .records;
    assert_eq!(orders.len(), 2);
    let http_json = koppel::connectors::builtin_by_id("http-json").expect("built in");
    let http_json = runtime
        .load("http-json", http_json.wasm)
        .await
        .expect("load");
    let report = conformance::run(
        http_json,
        erp_config(&erp),
        Options {
            streams: vec!["orders".into()],
            records: [("orders".to_owned(), orders)].into_iter().collect(),
            ..Options::default()
        },
    )
    .await;
    assert!(report.passed(), "{}", report.text());
    for rule in ["4.1", "4.2", "4.3", "5.2"] {
        assert!(
            report
                .checks
                .iter()
                .any(|c| c.rule == rule && c.status == Status::Pass),
            "{rule}: {}",
            report.text()
        );
    }
    assert_eq!(erp.orders().len(), 2, "the suite wrote no order twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_keeps_the_contract() {
    let erp = HttpJsonSimulator::start(HttpJsonOptions::default())
        .await
        .expect("erp");
    let runtime = runtime();
    let builtin = koppel::connectors::builtin_by_id("http-json").expect("http-json is built in");
    let connector = runtime.load("http-json", builtin.wasm).await.expect("load");
    let report = conformance::run(
        connector,
        erp_config(&erp),
        Options {
            page_size: 15,
            ..Options::default()
        },
    )
    .await;
    println!("{}", report.text());
    // No SKIP but those the connector's conformance.toml lists, each with its reason.
    let settings = conformance::Settings::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../connectors/http-json/conformance.toml"),
    )
    .expect("conformance.toml");
    let problems = report.problems(&settings);
    assert!(problems.is_empty(), "{problems:#?}\n{}", report.text());
    let passed = |rule: &str| {
        report
            .checks
            .iter()
            .filter(|c| c.rule == rule && c.status == Status::Pass)
            .count()
    };
    assert_eq!(passed("3.3"), 2, "{}", report.text());
    assert_eq!(passed("4.2"), 2, "{}", report.text());
    assert_eq!(passed("4.3"), 2, "{}", report.text());
    assert_eq!(passed("2.2"), 1, "{}", report.text());
}
