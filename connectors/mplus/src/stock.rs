//! The `stock` stream: on-hand, reserved and available per article and branch.
//!
//! Without state it reads everything: it notes the current stock marker (`stockId` of
//! `getCurrentSyncMarkers`), pages through the articles by their sync marker and asks
//! `getStock` for each page's articles; then it continues incrementally from the noted marker,
//! so a change made during the full read is read again, never lost. Incremental reads page
//! through the documented change feed, `getStockHistoryV2` from the state's marker
//! (`sinceStockId`, at most `sinceStockIdLimit` changes), and ask `getStock` for the current
//! stock of the articles those changes name, in every one of the `stock_branches` (so that
//! every page holds all branches of its articles).
//!
//! State (JSON): `{"full":<next article marker>,"since":<stock marker>}` during the full read,
//! then `{"since":<next stock marker>}`.

use serde::{Deserialize, Serialize};

use koppel_sdk::{ConnectorError, Decimal, NamedValue, Page, Record, Result, StockLevel, Value};

use crate::connector::{Mplus, page_size};
use crate::ops;
use crate::soap::Transport;
use crate::wire::{
    ArticleStock, ArticleStockHistory, GetStockHistoryResponse, GetStockResponse, SyncMarkers,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<i64>,
    pub since: i64,
}

impl StockState {
    fn parse(state: Option<&str>) -> Result<Option<StockState>> {
        state
            .map(|text| {
                serde_json::from_str(text).map_err(|_| {
                    ConnectorError::internal(format!(
                        "the `stock` state {text:?} is not this connector's; reset the stream's state"
                    ))
                })
            })
            .transpose()
    }

    fn text(self) -> String {
        serde_json::to_string(&self).unwrap_or_else(|_| format!("{{\"since\":{}}}", self.since))
    }
}

pub fn read<T: Transport>(m: &mut Mplus<T>, state: Option<&str>, limit: u32) -> Result<Page> {
    let state = match StockState::parse(state)? {
        Some(state) => state,
        None => {
            let markers: SyncMarkers = m.client.call(ops::get_current_sync_markers(), true)?;
            StockState {
                full: Some(0),
                since: markers.stock_id.unwrap_or(0).max(0),
            }
        }
    };
    match state.full {
        Some(marker) => read_full(m, marker, state.since, limit),
        None => read_changes(m, state.since, limit),
    }
}

/// One page of the full read: the stock of the next articles by sync marker.
fn read_full<T: Transport>(m: &mut Mplus<T>, from: i64, since: i64, limit: u32) -> Result<Page> {
    let branches = m.config.stock_branches.clone();
    let want = page_size(limit / branches.len().max(1) as u32);
    let body = m
        .client
        .call_raw(ops::get_products_since(from, want), true)?;
    let page = crate::products::scan_page(&body)?;
    let highest = page.highest(from);
    // The articles that came for their own marker: a product that came for its own marker
    // brings its older articles too, which an earlier page of this read had already.
    let stock_articles: Vec<i64> = page
        .articles
        .iter()
        .filter(|a| a.sync_marker.is_some_and(|m| m >= from))
        .filter(|a| a.stock_article != Some(false))
        .map(|a| a.number)
        .collect();
    let mut records = Vec::new();
    if !stock_articles.is_empty() {
        let answer: GetStockResponse = m.client.call(
            ops::get_stock(branches[0], &branches, &stock_articles, None),
            true,
        )?;
        for s in &answer.article_stocks {
            records.push(Record::Stock(to_stock_level(s, m.config.branch)?));
        }
    }
    // The server's page cap is undocumented: a page shorter than asked is not the end, only
    // one with nothing at or after the marker is.
    let next = match highest {
        Some(h) => StockState {
            full: Some(h + 1),
            since,
        },
        // The end: continue with the changes since the full read began.
        None => StockState { full: None, since },
    };
    Ok(Page {
        records,
        state: Some(next.text()),
        has_more: true,
    })
}

