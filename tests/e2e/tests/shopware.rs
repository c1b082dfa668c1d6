//! The Shopware connector end to end: the built-in component, run by the host, against the
//! Shopware simulator in 6.4 and 6.5+ mode, with every request body checked against the
//! version's OpenAPI schema.
//!
//! Covered: 10,000 products with variant families upserted and a re-run that sends nothing; a
//! bad record that does not sink its batch; token expiry mid-run; 429 storms; create-only
//! fields; stock on both stock generations; orders read by state with paging under
//! concurrent inserts; order status transitions, including impossible ones; lookups; bad
//! credentials.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use koppel::runtime::bindings::{
    Decimal, DeliveryState, ErrorKind, NamedValue, OrderState, OrderStatus, OutcomeStatus,
    PaymentState, Price, Product, Property, Record, Value as KValue, Variant, WriteOptions,
    WriteOutcome,
};
use koppel::runtime::{
    CallError, Connection, ConnectionSpec, Connector, Limits, MemoryKv, MemorySink, Runtime,
    RuntimeOptions, Session,
};
use koppel_sim_faults::{Fault, Matcher};
use koppel_sim_shopware::{
    OrderCustomer, OrderLine, ShopwareOptions, ShopwareSimulator, StorefrontOrder, Version,
};
use serde_json::Value;

// ----- harness -----

struct Harness {
    sim: ShopwareSimulator,
    connector: Arc<Connector>,
    sink: MemorySink,
    kv: Arc<MemoryKv>,
}

async fn connector() -> Arc<Connector> {
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let builtin = koppel::connectors::builtin_by_id("shopware").expect("shopware is built in");
    runtime
        .load("shopware", builtin.wasm)
        .await
        .expect("load shopware")
}

async fn harness_with(options: ShopwareOptions) -> Harness {
    let sim = ShopwareSimulator::start(options)
        .await
        .expect("start the simulator");
    assert!(
        sim.schema_loaded(),
        "the Shopware OpenAPI files must be found (../shared/reference/shopware or KOPPEL_REFERENCE_DIR): \
         checking every request against them is part of these tests"
    );
    Harness {
        sim,
        connector: connector().await,
        sink: MemorySink::new(),
        kv: Arc::new(MemoryKv::new()),
    }
}

async fn harness(version: Version) -> Harness {
    harness_with(ShopwareOptions {
        version,
        validate: true,
        ..ShopwareOptions::default()
    })
    .await
}

/// Fast back-off, so retries in tests take milliseconds.
fn quick_limits() -> Limits {
    Limits {
        retry_backoff: Duration::from_millis(1),
        ..Limits::default()
    }
}

