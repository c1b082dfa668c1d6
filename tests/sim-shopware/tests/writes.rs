//! Writes: schema-driven required and type checks, unknown and write-protected fields,
//! 6.5+ versus 6.4 sync semantics, resolvers, deletes.

mod common;

use common::*;
use koppel_sim_shopware::{ShopwareSimulator, Version};
use serde_json::{Value, json};

fn product(number: &str, tax: &str) -> Value {
    json!({"productNumber": number, "name": format!("Product {number}"), "stock": 5, "taxId": tax,
        "price": [{"currencyId": "b7d2554b0ce847cd82f3ac9bd1c0dfca", "gross": 10.0, "net": 8.4, "linked": true}]})
}

#[tokio::test]
async fn invalid_writes_are_refused_with_the_field_named() {
    for version in Version::ALL {
        let sim = ShopwareSimulator::start(options(version))
            .await
            .expect("start");
        let client = Client::new(&sim).await;
        let tax = sim.ids().tax(19.0).expect("tax").hex();

        let mut missing = product("X-1", &tax);
        missing.as_object_mut().expect("object").remove("name");
        let answer = client.post("/api/product", missing).await;
        assert_eq!(answer.status, 400, "{version:?}");
        assert_eq!(
            answer.body["errors"][0]["code"],
            "c1051bb4-d103-4f74-8988-acbcafc7fdc3"
        );
        assert_eq!(
            answer.body["errors"][0]["detail"],
            "This value should not be blank."
        );
        assert_eq!(answer.body["errors"][0]["source"]["pointer"], "/0/name");

        let mut wrong = product("X-2", &tax);
        wrong["stock"] = json!("many");
        let answer = client.post("/api/product", wrong).await;
        assert_eq!(answer.status, 400);
        assert_eq!(
            answer.body["errors"][0]["code"],
            "ba785a8c-82cb-4283-967c-3cf342181b40"
        );
        assert_eq!(
            answer.body["errors"][0]["detail"],
            "This value should be of type int."
        );
        assert_eq!(answer.body["errors"][0]["source"]["pointer"], "/0/stock");

        let mut unknown = product("X-3", &tax);
        unknown["colour"] = json!("red");
        let answer = client.post("/api/product", unknown).await;
        assert_eq!(
            answer.body["errors"][0]["code"],
            "FRAMEWORK__WRITE_UNEXPECTED_FIELD_ERROR"
        );
        assert_eq!(answer.body["errors"][0]["source"]["pointer"], "/0/colour");

        let mut protected = product("X-4", &tax);
        protected["childCount"] = json!(3);
        let answer = client.post("/api/product", protected).await;
        assert_eq!(
            answer.body["errors"][0]["code"],
            "FRAMEWORK__WRITE_CONSTRAINT_VIOLATION"
        );
        assert_eq!(
            answer.body["errors"][0]["detail"],
            "This field is write-protected."
        );
        assert_eq!(
            answer.body["errors"][0]["source"]["pointer"],
            "/0/childCount"
        );

        let answer = client
            .post("/api/product", product("X-5", "not-a-uuid"))
            .await;
        assert_eq!(answer.body["errors"][0]["code"], "FRAMEWORK__INVALID_UUID");
        assert_eq!(answer.body["errors"][0]["source"]["pointer"], "/0/taxId");

        let answer = client
            .post(
                "/api/product",
                product("X-6", "00000000000000000000000000000abc"),
            )
            .await;
        assert_eq!(
            answer.status, 500,
            "an unknown foreign key is a database error"
        );

        // A nested record's error points into the nested list.
        let mut nested = product("X-7", &tax);
        nested["visibilities"] =
            json!([{"salesChannelId": sim.ids().sales_channel.hex(), "visibility": "all"}]);
        let answer = client.post("/api/product", nested).await;
        assert_eq!(answer.status, 400);
        assert_eq!(
            answer.body["errors"][0]["source"]["pointer"],
            "/0/visibilities/0/visibility"
        );
        assert_eq!(sim.count("product"), 0, "{version:?}: nothing was written");
        assert_eq!(sim.count("product_visibility"), 0);

        // A valid create answers 204 with Location, and _response gives the entity.
        let ok = client.post("/api/product", product("X-8", &tax)).await;
        assert_eq!(ok.status, 204, "{}", ok.body);
        assert!(
            ok.headers["location"]
                .to_str()
                .is_ok_and(|l| l.contains("/api/product/"))
        );
        let detail = client
            .post("/api/product?_response=detail", product("X-9", &tax))
            .await;
        assert_eq!(detail.status, 200);
        assert_eq!(detail.body["data"]["productNumber"], "X-9");
        let duplicate = client.post("/api/product", product("X-8", &tax)).await;
        assert_eq!(
            duplicate.body["errors"][0]["code"],
            "CONTENT__DUPLICATE_PRODUCT_NUMBER"
        );
        assert_eq!(
            duplicate.body["errors"][0]["meta"]["parameters"]["number"],
            "X-8"
        );

        // The refused writes broke the schema; the request log says where.
        let requests = sim.request_violations();
        assert!(
            requests.iter().any(|v| v.instance_path == "/stock"),
            "{version:?}: {requests:#?}"
        );
        assert_clean_with(&sim, requests.len());
    }
}

