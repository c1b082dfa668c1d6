//! Typed config values (contract 0.1.1): tables, lists and numbers written as plain TOML
//! reach connectors as the strings the contract carries; the old form (JSON in a string) is
//! still read; a wrong type names the key, the type and an example; and a component built
//! against contract 0.1.0 still loads and runs.

use std::collections::BTreeMap;
use std::process::Command;

use koppel::flow::Loaded;
use koppel::runtime::bindings::{Record, Value, ValueType};
use koppel::runtime::{ConnectionSpec, Runtime};
use koppel::store::{ActivityWriter, Store};

fn cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")
}

fn runtime() -> Runtime {
    koppel_test_support::runtime(env!("CARGO_TARGET_TMPDIR"))
}

fn toml(text: &str) -> toml::Table {
    toml::from_str(text).expect("valid TOML")
}

#[tokio::test]
async fn a_component_built_against_contract_0_1_0_loads_and_receives_strings() {
    let runtime = runtime();
    let path = koppel::connectors::test_guest("contract-0-1-0").expect("built by build.rs");
    let old = runtime
        .load_file(path)
        .await
        .expect("a 0.1.0 component loads in a 0.1.1 host");
    assert_eq!(old.id(), "contract-0-1-0");
    assert!(!old.has_config_types(), "0.1.0 has no config-types export");
    assert!(old.config_types().is_empty());

    // Its `json` key takes a TOML table too, and receives it as JSON text, as in 0.1.0.
    let guest = old
        .config_from_toml(&toml(
            "label = \"till\"\ncount = 3\n[mapping]\na = 1\nb = [\"x\", 2]\n",
        ))
        .expect("valid");
    assert!(guest.warnings.is_empty());
    let connection = old
        .connect(ConnectionSpec::new("t", "old", guest.values))
        .expect("connects");
    let mut session = connection.session().await.expect("configure works");
    let page = session.read("config", None, 10).await.expect("read");
    let Some(Record::Reference(entry)) = page.records.first() else {
        panic!("one reference record: {:?}", page.records);
    };
    let received: BTreeMap<&str, &str> = entry
        .fields
        .iter()
        .map(|f| match &f.value {
            Value::Text(text) => (f.name.as_str(), text.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        received,
        BTreeMap::from([
            ("count", "3"),
            ("label", "till"),
            ("mapping", r#"{"a":1,"b":["x",2]}"#)
        ])
    );
}

/// A koppel.toml with the MplusKASSA connection's tables written as `vat_codes` says.
fn mplus_config(dir: &std::path::Path, vat_codes: &str) -> Loaded {
    let file = dir.join("koppel.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[connections.till]
connector = "mplus"
[connections.till.config]
base_url = "https://api.mpluskassa.nl:44123"
ident = "shop"
secret = "s3cret"
payment_methods = {{ payment_invoice = "OPREKENING" }}
{vat_codes}

[connections.till.config.turnover_groups]
NL = 10
DE = 12
"#
        ),
    )
    .expect("write");
    Loaded::read(&file).expect("the file reads")
}

async fn environment(
    loaded: &Loaded,
) -> Result<koppel::flow::Environment, koppel::config::LoadError> {
    let store = Store::open(&loaded.database()).await.expect("store");
    loaded
        .environment(&runtime(), store.clone(), ActivityWriter::start(store))
        .await
}

#[tokio::test]
async fn mplus_tables_are_written_as_toml_and_the_old_json_text_still_works() {
    let runtime = runtime();
    let mplus = koppel::connectors::load(&runtime, "mplus")
        .await
        .expect("built in");
    let tables: Vec<(&str, ValueType)> = mplus
        .config_types()
        .iter()
        .map(|t| (t.name.as_str(), t.type_))
        .collect();
    for key in [
        "vat_codes",
        "turnover_groups",
        "payment_methods",
        "delivery_methods",
    ] {
        assert!(
            tables.contains(&(key, ValueType::Table)),
            "{key}: {tables:?}"
        );
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let plain = mplus_config(
        dir.path(),
        "[connections.till.config.vat_codes]\n\"21\" = 1\n\"9\" = 2\nDE = { \"19\" = 4 }\n",
    );
    let env = environment(&plain).await.expect("TOML tables are accepted");
    let config = &env.connections["till"].config;
    assert_eq!(config["vat_codes"], r#"{"21":1,"9":2,"DE":{"19":4}}"#);
    assert_eq!(config["turnover_groups"], r#"{"DE":12,"NL":10}"#);
    assert_eq!(
        config["payment_methods"],
        r#"{"payment_invoice":"OPREKENING"}"#
    );
    // The connector reads them: its check of the config (configure) passes.
    let connection = env.connections["till"]
        .connector
        .connect(ConnectionSpec::new("t", "till", config.clone()))
        .expect("valid for the manifest");
    connection
        .session()
        .await
        .expect("the connector takes the tables");

    let dir = tempfile::tempdir().expect("tempdir");
    let old = mplus_config(
        dir.path(),
        "vat_codes = '{\"21\": 1, \"9\": 2, \"DE\": {\"19\": 4}}'",
    );
    let guest = mplus
        .config_from_toml(&old.config.connections["till"].config)
        .expect("the old form is accepted");
    assert_eq!(guest.warnings.len(), 1, "{:?}", guest.warnings);
    assert_eq!(guest.warnings[0].key, "vat_codes");
    assert!(
        guest.warnings[0]
            .message
            .contains("write it as TOML: vat_codes = { 21 = 1, 9 = 2, DE = { 19 = 4 } }"),
        "{}",
        guest.warnings[0].message
    );
    let env = environment(&old).await.expect("the old form loads");
    assert_eq!(
        env.connections["till"].config["vat_codes"],
        r#"{"21": 1, "9": 2, "DE": {"19": 4}}"#
    );
}

#[tokio::test]
async fn a_value_of_the_wrong_type_names_the_key_the_type_and_an_example() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = mplus_config(dir.path(), "vat_codes = [21, 9]");
    let Err(error) = environment(&wrong).await else {
        panic!("a list is not a table");
    };
    assert_eq!(error.key, "connections.till.config.vat_codes");
    assert!(
        error.message.contains(
            r#"`vat_codes`: must be a table, not a list; write it like vat_codes = { "21" = 1, "9" = 2, DE = { "19" = 4 } }"#
        ),
        "{error}"
    );
}

#[test]
fn inspect_shows_each_keys_type() {
    let output = Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args(["connector", "inspect", "mplus"])
        .env("KOPPEL_CACHE_DIR", cache_dir())
        .output()
        .expect("run koppel");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let line = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no line for {key}:\n{text}"))
            .to_owned()
    };
    assert!(
        line("vat_codes").contains("[table]"),
        "{}",
        line("vat_codes")
    );
    assert!(
        line("secret").contains("[secret, required]"),
        "{}",
        line("secret")
    );
    assert!(
        line("branch_number").contains("[integer, default 1]"),
        "{}",
        line("branch_number")
    );
    assert!(
        text.contains(r#"e.g. vat_codes = { "21" = 1, "9" = 2, DE = { "19" = 4 } }"#),
        "{text}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_koppel"))
        .args(["connector", "inspect", "mplus", "--json"])
        .env("KOPPEL_CACHE_DIR", cache_dir())
        .output()
        .expect("run koppel");
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let vat = json["config"]
        .as_array()
        .and_then(|c| c.iter().find(|f| f["name"] == "vat_codes"))
        .expect("vat_codes");
    assert_eq!(vat["type"], "table");
}

#[tokio::test]
async fn the_example_configuration_is_valid_for_its_connectors() {
    // SAFETY: only this test binary sets these variables, to the same values.
    unsafe {
        std::env::set_var("MPLUS_SECRET", "x");
        std::env::set_var("SHOPWARE_SECRET", "y");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("koppel.toml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../koppel.example.toml"),
        &file,
    )
    .expect("copy");
    let loaded = Loaded::read(&file).expect("reads");
    let env = match environment(&loaded).await {
        Ok(env) => env,
        Err(error) => panic!("{error}"),
    };
    let till = &env.connections["till"].config;
    assert_eq!(
        till["vat_codes"],
        r#"{"0":3,"21":1,"9":2,"DE":{"19":4,"7":5}}"#
    );
    assert_eq!(
        till["delivery_methods"],
        r#"{"shipping_express":"EXPRESS","shipping_standard":"POST"}"#
    );
}

#[tokio::test]
async fn the_setup_wizard_asks_for_tables_as_toml_and_writes_them_as_tables() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("koppel.toml");
    let answers = [
        "typed",                   // tenant
        "",                        // till: the connector (the only one offered)
        "till one",                // till: label
        "3",                       // till: count
        r#"{ a = 1, b = ["x"] }"#, // till: mapping, as TOML
        "",                        // shop: the connector
        "",                        // shop: label
        "",                        // shop: count
        r#"{"c": 2}"#,             // shop: mapping, as JSON text (the old form)
        "n",                       // products
        "n",                       // stock
        "n",                       // orders
        "n",                       // order-status
        "",                        // listen
        "",                        // no webhook
        "",                        // no e-mail
    ]
    .join("\n")
        + "\n";
    let mut output = Vec::new();
    let old = runtime()
        .load_file(koppel::connectors::test_guest("contract-0-1-0").expect("built"))
        .await
        .expect("connector");
    koppel::cli::init::init_wizard(&path, &[old], answers.as_bytes(), &mut output)
        .await
        .expect("wizard");
    let shown = String::from_utf8_lossy(&output);
    assert!(
        shown.contains("(as TOML on one line, like { key = \"value\" }; empty: none)"),
        "{shown}"
    );
    assert_eq!(shown.matches("The connection works.").count(), 2, "{shown}");
    let text = std::fs::read_to_string(&path).expect("written");
    let written: toml::Table = toml::from_str(&text).expect("TOML");
    let till = &written["connections"]["till"]["config"];
    assert_eq!(till["mapping"]["a"].as_integer(), Some(1), "{text}");
    assert_eq!(till["count"].as_integer(), Some(3), "{text}");
    let old = format!(
        "{:?}",
        koppel::connectors::test_guest("contract-0-1-0")
            .expect("built")
            .display()
            .to_string()
    );
    // The wizard wrote the connector's id; a test guest is found by its path.
    let text = text.replace("\"contract-0-1-0\"", &old);
    std::fs::write(&path, text).expect("rewrite");
    let loaded = Loaded::read(&path).expect("loads");
    let env = match environment(&loaded).await {
        Ok(env) => env,
        Err(error) => panic!("{error}"),
    };
    assert_eq!(
        env.connections["till"].config["mapping"],
        r#"{"a":1,"b":["x"]}"#
    );
    assert_eq!(env.connections["shop"].config["mapping"], r#"{"c": 2}"#);
}

/// The wizard names no connector: for each connection of the shipped flows it offers the
/// connectors whose manifests have the streams those flows need, the first as the default.
/// Answering every question with its default picks MplusKASSA for `till` and Shopware for
/// `shop` from the built-in connectors, in whatever order they come.
#[tokio::test]
async fn the_setup_wizard_offers_the_connectors_whose_streams_the_flows_need() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("koppel.toml");
    let runtime = runtime();
    let mut available = Vec::new();
    for id in ["shopware", "http-json", "mplus"] {
        let builtin = koppel::connectors::builtin_by_id(id).expect("built in");
        available.push(runtime.load(id, builtin.wasm).await.expect("load"));
    }
    let fields = |id: &str| {
        available
            .iter()
            .find(|c| c.id() == id)
            .map(|c| c.manifest().config.len())
            .expect("offered")
    };
    let mut answers: Vec<&str> = vec!["tenant-x", ""]; // tenant; till: the default connector
    answers.extend(std::iter::repeat_n("", fields("mplus")));
    answers.extend(["n", ""]); // the test fails (nothing answers): keep it; shop: the default
    answers.extend(std::iter::repeat_n("", fields("shopware")));
    answers.extend(["n", "n", "n", "n", "n", "", "", ""]); // keep; no flows; listen, alerts
    let input = answers.join("\n") + "\n";
    let mut output = Vec::new();
    koppel::cli::init::init_wizard(&path, &available, input.as_bytes(), &mut output)
        .await
        .expect("wizard");
    let shown = String::from_utf8_lossy(&output);
    assert!(
        shown.contains(
            "Connector for `till` (its flows use products, stock, orders, order-status) [mplus]"
        ),
        "{shown}"
    );
    assert!(
        shown.contains(
            "Connector for `shop` (its flows use products, stock, orders, order-status) [shopware]"
        ),
        "{shown}"
    );
    let written: toml::Table =
        toml::from_str(&std::fs::read_to_string(&path).expect("written")).expect("TOML");
    assert_eq!(
        written["connections"]["till"]["connector"].as_str(),
        Some("mplus")
    );
    assert_eq!(
        written["connections"]["shop"]["connector"].as_str(),
        Some("shopware")
    );
}