impl Harness {
    fn config(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut config: BTreeMap<String, String> = [
            ("shop_url", self.sim.url().as_str()),
            ("access_key_id", self.sim.client_id()),
            ("secret_access_key", self.sim.client_secret()),
            ("sales_channels", "Storefront"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            config.insert(k.to_string(), v.to_string());
        }
        config
    }

    /// A connection sharing the harness's key-value store (as one configured connection).
    fn connection(&self, extra: &[(&str, &str)]) -> Connection {
        let mut spec = ConnectionSpec::new("tenant", "shop", self.config(extra));
        spec.limits = quick_limits();
        spec.activity = Arc::new(self.sink.clone());
        spec.kv = self.kv.clone();
        self.connector.connect(spec).expect("valid config")
    }

    async fn session(&self, extra: &[(&str, &str)]) -> Session {
        self.connection(extra).session().await.expect("session")
    }

    fn syncs(&self) -> u64 {
        self.sim.request_count("POST /api/_action/sync")
    }

    /// No request broke the schema (nor a response: a simulator bug), and the secret never
    /// reached the activity log.
    fn finish(&self) {
        let requests = self.sim.request_violations();
        assert!(requests.is_empty(), "request violations: {requests:#?}");
        let responses = self.sim.response_violations();
        assert!(responses.is_empty(), "response violations: {responses:#?}");
        let dump = self.sink.dump();
        assert!(!dump.is_empty(), "exchanges were recorded");
        assert!(
            !dump.contains(self.sim.client_secret()),
            "the secret leaked into the activity log"
        );
        // The simulator's tokens are JWTs: `{"typ":"JWT",…` in base64url.
        assert!(
            !dump.contains("eyJ0eXAiOiJKV1Qi"),
            "an access token leaked into the activity log"
        );
    }
}

fn no_options() -> WriteOptions {
    WriteOptions {
        create_only: vec![],
        settings: vec![],
    }
}

async fn write(session: &mut Session, stream: &str, records: &[Record]) -> Vec<WriteOutcome> {
    write_with(session, stream, records, &no_options()).await
}

async fn write_with(
    session: &mut Session,
    stream: &str,
    records: &[Record],
    options: &WriteOptions,
) -> Vec<WriteOutcome> {
    let outcomes = session
        .write(stream, records, options)
        .await
        .unwrap_or_else(|e| panic!("write {stream}: {e}"));
    assert_eq!(outcomes.len(), records.len(), "one outcome per record");
    for (outcome, record) in outcomes.iter().zip(records) {
        assert_eq!(outcome.key, record_key(record), "outcomes in record order");
    }
    outcomes
}

fn record_key(record: &Record) -> &str {
    match record {
        Record::Product(p) => &p.key,
        Record::Stock(s) => &s.key,
        Record::OrderStatus(s) => &s.key,
        Record::Order(o) => &o.key,
        Record::Customer(c) => &c.key,
        Record::Reference(r) => &r.key,
    }
}

fn count(outcomes: &[WriteOutcome], status: OutcomeStatus) -> usize {
    outcomes.iter().filter(|o| o.status == status).count()
}

fn assert_all(outcomes: &[WriteOutcome], status: OutcomeStatus) {
    let other: Vec<&WriteOutcome> = outcomes.iter().filter(|o| o.status != status).collect();
    assert!(
        other.is_empty(),
        "expected every outcome {status:?}, got {} others, e.g. {:#?}",
        other.len(),
        &other[..other.len().min(3)]
    );
}

// ----- a catalog as canonical records -----

fn price(gross: i64, rate: i64) -> Price {
    Price {
        currency: "EUR".into(),
        net: (gross * 100 + (100 + rate) / 2) / (100 + rate),
        gross,
        tax_rate: Decimal {
            units: rate,
            scale: 0,
        },
    }
}

fn property(group: &str, option: &str) -> Property {
    Property {
        group: group.into(),
        option: option.into(),
    }
}

const SIZES: [&str; 4] = ["S", "M", "L", "XL"];
const COLORS: [&str; 3] = ["Red", "Blue", "Black"];

/// Product `n`: every 5th a family of `variants` (size × colour), the others simple.
fn product(n: usize, variants: usize) -> Product {
    let family = n.is_multiple_of(5);
    let key = if family {
        format!("FAM-{n:05}")
    } else {
        format!("SKU-{n:05}")
    };
    let rate = if n.is_multiple_of(3) { 7 } else { 19 };
    let categories = match n % 4 {
        0 => vec![vec!["Clothing".to_string(), "Shirts".to_string()]],
        1 => vec![vec!["Clothing".to_string(), "Trousers".to_string()]],
        2 => vec![vec!["Shoes".to_string()], vec!["Sale".to_string()]],
        _ => vec![],
    };
    Product {
        key: key.clone(),
        name: format!("Product {n}"),
        description: Some(format!("<p>Product {n}, made with care.</p>")),
        short_description: None,
        ean: (!family).then(|| format!("87{n:011}")),
        prices: vec![price(1000 + n as i64, rate)],
        categories,
        properties: vec![property("Material", ["Cotton", "Wool", "Linen"][n % 3])],
        variants: if family {
            (0..variants)
                .map(|v| Variant {
                    key: format!("{key}-{v}"),
                    name: None,
                    ean: Some(format!("88{n:08}{v:03}")),
                    options: vec![
                        property("Size", SIZES[v % SIZES.len()]),
                        property("Color", COLORS[(v / SIZES.len()) % COLORS.len()]),
                    ],
                    prices: if v == 0 {
                        vec![price(1500 + n as i64, rate)]
                    } else {
                        vec![]
                    },
                    active: true,
                    extra: vec![],
                })
                .collect()
        } else {
            vec![]
        },
        active: !n.is_multiple_of(11),
        extra: vec![
            NamedValue {
                name: "erp_group".into(),
                value: KValue::Integer((n % 9) as i64),
            },
            NamedValue {
                name: "erp_code".into(),
                value: KValue::Text(format!("A-{n}")),
            },
        ],
    }
}

/// Products (families of 3 variants) until `rows` Shopware product rows.
fn catalog(rows: usize) -> Vec<Record> {
    let mut out = Vec::new();
    let mut made = 0;
    let mut n = 0;
    while made < rows {
        let mut p = product(n, 3);
        let size = 1 + p.variants.len();
        if made + size > rows {
            p.variants.clear();
            p.key = format!("SKU-{n:05}");
        }
        made += 1 + p.variants.len();
        out.push(Record::Product(p));
        n += 1;
    }
    out
}

fn as_product(record: &Record) -> &Product {
    match record {
        Record::Product(p) => p,
        other => panic!("not a product: {other:?}"),
    }
}

fn f64_of(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

/// The names of a product's categories from the root, as the shop holds them.
fn category_paths(sim: &ShopwareSimulator, product: &Value) -> BTreeSet<String> {
    let categories: Vec<Value> = product["categories"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    categories
        .iter()
        .map(|c| {
            let mut names = vec![c["name"].as_str().unwrap_or("").to_owned()];
            let mut parent = c["parentId"].as_str().map(str::to_owned);
            while let Some(id) = parent {
                let row = sim
                    .entity("category", &id, serde_json::json!({}))
                    .expect("parent category");
                names.push(row["name"].as_str().unwrap_or("").to_owned());
                parent = row["parentId"].as_str().map(str::to_owned);
            }
            names.reverse();
            names.join(" > ")
        })
        .collect()
}

/// Checks one written product against its canonical record.
fn assert_product_in_shop(h: &Harness, p: &Product) {
    let row = h
        .sim
        .product_by_number(&p.key)
        .unwrap_or_else(|| panic!("{} is in the shop", p.key));
    assert_eq!(row["name"], p.name.as_str(), "{}", p.key);
    assert_eq!(row["active"], p.active, "{}", p.key);
    assert_eq!(row["description"].as_str(), p.description.as_deref());
    assert_eq!(row["ean"].as_str(), p.ean.as_deref());
    let price = &row["price"][0];
    assert_eq!(price["currencyId"], h.sim.ids().currency.to_string());
    assert!((f64_of(&price["gross"]) * 100.0 - p.prices[0].gross as f64).abs() < 0.5);
    assert!((f64_of(&price["net"]) * 100.0 - p.prices[0].net as f64).abs() < 0.5);
    let rate = p.prices[0].tax_rate.units as f64;
    let tax = h
        .sim
        .entity(
            "tax",
            row["taxId"].as_str().expect("taxId"),
            serde_json::json!({}),
        )
        .expect("tax");
    assert_eq!(f64_of(&tax["taxRate"]), rate);
    for extra in &p.extra {
        let stored = &row["customFields"][extra.name.as_str()];
        match &extra.value {
            KValue::Text(text) => assert_eq!(stored, text.as_str(), "{}", p.key),
            KValue::Integer(i) => assert_eq!(stored, *i, "{}", p.key),
            other => panic!("unexpected extra {other:?}"),
        }
    }
    let visibilities = row["visibilities"].as_array().expect("visibilities");
    assert_eq!(visibilities.len(), 1);
    assert_eq!(
        visibilities[0]["salesChannelId"],
        h.sim.ids().sales_channel.to_string()
    );
    assert_eq!(visibilities[0]["visibility"], 30);
    let wanted: BTreeSet<String> = p
        .categories
        .iter()
        .map(|path| format!("Home > {}", path.join(" > ")))
        .collect();
    assert_eq!(category_paths(&h.sim, &row), wanted, "{}", p.key);
    for variant in &p.variants {
        let child = h
            .sim
            .product_by_number(&variant.key)
            .unwrap_or_else(|| panic!("{} is in the shop", variant.key));
        assert_eq!(child["parentId"], row["id"], "{}", variant.key);
        assert_eq!(child["ean"].as_str(), variant.ean.as_deref());
        let options: BTreeSet<String> = child["options"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| o["name"].as_str().unwrap_or("").to_owned())
            .collect();
        let wanted: BTreeSet<String> = variant.options.iter().map(|o| o.option.clone()).collect();
        assert_eq!(options, wanted, "{}", variant.key);
        match variant.prices.first() {
            Some(price) => assert!(
                (f64_of(&child["price"][0]["gross"]) * 100.0 - price.gross as f64).abs() < 0.5
            ),
            None => assert!(
                child["price"].is_null(),
                "{} inherits its price",
                variant.key
            ),
        }
    }
    if !p.variants.is_empty() {
        let settings = row["configuratorSettings"].as_array().expect("settings");
        let options: BTreeSet<&str> = settings
            .iter()
            .filter_map(|s| s["optionId"].as_str())
            .collect();
        let used: usize = p
            .variants
            .iter()
            .flat_map(|v| {
                v.options
                    .iter()
                    .map(|o| format!("{}:{}", o.group, o.option))
            })
            .collect::<BTreeSet<_>>()
            .len();
        assert_eq!(
            options.len(),
            used,
            "{}: one setting per option used",
            p.key
        );
    }
}

// ----- products -----

async fn ten_thousand_products(version: Version, validate: bool) {
    products_land_and_a_rerun_sends_nothing(version, validate, 10_000).await;
}

async fn products_land_and_a_rerun_sends_nothing(version: Version, validate: bool, rows: usize) {
    let h = harness_with(ShopwareOptions {
        version,
        validate,
        ..ShopwareOptions::default()
    })
    .await;
    let records = catalog(rows);
    assert!(
        records.iter().any(|r| !as_product(r).variants.is_empty()),
        "the catalog has variant families"
    );
    let mut session = h.session(&[]).await;
    let started = Instant::now();
    let mut outcomes = Vec::new();
    for page in records.chunks(1000) {
        outcomes.extend(write(&mut session, "products", page).await);
    }
    let first = started.elapsed();
    assert_all(&outcomes, OutcomeStatus::Created);
    assert_eq!(h.sim.count("product"), rows, "every row is in the shop");
    for i in [0, 1, 2, 3, 5, 10, 33, 55, records.len() - 1] {
        assert_product_in_shop(&h, as_product(&records[i]));
    }
    let syncs = h.syncs();
    let searches = h.sim.request_count("POST /api/search/product");

    // A re-run of the same records (a new session of the same connection) sends nothing.
    let mut session = h.session(&[]).await;
    let mut again = Vec::new();
    for page in records.chunks(1000) {
        again.extend(write(&mut session, "products", page).await);
    }
    assert_all(&again, OutcomeStatus::Unchanged);
    assert_eq!(h.syncs(), syncs, "a re-run writes nothing");
    assert_eq!(h.sim.count("product"), rows);
    let pages = records.len().div_ceil(1000) as u64;
    let lookups = h.sim.request_count("POST /api/search/product") - searches;
    assert!(
        lookups <= (rows / 250) as u64 + pages,
        "one lookup per batch of 250 rows: {lookups}"
    );
    assert_eq!(h.sim.token_requests(), 1, "one token for both runs");
    eprintln!(
        "{version:?}: {rows} rows in {first:?}, {syncs} syncs; re-run {:?}",
        started.elapsed() - first
    );
    if validate {
        // Every sync body of both runs was checked against the version's OpenAPI file.
        assert_eq!(
            h.sim
                .unvalidated_bodies()
                .get("request POST /api/_action/sync"),
            None,
            "{:#?}",
            h.sim.unvalidated_bodies()
        );
        assert!(
            h.sim.validated_bodies() >= 2 * syncs,
            "{}",
            h.sim.validated_bodies()
        );
    }
    h.finish();
}

#[tokio::test]
async fn ten_thousand_products_land_and_a_rerun_sends_nothing_65() {
    ten_thousand_products(Version::V6_5, true).await;
}

#[tokio::test]
async fn ten_thousand_products_land_and_a_rerun_sends_nothing_64() {
    // Without validation, to keep the suite quick; the next test sends the same kinds of
    // bodies, variant families included, with every one of them validated.
    ten_thousand_products(Version::V6_4, false).await;
}

#[tokio::test]
async fn a_thousand_products_with_variants_land_validated_64() {
    products_land_and_a_rerun_sends_nothing(Version::V6_4, true, 1_000).await;
}

async fn a_bad_record_does_not_sink_its_batch(version: Version) {
    let h = harness(version).await;
    let mut records = catalog(40);
    let keys: Vec<String> = records.iter().map(|r| as_product(r).key.clone()).collect();
    // Shopware refuses a new product without a price (and so without a tax).
    if let Record::Product(p) = &mut records[3] {
        p.prices.clear();
    }
    // The connector refuses a price in a currency the shop does not have...
    if let Record::Product(p) = &mut records[6] {
        p.prices[0].currency = "USD".into();
    }
    // ...and a variant without options.
    if let Record::Product(p) = &mut records[10] {
        assert!(!p.variants.is_empty(), "record 10 is a family");
        p.variants[1].options.clear();
    }
    let mut session = h.session(&[]).await;
    let outcomes = write(&mut session, "products", &records).await;

    let refused = &outcomes[3];
    assert_eq!(refused.status, OutcomeStatus::Failed);
    assert_eq!(refused.field.as_deref(), Some("prices"), "{refused:?}");
    let message = refused.message.as_deref().unwrap_or("");
    assert!(
        message.contains(&keys[3]) && message.contains("c1051bb4-d103-4f74-8988-acbcafc7fdc3"),
        "names the product and Shopware's code: {message}"
    );
    assert!(
        !refused.retryable,
        "bad data does not get better by waiting"
    );
    assert_eq!(outcomes[6].status, OutcomeStatus::Failed);
    assert_eq!(outcomes[6].field.as_deref(), Some("prices"));
    assert!(
        outcomes[6]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("USD"))
    );
    assert_eq!(outcomes[10].status, OutcomeStatus::Failed);
    let variant = &as_product(&records[10]).variants[1].key;
    assert_eq!(
        outcomes[10].field.as_deref(),
        Some(format!("variants.{variant}.options").as_str())
    );
    assert_eq!(count(&outcomes, OutcomeStatus::Created), records.len() - 3);

    // The shop holds every good record and none of the bad ones.
    for (i, key) in keys.iter().enumerate() {
        let found = h.sim.product_by_number(key).is_some();
        assert_eq!(found, ![3, 6, 10].contains(&i), "{key}");
    }
    assert_product_in_shop(&h, as_product(&records[4]));
    let expected_syncs = if version >= Version::V6_5 {
        2 // refused as a whole, then the good ones
    } else {
        1 // 6.4 commits every good record in the first request
    };
    assert_eq!(
        h.syncs(),
        expected_syncs + 2,
        "plus one creating property groups and one creating categories"
    );

    // Fixed, the record lands; the others are unchanged.
    if let Record::Product(p) = &mut records[3] {
        p.prices = vec![price(999, 19)];
    }
    let outcomes = write(&mut session, "products", &records).await;
    assert_eq!(outcomes[3].status, OutcomeStatus::Created);
    assert_product_in_shop(&h, as_product(&records[3]));
    assert_eq!(
        count(&outcomes, OutcomeStatus::Unchanged),
        records.len() - 3
    );
    h.finish();
}

#[tokio::test]
async fn a_bad_record_does_not_sink_its_batch_65() {
    a_bad_record_does_not_sink_its_batch(Version::V6_5).await;
}

#[tokio::test]
async fn a_bad_record_does_not_sink_its_batch_64() {
    a_bad_record_does_not_sink_its_batch(Version::V6_4).await;
}

/// Issue 12 item 1: on 6.4 a sync of ten records or fewer answers `data` as a JSON list (a
/// PHP list, `SyncService::sync`), and with `fail-on-error: false` the status is 200 even
/// when records failed (`SyncController::sync`). A refused record is still reported failed.
#[tokio::test]
async fn a_refused_record_in_a_small_64_sync_is_reported_failed() {
    let h = harness(Version::V6_4).await;
    let mut records = catalog(6);
    if let Record::Product(p) = &mut records[2] {
        p.prices.clear();
    }
    let keys: Vec<String> = records.iter().map(|r| as_product(r).key.clone()).collect();
    let mut session = h.session(&[]).await;
    let outcomes = write(&mut session, "products", &records).await;
    assert_eq!(
        outcomes[2].status,
        OutcomeStatus::Failed,
        "{:?}",
        outcomes[2]
    );
    assert_eq!(
        outcomes[2].field.as_deref(),
        Some("prices"),
        "{:?}",
        outcomes[2]
    );
    assert!(h.sim.product_by_number(&keys[2]).is_none());
    for (i, key) in keys.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(outcomes[i].status, OutcomeStatus::Created, "{key}");
        assert!(h.sim.product_by_number(key).is_some(), "{key}");
    }
    h.finish();
}

/// Issue 12 item 9: a link that cannot be removed (here the integration may not delete
/// category links) fails the product on every version, although 6.4 answers such a sync
/// with 200 (`fail-on-error: false`).
async fn a_failed_unlink_fails_the_product(version: Version) {
    let h = harness(version).await;
    let mut p = as_product(&catalog(1)[0]).clone();
    let mut session = h.session(&[]).await;
    write(&mut session, "products", &[Record::Product(p.clone())]).await;
    h.sim.revoke("product_category:delete");
    p.categories = vec![vec!["Shoes".into(), "Boots".into()]];
    let outcomes = write(&mut session, "products", &[Record::Product(p.clone())]).await;
    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Failed,
        "{version:?}: {:?}",
        outcomes[0]
    );
    let message = outcomes[0].message.as_deref().unwrap_or("");
    assert!(
        message.contains("FRAMEWORK__MISSING_PRIVILEGE_ERROR"),
        "{version:?}: {message}"
    );
    let row = h.sim.product_by_number(&p.key).expect("product");
    assert_eq!(
        category_paths(&h.sim, &row).len(),
        2,
        "the old link stays beside the new one"
    );
    h.finish();
}

