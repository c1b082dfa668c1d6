//! The conformance suite (`koppel connector test`) against both shipped connectors, each with
//! its simulator in-process, and against the template of `koppel connector new`, built as a
//! third party would build it. Plus: a component importing what the contract does not give
//! is refused, naming the import.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use koppel::cli::conformance::{self, Options, Report, Settings, Status};
use koppel::cli::example_api::ExampleApi;
use koppel::runtime::bindings::{
    Address, Amount, Customer, Decimal, DeliveryState, Order, OrderLine, OrderState, OrderStatus,
    PaymentState, Price, Product, Record,
};
use koppel::runtime::{ConnectionSpec, Connector, Runtime};
use koppel_sim_mplus::{MplusOptions, MplusSimulator};
use koppel_sim_shopware::{ShopwareOptions, ShopwareSimulator, Version};

fn runtime() -> Runtime {
    koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"))
}

async fn builtin(runtime: &Runtime, id: &str) -> Arc<Connector> {
    let builtin = koppel::connectors::builtin_by_id(id).expect("built in");
    runtime.load(id, builtin.wasm).await.expect("load")
}

fn config(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// No check failed, and none was skipped but those the connector's `conformance.toml`
/// lists, each with its reason (`connectors/<name>/conformance.toml`; none for the template).
fn assert_passed(report: &Report, settings: Option<&str>) {
    let settings = match settings {
        Some(name) => Settings::from_file(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../connectors")
                .join(name)
                .join("conformance.toml"),
        )
        .expect("conformance.toml"),
        None => Settings::default(),
    };
    let problems = report.problems(&settings);
    assert!(problems.is_empty(), "{problems:#?}\n{}", report.text());
}

fn checked(report: &Report, rule: &str, status: Status) -> usize {
    report
        .checks
        .iter()
        .filter(|c| c.rule == rule && c.status == status)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mplus_keeps_the_contract() {
    let sim = MplusSimulator::start(MplusOptions {
        seed: 7,
        products: 120,
        variant_share: 0.2,
        relations: 40,
        ..MplusOptions::default()
    })
    .await
    .expect("simulator");
    let runtime = runtime();
    let connector = builtin(&runtime, "mplus").await;
    let config = config(&[
        ("base_url", sim.url()),
        ("ident", sim.ident().to_owned()),
        ("secret", sim.secret().to_owned()),
        ("vat_codes", r#"{"21": 1, "9": 2, "0": 3}"#.to_owned()),
        ("default_payment_method", "IDEAL".to_owned()),
    ]);
    // Web orders for articles the till sells: created the first time, unchanged the second.
    let articles: Vec<String> = sim
        .article_numbers()
        .into_iter()
        .filter(|a| *a >= 1_000_000)
        .take(2)
        .map(|a| a.to_string())
        .collect();
    let orders = (1..=3)
        .map(|n| Record::Order(web_order(n, &articles)))
        .collect();
    // Pages of one record, so even the small reference tables page and rule 3.3 is checked
    // on every stream that holds more than one record.
    let options = Options {
        records: [("orders".to_owned(), orders)].into(),
        page_size: 1,
        ..Options::default()
    };
    let report = conformance::run(connector, config, options).await;
    println!("{}", report.text());
    assert_passed(&report, Some("mplus"));
    assert_eq!(sim.orders().len(), 3, "each order once: {}", report.text());
    assert!(
        checked(&report, "3.3", Status::Pass) >= 3,
        "{}",
        report.text()
    );
    assert!(
        checked(&report, "4.2", Status::Pass) == 2,
        "{}",
        report.text()
    );
    assert_eq!(
        checked(&report, "2.2", Status::Pass),
        1,
        "{}",
        report.text()
    );
}

fn address() -> Address {
    Address {
        company: None,
        first_name: Some("Anna".into()),
        last_name: Some("van der Berg".into()),
        street: "Oudegracht".into(),
        house_number: Some("12".into()),
        additional: None,
        postal_code: "3511 AB".into(),
        city: "Utrecht".into(),
        country: "NL".into(),
        phone: None,
    }
}

fn units(units: i64) -> Decimal {
    Decimal { units, scale: 0 }
}

/// A paid web order for `articles`, two of each, at 19.95 with 21% VAT.
fn web_order(n: usize, articles: &[String]) -> Order {
    let lines: Vec<OrderLine> = articles
        .iter()
        .map(|sku| OrderLine {
            sku: sku.clone(),
            name: format!("Article {sku}"),
            quantity: units(2),
            unit_price: Amount {
                net: 1649,
                gross: 1995,
            },
            tax_rate: units(21),
            total: Amount {
                net: 3298,
                gross: 3990,
            },
            extra: vec![],
        })
        .collect();
    let gross = lines.iter().map(|l| l.total.gross).sum();
    let net = lines.iter().map(|l| l.total.net).sum();
    Order {
        // The till knows web orders by their number: flows/orders.toml maps it to the key.
        key: format!("C{n:05}"),
        number: format!("C{n:05}"),
        external_id: None,
        placed_at: "2026-11-29T08:00:00Z".into(),
        state: OrderState::Open,
        payment_state: PaymentState::Paid,
        delivery_state: DeliveryState::Open,
        customer: Customer {
            key: format!("conformance-customer-{n}"),
            email: format!("buyer{n}@example.nl"),
            company_name: None,
            first_name: Some("Anna".into()),
            last_name: Some("van der Berg".into()),
            phone: None,
            vat_id: None,
            billing_address: None,
            shipping_address: None,
            external_ids: vec![],
            extra: vec![],
        },
        billing_address: address(),
        shipping_address: None,
        lines,
        shipping: None,
        payment_method: Some("iDEAL".into()),
        totals: Amount { net, gross },
        currency: "EUR".into(),
        country: "NL".into(),
        extra: vec![],
    }
}

fn product(n: usize) -> Record {
    Record::Product(Product {
        key: format!("CONF-{n:04}"),
        name: format!("Conformance product {n}"),
        description: Some("Written by the conformance suite.".into()),
        short_description: None,
        ean: None,
        prices: vec![Price {
            currency: "EUR".into(),
            net: 1000,
            gross: 1210,
            tax_rate: Decimal {
                units: 21,
                scale: 0,
            },
        }],
        categories: vec![],
        properties: vec![],
        variants: vec![],
        active: true,
        extra: vec![],
    })
}

fn stock(n: usize) -> Record {
    koppel_test_support::stock_level(&format!("CONF-{n:04}"), 5 + n as i64, 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shopware_keeps_the_contract() {
    let sim = ShopwareSimulator::start(ShopwareOptions {
        version: Version::V6_6,
        seed: 7,
        products: 60,
        customers: 10,
        orders: 40,
        ..ShopwareOptions::default()
    })
    .await
    .expect("simulator");
    let runtime = runtime();
    let connector = builtin(&runtime, "shopware").await;
    let config = config(&[
        ("shop_url", sim.url()),
        ("access_key_id", sim.client_id().to_owned()),
        ("secret_access_key", sim.client_secret().to_owned()),
    ]);
    // Shopware's writable streams are not readable: give them records, as a shop would get
    // them from a till. First the reads alone, then everything.
    let mut records = BTreeMap::new();
    records.insert("products".to_owned(), (1..=5).map(product).collect());
    records.insert("stock".to_owned(), (1..=5).map(stock).collect());
    let first = conformance::run(
        connector.clone(),
        config.clone(),
        Options {
            streams: vec!["orders".into()],
            write: false,
            page_size: 10,
            ..Options::default()
        },
    )
    .await;
    assert_passed(&first, None);
    assert_eq!(checked(&first, "3.3", Status::Pass), 1, "{}", first.text());
    // Order status: the shop's own orders' states, written back (the shop's order numbers).
    let shop_connection = connector
        .connect(ConnectionSpec::new("conformance", "shop", config.clone()))
        .expect("config");
    let mut session = shop_connection.session().await.expect("session");
    let orders = session
        .read("orders", None, 10)
        .await
        .expect("orders")
        .records;
    let statuses: Vec<Record> = orders
        .iter()
        .filter_map(|r| match r {
            Record::Order(o) => Some(Record::OrderStatus(OrderStatus {
                key: o.number.clone(),
                state: o.state,
                payment_state: Some(o.payment_state),
                delivery_state: Some(o.delivery_state),
                tracking_codes: vec![],
                extra: vec![],
            })),
            _ => None,
        })
        .collect();
    assert!(!statuses.is_empty(), "the simulator seeded orders");
    records.insert("order-status".to_owned(), statuses);
    let report = conformance::run(
        connector,
        config,
        Options {
            records,
            page_size: 10,
            ..Options::default()
        },
    )
    .await;
    println!("{}", report.text());
    assert_passed(&report, Some("shopware"));
    assert!(
        checked(&report, "4.2", Status::Pass) == 3,
        "{}",
        report.text()
    );
    assert!(
        checked(&report, "4.3", Status::Pass) == 3,
        "{}",
        report.text()
    );
}

/// `koppel connector new` into a folder outside the checkout, built for wasm32-wasip2 as its
/// README says (offline, against the workspace's lock file), then the suite against the
/// example API: it passes before anyone changes a line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_builds_and_keeps_the_contract() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_owned();
    let parent = tempfile::tempdir().expect("tempdir");
    let created = koppel::cli::template::create(
        "acme-shop",
        parent.path(),
        Some(&root.join("connectors/sdk")),
    )
    .expect("created");
    std::fs::copy(root.join("Cargo.lock"), created.dir.join("Cargo.lock")).expect("lock file");
    let target: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("template-target");
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(&created.dir)
        .args([
            "build",
            "--target",
            "wasm32-wasip2",
            "--release",
            "--offline",
        ])
        .env("CARGO_TARGET_DIR", &target);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        build.env_remove(var);
    }
    let output = build.output().expect("run cargo");
    assert!(
        output.status.success(),
        "the template does not build: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let fmt = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&created.dir)
        .args(["fmt", "--check"])
        .output()
        .expect("run cargo fmt");
    assert!(
        fmt.status.success(),
        "the template is not rustfmt-clean: {}",
        String::from_utf8_lossy(&fmt.stdout)
    );
    let wasm = target.join("wasm32-wasip2/release/koppel_connector_acme_shop.wasm");
    let runtime = runtime();
    let connector = runtime.load_file(&wasm).await.expect("the template loads");
    assert_eq!(connector.id(), "acme-shop");
    let api = ExampleApi::start(60).await.expect("example API");
    let items_before = api.items();
    let config = config(&[("base_url", api.url()), ("api_key", api.key().to_owned())]);
    let report = conformance::run(connector, config, Options::default()).await;
    println!(
        "{}template component: {} bytes",
        report.text(),
        std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0)
    );
    assert_passed(&report, None);
    assert_eq!(
        checked(&report, "3.3", Status::Pass),
        2,
        "{}",
        report.text()
    );
    assert_eq!(
        checked(&report, "4.2", Status::Pass),
        1,
        "{}",
        report.text()
    );
    assert_eq!(
        api.items(),
        items_before,
        "writing back what was read changes nothing"
    );
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.rule == "4.1" && c.detail.ends_with("20 unchanged")),
        "{}",
        report.text()
    );
}

#[tokio::test]
async fn a_component_importing_outside_the_contract_is_refused_by_name() {
    let path = koppel::connectors::test_guest("outside").expect("built by build.rs");
    let error = runtime()
        .load_file(path)
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("wasi:sockets/"), "{error}");
    assert!(error.contains("acme:evil/thing@1.0.0"), "{error}");
    assert!(error.contains("outside the koppel contract"), "{error}");
}

