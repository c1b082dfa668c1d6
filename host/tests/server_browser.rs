//! A real browser drives the dashboard: headless Chromium through chromedriver (Debian's
//! `chromium` and `chromium-driver`), speaking WebDriver over HTTP. After a demo run (the
//! simulated MplusKASSA and Shopware with the shipped connectors, as `koppel demo` does it)
//! and an order that fails for real (an article the till does not know), it logs in, opens
//! the overview, opens a run, opens a record and sees the payloads read and written side by
//! side, and retries the failed order once the till has the article: the scheduler runs the
//! orders flow and the order reaches the till. Screenshots go to `target/tmp/screenshots/`.
//! Without chromedriver the test says so and passes, unless `KOPPEL_REQUIRE_BROWSER=1`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use koppel::flow::schedule::Scheduler;
use koppel::flow::{RunOptions, run_flow};
use koppel::server::{ServerState, TenantState, serve};
use koppel::store::{FlowOverrideRow, RunStatus};
use koppel_sim_mplus::{NewArticle, NewProduct};
use koppel_sim_shopware::{OrderCustomer, OrderLine, StorefrontOrder};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Browser {
    http: reqwest::Client,
    session: String,
    shots: PathBuf,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.expect("webdriver");
        let value: Value = response.json_value().await;
        if value["value"]["error"].is_string() {
            panic!("webdriver {path}: {}", value["value"]);
        }
        value["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT].as_str().expect("element id").to_owned()
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Where an element is on the page: (x, y, width, height).
    async fn rect(&self, css: &str) -> (f64, f64, f64, f64) {
        let id = self.find(css).await;
        let r = self
            .call(reqwest::Method::GET, &format!("/element/{id}/rect"), None)
            .await;
        let n = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        (n("x"), n("y"), n("width"), n("height"))
    }

    async fn shot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .expect("base64");
        std::fs::write(self.shots.join(format!("{name}.png")), bytes).expect("screenshot");
    }
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let bytes = self.bytes().await.expect("body");
        serde_json::from_slice(&bytes).expect("JSON")
    }
}

async fn start_driver(driver: &Path) -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let http = client_builder().no_proxy().build().expect("client");
    // chromedriver has no readiness signal but its status endpoint: ask until it answers.
    for _ in 0..200 {
        if let Ok(response) = http.get(format!("{}/status", driver.base)).send().await
            && response.json_value().await["value"]["ready"] == true
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("chromedriver did not become ready");
}

/// The till does not know this article; the shop sells it.
const UNKNOWN_ARTICLE: i64 = 990_001;