#[tokio::test]
async fn a_failed_unlink_fails_the_product_64() {
    a_failed_unlink_fails_the_product(Version::V6_4).await;
}

#[tokio::test]
async fn a_failed_unlink_fails_the_product_66() {
    a_failed_unlink_fails_the_product(Version::V6_6).await;
}

/// Issue 12 item 2: Shopware runs a sync's operations in body order. Eleven or more new
/// categories, a child among them after its parent: the child must not be sent first (on
/// 6.4 a body keyed "0".."11" sorted as text did that and rolled the whole category sync
/// back). A category Shopware refuses (a name over 255 characters, `StringField`) fails
/// only the products that need it, naming it.
async fn new_categories_land_parents_first(version: Version) {
    let h = harness(version).await;
    let long = "Very long range name ".repeat(13);
    let mut records: Vec<Record> = (0..14).map(|n| Record::Product(product(n, 0))).collect();
    for (i, record) in records.iter_mut().enumerate() {
        let Record::Product(p) = record else { continue };
        p.categories = match i {
            0..=9 => vec![vec![format!("Range {i}")]],
            10 => vec![vec!["Range 9".into(), "Outlet".into()]],
            11 => vec![vec![long.clone()]],
            12 => vec![vec![long.clone(), "Below".into()]],
            _ => vec![vec!["Range 0".into()]],
        };
    }
    let mut session = h.session(&[]).await;
    let outcomes = write(&mut session, "products", &records).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        if i == 11 || i == 12 {
            assert_eq!(outcome.status, OutcomeStatus::Failed, "{outcome:?}");
            assert_eq!(outcome.field.as_deref(), Some("categories"), "{outcome:?}");
            let message = outcome.message.as_deref().unwrap_or("");
            assert!(
                message.contains(long.trim_end()) && message.contains("could not be created"),
                "names the category: {message}"
            );
            assert!(h.sim.product_by_number(&outcome.key).is_none());
        } else {
            assert_eq!(
                outcome.status,
                OutcomeStatus::Created,
                "{version:?} {outcome:?}"
            );
            assert_product_in_shop(&h, as_product(&records[i]));
        }
    }
    h.finish();
}

#[tokio::test]
async fn new_categories_land_parents_first_64() {
    new_categories_land_parents_first(Version::V6_4).await;
}

#[tokio::test]
async fn new_categories_land_parents_first_66() {
    new_categories_land_parents_first(Version::V6_6).await;
}

/// Issue 12 item 10: a duplicate product number is the database's unique key
/// (`ProductExceptionHandler`): its error points at no record. A shop owner creates one of
/// the numbers while the batch of 250 is on its way; the batch is split until that record is
/// alone, and only it fails.
async fn a_duplicate_number_is_found_in_a_batch_of_250(version: Version) {
    let h = harness(version).await;
    let records: Vec<Record> = (0..250)
        .map(|n| {
            let mut p = product(n, 0);
            p.key = format!("BATCH-{n:05}");
            p.categories.clear();
            Record::Product(p)
        })
        .collect();
    let faults = h.sim.faults();
    faults.push(
        Matcher {
            path_prefix: Some("/api/_action/sync".into()),
            body_contains: Some("BATCH-00137".into()),
        },
        Fault::Delay(Duration::from_millis(300)),
    );
    let tax = h.sim.ids().tax(19.0).expect("tax").hex();
    let currency = h.sim.ids().currency.hex();
    let mut session = h.session(&[]).await;
    let writing = write(&mut session, "products", &records);
    let shop_owner = async {
        // The batch's sync has arrived and waits: the number is taken meanwhile.
        while faults.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        h.sim.create(
            "product",
            serde_json::json!({"productNumber": "BATCH-00137", "name": "Made in the shop",
                "stock": 1, "taxId": tax, "price": [{"currencyId": currency, "gross": 1.0, "net": 0.84, "linked": true}]}),
        )
    };
    let syncs = h.syncs();
    let (outcomes, created) = tokio::join!(writing, shop_owner);
    created.expect("the shop owner's product");
    let bad = &outcomes[137];
    assert_eq!(bad.status, OutcomeStatus::Failed, "{version:?} {bad:?}");
    assert_eq!(bad.field.as_deref(), Some("key"), "{bad:?}");
    let message = bad.message.as_deref().unwrap_or("");
    assert!(
        message.contains("CONTENT__DUPLICATE_PRODUCT_NUMBER") && message.contains("BATCH-00137"),
        "{message}"
    );
    assert_eq!(count(&outcomes, OutcomeStatus::Created), 249, "{version:?}");
    assert_eq!(
        h.sim.product_by_number("BATCH-00137").expect("one")["name"],
        "Made in the shop"
    );
    let product_syncs = h.syncs() - syncs;
    assert!(
        product_syncs <= 20,
        "{version:?}: bisecting takes about two requests per halving: {product_syncs}"
    );
    h.finish();
}

