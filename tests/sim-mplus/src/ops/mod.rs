//! The SOAP operations: dispatch on the payload's local name, read the request leniently (as
//! real clients differ), and answer with the WSDL's element names in schema order.

mod catalogue;
mod orders;
mod reference;
mod relations;
mod stock;

use std::sync::RwLock;

use crate::model::State;
use crate::xml::{Element, Payload, SoapFault};

/// Settings the operations need besides the state.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The most items a marker-paged read returns, whatever `syncMarkerLimit` says.
    pub max_page: usize,
}

/// Every operation the simulator answers, with its response element.
pub const OPERATIONS: [(&str, &str); 33] = [
    ("getApiVersion", "getApiVersionResponse"),
    ("getCurrentSyncMarkers", "getCurrentSyncMarkersResponse"),
    ("getProducts", "GetProductsResponse"),
    ("getArticleGroups", "GetArticleGroupsResponse"),
    ("getStock", "GetStockResponse"),
    ("getStockHistory", "GetStockHistoryResponse"),
    ("getStockHistoryV2", "GetStockHistoryResponse"),
    ("updateStock", "UpdateStockResponse"),
    ("setStock", "SetStockResponse"),
    ("findRelation", "FindRelationResponse"),
    ("findRelationV2", "FindRelationV2Response"),
    ("getRelation", "GetRelationResponse"),
    ("createRelation", "CreateRelationResponse"),
    ("updateRelation", "UpdateRelationResponse"),
    ("createOrder", "CreateOrderResponse"),
    ("createOrderV3", "CreateOrderV3Response"),
    ("findOrder", "GetOrderResponse"),
    ("getOrder", "GetOrderResponse"),
    ("getOrders", "GetOrdersResponse"),
    ("payOrder", "PayOrderResponse"),
    ("payOrderV2", "PayOrderV2Response"),
    ("deliverOrder", "DeliverOrderResponse"),
    ("cancelOrder", "CancelOrderResponse"),
    ("getInvoice", "GetInvoiceResponse"),
    ("findInvoice", "GetInvoiceResponse"),
    ("getInvoices", "GetInvoicesResponse"),
    ("getVatGroupList", "getVatGroupListResponse"),
    ("getTurnoverGroups", "GetTurnoverGroupsResponse"),
    ("getPaymentMethods", "GetPaymentMethodsResponse"),
    ("getBranches", "getBranchesResponse"),
    ("getEmployees", "GetEmployeesResponse"),
    ("getEmployee", "GetEmployeeResponse"),
    ("getRelations", "GetRelationsResponse"),
];

/// Whether the simulator answers this operation.
pub fn is_supported(op: &str) -> bool {
    OPERATIONS.iter().any(|(name, _)| *name == op)
}

/// Runs one operation against the state.
pub(crate) fn dispatch(
    state: &RwLock<State>,
    limits: Limits,
    payload: &Element,
    now: i64,
) -> Result<Payload, SoapFault> {
    let read = || state.read().unwrap_or_else(|p| p.into_inner());
    let write = || state.write().unwrap_or_else(|p| p.into_inner());
    let p = payload;
    match p.name.as_str() {
        "getApiVersion" => Ok(reference::api_version(now)),
        "getCurrentSyncMarkers" => Ok(reference::sync_markers(&read())),
        "getProducts" => catalogue::get_products(&read(), limits, p),
        "getArticleGroups" => catalogue::get_article_groups(&read(), limits, p),
        "getStock" => stock::get_stock(&read(), p),
        "getStockHistory" | "getStockHistoryV2" => stock::get_history(&read(), limits, p),
        "updateStock" => stock::update_stock(&mut write(), p, now, false),
        "setStock" => stock::update_stock(&mut write(), p, now, true),
        "findRelation" => relations::find(&read(), p, false),
        "findRelationV2" => relations::find(&read(), p, true),
        "getRelation" => relations::get(&read(), p),
        "getRelations" => relations::get_many(&read(), limits, p),
        "createRelation" => relations::create(&mut write(), p, now),
        "updateRelation" => relations::update(&mut write(), p, now),
        "createOrder" => orders::create(&mut write(), p, now),
        "createOrderV3" => orders::create_v3(&mut write(), p, now),
        "findOrder" => orders::find(&read(), p),
        "getOrder" => orders::get(&read(), p),
        "getOrders" => orders::get_many(&read(), limits, p),
        "payOrder" => orders::pay(&mut write(), p, now, false),
        "payOrderV2" => orders::pay(&mut write(), p, now, true),
        "deliverOrder" => orders::deliver(&mut write(), p, now),
        "cancelOrder" => orders::cancel(&mut write(), p, now),
        "getInvoice" => orders::get_invoice(&read(), p, false),
        "findInvoice" => orders::get_invoice(&read(), p, true),
        "getInvoices" => orders::get_invoices(&read(), limits, p),
        "getVatGroupList" => Ok(reference::vat_groups(&read())),
        "getTurnoverGroups" => reference::turnover_groups(&read(), p),
        "getPaymentMethods" => Ok(reference::payment_methods(&read())),
        "getBranches" => Ok(reference::branches(&read())),
        "getEmployees" => reference::employees(&read(), limits, p),
        "getEmployee" => reference::employee(&read(), p),
        other => Err(SoapFault::client(format!(
            "Method '{other}' not implemented: method name or namespace not recognized"
        ))),
    }
}

