//! The four flows end to end: koppel's engine with the real MplusKASSA and Shopware connectors
//! (components), against both simulators, configured through a `koppel.toml` as a user would.
//!
//! Covered: a catalogue with variant families arrives complete and correct, field by field;
//! a second run writes nothing; a change arrives alone; create-only fields keep the shop's
//! edit; filters hold; stock by each calculation (available, on hand, summed over branches);
//! every order rule (state filter, existing orders, company and person, customer found or
//! created, default debtor, tax code and revenue group per country, payment and shipping
//! mappings and the error when one is missing); order status with tracking codes; and a signed
//! Shopware webhook that brings an order into the till.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{Catalogue, Koppel, ORDER_SETTINGS, Systems, config_text};
use koppel::store::RunStatus;
use koppel_sim_mplus::{ArticleChange, ArticleView, MplusSimulator, Relation};
use koppel_sim_shopware::{
    OrderCustomer, OrderLine, PlacedOrder, ShopwareSimulator, StorefrontOrder,
};
use serde_json::{Value, json};

// ----- reading the shop -----

fn text<'a>(value: &'a Value, field: &str) -> Option<&'a str> {
    value.get(field).and_then(Value::as_str)
}

/// `(net, gross)` of the product's own price in the default currency, in cents.
fn price_cents(product: &Value) -> Option<(i64, i64)> {
    let price = product.get("price")?.as_array()?.first()?;
    let cents = |field: &str| {
        price
            .get(field)
            .and_then(Value::as_f64)
            .map(|v| (v * 100.0).round() as i64)
    };
    Some((cents("net")?, cents("gross")?))
}

/// The product's tax rate; a variant without its own inherits its parent's.
fn tax_rate(shop: &ShopwareSimulator, product: &Value) -> Option<i64> {
    let tax_id = match text(product, "taxId") {
        Some(id) => id.to_owned(),
        None => {
            let parent = shop.entity("product", text(product, "parentId")?, json!({}))?;
            text(&parent, "taxId")?.to_owned()
        }
    };
    let tax = shop.entity("tax", &tax_id, json!({}))?;
    tax.get("taxRate")
        .and_then(Value::as_f64)
        .map(|r| r.round() as i64)
}

/// The product's category paths, from below the sales channel's root down.
fn category_paths(shop: &ShopwareSimulator, product: &Value) -> BTreeSet<Vec<String>> {
    let root = shop.ids().root_category.hex();
    let mut paths = BTreeSet::new();
    for category in product
        .get("categories")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut path = Vec::new();
        let mut at = category.clone();
        loop {
            let id = text(&at, "id").unwrap_or_default().to_owned();
            if id == root {
                break;
            }
            path.push(text(&at, "name").unwrap_or_default().to_owned());
            match text(&at, "parentId").and_then(|p| shop.entity("category", p, json!({}))) {
                Some(parent) => at = parent,
                None => break,
            }
        }
        path.reverse();
        paths.insert(path);
    }
    paths
}

/// The variant's options as (group name, option name).
fn options(shop: &ShopwareSimulator, product: &Value) -> BTreeSet<(String, String)> {
    product
        .get("options")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|option| {
            let group = text(option, "groupId")
                .and_then(|g| shop.entity("property_group", g, json!({})))
                .and_then(|g| text(&g, "name").map(str::to_owned))
                .unwrap_or_default();
            (group, text(option, "name").unwrap_or_default().to_owned())
        })
        .collect()
}

fn updated_at(shop: &ShopwareSimulator) -> BTreeMap<String, Option<String>> {
    shop.products()
        .iter()
        .map(|p| {
            (
                text(p, "productNumber").unwrap_or_default().to_owned(),
                text(p, "updatedAt").map(str::to_owned),
            )
        })
        .collect()
}

/// Checks one shop row against an article of the till: what a shop owner would compare.
fn assert_row_matches(
    shop: &ShopwareSimulator,
    row: &Value,
    article: &ArticleView,
    name: &str,
    ean: bool,
) {
    let number = text(row, "productNumber").unwrap_or_default();
    assert_eq!(text(row, "name"), Some(name), "name of {number}: {row:#}");
    if ean {
        assert_eq!(
            text(row, "ean"),
            Some(article.barcode.as_str()),
            "EAN of {number}"
        );
    }
    assert_eq!(
        price_cents(row),
        Some((article.price_excl, article.price_incl)),
        "net and gross price of {number}: {row:#}"
    );
    assert_eq!(
        row.get("active").and_then(Value::as_bool),
        Some(article.active),
        "active of {number}"
    );
    assert_eq!(
        tax_rate(shop, row),
        Some(article.vat_percentage),
        "tax rate of {number}"
    );
}

// ----- products -----

fn products_config(systems: &Systems, products: &str) -> String {
    config_text(systems, "", "", &format!("[flows.products]\n{products}"))
}

/// The till's articles grouped by product: (product number, its articles).
fn catalogue(till: &MplusSimulator) -> BTreeMap<i64, Vec<ArticleView>> {
    let mut products: BTreeMap<i64, Vec<ArticleView>> = BTreeMap::new();
    for number in till.article_numbers() {
        let article = till.article_view(number).expect("listed");
        products
            .entry(article.product_number)
            .or_default()
            .push(article);
    }
    products
}

