//! Hosting many tenants in one process: tenant files added, changed, broken and removed
//! while another tenant runs, and the operator API (create, update, pause, resume, delete,
//! tokens, health) with its token boundary. Each koppel here is the real one (`App::serve`
//! on 127.0.0.1, the fixture connector in its sandbox); the tests read the folder with
//! `Hosting::reload` and wait for runs on the hosting's own signal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use koppel::app::{App, Serving};
use koppel::flow::RunSummary;
use koppel::hosting::Hosting;
use koppel::store::RunStatus;
use koppel_test_support::hosting::HostingDir;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::broadcast;

const OPERATOR: &str = "operator-token-0123456789";

/// A tenant file: the fixture's `total` products copied from `src` to `dst` by flow
/// `copy`, opened by `token`.
fn tenant_file(total: u32, token: &str) -> String {
    koppel_test_support::hosting::fixture_tenant(
        &format!("total = {total}"),
        "",
        &format!("[server]\ntokens = [\"{token}\"]\n"),
    )
}

struct Host {
    dir: HostingDir,
    tenants: PathBuf,
    serving: Serving,
    hosting: Arc<Hosting>,
    runs: broadcast::Receiver<(String, RunSummary)>,
    http: reqwest::Client,
    base: String,
    app: Option<App>,
}

/// An operator's koppel with an empty tenants folder, read again only when a test says.
async fn host() -> Host {
    let dir = HostingDir::new(&format!("operator_tokens = [\"{OPERATOR}\"]"));
    let runtime = koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"));
    let (app, serving) = koppel_test_support::hosting::serve(&dir.file, &runtime).await;
    let hosting = serving.hosting.clone().expect("hosting is on");
    let runs = hosting.subscribe_runs();
    let base = format!("http://{}", serving.server.addr);
    Host {
        tenants: dir.tenants.clone(),
        dir,
        serving,
        hosting,
        runs,
        http: koppel_test_support::client_builder()
            .build()
            .expect("client"),
        base,
        app: Some(app),
    }
}

impl Host {
    fn write(&self, tenant: &str, text: &str) {
        self.dir.tenant(tenant, text);
    }

