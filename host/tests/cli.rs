//! The `koppel` command: help everywhere, inspect and check against the fixture connector.

use std::process::{Command, Output};

fn koppel(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args(args)
        .env(
            "KOPPEL_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .env("KOPPEL_CONNECTORS_DIR", env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect("run koppel")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn fixture() -> String {
    koppel::connectors::test_guest("fixture")
        .expect("built")
        .display()
        .to_string()
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["connectors", "--help"],
        vec!["connectors", "list", "--help"],
        vec!["connector", "--help"],
        vec!["connector", "inspect", "--help"],
        vec!["connector", "check", "--help"],
        vec!["connector", "new", "--help"],
        vec!["connector", "test", "--help"],
        vec!["demo", "--help"],
        vec!["init", "--help"],
        vec!["sync", "--help"],
        vec!["run", "--help"],
        vec!["shopware", "--help"],
        vec!["shopware", "app-manifest", "--help"],
    ] {
        let output = koppel(&args);
        assert!(output.status.success(), "{args:?}: {}", text(&output));
        assert!(
            text(&output).contains("Usage: koppel"),
            "{args:?}: {}",
            text(&output)
        );
    }
}

#[test]
fn connectors_list_shows_the_built_in_ones_and_those_in_the_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(fixture(), dir.path().join("fixture.wasm")).expect("copy");
    std::fs::write(dir.path().join("broken.wasm"), b"not a component").expect("write");
    let folder = dir.path().display().to_string();
    let output = koppel(&["connectors", "list", "--dir", &folder]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    for id in ["mplus", "shopware", "http-json"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("no line for `{id}`: {stdout}"));
        assert!(line.ends_with("built in"), "{line}");
        assert!(line.contains(" KB "), "the size is shown: {line}");
    }
    let fixture_line = stdout
        .lines()
        .find(|l| l.starts_with("fixture "))
        .unwrap_or_else(|| panic!("the folder's connector is listed: {stdout}"));
    assert!(
        fixture_line.contains("Test fixture") && fixture_line.contains("0.1.0"),
        "{fixture_line}"
    );
    assert!(fixture_line.ends_with("fixture.wasm"), "{fixture_line}");
    assert!(
        stdout.contains("streams: products (read/write/lookup)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("Third-party connectors are read from {folder}")),
        "{stdout}"
    );
    assert!(
        stderr.contains("skipped:") && stderr.contains("broken.wasm"),
        "a file that is no connector is named, not fatal: {stderr}"
    );

    let output = koppel(&["connectors", "list", "--dir", &folder, "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let ids: Vec<&str> = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    for id in ["mplus", "shopware", "http-json", "fixture"] {
        assert!(ids.contains(&id), "{ids:?}");
    }
    let fixture = listed
        .as_array()
        .expect("a list")
        .iter()
        .find(|c| c["id"] == "fixture")
        .expect("fixture");
    assert_eq!(fixture["version"], "0.1.0");
    assert_eq!(
        fixture["streams"],
        serde_json::json!(["products (read/write/lookup)"])
    );
    assert!(fixture["bytes"].as_u64().expect("bytes") > 1000);
}

#[test]
fn inspect_prints_the_manifest_with_secrets_marked() {
    let output = koppel(&["connector", "inspect", &fixture()]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("Test fixture 0.1.0 (fixture)"), "{out}");
    assert!(out.contains("products (read/write/lookup)"), "{out}");
    assert!(out.contains("token") && out.contains("[secret]"), "{out}");
    assert!(out.contains("may connect to: {base_url}"), "{out}");

    let output = koppel(&["connector", "inspect", "--json", &fixture()]);
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(manifest["id"], "fixture");
    assert_eq!(
        manifest["streams"][0]["access"],
        serde_json::json!(["read", "write", "lookup"])
    );
}

#[test]
fn check_names_the_config_key_at_fault_and_reads_secrets_from_the_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("conn.toml");
    std::fs::write(&file, "base_url = \"shop.example\"\ncolour = \"red\"\n").expect("write");
    let output = koppel(&[
        "connector",
        "check",
        &fixture(),
        "--config",
        &file.display().to_string(),
    ]);
    let out = text(&output);
    assert!(!output.status.success());
    assert!(
        out.contains("`base_url`: \"shop.example\" is not a URL"),
        "{out}"
    );
    assert!(out.contains("`colour`: unknown key"), "{out}");

    std::fs::write(
        &file,
        "base_url = \"http://127.0.0.1:9\"\ntoken = { env = \"KOPPEL_TEST_TOKEN\" }\n",
    )
    .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args([
            "connector",
            "check",
            &fixture(),
            "--config",
            &file.display().to_string(),
        ])
        .env(
            "KOPPEL_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .env("KOPPEL_TEST_TOKEN", "s3cret-value")
        .output()
        .expect("run");
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("may connect to http://127.0.0.1:9"), "{out}");
    assert!(out.contains("the connection works"), "{out}");
    assert!(!out.contains("s3cret-value"), "{out}");
}

