//! Reading orders: the orders in the configured states, changed since the last read, as
//! canonical orders with customer, addresses (country ISO), lines, shipping, payment, currency
//! and totals; and finding one order or customer for `lookup`.
//!
//! ## The cursor
//! Orders are read in sweeps. A sweep asks for the orders in the wanted states that changed
//! since `since` (created, updated, or a payment or delivery updated), ordered by Shopware's
//! `autoIncrement`, and pages with `autoIncrement > after`: an order placed during the sweep
//! gets a higher number and comes later, so paging is stable under concurrent inserts. When
//! a sweep reaches the end, the next one starts at `horizon`: the shop's clock (HTTP `Date`)
//! when the sweep began, minus a safety margin. Orders changed in that overlap are read again
//! only if they changed again: `seen` keeps a fingerprint (id and change time) of every
//! order of the sweep at or after the horizon, and the next sweep skips those (`skip`).

use koppel_sdk::money::{minor_digits, net_from_gross, tax_on};
use koppel_sdk::time::{parse_http_date, parse_millis, rfc3339};
use koppel_sdk::{
    Address, Amount, Customer, Decimal, DeliveryState, ExternalId, NamedValue, Order, OrderLine,
    OrderState, Page, PaymentState, Record, Result, Shipping,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::api::{Call, Client, Version, expect_json};
use crate::config::Config;
use crate::criteria;
use crate::ids;
use crate::money;
use crate::time::shopware;

/// How far before the shop's clock at the start of a sweep the next sweep starts: covers
/// clock differences and write transactions that commit late.
pub const HORIZON_MARGIN_MS: i64 = 120_000;
/// Most fingerprints a state keeps.
const MAX_SEEN: usize = 5000;
/// Most pages one `read` call fetches while skipping orders it has delivered before.
const MAX_PAGES_PER_READ: usize = 20;

/// The opaque state of the `orders` stream, as JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Orders changed at or after this Shopware timestamp; `None`: all.
    #[serde(default)]
    pub since: Option<String>,
    /// The `autoIncrement` of the last order passed in this sweep.
    #[serde(default)]
    pub after: i64,
    /// Where the next sweep starts; set on the sweep's first request.
    #[serde(default)]
    pub horizon: Option<String>,
    /// Fingerprints of orders the previous sweep delivered at or after its horizon.
    #[serde(default)]
    pub skip: Vec<String>,
    /// Fingerprints of orders this sweep passed at or after its horizon.
    #[serde(default)]
    pub seen: Vec<String>,
}

impl Cursor {
    pub fn parse(state: Option<&str>, config: &Config) -> Result<Cursor> {
        match state {
            None | Some("") => Ok(Cursor {
                since: config.orders_since.clone(),
                ..Cursor::default()
            }),
            Some(text) => serde_json::from_str(text).map_err(|error| {
                koppel_sdk::ConnectorError::internal(format!(
                    "the orders state {text:?} is not one this connector wrote ({error})"
                ))
            }),
        }
    }

