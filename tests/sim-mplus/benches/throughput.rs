//! Figures for the closing note: requests per second the simulator serves (getProducts pages,
//! createOrderV3) with a concurrent client, and the memory it holds for 100,000 products.
//! Run with `cargo bench -p koppel-sim-mplus`; bounded in count, loopback only.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use koppel_sim_mplus::{MplusOptions, MplusSimulator, request_envelope};

/// Resident set size in bytes, from /proc/self/statm.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Sends `total` requests from `concurrency` tasks; `make(i)` writes request `i`.
async fn run(
    sim: &MplusSimulator,
    label: &str,
    total: u64,
    concurrency: u64,
    make: impl Fn(u64) -> String + Send + Sync + 'static,
) {
    let client = client_builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency as usize)
        .build()
        .expect("client");
    let endpoint = Arc::new(sim.endpoint());
    let make = Arc::new(make);
    let next = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, endpoint, make, next, bytes) = (
            client.clone(),
            endpoint.clone(),
            make.clone(),
            next.clone(),
            bytes.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let response = client
                    .post(endpoint.as_str())
                    .body(request_envelope(&make(i)))
                    .send()
                    .await
                    .expect("send");
                assert_eq!(response.status(), 200);
                let body = response.bytes().await.expect("body");
                bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{label:<48} {total:>6} requests, concurrency {concurrency}: {:>8.0} req/s, {:>6.1} KiB/response",
        total as f64 / elapsed,
        bytes.load(Ordering::Relaxed) as f64 / total as f64 / 1024.0
    );
}

fn page(from: u64, limit: u64) -> String {
    format!(
        "<ns1:getProducts><ns1:request><ns1:pluNumbers/><ns1:syncMarker>{from}</ns1:syncMarker>\
         <ns1:syncMarkerLimit>{limit}</ns1:syncMarkerLimit></ns1:request></ns1:getProducts>"
    )
}

fn order(key: u64, relation: i64, article: i64) -> String {
    format!(
        "<ns1:createOrderV3><ns1:request><ns1:idempotencyKey>bench-{key}</ns1:idempotencyKey>\
         <ns1:order><ns1:orderId/><ns1:extOrderId>BENCH-{key}</ns1:extOrderId>\
         <ns1:entryBranchNumber>1</ns1:entryBranchNumber><ns1:employeeNumber>999999</ns1:employeeNumber>\
         <ns1:relationNumber>{relation}</ns1:relationNumber><ns1:lineList>\
         <ns1:line><ns1:articleNumber>{article}</ns1:articleNumber><ns1:data><ns1:quantity>1</ns1:quantity>\
         <ns1:decimalPlaces>0</ns1:decimalPlaces><ns1:price>1995</ns1:price></ns1:data></ns1:line>\
         <ns1:line><ns1:articleNumber>999</ns1:articleNumber><ns1:data><ns1:quantity>1</ns1:quantity>\
         <ns1:decimalPlaces>0</ns1:decimalPlaces><ns1:price>495</ns1:price></ns1:data></ns1:line>\
         </ns1:lineList></ns1:order><ns1:prepay>true</ns1:prepay><ns1:paymentList><ns1:payment>\
         <ns1:method>IDEAL</ns1:method><ns1:amount>2490</ns1:amount></ns1:payment></ns1:paymentList>\
         </ns1:request></ns1:createOrderV3>"
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!(
        "koppel-sim-mplus figures ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let before = rss();
    let started = Instant::now();
    let sim = MplusSimulator::start(MplusOptions {
        products: 100_000,
        variant_share: 0.3,
        relations: 5_000,
        ..MplusOptions::default()
    })
    .await
    .expect("start");
    let after = rss();
    let (products, articles) = sim.catalogue_size();
    println!(
        "memory: {products} products / {articles} articles / 2 branches of stock / 5000 relations: \
         RSS +{:.1} MiB ({:.0} bytes per article), generated in {:.2} s",
        (after - before) as f64 / (1024.0 * 1024.0),
        (after - before) as f64 / articles as f64,
        started.elapsed().as_secs_f64()
    );

    let articles = articles as u64;
    run(
        &sim,
        "getProducts, 100 articles per page",
        3_000,
        8,
        move |i| page((i * 7_919) % articles, 100),
    )
    .await;
    run(
        &sim,
        "getProducts, 1000 articles per page",
        300,
        8,
        move |i| page((i * 7_919) % articles, 1000),
    )
    .await;
    let relation = sim.relations()[0].number;
    let article = sim.article_numbers()[1];
    run(
        &sim,
        "createOrderV3 (2 lines, prepaid)",
        5_000,
        8,
        move |i| order(i, relation, article),
    )
    .await;
    run(
        &sim,
        "createOrderV3 replays (same keys)",
        5_000,
        8,
        move |i| order(i, relation, article),
    )
    .await;
    assert_eq!(sim.orders().len(), 5_000, "replays create nothing");
    drop(sim);

    if koppel_sim_mplus::default_reference_dir().is_some() {
        let sim = MplusSimulator::start(MplusOptions {
            products: 2_000,
            validate: true,
            ..MplusOptions::default()
        })
        .await
        .expect("start");
        run(
            &sim,
            "validated getProducts, 100 articles per page",
            500,
            8,
            |i| page((i * 97) % 2_000, 100),
        )
        .await;
        let relation = sim.relations()[0].number;
        let article = sim.article_numbers()[1];
        run(&sim, "validated createOrderV3", 1_000, 8, move |i| {
            order(i, relation, article)
        })
        .await;
        sim.assert_no_violations(0);
    }
}

use koppel_test_support::client_builder;