#[test]
fn an_unknown_connector_lists_the_known_ones() {
    let output = koppel(&["connector", "inspect", "nope"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("no connector `nope`"),
        "{}",
        text(&output)
    );
}

fn fixture_config(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let file = dir.join("koppel.toml");
    std::fs::write(
        &file,
        format!(
            "tenant = \"t\"\n[connections.src]\nconnector = {fixture:?}\nconfig = {{ total = 40 }}\n\
             [connections.dst]\nconnector = {fixture:?}\n\
             [flows.copy]\nsource = {{ connection = \"src\", stream = \"products\" }}\n\
             target = {{ connection = \"dst\", stream = \"products\" }}\ninterval = \"1h\"\n{extra}",
            fixture = fixture()
        ),
    )
    .expect("write");
    file
}

#[test]
fn sync_runs_a_flow_and_a_second_sync_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = fixture_config(dir.path(), "");
    let config = file.display().to_string();
    let output = koppel(&["sync", "copy", "--config", &config, "--json"]);
    assert!(output.status.success(), "{}", text(&output));
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON summary");
    assert_eq!(summary["counts"]["created"], 40);
    assert_eq!(summary["status"], "succeeded");

    let output = koppel(&["sync", "copy", "--config", &config, "--full"]);
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("created 0") && out.contains("unchanged 40"),
        "{out}"
    );
    assert!(
        dir.path().join("koppel.db").exists(),
        "the state database sits beside koppel.toml"
    );

    let output = koppel(&["sync", "products", "--config", &config]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("flow `products` is not enabled"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_bad_koppel_toml_names_the_file_the_key_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = fixture_config(dir.path(), "page_sise = 10\n");
    let output = koppel(&["sync", "copy", "--config", &file.display().to_string()]);
    let out = text(&output);
    assert!(!output.status.success());
    assert!(
        out.contains("koppel.toml") && out.contains("unknown field `page_sise`"),
        "{out}"
    );

    let file = fixture_config(dir.path(), "");
    let text_with_typo = std::fs::read_to_string(&file)
        .expect("read")
        .replace("total = 40", "totl = 40");
    std::fs::write(&file, text_with_typo).expect("write");
    let output = koppel(&["sync", "copy", "--config", &file.display().to_string()]);
    let out = text(&output);
    assert!(
        out.contains("connections.src.config") && out.contains("`totl`: unknown key"),
        "{out}"
    );

    let file = fixture_config(
        dir.path(),
        "create_only = [\"descripton\", \"extra.brand\"]\n",
    );
    let output = koppel(&["sync", "copy", "--config", &file.display().to_string()]);
    let out = text(&output);
    assert!(output.status.success(), "a warning, not a stop: {out}");
    assert!(
        out.contains("flows.copy.create_only")
            && out.contains("`descripton` is not a field of a product record")
            && out.contains("description, short_description")
            && !out.contains("extra.brand"),
        "{out}"
    );
}

/// `koppel sync` reads every section as `koppel run` does, so a mistake in `[webhooks]`,
/// `[server]` or `[retention]` stops it too, naming the key, before anything runs.
#[test]
fn sync_refuses_mistakes_in_the_sections_it_does_not_use() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (extra, key, says) in [
        (
            "[webhooks.shopware]\nscheme = \"shopware\"\nsecret = \"s\"\n",
            "webhooks.shopware",
            "is now keyed by connection",
        ),
        (
            "[webhooks.src]\nsecret = \"s\"\n",
            "webhooks.src.scheme",
            "say how the calls are signed",
        ),
        (
            "[webhooks.src]\nscheme = \"koppel\"\nsecret = \"s\"\nflows = [\"stock\"]\n",
            "webhooks.src.flows",
            "`stock` is not enabled",
        ),
        (
            "[server]\nlisten = \"8080\"\n",
            "server.listen",
            "not an address with a port",
        ),
        (
            "[retention]\nkeep = \"two weeks\"\n",
            "keep",
            "30s, 5m, 1h or 1d",
        ),
    ] {
        let file = fixture_config(dir.path(), extra);
        let output = koppel(&["sync", "copy", "--config", &file.display().to_string()]);
        let out = text(&output);
        assert!(!output.status.success(), "{extra}: {out}");
        assert!(out.contains(key) && out.contains(says), "{extra}: {out}");
        assert!(!dir.path().join("koppel.db").exists(), "nothing ran: {out}");
    }
}

