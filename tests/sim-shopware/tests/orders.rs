//! Storefront orders, stock by version, states set by tests, faults on writes.

mod common;

use common::*;
use koppel_sim_faults::{Fault, Matcher};
use koppel_sim_shopware::{
    OrderCustomer, OrderLine, ShopwareOptions, ShopwareSimulator, StorefrontOrder, Version,
};
use serde_json::json;

async fn shop(version: Version) -> ShopwareSimulator {
    ShopwareSimulator::start(ShopwareOptions {
        products: 4,
        variant_share: 0.0,
        ..options(version)
    })
    .await
    .expect("start")
}

fn stock(sim: &ShopwareSimulator, number: &str) -> (i64, i64) {
    let p = sim.product_by_number(number).expect("product");
    (
        p["stock"].as_i64().expect("stock"),
        p["availableStock"].as_i64().expect("available"),
    )
}

#[tokio::test]
async fn from_66_placing_an_order_lowers_stock_and_cancelling_gives_it_back() {
    for version in [Version::V6_6, Version::V6_7] {
        let sim = shop(version).await;
        sim.set_stock("SW10000", 10).expect("stock");
        let order = sim
            .place_order(&StorefrontOrder::new(
                OrderCustomer::private("s@example.com", "S", "T", "DE"),
                vec![OrderLine::new("SW10000", 3)],
            ))
            .expect("order");
        assert_eq!(stock(&sim, "SW10000"), (7, 7), "{version:?}");
        sim.set_order_state(&order.id, "in_progress")
            .expect("state");
        sim.set_order_state(&order.id, "completed").expect("state");
        assert_eq!(
            stock(&sim, "SW10000"),
            (7, 7),
            "completing changes nothing from 6.6 on"
        );
        sim.set_order_state(&order.id, "cancelled").expect("state");
        assert_eq!(stock(&sim, "SW10000"), (10, 10));
        sim.set_order_state(&order.id, "open").expect("state");
        assert_eq!(stock(&sim, "SW10000"), (7, 7), "re-opening lowers it again");
    }
}

#[tokio::test]
async fn up_to_65_open_orders_lower_available_stock_and_completion_lowers_stock() {
    for version in [Version::V6_4, Version::V6_5] {
        let sim = shop(version).await;
        let client = Client::new(&sim).await;
        sim.set_stock("SW10000", 10).expect("stock");
        let order = sim
            .place_order(&StorefrontOrder::new(
                OrderCustomer::private("s@example.com", "S", "T", "DE"),
                vec![OrderLine::new("SW10000", 3)],
            ))
            .expect("order");
        assert_eq!(stock(&sim, "SW10000"), (10, 7), "{version:?}");
        // The ERP pushes physical stock; availableStock keeps the open order's reservation.
        let pushed = client
            .post(
                "/api/_action/sync",
                json!({"s": {"entity": "product", "action": "upsert", "payload": [
            {"id": sim.product_by_number("SW10000").expect("p")["id"], "stock": 20}]}}),
            )
            .await;
        assert_eq!(pushed.status, 200, "{}", pushed.body);
        assert_eq!(stock(&sim, "SW10000"), (20, 17));
        for action in ["process", "complete"] {
            let moved = client
                .post(
                    &format!("/api/_action/order/{}/state/{action}", order.id),
                    json!({}),
                )
                .await;
            assert_eq!(moved.status, 200);
        }
        assert_eq!(stock(&sim, "SW10000"), (17, 17), "completion lowers stock");
        let reopened = client
            .post(
                &format!("/api/_action/order/{}/state/reopen", order.id),
                json!({}),
            )
            .await;
        assert_eq!(reopened.status, 200);
        assert_eq!(
            stock(&sim, "SW10000"),
            (20, 17),
            "leaving completed gives stock back, the order is open again"
        );
        client
            .post(
                &format!("/api/_action/order/{}/state/cancel", order.id),
                json!({}),
            )
            .await;
        assert_eq!(stock(&sim, "SW10000"), (20, 20));
        assert_clean(&sim);
    }
}

