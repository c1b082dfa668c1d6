//! Hostile answers never panic the Shopware connector's parsers: error bodies and sync
//! answers (6.4's per-operation form and the later ones) from arbitrary bytes and from
//! JSON shaped like Shopware's, with numbers, nesting and pointers gone wrong. Each parser
//! gets `KOPPEL_FUZZ_CASES` inputs (default 256; the full campaign is `scripts/fuzz`,
//! 1,000,000).

use koppel_connector_shopware::api::Version;
use koppel_connector_shopware::errors;
use koppel_connector_shopware::sync::{Mode, Op, parse_answer, upserts};
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("KOPPEL_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// JSON values of Shopware's shapes: leaves that are often wrong (negative, huge, strings
/// where numbers go), objects keyed by the names Shopware's answers use.
fn shaped() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z/0-9_.-]{0,12}".prop_map(Value::from),
        Just(json!("/0/translations/DEFAULT/name")),
        Just(json!("/products/1/productNumber")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop::sample::select(vec![
            "errors",
            "status",
            "code",
            "detail",
            "title",
            "source",
            "pointer",
            "meta",
            "parameters",
            "data",
            "success",
            "result",
            "entities",
            "product",
            "deleted",
            "notFound",
            "extensions",
            "0",
            "1",
            "write-product",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(keys, inner, 0..6).prop_map(|m| Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        shaped().prop_map(|v| v.to_string().into_bytes()),
        // A well-formed answer cut short.
        (shaped(), any::<usize>()).prop_map(|(v, cut)| {
            let mut text = v.to_string().into_bytes();
            let len = text.len().max(1);
            text.truncate(cut % len);
            text
        }),
    ]
}

fn ops(records: usize, mode: Mode) -> Vec<Op> {
    let payloads: Vec<Value> = (0..records)
        .map(|i| json!({ "id": format!("{i:032x}") }))
        .collect();
    upserts(mode, "product", &payloads)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_shopware_error_bodies_never_panic(bytes in body(), status in 100u16..600) {
        let parsed = errors::parse(&bytes);
        let _ = errors::describe_all(&parsed);
        let _ = errors::is_data_error(status, &parsed);
        for error in &parsed {
            let _ = error.record_index();
            let _ = error.field_path();
            let _ = error.describe();
        }
        let _ = errors::for_status(status, &bytes, "products");
    }

    #[test]
    fn fuzz_shopware_sync_answers_never_panic(
        bytes in body(),
        status in 100u16..600,
        records in 0usize..6,
        old in any::<bool>(),
    ) {
        let version = if old { Version::V6_4 } else { Version::V6_6 };
        let mode = Mode::of(version);
        let _ = parse_answer(mode, status, &bytes, &ops(records, mode), records);
    }
}