#[tokio::test]
async fn a_duplicate_number_is_found_in_a_batch_of_250_64() {
    a_duplicate_number_is_found_in_a_batch_of_250(Version::V6_4).await;
}

#[tokio::test]
async fn a_duplicate_number_is_found_in_a_batch_of_250_66() {
    a_duplicate_number_is_found_in_a_batch_of_250(Version::V6_6).await;
}

#[tokio::test]
async fn prices_in_two_currencies_land_and_the_default_one_is_required() {
    let h = harness(Version::V6_6).await;
    let chf_id = h.sim.ids().currency("CHF").expect("the shop has CHF").hex();
    let eur_id = h.sim.ids().currency.hex();
    let chf = |gross: i64, rate: i64| Price {
        currency: "CHF".into(),
        ..price(gross, rate)
    };
    let mut both = as_product(&catalog(1)[0]).clone();
    both.key = "CUR-1".into();
    both.variants.clear();
    both.prices = vec![price(1190, 19), chf(1250, 19)];
    let mut family = product(5, 3);
    assert!(!family.variants.is_empty());
    family.key = "CUR-2".into();
    for (i, v) in family.variants.iter_mut().enumerate() {
        v.key = format!("CUR-2-{i}");
    }
    family.prices = vec![price(2380, 19), chf(2500, 19)];
    family.variants[0].prices = vec![price(2499, 19), chf(2600, 19)];
    let mut chf_only = both.clone();
    chf_only.key = "CUR-3".into();
    chf_only.prices = vec![chf(1250, 19)];

    let mut session = h.session(&[]).await;
    let outcomes = write(
        &mut session,
        "products",
        &[
            Record::Product(both.clone()),
            Record::Product(chf_only),
            Record::Product(family.clone()),
        ],
    )
    .await;
    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Created,
        "{:?}",
        outcomes[0]
    );
    assert_eq!(
        outcomes[2].status,
        OutcomeStatus::Created,
        "{:?}",
        outcomes[2]
    );
    assert_eq!(
        outcomes[1].status,
        OutcomeStatus::Failed,
        "{:?}",
        outcomes[1]
    );
    assert_eq!(outcomes[1].field.as_deref(), Some("prices"));
    assert!(
        outcomes[1]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("EUR")),
        "{:?}",
        outcomes[1].message
    );
    assert!(
        h.sim.product_by_number("CUR-3").is_none(),
        "nothing written"
    );

    let gross_by_currency = |number: &str| -> BTreeMap<String, f64> {
        let row = h.sim.product_by_number(number).expect("written");
        row["price"]
            .as_array()
            .unwrap_or_else(|| panic!("{number} has a price list: {row}"))
            .iter()
            .map(|p| {
                (
                    p["currencyId"].as_str().expect("currencyId").to_owned(),
                    f64_of(&p["gross"]),
                )
            })
            .collect()
    };
    let expected =
        |eur: f64, chf: f64| BTreeMap::from([(eur_id.clone(), eur), (chf_id.clone(), chf)]);
    assert_eq!(gross_by_currency("CUR-1"), expected(11.90, 12.50));
    assert_eq!(gross_by_currency("CUR-2"), expected(23.80, 25.00));
    assert_eq!(gross_by_currency("CUR-2-0"), expected(24.99, 26.00));

    // The same again: nothing to send.
    let syncs = h.syncs();
    let again = write(
        &mut session,
        "products",
        &[Record::Product(both), Record::Product(family)],
    )
    .await;
    assert_all(&again, OutcomeStatus::Unchanged);
    assert_eq!(h.syncs(), syncs);
    h.finish();
}

#[tokio::test]
async fn a_missing_tax_rate_is_created_or_refused_as_configured() {
    let h = harness(Version::V6_6).await;
    let mut p = as_product(&catalog(1)[0]).clone();
    p.key = "TAX-10".into();
    p.prices = vec![price(1100, 10)];
    let mut session = h.session(&[("tax_missing", "fail")]).await;
    let outcomes = write(&mut session, "products", &[Record::Product(p.clone())]).await;
    assert_eq!(outcomes[0].status, OutcomeStatus::Failed);
    assert_eq!(outcomes[0].field.as_deref(), Some("prices"));
    assert!(
        outcomes[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("no tax rate of 10 %")),
        "{:?}",
        outcomes[0].message
    );
    assert!(h.sim.product_by_number("TAX-10").is_none());

    let mut session = h.session(&[]).await;
    let outcomes = write(&mut session, "products", &[Record::Product(p.clone())]).await;
    assert_eq!(outcomes[0].status, OutcomeStatus::Created);
    let row = h.sim.product_by_number("TAX-10").expect("written");
    let tax = h
        .sim
        .entity(
            "tax",
            row["taxId"].as_str().expect("taxId"),
            serde_json::json!({}),
        )
        .expect("tax");
    assert_eq!(f64_of(&tax["taxRate"]), 10.0);
    h.finish();
}

async fn token_expiry_mid_run(version: Version) {
    let h = harness(version).await;
    let records = catalog(60);
    let (first, second) = records.split_at(records.len() / 2);
    let mut session = h.session(&[]).await;
    assert_all(
        &write(&mut session, "products", first).await,
        OutcomeStatus::Created,
    );
    assert_eq!(h.sim.token_requests(), 1);

    h.sim.expire_tokens();
    assert_all(
        &write(&mut session, "products", second).await,
        OutcomeStatus::Created,
    );
    assert_eq!(h.sim.token_requests(), 2, "one new token after the 401");
    let refused: Vec<_> = h
        .sink
        .exchanges()
        .into_iter()
        .filter(|e| e.status == Some(401))
        .collect();
    assert_eq!(refused.len(), 1, "the expired token was tried once");

    // Another session of the connection takes the cached token.
    let mut session = h.session(&[]).await;
    assert_all(
        &write(&mut session, "products", first).await,
        OutcomeStatus::Unchanged,
    );
    assert_eq!(h.sim.token_requests(), 2, "the cached token is reused");
    for record in &records {
        assert!(h.sim.product_by_number(&as_product(record).key).is_some());
    }
    h.finish();
}

#[tokio::test]
async fn token_expiry_mid_run_65() {
    token_expiry_mid_run(Version::V6_5).await;
}

#[tokio::test]
async fn token_expiry_mid_run_64() {
    token_expiry_mid_run(Version::V6_4).await;
}