    pub fn to_state(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The sweep is over: the next one starts at the horizon and skips what this one saw.
    pub fn end_sweep(&mut self) {
        self.since = self.horizon.take().or(self.since.take());
        self.after = 0;
        self.skip = std::mem::take(&mut self.seen);
    }
}

/// The associations an order is read with.
pub fn associations() -> Value {
    json!({
        "stateMachineState": {},
        "currency": {},
        "orderCustomer": {},
        "billingAddress": {"associations": {"country": {}}},
        "deliveries": {"associations": {
            "shippingOrderAddress": {"associations": {"country": {}}},
            "shippingMethod": {},
            "stateMachineState": {},
        }},
        "lineItems": {},
        "transactions": {"associations": {"paymentMethod": {}, "stateMachineState": {}}},
    })
}

/// The criteria of one page of a sweep.
pub fn criteria(version: Version, config: &Config, cursor: &Cursor, limit: usize) -> Value {
    let mut filter = Vec::new();
    if !config.order_states.is_empty() {
        filter.push(criteria::equals_any(
            "stateMachineState.technicalName",
            &config.order_states,
        ));
    }
    if !config.payment_states.is_empty() {
        filter.push(criteria::equals_any(
            "transactions.stateMachineState.technicalName",
            &config.payment_states,
        ));
    }
    if !config.delivery_states.is_empty() {
        filter.push(criteria::equals_any(
            "deliveries.stateMachineState.technicalName",
            &config.delivery_states,
        ));
    }
    if let Some(since) = &cursor.since {
        let changed = [
            "createdAt",
            "updatedAt",
            "transactions.updatedAt",
            "deliveries.updatedAt",
        ]
        .iter()
        .map(|field| criteria::range(version, field, json!({"gte": since})))
        .collect::<Vec<_>>();
        filter.push(criteria::any(version, changed));
    }
    filter.push(criteria::range(
        version,
        "autoIncrement",
        json!({"gt": cursor.after}),
    ));
    json!({
        "limit": limit,
        "filter": filter,
        "sort": [{"field": "autoIncrement", "order": "ASC"}],
        "associations": associations(),
    })
}

/// When an order last changed: the latest of its own, its payments' and deliveries' times.
pub fn change_millis(order: &Value) -> Option<i64> {
    let stamps = |row: &Value| {
        ["createdAt", "updatedAt"]
            .into_iter()
            .filter_map(|f| row.get(f).and_then(Value::as_str).and_then(parse_millis))
            .collect::<Vec<_>>()
    };
    let mut all = stamps(order);
    for list in ["transactions", "deliveries"] {
        for row in order
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            all.extend(stamps(row));
        }
    }
    all.into_iter().max()
}

fn text(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn state_name(row: &Value) -> Option<&str> {
    row.pointer("/stateMachineState/technicalName")
        .and_then(Value::as_str)
}

/// The current one of several transactions or deliveries: the primary one (6.7), else the
/// newest.
pub fn current<'a>(order: &'a Value, list: &str, primary: &str) -> Option<&'a Value> {
    let rows = order.get(list).and_then(Value::as_array)?;
    if let Some(id) = order.get(primary).and_then(Value::as_str)
        && let Some(row) = rows
            .iter()
            .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
    {
        return Some(row);
    }
    rows.iter().max_by_key(|r| {
        r.get("createdAt")
            .and_then(Value::as_str)
            .and_then(parse_millis)
            .unwrap_or(i64::MIN)
    })
}

pub fn current_transaction(order: &Value) -> Option<&Value> {
    current(order, "transactions", "primaryOrderTransactionId")
}

pub fn current_delivery(order: &Value) -> Option<&Value> {
    current(order, "deliveries", "primaryOrderDeliveryId")
}

/// Whether the order's current payment and delivery are in the wanted states (the search
/// matches any transaction; an older paid one beside a newer cancelled one does not count).
pub fn wanted(config: &Config, order: &Value) -> bool {
    let ok = |states: &[String], row: Option<&Value>| {
        states.is_empty()
            || row
                .and_then(state_name)
                .is_some_and(|s| states.iter().any(|w| w == s))
    };
    ok(&config.payment_states, current_transaction(order))
        && ok(&config.delivery_states, current_delivery(order))
        && ok(&config.order_states, Some(order))
}

pub fn order_state(name: &str) -> OrderState {
    match name {
        "in_progress" => OrderState::InProgress,
        "completed" => OrderState::Completed,
        "cancelled" => OrderState::Cancelled,
        _ => OrderState::Open,
    }
}

pub fn payment_state(name: &str) -> PaymentState {
    match name {
        "authorized" => PaymentState::Authorized,
        "paid_partially" => PaymentState::PartiallyPaid,
        "paid" => PaymentState::Paid,
        "refunded" | "refunded_partially" => PaymentState::Refunded,
        "failed" | "chargeback" => PaymentState::Failed,
        "cancelled" => PaymentState::Cancelled,
        _ => PaymentState::Open,
    }
}

pub fn delivery_state(name: &str) -> DeliveryState {
    match name {
        "shipped_partially" => DeliveryState::PartiallyShipped,
        "shipped" => DeliveryState::Shipped,
        "returned" | "returned_partially" => DeliveryState::Returned,
        "cancelled" => DeliveryState::Cancelled,
        _ => DeliveryState::Open,
    }
}

