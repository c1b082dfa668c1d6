//! Throughput of the MplusKASSA connector through the component, against the simulator
//! (validation off): products read per second for a catalogue of 10,000 products, SOAP
//! requests per 1,000 products, and the size of the component.
//!
//! Run: `cargo bench -p koppel-e2e --bench mplus` (release host; the guest is always built
//! with the `guest` profile).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use koppel::runtime::bindings::Record;
use koppel::runtime::{ConnectionSpec, MemorySink, Runtime, RuntimeOptions, Session};
use koppel_sim_mplus::{MplusOptions, MplusSimulator};

const PRODUCTS: usize = 10_000;
const PAGE: u32 = 1_000;
const ROUNDS: usize = 3;

struct Run {
    elapsed: Duration,
    /// Time inside HTTP exchanges (the simulator answering, transport).
    http: Duration,
    products: usize,
    articles: usize,
    requests: u64,
}

async fn read_products(session: &mut Session, sim: &MplusSimulator, sink: &MemorySink) -> Run {
    let before: u64 = sim.request_counts().values().sum();
    let exchanges_before = sink.exchanges().len();
    let started = Instant::now();
    let mut state: Option<String> = None;
    let (mut products, mut articles) = (0, 0);
    loop {
        let page = session
            .read("products", state.as_deref(), PAGE)
            .await
            .expect("read products");
        for record in &page.records {
            if let Record::Product(p) = record {
                products += 1;
                articles += p.variants.len().max(1);
            }
        }
        state = page.state;
        if !page.has_more {
            break;
        }
    }
    let elapsed = started.elapsed();
    let after: u64 = sim.request_counts().values().sum();
    let http_ms: u64 = sink.exchanges()[exchanges_before..]
        .iter()
        .map(|x| x.duration_ms)
        .sum();
    Run {
        elapsed,
        http: Duration::from_millis(http_ms),
        products,
        articles,
        requests: after - before,
    }
}

async fn read_stock(session: &mut Session) -> (Duration, usize) {
    let started = Instant::now();
    let mut state: Option<String> = None;
    let mut records = 0;
    loop {
        let page = session
            .read("stock", state.as_deref(), PAGE)
            .await
            .expect("read stock");
        records += page.records.len();
        state = page.state;
        if !page.has_more {
            break;
        }
    }
    (started.elapsed(), records)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let sim = MplusSimulator::start(MplusOptions {
            products: PRODUCTS,
            validate: false,
            ..MplusOptions::default()
        })
        .await
        .expect("simulator");
        let (sim_products, sim_articles) = sim.catalogue_size();
        let cache = std::env::temp_dir().join("koppel-bench-component-cache");
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: Some(cache),
            ..RuntimeOptions::default()
        })
        .expect("runtime");
        let builtin = koppel::connectors::builtin_by_id("mplus").expect("mplus is built in");
        let connector = runtime.load("mplus", builtin.wasm).await.expect("load");
        let config: BTreeMap<String, String> = [
            ("base_url", sim.url()),
            ("ident", sim.ident().to_owned()),
            ("secret", sim.secret().to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let sink = MemorySink::new();
        let mut spec = ConnectionSpec::new("bench", "till", config);
        spec.activity = std::sync::Arc::new(sink.clone());
        let connection = connector.connect(spec).expect("config");

        println!(
            "MplusKASSA connector: simulator with {sim_products} products / {sim_articles} articles, pages of {PAGE}"
        );
        let mut runs = Vec::new();
        for round in 0..ROUNDS {
            let mut session = connection.session().await.expect("session");
            let run = read_products(&mut session, &sim, &sink).await;
            assert_eq!(run.articles, sim_articles, "every article read once");
            println!(
                "  round {}: {} products ({} articles) in {:.0} ms ({:.0} ms of it in HTTP exchanges), {} SOAP requests",
                round + 1,
                run.products,
                run.articles,
                run.elapsed.as_secs_f64() * 1e3,
                run.http.as_secs_f64() * 1e3,
                run.requests
            );
            runs.push(run);
        }
        runs.sort_by_key(|r| r.elapsed);
        let median = &runs[runs.len() / 2];
        let secs = median.elapsed.as_secs_f64();
        println!(
            "products read:        {:.0} products/s ({:.0} articles/s), median of {ROUNDS}",
            median.products as f64 / secs,
            median.articles as f64 / secs
        );
        println!(
            "SOAP requests:        {:.2} per 1,000 products ({} for {} products; a session's first read includes getArticleGroups and getVatGroupList)",
            median.requests as f64 * 1000.0 / median.products as f64,
            median.requests,
            median.products
        );
        let mut session = connection.session().await.expect("session");
        let (elapsed, records) = read_stock(&mut session).await;
        println!(
            "stock full read:      {records} records in {:.0} ms ({:.0} records/s)",
            elapsed.as_secs_f64() * 1e3,
            records as f64 / elapsed.as_secs_f64()
        );
        println!(
            "component size:       {} bytes ({:.0} KiB)",
            builtin.wasm.len(),
            builtin.wasm.len() as f64 / 1024.0
        );
    });
}
