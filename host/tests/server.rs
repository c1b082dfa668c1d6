//! The HTTP API, dashboard, metrics and inbound webhooks over real HTTP on 127.0.0.1, with
//! runs made by the fixture connector: every route, the tenant boundary (tenant B's token
//! never sees tenant A's rows), tokens, webhook signatures (valid, wrong, missing, stale,
//! replayed), retention with masking, and the setup wizard.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use koppel::config::{RetentionConfig, Secret, WebhookScheme, WebhookSource, WebhooksConfig};
use koppel::flow::definition::FlowDef;
use koppel::flow::schedule::Scheduler;
use koppel::flow::{ConnectionSetup, Environment, RunOptions, RunSummary, run_flow};
use koppel::mapping::MapRule;
use koppel::runtime::{
    ActivitySink, Connector, Exchange, Limits, Runtime, RuntimeOptions, TenantQuota,
};
use koppel::server::{FlowControl, ServerState, TenantState, serve};
use koppel::signature::koppel_signature;
use koppel::store::{ActivityWriter, Masker, RunStatus, Store, now_ms};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SECRET_TOKEN: &str = "fixture-secret-value-77";
const SHOPWARE_SECRET: &str = "shop-secret-1";
const MPLUS_SECRET: &str = "mplus-secret-2";

async fn fixture() -> Arc<Connector> {
    koppel_test_support::fixture(&koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"))).await
}

fn environment(
    tenant: &str,
    store: &Store,
    activity: &ActivityWriter,
    connector: &Arc<Connector>,
) -> Environment {
    environment_named(tenant, store, activity, connector, "src", "dst")
}

/// A tenant whose source and target connections (both the fixture) have these names.
fn environment_named(
    tenant: &str,
    store: &Store,
    activity: &ActivityWriter,
    connector: &Arc<Connector>,
    src: &str,
    dst: &str,
) -> Environment {
    let setup = |config: &[(&str, &str)]| ConnectionSetup {
        connector: connector.clone(),
        config: config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        limits: Limits::default(),
        supplied: Default::default(),
    };
    Environment {
        tenant: tenant.into(),
        store: store.clone(),
        activity: activity.clone(),
        connections: BTreeMap::from([
            (
                src.to_owned(),
                setup(&[
                    ("total", "6"),
                    ("token", SECRET_TOKEN),
                    ("base_url", "http://127.0.0.1:9"),
                ]),
            ),
            (dst.to_owned(), setup(&[("total", "0")])),
        ]),
        quota: TenantQuota::unlimited(tenant),
    }
}

/// A products flow in which SKU-000003 becomes the key `bad`, which the fixture refuses.
fn products() -> FlowDef {
    flow_named("products", "src", "dst")
}

/// Tenant B's flow: its own name and connections, so A's names mean nothing to B.
fn catalog() -> FlowDef {
    flow_named("catalog", "till", "shop")
}

/// Products from `src` to `dst` in which SKU-000003 becomes the key `bad`, which the fixture
/// refuses.
fn flow_named(name: &str, src: &str, dst: &str) -> FlowDef {
    let mut flow: FlowDef = toml::from_str(&format!(
        "description = \"Test products\"\nsource = {{ connection = \"{src}\", stream = \"products\" }}\n\
         target = {{ connection = \"{dst}\", stream = \"products\" }}\ninterval = \"1h\"\npage_size = 4\nbatch_size = 2\n",
    ))
    .expect("valid");
    flow.name = name.into();
    flow.map.push(MapRule {
        to: "key".into(),
        from: Some("key".into()),
        lookup: Some(BTreeMap::from([("SKU-000003".to_owned(), json!("bad"))])),
        ..MapRule::default()
    });
    flow
}

/// Records the flows asked to run.
struct Control(mpsc::UnboundedSender<String>);

impl FlowControl for Control {
    fn run_now(&self, flow: &str) -> bool {
        self.0.send(flow.to_owned()).is_ok()
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    base: String,
    client: reqwest::Client,
    env: Environment,
    runs_a: mpsc::UnboundedReceiver<String>,
    runs_b: mpsc::UnboundedReceiver<String>,
    first: RunSummary,
    first_b: RunSummary,
    cancel: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn exchange(tenant: &str, at: SystemTime, body: &str) -> Exchange {
    Exchange {
        tenant: tenant.into(),
        connection: "src".into(),
        connector: "fixture".into(),
        method: "POST".into(),
        url: "https://till.example/api?email=jan%40example.nl&page=1".into(),
        status: Some(200),
        error: None,
        duration_ms: 12,
        attempt: 1,
        request_headers: vec![("content-type".into(), "application/json".into())],
        request_body: body.into(),
        response_headers: vec![],
        response_body: "{\"ok\":true}".into(),
        request_bytes: body.len() as u64,
        response_bytes: 11,
        at,
    }
}

async fn start() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start(store.clone());
    let connector = fixture().await;
    let env_a = environment("a", &store, &activity, &connector);
    let env_b = environment_named("b", &store, &activity, &connector, "till", "shop");

    let options = RunOptions {
        trigger: "test".into(),
        ..RunOptions::default()
    };
    let first = run_flow(&env_a, &products(), &options).await.expect("run");
    assert_eq!(first.status, RunStatus::Partial, "{first:?}");
    let sink = activity.sink(Some(first.run_id));
    sink.record(exchange(
        "a",
        SystemTime::now(),
        r#"{"customer":{"email":"jan@example.nl","name":"Jan"}}"#,
    ));
    activity.flush().await;
    let first_b = run_flow(&env_b, &catalog(), &options).await.expect("run");
    assert_eq!(first_b.status, RunStatus::Partial, "{first_b:?}");

    let (send_a, runs_a) = mpsc::unbounded_channel();
    let (send_b, runs_b) = mpsc::unbounded_channel();
    let mut tenant_a =
        TenantState::new(env_a.clone(), vec![products()]).with_control(Arc::new(Control(send_a)));
    tenant_a
        .set_webhooks(&WebhooksConfig(
            [
                // The shop's calls, signed as Shopware signs them.
                (
                    "dst".to_owned(),
                    WebhookSource {
                        scheme: Some(WebhookScheme::Shopware),
                        secret: Secret::plain(SHOPWARE_SECRET),
                        flows: Some(vec!["products".into()]),
                        events: vec!["checkout.order.placed".into()],
                        max_age: Some("5m".parse().expect("a duration")),
                    },
                ),
                // A relay for the till, with koppel's scheme; its flows: those reading `src`.
                (
                    "src".to_owned(),
                    WebhookSource {
                        scheme: Some(WebhookScheme::Koppel),
                        secret: Secret::plain(MPLUS_SECRET),
                        flows: None,
                        events: vec![],
                        max_age: None,
                    },
                ),
            ]
            .into(),
        ))
        .expect("webhooks");
    tenant_a
        .set_retention(RetentionConfig {
            mask_fields: vec!["email".into()],
            ..RetentionConfig::default()
        })
        .expect("retention");
    let tenant_b = TenantState::new(env_b, vec![catalog()]).with_control(Arc::new(Control(send_b)));
    let state = ServerState::new();
    assert_eq!(
        state
            .add_tenant(tenant_a, &["token-a".into()])
            .await
            .expect("tenant a"),
        None,
        "a configured token: nothing generated"
    );
    state
        .add_tenant(tenant_b, &["token-b".into()])
        .await
        .expect("tenant b");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    tokio::spawn(serve(listener, Arc::new(state), cancel.clone()));
    Harness {
        _dir: dir,
        base: format!("http://{addr}"),
        client: client_builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        env: env_a,
        runs_a,
        runs_b,
        first,
        first_b,
        cancel,
    }
}

impl Harness {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    async fn post(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(token), None)
            .await
    }

    async fn text(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, String, reqwest::header::HeaderMap) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        (status, response.text().await.expect("text"), headers)
    }
}

