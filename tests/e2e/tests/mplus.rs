//! The MplusKASSA connector end to end: the built-in component, run by the host, against the
//! MplusKASSA simulator with every request validated against the real WSDL's schema.
//!
//! Covered: a full product read of a catalogue with variant families reaches every article
//! exactly once across pages, then only what changed; stock full read and increments;
//! customers found, created and updated as persons and companies; orders created once under a
//! resend, a lost answer and a rewrite; unknown SKUs and bad credentials; order status; the
//! reference streams.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use koppel::runtime::bindings::{
    Address, Amount, ConnectorError, Customer, Decimal, DeliveryState, ErrorKind, NamedValue,
    Order, OrderLine, OrderState, OrderStatus, OutcomeStatus, PaymentState, Product, Record,
    Shipping, StockLevel, Value, WriteOptions, WriteOutcome,
};
use koppel::runtime::{
    CallError, Connection, ConnectionSpec, Connector, Limits, MemorySink, Runtime, RuntimeOptions,
    Session,
};
use koppel_sim_faults::{Fault, Matcher};
use koppel_sim_mplus::{
    ArticleChange, MplusOptions, MplusSimulator, NewArticle, NewProduct, ProductChange,
};

const SECRET: &str = "sim-Secret-4711";

// ----- harness -----

struct Harness {
    sim: MplusSimulator,
    connector: Arc<Connector>,
    sink: MemorySink,
}

async fn harness(products: usize) -> Harness {
    harness_with(MplusOptions {
        products,
        ..MplusOptions::default()
    })
    .await
}

/// A harness on a simulator with these options (validating, with the test's secret).
async fn harness_with(options: MplusOptions) -> Harness {
    let sim = MplusSimulator::start(MplusOptions {
        variant_share: 0.4,
        validate: true,
        secret: SECRET.into(),
        ..options
    })
    .await
    .expect("start the simulator");
    assert!(
        sim.validating(),
        "the MplusQapi WSDL must be found (../shared/reference/mplus or KOPPEL_REFERENCE_DIR): validating every envelope is part of these tests"
    );
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: Some(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache")),
        ..RuntimeOptions::default()
    })
    .expect("runtime");
    let builtin = koppel::connectors::builtin_by_id("mplus").expect("mplus is built in");
    let connector = runtime
        .load("mplus", builtin.wasm)
        .await
        .expect("load mplus");
    Harness {
        sim,
        connector,
        sink: MemorySink::new(),
    }
}

/// Fast back-off, so retries in tests take milliseconds.
fn quick_limits() -> Limits {
    Limits {
        retry_backoff: Duration::from_millis(2),
        ..Limits::default()
    }
}

impl Harness {
    fn config(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut config: BTreeMap<String, String> = [
            ("base_url", self.sim.url().as_str()),
            ("ident", self.sim.ident()),
            ("secret", self.sim.secret()),
            (
                "payment_methods",
                r#"{"iDEAL": "IDEAL", "PayPal": "PAYPAL"}"#,
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            config.insert(k.to_string(), v.to_string());
        }
        config
    }

    fn connection_with(&self, config: BTreeMap<String, String>, limits: Limits) -> Connection {
        let mut spec = ConnectionSpec::new("tenant", "till", config);
        spec.limits = limits;
        spec.activity = Arc::new(self.sink.clone());
        self.connector.connect(spec).expect("valid config")
    }

    async fn session(&self, extra: &[(&str, &str)]) -> Session {
        self.connection_with(self.config(extra), quick_limits())
            .session()
            .await
            .expect("session")
    }

    /// No request broke the schema (and no response, which would be a simulator bug), and the
    /// secret never reached the activity log.
    fn finish(&self) {
        self.sim.assert_no_violations(0);
        // Our own connector needs none of the tolerance the simulator has for what other
        // clients leave out: every envelope is complete as sent.
        let omissions = self.sim.omissions();
        assert!(
            omissions.is_empty(),
            "the connector left out what the schema requires: {omissions:#?}"
        );
        let dump = self.sink.dump();
        assert!(!dump.is_empty(), "exchanges were recorded");
        assert!(
            !dump.contains(SECRET),
            "the secret leaked into the activity log"
        );
    }
}

/// Reads until `has_more` is false; returns the records, the last state and the page count.
async fn read_all(
    session: &mut Session,
    stream: &str,
    mut state: Option<String>,
    limit: u32,
) -> (Vec<Record>, Option<String>, usize) {
    let mut records = Vec::new();
    let mut pages = 0;
    loop {
        let page = session
            .read(stream, state.as_deref(), limit)
            .await
            .unwrap_or_else(|e| panic!("read {stream}: {e}"));
        pages += 1;
        assert!(
            page.records.len() <= limit as usize,
            "{stream}: a page of {} records for a limit of {limit}",
            page.records.len()
        );
        records.extend(page.records);
        state = page.state;
        if !page.has_more {
            return (records, state, pages);
        }
        assert!(pages < 5_000, "{stream} never ends");
    }
}

fn products(records: Vec<Record>) -> Vec<Product> {
    records
        .into_iter()
        .map(|r| match r {
            Record::Product(p) => p,
            other => panic!("not a product: {other:?}"),
        })
        .collect()
}

fn stock_levels(records: Vec<Record>) -> Vec<StockLevel> {
    records
        .into_iter()
        .map(|r| match r {
            Record::Stock(s) => s,
            other => panic!("not stock: {other:?}"),
        })
        .collect()
}

/// The article numbers a product record carries: its variants', or its own.
fn articles_of(p: &Product) -> Vec<i64> {
    let keys: Vec<&str> = if p.variants.is_empty() {
        vec![p.key.as_str()]
    } else {
        p.variants.iter().map(|v| v.key.as_str()).collect()
    };
    keys.iter()
        .map(|k| k.parse().unwrap_or_else(|_| panic!("article key {k:?}")))
        .collect()
}

fn extra<'a>(values: &'a [NamedValue], name: &str) -> Option<&'a Value> {
    values.iter().find(|v| v.name == name).map(|v| &v.value)
}

fn connector_error(error: CallError) -> ConnectorError {
    match error {
        CallError::Connector(e) => e,
        other => panic!("expected a connector error, got {other}"),
    }
}

// ----- products -----

#[tokio::test]
async fn articles_with_the_same_size_and_colour_stay_distinct_variants() {
    let h = harness(3).await;
    let article = |number: i64, description: &str| NewArticle {
        number,
        description: description.into(),
        colour: "navy".into(),
        size: "M".into(),
        barcode: koppel_sim_mplus::ean13(number as u64),
        price_incl: 4995,
        ..NewArticle::default()
    };
    h.sim
        .add_product(NewProduct {
            number: 7001,
            description: "Polo".into(),
            extra_text: String::new(),
            group_numbers: vec![],
            articles: vec![
                article(70011, "Polo navy M short sleeve"),
                article(70012, "Polo navy M long sleeve"),
                NewArticle {
                    size: "L".into(),
                    ..article(70013, "Polo navy L")
                },
            ],
        })
        .expect("add product");
    let mut session = h.session(&[]).await;
    let (records, _, _) = read_all(&mut session, "products", None, 100).await;
    let read = products(records);
    let polo = read.iter().find(|p| p.key == "P7001").expect("the family");
    let options: Vec<Vec<(&str, &str)>> = polo
        .variants
        .iter()
        .map(|v| {
            v.options
                .iter()
                .map(|o| (o.group.as_str(), o.option.as_str()))
                .collect()
        })
        .collect();
    assert_eq!(
        options,
        vec![
            vec![
                ("Size", "M"),
                ("Colour", "navy"),
                ("Variant", "Polo navy M short sleeve")
            ],
            vec![
                ("Size", "M"),
                ("Colour", "navy"),
                ("Variant", "Polo navy M long sleeve")
            ],
            vec![("Size", "L"), ("Colour", "navy")],
        ]
    );
    h.finish();
}

