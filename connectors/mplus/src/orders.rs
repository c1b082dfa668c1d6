//! The `orders` stream: web orders written with `createOrderV3`.
//!
//! Per order: `findOrder` by the external order id (the shop's order number) — found means
//! already done, `unchanged`, never a second order; the lines are checked against the
//! articles MplusKASSA has (one `getProducts` per write call), so an unknown SKU fails that
//! order alone, naming it; the relation is found by e-mail or created; then `createOrderV3`
//! with an idempotency key derived from the shop's order id, marked retry-safe so the host may
//! resend it after a lost answer (the server replays its stored answer instead of creating
//! again). A stored *failure* replays too; since nothing was created then, the next key of the
//! chain (`<key>-1`, `<key>-2`, …) makes a fresh attempt, and `extOrderId`, unique for ever,
//! still guards against a double order.

use std::collections::HashSet;

use koppel_sdk::{
    Address, Amount, ConnectorError, Decimal, Found, Order, OutcomeStatus, PaymentState, Record,
    Result, Value, WriteOptions, WriteOutcome,
};

use crate::config::{OrderKind, normalise_rate};
use crate::connector::{Mplus, VatTables};
use crate::customers;
use crate::ops::{self, LineDiscount, NewLine, NewOrder, NewPayment, OrderAddress};
use crate::soap::Transport;
use crate::wire::{self, CreateOrderV3Response, GetOrderResponse, GetProductsResponse};

/// How many stored failures a write walks past before it gives up.
const MAX_REPLAYED_FAILURES: u32 = 8;

/// The shop's number of an order: its `number` (its key when it has none).
pub fn shop_number(o: &Order) -> &str {
    let number = o.number.trim();
    if number.is_empty() {
        o.key.trim()
    } else {
        number
    }
}

/// The external order id an order is stored under in MplusKASSA: `order_prefix` and the
/// shop's number (empty when the order has neither number nor key).
pub fn ext_order_id(config: &crate::config::MplusConfig, o: &Order) -> String {
    let number = shop_number(o);
    if number.is_empty() {
        String::new()
    } else {
        format!("{}{number}", config.order_prefix)
    }
}

/// The idempotency key of an order's `n`th attempt: derived from the shop's order id (after
/// `order_prefix`) only, so a resend of the same order carries the same key.
pub fn idempotency_key(order_key: &str, attempt: u32) -> String {
    let safe = order_key.len() <= 64
        && !order_key.is_empty()
        && order_key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let base = if safe {
        format!("koppel-order-{order_key}")
    } else {
        format!(
            "koppel-order-h{:016x}{:016x}",
            fnv1a(order_key, 0),
            fnv1a(order_key, 1)
        )
    };
    if attempt == 0 {
        base
    } else {
        format!("{base}-{attempt}")
    }
}

