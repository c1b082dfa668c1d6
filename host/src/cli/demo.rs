//! `koppel demo`: the whole job on this machine, against simulated systems. A simulated
//! MplusKASSA with a seeded catalogue and a simulated, empty Shopware shop start in-process;
//! the four flows run; then stock changes in the till and a new order arrives in the shop,
//! and the flows run again. It prints what moved where, and what was skipped and why.
//!
//! [`run`] does the demo into a folder and hands back both simulators still running with
//! the state it left (the dashboard's browser test starts from there). With `--serve` the
//! command then places one order that fails and keeps the dashboard open, the flows running
//! on their intervals as under `koppel run`, until Ctrl-C.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use koppel_sim_mplus::{MplusOptions, MplusSimulator};
use koppel_sim_shopware::{
    OrderCustomer, OrderLine, ShopwareOptions, ShopwareSimulator, StorefrontOrder, Version,
};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::DemoArgs;
use super::progress::{reporter, summary_text};
use crate::app::App;
use crate::flow::{Environment, Loaded, RunOptions, RunSummary, run_flow};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::store::RunStatus;

/// Everything the demo did, for `--json`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub directory: String,
    pub products_in_till: usize,
    pub articles_in_till: usize,
    pub variant_families_in_till: usize,
    /// Every run, in order: products, stock, orders, order-status, then products, stock
    /// and orders again.
    pub runs: Vec<RunSummary>,
    pub products_in_shop: usize,
    pub orders_in_shop: usize,
    pub orders_in_till: usize,
    pub stock_changed: Vec<String>,
}

/// How to run the demo.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where `koppel.toml` and the state database go (a database there is started over).
    pub dir: PathBuf,
    /// Products in the simulated till (a fifth of them families of sizes and colours).
    pub products: usize,
    /// Print nothing (no steps, no progress, no summaries).
    pub quiet: bool,
    /// Where compiled connectors are cached (default: the user's cache folder).
    pub cache_dir: Option<PathBuf>,
}

/// The demo when it is done: both simulators still serve, and koppel's state is as the
/// demo left it.
pub struct Finished {
    pub mplus: MplusSimulator,
    pub shop: ShopwareSimulator,
    /// The demo's tenant: its store, activity writer and connections.
    pub env: Environment,
    /// The demo's `koppel.toml`, loaded.
    pub loaded: Loaded,
    pub report: Report,
    /// The connectors' runtime (the environment's connections run in it).
    pub runtime: Runtime,
}

const SEED: u64 = 42;

fn config_text(mplus: &MplusSimulator, shop: &ShopwareSimulator) -> String {
    format!(
        r#"# Written by `koppel demo`: both systems are simulators that lived as long as the demo.
tenant = "demo"

[connections.till]
connector = "mplus"
[connections.till.config]
base_url = "{till_url}"
ident = "{ident}"
secret = "{secret}"
branch_number = 1
default_payment_method = "IDEAL"
# VAT code per tax rate (for every country here; per country: DE = {{ "19" = 4 }}).
vat_codes = {{ "21" = 1, "9" = 2, "0" = 3 }}
# Revenue (turnover) group per country of the order.
turnover_groups = {{ NL = 10, BE = 10, DE = 10 }}

# Shop payment method (technical name on 6.6, name before) → MplusKASSA payment method.
[connections.till.config.payment_methods]
payment_invoice = "OPREKENING"
Invoice = "OPREKENING"
payment_prepayment = "IDEAL"
"Paid in advance" = "IDEAL"
payment_debitpayment = "PIN"
"Direct Debit" = "PIN"
payment_cashpayment = "CONTANT"
"Cash on delivery" = "CONTANT"

[connections.shop]
connector = "shopware"
[connections.shop.config]
shop_url = "{shop_url}"
access_key_id = "{client_id}"
secret_access_key = "{client_secret}"

[flows.products]
[flows.stock]
[flows.orders]
[flows.order-status]
"#,
        till_url = mplus.url(),
        ident = mplus.ident(),
        secret = mplus.secret(),
        shop_url = shop.url(),
        client_id = shop.client_id(),
        client_secret = shop.client_secret(),
    )
}

struct Demo {
    env: Environment,
    loaded: Loaded,
    quiet: bool,
    report: Report,
}

