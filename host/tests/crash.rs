//! kill -9 in the middle of a run, with the real binary: `koppel sync products` and `koppel
//! sync orders` against both simulators (in this process, slowed down so a run is long
//! enough to be cut), killed at seeded random points a few times, and killed at each stage of
//! the pipeline (a read in flight, a batch in flight, a later batch acknowledged while an
//! earlier one is in flight) at write_concurrency 1 and 4, then run to the end. Every product
//! is in Shopware exactly once, every paid order in MplusKASSA exactly once, and a further run
//! writes nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use koppel_sim_faults::{Fault, Faults, Matcher};
use koppel_sim_mplus::{MplusOptions, MplusSimulator};
use koppel_sim_shopware::{
    OrderCustomer, OrderLine, ShopwareOptions, ShopwareSimulator, StorefrontOrder, Version,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How many times each run is killed before it may finish.
const KILLS: usize = 4;

fn config(dir: &Path, till: &MplusSimulator, shop: &ShopwareSimulator, flows: &str) -> PathBuf {
    let file = dir.join("koppel.toml");
    std::fs::write(
        &file,
        format!(
            r#"tenant = "crash"

[connections.till]
connector = "mplus"
[connections.till.config]
base_url = "{till_url}"
ident = "{ident}"
secret = "{secret}"
vat_codes = '{{"21": 1, "9": 2, "0": 3}}'
payment_methods = '{{"payment_prepayment": "IDEAL", "payment_invoice": "OPREKENING"}}'

[connections.shop]
connector = "shopware"
[connections.shop.config]
shop_url = "{shop_url}"
access_key_id = "{client_id}"
secret_access_key = "{client_secret}"
batch_size = 20

{flows}
"#,
            till_url = till.url(),
            ident = till.ident(),
            secret = till.secret(),
            shop_url = shop.url(),
            client_id = shop.client_id(),
            client_secret = shop.client_secret(),
        ),
    )
    .expect("write koppel.toml");
    file
}

fn koppel(config: &Path, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_koppel"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env(
            "KOPPEL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .env("KOPPEL_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// Runs `koppel sync <flow>` and SIGKILLs it once `requests()` has grown by `after`; returns
/// false when the run ended by itself first.
async fn sync_and_kill(config: &Path, flow: &str, requests: &dyn Fn() -> u64, after: u64) -> bool {
    let start = requests();
    let mut child = koppel(config, &["sync", flow])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start koppel sync");
    loop {
        if requests() >= start + after {
            child.start_kill().expect("SIGKILL");
            let status = child.wait().await.expect("wait");
            // It may have finished in the instant before the signal.
            return !status.success();
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(status.success(), "koppel sync {flow} failed by itself");
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs `koppel sync <flow> [--full] --json` to the end; its summary.
async fn sync(config: &Path, flow: &str, full: bool) -> serde_json::Value {
    let mut args = vec!["sync", flow, "--json"];
    if full {
        args.push("--full");
    }
    let output = koppel(config, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .expect("run koppel sync");
    assert!(
        output.status.success(),
        "koppel sync {flow}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON summary")
}

/// The product numbers the till's web shop articles become: simple products by article
/// number, families by P-number with each article as a variant; each once.
fn expected_numbers(till: &MplusSimulator) -> BTreeMap<String, usize> {
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    let mut families: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for number in till.article_numbers() {
        let article = till.article_view(number).expect("listed");
        if article.product_articles > 1 {
            families
                .entry(article.product_number)
                .or_default()
                .push(number);
        } else if article.webshop {
            expected.insert(number.to_string(), 1);
        }
    }
    for (product, articles) in &families {
        let webshop = articles
            .iter()
            .any(|a| till.article_view(*a).is_some_and(|v| v.webshop));
        if webshop {
            expected.insert(format!("P{product}"), 1);
            for a in articles {
                expected.insert(a.to_string(), 1);
            }
        }
    }
    expected
}

/// How many times each product number is in the shop.
fn shop_numbers(shop: &ShopwareSimulator) -> BTreeMap<String, usize> {
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    for product in shop.products() {
        let number = product["productNumber"].as_str().unwrap_or("").to_owned();
        *found.entry(number).or_default() += 1;
    }
    found
}

/// A full orders run after the crashes creates nothing and sends the till no order.
async fn a_full_rerun_sends_no_order(file: &Path, till: &MplusSimulator) {
    let creates = till.request_count("createOrderV3");
    let again = sync(file, "orders", true).await;
    assert_eq!(again["counts"]["created"], 0, "{again:#}");
    assert_eq!(
        till.request_count("createOrderV3"),
        creates,
        "a further run sends no order"
    );
}

/// A full products run after the crashes creates and updates nothing, and sends Shopware
/// no write.
async fn a_full_rerun_writes_nothing(file: &Path, shop: &ShopwareSimulator) {
    let writes = shop_writes(shop);
    let again = sync(file, "products", true).await;
    assert_eq!(again["counts"]["created"], 0, "{again:#}");
    assert_eq!(again["counts"]["updated"], 0, "{again:#}");
    assert_eq!(shop_writes(shop), writes, "a further run writes nothing");
}

fn shop_writes(shop: &ShopwareSimulator) -> u64 {
    shop.request_count("POST /api/_action/sync")
}

/// A till with `products` products and an empty Shopware 6.6 shop, both from `seed`.
async fn two_systems(
    seed: u64,
    products: usize,
    variant_share: f64,
) -> (MplusSimulator, ShopwareSimulator) {
    let till = MplusSimulator::start(MplusOptions {
        seed,
        products,
        variant_share,
        ..MplusOptions::default()
    })
    .await
    .expect("till");
    let shop = ShopwareSimulator::start(ShopwareOptions {
        version: Version::V6_6,
        seed,
        ..ShopwareOptions::default()
    })
    .await
    .expect("shop");
    (till, shop)
}

/// The shop sells what the till has (products and stock synced); the articles it sells.
async fn shop_sells_the_till(file: &Path, till: &MplusSimulator) -> Vec<String> {
    for flow in ["products", "stock"] {
        let summary = sync(file, flow, false).await;
        assert_eq!(summary["status"], "succeeded", "{summary:#}");
    }
    till.article_numbers()
        .into_iter()
        .filter(|n| {
            till.article_view(*n)
                .is_some_and(|a| a.stock_article && a.webshop)
        })
        .map(|n| n.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_killed_at_random_points_end_up_in_the_shop_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (till, shop) = two_systems(11, 240, 0.2).await;
    // Slow enough that a run has many writes to be cut between (or inside).
    shop.faults().set_latency(Duration::from_millis(4));
    let file = config(
        dir.path(),
        &till,
        &shop,
        "[flows.products]\npage_size = 40\nbatch_size = 8\n",
    );
    let mut rng = StdRng::seed_from_u64(0x6b6f7070656c);
    let mut killed = 0;
    for _ in 0..KILLS {
        let after = rng.random_range(1..=6);
        if sync_and_kill(&file, "products", &|| shop_writes(&shop), after).await {
            killed += 1;
        }
    }
    assert!(
        killed >= 3,
        "the runs were long enough to be killed ({killed} of {KILLS})"
    );
    let cut = shop.count("product");
    shop.faults().set_latency(Duration::ZERO);
    let last = sync(&file, "products", false).await;
    assert_eq!(last["status"], "succeeded", "{last:#}");

    let expected = expected_numbers(&till);
    assert_eq!(
        shop_numbers(&shop),
        expected,
        "every product exactly once, none extra"
    );
    assert!(
        cut > 0 && cut < expected.len(),
        "the kills cut the work in the middle ({cut} of {} rows were there)",
        expected.len()
    );

    a_full_rerun_writes_nothing(&file, &shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_killed_at_random_points_reach_the_till_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (till, shop) = two_systems(12, 40, 0.0).await;
    let file = config(
        dir.path(),
        &till,
        &shop,
        "[flows.products]\n[flows.stock]\n[flows.orders]\npage_size = 10\nbatch_size = 2\n",
    );
    let skus = shop_sells_the_till(&file, &till).await;
    let mut paid = Vec::new();
    for i in 0..36 {
        let customer = if i % 4 == 0 {
            OrderCustomer::business(
                &format!("buyer{i}@company.example"),
                &format!("Company {i}"),
                "Jan",
                "Jansen",
                "NL",
            )
        } else {
            // Some customers order more than once.
            OrderCustomer::private(&format!("c{}@example.nl", i % 7), "Anna", "Visser", "NL")
        };
        let order = StorefrontOrder {
            paid: i % 6 != 5,
            payment_method: "payment_prepayment".into(),
            ..StorefrontOrder::new(
                customer,
                vec![
                    OrderLine::new(&skus[i % skus.len()], 1),
                    OrderLine::new(&skus[(i * 7 + 3) % skus.len()], 2),
                ],
            )
        };
        let placed = shop.place_order(&order).expect("checkout");
        if order.paid {
            paid.push(placed.order_number);
        }
    }
    till.faults().set_latency(Duration::from_millis(4));
    let mut rng = StdRng::seed_from_u64(0x6f7264657273);
    let mut killed = 0;
    for _ in 0..KILLS {
        let after = rng.random_range(1..=5);
        let creates = || till.request_count("createOrderV3");
        if sync_and_kill(&file, "orders", &creates, after).await {
            killed += 1;
        }
    }
    assert!(
        killed >= 3,
        "the runs were long enough to be killed ({killed} of {KILLS})"
    );
    let cut = till.orders().len();
    till.faults().set_latency(Duration::ZERO);
    let last = sync(&file, "orders", false).await;
    assert_eq!(
        last["status"], "succeeded",
        "every order goes in the end: {last:#}"
    );

    let mut in_till: BTreeMap<String, usize> = BTreeMap::new();
    for order in till.orders() {
        *in_till.entry(order.ext_id).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = paid.iter().map(|n| (n.clone(), 1)).collect();
    assert!(
        cut > 0 && cut < expected.len(),
        "the kills cut the work in the middle ({cut} of {} orders were there)",
        expected.len()
    );
    assert_eq!(
        in_till, expected,
        "every paid order exactly once, no unpaid one"
    );

    a_full_rerun_sends_no_order(&file, &till).await;
}

/// Where a run is when it is killed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// A read of the source is on its way and not answered.
    ReadInFlight,
    /// A write to the target is on its way and not answered.
    BatchInFlight,
    /// A later batch was acknowledged while an earlier one is still on its way, so the later
    /// one waits, acknowledged but not committed (only with several batches at once).
    OutOfOrder,
}

/// What the staged kills need to know of a flow.
struct Staged<'a> {
    flow: &'a str,
    /// The faults of the source and target simulators.
    source: Faults,
    target: Faults,
    /// Which request is the source's read, and which the target's write.
    read: Matcher,
    write: Matcher,
    /// Writes the target has carried out so far.
    writes: &'a dyn Fn() -> u64,
}

/// Runs `koppel sync <flow>`, holds one request so that the run is at `stage`, and SIGKILLs
/// koppel there. Returns false when the run ended by itself first.
async fn kill_at(config: &Path, staged: &Staged<'_>, stage: Stage) -> bool {
    // Long enough never to be answered while koppel lives; dropped with its connection.
    let hold = Fault::Delay(Duration::from_secs(20));
    let held = match stage {
        Stage::ReadInFlight => {
            staged.source.push(staged.read.clone(), hold);
            &staged.source
        }
        Stage::BatchInFlight | Stage::OutOfOrder => {
            staged.target.push(staged.write.clone(), hold);
            &staged.target
        }
    };
    let writes_before = (staged.writes)();
    let mut child = koppel(config, &["sync", staged.flow])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start koppel sync");
    // For out of order: the writes that go while the first is held, until the pipeline has
    // no room left (it holds at most write_concurrency batches answered or not); nothing
    // signals that, so it is when no write came for a while.
    let (mut seen, mut since) = (writes_before, std::time::Instant::now());
    let outcome = loop {
        let holding = held.pending() == 0;
        let writes = (staged.writes)();
        if writes != seen {
            (seen, since) = (writes, std::time::Instant::now());
        }
        let there = match stage {
            Stage::OutOfOrder => {
                holding && writes > writes_before && since.elapsed() > Duration::from_millis(300)
            }
            _ => holding,
        };
        if there {
            child.start_kill().expect("SIGKILL");
            let status = child.wait().await.expect("wait");
            break !status.success();
        }
        if let Some(status) = child.try_wait().expect("try_wait") {
            assert!(
                status.success(),
                "koppel sync {} failed by itself",
                staged.flow
            );
            break false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    staged.source.clear();
    staged.target.clear();
    outcome
}

/// Kills the flow at each stage `times` times (out of order only above concurrency 1: with
/// one batch at a time no later batch can be acknowledged first); the stages reached.
async fn kill_at_each_stage(
    file: &Path,
    staged: &Staged<'_>,
    concurrency: u32,
    times: usize,
) -> Vec<Stage> {
    let mut killed = Vec::new();
    for stage in [Stage::ReadInFlight, Stage::BatchInFlight, Stage::OutOfOrder] {
        if stage == Stage::OutOfOrder && concurrency == 1 {
            continue;
        }
        for _ in 0..times {
            if kill_at(file, staged, stage).await {
                killed.push(stage);
            }
        }
    }
    killed
}

/// Every stage at write_concurrency 1 and 4 (out of order only at 4: with one batch at a
/// time no later batch can be acknowledged first), then a run to the end: every product in
/// the shop once, and a further run writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_killed_at_each_stage_and_concurrency_end_up_in_the_shop_exactly_once() {
    for concurrency in [1, 4] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (till, shop) = two_systems(21, 120, 0.2).await;
        let file = config(
            dir.path(),
            &till,
            &shop,
            &format!(
                "[flows.products]\npage_size = 30\nbatch_size = 6\nwrite_concurrency = {concurrency}\n"
            ),
        );
        let staged = Staged {
            flow: "products",
            source: till.faults(),
            target: shop.faults(),
            read: Matcher::body("getProducts"),
            write: Matcher::path("/api/_action/sync"),
            writes: &|| shop_writes(&shop),
        };
        // Twice each: at the first page, and again after the restart.
        let killed = kill_at_each_stage(&file, &staged, concurrency, 2).await;
        assert!(
            killed.len() >= if concurrency == 1 { 4 } else { 6 },
            "concurrency {concurrency}: every stage was reached ({killed:?})"
        );
        let last = sync(&file, "products", false).await;
        assert_eq!(last["status"], "succeeded", "{last:#}");
        assert_eq!(
            shop_numbers(&shop),
            expected_numbers(&till),
            "concurrency {concurrency}: every product exactly once, none extra"
        );
        a_full_rerun_writes_nothing(&file, &shop).await;
    }
}

/// The same for orders (once delivery, the ledger and the till's idempotency key): every
/// paid order in the till exactly once after kills at each stage, at concurrency 1 and 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_killed_at_each_stage_and_concurrency_reach_the_till_exactly_once() {
    for concurrency in [1, 4] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (till, shop) = two_systems(22, 30, 0.0).await;
        let file = config(
            dir.path(),
            &till,
            &shop,
            &format!(
                "[flows.products]\n[flows.stock]\n[flows.orders]\npage_size = 6\nbatch_size = 2\nwrite_concurrency = {concurrency}\n"
            ),
        );
        let skus = shop_sells_the_till(&file, &till).await;
        let mut paid = Vec::new();
        for i in 0..24 {
            // One customer each: two new customers' orders in batches side by side would
            // each create the relation (why `orders` ships with write_concurrency 1).
            let customer =
                OrderCustomer::private(&format!("k{i}@example.nl"), "Anna", "Visser", "NL");
            let order = StorefrontOrder {
                paid: i % 5 != 4,
                payment_method: "payment_prepayment".into(),
                ..StorefrontOrder::new(customer, vec![OrderLine::new(&skus[i % skus.len()], 1)])
            };
            let placed = shop.place_order(&order).expect("checkout");
            if order.paid {
                paid.push(placed.order_number);
            }
        }
        let staged = Staged {
            flow: "orders",
            source: shop.faults(),
            target: till.faults(),
            read: Matcher::path("/api/search/order"),
            write: Matcher::body("createOrderV3"),
            writes: &|| till.request_count("createOrderV3"),
        };
        let killed = kill_at_each_stage(&file, &staged, concurrency, 1).await;
        assert!(
            killed.len() >= if concurrency == 1 { 2 } else { 3 },
            "concurrency {concurrency}: every stage was reached ({killed:?})"
        );
        let last = sync(&file, "orders", false).await;
        assert_eq!(last["status"], "succeeded", "{last:#}");
        let mut in_till: BTreeMap<String, usize> = BTreeMap::new();
        for order in till.orders() {
            *in_till.entry(order.ext_id).or_default() += 1;
        }
        let expected: BTreeMap<String, usize> = paid.iter().map(|n| (n.clone(), 1)).collect();
        assert_eq!(
            in_till, expected,
            "concurrency {concurrency}: every paid order exactly once, no unpaid one"
        );
        a_full_rerun_sends_no_order(&file, &till).await;
    }
}