#[tokio::test]
async fn a_catalogue_arrives_complete_and_correct_and_then_only_what_changes() {
    let systems = Systems::start(Catalogue {
        products: 80,
        ..Catalogue::default()
    })
    .await;
    let koppel = Koppel::start(&products_config(&systems, "")).await;
    let first = koppel.run("products").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");

    let shop = &systems.shop;
    let mut expected_rows = 0;
    let (mut simple, mut families, mut left_out) = (0, 0, 0);
    for (product_number, articles) in catalogue(&systems.till) {
        let webshop = articles.iter().any(|a| a.webshop);
        let family = articles.len() > 1;
        let number = if family {
            format!("P{product_number}")
        } else {
            articles[0].number.to_string()
        };
        if !webshop {
            left_out += 1;
            assert!(
                shop.product_by_number(&number).is_none(),
                "{number} is not flagged for the web shop, so it stays out"
            );
            continue;
        }
        let row = shop
            .product_by_number(&number)
            .unwrap_or_else(|| panic!("{number} should be in the shop"));
        let first_article = &articles[0];
        let expected_categories: BTreeSet<Vec<String>> =
            first_article.group_paths.iter().cloned().collect();
        assert_eq!(
            category_paths(shop, &row),
            expected_categories,
            "categories of {number}"
        );
        assert!(
            row.get("parentId").is_none_or(Value::is_null),
            "{number} is a main product"
        );
        if !family {
            simple += 1;
            expected_rows += 1;
            assert_row_matches(shop, &row, first_article, &first_article.description, true);
            continue;
        }
        families += 1;
        expected_rows += 1 + articles.len();
        assert_eq!(
            text(&row, "name"),
            Some(first_article.product_description.as_str())
        );
        let parent_id = text(&row, "id").expect("id").to_owned();
        for article in &articles {
            let child = shop
                .product_by_number(&article.number.to_string())
                .unwrap_or_else(|| panic!("variant {} of {number}", article.number));
            assert_eq!(
                text(&child, "parentId"),
                Some(parent_id.as_str()),
                "variant {} belongs to {number}",
                article.number
            );
            assert_row_matches(shop, &child, article, &article.description, true);
            let mut wanted = BTreeSet::new();
            if !article.size.is_empty() {
                wanted.insert(("Size".to_owned(), article.size.clone()));
            }
            if !article.colour.is_empty() {
                wanted.insert(("Colour".to_owned(), article.colour.clone()));
            }
            assert_eq!(
                options(shop, &child),
                wanted,
                "options of variant {}",
                article.number
            );
        }
    }
    assert!(
        simple > 10 && families > 5 && left_out > 0,
        "the catalogue has simple products ({simple}), families ({families}) and articles off the web shop ({left_out})"
    );
    assert_eq!(
        shop.count("product"),
        expected_rows,
        "no row more, no row less"
    );
    assert_eq!(
        first.counts.created as usize,
        simple + families,
        "{first:#?}"
    );

    // A second run reads nothing new; a full one reads everything and writes nothing.
    let writes = systems.shop_writes();
    let again = koppel.run("products").await;
    assert_eq!(
        (
            again.counts.read,
            again.counts.created + again.counts.updated
        ),
        (0, 0),
        "{again:#?}"
    );
    let full = koppel.run_full("products").await;
    assert_eq!(full.status, RunStatus::Succeeded, "{full:#?}");
    assert_eq!(full.counts.created + full.counts.updated, 0, "{full:#?}");
    assert_eq!(full.counts.unchanged as usize, simple + families);
    assert_eq!(
        systems.shop_writes(),
        writes,
        "nothing changed, so not one write request reaches Shopware"
    );

    // One price and name change in the till: that product alone moves.
    let (changed, article) = catalogue(&systems.till)
        .into_values()
        .find(|a| a.len() == 1 && a[0].webshop && a[0].active)
        .map(|a| (a[0].number, a[0].clone()))
        .expect("a simple product on the web shop");
    let before = updated_at(shop);
    systems
        .till
        .change_article(
            changed,
            ArticleChange {
                description: Some("Renamed at the till".into()),
                price_incl: Some(article.price_incl + 1000),
                ..ArticleChange::default()
            },
        )
        .expect("change");
    let writes = systems.shop_writes();
    let change = koppel.run("products").await;
    assert_eq!(
        (
            change.counts.read,
            change.counts.updated,
            change.counts.created
        ),
        (1, 1, 0),
        "{change:#?}"
    );
    assert!(systems.shop_writes() > writes);
    let after = updated_at(shop);
    let touched: Vec<&String> = after
        .iter()
        .filter(|(number, at)| before.get(*number) != Some(at))
        .map(|(number, _)| number)
        .collect();
    assert_eq!(
        touched,
        vec![&changed.to_string()],
        "exactly one product changed in the shop"
    );
    let row = shop
        .product_by_number(&changed.to_string())
        .expect("still there");
    let now = systems.till.article_view(changed).expect("article");
    assert_row_matches(shop, &row, &now, "Renamed at the till", true);
    systems.assert_valid();
    koppel.close().await;
}