async fn a_429_storm(version: Version) {
    let h = harness(version).await;
    let records = catalog(80);
    let (first, second) = records.split_at(records.len() / 2);
    let storm = |n| {
        h.sim.faults().push_n(
            Matcher::path("/api/_action/sync"),
            Fault::TooManyRequests {
                retry_after_secs: 0,
            },
            n,
        )
    };
    // As long as the host's own retries (1 + 4) last: the host rides it out (the connector
    // no longer retries on top of it).
    storm(4);
    h.sim.faults().push_n(
        Matcher::path("/api/search"),
        Fault::TooManyRequests {
            retry_after_secs: 0,
        },
        3,
    );
    let mut session = h.session(&[]).await;
    assert_all(
        &write(&mut session, "products", first).await,
        OutcomeStatus::Created,
    );
    assert_eq!(h.sim.faults().pending(), 0, "the storm was ridden out");
    for record in first {
        assert_product_in_shop(&h, as_product(record));
    }

    // A storm that outlasts every retry: the records fail retryably and nothing is half done.
    storm(100);
    let outcomes = write(&mut session, "products", second).await;
    assert_all(&outcomes, OutcomeStatus::Failed);
    assert!(outcomes.iter().all(|o| o.retryable), "{:?}", outcomes[0]);
    assert!(
        outcomes[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("FRAMEWORK__RATE_LIMIT_EXCEEDED")),
        "{:?}",
        outcomes[0].message
    );
    for record in second {
        assert!(h.sim.product_by_number(&as_product(record).key).is_none());
    }
    h.sim.faults().clear();
    assert_all(
        &write(&mut session, "products", second).await,
        OutcomeStatus::Created,
    );
    assert_eq!(h.sim.count("product"), 80);
    h.finish();
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_or_failed_retryably_65() {
    a_429_storm(Version::V6_5).await;
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_or_failed_retryably_64() {
    a_429_storm(Version::V6_4).await;
}

#[tokio::test]
async fn lost_answers_are_repeated_without_harm() {
    let h = harness(Version::V6_5).await;
    let records = catalog(20);
    // The sync is committed but its answer lost: the host sends it again (retry-safe).
    h.sim
        .faults()
        .push(Matcher::path("/api/_action/sync"), Fault::LoseResponse);
    let mut session = h.session(&[]).await;
    assert_all(
        &write(&mut session, "products", &records).await,
        OutcomeStatus::Created,
    );
    assert_eq!(h.sim.count("product"), 20, "written once");
    for record in &records {
        assert_product_in_shop(&h, as_product(record));
    }

    // A transition is not repeated blindly: the record fails retryably, and the next write
    // plans from where the order is now.
    let products = sellable(&h.sim);
    let placed = h
        .sim
        .place_order(&StorefrontOrder::new(
            OrderCustomer::private("lost@example.com", "Lotte", "Kwijt", "NL"),
            vec![OrderLine::new(&products[0], 1)],
        ))
        .expect("order");
    h.sim.faults().push(
        Matcher::path(format!("/api/_action/order/{}/state/process", placed.id)),
        Fault::LoseResponse,
    );
    let done = [status(
        &placed.order_number,
        OrderState::Completed,
        None,
        None,
        &[],
    )];
    let outcomes = write(&mut session, "order-status", &done).await;
    assert_eq!(outcomes[0].status, OutcomeStatus::Failed);
    assert!(outcomes[0].retryable, "{:?}", outcomes[0]);
    assert_eq!(
        states_of(&h.sim, &placed.id).0,
        "in_progress",
        "it happened"
    );
    let outcomes = write(&mut session, "order-status", &done).await;
    assert_eq!(outcomes[0].status, OutcomeStatus::Updated);
    assert_eq!(states_of(&h.sim, &placed.id).0, "completed");
    h.finish();
}

#[tokio::test]
async fn create_only_fields_keep_the_shops_edits() {
    let h = harness(Version::V6_6).await;
    let mut p = as_product(&catalog(1)[0]).clone();
    let mut session = h.session(&[]).await;
    write(&mut session, "products", &[Record::Product(p.clone())]).await;
    h.sim
        .edit_product_field(&p.key, "name", Value::from("Named in the shop"))
        .expect("edit");
    p.description = Some("<p>New text from the till.</p>".into());
    let options = WriteOptions {
        create_only: vec!["name".into()],
        settings: vec![],
    };
    let outcomes = write_with(
        &mut session,
        "products",
        &[Record::Product(p.clone())],
        &options,
    )
    .await;
    assert_eq!(outcomes[0].status, OutcomeStatus::Updated);
    let row = h.sim.product_by_number(&p.key).expect("product");
    assert_eq!(
        row["name"], "Named in the shop",
        "create-only: the shop's edit stays"
    );
    assert_eq!(row["description"], "<p>New text from the till.</p>");

    let outcomes = write(&mut session, "products", &[Record::Product(p.clone())]).await;
    assert_eq!(outcomes[0].status, OutcomeStatus::Updated);
    let row = h.sim.product_by_number(&p.key).expect("product");
    assert_eq!(row["name"], p.name.as_str(), "always-update overwrites");
    h.finish();
}

/// Issue 12 item 6: `name`, `ean` and `metaDescription` are `StringField`s
/// (`StringFieldSerializer`): tags are stripped, a blank value (6.5+) is stored as null,
/// more than 255 characters are refused. The connector sends what the shop will store (so a
/// re-run sends nothing), refuses a name that is too long itself (the rest of the batch is
/// not refused with it), and does not put the short description into the SEO field.
async fn texts_are_written_as_the_shop_stores_them(version: Version) {
    let h = harness(version).await;
    let mut good = product(1, 0);
    good.name = "<b>Linen</b> shirt".into();
    good.short_description = Some("Soft and light.".into());
    good.ean = Some(String::new());
    let mut long = product(2, 0);
    long.name = "Shirt ".repeat(50);
    let others: Vec<Product> = (3..6).map(|n| product(n, 0)).collect();
    let records: Vec<Record> = [good.clone(), long.clone()]
        .into_iter()
        .chain(others)
        .map(|mut p| {
            p.categories.clear();
            p.properties.clear();
            Record::Product(p)
        })
        .collect();
    let mut session = h.session(&[]).await;
    let outcomes = write(&mut session, "products", &records).await;
    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Created,
        "{:?}",
        outcomes[0]
    );
    let refused = &outcomes[1];
    assert_eq!(refused.status, OutcomeStatus::Failed, "{refused:?}");
    assert_eq!(refused.field.as_deref(), Some("name"));
    let message = refused.message.as_deref().unwrap_or("");
    assert!(
        message.contains("300") && message.contains("255"),
        "{message}"
    );
    assert_eq!(count(&outcomes, OutcomeStatus::Created), 4);
    assert_eq!(
        h.syncs(),
        1,
        "{version:?}: one sync, not refused and sent again"
    );
    let row = h.sim.product_by_number(&good.key).expect("product");
    assert_eq!(row["name"], "Linen shirt");
    assert!(row["ean"].is_null(), "{}", row["ean"]);
    assert!(
        row["metaDescription"].is_null(),
        "{}",
        row["metaDescription"]
    );

    let again = write(&mut session, "products", &records).await;
    assert_eq!(again[0].status, OutcomeStatus::Unchanged, "{:?}", again[0]);
    assert_eq!(count(&again, OutcomeStatus::Unchanged), 4);
    assert_eq!(h.syncs(), 1, "a re-run sends nothing");

    // The short description goes where the config says.
    let mut session = h
        .session(&[("short_description_field", "metaDescription")])
        .await;
    let outcomes = write(&mut session, "products", &records[..1]).await;
    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Updated,
        "{:?}",
        outcomes[0]
    );
    let row = h.sim.product_by_number(&good.key).expect("product");
    assert_eq!(row["metaDescription"], "Soft and light.");
    h.finish();
}

#[tokio::test]
async fn texts_are_written_as_the_shop_stores_them_64() {
    texts_are_written_as_the_shop_stores_them(Version::V6_4).await;
}

#[tokio::test]
async fn texts_are_written_as_the_shop_stores_them_66() {
    texts_are_written_as_the_shop_stores_them(Version::V6_6).await;
}

/// Issue 12 item 7: a family whose product has no price of its own, only its variants do.
/// Shopware needs a price and a tax on the parent (`ProductDefinition`: price and tax are
/// required on a product that is no variant); it gets the cheapest variant's.
async fn a_family_priced_only_on_its_variants_lands(version: Version) {
    let h = harness(version).await;
    let mut p = product(5, 3);
    assert!(p.variants.len() == 3 && !p.prices.is_empty());
    p.prices.clear();
    for (v, gross) in p.variants.iter_mut().zip([2500, 1999, 2200]) {
        v.prices = vec![price(gross, 19)];
    }
    let mut session = h.session(&[]).await;
    let records = [Record::Product(p.clone())];
    let outcomes = write(&mut session, "products", &records).await;
    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Created,
        "{:?}",
        outcomes[0]
    );
    let row = h.sim.product_by_number(&p.key).expect("parent");
    assert!(
        (f64_of(&row["price"][0]["gross"]) - 19.99).abs() < 0.001,
        "{}",
        row["price"]
    );
    assert!(row["taxId"].is_string());
    for (v, gross) in p.variants.iter().zip([25.0, 19.99, 22.0]) {
        let child = h.sim.product_by_number(&v.key).expect("variant");
        assert!((f64_of(&child["price"][0]["gross"]) - gross).abs() < 0.001);
    }
    let again = write(&mut session, "products", &records).await;
    assert_eq!(again[0].status, OutcomeStatus::Unchanged, "{:?}", again[0]);
    h.finish();
}

#[tokio::test]
async fn a_family_priced_only_on_its_variants_lands_64() {
    a_family_priced_only_on_its_variants_lands(Version::V6_4).await;
}

#[tokio::test]
async fn a_family_priced_only_on_its_variants_lands_66() {
    a_family_priced_only_on_its_variants_lands(Version::V6_6).await;
}