#[tokio::test]
async fn the_api_answers_every_route_for_the_tokens_tenant_only() {
    let mut h = start().await;
    let run = h.first.run_id;

    // Health needs no token; everything else does.
    let (status, health) = h.call(reqwest::Method::GET, "/healthz", None, None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let (status, body) = h
        .call(reqwest::Method::GET, "/api/v1/runs", None, None)
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, _) = h.get("/api/v1/runs", "not-a-token").await;
    assert_eq!(status, 401);
    let (status, _) = h.get("/metrics", "nope").await;
    assert_eq!(status, 401);

    // Connections: secrets as set, never their value.
    let (status, connections) = h.get("/api/v1/connections", "token-a").await;
    assert_eq!(status, 200);
    let text = connections.to_string();
    assert!(!text.contains(SECRET_TOKEN), "a secret leaked: {text}");
    let src = &connections[1];
    assert_eq!(src["name"], "src");
    assert_eq!(src["config"]["token"], "<set>");
    assert_eq!(src["config"]["total"], "6");
    assert_eq!(connections[0]["config"]["token"], "<not set>");
    let (status, check) = h.post("/api/v1/connections/src/check", "token-a").await;
    assert_eq!(
        (status, check["ok"].as_bool()),
        (200, Some(true)),
        "{check}"
    );
    let (_, check) = h.post("/api/v1/connections/dst/check", "token-a").await;
    assert_eq!(check["ok"], false, "dst has no base_url: {check}");
    let (status, _) = h.post("/api/v1/connections/nope/check", "token-a").await;
    assert_eq!(status, 404);

    // Flows: health, then enable/disable and interval stored as overrides.
    let (status, flows) = h.get("/api/v1/flows", "token-a").await;
    assert_eq!(status, 200);
    assert_eq!(flows[0]["name"], "products");
    assert_eq!(flows[0]["enabled"], true);
    assert_eq!(flows[0]["interval_secs"], 3600);
    assert_eq!(flows[0]["failed_waiting"], 1);
    assert_eq!(flows[0]["last_run"]["id"], run);
    assert!(flows[0]["lag_secs"].as_i64().is_some());
    assert_eq!(flows.as_array().map(Vec::len), Some(1), "only A's flow");
    let (status, one) = h.get("/api/v1/flows/products", "token-a").await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["name"], "products");
    assert_eq!(one["description"], "Test products");
    assert_eq!(one["source"]["connection"], "src");
    assert_eq!(one["target"]["connection"], "dst");
    assert_eq!(one["configured_interval"], "1h");
    assert_eq!(
        (one["enabled"].as_bool(), one["interval_secs"].as_u64()),
        (Some(true), Some(3600))
    );
    assert_eq!(one["failed_waiting"], 1);
    assert_eq!(one["last_run"]["id"], run);
    assert_eq!(one["last_run"]["status"], "partial");
    assert_eq!(
        one["last_success"]["id"], run,
        "a partial run counts as success"
    );
    assert_eq!(one["stale"], false);
    let (status, _) = h.get("/api/v1/flows/nope", "token-a").await;
    assert_eq!(status, 404);
    let (status, flow) = h
        .call(
            reqwest::Method::PATCH,
            "/api/v1/flows/products",
            Some("token-a"),
            Some(json!({ "enabled": false, "interval": "5m" })),
        )
        .await;
    assert_eq!(status, 200, "{flow}");
    assert_eq!(
        (flow["enabled"].as_bool(), flow["interval_secs"].as_u64()),
        (Some(false), Some(300))
    );
    let stored = h
        .env
        .store
        .flow_override("a", "products")
        .await
        .expect("override");
    assert_eq!(
        (stored.enabled, stored.interval_secs),
        (Some(false), Some(300))
    );
    assert_eq!(
        h.env
            .store
            .flow_override("b", "catalog")
            .await
            .expect("override")
            .enabled,
        None,
        "tenant b's flow is untouched"
    );
    let (status, _) = h
        .call(
            reqwest::Method::PATCH,
            "/api/v1/flows/products",
            Some("token-a"),
            Some(json!({ "interval": "often" })),
        )
        .await;
    assert_eq!(status, 400);
    let (_, flow) = h
        .call(
            reqwest::Method::PATCH,
            "/api/v1/flows/products",
            Some("token-a"),
            Some(json!({ "enabled": null, "interval": null })),
        )
        .await;
    assert_eq!(
        (flow["enabled"].as_bool(), flow["interval_secs"].as_u64()),
        (Some(true), Some(3600))
    );

    let (status, queued) = h.post("/api/v1/flows/products/run", "token-a").await;
    assert_eq!((status, queued["queued"].as_bool()), (202, Some(true)));
    assert_eq!(h.runs_a.recv().await.as_deref(), Some("products"));
    let (status, _) = h.post("/api/v1/flows/nope/run", "token-a").await;
    assert_eq!(status, 404);

    // Runs, a run, its records with filters, a record's history with both payloads.
    let (status, runs) = h.get("/api/v1/runs?flow=products", "token-a").await;
    assert_eq!(status, 200);
    assert_eq!(runs[0]["id"], run);
    assert_eq!(runs[0]["status"], "partial");
    assert_eq!(
        (runs[0]["created"].as_i64(), runs[0]["failed"].as_i64()),
        (Some(5), Some(1))
    );
    assert!(runs[0]["duration_ms"].as_i64().is_some());
    let (status, one) = h.get(&format!("/api/v1/runs/{run}"), "token-a").await;
    assert_eq!(
        (status, one["records_kept"]["created"].as_i64()),
        (200, Some(5))
    );
    let (_, failed_only) = h
        .get(
            &format!("/api/v1/runs/{run}/records?outcome=failed"),
            "token-a",
        )
        .await;
    let records = failed_only["records"].as_array().expect("records");
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["key"], "SKU-000003",
        "failures are filed under the source key"
    );
    assert_eq!(records[0]["message"], "this record is bad");
    let (_, by_key) = h
        .get(&format!("/api/v1/runs/{run}/records?key=0005"), "token-a")
        .await;
    assert_eq!(by_key["records"][0]["key"], "SKU-000005");
    let (_, paged) = h
        .get(
            &format!("/api/v1/runs/{run}/records?limit=2&offset=2"),
            "token-a",
        )
        .await;
    assert_eq!(paged["records"].as_array().map(Vec::len), Some(2));
    let (status, history) = h
        .get("/api/v1/flows/products/records/SKU-000001", "token-a")
        .await;
    assert_eq!(status, 200, "{history}");
    let entry = &history["history"][0];
    assert_eq!(entry["run_id"], run);
    assert_eq!(entry["source"]["Product"]["key"], "SKU-000001", "{entry}");
    assert!(entry["target"].is_object(), "the payload written: {entry}");

    // Activity: list without bodies, one exchange with them, personal fields masked.
    let (status, activity) = h
        .get(&format!("/api/v1/activity?run={run}"), "token-a")
        .await;
    assert_eq!(status, 200);
    let rows = activity["activity"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].get("request_body").is_none());
    assert_eq!(rows[0]["url"], "https://till.example/api?email=***&page=1");
    let id = rows[0]["id"].as_i64().expect("id");
    let (status, entry) = h.get(&format!("/api/v1/activity/{id}"), "token-a").await;
    assert_eq!(status, 200);
    let request = entry["request_body"].as_str().expect("body");
    assert!(
        request.contains("\"email\":\"***\"") && request.contains("Jan"),
        "{request}"
    );

    // Failed records: list, dismiss, retry (which asks for a run).
    let (status, failed) = h.get("/api/v1/failed", "token-a").await;
    assert_eq!(status, 200);
    assert_eq!(failed[0]["key"], "SKU-000003");
    assert_eq!(failed[0]["record"]["Product"]["key"], "SKU-000003");
    let (status, dismissed) = h
        .post("/api/v1/failed/products/SKU-000003/dismiss", "token-a")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        dismissed,
        json!({ "flow": "products", "key": "SKU-000003", "dismissed": true })
    );
    let (_, waiting) = h.get("/api/v1/failed", "token-a").await;
    assert_eq!(waiting.as_array().map(Vec::len), Some(0));
    let (_, all) = h.get("/api/v1/failed?dismissed=true", "token-a").await;
    assert_eq!(all[0]["dismissed"], true);
    let (status, retried) = h
        .post("/api/v1/failed/products/SKU-000003/retry", "token-a")
        .await;
    assert_eq!(
        (status, retried["run_started"].as_bool()),
        (202, Some(true))
    );
    assert_eq!(h.runs_a.recv().await.as_deref(), Some("products"));
    let (_, waiting) = h.get("/api/v1/failed", "token-a").await;
    assert_eq!(
        (
            waiting[0]["attempts"].as_i64(),
            waiting[0]["dismissed"].as_bool()
        ),
        (Some(0), Some(false))
    );
    let (status, _) = h
        .post("/api/v1/failed/products/nope/retry", "token-a")
        .await;
    assert_eq!(status, 404);

    let (status, incidents) = h.get("/api/v1/incidents?open=true", "token-a").await;
    assert_eq!((status, incidents.as_array().map(Vec::len)), (200, Some(0)));
    let opened = h
        .env
        .store
        .open_incident(
            "a",
            "products",
            "records-failing",
            "SKU-000003 keeps failing",
            Some(run),
        )
        .await
        .expect("incident")
        .expect("opened");
    h.env
        .store
        .add_notification("a", opened.id, "opened", "webhook", None)
        .await
        .expect("notification");
    let (status, incidents) = h.get("/api/v1/incidents?open=true", "token-a").await;
    assert_eq!(status, 200);
    assert_eq!(incidents.as_array().map(Vec::len), Some(1), "{incidents}");
    assert_eq!(incidents[0]["id"], opened.id);
    assert_eq!(incidents[0]["kind"], "records-failing");
    assert_eq!(incidents[0]["message"], "SKU-000003 keeps failing");
    assert_eq!(incidents[0]["run_id"], run);
    assert_eq!(incidents[0]["notifications"][0]["channel"], "webhook");
    assert_eq!(incidents[0]["notifications"][0]["ok"], true);
    let (status, retention) = h.get("/api/v1/retention", "token-a").await;
    assert_eq!(
        (status, retention["keep_secs"].as_u64()),
        (200, Some(14 * 86_400))
    );

    // Metrics for the token's tenant.
    let (status, metrics) = h.get("/metrics", "token-a").await;
    assert_eq!(status, 200);
    let metrics = metrics.as_str().expect("text").to_owned();
    for line in [
        "koppel_runs_total{tenant=\"a\",flow=\"products\",status=\"partial\"} 1",
        "koppel_records_total{tenant=\"a\",flow=\"products\",outcome=\"created\"} 5",
        "koppel_records_total{tenant=\"a\",flow=\"products\",outcome=\"failed\"} 1",
        "koppel_http_exchanges_total{tenant=\"a\",connector=\"fixture\",status=\"200\"} 1",
        "koppel_failed_records{tenant=\"a\",flow=\"products\"} 1",
        "koppel_run_lag_seconds{tenant=\"a\",flow=\"products\"}",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    let (_, metrics_b) = h.get("/metrics", "token-b").await;
    assert!(!metrics_b.as_str().unwrap_or("").contains("tenant=\"a\""));
}

