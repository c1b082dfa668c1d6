//! Reference data the flows' mappings refer to, as readable streams of reference entries:
//! `vat-groups` (code → rate, the order branch's own country), `turnover-groups`, `payment-methods`, `branches`,
//! `employees`. The first four are small snapshots, read whole (state: an offset while a page
//! is cut, then none, so the next read starts over); employees page by their sync marker.

use koppel_sdk::{NamedValue, Page, Record, ReferenceEntry, Result, Value};

use crate::connector::{Mplus, marker_state, page_size};
use crate::ops;
use crate::soap::Transport;
use crate::wire::{
    BranchesResponse, GetEmployeesResponse, GetPaymentMethodsResponse, GetTurnoverGroupsResponse,
};

pub const STREAMS: [(&str, &str); 5] = [
    (
        "vat-groups",
        "VAT codes and their rates in the order branch (getVatGroupList).",
    ),
    (
        "turnover-groups",
        "Turnover (revenue) groups with their ledger accounts.",
    ),
    (
        "payment-methods",
        "Payment method codes for `payment_methods`.",
    ),
    ("branches", "Branches and their workplaces."),
    (
        "employees",
        "Employees (the order employee must be one of them).",
    ),
];

fn entry(key: impl ToString, name: impl Into<String>, fields: Vec<NamedValue>) -> Record {
    Record::Reference(ReferenceEntry {
        key: key.to_string(),
        name: name.into(),
        fields,
    })
}

fn opt_int(fields: &mut Vec<NamedValue>, name: &str, value: Option<i64>) {
    if let Some(v) = value {
        fields.push(NamedValue::integer(name, v));
    }
}

fn opt_text(fields: &mut Vec<NamedValue>, name: &str, value: Option<&str>) {
    if let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) {
        fields.push(NamedValue::text(name, v));
    }
}

pub fn read<T: Transport>(
    m: &mut Mplus<T>,
    stream: &str,
    state: Option<&str>,
    limit: u32,
) -> Result<Page> {
    if stream == "employees" {
        return employees(m, state, limit);
    }
    let records = match stream {
        "vat-groups" => {
            let tables = m.vat_tables()?;
            let mut table: Vec<_> = tables.own.into_iter().collect();
            table.sort_by_key(|(code, _)| *code);
            let branch = m.config.branch;
            table
                .into_iter()
                .map(|(code, rate)| {
                    let mut fields = vec![
                        NamedValue::integer("vat_code", i64::from(code)),
                        NamedValue {
                            name: "rate".into(),
                            value: Value::Number(rate),
                        },
                        NamedValue::integer("branch_number", i64::from(branch)),
                    ];
                    if let Some(country) = &tables.own_country {
                        fields.push(NamedValue::text("country_iso3", country.clone()));
                    }
                    entry(code, format!("{rate}%"), fields)
                })
                .collect()
        }
        "turnover-groups" => {
            let answer: GetTurnoverGroupsResponse =
                m.client.call(ops::get_turnover_groups(), true)?;
            answer
                .turnover_group_list
                .turnover_group
                .into_iter()
                .map(|g| {
                    let mut fields = Vec::new();
                    opt_text(&mut fields, "type", g.turnover_group_type.as_deref());
                    opt_int(&mut fields, "account_number", g.account_number);
                    opt_int(
                        &mut fields,
                        "default_vat_code",
                        g.default_vat_code.map(i64::from),
                    );
                    entry(g.turnover_group, g.turnover_group_name, fields)
                })
                .collect()
        }
        "payment-methods" => {
            let answer: GetPaymentMethodsResponse =
                m.client.call(ops::get_payment_methods(), true)?;
            answer
                .payment_method_list
                .payment_method
                .into_iter()
                .map(|p| {
                    let mut fields = Vec::new();
                    opt_text(&mut fields, "type", p.kind.as_deref());
                    if let Some(active) = p.active {
                        fields.push(NamedValue::boolean("active", active));
                    }
                    if let Some(negative) = p.allow_negative_amount {
                        fields.push(NamedValue::boolean("allow_negative_amount", negative));
                    }
                    entry(p.method, p.description, fields)
                })
                .collect()
        }
        "branches" => {
            let answer: BranchesResponse = m.client.call(ops::get_branches(), true)?;
            answer
                .branches
                .branch
                .into_iter()
                .map(|b| {
                    let mut fields = Vec::new();
                    opt_text(&mut fields, "abbreviation", b.abbreviation.as_deref());
                    opt_text(&mut fields, "ext_branch_id", b.ext_branch_id.as_deref());
                    opt_text(&mut fields, "country_iso3", b.country_iso3.as_deref());
                    let workplaces: Vec<serde_json::Value> = b
                        .workplaces
                        .workplace
                        .iter()
                        .map(|w| {
                            serde_json::json!({"number": w.workplace_number, "name": w.workplace_name})
                        })
                        .collect();
                    fields.push(NamedValue {
                        name: "workplaces".into(),
                        value: Value::Json(serde_json::Value::Array(workplaces).to_string()),
                    });
                    entry(b.branch_number, b.branch_name, fields)
                })
                .collect()
        }
        other => {
            return Err(koppel_sdk::ConnectorError::unsupported(format!(
                "mplus has no readable stream {other:?}"
            )));
        }
    };
    snapshot_page(stream, records, state, limit)
}

