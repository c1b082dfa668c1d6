//! The HTTP side: `POST /?ident=..&secret=..` (any path) carries a SOAP envelope; `GET /?wsdl`
//! serves the real WSDL. Each request goes: credentials → parse → fill what clients may omit →
//! validate the request → run → validate the response → answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State as AxumState};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::model::State;
use crate::ops::{self, Limits};
use crate::schema::Reference;
use crate::xml::{self, Element, MPLUS_NS, SoapFault};

/// Which side of an exchange broke the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The client sent it: answered with a `SOAP-ENV:Client` fault.
    Request,
    /// The simulator wrote it: a simulator bug, answered with a `SOAP-ENV:Server` fault.
    Response,
}

/// One schema violation seen by the validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub direction: Direction,
    pub operation: String,
    /// libxml2's messages.
    pub errors: Vec<String>,
    /// The payload that was validated.
    pub document: String,
}

/// A request that broke the schema as sent, but passed once what real clients leave out and
/// the real server tolerates was filled in (API-NOTES section 2). Not a violation, but a
/// client of our own should not need the tolerance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Omission {
    pub operation: String,
    /// libxml2's messages for the payload as sent.
    pub errors: Vec<String>,
    /// The payload as sent.
    pub document: String,
}

/// Everything a request handler needs.
pub(crate) struct Inner {
    pub state: RwLock<State>,
    pub reference: Option<Arc<Reference>>,
    pub validate: bool,
    pub ident: String,
    pub secret: String,
    pub auth_fault: String,
    pub limits: Limits,
    pub counts: Mutex<HashMap<String, u64>>,
    pub violations: Mutex<Vec<Violation>>,
    pub omissions: Mutex<Vec<Omission>>,
    /// Request and response payloads the validator accepted or rejected.
    pub validated: AtomicU64,
}

impl Inner {
    fn validator(&self) -> Option<&crate::schema::Validator> {
        match (&self.reference, self.validate) {
            (Some(r), true) if crate::schema::Validator::AVAILABLE => Some(&r.validator),
            _ => None,
        }
    }

    fn record(&self, violation: Violation) {
        self.violations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(violation);
    }
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    response
}

fn fault_response(fault: &SoapFault) -> Response {
    xml_response(StatusCode::INTERNAL_SERVER_ERROR, fault.to_envelope())
}

/// The one handler behind every path.
pub(crate) async fn handle(
    AxumState(inner): AxumState<Arc<Inner>>,
    method: Method,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Bytes,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    if method == Method::GET && query.contains_key("wsdl") {
        return match &inner.reference {
            Some(r) => {
                let mut response = (StatusCode::OK, r.wsdl.to_vec()).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/xml; charset=utf-8"),
                );
                response
            }
            None => (
                StatusCode::NOT_FOUND,
                "The MplusQapi WSDL is not available: the simulator was started without the \
                 reference folder (set KOPPEL_REFERENCE_DIR to the folder that holds \
                 mplus/MplusQapi.wsdl).\n",
            )
                .into_response(),
        };
    }
    if method != Method::POST {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "POST a SOAP envelope, or GET /?wsdl.\n",
        )
            .into_response();
    }
    let authenticated =
        query.get("ident") == Some(&inner.ident) && query.get("secret") == Some(&inner.secret);
    if !authenticated {
        tracing::debug!(
            ident = query.get("ident").map_or("", String::as_str),
            "Refused a request with wrong credentials."
        );
        return fault_response(&SoapFault::client(inner.auth_fault.clone()));
    }
    let mut payload = match Element::parse(&body).and_then(xml::body_payload) {
        Ok(payload) => payload,
        Err(error) => {
            return fault_response(&SoapFault::client(format!("Malformed request: {error}")));
        }
    };
    let op = payload.name.clone();
    if payload.ns.as_deref() != Some(MPLUS_NS) {
        return fault_response(&SoapFault::client(format!(
            "Tag name or namespace mismatch: '{op}' is not in namespace {MPLUS_NS}"
        )));
    }
    *inner
        .counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(op.clone())
        .or_default() += 1;
    if !ops::is_supported(&op) {
        let known = inner
            .reference
            .as_ref()
            .is_some_and(|r| r.model.has_element(&op));
        let fault = if known {
            SoapFault::server(format!("The simulator does not implement '{op}'."))
        } else {
            SoapFault::client(format!(
                "Method '{op}' not implemented: method name or namespace not recognized"
            ))
        };
        return fault_response(&fault);
    }
    // The payload as sent first; only if that fails, the payload with what clients may omit
    // filled in (a pass then is a tolerated omission, recorded apart).
    let raw = match inner.validator() {
        Some(validator) => {
            inner.validated.fetch_add(1, Ordering::Relaxed);
            let document = payload.to_document();
            validator
                .validate(document.clone())
                .await
                .err()
                .map(|errors| (errors, document))
        }
        None => None,
    };
    if let Some(reference) = &inner.reference {
        reference.model.fill_omitted(&mut payload);
    }
    if let (Some(validator), Some((raw_errors, raw_document))) = (inner.validator(), raw) {
        let document = payload.to_document();
        let repaired = validator.validate(document.clone()).await;
        if repaired.is_ok() {
            tracing::debug!(operation = %op, error = %raw_errors.join("; "), "Tolerated an omission.");
            inner
                .omissions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Omission {
                    operation: op.clone(),
                    errors: raw_errors,
                    document: raw_document,
                });
        } else if let Err(errors) = repaired {
            tracing::debug!(operation = %op, error = %errors.join("; "), "Invalid request.");
            let first = errors.first().cloned().unwrap_or_default();
            inner.record(Violation {
                direction: Direction::Request,
                operation: op.clone(),
                errors,
                document,
            });
            return fault_response(&SoapFault::client(format!(
                "Validation constraint violation: {first}"
            )));
        }
    }
    let now = crate::clock::now();
    let answer = ops::dispatch(&inner.state, inner.limits, &payload, now);
    let answer = match answer {
        Ok(answer) => answer,
        Err(fault) => {
            tracing::debug!(operation = %op, fault = %fault, "Answered with a fault.");
            return fault_response(&fault);
        }
    };
    if let Some(validator) = inner.validator() {
        inner.validated.fetch_add(1, Ordering::Relaxed);
        let document = answer.to_document();
        if let Err(errors) = validator.validate(document.clone()).await {
            tracing::error!(operation = %op, error = %errors.join("; "), "The simulator wrote an invalid response.");
            let first = errors.first().cloned().unwrap_or_default();
            inner.record(Violation {
                direction: Direction::Response,
                operation: op.clone(),
                errors,
                document,
            });
            return fault_response(&SoapFault::server(format!(
                "Simulator bug: the {} response violates the schema: {first}",
                answer.root()
            )));
        }
    }
    xml_response(StatusCode::OK, answer.to_envelope())
}