// ----- reading requests: lenient where real clients differ, strict where the schema is -----

/// The `request` child, or an empty one when a client left it out (the Go client does).
pub(crate) fn request_of(op: &Element) -> std::borrow::Cow<'_, Element> {
    match op.child("request") {
        Some(r) => std::borrow::Cow::Borrowed(r),
        None => std::borrow::Cow::Owned(Element::mplus("request")),
    }
}

/// The `request` child when it is mandatory and carries mandatory fields.
pub(crate) fn required_request(op: &Element) -> Result<&Element, SoapFault> {
    op.child("request")
        .ok_or_else(|| SoapFault::missing(&op.name, "request"))
}

pub(crate) fn opt_i64(el: &Element, name: &str) -> Result<Option<i64>, SoapFault> {
    match el.child(name) {
        None => Ok(None),
        Some(c) => c
            .value()
            .parse()
            .map(Some)
            .map_err(|_| SoapFault::invalid(name, c.value(), "xsd:long")),
    }
}

pub(crate) fn opt_i32(el: &Element, name: &str) -> Result<Option<i32>, SoapFault> {
    match el.child(name) {
        None => Ok(None),
        Some(c) => c
            .value()
            .parse()
            .map(Some)
            .map_err(|_| SoapFault::invalid(name, c.value(), "xsd:int")),
    }
}

pub(crate) fn req_i64(el: &Element, name: &str) -> Result<i64, SoapFault> {
    opt_i64(el, name)?.ok_or_else(|| SoapFault::missing(&el.name, name))
}

pub(crate) fn req_i32(el: &Element, name: &str) -> Result<i32, SoapFault> {
    opt_i32(el, name)?.ok_or_else(|| SoapFault::missing(&el.name, name))
}

/// Booleans as `true`/`false` or `1`/`0` (the lightweight PHP client sends digits).
pub(crate) fn opt_bool(el: &Element, name: &str) -> Result<Option<bool>, SoapFault> {
    match el.child(name).map(Element::value) {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(other) => Err(SoapFault::invalid(name, other, "xsd:boolean")),
    }
}

pub(crate) fn opt_str(el: &Element, name: &str) -> Option<String> {
    el.child(name).map(|c| c.value().to_owned())
}

pub(crate) fn req_str(el: &Element, name: &str) -> Result<String, SoapFault> {
    opt_str(el, name).ok_or_else(|| SoapFault::missing(&el.name, name))
}

/// A repeated element without wrapper (`articleNumbers*`).
pub(crate) fn list_i64(el: &Element, name: &str) -> Result<Vec<i64>, SoapFault> {
    el.children_named(name)
        .map(|c| {
            c.value()
                .parse()
                .map_err(|_| SoapFault::invalid(name, c.value(), "xsd:long"))
        })
        .collect()
}

pub(crate) fn list_i32(el: &Element, name: &str) -> Result<Vec<i32>, SoapFault> {
    el.children_named(name)
        .map(|c| {
            c.value()
                .parse()
                .map_err(|_| SoapFault::invalid(name, c.value(), "xsd:int"))
        })
        .collect()
}

/// A wrapper with repeated items (`articleNumbers/articleNumbers`), empty when left out.
pub(crate) fn wrapped_i64(el: &Element, wrapper: &str, item: &str) -> Result<Vec<i64>, SoapFault> {
    match el.child(wrapper) {
        None => Ok(Vec::new()),
        Some(w) => list_i64(w, item),
    }
}

/// `TextList`: `<pluNumbers><text><text>ABC</text></text></pluNumbers>`.
pub(crate) fn text_list(el: &Element, wrapper: &str) -> Vec<String> {
    el.child(wrapper)
        .map(|w| {
            w.children_named("text")
                .filter_map(|t| t.child("text").map(|x| x.value().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The page size of a marker-paged read.
pub(crate) fn page_size(limit: Option<i32>, limits: Limits) -> usize {
    match limit {
        Some(n) if n > 0 => (n as usize).min(limits.max_page),
        _ => limits.max_page,
    }
}
