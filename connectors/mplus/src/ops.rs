//! The request envelopes of the operations this connector calls, each child in the order the
//! WSDL's `xsd:sequence` gives it. Required list wrappers are always written (empty when
//! there is nothing to send), and every quantity carries its `decimalPlaces`.

use crate::soap::Envelope;
use crate::whole::{Piece, RawRelation};
use crate::wire::Relation;

pub fn get_api_version() -> Vec<u8> {
    Envelope::new("getApiVersion").finish()
}

pub fn get_current_sync_markers() -> Envelope {
    Envelope::new("getCurrentSyncMarkers")
}

/// `getProducts` from a sync marker (inclusive), at most `limit` articles.
pub fn get_products_since(marker: i64, limit: u32) -> Envelope {
    let mut e = Envelope::new("getProducts");
    e.open("request")
        .empty("pluNumbers")
        .num("syncMarker", marker)
        .num("syncMarkerLimit", i64::from(limit))
        .close("request");
    e
}

/// `getProducts` for whole products (every article of each).
pub fn get_products_by_number(products: &[i64]) -> Envelope {
    let mut e = Envelope::new("getProducts");
    e.open("request").empty("pluNumbers");
    for number in products {
        e.num("productNumbers", *number);
    }
    e.close("request");
    e
}

/// `getProducts` for articles; with `whole_products`, every article of their products.
pub fn get_products_by_article(articles: &[i64], whole_products: bool) -> Envelope {
    let mut e = Envelope::new("getProducts");
    e.open("request");
    for number in articles {
        e.num("articleNumbers", *number);
    }
    e.empty("pluNumbers");
    if whole_products {
        e.flag("includeAllArticlesOfSelectedProducts", true);
    }
    e.close("request");
    e
}

pub fn get_article_groups() -> Envelope {
    let mut e = Envelope::new("getArticleGroups");
    e.empty("request");
    e
}

/// `getStock` of `branch` (or of `branches`, when more than one), for `articles`, from a stock
/// marker (inclusive). What an empty article list means is undocumented: always name them.
pub fn get_stock(branch: i32, branches: &[i32], articles: &[i64], since: Option<i64>) -> Envelope {
    let mut e = Envelope::new("getStock");
    e.open("request").num("branchNumber", branch);
    e.open("articleNumbers");
    for number in articles {
        e.num("articleNumbers", *number);
    }
    e.close("articleNumbers");
    e.opt_num("stockId", since);
    if branches.len() > 1 {
        e.open("branchNumbers");
        for b in branches {
            e.num("branchNumber", *b);
        }
        e.close("branchNumbers");
    }
    e.close("request");
    e
}

/// `getStockHistoryV2`: the stock changes of `branches` from a stock marker (inclusive), at
/// most `limit` of them, oldest first: the documented feed of what changed (API-NOTES 6.2).
pub fn get_stock_history_v2(branches: &[i32], since: i64, limit: u32) -> Envelope {
    let mut e = Envelope::new("getStockHistoryV2");
    e.open("request");
    for b in branches {
        e.num("branchNumbers", *b);
    }
    e.num("sinceStockId", since)
        .num("sinceStockIdLimit", i64::from(limit))
        .close("request");
    e
}

/// `findRelationV2` by e-mail, exact (case-insensitive) match.
pub fn find_relation_by_email(email: &str) -> Envelope {
    let mut e = Envelope::new("findRelationV2");
    e.open("request")
        .open("relation")
        .text("email", email)
        .close("relation")
        .flag("exactMatch", true)
        .close("request");
    e
}

pub fn get_relations_since(marker: i64, limit: u32) -> Envelope {
    let mut e = Envelope::new("getRelations");
    e.open("request")
        .num("syncMarker", marker)
        .num("syncMarkerLimit", i64::from(limit))
        .close("request");
    e
}

pub fn create_relation(relation: &Relation) -> Envelope {
    let mut e = Envelope::new("createRelation");
    write_relation(&mut e, relation);
    e
}

