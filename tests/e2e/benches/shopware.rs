//! Throughput of the Shopware connector through the component, into the simulator (validation
//! off): products written per second for 10,000 product rows (simple products and variant
//! families), HTTP requests per 1,000 rows, token requests per run, the size of the
//! component, and the batch-size measurement behind the `batch_size` default, on 6.6 and on
//! 6.4 (one sync operation per record), and what queue indexing saves.
//!
//! The simulator models the time a shop takes to index written data in the request
//! (`ShopwareOptions::index_delay`, `SHOPWARE_BENCH_INDEX_MS` per indexing, 5 ms): 6.4 indexes
//! each record of a sync on its own, 6.5+ a sync at once, and with
//! `indexing-behavior: use-queue-indexing` (the connector's default) the queue workers do it.
//!
//! Run: `cargo bench -p koppel-e2e --bench shopware` (release host; the guest is always built
//! with the `guest` profile). `SHOPWARE_BENCH_ROUNDS` sets the rounds per batch size (3).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use koppel::runtime::bindings::{
    Decimal, NamedValue, OutcomeStatus, Price, Product, Property, Record, StockLevel,
    Value as KValue, Variant, WriteOptions,
};
use koppel::runtime::{ConnectionSpec, Connector, MemoryKv, Runtime, RuntimeOptions};
use koppel_sim_shopware::{ShopwareOptions, ShopwareSimulator, Version};

const ROWS: usize = 10_000;
/// Records per `write` call, as a flow hands them over.
const PAGE: usize = 1_000;
const DEFAULT_BATCH: usize = 250;

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

/// 10,000 rows: every 5th product a family of 3 variants (size × colour).
fn catalog() -> Vec<Record> {
    let mut out = Vec::new();
    let (mut rows, mut n) = (0, 0usize);
    while rows < ROWS {
        let family = n % 5 == 0 && rows + 4 <= ROWS;
        let key = format!("{}-{n:05}", if family { "FAM" } else { "SKU" });
        let rate = if n % 3 == 0 { 7 } else { 19 };
        let variants: Vec<Variant> = if family {
            (0..3)
                .map(|v| Variant {
                    key: format!("{key}-{v}"),
                    name: None,
                    ean: Some(format!("88{n:08}{v:03}")),
                    options: vec![
                        property("Size", ["S", "M", "L"][v]),
                        property("Color", ["Red", "Blue"][n % 2]),
                    ],
                    prices: vec![],
                    active: true,
                    extra: vec![],
                })
                .collect()
        } else {
            vec![]
        };
        rows += 1 + variants.len();
        out.push(Record::Product(Product {
            key,
            name: format!("Product {n}"),
            description: Some(format!("<p>Product {n}, made with care.</p>")),
            short_description: None,
            ean: (!family).then(|| format!("87{n:011}")),
            prices: vec![price(1000 + n as i64, rate)],
            categories: vec![vec![
                "Clothing".into(),
                ["Shirts", "Trousers", "Jackets"][n % 3].into(),
            ]],
            properties: vec![property("Material", ["Cotton", "Wool"][n % 2])],
            variants,
            active: true,
            extra: vec![NamedValue {
                name: "erp_code".into(),
                value: KValue::Text(format!("A-{n}")),
            }],
        }));
        n += 1;
    }
    out
}

fn options() -> WriteOptions {
    WriteOptions {
        create_only: vec![],
        settings: vec![],
    }
}

/// The shop and the connection a run writes to.
#[derive(Clone, Copy)]
struct Setup {
    version: Version,
    queue_indexing: bool,
    index_delay: Duration,
}

struct Run {
    batch: usize,
    first: Duration,
    again: Duration,
    /// Requests of the first run: all, syncs, token requests.
    requests: u64,
    syncs: u64,
    tokens: u64,
    /// Requests of the no-change re-run.
    again_requests: u64,
    stock: Duration,
    stock_rows: usize,
    stock_requests: u64,
}

fn total(sim: &ShopwareSimulator) -> u64 {
    sim.request_counts().values().sum()
}