impl Demo {
    async fn run(&mut self, flow: &str, step: &str) -> anyhow::Result<RunSummary> {
        let definition = self
            .loaded
            .flow(flow)
            .with_context(|| format!("the demo enables flow `{flow}`"))?;
        if !self.quiet {
            println!("\n{step}");
        }
        let options = RunOptions {
            trigger: "demo".into(),
            progress: reporter(self.quiet),
            ..RunOptions::default()
        };
        let summary = run_flow(&self.env, definition, &options).await?;
        if !self.quiet {
            println!("{}", indent(&summary_text(&summary)));
        }
        if summary.status == RunStatus::Failed {
            bail!(
                "the demo's `{flow}` run failed: {}",
                summary.error.clone().unwrap_or_default()
            );
        }
        self.report.runs.push(summary.clone());
        Ok(summary)
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("   {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Product numbers the shop can sell: simple products and variants (not family parents).
fn sellable(shop: &ShopwareSimulator, count: usize) -> Vec<String> {
    let mut numbers: Vec<String> = shop
        .products()
        .iter()
        .filter(|p| {
            p.get("parentId").is_some_and(|v| !v.is_null())
                || p.get("childCount").and_then(|c| c.as_i64()).unwrap_or(0) == 0
        })
        .filter(|p| p.get("stock").and_then(|s| s.as_i64()).unwrap_or(0) > 2)
        .filter_map(|p| {
            p.get("productNumber")
                .and_then(|n| n.as_str())
                .map(str::to_owned)
        })
        .collect();
    numbers.sort();
    numbers.truncate(count);
    numbers
}

pub(super) async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let dir: PathBuf = match &args.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("koppel-demo-{}", std::process::id())),
    };
    let mut finished = run(Options {
        dir,
        products: args.products,
        quiet: args.json,
        cache_dir: RuntimeOptions::default().cache_dir,
    })
    .await?;
    if args.serve {
        order_that_fails(&mut finished, args.json).await?;
    }
    let report = &finished.report;
    if args.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        println!(
            "\nIn {:.1} s: the shop now has {} products (parents and variants), the till {} web orders.",
            started.elapsed().as_secs_f64(),
            report.products_in_shop,
            report.orders_in_till
        );
        println!(
            "Every record that moved, with the payload read and written, is in {}.",
            finished.loaded.database().display()
        );
        println!(
            "The configuration used is {}; `koppel connector inspect mplus` shows what else can be set.",
            finished.loaded.path.display()
        );
    }
    if args.serve {
        return serve(finished, args.listen.as_deref().unwrap_or("127.0.0.1:8080")).await;
    }
    finished.env.activity.flush().await;
    finished.env.store.close().await;
    Ok(())
}

/// An article the demo's till does not have.
const UNKNOWN_ARTICLE: &str = "990001";

/// A paid order for an article the shop has and the till does not: the orders flow fails it
/// alone, with the reason, and it waits in the failed queue.
async fn order_that_fails(finished: &mut Finished, quiet: bool) -> anyhow::Result<()> {
    let shop = &finished.shop;
    let customer = OrderCustomer::private("noor@example.nl", "Noor", "Visser", "NL");
    // The article is entered in the shop by hand (the first order creates it), at 21% VAT.
    shop.place_order(&StorefrontOrder {
        create_missing_products: true,
        ..StorefrontOrder::new(customer.clone(), vec![OrderLine::new(UNKNOWN_ARTICLE, 1)])
    })?;
    let tax_21 = shop
        .products()
        .iter()
        .filter_map(|p| p.get("taxId").and_then(|t| t.as_str()).map(str::to_owned))
        .find(|id| {
            shop.entity("tax", id, serde_json::json!({}))
                .and_then(|t| t.get("taxRate").and_then(serde_json::Value::as_f64))
                == Some(21.0)
        })
        .context("the demo shop has a product at 21% VAT")?;
    shop.edit_product_field(UNKNOWN_ARTICLE, "taxId", serde_json::json!(tax_21))
        .map_err(|e| anyhow::anyhow!("setting the article's tax: {e}"))?;
    let placed = shop.place_order(&StorefrontOrder {
        paid: true,
        payment_method: "payment_prepayment".into(),
        ..StorefrontOrder::new(customer, vec![OrderLine::new(UNKNOWN_ARTICLE, 1)])
    })?;
    let flow = finished
        .loaded
        .flow("orders")
        .context("the demo enables flow `orders`")?;
    if !quiet {
        println!(
            "
8. Orders once more: order {} is for article {UNKNOWN_ARTICLE}, which the shop sells and the till does not know. It fails alone, with the reason, and waits in the failed queue.",
            placed.order_number
        );
    }
    let options = RunOptions {
        trigger: "demo".into(),
        progress: reporter(quiet),
        ..RunOptions::default()
    };
    let summary = run_flow(&finished.env, flow, &options).await?;
    if !quiet {
        println!("{}", indent(&summary_text(&summary)));
    }
    if summary.counts.failed != 1 {
        bail!(
            "the demo's order {} should have failed alone: {}",
            placed.order_number,
            summary_text(&summary)
        );
    }
    finished.report.orders_in_shop = finished.shop.orders().len();
    finished.report.runs.push(summary);
    Ok(())
}