fn fnv1a(text: &str, salt: u8) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in std::iter::once(salt).chain(text.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// `findOrder`: the MplusKASSA order of an external order id.
pub fn find_order<T: Transport>(
    m: &mut Mplus<T>,
    ext_order_id: &str,
) -> Result<Option<wire::Order>> {
    let answer: GetOrderResponse = m.client.call(ops::find_order(ext_order_id), true)?;
    match answer.result.as_str() {
        "GET-ORDER-RESULT-OK" => Ok(answer.order.filter(|o| !o.order_id.is_empty())),
        "GET-ORDER-RESULT-NOT-FOUND" => Ok(None),
        other => Err(ConnectorError::protocol(format!(
            "findOrder answered {other:?}"
        ))),
    }
}

/// `findOrder`: the MplusKASSA order id of an external order id.
pub fn find<T: Transport>(m: &mut Mplus<T>, ext_order_id: &str) -> Result<Option<String>> {
    Ok(find_order(m, ext_order_id)?.map(|o| o.order_id))
}

/// The till's total of an order in the prices the VAT method sends (incl. VAT under the
/// inclusive method, else excl.), when it says.
fn till_total(config: &crate::config::MplusConfig, order: &wire::Order) -> Option<i64> {
    if config.vat_method.gross_prices() {
        order.total_incl_amount
    } else {
        order.total_excl_amount
    }
}

/// Whether the till booked the order at what the shop charged: `None` when it did (or does not
/// say), else the message naming both totals.
fn total_mismatch(
    config: &crate::config::MplusConfig,
    o: &Order,
    ext_id: &str,
    till: &wire::Order,
) -> Option<String> {
    let booked = till_total(config, till)?;
    let charged = amount(config, o.totals.gross, o.totals.net);
    (booked != charged).then(|| {
        format!(
            "MplusKASSA booked order {ext_id} (order id {}) at {}, the shop charged {}: correct or cancel it in the till",
            till.order_id,
            money(booked, &o.currency),
            money(charged, &o.currency)
        )
    })
}

/// The outcome for an order MplusKASSA has already: `unchanged`, unless its total is not what
/// the shop charged.
fn already_there(
    config: &crate::config::MplusConfig,
    o: &Order,
    ext_id: &str,
    till: &wire::Order,
) -> WriteOutcome {
    match total_mismatch(config, o, ext_id, till) {
        Some(message) => mismatch(o, till, message),
        None => WriteOutcome {
            message: Some(format!("order {ext_id} is already in MplusKASSA")),
            ..WriteOutcome::unchanged(&o.key, Some(till.order_id.clone()))
        },
    }
}

fn mismatch(o: &Order, till: &wire::Order, message: String) -> WriteOutcome {
    WriteOutcome {
        target_id: Some(till.order_id.clone()),
        ..WriteOutcome::failed(&o.key, message, Some("totals"))
    }
}

/// Finds an order by the shop's number (`order_prefix` goes before it).
pub fn lookup<T: Transport>(m: &mut Mplus<T>, number: &str) -> Result<Option<Found>> {
    let ext_id = format!("{}{}", m.config.order_prefix, number.trim());
    Ok(find(m, &ext_id)?.map(|id| Found { id, record: None }))
}

/// A record-level failure: the message and the field at fault.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub field: Option<String>,
}

fn refuse(message: impl Into<String>, field: impl Into<String>) -> Refusal {
    Refusal {
        message: message.into(),
        field: Some(field.into()),
    }
}

/// What the order builder needs besides the order.
pub struct Context<'a> {
    pub config: &'a crate::config::MplusConfig,
    pub kind: OrderKind,
    /// Article numbers MplusKASSA knows.
    pub known: &'a HashSet<i64>,
    /// The order branch's VAT tables, per country.
    pub vat_tables: &'a VatTables,
}