async fn run(connector: &Arc<Connector>, catalog: &[Record], batch: usize, setup: Setup) -> Run {
    let sim = ShopwareSimulator::start(ShopwareOptions {
        version: setup.version,
        validate: false,
        index_delay: setup.index_delay,
        ..ShopwareOptions::default()
    })
    .await
    .expect("simulator");
    let config: BTreeMap<String, String> = [
        ("shop_url", sim.url()),
        ("access_key_id", sim.client_id().to_owned()),
        ("secret_access_key", sim.client_secret().to_owned()),
        ("sales_channels", "Storefront".to_owned()),
        ("batch_size", batch.to_string()),
        ("queue_indexing", setup.queue_indexing.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut spec = ConnectionSpec::new("bench", "shop", config);
    spec.kv = Arc::new(MemoryKv::new());
    let connection = connector.connect(spec).expect("config");

    let mut session = connection.session().await.expect("session");
    let started = Instant::now();
    for page in catalog.chunks(PAGE) {
        let outcomes = session
            .write("products", page, &options())
            .await
            .expect("write");
        assert!(
            outcomes.iter().all(|o| o.status == OutcomeStatus::Created),
            "{:?}",
            outcomes.iter().find(|o| o.status != OutcomeStatus::Created)
        );
    }
    let first = started.elapsed();
    assert_eq!(sim.count("product"), ROWS);
    let requests = total(&sim);
    let syncs = sim.request_count("POST /api/_action/sync");
    let tokens = sim.token_requests();

    let mut session = connection.session().await.expect("session");
    let started = Instant::now();
    for page in catalog.chunks(PAGE) {
        let outcomes = session
            .write("products", page, &options())
            .await
            .expect("write");
        assert!(
            outcomes
                .iter()
                .all(|o| o.status == OutcomeStatus::Unchanged)
        );
    }
    let again = started.elapsed();
    let again_requests = total(&sim) - requests;

    // Stock for every row that can be sold.
    let levels: Vec<Record> = sim
        .products()
        .iter()
        .filter(|p| p["childCount"].as_i64().unwrap_or(0) == 0)
        .filter_map(|p| p["productNumber"].as_str())
        .enumerate()
        .map(|(i, number)| {
            let available = Decimal {
                units: (i % 50) as i64 + 1,
                scale: 0,
            };
            Record::Stock(StockLevel {
                key: number.to_owned(),
                on_hand: available,
                reserved: Decimal { units: 0, scale: 0 },
                available,
                location: None,
                extra: vec![],
            })
        })
        .collect();
    let before = total(&sim);
    let started = Instant::now();
    for page in levels.chunks(PAGE) {
        session
            .write("stock", page, &options())
            .await
            .expect("stock");
    }
    let stock = started.elapsed();
    let stock_requests = total(&sim) - before;
    sim.shutdown().await;
    Run {
        batch,
        first,
        again,
        requests,
        syncs,
        tokens,
        again_requests,
        stock,
        stock_rows: levels.len(),
        stock_requests,
    }
}

fn per_second(rows: usize, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64()
}

fn main() {
    let rounds: usize = std::env::var("SHOPWARE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: Some(
                std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
            ),
            ..RuntimeOptions::default()
        })
        .expect("runtime");
        let builtin = koppel::connectors::builtin_by_id("shopware").expect("shopware built in");
        let connector = runtime
            .load("shopware", builtin.wasm)
            .await
            .expect("load");
        let catalog = catalog();
        let records = catalog.len();

        let index_ms: u64 = std::env::var("SHOPWARE_BENCH_INDEX_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let index_delay = Duration::from_millis(index_ms);

        println!(
            "Shopware connector → simulator (validation off), {ROWS} product rows ({records} records: \
             simple products and families of 3 variants), written in pages of {PAGE} records; \
             indexing in the request modelled at {index_ms} ms each.\n"
        );
        for version in [Version::V6_6, Version::V6_4] {
            let setup = Setup {
                version,
                queue_indexing: true,
                index_delay,
            };
            println!("{} (queue indexing, the default), best of {rounds}:", version.full());
            println!(
                "{:>6} {:>14} {:>12} {:>10} {:>8} {:>8} {:>14} {:>10} {:>12}",
                "batch",
                "rows/s (best)",
                "first run",
                "req/1000",
                "syncs",
                "tokens",
                "re-run (best)",
                "re-run req",
                "stock rows/s"
            );
            let mut best_default = None;
            for batch in [50, 100, 250, 500, 1000] {
                let mut runs = Vec::new();
                for _ in 0..rounds {
                    runs.push(run(&connector, &catalog, batch, setup).await);
                }
                let best = runs
                    .iter()
                    .min_by_key(|r| r.first)
                    .expect("at least one round");
                let best_again = runs.iter().map(|r| r.again).min().unwrap_or_default();
                let best_stock = runs.iter().map(|r| r.stock).min().unwrap_or_default();
                println!(
                    "{:>6} {:>14.0} {:>12.2?} {:>10.1} {:>8} {:>8} {:>14.2?} {:>10} {:>12.0}",
                    best.batch,
                    per_second(ROWS, best.first),
                    best.first,
                    best.requests as f64 * 1000.0 / ROWS as f64,
                    best.syncs,
                    best.tokens,
                    best_again,
                    best.again_requests,
                    per_second(best.stock_rows, best_stock),
                );
                if batch == DEFAULT_BATCH {
                    best_default = Some((
                        per_second(ROWS, best.first),
                        best.requests,
                        best.tokens,
                        best.stock_requests,
                        best.stock_rows,
                    ));
                }
            }
            if let Some((rate, requests, tokens, stock_requests, stock_rows)) = best_default {
                println!(
                    "Default batch size {DEFAULT_BATCH}: {rate:.0} product rows/s, {:.1} HTTP requests per \
                     1,000 rows, {tokens} token request(s) per run, stock: {stock_requests} requests \
                     for {stock_rows} rows.\n",
                    requests as f64 * 1000.0 / ROWS as f64
                );
            }
        }
        println!("Without queue indexing (queue_indexing = false), batch size {DEFAULT_BATCH}, one round:");
        for version in [Version::V6_6, Version::V6_4] {
            let setup = Setup {
                version,
                queue_indexing: false,
                index_delay,
            };
            let r = run(&connector, &catalog, DEFAULT_BATCH, setup).await;
            println!(
                "{}: {:.0} product rows/s (first run {:.2?}), stock {:.0} rows/s",
                version.full(),
                per_second(ROWS, r.first),
                r.first,
                per_second(r.stock_rows, r.stock),
            );
        }
        println!(
            "Component: {} bytes ({:.0} KiB).",
            builtin.wasm.len(),
            builtin.wasm.len() as f64 / 1024.0
        );
    });
}
