//! Hostile input never panics koppel's own parsers: `koppel.toml` with its flows (built
//! from the keys koppel knows, with values gone wrong, and `koppel.example.toml` cut and
//! flipped), the datamapper's filters and rules applied to real records, webhook
//! signatures, and stored records. Each parser gets `KOPPEL_FUZZ_CASES` inputs (default
//! 256; the full campaign is `scripts/fuzz`, 1,000,000). A panic proptest finds is shrunk to
//! its smallest input and becomes a case of its own below.

use std::path::Path;

use koppel::config::{Config, parse};
use koppel::flow::Loaded;
use koppel::model::Record;
use koppel::model::codec;
use koppel::signature::{verify_hex, verify_koppel};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("KOPPEL_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

const EXAMPLE: &str = include_str!("../../koppel.example.toml");

/// The example with its secrets written in, so that it loads without the environment.
fn example() -> String {
    EXAMPLE
        .replace("{ env = \"MPLUS_SECRET\" }", "\"mplus-secret\"")
        .replace("{ env = \"SHOPWARE_SECRET\" }", "\"shopware-secret\"")
}
const GOLDEN: &str = include_str!("../src/model/golden/records.jsonl");

fn records() -> Vec<Record> {
    GOLDEN
        .lines()
        .filter_map(|line| codec::decode(line).ok())
        .collect()
}

/// A TOML value, often of the wrong kind or out of range.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("4294967296".to_owned()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("1.5e300".to_owned()),
        "[a-zA-Z0-9 ._/:{}-]{0,16}".prop_map(|s| format!("{s:?}")),
        prop::sample::select(vec![
            "\"5m\"",
            "\"0s\"",
            "\"1d\"",
            "\"99999999999d\"",
            "\"-3s\"",
            "\"\"",
            "\"till\"",
            "\"shop\"",
            "\"products\"",
            "\"orders\"",
            "\"mplus\"",
            "\"shopware\"",
            "\"koppel\"",
            "\"http://127.0.0.1:9\"",
            "{ env = \"KOPPEL_FUZZ_UNSET\" }",
            "\"extra.vat_code\"",
            "\"name\"",
            "\"prices.0.gross\"",
            "\"trim\"",
            "\"upper\"",
        ])
        .prop_map(str::to_owned),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), inner), 0..4).prop_map(
                |kv| {
                    let mut seen = std::collections::BTreeSet::new();
                    let body: Vec<String> = kv
                        .into_iter()
                        .filter(|(k, _)| seen.insert(*k))
                        .map(|(k, v)| format!("{k} = {v}"))
                        .collect();
                    format!("{{ {} }}", body.join(", "))
                }
            ),
        ]
    })
}

/// Keys koppel reads somewhere.
const KEYS: &[&str] = &[
    "tenant",
    "database",
    "connector",
    "config",
    "memory_mib",
    "call_timeout",
    "listen",
    "tokens",
    "public_url",
    "interval",
    "watch",
    "page_size",
    "batch_size",
    "write_concurrency",
    "delivery",
    "combine",
    "create_only",
    "source",
    "target",
    "connection",
    "stream",
    "filter",
    "map",
    "to",
    "from",
    "value",
    "concat",
    "separator",
    "sum",
    "subtract",
    "default",
    "transform",
    "prefix",
    "suffix",
    "scale",
    "lookup",
    "required",
    "field",
    "equals",
    "not_equals",
    "in",
    "not_in",
    "contains",
    "max_attempts",
    "stale_after",
    "enabled",
    "keep",
    "mask_fields",
    "scheme",
    "secret",
    "flows",
    "events",
    "max_age",
    "public_network_only",
    "allow_private_hosts",
    "tenants",
    "operator_tokens",
    "reload_every",
    "workers",
    "quotas",
    "concurrent_runs",
    "cpu_share",
    "requests_per_minute",
    "activity_rows",
    "replace_defaults",
];

/// Section headers koppel reads.
const SECTIONS: &[&str] = &[
    "",
    "[server]",
    "[hosting]",
    "[hosting.quotas]",
    "[quotas]",
    "[retention]",
    "[notify]",
    "[connections.till]",
    "[connections.shop]",
    "[connections.till.config]",
    "[flows.products]",
    "[flows.stock]",
    "[flows.orders]",
    "[flows.order-status]",
    "[flows.custom]",
    "[[flows.products.map]]",
    "[[flows.products.filter]]",
    "[[flows.custom.map]]",
    "[webhooks.till]",
    "[shopware_app.shop]",
];