/// Issue 12 item 8: a variant the till no longer lists must not stay buyable in the shop.
/// It is deactivated (not deleted: orders and reviews refer to it), and the family's
/// outcome says so.
async fn a_variant_dropped_by_the_till_is_deactivated(version: Version) {
    let h = harness(version).await;
    let mut p = product(5, 3);
    let mut session = h.session(&[]).await;
    write(&mut session, "products", &[Record::Product(p.clone())]).await;
    let dropped = p.variants.remove(1);
    let outcomes = write(&mut session, "products", &[Record::Product(p.clone())]).await;
    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Updated,
        "{:?}",
        outcomes[0]
    );
    let message = outcomes[0].message.as_deref().unwrap_or("");
    assert!(
        message.contains("deactivated") && message.contains(&dropped.key),
        "{message}"
    );
    let row = h
        .sim
        .product_by_number(&dropped.key)
        .expect("kept, not deleted");
    assert_eq!(row["active"], false, "{version:?}");
    for variant in &p.variants {
        let row = h.sim.product_by_number(&variant.key).expect("variant");
        assert_ne!(row["active"], false, "{}", variant.key);
    }
    let syncs = h.syncs();
    let again = write(&mut session, "products", &[Record::Product(p.clone())]).await;
    assert_eq!(again[0].status, OutcomeStatus::Unchanged, "{:?}", again[0]);
    assert_eq!(h.syncs(), syncs);
    // Listed again, it is active again.
    p.variants.push(dropped.clone());
    let outcomes = write(&mut session, "products", &[Record::Product(p.clone())]).await;
    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Updated,
        "{:?}",
        outcomes[0]
    );
    assert_eq!(
        h.sim.product_by_number(&dropped.key).expect("variant")["active"],
        true
    );
    h.finish();
}

#[tokio::test]
async fn a_variant_dropped_by_the_till_is_deactivated_64() {
    a_variant_dropped_by_the_till_is_deactivated(Version::V6_4).await;
}

#[tokio::test]
async fn a_variant_dropped_by_the_till_is_deactivated_66() {
    a_variant_dropped_by_the_till_is_deactivated(Version::V6_6).await;
}

/// Issue 12 item 11: 6.4 writes and indexes every record of a sync on its own
/// (`SyncService::upsertRecords`), which makes a large import slow; every version from 6.4
/// has `indexing-behavior: use-queue-indexing` (`EntityIndexerRegistry::USE_INDEXING_QUEUE`),
/// and the connector sends it unless told not to.
#[tokio::test]
async fn syncs_queue_their_indexing_by_default() {
    let h = harness(Version::V6_4).await;
    let records: Vec<Record> = (0..12).map(|n| Record::Product(product(n, 2))).collect();
    let mut session = h.session(&[]).await;
    let outcomes = write(&mut session, "products", &records[..6]).await;
    assert_all(&outcomes, OutcomeStatus::Created);
    assert_eq!(h.sim.synchronous_indexings(), 0, "indexed by the queue");

    let mut session = h.session(&[("queue_indexing", "false")]).await;
    let outcomes = write(&mut session, "products", &records[6..]).await;
    assert_all(&outcomes, OutcomeStatus::Created);
    assert!(
        h.sim.synchronous_indexings() >= 6,
        "without the queue every record is indexed in the request: {}",
        h.sim.synchronous_indexings()
    );
    h.finish();
}

#[tokio::test]
async fn a_moved_product_loses_its_old_category() {
    let h = harness(Version::V6_5).await;
    let mut p = as_product(&catalog(1)[0]).clone();
    let mut session = h.session(&[]).await;
    write(&mut session, "products", &[Record::Product(p.clone())]).await;
    p.categories = vec![vec!["Shoes".into(), "Boots".into()]];
    let outcomes = write(&mut session, "products", &[Record::Product(p.clone())]).await;
    assert_eq!(outcomes[0].status, OutcomeStatus::Updated);
    assert_product_in_shop(&h, &p);
    h.finish();
}

/// Issue 12 item 3: from 6.6 a search may ask at most 500 rows (`shopware.api.max_limit`;
/// 400 `FRAMEWORK__QUERY_LIMIT_EXCEEDED` above). Batches of 1,000 and a page of 500 orders
/// still work: every search pages within the cap.
#[tokio::test]
async fn searches_stay_within_the_limit_of_66() {
    let h = shop_with_orders(Version::V6_6).await;
    let records: Vec<Record> = (0..600)
        .map(|n| {
            let mut p = product(n, 0);
            p.key = format!("BIG-{n:05}");
            p.categories.clear();
            Record::Product(p)
        })
        .collect();
    let big = [("batch_size", "1000"), ("stock_batch_size", "1000")];
    let mut session = h.session(&big).await;
    let outcomes = write(&mut session, "products", &records).await;
    assert_all(&outcomes, OutcomeStatus::Created);
    let again = write(&mut session, "products", &records).await;
    assert_all(&again, OutcomeStatus::Unchanged);
    let levels: Vec<Record> = (0..600).map(|n| level(&format!("BIG-{n:05}"), 7)).collect();
    let outcomes = write(&mut session, "stock", &levels).await;
    assert_all(&outcomes, OutcomeStatus::Updated);
    assert_eq!(stock_of(&h.sim, "BIG-00599").0, 7);

    let mut state = None;
    let (orders, _) = read_all(&mut session, &mut state, 500).await;
    assert_eq!(
        orders.len(),
        paid_orders(&h.sim).len(),
        "every paid order is read"
    );
    h.finish();
}

// ----- stock -----

fn level(key: &str, available: i64) -> Record {
    koppel_test_support::stock_level(key, available, 1)
}

fn stock_of(sim: &ShopwareSimulator, number: &str) -> (i64, i64, bool) {
    let row = sim.product_by_number(number).expect("product");
    (
        row["stock"].as_i64().unwrap_or(-1),
        row["availableStock"].as_i64().unwrap_or(-1),
        row["isCloseout"].as_bool().unwrap_or(false),
    )
}

async fn stock_is_not_counted_twice(version: Version) {
    let h = harness(version).await;
    let records = catalog(10);
    let mut session = h.session(&[]).await;
    write(&mut session, "products", &records).await;
    let first = as_product(&records[1]).key.clone();
    let second = as_product(&records[2]).key.clone();
    h.sim.set_stock(&first, 20).expect("stock");
    // An open storefront order holds 2.
    h.sim
        .place_order(&StorefrontOrder::new(
            OrderCustomer::private("stock@example.com", "Eva", "Lager", "DE"),
            vec![OrderLine::new(&first, 2)],
        ))
        .expect("order");

    let settings = WriteOptions {
        create_only: vec![],
        settings: vec![NamedValue {
            name: "manage_stock".into(),
            value: KValue::Boolean(true),
        }],
    };
    let outcomes = write_with(
        &mut session,
        "stock",
        &[
            level(&first, 10),
            level(&second, 5),
            level("NOT-IN-SHOP", 3),
        ],
        &settings,
    )
    .await;
    assert_eq!(outcomes[0].status, OutcomeStatus::Updated);
    assert_eq!(outcomes[1].status, OutcomeStatus::Updated);
    assert_eq!(outcomes[2].status, OutcomeStatus::Skipped);
    let syncs = h.syncs();
    let typo = WriteOptions {
        create_only: vec![],
        settings: vec![NamedValue {
            name: "manage_stok".into(),
            value: KValue::Boolean(true),
        }],
    };
    let error = session
        .write("stock", &[level(&first, 1)], &typo)
        .await
        .expect_err("an unknown setting");
    assert!(
        error.to_string().contains(
            "`manage_stok` is not a write setting of stream `stock`; it takes: manage_stock"
        ),
        "{error}"
    );
    assert_eq!(h.syncs(), syncs, "nothing sent");
    let (stock, available, closeout) = stock_of(&h.sim, &first);
    assert_eq!(available, 10, "customers can buy what the till says");
    if version >= Version::V6_6 {
        assert_eq!(stock, 10, "6.6+: stock is the sellable quantity");
    } else {
        assert_eq!(stock, 12, "6.4/6.5: the open order's 2 are added back");
    }
    assert!(closeout);
    assert_eq!(stock_of(&h.sim, &second).1, 5);

    let syncs = h.syncs();
    let outcomes = write_with(
        &mut session,
        "stock",
        &[level(&first, 10), level(&second, 5)],
        &settings,
    )
    .await;
    assert_all(&outcomes, OutcomeStatus::Unchanged);
    assert_eq!(h.syncs(), syncs);
    h.finish();
}

#[tokio::test]
async fn stock_is_not_counted_twice_65() {
    stock_is_not_counted_twice(Version::V6_5).await;
}

#[tokio::test]
async fn stock_is_not_counted_twice_66() {
    stock_is_not_counted_twice(Version::V6_6).await;
}

#[tokio::test]
async fn stock_is_not_counted_twice_64() {
    stock_is_not_counted_twice(Version::V6_4).await;
}

// ----- orders -----

