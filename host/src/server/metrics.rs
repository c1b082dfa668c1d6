//! `/metrics` in the Prometheus text format (0.0.4), for the token's tenant: runs by flow and
//! status, records by outcome, HTTP exchanges by connector and status, failed records
//! waiting, open incidents, and each flow's lag since its last success.

use std::fmt::Write;
use std::sync::Arc;

use axum::http::header;
use axum::response::IntoResponse;

use super::api::flow_views;
use super::auth::{ApiError, Tenant};

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
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    ))
}
