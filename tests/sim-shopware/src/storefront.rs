//! Orders placed the way the storefront checkout places them: customer (found by e-mail or
//! created, private or company), billing and shipping address, line items priced from the
//! products, one delivery with the chosen shipping method, one transaction with the chosen
//! payment method, every state at its machine's initial state (the payment moved to `paid`
//! when asked), and stock lowered by the version's rule.

use anyhow::Context as _;
use rand::Rng;
use serde_json::{Value, json};

use crate::entities;
use crate::ids::Id;
use crate::model::Val;
use crate::seed::{ShopIds, fit, put};
use crate::shop::{DEFAULT_CURRENCY, SYSTEM_LANGUAGE, Shop};
use crate::write::{Batch, Mode};

/// Who orders.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderCustomer {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// A company name makes it a business customer.
    pub company: Option<String>,
    /// ISO code: DE, NL, BE, AT, FR, GB, CH or US.
    pub country: String,
    pub street: String,
    pub zipcode: String,
    pub city: String,
    /// `mr`, `mrs` or `not_specified`.
    pub salutation: String,
}

impl OrderCustomer {
    pub fn private(email: &str, first_name: &str, last_name: &str, country: &str) -> OrderCustomer {
        OrderCustomer {
            email: email.into(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            company: None,
            country: country.into(),
            street: "Hauptstr. 1".into(),
            zipcode: "10115".into(),
            city: "Berlin".into(),
            salutation: "not_specified".into(),
        }
    }

    pub fn business(
        email: &str,
        company: &str,
        first_name: &str,
        last_name: &str,
        country: &str,
    ) -> OrderCustomer {
        OrderCustomer {
            company: Some(company.into()),
            ..OrderCustomer::private(email, first_name, last_name, country)
        }
    }
}

/// One ordered product, by product number.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderLine {
    pub product_number: String,
    pub quantity: i64,
}

impl OrderLine {
    pub fn new(product_number: &str, quantity: i64) -> OrderLine {
        OrderLine {
            product_number: product_number.into(),
            quantity,
        }
    }
}

/// A checkout.
#[derive(Clone, Debug, PartialEq)]
pub struct StorefrontOrder {
    pub customer: OrderCustomer,
    pub lines: Vec<OrderLine>,
    /// Move the payment to `paid` right away (as a payment provider would).
    pub paid: bool,
    /// Technical name: `shipping_standard`, `shipping_express`, `shipping_pickup`.
    pub shipping_method: String,
    /// Technical name: `payment_invoice`, `payment_cashpayment`, `payment_prepayment`,
    /// `payment_debitpayment`.
    pub payment_method: String,
    /// Create products whose number is unknown (stock 100, 9.99 EUR) instead of failing.
    pub create_missing_products: bool,
    pub customer_comment: Option<String>,
}

impl StorefrontOrder {
    pub fn new(customer: OrderCustomer, lines: Vec<OrderLine>) -> StorefrontOrder {
        StorefrontOrder {
            customer,
            lines,
            paid: false,
            shipping_method: "shipping_standard".into(),
            payment_method: "payment_invoice".into(),
            create_missing_products: false,
            customer_comment: None,
        }
    }
}

/// What the checkout created.
#[derive(Clone, Debug, PartialEq)]
pub struct PlacedOrder {
    pub id: String,
    pub order_number: String,
    pub customer_id: String,
    pub delivery_id: String,
    pub transaction_id: String,
    pub amount_total: f64,
}