/// An order or customer address.
pub fn address(row: &Value) -> Address {
    let additional: Vec<String> = ["additionalAddressLine1", "additionalAddressLine2"]
        .iter()
        .filter_map(|k| text(row, k))
        .collect();
    Address {
        company: text(row, "company"),
        first_name: text(row, "firstName"),
        last_name: text(row, "lastName"),
        street: text(row, "street").unwrap_or_default(),
        house_number: None,
        additional: (!additional.is_empty()).then(|| additional.join(", ")),
        postal_code: text(row, "zipcode").unwrap_or_default(),
        city: text(row, "city").unwrap_or_default(),
        country: row
            .pointer("/country/iso")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_uppercase(),
        phone: text(row, "phoneNumber"),
    }
}

/// The entries of a calculated-taxes or tax-rules list (a JSON list, or an object keyed by
/// rate as the OpenAPI files type it).
fn entries(value: Option<&Value>) -> Vec<&Value> {
    match value {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(Value::Object(map)) => map.values().collect(),
        _ => Vec::new(),
    }
}

fn rate_of(price: &Value) -> Decimal {
    entries(price.get("taxRules"))
        .into_iter()
        .chain(entries(price.get("calculatedTaxes")))
        .find_map(|e| e.get("taxRate").and_then(money::json_decimal))
        .unwrap_or(Decimal::ZERO)
        .normalize()
}

/// (unit, total) net and gross of a calculated price, in minor units.
fn amounts(
    price: &Value,
    quantity: i64,
    tax_status: &str,
    digits: u8,
) -> (Amount, Amount, Decimal) {
    let minor = |v: Option<&Value>| v.and_then(|v| money::json_minor(v, digits)).unwrap_or(0);
    let unit = minor(price.get("unitPrice"));
    let total = minor(price.get("totalPrice"));
    let tax: i64 = entries(price.get("calculatedTaxes"))
        .into_iter()
        .map(|e| minor(e.get("tax")))
        .sum();
    let rate = rate_of(price);
    let quantity = quantity.max(1);
    match tax_status {
        "net" => {
            let unit_tax = tax_on(unit, rate).unwrap_or(0);
            (
                Amount {
                    net: unit,
                    gross: unit + unit_tax,
                },
                Amount {
                    net: total,
                    gross: total + tax,
                },
                rate,
            )
        }
        "tax-free" => (
            Amount {
                net: unit,
                gross: unit,
            },
            Amount {
                net: total,
                gross: total,
            },
            rate,
        ),
        _ => {
            let total_net = total - tax;
            let unit_net = if unit * quantity == total {
                // Spread the net evenly when the unit price divides the total.
                let share = total_net / quantity;
                if share * quantity == total_net {
                    share
                } else {
                    net_from_gross(unit, rate).unwrap_or(unit)
                }
            } else {
                net_from_gross(unit, rate).unwrap_or(unit)
            };
            (
                Amount {
                    net: unit_net,
                    gross: unit,
                },
                Amount {
                    net: total_net,
                    gross: total,
                },
                rate,
            )
        }
    }
}