/// A page of a snapshot: from the offset in `state`, at most `limit` entries.
pub(crate) fn snapshot_page(
    stream: &str,
    records: Vec<Record>,
    state: Option<&str>,
    limit: u32,
) -> Result<Page> {
    let offset = usize::try_from(marker_state(stream, state)?.max(0)).unwrap_or(usize::MAX);
    let end = offset
        .saturating_add(limit.max(1) as usize)
        .min(records.len());
    let more = end < records.len();
    Ok(Page {
        records: records
            .into_iter()
            .skip(offset)
            .take(end.saturating_sub(offset))
            .collect(),
        state: more.then(|| end.to_string()),
        has_more: more,
    })
}

fn employees<T: Transport>(m: &mut Mplus<T>, state: Option<&str>, limit: u32) -> Result<Page> {
    let from = marker_state("employees", state)?;
    let want = page_size(limit);
    let answer: GetEmployeesResponse = m.client.call(ops::get_employees_since(from, want), true)?;
    let employees = answer.employee_list.employee;
    let highest = employees.iter().filter_map(|e| e.sync_marker).max();
    Ok(Page {
        has_more: employees.len() >= want as usize && highest.is_some(),
        records: employees
            .into_iter()
            .filter_map(|e| {
                let number = e.employee_number?;
                let mut fields = Vec::new();
                opt_text(&mut fields, "email", e.email.as_deref());
                opt_text(&mut fields, "ext_employee_id", e.ext_employee_id.as_deref());
                if let Some(active) = e.active {
                    fields.push(NamedValue::boolean("active", active));
                }
                Some(entry(number, e.name.unwrap_or_default(), fields))
            })
            .collect(),
        state: Some(highest.map_or(from, |h| (h + 1).max(from)).to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<Record> {
        (0..n).map(|i| entry(i, "x", Vec::new())).collect()
    }

    #[test]
    fn snapshots_page_by_offset_and_start_over() {
        let first = snapshot_page("branches", entries(5), None, 2).expect("page");
        assert_eq!(
            (first.records.len(), first.state.as_deref(), first.has_more),
            (2, Some("2"), true)
        );
        let last = snapshot_page("branches", entries(5), Some("4"), 2).expect("page");
        assert_eq!(
            (last.records.len(), last.state, last.has_more),
            (1, None, false)
        );
        let all = snapshot_page("branches", entries(3), None, 100).expect("page");
        assert_eq!((all.records.len(), all.has_more), (3, false));
    }
}
