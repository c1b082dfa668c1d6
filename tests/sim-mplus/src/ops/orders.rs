//! Orders and invoices: create (`createOrder`, idempotent `createOrderV3` with replay of the
//! stored response), find/get/list, pay (`payOrder`, idempotent `payOrderV2`), deliver,
//! cancel; `getInvoice`, `findInvoice`, `getInvoices`.

use super::{
    Limits, list_i32, list_i64, opt_bool, opt_i32, opt_i64, opt_str, page_size, req_i64, req_str,
    required_request,
};
use crate::clock::{write_date, write_datetime};
use crate::model::{
    Address, CreateOutcome, Invoice, LineInput, Order, OrderInput, OrderLine, PayOutcome, Payment,
    PaymentInput, Pricing, State, VAT_TABLES, from_milli, to_milli,
};
use crate::xml::{Element, Out, Payload, SoapFault};

// ----- reading -----

fn read_address(el: Option<&Element>) -> Option<Address> {
    let el = el?;
    let s = |name| opt_str(el, name).unwrap_or_default();
    Some(Address {
        name: s("name"),
        contact: s("contact"),
        address: s("address"),
        zipcode: s("zipcode"),
        city: s("city"),
        country: s("country"),
        company_name: s("companyName"),
    })
}

fn read_order(el: &Element) -> Result<OrderInput, SoapFault> {
    let mut lines = Vec::new();
    if let Some(list) = el.child("lineList") {
        for line in list.children_named("line") {
            let article_number = req_i64(line, "articleNumber")?;
            let (turnover_group, vat_code) = match line.child("data") {
                Some(data) => (opt_i32(data, "turnoverGroup")?, opt_i32(data, "vatCode")?),
                None => (None, None),
            };
            let (discount_type, discount_amount, discount_amount_excl) = match line.child("data") {
                Some(data) => (
                    opt_str(data, "discountType"),
                    opt_i64(data, "discountAmount")?,
                    opt_i64(data, "discountAmountExcl")?,
                ),
                None => (None, None, None),
            };
            let (quantity_milli, price) = match line.child("data") {
                Some(data) => {
                    let quantity = req_i64(data, "quantity")?;
                    // API-NOTES 3: the scale defaults differ between clients; absent means 0.
                    let dp = opt_i32(data, "decimalPlaces")?.unwrap_or(0);
                    let milli = u32::try_from(dp)
                        .ok()
                        .and_then(|dp| to_milli(quantity, dp))
                        .ok_or_else(|| {
                            SoapFault::invalid("decimalPlaces", &dp.to_string(), "scale (0 to 3)")
                        })?;
                    (milli, opt_i64(data, "price")?)
                }
                None => (1000, None),
            };
            lines.push(LineInput {
                article_number,
                text: opt_str(line, "text"),
                quantity_milli,
                price,
                turnover_group,
                vat_code,
                discount_type,
                discount_amount,
                discount_amount_excl,
            });
        }
    }
    Ok(OrderInput {
        ext_id: opt_str(el, "extOrderId").unwrap_or_default(),
        entry_branch: opt_i32(el, "entryBranchNumber")?,
        financial_branch: opt_i32(el, "financialBranchNumber")?,
        workplace: opt_i32(el, "workplaceNumber")?,
        employee_number: opt_i64(el, "employeeNumber")?,
        relation_number: opt_i64(el, "relationNumber")?,
        reference: opt_str(el, "reference").unwrap_or_default(),
        vat_method: opt_str(el, "vatMethod").filter(|v| !v.is_empty()),
        vat_country: opt_str(el, "vatCountryIso3").filter(|v| !v.is_empty()),
        delivery_method: opt_str(el, "deliveryMethod").unwrap_or_default(),
        delivery_address: read_address(el.child("deliveryAddress")),
        invoice_address: read_address(el.child("invoiceAddress")),
        lines,
        pricing: Pricing::default(),
    })
}

