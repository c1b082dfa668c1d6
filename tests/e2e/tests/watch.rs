//! The change watch end to end: a flow with `watch` runs when its source says something
//! changed (MplusKASSA's `changes` stream: one `getCurrentSyncMarkers`), not on its interval,
//! and a watch with nothing to report costs that one request a poll. Timings are in the
//! `watch` bench; here only what happens.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Catalogue, Koppel, Systems, config_text, eventually};
use koppel::store::RunStatus;
use tokio_util::sync::CancellationToken;

fn shop_stock(systems: &Systems, article: i64) -> Option<i64> {
    systems
        .shop
        .product_by_number(&article.to_string())
        .and_then(|p| p.get("stock").and_then(|s| s.as_i64()))
}

#[tokio::test]
async fn a_stock_change_in_the_till_runs_the_watched_stock_flow_and_an_idle_watch_only_asks() {
    let systems = Systems::start(Catalogue {
        products: 30,
        ..Catalogue::default()
    })
    .await;
    let products = Koppel::start(&config_text(&systems, "", "", "[flows.products]\n")).await;
    assert_eq!(products.run("products").await.status, RunStatus::Succeeded);
    products.close().await;
    let article = systems
        .shop
        .products()
        .iter()
        .filter(|p| p.get("childCount").and_then(|c| c.as_i64()).unwrap_or(0) == 0)
        .filter_map(|p| p.get("productNumber").and_then(|n| n.as_str()))
        .filter_map(|n| n.parse::<i64>().ok())
        .find(|n| {
            systems
                .till
                .article_view(*n)
                .is_some_and(|a| a.stock_article)
        })
        .expect("a simple stock article in the shop");

    // The interval is an hour: only the watch can bring a change over in this test.
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
    let first = runs.recv().await.expect("the first run");
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");

    // Nothing changes: the watch asks, and asks only (no stock read, no run).
    let asked = systems.till.request_count("getCurrentSyncMarkers");
    let feed = systems.till.request_count("getStockHistoryV2");
    eventually("three polls", Duration::from_secs(10), || async {
        systems.till.request_count("getCurrentSyncMarkers") >= asked + 3
    })
    .await;
    assert_eq!(systems.till.request_count("getStockHistoryV2"), feed);
    assert!(runs.try_recv().is_err(), "no run while nothing changed");

    // A change at the till: the flow runs, the shop has the new stock.
    systems
        .till
        .set_stock(article, 1, 77, 0)
        .expect("set stock");
    let run = tokio::time::timeout(Duration::from_secs(10), runs.recv())
        .await
        .expect("a run within 10 s")
        .expect("a run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(run.counts.read, 1, "{run:#?}");
    assert_eq!(shop_stock(&systems, article), Some(77));

    cancel.cancel();
    drop(runs);
    if let Ok(scheduler) = Arc::try_unwrap(scheduler) {
        scheduler.stop().await;
    }
    systems.assert_valid();
    koppel.close().await;
}

#[tokio::test]
async fn a_watch_on_a_source_without_a_changes_stream_is_refused_when_koppel_starts() {
    let systems = Systems::start(Catalogue {
        products: 5,
        ..Catalogue::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("koppel.toml");
    std::fs::write(
        &file,
        config_text(&systems, "", "", "[flows.orders]\nwatch = \"1s\"\n"),
    )
    .expect("write");
    let loaded = koppel::flow::Loaded::read(&file).expect("the file reads");
    let Err(error) = koppel::app::App::open(loaded, &common::runtime()).await else {
        panic!("refused")
    };
    let text = error.to_string();
    assert!(
        text.contains("flows.orders.watch") && text.contains("no `changes` stream"),
        "{text}"
    );
}
