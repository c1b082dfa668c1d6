//! Figures for the closing note: requests per second the simulator serves for sync batches
//! and product searches (validation off, as benchmarks run, then on), and the resident
//! memory it holds for 100,000 products. Run: `cargo bench -p koppel-sim-shopware`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use koppel_sim_shopware::{ShopwareOptions, ShopwareSimulator, Version};
use serde_json::{Value, json};

const CONCURRENCY: usize = 8;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn token(client: &reqwest::Client, sim: &ShopwareSimulator) -> String {
    let answer: Value = client
        .post(format!("{}/api/oauth/token", sim.url()))
        .json(&json!({"grant_type": "client_credentials", "client_id": sim.client_id(), "client_secret": sim.client_secret()}))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token json");
    answer["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

/// Sends `total` requests built by `body(i)` to `path`, `CONCURRENCY` at a time; requests/s.
async fn drive(
    sim: &ShopwareSimulator,
    path: &str,
    total: usize,
    body: Arc<dyn Fn(usize) -> Value + Send + Sync>,
) -> f64 {
    let client = client_builder().no_proxy().build().expect("client");
    let token = token(&client, sim).await;
    let url = format!("{}{path}", sim.url());
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..CONCURRENCY {
        let (client, token, url, body) = (client.clone(), token.clone(), url.clone(), body.clone());
        workers.push(tokio::spawn(async move {
            let mut i = worker;
            while i < total {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .body(body(i).to_string())
                    .send()
                    .await
                    .expect("send");
                assert!(
                    response.status().is_success(),
                    "{}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                );
                response.bytes().await.expect("body");
                i += CONCURRENCY;
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn run(products: usize, validate: bool, requests: usize) {
    let sim = ShopwareSimulator::start(ShopwareOptions {
        version: Version::V6_6,
        products,
        seed: 3,
        validate,
        ..ShopwareOptions::default()
    })
    .await
    .expect("start");
    let rows = sim.products();
    let ids: Arc<Vec<String>> = Arc::new(
        rows.iter()
            .filter_map(|p| p["id"].as_str().map(str::to_string))
            .collect(),
    );
    let numbers: Arc<Vec<String>> = Arc::new(
        rows.iter()
            .filter_map(|p| p["productNumber"].as_str().map(str::to_string))
            .collect(),
    );
    let label = if validate {
        "validation on "
    } else {
        "validation off"
    };

    let batch = 500;
    let stock_ids = ids.clone();
    let rps = drive(&sim, "/api/_action/sync", requests, Arc::new(move |i| {
        let payload: Vec<Value> = (0..batch).map(|j| json!({"id": stock_ids[(i * batch + j) % stock_ids.len()], "stock": (i + j) % 50})).collect();
        json!([{"entity": "product", "action": "upsert", "payload": payload}])
    }))
    .await;
    println!(
        "{label} | sync, {batch} stock updates per request     | {rps:>8.1} req/s | {:>9.0} records/s",
        rps * batch as f64
    );

    let tax = sim.ids().tax(19.0).expect("tax").hex();
    let channel = sim.ids().sales_channel.hex();
    let upsert_batch = 100;
    let rps = drive(&sim, "/api/_action/sync", requests / 2, Arc::new(move |i| {
        let payload: Vec<Value> = (0..upsert_batch).map(|j| json!({
            "productNumber": format!("BENCH-{validate}-{i}-{j}"), "name": "Bench product", "stock": 5, "taxId": tax,
            "price": [{"currencyId": "b7d2554b0ce847cd82f3ac9bd1c0dfca", "gross": 10.0, "net": 8.4, "linked": true}],
            "visibilities": [{"salesChannelId": channel, "visibility": 30}]})).collect();
        json!([{"entity": "product", "action": "upsert", "payload": payload}])
    }))
    .await;
    println!(
        "{label} | sync, {upsert_batch} new products with visibility | {rps:>8.1} req/s | {:>9.0} records/s",
        rps * upsert_batch as f64
    );

    let lookup_numbers = numbers.clone();
    let rps = drive(&sim, "/api/search/product", requests * 4, Arc::new(move |i| {
        let wanted: Vec<&String> = (0..50).map(|j| &lookup_numbers[(i * 50 + j) % lookup_numbers.len()]).collect();
        json!({"limit": 100, "filter": [{"type": "equalsAny", "field": "productNumber", "value": wanted}],
            "includes": {"product": ["id", "productNumber", "parentId", "stock", "availableStock", "active"]}})
    }))
    .await;
    println!("{label} | search product, 50 SKUs by equalsAny       | {rps:>8.1} req/s");

    let rps = drive(&sim, "/api/search/product", requests, Arc::new(move |i| {
        json!({"limit": 100, "page": 1 + i % 20, "total-count-mode": "exact", "sort": [{"field": "productNumber", "order": "ASC"}]})
    }))
    .await;
    println!(
        "{label} | search product, page of 100 full rows, sorted, exact total | {rps:>8.1} req/s"
    );
    assert!(
        sim.response_violations().is_empty(),
        "{:#?}",
        sim.response_violations()
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        // The OpenAPI file is parsed once per process; load it first so the product figure
        // holds the products alone.
        let start_rss = rss_bytes();
        let empty = ShopwareSimulator::start(ShopwareOptions { version: Version::V6_6, ..ShopwareOptions::default() })
            .await
            .expect("start");
        let before = rss_bytes();
        println!("memory | empty shop with the 6.6 OpenAPI file loaded: RSS +{:.1} MiB", (before - start_rss) as f64 / 1048576.0);
        drop(empty);
        let started = Instant::now();
        let sim = ShopwareSimulator::start(ShopwareOptions { version: Version::V6_6, products: 100_000, seed: 1, ..ShopwareOptions::default() })
            .await
            .expect("start");
        let built = started.elapsed();
        let after = rss_bytes();
        let visibilities = sim.count("product_visibility");
        println!(
            "memory | 100,000 products ({} variants, {visibilities} visibilities, category links): RSS +{:.1} MiB, built in {:.1} s",
            sim.products().iter().filter(|p| !p["parentId"].is_null()).count(),
            (after.saturating_sub(before)) as f64 / 1048576.0,
            built.as_secs_f64()
        );
        drop(sim);
        tokio::time::sleep(Duration::from_millis(50)).await;

        println!("throughput | 6.6, {CONCURRENCY} concurrent clients, simulator and client share 2 cores");
        run(100_000, false, 200).await;
        run(10_000, true, 40).await;
    });
}

use koppel_test_support::client_builder;