/// `updateRelation` with the relation as read, whole, and `changes` (element, value) in place.
pub fn update_relation(raw: &RawRelation, changes: &[(&'static str, String)]) -> Envelope {
    let mut e = Envelope::new("updateRelation");
    e.open("relation");
    for piece in raw.with_changes(changes) {
        match piece {
            Piece::Raw(xml) => e.raw(&xml),
            Piece::Text(name, value) => e.text(name, &value),
        };
    }
    e.close("relation");
    e
}

/// A `Relation` in schema order (only the fields that are set).
fn write_relation(e: &mut Envelope, r: &Relation) {
    e.open("relation")
        .opt_num("relationNumber", r.relation_number)
        .opt_text("extRelationId", r.ext_relation_id.as_deref());
    if let Some(active) = r.active {
        e.flag("active", active);
    }
    e.opt_text("name", r.name.as_deref())
        .opt_text("address", r.address.as_deref())
        .opt_text("zipcode", r.zipcode.as_deref())
        .opt_text("city", r.city.as_deref())
        .opt_text("country", r.country.as_deref())
        .opt_text("deliveryAddress", r.delivery_address.as_deref())
        .opt_text("deliveryZipcode", r.delivery_zipcode.as_deref())
        .opt_text("deliveryCity", r.delivery_city.as_deref())
        .opt_text("deliveryCountry", r.delivery_country.as_deref())
        .opt_text("contact", r.contact.as_deref())
        .opt_text("telephone", r.telephone.as_deref())
        .opt_text("mobile", r.mobile.as_deref())
        .opt_text("email", r.email.as_deref())
        .opt_text("website", r.website.as_deref())
        .opt_text("vatNumber", r.vat_number.as_deref())
        .opt_text("commerceNumber", r.commerce_number.as_deref())
        .opt_text("companyName", r.company_name.as_deref())
        .close("relation");
}

pub fn find_order(ext_order_id: &str) -> Envelope {
    let mut e = Envelope::new("findOrder");
    e.text("extOrderId", ext_order_id);
    e
}

/// `getOrders` from an order sync marker (inclusive), headers only.
pub fn get_orders_since(marker: i64, limit: u32) -> Envelope {
    let mut e = Envelope::new("getOrders");
    e.open("request")
        .num("syncMarker", marker)
        .num("syncMarkerLimit", i64::from(limit))
        .empty("articlePluNumbers")
        .empty("articleBarcodes")
        .flag("includeLineList", false)
        .close("request");
    e
}

/// `getOrders` for these orders, with their lines: the documented way to have their invoice
/// references (`includeLineList` false leaves them out).
pub fn get_orders_by_id(ids: &[&str]) -> Envelope {
    let mut e = Envelope::new("getOrders");
    e.open("request")
        .empty("articlePluNumbers")
        .empty("articleBarcodes");
    for id in ids {
        e.text("orderIds", id);
    }
    e.flag("includeLineList", true).close("request");
    e
}

pub fn get_vat_group_list() -> Envelope {
    Envelope::new("getVatGroupList")
}

pub fn get_turnover_groups() -> Envelope {
    let mut e = Envelope::new("getTurnoverGroups");
    e.empty("request");
    e
}

pub fn get_payment_methods() -> Envelope {
    Envelope::new("getPaymentMethods")
}

pub fn get_branches() -> Envelope {
    Envelope::new("getBranches")
}

pub fn get_employees_since(marker: i64, limit: u32) -> Envelope {
    let mut e = Envelope::new("getEmployees");
    e.open("request")
        .num("syncMarker", marker)
        .num("syncMarkerLimit", i64::from(limit))
        .close("request");
    e
}

/// Local wall-clock time with its offset, as `SoapMplusDateTime` wants it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    pub mon: u8,
    pub day: u8,
    pub hour: u8,
    pub min: u8,
    pub sec: u8,
    pub isdst: bool,
    /// Minutes east of UTC.
    pub offset_minutes: i32,
}

/// An address on an order (`Address`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderAddress {
    pub name: String,
    pub contact: Option<String>,
    pub address: String,
    pub zipcode: String,
    pub city: String,
    pub country: String,
    pub company_name: Option<String>,
}