/// The `apply…` flags of a `createOrderV2/V3` request (absent: apply; the WSDL gives no
/// default, so the simulator takes the least forgiving one).
fn read_pricing(request: &Element) -> Result<Pricing, SoapFault> {
    // Read (and so checked) all three; only price groups have something to apply here.
    let _sales_and_actions = opt_bool(request, "applySalesAndActions")?;
    let _sales_prices = opt_bool(request, "applySalesPrices")?;
    Ok(Pricing {
        price_groups: opt_bool(request, "applyPriceGroups")?.unwrap_or(true),
    })
}

fn read_payments(el: Option<&Element>) -> Result<Vec<PaymentInput>, SoapFault> {
    let Some(list) = el else {
        return Ok(Vec::new());
    };
    list.children_named("payment")
        .map(|p| {
            Ok(PaymentInput {
                method: req_str(p, "method")?,
                amount: req_i64(p, "amount")?,
                external_reference: opt_str(p, "externalReference").unwrap_or_default(),
            })
        })
        .collect()
}

// ----- writing -----

fn write_ids(out: &mut Out, name: &str, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    out.open(name);
    for id in ids {
        out.text("id", id);
    }
    out.close(name);
}

fn write_address(out: &mut Out, name: &str, a: &Address) {
    out.open(name);
    let fields = [
        ("name", &a.name),
        ("contact", &a.contact),
        ("address", &a.address),
        ("zipcode", &a.zipcode),
        ("city", &a.city),
        ("country", &a.country),
        ("companyName", &a.company_name),
    ];
    for (field, value) in fields {
        if !value.is_empty() {
            out.text(field, value);
        }
    }
    out.close(name);
}

fn write_vat_groups(out: &mut Out, lines: &[OrderLine]) {
    out.open("vatGroupList");
    for (code, pct, excl, vat) in State::vat_groups(lines) {
        out.open("vatGroup");
        out.val("vatCode", code);
        out.val("vatPercentage", pct);
        out.val("exclAmount", excl);
        out.val("vatAmount", vat);
        out.close("vatGroup");
    }
    out.close("vatGroupList");
}

fn write_lines(out: &mut Out, lines: &[OrderLine], employee: i64) {
    out.open("lineList");
    for l in lines {
        out.open("line");
        out.text("lineId", &l.id);
        out.val("employeeNumber", employee);
        out.val("articleNumber", l.article_number);
        out.text("text", &l.text);
        out.open("data");
        let (q, q_dp) = from_milli(l.quantity_milli);
        let (d, d_dp) = from_milli(l.delivered_milli);
        let (c, c_dp) = from_milli(l.cancelled_milli);
        out.val("quantity", q);
        out.val("decimalPlaces", q_dp);
        out.val("deliveredQuantity", d);
        out.val("deliveredDecimalPlaces", d_dp);
        out.val("cancelledQuantity", c);
        out.val("cancelledDecimalPlaces", c_dp);
        out.val("price", l.price);
        out.val("priceExcl", l.price_excl);
        out.val("turnoverGroup", l.turnover_group);
        out.val("vatCode", l.vat_code);
        out.val("vatPercentage", l.vat_percentage);
        if let Some(kind) = l.discount_type {
            out.val("discountType", kind);
            out.val("discountPercentage", l.discount_percentage);
            out.val("discountAmount", l.discount_amount);
        }
        out.val("totalInclAmount", l.total_incl);
        out.val("totalExclAmount", l.total_excl);
        out.close("data");
        out.close("line");
    }
    out.close("lineList");
}

fn write_payments(out: &mut Out, payments: &[Payment], employee: i64) {
    out.open("paymentList");
    for p in payments {
        out.open("payment");
        out.text("paymentId", &p.id);
        write_date(out, "financialDate", p.at);
        write_datetime(out, "entryTimestamp", p.at);
        out.val("branchNumber", p.branch);
        out.val("employeeNumber", employee);
        out.text("method", &p.method);
        out.val("amount", p.amount);
        if !p.external_reference.is_empty() {
            out.text("externalReference", &p.external_reference);
        }
        out.close("payment");
    }
    out.close("paymentList");
}