#[tokio::test]
async fn storefront_orders_carry_customer_addresses_methods_and_states() {
    let sim = shop(Version::V6_6).await;
    let client = Client::new(&sim).await;
    let company = OrderCustomer {
        street: "Damrak 1".into(),
        zipcode: "1012 LG".into(),
        city: "Amsterdam".into(),
        ..OrderCustomer::business("inkoop@example.nl", "Bakker B.V.", "Jan", "Bakker", "NL")
    };
    let placed = sim
        .place_order(&StorefrontOrder {
            paid: true,
            shipping_method: "shipping_express".into(),
            payment_method: "payment_prepayment".into(),
            create_missing_products: true,
            customer_comment: Some("Please ring twice".into()),
            ..StorefrontOrder::new(
                company.clone(),
                vec![OrderLine::new("SW10001", 2), OrderLine::new("NEW-1", 1)],
            )
        })
        .expect("order");
    assert!(
        sim.product_by_number("NEW-1").is_some(),
        "created on the fly"
    );
    let second = sim
        .place_order(&StorefrontOrder::new(
            company,
            vec![OrderLine::new("NEW-1", 1)],
        ))
        .expect("order");
    assert_eq!(
        second.customer_id, placed.customer_id,
        "the customer is found by e-mail"
    );
    for country in ["BE", "AT", "FR"] {
        sim.place_order(&StorefrontOrder {
            shipping_method: "shipping_pickup".into(),
            payment_method: "payment_cashpayment".into(),
            ..StorefrontOrder::new(
                OrderCustomer::private(&format!("{country}@example.com"), "A", "B", country),
                vec![OrderLine::new("SW10002", 1)],
            )
        })
        .expect("order");
    }
    assert!(
        sim.place_order(&StorefrontOrder::new(
            OrderCustomer::private("x@example.com", "A", "B", "XX"),
            vec![OrderLine::new("SW10002", 1)]
        ))
        .is_err()
    );
    assert!(
        sim.place_order(&StorefrontOrder::new(
            OrderCustomer::private("x@example.com", "A", "B", "DE"),
            vec![OrderLine::new("NOPE", 1)]
        ))
        .is_err()
    );

    let orders = sim.orders();
    assert_eq!(orders.len(), 5);
    let order = orders
        .iter()
        .find(|o| o["id"] == placed.id.as_str())
        .expect("order");
    assert_eq!(order["orderCustomer"]["company"], "Bakker B.V.");
    assert_eq!(order["billingAddress"]["country"]["iso"], "NL");
    assert_eq!(
        order["deliveries"][0]["shippingMethod"]["technicalName"],
        "shipping_express"
    );
    assert_eq!(
        order["transactions"][0]["paymentMethod"]["technicalName"],
        "payment_prepayment"
    );
    assert_eq!(
        order["transactions"][0]["stateMachineState"]["technicalName"],
        "paid"
    );
    assert_eq!(order["stateMachineState"]["technicalName"], "open");
    assert_eq!(order["lineItems"].as_array().map(Vec::len), Some(2));
    assert_eq!(order["customerComment"], "Please ring twice");
    let positions: f64 = order["lineItems"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|l| l["totalPrice"].as_f64())
        .sum();
    assert!(
        (order["amountTotal"].as_f64().expect("total") - positions - 9.95).abs() < 0.001,
        "express shipping is 9.95"
    );
    let customer = sim
        .entity("customer", &placed.customer_id, json!({"addresses": {}}))
        .expect("customer");
    assert_eq!(customer["company"], "Bakker B.V.");
    assert_eq!(customer["addresses"].as_array().map(Vec::len), Some(1));

    sim.set_payment_state(&second.id, "cancelled")
        .expect("payment");
    sim.set_delivery_state(&second.id, "shipped")
        .expect("delivery");
    let unpaid_cancelled = client
        .search("order", json!({"limit": 10, "filter": [{"type": "equals", "field": "transactions.stateMachineState.technicalName", "value": "cancelled"}]}))
        .await;
    assert_eq!(unpaid_cancelled.len(), 1);
    assert_eq!(unpaid_cancelled[0]["id"], second.id.as_str());
    assert!(sim.set_order_state(&second.id, "no_such_state").is_err());
    assert_clean(&sim);
}

