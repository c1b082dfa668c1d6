//! Writing order status: the state the till reports moves the Shopware order, its delivery and
//! its payment along their state machines (e.g. open → in_progress → completed), after the
//! tracking codes are added to the delivery. Every path is planned before anything is sent;
//! a record whose target cannot be reached safely changes nothing.

use koppel_sdk::{
    DeliveryState, OrderState, OrderStatus, PaymentState, Record, Result, WriteOptions,
    WriteOutcome, extra,
};
use serde_json::{Value, json};

use crate::api::{Call, Client};
use crate::config::Config;
use crate::errors;
use crate::machines::{self, Machine, Plan};
use crate::orders;

pub fn order_target(state: OrderState) -> &'static str {
    match state {
        OrderState::Open => "open",
        OrderState::InProgress => "in_progress",
        OrderState::Completed => "completed",
        OrderState::Cancelled => "cancelled",
    }
}

pub fn payment_target(state: PaymentState) -> &'static str {
    match state {
        PaymentState::Open => "open",
        PaymentState::Authorized => "authorized",
        PaymentState::PartiallyPaid => "paid_partially",
        PaymentState::Paid => "paid",
        PaymentState::Refunded => "refunded",
        PaymentState::Failed => "failed",
        PaymentState::Cancelled => "cancelled",
    }
}

pub fn delivery_target(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Open => "open",
        DeliveryState::PartiallyShipped => "shipped_partially",
        DeliveryState::Shipped => "shipped",
        DeliveryState::Returned => "returned",
        DeliveryState::Cancelled => "cancelled",
    }
}

/// One machine's planned move.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub machine: Machine,
    pub id: String,
    pub from: String,
    pub to: String,
    pub actions: Vec<&'static str>,
}

/// Everything a status record asks of one order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Work {
    pub order_id: String,
    /// (delivery id, the full list of codes) when codes are new.
    pub tracking: Option<(String, Vec<String>)>,
    /// In order: delivery, payment, order.
    pub steps: Vec<Step>,
    /// Targets Shopware is already past (the till lags), for the outcome's message.
    pub ahead: Vec<String>,
}

/// A record that cannot be applied: (field, message).
pub type Refusal = (String, String);

fn state_of(row: &Value) -> String {
    row.pointer("/stateMachineState/technicalName")
        .and_then(Value::as_str)
        .unwrap_or("open")
        .to_owned()
}

/// Plans the work for a status record against the order as Shopware holds it.
pub fn plan(
    order: &Value,
    status: &OrderStatus,
    allow_reopen: bool,
) -> std::result::Result<Work, Refusal> {
    let order_id = order
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let delivery = orders::current_delivery(order);
    let transaction = orders::current_transaction(order);
    let mut work = Work {
        order_id: order_id.clone(),
        ..Work::default()
    };
    let codes: Vec<String> = status
        .tracking_codes
        .iter()
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    if !codes.is_empty() {
        let Some(delivery) = delivery else {
            return Err((
                "tracking_codes".into(),
                "the order has no delivery in Shopware to add tracking codes to".into(),
            ));
        };
        let mut all: Vec<String> = delivery
            .get("trackingCodes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let before = all.len();
        for code in codes {
            if !all.contains(&code) {
                all.push(code);
            }
        }
        if all.len() != before {
            let id = delivery
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            work.tracking = Some((id.to_owned(), all));
        }
    }
    let wanted: [(Machine, Option<&Value>, Option<&str>); 3] = [
        (
            Machine::Delivery,
            delivery,
            status.delivery_state.map(delivery_target),
        ),
        (
            Machine::Payment,
            transaction,
            status.payment_state.map(payment_target),
        ),
        (
            Machine::Order,
            Some(order),
            Some(order_target(status.state)),
        ),
    ];
    for (machine, row, target) in wanted {
        let Some(target) = target else { continue };
        let Some(row) = row else {
            return Err((
                machine.field().into(),
                format!(
                    "the order has no {} in Shopware to move to \"{target}\"",
                    machine.label()
                ),
            ));
        };
        let from = state_of(row);
        match machines::plan(machine, &from, target, allow_reopen) {
            Plan::Stay => {}
            Plan::Ahead => work.ahead.push(format!(
                "{} is already \"{from}\" (asked: \"{target}\")",
                machine.label()
            )),
            Plan::Impossible(why) => return Err((machine.field().into(), why)),
            Plan::Actions(actions) => work.steps.push(Step {
                machine,
                id: row
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                from,
                to: target.to_owned(),
                actions,
            }),
        }
    }
    Ok(work)
}

/// Writes the `order-status` stream.
pub fn write(
    client: &Client,
    config: &Config,
    records: &[Record],
    options: &WriteOptions,
) -> Result<Vec<WriteOutcome>> {
    let allow_reopen = extra(&options.settings, "allow_reopen")
        .and_then(|v| v.as_text())
        .is_some_and(|v| matches!(v.trim(), "true" | "1" | "yes"));
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        outcomes.push(match record {
            Record::OrderStatus(status) => write_one(client, config, status, allow_reopen),
            other => WriteOutcome::failed(
                other.key(),
                "the order-status stream takes order-status records only",
                None,
            ),
        });
    }
    Ok(outcomes)
}

