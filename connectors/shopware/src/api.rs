//! The Admin API client over the host's `http-send`: the client-credentials token cached in the
//! host's key-value store until shortly before it expires and renewed once on a 401, the
//! version probe and `Accept: application/json` on every request. Throttling (429, and 503 for
//! retry-safe requests) is the host's to retry, honouring `Retry-After`; what is still refused
//! after that fails as retryable.

use std::cell::{Cell, RefCell};

use koppel_sdk::bindings::koppel::connector::host::Method;
use koppel_sdk::http::{Request, Response};
use koppel_sdk::{ConnectorError, Result, kv, log};
use serde_json::{Value, json};

use crate::errors;
use crate::ids;

/// A token is renewed this long before Shopware says it expires.
const TOKEN_MARGIN_SECS: u64 = 60;
/// How long the probed version is trusted (a shop may be upgraded).
const VERSION_TTL_SECS: u32 = 3600;
/// The most rows a search asks for: `shopware.api.max_limit` of a default 6.6+ install
/// (`RequestCriteriaBuilder` answers 400 `FRAMEWORK__QUERY_LIMIT_EXCEEDED` above it; 6.4 and
/// 6.5 have no maximum by default). A shop configured lower names its maximum in that
/// refusal, and the client keeps to it from then on.
pub const MAX_LIMIT: usize = 500;
/// Pages one search reads at most (a guard against a shop that never stops answering).
const MAX_PAGES: usize = 1000;

/// The Shopware versions the connector tells apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    V6_4,
    V6_5,
    V6_6,
    V6_7,
}

impl Version {
    /// `6.5.6.1` → 6.5; anything newer than 6.7 behaves as 6.7; older than 6.4 is refused.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches(['v', 'V']);
        let mut parts = text.split('.');
        let major: u32 = parts.next()?.trim().parse().ok()?;
        let minor: u32 = parts
            .next()
            .map(|m| {
                m.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        match (major, minor) {
            (6, 4) => Some(Version::V6_4),
            (6, 5) => Some(Version::V6_5),
            (6, 6) => Some(Version::V6_6),
            (6, m) if m >= 7 => Some(Version::V6_7),
            (m, _) if m > 6 => Some(Version::V6_7),
            _ => None,
        }
    }

    /// 6.5+: one-transaction sync answering `{data, notFound, deleted}`; 6.4 answers per
    /// operation and can commit operations one by one.
    pub fn flat_sync(self) -> bool {
        self >= Version::V6_5
    }

    /// 6.6+: `stock` is lowered when an order is placed, `availableStock` mirrors it.
    pub fn realtime_stock(self) -> bool {
        self >= Version::V6_6
    }

    pub fn label(self) -> &'static str {
        match self {
            Version::V6_4 => "6.4",
            Version::V6_5 => "6.5",
            Version::V6_6 => "6.6",
            Version::V6_7 => "6.7",
        }
    }
}

/// One request to the Admin API.
#[derive(Clone, Debug)]
pub struct Call {
    method: Method,
    /// Below `/api`, starting with `/`.
    path: String,
    body: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
    retry_safe: bool,
    /// What is being done, for messages ("searching orders").
    what: String,
}

impl Call {
    pub fn new(method: Method, path: impl Into<String>, what: impl Into<String>) -> Call {
        Call {
            method,
            path: path.into(),
            body: None,
            headers: Vec::new(),
            retry_safe: matches!(method, Method::Get | Method::Head),
            what: what.into(),
        }
    }

    pub fn get(path: impl Into<String>, what: impl Into<String>) -> Call {
        Call::new(Method::Get, path, what)
    }

    /// A POST that only reads (a search): safe to repeat.
    pub fn search(path: impl Into<String>, body: &Value, what: impl Into<String>) -> Call {
        Call::new(Method::Post, path, what)
            .json(body)
            .retry_safe(true)
    }

    pub fn post(path: impl Into<String>, body: &Value, what: impl Into<String>) -> Call {
        Call::new(Method::Post, path, what).json(body)
    }

    pub fn patch(path: impl Into<String>, body: &Value, what: impl Into<String>) -> Call {
        Call::new(Method::Patch, path, what).json(body)
    }

