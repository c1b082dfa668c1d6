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
