//! The flows end to end, simulator to simulator (validation off), for the figures in
//! `docs/flows.md`:
//!
//! 1. the full initial products sync of 10,000 products (20% size/colour families): wall
//!    time, products per second, HTTP requests against the minimum (pages read + batches
//!    written);
//! 2. a no-change re-sync of the same (`--full`): time and write requests (target 0);
//! 3. a stock change in MplusKASSA to Shopware under the scheduler of `koppel run`, with the
//!    stock flow on a short interval, and through a signed MplusKASSA webhook;
//! 4. a Shopware order event (signed webhook) to the order in MplusKASSA: the median over
//!    100 orders;
//! 5. the full initial sync again, into an empty shop, with every request to either
//!    simulator delayed by 50 ms (the faults layer's latency): wall time against the floor
//!    `max(pages, batches) × 50 ms`.
//!
//! Each sync prints where its time went (read, lookup, map, hash, write, commit, log).
//!
//! Run: `cargo bench -p koppel-e2e --bench flows`. `FLOWS_BENCH_PRODUCTS` (10000),
//! `FLOWS_BENCH_ORDERS` (100), `FLOWS_BENCH_INTERVAL` (the stock interval, `5s`),
//! `FLOWS_BENCH_LATENCY_MS` (50; 0 leaves part 5 out), `FLOWS_BENCH_PRODUCTS_FLOW` (TOML
//! lines added to `[flows.products]`, e.g. `write_concurrency = 4`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::measure::{env_number, median, ms};
use common::{Catalogue, Koppel, Systems, config_text, shop_requests, till_requests};
use koppel::store::RunStatus;
use koppel_sim_shopware::{OrderCustomer, OrderLine, StorefrontOrder};
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

/// The bench's till of `products` products (20% families) and an empty shop.
async fn till_and_shop(products: usize) -> Systems {
    Systems::start(Catalogue {
        products,
        // The simulator makes families only of clothing (about 4 in 7 products): 0.35 gives
        // the 20% families the issue asks for.
        variant_share: 0.35,
        branches: 2,
        validate: false,
        seed: 42,
    })
    .await
}

/// The products flow as shipped, with `FLOWS_BENCH_PRODUCTS_FLOW`'s lines over it.
fn products_flow() -> String {
    let extra = std::env::var("FLOWS_BENCH_PRODUCTS_FLOW").unwrap_or_default();
    format!("[flows.products]\n{}\n", extra.replace("\\n", "\n"))
}