/// The associations an order is read with by the handle.
pub fn order_associations() -> Value {
    json!({
        "stateMachineState": {},
        "currency": {},
        "orderCustomer": {},
        "billingAddress": {"associations": {"country": {}}},
        "addresses": {"associations": {"country": {}}},
        "lineItems": {},
        "deliveries": {"associations": {"shippingMethod": {}, "stateMachineState": {}, "shippingOrderAddress": {"associations": {"country": {}}}}},
        "transactions": {"associations": {"paymentMethod": {}, "stateMachineState": {}}},
    })
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn shipping_cost(technical: &str, positions: f64) -> f64 {
    match technical {
        "shipping_express" => 9.95,
        "shipping_pickup" => 0.0,
        _ if positions >= 50.0 => 0.0,
        _ => 4.95,
    }
}

struct Priced {
    product: Id,
    number: String,
    label: String,
    quantity: i64,
    unit: f64,
    rate: f64,
}

fn price_line(
    shop: &mut Shop,
    ids: &ShopIds,
    line: &OrderLine,
    create: bool,
) -> anyhow::Result<Priced> {
    let product = match shop.find_by(0, "productNumber", &line.product_number) {
        Some(id) => id,
        None if create => put(
            shop,
            "product",
            json!({"productNumber": line.product_number, "name": format!("Product {}", line.product_number), "stock": 100,
                "active": true, "taxId": ids.tax(19.0).unwrap_or_default().hex(),
                "price": [{"currencyId": DEFAULT_CURRENCY, "gross": 9.99, "net": 8.39, "linked": true}],
                "visibilities": [{"salesChannelId": ids.sales_channel.hex(), "visibility": 30}]}),
            false,
        )?,
        None => anyhow::bail!("no product with number {}", line.product_number),
    };
    let record = shop.table(0).get(product).cloned().context("product row")?;
    let parent = shop
        .get_id(&record, "parentId")
        .and_then(|p| shop.table(0).get(p))
        .cloned();
    let inherited = |field: &str| -> Value {
        match shop.get(&record, field) {
            Some(v) if !v.is_null() => v.to_json(),
            _ => parent
                .as_ref()
                .and_then(|p| shop.get(p, field))
                .map(Val::to_json)
                .unwrap_or(Value::Null),
        }
    };
    let prices = inherited("price");
    let unit = prices
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|p| p.get("currencyId").and_then(Value::as_str) == Some(DEFAULT_CURRENCY))
        })
        .and_then(|p| p.get("gross"))
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let tax = inherited("taxId").as_str().and_then(Id::parse);
    let rate = tax
        .and_then(|t| shop.table(Shop::entity_index("tax")).get(t))
        .and_then(|r| shop.get(r, "taxRate"))
        .and_then(Val::as_f64)
        .unwrap_or(19.0);
    let label = inherited("name")
        .as_str()
        .unwrap_or(&line.product_number)
        .to_string();
    Ok(Priced {
        product,
        number: line.product_number.clone(),
        label,
        quantity: line.quantity,
        unit,
        rate,
    })
}

/// Calculated taxes and tax rules. The OpenAPI files type both as objects (PHP collections
/// keyed by tax rate), so they are written keyed by rate.
fn calculated(total: f64, rate: f64) -> (Value, Value) {
    let tax = round2(total - total / (1.0 + rate / 100.0));
    let key = format!("{rate}");
    (
        json!({ key.clone(): {"tax": tax, "taxRate": rate, "price": total, "apiAlias": "cart_tax_calculated"} }),
        json!({ key: {"taxRate": rate, "percentage": 100, "apiAlias": "cart_tax_rule"} }),
    )
}

