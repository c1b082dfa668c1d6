//! `koppel demo --serve`: after the demo the dashboard stays open, its address and a token
//! printed; the token opens the dashboard on the demo's records and failed order; Ctrl-C
//! (SIGINT) stops it cleanly.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn the_dashboard_stays_open_after_the_demo_with_a_token() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args([
            "demo",
            "--serve",
            "--listen",
            "127.0.0.1:0",
            "--products",
            "40",
            "--dir",
        ])
        .arg(dir.path())
        .env(
            "KOPPEL_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start koppel demo --serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    // The server is listening once it prints its address: wait for that line.
    let (url, token) = loop {
        let line = lines.next_line().await.expect("read").unwrap_or_else(|| {
            panic!(
                "the demo ended without a dashboard line:\n{}",
                printed.join("\n")
            )
        });
        if let Some(rest) = line.strip_prefix("Dashboard: ") {
            let (url, token) = rest.split_once(" (token ").expect("address (token …)");
            break (url.to_owned(), token.trim_end_matches(')').to_owned());
        }
        printed.push(line);
    };
    let out = printed.join("\n");
    assert!(out.contains("8. Orders once more"), "{out}");
    assert!(out.contains("failed 1"), "{out}");
    assert!(token.starts_with("kpl_"), "{token}");

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let get = |path: &str, token: Option<&str>| {
        let mut request = client.get(format!("{}{}", url.trim_end_matches('/'), path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let page = get("/", Some(&token)).await.expect("overview");
    assert_eq!(page.status(), 200);
    let overview = page.text().await.expect("body");
    for flow in ["products", "stock", "orders", "order-status"] {
        assert!(
            overview.contains(flow),
            "{flow} not on the overview:\n{overview}"
        );
    }
    let failed = get("/failed", Some(&token)).await.expect("failed page");
    assert_eq!(failed.status(), 200);
    let failed = failed.text().await.expect("body");
    assert!(
        failed.contains("990001"),
        "the failed order names its article:\n{failed}"
    );
    let runs = get("/api/v1/runs", Some(&token))
        .await
        .expect("runs")
        .text()
        .await
        .expect("body");
    let runs: serde_json::Value = serde_json::from_str(&runs).expect("JSON");
    let runs = runs
        .as_array()
        .or_else(|| runs.get("runs").and_then(|r| r.as_array()))
        .expect("a list of runs")
        .len();
    assert!(runs >= 8, "the demo's eight runs at least: {runs}");
    let refused = get("/api/v1/runs", None).await.expect("no token");
    assert_eq!(refused.status(), 401);
    let refused = get("/api/v1/runs", Some("kpl_wrong"))
        .await
        .expect("a wrong token");
    assert_eq!(refused.status(), 401);

    // Ctrl-C stops it after the current batch.
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill -INT");
    assert!(status.success());
    let mut rest = Vec::new();
    while let Some(line) = lines.next_line().await.expect("read") {
        rest.push(line);
    }
    let status = child.wait().await.expect("exit");
    assert!(status.success(), "{status}: {}", rest.join("\n"));
    assert!(rest.iter().any(|l| l == "Stopped."), "{}", rest.join("\n"));
}
