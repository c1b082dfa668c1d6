//! The example exchanges of API-NOTES §13, replayed against the simulator.

mod common;

use common::*;
use koppel_sim_faults::{Fault, Matcher};
use koppel_sim_shopware::{
    OrderCustomer, OrderLine, ShopwareOptions, ShopwareSimulator, StorefrontOrder, Version,
};
use serde_json::{Value, json};

const TAX_19: &str = "5f78f2d4b19f49648eb1b38881463da0";
const CATEGORY: &str = "a5963f2251e711fd5f88ada346d9c9dc";

/// Base data for §13.2: the tax and category ids the example assumes exist.
async fn prepare_13_2(client: &Client, sim: &ShopwareSimulator) {
    let tax = client
        .post(
            "/api/tax",
            json!({"id": TAX_19, "taxRate": 19.0, "name": "Example 19%"}),
        )
        .await;
    assert_eq!(tax.status, 204, "{}", tax.body);
    let category = client
        .post(
            "/api/category",
            json!({"id": CATEGORY, "name": "Shirts", "parentId": sim.ids().root_category.hex()}),
        )
        .await;
    assert_eq!(category.status, 204, "{}", category.body);
}

fn example_13_2(channel: &str, with_parent_price: bool) -> Value {
    let mut parent = json!({
        "id": "974c7252ad003560fbbbf7abe1b6c3da", "productNumber": "TS-100", "name": "Basic T-Shirt",
        "description": "<p>Cotton shirt</p>", "active": true, "stock": 0, "taxId": TAX_19,
        "price": [{"currencyId": "b7d2554b0ce847cd82f3ac9bd1c0dfca", "gross": 19.99, "net": 16.80, "linked": true}],
        "ean": "4006381333931", "customFields": {"erp_article_id": "A-100"},
        "visibilities": [{"id": "52045baf6e3bba628b599194e355304e", "salesChannelId": channel, "visibility": 30}],
        "categories": [{"id": CATEGORY}],
        "properties": [{"id": "9fab98152bb307758e59124f291efeab"}],
        "configuratorSettings": [
            {"id": "08c8d65f187b18e38448ab95409ac881", "optionId": "a815388c33e2cf763cde79f8be0fd141"},
            {"id": "529768e47b7ea3f536cff59a037648a4", "optionId": "761ac4ab413b5aad0f4e0141503ea006"},
            {"id": "53ce3756c2ba683505ca199a2e931f64", "optionId": "9fab98152bb307758e59124f291efeab"}]
    });
    if !with_parent_price {
        parent["price"] = json!([{"currencyId": "0000000000000000000000000000000a", "gross": 19.99, "net": 16.80, "linked": true}]);
    }
    json!({
        "options": {"entity": "property_group", "action": "upsert", "payload": [
            {"id": "4a733b3b6235e558d3847b37bc8e8032", "name": "Size", "displayType": "text", "sortingType": "position",
             "options": [
                {"id": "a815388c33e2cf763cde79f8be0fd141", "name": "S", "position": 1},
                {"id": "761ac4ab413b5aad0f4e0141503ea006", "name": "M", "position": 2}]},
            {"id": "bd6a92a3f4ef23bb2b594c99ab6d7a5f", "name": "Color", "displayType": "color", "sortingType": "alphanumeric",
             "options": [{"id": "9fab98152bb307758e59124f291efeab", "name": "Red", "colorHexCode": "#cc0000"}]}]},
        "products": {"entity": "product", "action": "upsert", "payload": [
            parent,
            {"id": "434c0a577279c892660e858786088eaf", "parentId": "974c7252ad003560fbbbf7abe1b6c3da", "productNumber": "TS-100-S-RED",
             "stock": 12, "ean": "4006381333948",
             "options": [{"id": "a815388c33e2cf763cde79f8be0fd141"}, {"id": "9fab98152bb307758e59124f291efeab"}]},
            {"id": "de67a423f95e30c31463ac43275ad249", "parentId": "974c7252ad003560fbbbf7abe1b6c3da", "productNumber": "TS-100-M-RED",
             "stock": 3, "isCloseout": true,
             "price": [{"currencyId": "b7d2554b0ce847cd82f3ac9bd1c0dfca", "gross": 21.99, "net": 18.48, "linked": true}],
             "options": [{"id": "761ac4ab413b5aad0f4e0141503ea006"}, {"id": "9fab98152bb307758e59124f291efeab"}]}]}
    })
}