/// The customer with this e-mail, created (with one address) when there is none.
pub fn ensure_customer(
    shop: &mut Shop,
    ids: &ShopIds,
    customer: &OrderCustomer,
) -> anyhow::Result<Id> {
    let customers = Shop::entity_index("customer");
    if let Some(id) = shop.find_by(customers, "email", &customer.email) {
        return Ok(id);
    }
    let country = ids
        .country(&customer.country)
        .with_context(|| format!("unknown country {}", customer.country))?;
    let salutation = ids
        .salutation(&customer.salutation)
        .or_else(|| ids.salutation("not_specified"))
        .unwrap_or_default();
    let id = shop.random_id();
    let address = shop.random_id();
    let number = shop.next_customer_number;
    shop.next_customer_number += 1;
    let payload = json!({
        "id": id.hex(), "customerNumber": number.to_string(), "email": customer.email,
        "firstName": customer.first_name, "lastName": customer.last_name, "company": customer.company,
        "salutationId": salutation.hex(), "groupId": ids.customer_group.hex(), "salesChannelId": ids.sales_channel.hex(),
        "languageId": SYSTEM_LANGUAGE, "defaultPaymentMethodId": ids.payment_method("payment_invoice").unwrap_or_default().hex(),
        "defaultBillingAddressId": address.hex(), "defaultShippingAddressId": address.hex(),
        "accountType": if customer.company.is_some() { "business" } else { "private" },
        "guest": false, "active": true,
        "addresses": [{"id": address.hex(), "countryId": country.hex(), "salutationId": salutation.hex(),
            "firstName": customer.first_name, "lastName": customer.last_name, "company": customer.company,
            "street": customer.street, "zipcode": customer.zipcode, "city": customer.city}],
    });
    put(shop, "customer", payload, false)
}

