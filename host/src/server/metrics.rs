//! `/metrics` in the Prometheus text format (0.0.4), for the token's tenant: runs by flow and
//! status, records by outcome, HTTP exchanges by connector and status, failed records
//! waiting, open incidents, and each flow's lag since its last success.

use std::fmt::Write;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;

use super::api::flow_views;
use super::auth::{ApiError, Tenant};
use crate::runtime::{Quota, TenantQuota};

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `koppel_tenant_quota_*`: each quota's limit and what is used of it now (the quotas set),
/// and how often the tenant waited or was stopped at each.
fn quota_metrics(out: &mut String, t: &str, quota: &TenantQuota) {
    let unit = |q: Quota| match q {
        Quota::Memory | Quota::BytesOut | Quota::BytesIn => "bytes",
        Quota::Cpu | Quota::CpuShare => "milliseconds",
        _ => "count",
    };
    family(
        out,
        "koppel_tenant_quota_limit",
        "gauge",
        "The tenant's quota (memory and bytes in bytes, cpu in milliseconds per hour, cpu_share in milliseconds per second, requests per minute), for the quotas set.",
    );
    for q in Quota::ALL {
        if let Some(limit) = quota.limit(q) {
            let _ = writeln!(
                out,
                "koppel_tenant_quota_limit{{tenant=\"{t}\",quota=\"{}\",unit=\"{}\"}} {limit}",
                q.name(),
                unit(q)
            );
        }
    }
    family(
        out,
        "koppel_tenant_quota_used",
        "gauge",
        "What the tenant uses now of each quota set, in its window (the minute, the hour).",
    );
    for q in Quota::ALL {
        if quota.limit(q).is_some() && q != Quota::ActivityRows {
            let _ = writeln!(
                out,
                "koppel_tenant_quota_used{{tenant=\"{t}\",quota=\"{}\",unit=\"{}\"}} {}",
                q.name(),
                unit(q),
                quota.used(q)
            );
        }
    }
    family(
        out,
        "koppel_tenant_quota_hits_total",
        "counter",
        "Times the tenant waited (concurrent_runs, requests) or was stopped (memory, cpu, bytes) at a quota, or had activity rows deleted beyond it, since koppel started.",
    );
    for q in Quota::ALL {
        let _ = writeln!(
            out,
            "koppel_tenant_quota_hits_total{{tenant=\"{t}\",quota=\"{}\"}} {}",
            q.name(),
            quota.hits(q)
        );
    }
}

pub(super) async fn metrics(Tenant(tenant): Tenant) -> Result<impl IntoResponse, ApiError> {
    let tenant: Arc<_> = tenant;
    let t = label(&tenant.tenant);
    let totals = tenant.store().totals(&tenant.tenant).await?;
    let flows = flow_views(&tenant).await?;
    let mut out = String::with_capacity(4096);

    family(
        &mut out,
        "koppel_runs_total",
        "counter",
        "Runs by flow and status.",
    );
    for (flow, status, n) in &totals.runs {
        let _ = writeln!(
            out,
            "koppel_runs_total{{tenant=\"{t}\",flow=\"{}\",status=\"{}\"}} {n}",
            label(flow),
            label(status)
        );
    }
    family(
        &mut out,
        "koppel_records_total",
        "counter",
        "Records by flow and outcome.",
    );
    for (flow, outcome, n) in &totals.records {
        let _ = writeln!(
            out,
            "koppel_records_total{{tenant=\"{t}\",flow=\"{}\",outcome=\"{}\"}} {n}",
            label(flow),
            label(outcome)
        );
    }
    family(
        &mut out,
        "koppel_http_exchanges_total",
        "counter",
        "HTTP exchanges of connectors by connector and status (\"none\": no answer).",
    );
    for (connector, status, n) in &totals.exchanges {
        let _ = writeln!(
            out,
            "koppel_http_exchanges_total{{tenant=\"{t}\",connector=\"{}\",status=\"{}\"}} {n}",
            label(connector),
            label(status)
        );
    }
    family(
        &mut out,
        "koppel_failed_records",
        "gauge",
        "Failed records waiting for a retry, by flow.",
    );
    for view in &flows {
        let _ = writeln!(
            out,
            "koppel_failed_records{{tenant=\"{t}\",flow=\"{}\"}} {}",
            label(&view.name),
            view.failed_waiting
        );
    }
    family(
        &mut out,
        "koppel_run_lag_seconds",
        "gauge",
        "Seconds since the flow last succeeded (since its first run when it never did).",
    );
    for view in &flows {
        if let Some(lag) = view.lag_secs {
            let _ = writeln!(
                out,
                "koppel_run_lag_seconds{{tenant=\"{t}\",flow=\"{}\"}} {lag}",
                label(&view.name)
            );
        }
    }
    family(
        &mut out,
        "koppel_flow_enabled",
        "gauge",
        "1 when the flow is enabled.",
    );
    for view in &flows {
        let _ = writeln!(
            out,
            "koppel_flow_enabled{{tenant=\"{t}\",flow=\"{}\"}} {}",
            label(&view.name),
            u8::from(view.enabled)
        );
    }
    family(
        &mut out,
        "koppel_incidents_open",
        "gauge",
        "Open incidents by flow.",
    );
    for view in &flows {
        let _ = writeln!(
            out,
            "koppel_incidents_open{{tenant=\"{t}\",flow=\"{}\"}} {}",
            label(&view.name),
            view.incidents.len()
        );
    }
    quota_metrics(&mut out, &t, &tenant.env.quota);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
