//! Reference data: API version, current sync markers, VAT groups, turnover groups, payment
//! methods, branches and employees.

use super::{Limits, list_i64, opt_bool, opt_i32, opt_i64, page_size, req_i64, request_of};
use crate::model::{Employee, State, VAT_TABLES};
use crate::xml::{Element, Out, Payload, SoapFault};

/// The API version the saved WSDL was generated for.
pub const API_VERSION: (u32, u32, u32) = (67, 1, 3);

/// The ISO 3166 numeric code and alpha-3 code of the Netherlands.
const NL: (i32, &str, &str) = (528, "NLD", "Nederland");

pub fn api_version(now: i64) -> Payload {
    let mut out = Out::new("getApiVersionResponse");
    out.val("majorNumber", API_VERSION.0);
    out.val("minorNumber", API_VERSION.1);
    out.val("revisionNumber", API_VERSION.2);
    out.text("serviceHostname", "koppel-sim-mplus");
    crate::clock::write_datetime(&mut out, "serverDateTime", now);
    out.bool("inDebugMode", false);
    out.bool("isSlaveApi", false);
    out.finish()
}

pub fn sync_markers(state: &State) -> Payload {
    let m = &state.markers;
    let mut out = Out::new("getCurrentSyncMarkersResponse");
    out.val("articleSyncMarker", m.article);
    out.val("articleGroupSyncMarker", m.article_group);
    out.val("relationSyncMarker", m.relation);
    out.val("employeeSyncMarker", m.employee);
    out.val("invoiceSyncMarker", m.invoice);
    out.val("receiptSyncMarker", m.receipt);
    out.val("orderSyncMarker", m.order);
    out.val("stockId", m.stock);
    out.finish()
}

/// `getVatGroupList`: the rate of every code for every branch and country (API-NOTES 6.6:
/// "per branch/country"; amounts are meaningless here). A Dutch till selling across the EU
/// holds the tables of the countries it delivers to, with the same codes at their rates.
pub fn vat_groups(state: &State) -> Payload {
    let mut out = Out::new("getVatGroupListResponse");
    for branch in &state.branches {
        for (country, iso3, table) in VAT_TABLES {
            for (code, pct) in table {
                out.open("vatGroup");
                out.val("branchNumber", branch.number);
                out.val("countryCode", country);
                out.val("countryIso3", iso3);
                out.val("vatCode", code);
                out.val("vatPercentage", pct);
                out.close("vatGroup");
            }
        }
    }
    out.finish()
}

pub fn turnover_groups(state: &State, op: &Element) -> Result<Payload, SoapFault> {
    let r = request_of(op);
    let _only_active = opt_bool(&r, "onlyActive")?;
    let mut out = Out::new("GetTurnoverGroupsResponse");
    out.open("turnoverGroupList");
    for g in &state.turnover_groups {
        out.open("turnoverGroup");
        out.val("turnoverGroupType", "TURNOVER-GROUP-TYPE-TURNOVER");
        out.val("turnoverGroup", g.number);
        out.text("turnoverGroupName", &g.name);
        out.val("defaultAccountNumber", g.account);
        out.val("accountNumber", g.account);
        out.bool("allowDiscount", true);
        out.val("defaultVatCode", g.vat_code);
        out.close("turnoverGroup");
    }
    out.close("turnoverGroupList");
    Ok(out.finish())
}

pub fn payment_methods(state: &State) -> Payload {
    let mut out = Out::new("GetPaymentMethodsResponse");
    out.open("paymentMethodList");
    for m in &state.payment_methods {
        out.open("paymentMethod");
        out.text("method", &m.method);
        out.text("description", &m.description);
        out.text("buttonText", &m.description);
        out.bool("allowNegativeAmount", m.method == "CONTANT");
        out.bool("active", true);
        out.val("type", m.kind);
        out.close("paymentMethod");
    }
    out.close("paymentMethodList");
    out.finish()
}

pub fn branches(state: &State) -> Payload {
    let mut out = Out::new("getBranchesResponse");
    out.open("branches");
    for b in &state.branches {
        out.open("branch");
        out.val("branchNumber", b.number);
        out.text("branchName", &b.name);
        out.text("abbreviation", &b.abbreviation);
        out.open("workplaces");
        for (number, name) in &b.workplaces {
            out.open("workplace");
            out.val("workplaceNumber", number);
            out.text("workplaceName", name);
            out.bool("isMobile", false);
            out.close("workplace");
        }
        out.close("workplaces");
        out.val("countryCode", NL.0);
        out.val("countryIso3", NL.1);
        out.text("countryName", NL.2);
        out.close("branch");
    }
    out.close("branches");
    out.finish()
}

fn write_employee(out: &mut Out, e: &Employee) {
    out.open("employee");
    out.val("employeeNumber", e.number);
    out.val("syncMarker", e.sync_marker);
    out.text("name", &e.name);
    out.text("email", &e.email);
    out.bool("active", e.active);
    out.close("employee");
}

pub fn employees(state: &State, limits: Limits, op: &Element) -> Result<Payload, SoapFault> {
    let r = request_of(op);
    let numbers = list_i64(&r, "employeeNumbers")?;
    let marker = opt_i64(&r, "syncMarker")?;
    let page = page_size(opt_i32(&r, "syncMarkerLimit")?, limits);
    let mut chosen: Vec<&Employee> = state
        .employees
        .iter()
        .filter(|e| numbers.is_empty() || numbers.contains(&e.number))
        .filter(|e| marker.is_none_or(|m| e.sync_marker as i64 >= m))
        .collect();
    chosen.sort_by_key(|e| e.sync_marker);
    chosen.truncate(page);
    let mut out = Out::new("GetEmployeesResponse");
    out.open("employeeList");
    for e in chosen {
        write_employee(&mut out, e);
    }
    out.close("employeeList");
    Ok(out.finish())
}

pub fn employee(state: &State, op: &Element) -> Result<Payload, SoapFault> {
    let number = req_i64(op, "employeeNumber")?;
    let mut out = Out::new("GetEmployeeResponse");
    match state.employee(number) {
        Some(e) => {
            out.val("result", "GET-EMPLOYEE-RESULT-OK");
            write_employee(&mut out, e);
        }
        None => out.val("result", "GET-EMPLOYEE-RESULT-NOT-FOUND"),
    }
    Ok(out.finish())
}