/// A run's stage times, for the profile in docs/flows.md.
fn stages(times: &koppel::flow::StageTimes) -> String {
    let parts = [
        ("read", times.read),
        ("lookup", times.lookup),
        ("map", times.map),
        ("hash", times.hash),
        ("write", times.write),
        ("commit", times.commit),
        ("log", times.log),
    ];
    parts
        .iter()
        .map(|(name, took)| format!("{name} {}", ms(*took)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    common::measure::block_on(bench());
}

async fn bench() {
    let products = env_number("FLOWS_BENCH_PRODUCTS", 10_000);
    let orders = env_number("FLOWS_BENCH_ORDERS", 100);
    let interval = std::env::var("FLOWS_BENCH_INTERVAL").unwrap_or_else(|_| "5s".into());
    let systems = till_and_shop(products).await;
    let (catalogue_products, articles) = systems.till.catalogue_size();
    let families = systems.till.variant_products().len();
    println!(
        "flows bench: the till holds {catalogue_products} products ({articles} articles; {families} families, {:.0}%), the shop is empty",
        families as f64 * 100.0 / catalogue_products as f64
    );

    // 1. The full initial sync.
    let koppel = Koppel::start(&config_text(&systems, "", "", &products_flow())).await;
    let flow = koppel.loaded.flow("products").expect("enabled").clone();
    println!(
        "   products flow: page_size {}, batch_size {}, write_concurrency {}",
        flow.page_size, flow.batch_size, flow.write_concurrency
    );
    let (till_before, shop_before) = (till_requests(&systems.till), shop_requests(&systems.shop));
    let started = Instant::now();
    let first = koppel.run("products").await;
    let took = started.elapsed();
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");
    let till_used = till_requests(&systems.till) - till_before;
    let shop_used = shop_requests(&systems.shop) - shop_before;
    let written = first.counts.created + first.counts.updated;
    let (pages, batches) = (first.pages, first.batches);
    println!(
        "1. full initial sync: {} products read, {written} written ({} rows in the shop), {} skipped (not on the web shop)",
        first.counts.read,
        systems.shop.count("product"),
        first.counts.skipped
    );
    println!(
        "   wall {:.2} s, {:.0} products/s read, {:.0} written/s",
        took.as_secs_f64(),
        first.counts.read as f64 / took.as_secs_f64(),
        written as f64 / took.as_secs_f64()
    );
    println!(
        "   HTTP requests: {} ({till_used} MplusKASSA, {shop_used} Shopware, of which {} token); minimum {} ({pages} pages of up to {} + {batches} batches of up to {}) → {:.2}× the minimum",
        till_used + shop_used,
        systems.shop.token_requests(),
        pages + batches,
        flow.page_size,
        flow.batch_size,
        (till_used + shop_used) as f64 / (pages + batches) as f64
    );
    let counts = systems.shop.request_counts();
    println!("   Shopware by route: {counts:?}");
    let mut till_counts: Vec<_> = systems.till.request_counts().into_iter().collect();
    till_counts.sort();
    println!("   MplusKASSA by operation: {till_counts:?}");
    println!("   stages: {}", stages(&first.stages));

    // 2. A no-change re-sync, from the start.
    let writes = systems.shop_writes();
    let (till_before, shop_before) = (till_requests(&systems.till), shop_requests(&systems.shop));
    let started = Instant::now();
    let again = koppel.run_full("products").await;
    let took = started.elapsed();
    println!(
        "2. no-change re-sync (--full): {} read, {} unchanged, {} written; wall {:.2} s; {} write requests (target 0); {} requests in all ({} MplusKASSA, {} Shopware)",
        again.counts.read,
        again.counts.unchanged,
        again.counts.created + again.counts.updated,
        took.as_secs_f64(),
        systems.shop_writes() - writes,
        till_requests(&systems.till) - till_before + shop_requests(&systems.shop) - shop_before,
        till_requests(&systems.till) - till_before,
        shop_requests(&systems.shop) - shop_before,
    );
    println!("   stages: {}", stages(&again.stages));
    koppel.close().await;

    // 3. A stock change under the scheduler.
    stock_latency(&systems, &interval).await;

    // 4. Webhook → order in the till.
    order_latency(&systems, orders).await;
    drop(systems);

    // 5. The full initial sync at a real shop's distance.
    let latency = env_number("FLOWS_BENCH_LATENCY_MS", 50);
    if latency > 0 {
        latency_sync(products, Duration::from_millis(latency as u64)).await;
    }
}

/// The full initial sync with `latency` added to every request on both simulators.
async fn latency_sync(products: usize, latency: Duration) {
    let systems = till_and_shop(products).await;
    systems.till.faults().set_latency(latency);
    systems.shop.faults().set_latency(latency);
    let koppel = Koppel::start(&config_text(&systems, "", "", &products_flow())).await;
    let flow = koppel.loaded.flow("products").expect("enabled").clone();
    let started = Instant::now();
    let run = koppel.run("products").await;
    let took = started.elapsed();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let written = run.counts.created + run.counts.updated;
    let (pages, batches) = (run.pages, run.batches);
    let floor = latency * pages.max(batches) as u32;
    let requests = till_requests(&systems.till) + shop_requests(&systems.shop);
    println!(
        "5. full initial sync at {} per request (write_concurrency {}): wall {:.2} s, {written} written; floor max({pages} pages, {batches} batches) × {} = {:.2} s → {:.2}× the floor; {requests} requests",
        ms(latency),
        flow.write_concurrency,
        took.as_secs_f64(),
        ms(latency),
        floor.as_secs_f64(),
        took.as_secs_f64() / floor.as_secs_f64()
    );
    println!("   stages: {}", stages(&run.stages));
    koppel.close().await;
}

/// Article numbers of simple products on the web shop (the shop has them).
fn simple_articles(systems: &Systems, count: usize) -> Vec<i64> {
    systems
        .shop
        .products()
        .iter()
        .filter(|p| p.get("childCount").and_then(|c| c.as_i64()).unwrap_or(0) == 0)
        .filter_map(|p| p.get("productNumber").and_then(|n| n.as_str()))
        .filter_map(|n| n.parse::<i64>().ok())
        .filter(|n| {
            systems
                .till
                .article_view(*n)
                .is_some_and(|a| a.stock_article)
        })
        .take(count)
        .collect()
}

async fn wait_for_stock(systems: &Systems, article: i64, stock: i64) -> Instant {
    loop {
        let now = systems
            .shop
            .product_by_number(&article.to_string())
            .and_then(|p| p.get("stock").and_then(|s| s.as_i64()));
        if now == Some(stock) {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn stock_latency(systems: &Systems, interval: &str) {
    let koppel = Koppel::start(&config_text(
        systems,
        "",
        "",
        &format!(
            "[flows.stock]\ninterval = \"{interval}\"\n\n[server]\nlisten = \"127.0.0.1:0\"\ntokens = [\"bench\"]\n\n[webhooks.till]\nscheme = \"koppel\"\nsecret = \"till-secret\"\n"
        ),
    ))
    .await;
    let cancel = CancellationToken::new();
    let scheduler = koppel.schedule(&cancel);
    let mut runs = scheduler.subscribe();
    let control: Arc<dyn koppel::server::FlowControl> = scheduler.clone();
    let server = koppel::server::start(
        &koppel.loaded,
        koppel.env.clone(),
        Some(control),
        scheduler.subscribe(),
        cancel.clone(),
    )
    .await
    .expect("server");
    let first = runs.recv().await.expect("the first stock run");
    println!(
        "3. stock: the first scheduled run wrote {} stock levels in {:.2} s",
        first.counts.created + first.counts.updated,
        first.duration_ms as f64 / 1000.0
    );
    let period = koppel::config::parse_duration(interval).expect("interval");
    let articles = simple_articles(systems, 12);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut scheduled = Vec::new();
    let mut run_times = Vec::new();
    for (i, &article) in articles.iter().take(6).enumerate() {
        // Changes land at random points of the interval.
        tokio::time::sleep(Duration::from_millis(
            rng.random_range(0..period.as_millis() as u64),
        ))
        .await;
        let stock = 100 + i as i64;
        systems.till.set_stock(article, 1, stock, 0).expect("set");
        let changed = Instant::now();
        let arrived = wait_for_stock(systems, article, stock).await;
        scheduled.push(arrived - changed);
        while let Ok(run) = runs.try_recv() {
            run_times.push(Duration::from_millis(run.duration_ms));
        }
    }
    // The same through a signed MplusKASSA webhook (koppel's scheme), which runs the flow now.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut hooked = Vec::new();
    for (i, &article) in articles.iter().skip(6).enumerate() {
        let stock = 200 + i as i64;
        systems.till.set_stock(article, 1, stock, 0).expect("set");
        let changed = Instant::now();
        let body = format!("{{\"event\":\"stock.changed\",\"article\":{article}}}");
        let now = koppel::store::now_ms() / 1000;
        let timestamp = now.to_string();
        let signature = koppel::signature::koppel_signature(b"till-secret", now, body.as_bytes());
        let response = client
            .post(format!(
                "http://{}/webhooks/{}/till",
                server.addr, koppel.env.tenant
            ))
            .header(koppel::signature::TIMESTAMP_HEADER, &timestamp)
            .header(koppel::signature::SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .expect("webhook");
        assert_eq!(response.status().as_u16(), 202, "accepted");
        let arrived = wait_for_stock(systems, article, stock).await;
        hooked.push(arrived - changed);
    }
    println!(
        "   under the scheduler, interval {interval}: median {} (min {}, max {}) from set_stock in MplusKASSA to the new stock in Shopware, over {} changes; an incremental stock run takes {}",
        ms(median(scheduled.clone())),
        ms(scheduled.iter().min().copied().unwrap_or_default()),
        ms(scheduled.iter().max().copied().unwrap_or_default()),
        scheduled.len(),
        ms(median(run_times))
    );
    println!(
        "   through a signed MplusKASSA webhook: median {} (max {}) over {} changes",
        ms(median(hooked.clone())),
        ms(hooked.iter().max().copied().unwrap_or_default()),
        hooked.len()
    );
    cancel.cancel();
    drop(runs);
    server.wait().await;
    if let Ok(scheduler) = Arc::try_unwrap(scheduler) {
        scheduler.stop().await;
    }
    koppel.close().await;
}

async fn order_latency(systems: &Systems, orders: usize) {
    let mut hook = common::webhook::Hooked::start(systems, "1h").await;
    let skus = simple_articles(systems, 40);
    for &sku in &skus {
        let _ = systems.till.set_stock(sku, 1, 1000, 0);
    }
    let mut took = Vec::with_capacity(orders);
    for i in 0..orders {
        let order = StorefrontOrder {
            paid: true,
            payment_method: "payment_prepayment".into(),
            ..StorefrontOrder::new(
                OrderCustomer::private(&format!("c{}@example.nl", i % 25), "Anna", "Visser", "NL"),
                vec![OrderLine::new(&skus[i % skus.len()].to_string(), 1)],
            )
        };
        let placed = systems.shop.place_order(&order).expect("checkout");
        took.push(hook.deliver(&placed, &systems.till).await);
    }
    println!(
        "4. Shopware order event (signed webhook) → order in MplusKASSA: median {} (min {}, max {}) over {orders} orders",
        ms(median(took.clone())),
        ms(took.iter().min().copied().unwrap_or_default()),
        ms(took.iter().max().copied().unwrap_or_default())
    );
    hook.stop().await;
}
