//! Products, articles and article groups: `getProducts` (paged by the article sync marker,
//! the limit counting articles) and `getArticleGroups`.

use std::collections::{HashMap, HashSet};

use super::{
    Limits, list_i32, list_i64, opt_bool, opt_i32, opt_i64, page_size, request_of, text_list,
};
use crate::clock::write_datetime;
use crate::model::{Article, State, vat_percentage};
use crate::xml::{Element, Out, Payload, SoapFault};

/// `getProducts`. With `syncMarker`, the articles and products whose own marker is at least
/// that value are taken in marker order (one sequence: API-NOTES 5), at most
/// `syncMarkerLimit` of them (and the hard cap). A product taken for one of its articles holds
/// only its selected articles; a product taken for its own marker (a change to the product
/// itself: description, extra text, groups) comes with all its articles, whose markers are
/// older than the one asked for. Every product carries its own `syncMarker`, which may be
/// lower or higher than its articles': a client must take the highest marker of the page
/// over products and articles alike (API-NOTES 5), and not a product's marker beyond the page.
pub fn get_products(state: &State, limits: Limits, op: &Element) -> Result<Payload, SoapFault> {
    let r = request_of(op);
    let article_numbers = list_i64(&r, "articleNumbers")?;
    let group_numbers = list_i32(&r, "groupNumbers")?;
    let product_numbers = list_i64(&r, "productNumbers")?;
    let plu_numbers = text_list(&r, "pluNumbers");
    let only_webshop = opt_bool(&r, "onlyWebshop")?.unwrap_or(false);
    let only_active = opt_bool(&r, "onlyActive")?.unwrap_or(false);
    let marker = opt_i64(&r, "syncMarker")?;
    let limit = opt_i32(&r, "syncMarkerLimit")?;
    let all_of_selected = opt_bool(&r, "includeAllArticlesOfSelectedProducts")?.unwrap_or(false);

    let article_filter: HashSet<i64> = article_numbers.iter().copied().collect();
    let group_filter: HashSet<i32> = group_numbers.iter().copied().collect();
    let product_filter: HashSet<i64> = product_numbers.iter().copied().collect();
    let plu_filter: HashSet<&str> = plu_numbers.iter().map(String::as_str).collect();
    // Products chosen through one of their articles (for includeAllArticlesOfSelectedProducts).
    let selected_products: HashSet<u32> = if all_of_selected && !article_filter.is_empty() {
        article_filter
            .iter()
            .filter_map(|n| state.article(*n).map(|a| a.product))
            .collect()
    } else {
        HashSet::new()
    };

    let wanted = |idx: u32| -> bool {
        let a = &state.articles[idx as usize];
        let product = &state.products[a.product as usize];
        if only_webshop && !a.webshop {
            return false;
        }
        if only_active && !a.active {
            return false;
        }
        if !article_filter.is_empty()
            && !article_filter.contains(&a.number)
            && !selected_products.contains(&a.product)
        {
            return false;
        }
        if !product_filter.is_empty() && !product_filter.contains(&product.number) {
            return false;
        }
        if !group_filter.is_empty() && !product.groups.iter().any(|(g, _)| group_filter.contains(g))
        {
            return false;
        }
        if !plu_filter.is_empty() && !plu_filter.contains(plu(a).as_ref()) {
            return false;
        }
        true
    };

    // Selected articles grouped per product, products in order of first appearance.
    let mut order: Vec<u32> = Vec::new();
    let mut per_product: HashMap<u32, Vec<u32>> = HashMap::new();
    let mut add = |idx: u32, product: u32| {
        per_product
            .entry(product)
            .or_insert_with(|| {
                order.push(product);
                Vec::new()
            })
            .push(idx);
    };
    if marker.is_some() || limit.is_some() {
        let from = marker.unwrap_or(0).max(0) as u64;
        let page = page_size(limit, limits);
        let mut taken = 0;
        let mut articles = state.by_marker.range(from..).peekable();
        let mut products = state.product_by_marker.range(from..).peekable();
        let mut whole: Vec<u32> = Vec::new();
        while taken < page {
            let next_article = articles.peek().map(|(m, _)| **m);
            let next_product = products.peek().map(|(m, _)| **m);
            match (next_article, next_product) {
                (Some(a), p) if p.is_none_or(|p| a < p) => {
                    let Some((_, &idx)) = articles.next() else {
                        break;
                    };
                    if wanted(idx) {
                        add(idx, state.articles[idx as usize].product);
                        taken += 1;
                    }
                }
                (_, Some(_)) => {
                    let Some((_, &p)) = products.next() else {
                        break;
                    };
                    if state.products[p as usize]
                        .articles
                        .iter()
                        .any(|&i| wanted(i))
                    {
                        whole.push(p);
                        taken += 1;
                    }
                }
                _ => break,
            }
        }
        for p in whole {
            let selected: Vec<u32> = state.products[p as usize]
                .articles
                .iter()
                .copied()
                .filter(|&i| wanted(i))
                .collect();
            per_product.remove(&p);
            if !order.contains(&p) {
                order.push(p);
            }
            per_product.insert(p, selected);
        }
    } else if !product_filter.is_empty() || !article_filter.is_empty() {
        let mut products: Vec<u32> = product_filter
            .iter()
            .filter_map(|n| state.product_index.get(n).copied())
            .chain(
                article_filter
                    .iter()
                    .filter_map(|n| state.article(*n).map(|a| a.product)),
            )
            .collect();
        products.sort_unstable();
        products.dedup();
        for p in products {
            for &idx in &state.products[p as usize].articles {
                if wanted(idx) {
                    add(idx, p);
                }
            }
        }
    } else {
        for (p, product) in state.products.iter().enumerate() {
            for &idx in &product.articles {
                if wanted(idx) {
                    add(idx, p as u32);
                }
            }
        }
    }

    let mut out = Out::new("GetProductsResponse");
    out.open("productList");
    for p in order {
        let product = &state.products[p as usize];
        let articles = &per_product[&p];
        out.open("product");
        out.val("productNumber", product.number);
        out.val("syncMarker", product.sync_marker);
        out.text("description", &product.description);
        out.text("extraText", &product.extra_text);
        out.open("articleList");
        for &idx in articles {
            write_article(&mut out, &state.articles[idx as usize]);
        }
        out.close("articleList");
        for (group, _) in product.groups.iter() {
            out.val("groupNumbers", group);
        }
        out.open("sortOrderGroupList");
        for (group, sort) in product.groups.iter() {
            out.open("sortOrderGroup");
            out.val("groupNumber", group);
            out.val("sortOrder", sort);
            out.close("sortOrderGroup");
        }
        out.close("sortOrderGroupList");
        out.close("product");
    }
    out.close("productList");
    Ok(out.finish())
}