#[cfg(unix)]
#[test]
fn run_stops_cleanly_on_sigterm() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = fixture_config(dir.path(), "");
    let mut child = Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args(["run", "--json", "--config", &file.display().to_string()])
        .env(
            "KOPPEL_CACHE_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start koppel run");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().expect("a run summary").expect("line");
    let summary: serde_json::Value = serde_json::from_str(&first).expect("JSON line");
    assert_eq!(summary["flow"], "copy");
    assert_eq!(summary["counts"]["created"], 40);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "exits cleanly: {:?}",
        output.status
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("Stopped."));
}

#[test]
fn the_demo_moves_everything_and_a_second_round_only_the_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = koppel(&[
        "demo",
        "--products",
        "150",
        "--json",
        "--dir",
        &dir.path().display().to_string(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    let runs = report["runs"].as_array().expect("runs");
    let flows: Vec<&str> = runs.iter().filter_map(|r| r["flow"].as_str()).collect();
    assert_eq!(
        flows,
        vec![
            "products",
            "stock",
            "orders",
            "order-status",
            "products",
            "stock",
            "orders"
        ]
    );
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:#?}");
    let count = |i: usize, what: &str| runs[i]["counts"][what].as_u64().expect("count");
    assert!(
        count(0, "created") > 100,
        "the catalogue arrives: {:?}",
        runs[0]
    );
    assert_eq!(count(0, "failed"), 0);
    assert_eq!(
        (count(2, "created"), count(2, "read")),
        (3, 3),
        "three paid orders reach the till, the unpaid are not read"
    );
    assert!(
        count(3, "updated") >= 1,
        "the delivery moves an order in the shop"
    );
    assert_eq!(
        count(4, "created") + count(4, "updated"),
        0,
        "a second products run writes nothing"
    );
    assert_eq!(
        count(5, "updated"),
        3,
        "only the three changed stock levels are written"
    );
    assert_eq!(
        (count(6, "created"), count(6, "skipped")),
        (1, 3),
        "only the new order; the others never twice"
    );
    assert_eq!(report["orders_in_till"], 4);
    assert!(dir.path().join("koppel.toml").exists() && dir.path().join("koppel.db").exists());
}

#[test]
fn purge_deletes_only_what_is_older_than_the_retention_period() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = fixture_config(dir.path(), "[retention]\nkeep = \"1s\"\n");
    let config = file.display().to_string();
    let output = koppel(&["sync", "copy", "--config", &config]);
    assert!(output.status.success(), "{}", text(&output));
    let synced = std::time::Instant::now();

    let purge = |config: &str| {
        let output = koppel(&["purge", "--config", config, "--json"]);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice::<serde_json::Value>(&output.stdout).expect("JSON counts")
    };
    // The retention period is the behaviour under test: wait it out once.
    std::thread::sleep(std::time::Duration::from_millis(1100).saturating_sub(synced.elapsed()));
    let counts = purge(&config);
    assert_eq!(counts["record_rows"], 40, "{counts}");
    let again = purge(&config);
    assert_eq!(again["record_rows"], 0, "nothing twice: {again}");

    let output = koppel(&["purge", "--config", &config]);
    assert!(
        text(&output).contains("Purged what is older than 1 second: the bodies of 0 exchanges"),
        "{}",
        text(&output)
    );
}

#[test]
fn a_flow_running_in_another_process_is_not_run_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = fixture_config(dir.path(), "");
    let config = file.display().to_string();
    // Hold the flow's lease the way a running `koppel run` does.
    let locks = dir.path().join("koppel.db.locks");
    std::fs::create_dir_all(&locks).expect("mkdir");
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(locks.join("t~copy.lock"))
        .expect("lock file");
    held.try_lock().expect("locked");
    let output = koppel(&["sync", "copy", "--config", &config]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("flow `copy` of tenant `t` is running already"),
        "{}",
        text(&output)
    );
    drop(held);
    let output = koppel(&["sync", "copy", "--config", &config, "--json"]);
    assert!(output.status.success(), "{}", text(&output));
}