/// One order line: an article, a quantity with its scale, a unit price in cents, and the
/// shop's discount on the line, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLine {
    pub article_number: i64,
    pub text: String,
    pub quantity: i64,
    pub decimal_places: u8,
    pub price: i64,
    pub turnover_group: Option<i32>,
    pub vat_code: Option<i32>,
    pub discount: Option<LineDiscount>,
}

/// A discount the shop gave on a line, sent as `DISCOUNT-TYPE-EXTERNAL-DISCOUNT`: cents off the
/// line (price × quantity), with and without VAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineDiscount {
    pub amount: i64,
    pub amount_excl: i64,
}

/// `redeemedVoucherIssuanceId` that keeps MplusKASSA from redeeming a relation's voucher on a
/// line (the WSDL's documentation of `LineData`).
pub const NO_VOUCHER: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPayment {
    pub method: String,
    pub amount: i64,
    pub external_reference: Option<String>,
}

/// Everything `createOrderV3` sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub ext_order_id: String,
    pub branch: i32,
    pub employee: i64,
    pub entered: LocalTime,
    pub relation: i64,
    pub delivery_address: Option<OrderAddress>,
    pub invoice_address: Option<OrderAddress>,
    pub workplace: Option<i32>,
    pub reference: String,
    pub vat_method: &'static str,
    /// `vatCountryIso3`: the country whose VAT table the lines' codes are in.
    pub vat_country_iso3: Option<String>,
    pub delivery_method: Option<String>,
    pub payment_method: Option<String>,
    pub lines: Vec<NewLine>,
    /// `Some(true)`: the payments are a deposit on the open order; `Some(false)`: pay,
    /// deliver and invoice at once.
    pub prepay: Option<bool>,
    pub payments: Vec<NewPayment>,
}

/// `createOrderV3`: idempotent by `key`.
pub fn create_order_v3(key: &str, order: &NewOrder) -> Envelope {
    let mut e = Envelope::new("createOrderV3");
    e.open("request").text("idempotencyKey", key).open("order");
    e.text("orderId", "")
        .text("extOrderId", &order.ext_order_id)
        .num("entryBranchNumber", order.branch)
        .num("employeeNumber", order.employee);
    write_datetime(&mut e, "entryTimestamp", order.entered);
    e.num("relationNumber", order.relation);
    if let Some(a) = &order.delivery_address {
        write_address(&mut e, "deliveryAddress", a);
    }
    if let Some(a) = &order.invoice_address {
        write_address(&mut e, "invoiceAddress", a);
    }
    e.open("financialDate")
        .num("day", order.entered.day)
        .num("mon", order.entered.mon)
        .num("year", order.entered.year)
        .close("financialDate");
    e.num("financialBranchNumber", order.branch)
        .opt_num("workplaceNumber", order.workplace)
        .text("reference", &order.reference)
        .text("vatMethod", order.vat_method)
        .opt_text("deliveryMethod", order.delivery_method.as_deref())
        .opt_text("paymentMethod", order.payment_method.as_deref());
    e.open("lineList");
    for line in &order.lines {
        e.open("line")
            .num("articleNumber", line.article_number)
            .text("text", &line.text)
            .open("data")
            .num("quantity", line.quantity)
            .num("decimalPlaces", line.decimal_places)
            .num("price", line.price)
            .opt_num("turnoverGroup", line.turnover_group)
            .opt_num("vatCode", line.vat_code);
        if let Some(d) = line.discount {
            e.text("discountType", "DISCOUNT-TYPE-EXTERNAL-DISCOUNT")
                .num("discountAmount", d.amount)
                .num("discountAmountExcl", d.amount_excl);
        }
        e.text("redeemedVoucherIssuanceId", NO_VOUCHER)
            .close("data")
            .close("line");
    }
    e.close("lineList")
        .opt_text("vatCountryIso3", order.vat_country_iso3.as_deref())
        .close("order");
    // The shop's prices are final: no sales, actions, sales prices or price groups of the
    // till's own on top (their defaults are not documented).
    e.flag("applySalesAndActions", false)
        .flag("applySalesPrices", false)
        .flag("applyPriceGroups", false);
    if let Some(prepay) = order.prepay {
        e.flag("prepay", prepay);
    }
    if !order.payments.is_empty() {
        e.open("paymentList");
        for p in &order.payments {
            e.open("payment")
                .text("method", &p.method)
                .num("amount", p.amount)
                .opt_text("externalReference", p.external_reference.as_deref())
                .close("payment");
        }
        e.close("paymentList");
    }
    e.close("request");
    e
}