#[tokio::test]
async fn a_lost_sync_response_still_wrote_and_a_repeat_is_idempotent() {
    let sim = shop(Version::V6_6).await;
    let client = Client::new(&sim).await;
    let id = sim.product_by_number("SW10003").expect("p")["id"].clone();
    let body =
        json!([{"entity": "product", "action": "upsert", "payload": [{"id": id, "stock": 77}]}]);
    sim.faults()
        .push(Matcher::path("/api/_action/sync"), Fault::LoseResponse);
    let lost = client
        .http
        .post(format!("{}/api/_action/sync", sim.url()))
        .bearer_auth(&client.token)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .body(body.to_string())
        .send()
        .await;
    assert!(
        lost.is_err(),
        "the client gets no answer, not even a status: {lost:?}"
    );
    assert_eq!(stock(&sim, "SW10003").0, 77, "but the write was committed");
    assert_eq!(client.post("/api/_action/sync", body).await.status, 200);
    assert_eq!(stock(&sim, "SW10003").0, 77);
    sim.faults().push(Matcher::any(), Fault::Status(503));
    assert_eq!(client.get("/api/_info/version").await.status, 503);
    assert_eq!(sim.request_count("POST /api/_action/sync"), 2);
    assert_eq!(sim.request_count("GET /api/_info/version"), 1);
    assert_clean(&sim);
}

/// Sends a request that must break off without a status line (a lost response or a dropped
/// connection).
async fn unanswered(
    client: &Client,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) {
    let mut request = client
        .http
        .request(method, format!("{}{path}", client.base))
        .bearer_auth(&client.token)
        .header("Accept", "application/json");
    if let Some(body) = body {
        request = request
            .header("Content-Type", "application/json")
            .body(body.to_string());
    }
    let result = request.send().await;
    assert!(result.is_err(), "{path}: no status may arrive: {result:?}");
}

#[tokio::test]
async fn lost_and_dropped_answers_on_the_204_routes_never_reach_the_client() {
    let sim = shop(Version::V6_6).await;
    let client = Client::new(&sim).await;
    let faults = sim.faults();
    let id = sim.product_by_number("SW10001").expect("p")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let path = format!("/api/product/{id}");
    // The routes answer 204 without a body when nothing goes wrong.
    assert_eq!(client.patch(&path, json!({"stock": 11})).await.status, 204);

    // PATCH: lost after the write, so the write is there.
    faults.push(Matcher::path(path.clone()), Fault::LoseResponse);
    unanswered(
        &client,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"stock": 12})),
    )
    .await;
    assert_eq!(
        stock(&sim, "SW10001").0,
        12,
        "a lost answer's write is committed"
    );
    // PATCH: dropped before handling, so nothing changed.
    faults.push(Matcher::path(path.clone()), Fault::DropConnection);
    unanswered(
        &client,
        reqwest::Method::PATCH,
        &path,
        Some(json!({"stock": 13})),
    )
    .await;
    assert_eq!(
        stock(&sim, "SW10001").0,
        12,
        "a dropped request writes nothing"
    );

    // POST /api/tax: created although the answer was lost; not created when dropped.
    let taxes = sim.count("tax");
    faults.push(Matcher::path("/api/tax"), Fault::DropConnection);
    unanswered(
        &client,
        reqwest::Method::POST,
        "/api/tax",
        Some(json!({"name": "Dropped", "taxRate": 3.0})),
    )
    .await;
    assert_eq!(sim.count("tax"), taxes);
    faults.push(Matcher::path("/api/tax"), Fault::LoseResponse);
    unanswered(
        &client,
        reqwest::Method::POST,
        "/api/tax",
        Some(json!({"name": "Lost", "taxRate": 4.0})),
    )
    .await;
    assert_eq!(sim.count("tax"), taxes + 1);

    // DELETE: lost, but the product is gone.
    faults.push(Matcher::path(path.clone()), Fault::LoseResponse);
    unanswered(&client, reqwest::Method::DELETE, &path, None).await;
    assert!(sim.product_by_number("SW10001").is_none(), "deleted");
    assert_eq!(faults.injected(), 5);

    // The server still answers on a fresh connection.
    assert_eq!(client.get("/api/_info/version").await.status, 200);
    assert_clean(&sim);
}

#[tokio::test]
async fn a_shop_owner_edit_goes_through_the_checks() {
    let sim = shop(Version::V6_6).await;
    sim.edit_product_field("SW10000", "name", json!("Renamed by the owner"))
        .expect("edit");
    assert_eq!(
        sim.product_by_number("SW10000").expect("p")["name"],
        "Renamed by the owner"
    );
    assert!(
        sim.edit_product_field("SW10000", "stock", json!("lots"))
            .is_err()
    );
    assert!(
        sim.edit_product_field("SW10000", "availableStock", json!(3))
            .is_err(),
        "write-protected from 6.6"
    );
}