#[tokio::test]
async fn patch_and_delete_single_entities() {
    let sim = ShopwareSimulator::start(options(Version::V6_6))
        .await
        .expect("start");
    let client = Client::new(&sim).await;
    let tax = sim.ids().tax(19.0).expect("tax").hex();
    let id = "11111111111111111111111111111111";
    let mut body = product("P-1", &tax);
    body["id"] = json!(id);
    assert_eq!(client.post("/api/product", body).await.status, 204);
    let patched = client
        .patch(
            &format!("/api/product/{id}"),
            json!({"stock": 42, "ean": "123"}),
        )
        .await;
    assert_eq!(patched.status, 204, "{}", patched.body);
    let read = client.get(&format!("/api/product/{id}")).await;
    assert_eq!(read.body["data"]["stock"], 42);
    assert_eq!(
        read.body["data"]["name"], "Product P-1",
        "a patch changes only what it sends"
    );
    assert!(read.body["data"]["updatedAt"].is_string());
    let missing = client
        .patch(
            "/api/product/22222222222222222222222222222222",
            json!({"stock": 1}),
        )
        .await;
    assert_eq!(missing.status, 404);

    // A tax still used by a product cannot be deleted.
    let restricted = client.delete(&format!("/api/tax/{tax}")).await;
    assert_eq!(restricted.status, 409);
    assert_eq!(
        restricted.body["errors"][0]["code"],
        "FRAMEWORK__DELETE_RESTRICTED"
    );
    assert_eq!(
        client.delete(&format!("/api/product/{id}")).await.status,
        204
    );
    assert_eq!(client.get(&format!("/api/product/{id}")).await.status, 404);
    assert_eq!(
        client.delete(&format!("/api/product/{id}")).await.status,
        404
    );
    assert_clean(&sim);
    assert!(
        sim.request_violations().is_empty(),
        "{:#?}",
        sim.request_violations()
    );
}

fn two_operations(tax: &str) -> Value {
    json!({
        "good": {"entity": "product", "action": "upsert", "payload": [product("S-1", tax)]},
        "bad": {"entity": "product", "action": "upsert", "payload": [product("S-2", tax), {"productNumber": "S-3", "stock": 1}]},
    })
}