/// What tenant A has that a request could change: its schedule setting, failed records,
/// runs, activity, incidents, record history and id map.
async fn state_of_a(h: &Harness) -> Value {
    let store = &h.env.store;
    json!({
        "override": store.flow_override("a", "products").await.expect("override"),
        "failed": store.failed_records("a", None, true).await.expect("failed"),
        "runs": store.runs("a", None, 1000).await.expect("runs"),
        "activity": store.activity("a", None, 1000).await.expect("activity").len(),
        "incidents": store.incidents("a", false, 1000).await.expect("incidents"),
        "history": store.record_history("a", "products", "SKU-000001", 100).await.expect("history").len(),
    })
}

#[tokio::test]
async fn every_route_refuses_another_tenant_and_a_missing_token_and_changes_nothing() {
    use reqwest::Method;
    let mut h = start().await;
    let run = h.first.run_id;
    let (_, activity) = h
        .get(&format!("/api/v1/activity?run={run}"), "token-a")
        .await;
    let exchange = activity["activity"][0]["id"]
        .as_i64()
        .expect("A has an exchange");
    h.env
        .store
        .open_incident("a", "products", "flow-failed", "A's incident", Some(run))
        .await
        .expect("incident")
        .expect("opened");
    let before = state_of_a(&h).await;
    assert_eq!(before["incidents"][0]["message"], "A's incident");
    assert_eq!(before["failed"][0]["key"], "SKU-000003", "{before}");
    assert_eq!(before["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(before["activity"], 1);

    // Every route under /api/v1 (as api::routes lists them), pointed at tenant A's objects.
    // The last field: whether the path names one of A's objects (B's token gets 404) or a
    // list (B's token gets B's rows).
    let every_route: Vec<(Method, String, Option<Value>, bool)> = vec![
        (Method::GET, "/api/v1/connections".into(), None, false),
        (
            Method::POST,
            "/api/v1/connections/src/check".into(),
            None,
            true,
        ),
        (Method::GET, "/api/v1/flows".into(), None, false),
        (Method::GET, "/api/v1/flows/products".into(), None, true),
        (
            Method::PATCH,
            "/api/v1/flows/products".into(),
            Some(json!({ "enabled": false, "interval": "5m" })),
            true,
        ),
        (
            Method::POST,
            "/api/v1/flows/products/run".into(),
            None,
            true,
        ),
        (
            Method::GET,
            "/api/v1/flows/products/records/SKU-000001".into(),
            None,
            true,
        ),
        (Method::GET, "/api/v1/runs".into(), None, false),
        (Method::GET, format!("/api/v1/runs/{run}"), None, true),
        (
            Method::GET,
            format!("/api/v1/runs/{run}/records"),
            None,
            true,
        ),
        (Method::GET, "/api/v1/activity".into(), None, false),
        (
            Method::GET,
            format!("/api/v1/activity/{exchange}"),
            None,
            true,
        ),
        (
            Method::GET,
            "/api/v1/failed?dismissed=true".into(),
            None,
            false,
        ),
        (
            Method::POST,
            "/api/v1/failed/products/SKU-000003/retry".into(),
            None,
            true,
        ),
        (
            Method::POST,
            "/api/v1/failed/products/SKU-000003/dismiss".into(),
            None,
            true,
        ),
        (Method::GET, "/api/v1/incidents".into(), None, false),
        (Method::GET, "/api/v1/retention".into(), None, false),
    ];
    assert_eq!(every_route.len(), 17);

    // Without a token, with a wrong one, with a malformed header: 401, for every route.
    for (method, path, body, _) in &every_route {
        for token in [None, Some("not-a-token"), Some(""), Some("token-ab")] {
            let (status, answer) = h.call(method.clone(), path, token, body.clone()).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}: {answer}");
            assert!(answer["error"].is_string(), "{answer}");
        }
    }
    assert_eq!(state_of_a(&h).await, before, "refused calls change nothing");
    assert!(h.runs_a.try_recv().is_err(), "and start nothing");

    // Tenant B's token on A's objects: 404, as if they did not exist.
    for (method, path, body, addressed) in &every_route {
        if !addressed {
            continue;
        }
        let (status, answer) = h
            .call(method.clone(), path, Some("token-b"), body.clone())
            .await;
        assert_eq!(status, 404, "tenant B on {method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    // Lists with B's token hold only B's rows.
    let (status, connections) = h.get("/api/v1/connections", "token-b").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = connections
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["shop", "till"]);
    let (_, flows) = h.get("/api/v1/flows", "token-b").await;
    assert_eq!(flows.as_array().map(Vec::len), Some(1));
    assert_eq!(flows[0]["name"], "catalog");
    assert_eq!(flows[0]["last_run"]["id"], h.first_b.run_id);
    let (_, runs) = h.get("/api/v1/runs", "token-b").await;
    let ids: Vec<i64> = runs
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect();
    assert_eq!(ids, [h.first_b.run_id]);
    let (_, activity) = h.get("/api/v1/activity", "token-b").await;
    assert!(
        activity["activity"]
            .as_array()
            .expect("list")
            .iter()
            .all(|row| row["id"] != exchange),
        "{activity}"
    );
    let (_, failed) = h.get("/api/v1/failed?dismissed=true", "token-b").await;
    let failed: Vec<(&str, &str)> = failed
        .as_array()
        .expect("list")
        .iter()
        .map(|f| {
            (
                f["flow"].as_str().unwrap_or(""),
                f["key"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(failed, [("catalog", "SKU-000003")]);
    let (status, incidents) = h.get("/api/v1/incidents", "token-b").await;
    assert_eq!((status, incidents.as_array().map(Vec::len)), (200, Some(0)));
    let (status, retention) = h.get("/api/v1/retention", "token-b").await;
    assert_eq!(
        (status, retention["keep_secs"].as_u64()),
        (200, Some(14 * 86_400))
    );
    assert_eq!(retention["mask_fields"], json!([]), "B's settings, not A's");
    let (_, metrics_b) = h.get("/metrics", "token-b").await;
    assert!(!metrics_b.as_str().unwrap_or("").contains("tenant=\"a\""));

    // B's own objects answer B, and what B changes is B's alone.
    let (status, retried) = h
        .post("/api/v1/failed/catalog/SKU-000003/retry", "token-b")
        .await;
    assert_eq!(
        (status, retried["run_started"].as_bool()),
        (202, Some(true))
    );
    assert_eq!(h.runs_b.recv().await.as_deref(), Some("catalog"));
    let (status, flow) = h
        .call(
            Method::PATCH,
            "/api/v1/flows/catalog",
            Some("token-b"),
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!((status, flow["enabled"].as_bool()), (200, Some(false)));
    let (status, _) = h.post("/api/v1/flows/catalog/run", "token-b").await;
    assert_eq!(status, 202);
    assert_eq!(h.runs_b.recv().await.as_deref(), Some("catalog"));
    let (status, check) = h.post("/api/v1/connections/till/check", "token-b").await;
    assert_eq!((status, check["connection"].as_str()), (200, Some("till")));
    let (status, _) = h
        .post("/api/v1/failed/catalog/SKU-000003/dismiss", "token-b")
        .await;
    assert_eq!(status, 200);

    assert_eq!(state_of_a(&h).await, before, "tenant A is as it was");
    assert!(h.runs_a.try_recv().is_err(), "no run of A was asked for");
}

fn shopware_body(timestamp: i64, event_id: &str) -> String {
    json!({
        "data": { "payload": [{ "entity": "order", "operation": "insert", "primaryKey": "0189bf2a" }],
                  "event": "checkout.order.placed" },
        "source": { "url": "https://shop.example", "appVersion": "1.0.0", "shopId": "abc", "eventId": event_id },
        "timestamp": timestamp
    })
    .to_string()
}

fn hex_hmac(secret: &str, body: &str) -> String {
    koppel::signature::hmac_hex(secret.as_bytes(), &[body.as_bytes()])
}

#[tokio::test]
async fn webhooks_start_the_flow_only_when_signed_and_fresh() {
    let mut h = start().await;
    let url = format!("{}/webhooks/a/dst", h.base);
    let now = now_ms() / 1000;
    let send = |body: String, signature: Option<String>| {
        let mut request = h.client.post(&url).body(body);
        if let Some(signature) = signature {
            request = request.header("shopware-shop-signature", signature);
        }
        request.send()
    };

    let body = shopware_body(now, "e1");
    let response = send(body.clone(), Some(hex_hmac(SHOPWARE_SECRET, &body)))
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(h.runs_a.recv().await.as_deref(), Some("products"));

    let replay = send(body.clone(), Some(hex_hmac(SHOPWARE_SECRET, &body)))
        .await
        .expect("send");
    assert_eq!(replay.status().as_u16(), 200, "a replay is answered");
    let wrong = send(shopware_body(now, "e2"), Some(hex_hmac("other", &body)))
        .await
        .expect("send");
    assert_eq!(wrong.status().as_u16(), 401);
    let missing = send(shopware_body(now, "e3"), None).await.expect("send");
    assert_eq!(missing.status().as_u16(), 401);
    let old = shopware_body(now - 3600, "e4");
    let stale = send(old.clone(), Some(hex_hmac(SHOPWARE_SECRET, &old)))
        .await
        .expect("send");
    assert_eq!(stale.status().as_u16(), 401);
    assert!(stale.text().await.unwrap_or_default().contains("stale"));
    let other_event = json!({"data": {"event": "product.written"}, "source": {"eventId": "e5"}, "timestamp": now}).to_string();
    let ignored = send(
        other_event.clone(),
        Some(hex_hmac(SHOPWARE_SECRET, &other_event)),
    )
    .await
    .expect("send");
    assert_eq!(ignored.status().as_u16(), 200);
    assert!(
        h.runs_a.try_recv().is_err(),
        "refused, replayed and unhandled calls start nothing"
    );
    let unknown = h
        .client
        .post(format!("{}/webhooks/b/shop", h.base))
        .body(body.clone())
        .header("shopware-shop-signature", hex_hmac(SHOPWARE_SECRET, &body))
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status().as_u16(), 404, "tenant b has no webhook");

    // MplusKASSA: koppel's timestamped scheme.
    let url = format!("{}/webhooks/a/src", h.base);
    let body = r#"{"event":"stock.changed","articleNumbers":[1001]}"#;
    let post = |ts: i64, signature: Option<String>| {
        let mut request = h.client.post(&url).body(body);
        request = request.header("x-koppel-timestamp", ts.to_string());
        if let Some(signature) = signature {
            request = request.header("x-koppel-signature", signature);
        }
        request.send()
    };
    let ok = post(
        now,
        Some(koppel_signature(
            MPLUS_SECRET.as_bytes(),
            now,
            body.as_bytes(),
        )),
    )
    .await
    .expect("send");
    assert_eq!(ok.status().as_u16(), 202);
    assert_eq!(h.runs_a.recv().await.as_deref(), Some("products"));
    let bad = post(now, Some(koppel_signature(b"wrong", now, body.as_bytes())))
        .await
        .expect("send");
    assert_eq!(bad.status().as_u16(), 401);
    let unsigned = post(now, None).await.expect("send");
    assert_eq!(unsigned.status().as_u16(), 401);
    let then = now - 600;
    let stale = post(
        then,
        Some(koppel_signature(
            MPLUS_SECRET.as_bytes(),
            then,
            body.as_bytes(),
        )),
    )
    .await
    .expect("send");
    assert_eq!(stale.status().as_u16(), 401);
    assert!(h.runs_a.try_recv().is_err(), "nothing started");

    // A disabled flow is not started by a webhook.
    h.env
        .store
        .set_flow_override(
            "a",
            "products",
            koppel::store::FlowOverrideRow {
                enabled: Some(false),
                interval_secs: None,
            },
        )
        .await
        .expect("override");
    let next = now + 1;
    let response = post(
        next,
        Some(koppel_signature(
            MPLUS_SECRET.as_bytes(),
            next,
            body.as_bytes(),
        )),
    )
    .await
    .expect("send");
    assert_eq!(response.status().as_u16(), 202);
    assert!(h.runs_a.try_recv().is_err());
}

/// Asks for runs only while open, as a schedule that is starting or stopping refuses them.
struct Gate {
    open: std::sync::atomic::AtomicBool,
    asked: mpsc::UnboundedSender<String>,
}

impl FlowControl for Gate {
    fn run_now(&self, flow: &str) -> bool {
        self.open.load(std::sync::atomic::Ordering::SeqCst)
            && self.asked.send(flow.to_owned()).is_ok()
    }
}

/// Shopware sends a webhook again with the same `source.eventId` (and a new timestamp) when
/// the first delivery failed: after a 503 that retry must start the flow, not be taken for a
/// replay.
#[tokio::test]
async fn a_retry_after_a_503_starts_the_flow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start(store.clone());
    let env = environment("a", &store, &activity, &fixture().await);
    let (asked, mut runs) = mpsc::unbounded_channel();
    let gate = Arc::new(Gate {
        open: std::sync::atomic::AtomicBool::new(false),
        asked,
    });
    let mut tenant = TenantState::new(env, vec![products()]).with_control(gate.clone());
    tenant
        .set_webhooks(&WebhooksConfig(
            [(
                "dst".to_owned(),
                WebhookSource {
                    scheme: Some(WebhookScheme::Shopware),
                    secret: Secret::plain(SHOPWARE_SECRET),
                    flows: Some(vec!["products".into()]),
                    events: vec![],
                    max_age: None,
                },
            )]
            .into(),
        ))
        .expect("webhooks");
    let state = ServerState::new();
    state
        .add_tenant(tenant, &["t".into()])
        .await
        .expect("tenant");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    tokio::spawn(serve(listener, Arc::new(state), cancel.clone()));
    let client = client_builder().no_proxy().build().expect("client");
    let send = || {
        let body = shopware_body(now_ms() / 1000, "event-1");
        client
            .post(format!("http://{addr}/webhooks/a/dst"))
            .header("shopware-shop-signature", hex_hmac(SHOPWARE_SECRET, &body))
            .body(body)
            .send()
    };

    // The schedule takes no requests (koppel is starting or stopping): 503, nothing asked.
    let first = send().await.expect("send");
    assert_eq!(first.status().as_u16(), 503, "the flow could not be asked");
    assert!(runs.try_recv().is_err());

    // Shopware's retry: the same event id, a new timestamp. It starts the flow.
    gate.open.store(true, std::sync::atomic::Ordering::SeqCst);
    let retry = send().await.expect("send");
    assert_eq!(
        retry.status().as_u16(),
        202,
        "the retry is no duplicate: {:?}",
        retry.text().await
    );
    assert_eq!(runs.recv().await.as_deref(), Some("products"));

    // Once accepted, the same event again is a replay.
    let replay = send().await.expect("send");
    assert_eq!(replay.status().as_u16(), 200);
    let answer: Value = serde_json::from_str(&replay.text().await.expect("body")).expect("json");
    assert_eq!(answer["duplicate"], true, "{answer}");
    assert!(runs.try_recv().is_err(), "a replay asks for nothing");
    cancel.cancel();
}

#[tokio::test]
async fn a_signed_webhook_runs_the_flow_through_the_scheduler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start(store.clone());
    let env = environment("a", &store, &activity, &fixture().await);
    let cancel = CancellationToken::new();
    let scheduler = Arc::new(Scheduler::start(
        env.clone(),
        vec![products()],
        cancel.clone(),
        None,
    ));
    let mut finished = scheduler.subscribe();
    let first = finished.recv().await.expect("first run");
    assert_eq!(first.flow, "products");

    let mut tenant = TenantState::new(env, vec![products()]).with_control(scheduler.clone());
    tenant
        .set_webhooks(&WebhooksConfig(
            [(
                "dst".to_owned(),
                WebhookSource {
                    scheme: Some(WebhookScheme::Shopware),
                    secret: Secret::plain(SHOPWARE_SECRET),
                    flows: Some(vec!["products".into()]),
                    events: vec![],
                    max_age: None,
                },
            )]
            .into(),
        ))
        .expect("webhooks");
    let state = ServerState::new();
    state
        .add_tenant(tenant, &["t".into()])
        .await
        .expect("tenant");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, Arc::new(state), cancel.clone()));

    let body = shopware_body(now_ms() / 1000, "order-1");
    let client = client_builder().no_proxy().build().expect("client");
    let started = std::time::Instant::now();
    let response = client
        .post(format!("http://{addr}/webhooks/a/dst"))
        .header("shopware-shop-signature", hex_hmac(SHOPWARE_SECRET, &body))
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 202);
    let second = tokio::time::timeout(Duration::from_secs(10), finished.recv())
        .await
        .expect("a run within 10 s")
        .expect("summary");
    assert_eq!(second.flow, "products");
    assert!(second.run_id > first.run_id);
    let runs = store.runs("a", Some("products"), 10).await.expect("runs");
    assert_eq!(runs[0].trigger, "webhook", "the run says what started it");
    eprintln!("webhook → run finished in {:?}", started.elapsed());
    cancel.cancel();
    if let Ok(scheduler) = Arc::try_unwrap(scheduler) {
        scheduler.stop().await;
    }
}

/// Asks for runs from inside a run (as a burst of webhooks would during one), and notes after
/// every batch whether another run of the flow is queued.
#[derive(Default)]
struct Burst {
    scheduler: std::sync::OnceLock<std::sync::Weak<Scheduler>>,
    requests: std::sync::atomic::AtomicUsize,
    queued: std::sync::Mutex<Vec<bool>>,
}

impl koppel::flow::Progress for Burst {
    fn update(&self, flow: &str, _counts: &koppel::store::Counts) {
        let Some(scheduler) = self.scheduler.get().and_then(std::sync::Weak::upgrade) else {
            return;
        };
        let n = self.requests.swap(0, std::sync::atomic::Ordering::SeqCst);
        for _ in 0..n {
            assert!(scheduler.run_now(flow, "webhook"), "accepted");
        }
        self.queued
            .lock()
            .expect("lock")
            .push(scheduler.is_queued(flow));
    }
}

#[tokio::test]
async fn run_now_requests_during_a_run_merge_into_one_follow_up_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start(store.clone());
    let env = environment("a", &store, &activity, &fixture().await);
    let burst = Arc::new(Burst::default());
    // A hundred requests arrive while the first (scheduled) run goes on.
    burst
        .requests
        .store(100, std::sync::atomic::Ordering::SeqCst);
    let cancel = CancellationToken::new();
    let scheduler = Arc::new(Scheduler::start(
        env.clone(),
        vec![products()],
        cancel.clone(),
        Some(burst.clone() as Arc<dyn koppel::flow::Progress>),
    ));
    // The flow's task runs only when this test yields: the hook is in place before the run.
    burst
        .scheduler
        .set(Arc::downgrade(&scheduler))
        .expect("set once");
    let mut finished = scheduler.subscribe();
    let first = finished.recv().await.expect("the scheduled run");
    let second = finished.recv().await.expect("the follow-up run");
    assert!(second.run_id > first.run_id);
    let queued = burst.queued.lock().expect("lock").clone();
    // During the first run: one run queued; during the follow-up: none behind it.
    let during_first = queued.iter().take_while(|q| **q).count();
    assert!(during_first >= 1, "{queued:?}");
    assert!(
        queued.len() > during_first && queued[during_first..].iter().all(|q| !q),
        "the follow-up run took all hundred requests: {queued:?}"
    );
    assert!(!scheduler.is_queued("products"));

    // Later requests start a run again; one for a flow not scheduled here is refused.
    assert!(scheduler.run_now("products", "manual"));
    let third = finished.recv().await.expect("a run on request");
    assert!(third.run_id > second.run_id);
    assert!(!scheduler.run_now("nope", "manual"));
    cancel.cancel();
    if let Ok(scheduler) = Arc::try_unwrap(scheduler) {
        scheduler.stop().await;
    }
    let runs = store.runs("a", Some("products"), 1000).await.expect("runs");
    let triggers: Vec<&str> = runs.iter().rev().map(|r| r.trigger.as_str()).collect();
    assert_eq!(
        triggers,
        ["schedule", "webhook", "manual"],
        "three runs, not 102"
    );
}