fn write_one(
    client: &Client,
    config: &Config,
    status: &OrderStatus,
    allow_reopen: bool,
) -> WriteOutcome {
    let key = status.key.trim();
    let order = match orders::find(client, key) {
        Ok(Some(order)) => order,
        Ok(None) => {
            return WriteOutcome::failed(
                &status.key,
                format!("Shopware has no order with number {key}"),
                Some("key"),
            );
        }
        Err(error) => return WriteOutcome::from_error(&status.key, &error),
    };
    let work = match plan(&order, status, allow_reopen) {
        Ok(work) => work,
        Err((field, message)) => {
            return WriteOutcome::failed(
                &status.key,
                format!("order {key} was not changed: {message}"),
                Some(&field),
            );
        }
    };
    let mut done: Vec<String> = Vec::new();
    if let Some((delivery, codes)) = &work.tracking {
        let call = Call::patch(
            format!("/order-delivery/{delivery}"),
            &json!({"trackingCodes": codes}),
            format!("adding tracking codes to order {key}"),
        )
        .retry_safe(true);
        if let Err(error) = client.json(call) {
            return WriteOutcome::from_error(&status.key, &error.with_field("tracking_codes"));
        }
        done.push("tracking codes added".into());
    }
    for step in &work.steps {
        for action in &step.actions {
            let what = format!(
                "moving the {} of order {key} ({action})",
                step.machine.label()
            );
            let call = Call::post(
                format!(
                    "/_action/{}/{}/state/{action}",
                    step.machine.entity(),
                    step.id
                ),
                &json!({"sendMail": config.send_status_mails}),
                what.clone(),
            );
            let result = client.send(&call).and_then(|response| {
                if response.is_success() {
                    Ok(())
                } else {
                    Err(errors::for_status(
                        response.status(),
                        response.bytes(),
                        &what,
                    ))
                }
            });
            if let Err(error) = result {
                let mut error = error.with_field(step.machine.field());
                if !done.is_empty() {
                    error.message =
                        format!("{} (already done: {})", error.message, done.join(", "));
                }
                return WriteOutcome::from_error(&status.key, &error);
            }
        }
        done.push(format!(
            "{} {} → {}",
            step.machine.label(),
            step.from,
            step.to
        ));
    }
    if done.is_empty() {
        let mut outcome = WriteOutcome::unchanged(&status.key, Some(work.order_id));
        if !work.ahead.is_empty() {
            outcome.message = Some(format!("left as is: {}", work.ahead.join("; ")));
        }
        return outcome;
    }
    let mut outcome = WriteOutcome::updated(&status.key, work.order_id);
    outcome.message = Some(done.join(", "));
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(state: &str, payment: &str, delivery: &str) -> Value {
        json!({
            "id": "o1",
            "stateMachineState": {"technicalName": state},
            "transactions": [{"id": "t1", "createdAt": "2024-05-02T09:00:00.000+00:00", "stateMachineState": {"technicalName": payment}}],
            "deliveries": [{"id": "d1", "trackingCodes": ["A"], "stateMachineState": {"technicalName": delivery}}],
        })
    }

    fn status(
        state: OrderState,
        payment: Option<PaymentState>,
        delivery: Option<DeliveryState>,
        codes: &[&str],
    ) -> OrderStatus {
        OrderStatus {
            key: "10042".into(),
            state,
            payment_state: payment,
            delivery_state: delivery,
            tracking_codes: codes.iter().map(|c| c.to_string()).collect(),
            extra: vec![],
        }
    }

    #[test]
    fn a_shipped_paid_order_is_completed_after_its_tracking_code() {
        let work = plan(
            &order("open", "open", "open"),
            &status(
                OrderState::Completed,
                Some(PaymentState::Paid),
                Some(DeliveryState::Shipped),
                &["A", "B"],
            ),
            false,
        )
        .expect("possible");
        assert_eq!(
            work.tracking,
            Some(("d1".into(), vec!["A".into(), "B".into()]))
        );
        let steps: Vec<(&str, Vec<&str>)> = work
            .steps
            .iter()
            .map(|s| (s.machine.entity(), s.actions.clone()))
            .collect();
        assert_eq!(
            steps,
            vec![
                ("order_delivery", vec!["ship"]),
                ("order_transaction", vec!["paid"]),
                ("order", vec!["process", "complete"]),
            ]
        );
    }

    #[test]
    fn nothing_to_do_and_lagging_tills() {
        let work = plan(
            &order("completed", "paid", "shipped"),
            &status(
                OrderState::InProgress,
                Some(PaymentState::Paid),
                None,
                &["A"],
            ),
            false,
        )
        .expect("possible");
        assert!(work.steps.is_empty());
        assert!(work.tracking.is_none(), "the code is there already");
        assert_eq!(work.ahead.len(), 1);
    }

    #[test]
    fn an_impossible_target_changes_nothing_and_names_the_field() {
        let (field, message) = plan(
            &order("open", "open", "open"),
            &status(
                OrderState::InProgress,
                Some(PaymentState::Refunded),
                Some(DeliveryState::Shipped),
                &[],
            ),
            false,
        )
        .expect_err("refund of an unpaid order");
        assert_eq!(field, "payment_state");
        assert!(message.contains("refunded"), "{message}");
        let mut no_delivery = order("open", "open", "open");
        no_delivery["deliveries"] = json!([]);
        let (field, _) = plan(
            &no_delivery,
            &status(OrderState::Open, None, None, &["X"]),
            false,
        )
        .expect_err("no delivery");
        assert_eq!(field, "tracking_codes");
    }
}
