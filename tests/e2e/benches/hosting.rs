//! Hosting many tenants in one koppel (`[hosting] tenants`), for the figures in
//! `docs/hosting.md`:
//!
//! 1. idle tenants: N tenant files, each two connections (MplusKASSA and Shopware on one pair
//!    of simulators) and the four shipped flows on an hour's interval: the start-up time
//!    (until every tenant is served), the time until every tenant's first four runs have
//!    ended, and the process's resident memory (its simulators included);
//! 2. active tenants, each with its own pair of simulators, whose shops announce paid orders
//!    by signed webhook: the p95 of an order's way from the webhook to the till, first with
//!    no other load, then while a noisy tenant runs its initial sync of 10,000 products. All
//!    runs share `HOSTING_BENCH_WORKERS` run slots, handed out tenant by tenant in turn.
//!
//! Run: `cargo bench -p koppel-e2e --bench hosting`. `HOSTING_BENCH_TENANTS` (1000),
//! `HOSTING_BENCH_ACTIVE` (20), `HOSTING_BENCH_ORDERS` (orders per active tenant, 10),
//! `HOSTING_BENCH_NOISY_PRODUCTS` (10000), `HOSTING_BENCH_WORKERS` (4),
//! `HOSTING_BENCH_QUOTAS` (TOML lines of `[hosting.quotas]`, every tenant's quotas in part 2,
//! e.g. `cpu_share = 0.5`). With the simulator
//! binary built (`cargo build --release -p koppel-sim`), the noisy tenant's two simulators run
//! as processes of their own, so that what they compute is not this process's; without it,
//! in this process (the bench says which).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::measure::{env_number, ms, quantile};
use common::{Catalogue, ORDER_SETTINGS, Systems, config_text};
use koppel::store::{RunStatus, Store};
use koppel_sim_shopware::{OrderCustomer, OrderLine, PlacedOrder, StorefrontOrder};
use koppel_test_support::hosting::serve;

const SHOP_SECRET: &str = "bench-shop-secret-1";

fn main() {
    common::measure::block_on(bench());
}

/// The resident memory of this process now and at its peak, in MiB.
fn rss() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A tenant file on `systems`: `koppel.toml`'s format, without `tenant` (the file names it).
fn tenant_file(systems: &Systems, rest: &str) -> String {
    config_text(systems, ORDER_SETTINGS, "", rest)
        .lines()
        .filter(|l| !l.starts_with("tenant ="))
        .collect::<Vec<_>>()
        .join("\n")
}

fn operator_file(dir: &Path, workers: usize, quotas: &str) -> std::path::PathBuf {
    let file = dir.join("koppel.toml");
    std::fs::write(
        &file,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntokens = [\"bench-own-token\"]\n\
             [hosting]\ntenants = \"tenants\"\nreload_every = \"1h\"\nworkers = {workers}\n\
             [hosting.quotas]\n{quotas}\n"
        ),
    )
    .expect("operator file");
    std::fs::create_dir_all(dir.join("tenants")).expect("tenants folder");
    file
}

/// Runs of `tenants` that have ended.
async fn ended(store: &Store, tenants: &[String], flow: Option<&str>) -> usize {
    let mut done = 0;
    for tenant in tenants {
        done += store
            .runs(tenant, flow, 10)
            .await
            .unwrap_or_default()
            .iter()
            .filter(|r| r.status != RunStatus::Running)
            .count();
    }
    done
}

async fn bench() {
    let tenants = env_number("HOSTING_BENCH_TENANTS", 1000);
    let active = env_number("HOSTING_BENCH_ACTIVE", 20);
    let orders = env_number("HOSTING_BENCH_ORDERS", 10);
    let noisy_products = env_number("HOSTING_BENCH_NOISY_PRODUCTS", 10_000);
    let workers = env_number("HOSTING_BENCH_WORKERS", 4);
    let _ = rustls::crypto::ring::default_provider().install_default();
    idle(tenants).await;
    busy(active, orders, noisy_products, workers).await;
}

