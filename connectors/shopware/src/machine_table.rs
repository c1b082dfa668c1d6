//! Shopware's default order, payment and delivery state machines: every state and every
//! transition (from, action, to) in the order of the reference file
//! `../shared/reference/shopware/state-machines.json` (compiled from Shopware's migrations and
//! its `OrderStates`, `OrderTransactionStates`, `OrderDeliveryStates` and
//! `StateMachineTransitionActions`). No migration changed the default machines after 6.4.4
//! (`Migration1628519513AddUnconfirmedTransactionState`, the last one), so one table serves
//! every version the connector supports.
//!
//! Generated, not written by hand: `machines::tests::the_table_is_the_reference_file` compares
//! it with the file and, when they differ, prints this file as it should be.

/// `order.state`: its states.
pub const ORDER_STATES: &[&str] = &["open", "in_progress", "completed", "cancelled"];

/// `order.state`: (from, action, to).
pub const ORDER: &[(&str, &str, &str)] = &[
    ("open", "process", "in_progress"),
    ("open", "cancel", "cancelled"),
    ("in_progress", "cancel", "cancelled"),
    ("in_progress", "complete", "completed"),
    ("cancelled", "reopen", "open"),
    ("completed", "reopen", "open"),
];

/// `order_transaction.state`: its states.
pub const PAYMENT_STATES: &[&str] = &[
    "open",
    "paid",
    "paid_partially",
    "cancelled",
    "reminded",
    "refunded",
    "refunded_partially",
    "in_progress",
    "failed",
    "authorized",
    "chargeback",
    "unconfirmed",
];

/// `order_transaction.state`: (from, action, to).
pub const PAYMENT: &[(&str, &str, &str)] = &[
    ("open", "pay", "paid"),
    ("open", "pay_partially", "paid_partially"),
    ("open", "cancel", "cancelled"),
    ("open", "remind", "reminded"),
    ("reminded", "pay", "paid"),
    ("reminded", "pay_partially", "paid_partially"),
    ("reminded", "cancel", "cancelled"),
    ("paid_partially", "remind", "reminded"),
    ("paid_partially", "pay", "paid"),
    ("paid_partially", "refund_partially", "refunded_partially"),
    ("paid_partially", "refund", "refunded"),
    ("paid_partially", "cancel", "cancelled"),
    ("paid", "refund_partially", "refunded_partially"),
    ("paid", "refund", "refunded"),
    ("paid", "cancel", "cancelled"),
    ("refunded_partially", "refund", "refunded"),
    ("refunded_partially", "cancel", "cancelled"),
    ("cancelled", "reopen", "open"),
    ("cancelled", "refund", "refunded"),
    ("cancelled", "refund_partially", "refunded_partially"),
    ("in_progress", "reopen", "open"),
    ("in_progress", "fail", "failed"),
    ("in_progress", "cancel", "cancelled"),
    ("in_progress", "paid", "paid"),
    ("in_progress", "paid_partially", "paid_partially"),
    ("in_progress", "pay_partially", "paid_partially"),
    ("failed", "reopen", "open"),
    ("failed", "do_pay", "in_progress"),
    ("failed", "pay", "paid"),
    ("failed", "fail", "failed"),
    ("failed", "paid", "paid"),
    ("failed", "paid_partially", "paid_partially"),
    ("failed", "pay_partially", "paid_partially"),
    ("open", "do_pay", "in_progress"),
    ("open", "fail", "failed"),
    ("reminded", "reopen", "open"),
    ("reminded", "do_pay", "in_progress"),
    ("paid_partially", "reopen", "open"),
    ("paid_partially", "do_pay", "in_progress"),
    ("paid", "reopen", "open"),
    ("refunded_partially", "reopen", "open"),
    ("open", "paid", "paid"),
    ("open", "paid_partially", "paid_partially"),
    ("in_progress", "authorize", "authorized"),
    ("open", "authorize", "authorized"),
    ("reminded", "authorize", "authorized"),
    ("authorized", "paid", "paid"),
    ("authorized", "paid_partially", "paid_partially"),
    ("authorized", "fail", "failed"),
    ("authorized", "cancel", "cancelled"),
    ("paid", "chargeback", "chargeback"),
    ("paid_partially", "chargeback", "chargeback"),
    ("chargeback", "paid", "paid"),
    ("chargeback", "paid_partially", "paid_partially"),
    ("chargeback", "cancel", "cancelled"),
    ("cancelled", "paid", "paid"),
    ("open", "process_unconfirmed", "unconfirmed"),
    ("reminded", "process_unconfirmed", "unconfirmed"),
    ("failed", "process_unconfirmed", "unconfirmed"),
    ("cancelled", "process_unconfirmed", "unconfirmed"),
    ("paid_partially", "process_unconfirmed", "unconfirmed"),
    ("unconfirmed", "paid", "paid"),
    ("unconfirmed", "paid_partially", "paid_partially"),
    ("unconfirmed", "fail", "failed"),
    ("unconfirmed", "cancel", "cancelled"),
    ("unconfirmed", "authorize", "authorized"),
    ("unconfirmed", "reopen", "open"),
];

/// `order_delivery.state`: its states.
pub const DELIVERY_STATES: &[&str] = &[
    "open",
    "cancelled",
    "shipped",
    "shipped_partially",
    "returned",
    "returned_partially",
];

/// `order_delivery.state`: (from, action, to).
pub const DELIVERY: &[(&str, &str, &str)] = &[
    ("open", "ship", "shipped"),
    ("open", "ship_partially", "shipped_partially"),
    ("open", "cancel", "cancelled"),
    ("shipped", "retour", "returned"),
    ("shipped", "retour_partially", "returned_partially"),
    ("shipped", "cancel", "cancelled"),
    ("shipped_partially", "retour", "returned"),
    (
        "shipped_partially",
        "retour_partially",
        "returned_partially",
    ),
    ("shipped_partially", "ship", "shipped"),
    ("shipped_partially", "cancel", "cancelled"),
    ("cancelled", "reopen", "open"),
    ("shipped", "reopen", "open"),
    ("shipped_partially", "reopen", "open"),
    ("returned", "reopen", "open"),
    ("returned_partially", "reopen", "open"),
    ("returned_partially", "retour", "returned"),
];