#[tokio::test]
async fn products_reach_every_article_once_across_pages_then_only_changes() {
    let h = harness(240).await;
    let mut session = h.session(&[]).await;

    // A small page size cuts families across pages.
    let (records, state, pages) = read_all(&mut session, "products", None, 25).await;
    let read = products(records);
    assert!(pages > 10, "{pages} pages");
    let mut seen: Vec<i64> = read.iter().flat_map(articles_of).collect();
    let total = seen.len();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), total, "an article was read twice");
    let mut expected = h.sim.article_numbers();
    expected.sort_unstable();
    assert_eq!(seen, expected, "every article, exactly once");

    // Families are whole and keyed by their product number.
    let families = h.sim.variant_products();
    assert!(families.len() > 20, "the catalogue has families");
    let by_key: HashMap<&str, &Product> = read.iter().map(|p| (p.key.as_str(), p)).collect();
    for family in &families {
        let p = by_key
            .get(format!("P{family}").as_str())
            .unwrap_or_else(|| panic!("family {family} missing"));
        let mut variants = articles_of(p);
        variants.sort_unstable();
        let mut articles = h.sim.articles_of(*family);
        articles.sort_unstable();
        assert_eq!(variants, articles, "family {family} is whole");
        assert!(
            p.variants
                .iter()
                .all(|v| v.options.iter().any(|o| o.group == "Size")),
            "family {family}: variants differ by size"
        );
        // Size and colour are the till's, option by option.
        for v in &p.variants {
            let number: i64 = v.key.parse().expect("article number");
            let article = h.sim.article_view(number).expect("article");
            let option = |group: &str| {
                v.options
                    .iter()
                    .find(|o| o.group == group)
                    .map(|o| o.option.as_str())
            };
            assert_eq!(option("Size"), Some(article.size.as_str()), "{number}");
            assert_eq!(
                option("Colour"),
                Some(article.colour.as_str()).filter(|c| !c.is_empty()),
                "{number}: the colour option"
            );
        }
        let sets: BTreeSet<Vec<(&str, &str)>> = p
            .variants
            .iter()
            .map(|v| {
                v.options
                    .iter()
                    .map(|o| (o.group.as_str(), o.option.as_str()))
                    .collect()
            })
            .collect();
        assert_eq!(
            sets.len(),
            p.variants.len(),
            "family {family}: options differ"
        );
    }
    assert!(
        read.iter()
            .flat_map(|p| &p.variants)
            .any(|v| v.options.iter().any(|o| o.group == "Colour")),
        "the catalogue's families have colours"
    );

    // Fields: prices with tax, categories from article groups, EAN, the rest in extra.
    let simple = read
        .iter()
        .find(|p| p.variants.is_empty() && p.key != "999")
        .expect("a simple product");
    let price = &simple.prices[0];
    assert_eq!(price.currency, "EUR");
    assert!(price.gross > price.net && price.net > 0, "{price:?}");
    assert!(
        [21, 9, 0].contains(&price.tax_rate.units) && price.tax_rate.scale == 0,
        "{price:?}"
    );
    assert_eq!(simple.categories.len(), 1);
    assert_eq!(simple.categories[0].len(), 2, "top group and leaf");
    assert!(simple.ean.as_ref().is_some_and(|e| e.len() == 13));
    assert!(matches!(
        extra(&simple.extra, "webshop"),
        Some(Value::Boolean(_))
    ));
    assert!(matches!(
        extra(&simple.extra, "vat_code"),
        Some(Value::Integer(_))
    ));
    assert_eq!(
        h.sim.request_count("getArticleGroups"),
        1,
        "read once per session"
    );

    // Changes: one article of a family and one simple product.
    let family = families[0];
    let changed_article = h.sim.articles_of(family)[1];
    let simple_article: i64 = simple.key.parse().expect("article number");
    h.sim
        .change_article(
            changed_article,
            ArticleChange {
                price_incl: Some(12_345),
                ..ArticleChange::default()
            },
        )
        .expect("change");
    h.sim
        .change_article(
            simple_article,
            ArticleChange {
                description: Some("Renamed at the till".into()),
                ..ArticleChange::default()
            },
        )
        .expect("change");

    let (records, state, _) = read_all(&mut session, "products", state, 25).await;
    let changed = products(records);
    let mut keys: Vec<&str> = changed.iter().map(|p| p.key.as_str()).collect();
    keys.sort_unstable();
    let family_key = format!("P{family}");
    let mut expected_keys = vec![family_key.as_str(), simple.key.as_str()];
    expected_keys.sort_unstable();
    assert_eq!(keys, expected_keys, "only the changed products");
    let f = changed
        .iter()
        .find(|p| p.key == family_key)
        .expect("family");
    assert_eq!(f.variants.len(), h.sim.articles_of(family).len(), "whole");
    let v = f
        .variants
        .iter()
        .find(|v| v.key == changed_article.to_string())
        .expect("the changed variant");
    assert_eq!(v.prices[0].gross, 12_345);
    let s = changed
        .iter()
        .find(|p| p.key == simple.key)
        .expect("simple");
    assert_eq!(s.name, "Renamed at the till");

    // Nothing new: nothing read.
    let (records, _, pages) = read_all(&mut session, "products", state, 25).await;
    assert!(records.is_empty() && pages == 1);

    // Lookup by article number and by family key.
    let found = session
        .lookup("products", &changed_article.to_string())
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.id, family_key);
    assert!(
        session
            .lookup("products", "424242")
            .await
            .expect("lookup")
            .is_none()
    );
    h.finish();
}

#[tokio::test]
async fn a_change_to_a_product_itself_comes_through_and_the_read_goes_on() {
    let h = harness(40).await;
    let mut session = h.session(&[]).await;
    let (_, state, _) = read_all(&mut session, "products", None, 1000).await;

    // The product itself changes (its description and groups): its own marker moves, its
    // articles keep theirs (API-NOTES 5: products and articles share one sequence).
    let family = h.sim.variant_products()[0];
    h.sim
        .change_product(
            family,
            ProductChange {
                description: Some("Renamed family".into()),
                ..ProductChange::default()
            },
        )
        .expect("change the product");
    let (records, state, _) = read_all(&mut session, "products", state, 1000).await;
    let changed = products(records);
    assert_eq!(
        changed.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(),
        vec![format!("P{family}").as_str()],
        "the changed product, whole"
    );
    assert_eq!(changed[0].name, "Renamed family");
    assert_eq!(changed[0].variants.len(), h.sim.articles_of(family).len());

    // The read goes on: a later change to an article comes through too, and then nothing.
    let article = h.sim.articles_of(family)[0];
    h.sim
        .change_article(
            article,
            ArticleChange {
                price_incl: Some(2_500),
                ..ArticleChange::default()
            },
        )
        .expect("change the article");
    let (records, state, _) = read_all(&mut session, "products", state, 1000).await;
    let changed = products(records);
    assert_eq!(changed.len(), 1);
    let variant = changed[0]
        .variants
        .iter()
        .find(|v| v.key == article.to_string())
        .expect("the changed article");
    assert_eq!(variant.prices[0].gross, 2_500);
    let (records, _, _) = read_all(&mut session, "products", state, 1000).await;
    assert!(records.is_empty(), "nothing changed since");
    h.finish();
}

// ----- stock -----