/// The stock, now, of the articles changed from stock marker `since` on: one page of the change
/// feed (at most as many changes as the page may hold records), then one `getStock` for the
/// articles it names, in every branch read.
fn read_changes<T: Transport>(m: &mut Mplus<T>, since: i64, limit: u32) -> Result<Page> {
    let branches = m.config.stock_branches.clone();
    let want = page_size(limit / branches.len().max(1) as u32);
    let feed: GetStockHistoryResponse = m
        .client
        .call(ops::get_stock_history_v2(&branches, since, want), true)?;
    let changes: Vec<&ArticleStockHistory> = feed
        .article_stock_history
        .iter()
        .filter(|c| c.stock_id >= since)
        .filter(|c| c.branch_number.is_none_or(|b| branches.contains(&b)))
        .collect();
    let Some(highest) = feed.article_stock_history.iter().map(|c| c.stock_id).max() else {
        return Ok(Page {
            records: Vec::new(),
            state: Some(StockState { full: None, since }.text()),
            has_more: false,
        });
    };
    let mut articles: Vec<i64> = changes.iter().map(|c| c.article_number).collect();
    articles.sort_unstable();
    articles.dedup();
    let mut records = Vec::new();
    if !articles.is_empty() {
        let answer: GetStockResponse = m.client.call(
            ops::get_stock(branches[0], &branches, &articles, None),
            true,
        )?;
        for s in &answer.article_stocks {
            records.push(Record::Stock(to_stock_level(s, m.config.branch)?));
        }
    }
    // The feed's page cap is undocumented: a page shorter than asked is not the end; one with
    // nothing at or after the marker is.
    Ok(Page {
        records,
        state: Some(
            StockState {
                full: None,
                since: (highest + 1).max(since),
            }
            .text(),
        ),
        has_more: highest >= since,
    })
}

fn quantity(amount: i64, places: Option<i32>) -> Result<Decimal> {
    // API-NOTES 3: an absent scale is ambiguous; the schema's examples always send it.
    let scale = u8::try_from(places.unwrap_or(0))
        .ok()
        .filter(|s| *s <= 18)
        .ok_or_else(|| {
            ConnectorError::protocol(format!("stock scale {places:?} is out of range"))
        })?;
    Ok(Decimal::new(amount, scale))
}

/// One `ArticleStock`: free is what can be sold, reserved is held by open orders, on hand is
/// both.
pub fn to_stock_level(s: &ArticleStock, default_branch: i32) -> Result<StockLevel> {
    let free = quantity(s.amount_free, s.decimal_places_free)?;
    let reserved = quantity(s.amount_reserved, s.decimal_places_reserved)?;
    let on_hand = free.checked_add(reserved).ok_or_else(|| {
        ConnectorError::protocol(format!(
            "stock of article {} does not add up (free {free}, reserved {reserved})",
            s.article_number
        ))
    })?;
    let branch = s.branch_number.unwrap_or(default_branch);
    let mut extra = vec![
        NamedValue::integer("branch_number", i64::from(branch)),
        NamedValue::integer("stock_id", s.stock_id),
    ];
    if let Some(incoming) = s.amount_incoming {
        extra.push(NamedValue {
            name: "incoming".into(),
            value: Value::Number(quantity(incoming, s.decimal_places_incoming)?),
        });
    }
    Ok(StockLevel {
        key: s.article_number.to_string(),
        on_hand,
        reserved,
        available: free,
        location: Some(branch.to_string()),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stocks() -> Vec<ArticleStock> {
        let body =
            std::fs::read(crate::tests::example("02-getStock.response.xml")).expect("example");
        let answer: GetStockResponse = crate::soap::parse("getStock", &body).expect("parses");
        answer.article_stocks
    }

    #[test]
    fn free_and_reserved_make_on_hand() {
        let s = to_stock_level(&stocks()[0], 9).expect("valid");
        assert_eq!(s.key, "10021");
        assert_eq!(s.available, Decimal::integer(7));
        assert_eq!(s.reserved, Decimal::integer(2));
        assert_eq!(s.on_hand, Decimal::integer(9));
        assert_eq!(s.location.as_deref(), Some("1"));
        let mut scaled = stocks()[0].clone();
        scaled.amount_free = 1530;
        scaled.decimal_places_free = Some(3);
        let s = to_stock_level(&scaled, 1).expect("valid");
        assert_eq!(s.on_hand.to_string(), "3.530");
    }

    #[test]
    fn states_are_small_json() {
        let s = StockState {
            full: Some(12),
            since: 99,
        };
        assert_eq!(s.text(), r#"{"full":12,"since":99}"#);
        assert_eq!(StockState::parse(Some(&s.text())).ok().flatten(), Some(s));
        assert_eq!(
            StockState {
                full: None,
                since: 3
            }
            .text(),
            r#"{"since":3}"#
        );
        assert!(StockState::parse(Some("17")).is_err());
    }
}
