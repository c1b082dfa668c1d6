//! The `products` stream: articles paged by their sync marker, mapped to canonical products.
//! A product with one article is a simple product keyed by the article number; a product with
//! several articles is a variant family keyed `P<productNumber>`, its articles the variants
//! (options from size and colour).
//!
//! Paging: `getProducts` from the state's marker returns the next articles and products in
//! marker order (one sequence: a product has a marker of its own, which moves when the
//! product itself changes while its articles keep theirs), which may hold part of a family
//! only. The page's products are then read whole, and a family is emitted on the page that
//! holds its highest marker (its own or an article's), with all its articles: no family is
//! ever emitted half, and after a change only the changed products come again.

use std::collections::{BTreeMap, HashSet};

use koppel_sdk::money::{gross_from_net, net_from_gross};
use koppel_sdk::{
    ConnectorError, Decimal, Found, NamedValue, Page, Price, Product, Property, Record, Result,
    Value, Variant,
};

use crate::connector::{Catalogue, Mplus, marker_state, page_size};
use crate::ops;
use crate::soap::Transport;
use crate::wire::{self, Article, GetProductsResponse};

/// Reads the next page of products after `state` (the next sync marker).
pub fn read<T: Transport>(m: &mut Mplus<T>, state: Option<&str>, limit: u32) -> Result<Page> {
    let from = marker_state("products", state)?;
    let want = page_size(limit);
    let body = m
        .client
        .call_raw(ops::get_products_since(from, want), true)?;
    let page = scan_page(&body)?;
    if page.products.is_empty() {
        return Ok(Page {
            records: Vec::new(),
            state: Some(from.to_string()),
            has_more: false,
        });
    }
    let highest = page.highest(from).ok_or_else(|| {
        ConnectorError::protocol(format!(
            "getProducts from marker {from} returned only products and articles with older markers"
        ))
    })?;
    let whole: GetProductsResponse = m
        .client
        .call(ops::get_products_by_number(&page.products), true)?;
    let catalogue = m.catalogue()?;
    let records = emit_complete(
        &page.products,
        whole.product_list.product,
        highest,
        &catalogue,
    );
    // The server's page cap is undocumented: a page shorter than asked is not the end; an
    // empty one is (the next read asks once more).
    Ok(Page {
        records,
        state: Some((highest + 1).to_string()),
        has_more: true,
    })
}

/// What paging needs from a `getProducts` page.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageScan {
    /// Product numbers, in page order.
    pub products: Vec<i64>,
    /// The products' own sync markers, beside `products`.
    pub product_markers: Vec<Option<i64>>,
    pub articles: Vec<ScannedArticle>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct ScannedArticle {
    pub number: i64,
    pub sync_marker: Option<i64>,
    pub stock_article: Option<bool>,
    /// Index of its product in [`PageScan::products`].
    pub product: usize,
}

impl PageScan {
    /// The highest marker of a page read from `from` (API-NOTES 5: over products and
    /// articles alike): the articles' markers, and the own marker of each product that came
    /// for it (none of its articles on the page is at `from` or later). A product that came
    /// for one of its articles may carry a marker of its own beyond the page; taking that one
    /// would skip the articles in between, so it is left for the page that reaches it.
    pub fn highest(&self, from: i64) -> Option<i64> {
        let articles = self
            .articles
            .iter()
            .filter_map(|a| a.sync_marker)
            .filter(|m| *m >= from);
        let products = self
            .product_markers
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                !self
                    .articles
                    .iter()
                    .any(|a| a.product == *i && a.sync_marker.is_some_and(|m| m >= from))
            })
            .filter_map(|(_, m)| *m)
            .filter(|m| *m >= from);
        articles.chain(products).max()
    }
}