/// One `Order` in schema order. Without lines (`includeLineList` false) the proposal and
/// invoice references are left out too, as the WSDL's documentation of
/// `GetOrdersRequest.includeLineList` says ("The proposals/invoices references will not be
/// loaded").
pub(crate) fn write_order(out: &mut Out, state: &State, o: &Order, with_lines: bool) {
    out.open("order");
    out.text("orderId", &o.id);
    if !o.ext_id.is_empty() {
        out.text("extOrderId", &o.ext_id);
    }
    if with_lines {
        write_ids(out, "invoiceIds", &o.invoice_ids);
    }
    out.val("syncMarker", o.sync_marker);
    out.val("orderType", "ORDER-TYPE-SALES-ORDER");
    out.val("entryBranchNumber", o.entry_branch);
    out.val("employeeNumber", o.employee_number);
    if let Some(e) = state.employee(o.employee_number) {
        out.text("employeeName", &e.name);
    }
    write_datetime(out, "entryTimestamp", o.created);
    out.val("relationNumber", o.relation_number);
    if let Some(r) = state.relation(o.relation_number) {
        out.text("relationName", &r.name);
    }
    if let Some(a) = &o.delivery_address {
        write_address(out, "deliveryAddress", a);
    }
    if let Some(a) = &o.invoice_address {
        write_address(out, "invoiceAddress", a);
    }
    write_date(out, "financialDate", o.created);
    out.val("financialBranchNumber", o.financial_branch);
    if let Some(w) = o.workplace {
        out.val("workplaceNumber", w);
    }
    out.text("reference", &o.reference);
    out.val("totalInclAmount", o.total_incl);
    out.val("totalExclAmount", o.total_excl);
    out.val("vatMethod", &o.vat_method);
    write_vat_groups(out, &o.lines);
    if !o.delivery_method.is_empty() {
        out.text("deliveryMethod", &o.delivery_method);
    }
    out.val("changeCounter", o.change_counter);
    out.val("versionNumber", o.change_counter);
    out.val("prepaidAmount", o.prepaid);
    out.bool("fullyPaid", o.fully_paid);
    out.val("deliveryState", o.delivery_state.as_str());
    out.val("cancelState", o.cancel_state.as_str());
    out.val("completeState", o.complete_state.as_str());
    out.open("orderNumber");
    out.val("year", o.year);
    out.val("number", o.number);
    out.close("orderNumber");
    if with_lines {
        write_lines(out, &o.lines, o.employee_number);
    }
    write_payments(out, &o.payments, o.employee_number);
    if let Some((code, iso3, _)) = VAT_TABLES
        .iter()
        .find(|(_, iso3, _)| iso3.eq_ignore_ascii_case(&o.vat_country))
    {
        out.val("vatCountryCode", code);
        out.text("vatCountryIso3", iso3);
    }
    write_ids(out, "packingSlipIds", &o.packing_slip_ids);
    out.close("order");
}

fn write_invoice(out: &mut Out, state: &State, i: &Invoice, with_lines: bool) {
    out.open("invoice");
    out.text("invoiceId", &i.id);
    if !i.ext_id.is_empty() {
        out.text("extInvoiceId", &i.ext_id);
    }
    write_ids(out, "orderIds", &i.order_ids);
    write_ids(out, "extOrderIds", &i.ext_order_ids);
    out.val("syncMarker", i.sync_marker);
    out.open("invoiceNumber");
    out.val("year", i.year);
    out.val("number", i.number);
    out.close("invoiceNumber");
    out.val("invoiceType", "INVOICE-TYPE-INVOICE");
    out.val("employeeNumber", i.employee_number);
    write_datetime(out, "entryTimestamp", i.created);
    out.val("relationNumber", i.relation_number);
    if let Some(r) = state.relation(i.relation_number) {
        out.text("relationName", &r.name);
    }
    write_date(out, "financialDate", i.created);
    out.val("financialBranchNumber", i.branch);
    out.val("entryBranchNumber", i.branch);
    out.val("totalInclAmount", i.total_incl);
    out.val("totalExclAmount", i.total_excl);
    out.val("vatMethod", &i.vat_method);
    write_vat_groups(out, &i.lines);
    out.val("paidAmount", i.paid);
    out.val("state", i.state());
    out.bool("finalized", true);
    if with_lines {
        write_lines(out, &i.lines, i.employee_number);
    }
    write_payments(out, &i.payments, i.employee_number);
    out.close("invoice");
}