#[test]
fn connector_check_names_the_refused_import() {
    let path = koppel::connectors::test_guest("outside").expect("built by build.rs");
    let config = tempfile::NamedTempFile::new().expect("config");
    let output = Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args(["connector", "check"])
        .arg(path)
        .arg("--config")
        .arg(config.path())
        .env(
            "KOPPEL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .expect("run koppel");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("wasi:sockets/"), "{stderr}");
}

#[test]
fn connector_test_exits_non_zero_and_names_the_rule() {
    // The fixture's `check` accepts anything, so a wrong secret passes: rule 2.2 fails.
    let fixture = koppel::connectors::test_guest("fixture").expect("built by build.rs");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("fixture.toml");
    std::fs::write(
        &config,
        "base_url = \"http://127.0.0.1:9\"\ntoken = \"tok-12345\"\ntotal = \"30\"\n",
    )
    .expect("config");
    // Records to write, as the help says: records as koppel stores them, by stream.
    let records = dir.path().join("records.json");
    let by_stream: BTreeMap<&str, Vec<Record>> = [("products", vec![product(1)])].into();
    std::fs::write(&records, serde_json::to_string(&by_stream).expect("json")).expect("records");
    let output = Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args(["connector", "test"])
        .arg(fixture)
        .arg("--config")
        .arg(&config)
        .arg("--records")
        .arg(&records)
        .arg("--json")
        .env(
            "KOPPEL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .expect("run koppel");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    let failed: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["status"] == "fail")
        .filter_map(|c| c["rule"].as_str())
        .collect();
    assert!(failed.contains(&"2.2"), "{stdout}");
    // The fixture answers `created` to every write, also the second time.
    assert!(failed.contains(&"4.2"), "{stdout}");
    assert!(
        report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["rule"] == "4.1" && c["status"] == "pass"),
        "{stdout}"
    );
    assert!(stderr.contains("2.2"), "{stderr}");
    assert!(!stdout.contains("tok-12345"), "the secret was printed");
}

#[test]
fn a_connector_dropped_into_the_connectors_folder_is_found_by_its_id() {
    let fixture = koppel::connectors::test_guest("fixture").expect("built by build.rs");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixture, dir.path().join("some-name.wasm")).expect("copy");
    let output = Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args(["connector", "inspect", "fixture"])
        .env("KOPPEL_CONNECTORS_DIR", dir.path())
        .env(
            "KOPPEL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .expect("run koppel");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Test fixture 0.1.0 (fixture)"), "{stdout}");
}