    /// The next finished run of `tenant` (others' are passed over).
    async fn next_run(&mut self, tenant: &str) -> RunSummary {
        let wait = async {
            loop {
                match self.runs.recv().await {
                    Ok((t, summary)) if t == tenant => return summary,
                    Ok(_) => continue,
                    Err(error) => panic!("the hosting's runs ended: {error}"),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("no run of tenant {tenant} within 60 s"))
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<String>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/toml")
                .body(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// `PUT /api/v1/admin/tenants/{tenant}` with `text`, as the operator.
    async fn put_tenant(&self, tenant: &str, text: &str) -> (StatusCode, Value) {
        self.send(
            reqwest::Method::PUT,
            &format!("/api/v1/admin/tenants/{tenant}"),
            OPERATOR,
            Some(text.to_owned()),
        )
        .await
    }

    async fn run_now(&self, token: &str) -> StatusCode {
        self.send(reqwest::Method::POST, "/api/v1/flows/copy/run", token, None)
            .await
            .0
    }

    async fn stop(mut self) {
        self.serving.stop().await;
        if let Some(app) = self.app.take() {
            app.close().await;
        }
    }
}

/// A run that succeeded, having read `read` records (from its cursor on) and created them.
fn succeeded(summary: &RunSummary, read: u64) {
    assert_eq!(summary.status, RunStatus::Succeeded, "{summary:?}");
    assert_eq!(summary.counts.read, read, "{summary:?}");
    assert_eq!(summary.counts.created, read, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_files_come_change_break_and_go_while_another_tenant_runs() {
    let mut host = host().await;

    host.write("shop-a", &tenant_file(40, "token-a-000001"));
    let report = host.hosting.reload().await;
    assert_eq!(report.started, ["shop-a"]);
    succeeded(&host.next_run("shop-a").await, 40);
    let a = host.serving.server.state.tenant("shop-a").expect("served");

    // Added: starts, its first run copies its 30, its token opens its flows.
    host.write("shop-b", &tenant_file(30, "token-b-000001"));
    let report = host.hosting.reload().await;
    assert_eq!(report.started, ["shop-b"], "{report:?}");
    assert!(report.restarted.is_empty() && report.stopped.is_empty());
    succeeded(&host.next_run("shop-b").await, 30);
    let (status, flows) = host.get("/api/v1/flows", "token-b-000001").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(flows[0]["name"], "copy");
    // Tenant A runs on meanwhile.
    assert_eq!(host.run_now("token-a-000001").await, StatusCode::ACCEPTED);
    succeeded(&host.next_run("shop-a").await, 0);

    // Changed: restarts with the new config (10 more products: its cursor kept), A untouched.
    host.write("shop-b", &tenant_file(40, "token-b-000001"));
    let report = host.hosting.reload().await;
    assert_eq!(report.restarted, ["shop-b"], "{report:?}");
    assert!(report.started.is_empty() && report.stopped.is_empty());
    succeeded(&host.next_run("shop-b").await, 10);
    // Unchanged files are not touched again.
    assert!(host.hosting.reload().await.is_empty());

    // Broken: refused naming the file and the key; the version before keeps running.
    host.write(
        "shop-b",
        &format!("{}colour = 1\n", tenant_file(40, "token-b-000001")),
    );
    let report = host.hosting.reload().await;
    assert_eq!(report.refused.len(), 1, "{report:?}");
    let (tenant, why) = &report.refused[0];
    assert_eq!(tenant, "shop-b");
    assert!(
        why.contains("shop-b.toml") && why.contains("unknown field `colour`"),
        "{why}"
    );
    assert_eq!(host.run_now("token-b-000001").await, StatusCode::ACCEPTED);
    succeeded(&host.next_run("shop-b").await, 0);
    let (_, listed) = host.get("/api/v1/admin/tenants/shop-b", OPERATOR).await;
    assert_eq!(listed["state"], "running");
    assert!(
        listed["problem"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("colour")),
        "{listed}"
    );
    assert_eq!(listed["healthy"], false, "a refused file is not healthy");

    // A file that is not a tenant name is refused; nothing else moves.
    host.write("shop c", &tenant_file(1, "token-c-000001"));
    let report = host.hosting.reload().await;
    assert!(
        report
            .refused
            .iter()
            .any(|(t, why)| t == "shop c" && why.contains("(file name)")),
        "{report:?}"
    );
    std::fs::remove_file(host.tenants.join("shop c.toml")).expect("remove");

    // Removed: stops; its token opens nothing; A still runs.
    std::fs::remove_file(host.tenants.join("shop-b.toml")).expect("remove");
    let report = host.hosting.reload().await;
    assert_eq!(report.stopped, ["shop-b"], "{report:?}");
    let (status, _) = host.get("/api/v1/flows", "token-b-000001").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(host.run_now("token-a-000001").await, StatusCode::ACCEPTED);
    succeeded(&host.next_run("shop-a").await, 0);

    // A was never restarted: the same tenant state served it throughout.
    let now = host.serving.server.state.tenant("shop-a").expect("served");
    assert!(Arc::ptr_eq(&a, &now), "tenant A was restarted");
    // The operator's own tenant is served beside them.
    let (status, _) = host.get("/api/v1/flows", "own-token-0001").await;
    assert_eq!(status, StatusCode::OK);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_creates_pauses_and_deletes_tenants_and_refuses_tenant_tokens() {
    use reqwest::Method;
    let mut host = host().await;
    let admin = "/api/v1/admin/tenants";

    // No token, a wrong one.
    let response = host
        .http
        .get(format!("{}{admin}", host.base))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = host.get(admin, "not-a-token-at-all").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Created: 201, the file written, the tenant running its flow.
    let text = tenant_file(25, "token-c-000001");
    let (status, body) = host.put_tenant("shop-c", &text).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["outcome"], "created");
    assert_eq!(
        std::fs::read_to_string(host.tenants.join("shop-c.toml")).expect("file"),
        text
    );
    succeeded(&host.next_run("shop-c").await, 25);
    // The folder agrees: reading it again changes nothing.
    assert!(host.hosting.reload().await.is_empty());

    // A tenant's token does not open the operator API; the operator's opens no tenant.
    let (status, body) = host.get(admin, "token-c-000001").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("tenant's token"))
    );
    let (status, body) = host.get("/api/v1/flows", OPERATOR).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("operator API")),
        "{body}"
    );

    // Listed with its health.
    let (status, list) = host.get(admin, OPERATOR).await;
    assert_eq!(status, StatusCode::OK);
    let c = list
        .as_array()
        .and_then(|l| l.iter().find(|t| t["tenant"] == "shop-c"))
        .expect("listed");
    assert_eq!(c["state"], "running");
    assert_eq!(c["healthy"], true, "{c}");
    assert_eq!(c["flows"][0]["name"], "copy");
    assert_eq!(c["flows"][0]["last_status"], "succeeded");

    // The same text again: unchanged; a new one: updated and in effect.
    let (status, body) = host.put_tenant("shop-c", &text).await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (StatusCode::OK, "unchanged".into())
    );
    let (status, body) = host
        .put_tenant("shop-c", &tenant_file(35, "token-c-000001"))
        .await;
    assert_eq!(
        (status, body["outcome"].clone()),
        (StatusCode::OK, "updated".into())
    );
    succeeded(&host.next_run("shop-c").await, 10);

    // A broken text is refused naming the key, and nothing is written.
    let (status, body) = host.put_tenant("shop-c", "database = \"mine.db\"\n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("database") && error.contains("operator's setting"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(host.tenants.join("shop-c.toml")).expect("file"),
        tenant_file(35, "token-c-000001")
    );
    let (status, _) = host.put_tenant("bad%20name", &text).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A token issued by the operator opens the tenant (and only the tenant).
    let (status, body) = host
        .send(
            Method::POST,
            &format!("{admin}/shop-c/tokens"),
            OPERATOR,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let issued = body["token"].as_str().expect("token").to_owned();
    assert_eq!(host.get("/api/v1/flows", &issued).await.0, StatusCode::OK);
    assert_eq!(host.get(admin, &issued).await.0, StatusCode::FORBIDDEN);

    // Paused: no runs (run-now refused), the dashboard still answers; resumed: runs again.
    let (status, _) = host
        .send(
            Method::POST,
            &format!("{admin}/shop-c/pause"),
            OPERATOR,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        host.get(&format!("{admin}/shop-c"), OPERATOR).await.1["state"],
        "paused"
    );
    let (status, body) = host
        .send(Method::POST, "/api/v1/flows/copy/run", &issued, None)
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("paused")),
        "{body}"
    );
    assert_eq!(host.get("/api/v1/flows", &issued).await.0, StatusCode::OK);
    let (status, _) = host
        .send(
            Method::POST,
            &format!("{admin}/shop-c/resume"),
            OPERATOR,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The schedule's first run after resuming.
    succeeded(&host.next_run("shop-c").await, 0);

    // Deleted: 204, the file gone, its tokens open nothing.
    let (status, _) = host
        .send(Method::DELETE, &format!("{admin}/shop-c"), OPERATOR, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!host.tenants.join("shop-c.toml").exists());
    assert_eq!(
        host.get("/api/v1/flows", &issued).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        host.get(&format!("{admin}/shop-c"), OPERATOR).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = host
        .send(Method::DELETE, &format!("{admin}/shop-c"), OPERATOR, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_tenant_stays_paused_when_its_file_changes() {
    let host = host().await;
    host.write("shop-d", &tenant_file(5, "token-d-000001"));
    assert_eq!(host.hosting.reload().await.started, ["shop-d"]);
    let (status, _) = host
        .send(
            reqwest::Method::POST,
            "/api/v1/admin/tenants/shop-d/pause",
            OPERATOR,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The file changes: the tenant restarts, and is still paused.
    host.write("shop-d", &tenant_file(6, "token-d-000001"));
    assert_eq!(host.hosting.reload().await.restarted, ["shop-d"]);
    let (_, entry) = host.get("/api/v1/admin/tenants/shop-d", OPERATOR).await;
    assert_eq!(entry["state"], "paused", "{entry}");
    assert_eq!(
        host.run_now("token-d-000001").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    host.stop().await;
}