async fn idle(count: usize) {
    let systems = Systems::start(Catalogue {
        products: 1,
        validate: false,
        ..Catalogue::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = operator_file(dir.path(), 16, "");
    let flows = "[flows.products]\ninterval = \"1h\"\n[flows.stock]\ninterval = \"1h\"\n\
                 [flows.orders]\ninterval = \"1h\"\n[flows.order-status]\ninterval = \"1h\"\n";
    let text = tenant_file(&systems, flows);
    let names: Vec<String> = (0..count).map(|i| format!("shop-{i:04}")).collect();
    for name in &names {
        std::fs::write(
            dir.path().join("tenants").join(format!("{name}.toml")),
            &text,
        )
        .expect("tenant file");
    }
    let (before, _) = rss();
    let started = Instant::now();
    let (app, serving) = serve(&file, &common::runtime()).await;
    let up = started.elapsed();
    let hosting = serving.hosting.clone().expect("hosting");
    assert_eq!(hosting.count().await, count, "every tenant started");
    let (at_start, _) = rss();
    loop {
        if ended(&app.env.store, &names, None).await >= 4 * count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settled = started.elapsed();
    let (now, peak) = rss();
    println!(
        "1. {count} idle tenants (2 connections, 4 flows each): served after {:.2} s; their {} first runs ended after {:.2} s",
        up.as_secs_f64(),
        4 * count,
        settled.as_secs_f64()
    );
    println!(
        "   resident memory: {before} MiB before, {at_start} MiB once served, {now} MiB after the first runs (peak {peak} MiB); simulators included"
    );
    serving.stop().await;
    app.close().await;
}

/// Announces `placed` as Shopware's `checkout.order.placed` webhook of `tenant`'s shop.
async fn announce(client: &reqwest::Client, addr: &str, tenant: &str, placed: &PlacedOrder) {
    let body = serde_json::json!({
        "data": {
            "payload": [{ "entity": "order", "operation": "insert", "primaryKey": placed.id }],
            "event": "checkout.order.placed"
        },
        "source": { "url": "http://shop.test", "appVersion": "1.0.0", "shopId": tenant, "eventId": format!("{tenant}-{}", placed.id) },
        "timestamp": koppel::store::now_ms() / 1000
    })
    .to_string();
    let signature = koppel::signature::hmac_hex(SHOP_SECRET.as_bytes(), &[body.as_bytes()]);
    let response = client
        .post(format!("http://{addr}/webhooks/{tenant}/shop"))
        .header("shopware-shop-signature", signature)
        .body(body)
        .send()
        .await
        .expect("webhook");
    assert_eq!(response.status().as_u16(), 202, "accepted");
}

/// A `koppel-sim` child process and the first line it printed.
struct Sim {
    child: std::process::Child,
    line: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The simulator binary, when built.
fn sim_binary() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("HOSTING_BENCH_SIM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/release/koppel-sim")
        });
    path.exists().then_some(path)
}

fn start_sim(binary: &Path, args: &[&str]) -> Sim {
    use std::io::BufRead;
    let mut child = std::process::Command::new(binary)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start koppel-sim");
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let mut reader = std::io::BufReader::new(out);
        let _ = reader.read_line(&mut line);
    }
    Sim { child, line }
}

/// The word after `marker` in `line`, without a trailing `,` or `)`.
fn after<'a>(line: &'a str, marker: &str) -> &'a str {
    line.split(marker)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .trim_end_matches([',', ')'])
}