#[tokio::test]
async fn sync_65_is_all_or_nothing_with_every_error() {
    let sim = ShopwareSimulator::start(options(Version::V6_6))
        .await
        .expect("start");
    let client = Client::new(&sim).await;
    let tax = sim.ids().tax(19.0).expect("tax").hex();
    // fail-on-error: false changes nothing from 6.5 on.
    let answer = client
        .raw(
            "POST",
            "/api/_action/sync",
            Some(two_operations(&tax)),
            &[("fail-on-error", "false")],
        )
        .await;
    assert_eq!(answer.status, 400);
    let pointers: Vec<&str> = answer.body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["source"]["pointer"].as_str())
        .collect();
    // The operation key leads the pointer (`EntityWriter::sync`: `/<key>/<index>`).
    assert_eq!(
        pointers,
        vec!["/bad/1/taxId", "/bad/1/price", "/bad/1/name"]
    );
    assert_eq!(sim.count("product"), 0);

    // Deletes: unknown ids land in notFound; mapping rows by both keys; resolvers.
    let create = json!([{"entity": "product", "action": "upsert", "payload": [
        {"id": "33333333333333333333333333333333", "productNumber": "D-1", "name": "D", "stock": 1, "taxId": tax,
         "price": [{"currencyId": "b7d2554b0ce847cd82f3ac9bd1c0dfca", "gross": 1.0, "net": 0.84, "linked": true}],
         "categories": [{"id": sim.ids().categories[0].1.hex()}]}]},
        {"entity": "product_visibility", "action": "upsert", "payload": [
         {"productId": {"resolver": "product.number", "value": "D-1"}, "salesChannelId": sim.ids().sales_channel.hex(), "visibility": 10}]}]);
    let created = client.post("/api/_action/sync", create).await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(sim.count("product_visibility"), 1);
    let unresolved = client
        .post("/api/_action/sync", json!([{"entity": "product_visibility", "action": "upsert", "payload": [
            {"productId": {"resolver": "product.number", "value": "NOPE"}, "salesChannelId": sim.ids().sales_channel.hex(), "visibility": 10}]}]))
        .await;
    assert_eq!(
        unresolved.body["errors"][0]["code"],
        "FRAMEWORK__API_INVALID_SYNC_RESOLVERS"
    );
    let deleted = client
        .post("/api/_action/sync", json!([
            {"entity": "product_category", "action": "delete", "criteria": [{"type": "equals", "field": "productId", "value": "33333333333333333333333333333333"}]},
            {"entity": "product", "action": "delete", "payload": [{"id": "33333333333333333333333333333333"}, {"id": "44444444444444444444444444444444"}]}]))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.body);
    assert_eq!(
        deleted.body["deleted"]["product"],
        json!(["33333333333333333333333333333333"])
    );
    assert_eq!(
        deleted.body["deleted"]["product_category"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        deleted.body["deleted"]["product_visibility"]
            .as_array()
            .map(Vec::len),
        Some(1),
        "visibilities cascade"
    );
    assert_eq!(
        deleted.body["notFound"]["product"],
        json!(["44444444444444444444444444444444"])
    );
    assert_eq!(sim.count("product"), 0);
    // Delete by criteria works from 6.5 on (API-NOTES), but the file's sync schema requires
    // `payload` on every operation: that one request is logged against it.
    assert_clean_with(&sim, 1);
}

