//! Shopware's error body (`{"errors": [{status, code, title, detail, meta, source}]}`, API-NOTES
//! §3) turned into messages a shop owner understands, with Shopware's code and the offending
//! field, and into [`ConnectorError`]s of the right kind.

use koppel_sdk::ConnectorError;
use koppel_sdk::http::{snippet, status_error};
use serde_json::Value;

/// Symfony's NotBlank constraint: a required value is missing.
pub const NOT_BLANK: &str = "c1051bb4-d103-4f74-8988-acbcafc7fdc3";
/// Symfony's Type constraint: a value has the wrong JSON type.
pub const WRONG_TYPE: &str = "ba785a8c-82cb-4283-967c-3cf342181b40";

/// One entry of Shopware's `errors` list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub title: String,
    pub detail: String,
    /// `source.pointer`: where in the request body the problem is (validation errors).
    pub pointer: Option<String>,
    /// `meta.parameters`.
    pub parameters: Value,
}

/// The `errors` of a response body; empty when the body is not Shopware's error shape.
pub fn parse(body: &[u8]) -> Vec<ApiError> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    value
        .get("errors")
        .and_then(Value::as_array)
        .map(|errors| errors.iter().map(ApiError::from_json).collect())
        .unwrap_or_default()
}

impl ApiError {
    pub fn from_json(value: &Value) -> ApiError {
        let text = |key: &str| match value.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        ApiError {
            status: text("status").parse().unwrap_or(0),
            code: text("code"),
            title: text("title"),
            detail: text("detail"),
            pointer: value
                .pointer("/source/pointer")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: value
                .pointer("/meta/parameters")
                .cloned()
                .unwrap_or(Value::Null),
        }
    }