#[tokio::test]
async fn the_dashboard_renders_pages_for_the_cookies_tenant() {
    let h = start().await;
    let run = h.first.run_id;
    let (status, _, headers) = h.text("/", &[]).await;
    assert_eq!(status, 303, "no cookie: to the login page");
    assert_eq!(
        headers.get("location").and_then(|v| v.to_str().ok()),
        Some("/login")
    );
    let (status, login, _) = h.text("/login", &[]).await;
    assert_eq!(status, 200);
    assert!(login.contains("name=\"token\""));

    let bad = h
        .client
        .post(format!("{}/login", h.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status().as_u16(), 401);
    let good = h
        .client
        .post(format!("{}/login", h.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=token-a")
        .send()
        .await
        .expect("send");
    assert_eq!(good.status().as_u16(), 303);
    let cookie = good
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("cookie")
        .to_owned();
    assert_eq!(cookie, "koppel_token=token-a");
    assert!(
        good.headers()["set-cookie"]
            .to_str()
            .unwrap_or("")
            .contains("HttpOnly")
    );
    let with = [("cookie", cookie.as_str())];

    let (status, overview, _) = h.text("/", &with).await;
    assert_eq!(status, 200);
    assert!(overview.contains("<td><b>products</b>"), "{overview}");
    assert!(overview.contains(&format!("href=\"/runs/{run}\"")));
    assert!(overview.contains("Run now"));
    assert!(
        overview.contains("href=\"/failed?flow=products\">1</a>"),
        "one failure waiting"
    );

    let (status, run_page, _) = h.text(&format!("/runs/{run}?outcome=failed"), &with).await;
    assert_eq!(status, 200);
    assert!(run_page.contains("this record is bad"));
    assert!(!run_page.contains("SKU-000001"), "filtered to failures");

    let (status, record, _) = h.text("/records/products/SKU-000002", &with).await;
    assert_eq!(status, 200);
    assert!(record.contains("<pre class=\"source\">"), "{record}");
    assert!(record.contains("<pre class=\"target\">"));
    assert!(record.contains("SKU-000002"));
    assert!(record.contains("Read from src") && record.contains("Written to dst"));

    let (status, failed, _) = h.text("/failed", &with).await;
    assert_eq!(status, 200);
    assert!(failed.contains("data-post=\"/api/v1/failed/products/SKU-000003/retry\""));

    let (status, connections, _) = h.text("/connections", &with).await;
    assert_eq!(status, 200);
    assert!(connections.contains("Test connection"));
    assert!(connections.contains("&lt;set&gt;"));
    assert!(!connections.contains(SECRET_TOKEN), "a secret leaked");

    let (status, activity, _) = h.text("/activity", &with).await;
    assert_eq!(status, 200);
    assert!(activity.contains("email=***"), "{activity}");
    let (status, script, _) = h.text("/assets/koppel.js", &[]).await;
    assert_eq!(status, 200);
    assert!(script.contains("x-koppel-csrf"));

    // Changes with the cookie need the CSRF header; with it, they work.
    let url = format!("{}/api/v1/flows/products/run", h.base);
    let forged = h
        .client
        .post(&url)
        .header("cookie", &cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(forged.status().as_u16(), 403);
    let real = h
        .client
        .post(&url)
        .header("cookie", &cookie)
        .header("x-koppel-csrf", "1")
        .send()
        .await
        .expect("send");
    assert_eq!(real.status().as_u16(), 202);

    // Tenant B's cookie does not open A's run.
    let (status, _, _) = h
        .text(
            &format!("/runs/{run}"),
            &[("cookie", "koppel_token=token-b")],
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn retention_purges_old_payloads_and_keeps_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start(store.clone());
    let env = environment("a", &store, &activity, &fixture().await);
    let options = RunOptions {
        trigger: "test".into(),
        ..RunOptions::default()
    };
    let old = run_flow(&env, &products(), &options).await.expect("run");
    assert!(
        store
            .dismiss_failed("a", "products", "SKU-000003")
            .await
            .expect("dismiss")
    );
    let old_run = store
        .run("a", old.run_id)
        .await
        .expect("run")
        .expect("found");
    let cutoff = old_run.finished_at.expect("finished") + 1;
    while now_ms() <= cutoff {
        tokio::task::yield_now().await;
    }
    let mut other = products();
    other.name = "other".into();
    let recent = run_flow(&env, &other, &options).await.expect("run");
    let sink = activity.sink(Some(old.run_id));
    let long_ago = SystemTime::now() - Duration::from_secs(30 * 86_400);
    sink.record(exchange("a", long_ago, r#"{"email":"old@example.nl"}"#));
    sink.record(exchange(
        "a",
        SystemTime::now(),
        r#"{"email":"new@example.nl"}"#,
    ));
    activity.flush().await;

    let counts = store.purge("a", cutoff).await.expect("purge");
    assert_eq!(counts.activity_rows, 1, "{counts:?}");
    assert_eq!(counts.record_rows, 6, "the old run's records: {counts:?}");
    assert_eq!(counts.failed_rows, 1, "the dismissed failed record");

    let history = store
        .record_history("a", "products", "SKU-000001", 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].run_id, old.run_id);
    assert!(
        history[0].source.is_none() && history[0].target.is_none(),
        "payloads purged"
    );
    assert_eq!(history[0].outcome, "created", "the outcome stays");
    let old_after = store
        .run("a", old.run_id)
        .await
        .expect("run")
        .expect("found");
    assert_eq!(
        (old_after.created, old_after.failed),
        (5, 1),
        "the counts stay"
    );
    let rows = store.activity("a", None, 10).await.expect("activity");
    let purged = rows
        .iter()
        .find(|r| r.request_body.is_none())
        .expect("purged row");
    assert_eq!(purged.url, "https://till.example/api?(purged)");
    assert_eq!(purged.status, Some(200), "status and timing stay");
    let kept = rows
        .iter()
        .find(|r| r.request_body.is_some())
        .expect("kept row");
    assert!(
        kept.request_body
            .as_deref()
            .unwrap_or("")
            .contains("new@example.nl")
    );
    let recent_rows = store
        .run_records("a", recent.run_id, None, 100)
        .await
        .expect("records");
    assert!(
        recent_rows.iter().all(|r| r.source.is_some()),
        "newer payloads stay"
    );
    assert_eq!(
        store.purges("a", 5).await.expect("purges")[0].counts,
        counts
    );

    let again = store.purge("a", cutoff).await.expect("purge");
    assert_eq!(again, Default::default(), "nothing left to purge");

    // What was purged is gone from the files too (secure_delete, checkpointed WAL).
    assert_not_on_disk(dir.path(), "old@example.nl");
}

/// Fails when `needle` is in the database file or its write-ahead log.
fn assert_not_on_disk(dir: &std::path::Path, needle: &str) {
    for file in ["koppel.db", "koppel.db-wal"] {
        let Ok(bytes) = std::fs::read(dir.join(file)) else {
            continue;
        };
        assert!(
            !bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes()),
            "{needle} is still in {file}"
        );
    }
}

#[tokio::test]
async fn masked_fields_never_reach_the_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start_masked(store.clone(), Masker::new(&["email".into()]));
    let sink = activity.sink(None);
    let mut sent = exchange(
        "a",
        SystemTime::now(),
        r#"{"email":"jan@example.nl","n":1}"#,
    );
    sent.response_body = "<ns:relation><ns:email>jan@example.nl</ns:email></ns:relation>".into();
    sink.record(sent);
    activity.flush().await;
    let rows = store.activity("a", None, 10).await.expect("activity");
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].url, "https://till.example/api?email=***&page=1",
        "query parameter masked"
    );
    assert_eq!(
        rows[0].request_body.as_deref(),
        Some(r#"{"email":"***","n":1}"#)
    );
    assert_eq!(
        rows[0].response_body.as_deref(),
        Some("<ns:relation><ns:email>***</ns:email></ns:relation>")
    );
    assert_not_on_disk(dir.path(), "jan@example.nl");
    assert_not_on_disk(dir.path(), "jan%40example.nl");
}

#[tokio::test]
async fn a_token_is_generated_once_and_stored_only_as_a_hash() {
    let store = Store::open_in_memory().await.expect("store");
    let activity = ActivityWriter::start(store.clone());
    let env = environment("solo", &store, &activity, &fixture().await);
    let state = ServerState::new();
    let token = state
        .add_tenant(TenantState::new(env.clone(), vec![]), &[])
        .await
        .expect("tenant")
        .expect("generated");
    assert!(token.starts_with("kpl_") && token.len() == 52, "{token}");
    assert!(state.tenant_of_token(&token).is_some());
    let hashes = store.token_hashes("solo").await.expect("hashes");
    assert_eq!(hashes, vec![koppel::store::token_hash(&token)]);
    let again = ServerState::new();
    assert_eq!(
        again
            .add_tenant(TenantState::new(env, vec![]), &[])
            .await
            .expect("tenant"),
        None,
        "the stored token is used at the next start"
    );
    assert!(again.tenant_of_token(&token).is_some());
}

#[tokio::test]
async fn the_setup_wizard_tests_connections_and_writes_a_config_that_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("koppel.toml");
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    // Both connections use the fixture (fields base_url, token, total, misbehave).
    let answers = [
        "shop-1",                 // tenant
        "",                       // till: the connector (the only one offered)
        "not a url",              // till: base_url
        "",                       // till: token
        "",                       // till: total
        "",                       // till: misbehave
        "y",                      // the test fails: enter again
        "http://127.0.0.1:9",     // till: base_url
        "till-secret",            // till: token
        "5",                      // till: total
        "",                       // till: misbehave
        "nope",                   // shop: a connector that is not offered
        "fixture",                // shop: the connector
        "http://127.0.0.1:9",     // shop: base_url
        "env:KOPPEL_WIZARD_TEST", // shop: token
        "",                       // shop: total
        "",                       // shop: misbehave
        "y",                      // products
        "30m",                    // interval
        "n",                      // stock
        "n",                      // orders
        "n",                      // order-status
        "",                       // listen
        "",                       // no webhook
        "",                       // no e-mail
    ]
    .join("\n")
        + "\n";
    let mut output = Vec::new();
    let fixture = koppel_test_support::fixture(&runtime).await;
    koppel::cli::init::init_wizard(&path, &[fixture], answers.as_bytes(), &mut output)
        .await
        .expect("wizard");
    let shown = String::from_utf8_lossy(&output);
    assert!(
        shown.contains(
            "Connector for `till` (its flows use products, stock, orders, order-status) [fixture]"
        ),
        "{shown}"
    );
    assert!(
        shown.contains("`nope` is not one of the connectors above."),
        "{shown}"
    );
    assert!(shown.contains("The connection test failed"), "{shown}");
    assert!(shown.contains("The connection works."), "{shown}");
    let text = std::fs::read_to_string(&path).expect("written");
    assert!(text.contains("tenant = \"shop-1\""), "{text}");
    assert!(text.contains("env = \"KOPPEL_WIZARD_TEST\""), "{text}");
    assert!(text.contains("interval = \"30m\""), "{text}");
    assert!(!text.contains("[flows.stock]"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read it");
    }
}

#[tokio::test]
async fn start_serves_the_tenant_of_a_koppel_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fixture = koppel::connectors::test_guest("fixture").expect("built");
    let path = dir.path().join("koppel.toml");
    std::fs::write(
        &path,
        format!(
            r#"tenant = "cfg"
[connections.src]
connector = "{fixture}"
config = {{ total = 3 }}
[connections.dst]
connector = "{fixture}"
[flows.mine]
source = {{ connection = "src", stream = "products" }}
target = {{ connection = "dst", stream = "products" }}
interval = "1h"
[server]
listen = "127.0.0.1:0"
[notify]
record_attempts = 2
[retention]
keep = "7d"
mask_fields = ["email"]
[webhooks.src]
scheme = "koppel"
secret = "abc"
flows = ["mine"]
"#,
            fixture = fixture.display()
        ),
    )
    .expect("write");
    let loaded = koppel::flow::Loaded::read(&path).expect("loads");
    let store = Store::open(&loaded.database()).await.expect("store");
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let env = loaded
        .environment(&runtime, store.clone(), ActivityWriter::start(store))
        .await
        .expect("environment");
    let (_finished, runs) = tokio::sync::broadcast::channel(16);
    let cancel = CancellationToken::new();
    let started = koppel::server::start(&loaded, env, None, runs, cancel.clone())
        .await
        .expect("started");
    let token = started
        .generated_token
        .clone()
        .expect("a token at the first start");
    let base = format!("http://{}", started.addr);
    let client = client_builder().no_proxy().build().expect("client");
    let flows: Value = serde_json::from_slice(
        &client
            .get(format!("{base}/api/v1/flows"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send")
            .bytes()
            .await
            .expect("body"),
    )
    .expect("JSON");
    assert_eq!(flows[0]["name"], "mine");
    let retention: Value = serde_json::from_slice(
        &client
            .get(format!("{base}/api/v1/retention"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("send")
            .bytes()
            .await
            .expect("body"),
    )
    .expect("JSON");
    assert_eq!(retention["keep_secs"], 7 * 86_400);
    assert_eq!(retention["mask_fields"][0], "email");
    let now = now_ms() / 1000;
    let response = client
        .post(format!("{base}/webhooks/cfg/src"))
        .header("x-koppel-timestamp", now.to_string())
        .header("x-koppel-signature", koppel_signature(b"abc", now, b"{}"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(
        response.status().as_u16(),
        503,
        "signed, but no schedule runs here"
    );
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), started.wait())
        .await
        .expect("everything stops");
}

use koppel_test_support::client_builder;

/// Webhooks are keyed by connection: a key that is no connection (the old `shopware`), a
/// missing scheme, and a flow that is not enabled are refused naming the key; without
/// `flows` a webhook runs the flows that read from its connection.
#[tokio::test]
async fn webhook_tables_name_a_connection_and_a_scheme() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start(store.clone());
    let env = environment("a", &store, &activity, &fixture().await);
    let source = |scheme: Option<WebhookScheme>, flows: Option<Vec<String>>| WebhookSource {
        scheme,
        secret: Secret::plain("s"),
        flows,
        events: vec![],
        max_age: None,
    };
    let set = |name: &str, source: WebhookSource| {
        let mut tenant = TenantState::new(env.clone(), vec![products()]);
        tenant
            .set_webhooks(&WebhooksConfig([(name.to_owned(), source)].into()))
            .map(|()| tenant.webhooks[name].flows.clone())
            .map_err(|e| e.to_string())
    };
    let error = set("shopware", source(Some(WebhookScheme::Shopware), None))
        .expect_err("no such connection");
    assert!(error.contains("webhooks.shopware"), "{error}");
    assert!(
        error.contains(
            "write [webhooks.<the connection the calls are about>] with scheme = \"shopware\""
        ),
        "{error}"
    );
    let error = set("dst", source(None, None)).expect_err("no scheme");
    assert!(error.contains("webhooks.dst.scheme"), "{error}");
    let error = set(
        "src",
        source(Some(WebhookScheme::Koppel), Some(vec!["stock".into()])),
    )
    .expect_err("not enabled");
    assert!(
        error.contains("webhooks.src.flows") && error.contains("`stock` is not enabled"),
        "{error}"
    );
    let error =
        set("dst", source(Some(WebhookScheme::Shopware), None)).expect_err("nothing reads dst");
    assert!(
        error.contains("no enabled flow reads from `dst`"),
        "{error}"
    );
    assert_eq!(
        set("src", source(Some(WebhookScheme::Koppel), None)),
        Ok(vec!["products".to_owned()]),
        "the flows reading from `src`"
    );
}