#[tokio::test]
async fn sync_64_answers_per_operation_and_honours_fail_on_error() {
    let sim = ShopwareSimulator::start(options(Version::V6_4))
        .await
        .expect("start");
    let client = Client::new(&sim).await;
    let tax = sim.ids().tax(19.0).expect("tax").hex();

    let answer = client.post("/api/_action/sync", two_operations(&tax)).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["success"], false);
    let good = &answer.body["data"]["good"]["result"][0];
    assert_eq!(good["errors"], json!([]));
    assert_eq!(
        good["entities"]["product"].as_array().map(Vec::len),
        Some(1)
    );
    let bad = &answer.body["data"]["bad"]["result"];
    assert_eq!(bad[0]["errors"], json!([]));
    assert_eq!(bad[1]["errors"][0]["source"]["pointer"], "/1/taxId");
    assert_eq!(
        sim.count("product"),
        0,
        "fail-on-error (default true) rolls back every operation"
    );

    let answer = client
        .raw(
            "POST",
            "/api/_action/sync",
            Some(two_operations(&tax)),
            &[("fail-on-error", "false")],
        )
        .await;
    // `SyncController` answers 400 only with fail-on-error on: here 200, success false.
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["success"], false);
    assert_eq!(
        answer.body["data"]["bad"]["result"][1]["entities"],
        json!([])
    );
    assert_eq!(
        sim.count("product"),
        1,
        "with fail-on-error false the good operation is committed"
    );
    assert!(sim.product_by_number("S-1").is_some());
    assert!(
        sim.product_by_number("S-2").is_none(),
        "the failing operation is rolled back whole"
    );

    let single = client
        .raw("POST", "/api/_action/sync", Some(json!({"one": {"entity": "product", "action": "upsert", "payload": [product("S-9", &tax)]}})), &[("single-operation", "1")])
        .await;
    assert_eq!(single.status, 200, "{}", single.body);
    assert_eq!(single.body["success"], true);
    assert_eq!(
        single.body["data"]["product"].as_array().map(Vec::len),
        Some(1)
    );

    // Operations run in body order, and keys 0..n-1 in order make `data` a PHP list: a
    // child category sent before its parent fails on the foreign key.
    let root = sim.ids().categories[0].1.hex();
    let parent = "55555555555555555555555555555555";
    let child = "66666666666666666666666666666666";
    let category = |id: &str, parent: &str| {
        json!({"entity": "category", "action": "upsert",
        "payload": [{"id": id, "parentId": parent, "name": id}]})
    };
    let body = format!(
        r#"{{"0": {}, "1": {}}}"#,
        category(child, parent),
        category(parent, &root)
    );
    let answer = client
        .raw_text(
            "POST",
            "/api/_action/sync",
            &body,
            &[("fail-on-error", "false")],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body["data"].is_array(), "{}", answer.body);
    assert_eq!(
        answer.body["data"][0]["result"][0]["errors"][0]["status"],
        "500"
    );
    assert_eq!(answer.body["data"][1]["result"][0]["errors"], json!([]));
    let body = format!(
        r#"{{"b": {}, "a": {}}}"#,
        category(child, parent),
        category(parent, &root)
    );
    let answer = client
        .raw_text(
            "POST",
            "/api/_action/sync",
            &body,
            &[("fail-on-error", "false")],
        )
        .await;
    assert!(answer.body["data"].is_object(), "{}", answer.body);
    assert_eq!(
        answer.body["data"]["b"]["result"][0]["errors"],
        json!([]),
        "the parent exists now"
    );

    // Resolvers and delete by criteria are 6.5+.
    let criteria = client
        .post("/api/_action/sync", json!([{"entity": "product_category", "action": "delete", "criteria": [{"type": "equals", "field": "productId", "value": tax}]}]))
        .await;
    assert_eq!(
        criteria.body["errors"][0]["code"],
        "FRAMEWORK__INVALID_SYNC_OPERATION"
    );
    // The refused operation has no `payload`, which the schema requires.
    assert_clean_with(&sim, 1);
}