    /// The segments of the pointer, without empty ones.
    fn segments(&self) -> Vec<&str> {
        self.pointer
            .as_deref()
            .unwrap_or("")
            .split('/')
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The index of the record in the written list the pointer starts with (`/3/price` → 3).
    /// A leading operation key (not verified whether Shopware adds one) is skipped.
    pub fn record_index(&self) -> Option<usize> {
        let segments = self.segments();
        let first = segments.first()?;
        match first.parse() {
            Ok(index) => Some(index),
            Err(_) => segments.get(1)?.parse().ok(),
        }
    }

    /// The pointer below the record: `/3/children/1/productNumber` → `children/1/productNumber`.
    pub fn field_path(&self) -> Option<String> {
        let segments = self.segments();
        let start = match segments.first()?.parse::<usize>() {
            Ok(_) => 1,
            Err(_) => 2,
        };
        let rest = segments.get(start..)?;
        (!rest.is_empty()).then(|| rest.join("/"))
    }

    /// What went wrong, in words, with Shopware's code.
    pub fn describe(&self) -> String {
        let text = match self.code.as_str() {
            NOT_BLANK => "a value is required here".to_owned(),
            "CONTENT__DUPLICATE_PRODUCT_NUMBER" => {
                let number = self
                    .parameters
                    .get("number")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                format!("product number {number:?} already belongs to another product in Shopware")
            }
            "FRAMEWORK__MISSING_PRIVILEGE_ERROR" => format!(
                "the integration lacks a permission ({}); give it a role with that privilege, or the \
                 Administrator switch, in Settings → System → Integrations",
                self.detail
            ),
            "FRAMEWORK__RATE_LIMIT_EXCEEDED" => {
                format!("Shopware asks to slow down: {}", self.detail)
            }
            "SYSTEM__ILLEGAL_STATE_TRANSITION" => {
                let possible = self
                    .parameters
                    .get("possibleTransitions")
                    .and_then(Value::as_array)
                    .map(|list| {
                        list.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default();
                let transition = self
                    .parameters
                    .get("transition")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                format!(
                    "Shopware does not allow the transition \"{transition}\" from the current state \
                     (possible: {})",
                    if possible.is_empty() {
                        "none"
                    } else {
                        &possible
                    }
                )
            }
            _ if !self.detail.is_empty() => self.detail.clone(),
            _ => self.title.clone(),
        };
        let code = if self.code.is_empty() || self.code == "0" {
            String::new()
        } else {
            format!("Shopware code {}", self.code)
        };
        match (&self.pointer, code.is_empty()) {
            (Some(pointer), false) => format!("{text} ({code} at {pointer})"),
            (Some(pointer), true) => format!("{text} (at {pointer})"),
            (None, false) => format!("{text} ({code})"),
            (None, true) => text,
        }
    }
}

/// The messages of several errors, joined.
pub fn describe_all(errors: &[ApiError]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for error in errors {
        let text = error.describe();
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    seen.join("; ")
}

/// Whether a failed write is Shopware refusing the data (split the batch and try the rest)
/// rather than Shopware being unwell: validation errors and database constraint violations.
pub fn is_data_error(status: u16, errors: &[ApiError]) -> bool {
    match status {
        400 | 404 | 409 | 422 => true,
        500 => errors.iter().any(|e| {
            e.detail.contains("SQLSTATE[23000]") || e.detail.contains("Integrity constraint")
        }),
        _ => false,
    }
}

/// The error a failed call reports: `what` says what was being done ("searching orders").
/// The kind, and whether it may pass later, are the SDK's one table
/// ([`koppel_sdk::http::status_error`]); Shopware's own are the words (its error codes and
/// pointers), a 401 that names the keys to check, a 403 that is about the integration's
/// permissions (Shopware answers a missing privilege with 403 `FRAMEWORK__MISSING_PRIVILEGE_ERROR`;
/// refused credentials are a 401), and the field a pointer names.
pub fn for_status(status: u16, body: &[u8], what: &str) -> ConnectorError {
    let errors = parse(body);
    let detail = if errors.is_empty() {
        snippet(body)
    } else {
        describe_all(&errors)
    };
    let error = match status {
        401 => ConnectorError::auth(format!(
            "Shopware did not accept the integration's access token while {what} (HTTP 401: \
             {detail}); check access_key_id and secret_access_key (Settings → System → \
             Integrations)"
        )),
        403 => ConnectorError::auth(format!(
            "Shopware refused the integration a permission while {what} (HTTP 403: {detail}); \
             give the integration's role the privileges named (Settings → System → Users & \
             permissions → Roles), or install the koppel app, whose manifest asks for every \
             permission koppel needs"
        )),
        _ => {
            let error = status_error(status, &detail);
            ConnectorError {
                message: format!("Shopware, while {what}: {}", error.message),
                ..error
            }
        }
    };
    match errors.iter().find_map(|e| e.field_path()) {
        Some(field) if error.field.is_none() => error.with_field(field),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use koppel_sdk::ErrorKind;
    use serde_json::json;

    #[test]
    fn pointers_name_the_record_and_field() {
        let body = json!({"errors": [
            {"code": "FRAMEWORK__WRITE_CONSTRAINT_VIOLATION", "status": "400",
             "detail": "No price for default currency defined", "source": {"pointer": "/3/price"}},
            {"code": NOT_BLANK, "status": "400", "detail": "This value should not be blank.",
             "source": {"pointer": "/upsert-product/1/children/0/productNumber"}}
        ]});
        let errors = parse(body.to_string().as_bytes());
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].record_index(), Some(3));
        assert_eq!(errors[0].field_path().as_deref(), Some("price"));
        assert_eq!(errors[1].record_index(), Some(1));
        assert_eq!(
            errors[1].field_path().as_deref(),
            Some("children/0/productNumber")
        );
        assert_eq!(
            errors[0].describe(),
            "No price for default currency defined (Shopware code FRAMEWORK__WRITE_CONSTRAINT_VIOLATION at /3/price)"
        );
        assert!(errors[1].describe().starts_with("a value is required here"));
    }

    #[test]
    fn statuses_become_the_right_kind_of_error() {
        let body = json!({"errors": [{"status": "429", "code": "FRAMEWORK__RATE_LIMIT_EXCEEDED",
            "detail": "Too many requests, try again in 30 seconds.", "meta": {"parameters": {"seconds": 30}}}]});
        let error = for_status(429, body.to_string().as_bytes(), "writing products");
        assert_eq!(error.kind, ErrorKind::Throttled);
        assert!(error.retryable);
        assert!(
            error.message.contains("try again in 30 seconds"),
            "{}",
            error.message
        );

        let error = for_status(400, b"<html>oops</html>", "searching orders");
        assert_eq!(error.kind, ErrorKind::Rejected);
        assert!(!error.retryable);
        assert!(
            error
                .message
                .starts_with("Shopware, while searching orders: HTTP 400: <html>oops</html>"),
            "{}",
            error.message
        );

        // The SDK's one table decides the kind; Shopware's 401 names the keys to check.
        let of = |status| {
            let e = for_status(status, b"", "reading the version");
            (e.kind, e.retryable)
        };
        assert_eq!(of(502), (ErrorKind::Unreachable, true));
        assert_eq!(of(503), (ErrorKind::Throttled, true));
        assert_eq!(of(500), (ErrorKind::Rejected, true));
        assert_eq!(of(403), (ErrorKind::Auth, false));
        let body = json!({"errors": [{"status": "403", "code": "FRAMEWORK__MISSING_PRIVILEGE_ERROR",
            "detail": "{\"message\":\"Missing privilege\",\"missingPrivileges\":[\"product:create\"]}"}]});
        let error = for_status(403, body.to_string().as_bytes(), "writing products");
        assert!(
            error.message.contains("permission")
                && error.message.contains("product:create")
                && !error.message.contains("credentials"),
            "a 403 is about permissions, not the keys: {}",
            error.message
        );
        let error = for_status(401, b"", "reading the version");
        assert_eq!(error.kind, ErrorKind::Auth);
        assert!(error.message.contains("access_key_id"), "{}", error.message);

        let body = json!({"errors": [{"status": "400", "code": "SYSTEM__ILLEGAL_STATE_TRANSITION",
            "detail": "Illegal transition", "meta": {"parameters": {"transition": "complete",
            "possibleTransitions": ["process", "cancel"]}}}]});
        let error = for_status(400, body.to_string().as_bytes(), "moving order 10042");
        assert!(
            error.message.contains("\"complete\"") && error.message.contains("process, cancel"),
            "{}",
            error.message
        );
        assert!(error.message.contains("SYSTEM__ILLEGAL_STATE_TRANSITION"));
    }

    #[test]
    fn only_data_errors_are_split() {
        let integrity = ApiError {
            detail: "SQLSTATE[23000]: Integrity constraint violation: 1062".into(),
            ..ApiError::default()
        };
        assert!(is_data_error(500, std::slice::from_ref(&integrity)));
        assert!(!is_data_error(500, &[ApiError::default()]));
        assert!(is_data_error(400, &[]));
        assert!(!is_data_error(503, &[]));
    }
}
