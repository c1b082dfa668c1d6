//! The change watch, for the figures in `docs/flows.md`: how long a stock change in
//! MplusKASSA takes to reach Shopware with the stock flow watched at `watch = "1s"` (its
//! interval an hour, so only the watch brings changes), and what an idle watch costs.
//!
//! 1. Idle: the scheduler runs for `WATCH_BENCH_IDLE` seconds (10) with nothing changing;
//!    the requests to each system are counted (target: one `getCurrentSyncMarkers` a second,
//!    nothing else).
//! 2. Changes: `WATCH_BENCH_CHANGES` (40) stock changes at random moments; from `setStock`
//!    in the till to the new stock in the shop: median, p95, max.
//!
//! Run: `cargo bench -p koppel-e2e --bench watch` (release build; both simulators in the
//! same process, validation off).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::measure::{env_number, ms, quantile};
use common::{Catalogue, Koppel, Systems, config_text, shop_requests};
use koppel::store::RunStatus;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

fn main() {
    common::measure::block_on(bench());
}

fn till_counts(systems: &Systems) -> BTreeMap<String, u64> {
    systems.till.request_counts().into_iter().collect()
}

async fn bench() {
    let idle_seconds = env_number("WATCH_BENCH_IDLE", 10) as u64;
    let changes = env_number("WATCH_BENCH_CHANGES", 40);
    let systems = Systems::start(Catalogue {
        products: 2_000,
        variant_share: 0.35,
        branches: 2,
        validate: false,
        seed: 42,
    })
    .await;
    let products = Koppel::start(&config_text(&systems, "", "", "[flows.products]\n")).await;
    let filled = products.run("products").await;
    assert_eq!(filled.status, RunStatus::Succeeded, "{filled:#?}");
    products.close().await;
    let articles: Vec<i64> = systems
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
        .take(changes)
        .collect();
    println!(
        "watch bench: {} products in the shop; the stock flow with interval = \"1h\", watch = \"1s\"",
        filled.counts.created
    );

    let koppel = Koppel::start(&config_text(
        &systems,
        "",
        "",
        "[flows.stock]\ninterval = \"1h\"\nwatch = \"1s\"\n",
    ))
    .await;
    let cancel = CancellationToken::new();
    let scheduler = koppel.schedule(&cancel);
    let mut runs = scheduler.subscribe();
    let first = runs.recv().await.expect("the first stock run");
    println!(
        "   the first run wrote {} stock levels in {:.2} s",
        first.counts.created + first.counts.updated,
        first.duration_ms as f64 / 1000.0
    );

    // 1. Idle.
    let till_before = till_counts(&systems);
    let shop_before = shop_requests(&systems.shop);
    tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
    let till_after = till_counts(&systems);
    let mut used: BTreeMap<&str, u64> = BTreeMap::new();
    for (op, n) in &till_after {
        let delta = n - till_before.get(op).copied().unwrap_or(0);
        if delta > 0 {
            used.insert(op, delta);
        }
    }
    let mut idle_runs = 0;
    while runs.try_recv().is_ok() {
        idle_runs += 1;
    }
    println!(
        "1. idle for {idle_seconds} s: MplusKASSA requests {used:?} ({:.2} a second), Shopware requests {}, runs {idle_runs}",
        used.values().sum::<u64>() as f64 / idle_seconds as f64,
        shop_requests(&systems.shop) - shop_before
    );

    // 2. Changes at random moments.
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut took = Vec::with_capacity(articles.len());
    let mut run_ms = Vec::new();
    for (i, &article) in articles.iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1_500))).await;
        let stock = 300 + i as i64;
        systems.till.set_stock(article, 1, stock, 0).expect("set");
        let changed = Instant::now();
        loop {
            let now = systems
                .shop
                .product_by_number(&article.to_string())
                .and_then(|p| p.get("stock").and_then(|s| s.as_i64()));
            if now == Some(stock) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        took.push(changed.elapsed());
        while let Ok(run) = runs.try_recv() {
            run_ms.push(run.duration_ms);
        }
    }
    took.sort();
    run_ms.sort_unstable();
    println!(
        "2. stock change in MplusKASSA → Shopware over {} changes: median {}, p95 {}, max {} (min {}); a watched run takes {} ms (median)",
        took.len(),
        ms(quantile(&took, 0.5)),
        ms(quantile(&took, 0.95)),
        ms(took.last().copied().unwrap_or_default()),
        ms(took.first().copied().unwrap_or_default()),
        run_ms.get(run_ms.len() / 2).copied().unwrap_or_default()
    );

    cancel.cancel();
    drop(runs);
    if let Ok(scheduler) = Arc::try_unwrap(scheduler) {
        scheduler.stop().await;
    }
    koppel.close().await;
}
