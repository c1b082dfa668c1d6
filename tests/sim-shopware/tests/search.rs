//! Search criteria: filters, paging, sorting, total-count modes, nested associations,
//! includes, ids; search-ids; list routes; JSON:API; variant inheritance; seeds.

mod common;

use common::*;
use koppel_sim_shopware::{ShopwareOptions, ShopwareSimulator, Version};
use serde_json::{Value, json};

async fn shop(version: Version) -> (ShopwareSimulator, Client) {
    let sim = ShopwareSimulator::start(ShopwareOptions {
        products: 60,
        variant_share: 0.3,
        seed: 7,
        ..options(version)
    })
    .await
    .expect("start");
    let client = Client::new(&sim).await;
    (sim, client)
}

fn numbers(rows: &[Value]) -> Vec<String> {
    rows.iter()
        .filter_map(|r| r["productNumber"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn paging_sorting_and_total_count_modes() {
    let (sim, client) = shop(Version::V6_6).await;
    let all = sim.products();
    assert_eq!(all.len(), 60);
    let mut expected: Vec<String> = numbers(&all);
    expected.sort();

    let mut pages = Vec::new();
    for page in 1..=7 {
        let answer = client
            .post("/api/search/product", json!({"limit": 10, "page": page, "sort": [{"field": "productNumber", "order": "ASC"}], "total-count-mode": "exact",
                "includes": {"product": ["productNumber"]}}))
            .await;
        assert_eq!(answer.body["total"], 60, "exact counts every match");
        let rows = answer.body["data"].as_array().cloned().unwrap_or_default();
        assert!(rows.len() <= 10);
        pages.extend(numbers(&rows));
    }
    assert_eq!(pages, expected, "paging walks every row once, in order");

    let none = client
        .post("/api/search/product", json!({"limit": 10, "page": 2}))
        .await;
    assert_eq!(
        none.body["total"], 10,
        "mode none: total is the rows returned"
    );
    let next = client
        .post(
            "/api/search/product",
            json!({"limit": 5, "page": 1, "total-count-mode": "next-pages"}),
        )
        .await;
    let total = next.body["total"].as_u64().expect("total");
    assert!(
        total > 5 && total < 60,
        "next-pages only looks ahead: {total}"
    );

    let desc = client
        .search(
            "product",
            json!({"limit": 3, "sort": [{"field": "productNumber", "order": "DESC"}]}),
        )
        .await;
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(numbers(&desc), reversed[..3].to_vec());

    let natural = client.search("product", json!({"limit": 100, "filter": [{"type": "prefix", "field": "productNumber", "value": "SW10000."}],
        "sort": [{"field": "productNumber", "order": "ASC", "naturalSorting": true}]})).await;
    let naturals = numbers(&natural);
    let mut sorted = naturals.clone();
    sorted.sort_by_key(|n| n.rsplit('.').next().and_then(|x| x.parse::<u32>().ok()));
    assert_eq!(naturals, sorted);

    for (limit, code) in [
        (json!(0), "FRAMEWORK__INVALID_LIMIT_QUERY"),
        (json!("x"), "FRAMEWORK__INVALID_LIMIT_QUERY"),
    ] {
        let bad = client
            .post("/api/search/product", json!({"limit": limit}))
            .await;
        assert_eq!(
            (bad.status, bad.body["errors"][0]["code"].as_str()),
            (400, Some(code))
        );
    }
    let bad = client
        .post("/api/search/product", json!({"limit": 1, "page": 0}))
        .await;
    assert_eq!(
        bad.body["errors"][0]["code"],
        "FRAMEWORK__INVALID_PAGE_QUERY"
    );
    let bad = client
        .post(
            "/api/search/product",
            json!({"limit": 1, "filter": [{"type": "equals", "field": "colour", "value": 1}]}),
        )
        .await;
    assert_eq!(bad.body["errors"][0]["code"], "FRAMEWORK__UNMAPPED_FIELD");
    let bad = client
        .post(
            "/api/search/product",
            json!({"limit": 1, "associations": {"wheels": {}}}),
        )
        .await;
    assert_eq!(
        bad.body["errors"][0]["code"],
        "FRAMEWORK__ASSOCIATION_NOT_FOUND"
    );
    let bad = client.post("/api/search/widget", json!({"limit": 1})).await;
    assert_eq!(
        (bad.status, bad.body["errors"][0]["code"].as_str()),
        (404, Some("FRAMEWORK__DEFINITION_NOT_FOUND"))
    );
    // `"limit": "x"` breaks the Criteria schema on purpose.
    assert_clean_with(&sim, 1);
}

#[tokio::test]
async fn filters_match_what_the_data_says() {
    let (sim, client) = shop(Version::V6_7).await;
    let all = sim.products();
    let stock = |p: &Value| p["stock"].as_i64().unwrap_or(-1);

    let ranged = client.search("product", json!({"limit": 500, "filter": [{"type": "range", "field": "stock", "parameters": {"gte": 10, "lt": 30}}]})).await;
    let expected = all.iter().filter(|p| (10..30).contains(&stock(p))).count();
    assert_eq!(ranged.len(), expected);
    assert!(ranged.iter().all(|p| (10..30).contains(&stock(p))));

    let either = client.search("product", json!({"limit": 500, "filter": [{"type": "multi", "operator": "or", "queries": [
        {"type": "equals", "field": "stock", "value": 0}, {"type": "range", "field": "stock", "parameters": {"gt": 90}}]}]})).await;
    assert_eq!(
        either.len(),
        all.iter()
            .filter(|p| stock(p) == 0 || stock(p) > 90)
            .count()
    );

    let not = client.search("product", json!({"limit": 500, "filter": [{"type": "not", "operator": "and", "queries": [{"type": "equals", "field": "parentId", "value": null}]}]})).await;
    let variants = all.iter().filter(|p| !p["parentId"].is_null()).count();
    assert!(variants > 0);
    assert_eq!(not.len(), variants);

    let parents = client.search("product", json!({"limit": 500, "filter": [{"type": "equals", "field": "parentId", "value": null}]})).await;
    assert_eq!(parents.len() + not.len(), all.len());

    let name = all
        .iter()
        .find_map(|p| p["name"].as_str())
        .expect("a named product")
        .to_string();
    let word = name.split(' ').nth(1).expect("word").to_lowercase();
    let contains = client
        .search(
            "product",
            json!({"limit": 500, "filter": [{"type": "contains", "field": "name", "value": word}]}),
        )
        .await;
    assert!(!contains.is_empty());
    assert!(contains.iter().all(|p| {
        p["name"]
            .as_str()
            .is_some_and(|n| n.to_lowercase().contains(&word))
    }));
    let suffix = client.search("product", json!({"limit": 500, "filter": [{"type": "suffix", "field": "productNumber", "value": ".1"}]})).await;
    assert!(
        suffix.iter().all(|p| p["productNumber"]
            .as_str()
            .is_some_and(|n| n.ends_with(".1")))
            && !suffix.is_empty()
    );

    // Along associations: products in a category, by the category's name.
    let (category_name, _) = sim.ids().categories[0].clone();
    let in_category = client.search("product", json!({"limit": 500, "filter": [{"type": "equals", "field": "categories.name", "value": category_name}],
        "associations": {"categories": {}}})).await;
    assert!(!in_category.is_empty());
    assert!(in_category.iter().all(|p| {
        p["categories"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == category_name.as_str()))
    }));

    // ids: the limit is ignored and the order kept.
    let ids: Vec<Value> = all.iter().rev().take(3).map(|p| p["id"].clone()).collect();
    let by_ids = client
        .search("product", json!({"ids": ids, "limit": 1}))
        .await;
    assert_eq!(
        by_ids.iter().map(|p| p["id"].clone()).collect::<Vec<_>>(),
        ids
    );

    let only_ids = client
        .post(
            "/api/search-ids/product",
            json!({"limit": 5, "total-count-mode": "exact"}),
        )
        .await;
    assert_eq!(only_ids.body["total"], 60);
    assert_eq!(only_ids.body["data"].as_array().map(Vec::len), Some(5));
    assert!(only_ids.body["data"][0].is_string());
    assert_clean(&sim);
}

#[tokio::test]
async fn nested_associations_with_their_own_criteria_and_includes() {
    let (sim, client) = shop(Version::V6_6).await;
    let parent = sim
        .products()
        .into_iter()
        .find(|p| p["childCount"].as_i64().unwrap_or(0) >= 2)
        .expect("a family");
    let rows = client
        .search("product", json!({"ids": [parent["id"]], "associations": {
            "children": {"limit": 1, "sort": [{"field": "productNumber", "order": "DESC"}], "associations": {"options": {"associations": {"group": {}}}}},
            "configuratorSettings": {"associations": {"option": {}}}},
            "includes": {"product": ["id", "productNumber", "children", "options", "configuratorSettings"],
                "property_group_option": ["name", "group"], "property_group": ["name"], "product_configurator_setting": ["optionId", "option"]}}))
        .await;
    let row = &rows[0];
    let children = row["children"].as_array().expect("children");
    assert_eq!(children.len(), 1, "the association's own limit");
    let mut numbers: Vec<String> = sim
        .products()
        .iter()
        .filter(|p| p["parentId"] == parent["id"])
        .filter_map(|p| p["productNumber"].as_str().map(str::to_string))
        .collect();
    numbers.sort();
    assert_eq!(
        children[0]["productNumber"].as_str(),
        numbers.last().map(String::as_str)
    );
    let options = children[0]["options"].as_array().expect("options");
    assert_eq!(options.len(), 2);
    let groups: Vec<&str> = options
        .iter()
        .filter_map(|o| o["group"]["name"].as_str())
        .collect();
    assert!(
        groups.contains(&"Size") && groups.contains(&"Color"),
        "{groups:?}"
    );
    assert_eq!(
        options[0].as_object().map(|o| o.len()),
        Some(3),
        "name, group, apiAlias: {}",
        options[0]
    );
    assert!(row.get("stock").is_none(), "includes trim every level");
    assert!(
        !row["configuratorSettings"]
            .as_array()
            .expect("settings")
            .is_empty()
    );
    assert!(row["configuratorSettings"][0]["option"]["name"].is_string());
    assert_clean(&sim);
}

#[tokio::test]
async fn variants_inherit_only_with_the_inheritance_header() {
    let (sim, client) = shop(Version::V6_6).await;
    let variant = sim
        .products()
        .into_iter()
        .find(|p| !p["parentId"].is_null() && p["price"].is_null())
        .expect("a variant without own price");
    let path = format!("/api/product/{}", variant["id"].as_str().expect("id"));
    let own = client.get(&path).await;
    assert!(own.body["data"]["price"].is_null());
    assert!(own.body["data"]["name"].is_null());
    let inherited = client
        .raw("GET", &path, None, &[("sw-inheritance", "1")])
        .await;
    assert!(inherited.body["data"]["price"].is_array());
    assert!(inherited.body["data"]["name"].is_string());
    assert_eq!(
        inherited.body["data"]["productNumber"], variant["productNumber"],
        "own fields stay own"
    );
    assert_clean(&sim);
}

#[tokio::test]
async fn lists_association_routes_and_json_api() {
    let (sim, client) = shop(Version::V6_6).await;
    let list = client.get("/api/product?limit=5&page=2").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["total"], 60);
    assert_eq!(list.body["data"].as_array().map(Vec::len), Some(5));
    let product = &list.body["data"][0];
    let visibilities = client
        .get(&format!(
            "/api/product/{}/visibilities",
            product["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(visibilities.status, 200);

    // Without an Accept header the answer is JSON:API.
    let plain_client = client_builder().no_proxy().build().expect("client");
    let response = plain_client
        .post(format!("{}/api/search/product", sim.url()))
        .bearer_auth(&client.token)
        .header("Content-Type", "application/json")
        .body(json!({"limit": 2, "associations": {"tax": {}}}).to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.api+json"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"][0]["type"], "product");
    assert!(body["data"][0]["attributes"]["productNumber"].is_string());
    assert!(body["data"][0]["attributes"].get("tax").is_none());
    assert_eq!(body["included"][0]["type"], "tax");
    assert_eq!(body["meta"]["total"], 2);
    assert_clean(&sim);
}

#[tokio::test]
async fn the_same_seed_builds_the_same_shop() {
    let seeded = ShopwareOptions {
        products: 40,
        customers: 5,
        orders: 5,
        seed: 99,
        ..options(Version::V6_5)
    };
    let a = ShopwareSimulator::start(seeded.clone())
        .await
        .expect("start");
    let b = ShopwareSimulator::start(seeded).await.expect("start");
    assert_eq!(a.products(), b.products());
    assert_eq!(a.orders(), b.orders());
    let c = ShopwareSimulator::start(ShopwareOptions {
        products: 40,
        seed: 100,
        ..options(Version::V6_5)
    })
    .await
    .expect("start");
    assert_ne!(a.products(), c.products());
    assert_eq!(a.count("order"), 5);
    assert_eq!(a.count("customer"), 5);
}

#[tokio::test]
async fn from_66_a_search_gets_at_most_500_rows() {
    // `shopware.api.max_limit`: 500 from 6.6 (shopware.yaml), none for the Admin API before.
    for version in [Version::V6_5, Version::V6_6] {
        let sim = ShopwareSimulator::start(ShopwareOptions {
            products: 520,
            variant_share: 0.0,
            ..options(version)
        })
        .await
        .expect("start");
        let client = Client::new(&sim).await;
        let big = client
            .post(
                "/api/search/product",
                json!({"limit": 501, "includes": {"product": ["id"]}}),
            )
            .await;
        let unlimited = client
            .post(
                "/api/search/product",
                json!({"includes": {"product": ["id"]}}),
            )
            .await;
        let rows = unlimited.body["data"].as_array().map(Vec::len);
        if version == Version::V6_6 {
            assert_eq!(big.status, 400, "{}", big.body);
            assert_eq!(
                big.body["errors"][0]["code"],
                "FRAMEWORK__QUERY_LIMIT_EXCEEDED"
            );
            assert_eq!(big.body["errors"][0]["meta"]["parameters"]["maxLimit"], 500);
            assert_eq!(big.body["errors"][0]["source"]["pointer"], "/limit");
            assert_eq!(rows, Some(500), "the maximum is the default");
        } else {
            assert_eq!(big.status, 200, "{}", big.body);
            assert_eq!(rows, Some(520));
        }
        let page = client.get("/api/product?limit=600").await;
        assert_eq!(
            page.status,
            if version == Version::V6_6 { 400 } else { 200 }
        );
        assert_clean(&sim);
    }
}