fn write_info(out: &mut Out, outcome: &CreateOutcome) {
    out.open("info");
    out.text("orderId", &outcome.order_id);
    out.text("orderString", &outcome.order_string);
    out.bool("orderQueued", false);
    out.close("info");
}

// ----- operations -----

/// `createOrder` (`order` is optional in the schema; without it nothing is created).
pub fn create(state: &mut State, op: &Element, now: i64) -> Result<Payload, SoapFault> {
    let outcome = match op.child("order") {
        Some(el) => {
            let input = read_order(el)?;
            state.create_order(input, None, Vec::new(), now)
        }
        None => CreateOutcome {
            result: "CREATE-ORDER-RESULT-FAILED",
            error_message: "No order given.".into(),
            order_id: String::new(),
            order_string: String::new(),
            pay_result: None,
            invoice_id: None,
        },
    };
    log_create(&outcome, "createOrder");
    let mut out = Out::new("CreateOrderResponse");
    out.val("result", outcome.result);
    write_info(&mut out, &outcome);
    out.text("errorMessage", &outcome.error_message);
    Ok(out.finish())
}

fn log_create(outcome: &CreateOutcome, op: &str) {
    if outcome.result == "CREATE-ORDER-RESULT-OK" {
        tracing::debug!(op, order = %outcome.order_id, "Order created.");
    } else {
        tracing::debug!(op, result = outcome.result, error = %outcome.error_message, "Order not created.");
    }
}

/// `createOrderV3`: a request with a key seen before gets the stored response again, flagged
/// `IDEMPOTENCY-RESULT-REPLAY-RESPONSE`, and nothing is executed. Every executed create is
/// stored, failures included (a SOAP fault is not: nothing was executed).
pub fn create_v3(state: &mut State, op: &Element, now: i64) -> Result<Payload, SoapFault> {
    let r = required_request(op)?;
    let key = req_str(r, "idempotencyKey")?;
    if key.is_empty() {
        return Err(SoapFault::client(
            "Validation constraint violation: empty idempotencyKey",
        ));
    }
    let (outcome, replay) = match state.idempotent_creates.get(&key) {
        Some(stored) => (stored.clone(), true),
        None => {
            let order = r
                .child("order")
                .ok_or_else(|| SoapFault::missing("request", "order"))?;
            let mut input = read_order(order)?;
            input.pricing = read_pricing(r)?;
            let payments = read_payments(r.child("paymentList"))?;
            // Without `prepay`, payments are taken as a deposit on the open order.
            let prepay = opt_bool(r, "prepay")?.unwrap_or(true);
            let outcome = state.create_order(input, Some(prepay), payments, now);
            state
                .idempotent_creates
                .insert(key.clone(), outcome.clone());
            (outcome, false)
        }
    };
    if replay {
        tracing::debug!(key = %key, order = %outcome.order_id, "Replayed createOrderV3.");
    } else {
        log_create(&outcome, "createOrderV3");
    }
    let mut out = Out::new("CreateOrderV3Response");
    out.val(
        "idempotencyResult",
        if replay {
            "IDEMPOTENCY-RESULT-REPLAY-RESPONSE"
        } else {
            "IDEMPOTENCY-RESULT-ORIGINAL-RESPONSE"
        },
    );
    out.val("result", outcome.result);
    // The stored order, as the WSDL's `CreateOrderV3Response.order` gives it.
    if let Some(idx) = state.order_idx(&outcome.order_id) {
        write_order(&mut out, state, &state.orders[idx], true);
    }
    out.text("errorMessage", &outcome.error_message);
    write_info(&mut out, &outcome);
    if let Some(pay) = outcome.pay_result {
        out.val("payResult", pay);
    }
    out.opt_text("invoiceId", outcome.invoice_id.as_deref());
    Ok(out.finish())
}

fn order_answer(state: &State, idx: Option<usize>) -> Payload {
    let mut out = Out::new("GetOrderResponse");
    match idx {
        Some(i) => {
            out.val("result", "GET-ORDER-RESULT-OK");
            write_order(&mut out, state, &state.orders[i], true);
        }
        None => out.val("result", "GET-ORDER-RESULT-NOT-FOUND"),
    }
    out.finish()
}