#[tokio::test]
async fn disable_indexing_leaves_derived_data_stale() {
    let sim = ShopwareSimulator::start(options(Version::V6_6))
        .await
        .expect("start");
    let client = Client::new(&sim).await;
    let tax = sim.ids().tax(19.0).expect("tax").hex();
    let parent = json!({"id": "55555555555555555555555555555555", "productNumber": "I-1", "name": "I", "stock": 0, "taxId": tax,
        "price": [{"currencyId": "b7d2554b0ce847cd82f3ac9bd1c0dfca", "gross": 1.0, "net": 0.84, "linked": true}]});
    assert_eq!(
        client
            .post(
                "/api/_action/sync",
                json!([{"entity": "product", "action": "upsert", "payload": [parent]}])
            )
            .await
            .status,
        200
    );
    let child = json!([{"entity": "product", "action": "upsert", "payload": [
        {"parentId": "55555555555555555555555555555555", "productNumber": "I-1.1", "stock": 2}]}]);
    let answer = client
        .raw(
            "POST",
            "/api/_action/sync",
            Some(child),
            &[("indexing-behavior", "disable-indexing")],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        sim.product_by_number("I-1").expect("parent")["childCount"],
        0,
        "indexer did not run"
    );
    let child = json!([{"entity": "product", "action": "upsert", "payload": [
        {"parentId": "55555555555555555555555555555555", "productNumber": "I-1.2", "stock": 2}]}]);
    assert_eq!(client.post("/api/_action/sync", child).await.status, 200);
    assert_eq!(
        sim.product_by_number("I-1").expect("parent")["childCount"],
        2
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn without_the_reference_folder_the_simulator_still_runs() {
    let sim = ShopwareSimulator::start(koppel_sim_shopware::ShopwareOptions {
        reference_dir: Some("/nonexistent/reference/shopware".into()),
        products: 10,
        orders: 2,
        customers: 1,
        ..options(Version::V6_6)
    })
    .await
    .expect("start");
    assert!(!sim.schema_loaded());
    let client = Client::new(&sim).await;
    assert_eq!(
        client.search("product", json!({"limit": 100})).await.len(),
        10
    );
    let tax = sim.ids().tax(19.0).expect("tax").hex();
    let mut no_price = product("N-1", &tax);
    no_price["price"] = json!([]);
    let refused = client.post("/api/product", no_price).await;
    assert_eq!(
        refused.body["errors"][0]["detail"], "No price for default currency defined",
        "Shopware's own rules still hold"
    );
    let order = sim.orders().pop().expect("order");
    let moved = client
        .post(
            &format!(
                "/api/_action/order/{}/state/process",
                order["id"].as_str().expect("id")
            ),
            json!({}),
        )
        .await;
    assert_eq!(
        moved.body["technicalName"], "in_progress",
        "the built-in state machines drive transitions"
    );
    assert!(sim.violations().is_empty());
}

#[tokio::test]
async fn errors_raised_while_writing_carry_no_pointer_and_come_alone() {
    // A duplicate product number is the database's unique key (`ProductExceptionHandler`),
    // a missing privilege `AclWriteValidator`: neither points at a record.
    for version in [Version::V6_4, Version::V6_6] {
        let sim = ShopwareSimulator::start(options(version))
            .await
            .expect("start");
        let client = Client::new(&sim).await;
        let tax = sim.ids().tax(19.0).expect("tax").hex();
        let created = client
            .post("/api/_action/sync", json!([{"entity": "product", "action": "upsert", "payload": [product("N-1", &tax)]}]))
            .await;
        assert_eq!(created.status, 200, "{}", created.body);
        let mut twin = product("N-1", &tax);
        twin["id"] = json!("77777777777777777777777777777777");
        let body = json!([{"key": "write", "entity": "product", "action": "upsert", "payload": [product("N-2", &tax), twin]}]);
        let answer = client
            .raw(
                "POST",
                "/api/_action/sync",
                Some(body),
                &[("fail-on-error", "false")],
            )
            .await;
        let error = match version {
            Version::V6_4 => {
                assert_eq!(answer.status, 200, "{}", answer.body);
                answer.body["data"]["write"]["result"][1]["errors"][0].clone()
            }
            _ => {
                assert_eq!(answer.status, 400, "{}", answer.body);
                assert_eq!(answer.body["errors"].as_array().map(Vec::len), Some(1));
                answer.body["errors"][0].clone()
            }
        };
        assert_eq!(
            error["code"], "CONTENT__DUPLICATE_PRODUCT_NUMBER",
            "{version:?}"
        );
        assert_eq!(error["meta"]["parameters"]["number"], "N-1");
        assert!(error.get("source").is_none(), "{error}");
        assert!(
            sim.product_by_number("N-2").is_none(),
            "{version:?}: the operation failed whole"
        );

        sim.revoke("product:delete");
        let id = sim.product_by_number("N-1").expect("N-1")["id"].clone();
        let answer = client
            .raw(
                "POST",
                "/api/_action/sync",
                Some(json!([{"entity": "product", "action": "delete", "payload": [{"id": id}]}])),
                &[("fail-on-error", "false")],
            )
            .await;
        let error = match version {
            Version::V6_4 => answer.body["data"][0]["result"][0]["errors"][0].clone(),
            _ => answer.body["errors"][0].clone(),
        };
        assert_eq!(
            answer.status,
            if version == Version::V6_4 { 200 } else { 403 }
        );
        assert_eq!(
            error["code"], "FRAMEWORK__MISSING_PRIVILEGE_ERROR",
            "{}",
            answer.body
        );
        assert!(sim.product_by_number("N-1").is_some(), "not deleted");
        assert_clean(&sim);
    }
}