#[tokio::test]
async fn a_create_only_field_keeps_the_shops_edit() {
    let systems = Systems::start(Catalogue::default()).await;
    let koppel = Koppel::start(&products_config(
        &systems,
        "create_only = [\"name\", \"description\"]\n",
    ))
    .await;
    let first = koppel.run("products").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:#?}");
    let article = catalogue(&systems.till)
        .into_values()
        .find(|a| a.len() == 1 && a[0].webshop)
        .map(|a| a[0].clone())
        .expect("a simple product");
    let number = article.number.to_string();
    systems
        .shop
        .edit_product_field(&number, "name", json!("Written by the shop owner"))
        .expect("edit in the Administration");
    systems
        .till
        .change_article(
            article.number,
            ArticleChange {
                description: Some("Renamed at the till".into()),
                price_incl: Some(article.price_incl + 500),
                ..ArticleChange::default()
            },
        )
        .expect("change");
    let second = koppel.run("products").await;
    assert_eq!(second.counts.updated, 1, "{second:#?}");
    let row = systems.shop.product_by_number(&number).expect("there");
    assert_eq!(
        text(&row, "name"),
        Some("Written by the shop owner"),
        "the name is create-only: the shop's edit stays"
    );
    assert_eq!(
        price_cents(&row).map(|(_, gross)| gross),
        Some(article.price_incl + 500),
        "the price is not create-only: it follows the till"
    );
    systems.assert_valid();
    koppel.close().await;
}

#[tokio::test]
async fn filters_hold_for_the_web_shop_flag_and_an_article_group() {
    let systems = Systems::start(Catalogue::default()).await;
    // Only article group 11 (Kleding > Dames), on top of the shipped web shop filter.
    let koppel = Koppel::start(&products_config(
        &systems,
        "[[flows.products.filter]]\nfield = \"extra.group_numbers\"\ncontains = 11\n",
    ))
    .await;
    let run = koppel.run("products").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let mut wanted = 0;
    for (product_number, articles) in catalogue(&systems.till) {
        let number = if articles.len() > 1 {
            format!("P{product_number}")
        } else {
            articles[0].number.to_string()
        };
        let should = articles.iter().any(|a| a.webshop) && articles[0].group_numbers == [11];
        wanted += usize::from(should);
        assert_eq!(
            systems.shop.product_by_number(&number).is_some(),
            should,
            "{number}: web shop {}, groups {:?}",
            articles[0].webshop,
            articles[0].group_numbers
        );
    }
    assert!(wanted > 0 && (run.counts.skipped as usize) > wanted / 2);
    assert_eq!(run.counts.created as usize, wanted);
    assert!(
        run.skipped
            .keys()
            .any(|r| r.contains("extra.group_numbers"))
            && run.skipped.keys().any(|r| r.contains("extra.webshop")),
        "the run says why records were skipped: {:?}",
        run.skipped
    );

    // Taken off the web shop at the till: the next run leaves it out (it is not deleted).
    let article = catalogue(&systems.till)
        .into_values()
        .find(|a| a.len() == 1 && a[0].webshop && a[0].group_numbers == [11])
        .map(|a| a[0].clone())
        .expect("a simple product of group 11");
    systems
        .till
        .change_article(
            article.number,
            ArticleChange {
                webshop: Some(false),
                price_incl: Some(article.price_incl + 100),
                ..ArticleChange::default()
            },
        )
        .expect("change");
    let writes = systems.shop_writes();
    let again = koppel.run("products").await;
    assert_eq!(
        (again.counts.read, again.counts.skipped),
        (1, 1),
        "{again:#?}"
    );
    assert_eq!(
        systems.shop_writes(),
        writes,
        "a filtered record is not written"
    );
    systems.assert_valid();
    koppel.close().await;
}

// ----- stock -----

/// Sellable article numbers in the shop (simple products and variants), with a stock article.
fn stock_articles(systems: &Systems) -> Vec<i64> {
    catalogue(&systems.till)
        .into_values()
        .flatten()
        .filter(|a| a.webshop && a.stock_article)
        .map(|a| a.number)
        .collect()
}

fn shop_stock(shop: &ShopwareSimulator, number: i64) -> Option<i64> {
    shop.product_by_number(&number.to_string())?
        .get("stock")?
        .as_i64()
}

fn free_and_reserved(till: &MplusSimulator, article: i64, branch: i32) -> (i64, i64) {
    let level = till.stock(article, branch).expect("stock");
    (level.free_milli / 1000, level.reserved_milli / 1000)
}

