//! The `changes` stream: what the till says has moved, for koppel's change watch
//! (connector-contract.md 3.9). One `getCurrentSyncMarkers` (no input, a handful of numbers)
//! gives one entry per stream, keyed by the stream's name, whose name is the marker that moves
//! whenever that stream has something new: the stock marker for `stock`, the article marker
//! (products and articles share it) and the article group marker for `products`, the relation
//! marker for `customers`, the order marker for `order-status`, the employee marker for
//! `employees`. Every read is the current picture: no state, but an offset while a page is cut
//! (a limit below five; the watch asks for more).

use koppel_sdk::{NamedValue, Page, Record, ReferenceEntry, Result};

use crate::connector::Mplus;
use crate::ops;
use crate::soap::Transport;
use crate::wire::SyncMarkers;

pub fn read<T: Transport>(m: &mut Mplus<T>, state: Option<&str>, limit: u32) -> Result<Page> {
    let markers: SyncMarkers = m.client.call(ops::get_current_sync_markers(), true)?;
    let marker = |value: Option<i64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let entry = |stream: &str, version: String, fields: Vec<(&str, Option<i64>)>| {
        Record::Reference(ReferenceEntry {
            key: stream.into(),
            name: version,
            fields: fields
                .into_iter()
                .filter_map(|(name, value)| value.map(|v| NamedValue::integer(name, v)))
                .collect(),
        })
    };
    let records = vec![
        entry(
            "stock",
            marker(markers.stock_id),
            vec![("stock_id", markers.stock_id)],
        ),
        entry(
            "products",
            format!(
                "{}.{}",
                marker(markers.article_sync_marker),
                marker(markers.article_group_sync_marker)
            ),
            vec![
                ("article_sync_marker", markers.article_sync_marker),
                (
                    "article_group_sync_marker",
                    markers.article_group_sync_marker,
                ),
            ],
        ),
        entry(
            "customers",
            marker(markers.relation_sync_marker),
            vec![("relation_sync_marker", markers.relation_sync_marker)],
        ),
        entry(
            "order-status",
            marker(markers.order_sync_marker),
            vec![("order_sync_marker", markers.order_sync_marker)],
        ),
        entry(
            "employees",
            marker(markers.employee_sync_marker),
            vec![("employee_sync_marker", markers.employee_sync_marker)],
        ),
    ];
    crate::reference::snapshot_page("changes", records, state, limit)
}
