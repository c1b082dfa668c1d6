//! Hosting: a shop's paid orders reach its till while, in the same koppel, a tenant whose
//! connector computes for ever, one that allocates past its tenant's memory and one that
//! floods requests each stop at their quota, naming it. The shop is the Shopware simulator,
//! the till the MplusKASSA one (every message checked against the real schemas); the noisy
//! tenants run the fixture connector.

mod common;

use std::time::Duration;

use common::{Catalogue, Koppel, ORDER_SETTINGS, Systems, config_text};
use koppel::store::RunStatus;
use koppel_sim_shopware::{OrderCustomer, OrderLine, StorefrontOrder};
use koppel_test_support::hosting::{
    HostingDir, assert_stopped_at_quotas, ended_run, fixture_tenant, http_ok, serve, wait_for_runs,
};
use serde_json::Value;

/// A fixture tenant whose read misbehaves as `misbehave` says.
fn noisy_tenant(misbehave: &str, base_url: &str) -> String {
    fixture_tenant(
        &format!("total = 5, misbehave = {misbehave:?}, base_url = {base_url:?}"),
        "memory_mib = 256\ncall_timeout = \"20s\"",
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shops_orders_reach_its_till_while_noisy_tenants_stop_at_their_quotas() {
    let systems = Systems::start(Catalogue::default()).await;
    // The shop sells the till's products, with stock.
    let setup = Koppel::start(&config_text(&systems, "", "", "[flows.products]\n")).await;
    assert_eq!(setup.run("products").await.status, RunStatus::Succeeded);
    setup.close().await;
    let skus: Vec<String> = systems
        .shop
        .products()
        .iter()
        .filter(|p| p.get("childCount").and_then(Value::as_i64).unwrap_or(0) == 0)
        .filter_map(|p| p.get("productNumber").and_then(Value::as_str))
        .filter(|n| n.parse::<i64>().is_ok())
        .take(3)
        .map(str::to_owned)
        .collect();
    for sku in &skus {
        let _ = systems
            .till
            .set_stock(sku.parse().expect("number"), 1, 50, 0);
    }
    let order = |i: usize, paid: bool| StorefrontOrder {
        paid,
        payment_method: "payment_prepayment".into(),
        ..StorefrontOrder::new(
            OrderCustomer::private(&format!("buyer{i}@example.nl"), "Anna", "Visser", "NL"),
            vec![OrderLine::new(&skus[i % skus.len()], 1)],
        )
    };
    let paid: Vec<_> = (0..3)
        .map(|i| systems.shop.place_order(&order(i, true)).expect("checkout"))
        .collect();
    let unpaid = systems
        .shop
        .place_order(&order(3, false))
        .expect("checkout");

    // A system the flooding tenant may reach.
    let flood_url = http_ok().await;
    let flood_base = flood_url.trim_end_matches('/');

    let dir = HostingDir::new(
        "[hosting.quotas]\ncpu_per_hour = \"1s\"\nmemory_mib = 128\nrequests_per_minute = 200",
    );
    let shop_file: String = config_text(
        &systems,
        ORDER_SETTINGS,
        "",
        "[flows.orders]\ninterval = \"1h\"\n",
    )
    .lines()
    .filter(|l| !l.starts_with("tenant ="))
    .collect::<Vec<_>>()
    .join("\n");
    dir.tenant("shop", &shop_file);
    dir.tenant("looper", &noisy_tenant("loop", flood_base));
    dir.tenant("hog", &noisy_tenant("alloc:200", flood_base));
    dir.tenant(
        "flood",
        &noisy_tenant(&format!("flood:{flood_url}"), flood_base),
    );

    let (app, serving) = serve(&dir.file, &common::runtime()).await;
    let hosting = serving.hosting.clone().expect("hosting");
    let mut runs = hosting.subscribe_runs();
    let store = app.env.store.clone();
    let firsts = [
        ("shop", "orders"),
        ("looper", "copy"),
        ("hog", "copy"),
        ("flood", "copy"),
    ];
    wait_for_runs(&store, &mut runs, &firsts, Duration::from_secs(120)).await;

    let orders = ended_run(&store, "shop", "orders").await.expect("ran");
    assert_eq!(orders.status, RunStatus::Succeeded, "{orders:?}");
    let in_till = systems.till.orders();
    for placed in &paid {
        let copies = in_till
            .iter()
            .filter(|o| o.ext_id == placed.order_number)
            .count();
        assert_eq!(
            copies, 1,
            "paid order {} is in the till once",
            placed.order_number
        );
    }
    assert!(systems.till.order_by_ext_id(&unpaid.order_number).is_none());
    assert_stopped_at_quotas(
        &store,
        "copy",
        &[
            ("looper", "CPU time"),
            ("hog", "memory quota of 128 MiB"),
            ("flood", "200 requests this minute"),
        ],
    )
    .await;
    systems.assert_valid();
    serving.stop().await;
    app.close().await;
}