/// The noisy tenant's file on simulators of its own process, or `None` without the binary.
fn noisy_out_of_process(products: usize) -> Option<(String, Vec<Sim>)> {
    let binary = sim_binary()?;
    let count = products.to_string();
    let till = start_sim(
        &binary,
        &[
            "mplus",
            "--products",
            &count,
            "--variant-share",
            "0.35",
            "--seed",
            "4242",
        ],
    );
    let shop = start_sim(
        &binary,
        &["shopware", "--products", "0", "--version", "6.6"],
    );
    let text = format!(
        "[connections.till]\nconnector = \"mplus\"\ncall_timeout = \"5m\"\n\
         [connections.till.config]\nbase_url = \"{}\"\nident = \"{}\"\nsecret = \"{}\"\n\
         [connections.shop]\nconnector = \"shopware\"\ncall_timeout = \"5m\"\n\
         [connections.shop.config]\nshop_url = \"{}\"\naccess_key_id = \"{}\"\n\
         secret_access_key = \"{}\"\nsales_channels = \"Storefront\"\n\
         [flows.products]\ninterval = \"1h\"\n",
        after(&till.line, " on "),
        after(&till.line, "(ident "),
        after(&till.line, "secret "),
        after(&shop.line, " on "),
        after(&shop.line, "(client id "),
        after(&shop.line, "secret "),
    );
    Some((text, vec![till, shop]))
}

/// One active tenant: its systems and the articles its shop sells.
struct Active {
    name: String,
    systems: Systems,
    skus: Vec<String>,
}