#[tokio::test]
async fn stock_moves_by_each_calculation_and_changes_alone() {
    let systems = Systems::start(Catalogue {
        products: 40,
        ..Catalogue::default()
    })
    .await;
    let products = Koppel::start(&products_config(&systems, "")).await;
    assert_eq!(products.run("products").await.status, RunStatus::Succeeded);
    let articles = stock_articles(&systems);
    assert!(articles.len() > 20);
    let till = &systems.till;
    let shop = &systems.shop;
    let reserved_somewhere = articles
        .iter()
        .filter(|a| free_and_reserved(till, **a, 1).1 > 0)
        .count();
    assert!(
        reserved_somewhere > 0,
        "some stock is reserved, so the calculations differ"
    );

    // 1. The default: available = on hand − reserved, of the order branch.
    let koppel = Koppel::start(&config_text(&systems, "", "", "[flows.stock]\n")).await;
    let run = koppel.run("stock").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    for &article in &articles {
        let (free, _) = free_and_reserved(till, article, 1);
        assert_eq!(shop_stock(shop, article), Some(free), "stock of {article}");
    }
    // A change at the till arrives alone.
    let changed = articles[3];
    till.set_stock(changed, 1, 7, 2).expect("set");
    let writes = systems.shop_writes();
    let again = koppel.run("stock").await;
    assert_eq!(
        (
            again.counts.read,
            again.counts.updated + again.counts.created
        ),
        (1, 1),
        "{again:#?}"
    );
    assert_eq!(
        shop_stock(shop, changed),
        Some(7),
        "7 free and 2 reserved: 9 on hand − 2 reserved"
    );
    assert_eq!(systems.shop_writes(), writes + 1, "one sync");
    let writes = systems.shop_writes();
    let quiet = koppel.run("stock").await;
    assert_eq!(quiet.counts.read, 0, "{quiet:#?}");
    assert_eq!(systems.shop_writes(), writes);
    koppel.close().await;

    // 2. On hand only: a rule replaces the shipped calculation.
    let koppel = Koppel::start(&config_text(
        &systems,
        "",
        "",
        "[flows.stock]\n[[flows.stock.map]]\nto = \"available\"\nfrom = \"on_hand\"\n",
    ))
    .await;
    let run = koppel.run("stock").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    for &article in &articles {
        let (free, reserved) = free_and_reserved(till, article, 1);
        assert_eq!(
            shop_stock(shop, article),
            Some(free + reserved),
            "on hand of {article}"
        );
    }
    koppel.close().await;

    // 3. The sum over both branches, with "sell only while in stock" on.
    let koppel = Koppel::start(&config_text(
        &systems,
        "stock_branches = \"1,2\"",
        "",
        "[flows.stock]\ncombine = \"sum-by-key\"\npage_size = 7\n[flows.stock.settings]\nmanage_stock = true\n",
    ))
    .await;
    let run = koppel.run("stock").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let summed = |article: i64| {
        free_and_reserved(till, article, 1).0 + free_and_reserved(till, article, 2).0
    };
    for &article in &articles {
        assert_eq!(
            shop_stock(shop, article),
            Some(summed(article)),
            "stock of {article} in both branches"
        );
        let row = shop.product_by_number(&article.to_string()).expect("row");
        assert_eq!(row.get("isCloseout"), Some(&json!(true)));
    }
    // A change in branch 2 alone still writes the sum of both.
    let changed = articles[5];
    till.set_stock(changed, 2, 11, 0).expect("set");
    let again = koppel.run("stock").await;
    assert_eq!(again.counts.updated, 1, "{again:#?}");
    assert_eq!(
        shop_stock(shop, changed),
        Some(free_and_reserved(till, changed, 1).0 + 11),
        "branch 1 plus the new 11 of branch 2"
    );
    systems.assert_valid();
    koppel.close().await;
    products.close().await;
}

// ----- orders -----

/// Sellable product numbers with stock, from the shop.
fn sellable(shop: &ShopwareSimulator) -> Vec<String> {
    let mut numbers: Vec<String> = shop
        .products()
        .iter()
        .filter(|p| p.get("childCount").and_then(Value::as_i64).unwrap_or(0) == 0)
        .filter(|p| p.get("active").and_then(Value::as_bool) == Some(true))
        .filter_map(|p| text(p, "productNumber").map(str::to_owned))
        .filter(|n| n.parse::<i64>().is_ok())
        .collect();
    numbers.sort();
    numbers
}

struct Shopping<'a> {
    shop: &'a ShopwareSimulator,
    skus: Vec<String>,
    next: usize,
}

/// A person relation the till has, with an e-mail address.
fn known_person(till: &MplusSimulator) -> Relation {
    till.relations()
        .into_iter()
        .find(|r| !r.email.is_empty() && !r.is_company())
        .expect("a known person")
}

