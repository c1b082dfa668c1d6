//! Figures for the dashboard (issue 7): the overview's and the API's response times with
//! 1,000,000 activity rows, and the time from a signed webhook to a finished run of the
//! fixture flow through the real scheduler (median over 100 calls).
//!
//! Run: `cargo bench -p koppel --bench dashboard`

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use koppel::flow::definition::FlowDef;
use koppel::flow::{ConnectionSetup, Environment, RunOptions, run_flow};
use koppel::runtime::Limits;
use koppel::server::{ServerState, TenantState, serve};
use koppel::store::{ActivityWriter, Store};
use tokio_util::sync::CancellationToken;

const ROWS: i64 = 1_000_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        overview_with_a_million_activity_rows().await;
        webhook_to_finished_run_latency().await;
    });
}

/// Tenant `a` with fixture connections `src` (`total` products) and `dst`.
async fn fixture_env(store: &Store, total: &str) -> Environment {
    let connector =
        koppel_test_support::fixture(&koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR")))
            .await;
    let setup = |total: &str| ConnectionSetup {
        connector: connector.clone(),
        config: BTreeMap::from([("total".to_owned(), total.to_owned())]),
        limits: Limits::default(),
        supplied: Default::default(),
    };
    Environment {
        tenant: "a".into(),
        store: store.clone(),
        activity: ActivityWriter::start(store.clone()),
        connections: BTreeMap::from([
            ("src".to_owned(), setup(total)),
            ("dst".to_owned(), setup("0")),
        ]),
        quota: koppel::runtime::TenantQuota::unlimited("a"),
    }
}

async fn overview_with_a_million_activity_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("koppel.db");
    let store = Store::open(&path).await.expect("store");
    let env = fixture_env(&store, "100").await;
    let mut flows = Vec::new();
    for name in ["products", "stock", "orders", "order-status"] {
        let mut flow: FlowDef = toml::from_str(
            "source = { connection = \"src\", stream = \"products\" }\ntarget = { connection = \"dst\", stream = \"products\" }\n",
        )
        .expect("valid");
        flow.name = name.into();
        for _ in 0..3 {
            run_flow(
                &env,
                &flow,
                &RunOptions {
                    full: true,
                    trigger: "test".into(),
                    ..RunOptions::default()
                },
            )
            .await
            .expect("run");
        }
        flows.push(flow);
    }

    let started = Instant::now();
    let options =
        sqlx::sqlite::SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .expect("options");
    let pool = sqlx::SqlitePool::connect_with(options).await.expect("pool");
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
         INSERT INTO activity (tenant, run_id, connection, connector, method, url, status, error, duration_ms,
           attempt, request_headers, request_body, response_headers, response_body, request_bytes, response_bytes, at)
         SELECT 'a', 1 + i % 12, 'src', 'fixture', 'POST', 'https://till.example/api/' || i, 200 + (i % 7 = 0) * 300,
           NULL, i % 250, 1, '[]', '{\"email\":\"x@example.nl\",\"n\":' || i || '}', '[]', '{\"ok\":true}', 40, 11,
           1767225600000 + i * 100 FROM n",
    )
    .bind(ROWS)
    .execute(&pool)
    .await
    .expect("insert");
    // What the activity writer keeps as it writes (rows inserted by hand bypass it).
    sqlx::query(
        "INSERT INTO activity_counts (tenant, connector, status, exchanges)
         SELECT tenant, connector, COALESCE(status, 0), COUNT(*) FROM activity WHERE true
         GROUP BY tenant, connector, COALESCE(status, 0)
         ON CONFLICT (tenant, connector, status) DO UPDATE SET exchanges = excluded.exchanges",
    )
    .execute(&pool)
    .await
    .expect("counts");
    pool.close().await;
    eprintln!("inserted {ROWS} activity rows in {:?}", started.elapsed());

    let state = ServerState::new();
    state
        .add_tenant(TenantState::new(env, flows), &["t".into()])
        .await
        .expect("tenant");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    tokio::spawn(serve(listener, Arc::new(state), cancel.clone()));
    let client = client_builder().no_proxy().build().expect("client");
    for path in [
        "/",
        "/api/v1/flows",
        "/activity",
        "/api/v1/activity?errors=true",
        "/metrics",
    ] {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..21 {
            let t = Instant::now();
            let response = client
                .get(format!("http://{addr}{path}"))
                .header("cookie", "koppel_token=t")
                .send()
                .await
                .expect("send");
            assert_eq!(response.status().as_u16(), 200, "{path}");
            let _ = response.bytes().await.expect("body");
            times.push(t.elapsed());
        }
        times.sort();
        eprintln!("{path}: median {:?}, max {:?}", times[10], times[20]);
    }
    cancel.cancel();
}

async fn webhook_to_finished_run_latency() {
    use koppel::config::{Secret, WebhookScheme, WebhookSource, WebhooksConfig};
    use koppel::flow::schedule::Scheduler;

    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let env = fixture_env(&store, "10").await;
    let mut flow: FlowDef = toml::from_str(
        "source = { connection = \"src\", stream = \"products\" }\ntarget = { connection = \"dst\", stream = \"products\" }\ninterval = \"1h\"\n",
    )
    .expect("valid");
    flow.name = "orders".into();
    let cancel = CancellationToken::new();
    let scheduler = Arc::new(Scheduler::start(
        env.clone(),
        vec![flow.clone()],
        cancel.clone(),
        None,
    ));
    let mut finished = scheduler.subscribe();
    finished.recv().await.expect("first run");
    let mut tenant = TenantState::new(env, vec![flow]).with_control(scheduler.clone());
    tenant
        .set_webhooks(&WebhooksConfig(
            [(
                "src".to_owned(),
                WebhookSource {
                    scheme: Some(WebhookScheme::Shopware),
                    secret: Secret::plain("s"),
                    flows: None,
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
    let client = client_builder().no_proxy().build().expect("client");
    let mut times = Vec::new();
    for i in 0..100 {
        let body = serde_json::json!({
            "data": { "event": "checkout.order.placed", "payload": [] },
            "source": { "eventId": format!("e{i}") },
            "timestamp": koppel::store::now_ms() / 1000
        })
        .to_string();
        let signature = koppel::signature::hmac_hex(b"s", &[body.as_bytes()]);
        let t = Instant::now();
        let response = client
            .post(format!("http://{addr}/webhooks/a/src"))
            .header("shopware-shop-signature", signature)
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status().as_u16(), 202);
        finished.recv().await.expect("run");
        times.push(t.elapsed());
    }
    times.sort();
    eprintln!(
        "webhook → run finished (fixture flow): median {:?}, p90 {:?}, max {:?}",
        times[50], times[90], times[99]
    );
    cancel.cancel();
}

use koppel_test_support::client_builder;
