mod common;

use common::*;
use koppel_sim_shopware::{ShopwareOptions, ShopwareSimulator, Version};
use serde_json::json;

#[tokio::test]
async fn every_version_seeds_and_answers_on_schema() {
    for version in Version::ALL {
        let sim = ShopwareSimulator::start(ShopwareOptions {
            products: 30,
            customers: 4,
            orders: 5,
            ..options(version)
        })
        .await
        .unwrap_or_else(|e| panic!("{version:?}: {e:#}"));
        assert!(sim.schema_loaded());
        let client = Client::new(&sim).await;
        let products = client
            .search(
                "product",
                json!({"limit": 50, "associations": {"options": {}, "visibilities": {}}}),
            )
            .await;
        assert_eq!(products.len(), 30);
        let orders = client.search("order", json!({"limit": 50, "associations": {"lineItems": {}, "transactions": {"associations": {"stateMachineState": {}}}}})).await;
        assert_eq!(orders.len(), 5, "{version:?}");
        assert_clean(&sim);
        assert!(
            sim.request_violations().is_empty(),
            "{version:?}: {:#?}",
            sim.request_violations()
        );
    }
}
