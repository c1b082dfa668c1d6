//! Hostile answers never panic the MplusKASSA connector's parsers: every response type read
//! from arbitrary bytes, and from the real examples (`../shared/reference/mplus/examples`)
//! cut, flipped and spliced. Each parser gets `KOPPEL_FUZZ_CASES` inputs (default 256; the
//! full campaign is `scripts/fuzz`, 1,000,000). A panic proptest finds is shrunk to its
//! smallest input and becomes a case of its own below.

use std::path::PathBuf;

use koppel_connector_mplus::products::scan_page;
use koppel_connector_mplus::soap::parse;
use koppel_connector_mplus::wire::*;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("KOPPEL_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256)
}

/// The response examples of the reference (none when `../shared` is not there).
fn examples() -> Vec<Vec<u8>> {
    let dir = std::env::var_os("KOPPEL_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference")
        })
        .join("mplus/examples");
    let mut found: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().contains(".response"))
                .filter_map(|p| std::fs::read(p).ok())
                .collect()
        })
        .unwrap_or_default();
    // Shapes of our own, so the campaign has seeds without the reference too.
    found.push(
        b"<S:Envelope xmlns:S=\"http://schemas.xmlsoap.org/soap/envelope/\"><S:Body><getProductsResponse><productList><product><productNumber>1</productNumber><syncMarker>5</syncMarker><articleList><article><articleNumber>10</articleNumber><syncMarker>4</syncMarker></article></articleList></product></productList></getProductsResponse></S:Body></S:Envelope>"
            .to_vec(),
    );
    found
}

/// An input: random bytes, or an example changed a little (cut, bytes flipped, a piece of
/// another example spliced in), so the parsers get deep into well-formed XML too.
fn input() -> impl Strategy<Value = Vec<u8>> {
    let seeds = examples();
    let mutated = (
        0..seeds.len(),
        0..seeds.len(),
        any::<usize>(),
        any::<usize>(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..8),
        0..4u8,
    )
        .prop_map(move |(a, b, cut, at, flips, how)| {
            let mut bytes = seeds[a].clone();
            let len = bytes.len().max(1);
            match how {
                0 => bytes.truncate(cut % len),
                1 => {
                    for (i, byte) in &flips {
                        let i = i % len;
                        if let Some(b) = bytes.get_mut(i) {
                            *b = *byte;
                        }
                    }
                }
                2 => {
                    let other = &seeds[b];
                    let from = cut % other.len().max(1);
                    let piece = &other[from..(from + 200).min(other.len())];
                    let at = at % len;
                    bytes.splice(at..at, piece.iter().copied());
                }
                _ => {
                    // Numbers where numbers go, made huge or negative.
                    let text = String::from_utf8_lossy(&bytes)
                        .replace(">1<", ">-99999999999999999999<")
                        .replace(">10<", ">1e400<");
                    bytes = text.into_bytes();
                }
            }
            bytes
        });
    prop_oneof![prop::collection::vec(any::<u8>(), 0..512), mutated]
}

/// Reads `bytes` as every response the connector reads; what matters is that none panics.
fn parse_all(bytes: &[u8]) {
    let _ = scan_page(bytes);
    let _ = parse::<GetProductsResponse>("getProducts", bytes);
    let _ = parse::<GetArticleGroupsResponse>("getArticleGroups", bytes);
    let _ = parse::<GetStockResponse>("getStock", bytes);
    let _ = parse::<GetStockHistoryResponse>("getStockHistoryV2", bytes);
    let _ = parse::<FindRelationResponse>("findRelationV2", bytes);
    let _ = parse::<GetRelationsResponse>("getRelations", bytes);
    let _ = parse::<CreateRelationResponse>("createRelation", bytes);
    let _ = parse::<UpdateRelationResponse>("updateRelation", bytes);
    let _ = parse::<CreateOrderV3Response>("createOrderV3", bytes);
    let _ = parse::<GetOrderResponse>("getOrder", bytes);
    let _ = parse::<GetOrdersResponse>("getOrders", bytes);
    let _ = parse::<VatGroupListResponse>("getVatGroupList", bytes);
    let _ = parse::<GetTurnoverGroupsResponse>("getTurnoverGroups", bytes);
    let _ = parse::<GetPaymentMethodsResponse>("getPaymentMethods", bytes);
    let _ = parse::<BranchesResponse>("getBranches", bytes);
    let _ = parse::<GetEmployeesResponse>("getEmployees", bytes);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn fuzz_mplus_answers_never_panic(bytes in input()) {
        parse_all(&bytes);
    }
}

#[test]
fn the_seeds_parse_as_they_are() {
    // The campaign mutates real answers: they must be read whole first, or it would only
    // test the error paths.
    let products = examples()
        .into_iter()
        .find(|e| String::from_utf8_lossy(e).contains("getProductsResponse"))
        .expect("a getProducts answer");
    assert!(parse::<GetProductsResponse>("getProducts", &products).is_ok());
    assert!(!scan_page(&products).expect("scans").articles.is_empty());
}