impl<'a> Shopping<'a> {
    /// Buys the shop's sellable products in turn.
    fn new(shop: &'a ShopwareSimulator) -> Shopping<'a> {
        Shopping {
            shop,
            skus: sellable(shop),
            next: 0,
        }
    }

    fn order(
        &mut self,
        customer: OrderCustomer,
        paid: bool,
        payment: &str,
        shipping: &str,
    ) -> PlacedOrder {
        let sku = self.skus[self.next % self.skus.len()].clone();
        self.next += 1;
        let order = StorefrontOrder {
            paid,
            payment_method: payment.into(),
            shipping_method: shipping.into(),
            ..StorefrontOrder::new(customer, vec![OrderLine::new(&sku, 2)])
        };
        self.shop.place_order(&order).expect("checkout")
    }
}

async fn shop_with_products(systems: &Systems) {
    let products = Koppel::start(&products_config(systems, "")).await;
    let run = products.run("products").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    // Enough stock for every order of the tests.
    let stock = Koppel::start(&config_text(systems, "", "", "[flows.stock]\n")).await;
    for number in sellable(&systems.shop) {
        if let Ok(article) = number.parse::<i64>() {
            let _ = systems.till.set_stock(article, 1, 50, 0);
        }
    }
    assert_eq!(stock.run("stock").await.status, RunStatus::Succeeded);
    products.close().await;
    stock.close().await;
}

fn relation_with_email(till: &MplusSimulator, email: &str) -> Vec<Relation> {
    till.relations()
        .into_iter()
        .filter(|r| r.email.eq_ignore_ascii_case(email))
        .collect()
}

#[tokio::test]
async fn paid_orders_reach_the_till_once_by_every_rule() {
    let systems = Systems::start(Catalogue {
        products: 30,
        ..Catalogue::default()
    })
    .await;
    shop_with_products(&systems).await;
    let mut shopping = Shopping::new(&systems.shop);
    let till = &systems.till;
    // A customer the till knows already.
    let known = known_person(till);
    let relations_before = till.relations().len();

    let nl_person = shopping.order(
        OrderCustomer::private(&known.email, "Known", "Customer", "NL"),
        true,
        "payment_prepayment",
        "shipping_standard",
    );
    let be_company = shopping.order(
        OrderCustomer::business(
            "inkoop@bakkerij.be",
            "Bakkerij Peeters",
            "Jan",
            "Peeters",
            "BE",
        ),
        true,
        "payment_invoice",
        "shipping_pickup",
    );
    let de_person = shopping.order(
        OrderCustomer::private("lukas@example.de", "Lukas", "Schmidt", "DE"),
        true,
        "payment_debitpayment",
        "shipping_standard",
    );
    let unpaid = shopping.order(
        OrderCustomer::private("sem@example.nl", "Sem", "Jansen", "NL"),
        false,
        "payment_invoice",
        "shipping_standard",
    );
    let no_shipping_mapping = shopping.order(
        OrderCustomer::private("mila@example.nl", "Mila", "Bakker", "NL"),
        true,
        "payment_prepayment",
        "shipping_express",
    );
    let no_payment_mapping = shopping.order(
        OrderCustomer::private("noor@example.nl", "Noor", "Visser", "NL"),
        true,
        "payment_cashpayment",
        "shipping_standard",
    );

    let koppel = Koppel::start(&config_text(
        &systems,
        ORDER_SETTINGS,
        "",
        "[flows.orders]\n[flows.orders.settings]\norder_type = \"order\"\n",
    ))
    .await;
    let run = koppel.run("orders").await;
    assert_eq!(
        run.status,
        RunStatus::Partial,
        "two orders lack a mapping: {run:#?}"
    );
    assert_eq!((run.counts.created, run.counts.failed), (3, 2), "{run:#?}");

    // The state filter: the unpaid order stays in the shop.
    assert!(till.order_by_ext_id(&unpaid.order_number).is_none());

    // A missing mapping fails that order alone, naming the mapping.
    let failures: BTreeMap<&str, &str> = run
        .failures
        .iter()
        .map(|(k, m)| (k.as_str(), m.as_str()))
        .collect();
    let shipping_error = failures
        .get(no_shipping_mapping.id.as_str())
        .unwrap_or_else(|| panic!("{failures:?}"));
    assert!(
        shipping_error.contains("\"shipping_express\"")
            && shipping_error.contains("`delivery_methods`"),
        "{shipping_error}"
    );
    let payment_error = failures
        .get(no_payment_mapping.id.as_str())
        .unwrap_or_else(|| panic!("{failures:?}"));
    assert!(
        payment_error.contains("\"payment_cashpayment\"")
            && payment_error.contains("`payment_methods`"),
        "{payment_error}"
    );
    for failed in [&no_shipping_mapping, &no_payment_mapping] {
        assert!(till.order_by_ext_id(&failed.order_number).is_none());
    }

    // Person found by e-mail: booked on the known relation, no new one.
    let nl = till
        .order_by_ext_id(&nl_person.order_number)
        .expect("in the till");
    assert_eq!(nl.relation_number, known.number);
    assert_eq!(relation_with_email(till, &known.email).len(), 1);
    // Company created as a company; person created as a person.
    let be = till.order_by_ext_id(&be_company.order_number).expect("BE");
    let company = till.relation(be.relation_number).expect("created");
    assert!(company.is_company(), "{company:?}");
    assert_eq!(company.company_name, "Bakkerij Peeters");
    assert_eq!(company.email, "inkoop@bakkerij.be");
    let de = till.order_by_ext_id(&de_person.order_number).expect("DE");
    let person = till.relation(de.relation_number).expect("created");
    assert!(!person.is_company(), "{person:?}");
    assert_eq!(person.email, "lukas@example.de");
    assert_eq!(
        till.relations().len(),
        relations_before + 2,
        "two customers were new"
    );

    // Tax code and revenue group per country; payment and delivery methods mapped.
    for (order, foreign, turnover, payment, delivery) in [
        (&nl, false, 10, "IDEAL", "VERZENDEN"),
        (&be, false, 10, "OPREKENING", "AFHALEN"),
        (&de, true, 40, "PIN", "VERZENDEN"),
    ] {
        assert!(
            order
                .lines
                .iter()
                .any(|l| l.article_number != koppel_sim_mplus::SHIPPING_ARTICLE)
        );
        for line in &order.lines {
            // At home the article's own code (by its rate); DE has its own table: code 3.
            let vat_code = if foreign {
                3
            } else {
                till.article_view(line.article_number)
                    .expect("article")
                    .vat_code
            };
            assert_eq!(
                line.vat_code, vat_code,
                "VAT code of article {} in {}",
                line.article_number, order.ext_id
            );
            assert_eq!(
                line.turnover_group, turnover,
                "revenue group in {}",
                order.ext_id
            );
        }
        assert_eq!(order.delivery_method, delivery, "{}", order.ext_id);
        assert_eq!(
            order
                .payments
                .iter()
                .map(|p| p.method.as_str())
                .collect::<Vec<_>>(),
            vec![payment],
            "{}",
            order.ext_id
        );
        assert_eq!(order.employee_number, 999_999, "the default employee");
        assert_eq!(order.entry_branch, 1);
        assert!(
            order.prepaid > 0,
            "a paid web order is a prepaid till order"
        );
    }

    // Once only: another run (from the start) sends no order again.
    let creates = till.request_count("createOrderV3");
    let again = koppel.run_full("orders").await;
    assert_eq!(again.counts.created, 0, "{again:#?}");
    assert_eq!(till.request_count("createOrderV3"), creates);
    assert_eq!(
        again
            .skipped
            .get("already in the target")
            .copied()
            .unwrap_or(0),
        3,
        "the ledger knows them: {again:#?}"
    );
    // The unpaid order is paid in the shop: now it goes.
    systems
        .shop
        .set_payment_state(&unpaid.id, "paid")
        .expect("pay");
    let paid_later = koppel.run("orders").await;
    assert!(
        till.order_by_ext_id(&unpaid.order_number).is_some(),
        "{paid_later:#?}"
    );

    // An order already in the till that koppel has no ledger entry for (another
    // installation wrote it): found, not sent again.
    let other = Koppel::start(&config_text(
        &systems,
        ORDER_SETTINGS,
        "",
        "[flows.orders]\n",
    ))
    .await;
    let creates = till.request_count("createOrderV3");
    let fresh = other.run("orders").await;
    assert_eq!(fresh.counts.created, 0, "{fresh:#?}");
    assert_eq!(
        till.request_count("createOrderV3"),
        creates,
        "found by its number first"
    );
    for placed in [&nl_person, &be_company, &de_person, &unpaid] {
        assert_eq!(
            till.orders()
                .iter()
                .filter(|o| o.ext_id == placed.order_number)
                .count(),
            1
        );
    }
    systems.assert_valid();
    koppel.close().await;
    other.close().await;
}

#[tokio::test]
async fn an_interrupted_order_write_is_looked_up_before_it_is_sent_again() {
    let systems = Systems::start(Catalogue {
        products: 20,
        ..Catalogue::default()
    })
    .await;
    shop_with_products(&systems).await;
    let mut shopping = Shopping::new(&systems.shop);
    let placed = shopping.order(
        OrderCustomer::private("anna@example.nl", "Anna", "de Vries", "NL"),
        true,
        "payment_prepayment",
        "shipping_standard",
    );
    let config = config_text(&systems, ORDER_SETTINGS, "", "[flows.orders]\n");
    // koppel died after the till took the order and before it committed the answer: the
    // till has the order (here: sent by another installation), and the ledger entry, by the
    // shop's order id (the record's key), is still pending.
    let before = Koppel::start(&config).await;
    assert_eq!(before.run("orders").await.counts.created, 1);
    before.close().await;
    let koppel = Koppel::start(&config).await;
    koppel
        .env
        .store
        .ledger_begin("e2e", "orders", &[placed.id.as_str()])
        .await
        .expect("ledger");
    let creates = systems.till.request_count("createOrderV3");
    let finds = systems.till.request_count("findOrder");
    let again = koppel.run("orders").await;
    assert_eq!(
        (again.counts.created, again.counts.unchanged),
        (0, 1),
        "{again:#?}"
    );
    assert_eq!(systems.till.request_count("createOrderV3"), creates);
    assert_eq!(
        systems.till.request_count("findOrder"),
        finds + 1,
        "looked up once, by its number"
    );
    let records = koppel
        .env
        .store
        .run_records("e2e", again.run_id, None, 10)
        .await
        .expect("records");
    assert!(
        records.iter().any(|r| r
            .message
            .as_deref()
            .is_some_and(|m| m.contains("found in the target"))),
        "{records:#?}"
    );
    koppel.close().await;
}

#[tokio::test]
async fn the_default_debtor_takes_every_order_booked_as_invoices() {
    let systems = Systems::start(Catalogue {
        products: 20,
        ..Catalogue::default()
    })
    .await;
    shop_with_products(&systems).await;
    let debtor = systems
        .till
        .relations()
        .into_iter()
        .find(|r| r.is_company())
        .expect("a company")
        .number;
    let mut shopping = Shopping::new(&systems.shop);
    let orders = [
        shopping.order(
            OrderCustomer::private("anna@example.nl", "Anna", "de Vries", "NL"),
            true,
            "payment_prepayment",
            "shipping_standard",
        ),
        shopping.order(
            OrderCustomer::business("info@atelier.de", "Atelier Weber", "Eva", "Weber", "DE"),
            true,
            "payment_invoice",
            "shipping_standard",
        ),
    ];
    let relations = systems.till.relations().len();
    let koppel = Koppel::start(&config_text(
        &systems,
        &format!("{ORDER_SETTINGS}\nrelation_mode = \"default\"\ndefault_relation = {debtor}"),
        "",
        // Invoices rather than open orders: paid, delivered and invoiced at once.
        "[flows.orders]\n[flows.orders.settings]\norder_type = \"invoice\"\n",
    ))
    .await;
    let run = koppel.run("orders").await;
    assert_eq!(
        (run.status, run.counts.created),
        (RunStatus::Succeeded, 2),
        "{run:#?}"
    );
    for placed in &orders {
        let order = systems
            .till
            .order_by_ext_id(&placed.order_number)
            .expect("in the till");
        assert_eq!(order.relation_number, debtor);
        assert!(
            order.fully_paid && !order.invoice_ids.is_empty(),
            "booked as a paid invoice: {order:?}"
        );
    }
    assert_eq!(
        systems.till.relations().len(),
        relations,
        "no customer created"
    );
    assert_eq!(systems.till.request_count("createRelation"), 0);
    systems.assert_valid();
    koppel.close().await;
}

#[tokio::test]
async fn a_known_customer_with_changed_details_is_found_by_email_and_updated() {
    known_customer_with_changed_details(true).await;
}

#[tokio::test]
async fn with_update_relations_off_a_known_customer_is_kept_as_the_till_has_them() {
    known_customer_with_changed_details(false).await;
}

async fn known_customer_with_changed_details(update: bool) {
    let systems = Systems::start(Catalogue {
        products: 20,
        ..Catalogue::default()
    })
    .await;
    shop_with_products(&systems).await;
    let mut shopping = Shopping::new(&systems.shop);
    let till = &systems.till;
    let known = known_person(till);
    let relations_before = till.relations().len();
    // The customer moved and orders under another name: everything but the e-mail differs
    // from what the till holds.
    let moved = OrderCustomer {
        street: "Oudegracht 221".into(),
        zipcode: "3511 NH".into(),
        city: "Utrecht".into(),
        ..OrderCustomer::private(&known.email, "Saskia", "Verhoeven-Lint", "NL")
    };
    assert_ne!(known.address, moved.street);
    assert_ne!(known.name, "Saskia Verhoeven-Lint");
    let placed = shopping.order(moved, true, "payment_prepayment", "shipping_standard");

    let till_settings = if update {
        ORDER_SETTINGS.to_owned()
    } else {
        format!("{ORDER_SETTINGS}\nupdate_relations = false\n")
    };
    let koppel = Koppel::start(&config_text(
        &systems,
        &till_settings,
        "",
        "[flows.orders]\n",
    ))
    .await;
    let run = koppel.run("orders").await;
    assert_eq!(
        (run.status, run.counts.created),
        (RunStatus::Succeeded, 1),
        "{run:#?}"
    );
    let order = till
        .order_by_ext_id(&placed.order_number)
        .expect("in the till");
    assert_eq!(
        order.relation_number, known.number,
        "booked on the relation found by e-mail"
    );
    assert_eq!(relation_with_email(till, &known.email).len(), 1);
    assert_eq!(till.relations().len(), relations_before, "no new relation");
    assert_eq!(till.request_count("createRelation"), 0);
    let now = till.relation(known.number).expect("the relation");
    if update {
        // docs/flows.md, orders rule 3: the order brings the relation up to date.
        assert_eq!(till.request_count("updateRelation"), 1);
        assert_eq!(now.name, "Saskia Verhoeven-Lint");
        assert!(now.address.contains("Oudegracht 221"), "{now:?}");
        assert_eq!(
            (now.zipcode.as_str(), now.city.as_str()),
            ("3511 NH", "Utrecht")
        );
        assert_eq!(now.email, known.email, "still found by the same e-mail");
    } else {
        assert_eq!(till.request_count("updateRelation"), 0);
        assert_eq!(now, known, "the till keeps the customer as it has them");
    }
    // The order itself carries the new address either way.
    let text = format!("{order:?}");
    assert!(text.contains("Oudegracht 221"), "{text}");

    // A second order with the same details changes nothing more.
    let again = shopping.order(
        OrderCustomer {
            street: "Oudegracht 221".into(),
            zipcode: "3511 NH".into(),
            city: "Utrecht".into(),
            ..OrderCustomer::private(&known.email, "Saskia", "Verhoeven-Lint", "NL")
        },
        true,
        "payment_prepayment",
        "shipping_standard",
    );
    let run = koppel.run("orders").await;
    assert_eq!(run.counts.created, 1, "{run:#?}");
    assert!(till.order_by_ext_id(&again.order_number).is_some());
    assert_eq!(
        till.request_count("updateRelation"),
        u64::from(update),
        "an up-to-date relation is not written again"
    );
    systems.assert_valid();
    koppel.close().await;
}

// ----- order status -----

fn shop_order(shop: &ShopwareSimulator, id: &str) -> Value {
    shop.orders()
        .into_iter()
        .find(|o| text(o, "id") == Some(id))
        .expect("the order")
}

fn state_of(value: &Value) -> Option<&str> {
    value
        .get("stateMachineState")
        .and_then(|s| text(s, "technicalName"))
}

fn delivery(order: &Value) -> Value {
    order
        .get("deliveries")
        .and_then(Value::as_array)
        .and_then(|d| d.first())
        .cloned()
        .unwrap_or(Value::Null)
}

fn transaction(order: &Value) -> Value {
    order
        .get("transactions")
        .and_then(Value::as_array)
        .and_then(|t| t.last())
        .cloned()
        .unwrap_or(Value::Null)
}

#[tokio::test]
async fn deliveries_and_payments_at_the_till_move_the_shops_orders_with_tracking_codes() {
    let systems = Systems::start(Catalogue {
        products: 20,
        ..Catalogue::default()
    })
    .await;
    shop_with_products(&systems).await;
    let mut shopping = Shopping::new(&systems.shop);
    let shipped = shopping.order(
        OrderCustomer::private("anna@example.nl", "Anna", "de Vries", "NL"),
        true,
        "payment_prepayment",
        "shipping_standard",
    );
    // Paid on account: the shop sends it unpaid, the till takes the payment later.
    let on_account = shopping.order(
        OrderCustomer::business(
            "inkoop@bakkerij.be",
            "Bakkerij Peeters",
            "Jan",
            "Peeters",
            "BE",
        ),
        false,
        "payment_invoice",
        "shipping_standard",
    );
    let koppel = Koppel::start(&config_text(
        &systems,
        ORDER_SETTINGS,
        "payment_states = \"paid,open\"",
        r#"[flows.orders]
replace_defaults = true
[[flows.orders.filter]]
field = "payment_state"
in = ["paid", "open"]
[[flows.orders.map]]
to = "key"
from = "number"

[flows.order-status]
# MplusKASSA has no tracking codes; the packing slip numbers stand in for them here.
[[flows.order-status.map]]
to = "tracking_codes"
from = "extra.packing_slip_ids"
"#,
    ))
    .await;
    let orders = koppel.run("orders").await;
    assert_eq!(orders.counts.created, 2, "{orders:#?}");
    let till = &systems.till;
    let first = till
        .order_by_ext_id(&shipped.order_number)
        .expect("in the till");
    let second = till
        .order_by_ext_id(&on_account.order_number)
        .expect("in the till");
    assert!(second.payments.is_empty(), "not paid yet");

    let slip = till.deliver_order(&first.id).expect("deliver");
    till.pay_order(&second.id, "OPREKENING", second.total_incl, true)
        .expect("pay at the till");
    let status = koppel.run("order-status").await;
    assert_eq!(status.status, RunStatus::Succeeded, "{status:#?}");

    let order = shop_order(&systems.shop, &shipped.id);
    let parcel = delivery(&order);
    assert_eq!(state_of(&parcel), Some("shipped"), "{parcel:#}");
    assert_eq!(
        parcel.get("trackingCodes"),
        Some(&json!([slip])),
        "the packing slip as tracking code"
    );
    assert_ne!(state_of(&order), Some("open"), "the order moved on");
    let order = shop_order(&systems.shop, &on_account.id);
    assert_eq!(
        state_of(&transaction(&order)),
        Some("paid"),
        "paid at the till, paid in the shop"
    );
    assert_eq!(state_of(&delivery(&order)), Some("open"));

    // Nothing new at the till: nothing changes in the shop.
    let writes = systems.shop_writes();
    let quiet = koppel.run_full("order-status").await;
    assert_eq!(quiet.counts.created + quiet.counts.updated, 0, "{quiet:#?}");
    assert_eq!(systems.shop_writes(), writes);
    systems.assert_valid();
    koppel.close().await;
}

// ----- a signed webhook -----

#[tokio::test]
async fn a_signed_shopware_webhook_brings_the_order_into_the_till_at_once() {
    let systems = Systems::start(Catalogue {
        products: 20,
        ..Catalogue::default()
    })
    .await;
    shop_with_products(&systems).await;
    let mut shopping = Shopping::new(&systems.shop);
    let mut hook = common::webhook::Hooked::start(&systems, "1h").await;
    // The first scheduled run found nothing to do.
    let placed = shopping.order(
        OrderCustomer::private("anna@example.nl", "Anna", "de Vries", "NL"),
        true,
        "payment_prepayment",
        "shipping_standard",
    );

    // A badly signed and a stale announcement are refused, and the till does not change.
    let orders_before = systems.till.orders();
    let writes_before = systems.till_writes();
    let now = koppel::store::now_ms() / 1000;
    assert_eq!(
        hook.announce(&placed, "not-the-shop-secret", now).await,
        401,
        "a bad signature"
    );
    assert_eq!(
        hook.announce(&placed, common::webhook::SHOP_SECRET, now - 3600)
            .await,
        401,
        "a call an hour old"
    );
    // A refused call asks for no run (the request would wait in the schedule until taken,
    // and a run taken would be in the state database).
    assert!(!hook.run_queued(), "nothing asked of the schedule");
    let runs = hook
        .koppel
        .env
        .store
        .runs(&hook.koppel.env.tenant, Some("orders"), 100)
        .await
        .expect("runs");
    assert_eq!(runs.len(), 1, "only the first scheduled run: {runs:#?}");
    assert!(
        systems.till.order_by_ext_id(&placed.order_number).is_none(),
        "no order created"
    );
    assert_eq!(systems.till.orders(), orders_before, "the till's orders");
    assert_eq!(
        systems.till_writes(),
        writes_before,
        "nothing written to the till"
    );

    // The interval is an hour: that the order arrives at all is the webhook's doing. How
    // fast is printed, not asserted (a loaded machine); the bench measures the median.
    let took = hook.deliver(&placed, &systems.till).await;
    eprintln!("Shopware order event → order in MplusKASSA: {took:?}");
    let order = systems
        .till
        .order_by_ext_id(&placed.order_number)
        .expect("in the till");
    assert_eq!(order.payments.len(), 1, "paid, with its payment");
    // Exactly one run followed the webhooks: the refused ones started none.
    let webhook_runs = hook
        .koppel
        .env
        .store
        .runs(&hook.koppel.env.tenant, Some("orders"), 100)
        .await
        .expect("runs")
        .iter()
        .filter(|r| r.trigger == "webhook")
        .count();
    assert_eq!(webhook_runs, 1);
    hook.stop().await;
}