/// `findOrder` by external order id.
pub fn find(state: &State, op: &Element) -> Result<Payload, SoapFault> {
    let ext = req_str(op, "extOrderId")?;
    Ok(order_answer(
        state,
        state.ext_order_index.get(&ext).copied(),
    ))
}

/// `getOrder` by order id.
pub fn get(state: &State, op: &Element) -> Result<Payload, SoapFault> {
    let id = req_str(op, "orderId")?;
    Ok(order_answer(state, state.order_idx(&id)))
}

/// `getOrders`: paged by the order sync marker, with the usual filters.
pub fn get_many(state: &State, limits: Limits, op: &Element) -> Result<Payload, SoapFault> {
    let r = required_request(op)?;
    let marker = opt_i64(r, "syncMarker")?.unwrap_or(0).max(0) as u64;
    let page = page_size(opt_i32(r, "syncMarkerLimit")?, limits);
    let branches = list_i32(r, "branchNumbers")?;
    let employees = list_i64(r, "employeeNumbers")?;
    let relations = list_i64(r, "relationNumbers")?;
    let articles = list_i64(r, "articleNumbers")?;
    let ids: Vec<String> = r
        .children_named("orderIds")
        .map(|c| c.value().to_owned())
        .collect();
    let with_lines = opt_bool(r, "includeLineList")?.unwrap_or(true);
    let mut out = Out::new("GetOrdersResponse");
    out.open("orderList");
    for (_, &idx) in state
        .order_by_marker
        .range(marker..)
        .filter(|(_, i)| {
            let o = &state.orders[**i];
            (branches.is_empty() || branches.contains(&o.financial_branch))
                && (employees.is_empty() || employees.contains(&o.employee_number))
                && (relations.is_empty() || relations.contains(&o.relation_number))
                && (ids.is_empty() || ids.contains(&o.id))
                && (articles.is_empty()
                    || o.lines.iter().any(|l| articles.contains(&l.article_number)))
        })
        .take(page)
    {
        write_order(&mut out, state, &state.orders[idx], with_lines);
    }
    out.close("orderList");
    Ok(out.finish())
}

/// `payOrder` / `payOrderV2` (the latter idempotent by key, like `createOrderV3`).
pub fn pay(state: &mut State, op: &Element, now: i64, v2: bool) -> Result<Payload, SoapFault> {
    let r = required_request(op)?;
    let key = if v2 {
        Some(req_str(r, "idempotencyKey")?)
    } else {
        None
    };
    let id = req_str(r, "orderId")?;
    let prepay = opt_bool(r, "prepay")?.ok_or_else(|| SoapFault::missing("request", "prepay"))?;
    let payments = read_payments(r.child("paymentList"))?;
    let stored = key
        .as_ref()
        .and_then(|k| state.idempotent_payments.get(k).cloned());
    let replay = stored.is_some();
    let outcome: PayOutcome = match stored {
        Some(outcome) => outcome,
        None => {
            let outcome = state.pay_order(&id, prepay, payments, now);
            if let Some(k) = key.clone() {
                state.idempotent_payments.insert(k, outcome.clone());
            }
            outcome
        }
    };
    let mut out = Out::new(if v2 {
        "PayOrderV2Response"
    } else {
        "PayOrderResponse"
    });
    if v2 {
        out.val(
            "idempotencyResult",
            if replay {
                "IDEMPOTENCY-RESULT-REPLAY-RESPONSE"
            } else {
                "IDEMPOTENCY-RESULT-ORIGINAL-RESPONSE"
            },
        );
    }
    out.val("result", outcome.result);
    out.opt_text("invoiceId", outcome.invoice_id.as_deref());
    out.text("errorMessage", &outcome.error_message);
    Ok(out.finish())
}