fn plu(a: &Article) -> std::borrow::Cow<'_, str> {
    match a.texts.as_ref().and_then(|t| t.plu.as_deref()) {
        Some(plu) => plu.into(),
        None => a.number.to_string().into(),
    }
}

/// One `Article` in schema order.
fn write_article(out: &mut Out, a: &Article) {
    let texts = a.texts.as_deref();
    let text_or = |pick: Option<&str>| pick.unwrap_or(&a.description).to_owned();
    out.open("article");
    out.val("articleNumber", a.number);
    out.text("extArticleId", &a.ext_id);
    out.text("pluNumber", &plu(a));
    out.val("syncMarker", a.sync_marker);
    write_datetime(out, "changeTimestamp", a.changed);
    write_datetime(out, "createTimestamp", a.created);
    out.bool("active", a.active);
    out.text("description", &a.description);
    if !a.colour.is_empty() {
        out.text("colour", &a.colour);
    }
    if !a.size.is_empty() {
        out.text("size", &a.size);
    }
    out.text(
        "invoiceText",
        &text_or(texts.and_then(|t| t.invoice_text.as_deref())),
    );
    out.text(
        "receiptText",
        &text_or(texts.and_then(|t| t.receipt_text.as_deref())),
    );
    out.text(
        "displayText",
        &text_or(texts.and_then(|t| t.display_text.as_deref())),
    );
    if !a.barcode.is_empty() {
        out.text("barcode", &a.barcode);
    }
    if let Some(extra) = texts.and_then(|t| t.extra_text.as_deref()) {
        out.text("extraText", extra);
    }
    out.val("turnoverGroup", a.turnover_group);
    out.val("vatCode", a.vat_code);
    out.val("vatPercentage", vat_percentage(a.vat_code));
    out.val("purchasePrice", a.purchase_price);
    out.val("priceIncl", a.price_incl);
    out.val("priceExcl", a.price_excl);
    out.bool("webshop", a.webshop);
    if let Some(t) = texts.filter(|t| !t.category_ids.is_empty()) {
        out.open("categoryIds");
        for c in &t.category_ids {
            out.val("category", c);
        }
        out.close("categoryIds");
    }
    out.bool("stockArticle", a.stock_article);
    if !a.barcode.is_empty() {
        out.open("barcodeList");
        out.open("barcode");
        out.val("barcodeId", a.barcode_id);
        out.text("barcode", &a.barcode);
        out.val("quantity", 1);
        out.val("decimalPlaces", 0);
        out.bool("isCurrent", true);
        out.close("barcode");
        out.close("barcodeList");
    }
    out.close("article");
}