/// Rule 4.2 wants `unchanged` the second time: a connector that answers `skipped` does not
/// say the system holds the record as given. And a message the host had to redact a secret
/// from is reported (rule 6.3), though the secret itself never reaches the report.
#[tokio::test]
async fn skipped_twice_is_not_unchanged_and_a_redacted_message_is_reported() {
    let runtime = runtime();
    let path = koppel::connectors::test_guest("fixture").expect("built by build.rs");
    let connector = runtime.load_file(path).await.expect("load");
    let token = "tok-Conformance-77";
    // The fixture skips `leak-skipped` every time, saying the token as it does.
    let record = match product(1) {
        Record::Product(mut p) => {
            p.key = "leak-skipped".into();
            Record::Product(p)
        }
        other => other,
    };
    let report = conformance::run(
        connector,
        config(&[
            ("base_url", "http://127.0.0.1:9".to_owned()),
            ("token", token.to_owned()),
        ]),
        Options {
            records: [("products".to_owned(), vec![record])].into(),
            ..Options::default()
        },
    )
    .await;
    let text = report.text();
    assert!(!report.passed(), "{text}");
    let second = report
        .checks
        .iter()
        .find(|c| c.rule == "4.2")
        .expect("4.2 checked");
    assert_eq!(second.status, Status::Fail, "{text}");
    assert!(
        second
            .detail
            .contains("leak-skipped was skipped the second time"),
        "{text}"
    );
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.rule == "6.3" && c.status == Status::Warn),
        "{text}"
    );
    assert!(!text.contains(token), "the secret is in the report: {text}");
}

#[test]
fn connector_test_refuses_a_suite_table_with_an_unexplained_skip_by_name() {
    let fixture = koppel::connectors::test_guest("fixture").expect("built by build.rs");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("conformance.toml");
    std::fs::write(
        &config,
        "base_url = \"http://127.0.0.1:9\"\ntoken = \"t\"\n\n[[suite.allowed_skip]]\nrule = \"3.4\"\ncheck = \"read products\"\nreason = \" \"\n",
    )
    .expect("config");
    let output = Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args(["connector", "test"])
        .arg(fixture)
        .arg("--config")
        .arg(&config)
        .env(
            "KOPPEL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .output()
        .expect("run koppel");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("conformance.toml: [suite] allowed_skip[0] (3.4 read products): `reason`"),
        "{stderr}"
    );
}