/// Places an order; see the module docs.
pub fn place(
    shop: &mut Shop,
    ids: &ShopIds,
    order: &StorefrontOrder,
) -> anyhow::Result<PlacedOrder> {
    anyhow::ensure!(!order.lines.is_empty(), "an order needs at least one line");
    let shipping = ids
        .shipping_method(&order.shipping_method)
        .with_context(|| format!("unknown shipping method {}", order.shipping_method))?;
    let payment = ids
        .payment_method(&order.payment_method)
        .with_context(|| format!("unknown payment method {}", order.payment_method))?;
    let country = ids
        .country(&order.customer.country)
        .with_context(|| format!("unknown country {}", order.customer.country))?;
    let lines: Vec<Priced> = order
        .lines
        .iter()
        .map(|line| price_line(shop, ids, line, order.create_missing_products))
        .collect::<anyhow::Result<_>>()?;
    let customer_id = ensure_customer(shop, ids, &order.customer)?;
    let customer_number = shop
        .table(Shop::entity_index("customer"))
        .get(customer_id)
        .and_then(|r| shop.get(r, "customerNumber"))
        .map(Val::to_json)
        .unwrap_or(Value::Null);
    let salutation = ids
        .salutation(&order.customer.salutation)
        .or_else(|| ids.salutation("not_specified"))
        .unwrap_or_default();
    let machines = shop.machines.clone();
    let initial = |entity: &str| -> String {
        machines
            .for_entity(entity)
            .map(|m| m.state_id(&m.initial).hex())
            .unwrap_or_default()
    };

    let order_id = shop.random_id();
    let address_id = shop.random_id();
    let delivery_id = shop.random_id();
    let transaction_id = shop.random_id();
    let number = shop.next_order_number;
    shop.next_order_number += 1;
    let now = shop.now();

    let positions: f64 = round2(lines.iter().map(|l| l.unit * l.quantity as f64).sum());
    let shipping_total = shipping_cost(&order.shipping_method, positions);
    let total = round2(positions + shipping_total);
    let rate = lines.first().map(|l| l.rate).unwrap_or(19.0);
    let net = round2(
        lines
            .iter()
            .map(|l| l.unit * l.quantity as f64 / (1.0 + l.rate / 100.0))
            .sum::<f64>()
            + shipping_total / (1.0 + rate / 100.0),
    );
    let (order_taxes, order_rules) = calculated(total, rate);
    let (shipping_taxes, shipping_rules) = calculated(shipping_total, rate);
    let shipping_price = json!({"unitPrice": shipping_total, "totalPrice": shipping_total, "quantity": 1,
        "calculatedTaxes": shipping_taxes, "taxRules": shipping_rules});
    let rounding = json!({"decimals": 2, "interval": 0.01, "roundForNet": true});
    let line_items: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let line_total = round2(l.unit * l.quantity as f64);
            let (taxes, rules) = calculated(line_total, l.rate);
            json!({
                "id": Id::derive(&format!("line:{}:{i}", order_id.hex())).hex(),
                "identifier": l.product.hex(), "referencedId": l.product.hex(), "productId": l.product.hex(),
                "type": "product", "label": l.label, "quantity": l.quantity, "position": i + 1,
                "good": true, "removable": true, "stackable": true, "states": ["is-physical"],
                "price": {"unitPrice": l.unit, "totalPrice": line_total, "quantity": l.quantity,
                    "calculatedTaxes": taxes, "taxRules": rules},
                "priceDefinition": {"type": "quantity", "price": l.unit, "quantity": l.quantity, "taxRules": rules, "isCalculated": true},
                "payload": {"productNumber": l.number, "taxId": null, "options": [], "isCloseout": false},
            })
        })
        .collect();
    let company = order.customer.company.clone();
    let payload = json!({
        "id": order_id.hex(), "orderNumber": number.to_string(), "orderDateTime": now,
        "currencyId": DEFAULT_CURRENCY, "currencyFactor": 1.0, "languageId": SYSTEM_LANGUAGE,
        "salesChannelId": ids.sales_channel.hex(), "stateId": initial("order"), "billingAddressId": address_id.hex(),
        "price": {"netPrice": net, "totalPrice": total, "positionPrice": positions, "rawTotal": total, "taxStatus": "gross",
            "calculatedTaxes": order_taxes, "taxRules": order_rules},
        "shippingCosts": shipping_price, "itemRounding": rounding, "totalRounding": rounding,
        "deepLinkCode": format!("{:032x}", shop.rng.random::<u128>()),
        "customerComment": order.customer_comment, "taxCalculationType": "horizontal",
        "orderCustomer": {"id": Id::derive(&format!("order_customer:{}", order_id.hex())).hex(), "email": order.customer.email,
            "firstName": order.customer.first_name, "lastName": order.customer.last_name, "company": company,
            "salutationId": salutation.hex(), "customerNumber": customer_number, "customerId": customer_id.hex()},
        "addresses": [{"id": address_id.hex(), "countryId": country.hex(), "salutationId": salutation.hex(),
            "firstName": order.customer.first_name, "lastName": order.customer.last_name, "company": order.customer.company,
            "street": order.customer.street, "zipcode": order.customer.zipcode, "city": order.customer.city}],
        "lineItems": line_items,
        "deliveries": [{"id": delivery_id.hex(), "shippingOrderAddressId": address_id.hex(), "shippingMethodId": shipping.hex(),
            "stateId": initial("order_delivery"), "trackingCodes": [], "shippingDateEarliest": now, "shippingDateLatest": now,
            "shippingCosts": shipping_price}],
        "transactions": [{"id": transaction_id.hex(), "paymentMethodId": payment.hex(), "stateId": initial("order_transaction"),
            "amount": {"unitPrice": total, "totalPrice": total, "quantity": 1, "calculatedTaxes": calculated(total, rate).0, "taxRules": calculated(total, rate).1}}],
    });
    let orders = Shop::entity_index("order");
    let payload = fit(shop, orders, payload);
    shop.store.begin();
    let mut batch = Batch::default();
    let written = shop.write(&mut batch, orders, &payload, Mode::Create, "/0", None);
    if let (None, _) | (_, Some(_)) = (written, batch.errors.first()) {
        shop.store.rollback();
        let error = batch
            .errors
            .first()
            .map(|e| format!("{} {} at {:?}", e.code, e.detail, e.pointer))
            .unwrap_or_default();
        anyhow::bail!("placing the order failed: {error}");
    }
    shop.store.commit();
    shop.order_placed(order_id);
    if order.paid {
        shop.transition("order_transaction", transaction_id, "paid")
            .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.detail))?;
    }
    let _ = entities::index_of("order");
    tracing::debug!(order = %order_id, number, total, "Storefront order placed.");
    Ok(PlacedOrder {
        id: order_id.hex(),
        order_number: number.to_string(),
        customer_id: customer_id.hex(),
        delivery_id: delivery_id.hex(),
        transaction_id: transaction_id.hex(),
        amount_total: total,
    })
}
