//! The `http-send` host import and its policy: the allow-list (deny by default; scheme, host
//! and port must match), size caps, timeouts, bounded retries with back-off honouring
//! `Retry-After` for retry-safe requests (and for any request answered 429, which the server
//! did not handle), and a redacted record of every exchange.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderName, HeaderValue};

use super::activity::Exchange;
use super::bindings::{HttpError, HttpRequest, HttpResponse, Method};
use super::config::ConnectionConfig;
use super::host::CallContext;
use super::quota::{Admission, Quota};

/// Scheme, host and port a connection may talk to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl Origin {
    fn of(url: &url::Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_owned(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

/// The origins a connection may reach, built from the manifest's host templates filled with
/// the connection's config. Empty means no network at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    origins: Vec<Origin>,
}

impl AllowList {
    /// Fills `{name}` placeholders from `config`. A template whose placeholder has no value
    /// allows nothing; a value without a scheme means https.
    pub fn from_templates(templates: &[String], config: &ConnectionConfig) -> AllowList {
        let mut origins = Vec::new();
        for template in templates {
            let Some(filled) = fill(template, |name| config.get(name).map(str::to_owned)) else {
                tracing::debug!(
                    template,
                    "Host template has an unset placeholder; it allows nothing."
                );
                continue;
            };
            let with_scheme = if filled.contains("://") {
                filled
            } else {
                format!("https://{filled}")
            };
            match url::Url::parse(&with_scheme)
                .ok()
                .as_ref()
                .and_then(Origin::of)
            {
                Some(origin) if matches!(origin.scheme.as_str(), "http" | "https") => {
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
                _ => tracing::warn!(
                    template,
                    "Host template does not give an http(s) origin; it allows nothing."
                ),
            }
        }
        AllowList { origins }
    }

    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// Ok when `url`'s origin is allowed; otherwise the origin that was refused.
    pub fn check(&self, url: &url::Url) -> Result<(), String> {
        let origin = Origin::of(url)
            .ok_or_else(|| url.as_str().split('?').next().unwrap_or("").to_owned())?;
        if self.origins.contains(&origin) {
            Ok(())
        } else {
            Err(origin.to_string())
        }
    }
}

/// Replaces `{name}` by `lookup(name)`; None when a placeholder has no value.
pub fn fill(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let value = lookup(&rest[start + 1..end]).filter(|v| !v.is_empty())?;
        out.push_str(value.trim_end_matches('/'));
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The names of the placeholders in a template.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        names.push(&rest[start + 1..start + end]);
        rest = &rest[start + end + 1..];
    }
    names
}

fn method_of(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Head => reqwest::Method::HEAD,
    }
}

/// Statuses a retry-safe request is repeated on (with `Retry-After`, or back-off).
const RETRY_STATUSES: [u16; 4] = [429, 502, 503, 504];

/// Whether an answer with `status` is worth sending the request again (at most
/// `http_retries` more times): a retry-safe request on any of [`RETRY_STATUSES`]; any
/// request on a 429, because a 429 says the server did not handle it (RFC 6585 §4), so even
/// a write is not done twice. A 503 or a gateway error may come after a write was done, so a
/// request that is not retry-safe gets that answer.
fn may_repeat(request: &HttpRequest, status: u16, attempt: u32, retries: u32) -> bool {
    attempt <= retries && (status == 429 || request.retry_safe && RETRY_STATUSES.contains(&status))
}

/// Waits until the tenant's quotas let one more request of `bytes_out` go, or says why it
/// may not: past its bytes per hour, or when the minute's requests are spent and the next
/// minute starts after `deadline` (the call's own limit).
async fn admit(ctx: &CallContext, bytes_out: u64, deadline: Instant) -> Result<(), HttpError> {
    loop {
        let now = Instant::now();
        match ctx.quota.admit_request(bytes_out, now) {
            Admission::Go => return Ok(()),
            Admission::Wait(wait) => {
                ctx.quota.hit(Quota::Requests);
                if now + wait >= deadline {
                    return Err(HttpError::Connection(format!(
                        "koppel refused the request: {}",
                        ctx.quota.requests_message(wait)
                    )));
                }
                tracing::info!(
                    tenant = %ctx.tenant, connection = %ctx.connection, wait_ms = wait.as_millis() as u64,
                    "The tenant's requests per minute are spent; the request waits."
                );
                tokio::time::sleep(wait).await;
            }
            Admission::Refused(quota, why) => {
                ctx.quota.hit(quota);
                return Err(HttpError::Connection(format!(
                    "koppel refused the request: {why}"
                )));
            }
        }
    }
}