#[tokio::test]
async fn stock_reads_everything_once_then_the_increments() {
    let h = harness(60).await;
    let mut session = h.session(&[]).await;

    // What should be read: the stock articles, as the products stream reports them.
    let (records, _, _) = read_all(&mut session, "products", None, 1000).await;
    let mut stock_articles: Vec<i64> = Vec::new();
    for p in products(records) {
        let extras: Vec<&[NamedValue]> = if p.variants.is_empty() {
            vec![p.extra.as_slice()]
        } else {
            p.variants.iter().map(|v| v.extra.as_slice()).collect()
        };
        for e in extras {
            if matches!(extra(e, "stock_article"), Some(Value::Boolean(true)))
                && let Some(Value::Integer(n)) = extra(e, "article_number")
            {
                stock_articles.push(*n);
            }
        }
    }
    stock_articles.sort_unstable();
    assert!(stock_articles.len() > 50);

    // The full read, with a change to an already-read article in the middle of it.
    let first = session.read("stock", None, 20).await.expect("read");
    assert!(first.has_more);
    let early = match &first.records[0] {
        Record::Stock(s) => s.key.parse::<i64>().expect("article number"),
        other => panic!("{other:?}"),
    };
    h.sim.set_stock(early, 1, 33, 0).expect("set stock");
    let (rest, state, _) = read_all(&mut session, "stock", first.state, 20).await;
    let levels = stock_levels(first.records.into_iter().chain(rest).collect());
    let mut read: Vec<i64> = levels
        .iter()
        .map(|s| s.key.parse().expect("article number"))
        .collect();
    let during = read.iter().filter(|a| **a == early).count();
    assert_eq!(
        during, 2,
        "the article changed during the full read is read again"
    );
    read.sort_unstable();
    read.dedup();
    assert_eq!(read, stock_articles, "every stock article of the branch");
    for s in &levels {
        let article: i64 = s.key.parse().expect("number");
        let sim = h.sim.stock(article, 1).expect("known");
        assert_eq!(s.location.as_deref(), Some("1"));
        let milli = |d: &Decimal| d.units * 10i64.pow(3 - u32::from(d.scale));
        if article != early {
            assert_eq!(milli(&s.available), sim.free_milli, "article {article}");
            assert_eq!(milli(&s.reserved), sim.reserved_milli, "article {article}");
        }
        assert_eq!(milli(&s.on_hand), milli(&s.available) + milli(&s.reserved));
    }
    let last_early = levels.iter().rev().find(|s| s.key == early.to_string());
    assert_eq!(last_early.map(|s| s.available.units), Some(33));

    // Increments: exactly the changed records, with their new figures.
    let (a, b) = (stock_articles[3], stock_articles[7]);
    h.sim.set_stock(a, 1, 5, 2).expect("set");
    h.sim.correct_stock(b, 1, -1).expect("correct");
    let before_b = h.sim.stock(b, 1).expect("known");
    let (records, state, _) = read_all(&mut session, "stock", state, 100).await;
    let changed = stock_levels(records);
    let keys: BTreeSet<&str> = changed.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(
        keys,
        [a.to_string(), b.to_string()]
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>()
    );
    assert_eq!(changed.len(), 2);
    let sa = changed.iter().find(|s| s.key == a.to_string()).expect("a");
    assert_eq!(
        (sa.on_hand.units, sa.reserved.units, sa.available.units),
        (7, 2, 5)
    );
    let sb = changed.iter().find(|s| s.key == b.to_string()).expect("b");
    assert_eq!(sb.available.units * 1000, before_b.free_milli);
    let (records, _, _) = read_all(&mut session, "stock", state, 100).await;
    assert!(records.is_empty(), "nothing changed since");

    // Two branches: every article in both (an article changed at the full read's start comes
    // again afterwards, in both branches).
    let mut two = h.session(&[("stock_branches", "1,2")]).await;
    let (records, _, _) = read_all(&mut two, "stock", None, 50).await;
    let levels = stock_levels(records);
    for branch in ["1", "2"] {
        let articles: BTreeSet<&str> = levels
            .iter()
            .filter(|s| s.location.as_deref() == Some(branch))
            .map(|s| s.key.as_str())
            .collect();
        assert_eq!(articles.len(), stock_articles.len(), "branch {branch}");
    }
    // A change in branch 2 alone comes with the article's stock in branch 1 too.
    let (_, state, _) = read_all(&mut two, "stock", None, 1000).await;
    h.sim.set_stock(a, 2, 9, 0).expect("set");
    let (records, _, _) = read_all(&mut two, "stock", state, 100).await;
    let changed = stock_levels(records);
    let mut places: Vec<(&str, &str)> = changed
        .iter()
        .map(|s| (s.key.as_str(), s.location.as_deref().unwrap_or("")))
        .collect();
    places.sort_unstable();
    let a_text = a.to_string();
    assert_eq!(places, vec![(a_text.as_str(), "1"), (a_text.as_str(), "2")]);
    h.finish();
}

#[tokio::test]
async fn stock_changes_come_from_the_history_feed_page_by_page() {
    let h = harness(60).await;
    let mut session = h.session(&[]).await;
    let (_, mut state, _) = read_all(&mut session, "stock", None, 1000).await;
    let stock_articles: Vec<i64> = h
        .sim
        .article_numbers()
        .into_iter()
        .filter(|a| h.sim.article_view(*a).is_some_and(|v| v.stock_article))
        .collect();

    // A backlog of 30 changes to 15 articles (two each), read 10 records at a time.
    let changed = &stock_articles[..15];
    for (i, article) in changed.iter().enumerate() {
        h.sim.correct_stock(*article, 1, 3).expect("correct");
        h.sim
            .set_stock(*article, 1, 40 + i as i64, 1)
            .expect("set stock");
    }
    let exchanges_before = h.sink.exchanges().len();
    let mut levels = Vec::new();
    let mut pages = 0;
    loop {
        let page = session
            .read("stock", state.as_deref(), 10)
            .await
            .expect("read stock");
        assert!(page.records.len() <= 10, "{} records", page.records.len());
        levels.extend(stock_levels(page.records));
        state = page.state;
        pages += 1;
        if !page.has_more {
            break;
        }
        assert!(pages < 50, "the increments never end");
    }
    assert!(pages >= 3, "{pages} pages");
    // Every changed article, with its figures now; nothing else.
    let keys: BTreeSet<i64> = levels.iter().map(|s| s.key.parse().expect("n")).collect();
    assert_eq!(keys, changed.iter().copied().collect::<BTreeSet<_>>());
    for (i, article) in changed.iter().enumerate() {
        let last = levels
            .iter()
            .rev()
            .find(|s| s.key == article.to_string())
            .expect("read");
        assert_eq!(
            (last.available.units, last.reserved.units),
            (40 + i as i64, 1),
            "article {article}"
        );
    }
    // The documented change feed, a page at a time; current levels of those articles alone.
    let exchanges = h.sink.exchanges();
    let bodies: Vec<&str> = exchanges[exchanges_before..]
        .iter()
        .map(|x| x.request_body.as_str())
        .collect();
    let history: Vec<&&str> = bodies
        .iter()
        .filter(|b| b.contains("<ns1:getStockHistoryV2>"))
        .collect();
    assert_eq!(history.len(), pages, "one history page per read");
    assert!(
        history
            .iter()
            .all(|b| b.contains("<ns1:sinceStockIdLimit>10</ns1:sinceStockIdLimit>")),
        "{history:?}"
    );
    for body in bodies.iter().filter(|b| b.contains("<ns1:getStock>")) {
        let named = body.matches("<ns1:articleNumbers>").count() - 1;
        assert!(
            (1..=10).contains(&named),
            "getStock names {named} articles: {body}"
        );
    }
    let (records, _, _) = read_all(&mut session, "stock", state, 10).await;
    assert!(records.is_empty(), "nothing changed since");
    h.finish();
}

#[tokio::test]
async fn the_stock_full_read_pages_past_a_server_cap_below_its_page_size() {
    // The server's page cap is undocumented: here 250, below the connector's 1,000.
    let h = harness_with(MplusOptions {
        products: 400,
        max_page: 250,
        ..MplusOptions::default()
    })
    .await;
    let mut session = h.session(&[]).await;
    let (records, _, pages) = read_all(&mut session, "stock", None, 1000).await;
    let mut read: Vec<i64> = stock_levels(records)
        .iter()
        .map(|s| s.key.parse().expect("article number"))
        .collect();
    read.sort_unstable();
    read.dedup();
    let mut expected: Vec<i64> = h
        .sim
        .article_numbers()
        .into_iter()
        .filter(|a| h.sim.article_view(*a).is_some_and(|v| v.stock_article))
        .collect();
    expected.sort_unstable();
    assert!(expected.len() > 500, "{} stock articles", expected.len());
    let missing: Vec<&i64> = expected.iter().filter(|a| !read.contains(a)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} stock articles never read, from {:?} on",
        missing.len(),
        expected.len(),
        missing.first()
    );
    assert_eq!(read, expected, "every stock article, past the cap");
    assert!(pages > 2, "{pages} pages");
    h.finish();
}

// ----- customers -----

fn address(street: &str, number: &str, company: Option<&str>) -> Address {
    Address {
        company: company.map(str::to_owned),
        first_name: Some("Anna".into()),
        last_name: Some("van der Berg".into()),
        street: street.into(),
        house_number: Some(number.into()),
        additional: None,
        postal_code: "3511 AB".into(),
        city: "Utrecht".into(),
        country: "NL".into(),
        phone: None,
    }
}

fn customer(key: &str, email: &str, company: Option<&str>) -> Customer {
    Customer {
        key: key.into(),
        email: email.into(),
        company_name: company.map(str::to_owned),
        first_name: Some("Anna".into()),
        last_name: Some("van der Berg".into()),
        phone: Some("06-12345678".into()),
        vat_id: company.map(|_| "NL123456789B01".to_owned()),
        billing_address: Some(address("Oudegracht", "12", company)),
        shipping_address: None,
        external_ids: vec![],
        extra: vec![],
    }
}

fn no_options() -> WriteOptions {
    WriteOptions {
        create_only: vec![],
        settings: vec![],
    }
}