fn write_datetime(e: &mut Envelope, name: &str, t: LocalTime) {
    e.open(name)
        .num("sec", t.sec)
        .num("min", t.min)
        .num("hour", t.hour)
        .num("day", t.day)
        .num("mon", t.mon)
        .num("year", t.year)
        .flag("isdst", t.isdst)
        .num("timezone", t.offset_minutes)
        .close(name);
}

fn write_address(e: &mut Envelope, name: &str, a: &OrderAddress) {
    let non_empty = |s: &str| Some(s).filter(|s| !s.is_empty()).map(str::to_owned);
    e.open(name)
        .opt_text("name", non_empty(&a.name).as_deref())
        .opt_text("contact", a.contact.as_deref())
        .opt_text("address", non_empty(&a.address).as_deref())
        .opt_text("zipcode", non_empty(&a.zipcode).as_deref())
        .opt_text("city", non_empty(&a.city).as_deref())
        .opt_text("country", non_empty(&a.country).as_deref())
        .opt_text("companyName", a.company_name.as_deref())
        .close(name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::example;

    /// The XML with formatting whitespace removed, to compare envelopes.
    fn squash(xml: &str) -> String {
        xml.lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join("")
            .replace("<ns1:pluNumbers/>", "<ns1:pluNumbers></ns1:pluNumbers>")
    }

    fn text(envelope: Envelope) -> String {
        String::from_utf8(envelope.finish()).expect("utf-8")
    }

    fn expected(name: &str) -> String {
        squash(&std::fs::read_to_string(example(name)).expect("example"))
    }

    #[test]
    fn get_stock_writes_the_doubly_named_wrapper() {
        let xml = text(get_stock(1, &[1], &[10021, 10022], None));
        assert_eq!(squash(&xml), expected("02-getStock.request.xml"));
    }

    #[test]
    fn find_relation_and_find_order_match_the_examples() {
        assert_eq!(
            squash(&text(find_relation_by_email("j.devries@example.nl"))),
            expected("03-findRelationV2.request.xml")
        );
        assert_eq!(
            squash(&text(find_order("WEB-100235"))),
            expected("05-findOrder.request.xml")
        );
    }

    #[test]
    fn get_products_keeps_the_required_plu_wrapper_first() {
        let xml = text(get_products_since(1201, 100));
        assert!(xml.contains(
            "<ns1:request><ns1:pluNumbers/><ns1:syncMarker>1201</ns1:syncMarker><ns1:syncMarkerLimit>100</ns1:syncMarkerLimit></ns1:request>"
        ), "{xml}");
        let xml = text(get_products_by_article(&[7, 8], true));
        assert!(xml.contains(
            "<ns1:articleNumbers>7</ns1:articleNumbers><ns1:articleNumbers>8</ns1:articleNumbers><ns1:pluNumbers/><ns1:includeAllArticlesOfSelectedProducts>true</ns1:includeAllArticlesOfSelectedProducts>"
        ), "{xml}");
        let xml = text(get_products_by_number(&[5001]));
        assert!(
            xml.contains("<ns1:pluNumbers/><ns1:productNumbers>5001</ns1:productNumbers>"),
            "{xml}"
        );
    }

    #[test]
    fn create_order_v3_matches_the_example() {
        let address = OrderAddress {
            name: "J. de Vries".into(),
            contact: None,
            address: "Dorpsstraat 12".into(),
            zipcode: "1234 AB".into(),
            city: "Utrecht".into(),
            country: "NL".into(),
            company_name: None,
        };
        let order = NewOrder {
            ext_order_id: "WEB-100234".into(),
            branch: 1,
            employee: 999_999,
            entered: LocalTime {
                year: 2025,
                mon: 3,
                day: 4,
                hour: 10,
                min: 15,
                sec: 5,
                isdst: false,
                offset_minutes: 60,
            },
            relation: 2045,
            delivery_address: Some(address),
            invoice_address: None,
            workplace: None,
            reference: "Webshop order 100234".into(),
            vat_method: "VAT-METHOD-INCLUSIVE",
            vat_country_iso3: None,
            delivery_method: Some("POST".into()),
            payment_method: None,
            lines: vec![
                NewLine {
                    article_number: 10021,
                    text: "Merino sweater navy M".into(),
                    quantity: 1,
                    decimal_places: 0,
                    price: 7995,
                    turnover_group: None,
                    vat_code: None,
                    discount: None,
                },
                NewLine {
                    article_number: 999,
                    text: "Shipping costs".into(),
                    quantity: 1,
                    decimal_places: 0,
                    price: 495,
                    turnover_group: None,
                    vat_code: None,
                    discount: None,
                },
            ],
            prepay: Some(true),
            payments: vec![NewPayment {
                method: "IDEAL".into(),
                amount: 8490,
                external_reference: Some("PSP-tr_7Hk2x".into()),
            }],
        };
        let xml = text(create_order_v3(
            "3f0c6f0e-2a4b-4f43-9c55-6f2f1d0b7a11",
            &order,
        ));
        // The example plus what makes the shop's prices final: no vouchers of the relation on
        // a line, none of the till's own sales, actions, sales prices or price groups.
        let voucher =
            format!("<ns1:redeemedVoucherIssuanceId>{NO_VOUCHER}</ns1:redeemedVoucherIssuanceId>");
        let flags = "<ns1:applySalesAndActions>false</ns1:applySalesAndActions>\
                     <ns1:applySalesPrices>false</ns1:applySalesPrices>\
                     <ns1:applyPriceGroups>false</ns1:applyPriceGroups>";
        assert_eq!(xml.matches(&voucher).count(), 2, "{xml}");
        assert!(
            xml.contains(&format!("</ns1:order>{flags}<ns1:prepay>")),
            "{xml}"
        );
        assert_eq!(
            squash(&xml)
                .replace("<ns1:orderId></ns1:orderId>", "")
                .replace(&voucher, "")
                .replace(flags, ""),
            expected("04-createOrderV3.request.xml").replace("<ns1:orderId></ns1:orderId>", "")
        );
        assert!(xml.contains("<ns1:orderId></ns1:orderId>"));
    }

    #[test]
    fn relations_are_written_in_schema_order() {
        let r = Relation {
            relation_number: Some(7),
            name: Some("Bakkerij Jansen B.V.".into()),
            email: Some("info@bakkerij.example".into()),
            contact: Some("Jan Jansen".into()),
            company_name: Some("Bakkerij Jansen B.V.".into()),
            vat_number: Some("NL001".into()),
            active: Some(true),
            ..Relation::default()
        };
        let xml = text(create_relation(&r));
        let positions: Vec<usize> = [
            "relationNumber",
            "active",
            "name",
            "contact",
            "email",
            "vatNumber",
            "companyName",
        ]
        .iter()
        .map(|n| xml.find(&format!("<ns1:{n}>")).expect(n))
        .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{xml}");
    }
}