/// Sends one request for a guest under its connection's policy and its tenant's quotas;
/// `deadline` is when the guest's call must end.
pub(crate) async fn send(
    ctx: &CallContext,
    request: HttpRequest,
    deadline: Instant,
) -> Result<HttpResponse, HttpError> {
    let url = url::Url::parse(&request.url)
        .map_err(|error| HttpError::InvalidRequest(format!("not a URL ({error})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpError::InvalidRequest(format!(
            "scheme `{}` is not allowed; use http or https",
            url.scheme()
        )));
    }
    if let Err(origin) = ctx.allow.check(&url) {
        tracing::warn!(
            tenant = %ctx.tenant, connection = %ctx.connection, host = %origin,
            "Refused a request to a host outside the allow-list."
        );
        return Err(HttpError::Denied(origin));
    }
    if let Err(why) = ctx.network.check(&url).await {
        tracing::warn!(
            tenant = %ctx.tenant, connection = %ctx.connection, host = url.host_str().unwrap_or(""),
            reason = %why, "Refused a request to an address that is not public."
        );
        return Err(HttpError::Connection(format!(
            "koppel refused the connection for tenant `{}`: {why} (an operator may allow the host in [hosting] allow_private_hosts)",
            ctx.tenant
        )));
    }
    let limits = &ctx.limits;
    if request.body.len() > limits.max_request_bytes {
        return Err(HttpError::TooLarge(limits.max_request_bytes as u64));
    }
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &request.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| HttpError::InvalidRequest(format!("invalid value for header `{name}`")))?;
        headers.append(name, value);
    }
    let timeout = request
        .timeout_ms
        .map(|ms| Duration::from_millis(u64::from(ms)))
        .unwrap_or(limits.http_timeout)
        .min(limits.http_timeout_max);
    let method = method_of(request.method);
    let shown_url = ctx.redactor.url(&request.url);
    let shown_request_headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), ctx.redactor.header(k, v)))
        .collect();
    let shown_request_body = ctx.redactor.body(&request.body, limits.activity_body_bytes);

    let mut attempt = 0u32;
    loop {
        attempt += 1;
        admit(ctx, request.body.len() as u64, deadline).await?;
        let started = Instant::now();
        let at = SystemTime::now();
        let outcome = exchange(
            ctx,
            method.clone(),
            url.clone(),
            headers.clone(),
            request.body.clone(),
            timeout,
        )
        .await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let mut record = Exchange {
            tenant: ctx.tenant.clone(),
            connection: ctx.connection.clone(),
            connector: ctx.connector.clone(),
            method: method.to_string(),
            url: shown_url.clone(),
            status: None,
            error: None,
            duration_ms,
            attempt,
            request_headers: shown_request_headers.clone(),
            request_body: shown_request_body.clone(),
            response_headers: Vec::new(),
            response_body: String::new(),
            request_bytes: request.body.len() as u64,
            response_bytes: 0,
            at,
        };
        let retryable_now = request.retry_safe && attempt <= limits.http_retries;
        match outcome {
            Ok(response) => {
                ctx.quota
                    .received(response.body.len() as u64, Instant::now());
                record.status = Some(response.status);
                record.response_headers = response
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), ctx.redactor.header(k, v)))
                    .collect();
                record.response_body = ctx
                    .redactor
                    .body(&response.body, limits.activity_body_bytes);
                record.response_bytes = response.body.len() as u64;
                tracing::debug!(
                    tenant = %ctx.tenant, connection = %ctx.connection, method = %record.method,
                    url = %record.url, status = response.status, duration_ms, attempt, "HTTP exchange."
                );
                ctx.activity.record(record);
                if may_repeat(&request, response.status, attempt, limits.http_retries) {
                    let wait = retry_after(&response.headers)
                        .unwrap_or_else(|| backoff(limits.retry_backoff, attempt));
                    if wait <= limits.retry_wait_max {
                        tracing::info!(
                            connection = %ctx.connection, status = response.status, wait_ms = wait.as_millis() as u64,
                            attempt, "Retrying after a temporary refusal."
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                }
                return Ok(response);
            }
            Err(failure) => {
                record.error = Some(failure.describe());
                tracing::debug!(
                    tenant = %ctx.tenant, connection = %ctx.connection, method = %record.method,
                    url = %record.url, error = %failure.describe(), duration_ms, attempt, "HTTP exchange failed."
                );
                ctx.activity.record(record);
                if retryable_now && !matches!(failure, Failure::TooLarge(_)) {
                    tokio::time::sleep(backoff(limits.retry_backoff, attempt)).await;
                    continue;
                }
                return Err(failure.into_http_error());
            }
        }
    }
}