async fn shop_with_orders(version: Version) -> Harness {
    harness_with(ShopwareOptions {
        version,
        validate: true,
        products: 60,
        customers: 8,
        orders: 24,
        ..ShopwareOptions::default()
    })
    .await
}

fn sellable(sim: &ShopwareSimulator) -> Vec<String> {
    sim.products()
        .iter()
        .filter(|p| p["childCount"].as_i64().unwrap_or(0) == 0)
        .filter_map(|p| p["productNumber"].as_str().map(str::to_owned))
        .collect()
}

/// Numbers of the orders whose newest transaction is paid.
fn paid_orders(sim: &ShopwareSimulator) -> BTreeSet<String> {
    sim.orders()
        .iter()
        .filter(|o| {
            let mut transactions: Vec<&Value> =
                o["transactions"].as_array().into_iter().flatten().collect();
            transactions.sort_by_key(|t| t["createdAt"].as_str().unwrap_or("").to_owned());
            transactions
                .last()
                .is_some_and(|t| t["stateMachineState"]["technicalName"] == "paid")
        })
        .filter_map(|o| o["orderNumber"].as_str().map(str::to_owned))
        .collect()
}

async fn read_all(
    session: &mut Session,
    state: &mut Option<String>,
    limit: u32,
) -> (Vec<koppel::runtime::bindings::Order>, usize) {
    let mut orders = Vec::new();
    let mut pages = 0;
    loop {
        let page = session
            .read("orders", state.as_deref(), limit)
            .await
            .expect("read orders");
        pages += 1;
        assert!(page.records.len() <= limit as usize);
        for record in page.records {
            match record {
                Record::Order(o) => orders.push(o),
                other => panic!("not an order: {other:?}"),
            }
        }
        *state = page.state;
        if !page.has_more {
            return (orders, pages);
        }
        assert!(pages < 1000, "paging ends");
    }
}

async fn orders_by_state_with_paging(version: Version) {
    let h = shop_with_orders(version).await;
    let products = sellable(&h.sim);
    let business = h
        .sim
        .place_order(&StorefrontOrder {
            paid: true,
            shipping_method: "shipping_express".into(),
            payment_method: "payment_prepayment".into(),
            ..StorefrontOrder::new(
                OrderCustomer::business(
                    "inkoop@bakker.example",
                    "Bakker B.V.",
                    "Jan",
                    "Bakker",
                    "NL",
                ),
                vec![
                    OrderLine::new(&products[0], 2),
                    OrderLine::new(&products[1], 1),
                ],
            )
        })
        .expect("order");
    let unpaid = h
        .sim
        .place_order(&StorefrontOrder::new(
            OrderCustomer::private("anna@example.com", "Anna", "Muster", "DE"),
            vec![OrderLine::new(&products[2], 1)],
        ))
        .expect("order");
    let expected = paid_orders(&h.sim);
    assert!(
        expected.len() >= 5,
        "the seed has paid orders: {}",
        expected.len()
    );
    assert!(expected.contains(&business.order_number));
    assert!(!expected.contains(&unpaid.order_number));

    let mut session = h.session(&[("payment_states", "paid")]).await;
    let mut state = None;
    // The first page, then an order is placed while the sweep runs.
    let page = session.read("orders", None, 3).await.expect("read");
    assert_eq!(page.records.len(), 3);
    assert!(page.has_more);
    state = page.state.or(state);
    let mut numbers: Vec<String> = page
        .records
        .iter()
        .map(|r| match r {
            Record::Order(o) => o.number.clone(),
            _ => String::new(),
        })
        .collect();
    let concurrent = h
        .sim
        .place_order(&StorefrontOrder {
            paid: true,
            ..StorefrontOrder::new(
                OrderCustomer::private("late@example.com", "Late", "Buyer", "BE"),
                vec![OrderLine::new(&products[3], 1)],
            )
        })
        .expect("order");
    let (rest, pages) = read_all(&mut session, &mut state, 3).await;
    assert!(pages > 2, "paged: {pages}");
    numbers.extend(rest.iter().map(|o| o.number.clone()));
    let unique: BTreeSet<String> = numbers.iter().cloned().collect();
    assert_eq!(unique.len(), numbers.len(), "every order once: {numbers:?}");
    let mut wanted = expected.clone();
    wanted.insert(concurrent.order_number.clone());
    assert_eq!(
        unique, wanted,
        "exactly the paid orders, the new one included"
    );

    // The mapping of the business order.
    let order = rest
        .iter()
        .find(|o| o.number == business.order_number)
        .expect("business order read");
    assert_eq!(order.customer.company_name.as_deref(), Some("Bakker B.V."));
    assert_eq!(order.customer.email, "inkoop@bakker.example");
    assert_eq!(order.billing_address.country, "NL");
    assert_eq!(order.country, "NL");
    assert_eq!(order.payment_state, PaymentState::Paid);
    assert_eq!(order.state, OrderState::Open);
    assert_eq!(order.currency, "EUR");
    let shipping = order.shipping.as_ref().expect("shipping");
    let express = if version >= Version::V6_6 {
        "shipping_express"
    } else {
        "Express"
    };
    assert_eq!(
        shipping.method, express,
        "technical name on 6.6+, name before"
    );
    assert_eq!(shipping.cost.gross, 995);
    assert_eq!(order.lines.len(), 2);
    assert_eq!(order.lines[0].sku, products[0]);
    assert_eq!(order.lines[0].quantity.units, 2);
    assert_eq!(
        order.totals.gross,
        (business.amount_total * 100.0).round() as i64
    );
    let lines: i64 = order.lines.iter().map(|l| l.total.gross).sum();
    assert_eq!(lines + shipping.cost.gross, order.totals.gross);

    // Nothing changed: nothing is read.
    let (again, _) = read_all(&mut session, &mut state, 3).await;
    assert!(
        again.is_empty(),
        "{:?}",
        again.iter().map(|o| &o.number).collect::<Vec<_>>()
    );

    // The unpaid order gets paid: it alone comes next.
    h.sim.set_payment_state(&unpaid.id, "paid").expect("pay");
    let (next, _) = read_all(&mut session, &mut state, 3).await;
    assert_eq!(
        next.iter().map(|o| o.number.clone()).collect::<Vec<_>>(),
        vec![unpaid.order_number.clone()]
    );

    // Another state filter: orders in progress, whatever their payment.
    let mut session = h
        .session(&[("order_states", "in_progress"), ("payment_states", "")])
        .await;
    h.sim
        .set_order_state(&business.id, "in_progress")
        .expect("process");
    let (in_progress, _) = read_all(&mut session, &mut None, 50).await;
    assert_eq!(
        in_progress
            .iter()
            .map(|o| o.number.clone())
            .collect::<Vec<_>>(),
        vec![business.order_number.clone()]
    );
    h.finish();
}

#[tokio::test]
async fn orders_by_state_with_paging_65() {
    orders_by_state_with_paging(Version::V6_5).await;
}

#[tokio::test]
async fn orders_by_state_with_paging_64() {
    orders_by_state_with_paging(Version::V6_4).await;
}

#[tokio::test]
async fn orders_by_state_with_paging_67() {
    orders_by_state_with_paging(Version::V6_7).await;
}

// ----- order status -----

fn status(
    number: &str,
    state: OrderState,
    payment: Option<PaymentState>,
    delivery: Option<DeliveryState>,
    codes: &[&str],
) -> Record {
    Record::OrderStatus(OrderStatus {
        key: number.into(),
        state,
        payment_state: payment,
        delivery_state: delivery,
        tracking_codes: codes.iter().map(|c| c.to_string()).collect(),
        extra: vec![],
    })
}