/// `deliverOrder`: a packing slip for what is open; with turnover type INVOICE also an
/// invoice.
pub fn deliver(state: &mut State, op: &Element, now: i64) -> Result<Payload, SoapFault> {
    let r = required_request(op)?;
    let id = req_str(r, "orderId")?;
    let invoice =
        opt_str(r, "turnoverType").as_deref() == Some("DELIVER-ORDER-TURNOVER-TYPE-INVOICE");
    let mut out = Out::new("DeliverOrderResponse");
    let Some(idx) = state.order_idx(&id) else {
        out.val("result", "DELIVER-ORDER-RESULT-FAILED");
        out.text("errorMessage", &format!("Order {id} not found."));
        return Ok(out.finish());
    };
    match state.deliver(idx, now) {
        Ok(slip) => {
            let invoice_id = invoice
                .then(|| state.orders[idx].invoice_ids.is_empty())
                .filter(|open| *open)
                .map(|_| state.invoice_order(idx, now));
            out.val("result", "DELIVER-ORDER-RESULT-OK");
            out.text("packingSlipId", &slip);
            out.opt_text("invoiceId", invoice_id.as_deref());
            out.text("errorMessage", "");
        }
        Err(result) => {
            out.val("result", result);
            out.text("errorMessage", &format!("Order {id} cannot be delivered."));
        }
    }
    Ok(out.finish())
}

/// `cancelOrder`: releases what the order reserved.
pub fn cancel(state: &mut State, op: &Element, now: i64) -> Result<Payload, SoapFault> {
    let id = req_str(op, "orderId")?;
    let mut out = Out::new("CancelOrderResponse");
    let Some(idx) = state.order_idx(&id) else {
        out.val("result", "CANCEL-ORDER-RESULT-NOT-FOUND");
        out.text("message", &format!("Order {id} not found."));
        return Ok(out.finish());
    };
    match state.cancel(idx, now) {
        Ok(()) => {
            out.val("result", "CANCEL-ORDER-RESULT-OK");
            out.text("message", "");
        }
        Err((result, message)) => {
            out.val("result", result);
            out.text("message", &message);
        }
    }
    Ok(out.finish())
}

/// `getInvoice` by id, `findInvoice` by external id.
pub fn get_invoice(state: &State, op: &Element, by_ext: bool) -> Result<Payload, SoapFault> {
    let found = if by_ext {
        let ext = req_str(op, "extInvoiceId")?;
        state
            .invoices
            .iter()
            .position(|i| !ext.is_empty() && i.ext_id == ext)
    } else {
        let id = req_str(op, "invoiceId")?;
        state.invoice_index.get(&id).copied()
    };
    let mut out = Out::new("GetInvoiceResponse");
    match found {
        Some(i) => {
            out.val("result", "GET-INVOICE-RESULT-OK");
            write_invoice(&mut out, state, &state.invoices[i], true);
        }
        None => out.val("result", "GET-INVOICE-RESULT-NOT-FOUND"),
    }
    Ok(out.finish())
}

/// `getInvoices`: paged by the invoice sync marker.
pub fn get_invoices(state: &State, limits: Limits, op: &Element) -> Result<Payload, SoapFault> {
    let r = required_request(op)?;
    let marker = opt_i64(r, "syncMarker")?.unwrap_or(0).max(0) as u64;
    let page = page_size(opt_i32(r, "syncMarkerLimit")?, limits);
    let relations = list_i64(r, "relationNumbers")?;
    let branches = list_i32(r, "branchNumbers")?;
    let ids: Vec<String> = r
        .children_named("invoiceIds")
        .map(|c| c.value().to_owned())
        .collect();
    let with_lines = opt_bool(r, "includeLineList")?.unwrap_or(true);
    let mut out = Out::new("GetInvoicesResponse");
    out.open("invoiceList");
    for (_, &idx) in state
        .invoice_by_marker
        .range(marker..)
        .filter(|(_, i)| {
            let inv = &state.invoices[**i];
            (relations.is_empty() || relations.contains(&inv.relation_number))
                && (branches.is_empty() || branches.contains(&inv.branch))
                && (ids.is_empty() || ids.contains(&inv.id))
        })
        .take(page)
    {
        write_invoice(&mut out, state, &state.invoices[idx], with_lines);
    }
    out.close("invoiceList");
    Ok(out.finish())
}