#[tokio::test]
async fn after_a_demo_run_a_browser_opens_a_run_a_record_and_retries_a_failed_order() {
    let Some(driver_path) = find_program(&["chromedriver"]) else {
        assert!(
            std::env::var("KOPPEL_REQUIRE_BROWSER").is_err(),
            "chromedriver is required: apt-get install chromium chromium-driver"
        );
        eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
        return;
    };
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);

    // State: the demo (both simulators, the shipped connectors, all four flows, two rounds).
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = koppel::cli::demo::run(koppel::cli::demo::Options {
        dir: dir.path().to_owned(),
        products: 80,
        quiet: true,
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
    })
    .await
    .expect("the demo runs");
    let tenant = demo.env.tenant.clone();
    let store = demo.env.store.clone();
    assert!(
        demo.report
            .runs
            .iter()
            .all(|r| r.status == RunStatus::Succeeded),
        "{:#?}",
        demo.report.runs
    );
    let products_run = demo.report.runs[0].run_id;

    // Then the shop sells an article the till does not know (entered in the shop by hand, at
    // 21% VAT), and a customer pays for it: the order fails.
    let sku = UNKNOWN_ARTICLE.to_string();
    let customer = OrderCustomer::private("noor@example.nl", "Noor", "Visser", "NL");
    demo.shop
        .place_order(&StorefrontOrder {
            create_missing_products: true,
            ..StorefrontOrder::new(customer.clone(), vec![OrderLine::new(&sku, 1)])
        })
        .expect("the shop has the article now (this order stays unpaid)");
    let shop = &demo.shop;
    let tax_21 = shop
        .products()
        .iter()
        .filter_map(|p| p.get("taxId").and_then(Value::as_str).map(str::to_owned))
        .find(|id| {
            shop.entity("tax", id, json!({}))
                .and_then(|t| t.get("taxRate").and_then(Value::as_f64))
                == Some(21.0)
        })
        .expect("a product at 21%");
    shop.edit_product_field(&sku, "taxId", json!(tax_21))
        .expect("21% VAT");
    let placed = shop
        .place_order(&StorefrontOrder {
            paid: true,
            payment_method: "payment_prepayment".into(),
            ..StorefrontOrder::new(customer, vec![OrderLine::new(&sku, 1)])
        })
        .expect("order placed");
    let orders = demo.loaded.flow("orders").expect("orders flow").clone();
    let failing = run_flow(
        &demo.env,
        &orders,
        &RunOptions {
            trigger: "schedule".into(),
            ..RunOptions::default()
        },
    )
    .await
    .expect("run");
    assert_eq!(
        (failing.status, failing.counts.failed),
        (RunStatus::Partial, 1),
        "{failing:#?}"
    );
    let waiting = store
        .failed_records(&tenant, Some("orders"), false)
        .await
        .expect("failed");
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    let failed_key = waiting[0].key.clone();
    assert!(
        waiting[0].error.contains(&UNKNOWN_ARTICLE.to_string()),
        "{:?}",
        waiting[0].error
    );
    assert!(demo.mplus.order_by_ext_id(&placed.order_number).is_none());

    // `koppel run` for the orders flow: the real scheduler (on a long interval, so that only
    // the retry below runs it again) behind the dashboard.
    store
        .set_flow_override(
            &tenant,
            "orders",
            FlowOverrideRow {
                enabled: None,
                interval_secs: Some(3600),
            },
        )
        .await
        .expect("override");
    let cancel = CancellationToken::new();
    let scheduler = Arc::new(Scheduler::start(
        demo.env.clone(),
        vec![orders],
        cancel.clone(),
        None,
    ));
    let mut finished = scheduler.subscribe();
    let first = finished.recv().await.expect("the first scheduled run");
    assert_eq!(
        first.counts.created, 0,
        "the till lacks the article: {first:#?}"
    );
    let state = ServerState::new();
    state
        .add_tenant(
            TenantState::from_loaded(&demo.loaded, demo.env.clone())
                .expect("tenant")
                .with_control(scheduler.clone()),
            &["browser-token".into()],
        )
        .await
        .expect("tenant");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, Arc::new(state), cancel.clone()));
    let base = format!("http://{addr}");

    let driver = start_driver(&driver_path).await;
    let http = client_builder().no_proxy().build().expect("client");
    let mut chrome_options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1400,1000", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    });
    if let Some(binary) = chromium {
        chrome_options["binary"] = json!(binary);
    }
    let created = http
        .post(format!("{}/session", driver.base))
        .body(
            json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome", "goog:chromeOptions": chrome_options } } })
            .to_string(),
        )
        .send()
        .await
        .expect("session")
        .json_value()
        .await;
    let session = created["value"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {created}"))
        .to_owned();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&shots).expect("screenshots folder");
    let browser = Browser {
        http: http.clone(),
        session: format!("{}/session/{session}", driver.base),
        shots,
    };
    browser
        .call(
            reqwest::Method::POST,
            "/timeouts",
            Some(json!({ "implicit": 5000, "pageLoad": 10000 })),
        )
        .await;

    // Log in; the overview lists the four flows, their runs, and the failure waiting.
    browser.go(&format!("{base}/")).await;
    let id = browser.find("input[name=token]").await;
    browser
        .call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": "browser-token" })),
        )
        .await;
    browser.click("form button").await;
    let flows = browser.text("#flows").await;
    for flow in ["products", "stock", "orders", "order-status"] {
        assert!(flows.contains(flow), "{flow} missing: {flows}");
    }
    let waiting_cell = browser
        .text("#flows tr[data-flow='orders'] a[href='/failed?flow=orders']")
        .await;
    assert_eq!(waiting_cell, "1", "one failed order waits");
    browser.shot("overview").await;

    // The demo's first products run and its records.
    let created_records = store
        .run_records(&tenant, products_run, Some("created"), 1)
        .await
        .expect("records");
    let product = created_records[0].key.clone();
    browser
        .click(&format!("#runs a[href='/runs/{products_run}']"))
        .await;
    let records = browser.text("#records").await;
    assert!(records.contains("created"), "{records}");
    browser.shot("run").await;
    // Filtered to one product.
    browser
        .go(&format!(
            "{base}/runs/{products_run}?key={}",
            url_segment(&product)
        ))
        .await;
    let records = browser.text("#records").await;
    assert!(records.contains(&product), "{product}: {records}");

    // A product: what was read from the till and what was written to the shop, side by side.
    browser
        .click(&format!(
            "#records a[href='/records/products/{}']",
            url_segment(&product)
        ))
        .await;
    let read = browser.text("pre.source").await;
    let written = browser.text("pre.target").await;
    let history = store
        .record_history(&tenant, "products", &product, 10)
        .await
        .expect("history");
    let source: Value =
        serde_json::from_str(history[0].source.as_deref().expect("read")).expect("JSON");
    let target: Value =
        serde_json::from_str(history[0].target.as_deref().expect("written")).expect("JSON");
    for (shown, payload) in [(&read, &source), (&written, &target)] {
        for text in leaf_texts(payload).iter().take(20) {
            assert!(
                shown.contains(text.as_str()),
                "{text:?} not shown in\n{shown}"
            );
        }
    }
    let (source_x, source_y, source_w, _) = browser.rect("pre.source").await;
    let (target_x, target_y, _, _) = browser.rect("pre.target").await;
    assert!(
        target_x >= source_x + source_w && (target_y - source_y).abs() < 1.0,
        "side by side: source at ({source_x}, {source_y}), target at ({target_x}, {target_y})"
    );
    browser.shot("record").await;
    // Exactly what was sent: the requests that carried the product, down to the body.
    let sent = browser.text("p.sent").await;
    assert!(
        sent.contains("POST") && sent.contains("/api/_action/sync"),
        "the sync request that wrote it is linked: {sent}"
    );
    browser.click("p.sent a:last-of-type").await;
    let exchange = browser.text("body").await;
    assert!(
        exchange.contains("_action/sync") && exchange.contains(&format!("\"{product}\"")),
        "the request body names {product}: {exchange}"
    );

    // The failed-records queue names the reason. The till gets the article; Retry runs the
    // orders flow through the scheduler, and the order reaches the till.
    browser.go(&format!("{base}/failed")).await;
    let row = format!("tr[data-key='{failed_key}']");
    let reason = browser.text(&row).await;
    assert!(
        reason.contains(&UNKNOWN_ARTICLE.to_string()),
        "the reason is shown: {reason}"
    );
    browser.shot("failed").await;
    demo.mplus
        .add_product(NewProduct {
            number: UNKNOWN_ARTICLE,
            description: "Linnen schort".into(),
            articles: vec![NewArticle {
                number: UNKNOWN_ARTICLE,
                description: "Linnen schort".into(),
                price_incl: 2495,
                ..NewArticle::default()
            }],
            ..NewProduct::default()
        })
        .expect("the till gets the article");
    browser
        .click(&format!("{row} button[data-post$='/retry']"))
        .await;
    let retried = tokio::time::timeout(Duration::from_secs(60), finished.recv())
        .await
        .expect("the retry runs the flow")
        .expect("summary");
    assert_eq!(
        (
            retried.status,
            retried.counts.created,
            retried.counts.failed
        ),
        (RunStatus::Succeeded, 1, 0),
        "{retried:#?}"
    );
    let in_till = demo
        .mplus
        .order_by_ext_id(&placed.order_number)
        .expect("the order is in the till");
    assert!(
        in_till
            .lines
            .iter()
            .any(|l| l.article_number == UNKNOWN_ARTICLE),
        "{in_till:?}"
    );
    let runs = store.runs(&tenant, Some("orders"), 1).await.expect("runs");
    assert_eq!(runs[0].id, retried.run_id);
    assert_eq!(runs[0].trigger, "manual", "the dashboard asked for it");
    browser.go(&format!("{base}/failed")).await;
    let queue = browser.text("main").await;
    assert!(queue.contains("No failed records."), "{queue}");
    browser.shot("retried").await;

    // The order's history: failed twice, then created, with what was sent to the till.
    browser
        .go(&format!(
            "{base}/records/orders/{}",
            url_segment(&failed_key)
        ))
        .await;
    let page = browser.text("main").await;
    assert!(
        page.contains("failed") && page.contains("created"),
        "{page}"
    );
    // Read from the shop under its id; written to the till under its number (the flow's
    // mapping), side by side.
    let read = browser.text("pre.source").await;
    let written = browser.text("pre.target").await;
    assert!(
        read.contains(&format!("\"key\": \"{}\"", placed.id)),
        "{read}"
    );
    assert!(
        written.contains(&format!("\"key\": \"{}\"", placed.order_number)),
        "{written}"
    );
    browser.shot("order").await;

    browser.call(reqwest::Method::DELETE, "", None).await;
    cancel.cancel();
    if let Ok(scheduler) = Arc::try_unwrap(scheduler) {
        scheduler.stop().await;
    }
}

/// A path segment as the dashboard writes it in links.
fn url_segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The strings and numbers in a payload, as they appear in its pretty-printed JSON.
fn leaf_texts(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => stack.extend(map.values()),
            Value::Array(items) => stack.extend(items),
            Value::String(s) if !s.is_empty() && s.len() < 60 && !s.contains('\n') => {
                out.push(serde_json::to_string(s).unwrap_or_default())
            }
            Value::Number(n) => out.push(n.to_string()),
            _ => {}
        }
    }
    out
}

use koppel_test_support::client_builder;
