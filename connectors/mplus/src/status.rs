//! The `order-status` stream: orders changed in the POS (delivered, paid, cancelled) since a
//! marker, as order-status records keyed by the external order id the shop wrote, so the shop
//! side can move its order along. Orders without an external id (made at the till) are passed
//! over, as are, with `order_prefix`, orders of another prefix (another shop's); the marker
//! still advances. State: the next order sync marker.

use koppel_sdk::{
    DeliveryState, NamedValue, OrderState, OrderStatus, Page, PaymentState, Record, Result, Value,
};

use crate::connector::{Mplus, marker_state, page_size};
use crate::ops;
use crate::soap::Transport;
use crate::wire::{GetOrdersResponse, Order};

pub fn read<T: Transport>(m: &mut Mplus<T>, state: Option<&str>, limit: u32) -> Result<Page> {
    let from = marker_state("order-status", state)?;
    let want = page_size(limit);
    // Headers only: fast over the till's whole order history. They leave the invoice
    // references out (the WSDL's documentation of `includeLineList`), so the page's web
    // orders are read again with their lines, the way that has them.
    let answer: GetOrdersResponse = m.client.call(ops::get_orders_since(from, want), true)?;
    let mut orders = answer.order_list.order;
    let highest = orders.iter().filter_map(|o| o.sync_marker).max();
    let prefix = m.config.order_prefix.clone();
    let ours: Vec<&str> = orders
        .iter()
        .filter(|o| to_status(o, &prefix).is_some())
        .map(|o| o.order_id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    if !ours.is_empty() {
        let whole: GetOrdersResponse = m.client.call(ops::get_orders_by_id(&ours), true)?;
        for o in &mut orders {
            if let Some(full) = whole
                .order_list
                .order
                .iter()
                .find(|f| f.order_id == o.order_id)
            {
                o.invoice_ids = full.invoice_ids.clone();
            }
        }
    }
    Ok(Page {
        has_more: orders.len() >= want as usize && highest.is_some(),
        records: orders
            .iter()
            .filter_map(|o| to_status(o, &m.config.order_prefix))
            .map(Record::OrderStatus)
            .collect(),
        state: Some(highest.map_or(from, |h| (h + 1).max(from)).to_string()),
    })
}

/// An MplusKASSA order's state as the shop sees it, keyed by the shop's number: `None` without
/// an external order id, or (with `order_prefix`) for another shop's order.
pub fn to_status(o: &Order, prefix: &str) -> Option<OrderStatus> {
    let key = o
        .ext_order_id
        .as_deref()
        .map(str::trim)
        .and_then(|k| k.strip_prefix(prefix))
        .filter(|k| !k.is_empty())?;
    let is = |field: &Option<String>, value: &str| field.as_deref() == Some(value);
    let cancelled = is(&o.cancel_state, "ORDER-CANCEL-STATE-COMPLETE");
    let delivered = is(&o.delivery_state, "ORDER-DELIVERY-STATE-COMPLETE");
    let partly_delivered = is(&o.delivery_state, "ORDER-DELIVERY-STATE-PARTIAL");
    let fully_paid = o.fully_paid == Some(true);
    let prepaid = o.prepaid_amount.unwrap_or(0);
    let state = if cancelled {
        OrderState::Cancelled
    } else if is(&o.complete_state, "ORDER-COMPLETE-STATE-COMPLETE") || (delivered && fully_paid) {
        OrderState::Completed
    } else if delivered || partly_delivered || prepaid > 0 {
        OrderState::InProgress
    } else {
        OrderState::Open
    };
    let payment_state = if fully_paid {
        PaymentState::Paid
    } else if prepaid > 0 {
        PaymentState::PartiallyPaid
    } else if cancelled {
        PaymentState::Cancelled
    } else {
        PaymentState::Open
    };
    let delivery_state = if delivered {
        DeliveryState::Shipped
    } else if partly_delivered {
        DeliveryState::PartiallyShipped
    } else if cancelled {
        DeliveryState::Cancelled
    } else {
        DeliveryState::Open
    };
    let mut extra = vec![NamedValue::text("order_id", o.order_id.clone())];
    if let Some(n) = o.order_number.filter(|n| n.number > 0) {
        extra.push(NamedValue::text(
            "order_number",
            format!("{}-{:06}", n.year, n.number),
        ));
    }
    let ints = [
        ("prepaid_amount", o.prepaid_amount),
        ("total_incl_amount", o.total_incl_amount),
        ("total_excl_amount", o.total_excl_amount),
        ("relation_number", o.relation_number),
        ("sync_marker", o.sync_marker),
    ];
    for (name, value) in ints {
        if let Some(v) = value {
            extra.push(NamedValue::integer(name, v));
        }
    }
    for (name, ids) in [
        ("invoice_ids", &o.invoice_ids.id),
        ("packing_slip_ids", &o.packing_slip_ids.id),
    ] {
        if !ids.is_empty() {
            extra.push(NamedValue {
                name: name.into(),
                value: Value::Json(serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())),
            });
        }
    }
    Some(OrderStatus {
        key: key.to_owned(),
        state,
        payment_state: Some(payment_state),
        delivery_state: Some(delivery_state),
        tracking_codes: Vec::new(),
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_status_(o: &Order) -> Option<OrderStatus> {
        to_status(o, "")
    }

    #[test]
    fn a_prefix_keeps_another_shop_s_orders_out_and_is_taken_off_the_key() {
        let mut o = order("NOTHING", false, 0);
        o.ext_order_id = Some("NL-100234".into());
        assert_eq!(
            to_status(&o, "NL-").map(|s| s.key).as_deref(),
            Some("100234")
        );
        assert!(to_status(&o, "BE-").is_none());
        let mut bare = o.clone();
        bare.ext_order_id = Some("100234".into());
        assert!(to_status(&bare, "NL-").is_none());
    }

    fn order(delivery: &str, paid: bool, prepaid: i64) -> Order {
        Order {
            order_id: "4be1".into(),
            ext_order_id: Some("100234".into()),
            delivery_state: Some(format!("ORDER-DELIVERY-STATE-{delivery}")),
            cancel_state: Some("ORDER-CANCEL-STATE-NOTHING".into()),
            complete_state: Some("ORDER-COMPLETE-STATE-NOTHING".into()),
            fully_paid: Some(paid),
            prepaid_amount: Some(prepaid),
            ..Order::default()
        }
    }

    #[test]
    fn deliveries_and_payments_map_to_shop_states() {
        let s = to_status_(&order("NOTHING", false, 0)).expect("has an ext id");
        assert_eq!(s.key, "100234");
        assert_eq!(
            (s.state, s.payment_state, s.delivery_state),
            (
                OrderState::Open,
                Some(PaymentState::Open),
                Some(DeliveryState::Open)
            )
        );
        let s = to_status_(&order("COMPLETE", false, 500)).expect("ext id");
        assert_eq!(
            (s.state, s.payment_state, s.delivery_state),
            (
                OrderState::InProgress,
                Some(PaymentState::PartiallyPaid),
                Some(DeliveryState::Shipped)
            )
        );
        let s = to_status_(&order("COMPLETE", true, 8490)).expect("ext id");
        assert_eq!(s.state, OrderState::Completed);
        assert_eq!(s.payment_state, Some(PaymentState::Paid));
        let mut cancelled = order("NOTHING", false, 0);
        cancelled.cancel_state = Some("ORDER-CANCEL-STATE-COMPLETE".into());
        assert_eq!(
            to_status_(&cancelled).map(|s| s.state),
            Some(OrderState::Cancelled)
        );
        let mut till = order("NOTHING", false, 0);
        till.ext_order_id = Some(String::new());
        assert!(
            to_status_(&till).is_none(),
            "an order made at the till has no shop order"
        );
    }
}