const SYNC_HEADERS: &[(&str, &str)] = &[
    ("indexing-behavior", "use-queue-indexing"),
    ("sw-skip-trigger-flow", "1"),
];

#[tokio::test]
async fn token_then_expired_token_then_fresh_token() {
    let sim = ShopwareSimulator::start(options(Version::V6_6))
        .await
        .expect("start");
    // 13.1: the token answer.
    let mut client = Client::new(&sim).await;
    let answer = client
        .post("/api/oauth/token", json!({"grant_type": "client_credentials", "client_id": sim.client_id(), "client_secret": sim.client_secret()}))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.body["expires_in"], 600);
    assert!(
        answer.body["access_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("eyJ"))
    );
    assert!(
        answer.body.get("refresh_token").is_none(),
        "client_credentials gives no refresh token"
    );

    let search = client
        .post("/api/search/product", json!({"limit": 1}))
        .await;
    assert_eq!(search.status, 200);
    sim.expire_tokens();
    let expired = client
        .post("/api/search/product", json!({"limit": 1}))
        .await;
    assert_eq!(expired.status, 401);
    assert_eq!(
        expired.body,
        json!({"errors": [{"code": "9", "status": "401", "title": "The resource owner or authorization server denied the request.",
            "detail": "Access token could not be verified.", "meta": {"parameters": []}}]})
    );
    // The connector's rule: fetch a new token once and repeat.
    let fresh = Client::new(&sim).await;
    client.token = fresh.token;
    assert_eq!(
        client
            .post("/api/search/product", json!({"limit": 1}))
            .await
            .status,
        200
    );
    assert_eq!(sim.token_requests(), 3);

    // Missing token, wrong secret, password grant.
    let anonymous = Client {
        token: String::new(),
        http: client.http.clone(),
        base: client.base.clone(),
    };
    assert_eq!(anonymous.get("/api/_info/version").await.status, 401);
    let wrong = anonymous
        .post("/api/oauth/token", json!({"grant_type": "client_credentials", "client_id": sim.client_id(), "client_secret": "nope"}))
        .await;
    assert_eq!(
        (wrong.status, wrong.body["errors"][0]["code"].as_str()),
        (401, Some("4"))
    );
    let admin = anonymous
        .post("/api/oauth/token", json!({"grant_type": "password", "client_id": "administration", "username": "admin", "password": "shopware", "scopes": "write"}))
        .await;
    assert_eq!(admin.status, 200);
    assert!(admin.body["refresh_token"].is_string());
    let bad_user = anonymous
        .post("/api/oauth/token", json!({"grant_type": "password", "client_id": "administration", "username": "admin", "password": "x", "scopes": "write"}))
        .await;
    assert_eq!(
        (bad_user.status, bad_user.body["errors"][0]["code"].as_str()),
        (400, Some("6"))
    );
    assert_eq!(
        client.get("/api/_info/version").await.body,
        json!({"version": "6.6.10.13"})
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn short_token_lifetime_is_reported_and_enforced() {
    let sim = ShopwareSimulator::start(ShopwareOptions {
        token_ttl: std::time::Duration::ZERO,
        ..options(Version::V6_7)
    })
    .await
    .expect("start");
    let client = Client::new(&sim).await;
    assert_eq!(
        client
            .post("/api/search/product", json!({"limit": 1}))
            .await
            .status,
        401,
        "a token that lived 0 s is expired"
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn sync_upserts_a_parent_with_two_variants_and_fails_as_a_whole_without_default_price() {
    for version in [Version::V6_5, Version::V6_6, Version::V6_7] {
        let sim = ShopwareSimulator::start(options(version))
            .await
            .expect("start");
        let client = Client::new(&sim).await;
        prepare_13_2(&client, &sim).await;
        let channel = sim.ids().sales_channel.hex();

        let failed = client
            .raw(
                "POST",
                "/api/_action/sync",
                Some(example_13_2(&channel, false)),
                SYNC_HEADERS,
            )
            .await;
        assert_eq!(failed.status, 400, "{version:?}");
        // The pointer starts with the operation key (`EntityWriter::sync`).
        assert_eq!(
            failed.body,
            json!({"errors": [{"code": "FRAMEWORK__WRITE_CONSTRAINT_VIOLATION", "status": "400", "title": "Bad Request",
                "detail": "No price for default currency defined", "meta": {"parameters": []}, "source": {"pointer": "/products/0/price"}}]})
        );
        assert!(sim.product_by_number("TS-100").is_none(), "nothing written");
        assert_eq!(
            sim.count("property_group"),
            2,
            "the property groups of the failed sync were rolled back too"
        );

        let answer = client
            .raw(
                "POST",
                "/api/_action/sync",
                Some(example_13_2(&channel, true)),
                SYNC_HEADERS,
            )
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let data = &answer.body["data"];
        assert_eq!(
            data["product"],
            json!([
                "974c7252ad003560fbbbf7abe1b6c3da",
                "434c0a577279c892660e858786088eaf",
                "de67a423f95e30c31463ac43275ad249"
            ])
        );
        assert_eq!(
            data["product_translation"],
            json!([{"productId": "974c7252ad003560fbbbf7abe1b6c3da", "languageId": "2fbb5fe2e29a4d70aa5854ce7ce3e20b"}])
        );
        assert_eq!(
            data["product_visibility"],
            json!(["52045baf6e3bba628b599194e355304e"])
        );
        assert_eq!(
            data["product_category"],
            json!([{"productId": "974c7252ad003560fbbbf7abe1b6c3da", "categoryId": CATEGORY}])
        );
        assert_eq!(
            data["product_property"],
            json!([{"productId": "974c7252ad003560fbbbf7abe1b6c3da", "optionId": "9fab98152bb307758e59124f291efeab"}])
        );
        assert_eq!(
            data["product_configurator_setting"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        assert_eq!(data["product_option"].as_array().map(Vec::len), Some(4));
        assert_eq!(
            data["product_option"][0],
            json!({"productId": "434c0a577279c892660e858786088eaf", "optionId": "a815388c33e2cf763cde79f8be0fd141"})
        );
        assert_eq!(
            data["property_group"],
            json!([
                "4a733b3b6235e558d3847b37bc8e8032",
                "bd6a92a3f4ef23bb2b594c99ab6d7a5f"
            ])
        );
        assert_eq!(
            data["property_group_option"],
            json!([
                "a815388c33e2cf763cde79f8be0fd141",
                "761ac4ab413b5aad0f4e0141503ea006",
                "9fab98152bb307758e59124f291efeab"
            ])
        );
        assert_eq!(
            data["property_group_translation"].as_array().map(Vec::len),
            Some(2)
        );
        assert_eq!(
            data["property_group_option_translation"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        // API-NOTES shows `[]` (PHP's empty array); the schema types both `object`, and wins.
        assert_eq!(answer.body["notFound"], json!({}));
        assert_eq!(answer.body["deleted"], json!({}));

        // Stock-only update, the most frequent call (array form).
        let stock = client
            .post("/api/_action/sync", json!([{"entity": "product", "action": "upsert", "payload": [
                {"id": "434c0a577279c892660e858786088eaf", "stock": 11}, {"id": "de67a423f95e30c31463ac43275ad249", "stock": 0}]}]))
            .await;
        assert_eq!(stock.status, 200, "{}", stock.body);
        let variant = sim.product_by_number("TS-100-S-RED").expect("variant");
        assert_eq!(variant["stock"], 11);
        assert_eq!(variant["availableStock"], 11);
        let closeout = sim.product_by_number("TS-100-M-RED").expect("variant");
        assert_eq!(
            closeout["available"], false,
            "a closeout with no stock is not available"
        );
        let parent = sim.product_by_number("TS-100").expect("parent");
        assert_eq!(parent["childCount"], 2);
        assert_eq!(
            parent["configuratorSettings"].as_array().map(Vec::len),
            Some(3)
        );
        assert_eq!(variant["options"].as_array().map(Vec::len), Some(2));
        assert_clean(&sim);
        assert!(
            sim.request_violations().is_empty(),
            "{:#?}",
            sim.request_violations()
        );
    }
}

#[tokio::test]
async fn find_products_by_sku_with_includes() {
    let sim = ShopwareSimulator::start(options(Version::V6_6))
        .await
        .expect("start");
    let client = Client::new(&sim).await;
    prepare_13_2(&client, &sim).await;
    let channel = sim.ids().sales_channel.hex();
    assert_eq!(
        client
            .post("/api/_action/sync", example_13_2(&channel, true))
            .await
            .status,
        200
    );
    let stock = json!([{"entity": "product", "action": "upsert", "payload": [{"id": "434c0a577279c892660e858786088eaf", "stock": 11}]}]);
    assert_eq!(client.post("/api/_action/sync", stock).await.status, 200);

    let criteria = json!({"limit": 100, "filter": [{"type": "equalsAny", "field": "productNumber", "value": ["TS-100", "TS-100-S-RED", "UNKNOWN-1"]}],
        "includes": {"product": ["id", "productNumber", "parentId", "stock", "availableStock", "active"]}, "total-count-mode": 1});
    let answer = client.post("/api/search/product", criteria).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        json!({"total": 2, "data": [
            {"id": "974c7252ad003560fbbbf7abe1b6c3da", "productNumber": "TS-100", "parentId": null, "stock": 0, "availableStock": 0, "active": true, "apiAlias": "product"},
            {"id": "434c0a577279c892660e858786088eaf", "productNumber": "TS-100-S-RED", "parentId": "974c7252ad003560fbbbf7abe1b6c3da", "stock": 11, "availableStock": 11, "active": null, "apiAlias": "product"}],
            "aggregations": []})
    );
    // The example sends total-count-mode as the integer 1, which works (API-NOTES §4.2); the
    // 6.6 schema lists only the string names, so the request log names it.
    let requests = sim.request_violations();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|v| v.instance_path == "/total-count-mode"),
        "{requests:#?}"
    );
    assert_clean_with(&sim, requests.len());
}

#[tokio::test]
async fn search_open_paid_orders_with_associations() {
    let sim = ShopwareSimulator::start(ShopwareOptions {
        products: 5,
        variant_share: 0.0,
        ..options(Version::V6_6)
    })
    .await
    .expect("start");
    let client = Client::new(&sim).await;
    let anna = OrderCustomer {
        street: "Hauptstr. 1".into(),
        zipcode: "10115".into(),
        city: "Berlin".into(),
        ..OrderCustomer::private("anna@example.com", "Anna", "Muster", "DE")
    };
    let paid = sim
        .place_order(&StorefrontOrder {
            paid: true,
            ..StorefrontOrder::new(anna.clone(), vec![OrderLine::new("SW10000", 2)])
        })
        .expect("order");
    sim.place_order(&StorefrontOrder::new(
        anna,
        vec![OrderLine::new("SW10001", 1)],
    ))
    .expect("unpaid order");

    let criteria = json!({
        "limit": 50, "page": 1, "total-count-mode": "exact",
        "filter": [
            {"type": "equals", "field": "stateMachineState.technicalName", "value": "open"},
            {"type": "equals", "field": "transactions.stateMachineState.technicalName", "value": "paid"},
            {"type": "range", "field": "orderDateTime", "parameters": {"gte": "2024-05-01T00:00:00+00:00"}}],
        "sort": [{"field": "orderDateTime", "order": "ASC"}],
        "associations": {
            "stateMachineState": {}, "currency": {}, "orderCustomer": {},
            "billingAddress": {"associations": {"country": {}}},
            "deliveries": {"associations": {"shippingOrderAddress": {"associations": {"country": {}}}, "shippingMethod": {}, "stateMachineState": {}}},
            "lineItems": {"sort": [{"field": "position", "order": "ASC"}]},
            "transactions": {"associations": {"paymentMethod": {}, "stateMachineState": {}}, "sort": [{"field": "createdAt", "order": "DESC"}]}}
    });
    let answer = client.post("/api/search/order", criteria).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["total"], 1);
    let order = &answer.body["data"][0];
    assert_eq!(order["id"], paid.id.as_str());
    assert_eq!(order["versionId"], "0fa91ce3e96a4bc2be4bd9ce752c3425");
    assert_eq!(order["orderNumber"], paid.order_number.as_str());
    assert_eq!(order["currency"]["isoCode"], "EUR");
    assert_eq!(order["stateMachineState"]["technicalName"], "open");
    assert_eq!(order["stateMachineState"]["name"], "Open");
    assert_eq!(order["orderCustomer"]["email"], "anna@example.com");
    assert_eq!(order["orderCustomer"]["firstName"], "Anna");
    assert_eq!(order["billingAddress"]["city"], "Berlin");
    assert_eq!(order["billingAddress"]["country"]["iso"], "DE");
    assert_eq!(order["deliveries"][0]["trackingCodes"], json!([]));
    assert_eq!(order["deliveries"][0]["shippingMethod"]["name"], "Standard");
    assert_eq!(
        order["deliveries"][0]["shippingMethod"]["technicalName"],
        "shipping_standard"
    );
    assert_eq!(
        order["deliveries"][0]["stateMachineState"]["technicalName"],
        "open"
    );
    assert_eq!(
        order["deliveries"][0]["shippingOrderAddress"]["country"]["iso"],
        "DE"
    );
    let line = &order["lineItems"][0];
    assert_eq!(
        (line["type"].as_str(), line["quantity"].as_i64()),
        (Some("product"), Some(2))
    );
    assert_eq!(line["payload"]["productNumber"], "SW10000");
    assert_eq!(line["referencedId"], line["productId"]);
    assert_eq!(order["transactions"][0]["paymentMethod"]["name"], "Invoice");
    assert_eq!(
        order["transactions"][0]["stateMachineState"]["technicalName"],
        "paid"
    );
    assert_eq!(order["amountTotal"].as_f64(), Some(paid.amount_total));
    assert_eq!(order["apiAlias"], "order");
    assert_clean(&sim);
    assert!(
        sim.request_violations().is_empty(),
        "{:#?}",
        sim.request_violations()
    );
}

#[tokio::test]
async fn state_transitions_and_tracking_codes() {
    let sim = ShopwareSimulator::start(ShopwareOptions {
        products: 3,
        variant_share: 0.0,
        ..options(Version::V6_6)
    })
    .await
    .expect("start");
    let client = Client::new(&sim).await;
    let order = sim
        .place_order(&StorefrontOrder::new(
            OrderCustomer::private("b@example.com", "Bo", "Baker", "NL"),
            vec![OrderLine::new("SW10000", 1)],
        ))
        .expect("order");

    let illegal = client
        .post(
            &format!("/api/_action/order/{}/state/complete", order.id),
            json!({}),
        )
        .await;
    assert_eq!(illegal.status, 400);
    let error = &illegal.body["errors"][0];
    assert_eq!(error["code"], "SYSTEM__ILLEGAL_STATE_TRANSITION");
    assert_eq!(error["title"], "Bad Request");
    let open_state = error["meta"]["parameters"]["currentState"]
        .as_str()
        .expect("id")
        .to_string();
    assert_eq!(
        error["detail"],
        format!(
            "Illegal transition \"complete\" from state \"{open_state}\". Possible transitions are: process, cancel"
        )
    );
    assert_eq!(
        error["meta"]["parameters"]["possibleTransitions"],
        json!(["process", "cancel"])
    );
    assert_eq!(
        error["meta"]["parameters"]["possibleTransitionsString"],
        "process, cancel"
    );
    assert_eq!(error["meta"]["parameters"]["transition"], "complete");

    let moved = client
        .post(
            &format!("/api/_action/order/{}/state/process", order.id),
            json!({"sendMail": false}),
        )
        .await;
    assert_eq!(moved.status, 200);
    assert_eq!(moved.body["technicalName"], "in_progress");
    assert_eq!(moved.body["name"], "In Progress");
    assert_eq!(moved.body["apiAlias"], "state_machine_state");
    assert_eq!(moved.body["translated"]["name"], "In Progress");
    assert!(moved.body["stateMachineId"].is_string());
    assert_ne!(moved.body["id"], open_state.as_str());

    let tracking = client
        .patch(
            &format!("/api/order-delivery/{}", order.delivery_id),
            json!({"trackingCodes": ["00340434161094042557"]}),
        )
        .await;
    assert_eq!(tracking.status, 204, "{}", tracking.body);
    let shipped = client
        .post(
            &format!(
                "/api/_action/order_delivery/{}/state/ship",
                order.delivery_id
            ),
            json!({"sendMail": false}),
        )
        .await;
    assert_eq!(
        (shipped.status, shipped.body["technicalName"].as_str()),
        (200, Some("shipped"))
    );
    let paid = client
        .post(
            &format!(
                "/api/_action/order_transaction/{}/state/paid",
                order.transaction_id
            ),
            json!({}),
        )
        .await;
    assert_eq!(
        (paid.status, paid.body["technicalName"].as_str()),
        (200, Some("paid"))
    );
    let done = client
        .post(
            &format!("/api/_action/order/{}/state/complete", order.id),
            json!({}),
        )
        .await;
    assert_eq!(
        (done.status, done.body["technicalName"].as_str()),
        (200, Some("completed"))
    );

    // The generic state-machine routes.
    let listed = client
        .get(&format!(
            "/api/_action/state-machine/order/{}/state",
            order.id
        ))
        .await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["transitions"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed.body["transitions"][0]["actionName"], "reopen");
    assert_eq!(listed.body["transitions"][0]["toStateName"], "open");
    let reopened = client
        .post(
            &format!("/api/_action/state-machine/order/{}/state/reopen", order.id),
            json!({}),
        )
        .await;
    assert_eq!(reopened.body["technicalName"], "open");

    let stored = sim
        .entity(
            "order",
            &order.id,
            json!({"deliveries": {"associations": {"stateMachineState": {}}}}),
        )
        .expect("order");
    assert_eq!(
        stored["deliveries"][0]["trackingCodes"],
        json!(["00340434161094042557"])
    );
    assert_eq!(
        stored["deliveries"][0]["stateMachineState"]["technicalName"],
        "shipped"
    );
    assert_eq!(
        sim.count("state_machine_history"),
        5,
        "one history row per transition"
    );
    assert_clean(&sim);
    assert!(
        sim.request_violations().is_empty(),
        "{:#?}",
        sim.request_violations()
    );
}

#[tokio::test]
async fn not_found_and_rate_limit() {
    let sim = ShopwareSimulator::start(options(Version::V6_6))
        .await
        .expect("start");
    let client = Client::new(&sim).await;
    let missing = client
        .get("/api/product/00000000000000000000000000000001")
        .await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.body,
        json!({"errors": [{"status": "404", "code": "FRAMEWORK__RESOURCE_NOT_FOUND", "title": "Not Found",
            "detail": "The product resource with the following primary key was not found: id(00000000000000000000000000000001)",
            "meta": {"parameters": {"type": "product", "primaryKey": {"id": "00000000000000000000000000000001"}}}}]})
    );

    sim.faults().push(
        Matcher::path("/api/search/product"),
        Fault::TooManyRequests {
            retry_after_secs: 30,
        },
    );
    let limited = client
        .post("/api/search/product", json!({"limit": 1}))
        .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.headers["retry-after"], "30");
    assert_eq!(
        limited.body,
        json!({"errors": [{"status": "429", "code": "FRAMEWORK__RATE_LIMIT_EXCEEDED", "title": "Too Many Requests",
            "detail": "Too many requests, try again in 30 seconds.", "meta": {"parameters": {"seconds": 30}}}]})
    );
    assert_eq!(
        client
            .post("/api/search/product", json!({"limit": 1}))
            .await
            .status,
        200,
        "one-shot fault"
    );
    assert_eq!(sim.faults().injected(), 1);
    assert_clean(&sim);
}
