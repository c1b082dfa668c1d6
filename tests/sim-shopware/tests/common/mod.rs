//! Helpers shared by the integration tests: a small Admin API client.

#![allow(dead_code)]

use koppel_sim_shopware::{ShopwareOptions, ShopwareSimulator, Version};
use serde_json::{Value, json};

/// Options with validation on, as every test runs.
pub fn options(version: Version) -> ShopwareOptions {
    ShopwareOptions {
        version,
        validate: true,
        ..ShopwareOptions::default()
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Client {
    pub async fn new(sim: &ShopwareSimulator) -> Client {
        let mut client = Client {
            http: client_builder().no_proxy().build().expect("client"),
            base: sim.url(),
            token: String::new(),
        };
        let answer = client
            .raw(
                "POST",
                "/api/oauth/token",
                Some(json!({
                    "grant_type": "client_credentials",
                    "client_id": sim.client_id(),
                    "client_secret": sim.client_secret(),
                })),
                &[],
            )
            .await;
        assert_eq!(answer.status, 200, "token: {}", answer.body);
        client.token = answer.body["access_token"]
            .as_str()
            .expect("token")
            .to_string();
        client
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.send(method, path, body.map(|b| b.to_string()), headers)
            .await
    }

    /// A request with a JSON body given as text (to send object keys in an order of choice).
    pub async fn raw_text(
        &self,
        method: &str,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.send(method, path, Some(body.to_owned()), headers)
            .await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/json");
        if !self.token.is_empty() {
            request = request.bearer_auth(&self.token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.raw("POST", path, Some(body), &[]).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.raw("GET", path, None, &[]).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.raw("PATCH", path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.raw("DELETE", path, None, &[]).await
    }

    /// Search and return the data rows.
    pub async fn search(&self, entity: &str, criteria: Value) -> Vec<Value> {
        let answer = self.post(&format!("/api/search/{entity}"), criteria).await;
        assert_eq!(answer.status, 200, "search {entity}: {}", answer.body);
        answer.body["data"].as_array().cloned().unwrap_or_default()
    }
}

/// Bodies that may go through unchecked, because the version's OpenAPI file has no schema
/// for them (`*` at the end: any rest). Anything else unchecked is a hole in the proof and
/// fails the test.
pub const MAY_GO_UNCHECKED: &[&str] = &[
    // The transition actions' 200 answers are documented without a body schema (`"200": {}`
    // in every version's file); their request bodies are checked.
    "response 200 POST /api/_action/order/{id}/state/*",
    "response 200 POST /api/_action/order_delivery/{id}/state/*",
    "response 200 POST /api/_action/order_transaction/{id}/state/*",
    // `search-ids` routes are not in the files; their criteria are checked against the
    // `Criteria` component, their `{total, data: [ids]}` answers against nothing.
    "response 200 POST /api/search-ids/*",
    // Neither are the association list routes (`/api/{entity}/{id}/{association}`).
    "response 200 GET /api/product/{id}/visibilities",
    // The generic state-machine routes are not in the OpenAPI files at all.
    "request POST /api/_action/state-machine/*",
    "response 200 POST /api/_action/state-machine/*",
    "response 200 GET /api/_action/state-machine/*",
    // 6.4 answers a sync with failed operations with 400 and the per-operation result
    // (`success`, `data`, no `errors`); its file documents the 200 only.
    "response 400 POST /api/_action/sync",
];

fn may_go_unchecked(route: &str) -> bool {
    MAY_GO_UNCHECKED
        .iter()
        .any(|allowed| match allowed.strip_suffix('*') {
            Some(prefix) => route.starts_with(prefix),
            None => route == *allowed,
        })
}

/// Asserts the whole exchange was proven against the OpenAPI file: the schema was loaded,
/// no request and no response broke it, and no body outside [`MAY_GO_UNCHECKED`] went
/// unchecked.
pub fn assert_clean(sim: &ShopwareSimulator) {
    assert_clean_with(sim, 0);
}

/// Like [`assert_clean`], for a test that sent `invalid_requests` bad requests on purpose.
pub fn assert_clean_with(sim: &ShopwareSimulator, invalid_requests: usize) {
    assert!(
        sim.schema_loaded(),
        "the OpenAPI file of {} was not loaded: set KOPPEL_REFERENCE_DIR or check out \
         ../shared/reference",
        sim.version().full()
    );
    let violations = sim.response_violations();
    assert!(
        violations.is_empty(),
        "response violations: {violations:#?}"
    );
    let requests = sim.request_violations();
    assert_eq!(
        requests.len(),
        invalid_requests,
        "request violations: {requests:#?}"
    );
    assert!(sim.validated_bodies() > 0, "no body was validated");
    let unchecked: Vec<_> = sim
        .unvalidated_bodies()
        .into_keys()
        .filter(|route| !may_go_unchecked(route))
        .collect();
    assert!(
        unchecked.is_empty(),
        "bodies no schema checked: {unchecked:#?}"
    );
}

pub use koppel_test_support::client_builder;
