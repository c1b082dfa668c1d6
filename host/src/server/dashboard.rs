//! The dashboard: server-rendered HTML pages with a little JavaScript for the buttons (no
//! build step). Pages read through the same functions as the API, scoped to the tenant of
//! the `koppel_token` cookie set at `/login`.

use std::fmt::Write;
use std::sync::Arc;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use serde_json::Value;

use super::api::{
    ActivityQuery, RecordsQuery, connection_views, exchange, flow_views, history, payload,
};
use super::auth::{ApiError, COOKIE, PageTenant};
use super::{ServerState, TenantState};
use crate::store::{Run, now_ms};

pub(super) fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/", get(overview))
        .route("/login", get(login_page).post(login))
        .route("/logout", get(logout))
        .route("/runs/{id}", get(run_page))
        .route("/records/{flow}/{key}", get(record_page))
        .route("/activity", get(activity_page))
        .route("/activity/{id}", get(exchange_page))
        .route("/failed", get(failed_page))
        .route("/connections", get(connections_page))
        .route("/assets/koppel.js", get(script))
}

const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// A path segment, percent-encoded.
fn seg(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// Text for HTML (content and attribute values).
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `2026-11-29 06:20:44` (UTC) from unix milliseconds.
fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

fn ago(ms: i64) -> String {
    let secs = ((now_ms() - ms) / 1000).max(0) as u64;
    crate::flow::engine::ago(std::time::Duration::from_secs(secs))
}

fn duration(secs: i64) -> String {
    match secs {
        ..120 => format!("{secs} s"),
        120..7200 => format!("{} min", secs / 60),
        7200..172_800 => format!("{} h", secs / 3600),
        _ => format!("{} days", secs / 86_400),
    }
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.2em;align-items:center}
header a{color:#cfd6e4;text-decoration:none}header a:hover{color:#fff}header b{margin-right:1em}
main{padding:1em 1.2em;max-width:1400px}
table{border-collapse:collapse;width:100%;background:#fff;margin:.5em 0 1.5em}
th,td{border-bottom:1px solid #e3e6ec;padding:.35em .6em;text-align:left;vertical-align:top}
th{background:#eef0f4;font-weight:600}
.succeeded,.created,.updated,.ok{color:#17803d}.failed,.bad{color:#b42318}.partial,.skipped{color:#a15c07}
.running{color:#175cd3}.interrupted,.unchanged{color:#667085}
pre{background:#fff;border:1px solid #e3e6ec;padding:.6em;overflow:auto;max-height:32em;margin:0;font-size:12px}
.sides{display:grid;grid-template-columns:1fr 1fr;gap:1em;margin-bottom:1.5em}
.sides h4{margin:.2em 0}
button{cursor:pointer}
.note{color:#667085}.incident{background:#fef3f2;border:1px solid #fecdca;padding:.5em .8em;margin:.4em 0;white-space:pre-wrap}
form.inline{display:inline}
"#;

fn page(tenant: &TenantState, title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{title} · koppel</title><style>{STYLE}</style></head><body>\
         <header><b>koppel</b><a href=\"/\">Overview</a><a href=\"/failed\">Failed records</a>\
         <a href=\"/activity\">Activity</a><a href=\"/connections\">Connections</a>\
         <span class=\"note\" style=\"margin-left:auto\">tenant {tenant}</span><a href=\"/logout\">Log out</a></header>\
         <main><h1>{title}</h1>{body}</main><script src=\"/assets/koppel.js\"></script></body></html>",
        title = esc(title),
        tenant = esc(&tenant.tenant),
    ))
}

fn error_page(error: ApiError) -> Response {
    (
        error.status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>koppel</title><style>{STYLE}</style></head>\
             <body><main><h1>{}</h1><p>{}</p><p><a href=\"/\">Overview</a></p></main></body></html>",
            error.status,
            esc(&error.message)
        )),
    )
        .into_response()
}

type PageResult = Result<Html<String>, Response>;

fn status_cell(status: &str) -> String {
    format!("<span class=\"{0}\">{0}</span>", esc(status))
}

fn run_row(run: &Run) -> String {
    let took = run
        .finished_at
        .map(|end| format!("{:.1} s", (end - run.started_at) as f64 / 1000.0))
        .unwrap_or_else(|| "running".into());
    format!(
        "<tr><td><a href=\"/runs/{id}\">#{id}</a></td><td>{flow}</td><td>{status}</td><td>{trigger}</td>\
         <td title=\"{at}\">{ago}</td><td>{took}</td><td>{read}</td><td>{created}</td><td>{updated}</td>\
         <td>{unchanged}</td><td>{skipped}</td><td>{failed}</td><td>{requests}</td><td class=\"bad\">{error}</td></tr>",
        id = run.id,
        flow = esc(&run.flow),
        status = status_cell(run.status.as_str()),
        trigger = esc(&run.trigger),
        at = time(run.started_at),
        ago = ago(run.started_at),
        read = run.read,
        created = run.created,
        updated = run.updated,
        unchanged = run.unchanged,
        skipped = run.skipped,
        failed = run.failed,
        requests = run.requests,
        error = esc(run.error.as_deref().unwrap_or("")),
    )
}

const RUN_HEAD: &str = "<tr><th>Run</th><th>Flow</th><th>Status</th><th>Trigger</th><th>Started</th><th>Took</th>\
    <th>Read</th><th>Created</th><th>Updated</th><th>Unchanged</th><th>Skipped</th><th>Failed</th><th>Requests</th><th>Error</th></tr>";

async fn overview(PageTenant(tenant): PageTenant) -> PageResult {
    let flows = flow_views(&tenant).await.map_err(error_page)?;
    let runs = tenant
        .store()
        .runs(&tenant.tenant, None, 20)
        .await
        .map_err(|e| error_page(e.into()))?;
    let mut body = String::new();
    let open: Vec<_> = flows.iter().flat_map(|f| f.incidents.iter()).collect();
    for incident in &open {
        let _ = write!(
            body,
            "<div class=\"incident\"><b>{}</b> since {} — {}</div>",
            esc(&incident.kind),
            ago(incident.opened_at),
            esc(&incident.message)
        );
    }
    body.push_str(
        "<h2>Flows</h2><table id=\"flows\"><tr><th>Flow</th><th>From → to</th><th>Enabled</th><th>Interval</th>\
         <th>Last run</th><th>Last success</th><th>Lag</th><th>Failures waiting</th><th></th></tr>",
    );
    for flow in &flows {
        let name = seg(&flow.name);
        let last_run = flow.last_run.as_ref().map_or_else(
            || "never".to_owned(),
            |r| {
                format!(
                    "<a href=\"/runs/{}\">#{}</a> {} {}",
                    r.id,
                    r.id,
                    status_cell(r.status.as_str()),
                    ago(r.started_at)
                )
            },
        );
        let last_success = flow.last_success.as_ref().map_or_else(
            || "never".to_owned(),
            |r| ago(r.finished_at.unwrap_or(r.started_at)),
        );
        let lag = flow.lag_secs.map_or_else(String::new, |l| {
            let class = if flow.stale { "bad" } else { "" };
            format!("<span class=\"{class}\">{}</span>", duration(l))
        });
        let failures = if flow.failed_waiting > 0 {
            format!(
                "<a class=\"bad\" href=\"/failed?flow={name}\">{}</a>",
                flow.failed_waiting
            )
        } else {
            "0".into()
        };
        let _ = write!(
            body,
            "<tr data-flow=\"{fname}\"><td><b>{fname}</b><div class=\"note\">{desc}</div></td>\
             <td>{src} → {dst}</td>\
             <td><label><input type=\"checkbox\" data-toggle=\"/api/v1/flows/{name}\" {checked}> enabled</label></td>\
             <td><form class=\"inline\" data-patch=\"/api/v1/flows/{name}\"><input name=\"interval\" size=\"5\" value=\"{interval}\">\
             <button>Set</button></form></td>\
             <td>{last_run}</td><td>{last_success}</td><td>{lag}</td><td>{failures}</td>\
             <td><button data-post=\"/api/v1/flows/{name}/run\" data-reload=\"1\">Run now</button></td></tr>",
            fname = esc(&flow.name),
            desc = esc(&flow.description),
            src = esc(&format!(
                "{}:{}",
                flow.source.connection, flow.source.stream
            )),
            dst = esc(&format!(
                "{}:{}",
                flow.target.connection, flow.target.stream
            )),
            checked = if flow.enabled { "checked" } else { "" },
            interval = esc(&duration_text(flow.interval_secs)),
        );
    }
    body.push_str("</table><h2>Latest runs</h2><table id=\"runs\">");
    body.push_str(RUN_HEAD);
    for run in &runs {
        body.push_str(&run_row(run));
    }
    body.push_str("</table>");
    Ok(page(&tenant, "Overview", &body))
}

fn duration_text(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

async fn run_page(
    PageTenant(tenant): PageTenant,
    Path(id): Path<i64>,
    Query(q): Query<RecordsQuery>,
) -> PageResult {
    let store = tenant.store();
    let run = store
        .run(&tenant.tenant, id)
        .await
        .map_err(|e| error_page(e.into()))?
        .ok_or_else(|| error_page(ApiError::not_found(format!("no run {id}"))))?;
    let filter = q.filter();
    let records = store
        .run_records_page(&tenant.tenant, id, &filter)
        .await
        .map_err(|e| error_page(e.into()))?;
    let mut body = format!("<table>{RUN_HEAD}{}</table>", run_row(&run));
    let outcome = filter.outcome.clone().unwrap_or_default();
    body.push_str(
        "<form method=\"get\">Outcome <select name=\"outcome\"><option value=\"\">any</option>",
    );
    for o in ["created", "updated", "unchanged", "skipped", "failed"] {
        let selected = if o == outcome { " selected" } else { "" };
        let _ = write!(body, "<option{selected}>{o}</option>");
    }
    let _ = write!(
        body,
        "</select> Key contains <input name=\"key\" value=\"{}\"> <button>Filter</button> \
         <a href=\"/activity?run={id}\">HTTP exchanges of this run</a></form>",
        esc(filter.key.as_deref().unwrap_or(""))
    );
    body.push_str("<table id=\"records\"><tr><th>Key</th><th>Outcome</th><th>Message</th><th>Field</th><th>Target id</th><th>At</th></tr>");
    for r in &records {
        let _ = write!(
            body,
            "<tr><td><a href=\"/records/{flow}/{key}\">{k}</a></td><td>{outcome}</td><td>{message}</td><td>{field}</td><td>{target}</td><td>{at}</td></tr>",
            flow = seg(&r.flow),
            key = seg(&r.key),
            k = esc(&r.key),
            outcome = status_cell(&r.outcome),
            message = esc(r.message.as_deref().unwrap_or("")),
            field = esc(r.field.as_deref().unwrap_or("")),
            target = esc(r.target_id.as_deref().unwrap_or("")),
            at = time(r.at),
        );
    }
    body.push_str("</table>");
    if records.len() as u32 == filter.limit {
        let _ = write!(
            body,
            "<p><a href=\"?outcome={}&key={}&offset={}\">More</a></p>",
            seg(&outcome),
            seg(filter.key.as_deref().unwrap_or("")),
            filter.offset + filter.limit
        );
    }
    Ok(page(&tenant, &format!("Run #{id} of {}", run.flow), &body))
}

fn pretty(value: &Value) -> String {
    match value {
        Value::Null => "(none)".into(),
        Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

async fn record_page(
    PageTenant(tenant): PageTenant,
    Path((flow, key)): Path<(String, String)>,
) -> PageResult {
    let found = history(&tenant, &flow, &key).await.map_err(error_page)?;
    let mut body = String::new();
    let entries = found["history"].as_array().cloned().unwrap_or_default();
    for entry in &entries {
        let run = entry["run_id"].as_i64().unwrap_or(0);
        let _ = write!(
            body,
            "<h3><a href=\"/runs/{run}\">Run #{run}</a> · {} · {}{}</h3>",
            status_cell(entry["outcome"].as_str().unwrap_or("")),
            time(entry["at"].as_i64().unwrap_or(0)),
            entry["message"]
                .as_str()
                .map(|m| format!(" · {}", esc(m)))
                .unwrap_or_default()
        );
        if entry["purged"].as_bool() == Some(true) {
            body.push_str(
                "<p class=\"note\">The payloads were deleted after the retention period.</p>",
            );
            continue;
        }
        let _ = write!(
            body,
            "<div class=\"sides\"><div><h4>Read from {src}</h4><pre class=\"source\">{read}</pre></div>\
             <div><h4>Written to {dst}</h4><pre class=\"target\">{written}</pre></div></div>",
            src = esc(&tenant
                .flow(&flow)
                .map(|f| f.source.connection.clone())
                .unwrap_or_default()),
            dst = esc(&tenant
                .flow(&flow)
                .map(|f| f.target.connection.clone())
                .unwrap_or_default()),
            read = esc(&pretty(&entry["source"])),
            written = esc(&pretty(&entry["target"])),
        );
        let sent = entry["sent_in"].as_array().cloned().unwrap_or_default();
        if !sent.is_empty() {
            body.push_str("<p class=\"sent\">Requests of this run that carried it: ");
            for (i, exchange) in sent.iter().enumerate() {
                let _ = write!(
                    body,
                    "{sep}<a href=\"/activity/{id}\">{method} {url} → {status}</a>",
                    sep = if i == 0 { "" } else { ", " },
                    id = exchange["activity_id"].as_i64().unwrap_or(0),
                    method = esc(exchange["method"].as_str().unwrap_or("")),
                    url = esc(exchange["url"].as_str().unwrap_or("")),
                    status = exchange["status"]
                        .as_i64()
                        .map_or_else(|| "no answer".to_owned(), |s| s.to_string()),
                );
            }
            body.push_str(" (open one for the exact body sent)</p>");
        }
    }
    Ok(page(&tenant, &format!("{key} in {flow}"), &body))
}

async fn activity_page(
    PageTenant(tenant): PageTenant,
    Query(q): Query<ActivityQuery>,
) -> PageResult {
    let filter = q.filter();
    let rows = tenant
        .store()
        .activity_page(&tenant.tenant, &filter)
        .await
        .map_err(|e| error_page(e.into()))?;
    let mut body = String::from(
        "<form method=\"get\">Run <input name=\"run\" size=\"6\"> Connection <input name=\"connection\" size=\"10\"> \
         <label><input type=\"checkbox\" name=\"errors\" value=\"true\"> errors only</label> <button>Filter</button></form>\
         <table id=\"activity\"><tr><th>At</th><th>Run</th><th>Connection</th><th>Method</th><th>URL</th><th>Status</th><th>Took</th><th>Bytes out/in</th></tr>",
    );
    for r in &rows {
        let status = match (r.status, &r.error) {
            (Some(s), _) if s < 400 => format!("<span class=\"ok\">{s}</span>"),
            (Some(s), _) => format!("<span class=\"bad\">{s}</span>"),
            (None, error) => format!(
                "<span class=\"bad\">{}</span>",
                esc(error.as_deref().unwrap_or("no answer"))
            ),
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"/activity/{id}\">{at}</a></td><td>{run}</td><td>{conn} ({connector})</td><td>{method}</td>\
             <td>{url}</td><td>{status}</td><td>{ms} ms</td><td>{out}/{inb}</td></tr>",
            id = r.id,
            at = time(r.at),
            run = r
                .run_id
                .map(|id| format!("<a href=\"/runs/{id}\">#{id}</a>"))
                .unwrap_or_default(),
            conn = esc(&r.connection),
            connector = esc(&r.connector),
            method = esc(&r.method),
            url = esc(&tenant.masker.url(&r.url)),
            ms = r.duration_ms,
            out = r.request_bytes,
            inb = r.response_bytes,
        );
    }
    body.push_str("</table>");
    if let Some(last) = rows.last()
        && rows.len() as u32 == filter.limit
    {
        let mut more = format!("?before={}", last.id);
        if let Some(run) = filter.run_id {
            let _ = write!(more, "&run={run}");
        }
        if let Some(c) = &filter.connection {
            let _ = write!(more, "&connection={}", seg(c));
        }
        if filter.errors_only {
            more.push_str("&errors=true");
        }
        let _ = write!(body, "<p><a href=\"{more}\">Older</a></p>");
    }
    Ok(page(&tenant, "Activity", &body))
}

fn headers_text(json: Option<&str>) -> String {
    let Some(json) = json else {
        return "(deleted)".into();
    };
    match serde_json::from_str::<Vec<(String, String)>>(json) {
        Ok(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(_) => json.to_owned(),
    }
}

fn body_text(body: Option<&str>) -> String {
    match body {
        None => "(deleted after the retention period)".into(),
        Some("") => "(empty)".into(),
        Some(text) => pretty(&payload(Some(text))),
    }
}

async fn exchange_page(PageTenant(tenant): PageTenant, Path(id): Path<i64>) -> PageResult {
    let row = exchange(&tenant, id).await.map_err(error_page)?;
    let body = format!(
        "<p>{method} {url}<br>Status {status} · {ms} ms · attempt {attempt} · {at} · {conn} ({connector}){run}</p>{error}\
         <div class=\"sides\"><div><h4>Request</h4><pre>{reqh}</pre><pre class=\"request\">{reqb}</pre></div>\
         <div><h4>Response</h4><pre>{resh}</pre><pre class=\"response\">{resb}</pre></div></div>",
        method = esc(&row.method),
        url = esc(&row.url),
        status = row.status.map_or_else(|| "none".into(), |s| s.to_string()),
        ms = row.duration_ms,
        attempt = row.attempt,
        at = time(row.at),
        conn = esc(&row.connection),
        connector = esc(&row.connector),
        run = row
            .run_id
            .map(|id| format!(" · <a href=\"/runs/{id}\">run #{id}</a>"))
            .unwrap_or_default(),
        error = row
            .error
            .as_deref()
            .map(|e| format!("<p class=\"bad\">{}</p>", esc(e)))
            .unwrap_or_default(),
        reqh = esc(&headers_text(row.request_headers.as_deref())),
        reqb = esc(&body_text(row.request_body.as_deref())),
        resh = esc(&headers_text(row.response_headers.as_deref())),
        resb = esc(&body_text(row.response_body.as_deref())),
    );
    Ok(page(&tenant, &format!("Exchange #{id}"), &body))
}

#[derive(Debug, Deserialize)]
struct FailedPageQuery {
    flow: Option<String>,
}

async fn failed_page(
    PageTenant(tenant): PageTenant,
    Query(q): Query<FailedPageQuery>,
) -> PageResult {
    let rows = tenant
        .store()
        .failed_records(
            &tenant.tenant,
            q.flow.as_deref().filter(|f| !f.is_empty()),
            true,
        )
        .await
        .map_err(|e| error_page(e.into()))?;
    let mut body = String::from(
        "<p class=\"note\">Failed records are tried again at the start of every run of their flow, \
         up to the flow's max_attempts. Retry puts one back with a fresh count and runs its flow now.</p>\
         <table id=\"failed\"><tr><th>Flow</th><th>Key</th><th>Error</th><th>Stage</th><th>Attempts</th><th>First failed</th><th>Last failed</th><th></th></tr>",
    );
    for r in &rows {
        let url = format!("/api/v1/failed/{}/{}", seg(&r.flow), seg(&r.key));
        let dismissed = if r.dismissed {
            "<span class=\"note\">dismissed</span> ".to_owned()
        } else {
            format!("<button data-post=\"{url}/dismiss\" data-reload=\"1\">Dismiss</button> ")
        };
        let _ = write!(
            body,
            "<tr data-key=\"{k}\"><td>{flow}</td><td><a href=\"/records/{fseg}/{kseg}\">{k}</a></td><td class=\"bad\">{error}{field}</td>\
             <td>{stage}</td><td>{attempts}</td><td>{first}</td><td>{last}</td>\
             <td>{dismissed}<button data-post=\"{url}/retry\" data-reload=\"1\">Retry</button></td></tr>",
            flow = esc(&r.flow),
            fseg = seg(&r.flow),
            kseg = seg(&r.key),
            k = esc(&r.key),
            error = esc(&r.error),
            field = r
                .field
                .as_deref()
                .map(|f| format!(" (field <code>{}</code>)", esc(f)))
                .unwrap_or_default(),
            stage = esc(&r.stage),
            attempts = r.attempts,
            first = time(r.first_failed_at),
            last = time(r.last_failed_at),
        );
    }
    body.push_str("</table>");
    if rows.is_empty() {
        body.push_str("<p>No failed records.</p>");
    }
    Ok(page(&tenant, "Failed records", &body))
}

async fn connections_page(PageTenant(tenant): PageTenant) -> PageResult {
    let mut body = String::from(
        "<table id=\"connections\"><tr><th>Connection</th><th>Connector</th><th>Config</th><th></th></tr>",
    );
    for (i, c) in connection_views(&tenant).iter().enumerate() {
        let config: Vec<String> = c
            .config
            .iter()
            .map(|(k, v)| {
                let shown = match v {
                    Value::Null => "<span class=\"note\">(default)</span>".to_owned(),
                    Value::String(s) => esc(s),
                    other => esc(&other.to_string()),
                };
                format!("<code>{}</code> = {shown}", esc(k))
            })
            .collect();
        let _ = write!(
            body,
            "<tr><td><b>{name}</b></td><td>{connector} {version}</td><td>{config}</td>\
             <td><button data-post=\"/api/v1/connections/{seg}/check\" data-out=\"check-{i}\">Test connection</button> \
             <span id=\"check-{i}\"></span></td></tr>",
            name = esc(&c.name),
            connector = esc(&c.connector),
            version = esc(&c.version),
            config = config.join("<br>"),
            seg = seg(&c.name),
        );
    }
    body.push_str(
        "</table><p class=\"note\">Secrets show as &lt;set&gt; or &lt;not set&gt;, never their value. \
         To change a connection, edit koppel.toml (or run <code>koppel init</code>) and restart.</p>",
    );
    Ok(page(&tenant, "Connections", &body))
}

const LOGIN: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in · koppel</title>\
    <style>STYLE</style></head><body><main><h1>koppel</h1><form method=\"post\" action=\"/login\">\
    <p>API token <input type=\"password\" name=\"token\" size=\"56\" autofocus> <button>Log in</button></p>MESSAGE\
    <p class=\"note\">The token was printed when koppel first started, or is set in koppel.toml under [server] tokens.</p>\
    </form></main></body></html>";

async fn login_page() -> Html<String> {
    Html(LOGIN.replace("STYLE", STYLE).replace("MESSAGE", ""))
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(state): State<Arc<ServerState>>, Form(form): Form<LoginForm>) -> Response {
    let token = form.token.trim();
    if state.tenant_of_token(token).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            Html(
                LOGIN
                    .replace("STYLE", STYLE)
                    .replace("MESSAGE", "<p class=\"bad\">That token is not valid.</p>"),
            ),
        )
            .into_response();
    }
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000");
    let mut response = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

async fn logout() -> Response {
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("koppel_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    response
}

const SCRIPT: &str = r#"// koppel dashboard: buttons call the API with the session cookie.
async function koppelCall(url, method, body) {
  const response = await fetch(url, {
    method: method || 'POST',
    credentials: 'same-origin',
    headers: { 'x-koppel-csrf': '1', 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) { alert(data.error || ('HTTP ' + response.status)); return null; }
  return data;
}
document.addEventListener('click', async (event) => {
  const button = event.target.closest('[data-post]');
  if (!button) return;
  event.preventDefault();
  button.disabled = true;
  const out = button.dataset.out && document.getElementById(button.dataset.out);
  if (out) out.textContent = 'testing…';
  const data = await koppelCall(button.dataset.post, 'POST');
  if (out) {
    out.textContent = !data ? 'error' : data.ok === false ? ('Failed: ' + data.error)
      : data.ok === true ? ('OK (' + data.duration_ms + ' ms)') : 'done';
    out.className = data && data.ok !== false ? 'ok' : 'bad';
  }
  if (data && button.dataset.reload) location.reload(); else button.disabled = false;
});
document.addEventListener('change', async (event) => {
  const box = event.target.closest('[data-toggle]');
  if (!box) return;
  const data = await koppelCall(box.dataset.toggle, 'PATCH', { enabled: box.checked });
  if (!data) box.checked = !box.checked;
});
document.addEventListener('submit', async (event) => {
  const form = event.target.closest('form[data-patch]');
  if (!form) return;
  event.preventDefault();
  const value = form.elements.interval.value.trim();
  const data = await koppelCall(form.dataset.patch, 'PATCH', { interval: value === '' ? null : value });
  if (data) location.reload();
});
"#;

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_escapes() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        assert_eq!(time(1_767_225_600_000), "2026-01-01 00:00:00");
        assert_eq!(time(951_782_400_000 + 3_723_000), "2000-02-29 01:02:03");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(seg("SKU/1 a"), "SKU%2F1%20a");
        assert_eq!(duration_text(900), "15m");
    }
}