pub fn write<T: Transport>(
    m: &mut Mplus<T>,
    records: &[Record],
    options: &WriteOptions,
) -> Result<Vec<WriteOutcome>> {
    let kind = match options
        .settings
        .iter()
        .find(|s| s.name == "order_type")
        .and_then(|s| s.value.as_text())
    {
        Some(text) => OrderKind::parse("order_type", &text)?,
        None => m.config.order_kind,
    };
    let orders: Vec<&Order> = records
        .iter()
        .filter_map(|r| match r {
            Record::Order(o) => Some(o),
            _ => None,
        })
        .collect();
    let known = if orders.is_empty() {
        HashSet::new()
    } else {
        known_articles(m, &orders)?
    };
    let vat_tables = if orders.is_empty() {
        VatTables::default()
    } else {
        m.vat_tables()?
    };
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        let Record::Order(o) = record else {
            outcomes.push(WriteOutcome::failed(
                record.key(),
                "the orders stream takes order records",
                None,
            ));
            continue;
        };
        let outcome = match write_one(m, o, kind, &known, &vat_tables) {
            Ok(outcome) => outcome,
            Err(error) if crate::aborts_batch(&error) => return Err(error),
            Err(error) => WriteOutcome::from_error(&o.key, &error),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The article numbers among the orders' SKUs (and the shipping and discount articles) that
/// MplusKASSA has: one `getProducts` for the whole batch.
fn known_articles<T: Transport>(m: &mut Mplus<T>, orders: &[&Order]) -> Result<HashSet<i64>> {
    let mut wanted: Vec<i64> = orders
        .iter()
        .flat_map(|o| o.lines.iter())
        .filter_map(|l| l.sku.trim().parse::<i64>().ok())
        .chain([m.config.shipping_article])
        .chain(m.config.discount_article)
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let answer: GetProductsResponse = m
        .client
        .call(ops::get_products_by_article(&wanted, false), true)?;
    Ok(answer
        .product_list
        .product
        .iter()
        .flat_map(|p| p.article_list.article.iter())
        .map(|a| a.article_number)
        .collect())
}

fn write_one<T: Transport>(
    m: &mut Mplus<T>,
    o: &Order,
    kind: OrderKind,
    known: &HashSet<i64>,
    vat_tables: &VatTables,
) -> Result<WriteOutcome> {
    let ext_id = ext_order_id(&m.config, o);
    if ext_id.is_empty() {
        return Ok(WriteOutcome::failed(
            &o.key,
            "the order has no number and no key",
            Some("number"),
        ));
    }
    if let Some(till) = find_order(m, &ext_id)? {
        return Ok(already_there(&m.config, o, &ext_id, &till));
    }
    let context = Context {
        config: &m.config,
        kind,
        known,
        vat_tables,
    };
    let mut order = match build(o, 0, &context) {
        Ok(order) => order,
        Err(refusal) => {
            return Ok(WriteOutcome::failed(
                &o.key,
                refusal.message,
                refusal.field.as_deref(),
            ));
        }
    };
    order.relation = match relation(m, o) {
        Ok(Ok(number)) => number,
        Ok(Err(refusal)) => {
            return Ok(WriteOutcome::failed(
                &o.key,
                refusal.message,
                refusal.field.as_deref(),
            ));
        }
        Err(error) => return Err(error),
    };
    create(m, o, &ext_id, &order)
}

/// Sends the order, walking the key chain past stored failures.
fn create<T: Transport>(
    m: &mut Mplus<T>,
    o: &Order,
    ext_id: &str,
    order: &NewOrder,
) -> Result<WriteOutcome> {
    for attempt in 0..=MAX_REPLAYED_FAILURES {
        let key = idempotency_key(
            &format!("{}{}", m.config.order_prefix, o.key.trim()),
            attempt,
        );
        let mut answer: CreateOrderV3Response =
            m.client.call(ops::create_order_v3(&key, order), true)?;
        match answer.result.as_str() {
            "CREATE-ORDER-RESULT-OK" => {
                let id = answer.order_id().map(str::to_owned).ok_or_else(|| {
                    ConnectorError::protocol("createOrderV3 succeeded without an orderId")
                })?;
                // The till's own answer: what it booked must be what the shop charged.
                let stored = match answer.order.take() {
                    Some(stored) => Some(stored),
                    None => find_order(m, ext_id)?,
                };
                if let Some(message) = stored
                    .as_ref()
                    .and_then(|till| total_mismatch(&m.config, o, ext_id, till))
                {
                    let till = stored.unwrap_or_default();
                    return Ok(mismatch(o, &till, message));
                }
                let mut outcome = WriteOutcome::created(&o.key, id);
                if answer.replayed() {
                    outcome.message = Some(
                        "created by an earlier attempt whose answer was lost (replayed by key)"
                            .into(),
                    );
                }
                return Ok(outcome);
            }
            "CREATE-ORDER-RESULT-PAYMENT-FAILED" => {
                let id = answer.order_id().map(str::to_owned);
                return Ok(WriteOutcome {
                    status: OutcomeStatus::Created,
                    target_id: id,
                    message: Some(format!(
                        "order created, but the payment was refused ({}): {}",
                        answer.pay_result.as_deref().unwrap_or("no pay result"),
                        answer.error_message.trim()
                    )),
                    ..WriteOutcome::unchanged(&o.key, None)
                });
            }
            "CREATE-ORDER-RESULT-EXT-ORDER-ID-ALREADY-EXISTS" => {
                return Ok(match find_order(m, ext_id)? {
                    Some(till) => already_there(&m.config, o, ext_id, &till),
                    None => WriteOutcome {
                        message: Some(format!("order {ext_id} is already in MplusKASSA")),
                        ..WriteOutcome::unchanged(&o.key, None)
                    },
                });
            }
            "CREATE-ORDER-RESULT-FAILED" if answer.replayed() => continue,
            "CREATE-ORDER-RESULT-FAILED" => {
                return Ok(WriteOutcome::failed(
                    &o.key,
                    format!(
                        "MplusKASSA refused order {ext_id}: {}",
                        answer.error_message.trim()
                    ),
                    None,
                ));
            }
            other => {
                return Err(ConnectorError::protocol(format!(
                    "createOrderV3 answered {other:?} for order {ext_id}"
                )));
            }
        }
    }
    Ok(WriteOutcome::failed(
        &o.key,
        format!(
            "MplusKASSA replays a stored failure for every retry key of order {ext_id}; change the order in the shop to try again"
        ),
        None,
    ))
}

/// The relation an order is booked on: by configuration, or the customer's, found by e-mail
/// or created (an existing relation is not changed by an order).
fn relation<T: Transport>(
    m: &mut Mplus<T>,
    o: &Order,
) -> Result<std::result::Result<i64, Refusal>> {
    if m.config.always_default_relation
        && let Some(n) = m.config.default_relation
    {
        return Ok(Ok(n));
    }
    let email = o.customer.email.trim();
    if email.is_empty() {
        return Ok(m.config.default_relation.ok_or_else(|| {
            refuse(
                "the order's customer has no e-mail address: set `default_relation` to book such orders",
                "customer.email",
            )
        }));
    }
    let mut customer = o.customer.clone();
    if customer.billing_address.is_none() {
        customer.billing_address = Some(o.billing_address.clone());
    }
    if customer.shipping_address.is_none() {
        customer.shipping_address = o.shipping_address.clone();
    }
    if let Some(existing) = customers::find(m, email)? {
        let number = existing.relation.relation_number.ok_or_else(|| {
            ConnectorError::protocol("findRelationV2 returned a relation without a number")
        })?;
        // The order goes on the relation found even when MplusKASSA refuses the update:
        // the order carries its own addresses, and the next order tries again.
        if m.config.update_relations
            && let Err(error) = customers::update_from_order(m, &existing, &customer)
        {
            if crate::aborts_batch(&error) {
                return Err(error);
            }
            koppel_sdk::log::warn(
                "The relation found for the order's customer was not updated.",
                &[
                    ("relation", &number.to_string()),
                    ("order", &o.key),
                    ("error", &error.message),
                ],
            );
        }
        return Ok(Ok(number));
    }
    customers::create(m, &customer).map(Ok)
}

/// `unit × quantity` in cents, rounded half away from zero, in integers.
fn times(unit: i64, quantity: Decimal) -> i64 {
    let scale = 10i128.pow(u32::from(quantity.scale.min(18)));
    let n = i128::from(unit) * i128::from(quantity.units);
    let q = n / scale;
    let r = n % scale;
    let q = if r.abs() * 2 >= scale {
        q + n.signum()
    } else {
        q
    };
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

/// Cents as a person reads them: `€ 84.90`.
pub fn money(cents: i64, currency: &str) -> String {
    let symbol = match currency.trim().to_ascii_uppercase().as_str() {
        "EUR" | "" => "€".to_owned(),
        other => other.to_owned(),
    };
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{symbol} {sign}{}.{:02}", abs / 100, abs % 100)
}

fn amount(config: &crate::config::MplusConfig, gross: i64, net: i64) -> i64 {
    if config.vat_method.gross_prices() {
        gross
    } else {
        net
    }
}

/// The VAT code of a rate in a country: from `vat_codes`, else the VAT table the order is
/// booked with (the country's own, when the branch has one; else the branch's).
pub fn vat_code(
    context: &Context<'_>,
    table: &std::collections::HashMap<i32, Decimal>,
    country: &str,
    rate: Decimal,
    field: &str,
) -> std::result::Result<i32, Refusal> {
    let rate_text = normalise_rate(&rate.to_string()).unwrap_or_else(|| rate.to_string());
    match context.config.vat_codes.lookup(country, &rate_text) {
        Some(Some(code)) => Ok(code),
        Some(None) => Err(refuse(
            format!("no VAT code for {rate_text}% in {country}: add it to `vat_codes`"),
            field,
        )),
        None => table
            .iter()
            .filter(|(_, r)| r.same_value(rate))
            .map(|(code, _)| *code)
            .min()
            .ok_or_else(|| {
                refuse(
                    format!(
                        "branch {} has no VAT code for {rate_text}% (country {country}): map it in `vat_codes`",
                        context.config.branch
                    ),
                    field,
                )
            }),
    }
}

fn quantity(q: Decimal, places: u8, field: &str) -> std::result::Result<i64, Refusal> {
    match q.rescale(places) {
        Some(scaled) if scaled.same_value(q) => Ok(scaled.units),
        _ => Err(refuse(
            format!("quantity {q} has more decimals than `decimal_places` ({places}) allows"),
            field,
        )),
    }
}

fn order_address(a: &Address) -> OrderAddress {
    let person = [a.first_name.as_deref(), a.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let company = a
        .company
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let street = [
        Some(a.street.trim()),
        a.house_number.as_deref().map(str::trim),
        a.additional.as_deref().map(str::trim),
    ]
    .into_iter()
    .flatten()
    .filter(|s| !s.is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    OrderAddress {
        name: company.clone().unwrap_or_else(|| person.clone()),
        contact: company
            .as_ref()
            .map(|_| person.clone())
            .filter(|p| !p.is_empty()),
        address: street,
        zipcode: a.postal_code.trim().to_owned(),
        city: a.city.trim().to_owned(),
        country: a.country.trim().to_owned(),
        company_name: company,
    }
}

/// The `createOrderV3` content of an order (the relation is filled in afterwards).
pub fn build(o: &Order, relation: i64, c: &Context<'_>) -> std::result::Result<NewOrder, Refusal> {
    let config = c.config;
    let entered = crate::time::parse_rfc3339(&o.placed_at)
        .map(crate::time::amsterdam)
        .ok_or_else(|| {
            refuse(
                format!("placed_at {:?} is not an RFC 3339 timestamp", o.placed_at),
                "placed_at",
            )
        })?;
    let country = o.country.trim();
    let turnover_group = config.turnover_group_for(country);
    // The VAT table of the country the order is taxed in, when the branch has one (one-stop
    // shop: the same codes at the country's rates), named to the till in `vatCountryIso3`.
    let (vat_table, vat_country) = c.vat_tables.for_country(country);
    let mut lines = Vec::with_capacity(o.lines.len() + 1);
    // What the lines as sent add up to, in the prices the VAT method sends.
    let mut booked: i64 = 0;
    for (i, line) in o.lines.iter().enumerate() {
        let sku = line.sku.trim();
        let field = format!("lines[{i}].sku");
        // A shop's line that is no product (a promotion, a discount, a credit) is booked on
        // the discount article; one worth nothing (free shipping) has nothing to book.
        let kind = koppel_sdk::extra(&line.extra, "line_type").and_then(Value::as_text);
        let is_product = !sku.is_empty() && kind.as_deref().is_none_or(|k| k == "product");
        if !is_product && line.total.gross == 0 && line.total.net == 0 {
            continue;
        }
        let article = if is_product {
            sku.parse::<i64>().map_err(|_| {
                refuse(
                    format!("unknown article: SKU `{sku}` is not an MplusKASSA article number (they are numeric)"),
                    &field,
                )
            })?
        } else {
            config.discount_article.ok_or_else(|| {
                refuse(
                    format!(
                        "line {:?} is no article ({}): set `discount_article` to book such lines",
                        line.name,
                        kind.as_deref().unwrap_or("no SKU")
                    ),
                    &field,
                )
            })?
        };
        if !c.known.contains(&article) {
            return Err(refuse(
                if is_product {
                    format!("unknown article: SKU `{sku}` is not an article in MplusKASSA")
                } else {
                    format!("the discount article {article} does not exist in MplusKASSA")
                },
                if is_product {
                    field
                } else {
                    "discount_article".to_owned()
                },
            ));
        }
        // The shop's price and its discount on the line, as the shop charged them.
        let full = Amount {
            gross: times(line.unit_price.gross, line.quantity),
            net: times(line.unit_price.net, line.quantity),
        };
        let discount =
            ((full.gross, full.net) != (line.total.gross, line.total.net)).then(|| LineDiscount {
                amount: full.gross - line.total.gross,
                amount_excl: full.net - line.total.net,
            });
        booked += amount(config, line.total.gross, line.total.net);
        lines.push(NewLine {
            article_number: article,
            text: line.name.trim().to_owned(),
            quantity: quantity(
                line.quantity,
                config.decimal_places,
                &format!("lines[{i}].quantity"),
            )?,
            decimal_places: config.decimal_places,
            price: amount(config, line.unit_price.gross, line.unit_price.net),
            turnover_group,
            vat_code: Some(vat_code(
                c,
                vat_table,
                country,
                line.tax_rate,
                &format!("lines[{i}].tax-rate"),
            )?),
            discount,
        });
    }
    if lines.is_empty() {
        return Err(refuse("the order has no lines", "lines"));
    }
    let shipping = o
        .shipping
        .as_ref()
        .filter(|s| s.cost.gross != 0 || s.cost.net != 0);
    if let Some(s) = shipping {
        if !c.known.contains(&config.shipping_article) {
            return Err(refuse(
                format!(
                    "the shipping article {} does not exist in MplusKASSA",
                    config.shipping_article
                ),
                "shipping_article",
            ));
        }
        booked += amount(config, s.cost.gross, s.cost.net);
        lines.push(NewLine {
            article_number: config.shipping_article,
            text: Some(s.method.trim())
                .filter(|m| !m.is_empty())
                .unwrap_or("Verzendkosten")
                .to_owned(),
            quantity: 10i64.pow(u32::from(config.decimal_places)),
            decimal_places: config.decimal_places,
            price: amount(config, s.cost.gross, s.cost.net),
            turnover_group,
            vat_code: Some(vat_code(
                c,
                vat_table,
                country,
                s.tax_rate,
                "shipping.tax-rate",
            )?),
            discount: None,
        });
    }
    // The till books what the lines say; a shop total they do not add up to (a discount on the
    // order that is no line) would be booked as something else than was charged.
    let charged = amount(config, o.totals.gross, o.totals.net);
    if booked != charged {
        return Err(refuse(
            format!(
                "the order's lines and shipping add up to {}, its total is {}: koppel books an order line by line, and this one does not add up",
                money(booked, &o.currency),
                money(charged, &o.currency)
            ),
            "totals",
        ));
    }
    let shop_method = o.payment_method.as_deref().map(str::trim).unwrap_or("");
    let method = config
        .payment_methods
        .get(shop_method)
        .cloned()
        .or_else(|| config.default_payment_method.clone());
    let paid = o.payment_state == PaymentState::Paid;
    let payments = if paid {
        let method = method.clone().ok_or_else(|| {
            refuse(
                format!(
                    "no MplusKASSA payment method for {shop_method:?}: add it to `payment_methods` or set `default_payment_method`"
                ),
                "payment-method",
            )
        })?;
        let reference = ["payment_reference", "transaction_id"]
            .iter()
            .find_map(|name| koppel_sdk::extra(&o.extra, name))
            .and_then(Value::as_text)
            .filter(|t| !t.trim().is_empty());
        vec![NewPayment {
            method,
            amount: o.totals.gross,
            external_reference: reference,
        }]
    } else {
        Vec::new()
    };
    // Unmapped shipping methods send none, unless `delivery_methods` maps some: then a method
    // it does not name is a gap in the mapping, and the order waits for it.
    let shop_shipping = o
        .shipping
        .as_ref()
        .map(|s| s.method.trim())
        .filter(|m| !m.is_empty());
    let delivery_method = match shop_shipping {
        Some(shop) if !config.delivery_methods.is_empty() => {
            Some(config.delivery_methods.get(shop).cloned().ok_or_else(|| {
                refuse(
                    format!(
                        "no MplusKASSA delivery method for shipping method {shop:?}: add it to `delivery_methods` (mapped: {})",
                        config
                            .delivery_methods
                            .keys()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "shipping.method",
                )
            })?)
        }
        _ => None,
    };
    let billing = order_address(&o.billing_address);
    Ok(NewOrder {
        ext_order_id: ext_order_id(config, o),
        branch: config.branch,
        employee: config.employee,
        entered,
        relation,
        delivery_address: Some(
            o.shipping_address
                .as_ref()
                .map(order_address)
                .unwrap_or_else(|| billing.clone()),
        ),
        invoice_address: Some(billing),
        workplace: config.workplace,
        reference: o.number.trim().to_owned(),
        vat_method: config.vat_method.wire(),
        vat_country_iso3: vat_country,
        delivery_method,
        payment_method: method,
        lines,
        prepay: (!payments.is_empty()).then_some(c.kind == OrderKind::Order),
        payments,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MplusConfig;
    use koppel_sdk::{Amount, Customer, DeliveryState, OrderLine, OrderState, Settings, Shipping};

    pub fn config(extra: &[(&str, &str)]) -> MplusConfig {
        let mut pairs = vec![
            ("base_url", "http://127.0.0.1:1"),
            ("ident", "i"),
            ("secret", "s"),
            ("payment_methods", r#"{"iDEAL": "IDEAL"}"#),
        ];
        pairs.extend_from_slice(extra);
        MplusConfig::from_settings(&Settings::from(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        ))
        .expect("valid config")
    }

    fn address() -> Address {
        Address {
            company: None,
            first_name: Some("Jan".into()),
            last_name: Some("de Vries".into()),
            street: "Dorpsstraat".into(),
            house_number: Some("12".into()),
            additional: None,
            postal_code: "1234 AB".into(),
            city: "Utrecht".into(),
            country: "NL".into(),
            phone: None,
        }
    }

    pub fn order(skus: &[&str]) -> Order {
        Order {
            key: "0190a1b2c3d4e5f60718293a4b5c6d7e".into(),
            number: "100234".into(),
            external_id: None,
            placed_at: "2025-03-04T09:15:05Z".into(),
            state: OrderState::Open,
            payment_state: PaymentState::Paid,
            delivery_state: DeliveryState::Open,
            customer: Customer {
                key: "c1".into(),
                email: "j.devries@example.nl".into(),
                company_name: None,
                first_name: Some("Jan".into()),
                last_name: Some("de Vries".into()),
                phone: None,
                vat_id: None,
                billing_address: None,
                shipping_address: None,
                external_ids: vec![],
                extra: vec![],
            },
            billing_address: address(),
            shipping_address: None,
            lines: skus
                .iter()
                .map(|sku| OrderLine {
                    sku: (*sku).into(),
                    name: "Merino sweater navy M".into(),
                    quantity: Decimal::integer(1),
                    unit_price: Amount {
                        net: 6607,
                        gross: 7995,
                    },
                    tax_rate: Decimal::integer(21),
                    total: Amount {
                        net: 6607,
                        gross: 7995,
                    },
                    extra: vec![],
                })
                .collect(),
            shipping: Some(Shipping {
                method: "DHL".into(),
                cost: Amount {
                    net: 409,
                    gross: 495,
                },
                tax_rate: Decimal::new(2100, 2),
            }),
            payment_method: Some("iDEAL".into()),
            totals: Amount {
                net: 7016,
                gross: 8490,
            },
            currency: "EUR".into(),
            country: "NL".into(),
            extra: vec![],
        }
    }

    fn vat() -> VatTables {
        let nl: std::collections::HashMap<i32, Decimal> = [
            (1, Decimal::integer(21)),
            (2, Decimal::integer(9)),
            (3, Decimal::ZERO),
        ]
        .into_iter()
        .collect();
        let de: std::collections::HashMap<i32, Decimal> = [
            (1, Decimal::integer(19)),
            (2, Decimal::integer(7)),
            (3, Decimal::ZERO),
        ]
        .into_iter()
        .collect();
        VatTables {
            own: nl.clone(),
            own_country: Some("NLD".into()),
            by_country: [("NLD".to_owned(), nl), ("DEU".to_owned(), de)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn a_paid_order_becomes_lines_a_shipping_line_and_a_prepayment() {
        let config = config(&[]);
        let known: HashSet<i64> = [10021, 999].into_iter().collect();
        let table = vat();
        let c = Context {
            config: &config,
            kind: OrderKind::Order,
            known: &known,
            vat_tables: &table,
        };
        let built = build(&order(&["10021"]), 2045, &c).expect("valid");
        assert_eq!(built.ext_order_id, "100234");
        assert_eq!(built.employee, 999_999);
        assert_eq!((built.entered.hour, built.entered.offset_minutes), (10, 60));
        assert_eq!(built.lines.len(), 2);
        assert_eq!(built.lines[0].price, 7995);
        assert_eq!(built.lines[0].vat_code, Some(1));
        assert_eq!(built.lines[1].article_number, 999);
        assert_eq!(built.lines[1].vat_code, Some(1), "21.00 is 21");
        assert_eq!(built.prepay, Some(true));
        assert_eq!(built.payments[0].amount, 8490);
        assert_eq!(built.payments[0].method, "IDEAL");
        let c = Context {
            kind: OrderKind::Invoice,
            ..c
        };
        assert_eq!(
            build(&order(&["10021"]), 2045, &c).expect("valid").prepay,
            Some(false)
        );
    }

    #[test]
    fn an_unknown_sku_fails_the_order_naming_it() {
        let config = config(&[]);
        let known: HashSet<i64> = [10021, 999].into_iter().collect();
        let table = vat();
        let c = Context {
            config: &config,
            kind: OrderKind::Order,
            known: &known,
            vat_tables: &table,
        };
        let refusal = build(&order(&["10021", "4242"]), 1, &c).expect_err("unknown");
        assert!(refusal.message.contains("`4242`"), "{}", refusal.message);
        assert_eq!(refusal.field.as_deref(), Some("lines[1].sku"));
        let refusal = build(&order(&["SW-1"]), 1, &c).expect_err("not a number");
        assert!(refusal.message.contains("`SW-1`"), "{}", refusal.message);
    }

    #[test]
    fn vat_codes_and_payments_must_be_mapped() {
        let config = config(&[("vat_codes", r#"{"DE": {"19": 4}}"#)]);
        let known: HashSet<i64> = [10021, 999].into_iter().collect();
        let table = vat();
        let c = Context {
            config: &config,
            kind: OrderKind::Order,
            known: &known,
            vat_tables: &table,
        };
        let mut german = order(&["10021"]);
        german.country = "DE".into();
        let refusal = build(&german, 1, &c).expect_err("21% in DE has no code");
        assert_eq!(refusal.field.as_deref(), Some("lines[0].tax-rate"));
        let mut unmapped = order(&["10021"]);
        unmapped.payment_method = Some("Klarna".into());
        let refusal = build(&unmapped, 1, &c).expect_err("no payment method");
        assert_eq!(refusal.field.as_deref(), Some("payment-method"));
        unmapped.payment_state = PaymentState::Open;
        let built = build(&unmapped, 1, &c).expect("an open order needs no payment method");
        assert!(built.payments.is_empty() && built.prepay.is_none());
    }

    #[test]
    fn an_order_taxed_abroad_takes_that_country_s_table_and_names_it() {
        let config = config(&[]);
        let known: HashSet<i64> = [10021, 999].into_iter().collect();
        let tables = vat();
        let c = Context {
            config: &config,
            kind: OrderKind::Order,
            known: &known,
            vat_tables: &tables,
        };
        let mut german = order(&["10021"]);
        german.country = "DE".into();
        german.lines[0].tax_rate = Decimal::integer(19);
        if let Some(s) = german.shipping.as_mut() {
            s.tax_rate = Decimal::integer(19);
        }
        let built = build(&german, 1, &c).expect("valid");
        assert_eq!(built.vat_country_iso3.as_deref(), Some("DEU"));
        assert_eq!(built.lines[0].vat_code, Some(1), "19% is code 1 in Germany");
        // A country without a table of its own is booked with the branch's.
        let mut swiss = order(&["10021"]);
        swiss.country = "CH".into();
        let built = build(&swiss, 1, &c).expect("valid");
        assert_eq!(built.vat_country_iso3, None);
        assert_eq!(built.lines[0].vat_code, Some(1));
    }

    #[test]
    fn shipping_methods_need_a_mapping_once_some_are_mapped() {
        let known: HashSet<i64> = [10021, 999].into_iter().collect();
        let table = vat();
        let unmapped = config(&[]);
        let c = Context {
            config: &unmapped,
            kind: OrderKind::Order,
            known: &known,
            vat_tables: &table,
        };
        let built = build(&order(&["10021"]), 1, &c).expect("no mapping: none sent");
        assert_eq!(built.delivery_method, None);
        let mapped = config(&[("delivery_methods", r#"{"DHL": "VERZENDEN"}"#)]);
        let c = Context {
            config: &mapped,
            ..c
        };
        let built = build(&order(&["10021"]), 1, &c).expect("mapped");
        assert_eq!(built.delivery_method.as_deref(), Some("VERZENDEN"));
        let mut express = order(&["10021"]);
        if let Some(shipping) = express.shipping.as_mut() {
            shipping.method = "DHL Express".into();
        }
        let refusal = build(&express, 1, &c).expect_err("not mapped");
        assert_eq!(refusal.field.as_deref(), Some("shipping.method"));
        assert!(
            refusal.message.contains("\"DHL Express\"")
                && refusal.message.contains("`delivery_methods`"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn quantities_keep_their_scale_or_fail() {
        assert_eq!(quantity(Decimal::integer(2), 3, "q").ok(), Some(2000));
        assert_eq!(quantity(Decimal::new(15, 1), 1, "q").ok(), Some(15));
        assert!(quantity(Decimal::new(15, 1), 0, "q").is_err());
    }

    #[test]
    fn keys_derive_from_the_shop_order_id() {
        assert_eq!(idempotency_key("abc", 0), "koppel-order-abc");
        assert_eq!(idempotency_key("abc", 2), "koppel-order-abc-2");
        let odd = idempotency_key("order/with spaces", 0);
        assert!(
            odd.starts_with("koppel-order-h") && odd.len() == 14 + 32,
            "{odd}"
        );
        assert_eq!(odd, idempotency_key("order/with spaces", 0));
    }
}