    pub fn json(mut self, body: &Value) -> Call {
        self.body = Some(body.to_string().into_bytes());
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Call {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Marks the request as safe to send twice (an upsert with deterministic ids, a search).
    pub fn retry_safe(mut self, safe: bool) -> Call {
        self.retry_safe = safe;
        self
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn body(&self) -> Option<&[u8]> {
        self.body.as_deref()
    }

    pub fn is_retry_safe(&self) -> bool {
        self.retry_safe
    }

    /// The request as the host will get it, with this token.
    pub fn to_request(&self, base: &str, token: &str) -> Request {
        let mut request = Request::new(self.method, format!("{base}/api{}", self.path))
            .header("Accept", "application/json")
            .bearer(token)
            .retry_safe(self.retry_safe);
        for (name, value) in &self.headers {
            request = request.header(name, value.clone());
        }
        if let Some(body) = &self.body {
            request = request.body("application/json", body.clone());
        }
        request
    }
}

/// A connection to one shop.
#[derive(Debug)]
pub struct Client {
    base: String,
    key_id: String,
    secret: String,
    token_key: String,
    version_key: String,
    token: RefCell<Option<String>>,
    version: Cell<Option<Version>>,
    token_requests: Cell<u32>,
    max_limit: Cell<usize>,
}

impl Client {
    pub fn new(base: &str, key_id: &str, secret: &str) -> Client {
        // A changed secret must not pick up the token of the old one; the key holds only a
        // short hash of it.
        let scope = ids::fingerprint(&format!("{base}\n{key_id}\n{secret}"));
        Client {
            base: base.to_owned(),
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
            token_key: format!("shopware.token.{scope}"),
            version_key: format!("shopware.version.{scope}"),
            token: RefCell::new(None),
            version: Cell::new(None),
            token_requests: Cell::new(0),
            max_limit: Cell::new(MAX_LIMIT),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The access token: from memory, else the host's key-value store, else a new one.
    fn token(&self) -> Result<String> {
        if let Some(token) = self.token.borrow().clone() {
            return Ok(token);
        }
        if let Some(token) = kv::get_string(&self.token_key) {
            *self.token.borrow_mut() = Some(token.clone());
            return Ok(token);
        }
        let token = self.fetch_token()?;
        *self.token.borrow_mut() = Some(token.clone());
        Ok(token)
    }

    fn forget_token(&self) {
        *self.token.borrow_mut() = None;
        kv::delete(&self.token_key);
    }

    fn fetch_token(&self) -> Result<String> {
        self.token_requests.set(self.token_requests.get() + 1);
        let body = json!({
            "grant_type": "client_credentials",
            "client_id": self.key_id,
            "client_secret": self.secret,
        });
        // Asking twice for a token does no harm: the host may repeat it on 429/5xx.
        let response = Request::post(format!("{}/api/oauth/token", self.base))
            .header("Accept", "application/json")
            .json(&body)?
            .retry_safe(true)
            .send()?;
        let (token, expires_in) = parse_token(&response)?;
        let ttl = token_ttl(expires_in);
        kv::set_string(&self.token_key, &token, Some(ttl));
        log::debug(
            "Fetched a Shopware access token.",
            &[("expires_in", &expires_in.to_string())],
        );
        Ok(token)
    }

    /// Tokens this instance asked Shopware for.
    pub fn token_requests(&self) -> u32 {
        self.token_requests.get()
    }

    /// The shop's version: from memory, the key-value store, or `/api/_info/version`.
    pub fn version(&self) -> Result<Version> {
        if let Some(version) = self.version.get() {
            return Ok(version);
        }
        let text = match kv::get_string(&self.version_key) {
            Some(text) => text,
            None => {
                let answer = self.json(Call::get("/_info/version", "reading the version"))?;
                let text = answer
                    .get("version")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ConnectorError::protocol(format!(
                            "/api/_info/version answered without a version: {answer}"
                        ))
                    })?
                    .to_owned();
                kv::set_string(&self.version_key, &text, Some(VERSION_TTL_SECS));
                text
            }
        };
        let version = Version::parse(&text).ok_or_else(|| {
            ConnectorError::unsupported(format!(
                "Shopware {text} is not supported: koppel works with Shopware 6.4 to 6.7"
            ))
        })?;
        if self.version.get().is_none() {
            log::info(
                "Detected the Shopware version.",
                &[("version", &text), ("behaves_as", version.label())],
            );
        }
        self.version.set(Some(version));
        Ok(version)
    }

    /// Sends a call; renews the token once on a 401. Any status comes back; see
    /// [`Client::json`] for one that must succeed.
    pub fn send(&self, call: &Call) -> Result<Response> {
        let mut renewed = false;
        loop {
            let token = self.token()?;
            let response = call.to_request(&self.base, &token).send()?;
            if response.status() == 401 && !renewed {
                log::debug("Shopware refused the token; fetching a new one.", &[]);
                self.forget_token();
                renewed = true;
                continue;
            }
            return Ok(response);
        }
    }

    /// The most rows a search may ask for.
    pub fn max_limit(&self) -> usize {
        self.max_limit.get()
    }

    /// Whether `response` is Shopware refusing a search's `limit` as above its maximum, which
    /// the client then keeps to (a shop's `shopware.api.max_limit` lower than 500).
    pub fn learn_limit(&self, response: &Response) -> bool {
        match lower_limit(response, self.max_limit.get()) {
            Some(max) => {
                log::info(
                    "Shopware limits searches to fewer rows; keeping to it.",
                    &[("max_limit", &max.to_string())],
                );
                self.max_limit.set(max);
                true
            }
            None => false,
        }
    }

    /// Every row `criteria` match, page by page within [`Client::max_limit`], sorted by id
    /// when the criteria have no sort (so pages neither overlap nor miss rows). `at_most`:
    /// no more rows can match (one per unique number looked up), so a full page of them is
    /// the last.
    pub fn search_all(
        &self,
        path: &str,
        criteria: &Value,
        what: &str,
        language: Option<&str>,
        at_most: Option<usize>,
    ) -> Result<Vec<Value>> {
        let mut criteria = criteria.clone();
        if criteria.get("sort").is_none() {
            criteria["sort"] = json!([{"field": "id", "order": "ASC"}]);
        }
        let mut rows = Vec::new();
        let mut page = 1;
        while page <= MAX_PAGES {
            let limit = self.max_limit();
            criteria["limit"] = json!(limit);
            criteria["page"] = json!(page);
            let mut call = Call::search(path, &criteria, what);
            if let Some(language) = language {
                call = call.header("sw-language-id", language);
            }
            let response = self.send(&call)?;
            if self.learn_limit(&response) {
                rows.clear();
                page = 1;
                continue;
            }
            let answer = expect_json(&response, call.what())?;
            let data = answer
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let done = data.len() < limit;
            rows.extend(data);
            let done = done || at_most.is_some_and(|most| rows.len() >= most);
            if done {
                break;
            }
            page += 1;
        }
        Ok(rows)
    }

    /// Sends a call that must succeed; its JSON body (`null` for an empty one).
    pub fn json(&self, call: Call) -> Result<Value> {
        let response = self.send(&call)?;
        expect_json(&response, call.what())
    }
}

/// The maximum a search refusal (`FRAMEWORK__QUERY_LIMIT_EXCEEDED`) names, when it is lower
/// than `current`.
pub fn lower_limit(response: &Response, current: usize) -> Option<usize> {
    if response.status() != 400 {
        return None;
    }
    errors::parse(response.bytes())
        .iter()
        .filter(|e| e.code == "FRAMEWORK__QUERY_LIMIT_EXCEEDED")
        .find_map(|e| e.parameters.get("maxLimit").and_then(Value::as_u64))
        .and_then(|max| usize::try_from(max).ok())
        .filter(|max| (1..current).contains(max))
}

/// The JSON body of a successful response, or the error Shopware's answer means.
pub fn expect_json(response: &Response, what: &str) -> Result<Value> {
    if !response.is_success() {
        return Err(errors::for_status(
            response.status(),
            response.bytes(),
            what,
        ));
    }
    if response.bytes().iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    response.json()
}

/// The token and its lifetime from the token endpoint's answer.
pub fn parse_token(response: &Response) -> Result<(String, u64)> {
    match response.status() {
        200 => {
            let body: Value = response.json()?;
            let token = body
                .get("access_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    ConnectorError::protocol(
                        "Shopware's token endpoint answered without an access_token",
                    )
                })?;
            let expires_in = body
                .get("expires_in")
                .and_then(Value::as_u64)
                .unwrap_or(600);
            Ok((token.to_owned(), expires_in))
        }
        400 | 401 => {
            let detail = errors::describe_all(&errors::parse(response.bytes()));
            Err(ConnectorError::auth(format!(
                "Shopware refused the integration's credentials ({detail}): check access_key_id and \
                 secret_access_key against Settings → System → Integrations"
            ))
            .with_field("access_key_id"))
        }
        status => Err(errors::for_status(
            status,
            response.bytes(),
            "issuing an access token",
        )),
    }
}

/// How long a token is kept: until `TOKEN_MARGIN_SECS` before it expires (half its life for
/// very short ones).
pub fn token_ttl(expires_in: u64) -> u32 {
    let ttl = if expires_in > 2 * TOKEN_MARGIN_SECS {
        expires_in - TOKEN_MARGIN_SECS
    } else {
        expires_in / 2
    };
    u32::try_from(ttl.max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::from_parts(
            status,
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body.as_bytes().to_vec(),
        )
    }

    #[test]
    fn versions_are_told_apart() {
        assert_eq!(Version::parse("6.4.20.2"), Some(Version::V6_4));
        assert_eq!(Version::parse("6.5.6.1"), Some(Version::V6_5));
        assert_eq!(Version::parse("v6.6.10.13"), Some(Version::V6_6));
        assert_eq!(Version::parse("6.7.9.1"), Some(Version::V6_7));
        assert_eq!(Version::parse("6.8.0.0-dev"), Some(Version::V6_7));
        assert_eq!(Version::parse("6.3.5.0"), None);
        assert!(!Version::V6_4.flat_sync() && Version::V6_5.flat_sync());
        assert!(!Version::V6_5.realtime_stock() && Version::V6_6.realtime_stock());
    }

    #[test]
    fn every_request_asks_for_plain_json() {
        let call = Call::search("/search/product", &json!({"limit": 1}), "searching");
        let request = call.to_request("https://shop.example", "tok");
        let http = request.as_http();
        assert_eq!(http.url, "https://shop.example/api/search/product");
        assert!(http.retry_safe, "searches are safe to repeat");
        let header = |name: &str| {
            http.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(header("accept"), Some("application/json"));
        assert_eq!(header("content-type"), Some("application/json"));
        assert_eq!(header("authorization"), Some("Bearer tok"));
        let transition = Call::post("/_action/order/x/state/process", &json!({}), "moving");
        assert!(!transition.is_retry_safe(), "transitions are not repeated");
    }

    #[test]
    fn tokens_are_kept_until_shortly_before_they_expire() {
        let ok = response(
            200,
            &[],
            r#"{"token_type":"Bearer","expires_in":600,"access_token":"abc"}"#,
        );
        assert_eq!(parse_token(&ok).ok(), Some(("abc".to_owned(), 600)));
        assert_eq!(token_ttl(600), 540);
        assert_eq!(token_ttl(60), 30);
        assert_eq!(token_ttl(0), 1);
        let refused = response(
            401,
            &[],
            r#"{"errors":[{"code":"4","status":"401","title":"Client authentication failed","detail":"Client authentication failed"}]}"#,
        );
        let error = parse_token(&refused).expect_err("refused");
        assert_eq!(error.kind, koppel_sdk::ErrorKind::Auth);
        assert_eq!(error.field.as_deref(), Some("access_key_id"));
        assert!(
            error.message.contains("Shopware code 4"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_lower_search_maximum_is_learnt_from_the_refusal() {
        let refused = response(
            400,
            &[],
            r#"{"errors":[{"status":"400","code":"FRAMEWORK__QUERY_LIMIT_EXCEEDED","detail":"The limit must be lower than or equal to MAX_LIMIT(=100). Given: 500","meta":{"parameters":{"maxLimit":100,"limit":500}},"source":{"pointer":"/limit"}}]}"#,
        );
        assert_eq!(lower_limit(&refused, MAX_LIMIT), Some(100));
        assert_eq!(lower_limit(&refused, 100), None, "learnt once");
        assert_eq!(
            lower_limit(&response(400, &[], r#"{"errors":[]}"#), MAX_LIMIT),
            None
        );
    }
}
