//! Stock: `getStock` (per article and branch, free/reserved/incoming with scales, `stockId`
//! marker), the history feed `getStockHistory[V2]`, and `updateStock`/`setStock`.

use super::{
    Limits, list_i32, opt_i32, opt_i64, page_size, req_i32, req_i64, required_request, wrapped_i64,
};
use crate::clock::write_datetime;
use crate::model::{State, StockChangeKind, from_milli, to_milli};
use crate::xml::{Element, Out, Payload, SoapFault};

/// `getStock` for the named articles. What an empty `articleNumbers` means is undocumented
/// (API-NOTES 6.2 and 10, gap 7), so the simulator takes the least forgiving reading: no
/// article named, no record (the documented feed of changes is `getStockHistoryV2`).
/// `stockId` keeps records whose stock marker is at least that value; `branchNumbers`, when
/// given, replaces the single `branchNumber`. Articles that keep no stock have no records.
pub fn get_stock(state: &State, op: &Element) -> Result<Payload, SoapFault> {
    let r = required_request(op)?;
    let branch = req_i32(r, "branchNumber")?;
    let articles = wrapped_i64(r, "articleNumbers", "articleNumbers")?;
    let since = opt_i64(r, "stockId")?;
    let extra_branches = match r.child("branchNumbers") {
        Some(w) => list_i32(w, "branchNumber")?,
        None => Vec::new(),
    };
    let branches: Vec<usize> = if extra_branches.is_empty() {
        state.branch_index(branch).into_iter().collect()
    } else {
        extra_branches
            .iter()
            .filter_map(|b| state.branch_index(*b))
            .collect()
    };
    let n = state.branches.len();
    let mut slots: Vec<usize> = Vec::new();
    for number in &articles {
        if let Some(&a) = state.article_index.get(number) {
            slots.extend(branches.iter().map(|b| a as usize * n + b));
        }
    }
    let mut out = Out::new("GetStockResponse");
    for slot in slots {
        let article = &state.articles[slot / n];
        let rec = &state.stock[slot];
        if !article.stock_article || since.is_some_and(|s| (rec.stock_id as i64) < s) {
            continue;
        }
        out.open("articleStocks");
        out.val("branchNumber", state.branches[slot % n].number);
        out.val("articleNumber", article.number);
        write_datetime(&mut out, "changeTimestamp", rec.changed);
        out.val("stockId", rec.stock_id);
        let (free, free_dp) = from_milli(rec.on_hand - rec.reserved);
        let (reserved, reserved_dp) = from_milli(rec.reserved);
        let (incoming, incoming_dp) = from_milli(rec.incoming);
        out.val("amountFree", free);
        out.val("decimalPlacesFree", free_dp);
        out.val("amountReserved", reserved);
        out.val("decimalPlacesReserved", reserved_dp);
        out.val("amountIncoming", incoming);
        out.val("decimalPlacesIncoming", incoming_dp);
        out.bool("isDayStockArticle", false);
        out.close("articleStocks");
    }
    Ok(out.finish())
}

/// `getStockHistory` / `getStockHistoryV2`: changes with a stock marker at least
/// `sinceStockId`, oldest first, at most `sinceStockIdLimit` (and the hard cap).
pub fn get_history(state: &State, limits: Limits, op: &Element) -> Result<Payload, SoapFault> {
    let r = required_request(op)?;
    let branches: Vec<i32> = if op.name == "getStockHistory" {
        vec![req_i32(r, "branchNumber")?]
    } else {
        list_i32(r, "branchNumbers")?
    };
    let articles = wrapped_i64(r, "articleNumbers", "articleNumbers")?;
    let since = opt_i64(r, "sinceStockId")?.unwrap_or(0).max(0) as u64;
    let page = page_size(opt_i32(r, "sinceStockIdLimit")?, limits);
    let start = state.stock_history.partition_point(|c| c.stock_id < since);
    let mut out = Out::new("GetStockHistoryResponse");
    for change in state.stock_history[start..]
        .iter()
        .filter(|c| branches.is_empty() || branches.contains(&c.branch))
        .filter(|c| articles.is_empty() || articles.contains(&c.article))
        .take(page)
    {
        out.open("articleStockHistory");
        out.val("stockId", change.stock_id);
        write_datetime(&mut out, "timestamp", change.at);
        out.val("branchNumber", change.branch);
        out.val("articleNumber", change.article);
        let (amount, dp) = from_milli(change.amount_milli);
        out.val("amountChanged", amount);
        out.val("decimalPlaces", dp);
        out.val("type", change.kind.as_str());
        out.opt_text("orderId", change.order_id.as_deref());
        out.opt_text("packingSlipId", change.packing_slip_id.as_deref());
        out.close("articleStockHistory");
    }
    Ok(out.finish())
}

/// `updateStock` (relative to what is on hand) and `setStock` (absolute: what is on hand;
/// free is that minus what orders reserve).
pub fn update_stock(
    state: &mut State,
    op: &Element,
    now: i64,
    absolute: bool,
) -> Result<Payload, SoapFault> {
    let r = required_request(op)?;
    let branch = req_i32(r, "branchNumber")?;
    let article = req_i64(r, "articleNumber")?;
    let amount = req_i64(r, if absolute { "amount" } else { "amountChanged" })?;
    let decimal_places = opt_i32(r, "decimalPlaces")?.unwrap_or(0);
    let (root, prefix) = if absolute {
        ("SetStockResponse", "SET-STOCK-RESULT")
    } else {
        ("UpdateStockResponse", "UPDATE-STOCK-RESULT")
    };
    let answer = |result: &str, stock_id: Option<u64>| {
        let mut out = Out::new(root);
        out.val("result", format_args!("{prefix}-{result}"));
        if let Some(id) = stock_id {
            out.val("stockId", id);
        }
        Ok(out.finish())
    };
    if state.branch_index(branch).is_none() {
        return answer("BRANCH-NOT-FOUND", None);
    }
    let Some(found) = state.article(article) else {
        return answer("ARTICLE-NOT-FOUND", None);
    };
    if !found.stock_article {
        return answer("NO-STOCK-ARTICLE", None);
    }
    let Some(milli) = u32::try_from(decimal_places)
        .ok()
        .and_then(|dp| to_milli(amount, dp))
    else {
        return answer("FAILED", None);
    };
    let result = if absolute {
        state.set_on_hand(article, branch, milli, StockChangeKind::Api, now)
    } else {
        state.adjust_stock(
            article,
            branch,
            milli,
            StockChangeKind::Api,
            None,
            None,
            now,
        )
    };
    match result {
        Ok(stock_id) => {
            tracing::debug!(article, branch, stock_id, "Stock changed through the API.");
            answer("OK", Some(stock_id))
        }
        Err(_) => answer("FAILED", None),
    }
}