/// Keeps the dashboard open on the demo's state, the flows running on their intervals (as
/// `koppel run`), until Ctrl-C or SIGTERM.
async fn serve(mut finished: Finished, listen: &str) -> anyhow::Result<()> {
    finished.loaded.config.server.listen = Some(listen.to_owned());
    let app = App {
        loaded: finished.loaded,
        env: finished.env,
        runtime: finished.runtime,
    };
    let serving = app.serve(CancellationToken::new(), None).await?;
    // The demo's state database is new, so the server made a token for it.
    let token = serving
        .server
        .generated_token
        .clone()
        .context("the demo's new state database should get a new dashboard token")?;
    println!(
        "
Dashboard: http://{}/ (token {token})
Log in with the token to see every run, every record with what was read and written side by side, the HTTP exchanges, and the failed order in Failed. The flows keep running on their intervals against the simulators. Ctrl-C stops it.",
        serving.server.addr
    );
    super::flows::shutdown_signal().await;
    println!("Stopping…");
    serving.stop().await;
    app.close().await;
    println!("Stopped.");
    Ok(())
}

/// Runs the demo into `options.dir`: starts both simulators, writes `koppel.toml`, runs the
/// four flows, changes stock and places an order, runs three flows again.
pub async fn run(options: Options) -> anyhow::Result<Finished> {
    let quiet = options.quiet;
    let say = |text: &str| {
        if !quiet {
            println!("{text}");
        }
    };
    let dir: &Path = &options.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join("koppel.db"));
    say(
        "koppel demo: a till (MplusKASSA) and a web shop (Shopware 6.6), both simulated on this machine.",
    );
    let mplus = MplusSimulator::start(MplusOptions {
        seed: SEED,
        products: options.products,
        variant_share: 0.2,
        ..MplusOptions::default()
    })
    .await?;
    let shop = ShopwareSimulator::start(ShopwareOptions {
        version: Version::V6_6,
        seed: SEED,
        ..ShopwareOptions::default()
    })
    .await?;
    let (products, articles) = mplus.catalogue_size();
    let families = mplus.variant_products().len();
    say(&format!(
        "The till holds {products} products ({articles} articles; {families} are families of sizes and colours) with stock in 2 branches.\nThe shop is empty."
    ));

    let file = dir.join("koppel.toml");
    std::fs::write(&file, config_text(&mplus, &shop))
        .with_context(|| format!("cannot write {}", file.display()))?;
    let loaded = Loaded::read(&file)?;
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: options.cache_dir.clone(),
        ..RuntimeOptions::default()
    })?;
    let App { loaded, env, .. } = App::open(loaded, &runtime).await?;
    let mut demo = Demo {
        env,
        loaded,
        quiet,
        report: Report {
            directory: dir.display().to_string(),
            products_in_till: products,
            articles_in_till: articles,
            variant_families_in_till: families,
            ..Report::default()
        },
    };

    demo.run("products", "1. Products, till → shop: every article flagged for the web shop, as simple products or variant families.").await?;
    demo.run(
        "stock",
        "2. Stock, till → shop: available = on hand − reserved.",
    )
    .await?;

    // Customers order in the shop: three pay, two do not (yet).
    let skus = sellable(&shop, 12);
    if skus.len() < 8 {
        bail!(
            "the shop has only {} sellable products after the products flow; the demo needs 8",
            skus.len()
        );
    }
    let line = |i: usize, quantity: i64| OrderLine::new(&skus[i % skus.len()], quantity);
    let orders = [
        (
            OrderCustomer::private("anna@example.nl", "Anna", "de Vries", "NL"),
            vec![line(0, 1), line(1, 2)],
            true,
            "payment_prepayment",
        ),
        (
            OrderCustomer::business(
                "inkoop@bakkerij.be",
                "Bakkerij Peeters",
                "Jan",
                "Peeters",
                "BE",
            ),
            vec![line(2, 5)],
            true,
            "payment_invoice",
        ),
        (
            OrderCustomer::private("lukas@example.de", "Lukas", "Schmidt", "DE"),
            vec![line(3, 1)],
            true,
            "payment_debitpayment",
        ),
        (
            OrderCustomer::private("sem@example.nl", "Sem", "Jansen", "NL"),
            vec![line(4, 1)],
            false,
            "payment_invoice",
        ),
        (
            OrderCustomer::private("mila@example.nl", "Mila", "Bakker", "NL"),
            vec![line(5, 3)],
            false,
            "payment_prepayment",
        ),
    ];
    let mut placed = Vec::new();
    for (customer, lines, paid, payment) in orders {
        let order = StorefrontOrder {
            paid,
            payment_method: payment.into(),
            ..StorefrontOrder::new(customer, lines)
        };
        placed.push(shop.place_order(&order)?);
    }
    say(&format!(
        "\nFive customers ordered in the shop (from NL, BE and DE; one is a company): orders {}. Three have paid.",
        placed
            .iter()
            .map(|p| p.order_number.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    demo.run("orders", "3. Orders, shop → till: only paid orders, each exactly once, with the customer found by e-mail or created.").await?;

    // The till ships the first order.
    let first = &placed[0].order_number;
    let in_till = mplus
        .order_by_ext_id(first)
        .with_context(|| format!("order {first} should be in the till now"))?;
    mplus
        .deliver_order(&in_till.id)
        .map_err(|e| anyhow::anyhow!("delivering order {first} in the till: {e}"))?;
    say(&format!("\nThe till delivered order {first}."));
    demo.run(
        "order-status",
        "4. Order status, till → shop: the delivery moves the shop's order along.",
    )
    .await?;

    // Life goes on: stock changes in the till, a new paid order arrives in the shop.
    let mut changed = Vec::new();
    for number in skus
        .iter()
        .rev()
        .take(3)
        .filter_map(|n| n.parse::<i64>().ok())
    {
        mplus
            .set_stock(number, 1, 7, 2)
            .map_err(|e| anyhow::anyhow!("setting stock of {number}: {e}"))?;
        changed.push(number.to_string());
    }
    let order = StorefrontOrder {
        paid: true,
        payment_method: "payment_prepayment".into(),
        ..StorefrontOrder::new(
            OrderCustomer::private("anna@example.nl", "Anna", "de Vries", "NL"),
            vec![line(6, 1)],
        )
    };
    let again = shop.place_order(&order)?;
    say(&format!(
        "\nThen: the stock of articles {} changed in the till (7 free to sell, 2 reserved), and Anna ordered again ({}).",
        changed.join(", "),
        again.order_number
    ));
    demo.report.stock_changed = changed;
    demo.run(
        "products",
        "5. Products again: nothing changed, so nothing is written.",
    )
    .await?;
    demo.run("stock", "6. Stock again: only what changed.")
        .await?;
    demo.run(
        "orders",
        "7. Orders again: only the new one (the first three are never sent twice).",
    )
    .await?;

    demo.report.products_in_shop = shop.count("product");
    demo.report.orders_in_shop = shop.orders().len();
    demo.report.orders_in_till = mplus.orders().len();
    demo.env.activity.flush().await;
    Ok(Finished {
        mplus,
        shop,
        env: demo.env,
        loaded: demo.loaded,
        report: demo.report,
        runtime,
    })
}
