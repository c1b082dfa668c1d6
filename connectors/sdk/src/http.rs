//! HTTP through the host: a small request builder over `http-send`, JSON in and out, and
//! error conversion to [`ConnectorError`].

use crate::ConnectorError;
use crate::bindings::koppel::connector::host::{
    self, HttpError, HttpRequest, HttpResponse, Method,
};
use crate::error::Result;

/// A request to send through the host.
#[derive(Clone, Debug)]
pub struct Request {
    inner: HttpRequest,
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Request {
            inner: HttpRequest {
                method,
                url: url.into(),
                headers: Vec::new(),
                body: Vec::new(),
                timeout_ms: None,
                // Reads are safe to repeat; writes must opt in.
                retry_safe: matches!(method, Method::Get | Method::Head),
            },
        }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::Patch, url)
    }

    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.inner.headers.push((name.to_owned(), value.into()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("Authorization", format!("Bearer {token}"))
    }

    pub fn body(mut self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        self.inner.body = body.into();
        self.header("Content-Type", content_type)
    }

    /// A JSON body (and `Content-Type: application/json`).
    pub fn json<T: serde::Serialize + ?Sized>(self, body: &T) -> Result<Self> {
        let bytes = serde_json::to_vec(body).map_err(|error| {
            ConnectorError::internal(format!("cannot encode the request body: {error}"))
        })?;
        Ok(self.body("application/json", bytes))
    }

    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.inner.timeout_ms = Some(ms);
        self
    }

    /// Marks a write as safe to send twice (idempotent), so the host may retry it on
    /// 502/503/504 and connection failures too (a 429 it retries for any request).
    pub fn retry_safe(mut self, safe: bool) -> Self {
        self.inner.retry_safe = safe;
        self
    }

    /// The request as it will be sent (for unit tests of request builders).
    pub fn as_http(&self) -> &HttpRequest {
        &self.inner
    }

    /// Sends the request through the host.
    pub fn send(self) -> Result<Response> {
        let url = self.inner.url.clone();
        host::http_send(&self.inner)
            .map(|inner| Response { inner })
            .map_err(|error| error_for(&url, error))
    }
}

/// The answer to a [`Request`].
#[derive(Clone, Debug)]
pub struct Response {
    inner: HttpResponse,
}

impl Response {
    /// Wraps a raw response (for unit tests of response parsers).
    pub fn from_parts(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Self {
        Response {
            inner: HttpResponse {
                status,
                headers,
                body,
            },
        }
    }

    pub fn status(&self) -> u16 {
        self.inner.status
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.inner.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner
            .headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn bytes(&self) -> &[u8] {
        &self.inner.body
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.inner.body
    }

    /// The body as text (lossy: invalid UTF-8 becomes U+FFFD).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.inner.body).into_owned()
    }

    /// The body deserialised from JSON; a protocol error says what was expected.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.inner.body).map_err(|error| {
            ConnectorError::protocol(format!(
                "HTTP {}: unexpected response body ({error}): {}",
                self.inner.status,
                snippet(&self.inner.body)
            ))
        })
    }
}

/// The error an answer that is not a success means, by its status, with `detail` (what the
/// system said, or what was asked) in the message. The SDK's one default, which a connector
/// overrides by matching the statuses it knows better first:
///
/// | status | kind | retryable |
/// | --- | --- | --- |
/// | 401, 403 | `auth` | no |
/// | 408 | `unreachable` | yes |
/// | 429, 503 | `throttled` (slow down, or unavailable for now) | yes |
/// | 502, 504 | `unreachable` (a gateway could not reach the system) | yes |
/// | 500 and other 5xx | `rejected` (the system failed on this request) | yes |
/// | other 4xx | `rejected` | no |
/// | anything else | `protocol` | no |
pub fn status_error(status: u16, detail: &str) -> ConnectorError {
    let message = if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    };
    match status {
        401 | 403 => ConnectorError::auth(format!("the credentials were refused ({message})")),
        408 => ConnectorError::unreachable(format!("no answer in time ({message})")),
        429 | 503 => ConnectorError::throttled(format!("the system is busy ({message})")),
        502 | 504 => {
            ConnectorError::unreachable(format!("the system cannot be reached ({message})"))
        }
        500..=599 => {
            ConnectorError::rejected(format!("the system failed ({message})")).retryable(true)
        }
        400..=499 => ConnectorError::rejected(message),
        _ => ConnectorError::protocol(format!("unexpected answer ({message})")),
    }
}

impl Response {
    /// [`status_error`] for this answer, with the start of its body as the detail.
    pub fn status_error(&self) -> ConnectorError {
        status_error(self.inner.status, &snippet(&self.inner.body))
    }
}

/// The first 300 characters of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// The error a connector reports when a request could not be completed.
pub fn error_for(url: &str, error: HttpError) -> ConnectorError {
    let host = host_of(url);
    match error {
        HttpError::Denied(host) => ConnectorError::config(
            "outbound-hosts",
            format!(
                "the host refused a request to {host}: it is not in this connection's allowed hosts"
            ),
        ),
        HttpError::InvalidRequest(message) => {
            ConnectorError::internal(format!("invalid request to {host}: {message}"))
        }
        HttpError::Timeout => {
            ConnectorError::unreachable(format!("cannot reach {host}: no answer in time"))
        }
        HttpError::Connection(message) => {
            ConnectorError::unreachable(format!("cannot reach {host}: {message}"))
        }
        HttpError::TooLarge(limit) => ConnectorError::protocol(format!(
            "the exchange with {host} exceeds the size limit of {limit} bytes"
        )),
    }
}

/// `scheme://host[:port]` of a URL, for messages (never the path or query: they may hold secrets).
pub fn host_of(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map(|i| i + after_scheme)
        .unwrap_or(url.len());
    &url[..end]
}

/// Percent-encodes a query-string or path component.
pub fn encode(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for b in component.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_keeps_secrets_out_of_messages() {
        assert_eq!(
            host_of("https://api.example:4443/x?secret=s"),
            "https://api.example:4443"
        );
        assert_eq!(host_of("http://h?ident=1"), "http://h");
    }

    #[test]
    fn encodes_reserved_characters() {
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn statuses_map_to_one_documented_default() {
        use crate::ErrorKind;
        let of = |status| {
            let e = status_error(status, "x");
            (e.kind, e.retryable)
        };
        assert_eq!(of(401), (ErrorKind::Auth, false));
        assert_eq!(of(403), (ErrorKind::Auth, false));
        assert_eq!(of(408), (ErrorKind::Unreachable, true));
        assert_eq!(of(429), (ErrorKind::Throttled, true));
        assert_eq!(of(503), (ErrorKind::Throttled, true));
        assert_eq!(of(502), (ErrorKind::Unreachable, true));
        assert_eq!(of(504), (ErrorKind::Unreachable, true));
        assert_eq!(of(500), (ErrorKind::Rejected, true));
        assert_eq!(of(422), (ErrorKind::Rejected, false));
        assert_eq!(of(404), (ErrorKind::Rejected, false));
        assert_eq!(of(302), (ErrorKind::Protocol, false));
        assert!(
            status_error(422, "bad ean")
                .message
                .contains("HTTP 422: bad ean")
        );
    }

    #[test]
    fn writes_are_not_retried_unless_marked() {
        assert!(Request::get("http://h/").as_http().retry_safe);
        assert!(!Request::post("http://h/").as_http().retry_safe);
        assert!(
            Request::post("http://h/")
                .retry_safe(true)
                .as_http()
                .retry_safe
        );
    }
}