/// A method's name for mappings: its technical name (6.6+), else its display name.
fn method_name(method: Option<&Value>) -> Option<String> {
    let method = method?;
    text(method, "technicalName")
        .or_else(|| text(method, "name"))
        .or_else(|| {
            method
                .pointer("/translated/name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
}

/// A Shopware order (read with [`associations`]) as a canonical order.
pub fn map_order(order: &Value) -> Order {
    let currency = order
        .pointer("/currency/isoCode")
        .and_then(Value::as_str)
        .unwrap_or("EUR")
        .to_ascii_uppercase();
    let digits = minor_digits(&currency);
    let tax_status = text(order, "taxStatus")
        .or_else(|| {
            order
                .pointer("/price/taxStatus")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "gross".into());
    let minor = |v: Option<&Value>| v.and_then(|v| money::json_minor(v, digits)).unwrap_or(0);

    let billing_row = order
        .get("billingAddress")
        .filter(|v| v.is_object())
        .or_else(|| {
            let id = order.get("billingAddressId")?;
            order
                .get("addresses")?
                .as_array()?
                .iter()
                .find(|a| a.get("id") == Some(id))
        });
    let billing = billing_row.map(address).unwrap_or(Address {
        company: None,
        first_name: None,
        last_name: None,
        street: String::new(),
        house_number: None,
        additional: None,
        postal_code: String::new(),
        city: String::new(),
        country: String::new(),
        phone: None,
    });
    let delivery = current_delivery(order);
    let shipping_address = delivery
        .and_then(|d| d.get("shippingOrderAddress"))
        .filter(|v| v.is_object())
        .map(address);
    let transaction = current_transaction(order);

    let empty = json!({});
    let person = order.get("orderCustomer").unwrap_or(&empty);
    let email = text(person, "email").unwrap_or_default();
    let company = text(person, "company").or_else(|| billing.company.clone());
    let customer_number = text(person, "customerNumber");
    let mut customer_extra = Vec::new();
    if let Some(number) = &customer_number {
        customer_extra.push(NamedValue::text("customer_number", number.clone()));
    }
    customer_extra.push(NamedValue::text(
        "account_type",
        if company.is_some() {
            "business"
        } else {
            "private"
        },
    ));
    let customer = Customer {
        key: text(person, "customerId")
            .or_else(|| text(person, "id"))
            .unwrap_or_else(|| email.clone()),
        email,
        company_name: company,
        first_name: text(person, "firstName"),
        last_name: text(person, "lastName"),
        phone: billing.phone.clone(),
        vat_id: person
            .get("vatIds")
            .and_then(Value::as_array)
            .and_then(|v| v.first())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| billing_row.and_then(|b| text(b, "vatId"))),
        billing_address: Some(billing.clone()),
        shipping_address: shipping_address.clone(),
        external_ids: customer_number
            .iter()
            .map(|n| ExternalId {
                system: "shopware-customer-number".into(),
                id: n.clone(),
            })
            .collect(),
        extra: customer_extra,
    };

    let mut items: Vec<&Value> = order
        .get("lineItems")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|l| l.get("parentId").is_none_or(Value::is_null))
        .collect();
    items.sort_by_key(|l| l.get("position").and_then(Value::as_i64).unwrap_or(0));
    let lines = items
        .into_iter()
        .map(|line| {
            let kind = text(line, "type").unwrap_or_else(|| "product".into());
            let quantity = line.get("quantity").and_then(Value::as_i64).unwrap_or(1);
            let price = line.get("price").filter(|p| p.is_object()).unwrap_or(line);
            let (unit, total, rate) = amounts(price, quantity, &tax_status, digits);
            let sku = match kind.as_str() {
                "product" => line
                    .pointer("/payload/productNumber")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                "promotion" => line
                    .pointer("/payload/code")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            }
            .or_else(|| text(line, "referencedId"))
            .or_else(|| text(line, "identifier"))
            .unwrap_or_default();
            let mut extra = vec![NamedValue::text("line_type", kind)];
            if let Some(product) = text(line, "productId") {
                extra.push(NamedValue::text("product_id", product));
            }
            OrderLine {
                sku,
                name: text(line, "label").unwrap_or_default(),
                quantity: Decimal::integer(quantity),
                unit_price: unit,
                tax_rate: rate,
                total,
                extra,
            }
        })
        .collect();

    let shipping = order
        .get("shippingCosts")
        .filter(|v| v.is_object())
        .map(|costs| {
            let (_, total, rate) = amounts(costs, 1, &tax_status, digits);
            Shipping {
                method: delivery
                    .and_then(|d| method_name(d.get("shippingMethod")))
                    .unwrap_or_default(),
                cost: total,
                tax_rate: rate,
            }
        });
    let payment_method = transaction.and_then(|t| method_name(t.get("paymentMethod")));

    let mut extra = vec![NamedValue::text("tax_status", tax_status.clone())];
    // The canonical states are coarser than Shopware's (refunded_partially, chargeback):
    // the technical names travel along.
    for (name, value) in [
        ("order_state", state_name(order).map(str::to_owned)),
        (
            "payment_state",
            transaction.and_then(state_name).map(str::to_owned),
        ),
        (
            "delivery_state",
            delivery.and_then(state_name).map(str::to_owned),
        ),
        ("customer_comment", text(order, "customerComment")),
        ("sales_channel_id", text(order, "salesChannelId")),
        ("transaction_id", transaction.and_then(|t| text(t, "id"))),
        ("delivery_id", delivery.and_then(|d| text(d, "id"))),
        (
            "payment_method_name",
            transaction
                .and_then(|t| t.get("paymentMethod"))
                .and_then(|m| text(m, "name")),
        ),
        (
            "shipping_method_name",
            delivery
                .and_then(|d| d.get("shippingMethod"))
                .and_then(|m| text(m, "name")),
        ),
    ] {
        if let Some(value) = value {
            extra.push(NamedValue::text(name, value));
        }
    }
    if let Some(codes) = delivery
        .and_then(|d| d.get("trackingCodes"))
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
    {
        extra.push(NamedValue {
            name: "tracking_codes".into(),
            value: koppel_sdk::Value::Json(Value::Array(codes.clone()).to_string()),
        });
    }

    let country = shipping_address
        .as_ref()
        .map(|a| a.country.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| billing.country.clone());
    Order {
        key: text(order, "id").unwrap_or_default(),
        number: text(order, "orderNumber").unwrap_or_default(),
        external_id: None,
        placed_at: text(order, "orderDateTime")
            .and_then(|t| parse_millis(&t))
            .map(rfc3339)
            .unwrap_or_default(),
        state: order_state(state_name(order).unwrap_or("open")),
        payment_state: payment_state(transaction.and_then(state_name).unwrap_or("open")),
        delivery_state: delivery_state(delivery.and_then(state_name).unwrap_or("open")),
        customer,
        billing_address: billing,
        shipping_address,
        lines,
        shipping,
        payment_method,
        totals: Amount {
            net: minor(order.get("amountNet")),
            gross: minor(order.get("amountTotal")),
        },
        currency,
        country,
        extra,
    }
}

/// A Shopware customer (with default addresses) as a canonical customer.
pub fn map_customer(row: &Value) -> Customer {
    let billing = row
        .get("defaultBillingAddress")
        .filter(|v| v.is_object())
        .map(address);
    let shipping = row
        .get("defaultShippingAddress")
        .filter(|v| v.is_object())
        .map(address);
    let company = text(row, "company").or_else(|| billing.as_ref().and_then(|b| b.company.clone()));
    let mut extra = Vec::new();
    if let Some(kind) = text(row, "accountType") {
        extra.push(NamedValue::text("account_type", kind));
    }
    if let Some(guest) = row.get("guest").and_then(Value::as_bool) {
        extra.push(NamedValue::boolean("guest", guest));
    }
    Customer {
        key: text(row, "id").unwrap_or_default(),
        email: text(row, "email").unwrap_or_default(),
        company_name: company,
        first_name: text(row, "firstName"),
        last_name: text(row, "lastName"),
        phone: billing.as_ref().and_then(|b| b.phone.clone()),
        vat_id: row
            .get("vatIds")
            .and_then(Value::as_array)
            .and_then(|v| v.first())
            .and_then(Value::as_str)
            .map(str::to_owned),
        billing_address: billing,
        shipping_address: shipping,
        external_ids: text(row, "customerNumber")
            .map(|n| ExternalId {
                system: "shopware-customer-number".into(),
                id: n,
            })
            .into_iter()
            .collect(),
        extra,
    }
}

/// Reads a page of the `orders` stream.
pub fn read(client: &Client, config: &Config, state: Option<&str>, limit: u32) -> Result<Page> {
    let version = client.version()?;
    let mut cursor = Cursor::parse(state, config)?;
    let asked = (limit as usize).max(1);
    let mut records = Vec::new();
    // Without a break below, MAX_PAGES_PER_READ pages of skipped orders were passed: more to come.
    let mut has_more = true;
    let mut pages = 0;
    while pages < MAX_PAGES_PER_READ {
        // One row more than the page shows tells whether more follow: within the shop's
        // maximum (500 from 6.6), so a page holds at most that minus one.
        let limit = asked.min(client.max_limit() - 1).max(1);
        let call = Call::search(
            "/search/order",
            &criteria(version, config, &cursor, limit + 1),
            "reading orders",
        );
        let response = client.send(&call)?;
        if client.learn_limit(&response) {
            continue;
        }
        pages += 1;
        let answer = expect_json(&response, call.what())?;
        if cursor.horizon.is_none() && cursor.after == 0 {
            cursor.horizon = response
                .header("date")
                .and_then(parse_http_date)
                .map(|now| shopware(now - HORIZON_MARGIN_MS))
                .or_else(|| cursor.since.clone());
        }
        let rows = answer
            .get("data")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let more_rows = rows.len() > limit;
        let horizon = cursor.horizon.as_deref().and_then(parse_millis);
        let mut consumed_all = true;
        for row in rows.iter().take(limit) {
            if records.len() >= limit {
                consumed_all = false;
                break;
            }
            let number = row
                .get("autoIncrement")
                .and_then(Value::as_i64)
                .unwrap_or(cursor.after);
            cursor.after = cursor.after.max(number);
            let stamp = change_millis(row).unwrap_or(0);
            let fingerprint = ids::fingerprint(&format!(
                "{}@{stamp}",
                row.get("id").and_then(Value::as_str).unwrap_or("")
            ));
            if horizon.is_none_or(|h| stamp >= h) && cursor.seen.len() < MAX_SEEN {
                cursor.seen.push(fingerprint.clone());
            }
            if cursor.skip.contains(&fingerprint) || !wanted(config, row) {
                continue;
            }
            records.push(Record::Order(map_order(row)));
        }
        if consumed_all && !more_rows {
            cursor.end_sweep();
            has_more = false;
            break;
        }
        if records.len() >= limit {
            break;
        }
    }
    Ok(Page {
        records,
        state: Some(cursor.to_state()),
        has_more,
    })
}

/// Finds an order by its number (or id).
pub fn find(client: &Client, key: &str) -> Result<Option<Value>> {
    let field = if ids::is_id(key) { "id" } else { "orderNumber" };
    let answer = client.json(Call::search(
        "/search/order",
        &json!({
            "limit": 1,
            "filter": [criteria::equals(field, key)],
            "associations": associations(),
        }),
        format!("finding order {key}"),
    ))?;
    Ok(answer.pointer("/data/0").cloned())
}

/// Finds a customer by e-mail: a registered account before a guest one, the newest first.
pub fn find_customer(client: &Client, email: &str) -> Result<Option<Value>> {
    let address = json!({"associations": {"country": {}}});
    let answer = client.json(Call::search(
        "/search/customer",
        &json!({
            "limit": 25,
            "filter": [criteria::equals("email", email.trim())],
            "sort": [{"field": "createdAt", "order": "DESC"}],
            "associations": {"defaultBillingAddress": address, "defaultShippingAddress": address},
        }),
        "finding a customer by e-mail",
    ))?;
    let rows = answer
        .get("data")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Ok(rows
        .iter()
        .find(|r| r.get("guest").and_then(Value::as_bool) != Some(true))
        .or_else(|| rows.first())
        .cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use koppel_sdk::Settings;

    fn config(extra: &[(&str, &str)]) -> Config {
        let mut entries = vec![
            ("shop_url".to_owned(), "https://shop.example".to_owned()),
            ("access_key_id".to_owned(), "SWIA".to_owned()),
            ("secret_access_key".to_owned(), "x".to_owned()),
        ];
        entries.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_settings(&Settings::from(entries)).expect("config")
    }

    /// The order of API-NOTES §13.4, completed.
    fn order() -> Value {
        json!({
            "id": "7a1f0c2e9b8d4c3aa0f1e2d3c4b5a697", "orderNumber": "10042", "autoIncrement": 42,
            "orderDateTime": "2024-05-02T09:14:11.123+00:00", "createdAt": "2024-05-02T09:14:11.200+00:00",
            "updatedAt": null, "amountTotal": 48.93, "amountNet": 41.12, "taxStatus": "gross",
            "currency": {"isoCode": "EUR"}, "stateMachineState": {"technicalName": "open"},
            "orderCustomer": {"email": "anna@example.com", "firstName": "Anna", "lastName": "Muster",
                "customerNumber": "10001", "customerId": "c1", "company": null, "vatIds": null},
            "billingAddressId": "a1",
            "billingAddress": {"id": "a1", "street": "Hauptstr. 1", "zipcode": "10115", "city": "Berlin",
                "firstName": "Anna", "lastName": "Muster", "phoneNumber": "030 1234", "country": {"iso": "de"}},
            "shippingCosts": {"unitPrice": 4.95, "totalPrice": 4.95, "quantity": 1,
                "calculatedTaxes": {"19": {"tax": 0.79, "taxRate": 19, "price": 4.95}},
                "taxRules": {"19": {"taxRate": 19, "percentage": 100}}},
            "deliveries": [{"id": "d1", "createdAt": "2024-05-02T09:14:11.300+00:00", "trackingCodes": [],
                "shippingMethod": {"name": "Standard", "technicalName": "shipping_standard"},
                "stateMachineState": {"technicalName": "open"},
                "shippingOrderAddress": {"street": "Kade 5", "zipcode": "1012 AB", "city": "Amsterdam",
                    "company": "Muster B.V.", "country": {"iso": "NL"}}}],
            "lineItems": [
                {"id": "l2", "type": "product", "position": 2, "label": "Cap", "quantity": 1,
                 "payload": {"productNumber": "CAP-1"},
                 "price": {"unitPrice": 0.0, "totalPrice": 0.0, "quantity": 1, "calculatedTaxes": [], "taxRules": []}},
                {"id": "l1", "type": "product", "position": 1, "label": "Basic T-Shirt", "quantity": 2,
                 "productId": "p1", "payload": {"productNumber": "TS-100-S-RED"},
                 "price": {"unitPrice": 21.99, "totalPrice": 43.98, "quantity": 2,
                    "calculatedTaxes": [{"tax": 7.02, "taxRate": 19, "price": 43.98}],
                    "taxRules": [{"taxRate": 19, "percentage": 100}]}}
            ],
            "transactions": [
                {"id": "t0", "createdAt": "2024-05-02T09:14:11.000+00:00", "stateMachineState": {"technicalName": "cancelled"},
                 "paymentMethod": {"name": "PayPal"}},
                {"id": "t1", "createdAt": "2024-05-02T09:20:00.000+00:00", "updatedAt": "2024-05-02T10:00:00.000+00:00",
                 "stateMachineState": {"technicalName": "paid"}, "paymentMethod": {"name": "Invoice", "technicalName": "payment_invoice"}}
            ]
        })
    }

    #[test]
    fn an_order_maps_to_the_canonical_model() {
        let o = map_order(&order());
        assert_eq!(o.key, "7a1f0c2e9b8d4c3aa0f1e2d3c4b5a697");
        assert_eq!(o.number, "10042");
        assert_eq!(o.placed_at, "2024-05-02T09:14:11Z");
        assert_eq!(o.state, OrderState::Open);
        assert_eq!(
            o.payment_state,
            PaymentState::Paid,
            "the newest transaction counts"
        );
        assert_eq!(o.payment_method.as_deref(), Some("payment_invoice"));
        assert_eq!(o.customer.email, "anna@example.com");
        assert_eq!(o.customer.key, "c1");
        assert_eq!(o.billing_address.country, "DE");
        assert_eq!(o.billing_address.phone.as_deref(), Some("030 1234"));
        let shipping_address = o.shipping_address.as_ref().expect("shipping address");
        assert_eq!(shipping_address.country, "NL");
        assert_eq!(o.country, "NL", "taxed where it is shipped");
        assert_eq!(o.lines.len(), 2);
        assert_eq!(o.lines[0].sku, "TS-100-S-RED", "sorted by position");
        assert_eq!(o.lines[0].unit_price.gross, 2199);
        assert_eq!(o.lines[0].total.gross, 4398);
        assert_eq!(o.lines[0].total.net, 4398 - 702);
        assert_eq!(o.lines[0].unit_price.net, (4398 - 702) / 2);
        assert!(o.lines[0].tax_rate.same_value(Decimal::integer(19)));
        let shipping = o.shipping.as_ref().expect("shipping");
        assert_eq!(shipping.method, "shipping_standard");
        assert_eq!(shipping.cost.gross, 495);
        assert_eq!(shipping.cost.net, 416);
        assert_eq!(o.totals.gross, 4893);
        assert_eq!(o.totals.net, 4112);
        assert_eq!(o.currency, "EUR");
        let extra = |name: &str| {
            o.extra
                .iter()
                .find(|v| v.name == name)
                .and_then(|v| v.value.as_text())
        };
        assert_eq!(extra("payment_state").as_deref(), Some("paid"));
        assert_eq!(extra("transaction_id").as_deref(), Some("t1"));
        assert_eq!(extra("delivery_id").as_deref(), Some("d1"));
    }

    #[test]
    fn the_criteria_filter_by_state_and_change() {
        let config = config(&[("order_states", "open"), ("payment_states", "paid")]);
        let cursor = Cursor {
            since: Some("2024-05-01T00:00:00.000+00:00".into()),
            after: 41,
            ..Cursor::default()
        };
        let criteria = criteria(Version::V6_6, &config, &cursor, 51);
        assert_eq!(criteria["limit"], 51);
        let filter = criteria["filter"].as_array().expect("filters");
        assert_eq!(filter[0]["field"], "stateMachineState.technicalName");
        assert_eq!(filter[1]["value"], "paid");
        assert_eq!(filter[2]["operator"], "or");
        assert_eq!(filter[2]["queries"].as_array().map(Vec::len), Some(4));
        assert_eq!(filter[3]["parameters"]["gt"], 41);
        assert_eq!(criteria["sort"][0]["field"], "autoIncrement");
    }

    #[test]
    fn the_current_payment_decides_and_changes_count() {
        let config = config(&[("payment_states", "paid")]);
        assert!(wanted(&config, &order()));
        let mut unpaid = order();
        unpaid["transactions"][1]["stateMachineState"]["technicalName"] = json!("open");
        unpaid["transactions"][0]["stateMachineState"]["technicalName"] = json!("paid");
        assert!(!wanted(&config, &unpaid));
        assert_eq!(
            change_millis(&order()),
            parse_millis("2024-05-02T10:00:00.000+00:00"),
            "a payment update is a change of the order"
        );
    }

    #[test]
    fn a_finished_sweep_starts_the_next_at_its_horizon() {
        let mut cursor = Cursor {
            since: None,
            after: 99,
            horizon: Some("2024-05-02T10:00:00.000+00:00".into()),
            skip: vec!["old".into()],
            seen: vec!["a".into(), "b".into()],
        };
        cursor.end_sweep();
        assert_eq!(
            cursor.since.as_deref(),
            Some("2024-05-02T10:00:00.000+00:00")
        );
        assert_eq!(cursor.after, 0);
        assert_eq!(cursor.horizon, None);
        assert_eq!(cursor.skip, vec!["a", "b"]);
        assert!(cursor.seen.is_empty());
        let state = cursor.to_state();
        assert_eq!(Cursor::parse(Some(&state), &config(&[])).ok(), Some(cursor));
        let fresh = Cursor::parse(None, &config(&[("orders_since", "2024-01-01")])).expect("fresh");
        assert_eq!(
            fresh.since.as_deref(),
            Some("2024-01-01T00:00:00.000+00:00")
        );
    }

    #[test]
    fn customers_map_with_their_default_addresses() {
        let row = json!({"id": "c1", "email": "b@example.com", "firstName": "Jan", "lastName": "Bakker",
            "company": "Bakker BV", "customerNumber": "10002", "accountType": "business", "guest": false,
            "vatIds": ["NL123456789B01"],
            "defaultBillingAddress": {"street": "Dam 1", "zipcode": "1012 JS", "city": "Amsterdam", "country": {"iso": "NL"}}});
        let c = map_customer(&row);
        assert_eq!(c.company_name.as_deref(), Some("Bakker BV"));
        assert_eq!(c.vat_id.as_deref(), Some("NL123456789B01"));
        assert_eq!(c.billing_address.map(|a| a.country).as_deref(), Some("NL"));
        assert_eq!(c.external_ids[0].id, "10002");
    }
}