fn states_of(sim: &ShopwareSimulator, id: &str) -> (String, String, String, Vec<String>) {
    let order = sim
        .orders()
        .into_iter()
        .find(|o| o["id"] == id)
        .expect("order");
    let name = |v: &Value| {
        v["stateMachineState"]["technicalName"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    let delivery = &order["deliveries"][0];
    (
        name(&order),
        name(&order["transactions"][0]),
        name(delivery),
        delivery["trackingCodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_owned))
            .collect(),
    )
}

fn transitions(sim: &ShopwareSimulator) -> u64 {
    sim.request_counts()
        .iter()
        .filter(|(route, _)| route.contains("/state/"))
        .map(|(_, n)| n)
        .sum()
}

async fn status_transitions(version: Version) {
    let h = harness_with(ShopwareOptions {
        version,
        validate: true,
        products: 20,
        ..ShopwareOptions::default()
    })
    .await;
    let products = sellable(&h.sim);
    let place = |email: &str| {
        h.sim
            .place_order(&StorefrontOrder::new(
                OrderCustomer::private(email, "Piet", "Klant", "NL"),
                vec![OrderLine::new(&products[0], 1)],
            ))
            .expect("order")
    };
    let done = place("a@example.com");
    let refund = place("b@example.com");
    let cancelled = place("c@example.com");
    h.sim
        .set_order_state(&cancelled.id, "cancelled")
        .expect("cancel");
    let mut session = h.session(&[]).await;

    let records = vec![
        status(
            &done.order_number,
            OrderState::Completed,
            Some(PaymentState::Paid),
            Some(DeliveryState::Shipped),
            &["3SKOPPEL0001"],
        ),
        status(
            &refund.order_number,
            OrderState::InProgress,
            Some(PaymentState::Refunded),
            None,
            &[],
        ),
        status(
            &cancelled.order_number,
            OrderState::Completed,
            None,
            None,
            &[],
        ),
        status("99999999", OrderState::Completed, None, None, &[]),
    ];
    let outcomes = write(&mut session, "order-status", &records).await;

    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Updated,
        "{:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[0].target_id.as_deref(), Some(done.id.as_str()));
    assert_eq!(
        states_of(&h.sim, &done.id),
        (
            "completed".into(),
            "paid".into(),
            "shipped".into(),
            vec!["3SKOPPEL0001".into()]
        ),
        "open → in_progress → completed, paid, shipped with its tracking code"
    );
    // An impossible target changes nothing, not even the parts that were possible.
    assert_eq!(outcomes[1].status, OutcomeStatus::Failed);
    assert_eq!(outcomes[1].field.as_deref(), Some("payment_state"));
    assert!(!outcomes[1].retryable);
    assert_eq!(
        states_of(&h.sim, &refund.id).0,
        "open",
        "the order was not moved to in_progress"
    );
    assert_eq!(outcomes[2].status, OutcomeStatus::Failed);
    assert_eq!(outcomes[2].field.as_deref(), Some("state"));
    assert!(
        outcomes[2]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("cancelled") && m.contains("completed")),
        "{:?}",
        outcomes[2].message
    );
    assert_eq!(states_of(&h.sim, &cancelled.id).0, "cancelled");
    assert_eq!(outcomes[3].status, OutcomeStatus::Failed);
    assert_eq!(outcomes[3].field.as_deref(), Some("key"));
    assert_eq!(transitions(&h.sim), 4, "ship, paid, process, complete");

    // The same again, and a till that lags behind: nothing is sent.
    let outcomes = write(
        &mut session,
        "order-status",
        &[
            records[0].clone(),
            status(
                &done.order_number,
                OrderState::InProgress,
                None,
                None,
                &["3SKOPPEL0001"],
            ),
        ],
    )
    .await;
    assert_all(&outcomes, OutcomeStatus::Unchanged);
    assert_eq!(transitions(&h.sim), 4);

    // Reopening is allowed when the flow says so.
    let reopen = WriteOptions {
        create_only: vec![],
        settings: vec![NamedValue {
            name: "allow_reopen".into(),
            value: KValue::Boolean(true),
        }],
    };
    let outcomes = write_with(
        &mut session,
        "order-status",
        &[status(
            &cancelled.order_number,
            OrderState::InProgress,
            None,
            None,
            &[],
        )],
        &reopen,
    )
    .await;
    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Updated,
        "{:?}",
        outcomes[0]
    );
    assert_eq!(states_of(&h.sim, &cancelled.id).0, "in_progress");
    h.finish();
}

/// Issue 12 item 4: Shopware's payment machine has no `paid` action from `reminded` (only
/// `pay`, `pay_partially`, …: `Migration1536233560BasicData`, `…AddPaymentStates`, the
/// reference state-machines.json). A reminded payment the till reports paid gets paid.
#[tokio::test]
async fn a_reminded_payment_is_paid() {
    let h = harness_with(ShopwareOptions {
        version: Version::V6_6,
        validate: true,
        products: 20,
        ..ShopwareOptions::default()
    })
    .await;
    let products = sellable(&h.sim);
    let placed = h
        .sim
        .place_order(&StorefrontOrder::new(
            OrderCustomer::private("r@example.com", "Rita", "Klant", "NL"),
            vec![OrderLine::new(&products[0], 1)],
        ))
        .expect("order");
    h.sim
        .set_payment_state(&placed.id, "reminded")
        .expect("remind");
    let mut session = h.session(&[]).await;
    let record = status(
        &placed.order_number,
        OrderState::Open,
        Some(PaymentState::Paid),
        None,
        &[],
    );
    let outcomes = write(&mut session, "order-status", &[record]).await;
    assert_eq!(
        outcomes[0].status,
        OutcomeStatus::Updated,
        "{:?}",
        outcomes[0]
    );
    assert_eq!(states_of(&h.sim, &placed.id).1, "paid");
    h.finish();
}

#[tokio::test]
async fn status_transitions_65() {
    status_transitions(Version::V6_5).await;
}

#[tokio::test]
async fn status_transitions_64() {
    status_transitions(Version::V6_4).await;
}

// ----- lookups, check, credentials -----

#[tokio::test]
async fn lookups_find_products_stock_orders_and_customers() {
    let h = harness_with(ShopwareOptions {
        version: Version::V6_7,
        validate: true,
        products: 10,
        ..ShopwareOptions::default()
    })
    .await;
    let records = catalog(12);
    let mut session = h.session(&[]).await;
    write(&mut session, "products", &records).await;
    let family = as_product(&records[0]);
    let found = session
        .lookup("products", &family.key)
        .await
        .expect("lookup")
        .expect("found");
    let Some(Record::Product(product)) = found.record else {
        panic!("a product record");
    };
    assert_eq!(product.name, family.name);
    assert_eq!(product.prices[0].gross, family.prices[0].gross);
    assert_eq!(
        product.prices[0].tax_rate.units,
        family.prices[0].tax_rate.units
    );
    assert_eq!(
        product
            .variants
            .iter()
            .map(|v| v.key.clone())
            .collect::<Vec<_>>(),
        family
            .variants
            .iter()
            .map(|v| v.key.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(product.variants[1].options.len(), 2);
    assert!(
        session
            .lookup("products", "NOPE")
            .await
            .expect("lookup")
            .is_none()
    );

    let products = sellable(&h.sim);
    let placed = h
        .sim
        .place_order(&StorefrontOrder::new(
            OrderCustomer::business("buyer@firma.example", "Firma GmbH", "Max", "Mayer", "AT"),
            vec![OrderLine::new(&products[0], 3)],
        ))
        .expect("order");
    let found = session
        .lookup("orders", &placed.order_number)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.id, placed.id);
    let Some(Record::Order(order)) = found.record else {
        panic!("an order record");
    };
    assert_eq!(order.lines[0].quantity.units, 3);
    assert_eq!(order.billing_address.country, "AT");

    let found = session
        .lookup("customers", "buyer@firma.example")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.id, placed.customer_id);
    let Some(Record::Customer(customer)) = found.record else {
        panic!("a customer record");
    };
    assert_eq!(customer.company_name.as_deref(), Some("Firma GmbH"));
    assert_eq!(
        customer.billing_address.map(|a| a.country).as_deref(),
        Some("AT")
    );
    assert!(
        session
            .lookup("customers", "nobody@example.com")
            .await
            .expect("lookup")
            .is_none()
    );

    let found = session
        .lookup("stock", &products[0])
        .await
        .expect("lookup")
        .expect("found");
    let Some(Record::Stock(level)) = found.record else {
        panic!("a stock record");
    };
    let row = h.sim.product_by_number(&products[0]).expect("product");
    assert_eq!(
        level.available.units,
        row["availableStock"].as_i64().unwrap_or(-1)
    );
    h.finish();
}

#[tokio::test]
async fn check_accepts_good_credentials_and_names_bad_ones() {
    let h = harness(Version::V6_6).await;
    h.connection(&[]).check().await.expect("a working config");

    let wrong = "not-the-Secret-123";
    let error = h
        .connection(&[("secret_access_key", wrong)])
        .check()
        .await
        .expect_err("wrong secret");
    let CallError::Connector(error) = error else {
        panic!("a connector error: {error:?}");
    };
    assert_eq!(error.kind, ErrorKind::Auth);
    assert_eq!(error.field.as_deref(), Some("access_key_id"));
    assert!(!error.message.contains(wrong));
    assert!(
        !h.sink.dump().contains(wrong),
        "the wrong secret is redacted too"
    );

    let error = h
        .connection(&[("default_currency", "CHF")])
        .check()
        .await
        .expect_err("wrong currency");
    let CallError::Connector(error) = error else {
        panic!("a connector error");
    };
    assert_eq!(error.field.as_deref(), Some("default_currency"));
    let error = h
        .connection(&[("sales_channels", "Outlet")])
        .check()
        .await
        .expect_err("unknown channel");
    let CallError::Connector(error) = error else {
        panic!("a connector error");
    };
    assert_eq!(error.field.as_deref(), Some("sales_channels"));
    h.finish();
}