/// A `koppel.toml` built of koppel's sections and keys with wrong values, or the example
/// file cut and flipped.
fn koppel_toml() -> impl Strategy<Value = String> {
    let built = prop::collection::vec(
        (
            prop::sample::select(SECTIONS.to_vec()),
            prop::collection::vec((prop::sample::select(KEYS.to_vec()), value()), 0..5),
        ),
        0..8,
    )
    .prop_map(|sections| {
        let mut text = String::new();
        let mut headers = std::collections::BTreeSet::new();
        for (header, keys) in sections {
            if !header.is_empty() && !header.starts_with("[[") && !headers.insert(header) {
                continue; // TOML refuses a table twice; the interesting part is after.
            }
            text.push_str(header);
            text.push('\n');
            let mut seen = std::collections::BTreeSet::new();
            for (key, value) in keys {
                if seen.insert(key) {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
        }
        text
    });
    let mutated = (
        any::<usize>(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
    )
        .prop_map(|(cut, flips)| {
            let mut bytes = example().into_bytes();
            for (i, b) in flips {
                let i = i % bytes.len();
                bytes[i] = b;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            String::from_utf8_lossy(&bytes).into_owned()
        });
    prop_oneof![built, mutated, "\\PC{0,200}"]
}

/// Reads `text` as `koppel.toml` as far as it goes: the file, its sections, its flows and
/// their mappers, each mapper applied to real records. Only a panic fails.
fn load(text: &str, records: &[Record]) {
    let Ok(file) = parse(text) else {
        return;
    };
    let Ok(config) = Config::from_file(Path::new("/fuzz/koppel.toml"), file) else {
        return;
    };
    let _ = Config::tenant_from_text(Path::new("/fuzz/tenants/shop-a.toml"), text, &config);
    let _ = config.quotas();
    let Ok(loaded) = Loaded::from_config(config) else {
        return;
    };
    for flow in &loaded.flows {
        let _ = flow.interval();
        let _ = flow.write_options();
        if let Ok(mapper) = flow.mapper() {
            for record in records {
                let _ = mapper.apply(record);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_koppel_toml_flows_and_the_datamapper_never_panic(text in koppel_toml()) {
        load(&text, &records());
    }

    #[test]
    fn fuzz_webhook_signatures_never_panic(
        secret in prop::collection::vec(any::<u8>(), 0..40),
        timestamp in prop::option::of("\\PC{0,24}"),
        signature in prop::option::of("(sha256=)?[0-9a-fA-F]{0,70}|\\PC{0,70}"),
        body in prop::collection::vec(any::<u8>(), 0..200),
        now in any::<i64>(),
        max_age in any::<i64>(),
    ) {
        let _ = verify_koppel(&secret, timestamp.as_deref(), signature.as_deref(), &body, now, max_age);
        let _ = verify_hex(&secret, &[&body], signature.as_deref().unwrap_or_default());
    }

    #[test]
    fn fuzz_stored_records_never_panic(
        line in prop::sample::select(GOLDEN.lines().collect::<Vec<_>>()),
        cut in any::<usize>(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        noise in "\\PC{0,64}",
    ) {
        let mut bytes = line.as_bytes().to_vec();
        for (i, b) in flips {
            let i = i % bytes.len().max(1);
            if let Some(byte) = bytes.get_mut(i) {
                *byte = b;
            }
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(record) = codec::decode(&text) {
            let _ = codec::encode(&record);
        }
        let _ = codec::decode(&noise);
    }
}

#[test]
fn the_seeds_load_as_they_are() {
    // The campaign changes real input: it must load whole first, or only error paths would
    // be exercised.
    assert!(records().len() >= 5, "the golden records decode");
    let file = parse(&example()).expect("the example parses");
    let config = Config::from_file(Path::new("/fuzz/koppel.toml"), file).expect("it is valid");
    let loaded = Loaded::from_config(config).expect("its flows are valid");
    assert_eq!(loaded.flows.len(), 4);
}