async fn write_one(session: &mut Session, stream: &str, record: Record) -> WriteOutcome {
    let mut outcomes = session
        .write(stream, &[record], &no_options())
        .await
        .unwrap_or_else(|e| panic!("write {stream}: {e}"));
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

#[tokio::test]
async fn customers_are_found_by_email_created_and_updated_as_persons_and_companies() {
    let h = harness(5).await;
    let mut session = h.session(&[]).await;
    let relations = h.sim.relations();
    let known_company = relations.iter().find(|r| r.is_company()).expect("company");
    let known_person = relations.iter().find(|r| !r.is_company()).expect("person");

    // Lookup by e-mail, in any case.
    let found = session
        .lookup("customers", &known_company.email.to_uppercase())
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.id, known_company.number.to_string());
    let Some(Record::Customer(c)) = found.record else {
        panic!("a customer record")
    };
    assert_eq!(
        c.company_name.as_deref(),
        Some(known_company.company_name.as_str())
    );
    assert_eq!(c.email, known_company.email);
    let person = session
        .lookup("customers", &known_person.email)
        .await
        .expect("lookup")
        .expect("found");
    let Some(Record::Customer(p)) = person.record else {
        panic!("a customer record")
    };
    assert_eq!(p.company_name, None);
    assert!(
        session
            .lookup("customers", "nobody@example.nl")
            .await
            .expect("lookup")
            .is_none()
    );

    // Create a person and a company.
    let count = h.sim.relations().len();
    let anna = customer("shop-c-1", "anna@example.nl", None);
    let created = write_one(&mut session, "customers", Record::Customer(anna.clone())).await;
    assert_eq!(created.status, OutcomeStatus::Created, "{created:?}");
    let anna_number: i64 = created
        .target_id
        .as_deref()
        .expect("id")
        .parse()
        .expect("number");
    let r = h.sim.relation(anna_number).expect("stored");
    assert_eq!(r.name, "Anna van der Berg");
    assert!(!r.is_company());
    assert_eq!(r.address, "Oudegracht 12");
    assert_eq!(r.email, "anna@example.nl");
    assert_eq!(r.ext_id, "shop-c-1");

    let firm = customer(
        "shop-c-2",
        "inkoop@berg.example",
        Some("Berg Interieur B.V."),
    );
    let created = write_one(&mut session, "customers", Record::Customer(firm.clone())).await;
    assert_eq!(created.status, OutcomeStatus::Created, "{created:?}");
    let firm_number: i64 = created
        .target_id
        .as_deref()
        .expect("id")
        .parse()
        .expect("number");
    let r = h.sim.relation(firm_number).expect("stored");
    assert!(r.is_company());
    assert_eq!(r.name, "Berg Interieur B.V.");
    assert_eq!(r.company_name, "Berg Interieur B.V.");
    assert_eq!(r.contact, "Anna van der Berg");
    assert_eq!(r.vat_number, "NL123456789B01");
    assert_eq!(h.sim.relations().len(), count + 2);

    // The same again: unchanged, no update sent.
    let again = write_one(&mut session, "customers", Record::Customer(anna.clone())).await;
    assert_eq!(again.status, OutcomeStatus::Unchanged, "{again:?}");
    assert_eq!(
        again.target_id.as_deref(),
        Some(anna_number.to_string().as_str())
    );
    assert_eq!(h.sim.request_count("updateRelation"), 0);

    // Moved: updated in place.
    let mut moved = anna;
    moved.billing_address = Some(address("Neude", "3", None));
    moved.email = "ANNA@example.nl".into();
    let updated = write_one(&mut session, "customers", Record::Customer(moved)).await;
    assert_eq!(updated.status, OutcomeStatus::Updated, "{updated:?}");
    assert_eq!(
        updated.target_id.as_deref(),
        Some(anna_number.to_string().as_str())
    );
    assert_eq!(
        h.sim.relation(anna_number).expect("stored").address,
        "Neude 3"
    );
    assert_eq!(h.sim.relations().len(), count + 2, "no new relation");

    // The company gets a new contact person and phone number: updated in place, still the
    // company, the new person as its contact.
    let mut restaffed = firm;
    restaffed.first_name = Some("Bram".into());
    restaffed.last_name = Some("de Wit".into());
    restaffed.phone = Some("030-7654321".into());
    let updates = h.sim.request_count("updateRelation");
    let updated = write_one(&mut session, "customers", Record::Customer(restaffed)).await;
    assert_eq!(updated.status, OutcomeStatus::Updated, "{updated:?}");
    assert_eq!(
        updated.target_id.as_deref(),
        Some(firm_number.to_string().as_str()),
        "the same relation"
    );
    assert_eq!(h.sim.request_count("updateRelation"), updates + 1);
    let r = h.sim.relation(firm_number).expect("stored");
    assert!(r.is_company());
    assert_eq!(r.name, "Berg Interieur B.V.");
    assert_eq!(r.company_name, "Berg Interieur B.V.");
    assert_eq!(r.contact, "Bram de Wit");
    assert_eq!(r.telephone, "030-7654321");
    assert_eq!(r.email, "inkoop@berg.example");
    assert_eq!(r.vat_number, "NL123456789B01");
    assert_eq!(h.sim.relations().len(), count + 2, "no new relation");

    // No e-mail: that record fails, naming the field.
    let nameless = write_one(
        &mut session,
        "customers",
        Record::Customer(customer("shop-c-3", " ", None)),
    )
    .await;
    assert_eq!(nameless.status, OutcomeStatus::Failed);
    assert_eq!(nameless.field.as_deref(), Some("email"));

    // Read: every relation once.
    let (records, _, _) = read_all(&mut session, "customers", None, 7).await;
    let mut keys: Vec<String> = records
        .into_iter()
        .map(|r| match r {
            Record::Customer(c) => c.key,
            other => panic!("not a customer: {other:?}"),
        })
        .collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n);
    assert_eq!(n, h.sim.relations().len());
    h.finish();
}

#[tokio::test]
async fn an_order_and_a_customer_write_keep_what_else_the_till_knows_of_the_relation() {
    let h = harness(10).await;
    let (a, _) = skus(&h.sim);
    // What a till knows of a regular besides the address: birthday, price group, discount,
    // loyalty cards, credit limit, contact persons, mobile, website.
    let till_side = |r: &koppel_sim_mplus::Relation| {
        (
            r.birth_date,
            r.price_group_number,
            r.discount_percentage,
            r.card_numbers.clone(),
            r.credit_limit,
            r.contacts.clone(),
            (
                r.mobile.clone(),
                r.website.clone(),
                r.commerce_number.clone(),
            ),
            (r.ext_id.clone(), r.active, r.default_vat_method.clone()),
        )
    };
    let number = h
        .sim
        .add_relation(koppel_sim_mplus::Relation {
            ext_id: "POS-77".into(),
            active: true,
            name: "Anna van der Berg".into(),
            address: "Lange Nieuwstraat 1".into(),
            zipcode: "3512 PA".into(),
            city: "Utrecht".into(),
            country: "NL".into(),
            telephone: "030-1111111".into(),
            mobile: "06-22223333".into(),
            website: "https://anna.example".into(),
            email: "anna.regular@example.nl".into(),
            birth_date: Some((14, 2, 1981)),
            price_group_number: Some(2),
            discount_percentage: 0,
            credit_limit: Some(50_000),
            commerce_number: "87654321".into(),
            default_vat_method: "VAT-METHOD-INCLUSIVE".into(),
            contacts: vec![koppel_sim_mplus::Contact {
                name: "Bram van der Berg".into(),
                telephone: "06-44445555".into(),
                email: "bram@example.nl".into(),
            }],
            card_numbers: vec!["2000000012345".into(), "2000000067890".into()],
            ..koppel_sim_mplus::Relation::default()
        })
        .expect("add the relation");
    let before = h.sim.relation(number).expect("stored");
    let mut session = h.session(&[]).await;

    // A web order with a new address brings the address up to date, and nothing else changes.
    let outcome = write_one(
        &mut session,
        "orders",
        Record::Order(order("50001", "anna.regular@example.nl", &[&a], true)),
    )
    .await;
    assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
    assert_eq!(h.sim.request_count("updateRelation"), 1);
    let after = h.sim.relation(number).expect("stored");
    assert_eq!(
        after.address, "Oudegracht 12",
        "the order's billing address"
    );
    assert_eq!(
        till_side(&after),
        till_side(&before),
        "the till's own fields"
    );

    // So does a customer written through the customers stream.
    let mut customer = customer("shop-c-77", "anna.regular@example.nl", None);
    customer.phone = Some("030-2222222".into());
    let written = write_one(&mut session, "customers", Record::Customer(customer)).await;
    assert_eq!(written.status, OutcomeStatus::Updated, "{written:?}");
    let after = h.sim.relation(number).expect("stored");
    assert_eq!(after.telephone, "030-2222222");
    assert_eq!(
        till_side(&after),
        till_side(&before),
        "the till's own fields"
    );
    h.finish();
}