/// Every active tenant places `orders` orders, one after the other, all tenants at once;
/// the time from each webhook until the order is in that tenant's till.
async fn order_ways(
    tenants: &Arc<Vec<Active>>,
    orders: usize,
    addr: &str,
    round: usize,
) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for t in 0..tenants.len() {
        let (tenants, addr) = (tenants.clone(), addr.to_owned());
        tasks.push(tokio::spawn(async move {
            let tenant = &tenants[t];
            let client = reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("client");
            let mut took = Vec::new();
            for i in 0..orders {
                let order = StorefrontOrder {
                    paid: true,
                    payment_method: "payment_prepayment".into(),
                    ..StorefrontOrder::new(
                        OrderCustomer::private(
                            &format!("c{round}-{i}@example.nl"),
                            "Anna",
                            "Visser",
                            "NL",
                        ),
                        vec![OrderLine::new(&tenant.skus[i % tenant.skus.len()], 1)],
                    )
                };
                let placed = tenant.systems.shop.place_order(&order).expect("checkout");
                let started = Instant::now();
                announce(&client, &addr, &tenant.name, &placed).await;
                while tenant
                    .systems
                    .till
                    .order_by_ext_id(&placed.order_number)
                    .is_none()
                {
                    assert!(started.elapsed() < Duration::from_secs(120), "order lost");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                took.push(started.elapsed());
            }
            took
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("join"));
    }
    all.sort();
    all
}

async fn busy(count: usize, orders: usize, noisy_products: usize, workers: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let quotas = std::env::var("HOSTING_BENCH_QUOTAS").unwrap_or_default();
    let file = operator_file(dir.path(), workers, &quotas.replace("\\n", "\n"));
    if !quotas.is_empty() {
        println!("   every tenant's [hosting.quotas]: {quotas}");
    }
    let tenants_dir = dir.path().join("tenants");
    let flows = format!(
        "[flows.products]\ninterval = \"1h\"\n[flows.orders]\ninterval = \"1h\"\n\
         [webhooks.shop]\nscheme = \"shopware\"\nsecret = \"{SHOP_SECRET}\"\nflows = [\"orders\"]\n"
    );
    let mut tenants = Vec::new();
    for i in 0..count {
        let systems = Systems::start(Catalogue {
            products: 40,
            variant_share: 0.0,
            validate: false,
            seed: i as u64,
            ..Catalogue::default()
        })
        .await;
        let name = format!("active-{i:03}");
        std::fs::write(
            tenants_dir.join(format!("{name}.toml")),
            tenant_file(&systems, &flows),
        )
        .expect("tenant file");
        tenants.push(Active {
            name,
            systems,
            skus: Vec::new(),
        });
    }
    let names: Vec<String> = tenants.iter().map(|t| t.name.clone()).collect();
    let (app, serving) = serve(&file, &common::runtime()).await;
    let hosting = serving.hosting.clone().expect("hosting");
    let addr = serving.server.addr.to_string();
    // Their first products runs put the catalogues into the shops.
    while ended(&app.env.store, &names, Some("products")).await < count {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for tenant in &mut tenants {
        tenant.skus = tenant
            .systems
            .shop
            .products()
            .iter()
            .filter_map(|p| p.get("productNumber").and_then(|n| n.as_str()))
            .filter(|n| {
                n.parse::<i64>()
                    .ok()
                    .and_then(|a| tenant.systems.till.article_view(a))
                    .is_some_and(|a| a.stock_article)
            })
            .take(10)
            .map(str::to_owned)
            .collect();
        for sku in &tenant.skus {
            if let Ok(n) = sku.parse::<i64>() {
                let _ = tenant.systems.till.set_stock(n, 1, 1000, 0);
            }
        }
        assert!(!tenant.skus.is_empty(), "{} sells something", tenant.name);
    }
    let tenants = Arc::new(tenants);

    let quiet = order_ways(&tenants, orders, &addr, 0).await;
    let p95_quiet = quantile(&quiet, 0.95);
    println!(
        "2. {count} active tenants, {workers} run slots: an order's way webhook → till, p95 {} (median {}, max {}) over {} orders with no other load",
        ms(p95_quiet),
        ms(quantile(&quiet, 0.5)),
        ms(quiet.last().copied().unwrap_or_default()),
        quiet.len()
    );

    // The noisy tenant: 10,000 products into an empty shop, started now.
    let (noisy_text, noisy_in_process, _sims) = match noisy_out_of_process(noisy_products) {
        Some((text, sims)) => (text, None, sims),
        None => {
            let systems = Systems::start(Catalogue {
                products: noisy_products,
                variant_share: 0.35,
                validate: false,
                seed: 4242,
                ..Catalogue::default()
            })
            .await;
            let text = tenant_file(&systems, "[flows.products]\ninterval = \"1h\"\n");
            (text, Some(systems), Vec::new())
        }
    };
    println!(
        "   the noisy tenant's simulators run {}",
        if noisy_in_process.is_some() {
            "in this process (build koppel-sim in release to run them apart)"
        } else {
            "as processes of their own"
        }
    );
    std::fs::write(tenants_dir.join("noisy.toml"), noisy_text).expect("noisy file");
    let noisy_started = Instant::now();
    assert_eq!(hosting.reload().await.started, ["noisy"]);
    let loud = order_ways(&tenants, orders, &addr, 1).await;
    let measured_in = noisy_started.elapsed();
    let noisy_names = ["noisy".to_owned()];
    let noisy_done_during = ended(&app.env.store, &noisy_names, Some("products")).await > 0;
    let p95_loud = quantile(&loud, 0.95);
    println!(
        "   the same while tenant `noisy` syncs {noisy_products} products: p95 {} (median {}, max {}) over {} orders; {:.2}× the quiet p95 (target ≤ 2×); measured in {:.2} s, the noisy sync {}",
        ms(p95_loud),
        ms(quantile(&loud, 0.5)),
        ms(loud.last().copied().unwrap_or_default()),
        loud.len(),
        p95_loud.as_secs_f64() / p95_quiet.as_secs_f64().max(f64::EPSILON),
        measured_in.as_secs_f64(),
        if noisy_done_during {
            "had ended before the last order (a shorter overlap)"
        } else {
            "still running at the last order"
        }
    );
    while ended(&app.env.store, &noisy_names, Some("products")).await == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let noisy_run = app
        .env
        .store
        .runs("noisy", Some("products"), 1)
        .await
        .unwrap_or_default();
    println!(
        "   the noisy sync took {:.2} s: {:?}",
        noisy_started.elapsed().as_secs_f64(),
        noisy_run.first().map(|r| (r.status, r.created))
    );
    serving.stop().await;
    app.close().await;
}
