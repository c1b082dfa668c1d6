//! A real browser drives the dashboard: headless Chromium through chromedriver (Debian's
//! `chromium` and `chromium-driver`), speaking WebDriver over HTTP. After a run of the
//! fixture flow it logs in, opens the overview, opens a run, opens a record and sees the
//! payloads read and written, and retries a failed record. Screenshots go to
//! `target/tmp/screenshots/`. Without chromedriver the test says so and passes, unless
//! `KOPPEL_REQUIRE_BROWSER=1`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use koppel::flow::definition::FlowDef;
use koppel::flow::{ConnectionSetup, Environment, RunOptions, run_flow};
use koppel::mapping::MapRule;
use koppel::runtime::{Limits, Runtime, RuntimeOptions};
use koppel::server::{FlowControl, ServerState, TenantState, serve};
use koppel::store::{ActivityWriter, RunStatus, Store};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

struct Control(mpsc::UnboundedSender<String>);

impl FlowControl for Control {
    fn run_now(&self, flow: &str) -> bool {
        self.0.send(flow.to_owned()).is_ok()
    }
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

#[tokio::test]
async fn a_browser_opens_a_run_a_record_and_retries_a_failure() {
    let Some(driver_path) = find_program(&["chromedriver"]) else {
        assert!(
            std::env::var("KOPPEL_REQUIRE_BROWSER").is_err(),
            "chromedriver is required: apt-get install chromium chromium-driver"
        );
        eprintln!("skipped: no chromedriver (apt-get install chromium chromium-driver)");
        return;
    };
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);

    // State: one run of the fixture flow, with SKU-000003 failing.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("koppel.db"))
        .await
        .expect("store");
    let activity = ActivityWriter::start(store.clone());
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let connector = runtime
        .load_file(koppel::connectors::test_guest("fixture").expect("built"))
        .await
        .expect("load");
    let setup = |total: &str| ConnectionSetup {
        connector: connector.clone(),
        config: BTreeMap::from([("total".to_owned(), total.to_owned())]),
        limits: Limits::default(),
    };
    let env = Environment {
        tenant: "demo".into(),
        store: store.clone(),
        activity,
        connections: BTreeMap::from([
            ("src".to_owned(), setup("6")),
            ("dst".to_owned(), setup("0")),
        ]),
    };
    let mut flow: FlowDef = toml::from_str(
        "description = \"Products from the till\"\nsource = { connection = \"src\", stream = \"products\" }\ntarget = { connection = \"dst\", stream = \"products\" }\n",
    )
    .expect("valid");
    flow.name = "products".into();
    flow.map.push(MapRule {
        to: "key".into(),
        from: Some("key".into()),
        lookup: Some(BTreeMap::from([("SKU-000003".to_owned(), json!("bad"))])),
        ..MapRule::default()
    });
    let run = run_flow(
        &env,
        &flow,
        &RunOptions {
            trigger: "demo".into(),
            ..RunOptions::default()
        },
    )
    .await
    .expect("run");
    assert_eq!(run.status, RunStatus::Partial);

    let (send, mut runs) = mpsc::unbounded_channel();
    let mut state = ServerState::new();
    state
        .add_tenant(
            TenantState::new(env, vec![flow]).with_control(Arc::new(Control(send))),
            &["browser-token".into()],
        )
        .await
        .expect("tenant");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let cancel = CancellationToken::new();
    tokio::spawn(serve(listener, Arc::new(state), cancel.clone()));
    let base = format!("http://{addr}");

    let driver = start_driver(&driver_path).await;
    let http = client_builder().no_proxy().build().expect("client");
    let mut chrome_options = json!({
        "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,1000", "--disable-quic", "--no-first-run",
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

    // Log in; the overview lists the flow and its run.
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
    assert!(flows.contains("products"), "{flows}");
    browser.shot("overview").await;

    // A run and its records.
    browser
        .click(&format!("#runs a[href='/runs/{}']", run.run_id))
        .await;
    let records = browser.text("#records").await;
    assert!(
        records.contains("SKU-000001") && records.contains("this record is bad"),
        "{records}"
    );
    browser.shot("run").await;

    // A record: the payload read and the payload written, side by side.
    browser
        .click("#records a[href='/records/products/SKU-000001']")
        .await;
    let read = browser.text("pre.source").await;
    let written = browser.text("pre.target").await;
    assert!(read.contains("\"key\": \"SKU-000001\""), "{read}");
    assert!(written.contains("SKU-000001"), "{written}");
    browser.shot("record").await;

    // The failed-records queue: Retry asks for a run of the flow.
    browser.go(&format!("{base}/failed")).await;
    browser.shot("failed").await;
    browser
        .click("tr[data-key='SKU-000003'] button[data-post$='/retry']")
        .await;
    let requested = tokio::time::timeout(Duration::from_secs(10), runs.recv())
        .await
        .expect("the retry asks for a run");
    assert_eq!(requested.as_deref(), Some("products"));
    let waiting = store
        .failed_records("demo", Some("products"), false)
        .await
        .expect("failed");
    assert_eq!(
        waiting[0].attempts, 0,
        "back in the queue with a fresh count"
    );

    browser.call(reqwest::Method::DELETE, "", None).await;
    cancel.cancel();
}

/// A reqwest client builder. In this workspace reqwest's TLS comes without a crypto provider
/// (the host installs ring's), so whoever builds a client first installs it.
fn client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}