// ----- orders -----

const PRICE: i64 = 1995;

fn line(sku: &str, quantity: i64) -> OrderLine {
    OrderLine {
        sku: sku.into(),
        name: format!("Article {sku}"),
        quantity: Decimal {
            units: quantity,
            scale: 0,
        },
        unit_price: Amount {
            net: 1649,
            gross: PRICE,
        },
        tax_rate: Decimal {
            units: 21,
            scale: 0,
        },
        total: Amount {
            net: 1649 * quantity,
            gross: PRICE * quantity,
        },
        extra: vec![],
    }
}

fn order(number: &str, email: &str, skus: &[&str], paid: bool) -> Order {
    let lines: Vec<OrderLine> = skus.iter().map(|s| line(s, 2)).collect();
    let gross: i64 = lines.iter().map(|l| l.total.gross).sum::<i64>() + 495;
    let net: i64 = lines.iter().map(|l| l.total.net).sum::<i64>() + 409;
    let mut buyer = customer(&format!("cust-{number}"), email, None);
    buyer.billing_address = None;
    Order {
        key: format!("0190ab{number}"),
        number: number.into(),
        external_id: None,
        placed_at: "2025-06-02T12:30:00Z".into(),
        state: OrderState::Open,
        payment_state: if paid {
            PaymentState::Paid
        } else {
            PaymentState::Open
        },
        delivery_state: DeliveryState::Open,
        customer: buyer,
        billing_address: address("Oudegracht", "12", None),
        shipping_address: Some(address("Neude", "3", None)),
        lines,
        shipping: Some(Shipping {
            method: "PostNL".into(),
            cost: Amount {
                net: 409,
                gross: 495,
            },
            tax_rate: Decimal {
                units: 2100,
                scale: 2,
            },
        }),
        payment_method: Some("iDEAL".into()),
        totals: Amount { net, gross },
        currency: "EUR".into(),
        country: "NL".into(),
        extra: vec![NamedValue {
            name: "payment_reference".into(),
            value: Value::Text(format!("psp-{number}")),
        }],
    }
}

/// Two article numbers the simulator sells.
fn skus(sim: &MplusSimulator) -> (String, String) {
    let articles: Vec<i64> = sim
        .article_numbers()
        .into_iter()
        .filter(|a| *a >= 1_000_000)
        .collect();
    (articles[0].to_string(), articles[1].to_string())
}

#[tokio::test]
async fn orders_are_created_once_under_resends_lost_answers_and_rewrites() {
    let h = harness(20).await;
    let (a, b) = skus(&h.sim);
    let mut session = h.session(&[]).await;

    // Created with relation, lines, shipping, employee, branch and the prepayment.
    let first = order("10001", "first.buyer@example.nl", &[&a, &b], true);
    let outcome = write_one(&mut session, "orders", Record::Order(first.clone())).await;
    assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
    let stored = h.sim.order_by_ext_id("10001").expect("stored");
    assert_eq!(outcome.target_id.as_deref(), Some(stored.id.as_str()));
    assert_eq!(stored.employee_number, 999_999);
    assert_eq!((stored.entry_branch, stored.financial_branch), (1, 1));
    let articles: Vec<i64> = stored.lines.iter().map(|l| l.article_number).collect();
    assert_eq!(
        articles,
        vec![a.parse::<i64>().expect("n"), b.parse().expect("n"), 999]
    );
    assert_eq!(stored.lines[0].quantity_milli, 2000);
    // What went over the wire: the key derived from the shop's order id, the VAT codes.
    let sent = h
        .sink
        .exchanges()
        .into_iter()
        .find(|x| {
            x.request_body.contains("<ns1:createOrderV3>")
                && x.request_body
                    .contains("<ns1:extOrderId>10001</ns1:extOrderId>")
        })
        .expect("the createOrderV3 exchange")
        .request_body;
    assert!(
        sent.contains("<ns1:idempotencyKey>koppel-order-0190ab10001</ns1:idempotencyKey>"),
        "{sent}"
    );
    assert_eq!(
        sent.matches("<ns1:vatCode>1</ns1:vatCode>").count(),
        3,
        "{sent}"
    );
    assert_eq!(stored.total_incl, first.totals.gross);
    assert_eq!(stored.prepaid, first.totals.gross);
    assert_eq!(stored.payments[0].method, "IDEAL");
    assert_eq!(stored.payments[0].external_reference, "psp-10001");
    assert!(stored.invoice_ids.is_empty(), "an order, not an invoice");
    let relation = h.sim.relation(stored.relation_number).expect("relation");
    assert_eq!(relation.email, "first.buyer@example.nl");
    assert_eq!(relation.address, "Oudegracht 12", "billing address");
    let delivery = stored.delivery_address.as_ref().expect("delivery address");
    assert_eq!(delivery.address, "Neude 3");

    // Written again (a flow retry): unchanged, the same order, no second create.
    let creates = h.sim.request_count("createOrderV3");
    let again = write_one(&mut session, "orders", Record::Order(first.clone())).await;
    assert_eq!(again.status, OutcomeStatus::Unchanged, "{again:?}");
    assert_eq!(again.target_id.as_deref(), Some(stored.id.as_str()));
    assert_eq!(h.sim.request_count("createOrderV3"), creates);
    let relations = h.sim.relations().len();

    // The answer is lost after the order was made: the host resends the same key, the server
    // replays its answer; one order.
    h.sim
        .faults()
        .push(Matcher::body("createOrderV3"), Fault::LoseResponse);
    let second = order("10002", "first.buyer@example.nl", &[&a], true);
    let outcome = write_one(&mut session, "orders", Record::Order(second)).await;
    assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
    assert_eq!(h.sim.faults().injected(), 1);
    assert_eq!(
        h.sim.request_count("createOrderV3"),
        creates + 2,
        "sent twice"
    );
    let stored2 = h.sim.order_by_ext_id("10002").expect("stored");
    assert_eq!(outcome.target_id.as_deref(), Some(stored2.id.as_str()));
    assert_eq!(
        h.sim.relations().len(),
        relations,
        "the known customer is found, not created again"
    );
    assert_eq!(stored2.relation_number, stored.relation_number);

    // Without host retries the lost answer is a retryable failure; the rewrite finds the order.
    let mut no_retry = h
        .connection_with(
            h.config(&[]),
            Limits {
                http_retries: 0,
                ..quick_limits()
            },
        )
        .session()
        .await
        .expect("session");
    h.sim
        .faults()
        .push(Matcher::body("createOrderV3"), Fault::LoseResponse);
    let third = order("10003", "third.buyer@example.nl", &[&b], true);
    let lost = write_one(&mut no_retry, "orders", Record::Order(third.clone())).await;
    assert_eq!(lost.status, OutcomeStatus::Failed, "{lost:?}");
    assert!(lost.retryable, "{lost:?}");
    let rewrite = write_one(&mut no_retry, "orders", Record::Order(third)).await;
    assert_eq!(rewrite.status, OutcomeStatus::Unchanged, "{rewrite:?}");
    let stored3 = h.sim.order_by_ext_id("10003").expect("stored once");
    assert_eq!(rewrite.target_id.as_deref(), Some(stored3.id.as_str()));
    let count = |ext: &str| h.sim.orders().iter().filter(|o| o.ext_id == ext).count();
    assert_eq!((count("10001"), count("10002"), count("10003")), (1, 1, 1));

    // Lookup by external order id.
    let found = session.lookup("orders", "10002").await.expect("lookup");
    assert_eq!(found.map(|f| f.id), Some(stored2.id.clone()));
    assert!(
        session
            .lookup("orders", "99999")
            .await
            .expect("lookup")
            .is_none()
    );

    // Invoice mode (as a write option): paid, delivered and invoiced at once.
    let invoice = WriteOptions {
        create_only: vec![],
        settings: vec![NamedValue {
            name: "order_type".into(),
            value: Value::Text("invoice".into()),
        }],
    };
    let outcomes = session
        .write(
            "orders",
            &[Record::Order(order(
                "10004",
                "first.buyer@example.nl",
                &[&a],
                true,
            ))],
            &invoice,
        )
        .await
        .expect("write");
    assert_eq!(outcomes[0].status, OutcomeStatus::Created, "{outcomes:?}");
    let stored4 = h.sim.order_by_ext_id("10004").expect("stored");
    assert_eq!(stored4.invoice_ids.len(), 1, "invoiced");
    assert!(stored4.fully_paid);

    // A misspelt setting stops the write with the fix; nothing reaches the till.
    let typo = WriteOptions {
        create_only: vec![],
        settings: vec![NamedValue {
            name: "order_typ".into(),
            value: Value::Text("invoice".into()),
        }],
    };
    let orders_before = h.sim.orders().len();
    let error = session
        .write(
            "orders",
            &[Record::Order(order(
                "10005",
                "first.buyer@example.nl",
                &[&a],
                true,
            ))],
            &typo,
        )
        .await
        .expect_err("an unknown setting");
    let text = error.to_string();
    assert!(
        text.contains(
            "`order_typ` is not a write setting of stream `orders`; it takes: order_type"
        ),
        "{text}"
    );
    assert_eq!(h.sim.orders().len(), orders_before);
    h.finish();
}