/// A local webhook receiver: answers 200 and hands each request body over.
fn receiver() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    let (bodies, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = bodies.send(String::from_utf8_lossy(&body).into_owned());
        }
    });
    (url, received)
}

#[test]
fn a_failing_sync_notifies_once_and_its_recovery_once_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (url, received) = receiver();
    let notify = format!("[notify.webhook]\nurl = {url:?}\nsecret = \"hook-secret\"\n");
    let broken = fixture_config(dir.path(), &notify);
    let text_of = std::fs::read_to_string(&broken).expect("read");
    let source = "source = { connection = \"src\", stream = \"products\" }";
    assert!(text_of.contains(source));
    let unreadable = "source = { connection = \"src\", stream = \"nope\" }";
    std::fs::write(&broken, text_of.replace(source, unreadable)).expect("write");
    let config = broken.display().to_string();
    let output = koppel(&["sync", "copy", "--config", &config]);
    assert!(!output.status.success(), "{}", text(&output));
    let wait = std::time::Duration::from_secs(30);
    let opened = received.recv_timeout(wait).expect("a notification");
    assert!(
        opened.contains("\"opened\"") && opened.contains("copy"),
        "{opened}"
    );
    // A second failure of the same incident is not notified again.
    let output = koppel(&["sync", "copy", "--config", &config]);
    assert!(!output.status.success());

    std::fs::write(&broken, text_of).expect("write");
    let output = koppel(&["sync", "copy", "--config", &config]);
    assert!(output.status.success(), "{}", text(&output));
    let resolved = received.recv_timeout(wait).expect("the recovery");
    assert!(resolved.contains("\"resolved\""), "{resolved}");
    assert!(
        received.try_recv().is_err(),
        "one notification per incident and one for its recovery"
    );
}

/// `[hosting] public_network_only`: `koppel sync` runs its connectors behind the network
/// guard, so a shop's config that points at the operator's machine fails at once, naming the
/// tenant, the host and why; without the guard the same run tries to connect.
#[test]
fn a_hosted_sync_refuses_a_connection_to_the_operators_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("koppel.toml");
    let write = |guard: bool| {
        std::fs::write(
            &file,
            format!(
                "tenant = \"shop-a\"\n[hosting]\npublic_network_only = {guard}\n\
                 [connections.till]\nconnector = \"mplus\"\n\
                 config = {{ base_url = \"http://127.0.0.1:9\", ident = \"ident-1\", secret = \"secret-value-1\" }}\n\
                 [connections.shop]\nconnector = \"shopware\"\n\
                 config = {{ shop_url = \"http://127.0.0.1:9\", access_key_id = \"key-id-1\", secret_access_key = \"secret-key-1\" }}\n\
                 [flows.products]\n"
            ),
        )
        .expect("write");
    };
    let config = file.display().to_string();

    write(true);
    let output = koppel(&["sync", "products", "--config", &config]);
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains("koppel refused the connection for tenant `shop-a`")
            && out.contains("127.0.0.1 is a loopback address")
            && out.contains("allow_private_hosts"),
        "{out}"
    );

    write(false);
    let output = koppel(&["sync", "products", "--config", &config]);
    let out = text(&output);
    assert!(!output.status.success(), "{out}");
    assert!(!out.contains("public addresses only"), "{out}");
    assert!(out.contains("127.0.0.1:9"), "{out}");
}