enum Failure {
    Timeout,
    Connection(String),
    TooLarge(u64),
}

impl Failure {
    fn describe(&self) -> String {
        match self {
            Failure::Timeout => "no answer in time".to_owned(),
            Failure::Connection(message) => message.clone(),
            Failure::TooLarge(limit) => format!("response larger than {limit} bytes"),
        }
    }

    fn into_http_error(self) -> HttpError {
        match self {
            Failure::Timeout => HttpError::Timeout,
            Failure::Connection(message) => HttpError::Connection(message),
            Failure::TooLarge(limit) => HttpError::TooLarge(limit),
        }
    }
}

fn failure_of(ctx: &CallContext, error: reqwest::Error) -> Failure {
    if error.is_timeout() {
        return Failure::Timeout;
    }
    // The URL may carry secrets: describe the error without it, then redact what is left.
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure::Connection(ctx.redactor.text(&message))
}

async fn exchange(
    ctx: &CallContext,
    method: reqwest::Method,
    url: url::Url,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<HttpResponse, Failure> {
    let limit = ctx.limits.max_response_bytes;
    let work = async {
        let mut response = ctx
            .client
            .request(method, url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| failure_of(ctx, e))?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(Failure::TooLarge(limit as u64));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failure_of(ctx, e))? {
            if body.len() + chunk.len() > limit {
                return Err(Failure::TooLarge(limit as u64));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(Failure::Timeout))
}

/// `Retry-After` as seconds or an HTTP date.
fn retry_after(headers: &[(String, String)]) -> Option<Duration> {
    let value = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))?
        .1
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn backoff(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn config(pairs: &[(&str, &str)]) -> ConnectionConfig {
        use super::super::bindings::{ConfigField, ConfigKind, Manifest};
        let manifest = Manifest {
            id: "t".into(),
            name: "t".into(),
            version: "0".into(),
            description: String::new(),
            streams: vec![],
            config: pairs
                .iter()
                .map(|(k, _)| ConfigField {
                    name: (*k).into(),
                    label: (*k).into(),
                    description: String::new(),
                    kind: ConfigKind::Text,
                    required: false,
                    default: None,
                    choices: vec![],
                })
                .collect(),
            outbound_hosts: vec![],
        };
        let raw: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        super::super::config::validate(&manifest, &[], &raw).expect("valid")
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).expect("url")
    }

    #[test]
    fn the_allow_list_matches_scheme_host_and_port_exactly() {
        let config = config(&[
            ("base_url", "https://api.mpluskassa.nl:44123/path/"),
            ("shop_host", "Shop.Example"),
        ]);
        let allow = AllowList::from_templates(
            &["{base_url}".into(), "{shop_host}".into(), "{unset}".into()],
            &config,
        );
        assert_eq!(allow.origins().len(), 2);
        assert!(
            allow
                .check(&url("https://api.mpluskassa.nl:44123/?ident=1"))
                .is_ok()
        );
        assert_eq!(
            allow.check(&url("https://api.mpluskassa.nl:44124/")),
            Err("https://api.mpluskassa.nl:44124".into()),
            "another port is another origin"
        );
        assert_eq!(
            allow.check(&url("http://api.mpluskassa.nl:44123/")),
            Err("http://api.mpluskassa.nl:44123".into())
        );
        assert!(
            allow.check(&url("https://shop.example/api")).is_ok(),
            "hosts compare case-insensitively"
        );
        assert_eq!(
            allow.check(&url("https://evil.example/")),
            Err("https://evil.example:443".into())
        );
    }

    #[test]
    fn an_empty_allow_list_allows_nothing() {
        let allow = AllowList::from_templates(&[], &config(&[]));
        assert!(allow.check(&url("http://127.0.0.1:80/")).is_err());
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let h = |v: &str| vec![("Retry-After".to_owned(), v.to_owned())];
        assert_eq!(retry_after(&h("3")), Some(Duration::from_secs(3)));
        assert_eq!(
            retry_after(&h("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&h("soon")), None);
        assert_eq!(
            backoff(Duration::from_millis(100), 3),
            Duration::from_millis(400)
        );
    }

    #[test]
    fn placeholders_are_listed_and_filled() {
        assert_eq!(placeholders("https://{host}:{port}/"), vec!["host", "port"]);
        let filled = fill("{base_url}", |_| Some("https://h:1/".into()));
        assert_eq!(filled.as_deref(), Some("https://h:1"));
        assert_eq!(fill("{x}", |_| None), None);
    }
}