// ----- the till books what the shop charged -----

/// A shop line that is no product: a promotion (Shopware's `line_type`), by its code.
fn promotion(code: &str, name: &str, gross: i64, net: i64) -> OrderLine {
    OrderLine {
        sku: code.into(),
        name: name.into(),
        quantity: Decimal { units: 1, scale: 0 },
        unit_price: Amount { net, gross },
        tax_rate: Decimal {
            units: 21,
            scale: 0,
        },
        total: Amount { net, gross },
        extra: vec![NamedValue {
            name: "line_type".into(),
            value: Value::Text("promotion".into()),
        }],
    }
}

/// The article web-shop discounts are booked on (not generated by the simulator).
const DISCOUNT_ARTICLE: i64 = 998;

fn add_discount_article(sim: &MplusSimulator) {
    sim.add_product(NewProduct {
        number: DISCOUNT_ARTICLE,
        description: "Korting webshop".into(),
        extra_text: String::new(),
        group_numbers: vec![],
        articles: vec![NewArticle {
            number: DISCOUNT_ARTICLE,
            description: "Korting webshop".into(),
            price_incl: 0,
            webshop: false,
            stock_article: false,
            ..NewArticle::default()
        }],
    })
    .expect("add the discount article");
}

/// The createOrderV3 request koppel sent for an external order id.
fn sent_create(h: &Harness, ext: &str) -> String {
    h.sink
        .exchanges()
        .into_iter()
        .find(|x| {
            x.request_body.contains("<ns1:createOrderV3>")
                && x.request_body
                    .contains(&format!("<ns1:extOrderId>{ext}</ns1:extOrderId>"))
        })
        .expect("the createOrderV3 exchange")
        .request_body
}

#[tokio::test]
async fn a_promotion_and_a_line_discount_reach_the_till_as_the_shop_charged_them() {
    let h = harness(10).await;
    add_discount_article(&h.sim);
    let (a, _) = skus(&h.sim);
    let discount = DISCOUNT_ARTICLE.to_string();
    let mut session = h.session(&[("discount_article", discount.as_str())]).await;
    let mut o = order("60001", "promo@example.nl", &[&a], true);
    // 10% off the line (2 × 19.95 = 39.90, charged 35.91), and a €5 code on the order.
    o.lines[0].total = Amount {
        net: 2968,
        gross: 3591,
    };
    o.lines
        .push(promotion("SUMMER5", "€5 off with SUMMER5", -500, -413));
    o.totals = Amount {
        net: 2968 - 413 + 409,
        gross: 3591 - 500 + 495,
    };
    let outcome = write_one(&mut session, "orders", Record::Order(o.clone())).await;
    assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
    let stored = h.sim.order_by_ext_id("60001").expect("stored");
    assert_eq!(
        stored.total_incl, o.totals.gross,
        "the till's total is the shop's"
    );
    assert_eq!(stored.prepaid, o.totals.gross);
    let article = &stored.lines[0];
    assert_eq!(
        (article.price, article.total_incl),
        (1995, 3591),
        "the shop's price, its discount taken as given"
    );
    assert_eq!(
        article.discount_type,
        Some("DISCOUNT-TYPE-EXTERNAL-DISCOUNT")
    );
    assert_eq!(article.discount_amount, 399);
    let promo = &stored.lines[1];
    assert_eq!(
        (promo.article_number, promo.total_incl, promo.text.as_str()),
        (DISCOUNT_ARTICLE, -500, "€5 off with SUMMER5"),
        "the promotion on the discount article"
    );
    assert_eq!(stored.lines[2].article_number, 999, "shipping");
    h.finish();
}

#[tokio::test]
async fn a_free_shipping_order_is_booked_as_the_shop_charged_it() {
    let h = harness(10).await;
    let (a, _) = skus(&h.sim);
    let mut session = h.session(&[]).await;
    let mut o = order("60002", "free@example.nl", &[&a], true);
    // Free shipping: no costs, and the promotion that made it so, worth nothing by itself.
    if let Some(shipping) = o.shipping.as_mut() {
        shipping.cost = Amount { net: 0, gross: 0 };
    }
    o.lines
        .push(promotion("FREESHIP", "Free shipping from €35", 0, 0));
    o.totals = Amount {
        net: 1649 * 2,
        gross: PRICE * 2,
    };
    let invoice = WriteOptions {
        create_only: vec![],
        settings: vec![NamedValue {
            name: "order_type".into(),
            value: Value::Text("invoice".into()),
        }],
    };
    let outcomes = session
        .write("orders", &[Record::Order(o.clone())], &invoice)
        .await
        .expect("write");
    assert_eq!(outcomes[0].status, OutcomeStatus::Created, "{outcomes:?}");
    assert!(outcomes[0].message.is_none(), "{outcomes:?}");
    let stored = h.sim.order_by_ext_id("60002").expect("stored");
    assert_eq!(stored.total_incl, o.totals.gross);
    assert!(
        stored.fully_paid && stored.invoice_ids.len() == 1,
        "paid and invoiced"
    );
    assert_eq!(
        stored
            .lines
            .iter()
            .map(|l| l.article_number)
            .collect::<Vec<_>>(),
        vec![a.parse::<i64>().expect("n")],
        "no zero lines"
    );
    h.finish();
}