/// `getArticleGroups`: the tree from the top groups down. `groupNumbers` filters top groups;
/// with `syncMarker`, only top groups whose tree holds a group changed at or after it.
pub fn get_article_groups(
    state: &State,
    limits: Limits,
    op: &Element,
) -> Result<Payload, SoapFault> {
    let r = request_of(op);
    let filter = list_i32(&r, "groupNumbers")?;
    let marker = opt_i64(&r, "syncMarker")?.map(|m| m.max(0) as u64);
    let limit = opt_i32(&r, "syncMarkerLimit")?;
    let with_members = opt_bool(&r, "retrieveArticleNumbers")?.unwrap_or(false);

    let mut members: HashMap<i32, (Vec<i64>, Vec<i64>)> = HashMap::new();
    if with_members {
        for product in &state.products {
            for (group, _) in product.groups.iter() {
                let entry = members.entry(*group).or_default();
                entry.0.push(product.number);
                entry.1.extend(
                    product
                        .articles
                        .iter()
                        .map(|&i| state.articles[i as usize].number),
                );
            }
        }
    }
    let newest_in_tree = |number: i32| -> u64 {
        state
            .groups
            .iter()
            .filter(|g| g.number == number || g.parent == Some(number))
            .map(|g| g.sync_marker)
            .max()
            .unwrap_or(0)
    };
    let mut tops: Vec<_> = state
        .groups
        .iter()
        .filter(|g| g.parent.is_none())
        .filter(|g| filter.is_empty() || filter.contains(&g.number))
        .filter(|g| marker.is_none_or(|m| newest_in_tree(g.number) >= m))
        .collect();
    if marker.is_some() {
        tops.sort_by_key(|g| newest_in_tree(g.number));
        tops.truncate(page_size(limit, limits));
    }
    let mut out = Out::new("GetArticleGroupsResponse");
    out.open("articleGroupList");
    for top in tops {
        write_group(&mut out, state, top.number, &members, 0);
    }
    out.close("articleGroupList");
    Ok(out.finish())
}

fn write_group(
    out: &mut Out,
    state: &State,
    number: i32,
    members: &HashMap<i32, (Vec<i64>, Vec<i64>)>,
    depth: usize,
) {
    let Some(group) = state.groups.iter().find(|g| g.number == number) else {
        return;
    };
    out.open("articleGroups");
    out.val("groupNumber", group.number);
    out.val("syncMarker", group.sync_marker);
    out.text("name", &group.name);
    out.text("text", &group.name);
    out.open("subGroupList");
    if depth < 16 {
        for child in state.groups.iter().filter(|g| g.parent == Some(number)) {
            write_group(out, state, child.number, members, depth + 1);
        }
    }
    out.close("subGroupList");
    out.val("sortOrder", group.sort_order);
    if let Some((products, articles)) = members.get(&number) {
        out.open("productNumbers");
        for p in products {
            out.val("number", p);
        }
        out.close("productNumbers");
        out.open("articleNumbers");
        for a in articles {
            out.val("number", a);
        }
        out.close("articleNumbers");
    }
    out.close("articleGroups");
}