/// Reads a page with quick-xml's pull reader rather than serde: the page's products are read
/// whole right after (or, for stock, only their numbers matter), so a few numbers per element
/// are all that is needed, and passing over the rest with the reader costs less than half of
/// deserialising it.
pub fn scan_page(body: &[u8]) -> Result<PageScan> {
    use quick_xml::events::Event;
    const PRODUCT_LIST: u8 = 1;
    const PRODUCT: u8 = 2;
    const PRODUCT_NUMBER: u8 = 3;
    const ARTICLE_LIST: u8 = 4;
    const ARTICLE: u8 = 5;
    const ARTICLE_NUMBER: u8 = 6;
    const SYNC_MARKER: u8 = 7;
    const STOCK_ARTICLE: u8 = 8;
    const IN_ARTICLE: [u8; 4] = [PRODUCT_LIST, PRODUCT, ARTICLE_LIST, ARTICLE];
    let tag = |name: &[u8]| match name {
        b"productList" => PRODUCT_LIST,
        b"product" => PRODUCT,
        b"productNumber" => PRODUCT_NUMBER,
        b"articleList" => ARTICLE_LIST,
        b"article" => ARTICLE,
        b"articleNumber" => ARTICLE_NUMBER,
        b"syncMarker" => SYNC_MARKER,
        b"stockArticle" => STOCK_ARTICLE,
        _ => 0,
    };
    let bad =
        |what: String| ConnectorError::protocol(format!("unexpected getProducts page: {what}"));
    let number = |text: &str| -> Result<i64> {
        text.trim()
            .parse()
            .map_err(|_| bad(format!("{text:?} is not a number")))
    };
    let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8".into()))?;
    let mut reader = quick_xml::Reader::from_str(text.trim_start_matches('\u{feff}'));
    // The path below the first `productList`, exactly (nested lists of other kinds never match).
    let at = |path: &[u8], tail: &[u8]| {
        path.iter()
            .position(|t| *t == PRODUCT_LIST)
            .is_some_and(|p| &path[p..] == tail)
    };
    let mut path: Vec<u8> = Vec::with_capacity(16);
    let mut scan = PageScan::default();
    loop {
        match reader.read_event().map_err(|e| bad(e.to_string()))? {
            Event::Start(e) => {
                path.push(tag(e.local_name().as_ref()));
                if at(&path, &IN_ARTICLE) {
                    scan.articles.push(ScannedArticle {
                        product: scan.products.len().saturating_sub(1),
                        ..ScannedArticle::default()
                    });
                }
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Text(t) => {
                let Some((&field, parent)) = path.split_last() else {
                    continue;
                };
                let in_product = at(parent, &[PRODUCT_LIST, PRODUCT]);
                let in_article = at(parent, &IN_ARTICLE);
                if in_product && matches!(field, PRODUCT_NUMBER | SYNC_MARKER) {
                    let value = t.decode().map_err(|e| bad(e.to_string()))?;
                    if field == PRODUCT_NUMBER {
                        scan.products.push(number(&value)?);
                        scan.product_markers.push(None);
                    } else if let Some(marker) = scan.product_markers.last_mut() {
                        *marker = Some(number(&value)?);
                    }
                    continue;
                }
                if !(in_article && matches!(field, ARTICLE_NUMBER | SYNC_MARKER | STOCK_ARTICLE)) {
                    continue;
                }
                let value = t.decode().map_err(|e| bad(e.to_string()))?;
                let article = scan.articles.last_mut();
                match (field, article) {
                    (ARTICLE_NUMBER, Some(a)) => a.number = number(&value)?,
                    (SYNC_MARKER, Some(a)) => a.sync_marker = Some(number(&value)?),
                    (STOCK_ARTICLE, Some(a)) => {
                        a.stock_article = Some(matches!(value.trim(), "true" | "1"))
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(scan)
}

/// The products (whole) whose highest marker (their own or an article's) is at most
/// `highest`, in page order.
pub fn emit_complete(
    order: &[i64],
    whole: Vec<wire::Product>,
    highest: i64,
    catalogue: &Catalogue,
) -> Vec<Record> {
    let mut seen = HashSet::new();
    let mut by_number: std::collections::HashMap<i64, wire::Product> =
        whole.into_iter().map(|p| (p.product_number, p)).collect();
    order
        .iter()
        .filter(|n| seen.insert(**n))
        .filter_map(|n| by_number.remove(n))
        .filter(|p| {
            p.article_list
                .article
                .iter()
                .filter_map(|a| a.sync_marker)
                .chain(p.sync_marker)
                .max()
                .is_some_and(|top| top <= highest)
        })
        .map(|p| Record::Product(to_product(&p, catalogue)))
        .collect()
}

/// Finds a product by its key: an article number (the article's product), or `P<number>`.
pub fn lookup<T: Transport>(m: &mut Mplus<T>, key: &str) -> Result<Option<Found>> {
    let request = match key.strip_prefix('P') {
        Some(n) => match n.parse::<i64>() {
            Ok(number) => ops::get_products_by_number(&[number]),
            Err(_) => return Ok(None),
        },
        None => match key.trim().parse::<i64>() {
            Ok(number) => ops::get_products_by_article(&[number], true),
            Err(_) => return Ok(None),
        },
    };
    let answer: GetProductsResponse = m.client.call(request, true)?;
    let catalogue = m.catalogue()?;
    Ok(answer
        .product_list
        .product
        .first()
        .filter(|p| !p.article_list.article.is_empty())
        .map(|p| {
            let product = to_product(p, &catalogue);
            Found {
                id: product.key.clone(),
                record: Some(Record::Product(product)),
            }
        }))
}

fn text(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A product's key: the article number of a simple product, `P<number>` of a family.
pub fn product_key(p: &wire::Product) -> String {
    match p.article_list.article.as_slice() {
        [only] => only.article_number.to_string(),
        _ => format!("P{}", p.product_number),
    }
}

/// Maps a whole product to a canonical product.
pub fn to_product(p: &wire::Product, catalogue: &Catalogue) -> Product {
    let categories: Vec<Vec<String>> = p
        .group_numbers
        .iter()
        .filter_map(|g| catalogue.paths.get(g).cloned())
        .collect();
    let mut extra = vec![
        NamedValue::integer("product_number", p.product_number),
        NamedValue {
            name: "group_numbers".into(),
            value: Value::Json(
                serde_json::to_string(&p.group_numbers).unwrap_or_else(|_| "[]".into()),
            ),
        },
    ];
    let description = text(&p.extra_text).map(str::to_owned);
    match p.article_list.article.as_slice() {
        [a] => {
            extra.extend(article_extra(a));
            Product {
                key: a.article_number.to_string(),
                name: text(&a.description)
                    .or(text(&p.description))
                    .unwrap_or_default()
                    .to_owned(),
                description,
                short_description: None,
                ean: ean(a),
                prices: vec![price(a, catalogue)],
                categories,
                properties: properties(a),
                variants: Vec::new(),
                active: a.active.unwrap_or(true),
                extra,
            }
        }
        articles => {
            let mut variants: Vec<Variant> =
                articles.iter().map(|a| variant(a, catalogue)).collect();
            distinguish(&mut variants);
            let webshop = articles.iter().any(|a| a.webshop == Some(true));
            extra.push(NamedValue::boolean("webshop", webshop));
            Product {
                key: format!("P{}", p.product_number),
                name: text(&p.description)
                    .or_else(|| articles.first().and_then(|a| text(&a.description)))
                    .unwrap_or_default()
                    .to_owned(),
                description,
                short_description: None,
                ean: None,
                prices: articles
                    .first()
                    .map(|a| vec![price(a, catalogue)])
                    .unwrap_or_default(),
                categories,
                properties: articles.first().map(properties).unwrap_or_default(),
                active: variants.iter().any(|v| v.active),
                variants,
                extra,
            }
        }
    }
}

fn variant(a: &Article, catalogue: &Catalogue) -> Variant {
    let mut options = Vec::new();
    if let Some(size) = text(&a.size) {
        options.push(Property {
            group: "Size".into(),
            option: size.to_owned(),
        });
    }
    if let Some(colour) = text(&a.colour) {
        options.push(Property {
            group: "Colour".into(),
            option: colour.to_owned(),
        });
    }
    if options.is_empty() {
        // Variants must differ in something: the article's own text.
        options.push(Property {
            group: "Variant".into(),
            option: text(&a.description)
                .map(str::to_owned)
                .unwrap_or_else(|| a.article_number.to_string()),
        });
    }
    Variant {
        key: a.article_number.to_string(),
        name: text(&a.description).map(str::to_owned),
        ean: ean(a),
        options,
        prices: vec![price(a, catalogue)],
        active: a.active.unwrap_or(true),
        extra: article_extra(a),
    }
}

/// Variants of one family must differ in their options (a shop cannot tell two variants with
/// the same size and colour apart, and refuses the second). Where several have the same
/// options, each of them gets a `Variant` option: its description when that tells them apart,
/// else its article number (which always does).
fn distinguish(variants: &mut [Variant]) {
    const GROUP: &str = "Variant";
    let signature = |v: &Variant| {
        let mut options: Vec<(String, String)> = v
            .options
            .iter()
            .map(|o| (o.group.clone(), o.option.clone()))
            .collect();
        options.sort();
        options
    };
    let mut same: BTreeMap<Vec<(String, String)>, Vec<usize>> = BTreeMap::new();
    for (i, v) in variants.iter().enumerate() {
        same.entry(signature(v)).or_default().push(i);
    }
    for indices in same.into_values().filter(|i| i.len() > 1) {
        let names: Vec<Option<&str>> = indices
            .iter()
            .map(|&i| {
                variants[i]
                    .name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
            })
            .collect();
        let distinct: HashSet<Option<&str>> = names.iter().copied().collect();
        // A `Variant` option already there (no size or colour) is the description: it did
        // not tell them apart.
        let had_variant = variants[indices[0]]
            .options
            .iter()
            .any(|o| o.group == GROUP);
        let by_name = !had_variant && distinct.len() == names.len() && !distinct.contains(&None);
        let labels: Vec<String> = indices
            .iter()
            .zip(&names)
            .map(|(&i, name)| match name {
                Some(name) if by_name => (*name).to_owned(),
                _ => variants[i].key.clone(),
            })
            .collect();
        for (&i, label) in indices.iter().zip(labels) {
            let options = &mut variants[i].options;
            match options.iter_mut().find(|o| o.group == GROUP) {
                Some(existing) => existing.option = label,
                None => options.push(Property {
                    group: GROUP.into(),
                    option: label,
                }),
            }
        }
    }
}

/// The brand as a descriptive property.
fn properties(a: &Article) -> Vec<Property> {
    text(&a.brand_name)
        .map(|brand| {
            vec![Property {
                group: "Brand".into(),
                option: brand.to_owned(),
            }]
        })
        .unwrap_or_default()
}

/// The article's fields the canonical model has no place for.
fn article_extra(a: &Article) -> Vec<NamedValue> {
    let mut extra = vec![NamedValue::integer("article_number", a.article_number)];
    let mut put_text = |name: &str, value: &Option<String>| {
        if let Some(v) = text(value) {
            extra.push(NamedValue::text(name, v));
        }
    };
    put_text("ext_article_id", &a.ext_article_id);
    put_text("plu_number", &a.plu_number);
    put_text("barcode", &a.barcode);
    put_text("size", &a.size);
    put_text("colour", &a.colour);
    put_text("invoice_text", &a.invoice_text);
    put_text("receipt_text", &a.receipt_text);
    put_text("extra_text", &a.extra_text);
    let ints = [
        ("vat_code", a.vat_code.map(i64::from)),
        ("turnover_group", a.turnover_group.map(i64::from)),
        ("purchase_price", a.purchase_price),
        ("sync_marker", a.sync_marker),
    ];
    for (name, value) in ints {
        if let Some(v) = value {
            extra.push(NamedValue::integer(name, v));
        }
    }
    let flags = [
        ("webshop", a.webshop),
        ("stock_article", a.stock_article),
        ("discontinued", a.discontinued),
    ];
    for (name, value) in flags {
        if let Some(v) = value {
            extra.push(NamedValue::boolean(name, v));
        }
    }
    extra
}

/// The article's EAN: its main barcode, else the current one of its list, when it has the
/// shape of a GTIN (8, 12, 13 or 14 digits; the check digit is not judged: a code is passed on
/// as the POS has it). Other codes (internal, alphanumeric) stay in `extra.barcode`.
pub fn ean(a: &Article) -> Option<String> {
    let listed = a
        .barcode_list
        .barcode
        .iter()
        .filter(|b| b.is_current != Some(false))
        .filter_map(|b| b.barcode.as_deref());
    a.barcode
        .as_deref()
        .into_iter()
        .chain(listed)
        .map(str::trim)
        .find(|code| is_gtin_shaped(code))
        .map(str::to_owned)
}

pub fn is_gtin_shaped(code: &str) -> bool {
    matches!(code.len(), 8 | 12 | 13 | 14) && code.bytes().all(|b| b.is_ascii_digit())
}

/// The article's price: cents incl. and excl. VAT, the rate from the branch's VAT table by
/// code (else the article's own percentage). A missing side is derived from the other.
pub fn price(a: &Article, catalogue: &Catalogue) -> Price {
    let rate = a
        .vat_code
        .and_then(|code| catalogue.vat.get(&code).copied())
        .or_else(|| a.vat_percentage.map(crate::connector::vat_rate))
        .unwrap_or(Decimal::ZERO);
    let (gross, net) = match (a.price_incl, a.price_excl) {
        (Some(gross), Some(net)) => (gross, net),
        // The SDK's money (half away from zero, in integers); a rate that makes no sense
        // (-100 % or below) leaves the other side as it is.
        (Some(gross), None) => (gross, net_from_gross(gross, rate).unwrap_or(gross)),
        (None, Some(net)) => (gross_from_net(net, rate).unwrap_or(net), net),
        (None, None) => (0, 0),
    };
    Price {
        currency: catalogue.currency.clone(),
        net,
        gross,
        tax_rate: rate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::example;

    fn catalogue() -> Catalogue {
        Catalogue {
            paths: [(12, vec!["Kleding".to_owned(), "Heren".to_owned()])]
                .into_iter()
                .collect(),
            vat: [(1, Decimal::integer(21))].into_iter().collect(),
            currency: "EUR".into(),
        }
    }

    fn example_products() -> Vec<wire::Product> {
        let body = std::fs::read(example("01-getProducts.response.xml")).expect("example");
        let answer: GetProductsResponse = crate::soap::parse("getProducts", &body).expect("parses");
        answer.product_list.product
    }

    #[test]
    fn a_product_with_two_articles_is_a_family() {
        let products = example_products();
        let p = to_product(&products[0], &catalogue());
        assert_eq!(p.key, "P5001");
        assert_eq!(p.name, "Merino sweater");
        assert_eq!(
            p.categories,
            vec![vec!["Kleding".to_owned(), "Heren".to_owned()]]
        );
        assert_eq!(p.variants.len(), 2);
        let m = &p.variants[0];
        assert_eq!(m.key, "10021");
        assert_eq!(m.ean.as_deref(), Some("8712345000017"));
        assert_eq!(
            m.options
                .iter()
                .map(|o| (o.group.as_str(), o.option.as_str()))
                .collect::<Vec<_>>(),
            vec![("Size", "M"), ("Colour", "navy")]
        );
        assert_eq!((m.prices[0].gross, m.prices[0].net), (7995, 6607));
        assert_eq!(m.prices[0].tax_rate, Decimal::integer(21));
        assert!(m.active);
        assert!(matches!(
            koppel_sdk::extra(&m.extra, "purchase_price"),
            Some(Value::Integer(2350))
        ));
        assert!(matches!(
            koppel_sdk::extra(&p.extra, "webshop"),
            Some(Value::Boolean(true))
        ));
    }

    fn options_of(v: &Variant) -> Vec<(&str, &str)> {
        v.options
            .iter()
            .map(|o| (o.group.as_str(), o.option.as_str()))
            .collect()
    }

    #[test]
    fn variants_with_the_same_size_and_colour_get_a_distinguishing_option() {
        let mut product = example_products().remove(0);
        let mut third = product.article_list.article[0].clone();
        third.article_number = 10023;
        third.description = Some("Merino sweater navy M (long)".into());
        product.article_list.article.push(third);
        // 10021 and 10023 are both navy M; 10022 (L) is alone.
        let p = to_product(&product, &catalogue());
        let sets: Vec<_> = p.variants.iter().map(options_of).collect();
        assert_eq!(
            sets,
            vec![
                vec![
                    ("Size", "M"),
                    ("Colour", "navy"),
                    ("Variant", "Merino sweater navy M")
                ],
                vec![("Size", "L"), ("Colour", "navy")],
                vec![
                    ("Size", "M"),
                    ("Colour", "navy"),
                    ("Variant", "Merino sweater navy M (long)")
                ],
            ]
        );

        // The same description too: the article number tells them apart.
        product.article_list.article[2].description =
            product.article_list.article[0].description.clone();
        let p = to_product(&product, &catalogue());
        assert_eq!(options_of(&p.variants[0])[2], ("Variant", "10021"));
        assert_eq!(options_of(&p.variants[2])[2], ("Variant", "10023"));
        let unique: HashSet<_> = p.variants.iter().map(options_of).collect();
        assert_eq!(unique.len(), 3, "every variant's options differ");

        // Neither size nor colour, same description: the number replaces the description.
        for a in &mut product.article_list.article {
            a.size = None;
            a.colour = None;
            a.description = Some("Gift card".into());
        }
        let p = to_product(&product, &catalogue());
        let sets: Vec<_> = p.variants.iter().map(options_of).collect();
        assert_eq!(
            sets,
            vec![
                vec![("Variant", "10021")],
                vec![("Variant", "10022")],
                vec![("Variant", "10023")],
            ]
        );
    }

    #[test]
    fn a_product_with_one_article_is_keyed_by_the_article() {
        let mut product = example_products().remove(0);
        product.article_list.article.truncate(1);
        product.article_list.article[0].price_excl = None;
        let p = to_product(&product, &catalogue());
        assert_eq!(p.key, "10021");
        assert_eq!(p.name, "Merino sweater navy M");
        assert!(p.variants.is_empty());
        assert_eq!(p.ean.as_deref(), Some("8712345000017"));
        assert_eq!(p.prices[0].net, 6607, "derived from the gross price");
    }

    #[test]
    fn a_page_scan_finds_products_articles_and_the_highest_marker() {
        let body = std::fs::read(example("01-getProducts.response.xml")).expect("example");
        let scan = scan_page(&body).expect("scans");
        assert_eq!(scan.products, vec![5001]);
        assert_eq!(scan.product_markers, vec![Some(1204)]);
        assert_eq!(
            scan.articles,
            vec![
                ScannedArticle {
                    number: 10021,
                    sync_marker: Some(1203),
                    stock_article: Some(true),
                    product: 0,
                },
                ScannedArticle {
                    number: 10022,
                    sync_marker: Some(1204),
                    stock_article: Some(true),
                    product: 0,
                },
            ]
        );
        assert_eq!(scan.highest(1201), Some(1204));
        let empty = br#"<S:Envelope xmlns:S="http://schemas.xmlsoap.org/soap/envelope/"><S:Body><GetProductsResponse xmlns="urn:mplusqapi"><productList/></GetProductsResponse></S:Body></S:Envelope>"#;
        assert_eq!(scan_page(empty).expect("scans"), PageScan::default());
        assert!(scan_page(b"<a><productList><product><productNumber>x</productNumber></product></productList></a>").is_err());
    }

    #[test]
    fn a_product_marker_counts_only_for_a_product_that_came_for_it() {
        let article = |number, marker, product| ScannedArticle {
            number,
            sync_marker: Some(marker),
            stock_article: None,
            product,
        };
        // Product 1 came for its own marker 90 (its articles are older): 90 counts.
        // Product 2 came for its article 60; its own marker 500 lies beyond the page.
        let scan = PageScan {
            products: vec![1, 2],
            product_markers: vec![Some(90), Some(500)],
            articles: vec![article(11, 10, 0), article(21, 60, 1)],
        };
        assert_eq!(scan.highest(50), Some(90));
        // Only older markers: nothing on the page is at `from` or later.
        assert_eq!(scan.highest(600), None);
    }

    #[test]
    fn families_are_emitted_on_the_page_of_their_highest_marker() {
        let products = example_products();
        // Markers 1203 and 1204: a page that ends at 1203 holds half of the family.
        assert!(emit_complete(&[5001], products.clone(), 1203, &catalogue()).is_empty());
        let records = emit_complete(&[5001, 5001], products, 1204, &catalogue());
        assert_eq!(records.len(), 1, "once, however often the page names it");
    }

    #[test]
    fn eans_are_digits_of_a_gtin_length() {
        assert!(is_gtin_shaped("8712345000017"));
        assert!(is_gtin_shaped("96385074"));
        assert!(!is_gtin_shaped("SW-MER-1"));
        assert!(!is_gtin_shaped("123"));
    }
}