#[tokio::test]
async fn a_relation_with_a_discount_at_the_till_is_booked_at_the_shop_s_prices() {
    let h = harness(10).await;
    let (a, b) = skus(&h.sim);
    let regular = h
        .sim
        .add_relation(koppel_sim_mplus::Relation {
            active: true,
            name: "Vaste Klant".into(),
            email: "vaste.klant@example.nl".into(),
            discount_percentage: 10,
            default_vat_method: "VAT-METHOD-INCLUSIVE".into(),
            ..koppel_sim_mplus::Relation::default()
        })
        .expect("add the relation");
    let mut session = h.session(&[]).await;
    let invoice = WriteOptions {
        create_only: vec![],
        settings: vec![NamedValue {
            name: "order_type".into(),
            value: Value::Text("invoice".into()),
        }],
    };
    let o = order("60003", "vaste.klant@example.nl", &[&a, &b], true);
    let outcomes = session
        .write("orders", &[Record::Order(o.clone())], &invoice)
        .await
        .expect("write");
    assert_eq!(outcomes[0].status, OutcomeStatus::Created, "{outcomes:?}");
    assert!(outcomes[0].message.is_none(), "{outcomes:?}");
    let stored = h.sim.order_by_ext_id("60003").expect("stored");
    assert_eq!(stored.relation_number, regular);
    assert_eq!(
        stored.total_incl, o.totals.gross,
        "the shop's prices are final: the till adds no discount of its own"
    );
    assert!(stored.lines.iter().all(|l| l.discount_type.is_none()));
    let invoice = &h.sim.invoices()[0];
    assert_eq!(invoice.total_incl, o.totals.gross);
    assert_eq!(
        invoice.paid, o.totals.gross,
        "the invoice is paid, not over- or underpaid"
    );
    let sent = sent_create(&h, "60003");
    for flag in [
        "applySalesAndActions",
        "applySalesPrices",
        "applyPriceGroups",
    ] {
        assert!(
            sent.contains(&format!("<ns1:{flag}>false</ns1:{flag}>")),
            "{flag}: {sent}"
        );
    }

    // An order whose lines do not add up to its total fails before anything is sent, naming
    // both totals.
    let mut odd = order("60004", "vaste.klant@example.nl", &[&a], true);
    odd.totals.gross -= 100;
    let creates = h.sim.request_count("createOrderV3");
    let outcome = write_one(&mut session, "orders", Record::Order(odd)).await;
    assert_eq!(outcome.status, OutcomeStatus::Failed, "{outcome:?}");
    let message = outcome.message.unwrap_or_default();
    assert!(
        message.contains("€ 43.85") && message.contains("€ 44.85"),
        "names both totals: {message}"
    );
    assert_eq!(h.sim.request_count("createOrderV3"), creates);

    // An order the till already holds under the number, at another total (made by a client
    // that let the till apply the relation's discount), is not taken as done: it fails,
    // naming both totals.
    let relation = regular.to_string();
    let line = format!(
        "<ns1:line><ns1:articleNumber>{a}</ns1:articleNumber><ns1:data><ns1:quantity>2</ns1:quantity>\
         <ns1:decimalPlaces>0</ns1:decimalPlaces><ns1:price>{PRICE}</ns1:price></ns1:data></ns1:line>"
    );
    let envelope = koppel_sim_mplus::request_envelope(&format!(
        "<ns1:createOrderV3><ns1:request><ns1:idempotencyKey>other-client-60005</ns1:idempotencyKey>\
         <ns1:order><ns1:orderId></ns1:orderId><ns1:extOrderId>60005</ns1:extOrderId>\
         <ns1:employeeNumber>999999</ns1:employeeNumber><ns1:relationNumber>{relation}</ns1:relationNumber>\
         <ns1:lineList>{line}</ns1:lineList></ns1:order></ns1:request></ns1:createOrderV3>"
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let answer = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(h.sim.endpoint())
        .header("Content-Type", "text/xml; charset=utf-8")
        .body(envelope)
        .send()
        .await
        .expect("createOrderV3 by another client");
    assert_eq!(answer.status(), 200);
    let other = h
        .sim
        .order_by_ext_id("60005")
        .expect("made by the other client");
    let shop = order("60005", "vaste.klant@example.nl", &[&a], true);
    assert_ne!(other.total_incl, shop.totals.gross - 495);
    let outcome = write_one(&mut session, "orders", Record::Order(shop)).await;
    assert_eq!(outcome.status, OutcomeStatus::Failed, "{outcome:?}");
    assert_eq!(outcome.field.as_deref(), Some("totals"));
    assert_eq!(outcome.target_id.as_deref(), Some(other.id.as_str()));
    let message = outcome.message.unwrap_or_default();
    assert!(
        message.contains("€ 35.91") && message.contains("€ 44.85"),
        "names both totals: {message}"
    );
    assert_eq!(
        h.sim
            .orders()
            .iter()
            .filter(|o| o.ext_id == "60005")
            .count(),
        1,
        "no second order"
    );
    h.finish();
}

#[tokio::test]
async fn a_german_order_from_a_dutch_till_is_taxed_at_germany_s_rates() {
    let h = harness(10).await;
    let (a, b) = skus(&h.sim);
    let mut session = h.session(&[]).await;
    // Shipped to Germany (one-stop shop): 19%, with the till's German VAT table.
    let mut german = order("70001", "kunde@example.de", &[&a], true);
    german.country = "DE".into();
    if let Some(shipping) = german.shipping_address.as_mut() {
        shipping.country = "DE".into();
    }
    german.lines[0].tax_rate = Decimal {
        units: 19,
        scale: 0,
    };
    german.lines[0].unit_price.net = 1676;
    german.lines[0].total.net = 3353;
    if let Some(shipping) = german.shipping.as_mut() {
        shipping.tax_rate = Decimal {
            units: 19,
            scale: 0,
        };
        shipping.cost.net = 416;
    }
    german.totals = Amount {
        net: 3353 + 416,
        gross: 3990 + 495,
    };
    let outcome = write_one(&mut session, "orders", Record::Order(german.clone())).await;
    assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
    let stored = h.sim.order_by_ext_id("70001").expect("stored");
    assert_eq!(stored.vat_country, "DEU");
    assert!(
        stored.lines.iter().all(|l| l.vat_percentage == 19),
        "{:?}",
        stored.lines
    );
    assert_eq!(stored.total_excl, german.totals.net, "VAT as Germany's");
    assert_eq!(stored.total_incl, german.totals.gross);
    assert!(sent_create(&h, "70001").contains("<ns1:vatCountryIso3>DEU</ns1:vatCountryIso3>"));

    // A Dutch order of the same session: the Dutch table, 21%.
    let dutch = order("70002", "klant@example.nl", &[&b], true);
    let outcome = write_one(&mut session, "orders", Record::Order(dutch.clone())).await;
    assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
    let stored = h.sim.order_by_ext_id("70002").expect("stored");
    assert!(stored.lines.iter().all(|l| l.vat_percentage == 21));
    assert_eq!(stored.total_incl, dutch.totals.gross);

    // The products keep the branch's own (Dutch) rates.
    let (records, _, _) = read_all(&mut session, "products", None, 1000).await;
    for p in products(records) {
        for price in p
            .prices
            .iter()
            .chain(p.variants.iter().flat_map(|v| &v.prices))
        {
            assert!(
                [21, 9, 0].contains(&price.tax_rate.units),
                "{}: {price:?}",
                p.key
            );
        }
    }
    h.finish();
}

#[tokio::test]
async fn two_shops_writing_order_10001_to_one_till_get_two_orders_and_their_own_status() {
    let h = harness(10).await;
    let (a, b) = skus(&h.sim);
    // One till, a connection per shop, each with its own order prefix.
    let mut shop_a = h.session(&[("order_prefix", "A-")]).await;
    let mut shop_b = h.session(&[("order_prefix", "B-")]).await;
    // Keyed by their number, as the shipped orders flow keys them.
    let mut from_a = order("10001", "buyer.a@example.nl", &[&a], true);
    from_a.key = "10001".into();
    let mut from_b = order("10001", "buyer.b@example.nl", &[&b, &b], true);
    from_b.key = "10001".into();
    from_b.placed_at = "2025-06-03T08:00:00Z".into();
    let created_a = write_one(&mut shop_a, "orders", Record::Order(from_a.clone())).await;
    let created_b = write_one(&mut shop_b, "orders", Record::Order(from_b.clone())).await;
    assert_eq!(created_a.status, OutcomeStatus::Created, "{created_a:?}");
    assert_eq!(created_b.status, OutcomeStatus::Created, "{created_b:?}");
    let till_a = h.sim.order_by_ext_id("A-10001").expect("shop A's");
    let till_b = h.sim.order_by_ext_id("B-10001").expect("shop B's");
    assert_ne!(till_a.id, till_b.id);
    assert_eq!(till_a.total_incl, from_a.totals.gross);
    assert_eq!(till_b.total_incl, from_b.totals.gross);
    // The idempotency keys differ too: each create was executed, none replayed.
    let keys: BTreeSet<String> = h
        .sink
        .exchanges()
        .iter()
        .filter(|x| x.request_body.contains("<ns1:createOrderV3>"))
        .filter_map(|x| {
            let body = &x.request_body;
            let start = body.find("<ns1:idempotencyKey>")? + "<ns1:idempotencyKey>".len();
            let end = body[start..].find('<')? + start;
            Some(body[start..end].to_owned())
        })
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    // A lookup by the shop's number finds its own shop's order.
    let found = shop_b.lookup("orders", "10001").await.expect("lookup");
    assert_eq!(found.map(|f| f.id), Some(till_b.id.clone()));

    // Each shop's order status comes back to that shop alone, by its own number.
    h.sim.deliver_order(&till_b.id).expect("deliver B's");
    let (records, _, _) = read_all(&mut shop_a, "order-status", None, 100).await;
    let a_status = statuses(records);
    assert_eq!(a_status.len(), 1, "{a_status:?}");
    assert_eq!(a_status[0].key, "10001");
    assert_eq!(a_status[0].delivery_state, Some(DeliveryState::Open));
    let (records, _, _) = read_all(&mut shop_b, "order-status", None, 100).await;
    let b_status = statuses(records);
    assert_eq!(b_status.len(), 1, "{b_status:?}");
    assert_eq!(b_status[0].key, "10001");
    assert_eq!(b_status[0].delivery_state, Some(DeliveryState::Shipped));

    // Without prefixes the second shop's 10001 would be the first's: it is not taken for
    // done, it fails naming both totals.
    let mut plain = h.session(&[]).await;
    let first = write_one(&mut plain, "orders", Record::Order(from_a.clone())).await;
    assert_eq!(first.status, OutcomeStatus::Created, "{first:?}");
    let clash = write_one(&mut plain, "orders", Record::Order(from_b)).await;
    assert_eq!(clash.status, OutcomeStatus::Failed, "{clash:?}");
    assert_eq!(clash.field.as_deref(), Some("totals"));
    h.finish();
}

#[tokio::test]
async fn an_unknown_sku_fails_its_order_by_name_and_the_batch_goes_on() {
    let h = harness(10).await;
    let (a, _) = skus(&h.sim);
    let mut session = h.session(&[]).await;
    let records = vec![
        Record::Order(order("20001", "x@example.nl", &[&a, "4242424"], true)),
        Record::Order(order("20002", "x@example.nl", &["SW-RED-M"], true)),
        Record::Order(order("20003", "x@example.nl", &[&a], true)),
        Record::Order({
            let mut o = order("20004", "x@example.nl", &[&a], true);
            o.payment_method = Some("Klarna".into());
            o
        }),
    ];
    let outcomes = session
        .write("orders", &records, &no_options())
        .await
        .expect("a bad record is not a failed call");
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[0].status, OutcomeStatus::Failed);
    let message = outcomes[0].message.as_deref().unwrap_or("");
    assert!(message.contains("`4242424`"), "names the SKU: {message}");
    assert_eq!(outcomes[0].field.as_deref(), Some("lines[1].sku"));
    assert!(!outcomes[0].retryable);
    assert_eq!(outcomes[1].status, OutcomeStatus::Failed);
    assert!(
        outcomes[1]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("`SW-RED-M`"),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(
        outcomes[2].status,
        OutcomeStatus::Created,
        "{:?}",
        outcomes[2]
    );
    assert_eq!(outcomes[3].status, OutcomeStatus::Failed);
    assert_eq!(outcomes[3].field.as_deref(), Some("payment-method"));
    assert!(h.sim.order_by_ext_id("20001").is_none());
    assert!(h.sim.order_by_ext_id("20002").is_none());
    assert!(h.sim.order_by_ext_id("20004").is_none());
    assert_eq!(h.sim.orders().len(), 1);
    assert_eq!(
        h.sim.request_count("createOrderV3"),
        1,
        "refused orders are not sent"
    );
    h.finish();
}

// ----- order status -----

fn statuses(records: Vec<Record>) -> Vec<OrderStatus> {
    records
        .into_iter()
        .map(|r| match r {
            Record::OrderStatus(s) => s,
            other => panic!("not a status: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn deliveries_and_payments_at_the_till_come_back_as_order_status() {
    let h = harness(10).await;
    let (a, _) = skus(&h.sim);
    let mut session = h.session(&[]).await;
    let outcome = write_one(
        &mut session,
        "orders",
        Record::Order(order("30001", "s@example.nl", &[&a], false)),
    )
    .await;
    assert_eq!(outcome.status, OutcomeStatus::Created, "{outcome:?}");
    let id = outcome.target_id.expect("id");

    let (records, state, _) = read_all(&mut session, "order-status", None, 50).await;
    let open = statuses(records);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].key, "30001");
    assert_eq!(open[0].state, OrderState::Open);
    assert_eq!(open[0].payment_state, Some(PaymentState::Open));

    h.sim.deliver_order(&id).expect("deliver");
    let (records, state, _) = read_all(&mut session, "order-status", state, 50).await;
    let delivered = statuses(records);
    assert_eq!(delivered.len(), 1, "only the changed order");
    assert_eq!(delivered[0].delivery_state, Some(DeliveryState::Shipped));
    assert_eq!(delivered[0].state, OrderState::InProgress);

    let total = h.sim.order(&id).expect("order").total_incl;
    h.sim.pay_order(&id, "PIN", total, false).expect("pay");
    let (records, state, _) = read_all(&mut session, "order-status", state, 50).await;
    let paid = statuses(records);
    assert_eq!(paid.len(), 1);
    assert_eq!(paid[0].payment_state, Some(PaymentState::Paid));
    assert_eq!(paid[0].state, OrderState::Completed);
    // The invoice made at the till comes back by its id (getOrders leaves invoice references
    // out of a read without lines: they are read the way the WSDL gives them).
    let invoices = h.sim.order(&id).expect("order").invoice_ids;
    assert_eq!(invoices.len(), 1);
    assert_eq!(
        extra(&paid[0].extra, "invoice_ids"),
        Some(&Value::Json(
            serde_json::to_string(&invoices).expect("json")
        ))
    );

    let (records, _, _) = read_all(&mut session, "order-status", state, 50).await;
    assert!(records.is_empty());
    h.finish();
}

// ----- errors -----

#[tokio::test]
async fn bad_credentials_and_an_unreachable_server_give_clear_errors() {
    let h = harness(5).await;

    let good = h.connection_with(h.config(&[]), quick_limits());
    good.check().await.expect("the right credentials pass");

    let wrong = h.connection_with(h.config(&[("secret", "not-the-Secret-99")]), quick_limits());
    let error = connector_error(wrong.check().await.expect_err("refused"));
    assert_eq!(error.kind, ErrorKind::Auth, "{error:?}");
    assert!(
        error.message.contains("credentials refused"),
        "{}",
        error.message
    );
    assert!(
        !error.message.contains("not-the-Secret-99"),
        "{}",
        error.message
    );
    let mut session = wrong.session().await.expect("session");
    let error = connector_error(
        session
            .read("products", None, 10)
            .await
            .expect_err("refused"),
    );
    assert_eq!(error.kind, ErrorKind::Auth, "a read says so too: {error:?}");
    let error = session
        .write(
            "orders",
            &[Record::Order(order(
                "40001",
                "e@example.nl",
                &["1000000"],
                true,
            ))],
            &no_options(),
        )
        .await
        .expect_err("a write stops at refused credentials");
    assert_eq!(connector_error(error).kind, ErrorKind::Auth);

    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        listener.local_addr().expect("addr")
    };
    let unreachable = h.connection_with(
        h.config(&[("base_url", &format!("http://{closed}"))]),
        Limits {
            retry_backoff: Duration::from_millis(1),
            ..Limits::default()
        },
    );
    let error = connector_error(unreachable.check().await.expect_err("unreachable"));
    assert_eq!(error.kind, ErrorKind::Unreachable, "{error:?}");
    assert!(
        error
            .message
            .contains(&format!("cannot reach http://{closed}")),
        "{}",
        error.message
    );
    assert!(error.retryable);
    h.finish();
}

// ----- reference data -----

#[tokio::test]
async fn reference_streams_list_what_mappings_refer_to() {
    let h = harness(5).await;
    let mut session = h.session(&[]).await;
    let entries = |records: Vec<Record>| -> Vec<(String, String)> {
        records
            .into_iter()
            .map(|r| match r {
                Record::Reference(e) => (e.key, e.name),
                other => panic!("not reference data: {other:?}"),
            })
            .collect()
    };
    let (vat, _, _) = read_all(&mut session, "vat-groups", None, 100).await;
    assert_eq!(
        entries(vat),
        vec![
            ("1".to_owned(), "21%".to_owned()),
            ("2".to_owned(), "9%".to_owned()),
            ("3".to_owned(), "0%".to_owned())
        ]
    );
    let (methods, _, _) = read_all(&mut session, "payment-methods", None, 4).await;
    let methods = entries(methods);
    assert_eq!(methods.len(), 6, "paged by offset: {methods:?}");
    assert!(methods.iter().any(|(k, _)| k == "IDEAL"));
    let (groups, _, _) = read_all(&mut session, "turnover-groups", None, 100).await;
    assert!(entries(groups).contains(&("10".to_owned(), "Kleding".to_owned())));
    let (branches, _, _) = read_all(&mut session, "branches", None, 100).await;
    assert_eq!(entries(branches).len(), h.sim.branches().len());
    let (employees, _, _) = read_all(&mut session, "employees", None, 2).await;
    let employees = entries(employees);
    assert_eq!(employees.len(), h.sim.employees().len());
    assert!(employees.iter().any(|(k, _)| k == "999999"));
    h.finish();
}
